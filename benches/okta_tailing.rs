//! Benchmark: Okta requests per 1,000 System Log events while tailing a live stream of 1, 10
//! and 100 events/s, and during a backfill in which Okta serves short pages mid-backlog
//! (every 4th page a seventh of the limit or less), against a backfill without short pages.
//! Okta's per-org budget is shared with every other integration: tailing should cost about
//! one request per period, and short pages must not slow a backfill.
//!
//! `cargo bench --bench okta_tailing` (8 periods of 5 s per live rate, a 200,000-event
//! backfill); `-- --period-seconds 2 --periods 5 --backfill 50000` for a quicker run.

mod common;

use common::arg;
use okta_collector::config::Config;
use okta_collector::pipeline::Pipeline;
use okta_collector::shutdown::Shutdown;
use okta_collector::sim::{certs, devo, okta};
use std::time::{Duration, Instant};

struct Figures {
    requests: u64,
    events: u64,
    seconds: f64,
}

/// Runs the pipeline against a simulated org with `opts` until `done` or `limit`.
fn run(
    dir: &std::path::Path,
    pki: &certs::Pki,
    opts: okta::Options,
    period: u64,
    limit: Duration,
    done: impl Fn(u64) -> bool,
) -> Result<Figures, String> {
    let sim = okta::OktaSim::start(([127, 0, 0, 1], 0).into(), opts).map_err(|e| e.to_string())?;
    let receiver = devo::Receiver::start(
        ([127, 0, 0, 1], 0).into(),
        pki,
        devo::Options {
            keep_lines: false,
            verify_delay: Duration::ZERO,
            ..Default::default()
        },
    )?;
    let data = dir.join(format!("data-{}", fastrand::u32(..)));
    let services = format!(
        "      logs: {{start: \"{}\", request_period_in_seconds: {period}, requests_limits: []}}\n",
        sim.start_time()
    );
    let text = common::config(receiver.addr.port(), &sim.url(), &services)
        .replace("data_dir: data", &format!("data_dir: {}", data.display()));
    let config_path = dir.join("config.yaml");
    common::write_private(&config_path, &text).map_err(|e| e.to_string())?;
    let config = Config::load(&config_path).map_err(|e| e.to_string())?;
    let pipeline = Pipeline::build(&config).map_err(|e| e.to_string())?;
    let shutdown = Shutdown::new();
    let sd = shutdown.clone();
    let started = Instant::now();
    let task = std::thread::spawn(move || smol::block_on(pipeline.run(sd)));
    while started.elapsed() < limit && !done(receiver.count()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = started.elapsed().as_secs_f64();
    let figures = Figures {
        requests: sim.requests(),
        events: receiver.count(),
        seconds,
    };
    shutdown.trigger();
    task.join()
        .map_err(|_| "the pipeline panicked".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(figures)
}

fn per_1000(f: &Figures) -> f64 {
    1000.0 * f.requests as f64 / f.events.max(1) as f64
}

fn main() -> Result<(), String> {
    let period = arg("--period-seconds", 5);
    let periods = arg("--periods", 8);
    let backfill = arg("--backfill", 200_000);
    okta_collector::logging::init(log::LevelFilter::Error);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let pki = certs::generate(&dir.path().join("certs"), "bench CA")?;
    println!(
        "okta tailing benchmark: cargo bench --bench okta_tailing -- --period-seconds {period} --periods {periods} --backfill {backfill}"
    );
    println!("  live stream (no backlog), {periods} periods of {period} s:");
    for rate in [1.0, 10.0, 100.0] {
        let f = run(
            dir.path(),
            &pki,
            okta::Options {
                token: "bench-token".into(),
                total: u64::MAX / 2,
                initial: 0,
                rate_per_sec: rate,
                ..Default::default()
            },
            period,
            Duration::from_secs(period * periods),
            |_| false,
        )?;
        println!(
            "    {rate:>5} events/s: {} requests for {} events: {:.1} requests per 1,000 events, {:.2} requests per period",
            f.requests,
            f.events,
            per_1000(&f),
            f.requests as f64 / periods as f64
        );
    }
    println!("  backfill of {backfill} events (limit=1000):");
    for (what, short_every) in [("no short pages", 0), ("every 4th page short", 4)] {
        let f = run(
            dir.path(),
            &pki,
            okta::Options {
                token: "bench-token".into(),
                total: backfill,
                initial: backfill,
                short_every,
                ..Default::default()
            },
            period,
            Duration::from_secs(600),
            |n| n >= backfill,
        )?;
        println!(
            "    {what:<22}: {} requests, {:.1} per 1,000 events, {:.0} events/s ({:.1} s)",
            f.requests,
            per_1000(&f),
            f.events as f64 / f.seconds,
            f.seconds
        );
    }
    Ok(())
}
