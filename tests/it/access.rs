//! The four entitlement services end to end (issue 26): the real binary against the simulated
//! org and the mutual-TLS receiver. A full listing delivers every entitlement once, each kind
//! of change arrives as the right record with its event as `cause` within its request bound,
//! a silent change is found by the next full listing, and kill -9 loses nothing.

use crate::harness::*;
use okta_collector::config::ServiceKind;
use okta_collector::sim::entitlements::{Change, FACTORS, Link, ROLES};
use okta_collector::sim::inventory::{Counts, id};
use okta_collector::sim::{devo, okta};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const SERVICES: [&str; 4] = ["group_members", "app_assignments", "admin_roles", "factors"];

fn org(users: u64, groups: u64) -> Env {
    Env::new(okta::Options {
        total: 5,
        initial: 5,
        objects: Counts {
            users,
            groups,
            apps: 6,
            idps: 1,
            zones: 1,
            clients: 6,
        },
        ..Default::default()
    })
}

/// The org, the receiver and the collector with the four services on, each every second,
/// once each service's first full listing has reached Devo.
fn listed(users: u64, groups: u64) -> (Env, devo::Receiver, std::process::Child) {
    let mut env = org(users, groups);
    let devo = env.start_devo();
    let mut c = env.config();
    for s in SERVICES {
        c = c.service(
            s,
            "{enabled: true, request_period_in_seconds: 1, requests_limits: []}",
        );
    }
    c.write();
    let child = env.spawn();
    assert!(
        wait_until(Duration::from_secs(60), || baselines(&devo).len() >= 4),
        "{}",
        env.logs()
    );
    (env, devo, child)
}

fn all_records(devo: &devo::Receiver) -> Vec<serde_json::Value> {
    SERVICES
        .iter()
        .flat_map(|s| records(devo, &format!("my.app.okta.{s}")))
        .collect()
}

/// What a record is about: (entitlement, parent id, child id).
fn about(r: &serde_json::Value) -> (String, String, String) {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let e = s(&r["entitlement"]);
    let (parent, child) = match e.as_str() {
        "group_member" => (s(&r["group"]["id"]), s(&r["user"]["id"])),
        "app_user" => (s(&r["app"]["id"]), s(&r["user"]["id"])),
        "app_group" => (s(&r["app"]["id"]), s(&r["group"]["id"])),
        "admin_role" => (s(&r["assignee"]["id"]), s(&r["role"]["id"])),
        "factor" => (s(&r["user"]["id"]), s(&r["factor"]["id"])),
        _ => (String::new(), String::new()),
    };
    (e, parent, child)
}

/// Every entitlement the simulated org holds, as the records name them.
fn expected(env: &Env, users: u64, groups: u64) -> BTreeSet<(String, String, String)> {
    let (inv, ent) = (env.okta.inventory(), env.okta.entitlements());
    let mut out = BTreeSet::new();
    let t = |e: &str, p: String, c: String| (e.to_string(), p, c);
    for g in 0..groups {
        for u in ent.members(inv, g) {
            out.insert(t(
                "group_member",
                id(ServiceKind::Groups, g),
                id(ServiceKind::Users, u),
            ));
        }
    }
    for a in 0..6 {
        for u in 0..users {
            if ent.holds(inv, Link::AppUser { app: a, user: u }) {
                out.insert(t(
                    "app_user",
                    id(ServiceKind::Apps, a),
                    id(ServiceKind::Users, u),
                ));
            }
        }
        for g in 0..groups {
            if ent.holds(inv, Link::AppGroup { app: a, group: g }) {
                out.insert(t(
                    "app_group",
                    id(ServiceKind::Apps, a),
                    id(ServiceKind::Groups, g),
                ));
            }
        }
    }
    for r in 0..ROLES.len() {
        let role = |holder: &str| format!("ra{holder}{r}");
        for u in 0..users {
            if ent.holds(inv, Link::UserRole { user: u, role: r }) {
                let h = id(ServiceKind::Users, u);
                out.insert(t("admin_role", h.clone(), role(&h)));
            }
        }
        for g in 0..groups {
            if ent.holds(inv, Link::GroupRole { group: g, role: r }) {
                let h = id(ServiceKind::Groups, g);
                out.insert(t("admin_role", h.clone(), role(&h)));
            }
        }
        for c in 0..6 {
            if ent.holds(inv, Link::ClientRole { client: c, role: r }) {
                let h = id(ServiceKind::Clients, c);
                out.insert(t("admin_role", h.clone(), role(&h)));
            }
        }
    }
    // The plain user listing leaves DEPROVISIONED users out (okta-api.md §3.1), and so do
    // their factors (the README says so).
    for u in 0..users {
        let gone = inv
            .object(ServiceKind::Users, u)
            .is_some_and(|o| o.contains("\"DEPROVISIONED\""));
        if gone {
            continue;
        }
        for f in 0..FACTORS.len() {
            if ent.holds(inv, Link::Factor { user: u, factor: f }) {
                out.insert(t(
                    "factor",
                    id(ServiceKind::Users, u),
                    format!("fac{u:x}{f}"),
                ));
            }
        }
    }
    out
}

