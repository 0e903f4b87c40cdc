//! Observability: `/metrics` parses as Prometheus text and its counters match what was pulled
//! and delivered; `/healthz` answers; `/readyz` follows the output's connection.

use crate::harness::*;
use okta_collector::sim::okta;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

/// GETs `path` from `addr`: (status, body).
pub fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 65536];
    // The server keeps the connection open: read until the announced length is in.
    loop {
        let n = s.read(&mut buf).unwrap();
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return (status, body.to_string());
            }
        }
        if n == 0 {
            panic!("connection closed early: {text}");
        }
    }
}

/// Parses Prometheus text: `name{labels}` → value; checks every sample has HELP and TYPE.
pub fn parse(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split_whitespace();
            let (name, kind) = (p.next().unwrap(), p.next().unwrap());
            assert!(matches!(kind, "counter" | "gauge"), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        assert!(typed.contains(name), "{name} has no TYPE line");
        out.insert(series.to_string(), value.parse::<f64>().unwrap());
    }
    out
}

#[test]
fn metrics_match_what_was_delivered_and_probes_follow_the_output() {
    const TOTAL: u64 = 5_000;
    let mut env = Env::with_backlog(TOTAL);
    let addr = format!("127.0.0.1:{}", free_port());
    env.config().global("metrics_listen", &addr).write();
    let mut child = env.spawn();
    assert!(wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(&addr).is_ok()
    }));
    assert_eq!(get(&addr, "/healthz").0, 200);
    assert_eq!(get(&addr, "/readyz").0, 503, "Devo is not up yet");
    let devo = env.start_devo();
    assert!(
        wait_until(Duration::from_secs(60), || devo.count() >= TOTAL),
        "{}",
        env.logs()
    );
    let labels = r#"{service="logs",table="auth.okta.system"}"#;
    let sent = r#"okta_collector_events_sent_total{service="logs",table="auth.okta.system",output="devo_1"}"#;
    assert!(
        wait_until(Duration::from_secs(10), || parse(&get(&addr, "/metrics").1)
            .get(sent)
            .copied()
            == Some(TOTAL as f64)),
        "{}",
        get(&addr, "/metrics").1
    );
    let (status, body) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    let m = parse(&body);
    assert_eq!(
        m[&format!("okta_collector_events_pulled_total{labels}")],
        TOTAL as f64
    );
    assert_eq!(
        m[&format!("okta_collector_spool_waiting_events{labels}")],
        0.0
    );
    assert!(m[&format!("okta_collector_spool_bytes{labels}")] > 0.0);
    assert_eq!(
        m[&format!("okta_collector_duplicates_dropped_total{labels}")],
        0.0
    );
    let ok = m[r#"okta_collector_okta_requests_total{service="logs",status="200"}"#];
    assert!(ok >= 5.0 && ok <= env.okta.requests() as f64, "{ok}");
    assert!(m[r#"okta_collector_okta_rate_limit_remaining{service="logs"}"#] > 0.0);
    assert!(m[r#"okta_collector_last_successful_pull_timestamp_seconds{service="logs"}"#] > 1.7e9);
    assert_eq!(
        m[r#"okta_collector_output_connected{output="devo_1",type="devo_platform"}"#],
        1.0
    );
    assert_eq!(get(&addr, "/readyz").0, 200);
    stop(&env, &mut child);
}

#[test]
fn json_logs_go_to_a_file_rotated_by_size() {
    let mut env = Env::with_backlog(10_000);
    let devo = env.start_devo();
    let text = env.config_text("").edit(
        "  log_level: info\n",
        "  log_level: debug\n  log_file: okc.log\n  log_max_bytes: 4096\n  log_keep: 2\n  log_format: json\n",
    );
    env.write_config_text(&text);
    let mut child = env.spawn();
    assert!(wait_until(Duration::from_secs(30), || devo.count() >= 10_000));
    stop(&env, &mut child);
    let log = env.path().join("okc.log");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.len() <= 4096 + 1024, "{} bytes", text.len());
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["time"].is_string() && v["level"].is_string() && v["message"].is_string());
    }
    assert!(env.path().join("okc.log.1").exists(), "rotated");
    let all = format!(
        "{}{}{}",
        std::fs::read_to_string(env.path().join("okc.log.2")).unwrap_or_default(),
        std::fs::read_to_string(env.path().join("okc.log.1")).unwrap(),
        text
    );
    assert!(all.contains("Stopped cleanly."), "{all}");
    assert!(!all.contains(TOKEN));
    assert!(env.logs().is_empty(), "nothing on stderr: {}", env.logs());
}

#[test]
fn spool_losses_and_error_ids_are_metrics_and_losses_show_in_status() {
    const TOTAL: u64 = 5_000;
    let mut env = Env::with_backlog(TOTAL);
    let addr = format!("127.0.0.1:{}", free_port());
    // A 16 MiB bound makes 2 MiB segments: the damage lands in a sealed one.
    let text = env.config_with_globals(&format!(
        "  metrics_listen: {addr}\n  spool:\n    max_bytes_per_table: 16777216\n"
    ));
    assert!(text.contains("metrics_listen"));
    env.write_config_text(&text);
    // Devo is down: everything stays in the spool.
    let mut child = env.spawn();
    assert!(wait_until(Duration::from_secs(30), || env
        .logs()
        .contains("The data is up to date!")));
    stop(&env, &mut child);
    let dir = env.spool_dir();
    let mut segs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    assert!(segs.len() >= 3, "{segs:?}");
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&segs[0], &bytes).unwrap();
    // One Okta error on the next request: PullError 300.
    env.okta.inject(
        okta_collector::config::ServiceKind::Logs,
        okta::Fault::Status(500),
    );
    let devo = env.start_devo();
    let mut child = env.spawn();
    let mut m = HashMap::new();
    let seen = wait_until(Duration::from_secs(30), || {
        if std::net::TcpStream::connect(&addr).is_err() {
            return false;
        }
        m = parse(&get(&addr, "/metrics").1);
        let metric = |name: &str| {
            m.get(&format!(
                "okta_collector_{name}{{service=\"logs\",table=\"auth.okta.system\"}}"
            ))
            .copied()
            .unwrap_or(0.0)
        };
        let lost = metric("spool_lost_events_total");
        metric("spool_corrupt_frames_total") >= 1.0
            && lost >= 1.0
            && devo.count() as f64 >= TOTAL as f64 - lost
            && m.get("okta_collector_errors_total{id=\"PullError 300\"}")
                .is_some_and(|n| *n >= 1.0)
    });
    let status = std::process::Command::new(bin())
        .args(["status", "--config"])
        .arg(env.path().join("config.yaml"))
        .output()
        .unwrap();
    stop(&env, &mut child);
    assert!(seen, "{m:?}\n{}", env.logs());
    let lost =
        m["okta_collector_spool_lost_events_total{service=\"logs\",table=\"auth.okta.system\"}"];
    assert!(lost >= 1.0, "{m:?}");
    let d = check_lines(&env, &devo.lines(), "auth.okta.system");
    assert_eq!(
        d.missing(TOTAL).len() as f64,
        lost,
        "the metric counts what is missing"
    );
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains(&format!(
            "losses:      {lost} events lost, 1 corrupt frames skipped"
        )),
        "{status}"
    );
}

