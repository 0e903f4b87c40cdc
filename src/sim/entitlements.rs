//! The simulated org's entitlements (`../shared/okta-api.md` §3.3): who is a member of which
//! group, who (user or group) is assigned to which app, which admin roles users, groups and
//! OAuth clients hold, and which factors users have enrolled, served as Okta serves them
//! (each endpoint's `limit` range and default, `Link` paging, `_links.next` in the body of
//! `/api/v1/iam/assignees/users`, 404 `E0000007` for an assignment that does not exist).
//!
//! The relations follow from the inventory's sizes by fixed rules, so a large org costs no
//! memory; what a test changes is kept as exceptions (`added`, `removed`). Objects are
//! embedded as the inventory serves them.

use super::inventory::{Inventory, id, index_of};
use crate::config::ServiceKind;
use std::collections::BTreeSet;
use std::sync::Mutex;

/// The admin roles handed out by the rules, by Okta type.
pub const ROLES: [&str; 4] = [
    "SUPER_ADMIN",
    "ORG_ADMIN",
    "READ_ONLY_ADMIN",
    "HELP_DESK_ADMIN",
];

/// The factor types handed out by the rules.
pub const FACTORS: [&str; 3] = ["push", "token:software:totp", "webauthn"];

/// A relation between two objects that tests can change (the fields are inventory indexes,
/// and `role`/`factor` indexes into [`ROLES`]/[`FACTORS`]).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Link {
    /// User `user` is a member of group `group`.
    Member { group: u64, user: u64 },
    /// User `user` is assigned to app `app`.
    AppUser { app: u64, user: u64 },
    /// Group `group` is assigned to app `app`.
    AppGroup { app: u64, group: u64 },
    /// User `user` holds role `ROLES[role]`.
    UserRole { user: u64, role: usize },
    /// Group `group` holds role `ROLES[role]`.
    GroupRole { group: u64, role: usize },
    /// OAuth client `client` holds role `ROLES[role]`.
    ClientRole { client: u64, role: usize },
    /// User `user` has factor `FACTORS[factor]` enrolled.
    Factor { user: u64, factor: usize },
}

/// The entitlements of an org whose inventory is given at each call.
#[derive(Debug, Default)]
pub struct Entitlements {
    added: Mutex<BTreeSet<Link>>,
    removed: Mutex<BTreeSet<Link>>,
}

/// Groups each user is a member of by the rules (a quarter of the groups in a small org).
const GROUPS_PER_USER: u64 = 20;

impl Entitlements {
    /// Whether `link` holds: by the rules, unless a test removed it, or added by a test.
    pub fn holds(&self, inv: &Inventory, link: Link) -> bool {
        if crate::lock(&self.added).contains(&link) {
            return true;
        }
        !crate::lock(&self.removed).contains(&link) && by_rule(inv, link)
    }

    /// Makes `link` hold (true if it did not).
    pub fn add(&self, inv: &Inventory, link: Link) -> bool {
        let was = self.holds(inv, link);
        crate::lock(&self.removed).remove(&link);
        if !by_rule(inv, link) {
            crate::lock(&self.added).insert(link);
        }
        !was
    }

    /// Makes `link` no longer hold (true if it did).
    pub fn remove(&self, inv: &Inventory, link: Link) -> bool {
        let was = self.holds(inv, link);
        crate::lock(&self.added).remove(&link);
        if by_rule(inv, link) {
            crate::lock(&self.removed).insert(link);
        }
        was
    }

    /// The members of group `g` (existing users), in user order.
    pub fn members(&self, inv: &Inventory, g: u64) -> Vec<u64> {
        let users = count(inv, ServiceKind::Users);
        (0..users)
            .filter(|&u| {
                inv.contains(ServiceKind::Users, u)
                    && self.holds(inv, Link::Member { group: g, user: u })
            })
            .collect()
    }
}

