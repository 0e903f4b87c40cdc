//! The records the entitlement services send (one JSON object per line, a schema users query;
//! the README documents it), and how a System Log event names what it touched.

use super::shape::{ParentKind, safe_id};
use crate::config::ServiceKind;

/// Why a record was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A full listing found it.
    Listing,
    /// A System Log event led to the read.
    Event {
        /// The event's `uuid`.
        uuid: String,
        /// Its `eventType`.
        event_type: String,
    },
    /// A group's `lastMembershipUpdated` moved with no event to say why (a group rule, a bulk
    /// import).
    MembershipUpdated,
}

impl Cause {
    fn json(&self) -> String {
        match self {
            Cause::Listing => r#"{"kind":"listing"}"#.to_string(),
            Cause::MembershipUpdated => r#"{"kind":"lastMembershipUpdated"}"#.to_string(),
            Cause::Event { uuid, event_type } => format!(
                r#"{{"kind":"event","uuid":{},"eventType":{}}}"#,
                serde_json::Value::from(uuid.as_str()),
                serde_json::Value::from(event_type.as_str())
            ),
        }
    }
}

/// A record saying `raw` (the child object exactly as Okta listed it) is present, under
/// `context` (the parent's, from [`super::shape::context`]).
pub(crate) fn present(
    entitlement: &str,
    observed: &str,
    cause: &Cause,
    context: &str,
    field: &str,
    raw: &str,
) -> String {
    format!(
        r#"{{"entitlement":"{entitlement}","state":"present","observed":"{observed}","cause":{},{context},"{field}":{raw}}}"#,
        cause.json()
    )
}

/// A record saying the child `id` is no longer there; `note` is what was kept of it (an
/// admin role's `type`, a factor's `factorType`).
pub(crate) fn removed(
    entitlement: &str,
    observed: &str,
    cause: &Cause,
    context: &str,
    field: &str,
    id: &str,
    note: &str,
) -> String {
    let note = match (entitlement, note) {
        (_, "") => String::new(),
        ("admin_role", n) => format!(",\"type\":{}", serde_json::Value::from(n)),
        ("factor", n) => format!(",\"factorType\":{}", serde_json::Value::from(n)),
        _ => String::new(),
    };
    format!(
        r#"{{"entitlement":"{entitlement}","state":"removed","observed":"{observed}","cause":{},{context},"{field}":{{"id":{}{note}}}}}"#,
        cause.json(),
        serde_json::Value::from(id)
    )
}

/// The record that closes a full listing: what follows it in Devo is a complete picture.
pub(crate) fn baseline(
    kind: ServiceKind,
    started: &str,
    finished: &str,
    present: u64,
    removed: u64,
) -> String {
    format!(
        r#"{{"entitlement":"baseline","state":"complete","observed":"{finished}","service":"{}","started":"{started}","finished":"{finished}","present":{present},"removed":{removed}}}"#,
        kind.name()
    )
}

/// What one System Log event touched, for one service: a parent, and the child in it when
/// the event names one (otherwise the whole parent is read again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Touch {
    /// The parent's kind.
    pub parent: ParentKind,
    /// The parent's id.
    pub id: String,
    /// The child's key letter and id (`u`/`g`), if the event names one.
    pub child: Option<(char, String)>,
    /// The event.
    pub cause: Cause,
    /// Its `published`, Unix ms (0 if it has none).
    pub published_ms: u64,
}

#[derive(serde::Deserialize)]
struct Event<'a> {
    #[serde(borrow, rename = "eventType")]
    event_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    uuid: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    published: Option<std::borrow::Cow<'a, str>>,
    actor: Option<Who>,
    target: Option<Vec<Who>>,
}

#[derive(serde::Deserialize)]
struct Who {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The event types each service follows (`../shared/okta-api.md` §3.3), as prefixes.
fn followed(kind: ServiceKind) -> &'static [&'static str] {
    match kind {
        ServiceKind::GroupMembers => &[
            "group.user_membership.",
            "system.identity_sources.bulk_group_membership_",
        ],
        ServiceKind::AppAssignments => &[
            "application.user_membership.",
            "group.application_assignment.",
        ],
        ServiceKind::AdminRoles => &[
            "user.account.privilege.",
            "group.privilege.",
            "app.oauth2.client.privilege.",
        ],
        ServiceKind::Factors => &["user.mfa.factor."],
        _ => &[],
    }
}

