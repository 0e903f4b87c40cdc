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
    // Counted once for the spool, however many readers meet it, and kept across a restart.
    let want = Losses {
        corrupt_frames: 1,
        lost_events: 3,
    };
    assert_eq!(s.losses(), want);
    let mut again = s.reader();
    while again.next_frame().unwrap().is_some() {}
    assert_eq!(s.losses(), want, "a second reader adds nothing");
    drop((r, again, s));
    assert_eq!(inspect(dir.path(), opts, &[""]).unwrap().losses, want);
    let s = Spool::open(dir.path(), opts).unwrap();
    assert_eq!(s.losses(), want);
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
    // The whole transaction is in the first segment; the full segment is sealed after the
    // commit, so a second one starts after its last event.
    assert_eq!(
        list_segments(dir.path()).unwrap(),
        vec![0, 64],
        "no rotation inside a transaction, a seal after it"
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

/// Frame boundaries (start offsets) of a segment file, and its end.
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
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

#[test]
fn truncation_at_every_byte_of_the_last_three_frames_recovers_the_frames_before() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_bytes: 1 << 20,
        max_frame_bytes: 1 << 20,
    };
    {
        let s = Spool::open(dir.path(), opts).unwrap();
        fill(&s, 0, 6);
    }
    let full = fs::read(segment_path(dir.path(), 0)).unwrap();
    let starts = frame_starts(&full);
    assert_eq!(starts.len(), 7, "six frames and the end");
    let mut cases = 0;
    for cut in starts[3]..full.len() {
        // Frames wholly before the cut survive; the one it cuts is a torn tail.
        let whole = starts.iter().skip(1).filter(|e| **e <= cut).count() as u64;
        let d = tempfile::tempdir().unwrap();
        fs::write(segment_path(d.path(), 0), &full[..cut]).unwrap();
        let s = Spool::open(d.path(), opts).unwrap();
        assert_eq!(s.durable().next_seq, 3 * whole, "cut at {cut}");
        let want = format!("c{}", whole - 1);
        assert_eq!(s.cursor().as_deref(), Some(want.as_bytes()), "cut at {cut}");
        let got = read_all(&s);
        assert_eq!(got.len() as u64, 3 * whole);
        fill(&s, whole, 1);
        assert_eq!(read_all(&s).len() as u64, 3 * whole + 3, "cut at {cut}");
        cases += 1;
    }
    assert!(cases > 100);
}

