//! Delivery tests: all events arrive exactly once and unaltered; Devo down at start; SIGTERM
//! mid-stream and restart.

use crate::harness::*;
use okta_collector::sim::okta;
use std::time::Duration;

#[test]
fn twenty_thousand_events_over_many_pages_with_empty_ones_arrive_exactly_once() {
    let mut env = Env::new(okta::Options {
        total: 20_000,
        initial: 20_000,
        empty_every: 6,
        ..Default::default()
    });
    let devo = env.start_devo();
    env.write_config("");
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(120), || devo.count() >= 20_000);
    // One more cycle that finds nothing new: what was to arrive (a duplicate too) has.
    assert!(
        env.wait_for_more("The data is up to date!", 1, Duration::from_secs(30)),
        "{}",
        env.logs()
    );
    stop(&env, &mut child);
    assert!(
        all,
        "only {} of 20000 arrived\n{}",
        devo.count(),
        env.logs()
    );
    let d = check_lines(&env, &devo.lines(), "auth.okta.system");
    assert_eq!(d.lines, 20_000);
    d.assert_exactly_once(20_000);
    let logs = env.logs();
    assert!(
        logs.contains("Statistics for this pull cycle (@devo_pulling_id="),
        "{logs}"
    );
    assert!(
        logs.contains("Number of duplicated events filtered out: 0;"),
        "{logs}"
    );
    assert!(logs.contains("The data is up to date!"), "{logs}");
    assert!(
        env.okta.requests() > 20,
        "empty pages were served and followed"
    );
    assert!(!logs.contains(TOKEN), "the token must never be logged");
}

#[test]
fn override_tag_routes_events_to_another_table() {
    let mut env = Env::with_backlog(500);
    let devo = env.start_devo();
    env.write_config("        override_tag: my.app.okta.logs\n");
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(60), || devo.count() >= 500);
    stop(&env, &mut child);
    assert!(all, "{}", env.logs());
    let d = check_lines(&env, &devo.lines(), "my.app.okta.logs");
    assert_eq!((d.lines, d.duplicates()), (500, 0));
}

#[test]
fn devo_down_at_start_then_up_everything_arrives() {
    let mut env = Env::with_backlog(20_000);
    env.write_config("");
    let mut child = env.spawn();
    // Pulling goes on into the spool while Devo is unreachable.
    let spooled = wait_until(Duration::from_secs(60), || {
        env.logs().contains("The data is up to date!")
    });
    assert!(spooled, "{}", env.logs());
    assert!(env.logs().contains("Cannot connect"), "{}", env.logs());
    let devo = env.start_devo();
    let all = wait_until(Duration::from_secs(120), || devo.count() >= 20_000);
    env.settle();
    stop(&env, &mut child);
    assert!(all, "only {} arrived\n{}", devo.count(), env.logs());
    let d = check_lines(&env, &devo.lines(), "auth.okta.system");
    d.assert_exactly_once(20_000);
}

#[test]
fn sigterm_mid_stream_then_restart_loses_and_duplicates_nothing() {
    let total = 20_000;
    let mut env = Env::new(okta::Options {
        total,
        initial: 2_000,
        rate_per_sec: 4_000.0,
        ..Default::default()
    });
    let devo = env.start_devo();
    env.write_config("");
    let mut child = env.spawn();
    assert!(
        wait_until(Duration::from_secs(60), || devo.count() >= 4_000),
        "{}",
        env.logs()
    );
    stop(&env, &mut child);
    let at_stop = devo.count();
    assert!(
        at_stop < total,
        "the stop happened mid-stream ({at_stop} delivered)"
    );
    assert!(env.logs().contains("Closed cleanly."), "{}", env.logs());
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(120), || devo.count() >= total);
    // One more cycle that finds nothing new: what was to arrive (a duplicate too) has.
    assert!(
        env.wait_for_more("The data is up to date!", 1, Duration::from_secs(30)),
        "{}",
        env.logs()
    );
    stop(&env, &mut child);
    assert!(all, "only {} arrived\n{}", devo.count(), env.logs());
    let d = check_lines(&env, &devo.lines(), "auth.okta.system");
    assert!(d.missing(total).is_empty());
    assert_eq!(
        d.duplicates(),
        0,
        "a clean stop leaves nothing unacknowledged"
    );
    assert!(env.logs().contains("Data retrieved from the persistence"));
}

