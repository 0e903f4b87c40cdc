//! Switching from Devo's collector: its state (filesystem persistence) is taken over, so the
//! switch neither loses nor repeats events; a next link Okta no longer honours falls back to
//! the record's last_timestamp and uuids; a changed start resets, as the seed does.

use crate::harness::*;
use okta_collector::sim::okta;
use std::time::Duration;

const TOTAL: u64 = 3_000;
/// Devo's collector had delivered events 0..K.
const K: u64 = 1_234;

fn published(env: &Env, i: u64) -> String {
    let v: serde_json::Value = serde_json::from_str(&env.okta.event(i)).unwrap();
    v["published"].as_str().unwrap().to_string()
}

/// An env whose config names Devo's persistence, with Devo's state file for the System Log:
/// `next_link` made from the org's URL, and the configured start unless `start` says otherwise.
fn with_devo_state(next_link: impl Fn(&str) -> String, start: Option<&str>) -> Env {
    let env = Env::with_backlog(TOTAL);
    let state = env.with_devo_persistence();
    let record = serde_json::json!({
        "@persistence_version": 1,
        "next_link": next_link(&env.okta.url()),
        "initial_start_time_in_utc": start.map_or_else(|| env.okta.start_time(), str::to_string),
        "last_timestamp": published(&env, K - 1),
        "uuid_list": [okta::uuid(K - 1)],
    });
    std::fs::write(&state, record.to_string()).unwrap();
    env
}

/// Runs until `want` events arrived (and a little longer); returns the sequence numbers
/// received, each once or more.
fn deliver(env: &mut Env, want: u64) -> (Vec<u64>, String) {
    let devo = env.start_devo();
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(60), || devo.count() >= want);
    // One more cycle that finds nothing new: what was to arrive (a duplicate too) has.
    assert!(
        env.wait_for_more("The data is up to date!", 1, Duration::from_secs(30)),
        "{}",
        env.logs()
    );
    stop(env, &mut child);
    let logs = env.logs();
    assert!(all, "{} of {want}\n{logs}", devo.count());
    let d = check_lines(env, &devo.lines(), "auth.okta.system");
    assert_eq!(d.duplicates(), 0, "nothing twice");
    let mut got: Vec<u64> = (0..TOTAL)
        .filter(|i| !d.missing(TOTAL).contains(i))
        .collect();
    got.sort_unstable();
    (got, logs)
}

#[test]
fn devos_state_is_taken_over_and_delivery_goes_on_after_it() {
    // The simulator's cursor names the index of the next event.
    let next = |org: &str| format!("{org}/api/v1/logs?after=1_{K}&limit=1000&sortOrder=ASCENDING");
    let mut env = with_devo_state(next, None);
    let url = next(&env.okta.url());
    let (got, logs) = deliver(&mut env, TOTAL - K);
    assert_eq!(got, (K..TOTAL).collect::<Vec<_>>(), "exactly K..N");
    assert!(
        logs.contains("Importing the state of Devo's collector from"),
        "{logs}"
    );
    assert!(logs.contains(&format!("next_link=\"{url}\"")), "{logs}");
    // Imported once: the next start goes on from our own cursor.
    let before = env.logs().matches("The data is up to date!").count();
    let mut child = env.spawn();
    assert!(wait_until(Duration::from_secs(20), || env
        .logs()
        .matches("The data is up to date!")
        .count()
        > before));
    stop(&env, &mut child);
    assert_eq!(
        env.logs()
            .matches("Importing the state of Devo's collector")
            .count(),
        1
    );
}

#[test]
fn a_next_link_okta_no_longer_honours_falls_back_to_last_timestamp_and_its_uuids() {
    let stale =
        |org: &str| format!("{org}/api/v1/logs?after=expired&limit=1000&sortOrder=ASCENDING");
    let mut env = with_devo_state(stale, None);
    let (got, logs) = deliver(&mut env, TOTAL - K);
    assert_eq!(
        got,
        (K..TOTAL).collect::<Vec<_>>(),
        "from last_timestamp, its uuid dropped"
    );
    assert!(
        logs.contains("E0000029") && logs.contains("Invalid paging request."),
        "{logs}"
    );
    assert!(logs.contains("Going on from last_timestamp"), "{logs}");
}

#[test]
fn a_start_that_differs_from_devos_resets_as_the_seed_does() {
    let mut env = with_devo_state(|_| String::new(), Some("2020-01-01T00:00:00Z"));
    let (got, logs) = deliver(&mut env, TOTAL);
    assert_eq!(got, (0..TOTAL).collect::<Vec<_>>());
    assert!(
        logs.contains("Persistence will be overridden due to the configured start"),
        "{logs}"
    );
}

