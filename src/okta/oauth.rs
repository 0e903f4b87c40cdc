//! OAuth 2.0 for an Okta API Services app (`../shared/okta-api.md` §1.2–1.4): a client
//! assertion signed with the app's private key (`private_key_jwt`, RS256 or ES256), the
//! client-credentials grant on the org's token endpoint, DPoP (RFC 9449) with a key pair made
//! at start and held in memory only, Okta's `use_dpop_nonce` retries, and a token reused
//! until 80% of its life. The keys and the signing are `crate::jose`'s.
//!
//! Nothing secret is ever formatted: the assertion and the token have no `Debug` output
//! beyond their kind, and no error text quotes them.

use crate::config::{DpopMode, OAuth, Service};
use crate::jose::{AppKey, DpopKey, now_secs, random_id};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How an access token is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `Authorization: Bearer`.
    Bearer,
    /// `Authorization: DPoP`, with a proof on every call.
    Dpop,
}

struct Token {
    value: crate::config::Secret,
    kind: TokenKind,
    renew_at: Instant,
    /// A little before `expires_in` ends: never sent after this.
    expires_at: Instant,
    scopes: Vec<String>,
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    /// The newest `DPoP-Nonce` Okta sent.
    nonce: Option<String>,
    /// Tokens taken so far (for `validate` and the tests' figures).
    issued: u64,
    /// Okta's clock minus ours, seconds, from its `Date` headers (within ±10 minutes): the
    /// times in assertions and proofs are Okta's.
    skew: i64,
    /// The token endpoint rate-limited us until then.
    blocked_until: Option<Instant>,
    /// Scopes Okta said the app may not have: not asked for again this run.
    denied: Vec<String>,
}

/// What an API answer asks of the next try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Nothing: the answer stands.
    No,
    /// Once, with the nonce the answer gave.
    Nonce,
    /// Once, with a new token (the one sent was refused as invalid or expired).
    Renew,
}

/// The app's credentials and its current token.
pub struct TokenSource {
    client_id: String,
    key: AppKey,
    kid: Option<String>,
    scopes: Vec<String>,
    mode: DpopMode,
    dpop: DpopKey,
    token_url: String,
    state: Mutex<State>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_id", &self.client_id)
            .field("alg", &self.key.alg())
            .field("dpop", &self.mode)
            .finish_non_exhaustive()
    }
}

/// An OAuth error body: `{"error", "error_description"}`.
#[derive(serde::Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// What an OAuth error means, in words.
fn explain(e: &OAuthError, status: u16, scopes: &[String]) -> String {
    let why = match e.error.as_str() {
        "invalid_client" => "the key is not registered with the app (check key_id and the app's public keys), or the client assertion is wrong".to_string(),
        "invalid_scope" => format!(
            "a scope asked for ({}) is not granted to the app: grant it on the app's \"Okta API Scopes\" tab, or set inputs.okta.credentials.oauth.scopes",
            scopes.join(" ")
        ),
        "invalid_dpop_proof" => "the app requires DPoP: set dpop: auto or true".to_string(),
        "unauthorized_client" => "the app may not use the client-credentials grant (is it an API Services app?)".to_string(),
        "" => format!("HTTP {status}"),
        other => other.to_string(),
    };
    let desc = crate::logging::escape_controls(&e.error_description);
    if e.error.is_empty() {
        why
    } else {
        format!("{} ({why}): {desc}", e.error)
    }
}

impl TokenSource {
    /// The credentials of `o`, for the org at `base` (`https://acme.okta.com`), asking for
    /// the scopes `services` need unless `o` names them.
    ///
    /// # Errors
    /// A key that cannot be used, named by its config key.
    pub fn new(o: &OAuth, base: &str, services: &[Service]) -> Result<TokenSource, String> {
        let (key, jwk_kid) = AppKey::parse(o.private_key.expose())
            .map_err(|e| format!("inputs.okta.credentials.oauth.{}: {e}", o.private_key_from))?;
        Ok(TokenSource {
            client_id: o.client_id.clone(),
            key,
            kid: o.key_id.clone().or(jwk_kid),
            scopes: o.scopes.clone().unwrap_or_else(|| scopes(services)),
            mode: o.dpop,
            dpop: DpopKey::generate()?,
            token_url: format!("{base}/oauth2/v1/token"),
            state: Mutex::new(State::default()),
        })
    }

