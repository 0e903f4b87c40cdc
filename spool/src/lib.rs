//! An append-only, segmented, crash-safe on-disk spool with one producer and one or more
//! consumers, each with its own durable ack position.
//!
//! The producer appends a *batch* of opaque events together with its *cursor* (the position
//! in the source that the batch brings it to) as one frame. The frame is `fdatasync`ed before
//! [`Spool::append`] returns, so after a crash at any instant the spool holds either the whole
//! batch and its cursor or neither: the producer resumes from [`Spool::cursor`] and never loses
//! or repeats a batch. Each consumer reads frames up to the durable end only, and records its
//! progress with [`Spool::ack_by`]; whole segments below the slowest consumer's ack are deleted.
//!
//! # Where things are
//!
//! | file | what it does |
//! |---|---|
//! | `lib.rs` | this format description, the [`Spool`] handle and what it reports |
//! | `recovery.rs` | [`Spool::open_consumers`]: the lock, the consumers' positions, the last segment's scan |
//! | `writer.rs` | [`Spool::append`], transactions, rotation |
//! | `reader.rs` | [`Reader`] and [`Frame`]: reading up to the durable end, skipping corruption |
//! | `ack.rs` | the two-slot ack file and the consumers' positions; deleting delivered segments |
//! | `inspect.rs` | [`inspect`]: a read-only look at a spool another process holds |
//! | `segment.rs` | segment file names, listing, creation and scanning |
//! | `format.rs` | encoding and decoding of headers and frames |
//! | `filesystem.rs` | the [`Filesystem`] every write and sync goes through, and [`FaultFs`] |
//! | `losses.rs` | the corrupt frames and lost events met, kept across restarts |
//! | `delivered.rs` | each consumer's newest delivered event time, for reports |
//! | `error.rs` | [`Error`] |
//!
//! # Files (one directory per spool)
//!
//! ```text
//! LOCK                       flock()ed while a Spool is open; a second opener gets Error::Locked
//! ack.<name>.state           a consumer's progress, two checksummed slots (`ack.rs`)
//! losses.state               corrupt frames and lost events met so far (`losses.rs`)
//! delivered-time.<name>      the newest event time a consumer delivered (`delivered.rs`)
//! 00000000000000000000.seg   segments, named by the sequence number of their first event
//! 00000000000000052311.seg   (20 digits, u64, never wraps)
//! *.corrupt                  segments whose header failed validation, set aside at startup
//! ```
//!
//! Only the writer creates segment files (and recovery, the first one of a spool with none left);
//! only `ack` and recovery delete them.
//!
//! # Segment layout (all integers little-endian)
//!
//! ```text
//! header (64 bytes)  0 magic "SPLS" | 4 u16 version=1 | 6 u16 flags | 8 [16] spool id
//!                   24 u64 first_seq | 32 u64 created_unix_ms | 40 [20] zero | 60 u32 crc
//! frame              0 magic "SPLF" | 4 u32 body_len | 8 u32 crc(body_len_le ‖ body)
//! body              12 u64 first_seq | 20 u32 event_count | 24 u16 kind (1 data, 2 cursor
//!                      snapshot, 3 pending data) | 26 u16 flags | 28 u32 newest event time
//!                      (Unix s, 0: none) | 32 u64 batch_no
//!                   40 u32 cursor_len | 44 cursor | events: event_count × (u32 len, bytes)
//! ```
//!
//! The CRC is CRC-32/ISO-HDLC (zlib's CRC-32, polynomial 0x04C11DB7, check value 0xCBF43926).
//! A new segment starts with a cursor-snapshot frame carrying the latest cursor, so the newest
//! segment always holds the cursor even after older segments are deleted. Frames are at most
//! [`Options::max_frame_bytes`]. A segment is rotated when the next frame would take it past
//! [`Options::segment_bytes`]; a larger frame gets a segment of its own.
//!
//! # Transactions (a batch larger than one frame)
//!
//! [`Spool::append_pending`] writes events as *pending* frames (kind 3) without syncing them
//! or making them visible; the next [`Spool::append`] commits them together with its own
//! events and cursor (one `fdatasync` covers all). Readers see nothing of a transaction until
//! it commits. [`Spool::abort_pending`] cuts the file back to the last commit, and so does
//! recovery when pending frames are not followed by a data frame. A segment is never rotated
//! while a transaction is open, so a transaction lies in one segment (which may outgrow
//! [`Options::segment_bytes`]).
//!
//! # Recovery (at [`Spool::open_consumers`]; its cost does not grow with the backlog)
//!
//! 1. Take `LOCK`; read each consumer's ack file (none, or no valid slot: that consumer starts
//!    from the oldest segment). A position the spool cannot have (a valid checksum over a
//!    segment that does not exist, an offset past its file, an event past the next segment's
//!    first, or, after step 3, past the recovered end) is refused as corrupt, naming the file:
//!    that consumer starts from the oldest segment (events may be sent again, none is skipped).
//! 2. Set aside segments whose header is bad (a last segment no longer than a header was
//!    created but never used, and a bad one every consumer is past: deleted).
//! 3. Scan the *last* segment only: truncate it at the first invalid or incomplete frame (a torn
//!    tail) or at the first pending frame not followed by a commit, `fdatasync`, and recover the
//!    next sequence number and the cursor from its frames.
//!    A last segment with no valid frame holds no event: it is deleted and the one before is
//!    scanned instead.
//! 4. Only then delete the segments wholly below the slowest consumer's position, never the
//!    one step 3 recovered the writer (and so the last cursor) from: a crash that left an empty
//!    segment beside a fully delivered spool must not take the cursor with it.
//!
//! A corrupt frame met later by the reader in a sealed segment is counted and skipped: the
//! reader resynchronises on the next frame magic whose checksum holds. It never stops.