#[test]
fn a_state_file_copied_from_elsewhere_is_imported_by_the_command_once_unless_forced() {
    let next = |org: &str| format!("{org}/api/v1/logs?after=1_{K}&limit=1000&sortOrder=ASCENDING");
    let mut env = with_devo_state(next, None);
    let from = env
        .path()
        .join("state/okta-test/okta_65294_logs_predefined_OktaResourcesPuller.json");
    let copied = env.path().join("copied.json");
    std::fs::rename(&from, &copied).unwrap();
    let config = env.path().join("config.yaml");
    let cmd = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .args(args)
            .arg("--config")
            .arg(&config)
            .current_dir(env.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // validate says what would happen (no file where the config points).
    let (_, v) = cmd(&["validate"]);
    assert!(v.contains("[ OK ] Devo's state: no state file at"), "{v}");
    let state = copied.to_str().unwrap();
    let (code, out) = cmd(&["import-devo-state", "--state", state]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("Imported the state of Devo's collector from") && out.contains("after=1_1234"),
        "{out}"
    );
    let (code, out) = cmd(&["import-devo-state", "--state", state]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("has a cursor of its own already") && out.contains("--force"),
        "{out}"
    );
    let (code, out) = cmd(&["import-devo-state", "--state", state, "--force"]);
    assert_eq!(code, Some(0), "{out}");
    let (got, logs) = deliver(&mut env, TOTAL - K);
    assert_eq!(got, (K..TOTAL).collect::<Vec<_>>(), "exactly K..N");
    assert!(
        !logs.contains("Importing the state"),
        "the run found our cursor"
    );
}

/// A config in the layout of Devo's collector framework, every key of its globals set, with
/// `output` under `outputs.devo_1`.
fn devo_layout(env: &Env, output: &str) -> String {
    format!(
        r#"globals:
  debug: true
  id: not_used
  name: okta
  persistence:
    type: filesystem
    config:
      directory_name: state
  multiprocessing: false
  queue_max_size_in_mb: 1024
  queue_max_size_in_messages: 1000
  queue_max_elapsed_time_in_sec: 60
  queue_wrap_max_size_in_messages: 100
outputs:
  devo_1:
{output}inputs:
  okta:
    id: 65294
    enabled: true
    requests_per_second: 5
    credentials:
      okta_url: {url}
      api_token: {TOKEN}
    services:
      logs:
        request_period_in_seconds: 1
        start: {start}
"#,
        url = env.okta.url(),
        start = env.okta.start_time()
    )
}

#[test]
fn devos_config_yaml_runs_as_it_is_certificates_found_where_devo_finds_them() {
    let mut env = Env::with_backlog(2_000);
    let devo = env.start_devo();
    // Bare names: beside the config there is nothing; <working dir>/certs/ has them.
    let text = devo_layout(
        &env,
        &format!(
            "    type: devo_platform\n    config:\n      address: 127.0.0.1\n      port: {}\n      type: SSL\n      chain: chain.crt\n      cert: domain.crt\n      key: domain.key\n      hostname: {HOSTNAME}\n",
            env.devo_port
        ),
    );
    env.write_config_text(&text);
    let mut child = env.spawn();
    // Devo's layout as it is: self-monitoring on (its own tables, checked in `selfmon.rs`).
    let all = wait_until(Duration::from_secs(60), || {
        without_self_monitoring(&devo.lines()).len() >= 2_000
    });
    stop(&env, &mut child);
    let logs = env.logs();
    assert!(all, "{}\n{logs}", devo.count());
    let d = check_lines(
        &env,
        &without_self_monitoring(&devo.lines()),
        "auth.okta.system",
    );
    assert!(d.missing(2_000).is_empty() && d.duplicates() == 0);
    assert!(
        logs.contains(
            "globals.queue_max_size_in_mb (a key of Devo's collector framework) has no effect here"
        ),
        "{logs}"
    );
    assert!(logs.contains("DEBUG"), "debug: true logs at debug\n{logs}");
    assert!(
        logs.contains("OktaResourcesPuller(okta#65294,logs#predefined)"),
        "{logs}"
    );
    // Neither place has it: both are named.
    std::fs::rename(
        env.path().join("certs/chain.crt"),
        env.path().join("chain.moved"),
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["validate", "--config"])
        .arg(env.path().join("config.yaml"))
        .current_dir(env.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "chain.crt is neither at {} nor at {} (where Devo's collector looks)",
            env.path().join("chain.crt").display(),
            env.path().join("certs/chain.crt").display()
        )),
        "{text}"
    );
}

