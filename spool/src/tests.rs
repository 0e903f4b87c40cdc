//! Unit tests of the spool: round trips, rotation, recovery from torn tails, acks, locking.

use super::*;

fn small() -> Options {
    Options {
        segment_bytes: 600,
        max_frame_bytes: 1 << 20,
    }
}

fn event(i: u64) -> Vec<u8> {
    format!(
        "{{\"uuid\":\"e{i}\",\"pad\":\"{}\"}}",
        "x".repeat((i % 7) as usize)
    )
    .into_bytes()
}

/// Appends `frames` batches of 3 events each; the cursor after batch k is "c{k}".
fn fill(s: &Spool, from_batch: u64, frames: u64) {
    for k in from_batch..from_batch + frames {
        let evs: Vec<Vec<u8>> = (0..3).map(|j| event(k * 3 + j)).collect();
        let refs: Vec<&[u8]> = evs.iter().map(|e| e.as_slice()).collect();
        s.append(&refs, format!("c{k}").as_bytes()).unwrap();
    }
}

fn read_all(s: &Spool) -> Vec<(u64, Vec<u8>)> {
    let mut r = s.reader();
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        out.extend(f.events().map(|(q, e)| (q, e.to_vec())));
    }
    out
}

#[test]
fn appended_events_read_back_in_order_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open(dir.path(), small()).unwrap();
    fill(&s, 0, 20);
    assert!(
        list_segments(dir.path()).unwrap().len() > 3,
        "rotation happened"
    );
    let got = read_all(&s);
    assert_eq!(got.len(), 60);
    for (i, (seq, e)) in got.iter().enumerate() {
        assert_eq!(*seq, i as u64);
        assert_eq!(e, &event(i as u64));
    }
    assert_eq!(s.cursor().as_deref(), Some(&b"c19"[..]));
}

#[test]
fn cursor_and_sequence_survive_reopen_and_old_segments_deletion() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Spool::open(dir.path(), small()).unwrap();
        fill(&s, 0, 20);
        // Ack everything: all but the active segment go away.
        let mut r = s.reader();
        let mut last = None;
        while let Some(f) = r.next_frame().unwrap() {
            last = Some(f.position(f.end_seq()));
        }
        s.ack(last.unwrap()).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
        assert_eq!(s.backlog(), 0);
    }
    let s = Spool::open(dir.path(), small()).unwrap();
    assert_eq!(s.cursor().as_deref(), Some(&b"c19"[..]));
    assert_eq!(s.durable().next_seq, 60);
    assert!(read_all(&s).is_empty(), "acked events are not read again");
    fill(&s, 20, 1);
    let got = read_all(&s);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        vec![60, 61, 62]
    );
}

#[test]
fn cursor_survives_when_only_a_snapshot_segment_remains() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_bytes: 200,
        max_frame_bytes: 1 << 20,
    };
    {
        let s = Spool::open(dir.path(), opts).unwrap();
        fill(&s, 0, 5); // each frame is bigger than a segment: one segment per frame
        let mut r = s.reader();
        let mut last = None;
        while let Some(f) = r.next_frame().unwrap() {
            last = Some(f.position(f.end_seq()));
        }
        s.ack(last.unwrap()).unwrap();
    }
    let s = Spool::open(dir.path(), opts).unwrap();
    assert_eq!(s.cursor().as_deref(), Some(&b"c4"[..]));
    assert_eq!(s.durable().next_seq, 15);
}

