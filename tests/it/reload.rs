//! Live config: edits in place, saves by rename and ConfigMap-style symlink swaps are applied
//! without a restart; an invalid edit is logged and ignored; a changed `start` restarts only
//! that service's persistence, and events already in the spool are still delivered; no event
//! is lost or duplicated across reloads.

use crate::harness::*;
use okta_collector::forward::syslog;
use okta_collector::sim::okta;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Event index → how many times it arrived, and the tags seen per index.
fn by_index(lines: &[Vec<u8>]) -> (HashMap<u64, u32>, HashMap<u64, String>) {
    let mut counts = HashMap::new();
    let mut tags = HashMap::new();
    for l in lines {
        let (_, tag, event) = syslog::parse_line(l).unwrap();
        let v: serde_json::Value = serde_json::from_slice(event).unwrap();
        let i = okta::index_of(v["uuid"].as_str().unwrap()).unwrap();
        *counts.entry(i).or_insert(0) += 1;
        tags.insert(i, tag.to_string());
    }
    (counts, tags)
}

fn reloads(env: &Env) -> usize {
    env.logs()
        .matches("changed; restarting the services")
        .count()
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Every event arrived exactly once, and the tags switch at reloads only, in this order.
fn check_once_in_tag_order(devo: &okta_collector::sim::devo::Receiver, total: u64, order: &[&str]) {
    let (counts, tags) = by_index(&devo.lines());
    let missing = (0..total).filter(|i| !counts.contains_key(i)).count();
    assert_eq!(missing, 0, "lost across reloads");
    let dups: u32 = counts.values().map(|c| c - 1).sum();
    assert_eq!(dups, 0, "duplicated across reloads");
    let mut seen: Vec<&str> = Vec::new();
    for i in 0..total {
        let t = tags[&i].as_str();
        if seen.last() != Some(&t) {
            seen.push(t);
        }
    }
    assert_eq!(seen, order);
}

fn tagged(devo: &okta_collector::sim::devo::Receiver, tag: &str) -> impl FnMut() -> bool {
    let (devo, tag) = (devo.clone(), tag.to_string());
    move || {
        devo.lines()
            .iter()
            .any(|l| syslog::parse_line(l).is_some_and(|(_, t, _)| t == tag))
    }
}

#[test]
fn edits_in_place_and_by_rename_apply_live_and_a_bad_edit_is_ignored() {
    const TOTAL: u64 = 40_000;
    let mut env = Env::new(okta::Options {
        total: TOTAL,
        initial: 2_000,
        rate_per_sec: 4_000.0,
        // No latency: the puller tails the live stream with up to ~1,000 tiny pages (and
        // fsyncs) a second, the load under which a forwarder once sent nothing for 60 s.
        ..Default::default()
    });
    let devo = env.start_devo();
    let with_tag = |env: &Env, tag: &str| env.config().logs("override_tag", tag).text();
    let path = env.path().join("config.yaml");
    env.write_config_text(&with_tag(&env, "t.one"));
    let mut child = env.spawn();
    assert!(
        wait_until(Duration::from_secs(30), tagged(&devo, "t.one")),
        "{}",
        env.logs()
    );

    // An invalid edit: logged with its line and column, ignored; the old config goes on.
    write_atomically(
        &path,
        &with_tag(&env, "t.bad").edit("override_tag:", "overide_tag:"),
    );
    assert!(
        wait_until(Duration::from_secs(20), || env
            .logs()
            .contains("The config file changed but cannot be used")),
        "{}",
        env.logs()
    );
    let logs = env.logs();
    let line = logs.lines().find(|l| l.contains("cannot be used")).unwrap();
    assert!(
        line.contains("unknown field `overide_tag`") && line.contains("line "),
        "{line}"
    );
    assert_eq!(reloads(&env), 0, "nothing restarted");
    let before = devo.count();
    assert!(wait_until(Duration::from_secs(10), || devo.count() > before + 1000));

    // Saved by rename, as editors do.
    write_atomically(&path, &with_tag(&env, "t.two"));
    assert!(
        wait_until(Duration::from_secs(20), tagged(&devo, "t.two")),
        "{}",
        env.logs()
    );
    // Edited in place, with the log level raised too.
    std::fs::write(
        &path,
        with_tag(&env, "t.three").edit("log_level: info", "log_level: debug"),
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), tagged(&devo, "t.three")),
        "{}",
        env.logs()
    );
    assert_eq!(reloads(&env), 2);
    assert!(
        wait_until(Duration::from_secs(10), || env.logs().contains("  DEBUG ")),
        "the new log level applies"
    );

    let all = wait_until(Duration::from_secs(60), || devo.count() >= TOTAL);
    // One more cycle that finds nothing new: what was to arrive (a duplicate too) has.
    assert!(
        env.wait_for_more("The data is up to date!", 1, Duration::from_secs(30)),
        "{}",
        env.logs()
    );
    stop(&env, &mut child);
    assert!(all, "{} of {TOTAL}\n{}", devo.count(), env.logs());
    assert!(
        !env.logs().contains("the reader found nothing"),
        "the forwarder's reader never stalled\n{}",
        env.logs()
    );
    check_once_in_tag_order(&devo, TOTAL, &["t.one", "t.two", "t.three"]);
}

