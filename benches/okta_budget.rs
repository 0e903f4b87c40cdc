//! Benchmark: how much of Okta's rate-limit budget a long System Log backfill uses, against the
//! simulator enforcing a limit with real `X-Rate-Limit-*` headers and 429s. The collector runs
//! with no local budget (`requests_limits: []`), so only Okta's headers pace it.
//!
//! `cargo bench --bench okta_budget` (3 one-minute windows at 60 requests per window);
//! `cargo bench --bench okta_budget -- --window-seconds 10 --windows 6` for a quicker run.

mod common;

use common::arg;
use okta_collector::config::Config;
use okta_collector::pipeline::Pipeline;
use okta_collector::shutdown::Shutdown;
use okta_collector::sim::{certs, devo, okta};
use std::time::{Duration, Instant};

fn main() -> Result<(), String> {
    let window = Duration::from_secs(arg("--window-seconds", 60));
    let windows = arg("--windows", 3);
    let limit = arg("--limit", 60);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let pki = certs::generate(&dir.path().join("certs"), "bench CA")?;
    let sim = okta::OktaSim::start(
        ([127, 0, 0, 1], 0).into(),
        okta::Options {
            token: "bench-token".into(),
            total: 100_000_000,
            initial: 100_000_000,
            rate_limit: Some(limit),
            rate_window: window,
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let receiver = devo::Receiver::start(
        ([127, 0, 0, 1], 0).into(),
        &pki,
        devo::Options {
            keep_lines: false,
            verify_delay: Duration::ZERO,
            ..Default::default()
        },
    )?;
    let config_path = dir.path().join("config.yaml");
    let services = format!(
        "      logs: {{start: \"{}\", request_period_in_seconds: 1, requests_limits: []}}\n",
        sim.start_time()
    );
    let text = common::config(receiver.addr.port(), &sim.url(), &services);
    common::write_private(&config_path, &text).map_err(|e| e.to_string())?;
    let config = Config::load(&config_path).map_err(|e| e.to_string())?;
    okta_collector::logging::init(log::LevelFilter::Warn);
    let pipeline = Pipeline::build(&config).map_err(|e| e.to_string())?;
    let shutdown = Shutdown::new();
    let sd = shutdown.clone();
    let started = Instant::now();
    let task = std::thread::spawn(move || smol::block_on(pipeline.run(sd)));
    std::thread::sleep(window * windows as u32 + Duration::from_millis(500));
    shutdown.trigger();
    task.join()
        .map_err(|_| "the pipeline panicked".to_string())?
        .map_err(|e| e.to_string())?;
    let arrivals = sim.arrivals();
    let Some(&first) = arrivals.first() else {
        return Err("no request was made".into());
    };
    let in_windows = arrivals
        .iter()
        .filter(|t| t.duration_since(first) < window * windows as u32)
        .count() as u64;
    let allowed = limit * windows;
    println!(
        "okta budget benchmark: cargo bench --bench okta_budget -- --window-seconds {} --windows {windows} --limit {limit}",
        window.as_secs()
    );
    println!(
        "  requests in {windows} windows of {}s: {in_windows} of {allowed} allowed ({:.1}% of the budget)",
        window.as_secs(),
        100.0 * in_windows as f64 / allowed as f64
    );
    println!("  429s from the simulated Okta: {}", sim.throttled());
    println!(
        "  events delivered: {} in {:.1}s",
        receiver.count(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
