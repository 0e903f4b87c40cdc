//! The collector's own health in Devo (issue 27): its statistics lines and its warnings and
//! errors under `devo.collectors.out.local.<level>`, with the JSON body Devo's collector
//! framework sends, through a spool (nothing lost in an outage), never a line about sending.

use crate::harness::*;
use okta_collector::config::ServiceKind;
use okta_collector::sim::okta;
use std::time::Duration;

/// The test config with self-monitoring at its default (on, WARN and above).
fn config_on(env: &Env, extra_globals: &str) -> String {
    env.config()
        .globals_yaml(extra_globals)
        .text()
        .replace("  self_monitoring: false\n", "")
}

#[test]
fn statistics_and_errors_reach_devo_as_the_collector_framework_sends_them_and_outages_lose_none() {
    let mut env = Env::with_backlog(200);
    // A 500 on the first System Log request: an error line (PullError 300).
    env.okta.inject(ServiceKind::Logs, okta::Fault::Status(500));
    env.write_config_text(&config_on(&env, ""));
    // Devo is down at first: the lines wait in their spools, and the forwarder's own lines
    // about the outage are never captured.
    let mut child = env.spawn();
    assert!(
        env.wait_for_more("Statistics for this pull cycle", 2, Duration::from_secs(20)),
        "{}",
        env.logs()
    );
    let devo = env.start_devo();
    let arrived = wait_until(Duration::from_secs(30), || {
        !records(&devo, "devo.collectors.out.local.error").is_empty()
            && !records(&devo, "devo.collectors.out.local.info").is_empty()
            && devo.count() >= 200
    });
    env.settle();
    stop(&env, &mut child);
    assert!(arrived, "{}", env.logs());
    let errors = records(&devo, "devo.collectors.out.local.error");
    let e = errors
        .iter()
        .find(|e| {
            e["msg"]
                .as_str()
                .is_some_and(|m| m.contains("PullError 300"))
        })
        .unwrap_or_else(|| panic!("{errors:?}"));
    assert_eq!(e["level"], "ERROR");
    assert_eq!(e["collector_name"], "okta-test");
    assert_eq!(e["collector_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(e["module_name"], "OktaResourcesPuller");
    assert_eq!(e["service_name"], "logs");
    assert_eq!(e["input_name"], "okta");
    assert!(e["time"].as_str().unwrap().ends_with('Z'));
    let info = records(&devo, "devo.collectors.out.local.info");
    assert!(
        info.iter().all(|r| r["msg"]
            .as_str()
            .unwrap()
            .contains("Statistics for this pull cycle")),
        "at the default level only the statistics lines of INFO: {info:?}"
    );
    // Nothing about sending: the outage's connection errors stay in the local log.
    let logs = env.logs();
    assert!(logs.contains("devo_1"), "{logs}");
    for tag in ["info", "warning", "error"] {
        for r in records(&devo, &format!("devo.collectors.out.local.{tag}")) {
            let m = r["msg"].as_str().unwrap();
            assert!(!m.contains("devo_1") && !m.contains("DevoSender"), "{m}");
        }
    }
}

#[test]
fn self_monitoring_false_sends_none_and_a_level_is_checked() {
    let mut env = Env::with_backlog(50);
    let devo = env.start_devo();
    env.write_config_text(&env.config().text().replace(
        "  self_monitoring: false\n",
        "  self_monitoring: {level: error}\n",
    ));
    let mut child = env.spawn();
    assert!(wait_until(Duration::from_secs(20), || devo.count() >= 50));
    env.settle();
    stop(&env, &mut child);
    // At `error`, the statistics lines still go; nothing of WARN does.
    assert!(!records(&devo, "devo.collectors.out.local.info").is_empty());
    assert!(records(&devo, "devo.collectors.out.local.warning").is_empty());
    let mut env = Env::with_backlog(50);
    let devo = env.start_devo();
    env.config().write();
    let mut child = env.spawn();
    assert!(wait_until(Duration::from_secs(20), || devo.count() >= 50));
    env.settle();
    stop(&env, &mut child);
    assert_eq!(
        devo.count(),
        50,
        "self_monitoring: false sends nothing of its own"
    );
    env.write_config_text(&env.config().text().replace(
        "  self_monitoring: false\n",
        "  self_monitoring: {level: debug}\n",
    ));
    let (code, out, err) = env.validate();
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(format!("{out}{err}").contains("globals.self_monitoring.level"));
}
