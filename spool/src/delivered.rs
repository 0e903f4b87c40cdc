//! What each consumer has delivered, as the time of its newest event (Unix ms, given by the
//! consumer): `delivered-time.<consumer name>` beside its ack file, for reports (a delivery
//! lag) only. Not synced; a failure to write it is no failure to deliver. Files here are
//! written 0600 through a temporary file opened without following links, then renamed.

use crate::Spool;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The file of consumer `name` in spool `dir`.
pub(crate) fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("delivered-time.{name}"))
}

/// Replaces `path` with `bytes`: written to `<path>.tmp` (0600, `O_NOFOLLOW`, so a planted
/// link is not followed), then renamed over it (a rename replaces a link, never follows it).
pub(crate) fn replace_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?
        .write_all(bytes)?;
    std::fs::rename(&tmp, path)
}

/// The time recorded in `path`, if it holds one (read without following a link, at most a
/// few bytes).
pub(crate) fn read(path: &Path) -> Option<u64> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

impl Spool {
    /// Records that consumer `consumer` has delivered an event of time `ms` (Unix ms) as its
    /// newest.
    ///
    /// # Errors
    /// If the file cannot be written (nothing else depends on it).
    ///
    /// # Panics
    /// If `consumer` is not an index into the names the spool was opened with.
    pub fn record_delivered_time(&self, consumer: usize, ms: u64) -> io::Result<()> {
        let p = path(&self.inner.dir, &self.inner.consumers[consumer]);
        replace_private(&p, ms.to_string().as_bytes())
    }

    /// The newest event time consumer `consumer` recorded as delivered, kept across restarts.
    ///
    /// # Panics
    /// If `consumer` is not an index into the names the spool was opened with.
    pub fn delivered_time(&self, consumer: usize) -> Option<u64> {
        read(&path(&self.inner.dir, &self.inner.consumers[consumer]))
    }
}
