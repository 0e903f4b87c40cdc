//! The simulated org's six inventory endpoints: users, groups, apps, idps, zones and OAuth
//! clients, with Okta's object shapes (prefixed ids, `profile`, `status`, timestamps,
//! `_links`), `after`/`limit` paging, the `lastUpdated` search and filter of users and groups,
//! and changes a test makes while the collector runs (update, deprovision, add, delete).

use crate::config::ServiceKind;
use crate::time::format_millis;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One object's state; its JSON is derived from it.
#[derive(Debug, Clone)]
struct Obj {
    version: u32,
    status: &'static str,
    created_ms: u64,
    updated_ms: u64,
    /// Groups only.
    membership_ms: u64,
}

/// How many objects of each kind the org starts with.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    /// Users.
    pub users: u64,
    /// Groups.
    pub groups: u64,
    /// Applications.
    pub apps: u64,
    /// Identity providers.
    pub idps: u64,
    /// Network zones.
    pub zones: u64,
    /// OAuth clients.
    pub clients: u64,
}

impl Default for Counts {
    fn default() -> Counts {
        Counts {
            users: 250,
            groups: 40,
            apps: 30,
            idps: 3,
            zones: 4,
            clients: 12,
        }
    }
}

impl Counts {
    fn of(&self, kind: ServiceKind) -> u64 {
        match kind {
            // The System Log and the entitlement services have no objects of their own.
            ServiceKind::Logs
            | ServiceKind::GroupMembers
            | ServiceKind::AppAssignments
            | ServiceKind::AdminRoles
            | ServiceKind::Factors => 0,
            ServiceKind::Users => self.users,
            ServiceKind::Groups => self.groups,
            ServiceKind::Apps => self.apps,
            ServiceKind::Idps => self.idps,
            ServiceKind::Zones => self.zones,
            ServiceKind::Clients => self.clients,
        }
    }
}

/// The org's inventory: per kind, objects by index (a deleted object is gone from the map).
#[derive(Debug)]
pub struct Inventory {
    objects: Mutex<BTreeMap<(u8, u64), Obj>>,
    next: Mutex<BTreeMap<u8, u64>>,
}

/// A listing request that the simulator refuses, with Okta's error code and summary.
#[derive(Debug)]
pub struct BadRequest(pub &'static str, pub String);

/// One page of a listing: the JSON array and, if more follow, the `after` value.
#[derive(Debug)]
pub struct Listed {
    /// The body.
    pub body: Vec<u8>,
    /// The id after which the next page starts.
    pub after: Option<String>,
    /// The limit used.
    pub limit: u64,
}

fn kind_no(kind: ServiceKind) -> u8 {
    ServiceKind::SEED
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0) as u8
}

fn now_ms() -> u64 {
    crate::time::unix_millis(SystemTime::now()) as u64
}

