//! Okta's real answers: `okta-collector sim --replay` serves the recordings of
//! `../shared/samples/okta-replay/` (real headers in their case and order, gzip and chunked
//! bodies, a Link with self and next in one value, a next link on a short page, DEPROVISIONED
//! users on a second page, a 429 before the first apps page, Okta's 401), and the real
//! collector delivers each recorded object once, byte for byte, on its table.

use crate::harness::*;
use okta_collector::forward::syslog;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn recordings(test: &str) -> Option<PathBuf> {
    okta_collector::samples::shared_samples("okta-replay", test)
        .filter(|d| d.join("logs-1.json").exists())
}

/// Each recorded 200 body's objects, by Devo table, as raw bytes.
fn expected(dir: &std::path::Path) -> HashMap<&'static str, Vec<String>> {
    let mut out: HashMap<&'static str, Vec<String>> = HashMap::new();
    for (stem, tag) in [
        ("logs-1", "auth.okta.system"),
        ("logs-2", "auth.okta.system"),
        ("logs-3", "auth.okta.system"),
        ("users-1", "auth.okta.users"),
        ("users-2", "auth.okta.users"),
        ("groups-1", "auth.okta.groups"),
        ("apps-1", "auth.okta.apps"),
        ("idps-1", "auth.okta.idps"),
        ("zones-1", "auth.okta.zones"),
    ] {
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{stem}.json"))).unwrap(),
        )
        .unwrap();
        let file = meta["body"].as_str().unwrap();
        let raw = std::fs::read(dir.join(file)).unwrap();
        let body = if file.ends_with(".gz") {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
                .unwrap();
            out
        } else {
            raw
        };
        let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(&body).unwrap();
        out.entry(tag)
            .or_default()
            .extend(items.iter().map(|r| r.get().to_string()));
    }
    out
}

struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(env: &Env, url: &str, token: &str) -> PathBuf {
    // The harness's config, pointed at the replay, from the recordings' day, with each
    // inventory service once an hour and OAuth clients off.
    let inventory: String = ["users", "groups", "apps", "idps", "zones"]
        .iter()
        .map(|s| format!("      {s}:\n        request_period_in_seconds: 3600\n"))
        .collect();
    let text = env
        .config_text(&format!(
            "{inventory}      clients:\n        enabled: false\n"
        ))
        .edit(
            &format!("okta_url: {}", env.okta.url()),
            &format!("okta_url: {url}"),
        )
        .edit(TOKEN, token)
        .edit(&env.okta.start_time(), "2022-05-29T00:00:00Z");
    env.write_config_text(&text)
}

#[test]
fn the_real_recordings_arrive_once_byte_identical_on_their_tables() {
    let Some(dir) = recordings("the_real_recordings_arrive_once_byte_identical_on_their_tables")
    else {
        return;
    };
    let mut env = Env::new(okta_collector::sim::okta::Options::default());
    let port = free_port();
    let token = "00REPLAY-token-5b9e";
    let sim = Sim(Command::new(bin())
        .args(["sim", "--replay"])
        .arg(&dir)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--token", token])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    assert!(wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let url = format!("http://127.0.0.1:{port}");
    let devo = env.start_devo();

    // validate: each service answers with the right token; SetupError 100 with a wrong one.
    let validate = |env: &Env| {
        let out = Command::new(bin())
            .args(["validate", "--config"])
            .arg(env.path().join("config.yaml"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    config(&env, &url, "00wrong-token");
    let (code, out) = validate(&env);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("[FAIL] okta service logs: SetupError 100"),
        "{out}"
    );
    assert!(out.contains("E0000011"), "{out}");
    config(&env, &url, token);
    let (code, out) = validate(&env);
    for s in ["logs", "users", "groups", "idps", "zones"] {
        assert!(
            out.contains(&format!("[ OK ] okta service {s}: ")),
            "{s}: {out}"
        );
    }
    // The recorded System Log page holds 3 events whatever the limit.
    assert!(
        out.contains("/api/v1/logs?limit=1 answered 3 items"),
        "{out}"
    );
    // apps: the recorded 429 answers the first request (validate's); its reset, 8 s after the
    // recorded Date, is waited out once and the retry passes.
    assert!(
        out.contains("/api/v1/apps?limit=1 answered 170 items")
            && out.contains("(after waiting 8 s for Okta's rate-limit reset)"),
        "{out}"
    );
    assert_eq!(code, Some(0), "{out}");

    let want = expected(&dir);
    let total: usize = want.values().map(Vec::len).sum();
    assert_eq!(total, 4 + 23 + 75 + 170 + 1 + 2, "the recordings changed");
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(90), || devo.count() as usize >= total);
    // A few more System Log periods: nothing is sent twice.
    assert!(
        env.wait_for_more(
            "logs#predefined) -> The data is up to date!",
            2,
            Duration::from_secs(30)
        ),
        "{}",
        env.logs()
    );
    stop(&env, &mut child);
    drop(sim);
    assert!(
        all,
        "{} of {total} objects arrived; log:\n{}",
        devo.count(),
        env.logs()
    );
    let mut got: HashMap<String, Vec<String>> = HashMap::new();
    for line in devo.lines() {
        let (host, tag, event) = syslog::parse_line(&line).unwrap();
        assert_eq!(host, HOSTNAME);
        got.entry(tag.to_string())
            .or_default()
            .push(String::from_utf8(event.to_vec()).unwrap());
    }
    for (tag, objects) in &want {
        let mut have = got.remove(*tag).unwrap_or_default();
        let mut objects = objects.clone();
        have.sort();
        objects.sort();
        assert_eq!(have.len(), objects.len(), "{tag}: count");
        assert!(have == objects, "{tag}: the objects arrived altered");
    }
    assert!(got.is_empty(), "unexpected tables: {:?}", got.keys());
    let logs = env.logs();
    assert!(!logs.contains(token), "the token was logged");
}
