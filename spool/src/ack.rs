//! Each consumer's durable progress: its two-slot ack file (never torn, never zero-length), the
//! positions of every consumer, and the deletion of segments once every consumer is past them
//! (the slowest decides, so one output's progress can never delete what another still needs).
//!
//! Layout: two 64-byte slots at offsets 0 and 4096 (different sectors, so one torn write can
//! damage at most one slot). Slot: magic `SPLA`, u16 version, u16 zero, u64 generation,
//! u64 next_seq, u64 segment, u64 offset, 20 zero bytes, u32 CRC-32 of bytes 0..60.
//! A write goes to the slot holding the older generation, then `fdatasync`; a reader takes the
//! valid slot with the higher generation. No rename, no directory fsync.

use crate::error::{Result, io_err};
use crate::filesystem::Filesystem;
use crate::format::crc32;
use crate::segment::{list_segments, segment_path};
use crate::{Position, Spool, lock};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"SPLA";
const SLOT_LEN: usize = 64;
const SLOT_OFFSETS: [u64; 2] = [0, 4096];

/// The open ack file and the generation last written.
#[derive(Debug)]
pub struct AckFile {
    file: File,
    generation: u64,
    /// Which slot holds `generation`.
    slot: usize,
}

impl AckFile {
    /// Opens (creating if needed) the ack file and returns the newest valid position in it.
    pub fn open(path: &Path) -> io::Result<(AckFile, Option<Position>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let (generation, slot, pos) = match newest(&file) {
            Some((g, s, p)) => (g, s, Some(p)),
            None => (0, 1, None),
        };
        Ok((
            AckFile {
                file,
                generation,
                slot,
            },
            pos,
        ))
    }

    /// Reads the newest valid position without opening the file for writing (for `status`,
    /// while another process owns the spool). `None` if the file is missing or holds none.
    pub fn read(path: &Path) -> io::Result<Option<Position>> {
        match std::fs::File::open(path) {
            Ok(f) => Ok(newest(&f).map(|(_, _, p)| p)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Durably records `pos` in the older slot.
    pub fn write(&mut self, fs: &dyn Filesystem, pos: Position) -> io::Result<()> {
        let generation = self.generation + 1;
        let slot = 1 - self.slot;
        crate::filesystem::write_all_at(
            fs,
            &self.file,
            &encode(generation, pos),
            SLOT_OFFSETS[slot],
        )?;
        fs.sync_data(&self.file)?;
        self.generation = generation;
        self.slot = slot;
        Ok(())
    }
}

/// The valid slot with the highest generation: (generation, slot index, position).
fn newest(file: &std::fs::File) -> Option<(u64, usize, Position)> {
    let mut best: Option<(u64, usize, Position)> = None;
    for (i, off) in SLOT_OFFSETS.iter().enumerate() {
        let mut b = [0u8; SLOT_LEN];
        if file.read_exact_at(&mut b, *off).is_err() {
            continue;
        }
        if let Some((generation, pos)) = decode(&b)
            && best.is_none_or(|(g, _, _)| generation > g)
        {
            best = Some((generation, i, pos));
        }
    }
    best
}

fn encode(generation: u64, pos: Position) -> [u8; SLOT_LEN] {
    let mut b = [0u8; SLOT_LEN];
    b[0..4].copy_from_slice(&MAGIC);
    b[4..6].copy_from_slice(&1u16.to_le_bytes());
    b[8..16].copy_from_slice(&generation.to_le_bytes());
    b[16..24].copy_from_slice(&pos.seq.to_le_bytes());
    b[24..32].copy_from_slice(&pos.segment.to_le_bytes());
    b[32..40].copy_from_slice(&pos.offset.to_le_bytes());
    let crc = crc32(&[&b[0..60]]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode(b: &[u8; SLOT_LEN]) -> Option<(u64, Position)> {
    if b[0..4] != MAGIC || b[4..6] != 1u16.to_le_bytes() {
        return None;
    }
    if crc32(&[&b[0..60]]).to_le_bytes() != b[60..64] {
        return None;
    }
    let u = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(a)
    };
    Some((
        u(8),
        Position {
            seq: u(16),
            segment: u(24),
            offset: u(32),
        },
    ))
}

/// One consumer's open ack file and its durable position.
#[derive(Debug)]
pub(crate) struct Acked {
    pub(crate) file: AckFile,
    pub(crate) path: PathBuf,
    pub(crate) pos: Position,
}

/// The ack file of consumer `name`.
pub(crate) fn ack_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("ack.{name}.state"))
}

/// Where a consumer reads from: its recorded position, or the oldest segment's start when it
/// has none or its position is in a segment that is gone (the other consumers were past it
/// while this one was not configured).
pub(crate) fn position_or_oldest(pos: Option<Position>, oldest: u64) -> Position {
    pos.filter(|p| p.seq >= oldest).unwrap_or(Position {
        seq: oldest,
        segment: oldest,
        offset: crate::format::HEADER_LEN,
    })
}

/// The position of the slowest consumer.
pub(crate) fn slowest(acked: &[Acked]) -> Position {
    slowest_known(acked.iter().map(|a| Some(a.pos))).unwrap_or_default()
}

/// The lowest of the consumers' recorded positions; `None` if any consumer has none (it starts
/// at the oldest segment, so it holds every segment).
pub(crate) fn slowest_known(positions: impl Iterator<Item = Option<Position>>) -> Option<Position> {
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

impl Spool {
    /// The slowest consumer's last durable ack.
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
        // After the deletions: a producer waiting for room sees the disk they freed too.
        inner.ack_moved.notify(usize::MAX);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(n: u64) -> Position {
        Position {
            seq: n,
            segment: n / 10,
            offset: n * 3,
        }
    }

    #[test]
    fn newest_slot_wins_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ack.state");
        let (mut a, none) = AckFile::open(&p).unwrap();
        assert_eq!(none, None);
        for n in 1..=5 {
            a.write(&crate::filesystem::RealFs, pos(n)).unwrap();
        }
        drop(a);
        let (_, got) = AckFile::open(&p).unwrap();
        assert_eq!(got, Some(pos(5)));
    }

    #[test]
    fn a_torn_newest_slot_falls_back_to_the_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ack.state");
        let (mut a, _) = AckFile::open(&p).unwrap();
        a.write(&crate::filesystem::RealFs, pos(1)).unwrap();
        a.write(&crate::filesystem::RealFs, pos(2)).unwrap(); // slot 0 after slot 1
        let newest = a.slot;
        drop(a);
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&[0xAB; 20], SLOT_OFFSETS[newest] + 10)
            .unwrap();
        let (mut a, got) = AckFile::open(&p).unwrap();
        assert_eq!(got, Some(pos(1)));
        // The next write must not overwrite the surviving slot.
        a.write(&crate::filesystem::RealFs, pos(3)).unwrap();
        drop(a);
        assert_eq!(AckFile::open(&p).unwrap().1, Some(pos(3)));
    }

    #[test]
    fn a_zeroed_file_reads_as_no_position() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ack.state");
        std::fs::write(&p, vec![0u8; 8192]).unwrap();
        assert_eq!(AckFile::open(&p).unwrap().1, None);
    }
}