/// What System Log event `raw` touched for service `kind` (nothing if the service does not
/// follow its type, or if it names nothing usable; a malformed event is skipped).
pub(crate) fn touches(kind: ServiceKind, raw: &[u8]) -> Vec<Touch> {
    let Ok(e) = serde_json::from_slice::<Event<'_>>(raw) else {
        return Vec::new();
    };
    let Some(event_type) = e.event_type.as_deref() else {
        return Vec::new();
    };
    if !followed(kind).iter().any(|p| event_type.starts_with(p)) {
        return Vec::new();
    }
    let cause = Cause::Event {
        uuid: e.uuid.as_deref().unwrap_or("").to_string(),
        event_type: event_type.to_string(),
    };
    let published_ms = e
        .published
        .as_deref()
        .and_then(crate::time::parse_rfc3339)
        .map_or(0, |t| crate::time::unix_millis(t) as u64);
    let targets = e.target.unwrap_or_default();
    let of = |t: &str| -> Vec<String> {
        targets
            .iter()
            .filter(|w| w.kind.as_deref() == Some(t))
            .filter_map(|w| w.id.clone())
            .filter(|id| safe_id(id))
            .collect()
    };
    let touch = |parent: ParentKind, id: String, child: Option<(char, String)>| Touch {
        parent,
        id,
        child,
        cause: cause.clone(),
        published_ms,
    };
    let (users, groups) = (of("User"), of("UserGroup"));
    let mut out = Vec::new();
    match kind {
        ServiceKind::GroupMembers => {
            let one_user = event_type.ends_with(".add") || event_type.ends_with(".remove");
            for g in groups {
                if one_user && !users.is_empty() {
                    out.extend(
                        users
                            .iter()
                            .map(|u| touch(ParentKind::Group, g.clone(), Some(('u', u.clone())))),
                    );
                } else {
                    out.push(touch(ParentKind::Group, g, None));
                }
            }
        }
        ServiceKind::AppAssignments => {
            let (children, letter) = if event_type.starts_with("group.") {
                (groups, 'g')
            } else {
                (users, 'u')
            };
            for a in of("AppInstance") {
                if children.is_empty() {
                    out.push(touch(ParentKind::App, a, None));
                } else {
                    out.extend(
                        children
                            .iter()
                            .map(|c| touch(ParentKind::App, a.clone(), Some((letter, c.clone())))),
                    );
                }
            }
        }
        ServiceKind::AdminRoles => {
            if event_type.starts_with("user.") {
                out.extend(users.into_iter().map(|u| touch(ParentKind::User, u, None)));
            } else if event_type.starts_with("group.") {
                out.extend(
                    groups
                        .into_iter()
                        .map(|g| touch(ParentKind::Group, g, None)),
                );
            } else {
                // The client is the target that is neither a user nor a group
                // (`PublicClientApp`, or `AppInstance` for a service integration).
                out.extend(
                    targets
                        .iter()
                        .filter(|w| !matches!(w.kind.as_deref(), Some("User" | "UserGroup")))
                        .filter_map(|w| w.id.clone())
                        .filter(|id| safe_id(id))
                        .map(|c| touch(ParentKind::Client, c, None)),
                );
            }
        }
        ServiceKind::Factors => {
            // Self-service enrolment names the user as the actor only.
            let users = if users.is_empty() {
                e.actor
                    .filter(|a| a.kind.as_deref() == Some("User"))
                    .and_then(|a| a.id)
                    .filter(|id| safe_id(id))
                    .into_iter()
                    .collect()
            } else {
                users
            };
            out.extend(users.into_iter().map(|u| touch(ParentKind::User, u, None)));
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_takes_its_events_and_their_targets() {
        let ev = |t: &str, targets: &str, actor: &str| {
            format!(
                r#"{{"uuid":"u1","published":"2026-12-08T10:00:00.000Z","eventType":"{t}","actor":{actor},"target":[{targets}]}}"#
            )
        };
        let user = r#"{"id":"00u1","type":"User"}"#;
        let group = r#"{"id":"00g1","type":"UserGroup"}"#;
        let app = r#"{"id":"0oa1","type":"AppInstance"}"#;
        let admin = r#"{"id":"00uADMIN","type":"User"}"#;
        let e = ev(
            "group.user_membership.add",
            &format!("{user},{group}"),
            admin,
        );
        let t = touches(ServiceKind::GroupMembers, e.as_bytes());
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].parent, t[0].id.as_str(), t[0].child.clone()),
            (ParentKind::Group, "00g1", Some(('u', "00u1".to_string())))
        );
        assert_eq!(t[0].published_ms, 1_796_724_000_000);
        assert!(touches(ServiceKind::Factors, e.as_bytes()).is_empty());
        // A rule's evaluation names only the group: the whole group is read.
        let e = ev("group.user_membership.rule.evaluation", group, admin);
        let t = touches(ServiceKind::GroupMembers, e.as_bytes());
        assert_eq!(t[0].child, None);
        let e = ev(
            "group.application_assignment.add",
            &format!("{app},{group}"),
            admin,
        );
        let t = touches(ServiceKind::AppAssignments, e.as_bytes());
        assert_eq!(t[0].child, Some(('g', "00g1".to_string())));
        let e = ev("user.account.privilege.grant", user, admin);
        let t = touches(ServiceKind::AdminRoles, e.as_bytes());
        assert_eq!((t[0].parent, t[0].child.clone()), (ParentKind::User, None));
        let e = ev(
            "app.oauth2.client.privilege.grant",
            r#"{"id":"0oaC","type":"PublicClientApp"}"#,
            admin,
        );
        assert_eq!(
            touches(ServiceKind::AdminRoles, e.as_bytes())[0].parent,
            ParentKind::Client
        );
        // A factor enrolled by the user: no target, the actor.
        let e = ev("user.mfa.factor.activate", "", user);
        let t = touches(ServiceKind::Factors, e.as_bytes());
        assert_eq!((t[0].parent, t[0].id.as_str()), (ParentKind::User, "00u1"));
        // Hostile ids are not used in a URL or a file name; malformed events are skipped.
        let e = ev(
            "user.mfa.factor.activate",
            r#"{"id":"../../etc","type":"User"}"#,
            r#"{"id":"a/b","type":"User"}"#,
        );
        assert!(touches(ServiceKind::Factors, e.as_bytes()).is_empty());
        assert!(touches(ServiceKind::Factors, b"{not json").is_empty());
        assert!(touches(ServiceKind::Factors, br#"{"eventType":7}"#).is_empty());
    }

    #[test]
    fn records_embed_the_object_as_sent() {
        let raw = r#"{"id":"00u1","profile":{"login":"a@b"},"z":1,"a":2}"#;
        let c = super::super::shape::context(
            ServiceKind::GroupMembers,
            ParentKind::Group,
            "00g1",
            "Finance \"Admins\"",
        );
        let cause = Cause::Event {
            uuid: "e1".into(),
            event_type: "group.user_membership.add".into(),
        };
        let r = present(
            "group_member",
            "2026-12-08T10:00:00.000Z",
            &cause,
            &c,
            "user",
            raw,
        );
        assert!(r.ends_with(&format!(r#""user":{raw}}}"#)), "{r}");
        let v: serde_json::Value = serde_json::from_str(&r).unwrap();
        assert_eq!(v["group"]["name"], "Finance \"Admins\"");
        assert_eq!(v["cause"]["eventType"], "group.user_membership.add");
        let r = removed(
            "admin_role",
            "t",
            &Cause::Listing,
            "\"assignee\":{}",
            "role",
            "ra1",
            "SUPER_ADMIN",
        );
        let v: serde_json::Value = serde_json::from_str(&r).unwrap();
        assert_eq!(
            v["role"],
            serde_json::json!({"id": "ra1", "type": "SUPER_ADMIN"})
        );
        assert_eq!(v["state"], "removed");
        let v: serde_json::Value =
            serde_json::from_str(&baseline(ServiceKind::Factors, "a", "b", 3, 1)).unwrap();
        assert_eq!(
            (v["entitlement"].as_str(), v["present"].as_u64()),
            (Some("baseline"), Some(3))
        );
    }
}