#[test]
fn a_torn_last_frame_is_truncated_at_every_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_bytes: 1 << 20,
        max_frame_bytes: 1 << 20,
    };
    {
        let s = Spool::open(dir.path(), opts).unwrap();
        fill(&s, 0, 4);
    }
    let seg = segment_path(dir.path(), 0);
    let full = fs::read(&seg).unwrap();
    // Where the last frame starts: reopen a copy holding three frames.
    let three_dir = tempfile::tempdir().unwrap();
    {
        let s = Spool::open(three_dir.path(), opts).unwrap();
        fill(&s, 0, 3);
    }
    let last_start = fs::metadata(segment_path(three_dir.path(), 0))
        .unwrap()
        .len() as usize;
    assert_eq!(
        &full[64..last_start],
        &fs::read(segment_path(three_dir.path(), 0)).unwrap()[64..]
    );

    for cut in last_start..full.len() {
        let d = tempfile::tempdir().unwrap();
        fs::write(segment_path(d.path(), 0), &full[..cut]).unwrap();
        let s = Spool::open(d.path(), opts).unwrap();
        assert_eq!(s.cursor().as_deref(), Some(&b"c2"[..]), "cut at {cut}");
        assert_eq!(s.durable().next_seq, 9, "cut at {cut}");
        assert_eq!(
            fs::metadata(segment_path(d.path(), 0)).unwrap().len() as usize,
            last_start
        );
        // Appending again re-creates the lost batch, with the same sequence numbers, once.
        fill(&s, 3, 1);
        let got = read_all(&s);
        assert_eq!(got.len(), 12, "cut at {cut}");
        for (i, (seq, e)) in got.iter().enumerate() {
            assert_eq!((*seq, e), (i as u64, &event(i as u64)), "cut at {cut}");
        }
    }
}

#[test]
fn a_segment_created_but_never_written_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Spool::open(dir.path(), small()).unwrap();
        fill(&s, 0, 2);
    }
    // A crash right after creating the next segment, before its header reached the disk.
    fs::write(segment_path(dir.path(), 999), b"SPL").unwrap();
    let s = Spool::open(dir.path(), small()).unwrap();
    assert_eq!(s.cursor().as_deref(), Some(&b"c1"[..]));
    assert!(!segment_path(dir.path(), 999).exists());
    assert_eq!(read_all(&s).len(), 6);
}

#[test]
fn a_corrupt_frame_in_a_sealed_segment_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_bytes: 2000,
        max_frame_bytes: 1 << 20,
    };
    {
        let s = Spool::open(dir.path(), opts).unwrap();
        fill(&s, 0, 30);
    }
    let segs = list_segments(dir.path()).unwrap();
    assert!(segs.len() >= 3);
    // Flip a byte inside the second frame of the first segment.
    let p = segment_path(dir.path(), segs[0]);
    let mut b = fs::read(&p).unwrap();
    let first_frame_len = {
        let pf = format::decode_prefix(&b[64..76], 1 << 20).unwrap();
        12 + pf.body_len as usize
    };
    b[64 + first_frame_len + 40] ^= 0x10;
    fs::write(&p, &b).unwrap();
    let s = Spool::open(dir.path(), opts).unwrap();
    let mut r = s.reader();
    let mut seqs = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        seqs.extend(f.events().map(|(q, _)| q));
    }
    assert_eq!(r.corrupt_frames(), 1);
    assert_eq!(
        seqs.len(),
        87,
        "exactly the 3 events of the damaged frame are lost"
    );
    assert!(!seqs.contains(&3) && !seqs.contains(&5) && seqs.contains(&6));
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _s = Spool::open(dir.path(), small()).unwrap();
    match Spool::open(dir.path(), small()) {
        Err(Error::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn a_reader_resumes_mid_frame_from_a_partial_ack() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open(dir.path(), small()).unwrap();
    fill(&s, 0, 4);
    let mut r = s.reader();
    let f1 = r.next_frame().unwrap().unwrap();
    let f2 = r.next_frame().unwrap().unwrap();
    assert_eq!(f1.end_seq(), 3);
    // Events 3 and 4 of the second frame were delivered; 5 was not.
    s.ack(f2.position(5)).unwrap();
    let got: Vec<u64> = read_all(&s).into_iter().map(|g| g.0).collect();
    assert_eq!(got, vec![5, 6, 7, 8, 9, 10, 11]);
    // A rewind with seek re-reads from the acked position.
    r.seek(s.acked());
    assert_eq!(
        r.next_frame().unwrap().unwrap().events().next().unwrap().0,
        5
    );
}

#[test]
fn files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("t");
    let s = Spool::open(&sd, small()).unwrap();
    fill(&s, 0, 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&sd).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        fs::metadata(segment_path(&sd, 0))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

fn refs(evs: &[Vec<u8>]) -> Vec<&[u8]> {
    evs.iter().map(|e| e.as_slice()).collect()
}

#[test]
fn a_transaction_is_invisible_until_it_commits_and_stays_in_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open(dir.path(), small()).unwrap();
    fill(&s, 0, 1);
    let before = s.durable();
    // Far more than one segment's worth of pending frames.
    for k in 0..20 {
        let evs: Vec<Vec<u8>> = (0..3).map(|j| event(100 + k * 3 + j)).collect();
        s.append_pending(&refs(&evs)).unwrap();
        assert_eq!(s.durable(), before, "pending frames are not durable yet");
    }
    assert!(s.has_pending());
    assert_eq!(
        read_all(&s).len(),
        3,
        "readers see only the committed frame"
    );
    assert_eq!(s.backlog(), 3);
    let last = vec![event(999)];
    s.append(&refs(&last), b"snapshot-1").unwrap();
    assert!(!s.has_pending());
    assert_eq!(
        list_segments(dir.path()).unwrap().len(),
        1,
        "no rotation inside a transaction"
    );
    let got = read_all(&s);
    assert_eq!(got.len(), 3 + 60 + 1);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        (0..64).collect::<Vec<_>>()
    );
    assert_eq!(got[3].1, event(100));
    assert_eq!(got[63].1, event(999));
    drop(s);
    let s = Spool::open(dir.path(), small()).unwrap();
    assert_eq!(s.cursor().as_deref(), Some(&b"snapshot-1"[..]));
    assert_eq!(
        read_all(&s).len(),
        64,
        "a committed transaction survives reopen"
    );
    // The next frame rotates, since the segment is over its size.
    fill(&s, 50, 1);
    assert_eq!(list_segments(dir.path()).unwrap().len(), 2);
}

