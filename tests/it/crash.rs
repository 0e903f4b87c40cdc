//! kill -9 at random moments, over and over: no event is lost, the spool never holds one twice,
//! duplicates at the receiver stay within the unacknowledged window, and the receiver never
//! sees a partial line.

use crate::harness::*;
use okta_collector::sim::okta;
use std::time::Duration;

#[test]
fn kill_9_at_random_moments_loses_nothing_and_never_spools_twice() {
    let iterations: u32 = std::env::var("OKC_KILL_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let total = 30_000;
    let mut env = Env::new(okta::Options {
        total,
        initial: 1_000,
        rate_per_sec: 1_500.0,
        ..Default::default()
    });
    let devo = env.start_devo();
    env.write_config("");
    let mut rng = fastrand::Rng::with_seed(0x6b_696c_6c39);
    // The events a kill can make the receiver see twice: those sent but not yet recorded as
    // delivered when it struck, read from the spool after each kill.
    let mut windows = 0;
    for it in 0..iterations {
        let mut child = env.spawn();
        std::thread::sleep(Duration::from_millis(rng.u64(200..3000)));
        signal(&child, 9);
        wait_exit(&mut child, Duration::from_secs(10));
        let spool = check_spool_is_exact_prefix(&env);
        windows += spool.unacked;
        eprintln!(
            "iteration {it}: {} lines received, {} events in the spool, {} not yet acknowledged",
            devo.count(),
            spool.events,
            spool.unacked
        );
    }
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(180), || {
        devo.count() >= total
            && check_lines(&env, &devo.lines(), "auth.okta.system")
                .missing(total)
                .is_empty()
    });
    env.settle();
    stop(&env, &mut child);
    let d = check_lines(&env, &devo.lines(), "auth.okta.system");
    let missing = d.missing(total);
    assert!(
        all && missing.is_empty(),
        "lost {} events, first {:?}\n",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let dups = d.duplicates();
    eprintln!(
        "kill -9 x{iterations}: {total} events delivered, lost 0, receiver duplicates {dups} \
         ({:.1} per kill; unacknowledged windows at the kills: {windows} events in all)",
        dups as f64 / f64::from(iterations)
    );
    assert!(
        dups <= windows,
        "{dups} duplicates, more than the {windows} events left unacknowledged by the kills"
    );
    assert!(!env.logs().contains("corrupt"), "{}", env.logs());
    // Each TLS record holds whole lines: a kill anywhere leaves the receiver no partial line
    // (one per kill before records were aligned to lines).
    assert_eq!(
        devo.partial_lines(),
        0,
        "connections that ended inside a line, of {}",
        devo.connections()
    );
}

#[test]
fn kill_9_while_a_backlog_flows_over_tls_leaves_the_receiver_no_partial_line() {
    let total = 50_000;
    let mut env = Env::new(okta::Options {
        total,
        initial: total,
        ..Default::default()
    });
    let devo = env.start_devo();
    env.write_config("");
    let mut rng = fastrand::Rng::with_seed(0x7061_7274);
    let mut kills = 0;
    while kills < 10 && devo.count() < total {
        let mut child = env.spawn();
        // Once lines flow on this run's connection, kill it mid-stream.
        let before = devo.count();
        wait_until(Duration::from_secs(20), || devo.count() > before + 300);
        std::thread::sleep(Duration::from_millis(rng.u64(0..150)));
        signal(&child, 9);
        wait_exit(&mut child, Duration::from_secs(10));
        kills += 1;
    }
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(120), || {
        check_lines(&env, &devo.lines(), "auth.okta.system")
            .missing(total)
            .is_empty()
    });
    stop(&env, &mut child);
    assert!(all, "{}", env.logs());
    assert!(kills >= 5, "only {kills} kills landed while lines flowed");
    assert_eq!(
        devo.partial_lines(),
        0,
        "{kills} kills: connections that ended inside a line"
    );
}
