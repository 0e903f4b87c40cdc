//! Opening a spool is recovery: take the lock, read each consumer's position (refusing one the
//! spool cannot have), set aside segments with a bad header, scan the last segment only (a torn
//! tail or an uncommitted transaction is cut off), then delete what every consumer has, never
//! the writer's segment. Its cost does not grow with the backlog.

use crate::ack::{
    AckFile, Acked, ack_path, position_or_oldest, slowest_known, valid_consumer_name,
};
use crate::error::{Error, Result, io_err};
use crate::filesystem::{Filesystem, RealFs};
use crate::format::{HEADER_LEN, SegmentHeader};
use crate::segment::{
    create_segment, list_segments, new_spool_id, scan_segment, segment_lens, segment_path,
};
use crate::writer::Writer;
use crate::{Durable, Inner, Options, Position, Spool, losses};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

impl Spool {
    /// Opens (creating if needed) the spool in `dir` with one consumer per name (ack file
    /// `ack.<name>.state`), recovering from any crash. Consumers are then addressed by their
    /// index in `consumers`.
    ///
    /// A consumer with no ack file yet starts at the oldest segment. Ack files of consumers
    /// not named are left alone and do not hold segments back.
    ///
    /// # Errors
    /// [`Error::Locked`] if another process has it open; [`Error::Io`] if the directory or its
    /// files cannot be read or written, and (`op` "name consumer") for a name that is not
    /// [`valid_consumer_name`] or an empty list.
    pub fn open_consumers(dir: &Path, opts: Options, consumers: &[&str]) -> Result<Spool> {
        Spool::open_with(dir, opts, consumers, Arc::new(RealFs))
    }

    /// As [`Spool::open_consumers`], with every write and sync going through `fs` (a test's
    /// [`crate::FaultFs`] injects faults there).
    ///
    /// # Errors
    /// As [`Spool::open_consumers`].
    pub fn open_with(
        dir: &Path,
        opts: Options,
        consumers: &[&str],
        fs: Arc<dyn Filesystem>,
    ) -> Result<Spool> {
        if consumers.is_empty() || consumers.iter().any(|c| !valid_consumer_name(c)) {
            return Err(Error::Io {
                op: "name consumer",
                path: dir.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("consumer names must be letters, digits, _ or -: {consumers:?}"),
                ),
            });
        }
        let lock_file = take_lock(dir)?;
        let mut acks = Vec::with_capacity(consumers.len());
        for name in consumers {
            let path = ack_path(dir, name);
            let (file, pos) = AckFile::open(&path).map_err(io_err("open", &path))?;
            acks.push((file, path, pos));
        }
        // A position past the spool's files (a valid checksum over a wrong position) would
        // skip events or fail every read: refused before it can decide any deletion.
        let lens = segment_lens(dir)?;
        for (_, path, pos) in &mut acks {
            if let Some(p) = *pos
                && !within_files(p, &lens)
            {
                refuse_position(dir, path, p);
                *pos = None;
            }
        }
        let ack_pos = slowest_known(acks.iter().map(|(_, _, p)| *p));
        let segments = list_segments(dir)?;
        let acked_seq = ack_pos.map_or(0, |a| a.seq);
        let (mut valid, spool_id) = check_headers(dir, &segments, acked_seq)?;
        let spool_id = spool_id.unwrap_or_else(new_spool_id);
        // The writer is found first: the segment holding the last committed cursor is never
        // deleted, even when every consumer is past it (a crash can leave an empty segment
        // created after a full acknowledgement beside it; that one goes, the cursor stays).
        let recovered = recover_writer(&*fs, dir, opts, &mut valid)?;
        // Past the recovered end (a torn tail cut off, or an ack beyond the last event):
        // refused too, and the deletions below count without it.
        let mut acked_seq = acked_seq;
        if let Some(w) = &recovered {
            let end = Position {
                seq: w.next_seq,
                segment: w.segment,
                offset: w.offset,
            };
            for (_, path, pos) in &mut acks {
                let Some(p) = *pos else { continue };
                if p.segment > w.segment && p.seq == w.next_seq {
                    // At the start of a segment that held no frame (removed above): the
                    // same place as the writer's end.
                    *pos = Some(end);
                } else if p.seq > w.next_seq
                    || p.segment > w.segment
                    || (p.segment == w.segment && p.offset > w.offset)
                {
                    refuse_position(dir, path, p);
                    *pos = None;
                }
            }
            acked_seq = slowest_known(acks.iter().map(|(_, _, p)| *p)).map_or(0, |a| a.seq);
        }
        // Then the segments every consumer is past go, all but the writer's own.
        while valid.len() >= 2 && valid[1] <= acked_seq {
            let p = segment_path(dir, valid[0]);
            fs::remove_file(&p).map_err(io_err("delete", &p))?;
            valid.remove(0);
        }
        let writer = match recovered {
            Some(w) => w,
            None => {
                let (file, len) = create_segment(&*fs, dir, spool_id, acked_seq, None, 0)?;
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
        let acked = acks
            .into_iter()
            .map(|(file, path, pos)| Acked {
                file,
                path,
                pos: position_or_oldest(pos, oldest),
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
                consumers: consumers.iter().map(|c| (*c).to_string()).collect(),
                data_ready: event_listener::Event::new(),
                ack_moved: event_listener::Event::new(),
                room_wanted: std::sync::atomic::AtomicBool::new(false),
                fs,
                losses: Mutex::new(losses::Tracker::open(dir)),
                reclaimed_below: std::sync::atomic::AtomicU64::new(0),
                _lock: lock_file,
            }),
        })
    }
}

