//! The six inventory services end to end: every object arrives with its table's tag, exactly
//! as the simulator serves it; incremental users and groups re-send only what changed;
//! `emit: changes` sends changes and deletions only; a 404 or 403 on one endpoint leaves the
//! others running; kill -9 during a large snapshot never leaves half a snapshot in the spool.

use crate::harness::*;
use okta_collector::config::ServiceKind;
use okta_collector::forward::syslog;
use okta_collector::sim::inventory::{self, Counts};
use okta_collector::sim::okta;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The received lines of one tag, as JSON text.
fn received(lines: &[Vec<u8>], tag: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            let (host, t, event) = syslog::parse_line(l).expect("a syslog line");
            assert_eq!(host, HOSTNAME);
            (t == tag).then(|| String::from_utf8(event.to_vec()).unwrap())
        })
        .collect()
}

/// How many times each exact object JSON arrived.
fn tally(objects: &[String]) -> HashMap<&str, u32> {
    let mut m = HashMap::new();
    for o in objects {
        *m.entry(o.as_str()).or_insert(0) += 1;
    }
    m
}

/// Services block: `logs` off, then the given lines.
fn services(extra: &str) -> String {
    format!("        enabled: false\n{extra}")
}

#[test]
fn every_inventory_service_delivers_all_its_objects_with_its_tag() {
    let mut env = Env::new(okta::Options::default());
    let devo = env.start_devo();
    env.write_config(&services(
        "      users: {}\n      groups: {}\n      apps: {}\n      idps: {}\n      zones:\n        override_tag: my.okta.zones\n      clients: {}\n",
    ));
    let mut child = env.spawn();
    let c = Counts::default();
    let total = c.users + c.groups + c.apps + c.idps + c.zones + c.clients;
    let all = wait_until(Duration::from_secs(60), || devo.count() >= total);
    // Each of the six services has ended its cycle (the next is a period away): nothing more
    // is pulled, so what was to arrive (a duplicate too) has.
    assert!(
        wait_until(Duration::from_secs(30), || {
            env.logs().matches("The data is up to date!").count() >= 6
        }),
        "{}",
        env.logs()
    );
    stop(&env, &mut child);
    assert!(all, "{} of {total} arrived\n{}", devo.count(), env.logs());
    let lines = devo.lines();
    assert_eq!(lines.len() as u64, total, "nothing twice");
    for (kind, tag) in [
        (ServiceKind::Users, "auth.okta.users"),
        (ServiceKind::Groups, "auth.okta.groups"),
        (ServiceKind::Apps, "auth.okta.apps"),
        (ServiceKind::Idps, "auth.okta.idps"),
        (ServiceKind::Zones, "my.okta.zones"),
        (ServiceKind::Clients, "auth.okta.clients"),
    ] {
        let got = received(&lines, tag);
        let want = env.okta.inventory().all(kind);
        let t = tally(&got);
        assert_eq!(got.len(), want.len(), "{tag}");
        for json in want.values() {
            assert_eq!(t.get(json.as_str()), Some(&1), "{tag}: {json}");
        }
    }
    let users = received(&lines, "auth.okta.users");
    let deprovisioned = users
        .iter()
        .filter(|u| u.contains("\"status\":\"DEPROVISIONED\""))
        .count();
    assert_eq!(
        deprovisioned as u64,
        c.users / 25,
        "DEPROVISIONED users come too"
    );
    let logs = env.logs();
    assert!(
        logs.contains("OktaResourcesPuller(okta#65294,apps#predefined) -> Snapshot 1 committed: 30 objects listed, 30 sent (0 deleted)."),
        "{logs}"
    );
    assert!(!logs.contains(TOKEN));
}

