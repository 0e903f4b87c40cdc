//! Fault-injection tests of the spool through [`FaultFs`]: ENOSPC, EIO, short writes, a
//! failed `fdatasync`, and a crash after every single write or sync of a workload, each
//! followed by recovery with the real file system. No root and no tmpfs needed.

use super::*;

fn opts() -> Options {
    Options {
        segment_bytes: 700,
        max_frame_bytes: 1 << 20,
    }
}

fn event(i: u64) -> Vec<u8> {
    format!(
        "{{\"uuid\":\"e{i}\",\"pad\":\"{}\"}}",
        "y".repeat((i % 11) as usize)
    )
    .into_bytes()
}

fn batch(k: u64) -> Vec<Vec<u8>> {
    (0..3).map(|j| event(k * 3 + j)).collect()
}

fn append_batch(s: &Spool, k: u64) -> Result<Durable> {
    let evs = batch(k);
    let refs: Vec<&[u8]> = evs.iter().map(|e| e.as_slice()).collect();
    s.append(&refs, format!("c{k}").as_bytes())
}

fn open_faulty(dir: &Path, fs: &Arc<FaultFs>) -> Result<Spool> {
    Spool::open_with(dir, opts(), &["out"], fs.clone())
}

fn reopen(dir: &Path) -> Spool {
    Spool::open_with(dir, opts(), &["out"], Arc::new(RealFs)).unwrap()
}

/// Every event from the consumer's ack on, in order.
fn read_from_ack(s: &Spool) -> Vec<(u64, Vec<u8>)> {
    let mut r = s.reader_for(0);
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        out.extend(f.events().map(|(q, e)| (q, e.to_vec())));
    }
    out
}

#[test]
fn enospc_and_eio_on_a_write_lose_nothing_and_the_retry_succeeds() {
    for fault in [Fault::NoSpace, Fault::Eio] {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FaultFs::new());
        let s = open_faulty(dir.path(), &fs).unwrap();
        append_batch(&s, 0).unwrap();
        let before = s.durable();
        fs.inject_next(Op::Write, fault);
        let e = append_batch(&s, 1).unwrap_err();
        assert!(!e.is_fatal(), "{fault:?}: {e}");
        assert!(matches!(e, Error::Io { .. }), "{e}");
        assert_eq!(
            s.durable(),
            before,
            "nothing of the failed write is visible"
        );
        assert_eq!(s.cursor().as_deref(), Some(&b"c0"[..]));
        append_batch(&s, 1).unwrap();
        append_batch(&s, 2).unwrap();
        let got = read_from_ack(&s);
        assert_eq!(got.len(), 9, "{fault:?}");
        for (i, (q, e)) in got.iter().enumerate() {
            assert_eq!((*q, e), (i as u64, &event(i as u64)));
        }
        drop(s);
        let s = reopen(dir.path());
        assert_eq!(s.cursor().as_deref(), Some(&b"c2"[..]));
        assert_eq!(read_from_ack(&s).len(), 9);
    }
}

#[test]
fn a_failed_write_in_the_middle_of_a_frame_is_cut_back_to_the_durable_end() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultFs::new());
    let s = open_faulty(dir.path(), &fs).unwrap();
    append_batch(&s, 0).unwrap();
    let len = |d: &Path| {
        list_segments(d)
            .unwrap()
            .iter()
            .map(|&g| std::fs::metadata(segment_path(d, g)).unwrap().len())
            .sum::<u64>()
    };
    let before = len(dir.path());
    // The frame's body is written first, then its prefix: fail the prefix.
    let writes = fs.count(Op::Write);
    fs.inject(Op::Write, writes + 1, Fault::NoSpace);
    assert!(append_batch(&s, 1).is_err());
    assert_eq!(
        len(dir.path()),
        before,
        "the body written before was cut off"
    );
    drop(s);
    let s = reopen(dir.path());
    assert_eq!(s.cursor().as_deref(), Some(&b"c0"[..]));
    assert_eq!(read_from_ack(&s).len(), 3);
}

#[test]
fn short_writes_are_completed() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultFs::new());
    let s = open_faulty(dir.path(), &fs).unwrap();
    for k in 0..20 {
        let n = fs.count(Op::Write);
        fs.inject(Op::Write, n, Fault::Short(1 + (k as usize % 5)));
        fs.inject(Op::Write, n + 1, Fault::Short(3));
        append_batch(&s, k).unwrap();
    }
    drop(s);
    let s = reopen(dir.path());
    let got = read_from_ack(&s);
    assert_eq!(got.len(), 60);
    for (i, (q, e)) in got.iter().enumerate() {
        assert_eq!((*q, e), (i as u64, &event(i as u64)));
    }
    assert_eq!(s.cursor().as_deref(), Some(&b"c19"[..]));
}

