//! Benchmarks 1 and 3: the real `okta-collector` binary pulls System Log events from the
//! simulator and delivers them over mutual TLS to the receiver, all on 127.0.0.1.
//!
//! 1. end to end: events per second, CPU seconds per million events, peak RSS of the
//!    collector process (the simulator and receiver run in this bench process, not in it);
//! 3. outage drain: the same events pulled while Devo is down, then Devo comes up: the
//!    backlog's drain rate.
//!
//! `cargo bench --bench end_to_end` (1,000,000 events); `-- --events 200000` for a quicker run.
#![allow(clippy::expect_used)] // a benchmark: a panic is a failed run, with its message

mod common;

use common::{Run, arg, stop, usage};
use std::time::{Duration, Instant};

const LOGS: &str =
    "      logs: {start: \"{start}\", request_period_in_seconds: 1, requests_limits: []}\n";

fn main() {
    let events = arg("--events", 1_000_000);
    common::header(&format!(
        "end-to-end benchmarks: cargo bench --bench end_to_end -- --events {events}"
    ));

    // 1. End to end.
    let run = Run::new(events, LOGS);
    let (secs, cpu, rss) = common::deliver_all(&run, events);
    println!(
        "  1. end to end: {events} events in {secs:.1}s = {:.0} events/s; {:.2} CPU s per million events; peak RSS {rss:.1} MiB; {} requests",
        events as f64 / secs,
        cpu * 1e6 / events as f64,
        run.sim.requests()
    );

    // 3. Outage drain: pull everything with Devo down, then bring it up.
    let run = Run::new(events, LOGS);
    let started = Instant::now();
    let child = run.spawn();
    let spool = run.dir.path().join("data/spool/logs");
    // Pulled when the simulator has served every page and nothing more is being written.
    let mut prev = 0;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let bytes: u64 = std::fs::read_dir(&spool)
            .map(|d| {
                d.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        if bytes > 0 && bytes == prev {
            break;
        }
        prev = bytes;
    }
    let pulled = started.elapsed().as_secs_f64();
    let rx = run.receiver();
    // The drain is timed from the first event received: the collector reconnects on its own
    // backoff (up to 60 s), which is not the drain's speed.
    while rx.count() == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let drain = Instant::now();
    let first = rx.count();
    while rx.count() < events {
        std::thread::sleep(Duration::from_millis(50));
    }
    let secs = drain.elapsed().as_secs_f64();
    let (_, rss) = usage(child.id());
    stop(child);
    println!(
        "  3. outage drain: {events} events pulled into the spool in {pulled:.1}s while Devo was down ({:.1} MiB on disk); drained in {secs:.1}s from the first event received = {:.0} events/s; peak RSS {rss:.1} MiB",
        prev as f64 / 1_048_576.0,
        (events - first) as f64 / secs
    );
}
