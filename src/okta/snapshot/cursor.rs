//! The cursor of the snapshot services: how many snapshots were committed, when the last one
//! was, and (with `emit: changes`) each object's content hash in it; and the comparison of a
//! listing in progress with it. Beside the mode that advances it.

use crate::okta::restore::Cursor;
use crate::time::format_millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The cursor of the snapshot services.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotCursor {
    #[serde(rename = "@persistence_version")]
    pub(super) version: u32,
    /// Snapshots committed so far.
    pub(super) snapshots: u64,
    /// When the last snapshot was committed, RFC 3339.
    pub(super) last_snapshot: String,
    /// id → content hash of every object of the last snapshot (only with `emit: changes`).
    #[serde(default)]
    pub(super) hashes: BTreeMap<String, String>,
}

impl SnapshotCursor {
    /// The cursor before any snapshot.
    pub(super) fn new() -> SnapshotCursor {
        SnapshotCursor {
            version: 1,
            ..SnapshotCursor::default()
        }
    }
}

impl Cursor for SnapshotCursor {
    fn decode(bytes: &[u8]) -> Result<SnapshotCursor, String> {
        crate::okta::restore::from_json(bytes)
    }

    fn encode(&self) -> Result<Vec<u8>, String> {
        crate::okta::restore::to_json(self)
    }

    fn describe(&self) -> String {
        format!(
            "snapshots={}, last_snapshot={:?}, objects tracked={}",
            self.snapshots,
            self.last_snapshot,
            self.hashes.len()
        )
    }

    fn start_differs(&self, _: Option<SystemTime>) -> Option<(String, String)> {
        None
    }
}

/// A listing in progress, compared with the last snapshot (`emit: changes`).
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// id → content hash of every object listed so far.
    hashes: BTreeMap<String, String>,
}

impl Listing {
    /// Whether object `id`, whose line is `line`, is sent: not when it is unchanged since
    /// `last`, nor when this listing already had it with the same content (a page boundary
    /// that moved while listing).
    pub(super) fn changed(&mut self, last: &SnapshotCursor, id: String, line: &[u8]) -> bool {
        let h = format!("{:016x}", crate::okta::hash::fnv1a(line));
        let unchanged = last.hashes.get(&id) == Some(&h);
        let repeated = self
            .hashes
            .insert(id, h.clone())
            .is_some_and(|old| old == h);
        !(unchanged || repeated)
    }

    /// The objects of `last` this listing did not have: they left the org.
    pub(super) fn gone<'a>(&'a self, last: &'a SnapshotCursor) -> impl Iterator<Item = &'a str> {
        last.hashes
            .keys()
            .filter(|k| !self.hashes.contains_key(*k))
            .map(String::as_str)
    }

    /// The cursor once this listing is committed at `now`, as the snapshot after `last`.
    pub(super) fn into_cursor(self, last: &SnapshotCursor, now: SystemTime) -> SnapshotCursor {
        SnapshotCursor {
            version: 1,
            snapshots: last.snapshots + 1,
            last_snapshot: format_millis(now),
            hashes: self.hashes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_sends_what_is_new_or_changed_and_names_what_is_gone() {
        let mut first = Listing::default();
        let last = SnapshotCursor::new();
        assert!(first.changed(&last, "a".into(), b"{\"id\":\"a\",\"v\":1}"));
        assert!(first.changed(&last, "b".into(), b"{\"id\":\"b\",\"v\":1}"));
        assert!(
            !first.changed(&last, "b".into(), b"{\"id\":\"b\",\"v\":1}"),
            "listed twice in one snapshot, the same: once"
        );
        let last = first.into_cursor(&last, SystemTime::UNIX_EPOCH);
        assert_eq!(last.snapshots, 1);
        let mut second = Listing::default();
        assert!(
            !second.changed(&last, "a".into(), b"{\"id\":\"a\",\"v\":1}"),
            "unchanged"
        );
        assert!(
            second.changed(&last, "c".into(), b"{\"id\":\"c\",\"v\":1}"),
            "new"
        );
        assert_eq!(second.gone(&last).collect::<Vec<_>>(), ["b"]);
        let mut third = Listing::default();
        assert!(
            third.changed(&last, "a".into(), b"{\"id\":\"a\",\"v\":2}"),
            "changed"
        );
        let back = SnapshotCursor::decode(&last.encode().unwrap()).unwrap();
        assert_eq!(back, last);
        assert_eq!(back.start_differs(Some(SystemTime::now())), None);
    }
}
