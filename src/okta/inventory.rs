//! The six inventory services. `users` and `groups` pull incrementally on a `lastUpdated`
//! watermark, one durable frame per page; `apps`, `idps`, `zones` and `clients` list
//! everything every period and commit the whole snapshot atomically with its cursor (a spool
//! transaction), emitting every object or only the changes.

use super::client::Response;
use super::link::percent_encode;
use super::pull::{CycleEnd, Events, Got, Halt, Puller, Stats, pulling_id};
use super::{PULL_302, page};
use crate::config::{Emit, ServiceKind};
use crate::shutdown::Shutdown;
use crate::time::{format_millis, parse_rfc3339};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// Page size asked of Okta (the maximum of users, apps, idps and clients; Okta's advice for
/// groups). Zones take their default.
pub const PAGE_LIMIT: u32 = 200;

/// How far behind Okta's clock an incremental watermark stays: Okta's user search is
/// eventually consistent, so objects updated just before a listing may show up only later.
/// Objects re-listed because of it are dropped by their `(id, lastUpdated)`.
const SETTLE: Duration = Duration::from_secs(60);

/// The cursor of `users` and `groups`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IncrementalCursor {
    #[serde(rename = "@persistence_version")]
    version: u32,
    /// The configured `start`, RFC 3339 (empty: everything).
    initial_start_time_in_utc: String,
    /// Lower bound (`ge`) of the next listing's update time; empty: list everything.
    watermark: String,
    /// The next page of the listing in progress; empty between listings.
    next_link: String,
    /// Okta's `Date` at the listing's first page.
    listing_started: String,
    /// The newest update time seen in the listing in progress.
    listing_max: String,
    /// id → update time of the objects already sent whose update time may be listed again.
    recent: BTreeMap<String, String>,
}

/// The cursor of the snapshot services.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotCursor {
    #[serde(rename = "@persistence_version")]
    version: u32,
    /// Snapshots committed so far.
    snapshots: u64,
    /// When the last snapshot was committed, RFC 3339.
    last_snapshot: String,
    /// id → content hash of every object of the last snapshot (only with `emit: changes`).
    #[serde(default)]
    hashes: BTreeMap<String, String>,
}

fn decode<T: for<'a> Deserialize<'a>>(p: &Puller) -> Option<T> {
    let label = &p.label;
    log::info!("{label} -> Reading persisted data");
    match p.spool.cursor().map(|b| serde_json::from_slice::<T>(&b)) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            log::error!("{label} -> The persisted state cannot be read ({e}); starting a new one.");
            None
        }
        None => {
            log::warn!(
                "{label} -> Persistence will be overridden due to the retrieved state is empty"
            );
            None
        }
    }
}

/// A cursor for storage; an error stops the service rather than commit an empty cursor.
fn encode<T: Serialize>(c: &T) -> Result<Vec<u8>, Halt> {
    serde_json::to_vec(c).map_err(|e| Halt::Fatal(format!("cannot encode the cursor: {e}")))
}

// ---------------------------------------------------------------------------------------------
// users and groups

/// Reads the cursor of `users` or `groups` from the spool, or writes a first one. A configured
/// `start` that differs from the stored one restarts the persistence, as for `logs`.
pub(crate) async fn restore_incremental(p: &Puller) -> Result<IncrementalCursor, Halt> {
    let start = p.service.start.map(format_millis).unwrap_or_default();
    if let Some(c) = decode::<IncrementalCursor>(p) {
        log::info!(
            "{} -> Data retrieved from the persistence: watermark={:?}, next_link={:?}, initial_start_time_in_utc={:?}",
            p.label,
            c.watermark,
            c.next_link,
            c.initial_start_time_in_utc
        );
        if start.is_empty() || start == c.initial_start_time_in_utc {
            return Ok(c);
        }
        log::warn!(
            "{} -> Persistence will be overridden due to the configured start ({start}) differs from the persisted initial_start_time_in_utc ({:?})",
            p.label,
            c.initial_start_time_in_utc
        );
    }
    let c = IncrementalCursor {
        version: 1,
        initial_start_time_in_utc: start.clone(),
        watermark: start,
        ..IncrementalCursor::default()
    };
    p.commit(Events::default(), encode(&c)?).await?;
    log::warn!("{} -> Persistence has been updated successfully", p.label);
    Ok(c)
}

