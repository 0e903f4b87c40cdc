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
//! # Files (one directory per spool)
//!
//! ```text
//! LOCK                       flock()ed while a Spool is open; a second opener gets Error::Locked
//! ack.state                  the default consumer's progress, two checksummed slots (`ack.rs`)
//! ack.<name>.state           a named consumer's progress (see [`Spool::open_consumers`])
//! 00000000000000000000.seg   segments, named by the sequence number of their first event
//! 00000000000000052311.seg   (20 digits, u64, never wraps)
//! *.corrupt                  segments whose header failed validation, set aside at startup
//! ```
//!
//! Only the writer creates segment files; only `ack` and recovery delete them.
//!
//! # Segment layout (all integers little-endian)
//!
//! ```text
//! header (64 bytes)  0 magic "SPLS" | 4 u16 version=1 | 6 u16 flags | 8 [16] spool id
//!                   24 u64 first_seq | 32 u64 created_unix_ms | 40 [20] zero | 60 u32 crc
//! frame              0 magic "SPLF" | 4 u32 body_len | 8 u32 crc(body_len_le ‖ body)
//! body              12 u64 first_seq | 20 u32 event_count | 24 u16 kind (1 data, 2 cursor
//!                      snapshot, 3 pending data) | 26 u16 flags | 28 u32 source_id | 32 u64 batch_no
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
//! # Recovery (at [`Spool::open`]; its cost does not grow with the backlog)
//!
//! 1. Take `LOCK`; read each consumer's ack file (none, or no valid slot: that consumer starts
//!    from the oldest segment).
//! 2. Delete segments wholly below the slowest consumer's position; set aside segments whose
//!    header is bad
//!    (a last segment no longer than a header was created but never used: deleted).
//! 3. Scan the *last* segment only: truncate it at the first invalid or incomplete frame (a torn
//!    tail) or at the first pending frame not followed by a commit, `fdatasync`, and recover the
//!    next sequence number and the cursor from its frames.
//!    A last segment with no valid frame holds no event: it is deleted and the one before is
//!    scanned instead.
//!
//! A corrupt frame met later by the reader in a sealed segment is counted and skipped: the
//! reader resynchronises on the next frame magic whose checksum holds. It never stops.

mod ack;
mod filesystem;
pub mod format;
mod losses;

pub use losses::Losses;

pub use filesystem::{Fault, FaultFs, Filesystem, Op, RealFs};

use format::{
    FRAME_MAGIC, FRAME_PREFIX_LEN, HEADER_LEN, KIND_CURSOR_SNAPSHOT, KIND_DATA, KIND_PENDING,
    SegmentHeader,
};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
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

/// Errors of the spool.
#[derive(Debug)]
pub enum Error {
    /// An I/O operation failed; `op` says which, `path` on what.
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `fdatasync` failed. The kernel may have dropped the dirty pages, so retrying cannot be
    /// trusted: the spool refuses further writes and the process should exit and recover.
    Sync {
        /// The segment file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another process holds the spool's lock.
    Locked {
        /// The spool directory.
        path: PathBuf,
    },
    /// A batch is larger than [`Options::max_frame_bytes`].
    TooLarge {
        /// Encoded size of the batch.
        len: usize,
    },
}

impl Error {
    /// True for errors after which the spool cannot be written any more (restart to recover).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Sync { .. })
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { op, path, source } => write!(f, "cannot {op} {}: {source}", path.display()),
            Error::Sync { path, source } => write!(
                f,
                "fdatasync of {} failed: {source}; the spool stops accepting writes, restart to recover from disk",
                path.display()
            ),
            Error::Locked { path } => write!(
                f,
                "the spool {} is in use by another okta-collector process (its LOCK file is held); \
                 stop that process or give this one another data_dir",
                path.display()
            ),
            Error::TooLarge { len } => write!(f, "a batch of {len} bytes is over the frame limit"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Sync { source, .. } => Some(source),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, Error>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A handle on one spool directory. Cloning is cheap; all clones share the same state.
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    opts: Options,
    spool_id: [u8; 16],
    writer: Mutex<Writer>,
    durable: Mutex<Durable>,
    /// One per consumer, in the order given to [`Spool::open_consumers`].
    acked: Mutex<Vec<Acked>>,
    data_ready: event_listener::Event,
    /// Where writes and syncs go ([`RealFs`], or a test's [`FaultFs`]).
    fs: Arc<dyn Filesystem>,
    /// Corrupt frames and lost events met by any reader.
    losses: Mutex<losses::Tracker>,
    /// Every segment below this sequence number has been deleted (see [`Spool::ack_by`]).
    reclaimed_below: std::sync::atomic::AtomicU64,
    /// Held (flock) for the lifetime of the spool; released when dropped.
    _lock: File,
}

#[derive(Debug)]
struct Writer {
    file: File,
    segment: u64,
    offset: u64,
    next_seq: u64,
    batch_no: u64,
    cursor: Option<Vec<u8>>,
    /// Set after an fsync failure: nothing more is written.
    failed: bool,
    /// The write head of an open transaction (pending frames after the committed end).
    pending: Option<Head>,
}

/// Where the next frame goes: offset, sequence number and batch number.
#[derive(Debug, Clone, Copy)]
struct Head {
    offset: u64,
    next_seq: u64,
    batch_no: u64,
}

impl Writer {
    /// The open transaction's head, or the committed end.
    fn head(&self) -> Head {
        self.pending.unwrap_or(Head {
            offset: self.offset,
            next_seq: self.next_seq,
            batch_no: self.batch_no,
        })
    }
}

#[derive(Debug)]
struct Acked {
    file: ack::AckFile,
    path: PathBuf,
    pos: Position,
}

/// The ack file of consumer `name` (`""` is the default consumer of [`Spool::open`]).
fn ack_path(dir: &Path, name: &str) -> PathBuf {
    if name.is_empty() {
        dir.join("ack.state")
    } else {
        dir.join(format!("ack.{name}.state"))
    }
}

/// The position of the slowest consumer.
fn slowest(acked: &[Acked]) -> Position {
    slowest_known(acked.iter().map(|a| Some(a.pos))).unwrap_or_default()
}

/// The lowest of the consumers' recorded positions; `None` if any consumer has none (it starts
/// at the oldest segment, so it holds every segment).
fn slowest_known(positions: impl Iterator<Item = Option<Position>>) -> Option<Position> {
    positions
        .collect::<Option<Vec<Position>>>()?
        .into_iter()
        .min_by_key(|p| p.seq)
}

/// True if `name` can name a consumer: letters, digits, `_` and `-` (it is part of a file name).
pub fn valid_consumer_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Bytes of a frame gathered before each write: a frame of any size (a System Log page is
/// about 2 MB) goes to the file through this much memory, which stays small and cache-warm.
const STAGE_BYTES: usize = 64 << 10;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a spool lock leaves no half-written state in memory that matters:
    // the on-disk state is authoritative, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.seg"))
}

/// Lists segment files by first sequence number, ascending.
fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".seg")
            && stem.len() == 20
            && let Ok(n) = stem.parse::<u64>()
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Each segment's name (first sequence number) and length, in order; one deleted meanwhile (by
/// an ack) is left out.
fn segment_lens(dir: &Path) -> Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for seg in list_segments(dir)? {
        let p = segment_path(dir, seg);
        match fs::metadata(&p) {
            Ok(m) => out.push((seg, m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("stat", &p)(e)),
        }
    }
    Ok(out)
}

/// Bytes of `lens` from `pos` (the start of the frame it is in) on.
fn bytes_from(pos: Position, lens: &[(u64, u64)]) -> u64 {
    lens.iter()
        .filter(|(seg, _)| *seg >= pos.segment)
        .map(|&(seg, len)| {
            if seg == pos.segment {
                len.saturating_sub(pos.offset)
            } else {
                len
            }
        })
        .sum()
}

fn sync_dir(fs: &dyn Filesystem, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).map_err(io_err("fsync directory", dir))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn new_spool_id() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let mut id = [0u8; 16];
    for (i, chunk) in id.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(now_ms());
        h.write_u32(std::process::id());
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    id
}