mod ack;
mod delivered;
mod error;
mod filesystem;
pub mod format;
mod inspect;
mod losses;
mod reader;
mod recovery;
mod segment;
mod writer;

pub use ack::valid_consumer_name;
pub use error::Error;
pub use filesystem::{Fault, FaultFs, Filesystem, Op, RealFs};
pub use inspect::{ConsumerState, Inspection, inspect};
pub use losses::Losses;
pub use reader::{Frame, Reader};

use error::Result;
use segment::{bytes_from, segment_lens};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Tuning knobs of a spool.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Target size of a segment file.
    pub segment_bytes: u64,
    /// Largest frame body accepted, on write and on read.
    pub max_frame_bytes: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            segment_bytes: 32 << 20,
            max_frame_bytes: 128 << 20,
        }
    }
}

/// A place in the spool: the frame at `offset` of segment `segment`, and `seq`, the first event
/// (in that frame or after it) that is *not* covered. As an ack, every event below `seq` has
/// been delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// Sequence number of the first event not covered.
    pub seq: u64,
    /// First sequence number (file name) of the segment holding the frame.
    pub segment: u64,
    /// Byte offset of the frame in that segment.
    pub offset: u64,
}

/// The end of what is durable on disk, published by the writer after each `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    /// The segment being appended to.
    pub segment: u64,
    /// Its durable length.
    pub offset: u64,
    /// The sequence number the next event will get.
    pub next_seq: u64,
}

