//! Round trips: what is appended reads back in order, with its cursor, across segments and reopenings; frame buffers; file modes.

use super::*;

#[test]
fn appended_events_read_back_in_order_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), small()).unwrap();
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
        let s = open(dir.path(), small()).unwrap();
        fill(&s, 0, 20);
        // Ack everything: all but the active segment go away.
        let mut r = s.reader_for(0);
        let mut last = None;
        while let Some(f) = r.next_frame().unwrap() {
            last = Some(f.position(f.end_seq()));
        }
        s.ack_by(0, last.unwrap()).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
        assert_eq!(s.backlog(), 0);
    }
    let s = open(dir.path(), small()).unwrap();
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
        let s = open(dir.path(), opts).unwrap();
        fill(&s, 0, 5); // each frame is bigger than a segment: one segment per frame
        let mut r = s.reader_for(0);
        let mut last = None;
        while let Some(f) = r.next_frame().unwrap() {
            last = Some(f.position(f.end_seq()));
        }
        s.ack_by(0, last.unwrap()).unwrap();
    }
    let s = open(dir.path(), opts).unwrap();
    assert_eq!(s.cursor().as_deref(), Some(&b"c4"[..]));
    assert_eq!(s.durable().next_seq, 15);
}

#[test]
fn files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("t");
    let s = open(&sd, small()).unwrap();
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

#[test]
fn a_recycled_frame_buffer_never_shows_a_previous_frames_bytes() {
    // A large frame, then small ones read into its (longer, reused) buffer: each frame's events
    // are exactly its own, and a corrupt frame met in between does not disturb the buffer.
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Options::default()).unwrap();
    let big = vec![b'B'; 50_000];
    s.append(&[&big, b"b2"], b"c0").unwrap();
    s.append(&[b"small-1", b"small-2"], b"c1").unwrap();
    s.append(&[], b"cursor only").unwrap();
    s.append(&[b"last"], b"c3").unwrap();
    let mut r = s.reader_for(0);
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
    let s = open(dir.path(), opts).unwrap();
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
