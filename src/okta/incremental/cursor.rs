//! The cursor of `users` and `groups`: a `lastUpdated` watermark, the listing in progress
//! (its next link, when it started, the newest update seen) and the objects already sent that
//! a later listing may return again. Beside the mode that advances it.

use crate::okta::restore::Cursor;
use crate::time::{format_millis, parse_rfc3339};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The cursor of `users` and `groups`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IncrementalCursor {
    #[serde(rename = "@persistence_version")]
    pub(super) version: u32,
    /// The configured `start`, RFC 3339 (empty: everything).
    pub(super) initial_start_time_in_utc: String,
    /// Lower bound (`ge`) of the next listing's update time; empty: list everything.
    pub(super) watermark: String,
    /// The next page of the listing in progress; empty between listings.
    pub(super) next_link: String,
    /// Okta's `Date` at the listing's first page.
    pub(super) listing_started: String,
    /// The newest update time seen in the listing in progress.
    pub(super) listing_max: String,
    /// id → update time of the objects already sent whose update time may be listed again.
    pub(super) recent: BTreeMap<String, String>,
}

/// The most ids the cursor keeps of objects a later listing may return again (each is copied
/// into every frame's cursor, so the list is bounded against a hostile listing).
pub(crate) const MAX_RECENT: usize = 2_000;
/// The longest id kept (Okta's ids are 20 bytes).
pub(crate) const MAX_RECENT_ID_BYTES: usize = 64;

impl IncrementalCursor {
    /// Remembers that object `id` was sent with update time `stamp`, within the bound; false
    /// if it was not kept (past [`MAX_RECENT`] ids, or an id over [`MAX_RECENT_ID_BYTES`]):
    /// a later listing may then send it again, never lose it.
    pub(super) fn remember(&mut self, id: String, stamp: String) -> bool {
        if id.len() > MAX_RECENT_ID_BYTES
            || (self.recent.len() >= MAX_RECENT && !self.recent.contains_key(&id))
        {
            return false;
        }
        self.recent.insert(id, stamp);
        true
    }

    /// A first cursor, from the configured start (RFC 3339 with milliseconds; empty: list
    /// everything).
    pub(super) fn new(start: String) -> IncrementalCursor {
        IncrementalCursor {
            version: 1,
            initial_start_time_in_utc: start.clone(),
            watermark: start,
            ..IncrementalCursor::default()
        }
    }

    /// The listing is complete: the watermark moves up to the newest update time seen
    /// (`max`), but not past `settled` (the listing's start on Okta's clock, less
    /// the mode's `SETTLE`),
    /// and never back; the objects it no longer covers are forgotten. A stored watermark ahead
    /// of `now` (a tampered answer, a clock set back) is let go of: returns true then.
    pub(super) fn finish_listing(
        &mut self,
        max: Option<SystemTime>,
        settled: SystemTime,
        now: SystemTime,
    ) -> bool {
        let stored = parse_rfc3339(&self.watermark);
        let ahead = stored.is_some_and(|o| o > now);
        let old = stored.filter(|_| !ahead);
        let new = max.map_or(settled, |m| m.min(settled));
        let new = old.map_or(new, |o| o.max(new));
        self.watermark = format_millis(new);
        self.recent
            .retain(|_, t| parse_rfc3339(t).is_some_and(|t| t >= new));
        self.next_link.clear();
        ahead
    }
}

impl Cursor for IncrementalCursor {
    fn decode(bytes: &[u8]) -> Result<IncrementalCursor, String> {
        crate::okta::restore::from_json(bytes)
    }

    fn encode(&self) -> Result<Vec<u8>, String> {
        crate::okta::restore::to_json(self)
    }

    fn describe(&self) -> String {
        format!(
            "watermark={:?}, next_link={:?}, initial_start_time_in_utc={:?}",
            self.watermark, self.next_link, self.initial_start_time_in_utc
        )
    }

    fn start_differs(&self, configured: Option<SystemTime>) -> Option<(String, String)> {
        let start = format_millis(configured?);
        (start != self.initial_start_time_in_utc)
            .then(|| (start, format!("{:?}", self.initial_start_time_in_utc)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    fn with(watermark: SystemTime, recent: &[(&str, SystemTime)]) -> IncrementalCursor {
        let mut c = IncrementalCursor::new(format_millis(watermark));
        c.next_link = "https://acme.okta.com/api/v1/users?after=x".into();
        for (id, t) in recent {
            c.recent.insert((*id).into(), format_millis(*t));
        }
        c
    }

    #[test]
    fn the_recent_set_stops_at_its_bound_and_says_so() {
        let mut c = with(at(0), &[]);
        for i in 0..MAX_RECENT {
            assert!(c.remember(format!("00u{i:017}"), format_millis(at(1))));
        }
        assert!(!c.remember("00u-one-too-many".into(), format_millis(at(1))));
        assert_eq!(c.recent.len(), MAX_RECENT);
        // One already kept is updated, not refused; a hostile id is never kept.
        assert!(c.remember(format!("00u{:017}", 5), format_millis(at(2))));
        let mut d = with(at(0), &[]);
        assert!(!d.remember("x".repeat(MAX_RECENT_ID_BYTES + 1), format_millis(at(1))));
        assert!(d.recent.is_empty());
        // The encoded cursor stays small: 2,000 ids of 20 bytes and their times.
        assert!(c.encode().unwrap().len() < 120_000);
    }

    #[test]
    fn the_watermark_moves_to_the_newest_update_but_not_past_the_settled_time() {
        let mut c = with(at(0), &[]);
        assert!(!c.finish_listing(Some(at(50)), at(100), at(200)));
        assert_eq!(c.watermark, format_millis(at(50)));
        assert!(
            c.next_link.is_empty(),
            "the next listing starts at the watermark"
        );
        // Updates newer than the settled time: the watermark stops there.
        c.finish_listing(Some(at(500)), at(300), at(400));
        assert_eq!(c.watermark, format_millis(at(300)));
        // Nothing listed: up to the settled time.
        c.finish_listing(None, at(350), at(450));
        assert_eq!(c.watermark, format_millis(at(350)));
    }

    #[test]
    fn the_watermark_never_moves_back_unless_it_is_ahead_of_the_clock() {
        let mut c = with(at(100), &[]);
        assert!(!c.finish_listing(Some(at(10)), at(20), at(200)));
        assert_eq!(c.watermark, format_millis(at(100)), "never back");
        let mut tampered = with(at(10_000), &[]);
        assert!(tampered.finish_listing(Some(at(10)), at(20), at(200)));
        assert_eq!(tampered.watermark, format_millis(at(10)), "let go of");
    }

    #[test]
    fn objects_below_the_new_watermark_are_forgotten() {
        let mut c = with(at(0), &[("old", at(5)), ("edge", at(50)), ("new", at(60))]);
        c.finish_listing(Some(at(60)), at(50), at(100));
        let kept: Vec<&str> = c.recent.keys().map(String::as_str).collect();
        assert_eq!(kept, ["edge", "new"]);
    }

    #[test]
    fn a_different_start_restarts_and_the_same_one_does_not() {
        let c = IncrementalCursor::new(format_millis(at(0)));
        assert_eq!(c.start_differs(Some(at(0))), None);
        assert_eq!(c.start_differs(None), None);
        let (new, old) = c.start_differs(Some(at(1))).unwrap();
        assert_eq!(new, format_millis(at(1)));
        assert_eq!(old, format!("{:?}", format_millis(at(0))));
        let back = IncrementalCursor::decode(&c.encode().unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
