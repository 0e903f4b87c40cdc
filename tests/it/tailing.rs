//! Requests while tailing: a short page whose newest event is about as new as Okta's clock
//! ends the cycle (one request per period on a live stream); a short page deep in a backlog
//! goes on at once (Okta serves those mid-backlog).

use crate::harness::*;
use okta_collector::sim::okta;
use std::time::Duration;

fn logs_requests(env: &Env) -> usize {
    env.okta
        .targets()
        .iter()
        .filter(|t| t.starts_with("/api/v1/logs"))
        .count()
}

#[test]
fn a_live_stream_costs_one_request_per_period() {
    let mut env = Env::new(okta::Options {
        total: u64::MAX / 2,
        initial: 0,
        rate_per_sec: 20.0,
        ..Default::default()
    });
    let devo = env.start_devo();
    env.write_config_text(&env.config_text("").edit(
        "request_period_in_seconds: 1",
        "request_period_in_seconds: 2",
    ));
    let mut child = env.spawn();
    std::thread::sleep(Duration::from_secs(12));
    stop(&env, &mut child);
    let requests = logs_requests(&env);
    assert!(
        devo.count() > 100,
        "{} events; log:\n{}",
        devo.count(),
        env.logs()
    );
    // 6 periods in 12 s; before the rule, each cycle paged until an empty page (2 or more).
    assert!(
        (5..=8).contains(&requests),
        "{requests} requests for {} events in 6 periods",
        devo.count()
    );
}

#[test]
fn short_pages_in_a_backlog_do_not_end_the_cycle() {
    let mut env = Env::new(okta::Options {
        total: 20_000,
        initial: 20_000,
        short_every: 3,
        ..Default::default()
    });
    let devo = env.start_devo();
    // A period of an hour: everything must come in the first cycle.
    env.write_config_text(&env.config_text("").edit(
        "request_period_in_seconds: 1",
        "request_period_in_seconds: 3600",
    ));
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(60), || devo.count() >= 20_000);
    stop(&env, &mut child);
    assert!(
        all,
        "{} of 20000 in the first cycle; log:\n{}",
        devo.count(),
        env.logs()
    );
    let d = check_lines(&env, &devo.lines(), "auth.okta.system");
    assert!(d.missing(20_000).is_empty() && d.duplicates() == 0);
}