/// Nothing lost, nothing made up (naming a few of each, not thousands).
fn assert_same(
    got: &BTreeSet<(String, String, String)>,
    want: &BTreeSet<(String, String, String)>,
) {
    let missing: Vec<_> = want.difference(got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} missing, e.g. {:?}; {} not in the org, e.g. {:?} ({} expected)",
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)],
        want.len()
    );
}

fn baselines(devo: &devo::Receiver) -> Vec<serde_json::Value> {
    all_records(devo)
        .into_iter()
        .filter(|r| r["entitlement"] == "baseline")
        .collect()
}

#[test]
fn a_full_listing_delivers_every_entitlement_once_then_a_baseline_per_service() {
    let (users, groups) = (120, 12);
    let (env, devo, mut child) = listed(users, groups);
    env.settle();
    stop(&env, &mut child);
    let want = expected(&env, users, groups);
    let mut got: BTreeMap<(String, String, String), u32> = BTreeMap::new();
    for r in all_records(&devo) {
        if r["entitlement"] == "baseline" {
            continue;
        }
        assert_eq!(r["state"], "present", "{r}");
        assert_eq!(r["cause"], serde_json::json!({"kind": "listing"}), "{r}");
        assert!(r["observed"].as_str().unwrap().ends_with('Z'), "{r}");
        *got.entry(about(&r)).or_default() += 1;
    }
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    let got: BTreeSet<_> = got.into_keys().collect();
    assert_same(&got, &want);
    // Each kind is there (the org's rules give every kind).
    for e in [
        "group_member",
        "app_user",
        "app_group",
        "admin_role",
        "factor",
    ] {
        assert!(want.iter().any(|(k, _, _)| k == e), "no {e}");
    }
    // The baselines count what their listing found.
    let b = baselines(&devo);
    assert_eq!(b.len(), 4, "{b:?}");
    let present: u64 = b.iter().map(|r| r["present"].as_u64().unwrap()).sum();
    assert_eq!(present, want.len() as u64);
    assert!(
        b.iter()
            .all(|r| r["removed"] == 0 && r["state"] == "complete")
    );
    // The embedded objects are the simulator's, byte for byte.
    let one = devo
        .lines()
        .into_iter()
        .find(|l| String::from_utf8_lossy(l).contains("\"entitlement\":\"group_member\""))
        .unwrap();
    let text = String::from_utf8(one).unwrap();
    let user_at = text.find("\"user\":").unwrap() + "\"user\":".len();
    let embedded = &text[user_at..text.len() - 1];
    let uid: serde_json::Value = serde_json::from_str(embedded).unwrap();
    let u =
        okta_collector::sim::inventory::index_of(ServiceKind::Users, uid["id"].as_str().unwrap())
            .unwrap();
    assert_eq!(
        embedded,
        env.okta.inventory().object(ServiceKind::Users, u).unwrap()
    );
}

