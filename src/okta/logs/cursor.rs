//! The System Log cursor: the seed collector's persistence record, stored in the spool frame
//! with the events it covers, and the duplicate filter it carries across page boundaries.
//! Beside the mode that advances it, and the only code that reads its fields.

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// The persistence record (same keys as the seed collector's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsCursor {
    /// Record format version.
    #[serde(rename = "@persistence_version")]
    pub version: u32,
    /// The `rel="next"` URL to request next; empty before the first page.
    pub next_link: String,
    /// The configured (or first-run) start, RFC 3339.
    pub initial_start_time_in_utc: String,
    /// The newest `published` seen, RFC 3339.
    pub last_timestamp: String,
    /// uuids of the events published at `last_timestamp`.
    pub uuid_list: Vec<String>,
    /// The configured `start` this cursor was made from, when one was configured (it differs
    /// from `initial_start_time_in_utc` when that was clamped to Okta's retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured_start: Option<String>,
    /// The configured `filter` `next_link` was asked with (`None`: none, or a cursor made
    /// before filters, or taken over from Devo: its link is followed as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured_filter: Option<String>,
    /// `last_timestamp` parsed, so that each event is not compared by parsing it again. Never
    /// stored, ignored by comparisons, and used only while `last_timestamp` is the text it was
    /// made from.
    #[serde(skip)]
    last: Parsed,
    /// Whether a uuid was not kept for the bound (see [`LogsCursor::remember`]). Never stored.
    #[serde(skip)]
    saturated: bool,
}

/// A timestamp and the text it was parsed from or formatted to.
#[derive(Debug, Clone, Default)]
struct Parsed(Option<(SystemTime, String)>);

impl PartialEq for Parsed {
    fn eq(&self, _: &Parsed) -> bool {
        true
    }
}

impl Eq for Parsed {}

impl LogsCursor {
    /// A cursor for a first run starting at `start`.
    pub fn new(start: SystemTime) -> LogsCursor {
        let s = crate::time::format_seconds(start);
        LogsCursor {
            version: 1,
            next_link: String::new(),
            initial_start_time_in_utc: s.clone(),
            last_timestamp: s,
            uuid_list: Vec::new(),
            configured_start: None,
            configured_filter: None,
            last: Parsed::default(),
            saturated: false,
        }
    }

    /// The start this cursor was made from, as configured.
    pub fn made_from(&self) -> &str {
        self.configured_start
            .as_deref()
            .unwrap_or(&self.initial_start_time_in_utc)
    }

    /// Decodes a stored record.
    pub fn decode(bytes: &[u8]) -> Result<LogsCursor, String> {
        let mut c: LogsCursor = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        // A stored list (an imported state, one from an older version) keeps the same bound.
        let list = std::mem::take(&mut c.uuid_list);
        for uuid in &list {
            c.remember(uuid);
        }
        Ok(c)
    }

    /// Encodes for storage. An error is never an empty cursor committed: the caller stops.
    ///
    /// # Errors
    /// If serde cannot encode the record.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(self).map_err(|e| format!("cannot encode the System Log cursor: {e}"))
    }

    /// Records an event and says whether it is a duplicate of one already taken: same uuid,
    /// published at the newest timestamp seen. Late events (published earlier) are never
    /// dropped, since polling returns them in persistence order.
    pub fn observe(&mut self, uuid: Option<&str>, published: Option<SystemTime>) -> bool {
        let (Some(uuid), Some(published)) = (uuid, published) else {
            return false;
        };
        let last = match &self.last.0 {
            Some((t, text)) if *text == self.last_timestamp => Some(*t),
            _ => crate::time::parse_rfc3339(&self.last_timestamp),
        };
        match last.map(|l| published.cmp(&l)) {
            Some(std::cmp::Ordering::Less) => false,
            Some(std::cmp::Ordering::Equal) => {
                if self.uuid_list.iter().any(|u| u == uuid) {
                    true
                } else {
                    self.remember(uuid);
                    false
                }
            }
            Some(std::cmp::Ordering::Greater) | None => {
                let text = crate::time::format_millis(published);
                // The text holds milliseconds: the cached time is what parsing it gives.
                let floored = published
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|d| std::time::UNIX_EPOCH + Duration::from_millis(d.as_millis() as u64));
                self.last = Parsed(floored.map(|t| (t, text.clone())));
                self.last_timestamp = text;
                self.uuid_list.clear();
                self.remember(uuid);
                false
            }
        }
    }

    /// Adds `uuid` to the list of those taken at `last_timestamp`, within the bound: past
    /// [`MAX_UUIDS`] uuids or [`MAX_UUID_LIST_BYTES`] bytes (or for a uuid longer than
    /// [`MAX_UUID_BYTES`], which no Okta uuid is) it is not kept, and `saturated` says so
    /// once. The cursor stays exact: the `next` link is the real cursor, the list only
    /// serves the `since` fallback, which may then send again an event it did not keep.
    fn remember(&mut self, uuid: &str) {
        let bytes: usize = self.uuid_list.iter().map(String::len).sum();
        if uuid.len() > MAX_UUID_BYTES
            || self.uuid_list.len() >= MAX_UUIDS
            || bytes + uuid.len() > MAX_UUID_LIST_BYTES
        {
            self.saturated = true;
            return;
        }
        self.uuid_list.push(uuid.to_string());
    }

    /// Whether a uuid was not kept since the last call (each saturation is reported once).
    pub fn take_saturated(&mut self) -> bool {
        std::mem::take(&mut self.saturated)
    }
}

