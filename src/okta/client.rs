//! The Okta HTTP client: ureq on smol's blocking pool, `SSWS` auth sent only to the org's
//! origin, response bodies capped, and the headers the pullers need read out. The one place a
//! request to Okta is made, so the token's origin check cannot be missed.

use super::body::body_buffer;
use crate::config::{HttpSettings, Origin, Secret};
use std::io::Read;
use std::time::{Duration, SystemTime};

/// Largest response body read (a System Log page of 1000 events is a few MB).
pub const MAX_BODY: u64 = 64 << 20;

/// What the pullers need of one response.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body (at most [`MAX_BODY`]).
    pub body: Vec<u8>,
    /// Every `Link` header value.
    pub links: Vec<String>,
    /// `X-Okta-Request-Id`.
    pub request_id: Option<String>,
    /// `Date`.
    pub date: Option<SystemTime>,
    /// `X-Rate-Limit-Reset`, epoch seconds.
    pub rate_reset: Option<u64>,
    /// `X-Rate-Limit-Limit`.
    pub rate_limit: Option<u64>,
    /// `X-Rate-Limit-Remaining`.
    pub rate_remaining: Option<u64>,
}

impl Response {
    /// Okta's `errorCode` and `errorSummary`, and the request id, for a log line.
    pub fn error_details(&self) -> String {
        #[derive(serde::Deserialize)]
        struct E {
            #[serde(rename = "errorCode")]
            code: Option<String>,
            #[serde(rename = "errorSummary")]
            summary: Option<String>,
        }
        let mut out = format!("HTTP {}", self.status);
        if let Ok(e) = serde_json::from_slice::<E>(&self.body) {
            if let Some(c) = e.code {
                out.push_str(&format!(", errorCode {c}"));
            }
            if let Some(s) = e.summary {
                out.push_str(&format!(", errorSummary {s:?}"));
            }
        }
        if let Some(id) = &self.request_id {
            out.push_str(&format!(", X-Okta-Request-Id {id}"));
        }
        out
    }

    /// How long until the rate-limit window resets: `X-Rate-Limit-Reset` measured against the
    /// response's own `Date` (so a skewed local clock does not matter), at least 1 s, at most
    /// 5 minutes; 60 s when either header is missing.
    pub fn rate_limit_wait(&self) -> Duration {
        match (self.rate_reset, self.date) {
            (Some(reset), Some(date)) => {
                // A reset past what a SystemTime holds is as good as "far away".
                let Some(reset) = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(reset))
                else {
                    return Duration::from_secs(300);
                };
                reset
                    .duration_since(date)
                    .unwrap_or_default()
                    .clamp(Duration::from_secs(1), Duration::from_secs(300))
            }
            _ => Duration::from_secs(60),
        }
    }

    /// Okta's answer to a paging cursor it does not honour: 400 `E0000029` ("Invalid paging
    /// request.", cause "Invalid cursor.").
    pub fn is_invalid_cursor(&self) -> bool {
        #[derive(serde::Deserialize)]
        struct E {
            #[serde(rename = "errorCode")]
            code: Option<String>,
        }
        self.status == 400
            && serde_json::from_slice::<E>(&self.body)
                .ok()
                .and_then(|e| e.code)
                .is_some_and(|c| c == "E0000029")
    }

    /// A 429 for too many simultaneous requests: Okta then sends `X-Rate-Limit-Limit: 0` and
    /// `X-Rate-Limit-Remaining: 0`, and the reset time is only an estimate.
    pub fn is_concurrency_limit(&self) -> bool {
        self.status == 429 && self.rate_limit == Some(0) && self.rate_remaining == Some(0)
    }
}

/// Why a request produced no response.
#[derive(Debug)]
pub enum FetchError {
    /// The URL is not on the org's origin; the token is never sent there.
    OtherOrigin(String),
    /// DNS, connect, TLS, timeout or reset.
    Transport(String),
    /// The body is larger than [`MAX_BODY`].
    TooLarge,
    /// No OAuth token could be had (the cause, in words).
    Auth(String),
}

impl FetchError {
    /// The seed's error id for it: Okta unreachable is `PullError 301`, no OAuth token is
    /// `SetupError 100`, an answer that cannot be used is `PullError 302`.
    pub fn id(&self) -> crate::errors::ErrorId {
        use crate::errors::ErrorId;
        match self {
            FetchError::Transport(_) => ErrorId::Pull301,
            FetchError::Auth(_) => ErrorId::Setup100,
            FetchError::OtherOrigin(_) | FetchError::TooLarge => ErrorId::Pull302,
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::OtherOrigin(u) => write!(
                f,
                "refused to send the API token to {u}, which is not the configured okta_url"
            ),
            FetchError::Transport(e) => write!(f, "{e}"),
            FetchError::TooLarge => {
                write!(f, "the response body is larger than {} MiB", MAX_BODY >> 20)
            }
            FetchError::Auth(e) => write!(f, "OAuth: {e}"),
        }
    }
}

