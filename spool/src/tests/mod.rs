//! Unit tests of the spool, one file per subject; the helpers they share are here.

mod consumers;
mod corruption;
mod faults;
mod fuzz;
mod recovery;
mod round_trip;
mod transactions;

pub(crate) use crate::format::{self, FRAME_PREFIX_LEN, HEADER_LEN, KIND_DATA};
pub(crate) use crate::reader::read_frame;
pub(crate) use crate::segment::{list_segments, segment_path};
pub(crate) use crate::writer::STAGE_BYTES;
pub(crate) use crate::*;
pub(crate) use std::fs;
pub(crate) use std::path::Path;

/// Opens `dir` with one consumer, `c` (index 0).
pub(crate) fn open(dir: &Path, opts: Options) -> std::result::Result<Spool, Error> {
    Spool::open_consumers(dir, opts, &["c"])
}

pub(crate) fn small() -> Options {
    Options {
        segment_bytes: 600,
        max_frame_bytes: 1 << 20,
    }
}

pub(crate) fn event(i: u64) -> Vec<u8> {
    format!(
        "{{\"uuid\":\"e{i}\",\"pad\":\"{}\"}}",
        "x".repeat((i % 7) as usize)
    )
    .into_bytes()
}

/// Appends `frames` batches of 3 events each; the cursor after batch k is "c{k}".
pub(crate) fn fill(s: &Spool, from_batch: u64, frames: u64) {
    for k in from_batch..from_batch + frames {
        let evs: Vec<Vec<u8>> = (0..3).map(|j| event(k * 3 + j)).collect();
        let refs: Vec<&[u8]> = evs.iter().map(|e| e.as_slice()).collect();
        s.append(&refs, format!("c{k}").as_bytes()).unwrap();
    }
}

pub(crate) fn read_all(s: &Spool) -> Vec<(u64, Vec<u8>)> {
    let mut r = s.reader_for(0);
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        out.extend(f.events().map(|(q, e)| (q, e.to_vec())));
    }
    out
}

pub(crate) fn refs(evs: &[Vec<u8>]) -> Vec<&[u8]> {
    evs.iter().map(|e| e.as_slice()).collect()
}

/// Frame boundaries (start offsets) of a segment file, and its end.
pub(crate) fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = HEADER_LEN as usize;
    while at + FRAME_PREFIX_LEN as usize <= bytes.len() {
        let Some(p) = format::decode_prefix(&bytes[at..at + 12], 1 << 20) else {
            break;
        };
        out.push(at);
        at += 12 + p.body_len as usize;
    }
    out.push(at);
    out
}

/// A small deterministic generator (xorshift) for the fault positions.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Reads everything consumer `c` has not acked and returns its last position and event count.
pub(crate) fn drain(s: &Spool, c: usize) -> (Position, usize) {
    let mut r = s.reader_for(c);
    let (mut last, mut n) = (s.acked_by(c), 0);
    while let Some(f) = r.next_frame().unwrap() {
        n += f.len();
        last = f.position(f.end_seq());
    }
    (last, n)
}
