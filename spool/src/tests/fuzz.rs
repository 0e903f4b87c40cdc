//! Property tests of recovery from arbitrary bytes: whatever a segment file holds (garbage, a
//! valid prefix with garbage after it, a valid segment with bytes changed), opening the spool
//! never panics, what it reads back is a prefix of what was durably written (or, past a
//! damaged frame, what follows it), and it takes new appends. `PROPTEST_CASES` for a long run.

use super::*;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(128),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn opts() -> Options {
    Options {
        segment_bytes: 900,
        max_frame_bytes: 1 << 16,
    }
}

fn event(i: u64) -> Vec<u8> {
    format!("{{\"n\":{i}}}").into_bytes()
}

/// Appends `batches` batches of two events; returns every event written.
fn fill(dir: &Path, batches: u64) -> Vec<Vec<u8>> {
    let s = open(dir, opts()).unwrap();
    let mut all = Vec::new();
    for k in 0..batches {
        let evs = [event(2 * k), event(2 * k + 1)];
        let refs: Vec<&[u8]> = evs.iter().map(Vec::as_slice).collect();
        s.append(&refs, format!("c{k}").as_bytes()).unwrap();
        all.extend(evs);
    }
    all
}

fn read_all(s: &Spool) -> Vec<(u64, Vec<u8>)> {
    let mut r = s.reader_for(0);
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        out.extend(f.events().map(|(q, e)| (q, e.to_vec())));
    }
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_as_the_only_segment_open_as_an_empty_or_valid_spool(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        with_header in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut file = Vec::new();
        if with_header {
            file.extend_from_slice(&format::SegmentHeader {
                spool_id: [7; 16],
                first_seq: 0,
                created_unix_ms: 1,
            }.encode());
        }
        file.extend_from_slice(&bytes);
        std::fs::write(segment_path(dir.path(), 0), &file).unwrap();
        let s = open(dir.path(), opts()).unwrap();
        let got = read_all(&s);
        // Whatever was found reads in sequence order, and the spool takes more.
        prop_assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        s.append(&[b"{}"], b"after").unwrap();
        drop(s);
        let s = open(dir.path(), opts()).unwrap();
        let cursor = s.cursor();
        prop_assert_eq!(cursor.as_deref(), Some(&b"after"[..]));
    }

    #[test]
    fn damage_anywhere_loses_only_what_it_hits(
        batches in 1u64..30,
        edits in proptest::collection::vec((any::<u32>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<u32>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let written = fill(dir.path(), batches);
        let segs = list_segments(dir.path()).unwrap();
        // Damage one segment: bytes changed, and perhaps the last one cut short.
        let victim = segs[edits[0].0 as usize % segs.len()];
        let p = segment_path(dir.path(), victim);
        let mut b = std::fs::read(&p).unwrap();
        for (at, byte) in &edits {
            let i = *at as usize % b.len();
            b[i] ^= byte | 1;
        }
        std::fs::write(&p, &b).unwrap();
        if let Some(c) = cut {
            let last = segment_path(dir.path(), *segs.last().unwrap());
            let len = std::fs::metadata(&last).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
            f.set_len(u64::from(c) % (len + 1)).unwrap();
        }
        let s = open(dir.path(), opts()).unwrap();
        let got = read_all(&s);
        // Every event read back is the one written under its sequence number, in order.
        prop_assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        for (seq, e) in &got {
            prop_assert_eq!(Some(e), written.get(*seq as usize), "event {}", seq);
        }
        let lost = s.losses().lost_events;
        prop_assert!(lost <= written.len() as u64);
        s.append(&[b"{}"], b"after").unwrap();
    }
}