#[test]
fn incremental_users_and_groups_resend_only_what_changed() {
    let mut env = Env::new(okta::Options::default());
    let devo = env.start_devo();
    env.write_config(&services(
        "      users:\n        request_period_in_seconds: 1\n      groups:\n        request_period_in_seconds: 1\n",
    ));
    let mut child = env.spawn();
    let c = Counts::default();
    let first = c.users + c.groups;
    assert!(
        wait_until(Duration::from_secs(60), || devo.count() >= first),
        "{}",
        env.logs()
    );
    // A few incremental cycles of each service pass with nothing changed.
    for s in ["users#predefined", "groups#predefined"] {
        assert!(
            env.wait_for_more(
                &format!("{s}) -> The data is up to date!"),
                2,
                Duration::from_secs(30)
            ),
            "{}",
            env.logs()
        );
    }
    assert_eq!(devo.count(), first, "unchanged objects are not sent again");
    let inv = env.okta.inventory();
    assert!(inv.update(ServiceKind::Users, 3));
    assert!(inv.update(ServiceKind::Users, 7));
    assert!(inv.set_status(ServiceKind::Users, 11, "DEPROVISIONED"));
    let added = inv.add(ServiceKind::Users);
    assert!(inv.update(ServiceKind::Groups, 5));
    let want = first + 5;
    assert!(
        wait_until(Duration::from_secs(30), || devo.count() >= want),
        "{} of {want}\n{}",
        devo.count(),
        env.logs()
    );
    // Several more cycles: the changed objects are listed again (they are recent) and dropped.
    assert!(
        env.wait_for_more(
            "users#predefined) -> The data is up to date!",
            3,
            Duration::from_secs(30)
        ),
        "{}",
        env.logs()
    );
    stop(&env, &mut child);
    let lines = devo.lines();
    assert_eq!(
        lines.len() as u64,
        want,
        "only the five changes were sent again"
    );
    let users = received(&lines, "auth.okta.users");
    let t = tally(&users);
    let now = inv.all(ServiceKind::Users);
    for i in [3, 7, 11, added] {
        assert_eq!(
            t.get(now[&i].as_str()),
            Some(&1),
            "user {i}'s new version arrived once"
        );
    }
    assert!(now[&11].contains("\"status\":\"DEPROVISIONED\""));
    let groups = received(&lines, "auth.okta.groups");
    let g5 = &inv.all(ServiceKind::Groups)[&5];
    assert_eq!(groups.iter().filter(|g| *g == g5).count(), 1);
    let logs = env.logs();
    assert!(
        logs.lines().any(|l| l.contains("users#predefined")
            && l.contains("Number of duplicated events filtered out: ")
            && !l.contains("Number of duplicated events filtered out: 0;")),
        "re-listed recent users were dropped as duplicates\n{logs}"
    );
}

#[test]
fn emit_changes_sends_changes_and_deletions_only_and_emit_all_whole_snapshots() {
    let mut env = Env::new(okta::Options::default());
    let devo = env.start_devo();
    env.write_config(&services(
        "      apps:\n        emit: changes\n        request_period_in_seconds: 1\n        requests_limits: []\n      zones:\n        request_period_in_seconds: 1\n",
    ));
    let mut child = env.spawn();
    let c = Counts::default();
    let apps = |devo: &okta_collector::sim::devo::Receiver| {
        received(&devo.lines(), "auth.okta.apps").len() as u64
    };
    assert!(
        wait_until(Duration::from_secs(60), || apps(&devo) >= c.apps),
        "{}",
        env.logs()
    );
    let two_more_snapshots = |env: &Env| {
        assert!(
            env.wait_for_more(
                "apps#predefined) -> The data is up to date!",
                2,
                Duration::from_secs(30)
            ),
            "{}",
            env.logs()
        )
    };
    // Two more snapshots, unchanged.
    two_more_snapshots(&env);
    assert_eq!(apps(&devo), c.apps, "an unchanged snapshot sends nothing");
    let inv = env.okta.inventory();
    assert!(inv.update(ServiceKind::Apps, 2));
    assert!(inv.delete(ServiceKind::Apps, 4));
    let added = inv.add(ServiceKind::Apps);
    assert!(
        wait_until(Duration::from_secs(30), || apps(&devo) >= c.apps + 3),
        "{}",
        env.logs()
    );
    // Two more snapshots: the changes are not sent again.
    two_more_snapshots(&env);
    stop(&env, &mut child);
    let lines = devo.lines();
    let got = received(&lines, "auth.okta.apps");
    assert_eq!(
        got.len() as u64,
        c.apps + 3,
        "one change, one addition, one deletion"
    );
    let now = inv.all(ServiceKind::Apps);
    assert!(got.contains(&now[&2]));
    assert!(got.contains(&now[&added]));
    let deletion: serde_json::Value = serde_json::from_str(&got[got.len() - 1]).unwrap();
    assert_eq!(deletion["id"], inventory::id(ServiceKind::Apps, 4));
    assert_eq!(deletion["deleted"], true);
    assert_eq!(deletion["service"], "apps");
    // emit: all sends every zone every period, whole snapshots only.
    let zones = received(&lines, "auth.okta.zones");
    assert!(zones.len() as u64 >= 3 * c.zones, "{} zones", zones.len());
    let want: Vec<String> = inv.all(ServiceKind::Zones).into_values().collect();
    for (k, z) in zones.iter().enumerate() {
        assert_eq!(
            z,
            &want[k % want.len()],
            "zone line {k} out of snapshot order"
        );
    }
}

