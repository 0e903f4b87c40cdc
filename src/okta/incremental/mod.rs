//! The incremental mode of `users` and `groups`: a full listing first, then only what changed
//! since a `lastUpdated` watermark, one durable frame (the page's events and the cursor after
//! them) per page. Objects listed again with the same update time are dropped.

mod cursor;

pub(crate) use cursor::IncrementalCursor;
use cursor::{MAX_RECENT, MAX_RECENT_ID_BYTES};

use super::body::Events;
use super::client::Response;
use super::link::percent_encode;
use super::page;
use super::puller::{CycleEnd, Got, Halt, Puller, Stats, pulling_id};
use super::restore;
use crate::config::ServiceKind;
use crate::errors::ErrorId::Pull302 as PULL_302;
use crate::shutdown::Shutdown;
use crate::time::{format_millis, parse_rfc3339};
use std::borrow::Cow;
use std::time::{Duration, Instant, SystemTime};

/// How far behind Okta's clock an incremental watermark stays: Okta's user search is
/// eventually consistent, so objects updated just before a listing may show up only later.
/// Objects re-listed because of it are dropped by their `(id, lastUpdated)`.
pub(super) const SETTLE: Duration = Duration::from_secs(60);

/// Reads the cursor of `users` or `groups` from the spool, or writes a first one. A configured
/// `start` that differs from the stored one restarts the persistence, as for `logs`.
pub(crate) async fn restore(p: &Puller) -> Result<IncrementalCursor, Halt> {
    let found = restore::read::<IncrementalCursor>(p);
    let start = p.service.start.map(format_millis).unwrap_or_default();
    restore::restore(p, found, || IncrementalCursor::new(start), true).await
}

/// The first URL of a listing: everything (DEPROVISIONED users included, which the plain
/// user list leaves out), or what changed since the watermark. Each query is one Okta
/// documents (`../shared/okta-api.md` §3.1; the simulator refuses any other, as Okta does):
fn first_url(p: &Puller, watermark: &str) -> String {
    let base = format!("{}{}", p.client.url().base(), p.service.kind.path());
    let limit = p.service.kind.page_limit().unwrap_or(200);
    match (p.service.kind, watermark.is_empty()) {
        // listUsers: `search` includes DEPROVISIONED users ("Elastic uses search=status pr to
        // list everyone"); limit: default and max 200.
        (ServiceKind::Users, true) => format!(
            "{base}?search={}&limit={limit}",
            percent_encode("status pr")
        ),
        // listUsers: lastUpdated takes gt, ge, lt and le; `ge` because user times have second
        // precision (Elastic does the same and drops what it saw, as we do by (id, lastUpdated)).
        (ServiceKind::Users, false) => format!(
            "{base}?search={}&limit={limit}",
            percent_encode(&format!("lastUpdated ge \"{watermark}\""))
        ),
        // listGroups: max 10000; Okta advises 200 or less.
        (_, true) => format!("{base}?limit={limit}"),
        // listGroups: a `filter` on lastUpdated and lastMembershipUpdated takes eq, lt and gt
        // only (the SPEC's example: `lastUpdated gt "…" or lastMembershipUpdated gt "…"`);
        // `gt` misses nothing since the watermark trails Okta's clock by SETTLE.
        (_, false) => format!(
            "{base}?filter={}&limit={limit}",
            percent_encode(&format!(
                "lastUpdated gt \"{watermark}\" or lastMembershipUpdated gt \"{watermark}\""
            ))
        ),
    }
}

