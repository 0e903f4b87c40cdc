//! The System Log puller: follows `rel="next"` links from `/api/v1/logs`, drops boundary
//! duplicates, and appends each page's events with the cursor after them to the spool, the
//! next page travelling while the last one is synced (pages committed in order).

mod cursor;

pub use cursor::LogsCursor;

use super::body::Events;
use super::page;
use super::puller::{CycleEnd, Got, Halt, Puller, Stats, pulling_id};
use super::restore::{self, Found};
use crate::errors::ErrorId::Pull302 as PULL_302;
use crate::shutdown::Shutdown;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

/// Okta keeps 90 days of System Log; an older `since` is clamped to this.
const RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// Reads the cursor from the spool, or takes one over with `take_over` (Devo's collector's,
/// when there is none), or writes a first one from `start`. A configured `start`
/// that differs from the one the stored cursor was made from restarts the persistence (the
/// seed's "Restart the persistence"): a new cursor from the new start; events already in the
/// spool are still delivered.
pub(crate) async fn restore(
    p: &Puller,
    take_over: impl FnOnce(&Puller) -> Option<LogsCursor>,
) -> Result<LogsCursor, Halt> {
    let mut found = restore::read::<LogsCursor>(p);
    if matches!(found, Found::Empty)
        && let Some(c) = take_over(p)
    {
        found = Found::Imported(c);
    }
    restore::restore(p, found, || first_cursor(p), true).await
}

/// A first cursor: from the configured `start`, or now; never before Okta's retention.
fn first_cursor(p: &Puller) -> LogsCursor {
    let now = SystemTime::now();
    let oldest = now.checked_sub(RETENTION).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut start = p.service.start.unwrap_or(now);
    if start < oldest {
        log::warn!(
            "{} -> start {} is older than Okta's 90-day System Log retention; starting at {} instead.",
            p.label,
            crate::time::format_seconds(start),
            crate::time::format_seconds(oldest)
        );
        start = oldest;
    }
    let mut c = LogsCursor::new(start);
    c.configured_start = p.service.start.map(crate::time::format_seconds);
    c
}

/// Fetching ahead stops once this much of taken pages waits for the commit in progress (a
/// System Log page of 1,000 events is about 2 MB, so one full page waits at most).
const AHEAD_BYTES: usize = 1 << 20;

/// The URL a cycle asks for next, after `cursor`. A stored next link made with another
/// `filter` than the configured one is not followed: the pull goes on from the cursor's
/// `last_timestamp` (its uuids dropping what was taken at it) with the configured filter.
fn next_url(p: &Puller, cursor: &LogsCursor) -> String {
    if cursor.next_link.is_empty() {
        return since_url(p, &cursor.initial_start_time_in_utc);
    }
    let stored = cursor.configured_filter.as_deref();
    if stored != p.service.filter.as_deref() {
        let since = if cursor.last_timestamp.is_empty() {
            &cursor.initial_start_time_in_utc
        } else {
            &cursor.last_timestamp
        };
        let url = since_url(p, since);
        log::info!(
            "{} -> The System Log filter changed (was {:?}, now {:?}): going on from {since} with the new one: {url}",
            p.label,
            stored.unwrap_or_default(),
            p.service.filter.as_deref().unwrap_or("")
        );
        return url;
    }
    cursor.next_link.clone()
}

/// The first page from `since` (RFC 3339; now if it does not parse), with the configured
/// `filter`.
fn since_url(p: &Puller, since: &str) -> String {
    let filter = p.service.filter.as_deref().map_or_else(String::new, |f| {
        format!("&filter={}", super::link::percent_encode(f))
    });
    format!(
        "{}/api/v1/logs?since={}&limit={}&sortOrder=ASCENDING{filter}",
        p.client.url().base(),
        crate::time::format_millis(crate::time::parse_rfc3339(since).unwrap_or(SystemTime::now())),
        page_limit(p)
    )
}

/// What a cycle waits for: a page fetched, or a commit done.
enum Step {
    Fetched(String, Got, u64),
    Committed(Result<LogsCursor, Halt>),
}

