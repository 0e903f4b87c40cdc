//! Reading frames in order up to the durable end, from a consumer's position: frame buffers
//! reused, a corrupt frame skipped by resynchronising on the next valid one, and every
//! sequence gap counted as lost events (the reader never stops on bad bytes).

use crate::error::{Result, io_err};
use crate::format::{self, FRAME_MAGIC, FRAME_PREFIX_LEN, HEADER_LEN, KIND_DATA, KIND_PENDING};
use crate::segment::{list_segments, segment_path};
use crate::{Inner, Position, Spool, lock};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

impl Spool {
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
    newest_s: u32,
    body: Vec<u8>,
    events: Vec<std::ops::Range<usize>>,
}

impl Frame {
    /// The time of the frame's newest event (Unix seconds) as its producer recorded it
    /// ([`crate::Spool::append_dated`]); `None` if it recorded none.
    pub fn newest_time(&self) -> Option<u64> {
        (self.newest_s != 0).then_some(u64::from(self.newest_s))
    }

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
                        newest_s: b.newest_s,
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
pub(crate) fn read_frame(
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