#[test]
fn a_failed_fdatasync_is_fatal_and_recovery_keeps_cursor_and_events_together() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultFs::new());
    let s = open_faulty(dir.path(), &fs).unwrap();
    append_batch(&s, 0).unwrap();
    let before = s.durable();
    fs.inject_next(Op::Sync, Fault::Eio);
    let e = append_batch(&s, 1).unwrap_err();
    assert!(e.is_fatal(), "{e}");
    assert!(matches!(e, Error::Sync { .. }));
    assert_eq!(s.durable(), before, "an unsynced frame is never visible");
    // Nothing more is accepted: the kernel may have dropped the dirty pages.
    let again = append_batch(&s, 1).unwrap_err();
    assert!(again.is_fatal(), "{again}");
    assert!(s.append_pending(&[b"x"]).unwrap_err().is_fatal());
    drop(s);
    // The restart: the frame whose sync failed may be there (its bytes reached the file) or
    // not; either way the cursor and the events agree.
    let s = reopen(dir.path());
    let got = read_from_ack(&s);
    match s.cursor().as_deref() {
        Some(b"c0") => assert_eq!(got.len(), 3),
        Some(b"c1") => assert_eq!(got.len(), 6),
        other => panic!("cursor {other:?}"),
    }
    append_batch(&s, 2).unwrap();
}

/// The workload a crash cuts: appends with rotations, a transaction, reads and acks.
/// Returns the last batch whose append returned `Ok` and the last durable ack, or stops at the
/// first error (the crash).
fn workload(s: &Spool, done: &mut Option<u64>, acked: &mut u64) -> Result<()> {
    let mut r = s.reader_for(0);
    for k in 0..12 {
        if k == 6 {
            // A transaction: two pending frames, committed by batch 6's append.
            s.append_pending(&[b"{\"p\":1}", b"{\"p\":2}"])?;
            s.append_pending(&[b"{\"p\":3}"])?;
        }
        append_batch(s, k)?;
        *done = Some(k);
        if k % 3 == 2 {
            let mut last = None;
            while let Some(f) = r.next_frame()? {
                last = Some(f.position(f.end_seq()));
            }
            if let Some(p) = last {
                s.ack_by(0, p)?;
                *acked = p.seq;
            }
        }
    }
    Ok(())
}

/// The events the workload has appended through batch `k` (the transaction's three in
/// front of batch 6).
fn expected(k: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for b in 0..=k {
        if b == 6 {
            out.extend([
                b"{\"p\":1}".to_vec(),
                b"{\"p\":2}".to_vec(),
                b"{\"p\":3}".to_vec(),
            ]);
        }
        out.extend(batch(b));
    }
    out
}

#[test]
fn a_crash_after_any_write_or_sync_recovers_an_exact_prefix() {
    // A clean run counts the operations.
    let clean = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultFs::new());
    let s = open_faulty(clean.path(), &fs).unwrap();
    let (mut done, mut acked) = (None, 0);
    workload(&s, &mut done, &mut acked).unwrap();
    assert_eq!(done, Some(11));
    let (writes, syncs, creates) = (
        fs.count(Op::Write),
        fs.count(Op::Sync),
        fs.count(Op::Create),
    );
    assert!(writes > 30 && syncs > 15, "{writes} writes, {syncs} syncs");
    assert!(
        creates > 3,
        "{creates} segments created: the workload rotates"
    );
    drop(s);
    let mut cases = 0;
    for (op, n, fault) in (0..writes)
        .flat_map(|n| {
            [
                (Op::Write, n, Fault::CrashAfter),
                (Op::Write, n, Fault::TornCrash(5)),
            ]
        })
        .chain((0..syncs).map(|n| (Op::Sync, n, Fault::CrashAfter)))
        // A crash right after a segment file is created, before its header is written: the
        // workload creates segments after a full acknowledgement too.
        .chain((0..creates).map(|n| (Op::Create, n, Fault::CrashAfter)))
    {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FaultFs::new());
        fs.inject(op, n, fault);
        let (mut done, mut acked) = (None, 0);
        match open_faulty(dir.path(), &fs) {
            Ok(s) => {
                // The crash after the very last operation lets the workload finish.
                let _ = workload(&s, &mut done, &mut acked);
                assert!(fs.crashed(), "{op:?} #{n}: the crash came");
            }
            Err(_) => assert!(fs.crashed()),
        }
        // The restart, with the real file system.
        let s = reopen(dir.path());
        let cursor = s.cursor();
        let k = cursor.as_deref().map(|c| {
            std::str::from_utf8(&c[1..])
                .ok()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{op:?} #{n}: cursor {c:?}"))
        });
        // Every batch whose append returned is there; at most the one being written more.
        assert!(
            k >= done && k <= done.map_or(Some(0), |d| Some(d + 1)),
            "{op:?} #{n} {fault:?}: cursor {k:?} after batch {done:?} returned"
        );
        let want = k.map_or_else(Vec::new, expected);
        let got = read_from_ack(&s);
        let acked_now = s.acked_by(0).seq;
        assert!(
            acked_now <= want.len() as u64,
            "{op:?} #{n}: ack past the data"
        );
        assert!(
            acked_now >= acked,
            "{op:?} #{n}: the ack went back from {acked} to {acked_now}"
        );
        let tail: Vec<Vec<u8>> = got.iter().map(|(_, e)| e.clone()).collect();
        assert_eq!(
            tail,
            want[acked_now as usize..].to_vec(),
            "{op:?} #{n} {fault:?}: what is left to read is exactly the unacked rest"
        );
        // And the recovered spool takes the rest of the work.
        append_batch(&s, 100).unwrap();
        cases += 1;
    }
    eprintln!("{cases} crash points recovered");
}
