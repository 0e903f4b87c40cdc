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
    let mut env = Env::new(okta::Options {
        total: TOTAL,
        initial: TOTAL,
        ..Default::default()
    });
    let addr = format!("127.0.0.1:{}", free_port());
    let text = env.config_text("").replace(
        "  log_level: info\n",
        &format!("  log_level: info\n  metrics_listen: {addr}\n"),
    );
    env.write_config_text(&text);
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
    let mut env = Env::new(okta::Options {
        total: 10_000,
        initial: 10_000,
        ..Default::default()
    });
    let devo = env.start_devo();
    let text = env.config_text("").replace(
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