/// The first URL of a listing: everything (DEPROVISIONED users included, which the plain
/// user list leaves out), or what changed since the watermark. Each query is one Okta
/// documents (`../shared/okta-api.md` §3.1; the simulator refuses any other, as Okta does):
fn first_url(p: &Puller, watermark: &str) -> String {
    let base = format!("{}{}", p.client.url().base(), p.service.kind.path());
    let limit = PAGE_LIMIT;
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
pub(crate) async fn incremental_cycle(
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
            // The listing starts again from the watermark.
            Got::InvalidCursor => {
                cursor.next_link.clear();
                break stats.failed();
            }
        };
        match take_incremental_page(p, cursor, &url, &resp, &mut stats).await? {
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
async fn take_incremental_page(
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
        // Kept only if a later listing can return it with the same update time.
        if max.is_some_and(|m| updated >= m.min(settled)) {
            c.recent.insert(obj_id, stamp);
        }
    }
    if let Some(m) = max {
        c.listing_max = format_millis(m);
    }
    let done = page.next.is_none();
    match page.next {
        Some(n) => c.next_link = n,
        None => {
            // The listing is complete: the next one starts at the watermark.
            // A watermark never passes the local clock: one stored ahead of it (a tampered
            // answer, a clock set back) is let go of.
            let now = SystemTime::now();
            let old = parse_rfc3339(&c.watermark).filter(|o| {
                let ok = *o <= now;
                if !ok {
                    log::warn!(
                        "{} -> {PULL_302}: the stored watermark {} is ahead of the local clock; it moves back to {}.",
                        p.label,
                        c.watermark,
                        format_millis(settled)
                    );
                }
                ok
            });
            let new = max.map_or(settled, |m| m.min(settled));
            let new = old.map_or(new, |o| o.max(new));
            c.watermark = format_millis(new);
            c.recent
                .retain(|_, t| parse_rfc3339(t).is_some_and(|t| t >= new));
            c.next_link.clear();
        }
    }
    stats.received += page.items.len() as u64;
    // A snapshot's pages are not progress (an unfinished one is taken again whole), these are.
    stats.pages += 1;
    if !lines.is_empty() || c != *cursor {
        let events: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        p.commit(Events::copied(&events), encode(&c)?).await?;
        stats.sent += events.len() as u64;
        *cursor = c;
    }
    Ok(Some(done))
}

// ---------------------------------------------------------------------------------------------
// apps, idps, zones and clients

/// Reads a snapshot service's cursor from the spool. A snapshot cut short by a crash was
/// discarded at recovery: it is simply taken again.
pub(crate) fn restore_snapshot(p: &Puller) -> SnapshotCursor {
    match decode::<SnapshotCursor>(p) {
        Some(c) => {
            log::info!(
                "{} -> Data retrieved from the persistence: snapshots={}, last_snapshot={:?}, objects tracked={}",
                p.label,
                c.snapshots,
                c.last_snapshot,
                c.hashes.len()
            );
            c
        }
        None => SnapshotCursor {
            version: 1,
            ..SnapshotCursor::default()
        },
    }
}

/// One whole listing, committed as one transaction when its last page is in; an unfinished
/// one is discarded.
pub(crate) async fn snapshot_cycle(
    p: &Puller,
    cursor: &mut SnapshotCursor,
    shutdown: &Shutdown,
) -> Result<CycleEnd, Halt> {
    let started = Instant::now();
    let id = pulling_id();
    let mut stats = Stats::default();
    let changes = p.service.emit == Emit::Changes;
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    let base = format!("{}{}", p.client.url().base(), p.service.kind.path());
    // listApplications, listIdentityProviders and listClients: limit max 200 (the SPEC's
    // `queryLimit`); listNetworkZones: no documented max, so its default (okta-api.md §3.1).
    let mut url = if p.service.kind == ServiceKind::Zones {
        base
    } else {
        format!("{base}?limit={PAGE_LIMIT}")
    };
    let end = loop {
        let resp = match p.get(&url, shutdown, &mut stats).await {
            Got::Page(r) => r,
            Got::Shutdown => break CycleEnd::Shutdown,
            Got::Failed(end) => break end,
            // The next cycle lists from the first page.
            Got::InvalidCursor => break stats.failed(),
        };
        let Some(page) = p.check_page(&url, &resp) else {
            break stats.failed();
        };
        stats.received += page.items.len() as u64;
        let mut lines: Vec<Cow<'_, str>> = Vec::with_capacity(page.items.len());
        for raw in &page.items {
            let line = page::one_line(raw);
            if changes && let Some(obj_id) = page::object_meta(raw).id {
                let h = format!("{:016x}", fnv1a(line.as_bytes()));
                let unchanged = cursor.hashes.get(&obj_id) == Some(&h);
                let repeated = hashes.insert(obj_id, h.clone()).is_some_and(|old| old == h);
                if unchanged || repeated {
                    stats.duplicates += 1;
                    continue;
                }
            }
            lines.push(line);
        }
        let mut events: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        match page.next {
            Some(next) => {
                p.stage(&events).await?;
                stats.sent += events.len() as u64;
                url = next;
                if shutdown.is_set() {
                    break CycleEnd::Shutdown;
                }
            }
            None => {
                let now = SystemTime::now();
                let mut deleted = Vec::new();
                if changes {
                    for gone in cursor.hashes.keys().filter(|k| !hashes.contains_key(*k)) {
                        deleted.push(deletion(p.service.kind, gone, now));
                    }
                }
                events.extend(deleted.iter().map(|d| d.as_bytes()));
                let next = SnapshotCursor {
                    version: 1,
                    snapshots: cursor.snapshots + 1,
                    last_snapshot: format_millis(now),
                    hashes: std::mem::take(&mut hashes),
                };
                p.commit(Events::copied(&events), encode(&next)?).await?;
                stats.sent += events.len() as u64;
                log::info!(
                    "{} -> Snapshot {} committed: {} objects listed, {} sent ({} deleted).",
                    p.label,
                    next.snapshots,
                    stats.received,
                    stats.sent,
                    deleted.len()
                );
                *cursor = next;
                break CycleEnd::UpToDate;
            }
        }
    };
    if !matches!(end, CycleEnd::UpToDate) {
        // Nothing of an unfinished snapshot was committed.
        p.abort().await?;
        stats.sent = 0;
    }
    p.log_stats(&stats, started, id, &end);
    Ok(end)
}

/// The record sent for an object that left the org since the last snapshot.
fn deletion(kind: ServiceKind, id: &str, detected: SystemTime) -> String {
    serde_json::json!({
        "id": id,
        "deleted": true,
        "service": kind.name(),
        "detectedAt": format_millis(detected),
    })
    .to_string()
}

/// FNV-1a, 64 bits: a content hash stable across versions and restarts.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_answers() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn deletion_records_name_the_object() {
        let d = deletion(ServiceKind::Apps, "0oa1", SystemTime::UNIX_EPOCH);
        assert_eq!(
            d,
            r#"{"deleted":true,"detectedAt":"1970-01-01T00:00:00.000Z","id":"0oa1","service":"apps"}"#
        );
    }
}
