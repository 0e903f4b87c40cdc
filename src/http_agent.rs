//! The one set-up of an HTTP client (ureq) that both the Okta client and the `devo_http`
//! output start from, so that the rules that keep a secret where it belongs are written once:
//! no redirect is followed (a redirect could carry the token to another host), an HTTP error
//! status is an answer to read rather than an error, connecting and the whole request are
//! bounded, and every request names the collector and its version.

use std::time::Duration;
use ureq::config::ConfigBuilder;
use ureq::typestate::AgentScope;

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("okta-collector/", env!("CARGO_PKG_VERSION"));

/// An agent's configuration with those rules, `connect` and `total` as its time bounds; the
/// caller adds what is its own (trusted roots, a proxy) and builds it.
pub fn config(connect: Duration, total: Duration) -> ConfigBuilder<AgentScope> {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(connect))
        .timeout_global(Some(total))
        .max_redirects(0)
        .user_agent(USER_AGENT)
}
