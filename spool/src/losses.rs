//! What corruption cost a spool, kept so that an operator can see it: corrupt frames skipped
//! and events lost, counted once each however many consumers meet them, and kept across
//! restarts in `losses.state` (so `status`, another process, shows them too).

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

/// The file, in the spool's directory: `corrupt_frames N lost_events M`.
pub(crate) const FILE: &str = "losses.state";

/// Totals since the spool was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Losses {
    /// Corrupt frames (and unreadable segment tails) skipped by readers.
    pub corrupt_frames: u64,
    /// Events whose sequence numbers readers found missing (a corrupt frame's, or a set-aside
    /// segment's).
    pub lost_events: u64,
}

/// The counts and what has been counted, so that a second consumer (or a reader made again
/// after a reconnect) meeting the same damage does not count it twice.
#[derive(Debug)]
pub(crate) struct Tracker {
    path: PathBuf,
    totals: Losses,
    frames: HashSet<(u64, u64)>,
    gaps: HashSet<u64>,
}

impl Tracker {
    /// Reads the totals kept in `dir` (none yet: zero).
    pub fn open(dir: &Path) -> Tracker {
        let path = dir.join(FILE);
        Tracker {
            totals: read(&path).unwrap_or_default(),
            path,
            frames: HashSet::new(),
            gaps: HashSet::new(),
        }
    }

    pub fn totals(&self) -> Losses {
        self.totals
    }

    /// A corrupt frame at `offset` of segment `segment`.
    pub fn corrupt_frame(&mut self, segment: u64, offset: u64) {
        if self.frames.len() < 100_000 && self.frames.insert((segment, offset)) {
            self.totals.corrupt_frames += 1;
            self.save();
        }
    }

    /// `events` missing from sequence number `from` on.
    pub fn lost(&mut self, from: u64, events: u64) {
        if self.gaps.len() < 100_000 && self.gaps.insert(from) {
            self.totals.lost_events += events;
            self.save();
        }
    }

    /// Written by replacing the file (rare: only when damage is met); a failure is logged and
    /// the counts stay in memory.
    fn save(&self) {
        let text = format!(
            "corrupt_frames {} lost_events {}\n",
            self.totals.corrupt_frames, self.totals.lost_events
        );
        if let Err(e) = crate::delivered::replace_private(&self.path, text.as_bytes()) {
            log::warn!(
                "cannot record the spool's losses in {}: {e}",
                self.path.display()
            );
        }
    }
}

/// The totals kept in `path`, if it holds them.
pub(crate) fn read(path: &Path) -> io::Result<Losses> {
    let text = std::fs::read_to_string(path)?;
    let mut words = text.split_whitespace();
    let mut out = Losses::default();
    while let (Some(k), Some(v)) = (words.next(), words.next()) {
        let v = v.parse().unwrap_or(0);
        match k {
            "corrupt_frames" => out.corrupt_frames = v,
            "lost_events" => out.lost_events = v,
            _ => {}
        }
    }
    Ok(out)
}
