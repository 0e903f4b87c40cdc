//! Splits an Okta list response into raw items without re-encoding them, and reads the few
//! top-level fields the pullers need from each (`uuid` and `published` of an event; `id` and
//! `lastUpdated` of an inventory object), in one strict pass over the page.

//!
//! `item.rs` is what a page yields, `scan.rs` the fast scanner; this file chooses between the
//! scanner and serde_json and reads the items' fields for the pullers.

mod item;
mod scan;

pub use item::{Item, PageError};

use item::{CLIENT_ID, EVENT_TYPE, ID, LAST_MEMBERSHIP_UPDATED, LAST_UPDATED, PUBLISHED, UUID};
use scan::Scan;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::time::SystemTime;

/// The items of a JSON array body, each exactly as sent.
///
/// One hand-written pass validates the whole body as strictly as serde_json (UTF-8, string
/// escapes, control characters, number syntax, nesting) while it splits the items and reads
/// their fields. Anything it does not accept goes to serde_json, which names the error (or,
/// should the two ever disagree on a valid page, splits it instead).
///
/// At most `max_items` items are taken (what Okta serves on one page of the endpoint): the
/// bookkeeping per item (about 170 bytes) would otherwise let a body of `{},{},…` within the
/// body cap take gigabytes.
pub fn split(body: &[u8], max_items: usize) -> Result<Vec<Item<'_>>, PageError> {
    match Scan::page(body, max_items) {
        Ok(items) => return Ok(items),
        Err(Some(e)) => return Err(e),
        Err(None) => {}
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'[') => {}
        Some(_) if serde_json::from_slice::<&RawValue>(body).is_ok() => {
            return Err(PageError::NotArray);
        }
        _ => {}
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    // Whether the cap stopped the parse is recorded beside it: decided on a flag, never on
    // serde's message text.
    let over = std::cell::Cell::new(false);
    let capped = Capped {
        max: max_items,
        over: &over,
    };
    let items = serde::de::DeserializeSeed::deserialize(capped, &mut de)
        .and_then(|items| de.end().map(|()| items))
        .map_err(|e| {
            if over.get() {
                PageError::TooMany(max_items)
            } else {
                PageError::NotJson(e.to_string())
            }
        })?;
    if let Some(i) = items.iter().position(|v| !v.get().starts_with('{')) {
        return Err(PageError::ItemNotObject(i));
    }
    Ok(items.into_iter().map(Item::from_serde).collect())
}

/// A JSON array of raw values, refused past its cap (`max`) before the next one is kept;
/// `over` says that the cap, not the JSON, ended the parse.
struct Capped<'f> {
    max: usize,
    over: &'f std::cell::Cell<bool>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Capped<'_> {
    type Value = Vec<&'de RawValue>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Capped<'_> {
    type Value = Vec<&'de RawValue>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<&'de RawValue>()? {
            if out.len() == self.max {
                self.over.set(true);
                return Err(serde::de::Error::custom("too many items"));
            }
            out.push(v);
        }
        Ok(out)
    }
}

/// The fields of an event that deduplication needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Meta<'a> {
    /// `uuid`, if present and a string.
    pub uuid: Option<&'a str>,
    /// `published`, if present and RFC 3339.
    pub published: Option<SystemTime>,
    /// `published` as sent, if it is a string.
    pub published_text: Option<&'a str>,
    /// `eventType`, if present and a string.
    pub event_type: Option<&'a str>,
}

/// Reads `uuid` and `published`; missing or odd values give `None`, never an error.
pub fn meta<'i>(item: &'i Item<'_>) -> Meta<'i> {
    let published_text = item.field(PUBLISHED);
    Meta {
        uuid: item.field(UUID),
        published: published_text.and_then(crate::time::parse_rfc3339),
        published_text,
        event_type: item.field(EVENT_TYPE),
    }
}

/// The fields of an inventory object that incremental pulls and change detection need.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// `id`, or `client_id` for OAuth clients (which have no `id`).
    pub id: Option<String>,
    /// The newest of `lastUpdated` and `lastMembershipUpdated` (groups), if any parses.
    pub updated: Option<SystemTime>,
}

/// Reads an object's id and update time; missing or odd values give `None`, never an error.
pub fn object_meta(item: &Item<'_>) -> ObjectMeta {
    ObjectMeta {
        id: item.field(ID).or(item.field(CLIENT_ID)).map(str::to_string),
        updated: [LAST_UPDATED, LAST_MEMBERSHIP_UPDATED]
            .into_iter()
            .filter_map(|k| item.field(k).and_then(crate::time::parse_rfc3339))
            .max(),
    }
}