impl Inventory {
    /// An org with `counts` objects, created and last updated during the past 30 days.
    pub fn new(counts: Counts) -> Inventory {
        let now = now_ms() / 1000 * 1000;
        let month = 30 * 86_400_000;
        let mut objects = BTreeMap::new();
        let mut next = BTreeMap::new();
        for kind in ServiceKind::SEED {
            let n = counts.of(kind);
            for i in 0..n {
                // Second precision, as Okta's user timestamps are in practice.
                let created_ms = now - month + (i * 1000) % (month / 2);
                let updated_ms = created_ms + ((i * 7_919) % 86_400) * 1000;
                objects.insert(
                    (kind_no(kind), i),
                    Obj {
                        version: 0,
                        status: if kind == ServiceKind::Users && i % 25 == 24 {
                            "DEPROVISIONED"
                        } else {
                            "ACTIVE"
                        },
                        created_ms,
                        updated_ms,
                        membership_ms: updated_ms + 3_000,
                    },
                );
            }
            next.insert(kind_no(kind), n);
        }
        Inventory {
            objects: Mutex::new(objects),
            next: Mutex::new(next),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(u8, u64), Obj>> {
        crate::lock(&self.objects)
    }

    /// Changes object `i` (a new version, `lastUpdated` now, at least a second after the last).
    /// Returns false if there is no such object.
    pub fn update(&self, kind: ServiceKind, i: u64) -> bool {
        self.change(kind, i, |o| o.version += 1)
    }

    /// Sets a user's (or any object's) status, updating it.
    pub fn set_status(&self, kind: ServiceKind, i: u64, status: &'static str) -> bool {
        self.change(kind, i, |o| o.status = status)
    }

    fn change(&self, kind: ServiceKind, i: u64, f: impl FnOnce(&mut Obj)) -> bool {
        let mut m = self.lock();
        let Some(o) = m.get_mut(&(kind_no(kind), i)) else {
            return false;
        };
        f(o);
        let t = (now_ms() / 1000 * 1000).max(o.updated_ms + 1000);
        o.updated_ms = t;
        o.membership_ms = o.membership_ms.max(t);
        true
    }

    /// Moves group `i`'s `lastMembershipUpdated` to `at_ms` (Unix ms; `None`: now), never back.
    pub fn membership_changed(&self, kind: ServiceKind, i: u64, at_ms: Option<u64>) {
        if let Some(o) = self.lock().get_mut(&(kind_no(kind), i)) {
            o.membership_ms = o.membership_ms.max(at_ms.unwrap_or_else(now_ms));
        }
    }

    /// Adds an object; returns its index.
    pub fn add(&self, kind: ServiceKind) -> u64 {
        let mut next = crate::lock(&self.next);
        let i = *next.get(&kind_no(kind)).unwrap_or(&0);
        next.insert(kind_no(kind), i + 1);
        let t = now_ms() / 1000 * 1000;
        self.lock().insert(
            (kind_no(kind), i),
            Obj {
                version: 0,
                status: "ACTIVE",
                created_ms: t,
                updated_ms: t,
                membership_ms: t,
            },
        );
        i
    }

    /// Deletes an object; returns false if there was none.
    pub fn delete(&self, kind: ServiceKind, i: u64) -> bool {
        self.lock().remove(&(kind_no(kind), i)).is_some()
    }

    /// The current JSON of object `i` of `kind`, if it exists.
    pub fn object(&self, kind: ServiceKind, i: u64) -> Option<String> {
        self.lock()
            .get(&(kind_no(kind), i))
            .map(|o| json(kind, i, o))
    }

    /// Whether object `i` of `kind` exists.
    pub fn contains(&self, kind: ServiceKind, i: u64) -> bool {
        self.lock().contains_key(&(kind_no(kind), i))
    }

    /// One past the highest index `kind` ever had (deleted objects included).
    pub fn next_index(&self, kind: ServiceKind) -> u64 {
        crate::lock(&self.next)
            .get(&kind_no(kind))
            .copied()
            .unwrap_or(0)
    }

    /// The current JSON of every object of `kind`, by index.
    pub fn all(&self, kind: ServiceKind) -> BTreeMap<u64, String> {
        let k = kind_no(kind);
        self.lock()
            .range((k, 0)..=(k, u64::MAX))
            .map(|((_, i), o)| (*i, json(kind, *i, o)))
            .collect()
    }

    /// A page of `kind`'s listing for the query `q` (name, decoded value).
    ///
    /// # Errors
    /// [`BadRequest`] for a query Okta would refuse.
    pub fn list(&self, kind: ServiceKind, q: &[(String, String)]) -> Result<Listed, BadRequest> {
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let (default, max) = match kind {
            ServiceKind::Users => (200, 200),
            ServiceKind::Groups => (10_000, 10_000),
            ServiceKind::Idps | ServiceKind::Clients => (20, 200),
            _ => (u64::MAX, u64::MAX),
        };
        let limit = match get("limit").map(str::parse::<i64>) {
            None => default,
            Some(Ok(l)) if l > 0 => (l as u64).min(max),
            Some(Ok(_)) => default,
            Some(Err(_)) => {
                return Err(BadRequest(
                    "E0000001",
                    "Api validation failed: limit".into(),
                ));
            }
        };
        let search = get("search").or(get("filter"));
        let since = match search {
            None => None,
            Some(expr) => Some(parse_expr(expr).ok_or_else(|| {
                BadRequest("E0000031", format!("Invalid search criteria: {expr}"))
            })?),
        };
        if since.is_some() && !matches!(kind, ServiceKind::Users | ServiceKind::Groups) {
            return Err(BadRequest(
                "E0000031",
                "Invalid filter: this resource has no lastUpdated filter".into(),
            ));
        }
        let after = match get("after") {
            None => None,
            Some(a) => Some(
                index_of(kind, a)
                    .ok_or_else(|| BadRequest("E0000001", "Api validation failed: after".into()))?,
            ),
        };
        let k = kind_no(kind);
        let m = self.lock();
        let from = after.map_or(0, |a| a + 1);
        let mut body = Vec::from(&b"["[..]);
        let mut count = 0;
        let mut last = None;
        let mut more = false;
        for ((_, i), o) in m.range((k, from)..=(k, u64::MAX)) {
            // The plain user list leaves DEPROVISIONED users out; search and filter do not.
            if kind == ServiceKind::Users && search.is_none() && o.status == "DEPROVISIONED" {
                continue;
            }
            if let Some(Filter { since, strict }) = &since {
                let t = if kind == ServiceKind::Groups {
                    o.updated_ms.max(o.membership_ms)
                } else {
                    o.updated_ms
                };
                if t < *since || (*strict && t == *since) {
                    continue;
                }
            }
            if count == limit {
                more = true;
                break;
            }
            if count > 0 {
                body.push(b',');
            }
            body.extend_from_slice(json(kind, *i, o).as_bytes());
            count += 1;
            last = Some(*i);
        }
        body.push(b']');
        Ok(Listed {
            body,
            after: if more {
                last.map(|i| id(kind, i))
            } else {
                None
            },
            limit,
        })
    }
}

/// A parsed `lastUpdated ge "…"` (optionally `or lastMembershipUpdated ge "…"`), or `status pr`.
struct Filter {
    since: u64,
    strict: bool,
}

fn parse_expr(expr: &str) -> Option<Filter> {
    if expr.trim() == "status pr" {
        return Some(Filter {
            since: 0,
            strict: false,
        });
    }
    let mut out: Option<Filter> = None;
    for clause in expr.split(" or ") {
        let mut t = clause.split_whitespace();
        let (field, op, value) = (t.next()?, t.next()?, t.next()?);
        if t.next().is_some() || !matches!(field, "lastUpdated" | "lastMembershipUpdated") {
            return None;
        }
        let strict = match op.to_ascii_lowercase().as_str() {
            "ge" => false,
            "gt" => true,
            _ => return None,
        };
        let v = value.strip_prefix('"')?.strip_suffix('"')?;
        let since = crate::time::unix_millis(crate::time::parse_rfc3339(v)?) as u64;
        if out
            .as_ref()
            .is_some_and(|f| f.since != since || f.strict != strict)
        {
            return None;
        }
        out = Some(Filter { since, strict });
    }
    out
}

/// Okta's id prefix of each kind, and a two-character tag that keeps the kinds apart.
const PREFIX: [&str; 7] = ["", "00u1a", "00g2b", "0oa3c", "0oa4d", "nzo5e", "0oa6f"];

/// The id of object `i` of `kind`: 20 characters, Okta's prefix first.
pub fn id(kind: ServiceKind, i: u64) -> String {
    format!("{}{i:015x}", PREFIX[kind_no(kind) as usize])
}

/// The index of an id made by [`id`].
pub fn index_of(kind: ServiceKind, id_str: &str) -> Option<u64> {
    let hex = id_str.strip_prefix(PREFIX[kind_no(kind) as usize])?;
    if hex.len() != 15 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

fn ts(ms: u64) -> String {
    format_millis(UNIX_EPOCH + Duration::from_millis(ms))
}

const FIRST: [&str; 8] = [
    "José",
    "Ken",
    "Zoë",
    "Ελένη",
    "Amélie",
    "Ana",
    "Sam",
    "Priya",
];
const LAST: [&str; 8] = [
    "Müller",
    "渡辺",
    "Ødegaard",
    "Παπαδοπούλου",
    "Dubois",
    "Gonçalves",
    "O'Neil",
    "Raman",
];

const DEPARTMENTS: [&str; 4] = ["Security", "Finance", "R&D", "Support"];
const IDP_TYPES: [&str; 4] = ["GOOGLE", "MICROSOFT", "SAML2", "OIDC"];
const CITIES: [&str; 4] = ["Zürich", "東京", "São Paulo", "Kraków"];

/// The JSON of an object as Okta would send it.
fn json(kind: ServiceKind, i: u64, o: &Obj) -> String {
    let id = id(kind, i);
    let base = "https://sim.okta.example";
    let v = o.version;
    let (created, updated) = (ts(o.created_ms), ts(o.updated_ms));
    let value = match kind {
        ServiceKind::Users => {
            let (f, l) = (FIRST[(i % 8) as usize], LAST[((i / 8) % 8) as usize]);
            let login = format!("user{i}@example.com");
            serde_json::json!({
                "id": id,
                "status": o.status,
                "created": created,
                "activated": created,
                "statusChanged": updated,
                "lastLogin": if i.is_multiple_of(3) { serde_json::Value::Null } else { updated.clone().into() },
                "lastUpdated": updated,
                "passwordChanged": created,
                "type": {"id": "oty1a2b3c4d5e6f7g8h9"},
                "profile": {
                    "firstName": f,
                    "lastName": l,
                    "mobilePhone": null,
                    "secondEmail": null,
                    "login": login,
                    "email": login,
                    "title": format!("Engineer v{v}"),
                    "department": DEPARTMENTS[(i % 4) as usize],
                },
                "credentials": {
                    "password": {},
                    "provider": {"type": "OKTA", "name": "OKTA"}
                },
                "_links": {"self": {"href": format!("{base}/api/v1/users/{id}")}}
            })
        }
        ServiceKind::Groups => serde_json::json!({
            "id": id,
            "created": created,
            "lastUpdated": updated,
            "lastMembershipUpdated": ts(o.membership_ms),
            "objectClass": ["okta:user_group"],
            "type": if i.is_multiple_of(10) { "BUILT_IN" } else { "OKTA_GROUP" },
            "profile": {
                "name": format!("Team {i} ({})", CITIES[(i % 4) as usize]),
                "description": format!("Members of team {i}, revision {v}")
            },
            "_links": {
                "logo": [{"name": "medium", "href": "https://op1static.oktacdn.com/assets/img/logos/groups/okta-medium.png", "type": "image/png"}],
                "users": {"href": format!("{base}/api/v1/groups/{id}/users")},
                "apps": {"href": format!("{base}/api/v1/groups/{id}/apps")}
            }
        }),
        ServiceKind::Apps => serde_json::json!({
            "id": id,
            "orn": format!("orn:okta:idp:00o1sim:apps:oidc_client:{id}"),
            "name": if i.is_multiple_of(2) { "oidc_client" } else { "bookmark" },
            "label": format!("App {i} · v{v}"),
            "status": o.status,
            "lastUpdated": updated,
            "created": created,
            "accessibility": {"selfService": false, "errorRedirectUrl": null, "loginRedirectUrl": null},
            "visibility": {"autoSubmitToolbar": false, "hide": {"iOS": false, "web": false}},
            "features": [],
            "signOnMode": if i.is_multiple_of(2) { "OPENID_CONNECT" } else { "BOOKMARK" },
            "credentials": {"userNameTemplate": {"template": "${source.login}", "type": "BUILT_IN"}, "signing": {"kid": format!("kid{i:08x}")}},
            "settings": {"app": {}, "notifications": {"vpn": {"network": {"connection": "DISABLED"}, "message": null, "helpUrl": null}}},
            "_links": {
                "appLinks": [{"name": "oidc_client_link", "href": format!("{base}/home/oidc_client/{id}/aln1"), "type": "text/html"}],
                "users": {"href": format!("{base}/api/v1/apps/{id}/users")},
                "groups": {"href": format!("{base}/api/v1/apps/{id}/groups")}
            }
        }),
        ServiceKind::Idps => serde_json::json!({
            "id": id,
            "type": IDP_TYPES[(i % 4) as usize],
            "issuerMode": "ORG_URL",
            "name": format!("IdP {i} v{v}"),
            "status": o.status,
            "created": created,
            "lastUpdated": updated,
            "protocol": {
                "type": "OIDC",
                "endpoints": {"authorization": {"url": "https://accounts.example.com/o/oauth2/auth", "binding": "HTTP-REDIRECT"}},
                "scopes": ["profile", "email", "openid"]
            },
            "policy": {
                "provisioning": {"action": "AUTO", "profileMaster": true, "groups": {"action": "NONE"}},
                "subject": {"userNameTemplate": {"template": "idpuser.email"}, "matchType": "USERNAME"},
                "maxClockSkew": 0
            },
            "properties": null,
            "_links": {"authorize": {"href": format!("{base}/oauth2/v1/authorize?idp={id}"), "templated": true}}
        }),
        ServiceKind::Zones => serde_json::json!({
            "type": "IP",
            "id": id,
            "name": if i == 0 { "BlockedIpZone".to_string() } else { format!("Office {i} v{v}") },
            "status": o.status,
            "usage": if i == 0 { "BLOCKLIST" } else { "POLICY" },
            "system": i == 0,
            "created": created,
            "lastUpdated": updated,
            "gateways": [{"type": "CIDR", "value": format!("198.51.{}.0/24", i % 256)}],
            "proxies": null,
            "_links": {"self": {"href": format!("{base}/api/v1/zones/{id}"), "hints": {"allow": ["GET", "PUT", "DELETE"]}}}
        }),
        _ => serde_json::json!({
            "client_id": id,
            "client_id_issued_at": o.created_ms / 1000,
            "client_name": format!("Service {i} v{v}"),
            "client_secret_expires_at": 0,
            "application_type": if i.is_multiple_of(2) { "web" } else { "service" },
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "redirect_uris": [format!("https://svc{i}.example.com/callback")],
            "token_endpoint_auth_method": "client_secret_basic",
            "jwks_uri": null,
            "_links": {"app": {"href": format!("{base}/api/v1/apps/{id}")}}
        }),
    };
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn ids_carry_okta_prefixes_and_map_back() {
        assert!(id(ServiceKind::Users, 5).starts_with("00u"));
        assert!(id(ServiceKind::Zones, 5).starts_with("nzo"));
        assert_eq!(id(ServiceKind::Users, 5).len(), 20);
        for kind in ServiceKind::SEED {
            for i in [0, 1, 4095, 1 << 56] {
                assert_eq!(index_of(kind, &id(kind, i)), Some(i), "{kind:?} {i}");
            }
        }
        assert_eq!(index_of(ServiceKind::Users, "00ubogus"), None);
    }

    #[test]
    fn pages_follow_after_and_plain_user_lists_skip_deprovisioned() {
        let inv = Inventory::new(Counts {
            users: 450,
            ..Counts::default()
        });
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("limit", "200")];
            if let Some(a) = &after {
                query.push(("after", a));
            }
            let page = inv.list(ServiceKind::Users, &q(&query)).unwrap();
            let items: Vec<serde_json::Value> = serde_json::from_slice(&page.body).unwrap();
            for it in &items {
                assert_ne!(it["status"], "DEPROVISIONED");
                seen.push(it["id"].as_str().unwrap().to_string());
            }
            match page.after {
                Some(a) => after = Some(a),
                None => break,
            }
        }
        assert_eq!(seen.len(), 450 - 450 / 25);
        let all = inv
            .list(ServiceKind::Users, &q(&[("search", "status pr")]))
            .unwrap();
        let items: Vec<serde_json::Value> = serde_json::from_slice(&all.body).unwrap();
        assert_eq!(items.len(), 200, "search pages too");
    }

    #[test]
    fn the_last_updated_filter_returns_only_changes() {
        let inv = Inventory::new(Counts::default());
        let now = ts(now_ms() / 1000 * 1000);
        let expr = format!("lastUpdated ge \"{now}\"");
        let none = inv
            .list(ServiceKind::Users, &q(&[("search", &expr)]))
            .unwrap();
        assert_eq!(none.body, b"[]");
        assert!(inv.update(ServiceKind::Users, 7));
        assert!(inv.set_status(ServiceKind::Users, 8, "DEPROVISIONED"));
        let got = inv
            .list(ServiceKind::Users, &q(&[("search", &expr)]))
            .unwrap();
        let items: Vec<serde_json::Value> = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1]["status"], "DEPROVISIONED");
        let bad = inv.list(ServiceKind::Apps, &q(&[("filter", &expr)]));
        assert!(bad.is_err());
        let bad = inv.list(ServiceKind::Users, &q(&[("search", "profile.x sw \"a\"")]));
        assert!(bad.is_err());
    }
}