/// The rules: deterministic, cheap, and spread over the org.
fn by_rule(inv: &Inventory, link: Link) -> bool {
    let (users, groups, apps, clients) = (
        count(inv, ServiceKind::Users),
        count(inv, ServiceKind::Groups).max(1),
        count(inv, ServiceKind::Apps).max(1),
        count(inv, ServiceKind::Clients),
    );
    match link {
        Link::Member { group, user } => {
            user < users
                && group < groups
                && (0..GROUPS_PER_USER.min((groups / 4).max(1)))
                    .any(|j| (user * 13 + j * 37) % groups == group)
        }
        Link::AppUser { app, user } => user < users && app < apps && (user * 7 + app) % 40 == 0,
        Link::AppGroup { app, group } => group < groups && app < apps && (group + app) % 10 == 0,
        Link::UserRole { user, role } => {
            user < users && user % 200 == 0 && role == (user / 200) as usize % ROLES.len()
        }
        Link::GroupRole { group, role } => group < groups && group % 50 == 7 && role == 2,
        Link::ClientRole { client, role } => client < clients && client % 5 == 1 && role == 3,
        // Two of the three factor types per user (20,000 factors in a 10,000-user org).
        Link::Factor { user, factor } => {
            user < users && factor < FACTORS.len() && !(user + factor as u64).is_multiple_of(3)
        }
    }
}

fn count(inv: &Inventory, kind: ServiceKind) -> u64 {
    inv.next_index(kind)
}

/// What a request for an entitlement endpoint gets: status, the body, and the `after` value
/// of the next page when the endpoint pages by `Link` header.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
    /// The next page's `after`, for a `Link` header.
    pub after: Option<String>,
    /// The `limit` used (for the next link).
    pub limit: u64,
}

/// `limit` checked as Okta checks it for an endpoint: `default` when absent, values over `max`
/// capped, and `E0000001` for one that is not a number or below `min`.
fn limit(q: &[(String, String)], min: u64, default: u64, max: u64) -> Result<u64, Answer> {
    match q
        .iter()
        .find(|(k, _)| k == "limit")
        .map(|(_, v)| v.parse::<u64>())
    {
        None => Ok(default),
        Some(Ok(l)) if l >= min => Ok(l.min(max)),
        _ => Err(error(400, "E0000001", "Api validation failed: limit")),
    }
}

fn error(status: u16, code: &str, summary: &str) -> Answer {
    Answer {
        status,
        body: String::from_utf8_lossy(&super::strict::error_body(code, summary)).into_owned(),
        after: None,
        limit: 0,
    }
}

fn not_found(path: &str) -> Answer {
    error(
        404,
        "E0000007",
        &format!("Not found: Resource not found: {path} (GET)"),
    )
}

