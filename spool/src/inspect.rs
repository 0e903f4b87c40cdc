//! A process that does not own a spool may still look at it (to report on it, or before
//! writing to one it will open later): `inspect` reads
//! the ack files and the last segment without the lock and without writing, with the same
//! scan and consumer positions recovery uses.

use crate::ack::{AckFile, ack_path, position_or_oldest, slowest_known};
use crate::error::{Result, io_err};
use crate::format::{FRAME_PREFIX_LEN, HEADER_LEN, SegmentHeader};
use crate::reader::read_frame;
use crate::segment::{bytes_from, list_segments, scan_segment, segment_lens, segment_path};
use crate::{Losses, Options, Position, losses};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::SystemTime;

/// What [`inspect`] finds of one consumer.
#[derive(Debug, Clone, Default)]
pub struct ConsumerState {
    /// The consumer's name.
    pub name: String,
    /// Every event below this sequence number has been delivered to it.
    pub acked_seq: u64,
    /// Last change of its ack file (its last recorded delivery), if it recorded one.
    pub last_ack: Option<SystemTime>,
    /// The newest event time (Unix ms) it recorded as delivered, if any.
    pub delivered_time_ms: Option<u64>,
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
    pub oldest_segment_created: Option<SystemTime>,
    /// Last change of the newest segment (the last append).
    pub last_append: Option<SystemTime>,
    /// The most recent recorded delivery, to any consumer.
    pub last_ack: Option<SystemTime>,
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
        let pos = AckFile::read(&path).map_err(io_err("read", &path))?;
        // The file exists from the first open on; only a recorded position is a send.
        let last_ack = pos.and_then(|_| fs::metadata(&path).and_then(|m| m.modified()).ok());
        out.last_ack = out.last_ack.max(last_ack);
        acks.push((name.to_string(), pos, last_ack));
    }
    let oldest = segments.first().copied().unwrap_or(0);
    for (name, pos, last_ack) in &acks {
        out.consumers.push(ConsumerState {
            name: name.clone(),
            acked_seq: position_or_oldest(*pos, oldest).seq,
            last_ack: *last_ack,
            delivered_time_ms: crate::delivered::read(&crate::delivered::path(dir, name)),
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
    let pos = ack.unwrap_or_else(|| position_or_oldest(None, oldest));
    out.acked_seq = pos.seq;
    out.waiting_bytes = bytes_from(pos, &lens);
    (out.oldest_waiting, out.oldest_segment_created) = first_waiting(dir, opts, &segments, pos);
    if out.waiting() == 0 {
        // The rest of the last delivered frame is on disk, but nothing of it waits.
        out.waiting_bytes = 0;
        out.oldest_waiting = None;
        out.oldest_segment_created = None;
    }
    Ok(out)
}

/// The first event at or after `pos` (from the first frame that holds it), and the creation
/// time of its segment: it was spooled at or after then.
fn first_waiting(
    dir: &Path,
    opts: Options,
    segments: &[u64],
    pos: Position,
) -> (Option<Vec<u8>>, Option<SystemTime>) {
    let mut created = None;
    let start = segments
        .iter()
        .position(|s| *s >= pos.segment)
        .unwrap_or(segments.len());
    for &seg in &segments[start..] {
        let p = segment_path(dir, seg);
        let Ok(f) = File::open(&p) else { continue };
        let limit = f.metadata().map_or(0, |m| m.len());
        let mut hb = [0u8; HEADER_LEN as usize];
        if f.read_exact_at(&mut hb, 0).is_ok() {
            created = SegmentHeader::decode(&hb).map(|h| {
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
                break;
            };
            at += FRAME_PREFIX_LEN + body.len() as u64;
            let end = b.first_seq + b.events.len() as u64;
            if end > pos.seq && !b.events.is_empty() {
                let i = pos.seq.saturating_sub(b.first_seq) as usize;
                return (b.events.get(i).map(|r| body[r.clone()].to_vec()), created);
            }
        }
    }
    (None, created)
}
