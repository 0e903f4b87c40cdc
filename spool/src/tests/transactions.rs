//! Transactions: pending frames invisible until their commit, all or nothing through crashes and aborts.

use super::*;

#[test]
fn a_transaction_is_invisible_until_it_commits_and_stays_in_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), small()).unwrap();
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
    let s = open(dir.path(), small()).unwrap();
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
        let s = open(dir.path(), small()).unwrap();
        fill(&s, 0, 2);
        for k in 0..4 {
            s.append_pending(&refs(&[event(100 + k)])).unwrap();
        }
        // Dropped without commit: a crash mid-transaction.
    }
    let len_before = fs::metadata(segment_path(dir.path(), 0)).unwrap().len();
    let s = open(dir.path(), small()).unwrap();
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
    let s = open(dir.path(), small()).unwrap();
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
    let s = open(dir.path(), small()).unwrap();
    assert_eq!(s.cursor().as_deref(), Some(&b"after-abort"[..]));
}

#[test]
fn a_transaction_torn_at_every_byte_of_its_commit_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), small()).unwrap();
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
        let s = open(dir.path(), small()).unwrap();
        assert_eq!(
            s.durable().next_seq,
            3,
            "cut at {cut}: nothing of the transaction"
        );
        assert_eq!(s.cursor().as_deref(), Some(&b"c0"[..]));
        drop(s);
    }
    fs::write(&path, &bytes).unwrap();
    let s = open(dir.path(), small()).unwrap();
    assert_eq!(s.durable().next_seq, 6);
}