#[test]
fn a_second_instance_on_the_same_data_dir_is_refused() {
    let mut env = Env::new(okta::Options::default());
    let devo = env.start_devo();
    env.write_config("");
    let mut first = env.spawn();
    assert!(
        wait_until(Duration::from_secs(30), || devo.count() > 0),
        "{}",
        env.logs()
    );
    let out = std::process::Command::new(bin())
        .args(["run", "--config"])
        .arg(env.path().join("config.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("in use by another okta-collector process"),
        "{stderr}"
    );
    assert!(stderr.contains("data/spool/logs"), "{stderr}");
    // A restart cannot help here: the line says what does.
    assert!(
        stderr.contains("Stop the other process that holds the spool")
            && !stderr.contains("Restart to recover"),
        "{stderr}"
    );
    stop(&env, &mut first);
}

#[test]
fn sigterm_while_okta_hangs_exits_promptly() {
    // Every answer takes 20 s: the collector is inside a request when the signal comes.
    let mut env = Env::new(okta::Options {
        page_delay: Duration::from_secs(20),
        ..Default::default()
    });
    env.start_devo();
    env.write_config("");
    let mut child = env.spawn();
    assert!(wait_until(Duration::from_secs(10), || env.okta.requests() > 0));
    let t = std::time::Instant::now();
    stop(&env, &mut child);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn events_sent_while_devo_rejects_the_client_certificate_are_not_lost() {
    let total = 5;
    let mut env = Env::new(okta::Options {
        total,
        initial: total,
        ..Default::default()
    });
    // A client certificate from a CA the receiver does not trust. Under TLS 1.3 the client's
    // handshake completes first; the server's verdict comes after the client has sent data,
    // which the server's TCP stack acknowledges before the server rejects the session.
    let rogue =
        okta_collector::sim::certs::generate(&env.path().join("rogue"), "rogue CA").unwrap();
    let good = env.config_text("");
    env.write_config_text(
        &good
            .edit("certs/domain.crt", rogue.client_cert.to_str().unwrap())
            .edit("certs/domain.key", rogue.client_key.to_str().unwrap()),
    );
    // Devo comes up only once the spool holds everything, so the first write is a full batch.
    let mut child = env.spawn();
    assert!(
        wait_until(Duration::from_secs(60), || env
            .logs()
            .contains("The data is up to date!")),
        "{}",
        env.logs()
    );
    // The receiver takes 300 ms to reject the certificate: the batch is in its TCP stack by then.
    let devo = env.start_devo_with(Duration::from_millis(300));
    assert!(
        wait_until(Duration::from_secs(60), || env
            .logs()
            .contains("received fatal alert")),
        "{}",
        env.logs()
    );
    stop(&env, &mut child);
    assert_eq!(devo.count(), 0);
    // With the right certificate, everything pulled earlier arrives.
    env.write_config_text(&good);
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(60), || devo.count() >= total);
    env.settle();
    stop(&env, &mut child);
    let d = check_lines(&env, &devo.lines(), "auth.okta.system");
    assert!(
        all && d.missing(total).is_empty(),
        "{} of {total} arrived\n{}",
        devo.count(),
        env.logs()
    );
}

#[test]
fn a_receiver_resetting_connections_mid_stream_loses_nothing() {
    let total = 60_000;
    let mut env = Env::new(okta::Options {
        total,
        initial: 2_000,
        rate_per_sec: 4_000.0,
        // Okta-like latency: without it the puller chases the stream's tail with tiny pages
        // and spends the global budget (980 requests a minute) in a second.
        page_delay: Duration::from_millis(30),
        ..Default::default()
    });
    // Every connection is reset (RST) 2.5 s after it opened, while events flow: the
    // receiver's unread bytes are gone with it, though its TCP stack acknowledged them.
    let devo = env.start_devo_opts(okta_collector::sim::devo::Options {
        keep_lines: true,
        reset_after: Duration::from_millis(2500),
        reset_socket: Some(crate::sys::reset_on_close),
        ..Default::default()
    });
    env.write_config("");
    let mut child = env.spawn();
    let missing = |devo: &okta_collector::sim::devo::Receiver| {
        check_lines(&env, &devo.lines(), "auth.okta.system")
            .missing(total)
            .len()
    };
    let all = wait_until(Duration::from_secs(120), || {
        devo.count() >= total && missing(&devo) == 0
    });
    stop(&env, &mut child);
    let d = check_lines(&env, &devo.lines(), "auth.okta.system");
    eprintln!(
        "{} connections, {} lines, {} missing, {} duplicates re-sent after resets",
        devo.connections(),
        d.lines,
        d.missing(total).len(),
        d.duplicates()
    );
    assert!(all, "{} missing\n{}", d.missing(total).len(), env.logs());
    assert!(
        devo.connections() >= 4,
        "the receiver reset connections\n{}",
        env.logs()
    );
    assert!(env.logs().contains("Connection lost"), "{}", env.logs());
    // The receiver resets at any moment, after taking what it had decrypted: records hold
    // whole lines, so it never holds the start of a line.
    assert_eq!(
        devo.partial_lines(),
        0,
        "connections that ended inside a line"
    );
}
