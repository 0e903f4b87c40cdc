//! Splits an Okta list response into raw items without re-encoding them, and reads the few
//! top-level fields the pullers need from each (`uuid` and `published` of an event; `id` and
//! `lastUpdated` of an inventory object), in one strict pass over the page.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::time::SystemTime;

/// Why a page body was rejected.
#[derive(Debug, PartialEq, Eq)]
pub enum PageError {
    /// Not JSON, truncated JSON, or not UTF-8.
    NotJson(String),
    /// Valid JSON, but not an array.
    NotArray,
    /// The item at this index is not a JSON object.
    ItemNotObject(usize),
    /// More items than a page of this endpoint can hold.
    TooMany(usize),
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::NotJson(e) => write!(f, "the response body is not valid JSON ({e})"),
            PageError::NotArray => {
                f.write_str("the response body is JSON but not an array of events")
            }
            PageError::ItemNotObject(i) => {
                write!(f, "item {i} of the response is not a JSON object")
            }
            PageError::TooMany(max) => write!(
                f,
                "the page holds more than {max} items, more than Okta serves on a page of this endpoint"
            ),
        }
    }
}

/// The top-level string fields read from each item, in the order of [`Item`]'s `fields`.
const KEYS: [&str; 6] = [
    "uuid",
    "published",
    "id",
    "client_id",
    "lastUpdated",
    "lastMembershipUpdated",
];
const UUID: usize = 0;
const PUBLISHED: usize = 1;
const ID: usize = 2;
const CLIENT_ID: usize = 3;
const LAST_UPDATED: usize = 4;
const LAST_MEMBERSHIP_UPDATED: usize = 5;

/// One item of a page: its JSON exactly as sent, and the top-level fields of [`KEYS`] that hold
/// a string (a key given twice: the last one counts, as in most JSON parsers).
#[derive(Debug)]
pub struct Item<'a> {
    raw: &'a str,
    /// A raw CR or LF stands between two of its tokens.
    multiline: bool,
    fields: [Option<Cow<'a, str>>; KEYS.len()],
}

impl<'a> Item<'a> {
    /// The item's JSON exactly as sent.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    fn field(&self, k: usize) -> Option<&str> {
        self.fields[k].as_deref()
    }

    /// Reads the fields from an item that serde_json accepted (the slow path).
    fn from_serde(raw: &'a RawValue) -> Item<'a> {
        #[derive(Deserialize)]
        struct M<'a> {
            #[serde(borrow, default, deserialize_with = "lenient")]
            uuid: Option<Cow<'a, str>>,
            #[serde(borrow, default, deserialize_with = "lenient")]
            published: Option<Cow<'a, str>>,
            #[serde(borrow, default, deserialize_with = "lenient")]
            id: Option<Cow<'a, str>>,
            #[serde(borrow, default, deserialize_with = "lenient")]
            client_id: Option<Cow<'a, str>>,
            #[serde(borrow, default, rename = "lastUpdated", deserialize_with = "lenient")]
            last_updated: Option<Cow<'a, str>>,
            #[serde(
                borrow,
                default,
                rename = "lastMembershipUpdated",
                deserialize_with = "lenient"
            )]
            last_membership_updated: Option<Cow<'a, str>>,
        }
        let raw = raw.get();
        let fields = match serde_json::from_str::<M<'a>>(raw) {
            Ok(m) => [
                m.uuid,
                m.published,
                m.id,
                m.client_id,
                m.last_updated,
                m.last_membership_updated,
            ],
            Err(_) => Default::default(),
        };
        Item {
            raw,
            multiline: raw.contains('\n') || raw.contains('\r'),
            fields,
        }
    }
}

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
    let items = serde::de::DeserializeSeed::deserialize(Capped(max_items), &mut de)
        .and_then(|items| de.end().map(|()| items))
        .map_err(|e| match e.to_string() {
            m if m.starts_with(TOO_MANY) => PageError::TooMany(max_items),
            m => PageError::NotJson(m),
        })?;
    if let Some(i) = items.iter().position(|v| !v.get().starts_with('{')) {
        return Err(PageError::ItemNotObject(i));
    }
    Ok(items.into_iter().map(Item::from_serde).collect())
}

