//! Benchmark 11: the drain after an outage with a spool bound smaller than one page, against
//! no bound. Admin-sized System Log events (pages of about 6 MB) are pulled while Devo is down
//! for `--outage` seconds; then Devo comes up and the time to deliver every event is taken,
//! from the first event received (the collector's reconnect backoff is not the drain's speed).
//! With a bound below one page the puller must fetch while the output sends; the goal is a
//! drain within 1.5x of the unbounded one.
//!
//! `cargo bench --bench drain` (20,000 events, a 10 s outage); `-- --events 40000 --outage 20`.
#![allow(clippy::expect_used)] // a benchmark: a panic is a failed run, with its message

mod common;

use common::{Run, arg, stop};
use std::time::{Duration, Instant};

const LOGS: &str =
    "      logs: {start: \"{start}\", request_period_in_seconds: 1, requests_limits: []}\n";

/// Seconds from the first event received to the last, after `outage` seconds without Devo;
/// the requests made; and the seconds the collector took to fetch what it fetched during the
/// outage (to the last request before the outage ended).
fn drain(events: u64, bound: u64, outage: u64) -> (f64, u64, f64) {
    let run = Run::with(events, LOGS, bound, true);
    let spawned = Instant::now();
    let child = run.spawn();
    // The backlog is fetched back to back; once caught up the puller asks once a period
    // (1 s): the first pause of half a second ends the fetching.
    let (mut seen, mut last, mut caught_up) = (0, 0.0, false);
    while spawned.elapsed() < Duration::from_secs(outage) {
        let n = run.sim.requests();
        let now = spawned.elapsed().as_secs_f64();
        if !caught_up && n != seen {
            (seen, last) = (n, now);
        } else if seen > 0 && now - last > 0.5 {
            caught_up = true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let rx = run.receiver();
    while rx.count() == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    while rx.count() < events {
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = started.elapsed().as_secs_f64();
    let requests = run.sim.requests();
    stop(child);
    (secs, requests, last)
}

fn main() {
    let events = arg("--events", 20_000);
    let outage = arg("--outage", 10);
    let bound = arg("--bound", 4 << 20);
    common::header(&format!(
        "drain after an outage: cargo bench --bench drain -- --events {events} --outage {outage} --bound {bound}"
    ));
    let (free, free_requests, fetched) = drain(events, 8 << 30, outage);
    let (bounded, bounded_requests, _) = drain(events, bound, outage);
    println!(
        "  11. drain of {events} admin-sized events (pages of ~6 MB) after a {outage} s outage: no bound {free:.2}s ({free_requests} requests; fetching the whole backlog took it {fetched:.2}s during the outage); max_bytes_per_table {bound} {bounded:.2}s ({bounded_requests} requests); ratio {:.2}x to the unbounded drain (goal <= 1.5x), {:.2}x to fetching alone",
        bounded / free,
        bounded / fetched
    );
}