/// One listing (or the rest of one interrupted by a restart), one durable frame per page.
pub(crate) async fn cycle(
    p: &Puller,
    cursor: &mut IncrementalCursor,
    shutdown: &Shutdown,
) -> Result<CycleEnd, Halt> {
    let started = Instant::now();
    let id = pulling_id();
    let mut stats = Stats::default();
    let end = loop {
        let url = if cursor.next_link.is_empty() {
            first_url(p, &cursor.watermark)
        } else {
            cursor.next_link.clone()
        };
        let resp = match p.get(&url, shutdown, &mut stats).await {
            Got::Page(r) => r,
            Got::Shutdown => break CycleEnd::Shutdown,
            Got::Failed(end) => break end,
            Got::Missing => break stats.failed(),
            // The listing starts again from the watermark.
            Got::InvalidCursor => {
                cursor.next_link.clear();
                break stats.failed();
            }
        };
        match take_page(p, cursor, &url, &resp, &mut stats).await? {
            None => break stats.failed(),
            Some(true) => break CycleEnd::UpToDate,
            Some(false) if shutdown.is_set() => break CycleEnd::Shutdown,
            Some(false) => {}
        }
    };
    p.log_stats(&stats, started, id, &end);
    Ok(end)
}

/// Takes one page of a listing. Returns whether the listing is complete, or `None` if the
/// page was rejected.
async fn take_page(
    p: &Puller,
    cursor: &mut IncrementalCursor,
    url: &str,
    resp: &Response,
    stats: &mut Stats,
) -> Result<Option<bool>, Halt> {
    let Some(page) = p.check_page(url, resp) else {
        return Ok(None);
    };
    let mut c = cursor.clone();
    if c.next_link.is_empty() {
        let now = SystemTime::now();
        let date = resp.date.unwrap_or(now);
        let (date, believed) = crate::time::clamp_to_local(date, now);
        if !believed {
            log::warn!(
                "{} -> {PULL_302}: Okta's Date header ({}) is more than 10 minutes from the local clock; the listing is dated by the local clock instead (is the clock synchronised?).",
                p.label,
                resp.date.map(format_millis).unwrap_or_default()
            );
        }
        c.listing_started = format_millis(date);
        c.listing_max.clear();
    }
    let listing_started = parse_rfc3339(&c.listing_started).unwrap_or_else(SystemTime::now);
    let settled = listing_started
        .checked_sub(SETTLE)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut max = parse_rfc3339(&c.listing_max);
    let mut lines: Vec<Cow<'_, str>> = Vec::with_capacity(page.items.len());
    let mut saturated = false;
    for raw in &page.items {
        let m = page::object_meta(raw);
        let (Some(obj_id), Some(updated)) = (m.id, m.updated) else {
            lines.push(page::one_line(raw));
            continue;
        };
        let stamp = format_millis(updated);
        if c.recent.get(&obj_id) == Some(&stamp) {
            stats.duplicates += 1;
            continue;
        }
        lines.push(page::one_line(raw));
        max = Some(max.map_or(updated, |m| m.max(updated)));
        // Kept only if a later listing can return it with the same update time, and within
        // the bound (past it, a later listing may send the object again: never a loss).
        if max.is_some_and(|m| updated >= m.min(settled)) {
            saturated |= !c.remember(obj_id, stamp);
        }
    }
    if saturated {
        log::warn!(
            "{} -> More objects were updated at the listing's newest times than the cursor keeps ({MAX_RECENT} ids, none over {MAX_RECENT_ID_BYTES} bytes): the next listing may send some of them again.",
            p.label
        );
    }
    if let Some(m) = max {
        c.listing_max = format_millis(m);
    }
    let done = page.next.is_none();
    match page.next {
        Some(n) => c.next_link = n,
        None => {
            // The listing is complete: the next one starts at the watermark.
            if c.finish_listing(max, settled, SystemTime::now()) {
                log::warn!(
                    "{} -> {PULL_302}: the stored watermark {} is ahead of the local clock; it moves back to {}.",
                    p.label,
                    cursor.watermark,
                    format_millis(settled)
                );
            }
        }
    }
    stats.received += page.items.len() as u64;
    // A snapshot's pages are not progress (an unfinished one is taken again whole), these are.
    stats.pages += 1;
    if !lines.is_empty() || c != *cursor {
        let events: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        p.commit(
            Events::copied(&events),
            restore::Cursor::encode(&c).map_err(Halt::cursor)?,
        )
        .await?;
        stats.sent += events.len() as u64;
        *cursor = c;
    }
    Ok(Some(done))
}
