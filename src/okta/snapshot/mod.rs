//! The snapshot mode of `apps`, `idps`, `zones` and `clients`: everything listed every period
//! and committed as one spool transaction with its cursor (all or nothing), emitting every
//! object or, with `emit: changes`, only new or changed ones and a record for each one gone.

mod cursor;

pub(crate) use cursor::SnapshotCursor;

use cursor::Listing;

use super::body::Events;
use super::page;
use super::puller::{CycleEnd, Got, Halt, Puller, Stats, pulling_id};
use super::restore::{self, Cursor};
use crate::config::{Emit, ServiceKind};
use crate::errors::ErrorId::Pull302 as PULL_302;
use crate::shutdown::Shutdown;
use crate::time::format_millis;
use std::borrow::Cow;
use std::time::{Instant, SystemTime};

/// Reads a snapshot service's cursor from the spool. A snapshot cut short by a crash was
/// discarded at recovery: it is simply taken again.
pub(crate) async fn restore(p: &Puller) -> Result<SnapshotCursor, Halt> {
    let found = restore::read::<SnapshotCursor>(p);
    restore::restore(p, found, SnapshotCursor::new, false).await
}

/// One whole listing, committed as one transaction when its last page is in; an unfinished
/// one is discarded.
pub(crate) async fn cycle(
    p: &Puller,
    cursor: &mut SnapshotCursor,
    shutdown: &Shutdown,
) -> Result<CycleEnd, Halt> {
    let started = Instant::now();
    let id = pulling_id();
    let mut stats = Stats::default();
    let changes = p.service.emit == Emit::Changes;
    let mut listing = Listing::default();
    let base = format!("{}{}", p.client.url().base(), p.service.kind.path());
    // listApplications, listIdentityProviders and listClients: limit max 200 (the SPEC's
    // `queryLimit`); listNetworkZones: no documented max, so its default (okta-api.md §3.1).
    let mut url = match p.service.kind.page_limit() {
        None => base,
        Some(limit) => format!("{base}?limit={limit}"),
    };
    // Pages of this listing (not progress for the backoff: an unfinished one is taken again).
    let mut pages = 0u64;
    let end = loop {
        let resp = match p.get(&url, shutdown, &mut stats).await {
            Got::Page(r) => r,
            Got::Shutdown => break CycleEnd::Shutdown,
            Got::Failed(end) => break end,
            Got::Missing => break stats.failed(),
            // The next cycle lists from the first page.
            Got::InvalidCursor => break stats.failed(),
        };
        let Some(page) = p.check_page(&url, &resp) else {
            break stats.failed();
        };
        stats.received += page.items.len() as u64;
        pages += 1;
        let mut lines: Vec<Cow<'_, str>> = Vec::with_capacity(page.items.len());
        for raw in &page.items {
            let line = page::one_line(raw);
            if changes
                && let Some(obj_id) = page::object_meta(raw).id
                && !listing.changed(cursor, obj_id, line.as_bytes())
            {
                stats.duplicates += 1;
                continue;
            }
            lines.push(line);
        }
        let mut events: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        // The listing's pending frames count against the spool's bound: one that cannot fit
        // is rolled back (below) instead of filling the disk, and the other tables go on.
        let more = events.iter().map(|e| e.len() as u64).sum();
        if let Err(why) = p.listing_fits(more) {
            log::error!(
                "{} -> {PULL_302}: the listing is rolled back after {} pages ({} objects): {why}. Nothing of it is sent; it is tried again in {} seconds (raise globals.spool.max_bytes_per_table, or free disk space).",
                p.label,
                pages,
                stats.received,
                p.service.period.as_secs()
            );
            break CycleEnd::Unavailable;
        }
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
                    for gone in listing.gone(cursor) {
                        deleted.push(deletion(p.service.kind, gone, now));
                    }
                }
                events.extend(deleted.iter().map(|d| d.as_bytes()));
                let next = std::mem::take(&mut listing).into_cursor(cursor, now);
                p.commit(
                    Events::copied(&events),
                    next.encode().map_err(Halt::cursor)?,
                )
                .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_records_name_the_object() {
        let d = deletion(ServiceKind::Apps, "0oa1", SystemTime::UNIX_EPOCH);
        assert_eq!(
            d,
            r#"{"deleted":true,"detectedAt":"1970-01-01T00:00:00.000Z","id":"0oa1","service":"apps"}"#
        );
    }
}
