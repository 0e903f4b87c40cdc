//! Restoring a service's cursor at start, the same way for every mode: read it from the spool
//! (the last frame's), or take one over from Devo's collector, or start a new persistence; a
//! configured `start` that differs from the one the cursor was made from restarts it (the
//! seed's "Persistence will be overridden…"). The log lines are the seed's.

use super::body::Events;
use super::puller::{Halt, Puller};
use std::time::SystemTime;

/// A mode's cursor, as stored in the spool with the events it covers.
pub(crate) trait Cursor: Sized {
    /// Reads a stored cursor.
    fn decode(bytes: &[u8]) -> Result<Self, String>;

    /// The cursor for storage. An error stops the service: an empty cursor is never committed.
    fn encode(&self) -> Result<Vec<u8>, String>;

    /// What the cursor holds, for "Data retrieved from the persistence: …".
    fn describe(&self) -> String;

    /// When `configured` (the service's `start`) is not the start this cursor was made from:
    /// the two as the override line names them. Never, for a cursor with no start.
    fn start_differs(&self, configured: Option<SystemTime>) -> Option<(String, String)>;
}

/// A cursor stored as JSON, as the inventory modes store theirs.
pub(crate) fn from_json<C: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<C, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// A cursor as JSON for storage.
pub(crate) fn to_json<C: serde::Serialize>(c: &C) -> Result<Vec<u8>, String> {
    serde_json::to_vec(c).map_err(|e| format!("cannot encode the cursor: {e}"))
}

/// What there was to restore.
pub(crate) enum Found<C> {
    /// The spool's last cursor.
    Stored(C),
    /// Devo's collector's state, taken over: committed before the first request.
    Imported(C),
    /// A stored cursor that does not decode.
    Unreadable(String),
    /// Nothing stored.
    Empty,
}

/// Reads the spool's cursor (logging "Reading persisted data").
pub(crate) fn read<C: Cursor>(p: &Puller) -> Found<C> {
    log::info!("{} -> Reading persisted data", p.label);
    match p.spool.cursor().map(|b| C::decode(&b)) {
        Some(Ok(c)) => Found::Stored(c),
        Some(Err(e)) => Found::Unreadable(e),
        None => Found::Empty,
    }
}

/// The cursor to go on from: `found`'s, unless the configured start differs from the one it
/// was made from or there is none, in which case `fresh` makes a new one (committed, with
/// "Persistence has been updated successfully", when `commit_fresh`).
pub(crate) async fn restore<C: Cursor>(
    p: &Puller,
    found: Found<C>,
    fresh: impl FnOnce() -> C,
    commit_fresh: bool,
) -> Result<C, Halt> {
    let label = &p.label;
    let kept = match found {
        Found::Stored(c) => Some((c, false)),
        Found::Imported(c) => Some((c, true)),
        Found::Unreadable(e) => {
            log::error!("{label} -> The persisted state cannot be read ({e}); starting a new one.");
            None
        }
        Found::Empty => {
            log::warn!(
                "{label} -> Persistence will be overridden due to the retrieved state is empty"
            );
            None
        }
    };
    if let Some((c, imported)) = kept
        && !p.restart_for(&c)
    {
        if imported {
            // Ours from now on: durable in the spool before the first request.
            p.commit(Events::default(), c.encode().map_err(Halt::cursor)?)
                .await?;
            log::warn!(
                "{label} -> Persistence has been updated successfully (taken over from Devo's collector)"
            );
        }
        return Ok(c);
    }
    let c = fresh();
    if commit_fresh {
        p.commit(Events::default(), c.encode().map_err(Halt::cursor)?)
            .await?;
        log::warn!("{label} -> Persistence has been updated successfully");
    }
    Ok(c)
}

impl Puller {
    /// Logs what a cursor holds, and says whether the configured start restarts it.
    fn restart_for<C: Cursor>(&self, c: &C) -> bool {
        log::info!(
            "{} -> Data retrieved from the persistence: {}",
            self.label,
            c.describe()
        );
        match c.start_differs(self.service.start) {
            Some((new, old)) => {
                log::warn!(
                    "{} -> Persistence will be overridden due to the configured start ({new}) differs from the persisted initial_start_time_in_utc ({old})",
                    self.label
                );
                true
            }
            None => false,
        }
    }
}
