//! Splits an Okta list response into raw items without re-encoding them, and reads the few
//! fields the pullers need from each (`uuid` and `published` of an event; `id` and
//! `lastUpdated` of an inventory object).

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
        }
    }
}

/// The raw items of a JSON array body, each exactly as sent.
pub fn split(body: &[u8]) -> Result<Vec<&RawValue>, PageError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'[') => {}
        Some(_) if serde_json::from_slice::<&RawValue>(body).is_ok() => {
            return Err(PageError::NotArray);
        }
        _ => {}
    }
    let items: Vec<&RawValue> =
        serde_json::from_slice(body).map_err(|e| PageError::NotJson(e.to_string()))?;
    if let Some(i) = items.iter().position(|v| !v.get().starts_with('{')) {
        return Err(PageError::ItemNotObject(i));
    }
    Ok(items)
}

/// The fields of an event that deduplication needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// `uuid`, if present and a string.
    pub uuid: Option<String>,
    /// `published`, if present and RFC 3339.
    pub published: Option<SystemTime>,
}

/// Reads `uuid` and `published`; missing or odd values give `None`, never an error.
pub fn meta(raw: &RawValue) -> Meta {
    #[derive(Deserialize)]
    struct M<'a> {
        #[serde(borrow, default, deserialize_with = "lenient")]
        uuid: Option<Cow<'a, str>>,
        #[serde(borrow, default, deserialize_with = "lenient")]
        published: Option<Cow<'a, str>>,
    }
    match serde_json::from_str::<M<'_>>(raw.get()) {
        Ok(m) => Meta {
            uuid: m.uuid.map(Cow::into_owned),
            published: m.published.and_then(|p| crate::time::parse_rfc3339(&p)),
        },
        Err(_) => Meta::default(),
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
pub fn object_meta(raw: &RawValue) -> ObjectMeta {
    #[derive(Deserialize)]
    struct M<'a> {
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
    match serde_json::from_str::<M<'_>>(raw.get()) {
        Ok(m) => ObjectMeta {
            id: m.id.or(m.client_id).map(Cow::into_owned),
            updated: [m.last_updated, m.last_membership_updated]
                .into_iter()
                .flatten()
                .filter_map(|t| crate::time::parse_rfc3339(&t))
                .max(),
        },
        Err(_) => ObjectMeta::default(),
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

/// The event as one line: unchanged unless it holds a raw CR or LF (only possible as
/// whitespace between tokens, since JSON strings escape them), which is then removed along
/// with the other whitespace between tokens. String contents are never touched.
pub fn one_line(raw: &str) -> Cow<'_, str> {
    // Two single-byte searches (memchr) are far faster than one search for a set of chars,
    // which decodes every char: this check ran on every byte of every event (a fifth of the
    // puller's CPU in a profile).
    if !raw.contains('\n') && !raw.contains('\r') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_kept_byte_for_byte() {
        let body = r#"[ {"uuid":"a", "published":"2024-12-04T11:45:01.000Z","x":"\u00e9 é"} ,{"uuid":null}]"#.as_bytes();
        let items = split(body).unwrap();
        assert_eq!(
            items[0].get(),
            r#"{"uuid":"a", "published":"2024-12-04T11:45:01.000Z","x":"\u00e9 é"}"#
        );
        let m = meta(items[0]);
        assert_eq!(m.uuid.as_deref(), Some("a"));
        assert!(m.published.is_some());
        assert_eq!(meta(items[1]), Meta::default());
    }

    #[test]
    fn bad_bodies_are_classified() {
        assert!(matches!(
            split(b"<html>oops</html>"),
            Err(PageError::NotJson(_))
        ));
        assert!(matches!(split(b"[{\"a\":1},"), Err(PageError::NotJson(_))));
        assert!(matches!(
            split(br#"{"errorCode":"E0000009"}"#),
            Err(PageError::NotArray)
        ));
        assert!(matches!(
            split(br#"[{"a":1}, 5]"#),
            Err(PageError::ItemNotObject(1))
        ));
        assert!(matches!(split(b"[\"\xff\"]"), Err(PageError::NotJson(_))));
        assert_eq!(split(b"[]").unwrap().len(), 0);
    }

    #[test]
    fn odd_field_types_do_not_hide_the_event() {
        let items = split(br#"[{"uuid":5,"published":"2024-12-04T11:45:01.000Z"}]"#).unwrap();
        let m = meta(items[0]);
        assert_eq!(m.uuid, None);
        assert!(m.published.is_some());
    }

    #[test]
    fn one_line_removes_only_whitespace_between_tokens() {
        assert_eq!(one_line(r#"{"a":"x y"}"#), r#"{"a":"x y"}"#);
        assert_eq!(
            one_line("{\n  \"a\": \"x \\\" \\n y\",\r\n  \"b\": [1, 2]\n}"),
            r#"{"a":"x \" \n y","b":[1,2]}"#
        );
    }
}
