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
    let env = Env::new(okta::Options {
        total: TOTAL,
        initial: TOTAL,
        ..Default::default()
    });
    let text = env.config_with_globals(
        "  persistence:\n    type: filesystem\n    config:\n      directory_name: state\n",
    );
    env.write_config_text(&text);
    let dir = env.path().join("state/okta-test");
    std::fs::create_dir_all(&dir).unwrap();
    let record = serde_json::json!({
        "@persistence_version": 1,
        "next_link": next_link(&env.okta.url()),
        "initial_start_time_in_utc": start.map_or_else(|| env.okta.start_time(), str::to_string),
        "last_timestamp": published(&env, K - 1),
        "uuid_list": [okta::uuid(K - 1)],
    });
    std::fs::write(
        dir.join("okta_65294_logs_predefined_OktaResourcesPuller.json"),
        record.to_string(),
    )
    .unwrap();
    env
}

/// Runs until `want` events arrived (and a little longer); returns the sequence numbers
/// received, each once or more.
fn deliver(env: &mut Env, want: u64) -> (Vec<u64>, String) {
    let devo = env.start_devo();
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(60), || devo.count() >= want);
    std::thread::sleep(Duration::from_millis(1500));
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
