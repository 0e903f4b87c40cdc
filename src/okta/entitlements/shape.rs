//! What each entitlement service reads (`../shared/okta-api.md` §3.3): the parents it lists,
//! in which phases, and the child lists of each parent, with the record each child makes.

use crate::config::ServiceKind;

/// What kind of object a parent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ParentKind {
    /// A group (`00g…`).
    Group,
    /// An app instance (`0oa…`).
    App,
    /// A user (`00u…`).
    User,
    /// An OAuth client (`client_id`).
    Client,
}

impl ParentKind {
    /// The letter that starts the parent's file name in the known store.
    pub(crate) fn letter(self) -> char {
        match self {
            ParentKind::Group => 'g',
            ParentKind::App => 'a',
            ParentKind::User => 'u',
            ParentKind::Client => 'c',
        }
    }

    /// The kind a file-name letter stands for.
    pub(crate) fn from_letter(c: char) -> Option<ParentKind> {
        match c {
            'g' => Some(ParentKind::Group),
            'a' => Some(ParentKind::App),
            'u' => Some(ParentKind::User),
            'c' => Some(ParentKind::Client),
            _ => None,
        }
    }

    /// The `assignee.type` of an admin role held by this kind of parent.
    pub(crate) fn assignee_type(self) -> &'static str {
        match self {
            ParentKind::Group => "GROUP",
            ParentKind::Client => "CLIENT",
            ParentKind::User | ParentKind::App => "USER",
        }
    }
}

/// One phase of a full listing: the parents of one kind, listed from `path`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Phase {
    /// What the listed objects are.
    pub parent: ParentKind,
    /// The listing's path.
    pub path: &'static str,
    /// The `limit` asked for (the endpoint's maximum).
    pub limit: u32,
    /// Whether the next page is in the body (`_links.next.href`) rather than a `Link` header.
    pub body_paged: bool,
}

/// One list of children of a parent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildList {
    /// The path before and after the parent's id: `/api/v1/groups/` + id + `/users`.
    pub before: &'static str,
    /// See `before`.
    pub after: &'static str,
    /// The `limit` asked for (`None`: the endpoint is not paged).
    pub limit: Option<u32>,
    /// More of the query, if any (an admin role's targets, embedded).
    pub expand: Option<&'static str>,
    /// The most items one page may hold (a page with more is refused).
    pub max_items: usize,
    /// The record's `entitlement`.
    pub entitlement: &'static str,
    /// The first letter of the child's key (`u`, `g`, `r`, `f`): keys of different lists of one
    /// parent never meet.
    pub key: char,
    /// The field the child object is embedded as.
    pub field: &'static str,
}

impl ChildList {
    /// The list's first URL for parent `id` (already checked to be URL-safe).
    pub(crate) fn url(&self, base: &str, id: &str) -> String {
        let query: Vec<String> = self
            .limit
            .map(|l| format!("limit={l}"))
            .into_iter()
            .chain(self.expand.map(|e| format!("expand={e}")))
            .collect();
        let (before, after) = (self.before, self.after);
        if query.is_empty() {
            format!("{base}{before}{id}{after}")
        } else {
            format!("{base}{before}{id}{after}?{}", query.join("&"))
        }
    }
}

const GROUP_USERS: ChildList = ChildList {
    before: "/api/v1/groups/",
    after: "/users",
    // Okta's default and maximum: one request for most groups.
    limit: Some(1_000),
    expand: None,
    max_items: 1_000,
    entitlement: "group_member",
    key: 'u',
    field: "user",
};
const APP_USERS: ChildList = ChildList {
    before: "/api/v1/apps/",
    after: "/users",
    limit: Some(500),
    expand: None,
    max_items: 500,
    entitlement: "app_user",
    key: 'u',
    field: "user",
};
const APP_GROUPS: ChildList = ChildList {
    before: "/api/v1/apps/",
    after: "/groups",
    limit: Some(200),
    expand: None,
    max_items: 200,
    entitlement: "app_group",
    key: 'g',
    field: "group",
};
/// Roles are not paged; an assignee holds few (Okta has fewer than 40 role types), so 1,000
/// bounds a hostile answer without refusing a real one. A role scoped to groups lists them in
/// its `_embedded` (`expand=targets/groups`, okta-api.md §3.3: one `expand` a request; a
/// role's app targets would take a request of their own).
const fn roles(before: &'static str) -> ChildList {
    ChildList {
        before,
        after: "/roles",
        limit: None,
        expand: Some("targets/groups"),
        max_items: 1_000,
        entitlement: "admin_role",
        key: 'r',
        field: "role",
    }
}
const USER_ROLES: ChildList = roles("/api/v1/users/");
const GROUP_ROLES: ChildList = roles("/api/v1/groups/");
const CLIENT_ROLES: ChildList = roles("/oauth2/v1/clients/");
const FACTORS: ChildList = ChildList {
    before: "/api/v1/users/",
    after: "/factors",
    limit: None,
    expand: None,
    max_items: 1_000,
    entitlement: "factor",
    key: 'f',
    field: "factor",
};

