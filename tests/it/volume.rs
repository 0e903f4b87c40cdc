//! Volume under control (issue 27): Okta's own `filter` on the System Log, and `drop` and
//! `sample` rules by `eventType` applied before the spool: whole events left out, counted per
//! rule, and the cursor moving past them.

use crate::harness::*;
use crate::observability::{get, parse};
use std::collections::HashSet;
use std::time::Duration;

#[test]
fn drop_and_sample_rules_leave_out_whole_events_counted_per_rule_and_the_cursor_moves_on() {
    const TOTAL: u64 = 4_000;
    let mut env = Env::with_backlog(TOTAL);
    let devo = env.start_devo();
    let addr = format!("127.0.0.1:{}", free_port());
    env.config()
        .global("metrics_listen", &addr)
        .logs("drop", r#"["policy.evaluate_sign_on", "system.api_*"]"#)
        .logs(
            "sample",
            r#"[{event_type: "user.session.*", keep_one_in: 4}]"#,
        )
        .write();
    let mut child = env.spawn();
    let metric = |rule: &str| {
        parse(&get(&addr, "/metrics").1)
            .get(&format!(
                r#"okta_collector_events_filtered_total{{service="logs",table="auth.okta.system",rule="{rule}"}}"#
            ))
            .copied()
            .unwrap_or(0.0) as u64
    };
    let rules = [
        "drop:policy.evaluate_sign_on",
        "drop:system.api_*",
        "sample:user.session.*/4",
    ];
    let done = wait_until(Duration::from_secs(60), || {
        std::net::TcpStream::connect(&addr).is_ok()
            && devo.count() + rules.iter().map(|r| metric(r)).sum::<u64>() >= TOTAL
    });
    env.settle();
    let counted: Vec<u64> = rules.iter().map(|r| metric(r)).collect();
    stop(&env, &mut child);
    assert!(
        done,
        "{} delivered, {counted:?} left out\n{}",
        devo.count(),
        env.logs()
    );
    // Every event is accounted for once: delivered whole, or left out by one rule.
    let delivered: HashSet<String> = devo
        .lines()
        .iter()
        .filter_map(|l| {
            let (_, _, e) = okta_collector::forward::syslog::parse_line(l)?;
            Some(String::from_utf8_lossy(e).into_owned())
        })
        .collect();
    assert_eq!(delivered.len() as u64 + counted.iter().sum::<u64>(), TOTAL);
    let (mut by_type, mut kept_sessions, mut sessions) = (vec![0u64; 2], 0, 0);
    for i in 0..TOTAL {
        let e = env.okta.event(i);
        let v: serde_json::Value = serde_json::from_str(&e).unwrap();
        let t = v["eventType"].as_str().unwrap();
        let sent = delivered.contains(&e);
        if t == "policy.evaluate_sign_on" {
            assert!(!sent, "{t} was dropped");
            by_type[0] += 1;
        } else if t.starts_with("system.api_") {
            assert!(!sent, "{t} was dropped");
            by_type[1] += 1;
        } else if t.starts_with("user.session.") {
            sessions += 1;
            kept_sessions += u64::from(sent);
        } else {
            assert!(sent, "event {i} ({t}) is matched by no rule: sent whole");
        }
    }
    assert_eq!(counted[0], by_type[0]);
    assert_eq!(counted[1], by_type[1]);
    assert_eq!(counted[2], sessions - kept_sessions);
    // One in four, by uuid: about a quarter of the sessions kept.
    let share = kept_sessions as f64 / sessions as f64;
    assert!(
        (0.17..0.33).contains(&share),
        "{kept_sessions} of {sessions} kept"
    );
    let logs = env.logs();
    assert!(
        logs.contains("Number of events left out by drop and sample rules:"),
        "{logs}"
    );
    // The cursor moved past what was left out: a restart sends nothing again.
    let before = devo.count();
    let mut child = env.spawn();
    env.settle();
    stop(&env, &mut child);
    assert_eq!(devo.count(), before);
}

#[test]
fn a_filter_is_asked_of_okta_and_one_okta_refuses_is_named_with_its_error() {
    let mut env = Env::with_backlog(50);
    let _devo = env.start_devo();
    env.config()
        .logs("filter", r#"'eventType eq "user.session.start"'"#)
        .write();
    let (code, out, err) = env.validate();
    assert_eq!(code, Some(0), "{out}{err}");
    let mut child = env.spawn();
    let asked = wait_until(Duration::from_secs(20), || {
        env.okta.targets().iter().any(|t| {
            // `run`'s first page (validate's has no `since`).
            t.starts_with("/api/v1/logs?since=")
                && t.contains("filter=eventType%20eq%20%22user.session.start%22")
        })
    });
    stop(&env, &mut child);
    assert!(asked, "{:?}", env.okta.targets());
    // Okta's 400 E0000053 for a filter it cannot read, named by validate with the key.
    env.config().logs("filter", r#"'eventType eq'"#).write();
    let (code, out, err) = env.validate();
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("E0000053"), "{out}");
    assert!(out.contains("inputs.okta.services.logs.filter"), "{out}");
    // `published` is refused before anything is asked.
    env.config()
        .logs("filter", r#"'published gt "2024-01-01T00:00:00Z"'"#)
        .write();
    let (code, out, err) = env.validate();
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(format!("{out}{err}").contains("E0000053"), "{out}{err}");
    // Rules are the System Log's only, and their patterns are checked.
    for (key, value, needle) in [
        ("drop", r#"["a b"]"#, "not an event type"),
        ("sample", "[{event_type: x, keep_one_in: 1}]", "keep_one_in"),
    ] {
        env.config().logs(key, value).write();
        let (code, out, err) = env.validate();
        assert_eq!(code, Some(1), "{key}: {out}{err}");
        assert!(format!("{out}{err}").contains(needle), "{key}: {out}{err}");
    }
    env.config().service("users", "{drop: [x]}").write();
    let (code, out, err) = env.validate();
    assert_eq!(code, Some(1));
    assert!(
        format!("{out}{err}").contains("only the `logs` service"),
        "{out}{err}"
    );
}