const TOO_MANY: &str = "too many items";

/// A JSON array of raw values, refused past its cap before the next one is kept.
struct Capped(usize);

impl<'de> serde::de::DeserializeSeed<'de> for Capped {
    type Value = Vec<&'de RawValue>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Capped {
    type Value = Vec<&'de RawValue>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<&'de RawValue>()? {
            if out.len() == self.0 {
                return Err(serde::de::Error::custom(TOO_MANY));
            }
            out.push(v);
        }
        Ok(out)
    }
}

/// Nesting allowed on the fast path (its recursion stays shallow); deeper pages go to
/// serde_json, which skips raw values without recursing.
const MAX_DEPTH: usize = 100;

/// Bytes that end a run of plain string content: `"`, `\` and the control characters.
const STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Where the first of the 8 bytes of `w` (little-endian) that is in [`STOP`] is, if any. The
/// classic "has a zero byte" and "has a byte less than n" word tricks: a borrow can set false
/// marks, but only above a true one, so the lowest mark is exact.
fn first_stop(w: u64) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let quote = w ^ (LO * u64::from(b'"'));
    let backslash = w ^ (LO * u64::from(b'\\'));
    let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let control = w.wrapping_sub(LO * 0x20) & !w & HI;
    let marks = zero(quote) | zero(backslash) | control;
    (marks != 0).then(|| marks.trailing_zeros() as usize / 8)
}

/// The one-pass scanner over a UTF-8 body.
struct Scan<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    /// A CR or LF was skipped as whitespace since the flag was last cleared.
    newline: bool,
}

