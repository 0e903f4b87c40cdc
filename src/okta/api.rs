//! What Okta's API says about each service (`../shared/okta-api.md`): its path, the most items
//! a page of it holds, the OAuth scope and the admin role that read it. The service enum is
//! config's (it names them); these facts are Okta's, so they live here and config never needs
//! them.

use crate::config::{Service, ServiceKind};

impl ServiceKind {
    /// The most items Okta serves on one page of the endpoint (its documented maximum
    /// `limit`, `../shared/okta-api.md` §3.1); a page with more is refused (PullError 302),
    /// which bounds the memory a page takes. Zones document no maximum: 1,000.
    pub fn max_page_items(self) -> usize {
        match self {
            ServiceKind::Logs | ServiceKind::Zones => 1_000,
            ServiceKind::Groups => 10_000,
            ServiceKind::Users | ServiceKind::Apps | ServiceKind::Idps | ServiceKind::Clients => {
                200
            }
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
        }
    }
    /// The OAuth scope that reads it.
    pub fn scope(self) -> &'static str {
        match self {
            ServiceKind::Logs => "okta.logs.read",
            ServiceKind::Users => "okta.users.read",
            ServiceKind::Groups => "okta.groups.read",
            ServiceKind::Apps => "okta.apps.read",
            ServiceKind::Idps => "okta.idps.read",
            ServiceKind::Zones => "okta.networkZones.read",
            ServiceKind::Clients => "okta.clients.read",
        }
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
            _ => "Read-Only Administrator (or any admin role that can view them)",
        }
    }
}

/// The scopes the services need, each once, in their order: what an OAuth app asks for when
/// `scopes` is not given (okta-api.md §1.2's scope table).
pub fn scopes(services: &[Service]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in services {
        if !out.iter().any(|x| x == s.kind.scope()) {
            out.push(s.kind.scope().to_string());
        }
    }
    out
}
