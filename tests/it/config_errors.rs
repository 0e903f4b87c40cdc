//! Bad configs give a message naming the problem and exit code 1; `validate` reports each check.

use crate::harness::*;
use okta_collector::config::ServiceKind;
use okta_collector::sim::okta::{self, Fault};
use std::process::{Command, Output};
use std::time::Duration;

/// `run` on a config that must be refused: killed (and the test failed) if it is still
/// running after 20 s, i.e. if the config was accepted.
fn run_with(env: &Env, text: &str) -> Output {
    let p = env.write_config_text(text);
    let mut child = Command::new(bin())
        .args(["run", "--config"])
        .arg(p)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_exit(&mut child, Duration::from_secs(20));
    child.wait_with_output().unwrap()
}

fn expect_error(env: &Env, text: &str, needles: &[&str]) {
    let out = run_with(env, text);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?} in: {stderr}");
    }
    assert!(!stderr.contains(TOKEN), "the token leaked into: {stderr}");
}

#[test]
fn each_config_error_names_the_problem_and_exits_1() {
    let env = Env::new(okta::Options::default());
    let good = env.config_text("");
    let start = env.okta.start_time();

    expect_error(
        &env,
        &good.edit(&start, "2024-12-04 11:45"),
        &[
            "InitVariablesError 1",
            "initial_start_time_in_utc is not set as per the datetime_format",
            "2024-12-04 11:45",
        ],
    );
    expect_error(
        &env,
        &good.edit(&start, "2999-01-01T00:00:00Z"),
        &[
            "InitVariablesError 2",
            "initial_start_time_in_utc is in the future",
        ],
    );
    expect_error(
        &env,
        &good.edit("api_token:", "api_tokn:"),
        &["unknown field `api_tokn`", "line 22 column 7"],
    );
    expect_error(
        &env,
        &good.edit("      logs:", "      logz:"),
        &["unknown field `logz`", "line"],
    );
    expect_error(
        &env,
        &good.edit("type: devo_platform", "type: kafka"),
        &["kafka", "line"],
    );
    expect_error(
        &env,
        &format!("{good}      users:\n        emit: changes\n"),
        &["services.users.emit: only the snapshot services"],
    );
    expect_error(
        &env,
        &good.edit(&env.okta.url(), "http://acme.okta.com"),
        &["okta_url", "https://"],
    );
    expect_error(
        &env,
        &good.edit("certs/domain.crt", "certs/missing.crt"),
        &["certs/missing.crt", "outputs.devo_1.config.cert"],
    );
    expect_error(
        &env,
        &good.edit(
            "request_period_in_seconds: 1",
            "request_period_in_seconds: soon",
        ),
        &["request_period_in_seconds", "line"],
    );

    std::fs::write(env.path().join("certs/garbage.key"), "not a key\n").unwrap();
    expect_error(
        &env,
        &good.edit("certs/domain.key", "certs/garbage.key"),
        &["certs/garbage.key", "private key"],
    );
    std::fs::write(
        env.path().join("certs/garbage.crt"),
        "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    expect_error(
        &env,
        &good.edit("certs/chain.crt", "certs/garbage.crt"),
        &["certs/garbage.crt", "outputs.devo_1.config.chain"],
    );

    let out = Command::new(bin())
        .args(["run", "--config", "/nonexistent/okc.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/okc.yaml"));
}

