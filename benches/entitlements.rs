//! The entitlement services against a 10,000-user simulated org (issue 26's targets): the
//! requests of a full listing against the fewest Okta's page limits allow, the requests and
//! the time a change costs, a burst of 1,000 membership events in one group, peak memory, and
//! whether the System Log keeps its pace during the listing. Figures only; nothing asserted.
//!
//! `cargo bench --bench entitlements -- --users 10000`
#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark: a panic is a failed run

mod common;

use common::{arg, status_mib};
use okta_collector::config::ServiceKind;
use okta_collector::sim::entitlements::{Change, FACTORS, Link, ROLES};
use okta_collector::sim::inventory::Counts;
use okta_collector::sim::{certs, devo, okta};
use std::time::{Duration, Instant};

const PERIOD: u64 = 5;

fn main() {
    let users = arg("--users", 10_000);
    let groups = users / 10;
    let apps = (users / 50).max(1);
    let clients = 50;
    common::header(&format!(
        "entitlement benchmarks: cargo bench --bench entitlements -- --users {users}"
    ));
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let pki = certs::generate(&dir.path().join("certs"), "bench CA").expect("certs");
    let sim = okta::OktaSim::start(
        ([127, 0, 0, 1], 0).into(),
        okta::Options {
            token: "bench-token".into(),
            total: 1_000,
            initial: 1_000,
            objects: Counts {
                users,
                groups,
                apps,
                idps: 1,
                zones: 1,
                clients,
            },
            ..Default::default()
        },
    )
    .expect("simulator");
    let rx = devo::Receiver::start(
        ([127, 0, 0, 1], 0).into(),
        &pki,
        devo::Options {
            keep_lines: true,
            verify_delay: Duration::ZERO,
            ..Default::default()
        },
    )
    .expect("receiver");
    let (inv, ent) = (sim.inventory(), sim.entitlements());

    // The org, and the fewest requests its full listing can take.
    let t = Instant::now();
    let members: Vec<u64> = (0..groups)
        .map(|g| ent.members(inv, g).len() as u64)
        .collect();
    let app_users: Vec<u64> = (0..apps)
        .map(|a| {
            (0..users)
                .filter(|u| ent.holds(inv, Link::AppUser { app: a, user: *u }))
                .count() as u64
        })
        .collect();
    let app_groups: Vec<u64> = (0..apps)
        .map(|a| {
            (0..groups)
                .filter(|g| ent.holds(inv, Link::AppGroup { app: a, group: *g }))
                .count() as u64
        })
        .collect();
    let holds_role = |l: &dyn Fn(usize) -> Link| {
        (0..ROLES.len()).filter(|r| ent.holds(inv, l(*r))).count() as u64
    };
    let user_holders = (0..users)
        .filter(|u| holds_role(&|role| Link::UserRole { user: *u, role }) > 0)
        .count() as u64;
    let admin: u64 = (0..users)
        .map(|u| holds_role(&|role| Link::UserRole { user: u, role }))
        .chain((0..groups).map(|g| holds_role(&|role| Link::GroupRole { group: g, role })))
        .chain((0..clients).map(|c| holds_role(&|role| Link::ClientRole { client: c, role })))
        .sum();
    let active = (0..users)
        .filter(|u| {
            !inv.object(ServiceKind::Users, *u)
                .is_some_and(|o| o.contains("\"DEPROVISIONED\""))
        })
        .count() as u64;
    let factors: u64 = (0..users)
        .map(|u| {
            (0..FACTORS.len())
                .filter(|f| {
                    ent.holds(
                        inv,
                        Link::Factor {
                            user: u,
                            factor: *f,
                        },
                    )
                })
                .count() as u64
        })
        .sum();
    let pages = |n: u64, per: u64| n.div_ceil(per).max(1);
    let minimum = [
        (
            "group_members",
            pages(groups, 200) + members.iter().map(|m| pages(*m, 1000)).sum::<u64>(),
        ),
        (
            "app_assignments",
            pages(apps, 200)
                + app_users.iter().map(|m| pages(*m, 500)).sum::<u64>()
                + app_groups.iter().map(|m| pages(*m, 200)).sum::<u64>(),
        ),
        (
            "admin_roles",
            pages(user_holders, 100)
                + user_holders
                + pages(groups, 200)
                + groups
                + pages(clients, 200)
                + clients,
        ),
        ("factors", pages(active, 200) + active),
    ];
    println!(
        "  org: {users} users, {groups} groups, {} memberships, {apps} apps, {} app assignments, {admin} admin role assignments, {factors} factors (computed in {:.1}s)",
        members.iter().sum::<u64>(),
        app_users.iter().chain(&app_groups).sum::<u64>(),
        t.elapsed().as_secs_f64()
    );

    let services: String = ["group_members", "app_assignments", "admin_roles", "factors"]
        .iter()
        .map(|s| {
            format!(
                "      {s}: {{enabled: true, request_period_in_seconds: {PERIOD}, requests_limits: []}}\n"
            )
        })
        .collect();
    let services = format!(
        "      logs: {{start: \"{}\", request_period_in_seconds: 1, requests_limits: []}}\n{services}",
        sim.start_time()
    );
    let config = common::config(rx.addr.port(), &sim.url(), &services);
    common::write_private(&dir.path().join("config.yaml"), &config).expect("config");
    let child = std::process::Command::new(common::collector())
        .args(["run", "--config"])
        .arg(dir.path().join("config.yaml"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("okta-collector");
    let pid = child.id();

    // 1. The full listing.
    let started = Instant::now();
    let mut seen = 0;
    let mut peak_rss: f64 = 0.0;
    let mut finished = Vec::new();
    while finished.len() < 4 && started.elapsed() < Duration::from_secs(3600) {
        std::thread::sleep(Duration::from_millis(200));
        peak_rss = peak_rss.max(status_mib(pid, "VmRSS:"));
        let new = rx.lines_from(seen);
        seen += new.len();
        for l in new {
            if String::from_utf8_lossy(&l).contains("\"entitlement\":\"baseline\"") {
                finished.push(started.elapsed());
            }
        }
    }
    let listing = started.elapsed();
    let targets = sim.targets();
    let arrivals = sim.arrivals();
    let listing_requests = targets
        .iter()
        .filter(|t| !t.starts_with("/api/v1/logs") && !t.contains("filter="))
        .count() as u64;
    let min_total: u64 = minimum.iter().map(|(_, n)| n).sum();
    println!(
        "  1. full listing of the four services: {:.1}s, {listing_requests} requests; the fewest Okta's page limits allow: {min_total} ({:+.2}%)",
        listing.as_secs_f64(),
        (listing_requests as f64 / min_total as f64 - 1.0) * 100.0
    );
    for (s, n) in minimum {
        println!("     {s}: at least {n} requests");
    }
    println!(
        "     baselines at {}",
        finished
            .iter()
            .map(|d| format!("{:.1}s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let hwm = status_mib(pid, "VmHWM:");
    println!("  2. memory: peak RSS {hwm:.1} MiB (VmHWM; largest sampled VmRSS {peak_rss:.1} MiB)");
    // The System Log during the listing: the longest gap between two of its polls.
    let logs_times: Vec<Instant> = targets
        .iter()
        .zip(&arrivals)
        .filter(|(t, _)| t.starts_with("/api/v1/logs"))
        .map(|(_, a)| *a)
        .collect();
    let gap = logs_times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    println!(
        "  3. System Log during the listing: {} polls, longest gap {:.2}s (its period: 1 s)",
        logs_times.len(),
        gap.as_secs_f64()
    );

    // 4. Changes, one at a time: requests (not the System Log's, not the groups asked for by
    // lastMembershipUpdated) and time to Devo.
    let outsider = |g: u64| {
        (0..users)
            .find(|u| !ent.holds(inv, Link::Member { group: g, user: *u }))
            .unwrap()
    };
    let app_user = (0..users)
        .find(|u| !ent.holds(inv, Link::AppUser { app: 1, user: *u }))
        .unwrap();
    let big = (0..groups).max_by_key(|g| members[*g as usize]).unwrap();
    let changes = [
        (
            "membership added (small group)",
            Change::add(Link::Member {
                group: 3,
                user: outsider(3),
            }),
        ),
        (
            "membership removed",
            Change::remove(Link::Member {
                group: 4,
                user: ent.members(inv, 4)[0],
            }),
        ),
        (
            "app user assigned",
            Change::add(Link::AppUser {
                app: 1,
                user: app_user,
            }),
        ),
        (
            "admin role granted",
            Change::add(Link::UserRole { user: 7, role: 0 }),
        ),
        (
            "factor reset",
            Change::remove(Link::Factor {
                user: 4,
                factor: (0..3)
                    .find(|f| {
                        ent.holds(
                            inv,
                            Link::Factor {
                                user: 4,
                                factor: *f,
                            },
                        )
                    })
                    .unwrap(),
            }),
        ),
    ];
    println!("  4. one change at a time (period {PERIOD} s; the System Log polled every 1 s):");
    for (what, c) in changes {
        let before = sim.targets().len();
        let uuid = sim.change(c).expect("a change");
        let found = wait(&rx, &uuid, Duration::from_secs(4 * PERIOD + 10));
        let spent = count_requests(&sim.targets()[before..]);
        println!(
            "     {what}: {spent} requests, in Devo after {}",
            secs(found)
        );
    }
    // 5. A burst of 1,000 membership events in one group.
    let joiners: Vec<u64> = (0..users)
        .filter(|u| {
            !ent.holds(
                inv,
                Link::Member {
                    group: big,
                    user: *u,
                },
            )
        })
        .take(1_000)
        .collect();
    let before = sim.targets().len();
    let mut last = String::new();
    for u in &joiners {
        last = sim
            .change(Change::add(Link::Member {
                group: big,
                user: *u,
            }))
            .expect("a change");
    }
    let found = wait(&rx, &last, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(PERIOD));
    let spent = count_requests(&sim.targets()[before..]);
    println!(
        "  5. burst: {} users join group {big} ({} members before): {spent} requests, the last in Devo after {}",
        joiners.len(),
        members[big as usize],
        secs(found)
    );
    let hwm = status_mib(pid, "VmHWM:");
    println!("  peak RSS over the whole run: {hwm:.1} MiB");
    common::stop(child);
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("(not within the limit)".to_string(), |d| {
        format!("{:.1}s", d.as_secs_f64())
    })
}

/// Requests for entitlements among `targets` (not the System Log's polls, not the groups
/// asked for by `lastMembershipUpdated`).
fn count_requests(targets: &[String]) -> usize {
    targets
        .iter()
        .filter(|t| !t.starts_with("/api/v1/logs") && !t.contains("filter="))
        .count()
}

/// How long until a record caused by event `uuid` reaches the receiver.
fn wait(rx: &devo::Receiver, uuid: &str, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let needle = format!("\"uuid\":\"{uuid}\"");
    let mut from = (rx.count() as usize).saturating_sub(10_000);
    while t.elapsed() < limit {
        let new = rx.lines_from(from);
        from += new.len();
        if new.iter().any(|l| {
            let l = String::from_utf8_lossy(l);
            l.contains(&needle) && l.contains("\"entitlement\"")
        }) {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}
