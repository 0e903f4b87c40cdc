//! One item of a page as the rest of the crate sees it: its JSON exactly as sent, and the few
//! top-level string fields read from it; and why a page was refused. Both readers of a page
//! (the fast scanner and serde_json) build these.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

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
pub(super) const KEYS: [&str; 7] = [
    "uuid",
    "published",
    "id",
    "client_id",
    "lastUpdated",
    "lastMembershipUpdated",
    "eventType",
];
pub(super) const UUID: usize = 0;
pub(super) const PUBLISHED: usize = 1;
pub(super) const ID: usize = 2;
pub(super) const CLIENT_ID: usize = 3;
pub(super) const LAST_UPDATED: usize = 4;
pub(super) const LAST_MEMBERSHIP_UPDATED: usize = 5;
pub(super) const EVENT_TYPE: usize = 6;

/// One item of a page: its JSON exactly as sent, and the top-level fields of [`KEYS`] that hold
/// a string (a key given twice: the last one counts, as in most JSON parsers).
#[derive(Debug)]
pub struct Item<'a> {
    pub(super) raw: &'a str,
    /// A raw CR or LF stands between two of its tokens.
    pub(super) multiline: bool,
    pub(super) fields: [Option<Cow<'a, str>>; KEYS.len()],
}

impl<'a> Item<'a> {
    /// The item's JSON exactly as sent.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    pub(super) fn field(&self, k: usize) -> Option<&str> {
        self.fields[k].as_deref()
    }

    /// Reads the fields from an item that serde_json accepted (the slow path).
    pub(super) fn from_serde(raw: &'a RawValue) -> Item<'a> {
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
            #[serde(borrow, default, rename = "eventType", deserialize_with = "lenient")]
            event_type: Option<Cow<'a, str>>,
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
                m.event_type,
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