/// A handle on one spool directory. Cloning is cheap; all clones share the same state.
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) spool_id: [u8; 16],
    pub(crate) writer: Mutex<writer::Writer>,
    pub(crate) durable: Mutex<Durable>,
    /// One per consumer, in the order given to [`Spool::open_consumers`].
    pub(crate) acked: Mutex<Vec<ack::Acked>>,
    /// The consumers' names, in that order.
    pub(crate) consumers: Vec<String>,
    pub(crate) data_ready: event_listener::Event,
    /// Fires after every ack that moved a consumer's position.
    pub(crate) ack_moved: event_listener::Event,
    /// Set while the producer waits for room: consumers then record their acks at once.
    pub(crate) room_wanted: std::sync::atomic::AtomicBool,
    /// Where writes and syncs go ([`RealFs`], or a test's [`FaultFs`]).
    pub(crate) fs: Arc<dyn Filesystem>,
    /// Corrupt frames and lost events met by any reader.
    pub(crate) losses: Mutex<losses::Tracker>,
    /// Every segment below this sequence number has been deleted (see [`Spool::ack_by`]).
    pub(crate) reclaimed_below: std::sync::atomic::AtomicU64,
    /// Held (flock) for the lifetime of the spool; released when dropped.
    pub(crate) _lock: std::fs::File,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a spool lock leaves no half-written state in memory that matters:
    // the on-disk state is authoritative, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Spool {
    /// The directory of this spool.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The cursor stored with the last durable batch, if any batch was ever appended.
    pub fn cursor(&self) -> Option<Vec<u8>> {
        lock(&self.inner.writer).cursor.clone()
    }

    /// Bytes of the segment files on disk (pending frames of an open transaction included).
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be listed.
    pub fn disk_bytes(&self) -> Result<u64> {
        Ok(segment_lens(&self.inner.dir)?
            .iter()
            .map(|(_, len)| len)
            .sum())
    }

    /// Bytes on disk that some consumer still has to read: from the slowest consumer's
    /// position (the start of the frame it is in) to the durable end; 0 when every consumer
    /// has every event. Delivered bytes still on disk (the rest of the segment a position is
    /// in) and an open transaction's pending frames do not count. This, not
    /// [`Spool::disk_bytes`], is what a producer bounding the spool should compare: delivered
    /// bytes go by themselves, and pending frames only with their commit.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be listed or a segment cannot be read.
    pub fn waiting_bytes(&self) -> Result<u64> {
        let durable = self.durable();
        let acked = self.acked();
        if acked.seq >= durable.next_seq {
            return Ok(0);
        }
        // The active segment counts to its durable end (pending frames lie past it).
        let mut lens = segment_lens(&self.inner.dir)?;
        lens.retain(|(seg, _)| *seg <= durable.segment);
        if let Some(last) = lens.last_mut().filter(|(seg, _)| *seg == durable.segment) {
            last.1 = durable.offset;
        }
        Ok(bytes_from(acked, &lens))
    }

    /// Corrupt frames skipped and events lost since the spool was created (kept across
    /// restarts; each counted once, however many consumers met it).
    pub fn losses(&self) -> Losses {
        lock(&self.inner.losses).totals()
    }

    /// The durable end of the spool.
    pub fn durable(&self) -> Durable {
        *lock(&self.inner.durable)
    }
    /// A listener that fires after the next append; create it *before* checking for data.
    pub fn listen(&self) -> event_listener::EventListener {
        self.inner.data_ready.listen()
    }

    /// A listener that fires after the next ack that moves a consumer (a producer paused for
    /// room waits on it); create it *before* checking for room.
    pub fn listen_acked(&self) -> event_listener::EventListener {
        self.inner.ack_moved.listen()
    }

    /// The producer says it waits for room (`true`) or no longer does: consumers that batch
    /// their acks should record what they have delivered now rather than later. Setting it
    /// wakes the consumers' listeners.
    pub fn want_room(&self, wanted: bool) {
        use std::sync::atomic::Ordering;
        if !self.inner.room_wanted.swap(wanted, Ordering::AcqRel) && wanted {
            self.inner.data_ready.notify(usize::MAX);
        }
    }

    /// Whether the producer waits for room (see [`Spool::want_room`]).
    pub fn room_wanted(&self) -> bool {
        self.inner
            .room_wanted
            .load(std::sync::atomic::Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests;
