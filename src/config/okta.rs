//! The Okta input: the org, the API token or an OAuth 2.0 app, the services, how the org is
//! reached (CA file, proxy, timeouts) and the input-wide budget; and what a reload changes
//! about where the token goes.

use super::error::{ConfigError, Cx, err};
use super::origin::Origin;
use super::raw::{RawCredentials, RawDpop, RawOAuth, RawOkta, RawService, Scalar};
use super::secret::{Secret, resolve_secret};
use super::service::resolve_service;
use super::service::{Limit, Service, ServiceKind, devo_state_name};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Okta input.
#[derive(Debug, Clone)]
pub struct Okta {
    /// `inputs.okta.id`.
    pub id: String,
    /// `inputs.okta.enabled`.
    pub enabled: bool,
    /// The org.
    pub url: Origin,
    /// The API token.
    pub token: Secret,
    /// The file that holds the token in clear (the config itself, or `api_token_file`), if
    /// any; `None` when it comes from the environment.
    pub token_file: Option<PathBuf>,
    /// An OAuth app instead of the API token (`token` is then empty).
    pub oauth: Option<OAuth>,
    /// Services that run (listed and not disabled).
    pub services: Vec<Service>,
    /// How to reach the org.
    pub http: HttpSettings,
}

/// Connection settings for the org.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// PEM CA certificates trusted instead of the built-in roots (a TLS-inspecting proxy's).
    pub ca_file: Option<PathBuf>,
    /// An explicit proxy URL (may hold credentials, hence a `Secret`); otherwise `HTTPS_PROXY`,
    /// `ALL_PROXY` and `NO_PROXY` from the environment apply.
    pub proxy: Option<Secret>,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout, body included.
    pub request_timeout: Duration,
}

/// Whether DPoP proofs are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopMode {
    /// A proof with the first token request, then as Okta issued: DPoP token, proofs; Bearer
    /// token, none.
    Auto,
    /// Always; a Bearer token is refused.
    On,
    /// Never.
    Off,
}

/// An OAuth 2.0 API Services app (`inputs.okta.credentials.oauth`).
#[derive(Debug, Clone)]
pub struct OAuth {
    /// The app's client id.
    pub client_id: String,
    /// The private key (PEM or JWK text).
    pub private_key: Secret,
    /// Where it came from, for messages: `private_key_file (path)` or `private_key_env (VAR)`.
    pub private_key_from: String,
    /// The key file, for the mode check.
    pub private_key_file: Option<PathBuf>,
    /// The `kid` registered with the app.
    pub key_id: Option<String>,
    /// The scopes asked for (`None`: what the enabled services need).
    pub scopes: Option<Vec<String>>,
    /// DPoP.
    pub dpop: DpopMode,
}

fn resolve_oauth(
    r: RawOAuth,
    resolve: &dyn Fn(&Path) -> PathBuf,
    at: &dyn Fn(&str) -> String,
) -> Result<OAuth, ConfigError> {
    let key = at("inputs.okta.credentials.oauth");
    let client_id = r.client_id.trim().to_string();
    if client_id.is_empty()
        || client_id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return err(format!(
            "{key}.client_id: {:?} is not a client id (the app's \"Client ID\", e.g. 0oa1b2c3d4e5f6g7h8i9)",
            crate::logging::escape_controls(&client_id)
        ));
    }
    let (private_key, from, file) = match (&r.private_key_file, &r.private_key_env) {
        (Some(f), None) => {
            let p = resolve(f);
            let text = std::fs::read_to_string(&p).map_err(|e| {
                ConfigError(format!(
                    "{key}.private_key_file: cannot read {}: {e}",
                    p.display()
                ))
            })?;
            let from = format!("private_key_file ({})", p.display());
            (Secret::new(text), from, Some(p))
        }
        (None, Some(var)) => {
            let text = std::env::var(var).map_err(|_| {
                ConfigError(format!(
                    "{key}.private_key_env: the environment variable {var} is not set"
                ))
            })?;
            (Secret::new(text), format!("private_key_env ({var})"), None)
        }
        (None, None) => {
            return err(format!(
                "{key}: no private key; set private_key_file (PEM or the JWK JSON the admin console gives) or private_key_env"
            ));
        }
        (Some(_), Some(_)) => {
            return err(format!(
                "{key}: set only one of private_key_file and private_key_env"
            ));
        }
    };
    let dpop = match r.dpop {
        None => DpopMode::Auto,
        Some(RawDpop::Switch(true)) => DpopMode::On,
        Some(RawDpop::Switch(false)) => DpopMode::Off,
        Some(RawDpop::Word(w)) if w.eq_ignore_ascii_case("auto") => DpopMode::Auto,
        Some(RawDpop::Word(w)) => {
            return err(format!(
                "{key}.dpop: {:?} is not auto, true or false",
                crate::logging::escape_controls(&w)
            ));
        }
    };
    // None: what the enabled services need (`okta::oauth::scopes`, okta-api.md §1.2).
    let scopes = match r.scopes {
        Some(s) if s.is_empty() => {
            return err(format!(
                "{key}.scopes: empty; leave it out to ask for what the enabled services need"
            ));
        }
        s => s,
    };
    let oauth = OAuth {
        client_id,
        private_key,
        private_key_from: from,
        private_key_file: file,
        key_id: r.key_id,
        scopes,
        dpop,
    };
    // The key is read now, so a bad one is a config error naming it.
    crate::jose::AppKey::parse(oauth.private_key.expose())
        .map_err(|e| ConfigError(format!("{key}.{}: {e}", oauth.private_key_from)))?;
    Ok(oauth)
}

