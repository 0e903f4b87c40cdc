//! Benchmark 5: spool micro-benchmarks with criterion. Appends of System-Log-sized batches
//! (one `fdatasync` per batch: group commit is the batch), and reading them back.
//!
//! `cargo bench -p spool --bench spool`. The files live under target/ (not /tmp, which may be a
//! tmpfs where `fdatasync` costs nothing).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is a failed run

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use spool::{Options, Spool};
use std::hint::black_box;

/// A ~1.5 KB event, the size of a typical audit log event.
fn event() -> Vec<u8> {
    format!(
        "{{\"uuid\":\"0d5a0c6e-5b1f-11ef-9d1a-4b2f1a8e7c3d\",\"pad\":\"{}\"}}",
        "e".repeat(1450)
    )
    .into_bytes()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir")
}

fn append(c: &mut Criterion) {
    let ev = event();
    let mut g = c.benchmark_group("append");
    g.sample_size(20);
    for batch in [1usize, 100, 1000] {
        let events: Vec<&[u8]> = (0..batch).map(|_| ev.as_slice()).collect();
        g.throughput(Throughput::Elements(batch as u64));
        let dir = tempdir();
        let s = Spool::open_consumers(dir.path(), Options::default(), &["bench"]).expect("open");
        g.bench_function(format!("{batch} events per fdatasync"), |b| {
            b.iter(|| {
                s.append(black_box(&events), b"{\"cursor\":1}")
                    .expect("append")
            })
        });
    }
    g.finish();
}

fn read(c: &mut Criterion) {
    let ev = event();
    let events: Vec<&[u8]> = (0..1000).map(|_| ev.as_slice()).collect();
    let dir = tempdir();
    let s = Spool::open_consumers(dir.path(), Options::default(), &["bench"]).expect("open");
    for _ in 0..100 {
        s.append(&events, b"{}").expect("append");
    }
    let mut g = c.benchmark_group("read");
    g.sample_size(20);
    g.throughput(Throughput::Elements(100_000));
    // Plain, and as the forwarder reads: each frame's buffer handed back for the next one.
    for (name, recycle) in [
        ("100,000 events from the page cache", false),
        ("100,000 events from the page cache, buffers recycled", true),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || s.reader_for(0),
                |mut r| {
                    let mut n = 0usize;
                    while let Some(f) = r.next_frame().expect("read") {
                        n += f.events().map(|(_, e)| e.len()).sum::<usize>();
                        if recycle {
                            r.recycle(f);
                        }
                    }
                    black_box(n)
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
