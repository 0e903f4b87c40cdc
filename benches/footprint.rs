//! Benchmarks 2 and 6: the real `okta-collector` binary's footprint and start-up.
//!
//! 2. idle footprint: all seven services against the simulator (caught up), Devo up; RSS and
//!    CPU after `--idle-seconds` (default 600) of idling;
//! 6. start-up: from spawning `run` to its first request at the simulator (median of
//!    `--starts` runs, empty data_dir); recovery: `Spool::open` of a spool holding
//!    `--spool-mib` (default 2048) MiB of unsent events, in-process, and the same start-up
//!    measured with that spool in the data_dir (median of 5).
//!
//! `cargo bench --bench footprint`; `-- --idle-seconds 60 --spool-mib 256` for a quicker run.
#![allow(clippy::expect_used)] // a benchmark: a panic is a failed run, with its message

mod common;

use common::{Run, arg, status_mib, stop, usage};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Spawns `run` and returns the time until the simulator sees its first request.
fn start_up(run: &Run) -> (Duration, Child) {
    let before = run.sim.requests();
    let t = Instant::now();
    let child = run.spawn();
    while run.sim.requests() == before {
        std::thread::sleep(Duration::from_micros(200));
        assert!(t.elapsed() < Duration::from_secs(60), "no request in 60 s");
    }
    (t.elapsed(), child)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

const ALL_SEVEN: &str = "      logs: {start: \"{start}\", request_period_in_seconds: 60}
      users: {}
      groups: {}
      apps: {}
      idps: {}
      zones: {}
      clients: {}
";

/// Writes `mib` MiB of ~1.5 KB events (1000 per frame, as a System Log page) into a spool.
fn fill_spool(dir: &Path, mib: u64) -> u64 {
    let opts = spool::Options {
        segment_bytes: 32 << 20,
        ..spool::Options::default()
    };
    let s = spool::Spool::open_consumers(dir, opts, &["devo"]).expect("spool");
    let event = format!("{{\"uuid\":\"x\",\"pad\":\"{}\"}}", "e".repeat(1500));
    let frame: Vec<&[u8]> = (0..1000).map(|_| event.as_bytes()).collect();
    let frame_bytes = 1000 * (event.len() as u64 + 4);
    let frames = (mib << 20) / frame_bytes;
    for _ in 0..frames {
        s.append(&frame, b"{}").expect("append");
    }
    frames * 1000
}

fn main() {
    let idle = arg("--idle-seconds", 600);
    let starts = arg("--starts", 11);
    let spool_mib = arg("--spool-mib", 2048);
    common::header(&format!(
        "footprint benchmarks: cargo bench --bench footprint -- --idle-seconds {idle} --starts {starts} --spool-mib {spool_mib}"
    ));

    // 6a. Start-up, empty data_dir each time.
    let mut times = Vec::new();
    for _ in 0..starts {
        let run = Run::new(0, ALL_SEVEN);
        let _rx = run.receiver();
        let (t, child) = start_up(&run);
        times.push(t);
        stop(child);
    }
    let mut v = Command::new(common::collector());
    v.arg("--version").stdout(Stdio::null());
    let t = Instant::now();
    let _ = v.status();
    let version = t.elapsed();
    println!(
        "  6. start-up: spawn to the first Okta request, all seven services, empty data_dir: median {:.1} ms of {starts} (min {:.1}, max {:.1}); `--version` exits in {:.1} ms",
        median(times.clone()).as_secs_f64() * 1e3,
        times.iter().min().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        times.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        version.as_secs_f64() * 1e3
    );

    // 6b. Recovery of a large spool: in-process open, then the whole start-up.
    let run = Run::new(
        0,
        "      logs: {start: \"{start}\", request_period_in_seconds: 60}\n",
    );
    let dir = run.dir.path().join("data/spool/logs");
    let filled = Instant::now();
    let events = fill_spool(&dir, spool_mib);
    let fill_secs = filled.elapsed().as_secs_f64();
    let mut opens = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let s =
            spool::Spool::open_consumers(&dir, spool::Options::default(), &["devo"]).expect("open");
        opens.push(t.elapsed());
        assert_eq!(s.backlog(), events);
    }
    // The receiver is on: each start-up is measured before much is sent, and the process is
    // stopped right after.
    let _rx = run.receiver();
    let starts_full: Vec<Duration> = (0..5)
        .map(|_| {
            let (t, child) = start_up(&run);
            stop(child);
            t
        })
        .collect();
    println!(
        "  6. recovery: a spool of {spool_mib} MiB ({events} unsent events, written in {fill_secs:.1}s) opens in a median {:.2} ms of 5; spawn to the first Okta request with it: median {:.1} ms of 5 (max {:.1})",
        median(opens).as_secs_f64() * 1e3,
        median(starts_full.clone()).as_secs_f64() * 1e3,
        starts_full
            .iter()
            .max()
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    drop(run);

    // 2. Idle footprint.
    let run = Run::new(1000, ALL_SEVEN);
    let _rx = run.receiver();
    let (_, child) = start_up(&run);
    let pid = child.id();
    // Caught up once the simulator has had no request for 3 s.
    let mut last = run.sim.requests();
    loop {
        std::thread::sleep(Duration::from_secs(3));
        let now = run.sim.requests();
        if now == last {
            break;
        }
        last = now;
    }
    let (cpu0, _) = usage(pid);
    let rss0 = status_mib(pid, "VmRSS:");
    std::thread::sleep(Duration::from_secs(idle));
    let (cpu1, hwm) = usage(pid);
    let rss1 = status_mib(pid, "VmRSS:");
    stop(child);
    println!(
        "  2. idle footprint, all seven services: RSS {rss0:.1} MiB once caught up, {rss1:.1} MiB after {idle} s idle (peak {hwm:.1} MiB); {:.2} CPU s while idle",
        cpu1 - cpu0
    );
}
