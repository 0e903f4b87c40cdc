//! Consumers: each one's position, torn ack files, segments held until every consumer has them.

use super::*;

#[test]
fn a_reader_resumes_mid_frame_from_a_partial_ack() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), small()).unwrap();
    fill(&s, 0, 4);
    let mut r = s.reader_for(0);
    let f1 = r.next_frame().unwrap().unwrap();
    let f2 = r.next_frame().unwrap().unwrap();
    assert_eq!(f1.end_seq(), 3);
    // Events 3 and 4 of the second frame were delivered; 5 was not.
    s.ack_by(0, f2.position(5)).unwrap();
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
fn a_torn_ack_file_falls_back_to_the_older_slot_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path(), small()).unwrap();
        fill(&s, 0, 10);
        let mut r = s.reader_for(0);
        let mut acks = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            acks.push(f.position(f.end_seq()));
        }
        s.ack_by(0, acks[3]).unwrap(); // 12 events delivered
        s.ack_by(0, acks[5]).unwrap(); // 18 events delivered
    }
    // Tear whichever slot holds the newest ack (the second write went to slot 0 or 1).
    let p = dir.path().join("ack.c.state");
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
    let s = open(dir.path(), small()).unwrap();
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
    let s = open(dir.path(), small()).unwrap();
    assert!(read_all(&s).len() >= 30 - 12);
}

#[test]
fn a_consumer_name_that_cannot_be_a_file_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Spool::open_consumers(dir.path(), small(), &["bad/name"]).is_err());
    assert!(Spool::open_consumers(dir.path(), small(), &[""]).is_err());
    assert!(Spool::open_consumers(dir.path(), small(), &[]).is_err());
    assert!(Spool::open_consumers(dir.path(), small(), &["out_1", "http-2"]).is_ok());
}

#[test]
fn segments_stay_until_every_consumer_has_acked_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open_consumers(dir.path(), small(), &["tls", "relay"]).unwrap();
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
    assert!(dir.path().join("ack.tls.state").exists());
    assert!(dir.path().join("ack.relay.state").exists());
    let s = Spool::open_consumers(dir.path(), small(), &["tls", "relay"]).unwrap();
    assert_eq!((s.backlog_of(0), s.backlog_of(1)), (0, 0));
    let i = inspect(dir.path(), small(), &["tls", "relay"]).unwrap();
    assert_eq!(i.consumers.len(), 2);
    assert!(i.consumers.iter().all(|c| c.acked_seq == 60));
}

#[test]
fn a_consumer_added_later_starts_at_the_oldest_segment_and_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Spool::open_consumers(dir.path(), small(), &["tls"]).unwrap();
        fill(&s, 0, 20);
        let (mid, _) = {
            let mut r = s.reader_for(0);
            let f = r.next_frame().unwrap().unwrap();
            (f.position(f.end_seq()), ())
        };
        s.ack_by(0, mid).unwrap();
    }
    let s = Spool::open_consumers(dir.path(), small(), &["tls", "console"]).unwrap();
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
    let s = Spool::open_consumers(dir.path(), small(), &["tls"]).unwrap();
    assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
    assert_eq!(s.backlog(), 0);
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

#[test]
fn the_delivered_time_is_kept_by_consumer_name_privately_and_never_through_a_link() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, b"untouched").unwrap();
    {
        let s = Spool::open_consumers(dir.path(), small(), &["a", "b"]).unwrap();
        // A link planted where the temporary file goes is not written through.
        std::os::unix::fs::symlink(&victim, dir.path().join("delivered-time.b.tmp")).unwrap();
        s.record_delivered_time(0, 111).unwrap();
        s.record_delivered_time(1, 222).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
        let mode = fs::metadata(dir.path().join("delivered-time.a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Reordered outputs keep their own times: the file is named by the output, not its place.
    let s = Spool::open_consumers(dir.path(), small(), &["b", "a"]).unwrap();
    assert_eq!(s.delivered_time(0), Some(222));
    assert_eq!(s.delivered_time(1), Some(111));
    let i = crate::inspect(dir.path(), small(), &["a", "b"]).unwrap();
    assert_eq!(i.consumers[0].delivered_time_ms, Some(111));
    assert_eq!(i.consumers[1].delivered_time_ms, Some(222));
}