    /// Now on Okta's clock.
    fn okta_now(&self) -> u64 {
        let skew = crate::lock(&self.state).skew;
        now_secs().saturating_add_signed(skew)
    }

    /// Learns Okta's clock from a `Date` header.
    fn learn_date(&self, date: Option<&str>) {
        let Some(t) = date.and_then(crate::time::parse_http_date) else {
            return;
        };
        let okta = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let skew = okta - now_secs() as i64;
        if skew.unsigned_abs() <= crate::time::TRUSTED_SKEW.as_secs() {
            crate::lock(&self.state).skew = skew;
        }
    }

    fn assertion(&self) -> Result<String, String> {
        let now = self.okta_now();
        let mut header = serde_json::json!({"alg": self.key.alg(), "typ": "JWT"});
        if let Some(k) = &self.kid {
            header["kid"] = k.clone().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + 300,
            "jti": random_id(),
        });
        self.key.jwt(&header, &claims)
    }

    /// Takes a new token (retrying once with Okta's nonce, and once without the scopes Okta
    /// says the app may not have).
    fn fetch(&self, agent: &ureq::Agent) -> Result<Token, String> {
        if let Some(until) = crate::lock(&self.state).blocked_until
            && Instant::now() < until
        {
            return Err(format!(
                "the token endpoint rate-limited the app; the next token request is in {} s",
                until.saturating_duration_since(Instant::now()).as_secs()
            ));
        }
        let mut spent = Spent::default();
        loop {
            match self.attempt(agent, spent)? {
                TokenAnswer::Token(t) => return Ok(t),
                TokenAnswer::ClockOff => spent.clock = true,
                TokenAnswer::UseNonce => spent.nonce = true,
                TokenAnswer::DeniedScopes(named) => {
                    spent.scope = true;
                    log::error!(
                        "{}: OAuth: invalid_scope: the app is not granted {}; the services that need it wait (403) and the others go on. Grant it on the app's \"Okta API Scopes\" tab.",
                        crate::errors::ErrorId::Setup100,
                        named.join(" ")
                    );
                    crate::lock(&self.state).denied.extend(named);
                }
                TokenAnswer::Refused(why) => return Err(why),
            }
        }
    }

    /// One token request. `spent` says which second tries are used up, so that each kind of
    /// retry is asked for at most once.
    ///
    /// # Errors
    /// What makes the request impossible (no scope left, the endpoint unreachable or rate
    /// limited, an answer that is no token or a Bearer token where DPoP is required).
    fn attempt(&self, agent: &ureq::Agent, spent: Spent) -> Result<TokenAnswer, String> {
        let (nonce, denied, used_skew) = {
            let st = crate::lock(&self.state);
            (st.nonce.clone(), st.denied.clone(), st.skew)
        };
        let asked: Vec<&str> = self
            .scopes
            .iter()
            .filter(|s| !denied.contains(s))
            .map(String::as_str)
            .collect();
        if asked.is_empty() {
            return Err(format!(
                "invalid_scope: none of the scopes asked for is granted to the app ({}); grant them on its \"Okta API Scopes\" tab",
                denied.join(" ")
            ));
        }
        let scope = asked.join(" ");
        let now = self.okta_now();
        let form = [
            ("grant_type", "client_credentials".to_string()),
            ("scope", scope.clone()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
            ),
            ("client_assertion", self.assertion()?),
        ];
        let mut req = agent
            .post(&self.token_url)
            .header("Accept", "application/json");
        if self.mode != DpopMode::Off {
            req = req.header(
                "DPoP",
                self.dpop
                    .proof("POST", &self.token_url, nonce.as_deref(), None, now)?,
            );
        }
        // A token's life counts from before it was asked for: Okta issued it later.
        let asked_at = Instant::now();
        let mut resp = req
            .send_form(form.iter().map(|(k, v)| (*k, v.as_str())))
            .map_err(|e| {
                format!(
                    "the token endpoint {} cannot be reached: {e}",
                    self.token_url
                )
            })?;
        let status = resp.status().as_u16();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if let Some(n) = header("dpop-nonce") {
            crate::lock(&self.state).nonce = Some(n);
        }
        self.learn_date(header("date").as_deref());
        if status == 429 {
            // The token endpoint's own budget: wait for its reset (Okta's clock).
            let reset = header("x-rate-limit-reset").and_then(|r| r.trim().parse::<u64>().ok());
            let wait = reset.map_or(60, |r| r.saturating_sub(self.okta_now()).clamp(1, 300));
            crate::lock(&self.state).blocked_until =
                Some(Instant::now() + Duration::from_secs(wait));
            return Err(format!(
                "the token endpoint rate-limited the app (HTTP 429); the next token request is in {wait} s"
            ));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .map_err(|e| format!("reading the token endpoint's answer: {e}"))?;
        if (200..300).contains(&status) {
            #[derive(serde::Deserialize)]
            struct Answer {
                access_token: crate::config::Secret,
                token_type: String,
                expires_in: u64,
                #[serde(default)]
                scope: String,
            }
            let a: Answer = serde_json::from_str(&body)
                .map_err(|_| "the token endpoint's answer is not a token".to_string())?;
            let kind = if a.token_type.eq_ignore_ascii_case("DPoP") {
                TokenKind::Dpop
            } else {
                TokenKind::Bearer
            };
            if kind == TokenKind::Bearer && self.mode == DpopMode::On {
                return Err("Okta issued a Bearer token but dpop is true: turn on \"Require DPoP\" for the app, or set dpop: auto".into());
            }
            let life = Duration::from_secs(a.expires_in.clamp(1, 86_400));
            let (renew_at, expires_at) = token_times(asked_at, life);
            let mut st = crate::lock(&self.state);
            st.issued += 1;
            return Ok(TokenAnswer::Token(Token {
                value: a.access_token,
                kind,
                renew_at,
                expires_at,
                scopes: a.scope.split_whitespace().map(str::to_string).collect(),
            }));
        }
        let e: OAuthError = serde_json::from_str(&body).unwrap_or_default();
        // The first request went out on the local clock; Okta's `Date` now says it is
        // more than 30 s off: once more, on Okta's clock.
        let skew = crate::lock(&self.state).skew;
        if !spent.clock && (skew - used_skew).abs() > 30 {
            return Ok(TokenAnswer::ClockOff);
        }
        if e.error == "use_dpop_nonce" && !spent.nonce && self.mode != DpopMode::Off {
            return Ok(TokenAnswer::UseNonce);
        }
        if e.error == "invalid_scope" && !spent.scope {
            // Okta names them: "The following scopes are not allowed: a b". The services
            // that need them get 403 and wait; the others go on.
            let named: Vec<String> = e
                .error_description
                .rsplit(':')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .filter(|s| self.scopes.iter().any(|a| a == s))
                .map(str::to_string)
                .collect();
            if !named.is_empty() {
                return Ok(TokenAnswer::DeniedScopes(named));
            }
        }
        if e.error == "invalid_dpop_proof" && self.mode == DpopMode::Off {
            return Ok(TokenAnswer::Refused(format!(
                "invalid_dpop_proof: the app requires DPoP (\"Require Demonstrating Proof of Possession\") and dpop is false: set dpop: auto, or turn the requirement off for the app ({})",
                crate::logging::escape_controls(&e.error_description)
            )));
        }
        Ok(TokenAnswer::Refused(format!(
            "the token request was refused (HTTP {status}): {}",
            explain(&e, status, &self.scopes)
        )))
    }

    /// The headers for `method url`: `Authorization` and, with a DPoP token, `DPoP`. Takes or
    /// renews the token first when it is missing or at 80% of its life.
    ///
    /// # Errors
    /// Why no token could be had (SetupError 100 material).
    pub fn headers(
        &self,
        agent: &ureq::Agent,
        method: &str,
        url: &str,
    ) -> Result<Vec<(&'static str, String)>, String> {
        let due = {
            let st = crate::lock(&self.state);
            st.token
                .as_ref()
                .is_none_or(|t| Instant::now() >= t.renew_at)
        };
        if due {
            match self.fetch(agent) {
                Ok(t) => crate::lock(&self.state).token = Some(t),
                // A renewal that fails (the token endpoint's 429, a network blip) leaves the
                // current token in use while it lives.
                Err(e) => {
                    let alive = crate::lock(&self.state)
                        .token
                        .as_ref()
                        .is_some_and(|t| Instant::now() < t.expires_at);
                    if !alive {
                        crate::lock(&self.state).token = None;
                        return Err(e);
                    }
                    log::warn!(
                        "OAuth: renewing the token failed ({e}); the current one is used while it lives."
                    );
                }
            }
        }
        let st = crate::lock(&self.state);
        let Some(t) = st.token.as_ref() else {
            return Err("no token".into());
        };
        let now = now_secs().saturating_add_signed(st.skew);
        let mut out = Vec::with_capacity(2);
        match t.kind {
            TokenKind::Bearer => {
                out.push(("Authorization", format!("Bearer {}", t.value.expose())))
            }
            TokenKind::Dpop => {
                out.push(("Authorization", format!("DPoP {}", t.value.expose())));
                out.push((
                    "DPoP",
                    self.dpop.proof(
                        method,
                        url,
                        st.nonce.as_deref(),
                        Some(t.value.expose()),
                        now,
                    )?,
                ));
            }
        }
        Ok(out)
    }

    /// Reads an API answer's `DPoP-Nonce` and `WWW-Authenticate`: a newer nonce is kept; a
    /// 401 asking for a nonce is retried once with it; a 401 saying the token is invalid
    /// drops the token, to be renewed and retried once.
    pub fn observe(
        &self,
        status: u16,
        www_authenticate: Option<&str>,
        nonce: Option<&str>,
        date: Option<&str>,
    ) -> Retry {
        self.learn_date(date);
        let mut st = crate::lock(&self.state);
        if let Some(n) = nonce {
            st.nonce = Some(n.to_string());
        }
        if status != 401 {
            return Retry::No;
        }
        let w = www_authenticate.unwrap_or("");
        if w.contains("use_dpop_nonce") && nonce.is_some() {
            return Retry::Nonce;
        }
        if w.contains("invalid_token") || st.token.is_some() {
            st.token = None;
            return Retry::Renew;
        }
        Retry::No
    }

    /// `(DPoP in use, the granted scopes, tokens taken so far)`, after a token was taken.
    pub fn granted(&self) -> Option<(bool, Vec<String>, u64)> {
        let st = crate::lock(&self.state);
        st.token
            .as_ref()
            .map(|t| (t.kind == TokenKind::Dpop, t.scopes.clone(), st.issued))
    }

    /// Scopes asked for that Okta said the app is not granted.
    pub fn denied(&self) -> Vec<String> {
        crate::lock(&self.state).denied.clone()
    }
}

