//! What Okta's API says about each service (`../shared/okta-api.md`): its path, the most items
//! a page of it holds, the OAuth scope and the admin role that read it. The service enum is
//! config's (it names them); these facts are Okta's, so they live here and config never needs
//! them.

use super::client::Response;
use crate::config::ServiceKind;
use crate::errors::ErrorId::{Pull300 as PULL_300, Setup100 as SETUP_100};

impl ServiceKind {
    /// The `limit` asked of Okta for a page, one constant per service (never read back from a
    /// URL): the System Log's maximum, 1,000; 200 for the inventories (the maximum of users,
    /// apps, idps and clients, Okta's advice for groups); zones take Okta's default (`None`).
    pub fn page_limit(self) -> Option<u32> {
        match self {
            ServiceKind::Logs => Some(1_000),
            ServiceKind::Zones => None,
            // The entitlement services' parents: groups, apps, users by 200; role holders by
            // 100 (the most `/api/v1/iam/assignees/users` serves).
            ServiceKind::AdminRoles => Some(100),
            ServiceKind::GroupMembers | ServiceKind::AppAssignments | ServiceKind::Factors => {
                Some(200)
            }
            ServiceKind::Users
            | ServiceKind::Groups
            | ServiceKind::Apps
            | ServiceKind::Idps
            | ServiceKind::Clients => Some(200),
        }
    }

    /// The most items Okta serves on one page of the endpoint (its documented maximum
    /// `limit`, `../shared/okta-api.md` §3.1); a page with more is refused (PullError 302),
    /// which bounds the memory a page takes. Zones document no maximum: 1,000.
    pub fn max_page_items(self) -> usize {
        match self {
            ServiceKind::Logs | ServiceKind::Zones => 1_000,
            ServiceKind::Groups => 10_000,
            ServiceKind::Users
            | ServiceKind::Apps
            | ServiceKind::Idps
            | ServiceKind::Clients
            | ServiceKind::GroupMembers
            | ServiceKind::AppAssignments
            | ServiceKind::AdminRoles
            | ServiceKind::Factors => 200,
        }
    }
    /// The API path.
    pub fn path(self) -> &'static str {
        match self {
            ServiceKind::Logs => "/api/v1/logs",
            ServiceKind::Users => "/api/v1/users",
            ServiceKind::Groups => "/api/v1/groups",
            ServiceKind::Apps => "/api/v1/apps",
            ServiceKind::Idps => "/api/v1/idps",
            ServiceKind::Zones => "/api/v1/zones",
            ServiceKind::Clients => "/oauth2/v1/clients",
            // The entitlement services: the listing of their first parents, which is also
            // what `validate` asks for.
            ServiceKind::GroupMembers => "/api/v1/groups",
            ServiceKind::AppAssignments => "/api/v1/apps",
            ServiceKind::AdminRoles => "/api/v1/iam/assignees/users",
            ServiceKind::Factors => "/api/v1/users",
        }
    }
    /// Every OAuth scope the service's requests need (the first is [`ServiceKind::scope`]):
    /// group members are read per group and, for one change, per user; admin roles per user,
    /// group and OAuth client (okta-api.md §3.3).
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            ServiceKind::GroupMembers => &["okta.groups.read", "okta.users.read"],
            ServiceKind::AppAssignments => &["okta.apps.read"],
            ServiceKind::AdminRoles => &[
                "okta.roles.read",
                "okta.users.read",
                "okta.groups.read",
                "okta.clients.read",
            ],
            ServiceKind::Factors => &["okta.users.read"],
            ServiceKind::Logs => &["okta.logs.read"],
            ServiceKind::Users => &["okta.users.read"],
            ServiceKind::Groups => &["okta.groups.read"],
            ServiceKind::Apps => &["okta.apps.read"],
            ServiceKind::Idps => &["okta.idps.read"],
            ServiceKind::Zones => &["okta.networkZones.read"],
            ServiceKind::Clients => &["okta.clients.read"],
        }
    }
    /// The OAuth scope that reads it.
    pub fn scope(self) -> &'static str {
        self.scopes().first().copied().unwrap_or("okta.logs.read")
    }
    /// The admin role an API token's owner needs to read it.
    pub fn role(self) -> &'static str {
        match self {
            ServiceKind::Clients => {
                "Super Administrator or Application Administrator (OAuth clients are not visible to read-only admins)"
            }
            ServiceKind::Idps | ServiceKind::Zones => {
                "Read-Only Administrator, Organization Administrator or Super Administrator"
            }
            ServiceKind::AdminRoles => {
                "Super Administrator, or a custom admin role with the okta.iam.read permission (viewing administrators is Super-Admin-only among the standard roles)"
            }
            ServiceKind::Factors => {
                "Read-Only Administrator (factors are listed per user; on Identity Engine only those the enrollment policy names)"
            }
            _ => "Read-Only Administrator (or any admin role that can view them)",
        }
    }
}

/// What an HTTP answer from Okta means for whoever asked: decided here once, for the puller,
/// `validate` and the error lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A 2xx: a page to check.
    Page,
    /// A 429 of the endpoint's rate limit: wait for its reset, then ask the same again.
    RateLimited,
    /// A 429 for too many simultaneous requests in the org: back off, then ask again.
    Concurrency,
    /// 401, 403 or 404: the token, a role or scope, or the org's feature is missing
    /// (`SetupError 100`); the service waits a period, the others go on.
    Refused,
    /// A 400 `E0000029` "Invalid paging request": the cursor in the URL is no longer honoured.
    InvalidCursor,
    /// Anything else (5xx, an odd 4xx): retried with backoff, the cursor kept.
    Failed,
}

/// Classifies an answer (see [`Class`]).
pub fn classify(resp: &Response) -> Class {
    match resp.status {
        200..=299 => Class::Page,
        429 if resp.is_concurrency_limit() => Class::Concurrency,
        429 => Class::RateLimited,
        401 | 403 | 404 => Class::Refused,
        400 if resp.is_invalid_cursor() => Class::InvalidCursor,
        _ => Class::Failed,
    }
}

/// The error line for a non-2xx answer from `kind`'s endpoint, with Okta's details and what
/// to do: 401, 403 and 404 are setup problems (`SetupError 100`) that name the role, scope or
/// switch the service needs; anything else is `PullError 300` during a pull, or `SetupError 100`
/// when `during_setup`.
pub fn http_error(resp: &Response, during_setup: bool, kind: ServiceKind) -> String {
    let details = resp.error_details();
    let (name, path, role, scope) = (kind.name(), kind.path(), kind.role(), kind.scope());
    match resp.status {
        401 => format!(
            "{SETUP_100}: {details}. Check the API token: it is invalid, expired or revoked \
             (if other services work, the token's admin cannot read {path}: the `{name}` service needs {role})."
        ),
        403 => format!(
            "{SETUP_100}: {details}. The token may not read {path}: the `{name}` service needs the admin role \
             {role} (for an OAuth service app, the scope {scope})."
        ),
        404 => format!(
            "{SETUP_100}: {details}. This org has no {path} (the feature may not be enabled for it); \
             if the org does not use it, set `enabled: false` under inputs.okta.services.{name}."
        ),
        _ if during_setup => format!("{SETUP_100}: {details}"),
        _ => format!("{PULL_300}: {details}"),
    }
}
