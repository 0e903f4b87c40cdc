//! The System Log puller: follows `rel="next"` links from `/api/v1/logs`, drops boundary
//! duplicates, and appends each page's events with the cursor after them to the spool
//! (durable before the next request).

use super::cursor::LogsCursor;
use super::page;
use super::pull::{CycleEnd, Events, Got, Halt, Puller, Stats, pulling_id};
use crate::shutdown::Shutdown;
use std::time::{Duration, Instant, SystemTime};

/// Page size asked of Okta (its maximum for the System Log).
pub const PAGE_LIMIT: u32 = 1000;
/// Okta keeps 90 days of System Log; an older `since` is clamped to this.
const RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// Reads the cursor from the spool, or writes a first one from `start`. A configured `start`
/// that differs from the one the stored cursor was made from restarts the persistence (the
/// seed's "Restart the persistence"): a new cursor from the new start; events already in the
/// spool are still delivered.
pub(crate) async fn restore(p: &Puller) -> Result<LogsCursor, Halt> {
    let label = &p.label;
    log::info!("{label} -> Reading persisted data");
    let configured = p.service.start.map(crate::time::format_seconds);
    match p.spool.cursor().map(|b| LogsCursor::decode(&b)) {
        Some(Ok(c)) => {
            log::info!(
                "{label} -> Data retrieved from the persistence: next_link={:?}, initial_start_time_in_utc={}, last_timestamp={}",
                c.next_link,
                c.initial_start_time_in_utc,
                c.last_timestamp
            );
            match &configured {
                Some(new) if *new != c.made_from() => {
                    log::warn!(
                        "{label} -> Persistence will be overridden due to the configured start ({new}) differs from the persisted initial_start_time_in_utc ({})",
                        c.made_from()
                    );
                }
                _ => return Ok(c),
            }
        }
        Some(Err(e)) => {
            log::error!("{label} -> The persisted state cannot be read ({e}); starting a new one.");
        }
        None => {
            log::warn!(
                "{label} -> Persistence will be overridden due to the retrieved state is empty"
            );
        }
    }
    let now = SystemTime::now();
    let oldest = now.checked_sub(RETENTION).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut start = p.service.start.unwrap_or(now);
    if start < oldest {
        log::warn!(
            "{label} -> start {} is older than Okta's 90-day System Log retention; starting at {} instead.",
            crate::time::format_seconds(start),
            crate::time::format_seconds(oldest)
        );
        start = oldest;
    }
    let mut c = LogsCursor::new(start);
    c.configured_start = configured;
    p.commit(Events::default(), c.encode()).await?;
    log::warn!("{label} -> Persistence has been updated successfully");
    Ok(c)
}

/// One pull cycle: pages until an empty one (or an error, or shutdown).
///
/// Once a page has been checked and split, the next one is requested while this one is made
/// durable: the request overlaps the spool's `fdatasync`. Nothing of the next page counts until
/// the commit before it is durable, so the order events, cursor, visibility is unchanged; a
/// page fetched ahead when the commit fails, or when shutdown comes, is dropped and asked for
/// again. A page that fails its checks is not fetched ahead of.
pub(crate) async fn cycle(
    p: &Puller,
    cursor: &mut LogsCursor,
    shutdown: &Shutdown,
) -> Result<CycleEnd, Halt> {
    let started = Instant::now();
    let id = pulling_id();
    let mut stats = Stats::default();
    let mut fetched: Option<(String, Got)> = None;
    let end = loop {
        let url = if cursor.next_link.is_empty() {
            format!(
                "{}/api/v1/logs?since={}&limit={PAGE_LIMIT}&sortOrder=ASCENDING",
                p.client.url().base(),
                crate::time::format_millis(
                    crate::time::parse_rfc3339(&cursor.initial_start_time_in_utc)
                        .unwrap_or(SystemTime::now())
                )
            )
        } else {
            cursor.next_link.clone()
        };
        let got = match fetched.take() {
            Some((for_url, got)) if for_url == url => got,
            _ => p.get(&url, shutdown, &mut stats).await,
        };
        let resp = match got {
            Got::Page(r) => r,
            Got::Shutdown => break CycleEnd::Shutdown,
            Got::Failed(end) => break end,
        };
        // The System Log's next link may equal the current one (polling): no loop check.
        let Some(page) = p.check_page(&url, &resp) else {
            break stats.failed();
        };
        let items = page.items.len();
        let Take {
            lines,
            cursor: new_cursor,
            changed,
        } = take_page(p, cursor, &url, page, &mut stats);
        // After a non-empty page the cycle goes on at the next link: fetch it meanwhile.
        let ahead = (items > 0).then(|| new_cursor.next_link.clone());
        let spans = Events::spans(&resp.body, lines);
        let events = Events::new(resp.body, spans);
        let commit = async {
            if changed {
                p.commit(events, new_cursor.encode()).await?;
            }
            Ok::<_, Halt>(new_cursor)
        };
        match ahead {
            Some(next) => {
                let (got, done) =
                    smol::future::zip(p.get(&next, shutdown, &mut stats), commit).await;
                *cursor = done?;
                fetched = Some((next, got));
            }
            None => *cursor = commit.await?,
        }
        if items == 0 {
            break CycleEnd::UpToDate;
        }
        if shutdown.is_set() {
            break CycleEnd::Shutdown;
        }
    };
    p.log_stats(&stats, started, id, &end);
    Ok(end)
}

/// A page taken: the events to append, and the cursor after them.
struct Take<'a> {
    lines: Vec<std::borrow::Cow<'a, str>>,
    cursor: LogsCursor,
    /// Whether anything changed (events, or the cursor).
    changed: bool,
}

/// Takes one checked page: drops boundary duplicates and computes the cursor after it.
fn take_page<'a>(
    p: &Puller,
    cursor: &LogsCursor,
    url: &str,
    page: super::pull::Page<'a>,
    stats: &mut Stats,
) -> Take<'a> {
    let mut new_cursor = cursor.clone();
    let mut lines: Vec<std::borrow::Cow<'a, str>> = Vec::with_capacity(page.items.len());
    let mut dups = 0;
    for item in &page.items {
        let m = page::meta(item);
        if new_cursor.observe(m.uuid, m.published) {
            dups += 1;
        } else {
            lines.push(page::one_line(item));
        }
    }
    new_cursor.next_link = page.next.unwrap_or_else(|| url.to_string());
    stats.received += page.items.len() as u64;
    stats.duplicates += dups;
    stats.pages += 1;
    let changed = !lines.is_empty() || new_cursor != *cursor;
    if changed {
        stats.sent += lines.len() as u64;
    }
    log::debug!(
        "{} -> (Partial) Statistics for this pull cycle: {} events on the page, {dups} duplicated, next link {}",
        p.label,
        page.items.len(),
        new_cursor.next_link
    );
    Take {
        lines,
        cursor: new_cursor,
        changed,
    }
}