/// The most uuids the cursor keeps for one timestamp (Okta's pages hold at most 1,000 events).
pub const MAX_UUIDS: usize = 1_000;
/// The most bytes of uuids the cursor keeps (1,000 Okta uuids are 36,000 bytes).
pub const MAX_UUID_LIST_BYTES: usize = 40_000;
/// The longest uuid kept (Okta's are 36 bytes).
pub const MAX_UUID_BYTES: usize = 64;

impl crate::okta::restore::Cursor for LogsCursor {
    fn decode(bytes: &[u8]) -> Result<LogsCursor, String> {
        LogsCursor::decode(bytes)
    }

    fn encode(&self) -> Result<Vec<u8>, String> {
        LogsCursor::encode(self)
    }

    fn describe(&self) -> String {
        format!(
            "next_link={:?}, initial_start_time_in_utc={}, last_timestamp={}",
            self.next_link, self.initial_start_time_in_utc, self.last_timestamp
        )
    }

    fn start_differs(&self, configured: Option<SystemTime>) -> Option<(String, String)> {
        let new = crate::time::format_seconds(configured?);
        (new != self.made_from()).then(|| (new, self.made_from().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    #[test]
    fn the_parsed_timestamp_kept_decides_as_parsing_the_text_would() {
        // Times with microseconds, repeated and late: a cursor that keeps the parsed time and
        // one decoded afresh before every event (nothing kept) must agree on every event.
        let mut rng = fastrand::Rng::with_seed(3);
        let base = parse_rfc3339("2024-01-01T00:00:00Z").unwrap();
        let mut kept = LogsCursor::new(base);
        let mut fresh = LogsCursor::new(base);
        for i in 0..5_000 {
            let t = base + Duration::from_micros(rng.u64(0..3_000) + i * 500);
            let uuid = format!("u{}", rng.u8(0..6));
            let a = kept.observe(Some(&uuid), Some(t));
            fresh = LogsCursor::decode(&fresh.encode().unwrap()).unwrap();
            let b = fresh.observe(Some(&uuid), Some(t));
            assert_eq!(a, b, "event {i} at {t:?}");
            assert_eq!(kept, fresh);
        }
    }

    #[test]
    fn duplicates_at_the_boundary_are_dropped_and_late_events_kept() {
        let t = |s: &str| parse_rfc3339(s);
        let mut c = LogsCursor::new(t("2024-01-01T00:00:00Z").unwrap());
        assert!(!c.observe(Some("a"), t("2024-01-01T00:00:01.000Z")));
        assert!(!c.observe(Some("b"), t("2024-01-01T00:00:01.000Z")));
        assert!(
            c.observe(Some("a"), t("2024-01-01T00:00:01.000Z")),
            "same uuid, same time"
        );
        assert!(
            !c.observe(Some("late"), t("2023-12-31T23:59:59.000Z")),
            "late event kept"
        );
        assert!(
            !c.observe(None, t("2024-01-01T00:00:01.000Z")),
            "no uuid: kept"
        );
        assert!(!c.observe(Some("c"), t("2024-01-01T00:00:02.000Z")));
        assert_eq!(c.uuid_list, vec!["c"]);
        assert_eq!(c.last_timestamp, "2024-01-01T00:00:02.000Z");
        let back = LogsCursor::decode(&c.encode().unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(
            String::from_utf8(c.encode().unwrap())
                .unwrap()
                .contains("\"@persistence_version\":1")
        );
    }
}
