//! Everything that knows Okta: the HTTP client, `Link` parsing, page splitting, the System Log
//! cursor and puller. Nothing here knows Devo or the spool's format.

pub mod client;
pub mod cursor;
pub mod link;
pub mod logs;
pub mod page;

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

/// The error line for a non-2xx answer, with Okta's details and what to do: 401 and 403 are
/// setup problems (`SetupError 100`); anything else is `PullError 300` during a pull, or
/// `SetupError 100` when `during_setup`.
pub fn http_error(resp: &Response, during_setup: bool) -> String {
    let details = resp.error_details();
    match resp.status {
        401 => format!(
            "{SETUP_100}: {details}. Check the API token: it is invalid, expired or revoked."
        ),
        403 => format!(
            "{SETUP_100}: {details}. The token's admin lacks a role that can read the System Log (okta.logs.read)."
        ),
        _ if during_setup => format!("{SETUP_100}: {details}"),
        _ => format!("{PULL_300}: {details}"),
    }
}
