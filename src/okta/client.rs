//! The Okta HTTP client: ureq on smol's blocking pool, `SSWS` auth sent only to the org's
//! origin, response bodies capped, and the headers the pullers need read out.

use crate::config::{OktaUrl, Secret};
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

    /// How long to wait before retrying after a 429: until `X-Rate-Limit-Reset`, measured
    /// against the response's own `Date` (so a skewed local clock does not matter), at least 1 s.
    pub fn rate_limit_wait(&self) -> Duration {
        match (self.rate_reset, self.date) {
            (Some(reset), Some(date)) => {
                let reset = SystemTime::UNIX_EPOCH + Duration::from_secs(reset);
                reset
                    .duration_since(date)
                    .unwrap_or_default()
                    .clamp(Duration::from_secs(1), Duration::from_secs(300))
            }
            _ => Duration::from_secs(60),
        }
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
        }
    }
}

/// A client for one org.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    url: OktaUrl,
    token: Secret,
}

impl Client {
    /// A client for `url`, authenticating with `token`.
    pub fn new(url: OktaUrl, token: Secret) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(60)))
            .max_redirects(0)
            .user_agent(concat!("okta-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client { agent, url, token }
    }

    /// The org.
    pub fn url(&self) -> &OktaUrl {
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
        let mut resp = self
            .agent
            .get(url)
            .header("Authorization", format!("SSWS {}", self.token.expose()))
            .header("Accept", "application/json")
            .call()
            .map_err(|e| FetchError::Transport(e.to_string()))?;
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
        let rate_reset = text("x-rate-limit-reset").and_then(|v| v.trim().parse().ok());
        let status = resp.status().as_u16();
        let mut body = Vec::new();
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
        })
    }
}