/// One page of `items` (index order) after the `after` index, as Okta pages: `limit` items and
/// the next `after` if more follow.
fn page(items: Vec<(u64, String)>, q: &[(String, String)], limit: u64) -> Answer {
    let after = q
        .iter()
        .find(|(k, _)| k == "after")
        .and_then(|(_, v)| v.parse::<u64>().ok());
    let rest: Vec<(u64, String)> = items
        .into_iter()
        .filter(|(i, _)| after.is_none_or(|a| *i > a))
        .collect();
    let more = rest.len() as u64 > limit;
    let taken: Vec<(u64, String)> = rest.into_iter().take(limit as usize).collect();
    Answer {
        status: 200,
        after: more
            .then(|| taken.last().map(|(i, _)| i.to_string()))
            .flatten(),
        body: format!(
            "[{}]",
            taken
                .iter()
                .map(|(_, j)| j.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
        limit,
    }
}

/// A role object as Okta lists it (`id`, `type`, `label`, `status`, `assignmentType`).
fn role_json(role: usize, assignee: &str, holder: &str) -> String {
    let ty = ROLES[role];
    serde_json::json!({
        "id": format!("ra{holder}{role}"),
        "label": ty.replace('_', " ").to_lowercase(),
        "type": ty,
        "status": "ACTIVE",
        "created": "2026-01-05T10:00:00.000Z",
        "lastUpdated": "2026-01-05T10:00:00.000Z",
        "assignmentType": assignee,
    })
    .to_string()
}

/// A factor object as Okta lists it.
fn factor_json(user: u64, factor: usize) -> String {
    let ty = FACTORS[factor];
    serde_json::json!({
        "id": format!("fac{user:x}{factor}"),
        "factorType": ty,
        "provider": if ty == "push" { "OKTA" } else if ty == "webauthn" { "FIDO" } else { "GOOGLE" },
        "status": "ACTIVE",
        "created": "2026-02-01T08:00:00.000Z",
        "lastUpdated": "2026-02-01T08:00:00.000Z",
    })
    .to_string()
}

impl Entitlements {
    /// The answer for `path` with query `q` and the org's `base` URL, if `path` is one of the
    /// entitlement endpoints; `None` otherwise.
    pub fn answer(&self, inv: &Inventory, path: &str, q: &[(String, String)]) -> Option<Answer> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let ix = |kind: ServiceKind, s: &str| index_of(kind, s).filter(|i| inv.contains(kind, *i));
        let user_ix = |s: &str| ix(ServiceKind::Users, s);
        let group_ix = |s: &str| ix(ServiceKind::Groups, s);
        let app_ix = |s: &str| ix(ServiceKind::Apps, s);
        let client_ix = |s: &str| ix(ServiceKind::Clients, s);
        let existing =
            |kind: ServiceKind| (0..count(inv, kind)).filter(move |i| inv.contains(kind, *i));
        // A role listing takes one `expand`: targets/groups or targets/catalog/apps.
        if parts.last() == Some(&"roles")
            && let Some((k, v)) = q.iter().find(|(k, v)| {
                k != "expand" || !matches!(v.as_str(), "targets/groups" | "targets/catalog/apps")
            })
        {
            return Some(error(
                400,
                "E0000001",
                &format!("Api validation failed: {k}={v}"),
            ));
        }
        let answer = match parts.as_slice() {
            // listGroupUsers: `after` + Link; default 1000, Okta advises 200.
            ["api", "v1", "groups", g, "users"] => {
                let Some(g) = group_ix(g) else {
                    return Some(not_found(path));
                };
                let limit = match limit(q, 1, 1000, 1000) {
                    Ok(l) => l,
                    Err(e) => return Some(e),
                };
                let items = self
                    .members(inv, g)
                    .into_iter()
                    .filter_map(|u| Some((u, inv.object(ServiceKind::Users, u)?)))
                    .collect();
                page(items, q, limit)
            }
            // getUser: one user, 404 E0000007 when there is none.
            ["api", "v1", "users", u] => {
                let Some(body) = user_ix(u).and_then(|u| inv.object(ServiceKind::Users, u)) else {
                    return Some(not_found(path));
                };
                Answer {
                    status: 200,
                    body,
                    after: None,
                    limit: 0,
                }
            }
            // listUserGroups: not paged.
            ["api", "v1", "users", u, "groups"] => {
                let Some(u) = user_ix(u) else {
                    return Some(not_found(path));
                };
                let items = existing(ServiceKind::Groups)
                    .filter(|g| self.holds(inv, Link::Member { group: *g, user: u }))
                    .filter_map(|g| Some((g, inv.object(ServiceKind::Groups, g)?)))
                    .collect();
                page(items, &[], u64::MAX)
            }
            // listApplicationUsers: limit 1–500, default 50.
            ["api", "v1", "apps", a, "users"] => {
                let Some(a) = app_ix(a) else {
                    return Some(not_found(path));
                };
                let limit = match limit(q, 1, 50, 500) {
                    Ok(l) => l,
                    Err(e) => return Some(e),
                };
                let items = existing(ServiceKind::Users)
                    .filter(|u| self.holds(inv, Link::AppUser { app: a, user: *u }))
                    .map(|u| (u, app_user_json(u, a)))
                    .collect();
                page(items, q, limit)
            }
            ["api", "v1", "apps", a, "users", u] => {
                let (Some(a), Some(u)) = (app_ix(a), user_ix(u)) else {
                    return Some(not_found(path));
                };
                if !self.holds(inv, Link::AppUser { app: a, user: u }) {
                    return Some(not_found(path));
                }
                Answer {
                    status: 200,
                    body: app_user_json(u, a),
                    after: None,
                    limit: 0,
                }
            }
            // listApplicationGroupAssignments: limit 20–200, default 20.
            ["api", "v1", "apps", a, "groups"] => {
                let Some(a) = app_ix(a) else {
                    return Some(not_found(path));
                };
                let limit = match limit(q, 20, 20, 200) {
                    Ok(l) => l,
                    Err(e) => return Some(e),
                };
                let items = existing(ServiceKind::Groups)
                    .filter(|g| self.holds(inv, Link::AppGroup { app: a, group: *g }))
                    .map(|g| (g, app_group_json(g)))
                    .collect();
                page(items, q, limit)
            }
            ["api", "v1", "apps", a, "groups", g] => {
                let (Some(a), Some(g)) = (app_ix(a), group_ix(g)) else {
                    return Some(not_found(path));
                };
                if !self.holds(inv, Link::AppGroup { app: a, group: g }) {
                    return Some(not_found(path));
                }
                Answer {
                    status: 200,
                    body: app_group_json(g),
                    after: None,
                    limit: 0,
                }
            }
            // The users holding a role directly; the next page is in the body.
            ["api", "v1", "iam", "assignees", "users"] => {
                let limit = match limit(q, 1, 100, 100) {
                    Ok(l) => l,
                    Err(e) => return Some(e),
                };
                let holders: Vec<(u64, String)> = existing(ServiceKind::Users)
                    .filter(|u| (0..ROLES.len()).any(|r| self.holds(inv, Link::UserRole { user: *u, role: r })))
                    .map(|u| {
                        let uid = id(ServiceKind::Users, u);
                        (
                            u,
                            serde_json::json!({"id": uid, "orn": format!("orn:okta:directory:sim:users:{uid}")})
                                .to_string(),
                        )
                    })
                    .collect();
                let p = page(holders, q, limit);
                let value = p.body;
                let next = p.after.map_or(serde_json::Value::Null, |a| {
                    serde_json::json!({"next": {"href": format!("/api/v1/iam/assignees/users?after={a}&limit={limit}")}})
                });
                let mut body = format!("{{\"value\":{value}");
                if !next.is_null() {
                    body.push_str(&format!(",\"_links\":{next}"));
                }
                body.push('}');
                Answer {
                    status: 200,
                    body,
                    after: None,
                    limit,
                }
            }
            ["api", "v1", "users", u, "roles"] => {
                let Some(u) = user_ix(u) else {
                    return Some(not_found(path));
                };
                self.roles(inv, ServiceKind::Users, u, |role| Link::UserRole {
                    user: u,
                    role,
                })
            }
            ["api", "v1", "groups", g, "roles"] => {
                let Some(g) = group_ix(g) else {
                    return Some(not_found(path));
                };
                self.roles(inv, ServiceKind::Groups, g, |role| Link::GroupRole {
                    group: g,
                    role,
                })
            }
            ["oauth2", "v1", "clients", c, "roles"] => {
                let Some(c) = client_ix(c) else {
                    return Some(not_found(path));
                };
                self.roles(inv, ServiceKind::Clients, c, |role| Link::ClientRole {
                    client: c,
                    role,
                })
            }
            ["api", "v1", "users", u, "factors"] => {
                let Some(u) = user_ix(u) else {
                    return Some(not_found(path));
                };
                let items = (0..FACTORS.len())
                    .filter(|f| {
                        self.holds(
                            inv,
                            Link::Factor {
                                user: u,
                                factor: *f,
                            },
                        )
                    })
                    .map(|f| (f as u64, factor_json(u, f)))
                    .collect();
                page(items, &[], u64::MAX)
            }
            _ => return None,
        };
        Some(answer)
    }
}

impl Entitlements {
    /// The roles assignee `i` of `kind` holds (`link` makes the relation for a role), as
    /// Okta lists them (not paged).
    fn roles(
        &self,
        inv: &Inventory,
        kind: ServiceKind,
        i: u64,
        link: impl Fn(usize) -> Link,
    ) -> Answer {
        let assignee = match kind {
            ServiceKind::Groups => "GROUP",
            ServiceKind::Clients => "CLIENT",
            _ => "USER",
        };
        let holder = id(kind, i);
        let items = (0..ROLES.len())
            .filter(|r| self.holds(inv, link(*r)))
            .map(|r| (r as u64, role_json(r, assignee, &holder)))
            .collect();
        page(items, &[], u64::MAX)
    }
}

/// An app user (the assignment, with the user's id) as Okta lists it.
fn app_user_json(user: u64, app: u64) -> String {
    serde_json::json!({
        "id": id(ServiceKind::Users, user),
        "scope": "USER",
        "status": "ACTIVE",
        "syncState": "DISABLED",
        "created": "2026-03-01T09:00:00.000Z",
        "lastUpdated": "2026-03-01T09:00:00.000Z",
        "credentials": {"userName": format!("user{user}@example.com")},
        "_links": {"app": {"href": format!("/api/v1/apps/{}", id(ServiceKind::Apps, app))}},
    })
    .to_string()
}

/// An app group assignment as Okta lists it.
fn app_group_json(group: u64) -> String {
    serde_json::json!({
        "id": id(ServiceKind::Groups, group),
        "priority": group % 100,
        "lastUpdated": "2026-03-02T09:00:00.000Z",
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::inventory::Counts;

    fn org() -> Inventory {
        Inventory::new(Counts {
            users: 400,
            groups: 60,
            apps: 20,
            idps: 1,
            zones: 1,
            clients: 12,
        })
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn group_members_page_by_after_and_every_member_is_listed_once() {
        let inv = org();
        let e = Entitlements::default();
        let g = id(ServiceKind::Groups, 5);
        let path = format!("/api/v1/groups/{g}/users");
        let want = e.members(&inv, 5);
        assert!(want.len() > 50, "{} members", want.len());
        let mut got = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("limit", "40")];
            if let Some(a) = &after {
                query.push(("after", a));
            }
            let a = e.answer(&inv, &path, &q(&query)).unwrap();
            assert_eq!(a.status, 200);
            let items: Vec<serde_json::Value> = serde_json::from_str(&a.body).unwrap();
            assert!(items.len() <= 40);
            got.extend(items.iter().map(|v| v["id"].as_str().unwrap().to_string()));
            match a.after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let want: Vec<String> = want.iter().map(|u| id(ServiceKind::Users, *u)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn limits_are_okta_s_and_a_missing_assignment_is_e0000007() {
        let inv = org();
        let e = Entitlements::default();
        let app = id(ServiceKind::Apps, 0);
        let groups = format!("/api/v1/apps/{app}/groups");
        // limit 20-200 for app groups: 5 is refused.
        let a = e.answer(&inv, &groups, &q(&[("limit", "5")])).unwrap();
        assert_eq!(a.status, 400);
        assert!(a.body.contains("E0000001"));
        // An app user that is not assigned: 404 E0000007; once assigned, the object.
        let (user, app_ix) = (1u64, 0u64);
        assert!(!e.holds(&inv, Link::AppUser { app: app_ix, user }));
        let one = format!("/api/v1/apps/{app}/users/{}", id(ServiceKind::Users, user));
        let a = e.answer(&inv, &one, &[]).unwrap();
        assert_eq!((a.status, a.body.contains("E0000007")), (404, true));
        assert!(e.add(&inv, Link::AppUser { app: app_ix, user }));
        let a = e.answer(&inv, &one, &[]).unwrap();
        assert_eq!(a.status, 200);
        assert!(a.body.contains(&id(ServiceKind::Users, user)));
        // And an unknown path is not this module's.
        assert!(e.answer(&inv, "/api/v1/users", &[]).is_none());
    }

    #[test]
    fn role_holders_page_in_the_body_and_changes_show_at_once() {
        let inv = org();
        let e = Entitlements::default();
        let a = e
            .answer(&inv, "/api/v1/iam/assignees/users", &q(&[("limit", "1")]))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v["value"].as_array().unwrap().len(), 1);
        let next = v["_links"]["next"]["href"].as_str().unwrap();
        assert!(
            next.starts_with("/api/v1/iam/assignees/users?after="),
            "{next}"
        );
        assert!(a.after.is_none(), "no Link header for this endpoint");
        // User 0 holds SUPER_ADMIN by the rules; revoking it empties its roles.
        let roles = format!("/api/v1/users/{}/roles", id(ServiceKind::Users, 0));
        let before: Vec<serde_json::Value> =
            serde_json::from_str(&e.answer(&inv, &roles, &[]).unwrap().body).unwrap();
        assert_eq!(before.len(), 1);
        assert_eq!(before[0]["type"], "SUPER_ADMIN");
        assert_eq!(before[0]["assignmentType"], "USER");
        assert!(e.remove(&inv, Link::UserRole { user: 0, role: 0 }));
        let after: Vec<serde_json::Value> =
            serde_json::from_str(&e.answer(&inv, &roles, &[]).unwrap().body).unwrap();
        assert!(after.is_empty());
        // A factor reset shows on the user's factors.
        let factors = format!("/api/v1/users/{}/factors", id(ServiceKind::Users, 2));
        let f: Vec<serde_json::Value> =
            serde_json::from_str(&e.answer(&inv, &factors, &[]).unwrap().body).unwrap();
        assert_eq!(f.len(), 2);
        assert!(e.remove(&inv, Link::Factor { user: 2, factor: 0 }));
        assert!(e.remove(&inv, Link::Factor { user: 2, factor: 2 }));
        assert!(!e.remove(&inv, Link::Factor { user: 2, factor: 1 }));
        assert_eq!(e.answer(&inv, &factors, &[]).unwrap().body, "[]");
    }
}

/// A change a test makes to the org's entitlements, written to its System Log as Okta writes
/// it (or, with [`Change::silent`], not at all: only a full listing finds those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The relation that begins (`added`) or ends.
    pub link: Link,
    /// Whether it begins.
    pub added: bool,
    /// Whether the change goes unlogged (a group rule, a bulk import, …).
    pub silent: bool,
}

impl Change {
    /// `link` begins, logged.
    pub fn add(link: Link) -> Change {
        Change {
            link,
            added: true,
            silent: false,
        }
    }

    /// `link` ends, logged.
    pub fn remove(link: Link) -> Change {
        Change {
            link,
            added: false,
            silent: false,
        }
    }

    /// The same change, unlogged.
    pub fn silent(self) -> Change {
        Change {
            silent: true,
            ..self
        }
    }

    /// Okta's event type, display message and legacy type for it.
    pub fn event_type(&self) -> (&'static str, &'static str, &'static str) {
        match (self.link, self.added) {
            (Link::Member { .. }, true) => (
                "group.user_membership.add",
                "Add user to group membership",
                "core.user_group_member.user_add",
            ),
            (Link::Member { .. }, false) => (
                "group.user_membership.remove",
                "Remove user from group membership",
                "core.user_group_member.user_remove",
            ),
            (Link::AppUser { .. }, true) => (
                "application.user_membership.add",
                "Add user to application membership",
                "app.generic.provision.assign_user_to_app",
            ),
            (Link::AppUser { .. }, false) => (
                "application.user_membership.remove",
                "Remove user from application membership",
                "app.generic.unassign_user_from_app",
            ),
            (Link::AppGroup { .. }, true) => (
                "group.application_assignment.add",
                "Add assigned application to group",
                "app.generic.group_assignment.add",
            ),
            (Link::AppGroup { .. }, false) => (
                "group.application_assignment.remove",
                "Remove assigned application from group",
                "app.generic.group_assignment.remove",
            ),
            (Link::UserRole { .. }, true) => (
                "user.account.privilege.grant",
                "Grant user privilege",
                "core.user.admin_privilege.granted",
            ),
            (Link::UserRole { .. }, false) => (
                "user.account.privilege.revoke",
                "Revoke user privilege",
                "core.user.admin_privilege.revoked",
            ),
            (Link::GroupRole { .. }, true) => (
                "group.privilege.grant",
                "Grant group privilege",
                "core.group.admin_privilege.granted",
            ),
            (Link::GroupRole { .. }, false) => (
                "group.privilege.revoke",
                "Revoke group privilege",
                "core.group.admin_privilege.revoked",
            ),
            (Link::ClientRole { .. }, true) => (
                "app.oauth2.client.privilege.grant",
                "Grant client privilege",
                "",
            ),
            (Link::ClientRole { .. }, false) => (
                "app.oauth2.client.privilege.revoke",
                "Revoke client privilege",
                "",
            ),
            (Link::Factor { .. }, true) => (
                "user.mfa.factor.activate",
                "Activate factor or authenticator",
                "core.user.factor.activate",
            ),
            (Link::Factor { .. }, false) => (
                "user.mfa.factor.deactivate",
                "Deactivate factor or authenticator",
                "core.user.factor.deactivate",
            ),
        }
    }

    /// The event's `target` entries, as Okta names what a change touched (User first, then
    /// the group, app or client); a factor event names the user as the actor too.
    fn targets(&self) -> Vec<serde_json::Value> {
        let user = |u: u64| {
            serde_json::json!({"id": id(ServiceKind::Users, u), "type": "User",
                "alternateId": format!("user{u}@example.com"), "displayName": format!("User {u}"), "detailEntry": null})
        };
        let group = |g: u64| {
            serde_json::json!({"id": id(ServiceKind::Groups, g), "type": "UserGroup",
                "alternateId": "unknown", "displayName": format!("Group {g}"), "detailEntry": null})
        };
        let app = |a: u64| {
            serde_json::json!({"id": id(ServiceKind::Apps, a), "type": "AppInstance",
                "alternateId": format!("App {a}"), "displayName": format!("App {a}"), "detailEntry": null})
        };
        match self.link {
            Link::Member { group: g, user: u } => vec![user(u), group(g)],
            Link::AppUser { app: a, user: u } => vec![
                app(a),
                serde_json::json!({"id": format!("0ua{a:x}{u:x}"), "type": "AppUser",
                    "alternateId": format!("user{u}@example.com"), "displayName": format!("User {u}"), "detailEntry": null}),
                user(u),
            ],
            Link::AppGroup { app: a, group: g } => vec![app(a), group(g)],
            Link::UserRole { user: u, .. } | Link::Factor { user: u, .. } => vec![user(u)],
            Link::GroupRole { group: g, .. } => vec![group(g)],
            Link::ClientRole { client: c, .. } => vec![serde_json::json!({
                "id": id(ServiceKind::Clients, c), "type": "PublicClientApp",
                "alternateId": format!("client{c}"), "displayName": format!("Client {c}"), "detailEntry": null})],
        }
    }

    /// The System Log event for the change, shaped as a recorded one (`uuid`, `published`
    /// given).
    pub fn event(&self, uuid: &str, published: &str) -> String {
        let (event_type, display, legacy) = self.event_type();
        let actor = match self.link {
            // Self-service enrolment: the user is the actor.
            Link::Factor { user, .. } => serde_json::json!({"id": id(ServiceKind::Users, user),
                "type": "User", "alternateId": format!("user{user}@example.com"),
                "displayName": format!("User {user}"), "detailEntry": null}),
            _ => serde_json::json!({"id": "00uADMIN0000000000001", "type": "User",
                "alternateId": "admin@example.com", "displayName": "Org Admin", "detailEntry": null}),
        };
        let privilege = match self.link {
            Link::UserRole { role, .. }
            | Link::GroupRole { role, .. }
            | Link::ClientRole { role, .. } => {
                serde_json::json!({"privilegeGranted": ROLES[role]})
            }
            _ => serde_json::json!({}),
        };
        serde_json::json!({
            "actor": actor,
            "authenticationContext": {"authenticationProvider": null, "authenticationStep": 0,
                "credentialProvider": null, "credentialType": null, "externalSessionId": "sim",
                "interface": null, "issuer": null},
            "client": {"device": "Computer", "id": null, "ipAddress": "10.0.0.9", "zone": "null"},
            "debugContext": {"debugData": privilege},
            "device": null,
            "displayMessage": display,
            "eventType": event_type,
            "legacyEventType": if legacy.is_empty() { serde_json::Value::Null } else { legacy.into() },
            "outcome": {"reason": null, "result": "SUCCESS"},
            "published": published,
            "severity": "INFO",
            "target": self.targets(),
            "transaction": {"detail": {}, "id": format!("tx{}", uuid.get(..8).unwrap_or(uuid)), "type": "WEB"},
            "uuid": uuid,
            "version": "0",
        })
        .to_string()
    }
}