#[test]
fn each_kind_of_change_arrives_with_its_event_as_cause_within_its_request_bound() {
    let (users, groups) = (120, 12);
    let (env, devo, mut child) = listed(users, groups);
    let (inv, ent) = (env.okta.inventory(), env.okta.entitlements());
    let outsider = (0..users)
        .find(|u| !ent.holds(inv, Link::Member { group: 3, user: *u }))
        .unwrap();
    let member = ent.members(inv, 4)[0];
    let app_user = (0..users)
        .find(|u| !ent.holds(inv, Link::AppUser { app: 1, user: *u }))
        .unwrap();
    let app_group = (0..groups)
        .find(|g| ent.holds(inv, Link::AppGroup { app: 2, group: *g }))
        .unwrap();
    let client = (0..6)
        .find(|c| {
            ent.holds(
                inv,
                Link::ClientRole {
                    client: *c,
                    role: 3,
                },
            )
        })
        .unwrap();
    let factor_user = 4u64;
    let factor = (0..FACTORS.len())
        .find(|f| {
            ent.holds(
                inv,
                Link::Factor {
                    user: factor_user,
                    factor: *f,
                },
            )
        })
        .unwrap();
    let requests_before = env.okta.targets().len();
    let changes = [
        (
            Change::add(Link::Member {
                group: 3,
                user: outsider,
            }),
            "present",
        ),
        (
            Change::remove(Link::Member {
                group: 4,
                user: member,
            }),
            "removed",
        ),
        (
            Change::add(Link::AppUser {
                app: 1,
                user: app_user,
            }),
            "present",
        ),
        (
            Change::remove(Link::AppGroup {
                app: 2,
                group: app_group,
            }),
            "removed",
        ),
        (Change::add(Link::UserRole { user: 9, role: 0 }), "present"),
        (
            Change::add(Link::GroupRole { group: 5, role: 1 }),
            "present",
        ),
        (
            Change::remove(Link::ClientRole { client, role: 3 }),
            "removed",
        ),
        (
            Change::remove(Link::Factor {
                user: factor_user,
                factor,
            }),
            "removed",
        ),
    ];
    let mut want = Vec::new();
    for (c, state) in changes {
        let uuid = env.okta.change(c).unwrap();
        want.push((uuid, c.event_type().0, state));
    }
    let find = |uuid: &str| {
        all_records(&devo)
            .into_iter()
            .filter(|r| r["cause"]["uuid"] == uuid)
            .collect::<Vec<_>>()
    };
    let arrived = wait_until(Duration::from_secs(30), || {
        want.iter().all(|(u, _, _)| !find(u).is_empty())
    });
    env.settle();
    stop(&env, &mut child);
    assert!(arrived, "{}", env.logs());
    for (uuid, event_type, state) in &want {
        let got = find(uuid);
        assert_eq!(got.len(), 1, "{event_type}: {got:?}");
        let r = &got[0];
        assert_eq!(r["state"], *state, "{event_type}: {r}");
        assert_eq!(r["cause"]["kind"], "event");
        assert_eq!(r["cause"]["eventType"], *event_type);
    }
    // The right objects: the new member is user `outsider` of group 3, with its user object;
    // the removed factor names its type.
    let add = &find(&want[0].0)[0];
    assert_eq!(add["group"]["id"], id(ServiceKind::Groups, 3));
    assert_eq!(add["user"]["id"], id(ServiceKind::Users, outsider));
    assert!(add["user"]["profile"]["login"].is_string(), "{add}");
    let f = &find(&want[7].0)[0];
    assert_eq!(f["factor"]["factorType"], FACTORS[factor]);
    let role = &find(&want[4].0)[0];
    assert_eq!(role["role"]["type"], ROLES[0]);
    assert_eq!(
        role["assignee"],
        serde_json::json!({"type": "USER", "id": id(ServiceKind::Users, 9)})
    );
    // Requests: at most 2 per change, besides the System Log's own polling and the groups
    // asked for by lastMembershipUpdated (one a second at most).
    let targets = env.okta.targets();
    let ent_requests = targets[requests_before..]
        .iter()
        .filter(|t| !t.starts_with("/api/v1/logs") && !t.starts_with("/api/v1/groups?"))
        .count();
    assert!(
        ent_requests <= 2 * want.len(),
        "{ent_requests} requests for {} changes: {:?}",
        want.len(),
        &targets[requests_before..]
    );
    // Nothing but the changes was sent after the baselines.
    let after: Vec<_> = all_records(&devo)
        .into_iter()
        .filter(|r| r["cause"]["kind"] != "listing" && r["entitlement"] != "baseline")
        .collect();
    assert_eq!(after.len(), want.len(), "{after:?}");
}

