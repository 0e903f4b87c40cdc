//! Everything that knows Okta: the HTTP client, `Link` parsing, page splitting, the System Log
//! cursor and puller. Nothing here knows Devo or the spool's format.

pub mod client;
pub mod cursor;
pub mod link;
pub mod logs;
pub mod page;
