//! Everything that knows Okta, so that nothing else has to: its API's facts, the HTTP client,
//! `Link` headers and pages, the four pull modes with their cursors, rate limits, OAuth, and
//! Devo's collector's state. Nothing here knows Devo's wire format or the spool's.
//!
//! A puller (`puller.rs`) runs its cycles (`cycle.rs`, the only file that runs the modes) in
//! one of four modes, each with its cursor beside it: `logs/` polls the System Log,
//! `incremental/` lists what changed in users and groups, `snapshot/` lists apps, idps, zones
//! and clients whole, `entitlements/` keeps who holds which access current from full listings
//! and the System Log's spool. `restore.rs` restores the first three modes' cursors the one
//! way (an entitlement service keeps its progress in its own folder).

pub mod api;
mod body;
pub mod budget;
pub mod client;
mod cycle;
pub mod devo_state;
mod entitlements;
mod hash;
mod incremental;
pub mod link;
mod logs;
pub mod oauth;
pub mod page;
pub mod puller;
mod restore;
mod snapshot;

pub use body::release_spare_bodies;
pub use entitlements::describe as describe_entitlements;
pub use logs::LogsCursor;