#[test]
fn a_silent_change_is_found_by_the_next_full_listing_and_a_burst_costs_one_read() {
    let (users, groups) = (300, 8);
    let mut env = org(users, groups);
    let devo = env.start_devo();
    let mut c = env.config();
    c = c.service(
        "group_members",
        "{enabled: true, request_period_in_seconds: 1, requests_limits: [], full_listing_every: 10s, emit: changes}",
    );
    c.write();
    let mut child = env.spawn();
    let baselines_of =
        |n: usize| wait_until(Duration::from_secs(40), || baselines(&devo).len() >= n);
    assert!(baselines_of(1), "{}", env.logs());
    let (inv, ent) = (env.okta.inventory(), env.okta.entitlements());
    // A burst: 40 users join group 2, logged; each event costs nothing once the group is
    // read again whole (one page of members).
    let joiners: Vec<u64> = (0..users)
        .filter(|u| !ent.holds(inv, Link::Member { group: 2, user: *u }))
        .take(40)
        .collect();
    let before = env.okta.targets().len();
    for u in &joiners {
        env.okta
            .change(Change::add(Link::Member { group: 2, user: *u }))
            .unwrap();
    }
    let joined = |devo: &devo::Receiver| {
        all_records(devo)
            .into_iter()
            .filter(|r| r["cause"]["eventType"] == "group.user_membership.add")
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(20), || joined(&devo) >= 40),
        "{}",
        env.logs()
    );
    let burst_requests = env.okta.targets()[before..]
        .iter()
        .filter(|t| t.starts_with("/api/v1/groups/") || t.starts_with("/api/v1/users/"))
        .count();
    assert!(
        burst_requests <= 20,
        "{burst_requests} requests for a burst of 40"
    );
    // A silent removal: no event; lastMembershipUpdated moves, so the group is read again
    // within two periods, cause lastMembershipUpdated.
    let leaver = ent.members(inv, 5)[0];
    assert!(
        env.okta
            .change(
                Change::remove(Link::Member {
                    group: 5,
                    user: leaver
                })
                .silent()
            )
            .is_none()
    );
    let removed = |devo: &devo::Receiver| {
        all_records(devo)
            .into_iter()
            .find(|r| r["state"] == "removed" && r["user"]["id"] == id(ServiceKind::Users, leaver))
    };
    assert!(
        wait_until(Duration::from_secs(20), || removed(&devo).is_some()),
        "{}",
        env.logs()
    );
    assert_eq!(
        removed(&devo).unwrap()["cause"]["kind"],
        "lastMembershipUpdated"
    );
    // The next full listing sends nothing new (emit: changes) and closes with its baseline.
    let n_before = all_records(&devo).len();
    assert!(baselines_of(2), "{}", env.logs());
    env.settle();
    stop(&env, &mut child);
    let after = all_records(&devo);
    let new: Vec<_> = after[n_before..]
        .iter()
        .filter(|r| r["entitlement"] != "baseline")
        .collect();
    assert!(new.is_empty(), "{new:?}");
}