#[test]
fn an_endpoint_the_org_refuses_is_named_and_the_other_services_go_on() {
    let mut env = Env::new(okta::Options {
        refuse: vec![(ServiceKind::Idps, 404), (ServiceKind::Clients, 403)],
        ..Default::default()
    });
    let devo = env.start_devo();
    env.write_config(&services(
        "      groups: {}\n      idps: {}\n      clients: {}\n      zones: {}\n",
    ));
    let mut child = env.spawn();
    let c = Counts::default();
    let ok = wait_until(Duration::from_secs(60), || {
        devo.count() >= c.groups + c.zones
    });
    std::thread::sleep(Duration::from_millis(500));
    stop(&env, &mut child);
    assert!(ok, "{}", env.logs());
    let logs = env.logs();
    let line = |svc: &str| {
        logs.lines()
            .find(|l| l.contains(&format!("{svc}#predefined")) && l.contains("SetupError 100"))
            .unwrap_or_else(|| panic!("no error line for {svc}\n{logs}"))
            .to_string()
    };
    let idps = line("idps");
    assert!(
        idps.contains("HTTP 404") && idps.contains("errorCode E0000007"),
        "{idps}"
    );
    assert!(
        idps.contains("set `enabled: false` under inputs.okta.services.idps"),
        "{idps}"
    );
    let clients = line("clients");
    assert!(clients.contains("HTTP 403"), "{clients}");
    assert!(
        clients.contains("okta.clients.read") && clients.contains("Application Administrator"),
        "{clients}"
    );
    assert!(clients.contains("The other services go on"), "{clients}");
    assert_eq!(devo.count(), c.groups + c.zones);
}

/// Kills the collector at random points while it lists 3,000 apps (15 pages) over and over,
/// then checks the apps spool: event `s` must be app `s mod 3000`, so the spool holds whole
/// snapshots only, never a part of one followed by another.
#[test]
fn kill_9_during_a_large_snapshot_never_leaves_half_a_snapshot() {
    const APPS: u64 = 3_000;
    let mut env = Env::new(okta::Options {
        page_delay: Duration::from_millis(25),
        objects: Counts {
            apps: APPS,
            ..Counts::default()
        },
        ..Default::default()
    });
    let devo = env.start_devo();
    env.write_config(&services(
        "      apps:\n        request_period_in_seconds: 1\n        requests_limits: []\n",
    ));
    let pages = APPS / 200;
    let iterations: u64 = std::env::var("OKC_SNAPSHOT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    // Kills after which recovery cut off the frames of an unfinished snapshot.
    let mut discarded = 0;
    for k in 0..iterations {
        let r0 = env.okta.requests();
        let mut child = env.spawn();
        // Kill in the middle of a listing (after a few pages, before the last), after 0 to 2
        // whole snapshots.
        let target = (k % 3) * pages + 3 + (k * 5) % (pages - 5);
        let deadline = Instant::now() + Duration::from_secs(30);
        while env.okta.requests() - r0 < target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        signal(&child, 9);
        wait_exit(&mut child, Duration::from_secs(10));
        if check_whole_snapshots(&env, APPS) {
            discarded += 1;
        }
    }
    // A last clean run delivers at least one whole snapshot.
    let before = devo.count();
    let mut child = env.spawn();
    assert!(
        wait_until(Duration::from_secs(60), || devo.count() >= before + APPS),
        "{}",
        env.logs()
    );
    stop(&env, &mut child);
    check_whole_snapshots(&env, APPS);
    assert!(
        discarded * 2 >= iterations,
        "only {discarded} of {iterations} kills landed mid-snapshot\n{}",
        env.logs()
    );
    eprintln!("{iterations} kills, {discarded} half snapshots discarded at recovery");
    let want = env.okta.inventory().all(ServiceKind::Apps);
    for line in received(&devo.lines(), "auth.okta.apps") {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let i = inventory::index_of(ServiceKind::Apps, v["id"].as_str().unwrap()).unwrap();
        assert_eq!(line, want[&i], "app {i} arrived altered");
    }
}

/// Recovers the apps spool and checks it; returns whether recovery cut off uncommitted frames.
fn check_whole_snapshots(env: &Env, apps: u64) -> bool {
    let dir = env.path().join("data/spool/apps");
    let bytes = || -> u64 {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    };
    let before = bytes();
    // Recovery itself is what this checks: the spool is opened in place.
    let s = spool::Spool::open_consumers(&dir, spool::Options::default(), &["devo_1"]).unwrap();
    let cut = bytes() < before;
    assert_eq!(
        s.durable().next_seq % apps,
        0,
        "the spool ends on a snapshot boundary"
    );
    for_each_spooled(&s, |seq, e| {
        let v: serde_json::Value = serde_json::from_slice(e).unwrap();
        let i = inventory::index_of(ServiceKind::Apps, v["id"].as_str().unwrap()).unwrap();
        assert_eq!(seq % apps, i, "spool sequence {seq} holds app {i}");
    });
    cut
}