/// One pull cycle: pages until an empty one (or an error, or shutdown).
///
/// Fetching, checking and committing overlap. Once a page is taken (checked, split, duplicates
/// dropped), the next one is requested; pages taken while a commit is in progress wait (up to
/// [`AHEAD_BYTES`]) and then go to the spool together, as one frame with the cursor after the
/// last of them: one `fdatasync` for them all (group commit). The cursor the caller holds
/// changes only when a commit is durable, and commits are issued one after another, so the
/// order events, cursor, visibility is unchanged. A page taken when the cycle ends (a rejected
/// page, an error, shutdown) is still committed; one in flight is dropped and asked for again.
pub(crate) async fn cycle(
    p: &Puller,
    cursor: &mut LogsCursor,
    shutdown: &Shutdown,
) -> Result<CycleEnd, Halt> {
    let end = take_pages(p, cursor, shutdown).await?;
    if matches!(end, CycleEnd::UpToDate | CycleEnd::Unavailable) {
        // Caught up, or waiting a period: the page buffers are not kept meanwhile. After
        // `take_pages` has returned, so that the pages it held are back in the pool first.
        super::body::release_spare_bodies();
    }
    Ok(end)
}

/// The cycle's pages, fetched, checked and committed; how the cycle ended.
async fn take_pages(
    p: &Puller,
    cursor: &mut LogsCursor,
    shutdown: &Shutdown,
) -> Result<CycleEnd, Halt> {
    type Flight<'f, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'f>>;
    let started = Instant::now();
    let id = pulling_id();
    let mut stats = Stats::default();
    // The cursor after the last page taken: durable once the commits before it are.
    let mut taken = cursor.clone();
    // Pages taken and not yet committing; `dirty` if they change anything.
    let mut pending = Events::default();
    let mut dirty = false;
    let mut fetching: Option<Flight<'_, Step>> = None;
    let mut committing: Option<Flight<'_, Step>> = None;
    let mut end: Option<CycleEnd> = None;
    loop {
        if committing.is_none() && dirty {
            let events = std::mem::take(&mut pending);
            dirty = false;
            let after = taken.clone();
            let encoded = after.encode().map_err(Halt::cursor)?;
            let commit = p.commit(events, encoded);
            committing = Some(Box::pin(async move {
                Step::Committed(commit.await.map(|()| after))
            }));
        }
        // Nothing is fetched ahead while the spool refuses writes (a full disk): pulling
        // pauses with the data at Okta, as it does when the spool is full.
        let writable = committing.is_none() || !p.write_failing.load(Ordering::Relaxed);
        if end.is_none() && fetching.is_none() && pending.bytes() < AHEAD_BYTES && writable {
            let url = next_url(p, &taken);
            fetching = Some(Box::pin(async move {
                let mut s = Stats::default();
                let got = p.get(&url, shutdown, &mut s).await;
                Step::Fetched(url, got, s.requests)
            }));
        }
        let step = match (fetching.as_mut(), committing.as_mut()) {
            (None, None) => break,
            (Some(f), None) => f.await,
            (None, Some(c)) => c.await,
            (Some(f), Some(c)) => smol::future::or(f, c).await,
        };
        match step {
            Step::Committed(done) => {
                committing = None;
                *cursor = done?;
            }
            Step::Fetched(url, got, requests) => {
                fetching = None;
                stats.requests += requests;
                match got {
                    Got::Page(resp) => match take(p, &mut taken, &url, resp, &mut stats) {
                        Some(Taken {
                            events,
                            changed,
                            items,
                            caught_up,
                        }) => {
                            pending.extend(events);
                            dirty |= changed;
                            // An empty page, or a short one whose newest event is about as
                            // new as Okta's clock, ends the cycle: the rest comes next period
                            // from the stored next link. A short page deep in the past (Okta
                            // serves those in a backlog too) goes on at once.
                            if items == 0 || (items < page_limit(p) as usize && caught_up) {
                                end = Some(CycleEnd::UpToDate);
                            } else if shutdown.is_set() {
                                end = Some(CycleEnd::Shutdown);
                            }
                        }
                        None => end = Some(stats.failed()),
                    },
                    Got::Shutdown => end = Some(CycleEnd::Shutdown),
                    // The next link is not honoured (an imported one too old, say): go on
                    // from the newest time taken, its uuids dropping what was taken at it.
                    Got::InvalidCursor => {
                        let since = since_url(p, &taken.last_timestamp);
                        log::warn!(
                            "{} -> Going on from last_timestamp {} with its {} uuids instead: {since}",
                            p.label,
                            taken.last_timestamp,
                            taken.uuid_list.len()
                        );
                        taken.next_link = since;
                        dirty = true;
                    }
                    // A failure's progress counts the pages taken this cycle.
                    Got::Failed(CycleEnd::Failed { .. }) => end = Some(stats.failed()),
                    Got::Failed(e) => end = Some(e),
                    Got::Missing => end = Some(stats.failed()),
                }
            }
        }
    }
    let end = end.unwrap_or(CycleEnd::UpToDate);
    p.log_stats(&stats, started, id, &end);
    Ok(end)
}