#[test]
fn a_configmap_symlink_swap_applies_live() {
    const TOTAL: u64 = 20_000;
    let mut env = Env::new(okta::Options {
        total: TOTAL,
        initial: 2_000,
        rate_per_sec: 4_000.0,
        // No latency: the puller tails the live stream with up to ~1,000 tiny pages (and
        // fsyncs) a second, the load under which a forwarder once sent nothing for 60 s.
        ..Default::default()
    });
    let devo = env.start_devo();
    // As Kubernetes mounts it: config.yaml -> ..data/config.yaml, ..data -> ..v1.
    let cm = env.path().join("cm");
    std::fs::create_dir_all(cm.join("..v1")).unwrap();
    let root = env.path().display().to_string();
    let base = env.config_text("        override_tag: TAG\n");
    let with_tag = |tag: &str| {
        base.edit("TAG", tag)
            .edit("certs/", &format!("{root}/certs/"))
            .edit("data_dir: data", &format!("data_dir: {root}/data"))
    };
    std::fs::write(cm.join("..v1/config.yaml"), with_tag("t.one")).unwrap();
    std::os::unix::fs::symlink("..v1", cm.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.yaml", cm.join("config.yaml")).unwrap();
    let mut child = env.spawn_at(&cm.join("config.yaml"), &[]);
    assert!(
        wait_until(Duration::from_secs(30), tagged(&devo, "t.one")),
        "{}",
        env.logs()
    );
    std::fs::create_dir_all(cm.join("..v2")).unwrap();
    std::fs::write(cm.join("..v2/config.yaml"), with_tag("t.two")).unwrap();
    std::os::unix::fs::symlink("..v2", cm.join("..data_tmp")).unwrap();
    std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), tagged(&devo, "t.two")),
        "{}",
        env.logs()
    );
    assert_eq!(reloads(&env), 1);
    let all = wait_until(Duration::from_secs(60), || devo.count() >= TOTAL);
    // One more cycle that finds nothing new: what was to arrive (a duplicate too) has.
    assert!(
        env.wait_for_more("The data is up to date!", 1, Duration::from_secs(30)),
        "{}",
        env.logs()
    );
    stop(&env, &mut child);
    assert!(all, "{} of {TOTAL}\n{}", devo.count(), env.logs());
    check_once_in_tag_order(&devo, TOTAL, &["t.one", "t.two"]);
}

#[test]
fn a_start_change_restarts_only_that_services_persistence_and_spooled_events_still_go() {
    const TOTAL: u64 = 3_000;
    let mut env = Env::with_backlog(TOTAL);
    let users = "      users:\n        request_period_in_seconds: 1\n";
    env.write_config(users);
    // Devo is down: everything stays in the spool.
    let mut child = env.spawn();
    let persisted = |env: &Env| {
        env.logs()
            .matches("logs#predefined) -> Persistence has been updated successfully")
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(30), || env
            .logs()
            .contains("logs#predefined) -> The data is up to date!")),
        "{}",
        env.logs()
    );
    assert_eq!(persisted(&env), 1);
    // A new start two seconds into the events: System Log from there on is pulled again.
    let v: serde_json::Value = serde_json::from_str(&env.okta.event(0)).unwrap();
    let t0 = okta_collector::time::parse_rfc3339(v["published"].as_str().unwrap()).unwrap();
    let new_start = okta_collector::time::format_seconds(t0 + Duration::from_secs(2));
    let text = env
        .config_text(users)
        .edit(&env.okta.start_time(), &new_start);
    write_atomically(&env.path().join("config.yaml"), &text);
    assert!(
        wait_until(Duration::from_secs(20), || persisted(&env) == 2),
        "{}",
        env.logs()
    );
    let logs = env.logs();
    assert!(
        logs.contains(&format!(
            "logs#predefined) -> Persistence will be overridden due to the configured start ({new_start}) differs"
        )),
        "{logs}"
    );
    assert!(
        !logs.contains(
            "users#predefined) -> Persistence will be overridden due to the configured start"
        ),
        "users keeps its persistence"
    );
    // Devo comes back: the events spooled before the reset are delivered, and the ones after
    // the new start come again (the seed warns a reset may duplicate).
    let devo = env.start_devo();
    let c = okta_collector::sim::inventory::Counts::default();
    assert!(
        wait_until(Duration::from_secs(60), || devo.count() >= TOTAL + c.users),
        "{}",
        env.logs()
    );
    // One more cycle that finds nothing new: what was to arrive (a duplicate too) has.
    assert!(
        env.wait_for_more("The data is up to date!", 1, Duration::from_secs(30)),
        "{}",
        env.logs()
    );
    stop(&env, &mut child);
    let lines: Vec<Vec<u8>> = devo
        .lines()
        .into_iter()
        .filter(|l| syslog::parse_line(l).is_some_and(|(_, t, _)| t == "auth.okta.system"))
        .collect();
    let (counts, _) = by_index(&lines);
    assert!(
        (0..TOTAL).all(|i| counts.contains_key(&i)),
        "all spooled events arrive"
    );
    let again = counts.values().filter(|c| **c > 1).count();
    assert!(
        again > 0 && (again as u64) < TOTAL,
        "only events after the new start come again ({again})"
    );
    // At the next start the same check runs against the stored start: nothing is reset now.
    let mut child = env.spawn();
    assert!(wait_until(Duration::from_secs(20), || env
        .logs()
        .matches("Starting data collection")
        .count()
        >= 6));
    stop(&env, &mut child);
    assert_eq!(persisted(&env), 2, "no reset when the start matches");
}
