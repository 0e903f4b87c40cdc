//! Okta's side of OAuth 2.0 for the simulator: an API Services app with a registered public
//! key, the org's token endpoint (client assertion checks: signature, `iss`/`sub`/`aud`,
//! `exp`, `jti` replay; DPoP proof checks: signature against the header's `jwk`, `htm`, `htu`,
//! `iat` window, `jti` replay, the nonce, rotated), short token lifetimes, and the API's checks
//! (token known and alive, DPoP binding with `ath`, scope per endpoint).

use super::strict::error_body;
use crate::config::ServiceKind;
use crate::httpd::{Reply, Request};
use crate::jose::b64url_decode;
use crate::lock;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The app the simulated org knows.
#[derive(Debug, Clone)]
pub struct App {
    /// Its client id.
    pub client_id: String,
    /// Its registered public key, as a JWK (`AppKey::public_jwk`).
    pub public_jwk: serde_json::Value,
    /// "Require DPoP": token requests without a proof are refused.
    pub require_dpop: bool,
    /// Access-token lifetime (Okta's is an hour).
    pub token_lifetime: Duration,
    /// Scopes granted to the app.
    pub granted: Vec<String>,
    /// A new DPoP nonce after this many tokens (0: one nonce for good).
    pub nonce_every: u64,
    /// API calls must carry the current nonce too (Okta may ask with `use_dpop_nonce`).
    pub api_nonce: bool,
    /// The org's clock is this far from the local one (seconds; its `Date` headers show it).
    pub clock_offset_secs: i64,
    /// How far a proof's or an assertion's `iat` may be from the org's clock (seconds).
    pub iat_window_secs: i64,
    /// The token endpoint's own rate limit: at most this many token requests per window of
    /// `token_window` (then 429 with `X-Rate-Limit-*`); `None`: no limit.
    pub token_limit: Option<u64>,
    /// See `token_limit`.
    pub token_window: Duration,
    /// Every n-th API call finds its token revoked (an admin revoked it, or Okta lost it):
    /// answered 401 `invalid_token`; 0: never.
    pub revoke_every: u64,
}

impl App {
    /// An app with Okta's defaults: DPoP required, hour-long tokens, one nonce, a 5-minute
    /// `iat` window, the org's clock right.
    pub fn new(client_id: &str, public_jwk: serde_json::Value, granted: Vec<String>) -> App {
        App {
            client_id: client_id.into(),
            public_jwk,
            require_dpop: true,
            token_lifetime: Duration::from_secs(3600),
            granted,
            nonce_every: 0,
            api_nonce: false,
            clock_offset_secs: 0,
            iat_window_secs: 300,
            token_limit: None,
            token_window: Duration::from_secs(60),
            revoke_every: 0,
        }
    }

    /// Now on the org's clock.
    pub fn now(&self) -> SystemTime {
        if self.clock_offset_secs >= 0 {
            SystemTime::now() + Duration::from_secs(self.clock_offset_secs.unsigned_abs())
        } else {
            SystemTime::now() - Duration::from_secs(self.clock_offset_secs.unsigned_abs())
        }
    }
}

struct Issued {
    expires: Instant,
    /// The DPoP key's JWK the token is bound to (`None`: Bearer).
    bound: Option<serde_json::Value>,
    scopes: Vec<String>,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, Issued>,
    jtis: HashSet<String>,
    nonce: String,
    issued: u64,
    nonces: u64,
    expired_used: u64,
    /// The token endpoint's window: its start and the requests in it.
    window: Option<(Instant, u64)>,
    /// Token requests made while the window was exhausted (a client that hammers).
    over_limit: u64,
    /// API calls checked, and tokens revoked by `revoke_every`.
    calls: u64,
    revoked: u64,
}

/// The simulated org's OAuth side.
pub struct Server {
    app: App,
    state: Mutex<State>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("client_id", &self.app.client_id)
            .finish_non_exhaustive()
    }
}

/// A verified JWT's header and claims.
struct Jwt {
    header: serde_json::Value,
    claims: serde_json::Value,
}