/// What scanning a segment's frames found.
struct Scan {
    /// End of the last valid committed frame.
    valid_end: u64,
    /// Number of valid committed frames.
    frames: u64,
    /// Valid pending frames after `valid_end` that no commit follows.
    uncommitted: u64,
    /// Sequence number after the last event.
    next_seq: u64,
    /// Cursor and batch number of the last frame.
    last: Option<(Vec<u8>, u64)>,
}

/// Reads frames from the start of a segment until the first invalid one.
fn scan_segment(file: &File, first_seq: u64, len: u64, max_body: u32) -> io::Result<Scan> {
    let mut scan = Scan {
        valid_end: HEADER_LEN,
        frames: 0,
        uncommitted: 0,
        next_seq: first_seq,
        last: None,
    };
    let mut head_seq = first_seq;
    let mut prefix = [0u8; FRAME_PREFIX_LEN as usize];
    let mut body = Vec::new();
    let mut off = HEADER_LEN;
    while off + FRAME_PREFIX_LEN <= len {
        file.read_exact_at(&mut prefix, off)?;
        let Some(p) = format::decode_prefix(&prefix, max_body) else {
            break;
        };
        let end = off + FRAME_PREFIX_LEN + u64::from(p.body_len);
        if end > len {
            break;
        }
        body.resize(p.body_len as usize, 0);
        file.read_exact_at(&mut body, off + FRAME_PREFIX_LEN)?;
        let Some(b) = format::decode_body(p, &body) else {
            break;
        };
        if b.first_seq != head_seq {
            break;
        }
        head_seq += b.events.len() as u64;
        off = end;
        if b.kind == KIND_PENDING {
            scan.uncommitted += 1;
            continue;
        }
        scan.next_seq = head_seq;
        scan.last = Some((body[b.cursor.clone()].to_vec(), b.batch_no));
        scan.frames += 1;
        scan.uncommitted = 0;
        scan.valid_end = end;
    }
    Ok(scan)
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir` with one consumer (its ack file is
    /// `ack.state`), recovering from any crash.
    ///
    /// # Errors
    /// [`Error::Locked`] if another process has it open; [`Error::Io`] if the directory or its
    /// files cannot be read or written.
    pub fn open(dir: &Path, opts: Options) -> Result<Spool> {
        Spool::open_consumers(dir, opts, &[""])
    }

    /// Opens the spool with one consumer per name (ack file `ack.<name>.state`; the empty name
    /// is `ack.state`). Consumers are then addressed by their index in `consumers`.
    ///
    /// A consumer with no ack file yet starts at the oldest segment, except that a spool which
    /// had one consumer (`ack.state`) hands its position to each new named consumer (so naming
    /// the one output of an older version neither re-sends nor skips anything); `ack.state` is
    /// then removed. Ack files of consumers not named are left alone and do not hold segments
    /// back.
    ///
    /// # Errors
    /// As [`Spool::open`]; [`Error::Io`] (`op` "name consumer") for a name that is not
    /// [`valid_consumer_name`] or an empty list.
    pub fn open_consumers(dir: &Path, opts: Options, consumers: &[&str]) -> Result<Spool> {
        Spool::open_with(dir, opts, consumers, Arc::new(RealFs))
    }

    /// As [`Spool::open_consumers`], with every write and sync going through `fs` (a test's
    /// [`FaultFs`] injects faults there).
    ///
    /// # Errors
    /// As [`Spool::open_consumers`].
    pub fn open_with(
        dir: &Path,
        opts: Options,
        consumers: &[&str],
        fs: Arc<dyn Filesystem>,
    ) -> Result<Spool> {
        let fsys = &*fs;
        if consumers.is_empty()
            || consumers
                .iter()
                .any(|c| !c.is_empty() && !valid_consumer_name(c))
        {
            return Err(Error::Io {
                op: "name consumer",
                path: dir.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("consumer names must be letters, digits, _ or -: {consumers:?}"),
                ),
            });
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("create directory", dir))?;
        let lock_path = dir.join("LOCK");
        let lock_file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: dir.into() }),
            Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &lock_path)(e)),
        }
        let legacy_path = ack_path(dir, "");
        let legacy = if consumers.iter().all(|c| !c.is_empty()) {
            ack::AckFile::read(&legacy_path).map_err(io_err("read", &legacy_path))?
        } else {
            None
        };
        let mut acks = Vec::with_capacity(consumers.len());
        for name in consumers {
            let path = ack_path(dir, name);
            let fresh = !path.exists();
            let (mut file, mut pos) = ack::AckFile::open(&path).map_err(io_err("open", &path))?;
            if let (true, Some(l)) = (fresh, legacy) {
                file.write(fsys, l).map_err(io_err("write", &path))?;
                pos = Some(l);
            }
            acks.push((file, path, pos));
        }
        if legacy.is_some() {
            sync_dir(fsys, dir)?;
            fs::remove_file(&legacy_path).map_err(io_err("delete", &legacy_path))?;
        }
        // Segments go only once every consumer is past them.
        let ack_pos = slowest_known(acks.iter().map(|(_, _, p)| *p));

        let mut segments = list_segments(dir)?;
        if let Some(a) = ack_pos {
            while segments.len() >= 2 && segments[1] <= a.seq {
                let p = segment_path(dir, segments[0]);
                fs::remove_file(&p).map_err(io_err("delete", &p))?;
                segments.remove(0);
            }
        }

        // Validate headers; set aside the bad ones.
        let mut spool_id: Option<[u8; 16]> = None;
        let mut valid = Vec::with_capacity(segments.len());
        let count = segments.len();
        let names = segments.clone();
        for (i, seg) in segments.into_iter().enumerate() {
            let p = segment_path(dir, seg);
            let file = File::open(&p).map_err(io_err("open", &p))?;
            let len = file.metadata().map_err(io_err("stat", &p))?.len();
            let mut hb = [0u8; HEADER_LEN as usize];
            let header = file
                .read_exact_at(&mut hb, 0)
                .ok()
                .and_then(|()| SegmentHeader::decode(&hb));
            let ok = header.is_some_and(|h| {
                h.first_seq == seg && *spool_id.get_or_insert(h.spool_id) == h.spool_id
            });
            if ok {
                valid.push(seg);
            } else if i + 1 == count && len <= HEADER_LEN {
                log::warn!(
                    "Spool {}: removing {} ({} bytes), a segment that was created but never written.",
                    dir.display(),
                    p.display(),
                    len
                );
                fs::remove_file(&p).map_err(io_err("delete", &p))?;
            } else {
                let q = p.with_extension("seg.corrupt");
                let events = match names.get(i + 1) {
                    Some(next) => format!(
                        "{} events (sequence numbers {seg} to {})",
                        next - seg,
                        next - 1
                    ),
                    None => format!("the events from sequence number {seg} on"),
                };
                log::error!(
                    "Spool {}: segment {} has an invalid header; {} bytes holding {events} set aside as {}.",
                    dir.display(),
                    p.display(),
                    len,
                    q.display()
                );
                fs::rename(&p, &q).map_err(io_err("rename", &p))?;
            }
        }
        let spool_id = spool_id.unwrap_or_else(new_spool_id);
        let acked_seq = ack_pos.map_or(0, |a| a.seq);

        // Recover the writer from the last segment that holds a valid frame.
        let mut writer = None;
        while let Some(&seg) = valid.last() {
            let p = segment_path(dir, seg);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&p)
                .map_err(io_err("open", &p))?;
            let len = file.metadata().map_err(io_err("stat", &p))?.len();
            let scan =
                scan_segment(&file, seg, len, opts.max_frame_bytes).map_err(io_err("read", &p))?;
            if scan.frames == 0 {
                if scan.uncommitted > 0 {
                    log::warn!(
                        "Spool {}: removing {} ({} bytes): {} frames of a transaction that never committed (it is pulled again).",
                        dir.display(),
                        p.display(),
                        len,
                        scan.uncommitted
                    );
                } else {
                    log::warn!(
                        "Spool {}: removing {} ({} bytes), a segment with no complete frame.",
                        dir.display(),
                        p.display(),
                        len
                    );
                }
                drop(file);
                fs::remove_file(&p).map_err(io_err("delete", &p))?;
                valid.pop();
                continue;
            }
            if scan.valid_end < len {
                if scan.uncommitted > 0 {
                    log::warn!(
                        "Spool {}: discarding {} bytes from {}: {} frames of a transaction that never committed (it is pulled again).",
                        dir.display(),
                        len - scan.valid_end,
                        p.display(),
                        scan.uncommitted
                    );
                } else {
                    log::warn!(
                        "Spool {}: truncating a torn tail of {} bytes from {} (a write cut short by a crash).",
                        dir.display(),
                        len - scan.valid_end,
                        p.display()
                    );
                }
                fsys.set_len(&file, scan.valid_end)
                    .map_err(io_err("truncate", &p))?;
                fsys.sync_data(&file).map_err(|source| Error::Sync {
                    path: p.clone(),
                    source,
                })?;
            }
            let (cursor, batch_no) = match scan.last {
                Some((c, b)) => (Some(c), b),
                None => (None, 0),
            };
            writer = Some(Writer {
                file,
                segment: seg,
                offset: scan.valid_end,
                next_seq: scan.next_seq.max(acked_seq),
                batch_no,
                cursor,
                failed: false,
                pending: None,
            });
            break;
        }
        let writer = match writer {
            Some(w) => w,
            None => {
                let (file, len) = create_segment(fsys, dir, spool_id, acked_seq, None, 0)?;
                Writer {
                    file,
                    segment: acked_seq,
                    offset: len,
                    next_seq: acked_seq,
                    batch_no: 0,
                    cursor: None,
                    failed: false,
                    pending: None,
                }
            }
        };
        let oldest = valid.first().copied().unwrap_or(writer.segment);
        let start = Position {
            seq: oldest,
            segment: oldest,
            offset: HEADER_LEN,
        };
        let acked = acks
            .into_iter()
            .map(|(file, path, pos)| Acked {
                file,
                path,
                // A position in a segment that is gone (the other consumers were past it while
                // this one was not configured) starts at the oldest segment.
                pos: pos.filter(|p| p.seq >= oldest).unwrap_or(start),
            })
            .collect();
        let durable = Durable {
            segment: writer.segment,
            offset: writer.offset,
            next_seq: writer.next_seq,
        };
        Ok(Spool {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                opts,
                spool_id,
                writer: Mutex::new(writer),
                durable: Mutex::new(durable),
                acked: Mutex::new(acked),
                data_ready: event_listener::Event::new(),
                fs,
                losses: Mutex::new(losses::Tracker::open(dir)),
                reclaimed_below: std::sync::atomic::AtomicU64::new(0),
                _lock: lock_file,
            }),
        })
    }

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

    /// The slowest consumer's last durable ack (the only one's, with one consumer).
    pub fn acked(&self) -> Position {
        slowest(&lock(&self.inner.acked))
    }

    /// Consumer `consumer`'s last durable ack.
    ///
    /// # Panics
    /// If `consumer` is not an index into the names the spool was opened with.
    pub fn acked_by(&self, consumer: usize) -> Position {
        lock(&self.inner.acked)[consumer].pos
    }

    /// Number of events appended but not yet acked by consumer `consumer`.
    pub fn backlog_of(&self, consumer: usize) -> u64 {
        self.durable()
            .next_seq
            .saturating_sub(self.acked_by(consumer).seq)
    }

    /// Number of events appended but not yet acked by every consumer.
    pub fn backlog(&self) -> u64 {
        self.durable().next_seq.saturating_sub(self.acked().seq)
    }

    /// A listener that fires after the next append; create it *before* checking for data.
    pub fn listen(&self) -> event_listener::EventListener {
        self.inner.data_ready.listen()
    }

    /// Durably appends `events` and the producer's `cursor` after them, as one atomic frame.
    ///
    /// Returns once the frame is on disk (`fdatasync`), with the durable end after it. An empty
    /// `events` records a cursor move alone.
    ///
    /// # Errors
    /// [`Error::Io`] on a failed write (the file is cut back to its last durable length, so the
    /// call can be retried, e.g. after ENOSPC); [`Error::Sync`] (fatal) if `fdatasync` fails;
    /// [`Error::TooLarge`] if the frame is over the limit.
    pub fn append(&self, events: &[&[u8]], cursor: &[u8]) -> Result<Durable> {
        let mut w = self.writer()?;
        let result = self.write_frame(&mut w, KIND_DATA, cursor, events);
        let (head, len) = result?;
        let path = segment_path(&self.inner.dir, w.segment);
        if let Err(source) = self.inner.fs.sync_data(&w.file) {
            w.failed = true;
            return Err(Error::Sync { path, source });
        }
        // Durable: the committed end moves past this frame and any pending frames before it.
        w.pending = None;
        w.offset = head.offset + len;
        w.next_seq = head.next_seq + events.len() as u64;
        w.batch_no = head.batch_no + 1;
        w.cursor = Some(cursor.to_vec());
        let d = Durable {
            segment: w.segment,
            offset: w.offset,
            next_seq: w.next_seq,
        };
        *lock(&self.inner.durable) = d;
        self.inner.data_ready.notify(usize::MAX);
        // A full segment is sealed now rather than at the next append, so that once it is
        // delivered it can be deleted even if nothing more is appended (a puller paused by a
        // full spool appends nothing until some is deleted). A failure here loses nothing:
        // the next append rotates, or fails, itself.
        if w.offset >= self.inner.opts.segment_bytes
            && let Err(e) = self.rotate(&mut w)
        {
            log::warn!(
                "Spool {}: cannot start a new segment yet ({e}); the next append tries again.",
                self.inner.dir.display()
            );
        }
        Ok(d)
    }

    /// Writes `events` as a pending frame of the open transaction (opening one if none is):
    /// not synced, not visible to readers, and not counted by [`Spool::durable`] until the next
    /// [`Spool::append`] commits it together with its own events and cursor.
    ///
    /// # Errors
    /// As [`Spool::append`]; after an [`Error::Io`] the transaction stays open with the frames
    /// written before, so the call can be retried or the transaction aborted.
    pub fn append_pending(&self, events: &[&[u8]]) -> Result<()> {
        let mut w = self.writer()?;
        let result = self.write_frame(&mut w, KIND_PENDING, &[], events);
        let (head, len) = result?;
        w.pending = Some(Head {
            offset: head.offset + len,
            next_seq: head.next_seq + events.len() as u64,
            batch_no: head.batch_no + 1,
        });
        Ok(())
    }

    /// Discards the open transaction, if any: the segment is cut back to the last commit.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be truncated; [`Error::Sync`] (fatal) if the truncation
    /// cannot be synced.
    pub fn abort_pending(&self) -> Result<()> {
        let mut w = self.writer()?;
        if w.pending.take().is_none() {
            return Ok(());
        }
        let path = segment_path(&self.inner.dir, w.segment);
        self.inner
            .fs
            .set_len(&w.file, w.offset)
            .map_err(io_err("truncate", &path))?;
        if let Err(source) = self.inner.fs.sync_data(&w.file) {
            w.failed = true;
            return Err(Error::Sync { path, source });
        }
        Ok(())
    }

    /// Whether a transaction is open (pending frames written, not yet committed).
    pub fn has_pending(&self) -> bool {
        lock(&self.inner.writer).pending.is_some()
    }

    /// The writer, unless an earlier `fdatasync` failed.
    fn writer(&self) -> Result<MutexGuard<'_, Writer>> {
        let w = lock(&self.inner.writer);
        if w.failed {
            return Err(Error::Sync {
                path: segment_path(&self.inner.dir, w.segment),
                source: io::Error::other("an earlier fdatasync failed"),
            });
        }
        Ok(w)
    }

    /// Encodes a frame into `buf` and writes it at the write head, rotating first when the
    /// segment is full (never inside a transaction). Returns the head it was written at and
    /// its length. A failed write is cut back, so the file ends at the head again.
    fn write_frame(
        &self,
        w: &mut Writer,
        kind: u16,
        cursor: &[u8],
        events: &[&[u8]],
    ) -> Result<(Head, u64)> {
        let inner = &*self.inner;
        let body_len = format::BODY_FIXED_LEN as u64
            + cursor.len() as u64
            + events.iter().map(|e| 4 + e.len() as u64).sum::<u64>();
        if body_len > u64::from(inner.opts.max_frame_bytes) {
            return Err(Error::TooLarge {
                len: body_len as usize,
            });
        }
        let len = FRAME_PREFIX_LEN + body_len;
        if w.pending.is_none()
            && w.offset + len > inner.opts.segment_bytes
            && w.next_seq > w.segment
        {
            self.rotate(w)?;
        }
        let head = w.head();
        // The body goes out through the staging buffer (an event at least as large as the
        // buffer straight from memory), then the prefix with its CRC at the front. A crash in
        // between leaves a torn tail, as a crash during one write would: nothing is synced yet.
        let file = &w.file;
        let fsys = &*inner.fs;
        let mut at = head.offset + FRAME_PREFIX_LEN;
        // Allocated for each frame, not kept: an idle spool holds no buffer.
        let mut buf = Vec::with_capacity(STAGE_BYTES);
        let written = format::encode_frame_body(
            kind,
            head.next_seq,
            head.batch_no + 1,
            cursor,
            events,
            |piece| {
                if buf.len() + piece.len() > STAGE_BYTES {
                    filesystem::write_all_at(fsys, file, &buf, at)?;
                    at += buf.len() as u64;
                    buf.clear();
                }
                if piece.len() >= STAGE_BYTES {
                    filesystem::write_all_at(fsys, file, piece, at)?;
                    at += piece.len() as u64;
                } else {
                    buf.extend_from_slice(piece);
                }
                Ok(())
            },
        )
        .and_then(|prefix| {
            filesystem::write_all_at(fsys, file, &buf, at)?;
            filesystem::write_all_at(fsys, file, &prefix, head.offset)
        });
        if let Err(e) = written {
            let _ = fsys.set_len(&w.file, head.offset);
            return Err(Error::Io {
                op: "append to",
                path: segment_path(&inner.dir, w.segment),
                source: e,
            });
        }
        Ok((head, len))
    }

    /// Seals the active segment and starts a new one named by the next sequence number.
    fn rotate(&self, w: &mut Writer) -> Result<()> {
        let inner = &*self.inner;
        let (file, len) = create_segment(
            &*inner.fs,
            &inner.dir,
            inner.spool_id,
            w.next_seq,
            w.cursor.as_deref(),
            w.batch_no,
        )?;
        w.file = file;
        w.segment = w.next_seq;
        w.offset = len;
        *lock(&inner.durable) = Durable {
            segment: w.segment,
            offset: w.offset,
            next_seq: w.next_seq,
        };
        Ok(())
    }

    /// [`Spool::ack_by`] for the first (with [`Spool::open`], the only) consumer.
    ///
    /// # Errors
    /// As [`Spool::ack_by`].
    pub fn ack(&self, pos: Position) -> Result<()> {
        self.ack_by(0, pos)
    }

    /// Durably records that consumer `consumer` has every event below `pos.seq`, then deletes
    /// the segments that hold only events every consumer has. An ack below the consumer's
    /// current one is ignored.
    ///
    /// # Errors
    /// [`Error::Io`] if the ack file cannot be written or a segment cannot be deleted.
    ///
    /// # Panics
    /// If `consumer` is not an index into the names the spool was opened with.
    pub fn ack_by(&self, consumer: usize, pos: Position) -> Result<()> {
        let inner = &*self.inner;
        let mut all = lock(&inner.acked);
        let before = slowest(&all);
        let a = &mut all[consumer];
        if pos.seq < a.pos.seq || pos == a.pos {
            return Ok(());
        }
        a.file
            .write(&*inner.fs, pos)
            .map_err(io_err("write", &a.path))?;
        a.pos = pos;
        let after = slowest(&all);
        drop(all);
        let active = lock(&inner.durable).segment;
        // Segments go when the slowest position leaves one, and when every sealed segment is
        // delivered (a sealed segment whose last frame was just delivered: the position is
        // still in it, but nothing below the active segment is needed any more).
        let caught_up = after.seq >= active
            && inner
                .reclaimed_below
                .fetch_max(active, std::sync::atomic::Ordering::AcqRel)
                < active;
        if after.segment != before.segment || caught_up {
            let segs = list_segments(&inner.dir)?;
            for pair in segs.windows(2) {
                if pair[1] <= after.seq && pair[0] != active {
                    let p = segment_path(&inner.dir, pair[0]);
                    fs::remove_file(&p).map_err(io_err("delete", &p))?;
                }
            }
        }
        Ok(())
    }

    /// A reader positioned at the first consumer's last ack.
    pub fn reader(&self) -> Reader {
        self.reader_for(0)
    }

    /// A reader positioned at consumer `consumer`'s last ack.
    ///
    /// # Panics
    /// If `consumer` is not an index into the names the spool was opened with.
    pub fn reader_for(&self, consumer: usize) -> Reader {
        let mut r = Reader {
            inner: self.inner.clone(),
            segment: 0,
            offset: HEADER_LEN,
            skip_below: 0,
            file: None,
            corrupt_frames: 0,
            spare: Vec::new(),
            lost_events: 0,
        };
        r.seek(self.acked_by(consumer));
        r
    }
}

/// What [`inspect`] finds of one consumer.
#[derive(Debug, Clone, Default)]
pub struct ConsumerState {
    /// The consumer's name.
    pub name: String,
    /// Every event below this sequence number has been delivered to it.
    pub acked_seq: u64,
    /// Last change of its ack file (its last recorded delivery), if it recorded one.
    pub last_ack: Option<std::time::SystemTime>,
}

/// What [`inspect`] finds in a spool directory.
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    /// Every event below this sequence number has been delivered to every consumer.
    pub acked_seq: u64,
    /// Each consumer's progress, in the order asked for.
    pub consumers: Vec<ConsumerState>,
    /// The sequence number the next event will get (from the committed frames).
    pub next_seq: u64,
    /// Segment files.
    pub segments: usize,
    /// Their total size.
    pub disk_bytes: u64,
    /// Bytes from the ack position to the end: roughly what is waiting.
    pub waiting_bytes: u64,
    /// The producer's cursor of the last committed frame.
    pub cursor: Option<Vec<u8>>,
    /// The first event not delivered yet, if any.
    pub oldest_waiting: Option<Vec<u8>>,
    /// Creation time of the segment holding it: it was spooled at or after this.
    pub oldest_segment_created: Option<std::time::SystemTime>,
    /// Last change of the newest segment (the last append).
    pub last_append: Option<std::time::SystemTime>,
    /// The most recent recorded delivery, to any consumer.
    pub last_ack: Option<std::time::SystemTime>,
    /// Corrupt frames skipped and events lost since the spool was created.
    pub losses: Losses,
}

impl Inspection {
    /// Events appended but not delivered.
    pub fn waiting(&self) -> u64 {
        self.next_seq.saturating_sub(self.acked_seq)
    }
}

/// Reads a spool directory without taking its lock or writing anything, so it works while the
/// owning process runs (what it reads may be a moment old). Frames being written are ignored.
/// `consumers` are named as for [`Spool::open_consumers`].
///
/// # Errors
/// [`Error::Io`] if the directory or a file cannot be read.
pub fn inspect(dir: &Path, opts: Options, consumers: &[&str]) -> Result<Inspection> {
    let segments = list_segments(dir)?;
    let mut acks = Vec::with_capacity(consumers.len());
    let mut out = Inspection {
        segments: segments.len(),
        losses: losses::read(&dir.join(losses::FILE)).unwrap_or_default(),
        ..Inspection::default()
    };
    for name in consumers {
        let path = ack_path(dir, name);
        let pos = ack::AckFile::read(&path).map_err(io_err("read", &path))?;
        // The file exists from the first open on; only a recorded position is a send.
        let last_ack = pos.and_then(|_| fs::metadata(&path).and_then(|m| m.modified()).ok());
        out.last_ack = out.last_ack.max(last_ack);
        acks.push((name.to_string(), pos, last_ack));
    }
    let oldest = segments.first().copied().unwrap_or(0);
    let start = Position {
        seq: oldest,
        segment: oldest,
        offset: HEADER_LEN,
    };
    for (name, pos, last_ack) in &acks {
        out.consumers.push(ConsumerState {
            name: name.clone(),
            acked_seq: pos.filter(|p| p.seq >= oldest).unwrap_or(start).seq,
            last_ack: *last_ack,
        });
    }
    let ack = slowest_known(acks.iter().map(|(_, p, _)| p.filter(|p| p.seq >= oldest)));
    let lens = segment_lens(dir)?;
    out.disk_bytes = lens.iter().map(|(_, len)| len).sum();
    let Some(&last) = segments.last() else {
        out.acked_seq = ack.map_or(0, |a| a.seq);
        out.next_seq = out.acked_seq;
        for c in &mut out.consumers {
            c.acked_seq = out.acked_seq;
        }
        return Ok(out);
    };
    let last_path = segment_path(dir, last);
    let file = File::open(&last_path).map_err(io_err("open", &last_path))?;
    let len = file.metadata().map_err(io_err("stat", &last_path))?.len();
    out.last_append = file.metadata().and_then(|m| m.modified()).ok();
    let scan =
        scan_segment(&file, last, len, opts.max_frame_bytes).map_err(io_err("read", &last_path))?;
    out.next_seq = scan.next_seq;
    out.cursor = scan.last.map(|(c, _)| c);
    let pos = ack.unwrap_or(Position {
        seq: segments[0],
        segment: segments[0],
        offset: HEADER_LEN,
    });
    out.acked_seq = pos.seq;
    out.waiting_bytes = bytes_from(pos, &lens);
    // The first waiting event: from the ack position, the first frame that holds it.
    let start = segments
        .iter()
        .position(|s| *s >= pos.segment)
        .unwrap_or(segments.len());
    'segments: for &seg in &segments[start..] {
        let p = segment_path(dir, seg);
        let Ok(f) = File::open(&p) else { continue };
        let limit = f.metadata().map_or(0, |m| m.len());
        let mut hb = [0u8; HEADER_LEN as usize];
        if f.read_exact_at(&mut hb, 0).is_ok() {
            out.oldest_segment_created = SegmentHeader::decode(&hb).map(|h| {
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(h.created_unix_ms)
            });
        }
        let mut at = if seg == pos.segment {
            pos.offset
        } else {
            HEADER_LEN
        };
        while at + FRAME_PREFIX_LEN <= limit {
            let Ok(Some((body, b))) = read_frame(&f, at, limit, opts.max_frame_bytes) else {
                continue 'segments;
            };
            at += FRAME_PREFIX_LEN + body.len() as u64;
            let end = b.first_seq + b.events.len() as u64;
            if end > pos.seq && !b.events.is_empty() {
                let i = pos.seq.saturating_sub(b.first_seq) as usize;
                out.oldest_waiting = b.events.get(i).map(|r| body[r.clone()].to_vec());
                break 'segments;
            }
        }
    }
    if out.waiting() == 0 {
        // The rest of the last delivered frame is on disk, but nothing of it waits.
        out.waiting_bytes = 0;
        out.oldest_waiting = None;
        out.oldest_segment_created = None;
    }
    Ok(out)
}

/// Creates a segment: header, then (if there is one) a snapshot of the cursor, then
/// `fdatasync` of the file and `fsync` of the directory. Returns the file and its length.
fn create_segment(
    fsys: &dyn Filesystem,
    dir: &Path,
    spool_id: [u8; 16],
    first_seq: u64,
    cursor: Option<&[u8]>,
    batch_no: u64,
) -> Result<(File, u64)> {
    let p = segment_path(dir, first_seq);
    let file = fsys.create_new(&p).map_err(io_err("create", &p))?;
    let mut bytes = SegmentHeader {
        spool_id,
        first_seq,
        created_unix_ms: now_ms(),
    }
    .encode()
    .to_vec();
    if let Some(c) = cursor {
        let mut frame = Vec::new();
        format::encode_frame(
            &mut frame,
            KIND_CURSOR_SNAPSHOT,
            first_seq,
            batch_no,
            c,
            &[],
        );
        bytes.extend_from_slice(&frame);
    }
    if let Err(e) = filesystem::write_all_at(fsys, &file, &bytes, 0) {
        let _ = fs::remove_file(&p);
        return Err(Error::Io {
            op: "write",
            path: p,
            source: e,
        });
    }
    fsys.sync_data(&file).map_err(|source| Error::Sync {
        path: p.clone(),
        source,
    })?;
    sync_dir(fsys, dir)?;
    Ok((file, bytes.len() as u64))
}

/// Reads frames in order, up to the durable end, from a position.
#[derive(Debug)]
pub struct Reader {
    inner: Arc<Inner>,
    segment: u64,
    offset: u64,
    /// Events below this sequence number are not returned again.
    skip_below: u64,
    file: Option<(u64, File)>,
    corrupt_frames: u64,
    lost_events: u64,
    /// A frame buffer handed back by [`Reader::recycle`], read into next: no allocation, and no
    /// zeroing, per frame.
    spare: Vec<u8>,
}

/// The events of one frame, from the reader's position on.
#[derive(Debug)]
pub struct Frame {
    /// Segment holding the frame.
    pub segment: u64,
    /// Offset of the frame in the segment.
    pub offset: u64,
    first_seq: u64,
    skip: usize,
    body: Vec<u8>,
    events: Vec<std::ops::Range<usize>>,
}

impl Frame {
    /// The frame's events not yet returned, with their sequence numbers.
    pub fn events(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.events
            .iter()
            .enumerate()
            .skip(self.skip)
            .map(|(i, r)| (self.first_seq + i as u64, &self.body[r.clone()]))
    }

    /// Number of events [`Frame::events`] yields.
    pub fn len(&self) -> usize {
        self.events.len() - self.skip
    }

    /// True if the frame yields no event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ack position that covers every event of this frame below `seq`.
    pub fn position(&self, seq: u64) -> Position {
        Position {
            seq,
            segment: self.segment,
            offset: self.offset,
        }
    }

    /// The sequence number after the frame's last event.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.events.len() as u64
    }
}

impl Reader {
    /// Moves to `pos`: the next frame returned is the one at `pos`, without its events below
    /// `pos.seq`.
    pub fn seek(&mut self, pos: Position) {
        self.segment = pos.segment;
        self.offset = pos.offset.max(HEADER_LEN);
        self.skip_below = pos.seq;
    }

    /// Takes back a frame's buffer for the next read. The reader keeps the largest it is
    /// given until [`Reader::release_buffer`].
    pub fn recycle(&mut self, frame: Frame) {
        if frame.body.capacity() > self.spare.capacity() {
            self.spare = frame.body;
        }
    }

    /// Frees the kept frame buffer (an idle reader need not hold a page's worth of memory).
    pub fn release_buffer(&mut self) {
        self.spare = Vec::new();
    }

    /// Frames found corrupt (and skipped) so far.
    pub fn corrupt_frames(&self) -> u64 {
        self.corrupt_frames
    }

    /// Events lost to corruption so far: the gaps in sequence numbers met (a corrupt frame
    /// skipped, or a segment set aside at recovery), known once the next valid frame is read.
    pub fn lost_events(&self) -> u64 {
        self.lost_events
    }

    /// Moves to the start of the first segment after the current one; `false` if there is none.
    fn advance_segment(&mut self) -> Result<bool> {
        match list_segments(&self.inner.dir)?
            .into_iter()
            .find(|s| *s > self.segment)
        {
            Some(next) => {
                self.segment = next;
                self.offset = HEADER_LEN;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The next frame holding events not yet returned, or `None` at the durable end.
    ///
    /// # Errors
    /// [`Error::Io`] if a segment cannot be read.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        let dir = self.inner.dir.clone();
        let max_body = self.inner.opts.max_frame_bytes;
        loop {
            let durable = *lock(&self.inner.durable);
            if self.file.as_ref().is_none_or(|(s, _)| *s != self.segment) {
                let p = segment_path(&dir, self.segment);
                match File::open(&p) {
                    Ok(f) => self.file = Some((self.segment, f)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        if self.advance_segment()? {
                            continue;
                        }
                        return Ok(None);
                    }
                    Err(e) => return Err(io_err("open", &p)(e)),
                }
            }
            let Some((_, file)) = self.file.as_ref() else {
                return Ok(None);
            };
            let path = segment_path(&dir, self.segment);
            let sealed = self.segment != durable.segment;
            let limit = if sealed {
                file.metadata().map_err(io_err("stat", &path))?.len()
            } else {
                durable.offset
            };
            if self.offset + FRAME_PREFIX_LEN > limit {
                if !sealed {
                    return Ok(None);
                }
                if self.offset < limit {
                    self.corrupt_frames += 1;
                    lock(&self.inner.losses).corrupt_frame(self.segment, self.offset);
                    log::error!(
                        "Spool {}: {} unreadable bytes at the end of sealed segment {} skipped.",
                        dir.display(),
                        limit - self.offset,
                        path.display()
                    );
                }
                if self.advance_segment()? {
                    continue;
                }
                return Ok(None);
            }
            let at = self.offset;
            let mut body = std::mem::take(&mut self.spare);
            let read = read_frame_into(file, at, limit, max_body, &mut body);
            match read.map_err(io_err("read", &path))? {
                Some((len, b)) => {
                    self.offset = at + FRAME_PREFIX_LEN + len as u64;
                    let end = b.first_seq + b.events.len() as u64;
                    if b.first_seq > self.skip_below {
                        let (from, lost) = (self.skip_below, b.first_seq - self.skip_below);
                        self.lost_events += lost;
                        lock(&self.inner.losses).lost(from, lost);
                        self.skip_below = b.first_seq;
                        log::error!(
                            "Spool {}: {lost} events lost to corruption (sequence numbers {from} to {}); reading goes on at {}.",
                            dir.display(),
                            b.first_seq - 1,
                            b.first_seq
                        );
                    }
                    if !matches!(b.kind, KIND_DATA | KIND_PENDING)
                        || b.events.is_empty()
                        || end <= self.skip_below
                    {
                        self.spare = body;
                        continue;
                    }
                    let skip = self.skip_below.saturating_sub(b.first_seq) as usize;
                    self.skip_below = end;
                    return Ok(Some(Frame {
                        segment: self.segment,
                        offset: at,
                        first_seq: b.first_seq,
                        skip,
                        body,
                        events: b.events,
                    }));
                }
                None => {
                    self.spare = body;
                    self.corrupt_frames += 1;
                    lock(&self.inner.losses).corrupt_frame(self.segment, at);
                    let next =
                        resync(file, at + 1, limit, max_body).map_err(io_err("read", &path))?;
                    log::error!(
                        "Spool {}: corrupt frame at offset {} of {}; skipped {} bytes to the next valid frame.",
                        dir.display(),
                        at,
                        path.display(),
                        next - at
                    );
                    self.offset = next;
                }
            }
        }
    }
}

/// Reads and checks the frame at `at`; `None` if it is invalid or runs past `limit`.
fn read_frame(
    file: &File,
    at: u64,
    limit: u64,
    max_body: u32,
) -> io::Result<Option<(Vec<u8>, format::Body)>> {
    let mut body = Vec::new();
    let frame = read_frame_into(file, at, limit, max_body, &mut body)?;
    Ok(frame.map(|(len, b)| {
        body.truncate(len);
        (body, b)
    }))
}

/// As [`read_frame`], into `buf`: the body is `buf[..len]` (`len` is returned). `buf` only
/// grows, so a reused buffer is not zeroed again.
fn read_frame_into(
    file: &File,
    at: u64,
    limit: u64,
    max_body: u32,
    buf: &mut Vec<u8>,
) -> io::Result<Option<(usize, format::Body)>> {
    let mut prefix = [0u8; FRAME_PREFIX_LEN as usize];
    file.read_exact_at(&mut prefix, at)?;
    let Some(p) = format::decode_prefix(&prefix, max_body) else {
        return Ok(None);
    };
    if at + FRAME_PREFIX_LEN + u64::from(p.body_len) > limit {
        return Ok(None);
    }
    let len = p.body_len as usize;
    if buf.capacity() == 0 {
        // A fresh buffer: zeroed by the allocator (calloc), often for free.
        *buf = vec![0; len];
    } else if buf.len() < len {
        buf.resize(len, 0);
    }
    let body = &mut buf[..len];
    file.read_exact_at(body, at + FRAME_PREFIX_LEN)?;
    Ok(format::decode_body(p, body).map(|b| (len, b)))
}

/// Finds the next offset ≥ `from` where a valid frame starts, or `limit` if there is none.
fn resync(file: &File, from: u64, limit: u64, max_body: u32) -> io::Result<u64> {
    const CHUNK: usize = 1 << 16;
    let mut buf = vec![0u8; CHUNK + 3];
    let mut base = from;
    while base < limit {
        let n = ((limit - base) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], base)?;
        let mut i = 0;
        while i + 4 <= n {
            if buf[i..i + 4] == FRAME_MAGIC
                && read_frame(file, base + i as u64, limit, max_body)?.is_some()
            {
                return Ok(base + i as u64);
            }
            i += 1;
        }
        if n < buf.len() {
            break;
        }
        base += CHUNK as u64; // the 3-byte overlap catches a magic split across chunks
    }
    Ok(limit)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fault_tests;

#[cfg(test)]
mod fuzz_tests;