/// Whether a recorded position can be one of this spool's: in a segment file that exists (or
/// below the oldest, whose segments are gone), within its length, and not past the next
/// segment's first event. A spool with no segment takes any position (nothing can be skipped).
fn within_files(p: Position, lens: &[(u64, u64)]) -> bool {
    let Some(&(oldest, _)) = lens.first() else {
        return true;
    };
    if p.segment < oldest {
        return true;
    }
    match lens.iter().position(|&(seg, _)| seg == p.segment) {
        None => false,
        Some(i) => p.offset <= lens[i].1 && lens.get(i + 1).is_none_or(|&(next, _)| p.seq <= next),
    }
}

/// Says that the ack file `path` holds a position the spool cannot have; its consumer resumes
/// from the oldest retained event (a few events may be sent again, none is skipped).
fn refuse_position(dir: &Path, path: &Path, p: Position) {
    log::error!(
        "Spool {}: {} is corrupt: it records event {} at offset {} of segment {}, past the spool's end; that output resumes from the oldest event kept (some may be sent again, none is skipped).",
        dir.display(),
        path.display(),
        p.seq,
        p.offset,
        p.segment
    );
}

/// Creates `dir` (0700) if needed and takes its `LOCK` (flock), held as long as the file is.
fn take_lock(dir: &Path) -> Result<File> {
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
        Ok(()) => Ok(lock_file),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Locked { path: dir.into() }),
        Err(fs::TryLockError::Error(e)) => Err(io_err("lock", &lock_path)(e)),
    }
}

/// Checks each segment's header: the good ones are returned (with the spool id they share);
/// a last segment no longer than a header is deleted (created, never written), and so is a bad
/// one whose events every consumer has (below `acked_seq`); any other bad one is set aside as
/// `*.seg.corrupt`, with the events it held named in the log.
fn check_headers(
    dir: &Path,
    segments: &[u64],
    acked_seq: u64,
) -> Result<(Vec<u64>, Option<[u8; 16]>)> {
    let mut spool_id: Option<[u8; 16]> = None;
    let mut valid = Vec::with_capacity(segments.len());
    for (i, &seg) in segments.iter().enumerate() {
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
        } else if segments.get(i + 1).is_some_and(|&next| next <= acked_seq) {
            log::warn!(
                "Spool {}: removing {} ({} bytes), a segment with an invalid header whose events were all delivered.",
                dir.display(),
                p.display(),
                len
            );
            fs::remove_file(&p).map_err(io_err("delete", &p))?;
        } else if i + 1 == segments.len() && len <= HEADER_LEN {
            log::warn!(
                "Spool {}: removing {} ({} bytes), a segment that was created but never written.",
                dir.display(),
                p.display(),
                len
            );
            fs::remove_file(&p).map_err(io_err("delete", &p))?;
        } else {
            let q = p.with_extension("seg.corrupt");
            let events = match segments.get(i + 1) {
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
    Ok((valid, spool_id))
}

/// The writer, recovered from the last of `valid` that holds a valid frame: a torn tail or an
/// uncommitted transaction is cut off and the cut synced; a last segment with no valid frame
/// is deleted (and popped from `valid`) and the one before is tried. `None` when none is left.
fn recover_writer(
    fsys: &dyn Filesystem,
    dir: &Path,
    opts: Options,
    valid: &mut Vec<u64>,
) -> Result<Option<Writer>> {
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
            cut_tail(fsys, dir, &p, &file, len, scan.valid_end, scan.uncommitted)?;
        }
        let (cursor, batch_no) = match scan.last {
            Some((c, b)) => (Some(c), b),
            None => (None, 0),
        };
        return Ok(Some(Writer {
            file,
            segment: seg,
            offset: scan.valid_end,
            next_seq: scan.next_seq,
            batch_no,
            cursor,
            failed: false,
            pending: None,
        }));
    }
    Ok(None)
}

/// Cuts the last segment `p` back to `valid_end` and syncs the cut, saying what was cut: a
/// transaction's `uncommitted` frames, or a torn tail.
fn cut_tail(
    fsys: &dyn Filesystem,
    dir: &Path,
    p: &Path,
    file: &File,
    len: u64,
    valid_end: u64,
    uncommitted: u64,
) -> Result<()> {
    if uncommitted > 0 {
        log::warn!(
            "Spool {}: discarding {} bytes from {}: {} frames of a transaction that never committed (it is pulled again).",
            dir.display(),
            len - valid_end,
            p.display(),
            uncommitted
        );
    } else {
        log::warn!(
            "Spool {}: truncating a torn tail of {} bytes from {} (a write cut short by a crash).",
            dir.display(),
            len - valid_end,
            p.display()
        );
    }
    fsys.set_len(file, valid_end)
        .map_err(io_err("truncate", p))?;
    fsys.sync_data(file).map_err(|source| Error::Sync {
        path: p.to_path_buf(),
        source,
    })
}
