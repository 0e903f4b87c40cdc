//! Attacks from the network on the real binary: the metrics port (huge Content-Length, a
//! header line without end, hundreds of idle connections, other methods), hostile Okta
//! answers (a rate-limit reset past any clock, a `published` time in year 10000) and a config
//! too large to parse. After each, the collector keeps pulling and delivering.

use crate::harness::*;
use okta_collector::config::ServiceKind;
use okta_collector::sim::okta;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Sends `head` and returns the status line of the answer ("" if none came).
fn send(addr: &str, head: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(head);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !got.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn the_metrics_port_survives_what_anyone_on_the_network_can_send() {
    const TOTAL: u64 = 30_000;
    let mut env = Env::new(okta::Options {
        total: TOTAL,
        initial: 2_000,
        rate_per_sec: 1_000.0,
        ..Default::default()
    });
    let addr = format!("127.0.0.1:{}", free_port());
    env.config().global("metrics_listen", &addr).write();
    let devo = env.start_devo();
    let mut child = env.spawn();
    let pid = child.id();
    assert!(wait_until(Duration::from_secs(20), || TcpStream::connect(
        &addr
    )
    .is_ok()));
    // No core file could hold the token: the limit is 0 from the start.
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
    // A body length no allocation can hold: refused, not read.
    let st = send(
        &addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n",
    );
    assert!(st.contains(" 413 "), "{st}");
    // Another method.
    let st = send(&addr, b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(st.contains(" 405 "), "{st}");
    // A header line that never ends: cut at 8 KiB, whatever follows.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nX-Long: ");
    let chunk = vec![b'a'; 1 << 20];
    let mut sent = 0;
    while sent < (64 << 20) && s.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    assert!(
        sent < (64 << 20),
        "the server read 64 MiB of one header line"
    );
    drop(s);
    // Hundreds of idle connections: a bounded number served, the rest refused; no thread
    // each, and the collector goes on.
    let idle: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t = threads(pid);
    assert!(t < 80, "{t} threads with 300 idle connections");
    assert!(child.try_wait().unwrap().is_none(), "still running");
    drop(idle);
    // The read timeout frees the slots; then the endpoint answers again.
    assert!(
        wait_until(Duration::from_secs(15), || send(
            &addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .contains(" 200 ")),
        "healthz answers again"
    );
    let rss = rss_kib(pid);
    let all = wait_until(Duration::from_secs(90), || devo.count() >= TOTAL);
    stop(&env, &mut child);
    assert!(all, "{} of {TOTAL}\n{}", devo.count(), env.logs());
    assert!(rss < 100 << 10, "RSS {rss} KiB after the attacks");
    let d = check_lines(&env, &devo.lines(), "auth.okta.system");
    assert!(d.missing(TOTAL).is_empty());
}

#[test]
fn hostile_okta_answers_do_not_abort_the_collector() {
    const TOTAL: u64 = 3_000;
    let mut env = Env::with_backlog(TOTAL);
    // A reset past any clock, with room left in the window (so nothing waits for it).
    env.okta.inject(
        ServiceKind::Logs,
        okta::Fault::Headers(vec![
            ("x-rate-limit-reset".into(), "9223372036854775808".into()),
            ("x-rate-limit-remaining".into(), "100".into()),
            ("x-rate-limit-limit".into(), "120".into()),
        ]),
    );
    // An event in year 10000 once its offset is applied.
    let hostile = env.okta.event(TOTAL + 7).replacen(
        "\"published\":\"",
        "\"published\":\"9999-12-31T23:59:59-01:00\",\"x\":\"",
        1,
    );
    assert!(hostile.contains("9999-12-31T23:59:59-01:00"));
    env.okta.inject(
        ServiceKind::Logs,
        okta::Fault::Raw(
            200,
            vec![("content-type".into(), "application/json".into())],
            format!("[{hostile}]").into_bytes(),
        ),
    );
    let devo = env.start_devo();
    env.write_config("");
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(60), || devo.count() > TOTAL);
    let running = child.try_wait().unwrap().is_none();
    stop(&env, &mut child);
    let logs = env.logs();
    assert!(running, "the collector exited\n{logs}");
    assert!(all, "{} of {}\n{logs}", devo.count(), TOTAL + 1);
    let lines = devo.lines();
    assert!(
        lines.iter().any(|l| l.ends_with(hostile.as_bytes())),
        "the event is delivered byte for byte"
    );
    let uuid = okta_collector::sim::okta::uuid(TOTAL + 7);
    assert!(
        logs.contains(&format!(
            "event {uuid} has a published time that cannot be used"
        )),
        "{logs}"
    );
    assert_eq!(env.okta.pending_faults(), 0);
}

#[test]
fn a_data_dir_others_can_write_or_a_planted_symlink_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let mut env = Env::new(okta::Options::default());
    env.write_config("");
    let data = env.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut child = env.spawn();
    let st = wait_exit(&mut child, Duration::from_secs(20));
    assert_eq!(st.code(), Some(1), "{}", env.logs());
    let logs = env.logs();
    assert!(
        logs.contains("is writable by every user (mode 0777)")
            && logs.contains(&format!("chmod go-w {}", data.display())),
        "{logs}"
    );
    // Fixed by its owner: then a LOCK planted as a symlink is not followed.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let spool = data.join("spool/logs");
    std::fs::create_dir_all(&spool).unwrap();
    let elsewhere = env.path().join("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, spool.join("LOCK")).unwrap();
    let mut child = env.spawn();
    let st = wait_exit(&mut child, Duration::from_secs(20));
    assert_eq!(st.code(), Some(1), "{}", env.logs());
    assert!(!elsewhere.exists(), "the symlink was followed");
    assert!(env.logs().contains("LOCK"), "{}", env.logs());
}

#[test]
fn the_demo_works_in_a_private_folder_of_its_own() {
    use std::os::unix::fs::PermissionsExt;
    let out = std::process::Command::new(bin())
        .args(["demo", "--seconds", "2", "--keep"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = text
        .lines()
        .find_map(|l| l.strip_prefix("Files kept in "))
        .map(std::path::PathBuf::from)
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let (dir_mode, key_mode) = (mode(&dir), mode(&dir.join("certs/domain.key")));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(dir_mode, 0o700, "{}", dir.display());
    assert_eq!(key_mode, 0o600);
    // Not a name another user can guess from the pid alone.
    let suffix = name.rsplit('-').next().unwrap();
    assert!(
        suffix.len() == 16 && suffix.chars().all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
}

#[test]
fn secrets_readable_by_others_are_warned_about_and_a_reload_that_reroutes_the_token_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let mut env = Env::new(okta::Options::default());
    let _devo = env.start_devo();
    let p = env.write_config("");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key = env.path().join("certs/domain.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut child = env.spawn();
    assert!(
        wait_until(Duration::from_secs(20), || env.logs().contains(&format!(
            "{} holds outputs.devo_1's client key and can be read by other users (mode 644)",
            key.display()
        ))),
        "{}",
        env.logs()
    );
    // A reload that sends the token to another org: checked again, and named.
    let text = env
        .config_text("")
        .edit(&env.okta.url(), "http://127.0.0.1:9");
    assert!(text.contains("http://127.0.0.1:9"));
    env.write_config_text(&text);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let rerouted = wait_until(Duration::from_secs(20), || {
        env.logs()
            .contains("Reload: inputs.okta.credentials.okta_url changed from")
    });
    let logs = env.logs();
    stop(&env, &mut child);
    assert!(rerouted, "{logs}");
    assert!(logs.contains("to http://127.0.0.1:9"), "{logs}");
    assert_eq!(
        logs.matches("holds outputs.devo_1's client key").count(),
        2,
        "warned at start and again at the reload\n{logs}"
    );
    assert!(!logs.contains(TOKEN));
}

#[test]
fn text_from_okta_cannot_forge_a_log_line_or_a_validate_line() {
    let forged = r#"{"errorCode":"E0000009","errorSummary":"Internal\n2026-12-02T00:00:00.000   ERROR forged line\n[ OK ] forged check","errorLink":"E0000009","errorId":"oae1","errorCauses":[]}"#;
    let raw = || {
        okta::Fault::Raw(
            500,
            vec![("content-type".into(), "application/json".into())],
            forged.as_bytes().to_vec(),
        )
    };
    let mut env = Env::new(okta::Options::default());
    let _devo = env.start_devo();
    let p = env.write_config("");
    env.okta.inject(ServiceKind::Logs, raw());
    let out = std::process::Command::new(bin())
        .args(["validate", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("forged check"), "{stdout}");
    assert!(
        !stdout.lines().any(|l| l.starts_with("[ OK ] forged")),
        "{stdout}"
    );
    env.okta.inject(ServiceKind::Logs, raw());
    let mut child = env.spawn();
    assert!(wait_until(Duration::from_secs(20), || env
        .logs()
        .contains("forged line")));
    stop(&env, &mut child);
    let logs = env.logs();
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("ERROR forged line") && l.starts_with("2026-12-02T00")),
        "{logs}"
    );
    assert!(
        logs.contains("Internal\\n2026-12-02T00:00:00.000   ERROR forged line"),
        "{logs}"
    );
}

#[test]
fn a_date_from_okta_far_from_the_local_clock_moves_no_watermark_past_it() {
    let mut env = Env::new(okta::Options::default());
    let _devo = env.start_devo();
    // The first users listing is dated in year 9999.
    env.okta.inject(
        ServiceKind::Users,
        okta::Fault::Headers(vec![(
            "date".into(),
            "Fri, 31 Dec 9999 23:59:59 GMT".into(),
        )]),
    );
    env.write_config("      users:\n        request_period_in_seconds: 1\n");
    let mut child = env.spawn();
    let listings = || {
        env.okta
            .targets()
            .into_iter()
            .filter(|t| t.starts_with("/api/v1/users"))
            .collect::<Vec<_>>()
    };
    let again = wait_until(Duration::from_secs(30), || listings().len() >= 4);
    stop(&env, &mut child);
    let logs = env.logs();
    assert!(again, "{:?}\n{logs}", listings());
    assert!(
        logs.contains("PullError 302") && logs.contains("Okta's Date header (9999-12-31T23:59:59.000Z) is more than 10 minutes from the local clock"),
        "{logs}"
    );
    for t in listings() {
        assert!(!t.contains("9999"), "a query past the local clock: {t}");
    }
}

/// The received lines of `tag`.
fn lines_of(lines: &[Vec<u8>], tag: &str) -> Vec<Vec<u8>> {
    lines
        .iter()
        .filter(|l| {
            okta_collector::forward::syslog::parse_line(l).is_some_and(|(_, t, _)| t == tag)
        })
        .cloned()
        .collect()
}

/// Each received line of `tag`, as its event's text.
fn events_of(lines: &[Vec<u8>], tag: &str) -> std::collections::HashSet<String> {
    lines
        .iter()
        .filter_map(|l| {
            let (_, t, event) = okta_collector::forward::syslog::parse_line(l)?;
            (t == tag).then(|| String::from_utf8_lossy(event).into_owned())
        })
        .collect()
}

#[test]
fn hundreds_of_mutated_okta_answers_neither_stop_the_collector_nor_lose_what_was_valid() {
    const TOTAL: u64 = 6_000;
    const PER_ENDPOINT: u64 = 40;
    let mut env = Env::with_backlog(TOTAL);
    // A short page keeps the System Log's answers many, so its faults land mid-stream.
    for kind in ServiceKind::SEED {
        for k in 0..PER_ENDPOINT {
            env.okta.inject(
                kind,
                okta::Fault::Mutate(0x6d75_7461 ^ (k << 8) ^ kind as u64),
            );
        }
    }
    let devo = env.start_devo();
    let mut services = String::new();
    for s in ["users", "groups", "apps", "idps", "zones", "clients"] {
        services.push_str(&format!(
            "      {s}:\n        request_period_in_seconds: 1\n"
        ));
    }
    env.write_config(&services);
    let mut child = env.spawn();
    let served = wait_until(Duration::from_secs(240), || {
        env.okta.pending_faults() == 0 || child.try_wait().ok().flatten().is_some()
    });
    let inventory = |lines: &[Vec<u8>]| {
        [
            (ServiceKind::Users, "auth.okta.users"),
            (ServiceKind::Groups, "auth.okta.groups"),
            (ServiceKind::Apps, "auth.okta.apps"),
            (ServiceKind::Idps, "auth.okta.idps"),
            (ServiceKind::Zones, "auth.okta.zones"),
            (ServiceKind::Clients, "auth.okta.clients"),
        ]
        .into_iter()
        .filter(|(kind, tag)| {
            let got = events_of(lines, tag);
            env.okta
                .inventory()
                .all(*kind)
                .values()
                .any(|o| !got.contains(o))
        })
        .map(|(_, tag)| tag)
        .collect::<Vec<_>>()
    };
    let all = wait_until(Duration::from_secs(120), || {
        let lines = devo.lines();
        check_lines(
            &env,
            &lines_of(&lines, "auth.okta.system"),
            "auth.okta.system",
        )
        .missing(TOTAL)
        .is_empty()
            && inventory(&lines).is_empty()
    });
    let running = child.try_wait().unwrap().is_none();
    let logs = env.logs();
    if running {
        stop(&env, &mut child);
    }
    assert!(
        running,
        "the collector exited: {:?}\n{logs}",
        child.try_wait()
    );
    assert!(
        served,
        "{} faults not served\n{logs}",
        env.okta.pending_faults()
    );
    let lines = devo.lines();
    let d = check_lines(
        &env,
        &lines_of(&lines, "auth.okta.system"),
        "auth.okta.system",
    );
    assert!(
        all,
        "missing: {} events, tables {:?}\n{logs}",
        d.missing(TOTAL).len(),
        inventory(&lines)
    );
    assert!(logs.contains("PullError 302"), "the mutations were seen");
    assert!(!logs.contains(TOKEN));
}