#[test]
fn a_transaction_cut_by_a_crash_is_discarded_and_the_sequence_reused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Spool::open(dir.path(), small()).unwrap();
        fill(&s, 0, 2);
        for k in 0..4 {
            s.append_pending(&refs(&[event(100 + k)])).unwrap();
        }
        // Dropped without commit: a crash mid-transaction.
    }
    let len_before = fs::metadata(segment_path(dir.path(), 0)).unwrap().len();
    let s = Spool::open(dir.path(), small()).unwrap();
    let len_after = fs::metadata(segment_path(dir.path(), 0)).unwrap().len();
    assert!(
        len_after < len_before,
        "the uncommitted frames were cut off"
    );
    assert_eq!(s.cursor().as_deref(), Some(&b"c1"[..]));
    assert_eq!(s.durable().next_seq, 6);
    s.append_pending(&refs(&[event(200)])).unwrap();
    s.append(&refs(&[event(201)]), b"done").unwrap();
    let got = read_all(&s);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    assert_eq!(got[6].1, event(200));
}

#[test]
fn an_aborted_transaction_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open(dir.path(), small()).unwrap();
    fill(&s, 0, 1);
    let committed = fs::metadata(segment_path(dir.path(), 0)).unwrap().len();
    s.append_pending(&refs(&[event(100), event(101)])).unwrap();
    s.abort_pending().unwrap();
    assert!(!s.has_pending());
    assert_eq!(
        fs::metadata(segment_path(dir.path(), 0)).unwrap().len(),
        committed
    );
    s.append(&refs(&[event(300)]), b"after-abort").unwrap();
    let got = read_all(&s);
    assert_eq!(got.len(), 4);
    assert_eq!(got[3], (3, event(300)));
    drop(s);
    let s = Spool::open(dir.path(), small()).unwrap();
    assert_eq!(s.cursor().as_deref(), Some(&b"after-abort"[..]));
}

#[test]
fn a_transaction_torn_at_every_byte_of_its_commit_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open(dir.path(), small()).unwrap();
    fill(&s, 0, 1);
    let committed = s.durable().offset;
    s.append_pending(&refs(&[event(100), event(101)])).unwrap();
    s.append(&refs(&[event(102)]), b"txn").unwrap();
    let full = s.durable().offset;
    drop(s);
    let path = segment_path(dir.path(), 0);
    let bytes = fs::read(&path).unwrap();
    for cut in committed..full {
        fs::write(&path, &bytes[..cut as usize]).unwrap();
        let s = Spool::open(dir.path(), small()).unwrap();
        assert_eq!(
            s.durable().next_seq,
            3,
            "cut at {cut}: nothing of the transaction"
        );
        assert_eq!(s.cursor().as_deref(), Some(&b"c0"[..]));
        drop(s);
    }
    fs::write(&path, &bytes).unwrap();
    let s = Spool::open(dir.path(), small()).unwrap();
    assert_eq!(s.durable().next_seq, 6);
}