/// Runs `validate` on the config; returns the output and its stdout.
#[test]
fn validate_reports_each_check_and_pulls_nothing() {
    let mut env = Env::with_backlog(100);
    let devo = env.start_devo();
    env.write_config("");
    let (code, stdout, stderr) = env.validate();
    assert!(code == Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("[ OK ] config"), "{stdout}");
    assert!(
        stdout.contains("[ OK ] okta service logs: ")
            && stdout.contains("/api/v1/logs?limit=1 answered 1 item\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[ OK ] output devo_1 (devo_platform)"),
        "{stdout}"
    );
    assert_eq!(devo.count(), 0, "validate sends nothing");
    assert!(
        !env.path().join("data/spool").exists(),
        "validate creates no spool"
    );

    // A wrong token: SetupError 100 and exit 1.
    env.write_config_text(&env.config_text("").edit(TOKEN, "wrong-token"));
    let (code, stdout, _) = env.validate();
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("[FAIL] okta service logs: SetupError 100"),
        "{stdout}"
    );
    assert!(stdout.contains("E0000011"), "{stdout}");

    // A client certificate the receiver does not trust: the rejection is seen after the handshake.
    let rogue =
        okta_collector::sim::certs::generate(&env.path().join("rogue"), "rogue CA").unwrap();
    let text = env
        .config_text("")
        .edit("certs/domain.crt", rogue.client_cert.to_str().unwrap())
        .edit("certs/domain.key", rogue.client_key.to_str().unwrap());
    env.write_config_text(&text);
    let (code, stdout, _) = env.validate();
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("[FAIL] output devo_1"), "{stdout}");
}

#[test]
fn validate_names_each_service_problem() {
    let mut env = Env::new(okta::Options {
        refuse: vec![(ServiceKind::Idps, 404), (ServiceKind::Clients, 403)],
        ..Default::default()
    });
    // Twice: validate waits out a short reset once, then reports the second 429.
    env.okta.inject(ServiceKind::Users, Fault::RateLimited);
    env.okta.inject(ServiceKind::Users, Fault::RateLimited);
    let _devo = env.start_devo();
    env.write_config("      users: {}\n      groups: {}\n      idps: {}\n      clients: {}\n");
    let (code, stdout, _) = env.validate();
    assert_eq!(code, Some(1), "{stdout}");
    for line in [
        "[ OK ] okta service logs",
        "[ OK ] okta service groups",
        "[FAIL] okta service users: rate limited by Okta (HTTP 429, errorCode E0000047",
        "[FAIL] okta service idps: SetupError 100",
        "set `enabled: false` under inputs.okta.services.idps",
        "[FAIL] okta service clients: SetupError 100",
        "okta.clients.read",
        "[ OK ] output devo_1",
    ] {
        assert!(stdout.contains(line), "{line:?} missing in\n{stdout}");
    }
}

#[test]
fn unusable_ca_file_is_named() {
    let env = Env::new(okta::Options::default());
    let good = env.config_text("");
    std::fs::write(env.path().join("not-a-ca.pem"), "hello").unwrap();
    expect_error(
        &env,
        &good.edit(
            "    services:",
            "    ca_file: missing-ca.pem\n    services:",
        ),
        &["inputs.okta.ca_file: cannot read", "missing-ca.pem"],
    );
    expect_error(
        &env,
        &good.edit("    services:", "    ca_file: not-a-ca.pem\n    services:"),
        &["not-a-ca.pem holds no PEM certificate"],
    );
}

#[test]
fn the_example_config_parses_and_only_lacks_the_token_variable() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/config.example.yaml");
    let e = okta_collector::config::Config::load(&p).unwrap_err().0;
    // The example reads the token from OKTA_API_TOKEN, which the test environment does not set.
    assert!(e.contains("OKTA_API_TOKEN is not set"), "{e}");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .edit("api_token_env: OKTA_API_TOKEN", "api_token: x");
    let c = okta_collector::config::Config::parse(&p, &text).unwrap();
    let names: Vec<_> = c.okta.services.iter().map(|s| s.kind.name()).collect();
    assert_eq!(names, ["logs", "users", "groups", "apps", "idps", "zones"]);
    assert_eq!(
        c.okta.services[3].emit,
        okta_collector::config::Emit::Changes
    );
    let okta_collector::config::OutputKind::Devo(d) = &c.outputs[0].kind else {
        panic!("the example's output is devo_platform")
    };
    assert_eq!(d.address, "collector-eu.devo.io");
}