#[test]
fn a_relay_in_devos_layout_delivers_the_same_way() {
    let mut env = Env::with_backlog(1_500);
    let port = free_port();
    let relay = crate::outputs::Relay::start(port);
    let text = devo_layout(
        &env,
        &format!(
            "    type: relay\n    config:\n      address: 127.0.0.1\n      port: {port}\n      type: TCP\n      hostname: {HOSTNAME}\n"
        ),
    );
    env.write_config_text(&text);
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(60), || {
        without_self_monitoring(&relay.lines()).len() >= 1_500
    });
    stop(&env, &mut child);
    assert!(all, "{}\n{}", relay.lines().len(), env.logs());
    let lines: Vec<Vec<u8>> = relay
        .lines()
        .into_iter()
        .map(|mut l| {
            l.pop();
            l
        })
        .collect();
    let d = check_lines(&env, &without_self_monitoring(&lines), "auth.okta.system");
    assert!(d.missing(1_500).is_empty() && d.duplicates() == 0);
}

/// `validate`'s output for the harness's config with `extra` under the output's config, the
/// receiver's certificate in `shape`.
fn validate_against(shape: okta_collector::sim::certs::Shape, extra: &str) -> String {
    let mut env = Env::new(okta::Options::default());
    okta_collector::sim::certs::generate_shaped(&env.path().join("certs"), "test CA", &shape)
        .unwrap();
    let _devo = env.start_devo();
    let anchor = format!("      hostname: {HOSTNAME}\n");
    let text = env.config_text("");
    assert_eq!(text.matches(&anchor).count(), 1);
    env.write_config_text(&text.edit(&anchor, &format!("{anchor}{extra}")));
    let out = std::process::Command::new(bin())
        .args(["validate", "--config"])
        .arg(env.path().join("config.yaml"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn elsewhere() -> okta_collector::sim::certs::Shape {
    okta_collector::sim::certs::Shape {
        server_names: vec!["collector-us.devo.io".into()],
        server_ip: false,
        server_client_auth_only: false,
    }
}

#[test]
fn a_balancer_certificate_for_another_name_passes_with_server_name_or_check_hostname_false() {
    // The address is 127.0.0.1; the certificate names collector-us.devo.io only.
    let strict = validate_against(elsewhere(), "");
    assert!(strict.contains("[FAIL] output devo_1"), "{strict}");
    let named = validate_against(elsewhere(), "      server_name: collector-us.devo.io\n");
    assert!(named.contains("[ OK ] output devo_1"), "{named}");
    let wrong = validate_against(elsewhere(), "      server_name: collector-eu.devo.io\n");
    assert!(wrong.contains("[FAIL] output devo_1"), "{wrong}");
    let unchecked = validate_against(elsewhere(), "      check_hostname: false\n");
    assert!(unchecked.contains("[ OK ] output devo_1"), "{unchecked}");
    assert!(
        unchecked.contains("[WARN] outputs.devo_1.config.check_hostname is false"),
        "{unchecked}"
    );
}

#[test]
fn a_client_authentication_leaf_never_passes_as_the_balancer_even_unchecked() {
    let shape = okta_collector::sim::certs::Shape {
        server_client_auth_only: true,
        ..elsewhere()
    };
    let out = validate_against(shape, "      check_hostname: false\n");
    assert!(out.contains("[FAIL] output devo_1"), "{out}");
}

/// The CA chains Devo publishes (read from `../shared/`, never copied into the repository).
fn devo_chains(test: &str) -> Vec<std::path::PathBuf> {
    let Some(dir) = okta_collector::samples::shared_samples("devo-chain", test) else {
        return Vec::new();
    };
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "crt"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn each_chain_devo_publishes_loads_as_the_chain() {
    let env = Env::new(okta::Options::default());
    for chain in devo_chains("each_chain_devo_publishes_loads_as_the_chain") {
        let text = env.config_text("").edit(
            "chain: certs/chain.crt",
            &format!("chain: {}", chain.display()),
        );
        assert!(text.contains(&chain.display().to_string()));
        let p = env.write_config_text(&text);
        let c = okta_collector::config::Config::load(&p).unwrap();
        let okta_collector::config::OutputKind::Devo(d) = &c.outputs[0].kind else {
            panic!()
        };
        // The root (RSA-4096, no keyUsage; SHA-1 signed in 2020) and the client CAs (no
        // SKI/AKI) are taken as trust anchors.
        if let Err(e) = okta_collector::forward::tls::client_config("devo_1", d) {
            panic!("{}: {e}", chain.display());
        }
        eprintln!("{} loads as the chain", chain.display());
    }
}