/// A small deterministic generator (xorshift) for the fault positions.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn random_bit_flips_in_sealed_segments_lose_only_the_frames_they_hit() {
    let opts = small();
    let base = tempfile::tempdir().unwrap();
    {
        let s = Spool::open(base.path(), opts).unwrap();
        fill(&s, 0, 40);
    }
    let segs = list_segments(base.path()).unwrap();
    let sealed = &segs[..segs.len() - 1];
    assert!(sealed.len() >= 5);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..200 {
        let d = tempfile::tempdir().unwrap();
        for seg in &segs {
            fs::copy(
                segment_path(base.path(), *seg),
                segment_path(d.path(), *seg),
            )
            .unwrap();
        }
        // 1 to 8 bit flips, each in a random sealed segment.
        let mut hit: Vec<(u64, usize)> = Vec::new();
        for _ in 0..1 + rng.next(8) {
            let seg = sealed[rng.next(sealed.len() as u64) as usize];
            let p = segment_path(d.path(), seg);
            let mut b = fs::read(&p).unwrap();
            let at = rng.next(b.len() as u64) as usize;
            b[at] ^= 1 << rng.next(8);
            fs::write(&p, &b).unwrap();
            hit.push((seg, at));
        }
        // Sequence numbers that must still arrive: frames of intact-header segments that no
        // flip touched, and all of the active segment.
        let mut must = Vec::new();
        for seg in &segs {
            let bytes = fs::read(segment_path(base.path(), *seg)).unwrap();
            let header_hit = hit
                .iter()
                .any(|(s, at)| s == seg && *at < HEADER_LEN as usize);
            if header_hit {
                continue;
            }
            let starts = frame_starts(&bytes);
            let f = fs::File::open(segment_path(base.path(), *seg)).unwrap();
            for w in starts.windows(2) {
                let touched = hit
                    .iter()
                    .any(|(s, at)| s == seg && (w[0]..w[1]).contains(at));
                if touched {
                    continue;
                }
                let (_, b) = read_frame(&f, w[0] as u64, w[1] as u64, 1 << 20)
                    .unwrap()
                    .unwrap();
                must.extend(b.first_seq..b.first_seq + b.events.len() as u64);
            }
        }
        let s = Spool::open(d.path(), opts).unwrap();
        let mut r = s.reader();
        let mut got = Vec::new();
        let mut frames = 0;
        while let Some(f) = r.next_frame().unwrap() {
            frames += 1;
            assert!(frames < 1000, "round {round}: the reader loops");
            for (q, e) in f.events() {
                assert_eq!(e, &event(q)[..], "round {round}: event {q} altered");
                got.push(q);
            }
        }
        for q in &must {
            assert!(
                got.contains(q),
                "round {round}: intact event {q} not delivered"
            );
        }
        let mut sorted = got.clone();
        sorted.dedup();
        assert_eq!(sorted, got, "round {round}: in order, each once");
        // Segments set aside at the front are reported by recovery (with their event count),
        // not by the reader, which starts after them.
        let mut front = 0;
        for w in segs.windows(2) {
            if !hit
                .iter()
                .any(|(s, at)| *s == w[0] && *at < HEADER_LEN as usize)
            {
                break;
            }
            front += w[1] - w[0];
        }
        assert_eq!(
            r.lost_events(),
            120 - got.len() as u64 - front,
            "round {round}: every other missing event is counted as lost"
        );
    }
}

#[test]
fn a_torn_ack_file_falls_back_to_the_older_slot_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Spool::open(dir.path(), small()).unwrap();
        fill(&s, 0, 10);
        let mut r = s.reader();
        let mut acks = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            acks.push(f.position(f.end_seq()));
        }
        s.ack(acks[3]).unwrap(); // 12 events delivered
        s.ack(acks[5]).unwrap(); // 18 events delivered
    }
    // Tear whichever slot holds the newest ack (the second write went to slot 0 or 1).
    let p = dir.path().join("ack.state");
    let mut b = fs::read(&p).unwrap();
    let newest = if ack::AckFile::read(&p).unwrap().unwrap().seq == 18 {
        // Find it: zero each slot in turn and see which leaves 12.
        let mut found = 0;
        for off in [0usize, 4096] {
            let mut c = b.clone();
            c[off + 8..off + 40].fill(0xAB);
            fs::write(&p, &c).unwrap();
            if ack::AckFile::read(&p).unwrap().map(|a| a.seq) == Some(12) {
                found = off;
            }
        }
        found
    } else {
        unreachable!()
    };
    b[newest + 8..newest + 40].fill(0xAB);
    fs::write(&p, &b).unwrap();
    let s = Spool::open(dir.path(), small()).unwrap();
    assert_eq!(s.acked().seq, 12, "the older slot wins");
    let got = read_all(&s);
    assert_eq!(
        got.first().map(|g| g.0),
        Some(12),
        "re-sent from the older ack, none lost"
    );
    assert_eq!(got.len(), 30 - 12);
    // A zeroed ack file reads as no ack: everything still on disk is sent again.
    fs::write(&p, vec![0u8; 8192]).unwrap();
    drop(s);
    let s = Spool::open(dir.path(), small()).unwrap();
    assert!(read_all(&s).len() >= 30 - 12);
}

/// Reads everything consumer `c` has not acked and returns its last position and event count.
fn drain(s: &Spool, c: usize) -> (Position, usize) {
    let mut r = s.reader_for(c);
    let (mut last, mut n) = (s.acked_by(c), 0);
    while let Some(f) = r.next_frame().unwrap() {
        n += f.len();
        last = f.position(f.end_seq());
    }
    (last, n)
}