#[test]
fn a_listing_killed_again_and_again_loses_nothing_and_resumes_where_it_was() {
    let (users, groups) = (400, 40);
    let mut env = org(users, groups);
    let devo = env.start_devo();
    // Slow enough to kill in the middle; segments large enough that none is deleted, so the
    // spools can be counted at the end.
    let mut c = env.config().spool_bound(1 << 30);
    c = c.service(
        "group_members",
        "{enabled: true, request_period_in_seconds: 1, requests_limits: [{period: 1, number_of_requests: 20}]}",
    );
    c = c.service(
        "factors",
        "{enabled: true, request_period_in_seconds: 1, requests_limits: [{period: 1, number_of_requests: 40}]}",
    );
    c.write();
    let mut kills = 0;
    for round in 0..4 {
        let mut child = env.spawn();
        std::thread::sleep(Duration::from_millis(1_200 + 700 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    let mut child = env.spawn();
    // A baseline from each service (a kill between a baseline and its progress sends that
    // baseline again: two from one service are not both).
    let done = wait_until(Duration::from_secs(90), || {
        let services: BTreeSet<String> = baselines(&devo)
            .iter()
            .map(|b| b["service"].as_str().unwrap_or("").to_string())
            .collect();
        services.len() >= 2
    });
    env.settle();
    stop(&env, &mut child);
    assert!(done, "{}", env.logs());
    let logs = env.logs();
    assert!(logs.contains("Resuming full listing 1"), "{logs}");
    // `status` says where each service's listing is, from its folder.
    let out = std::process::Command::new(bin())
        .args(["status", "--config"])
        .arg(env.path().join("config.yaml"))
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{status}");
    assert_eq!(
        status
            .matches("  progress:    full listing 1 complete at ")
            .count(),
        2,
        "{status}"
    );
    let want: BTreeSet<_> = expected(&env, users, groups)
        .into_iter()
        .filter(|(e, _, _)| e == "group_member" || e == "factor")
        .collect();
    let mut got: BTreeMap<(String, String, String), u32> = BTreeMap::new();
    for r in all_records(&devo) {
        if r["entitlement"] != "baseline" {
            *got.entry(about(&r)).or_default() += 1;
        }
    }
    let keys: BTreeSet<_> = got.into_keys().collect();
    assert_same(&keys, &want);
    // Read twice: at most the parent in hand at each kill (a group's members, a user's
    // factors), counted in the spools (Devo may also get the unconfirmed window again).
    let mut spooled = 0usize;
    for s in ["group_members", "factors"] {
        let (_copy, spool) = open_copy(&env.path().join("data/spool").join(s));
        for_each_spooled(&spool, |_, e| {
            spooled += usize::from(!String::from_utf8_lossy(e).contains("\"baseline\""));
        });
    }
    let resent = spooled - want.len();
    assert!(
        resent <= kills * 250,
        "{resent} read twice over {kills} kills ({spooled} spooled, {} entitlements)",
        want.len()
    );
}

#[test]
fn the_services_are_off_unless_enabled_and_their_settings_are_checked() {
    let mut env = org(10, 2);
    let _devo = env.start_devo();
    env.config().service("factors", "{}").write();
    let (code, out, err) = env.validate();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        !out.contains("factors"),
        "factors is off unless enabled: {out}"
    );
    for (settings, needle) in [
        ("{enabled: true, full_listing_every: 5s}", "at least 10s"),
        (
            "{enabled: true, full_listing_every: often}",
            "full_listing_every",
        ),
        (
            "{enabled: true, start: 2024-01-01T00:00:00Z}",
            "no time filter",
        ),
    ] {
        env.config().service("factors", settings).write();
        let (code, out, err) = env.validate();
        assert_eq!(code, Some(1), "{settings}: {out}{err}");
        assert!(
            format!("{out}{err}").contains(needle),
            "{settings}: {out}{err}"
        );
    }
}

#[test]
fn a_stuck_entitlement_service_never_stops_the_system_log() {
    // 10,000 events (about 15 MB) through a 1 MiB bound, while `factors` waits an hour per request (its
    // budget): its position in the System Log's spool is released, all the System Log is
    // delivered, and a full listing is due to find what the skipped events changed.
    let mut env = Env::with_backlog(10_000);
    let devo = env.start_devo();
    env.config()
        .spool_bound(1 << 20)
        .service(
            "factors",
            "{enabled: true, request_period_in_seconds: 1, requests_limits: [{period: 3600, number_of_requests: 1}]}",
        )
        .write();
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(90), || {
        records(&devo, "auth.okta.system").len() >= 10_000
    });
    stop(&env, &mut child);
    assert!(
        all,
        "{} delivered\n{}",
        records(&devo, "auth.okta.system").len(),
        env.logs()
    );
    let logs = env.logs();
    assert!(logs.contains("System Log events are skipped"), "{logs}");
    assert!(env.path().join("data/entitlements/factors/relist").exists());
}

#[test]
fn a_burst_of_changes_killed_again_and_again_loses_none_of_them() {
    let (users, groups) = (200, 10);
    let (mut env, devo, mut child) = listed(users, groups);
    let (inv, ent) = (env.okta.inventory(), env.okta.entitlements());
    // 60 changes of every kind, made while the collector is killed and started again.
    let mut made = Vec::new();
    let mut changes = Vec::new();
    for g in 0..groups {
        for u in (0..users)
            .filter(|u| !ent.holds(inv, Link::Member { group: g, user: *u }))
            .take(3)
        {
            changes.push((Change::add(Link::Member { group: g, user: u }), "present"));
        }
        let m = ent.members(inv, g)[1];
        changes.push((
            Change::remove(Link::Member { group: g, user: m }),
            "removed",
        ));
    }
    // (Users 30 to 39: none DEPROVISIONED, whose factors the listing leaves out.)
    for u in 30..40 {
        let f = (0..FACTORS.len())
            .find(|f| {
                ent.holds(
                    inv,
                    Link::Factor {
                        user: u,
                        factor: *f,
                    },
                )
            })
            .unwrap();
        changes.push((
            Change::remove(Link::Factor { user: u, factor: f }),
            "removed",
        ));
        changes.push((Change::add(Link::UserRole { user: u, role: 1 }), "present"));
    }
    for (i, (c, state)) in changes.into_iter().enumerate() {
        made.push((env.okta.change(c).unwrap(), state));
        if i % 15 == 14 {
            std::thread::sleep(Duration::from_millis(300 + 200 * (i as u64 % 4)));
            child.kill().unwrap();
            child.wait().unwrap();
            child = env.spawn();
        }
    }
    let all = wait_until(Duration::from_secs(60), || {
        let seen: BTreeSet<String> = all_records(&devo)
            .iter()
            .filter_map(|r| r["cause"]["uuid"].as_str().map(str::to_string))
            .collect();
        made.iter().all(|(u, _)| seen.contains(u))
    });
    env.settle();
    stop(&env, &mut child);
    let records = all_records(&devo);
    let missing: Vec<_> = made
        .iter()
        .filter(|(u, _)| !records.iter().any(|r| r["cause"]["uuid"] == *u.as_str()))
        .collect();
    assert!(
        all && missing.is_empty(),
        "{} of {} changes missing: {missing:?}\n{}",
        missing.len(),
        made.len(),
        env.logs()
    );
    for (uuid, state) in &made {
        assert!(
            records
                .iter()
                .filter(|r| r["cause"]["uuid"] == *uuid.as_str())
                .all(|r| r["state"] == *state),
            "{uuid}"
        );
    }
}
