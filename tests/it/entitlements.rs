//! The simulated org's entitlement endpoints over HTTP (`../shared/okta-api.md` §3.3), read by
//! the collector's own Okta client and `Link` parser: group members and app users page by
//! `Link` header, role holders by `_links.next` in the body, a missing assignment is 404
//! `E0000007`, and a change made by a test shows in the next answer.

use crate::harness::*;
use okta_collector::config::{HttpSettings, Origin, Secret, ServiceKind};
use okta_collector::okta::client::Client;
use okta_collector::sim::entitlements::Link;
use okta_collector::sim::inventory::{Counts, id};
use okta_collector::sim::okta;
use std::time::Duration;

fn org() -> Env {
    Env::new(okta::Options {
        total: 1,
        initial: 1,
        objects: Counts {
            users: 600,
            groups: 40,
            apps: 12,
            idps: 1,
            zones: 1,
            clients: 8,
        },
        ..Default::default()
    })
}

fn client(env: &Env) -> Client {
    client_with(env, TOKEN)
}

fn client_with(env: &Env, token: &str) -> Client {
    Client::new(
        Origin::parse(&env.okta.url()).unwrap(),
        Secret::new(token.into()),
        &HttpSettings {
            ca_file: None,
            proxy: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        },
    )
    .unwrap()
}

/// Every item of a listing that pages by `Link` header, from `first` on; and the pages.
fn follow(c: &Client, first: &str) -> (Vec<serde_json::Value>, usize) {
    let mut url = first.to_string();
    let (mut items, mut pages) = (Vec::new(), 0);
    loop {
        let r = c.get(&url).unwrap();
        assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
        let page: Vec<serde_json::Value> = serde_json::from_slice(&r.body).unwrap();
        items.extend(page);
        pages += 1;
        match okta_collector::okta::link::next(r.links.iter().map(String::as_str)).unwrap() {
            Some(next) => url = next,
            None => return (items, pages),
        }
    }
}

#[test]
fn members_and_assignments_page_as_okta_pages_them_and_changes_show_at_once() {
    let env = org();
    let c = client(&env);
    let base = env.okta.url();
    let inv = env.okta.inventory();
    let ent = env.okta.entitlements();

    // A group's members, 40 a page: each member once, the user objects as the users listing.
    let g = id(ServiceKind::Groups, 3);
    let (members, pages) = follow(&c, &format!("{base}/api/v1/groups/{g}/users?limit=40"));
    let want = ent.members(inv, 3);
    assert_eq!(members.len(), want.len());
    assert!(pages > 1, "{pages} pages");
    assert_eq!(
        members[0].to_string(),
        inv.object(ServiceKind::Users, want[0]).unwrap(),
        "the user as Okta lists it"
    );

    // A membership added and one removed show in the next listing.
    let outsider = (0..600).find(|u| !want.contains(u)).unwrap();
    assert!(ent.add(
        inv,
        Link::Member {
            group: 3,
            user: outsider
        }
    ));
    assert!(ent.remove(
        inv,
        Link::Member {
            group: 3,
            user: want[0]
        }
    ));
    let (after, _) = follow(&c, &format!("{base}/api/v1/groups/{g}/users?limit=200"));
    let ids: Vec<&str> = after.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&id(ServiceKind::Users, outsider).as_str()));
    assert!(!ids.contains(&id(ServiceKind::Users, want[0]).as_str()));

    // App users: limit 1-500 (0 is Okta's E0000001); one assignment read alone.
    let app = id(ServiceKind::Apps, 0);
    let r = c
        .get(&format!("{base}/api/v1/apps/{app}/users?limit=0"))
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("E0000001"));
    let (app_users, _) = follow(&c, &format!("{base}/api/v1/apps/{app}/users?limit=5"));
    assert!(!app_users.is_empty());
    let first = app_users[0]["id"].as_str().unwrap();
    let one = c
        .get(&format!("{base}/api/v1/apps/{app}/users/{first}"))
        .unwrap();
    assert_eq!(one.status, 200);
    let unassigned = id(ServiceKind::Users, 1);
    let none = c
        .get(&format!("{base}/api/v1/apps/{app}/users/{unassigned}"))
        .unwrap();
    assert_eq!(none.status, 404);
    assert!(String::from_utf8_lossy(&none.body).contains("E0000007"));

    // Role holders page in the body, not by Link header.
    let r = c
        .get(&format!("{base}/api/v1/iam/assignees/users?limit=1"))
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(
        okta_collector::okta::link::next(r.links.iter().map(String::as_str))
            .unwrap()
            .is_none()
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["_links"]["next"]["href"].as_str().is_some(), "{v}");
    // The token is checked there as everywhere.
    let other = client_with(&env, "wrong");
    assert_eq!(
        other
            .get(&format!("{base}/api/v1/users/{unassigned}/factors"))
            .unwrap()
            .status,
        401
    );
}

#[test]
fn logged_changes_reach_the_system_log_after_the_backlog_and_silent_ones_do_not() {
    use okta_collector::sim::entitlements::Change;
    let mut env = Env::new(okta::Options {
        total: 20,
        initial: 20,
        objects: Counts {
            users: 100,
            groups: 10,
            apps: 5,
            idps: 1,
            zones: 1,
            clients: 4,
        },
        ..Default::default()
    });
    let inv = env.okta.inventory();
    let ent = env.okta.entitlements();
    let outsider = (0..100)
        .find(|u| !ent.holds(inv, Link::Member { group: 2, user: *u }))
        .unwrap();
    let added = env
        .okta
        .change(Change::add(Link::Member {
            group: 2,
            user: outsider,
        }))
        .unwrap();
    let granted = env
        .okta
        .change(Change::add(Link::UserRole { user: 7, role: 0 }))
        .unwrap();
    // Unlogged: only a full listing can find it.
    assert!(
        env.okta
            .change(
                Change::remove(Link::Member {
                    group: 2,
                    user: outsider
                })
                .silent()
            )
            .is_none()
    );
    assert!(!ent.holds(
        inv,
        Link::Member {
            group: 2,
            user: outsider
        }
    ));
    // A change that changes nothing writes nothing either.
    assert!(
        env.okta
            .change(Change::remove(Link::Member {
                group: 2,
                user: outsider
            }))
            .is_none()
    );

    let devo = env.start_devo();
    env.write_config("");
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(30), || devo.count() >= 22);
    env.settle();
    stop(&env, &mut child);
    assert!(all, "{} delivered\n{}", devo.count(), env.logs());
    assert_eq!(
        devo.count(),
        22,
        "the backlog and the two logged changes, once"
    );
    let events: Vec<serde_json::Value> = devo
        .lines()
        .iter()
        .filter_map(|l| {
            let (_, _, e) = okta_collector::forward::syslog::parse_line(l)?;
            serde_json::from_slice(e).ok()
        })
        .collect();
    let by_uuid = |u: &str| events.iter().find(|e| e["uuid"] == u).unwrap();
    let add = by_uuid(&added);
    assert_eq!(add["eventType"], "group.user_membership.add");
    assert_eq!(add["target"][0]["type"], "User");
    assert_eq!(add["target"][0]["id"], id(ServiceKind::Users, outsider));
    assert_eq!(add["target"][1]["type"], "UserGroup");
    assert_eq!(add["target"][1]["id"], id(ServiceKind::Groups, 2));
    let grant = by_uuid(&granted);
    assert_eq!(grant["eventType"], "user.account.privilege.grant");
    assert_eq!(
        grant["debugContext"]["debugData"]["privilegeGranted"],
        "SUPER_ADMIN"
    );
}