#[test]
fn segments_stay_until_every_consumer_has_acked_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open_consumers(dir.path(), small(), &["devo", "relay"]).unwrap();
    fill(&s, 0, 20);
    let segs = list_segments(dir.path()).unwrap().len();
    let (end_a, n_a) = drain(&s, 0);
    assert_eq!(n_a, 60);
    s.ack_by(0, end_a).unwrap();
    assert_eq!(
        list_segments(dir.path()).unwrap().len(),
        segs,
        "relay still needs them"
    );
    assert_eq!(s.backlog_of(0), 0);
    assert_eq!(s.backlog_of(1), 60);
    assert_eq!(s.backlog(), 60, "the slowest consumer counts");
    let (end_b, n_b) = drain(&s, 1);
    assert_eq!(n_b, 60, "the second consumer reads everything on its own");
    s.ack_by(1, end_b).unwrap();
    assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
    drop(s);
    assert!(dir.path().join("ack.devo.state").exists());
    assert!(dir.path().join("ack.relay.state").exists());
    let s = Spool::open_consumers(dir.path(), small(), &["devo", "relay"]).unwrap();
    assert_eq!((s.backlog_of(0), s.backlog_of(1)), (0, 0));
    let i = inspect(dir.path(), small(), &["devo", "relay"]).unwrap();
    assert_eq!(i.consumers.len(), 2);
    assert!(i.consumers.iter().all(|c| c.acked_seq == 60));
}

#[test]
fn a_consumer_added_later_starts_at_the_oldest_segment_and_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Spool::open_consumers(dir.path(), small(), &["devo"]).unwrap();
        fill(&s, 0, 20);
        let (mid, _) = {
            let mut r = s.reader_for(0);
            let f = r.next_frame().unwrap().unwrap();
            (f.position(f.end_seq()), ())
        };
        s.ack_by(0, mid).unwrap();
    }
    let s = Spool::open_consumers(dir.path(), small(), &["devo", "console"]).unwrap();
    assert_eq!(
        s.acked_by(1).seq,
        0,
        "the new consumer starts at the oldest event"
    );
    assert_eq!(s.acked_by(0).seq, 3);
    let (end, n) = drain(&s, 0);
    assert_eq!(n, 57);
    s.ack_by(0, end).unwrap();
    assert_eq!(
        drain(&s, 1).1,
        60,
        "nothing was deleted under the new consumer"
    );
    // Removing a consumer from the list stops it holding segments.
    drop(s);
    let s = Spool::open_consumers(dir.path(), small(), &["devo"]).unwrap();
    assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
    assert_eq!(s.backlog(), 0);
}

#[test]
fn the_single_consumer_position_passes_to_named_consumers() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Spool::open(dir.path(), small()).unwrap();
        fill(&s, 0, 10);
        let (end, _) = drain(&s, 0);
        s.ack(end).unwrap();
        fill(&s, 10, 2);
    }
    assert!(dir.path().join("ack.state").exists());
    let s = Spool::open_consumers(dir.path(), small(), &["devo_1", "http-2"]).unwrap();
    assert!(!dir.path().join("ack.state").exists(), "migrated");
    assert_eq!(s.acked_by(0).seq, 30);
    assert_eq!(s.acked_by(1).seq, 30);
    assert_eq!(drain(&s, 1).1, 6);
    assert!(Spool::open_consumers(dir.path(), small(), &["bad/name"]).is_err());
}