#[test]
fn the_packaged_configs_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The .deb's /etc/okta-collector/config.yaml.
    let p = root.join("packaging/config.yaml");
    let text = std::fs::read_to_string(&p).unwrap();
    // The token comes as a systemd credential; a stand-in here (the file exists only there).
    let from = "api_token_file: /run/credentials/okta-collector.service/okta-api-token";
    assert!(text.contains(from), "the unit's credential path changed");
    let c = okta_collector::config::Config::parse(&p, &text.edit(from, "api_token: x")).unwrap();
    assert_eq!(c.data_dir, std::path::Path::new("/var/lib/okta-collector"));
    let okta_collector::config::OutputKind::Devo(d) = &c.outputs[0].kind else {
        panic!("the .deb's output is devo_platform")
    };
    assert_eq!(
        d.key,
        std::path::Path::new("/run/credentials/okta-collector.service/devo-key"),
        "the client key comes as a credential too"
    );
    let unit = std::fs::read_to_string(root.join("packaging/okta-collector.service")).unwrap();
    assert!(unit.contains("LoadCredential=okta-api-token:/etc/okta-collector/okta-api-token"));
    assert!(unit.contains("LoadCredential=devo-key:/etc/okta-collector/certs/domain.key"));
    // The ConfigMap of the Kubernetes example.
    let k8s = std::fs::read_to_string(root.join("packaging/kubernetes.yaml")).unwrap();
    let start = k8s.find("  config.yaml: |\n").unwrap() + "  config.yaml: |\n".len();
    let block: String = k8s[start..]
        .lines()
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    let from = "api_token_file: /etc/okta-collector/token/api-token";
    assert!(
        block.contains(from),
        "the token's Secret volume path changed"
    );
    assert!(k8s.contains("mountPath: /etc/okta-collector/token"));
    let text = block.edit(from, "api_token: x");
    let c = okta_collector::config::Config::parse(
        std::path::Path::new("/etc/okta-collector/config/config.yaml"),
        &text,
    )
    .unwrap();
    assert_eq!(c.metrics_listen.map(|a| a.port()), Some(9464));
    assert_eq!(
        c.data_dir,
        std::path::Path::new("/var/lib/okta-collector/data")
    );
    assert!(!k8s.contains("envFrom"), "no secret in the environment");
    for needed in [
        "automountServiceAccountToken: false",
        "seccompProfile: {type: RuntimeDefault}",
        "kind: NetworkPolicy",
    ] {
        assert!(k8s.contains(needed), "{needed}");
    }
    assert_eq!(c.okta.services.len(), 3);
}

#[test]
fn the_sim_command_serves_a_simulated_org_until_sigterm() {
    let port = free_port();
    let mut child = Command::new(bin())
        .args(["sim", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--events", "2500", "--users", "30", "--token", "t0k"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // A real HTTP client: the simulator's answers are as untidy as Okta's (chunked, gzip).
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let get = |path: &str, token: &str| -> (u16, Vec<serde_json::Value>) {
        let mut r = agent
            .get(format!("http://127.0.0.1:{port}{path}"))
            .header("Authorization", format!("SSWS {token}"))
            .call()
            .unwrap();
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&body).unwrap_or_default())
    };
    assert!(wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let (status, events) = get("/api/v1/logs?since=2000-01-01T00:00:00Z&limit=1000", "t0k");
    assert_eq!((status, events.len()), (200, 1000));
    assert!(events.iter().all(|e| e["uuid"].is_string()));
    let (status, users) = get("/api/v1/users?limit=200", "t0k");
    assert_eq!(status, 200);
    assert!(!users.is_empty() && users.len() <= 30, "{}", users.len());
    assert_eq!(get("/api/v1/logs", "wrong").0, 401);
    signal(&child, 15);
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
}