/// The phases of `kind`'s full listing.
pub(crate) fn phases(kind: ServiceKind) -> &'static [Phase] {
    const GROUPS: Phase = Phase {
        parent: ParentKind::Group,
        path: "/api/v1/groups",
        limit: 200,
        body_paged: false,
    };
    match kind {
        ServiceKind::GroupMembers => &[GROUPS],
        ServiceKind::AppAssignments => &[Phase {
            parent: ParentKind::App,
            path: "/api/v1/apps",
            limit: 200,
            body_paged: false,
        }],
        ServiceKind::AdminRoles => &[
            // Users who hold a role directly; the next page is in the body.
            Phase {
                parent: ParentKind::User,
                path: "/api/v1/iam/assignees/users",
                limit: 100,
                body_paged: true,
            },
            // No endpoint lists only the groups and clients that hold a role: each is asked.
            GROUPS,
            Phase {
                parent: ParentKind::Client,
                path: "/oauth2/v1/clients",
                limit: 200,
                body_paged: false,
            },
        ],
        ServiceKind::Factors => &[Phase {
            parent: ParentKind::User,
            path: "/api/v1/users",
            limit: 200,
            body_paged: false,
        }],
        _ => &[],
    }
}

/// The child lists of a `parent` for `kind`.
pub(crate) fn children(kind: ServiceKind, parent: ParentKind) -> &'static [ChildList] {
    match (kind, parent) {
        (ServiceKind::GroupMembers, ParentKind::Group) => &[GROUP_USERS],
        (ServiceKind::AppAssignments, ParentKind::App) => &[APP_USERS, APP_GROUPS],
        (ServiceKind::AdminRoles, ParentKind::User) => &[USER_ROLES],
        (ServiceKind::AdminRoles, ParentKind::Group) => &[GROUP_ROLES],
        (ServiceKind::AdminRoles, ParentKind::Client) => &[CLIENT_ROLES],
        (ServiceKind::Factors, ParentKind::User) => &[FACTORS],
        _ => &[],
    }
}

/// The parent's context object in a record: `group: {id, name}`, `app: {id, label}`,
/// `assignee: {type, id}` or `user: {id, login}`.
pub(crate) fn context(kind: ServiceKind, parent: ParentKind, id: &str, label: &str) -> String {
    let id = serde_json::Value::from(id);
    let label = serde_json::Value::from(label);
    match (kind, parent) {
        (ServiceKind::AdminRoles, p) => {
            format!(
                "\"assignee\":{{\"type\":\"{}\",\"id\":{id}}}",
                p.assignee_type()
            )
        }
        (_, ParentKind::Group) => format!("\"group\":{{\"id\":{id},\"name\":{label}}}"),
        (_, ParentKind::App) => format!("\"app\":{{\"id\":{id},\"label\":{label}}}"),
        (_, ParentKind::User | ParentKind::Client) => {
            format!("\"user\":{{\"id\":{id},\"login\":{label}}}")
        }
    }
}

/// Whether `id` may stand in a URL path and a file name: 1 to 64 ASCII letters, digits, `_`
/// or `-` (every Okta id is; anything else from the network is refused, not escaped).
pub(crate) fn safe_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_child_list_asks_okta_s_limit_and_roles_their_group_targets() {
        let url = |kind, parent| {
            children(kind, parent)
                .iter()
                .map(|l| l.url("https://o", "ID"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            url(ServiceKind::GroupMembers, ParentKind::Group),
            ["https://o/api/v1/groups/ID/users?limit=1000"]
        );
        assert_eq!(
            url(ServiceKind::AppAssignments, ParentKind::App),
            [
                "https://o/api/v1/apps/ID/users?limit=500",
                "https://o/api/v1/apps/ID/groups?limit=200"
            ]
        );
        assert_eq!(
            url(ServiceKind::AdminRoles, ParentKind::Client),
            ["https://o/oauth2/v1/clients/ID/roles?expand=targets/groups"]
        );
        assert_eq!(
            url(ServiceKind::Factors, ParentKind::User),
            ["https://o/api/v1/users/ID/factors"]
        );
        assert!(children(ServiceKind::Factors, ParentKind::Group).is_empty());
        assert!(
            safe_id("00u1a2B_-") && !safe_id("") && !safe_id("a/b") && !safe_id(&"a".repeat(65))
        );
    }
}