/// Verifies `token`'s signature with `jwk` (RS256 or ES256).
fn verify(token: &str, jwk: &serde_json::Value) -> Result<Jwt, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, c, s] = parts[..] else {
        return Err("not a JWT".into());
    };
    let json = |p: &str| -> Result<serde_json::Value, String> {
        serde_json::from_slice(&b64url_decode(p).ok_or("bad base64url")?)
            .map_err(|_| "bad JSON".to_string())
    };
    let (header, claims) = (json(h)?, json(c)?);
    let sig = b64url_decode(s).ok_or("bad signature encoding")?;
    let msg = format!("{h}.{c}");
    let field = |k: &str| {
        jwk[k]
            .as_str()
            .and_then(b64url_decode)
            .ok_or_else(|| format!("the key has no {k}"))
    };
    let ok = match (header["alg"].as_str(), jwk["kty"].as_str()) {
        (Some("RS256"), Some("RSA")) => ring::signature::RsaPublicKeyComponents {
            n: field("n")?,
            e: field("e")?,
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            msg.as_bytes(),
            &sig,
        )
        .is_ok(),
        (Some("ES256"), Some("EC")) => {
            let mut point = vec![4];
            point.extend(field("x")?);
            point.extend(field("y")?);
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(msg.as_bytes(), &sig)
            .is_ok()
        }
        (alg, _) => return Err(format!("alg {alg:?} does not fit the key")),
    };
    if ok {
        Ok(Jwt { header, claims })
    } else {
        Err("the signature does not verify".into())
    }
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::json!({"error": error, "error_description": description})
            .to_string()
            .into_bytes(),
    }
}

/// `application/x-www-form-urlencoded` pairs.
fn form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let d = |s: &str| crate::httpd::percent_decode(&s.replace('+', " "));
            (d(k), d(v))
        })
        .collect()
}

fn random_token() -> String {
    (0..4)
        .map(|_| format!("{:016x}", fastrand::u64(..)))
        .collect()
}