#[test]
fn a_recycled_frame_buffer_never_shows_a_previous_frames_bytes() {
    // A large frame, then small ones read into its (longer, reused) buffer: each frame's events
    // are exactly its own, and a corrupt frame met in between does not disturb the buffer.
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open(dir.path(), Options::default()).unwrap();
    let big = vec![b'B'; 50_000];
    s.append(&[&big, b"b2"], b"c0").unwrap();
    s.append(&[b"small-1", b"small-2"], b"c1").unwrap();
    s.append(&[], b"cursor only").unwrap();
    s.append(&[b"last"], b"c3").unwrap();
    let mut r = s.reader();
    let mut got = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        got.extend(f.events().map(|(q, e)| (q, e.to_vec())));
        r.recycle(f);
    }
    let want: Vec<(u64, Vec<u8>)> = vec![
        (0, big.clone()),
        (1, b"b2".to_vec()),
        (2, b"small-1".to_vec()),
        (3, b"small-2".to_vec()),
        (4, b"last".to_vec()),
    ];
    assert_eq!(got, want);
    r.release_buffer();
    r.seek(Position {
        seq: 3,
        segment: s.durable().segment,
        offset: HEADER_LEN,
    });
    let again: Vec<u64> = std::iter::from_fn(|| r.next_frame().unwrap())
        .flat_map(|f| f.events().map(|(q, _)| q).collect::<Vec<_>>())
        .collect();
    assert_eq!(again, vec![3, 4]);
}

#[test]
fn a_frame_larger_than_the_staging_buffer_is_written_byte_for_byte_as_encoded() {
    // About 1.5 MB of ordinary events around one event larger than the staging buffer: the
    // pieces written through the buffer (and the large one straight) must make the same bytes
    // as the one-buffer encoding, and read back whole.
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_bytes: 64 << 20,
        max_frame_bytes: 8 << 20,
    };
    let s = Spool::open(dir.path(), opts).unwrap();
    let mut evs: Vec<Vec<u8>> = (0..1_000)
        .map(|i| format!("{{\"i\":{i},\"pad\":\"{}\"}}", "p".repeat(1_500)).into_bytes())
        .collect();
    evs.insert(500, vec![b'L'; STAGE_BYTES + 7]);
    let refs: Vec<&[u8]> = evs.iter().map(Vec::as_slice).collect();
    let before = s.durable();
    s.append(&refs, b"cursor").unwrap();
    let seg = std::fs::read(segment_path(dir.path(), before.segment)).unwrap();
    let mut want = Vec::new();
    format::encode_frame(&mut want, KIND_DATA, 0, 1, b"cursor", &refs);
    assert_eq!(&seg[before.offset as usize..], &want[..]);
    let got: Vec<Vec<u8>> = read_all(&s).into_iter().map(|(_, e)| e).collect();
    assert_eq!(got, evs);
}

#[test]
fn a_delivered_frame_larger_than_a_segment_leaves_nothing_waiting_and_is_deleted_without_another_append()
 {
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open_consumers(dir.path(), small(), &["a", "b"]).unwrap();
    fill(&s, 0, 1);
    // One page far larger than a segment (600 bytes): it gets a segment of its own, which is
    // sealed at once.
    let big: Vec<Vec<u8>> = (0..40).map(|i| event(1000 + i)).collect();
    s.append(&refs(&big), b"big").unwrap();
    let waiting = s.waiting_bytes().unwrap();
    assert!(waiting > 600, "{waiting}");
    // Nothing is read yet: all of it waits but the first segment's header.
    assert_eq!(waiting, s.disk_bytes().unwrap() - HEADER_LEN);
    // Consumer a delivers everything, b lags: b's position decides.
    let (pa, na) = drain(&s, 0);
    assert_eq!(na, 43);
    s.ack_by(0, pa).unwrap();
    assert_eq!(s.waiting_bytes().unwrap(), waiting, "b has read nothing");
    let (pb, nb) = drain(&s, 1);
    assert_eq!(nb, 43);
    s.ack_by(1, pb).unwrap();
    assert_eq!(s.waiting_bytes().unwrap(), 0, "everything is delivered");
    // Without another append, only the active segment (header and cursor snapshot) is left.
    let segs = list_segments(dir.path()).unwrap();
    assert_eq!(segs, vec![43], "delivered segments are deleted");
    assert!(s.disk_bytes().unwrap() < 200, "{}", s.disk_bytes().unwrap());
    drop(s);
    let s = Spool::open_consumers(dir.path(), small(), &["a", "b"]).unwrap();
    assert_eq!(s.cursor().as_deref(), Some(&b"big"[..]));
    assert_eq!(s.waiting_bytes().unwrap(), 0);
}