/// When a token asked for at `asked_at` with `life` (its `expires_in`) is renewed, and after
/// when it is never sent: it is reused until 80% of its life, and a failed renewal keeps it in
/// use until a margin before its end (5% of its life, and at least a quarter of it up to 2 s:
/// a request takes time to reach Okta, more on a loaded machine). Never renewed after that.
fn token_times(asked_at: Instant, life: Duration) -> (Instant, Instant) {
    let margin = life
        .mul_f64(0.05)
        .max((life / 4).min(Duration::from_secs(2)));
    let expires_at = asked_at + life.saturating_sub(margin);
    ((asked_at + life.mul_f64(0.8)).min(expires_at), expires_at)
}

/// The scopes the services need, each once, in their order: what an OAuth app asks for when
/// `scopes` is not given (okta-api.md §1.2's scope table).
pub fn scopes(services: &[Service]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for scope in services.iter().flat_map(|s| s.kind.scopes()) {
        if !out.iter().any(|x| x == scope) {
            out.push((*scope).to_string());
        }
    }
    out
}

/// What one token request came to, for the loop in [`TokenSource::fetch`] to decide on.
enum TokenAnswer {
    /// A token.
    Token(Token),
    /// Okta's `Date` shows the assertion was made on a clock more than 30 s off: once more,
    /// on Okta's clock.
    ClockOff,
    /// Okta asks for its DPoP nonce (kept from its answer): once more, with it.
    UseNonce,
    /// Okta names scopes the app is not granted: they are dropped, and once more without.
    DeniedScopes(Vec<String>),
    /// A refusal no retry helps, worded for the log.
    Refused(String),
}

/// The second tries already used by one [`TokenSource::fetch`].
#[derive(Debug, Default, Clone, Copy)]
struct Spent {
    clock: bool,
    nonce: bool,
    scope: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_renewed_at_80_percent_and_never_sent_within_its_margin() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let (renew, expires) = token_times(t0, s(3600));
        assert_eq!(renew - t0, s(2880));
        assert_eq!(expires - t0, s(3420), "5% of an hour");
        let (renew, expires) = token_times(t0, s(2));
        assert_eq!(
            expires - t0,
            Duration::from_millis(1500),
            "a quarter of a short life"
        );
        assert_eq!(renew, expires, "renewed no later than it stops being sent");
        let (renew, expires) = token_times(t0, s(60));
        assert_eq!((renew - t0, expires - t0), (s(48), s(57)));
    }
}
