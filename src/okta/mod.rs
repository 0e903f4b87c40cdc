//! Everything that knows Okta: the HTTP client, `Link` parsing, page splitting, the System Log
//! cursor and puller. Nothing here knows Devo or the spool's format.

pub mod api;
pub mod budget;
pub mod client;
pub mod cursor;
pub mod devo_state;
pub mod inventory;
pub mod link;
pub mod logs;
pub mod oauth;
pub mod page;
pub mod pull;

use crate::config::ServiceKind;
use client::Response;

/// The seed collector's error texts (its manual's Troubleshooting table), which users search for.
pub const SETUP_100: &str =
    "SetupError 100: HTTP Error occurred while retrieving events from okta server";
/// Okta cannot be reached.
pub const SETUP_101: &str =
    "SetupError 101: Connecting Error occurred while retrieving events from okta server";
/// Okta answered an HTTP error during a pull.
pub const PULL_300: &str =
    "PullError 300: HTTP Error occurred while fetching siem event from okta server";
/// The connection to Okta failed during a pull.
pub const PULL_301: &str =
    "PullError 301: HTTP Error occurred while fetching siem event from okta server";
/// Okta's answer could not be used.
pub const PULL_302: &str =
    "PullError 302: Some error occurred while retrieving events from Okta server";

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
