//! The segment files as files: their names, listing and sizes, creating one (header and cursor
//! snapshot, synced with its directory), and scanning one's frames. Recovery, the writer, the
//! reader and `inspect` all go through these, so a segment is named and scanned one way.

use crate::Position;
use crate::error::{Error, Result, io_err};
use crate::filesystem::{self, Filesystem};
use crate::format::{
    self, FRAME_PREFIX_LEN, HEADER_LEN, KIND_CURSOR_SNAPSHOT, KIND_PENDING, SegmentHeader,
};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.seg"))
}

/// Lists segment files by first sequence number, ascending.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
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
pub(crate) fn segment_lens(dir: &Path) -> Result<Vec<(u64, u64)>> {
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
pub(crate) fn bytes_from(pos: Position, lens: &[(u64, u64)]) -> u64 {
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

pub(crate) fn sync_dir(fs: &dyn Filesystem, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).map_err(io_err("fsync directory", dir))
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn new_spool_id() -> [u8; 16] {
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
pub(crate) struct Scan {
    /// End of the last valid committed frame.
    pub(crate) valid_end: u64,
    /// Number of valid committed frames.
    pub(crate) frames: u64,
    /// Valid pending frames after `valid_end` that no commit follows.
    pub(crate) uncommitted: u64,
    /// Sequence number after the last event.
    pub(crate) next_seq: u64,
    /// Cursor and batch number of the last frame.
    pub(crate) last: Option<(Vec<u8>, u64)>,
}

/// Reads frames from the start of a segment until the first invalid one.
pub(crate) fn scan_segment(
    file: &File,
    first_seq: u64,
    len: u64,
    max_body: u32,
) -> io::Result<Scan> {
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

/// Creates a segment: header, then (if there is one) a snapshot of the cursor, then
/// `fdatasync` of the file and `fsync` of the directory. Returns the file and its length.
pub(crate) fn create_segment(
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
