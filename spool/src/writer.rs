//! The producer side: appending a frame (data, or a transaction's pending frames), its
//! `fdatasync`, and only then the new durable end published to readers; rotating segments.
//! A write the disk refuses is cut back so it can be retried; a failed `fdatasync` is final.

use crate::error::{Error, Result, io_err};
use crate::filesystem;
use crate::format::{self, FRAME_PREFIX_LEN, KIND_DATA, KIND_PENDING};
use crate::segment::{create_segment, segment_path};
use crate::{Durable, Spool, lock};
use std::fs::File;
use std::io;
use std::sync::MutexGuard;

#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) file: File,
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) next_seq: u64,
    pub(crate) batch_no: u64,
    pub(crate) cursor: Option<Vec<u8>>,
    /// Set after an fsync failure: nothing more is written.
    pub(crate) failed: bool,
    /// The write head of an open transaction (pending frames after the committed end).
    pub(crate) pending: Option<Head>,
}

/// Where the next frame goes: offset, sequence number and batch number.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    pub(crate) offset: u64,
    pub(crate) next_seq: u64,
    pub(crate) batch_no: u64,
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

/// Bytes of a frame gathered before each write: a frame of any size (a producer's batch
/// may be megabytes) goes to the file through this much memory, which stays small and cache-warm.
pub(crate) const STAGE_BYTES: usize = 64 << 10;

impl Spool {
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
        self.append_dated(events, cursor, None)
    }

    /// As [`Spool::append`], recording `newest` (Unix seconds) as the time of the frame's
    /// newest event: a consumer that delivers the frame knows how fresh it is
    /// ([`crate::Frame::newest_time`]) without reading the events.
    ///
    /// # Errors
    /// As [`Spool::append`].
    pub fn append_dated(
        &self,
        events: &[&[u8]],
        cursor: &[u8],
        newest: Option<u64>,
    ) -> Result<Durable> {
        let newest_s = newest.map_or(0, |t| u32::try_from(t).unwrap_or(0));
        let mut w = self.writer()?;
        let result = self.write_frame(&mut w, KIND_DATA, newest_s, cursor, events);
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
        let result = self.write_frame(&mut w, KIND_PENDING, 0, &[], events);
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
        newest_s: u32,
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
            newest_s,
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
}
