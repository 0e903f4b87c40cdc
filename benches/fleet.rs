//! Many orgs on one node (issue 27): ten collectors side by side, each with its own simulated
//! org, receiver, config and data_dir, all seven services on. Busy: each pulls a backlog of
//! System Log events at once; idle: caught up, for a while. Per collector and in all: CPU
//! seconds and RSS, read from /proc (the simulators and receivers run in this process).
//!
//! `cargo bench --bench fleet -- --collectors 10 --events 100000 --idle-seconds 60`
#![allow(clippy::expect_used)] // a benchmark: a panic is a failed run, with its message

mod common;

use common::{Run, arg, status_mib, stop, usage};
use std::time::{Duration, Instant};

const SERVICES: &str =
    "      logs: {start: \"{start}\", request_period_in_seconds: 60, requests_limits: []}
      users: {request_period_in_seconds: 300, requests_limits: []}
      groups: {request_period_in_seconds: 300, requests_limits: []}
      apps: {request_period_in_seconds: 3600, requests_limits: []}
      idps: {request_period_in_seconds: 3600, requests_limits: []}
      zones: {request_period_in_seconds: 3600, requests_limits: []}
      clients: {request_period_in_seconds: 3600, requests_limits: []}
";

fn main() {
    let n = arg("--collectors", 10) as usize;
    let events = arg("--events", 100_000);
    let idle = arg("--idle-seconds", 60);
    common::header(&format!(
        "fleet benchmarks: cargo bench --bench fleet -- --collectors {n} --events {events} --idle-seconds {idle}"
    ));
    let runs: Vec<Run> = (0..n).map(|_| Run::new(events, SERVICES)).collect();
    let receivers: Vec<_> = runs.iter().map(Run::receiver).collect();
    let started = Instant::now();
    let children: Vec<_> = runs.iter().map(Run::spawn).collect();
    let pids: Vec<u32> = children.iter().map(std::process::Child::id).collect();
    // Busy: every collector pulls and delivers its backlog.
    let mut peak = vec![0.0f64; n];
    while receivers.iter().any(|r| r.count() < events) {
        for (i, pid) in pids.iter().enumerate() {
            peak[i] = peak[i].max(status_mib(*pid, "VmRSS:"));
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_secs(1_800) {
            break;
        }
    }
    let busy = started.elapsed().as_secs_f64();
    let busy_cpu: Vec<f64> = pids.iter().map(|p| usage(*p).0).collect();
    let total_cpu: f64 = busy_cpu.iter().sum();
    let delivered: u64 = receivers.iter().map(|r| r.count()).sum();
    println!(
        "  busy: {n} collectors delivered {delivered} events in {busy:.1}s ({:.0} events/s together); CPU {total_cpu:.1} s in all ({:.0}% of one core over the run, {:.2} CPU s per million events); peak RSS per collector {:.1}-{:.1} MiB, {:.1} MiB together",
        delivered as f64 / busy,
        total_cpu / busy * 100.0,
        total_cpu * 1e6 / delivered as f64,
        peak.iter().copied().fold(f64::INFINITY, f64::min),
        peak.iter().copied().fold(0.0, f64::max),
        peak.iter().sum::<f64>()
    );
    // Idle: caught up, `idle` seconds.
    std::thread::sleep(Duration::from_secs(5));
    let before: Vec<f64> = pids.iter().map(|p| usage(*p).0).collect();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(idle));
    let secs = t.elapsed().as_secs_f64();
    let after: Vec<f64> = pids.iter().map(|p| usage(*p).0).collect();
    let rss: Vec<f64> = pids.iter().map(|p| status_mib(*p, "VmRSS:")).collect();
    let idle_cpu: f64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    println!(
        "  idle: {n} collectors caught up for {secs:.0}s: CPU {idle_cpu:.2} s in all ({:.2}% of one core; {:.3}% each); RSS {:.1}-{:.1} MiB each, {:.1} MiB together",
        idle_cpu / secs * 100.0,
        idle_cpu / secs * 100.0 / n as f64,
        rss.iter().copied().fold(f64::INFINITY, f64::min),
        rss.iter().copied().fold(0.0, f64::max),
        rss.iter().sum::<f64>()
    );
    for c in children {
        stop(c);
    }
}