impl<'a> Scan<'a> {
    /// The items of a page, or `None` for anything but a valid JSON array of objects.
    /// The page's items; `Err(None)` if the fast path cannot say (serde_json then names the
    /// problem), `Err(Some(TooMany))` past `max_items`.
    fn page(body: &'a [u8], max_items: usize) -> Result<Vec<Item<'a>>, Option<PageError>> {
        Scan::page_items(body, max_items)
            .ok_or(None)
            .and_then(|(items, over)| {
                if over {
                    Err(Some(PageError::TooMany(max_items)))
                } else {
                    Ok(items)
                }
            })
    }

    fn page_items(body: &'a [u8], max_items: usize) -> Option<(Vec<Item<'a>>, bool)> {
        let s = std::str::from_utf8(body).ok()?;
        let mut sc = Scan {
            s,
            b: body,
            i: 0,
            newline: false,
        };
        sc.ws();
        sc.eat(b'[')?;
        sc.ws();
        let mut items = Vec::new();
        if sc.eat(b']').is_none() {
            loop {
                if sc.peek()? != b'{' {
                    return None;
                }
                if items.len() == max_items {
                    return Some((items, true));
                }
                let start = sc.i;
                sc.newline = false;
                let mut fields = Default::default();
                sc.object(1, Some(&mut fields))?;
                items.push(Item {
                    raw: s.get(start..sc.i)?,
                    multiline: sc.newline,
                    fields,
                });
                if sc.next_member(b']')? {
                    break;
                }
            }
        }
        sc.ws();
        (sc.i == body.len()).then_some((items, false))
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// Skips JSON whitespace, noting a CR or LF.
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b' ' | b'\t' => {}
                b'\n' | b'\r' => self.newline = true,
                _ => return,
            }
            self.i += 1;
        }
    }

    /// A value starting at the current byte (no whitespace before it).
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(depth + 1, None),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        let b = self.b;
        let mut i = self.i;
        let digits = |mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => i = digits(i + 1),
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            let end = digits(i + 1);
            if end == i + 1 {
                return None;
            }
            i = end;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let end = digits(i);
            if end == i {
                return None;
            }
            i = end;
        }
        self.i = i;
        Some(())
    }

    /// A string starting at its opening quote: the range of its contents, and whether they
    /// hold an escape.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        let b = self.b;
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            loop {
                if let Some(chunk) = b.get(i..i + 8) {
                    let w = u64::from_le_bytes(chunk.try_into().ok()?);
                    match first_stop(w) {
                        Some(at) => {
                            i += at;
                            break;
                        }
                        None => i += 8,
                    }
                } else {
                    while b.get(i).is_some_and(|&c| !STOP[usize::from(c)]) {
                        i += 1;
                    }
                    break;
                }
            }
            match *b.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    return Some((start, i, escaped));
                }
                b'\\' => {
                    escaped = true;
                    match *b.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            if !b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            i += 6;
                        }
                        _ => return None,
                    }
                }
                // A raw control character: JSON strings must escape it.
                _ => return None,
            }
        }
    }

    /// The decoded string whose contents are at `start..end`.
    fn text(&self, start: usize, end: usize, escaped: bool) -> Option<Cow<'a, str>> {
        if escaped {
            serde_json::from_str::<String>(self.s.get(start - 1..end + 1)?)
                .ok()
                .map(Cow::Owned)
        } else {
            self.s.get(start..end).map(Cow::Borrowed)
        }
    }

    /// Enters the array or object at the current byte: whether it ends at once with `close`
    /// (`None` if it nests deeper than [`MAX_DEPTH`]). Inlined, as is [`Scan::next_member`]:
    /// they run for every array and object (without it the scan was 8% slower).
    #[inline(always)]
    fn open(&mut self, depth: usize, close: u8) -> Option<bool> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        Some(self.eat(close).is_some())
    }

    /// After a member of an array or object: whether `close` ended it (`false` after a comma,
    /// `None` for anything else).
    #[inline(always)]
    fn next_member(&mut self, close: u8) -> Option<bool> {
        self.ws();
        match self.bump()? {
            b',' => {
                self.ws();
                Some(false)
            }
            c if c == close => Some(true),
            _ => None,
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if self.open(depth, b']')? {
            return Some(());
        }
        loop {
            self.value(depth)?;
            if self.next_member(b']')? {
                return Some(());
            }
        }
    }

    /// An object starting at its `{`; with `fields`, its top-level string values of [`KEYS`]
    /// are read into them.
    fn object(
        &mut self,
        depth: usize,
        mut fields: Option<&mut [Option<Cow<'a, str>>; KEYS.len()]>,
    ) -> Option<()> {
        if self.open(depth, b'}')? {
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let (ks, ke, kesc) = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let slot = match fields {
                Some(_) => {
                    let key = self.text(ks, ke, kesc)?;
                    KEYS.iter().position(|k| *k == key)
                }
                None => None,
            };
            match (slot, fields.as_deref_mut()) {
                (Some(k), Some(f)) => {
                    f[k] = if self.peek()? == b'"' {
                        let (vs, ve, vesc) = self.string()?;
                        self.text(vs, ve, vesc)
                    } else {
                        self.value(depth)?;
                        None
                    };
                }
                _ => self.value(depth)?,
            }
            if self.next_member(b'}')? {
                return Some(());
            }
        }
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
}

/// Reads `uuid` and `published`; missing or odd values give `None`, never an error.
pub fn meta<'i>(item: &'i Item<'_>) -> Meta<'i> {
    let published_text = item.field(PUBLISHED);
    Meta {
        uuid: item.field(UUID),
        published: published_text.and_then(crate::time::parse_rfc3339),
        published_text,
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

/// A string field, or `None` if it holds anything else (a number, null, an object).
fn lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V<'a> {
        S(#[serde(borrow)] Cow<'a, str>),
        Other(serde::de::IgnoredAny),
    }
    Ok(match V::deserialize(d)? {
        V::S(s) => Some(s),
        V::Other(_) => None,
    })
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

/// `published` (System Log) or `lastUpdated` (inventory) of an event, if it has one (for the
/// freshness figures: one event per frame or commit, never each event).
pub fn event_time(e: &[u8]) -> Option<std::time::SystemTime> {
    #[derive(serde::Deserialize)]
    struct T {
        published: Option<String>,
        #[serde(rename = "lastUpdated")]
        last_updated: Option<String>,
    }
    let t: T = serde_json::from_slice(e).ok()?;
    crate::time::parse_rfc3339(t.published.or(t.last_updated)?.as_str())
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