impl Server {
    /// The org's side for `app`.
    pub fn new(app: App) -> Server {
        let state = State {
            nonce: random_token(),
            ..State::default()
        };
        Server {
            app,
            state: Mutex::new(state),
        }
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> u64 {
        lock(&self.state).issued
    }

    /// Nonces handed out so far (rotations plus the first).
    pub fn nonces(&self) -> u64 {
        lock(&self.state).nonces
    }

    /// API calls that came with an expired token.
    pub fn expired_used(&self) -> u64 {
        lock(&self.state).expired_used
    }

    /// Token requests after a 429, within the same window.
    pub fn over_limit(&self) -> u64 {
        lock(&self.state).over_limit
    }

    /// Tokens revoked by `revoke_every`.
    pub fn revoked(&self) -> u64 {
        lock(&self.state).revoked
    }

    /// Checks a DPoP proof for `method url`; `Err((error, description))`.
    fn proof(
        &self,
        st: &mut State,
        proof: &str,
        method: &str,
        url: &str,
        token: Option<&str>,
        need_nonce: bool,
    ) -> Result<serde_json::Value, (&'static str, String)> {
        let parts: Vec<&str> = proof.split('.').collect();
        let header: serde_json::Value = parts
            .first()
            .and_then(|h| b64url_decode(h))
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or((
                "invalid_dpop_proof",
                "The DPoP proof JWT is malformed.".into(),
            ))?;
        if header["typ"] != "dpop+jwt" {
            return Err(("invalid_dpop_proof", "'typ' must be dpop+jwt.".into()));
        }
        let jwk = header["jwk"].clone();
        let jwt = verify(proof, &jwk).map_err(|e| ("invalid_dpop_proof", e))?;
        let c = &jwt.claims;
        if c["htm"] != method {
            return Err((
                "invalid_dpop_proof",
                "'htm' claim in the DPoP proof JWT is invalid.".into(),
            ));
        }
        if c["htu"] != url {
            return Err((
                "invalid_dpop_proof",
                "'htu' claim in the DPoP proof JWT is invalid.".into(),
            ));
        }
        let iat = c["iat"].as_i64().unwrap_or(0);
        if (iat - secs(self.app.now())).abs() > self.app.iat_window_secs {
            return Err((
                "invalid_dpop_proof",
                "'iat' is outside the allowed window.".into(),
            ));
        }
        let jti = c["jti"].as_str().unwrap_or("").to_string();
        if jti.is_empty() || !st.jtis.insert(jti) {
            return Err(("invalid_dpop_proof", "'jti' was used before.".into()));
        }
        if let Some(t) = token {
            let want = crate::jose::b64url(
                ring::digest::digest(&ring::digest::SHA256, t.as_bytes()).as_ref(),
            );
            if c["ath"] != want.as_str() {
                return Err((
                    "invalid_dpop_proof",
                    "'ath' does not match the token.".into(),
                ));
            }
        }
        if need_nonce && c["nonce"] != st.nonce.as_str() {
            return Err((
                "use_dpop_nonce",
                "Authorization server requires nonce in DPoP proof.".into(),
            ));
        }
        let _ = jwt.header;
        Ok(jwk)
    }

    /// Now on the org's clock.
    pub fn now(&self) -> SystemTime {
        self.app.now()
    }

    /// `POST /oauth2/v1/token`, dated by the org's clock.
    pub fn token(&self, req: &Request, base: &str) -> Reply {
        let mut r = self.token_answer(req, base);
        r.headers
            .push(("date".into(), crate::time::format_http_date(self.app.now())));
        r
    }

    fn token_answer(&self, req: &Request, base: &str) -> Reply {
        let f = form(&req.body);
        let token_url = format!("{base}/oauth2/v1/token");
        let mut st = lock(&self.state);
        if let Some(limit) = self.app.token_limit {
            let w = self.app.token_window;
            let (start, n) = match st.window {
                Some((s, n)) if s.elapsed() < w => (s, n + 1),
                _ => (Instant::now(), 1),
            };
            st.window = Some((start, n));
            if n > limit {
                if n > limit + 1 {
                    st.over_limit += 1;
                }
                let reset =
                    secs(self.app.now()) + (w.saturating_sub(start.elapsed())).as_secs() as i64 + 1;
                let mut r = Reply {
                    status: 429,
                    headers: vec![
                        ("content-type".into(), "application/json".into()),
                        ("x-rate-limit-limit".into(), limit.to_string()),
                        ("x-rate-limit-remaining".into(), "0".into()),
                        ("x-rate-limit-reset".into(), reset.to_string()),
                    ],
                    body: error_body(
                        "E0000047",
                        "API call exceeded rate limit due to too many requests.",
                    ),
                };
                r.headers.shrink_to_fit();
                return r;
            }
        }
        if f.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return oauth_error(
                400,
                "unsupported_grant_type",
                "The grant type is not supported.",
            );
        }
        if f.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return oauth_error(401, "invalid_client", "Client authentication failed.");
        }
        let assertion = f.get("client_assertion").cloned().unwrap_or_default();
        let checked = verify(&assertion, &self.app.public_jwk).and_then(|j| {
            let c = &j.claims;
            let now = secs(self.app.now());
            let exp = c["exp"].as_i64().unwrap_or(0);
            let iat = c["iat"].as_i64().unwrap_or(now);
            if c["iss"] != self.app.client_id.as_str() || c["sub"] != self.app.client_id.as_str() {
                Err("iss and sub must be the client id".to_string())
            } else if c["aud"] != token_url.as_str() {
                Err("aud must be the token endpoint".into())
            } else if exp <= now || exp > now + 3600 {
                Err("exp is out of range".into())
            } else if iat > now + self.app.iat_window_secs {
                Err("iat is in the future".into())
            } else if !st.jtis.insert(c["jti"].as_str().unwrap_or("").to_string()) {
                Err("the jti was used before".into())
            } else {
                Ok(())
            }
        });
        if let Err(e) = checked {
            return oauth_error(
                401,
                "invalid_client",
                &format!("The client_assertion is invalid: {e}."),
            );
        }
        let scopes: Vec<String> = f
            .get("scope")
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        if let Some(s) = scopes.iter().find(|s| !self.app.granted.contains(s)) {
            return oauth_error(
                400,
                "invalid_scope",
                &format!("The following scopes are not allowed: {s}"),
            );
        }
        let bound = match req.header("dpop") {
            None if self.app.require_dpop => {
                return oauth_error(
                    400,
                    "invalid_dpop_proof",
                    "The DPoP proof JWT header is missing.",
                );
            }
            None => None,
            Some(p) => match self.proof(&mut st, p, "POST", &token_url, None, true) {
                Ok(jwk) => Some(jwk),
                Err((error, d)) => {
                    let mut r = oauth_error(400, error, &d);
                    r.headers.push(("dpop-nonce".into(), st.nonce.clone()));
                    if error == "use_dpop_nonce" {
                        st.nonces = st.nonces.max(1);
                    }
                    return r;
                }
            },
        };
        let token = random_token();
        let kind = if bound.is_some() { "DPoP" } else { "Bearer" };
        st.tokens.insert(
            token.clone(),
            Issued {
                expires: Instant::now() + self.app.token_lifetime,
                bound,
                scopes: scopes.clone(),
            },
        );
        st.issued += 1;
        if self.app.nonce_every > 0 && st.issued.is_multiple_of(self.app.nonce_every) {
            st.nonce = random_token();
            st.nonces += 1;
        }
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::json!({
                "token_type": kind,
                "expires_in": self.app.token_lifetime.as_secs().max(1),
                "access_token": token,
                "scope": scopes.join(" "),
            })
            .to_string()
            .into_bytes(),
        }
    }

    /// Checks an API call's credentials; `Err` is Okta's answer.
    pub fn check_api(
        &self,
        req: &Request,
        base: &str,
        kind: Option<ServiceKind>,
    ) -> Result<(), Reply> {
        let unauthorized = |scheme: &str, error: &str, nonce: Option<String>| {
            let mut r = Reply {
                status: 401,
                headers: vec![(
                    "www-authenticate".into(),
                    format!("{scheme} error=\"{error}\""),
                )],
                body: error_body("E0000011", "Invalid token provided"),
            };
            if let Some(n) = nonce {
                r.headers.push(("dpop-nonce".into(), n));
            }
            r
        };
        let auth = req.header("authorization").unwrap_or("");
        let (scheme, token) = auth.split_once(' ').unwrap_or(("", ""));
        let mut st = lock(&self.state);
        st.calls += 1;
        if self.app.revoke_every > 0 && st.calls.is_multiple_of(self.app.revoke_every) {
            st.revoked += u64::from(st.tokens.remove(token).is_some());
        }
        let Some(issued) = st.tokens.get(token) else {
            return Err(unauthorized("Bearer", "invalid_token", None));
        };
        let (expires, bound, scopes) =
            (issued.expires, issued.bound.clone(), issued.scopes.clone());
        if Instant::now() >= expires {
            st.expired_used += 1;
            return Err(unauthorized(scheme, "invalid_token", None));
        }
        match (&bound, scheme) {
            (Some(jwk), "DPoP") => {
                let url = format!("{base}{}", req.path());
                let proof = req.header("dpop").unwrap_or("");
                match self.proof(&mut st, proof, "GET", &url, Some(token), self.app.api_nonce) {
                    Ok(k) if &k == jwk => {}
                    Ok(_) => return Err(unauthorized("DPoP", "invalid_dpop_proof", None)),
                    Err(("use_dpop_nonce", _)) => {
                        let n = st.nonce.clone();
                        return Err(unauthorized("DPoP", "use_dpop_nonce", Some(n)));
                    }
                    Err(_) => return Err(unauthorized("DPoP", "invalid_dpop_proof", None)),
                }
            }
            (None, "Bearer") => {}
            _ => return Err(unauthorized("DPoP", "invalid_token", None)),
        }
        if let Some(k) = kind
            && !scopes.iter().any(|s| s == k.scope())
        {
            return Err(Reply {
                status: 403,
                headers: vec![(
                    "www-authenticate".into(),
                    format!(
                        "{scheme} error=\"insufficient_scope\", scope=\"{}\"",
                        k.scope()
                    ),
                )],
                body: error_body(
                    "E0000006",
                    "You do not have permission to perform the requested action",
                ),
            });
        }
        Ok(())
    }
}
