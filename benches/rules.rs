//! What `drop` and `sample` rules cost (issue 27): the end-to-end run of benchmark 1 with no
//! rule and with ten rules that match no event (so every event is checked against all ten
//! and still delivered: the worst case), alternated in one process; CPU seconds per million
//! events of the collector, and the ratio.
//!
//! `cargo bench --bench rules -- --events 300000 --rounds 2`
#![allow(clippy::expect_used)] // a benchmark: a panic is a failed run, with its message

mod common;

use common::{Run, arg};

const TEN: &str = r#"drop: ["policy.evaluate_sign_on_x", "system.agent.*.heartbeat", "user.session.access_admin_app_x", "app.inbound_del_auth.*", "security.threat.detected_x", "*.ldap.*"], sample: [{event_type: "user.authentication.auth_via_mfa_x", keep_one_in: 10}, {event_type: "system.push.*", keep_one_in: 5}, {event_type: "*.radius.*", keep_one_in: 3}, {event_type: "device.*", keep_one_in: 2}]"#;

fn main() {
    let events = arg("--events", 300_000);
    let rounds = arg("--rounds", 2);
    common::header(&format!(
        "rule benchmarks: cargo bench --bench rules -- --events {events} --rounds {rounds}"
    ));
    let mut none = Vec::new();
    let mut ten = Vec::new();
    for _ in 0..rounds {
        for (rules, out) in [("", &mut none), (TEN, &mut ten)] {
            let sep = if rules.is_empty() { "" } else { ", " };
            let logs = format!(
                "      logs: {{start: \"{{start}}\", request_period_in_seconds: 1, requests_limits: []{sep}{rules}}}\n"
            );
            let run = Run::new(events, &logs);
            let (secs, cpu, _) = common::deliver_all(&run, events);
            let cpu_m = cpu * 1e6 / events as f64;
            println!(
                "  {} rules: {:.0} events/s, {cpu_m:.2} CPU s per million events",
                if rules.is_empty() { 0 } else { 10 },
                events as f64 / secs
            );
            out.push(cpu_m);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "  ten rules cost {:+.1}% CPU per event ({:.2} against {:.2} CPU s per million, mean of {rounds})",
        (mean(&ten) / mean(&none) - 1.0) * 100.0,
        mean(&ten),
        mean(&none)
    );
}