/// The item as one line: unchanged unless it holds a raw CR or LF (only possible as
/// whitespace between tokens, since JSON strings escape them), which is then removed along
/// with the other whitespace between tokens. String contents are never touched.
pub fn one_line<'a>(item: &Item<'a>) -> Cow<'a, str> {
    // The split noted whether a CR or LF was skipped: most items are returned without
    // looking at their bytes again.
    if !item.multiline {
        return Cow::Borrowed(item.raw);
    }
    let mut out = String::with_capacity(item.raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in item.raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `published` (System Log), `observed` (an entitlement record) or `lastUpdated` (inventory)
/// of an event, if it has one (for the freshness figures: one event per frame or commit, never
/// each event).
pub fn event_time(e: &[u8]) -> Option<std::time::SystemTime> {
    #[derive(serde::Deserialize)]
    struct T {
        published: Option<String>,
        observed: Option<String>,
        #[serde(rename = "lastUpdated")]
        last_updated: Option<String>,
    }
    let t: T = serde_json::from_slice(e).ok()?;
    crate::time::parse_rfc3339(t.published.or(t.observed).or(t.last_updated)?.as_str())
}

/// [`event_time`] in Unix milliseconds.
pub fn event_time_ms(e: &[u8]) -> Option<u64> {
    event_time(e).map(|t| crate::time::unix_millis(t) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json alone makes of a body: the raw items, or an error.
    fn by_serde(body: &[u8]) -> Option<Vec<String>> {
        let items: Vec<&RawValue> = serde_json::from_slice(body).ok()?;
        items
            .iter()
            .all(|v| v.get().starts_with('{'))
            .then(|| items.iter().map(|v| v.get().to_string()).collect())
    }

    #[test]
    fn items_are_kept_byte_for_byte() {
        let body = r#"[ {"uuid":"a", "published":"2024-12-04T11:45:01.000Z","x":"\u00e9 é"} ,{"uuid":null}]"#.as_bytes();
        let items = split(body, 1000).unwrap();
        assert_eq!(
            items[0].raw(),
            r#"{"uuid":"a", "published":"2024-12-04T11:45:01.000Z","x":"\u00e9 é"}"#
        );
        let m = meta(&items[0]);
        assert_eq!(m.uuid, Some("a"));
        assert!(m.published.is_some());
        assert_eq!(meta(&items[1]), Meta::default());
    }

    #[test]
    fn bad_bodies_are_classified() {
        assert!(matches!(
            split(b"<html>oops</html>", 1000),
            Err(PageError::NotJson(_))
        ));
        assert!(matches!(
            split(b"[{\"a\":1},", 1000),
            Err(PageError::NotJson(_))
        ));
        assert!(matches!(
            split(br#"{"errorCode":"E0000009"}"#, 1000),
            Err(PageError::NotArray)
        ));
        assert!(matches!(
            split(br#"[{"a":1}, 5]"#, 1000),
            Err(PageError::ItemNotObject(1))
        ));
        assert!(matches!(
            split(b"[\"\xff\"]", 1000),
            Err(PageError::NotJson(_))
        ));
        assert_eq!(split(b"[]", 1000).unwrap().len(), 0);
        assert_eq!(split(b" \r\n[ ]\n", 1000).unwrap().len(), 0);
    }

    #[test]
    fn odd_field_types_do_not_hide_the_event() {
        let items = split(
            br#"[{"uuid":5,"published":"2024-12-04T11:45:01.000Z"}]"#,
            1000,
        )
        .unwrap();
        let m = meta(&items[0]);
        assert_eq!(m.uuid, None);
        assert!(m.published.is_some());
    }

    #[test]
    fn only_top_level_fields_count_and_escapes_are_decoded() {
        let body = br#"[{"actor":{"id":"inner","uuid":"inner"},"uu\u0069d":"a\/b","id":"x\"y",
            "lastUpdated":"2024-01-01T00:00:00.000Z","lastMembershipUpdated":"2024-02-01T00:00:00.000Z"},
            {"client_id":"c1","id":null}]"#;
        let items = split(body, 1000).unwrap();
        assert_eq!(meta(&items[0]).uuid, Some("a/b"));
        let o = object_meta(&items[0]);
        assert_eq!(o.id.as_deref(), Some("x\"y"));
        assert_eq!(
            o.updated,
            crate::time::parse_rfc3339("2024-02-01T00:00:00.000Z")
        );
        assert_eq!(object_meta(&items[1]).id.as_deref(), Some("c1"));
    }

    #[test]
    fn one_line_removes_only_whitespace_between_tokens() {
        let body = br#"[{"a":"x y"}]"#;
        assert_eq!(one_line(&split(body, 1000).unwrap()[0]), r#"{"a":"x y"}"#);
        let body = "[{\n  \"a\": \"x \\\" \\n y\",\r\n  \"b\": [1, 2]\n}\n]";
        let items = split(body.as_bytes(), 1000).unwrap();
        assert_eq!(one_line(&items[0]), r#"{"a":"x \" \n y","b":[1,2]}"#);
        assert!(matches!(one_line(&items[0]), Cow::Owned(_)));
    }

    #[test]
    fn a_page_over_its_item_cap_is_refused_on_both_paths_before_it_is_held() {
        let many = format!("[{}]", vec!["{}"; 1001].join(","));
        assert!(matches!(
            split(many.as_bytes(), 1000),
            Err(PageError::TooMany(1000))
        ));
        assert_eq!(split(many.as_bytes(), 1001).unwrap().len(), 1001);
        // Deeper than the fast path goes: serde_json's path has the same cap.
        let deep = format!("{}{}", "[".repeat(150), "]".repeat(150));
        let page = format!("[{{\"a\":{deep}}},{{}},{{}}]");
        assert!(matches!(
            split(page.as_bytes(), 2),
            Err(PageError::TooMany(2))
        ));
        assert_eq!(split(page.as_bytes(), 3).unwrap().len(), 3);
    }

    #[cfg(feature = "sim")]
    #[test]
    fn the_fast_path_takes_simulated_pages_and_agrees_with_serde() {
        let events: Vec<String> = (0..2_000)
            .map(|i| crate::sim::okta::event(1_700_000_000_000, i))
            .collect();
        let body = format!("[{}]", events.join(","));
        let Ok(fast) = Scan::page(body.as_bytes(), 10_000) else {
            panic!("the fast path takes a simulated page");
        };
        assert_eq!(fast.len(), events.len());
        for (item, event) in fast.iter().zip(&events) {
            assert_eq!(item.raw(), event);
            let slow = Item::from_serde(serde_json::from_str(event).unwrap());
            assert_eq!(item.fields, slow.fields);
            assert!(!item.multiline);
        }
    }

    #[test]
    fn the_fast_path_never_accepts_what_serde_refuses() {
        // Valid pages with every JSON construct, then thousands of random single-byte edits
        // and truncations: whatever the scanner accepts, serde_json must accept with the same
        // items and fields.
        let seeds = [
            r#"[{"a":[1,-2.5e+3,0,true,false,null,{"b":"\u00e9\n\"\\\/\b\f\r\t"}],"uuid":"u-1","published":"2024-12-04T11:45:01.000Z"},{}]"#,
            "[ {\"id\" : \"x\" , \"n\":[ [ ] , { } ] ,\r\n \"lastUpdated\":\"2024-01-01T00:00:00Z\"} ]",
            r#"[{"k":-0.0E-7,"s":"é ü 𝄞","e":""}]"#,
        ];
        let alphabet = b"{}[]\",:\\/ \n\t-+.0123456789eEtrufalsn\x01\x7fu\xc3\xa9";
        let mut rng = fastrand::Rng::with_seed(8);
        let (mut accepted, mut refused) = (0, 0);
        for seed in seeds {
            let seed = seed.as_bytes();
            for _ in 0..4_000 {
                let mut b = seed.to_vec();
                for _ in 0..rng.usize(1..3) {
                    let at = rng.usize(0..b.len());
                    match rng.u8(0..4) {
                        0 => drop(b.remove(at)),
                        1 => b.insert(at, alphabet[rng.usize(0..alphabet.len())]),
                        2 => b[at] = alphabet[rng.usize(0..alphabet.len())],
                        _ => b.truncate(at),
                    }
                    if b.is_empty() {
                        break;
                    }
                }
                let serde = by_serde(&b);
                match Scan::page(&b, 10_000).ok() {
                    Some(items) => {
                        accepted += 1;
                        let serde = serde.unwrap_or_else(|| {
                            panic!(
                                "accepted what serde refuses: {:?}",
                                String::from_utf8_lossy(&b)
                            )
                        });
                        let raws: Vec<&str> = items.iter().map(Item::raw).collect();
                        assert_eq!(raws, serde);
                    }
                    None => {
                        refused += 1;
                        // Refused pages take the slow path, which serde_json decides.
                        assert_eq!(split(&b, 1000).is_ok(), serde.is_some());
                    }
                }
            }
        }
        assert!(
            accepted > 500 && refused > 5_000,
            "{accepted} accepted, {refused} refused"
        );
    }

    #[test]
    fn nesting_deeper_than_the_fast_path_goes_to_serde() {
        let deep = |n: usize| format!("[{{\"a\":{}1{}}}]", "[".repeat(n), "]".repeat(n));
        assert!(Scan::page(deep(50).as_bytes(), 10).is_ok());
        assert!(Scan::page(deep(120).as_bytes(), 10).is_err());
        assert_eq!(
            split(deep(120).as_bytes(), 1000).is_ok(),
            by_serde(deep(120).as_bytes()).is_some()
        );
        // serde_json skips raw values without a depth limit: the slow path takes them too.
        assert!(split(deep(1_000).as_bytes(), 1000).is_ok());
    }
}
