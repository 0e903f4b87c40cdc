//! Corruption met by the reader: corrupt frames and bit flips in sealed segments skipped, counted, and nothing else lost.

use super::*;

#[test]
fn a_corrupt_frame_in_a_sealed_segment_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_bytes: 2000,
        max_frame_bytes: 1 << 20,
    };
    {
        let s = open(dir.path(), opts).unwrap();
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
    let s = open(dir.path(), opts).unwrap();
    let mut r = s.reader_for(0);
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
    let mut again = s.reader_for(0);
    while again.next_frame().unwrap().is_some() {}
    assert_eq!(s.losses(), want, "a second reader adds nothing");
    drop((r, again, s));
    assert_eq!(inspect(dir.path(), opts, &[""]).unwrap().losses, want);
    let s = open(dir.path(), opts).unwrap();
    assert_eq!(s.losses(), want);
}

#[test]
fn random_bit_flips_in_sealed_segments_lose_only_the_frames_they_hit() {
    let opts = small();
    let base = tempfile::tempdir().unwrap();
    {
        let s = open(base.path(), opts).unwrap();
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
        let s = open(d.path(), opts).unwrap();
        let mut r = s.reader_for(0);
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
fn an_ack_file_past_the_spools_end_is_refused_and_its_consumer_reads_from_the_oldest_event() {
    let bogus_positions = |last: u64| {
        [
            // In the last segment, beyond its end.
            Position {
                seq: 10_000,
                segment: last,
                offset: 1 << 30,
            },
            // In a segment that does not exist.
            Position {
                seq: 10_000,
                segment: last + 1_000,
                offset: 64,
            },
            // In an existing segment, but an event number past the spool's end.
            Position {
                seq: 1 << 40,
                segment: last,
                offset: 64,
            },
        ]
    };
    for k in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = open(dir.path(), small()).unwrap();
            fill(&s, 0, 12);
        }
        let segs = list_segments(dir.path()).unwrap();
        assert!(segs.len() >= 2, "{segs:?}");
        let bogus = bogus_positions(*segs.last().unwrap())[k];
        let path = crate::ack::ack_path(dir.path(), "c");
        let (mut a, _) = crate::ack::AckFile::open(&path).unwrap();
        a.write(&RealFs, bogus).unwrap();
        drop(a);
        let s = open(dir.path(), small()).unwrap();
        assert_eq!(
            read_all(&s).len(),
            36,
            "{bogus:?}: every event is read again, none skipped"
        );
        assert_eq!(s.durable().next_seq, 36, "{bogus:?}");
        assert_eq!(list_segments(dir.path()).unwrap(), segs, "nothing deleted");
        let end = {
            let mut r = s.reader_for(0);
            let mut end = None;
            while let Some(f) = r.next_frame().unwrap() {
                end = Some(f.position(f.end_seq()));
            }
            end.unwrap()
        };
        // And the consumer goes on acking from there.
        s.ack_by(0, end).unwrap();
        drop(s);
        let s = open(dir.path(), small()).unwrap();
        assert!(read_all(&s).is_empty());
    }
}