/// Resolves `inputs.okta`; with it, the input-wide budget (Devo's `requests_per_second`).
/// Devo's per-service keys that have no effect are added to `notes`.
pub(super) fn resolve(
    o: RawOkta,
    cx: &Cx<'_>,
    devo_state: Option<&Path>,
    notes: &mut Vec<String>,
) -> Result<(Okta, Option<Limit>), ConfigError> {
    let resolve = |p: &Path| cx.resolve(p);
    let at = |k: &str| cx.at(k);
    let path = cx.path;
    let (url_key, url_text) = match (&o.credentials.okta_url, &o.override_api_base_url) {
        (Some(u), None) => ("inputs.okta.credentials.okta_url", u),
        (None, Some(u)) => ("inputs.okta.override_api_base_url", u),
        (Some(u), Some(b)) if Origin::parse(b).is_err() => ("inputs.okta.override_api_base_url", b),
        (Some(u), Some(b)) if Origin::parse(u) == Origin::parse(b) => {
            ("inputs.okta.credentials.okta_url", u)
        }
        (Some(u), Some(b)) => {
            return err(format!(
                "{}: {u:?} and inputs.okta.override_api_base_url {b:?} name different orgs; the API token goes to one org only: keep one of the two",
                at("inputs.okta.credentials.okta_url")
            ));
        }
        (None, None) => {
            return err(format!(
                "{}: missing; set it to the org's URL, e.g. https://acme.okta.com",
                at("inputs.okta.credentials.okta_url")
            ));
        }
    };
    let url = Origin::parse(url_text).map_err(|e| ConfigError(format!("{}: {e}", at(url_key))))?;
    let c = &o.credentials;
    let any_token =
        c.api_token.is_some() || c.api_token_env.is_some() || c.api_token_file.is_some();
    if any_token && c.oauth.is_some() {
        return err(format!(
            "{}: set either an API token (api_token, api_token_env or api_token_file) or oauth, not both",
            at("inputs.okta.credentials")
        ));
    }
    let (token, token_file) = if c.oauth.is_some() {
        (Secret::new(String::new()), None)
    } else {
        let token = resolve_token(c, &resolve, &at)?;
        let token_file = match (&c.api_token, &c.api_token_file) {
            (Some(_), _) => Some(path.to_path_buf()),
            (None, Some(f)) => Some(resolve(f)),
            (None, None) => None,
        };
        (token, token_file)
    };
    let raw_oauth = o.credentials.oauth;
    let mut services = Vec::new();
    let s = o.services;
    for (kind, svc) in [
        (ServiceKind::Logs, s.logs),
        (ServiceKind::Users, s.users),
        (ServiceKind::Groups, s.groups),
        (ServiceKind::Apps, s.apps),
        (ServiceKind::Idps, s.idps),
        (ServiceKind::Zones, s.zones),
        (ServiceKind::Clients, s.clients),
        (ServiceKind::GroupMembers, s.group_members),
        (ServiceKind::AppAssignments, s.app_assignments),
        (ServiceKind::AdminRoles, s.admin_roles),
        (ServiceKind::Factors, s.factors),
    ] {
        // The entitlement services need more than the read-only role: on only when asked.
        let on = |svc: &RawService| match svc.enabled {
            Some(e) => e,
            None => !kind.is_entitlement(),
        };
        if let Some(svc) = svc
            && on(&svc)
        {
            let key = format!("inputs.okta.services.{}", kind.name());
            for (k, set, why) in [
                (
                    "requests_per_second",
                    svc.requests_per_second.is_some(),
                    "a service's local budget is requests_limits",
                ),
                (
                    "retries",
                    svc.retries.is_some(),
                    "a failed cycle is retried with backoff until it succeeds",
                ),
                (
                    "use_time_slots_for_retrievals",
                    svc.use_time_slots_for_retrievals.is_some(),
                    "cycles run every request_period_in_seconds from the last one",
                ),
            ] {
                if set {
                    notes.push(format!(
                        "{key}.{k} (a key of Devo's collector framework) has no effect here: {why}."
                    ));
                }
            }
            services.push(resolve_service(kind, svc, &at)?);
        }
    }
    let seconds = |key: &str, v: Option<u64>, default: u64| match v {
        None => Ok(Duration::from_secs(default)),
        Some(0) => err(format!(
            "{}: must be at least 1",
            at(&format!("inputs.okta.{key}"))
        )),
        Some(n) => Ok(Duration::from_secs(n)),
    };
    let http = HttpSettings {
        ca_file: o.ca_file.as_deref().map(resolve),
        proxy: o.proxy,
        connect_timeout: seconds(
            "connect_timeout_in_seconds",
            o.connect_timeout_in_seconds,
            10,
        )?,
        request_timeout: seconds(
            "request_timeout_in_seconds",
            o.request_timeout_in_seconds,
            60,
        )?,
    };
    if let Some(p) = &http.proxy
        && let Err(_) = ureq::Proxy::new(p.expose())
    {
        return err(format!(
            "{}: not a proxy URL; write it like http://proxy.example.com:3128 (credentials as http://user:password@host:port)",
            at("inputs.okta.proxy")
        ));
    }
    let input_id = o.id.map(Scalar::text).unwrap_or_else(|| "okta".into());
    if let Some(dir) = devo_state {
        for s in &mut services {
            if s.kind == ServiceKind::Logs {
                s.devo_state = Some(dir.join(devo_state_name(&input_id, s.kind)));
            }
        }
    }
    let oauth = match raw_oauth {
        None => None,
        Some(r) => Some(resolve_oauth(r, &resolve, &at)?),
    };
    // Devo's `requests_per_second` for the input: a local budget for all its services.
    let input_budget = match o.requests_per_second {
        None => None,
        Some(r) if !(r.is_finite() && r > 0.0 && r <= 1000.0) => {
            return err(format!(
                "{}: {r} is not a rate; give requests per second between 0.001 and 1000",
                at("inputs.okta.requests_per_second")
            ));
        }
        Some(r) if r >= 1.0 => Some(Limit {
            period: Duration::from_secs(1),
            requests: r.floor() as u32,
        }),
        Some(r) => Some(Limit {
            period: Duration::from_secs((1.0 / r).ceil() as u64),
            requests: 1,
        }),
    };
    let okta = Okta {
        id: input_id,
        enabled: o.enabled.unwrap_or(true),
        url,
        token,
        token_file,
        oauth,
        services,
        http,
    };
    Ok((okta, input_budget))
}

fn resolve_token(
    c: &RawCredentials,
    resolve: &dyn Fn(&Path) -> PathBuf,
    at: &dyn Fn(&str) -> String,
) -> Result<Secret, ConfigError> {
    let key = at("inputs.okta.credentials");
    let token = resolve_secret(
        &key,
        "api_token",
        "API token",
        c.api_token.as_ref(),
        c.api_token_env.as_deref(),
        c.api_token_file.as_deref(),
        resolve,
    )?;
    let trimmed = token.expose();
    if trimmed.is_empty() {
        return err(format!("{key}: the API token is empty"));
    }
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return err(format!(
            "{key}: the API token contains spaces or control characters; check that it was copied whole"
        ));
    }
    Ok(Secret::new(trimmed.to_string()))
}
