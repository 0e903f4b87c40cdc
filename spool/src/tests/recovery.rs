//! Recovery at open: torn tails cut at every byte, never-written segments removed, the lock.

use super::*;

#[test]
fn a_torn_last_frame_is_truncated_at_every_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_bytes: 1 << 20,
        max_frame_bytes: 1 << 20,
    };
    {
        let s = open(dir.path(), opts).unwrap();
        fill(&s, 0, 4);
    }
    let seg = segment_path(dir.path(), 0);
    let full = fs::read(&seg).unwrap();
    // Where the last frame starts: reopen a copy holding three frames.
    let three_dir = tempfile::tempdir().unwrap();
    {
        let s = open(three_dir.path(), opts).unwrap();
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
        let s = open(d.path(), opts).unwrap();
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
        let s = open(dir.path(), small()).unwrap();
        fill(&s, 0, 2);
    }
    // A crash right after creating the next segment, before its header reached the disk.
    fs::write(segment_path(dir.path(), 999), b"SPL").unwrap();
    let s = open(dir.path(), small()).unwrap();
    assert_eq!(s.cursor().as_deref(), Some(&b"c1"[..]));
    assert!(!segment_path(dir.path(), 999).exists());
    assert_eq!(read_all(&s).len(), 6);
}

#[test]
fn a_segment_created_after_a_full_acknowledgement_never_takes_the_cursor_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let next = {
        let s = open(dir.path(), small()).unwrap();
        fill(&s, 0, 2);
        // Every consumer has every event: the segment holding the cursor is fully delivered.
        let mut r = s.reader_for(0);
        let mut last = None;
        while let Some(f) = r.next_frame().unwrap() {
            last = Some(f.position(f.end_seq()));
        }
        let end = last.unwrap();
        s.ack_by(0, end).unwrap();
        end.seq
    };
    // A crash right after the next segment was created (empty, or a torn header).
    for torn in [&b""[..], b"SPL"] {
        fs::write(segment_path(dir.path(), next), torn).unwrap();
        let s = open(dir.path(), small()).unwrap();
        assert_eq!(
            s.cursor().as_deref(),
            Some(&b"c1"[..]),
            "the cursor survives ({} bytes in the new segment)",
            torn.len()
        );
        assert!(read_all(&s).is_empty(), "nothing is delivered twice");
    }
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _s = open(dir.path(), small()).unwrap();
    match open(dir.path(), small()) {
        Err(Error::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn truncation_at_every_byte_of_the_last_three_frames_recovers_the_frames_before() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_bytes: 1 << 20,
        max_frame_bytes: 1 << 20,
    };
    {
        let s = open(dir.path(), opts).unwrap();
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
        let s = open(d.path(), opts).unwrap();
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