#[test]
fn freshness_is_visible_in_metrics_and_status() {
    // A live stream: events are published as they arrive.
    let mut env = Env::new(okta::Options {
        total: u64::MAX / 2,
        initial: 0,
        rate_per_sec: 50.0,
        ..Default::default()
    });
    let addr = format!("127.0.0.1:{}", free_port());
    env.config().global("metrics_listen", &addr).write();
    let mut child = env.spawn();
    assert!(wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(&addr).is_ok()
    }));
    let labels = r#"{service="logs",table="auth.okta.system"}"#;
    let oldest = format!("okta_collector_oldest_waiting_event_age_seconds{labels}");
    let lag = r#"okta_collector_delivery_lag_seconds{service="logs",table="auth.okta.system",output="devo_1"}"#;
    // Devo is down: events wait, and the oldest of them ages.
    std::thread::sleep(Duration::from_secs(4));
    let m = parse(&get(&addr, "/metrics").1);
    assert!(m[&oldest] >= 2.0 && m[&oldest] < 30.0, "{}", m[&oldest]);
    assert!(!m.contains_key(lag), "nothing delivered yet");
    let devo = env.start_devo();
    // Devo is up: the backlog drains and the lag is a few seconds at most.
    assert!(
        wait_until(Duration::from_secs(30), || {
            let m = parse(&get(&addr, "/metrics").1);
            devo.count() > 200 && m.get(lag).is_some_and(|l| *l < 5.0) && m[&oldest] < 5.0
        }),
        "{}\n{}",
        get(&addr, "/metrics").1,
        env.logs()
    );
    stop(&env, &mut child);
    let out = std::process::Command::new(bin())
        .args(["status", "--config"])
        .arg(env.path().join("config.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("  lag:         ")
            && text.contains(" behind: the newest event devo_1 delivered is of "),
        "{text}"
    );
}