/// How close to Okta's clock a page's newest event must be for a short page to mean that the
/// stream is caught up (events reach the System Log seconds after they are published).
pub const CAUGHT_UP: Duration = Duration::from_secs(60);

/// The `limit` the System Log's pages are asked with (the service's constant).
fn page_limit(p: &Puller) -> u32 {
    p.service.kind.page_limit().unwrap_or(1_000)
}

/// A page taken.
struct Taken {
    events: Events,
    /// Whether anything changed (events, or the cursor).
    changed: bool,
    items: usize,
    /// Whether its newest usable `published` is within [`CAUGHT_UP`] of the answer's `Date`
    /// (the local clock when Okta's is missing or far off).
    caught_up: bool,
}

/// Takes a fetched page: checks it, drops boundary duplicates, and moves `taken` past it;
/// `None` if the page was rejected (already logged).
fn take(
    p: &Puller,
    taken: &mut LogsCursor,
    url: &str,
    resp: super::client::Response,
    stats: &mut Stats,
) -> Option<Taken> {
    let now = SystemTime::now();
    let okta_now = crate::time::clamp_to_local(resp.date.unwrap_or(now), now).0;
    let mut newest: Option<SystemTime> = None;
    // The System Log's next link may equal the current one (polling): no loop check.
    let page = p.check_page(url, &resp)?;
    let items = page.items.len();
    let mut after = taken.clone();
    let mut lines: Vec<std::borrow::Cow<'_, str>> = Vec::with_capacity(items);
    let mut dups = 0;
    let mut left_out = vec![0u64; p.service.rules.len()];
    let latest = SystemTime::now() + crate::time::TRUSTED_SKEW;
    for item in &page.items {
        let m = page::meta(item);
        // A time that cannot be used (not RFC 3339, past year 9999, or ahead of the local
        // clock) moves no cursor; the event is still delivered byte for byte. Refusing the
        // page would stall the System Log for good.
        let published = m.published.filter(|t| *t <= latest);
        newest = newest.max(published);
        if published.is_none()
            && let Some(text) = m.published_text
        {
            log::warn!(
                "{} -> {PULL_302}: event {} has a published time that cannot be used ({}); it is delivered as sent, and its time moves no cursor.",
                p.label,
                crate::logging::escape_controls(m.uuid.unwrap_or("without uuid")),
                crate::logging::escape_controls(text)
            );
        }
        if after.observe(m.uuid, published) {
            dups += 1;
        } else if let Some(rule) = p.left_out(m.event_type, m.uuid) {
            // Never edited: sent whole or not at all; the cursor moves past it as usual.
            left_out[rule] += 1;
        } else {
            lines.push(page::one_line(item));
        }
    }
    if after.take_saturated() {
        log::warn!(
            "{} -> More events share the timestamp {} than the cursor keeps uuids of ({} uuids, {} bytes at most, none over {} bytes): the next link stays exact, but a fallback to last_timestamp may send some of them again.",
            p.label,
            after.last_timestamp,
            cursor::MAX_UUIDS,
            cursor::MAX_UUID_LIST_BYTES,
            cursor::MAX_UUID_BYTES
        );
    }
    after.next_link = page.next.unwrap_or_else(|| url.to_string());
    after.configured_filter = p.service.filter.clone();
    stats.received += items as u64;
    stats.duplicates += dups;
    stats.filtered += left_out.iter().sum::<u64>();
    p.count_left_out(&left_out);
    stats.pages += 1;
    let changed = !lines.is_empty() || after != *taken;
    if changed {
        stats.sent += lines.len() as u64;
    }
    log::debug!(
        "{} -> (Partial) Statistics for this pull cycle: {items} events on the page, {dups} duplicated, next link {}",
        p.label,
        after.next_link
    );
    *taken = after;
    let spans = Events::spans(&resp.body, lines);
    let caught_up = newest.is_some_and(|t| {
        okta_now
            .duration_since(t)
            .map_or(true, |behind| behind <= CAUGHT_UP)
    });
    Some(Taken {
        events: Events::new(resp.body, spans),
        changed,
        items,
        caught_up,
    })
}