/// A client for one org.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    url: Origin,
    token: Secret,
    /// The OAuth app, when it authenticates instead of `token`.
    oauth: Option<super::oauth::TokenSource>,
}

impl Client {
    /// A client for `url`, authenticating with `token`. TLS verification is always on: against
    /// Mozilla's roots, or only against `ca_file`'s certificates when it is set. The proxy is
    /// `settings.proxy`, else the environment's (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`).
    ///
    /// # Errors
    /// A message naming `ca_file` or `proxy` when they cannot be used.
    pub fn new(url: Origin, token: Secret, settings: &HttpSettings) -> Result<Client, String> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &settings.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("inputs.okta.ca_file: cannot read {}: {e}", ca.display()))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(format!(
                    "inputs.okta.ca_file: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    ca.display()
                ));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let mut config =
            crate::http_agent::config(settings.connect_timeout, settings.request_timeout)
                .tls_config(tls.build());
        if let Some(p) = &settings.proxy {
            let proxy = ureq::Proxy::new(p.expose())
                .map_err(|_| "inputs.okta.proxy: not a proxy URL".to_string())?;
            config = config.proxy(Some(proxy));
        }
        let agent: ureq::Agent = config.build().into();
        Ok(Client {
            agent,
            url,
            token,
            oauth: None,
        })
    }

    /// The client of `okta`'s settings: its API token, or its OAuth app.
    ///
    /// # Errors
    /// As [`Client::new`], and an OAuth key that cannot be used.
    pub fn for_input(okta: &crate::config::Okta) -> Result<Client, String> {
        let mut c = Client::new(okta.url.clone(), okta.token.clone(), &okta.http)?;
        if let Some(o) = &okta.oauth {
            c.oauth = Some(super::oauth::TokenSource::new(
                o,
                &okta.url.base(),
                &okta.services,
            )?);
        }
        Ok(c)
    }

    /// The OAuth app's token state, if it authenticates so.
    pub fn oauth(&self) -> Option<&super::oauth::TokenSource> {
        self.oauth.as_ref()
    }

    /// The org.
    pub fn url(&self) -> &Origin {
        &self.url
    }

    /// `GET url` (blocking; call it through `smol::unblock`).
    ///
    /// # Errors
    /// [`FetchError`] when there is no usable response.
    pub fn get(&self, url: &str) -> Result<Response, FetchError> {
        if !self.url.same_origin(url) {
            return Err(FetchError::OtherOrigin(url.to_string()));
        }
        let mut retried = false;
        let mut resp = loop {
            let mut req = self.agent.get(url).header("Accept", "application/json");
            match &self.oauth {
                None => req = req.header("Authorization", format!("SSWS {}", self.token.expose())),
                Some(ts) => {
                    for (name, value) in ts
                        .headers(&self.agent, "GET", url)
                        .map_err(FetchError::Auth)?
                    {
                        req = req.header(name, value);
                    }
                }
            }
            let resp = req.call().map_err(|e| {
                FetchError::Transport(format!("the request to {} failed: {e}", self.url.base()))
            })?;
            if let Some(ts) = &self.oauth {
                let h = resp.headers();
                let text = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
                let retry = ts.observe(
                    resp.status().as_u16(),
                    text("www-authenticate"),
                    text("dpop-nonce"),
                    text("date"),
                );
                // Once: with Okta's new nonce, or with a new token.
                if retry != super::oauth::Retry::No && !retried {
                    retried = true;
                    continue;
                }
            }
            break resp;
        };
        let h = resp.headers();
        let text = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let links = h
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        let request_id = text("x-okta-request-id");
        let date = text("date").and_then(|d| crate::time::parse_http_date(&d));
        let number = |name: &str| text(name).and_then(|v| v.trim().parse().ok());
        let rate_reset = number("x-rate-limit-reset");
        let rate_limit = number("x-rate-limit-limit");
        let rate_remaining = number("x-rate-limit-remaining");
        let status = resp.status().as_u16();
        // Sized from Content-Length (up to 8 MiB, whatever the header claims): a page is read
        // without growing and copying the buffer a dozen times.
        let expected = number("content-length").unwrap_or(0).min(8 << 20);
        let mut body = body_buffer(expected as usize);
        resp.body_mut()
            .as_reader()
            .take(MAX_BODY + 1)
            .read_to_end(&mut body)
            .map_err(|e| FetchError::Transport(format!("reading the response body: {e}")))?;
        if body.len() as u64 > MAX_BODY {
            return Err(FetchError::TooLarge);
        }
        Ok(Response {
            status,
            body,
            links,
            request_id,
            date,
            rate_reset,
            rate_limit,
            rate_remaining,
        })
    }
}
