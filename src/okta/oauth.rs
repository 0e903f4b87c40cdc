//! OAuth 2.0 for an Okta API Services app (`../shared/okta-api.md` §1.2–1.4): a client
//! assertion signed with the app's private key (`private_key_jwt`, RS256 or ES256), the
//! client-credentials grant on the org's token endpoint, DPoP (RFC 9449) with a key pair made
//! at start and held in memory only, Okta's `use_dpop_nonce` retries, and a token reused
//! until 80% of its life. Signing uses ring, which the binary already links through rustls.
//!
//! Nothing secret is ever formatted: the key, the assertion, the token and the DPoP key have
//! no `Debug` output beyond their kind, and no error text quotes them.

use crate::config::{DpopMode, OAuth};
use ring::rand::SecureRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// base64url without padding (RFC 7515 §2).
pub fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The bytes of base64url text (padding and the standard alphabet accepted too).
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A fresh random id (128 bits, hex), for `jti`.
fn random_id() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The app's private key.
pub enum AppKey {
    /// RS256.
    Rsa(RsaKeyPair),
    /// ES256 (P-256).
    Ec(EcdsaKeyPair),
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AppKey::Rsa(_) => "AppKey(RSA, redacted)",
            AppKey::Ec(_) => "AppKey(P-256, redacted)",
        })
    }
}

/// A DER length.
fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

/// A DER INTEGER of an unsigned big-endian magnitude.
fn der_uint(mag: &[u8], out: &mut Vec<u8>) {
    let mag: Vec<u8> = mag.iter().copied().skip_while(|b| *b == 0).collect();
    let pad = mag.first().is_none_or(|b| b & 0x80 != 0);
    out.push(0x02);
    der_len(mag.len() + usize::from(pad), out);
    if pad {
        out.push(0);
    }
    out.extend(mag);
}

/// The JWK fields Okta's admin console gives for a key.
#[derive(serde::Deserialize)]
struct Jwk {
    kty: String,
    crv: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<String>,
    p: Option<String>,
    q: Option<String>,
    dp: Option<String>,
    dq: Option<String>,
    qi: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl AppKey {
    /// Reads a PEM key (PKCS#8, PKCS#1 or SEC1) or a private JWK (JSON); returns the key and
    /// the JWK's `kid`, if any.
    ///
    /// # Errors
    /// What is wrong with the key, never the key itself.
    pub fn parse(text: &str) -> Result<(AppKey, Option<String>), String> {
        if text.trim_start().starts_with('{') {
            return AppKey::from_jwk(text);
        }
        use futures_rustls::rustls::pki_types::PrivateKeyDer;
        use futures_rustls::rustls::pki_types::pem::PemObject;
        let key = PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|_| {
            "not a PEM private key (PKCS#8, PKCS#1 or SEC1) nor a private JWK".to_string()
        })?;
        let rng = ring::rand::SystemRandom::new();
        let key = match key {
            PrivateKeyDer::Pkcs8(k) => {
                let der = k.secret_pkcs8_der();
                match RsaKeyPair::from_pkcs8(der) {
                    Ok(r) => AppKey::Rsa(r),
                    Err(rsa) => EcdsaKeyPair::from_pkcs8(
                        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                        der,
                        &rng,
                    )
                    .map(AppKey::Ec)
                    .map_err(|_| {
                        format!(
                            "a PKCS#8 key that is neither RSA (2048 to 4096 bits: {rsa}) nor EC P-256"
                        )
                    })?,
                }
            }
            PrivateKeyDer::Pkcs1(k) => AppKey::Rsa(
                RsaKeyPair::from_der(k.secret_pkcs1_der())
                    .map_err(|e| format!("an RSA key ring cannot use ({e}; 2048 to 4096 bits)"))?,
            ),
            PrivateKeyDer::Sec1(k) => AppKey::Ec(sec1(k.secret_sec1_der(), &rng)?),
            _ => return Err("an unknown private key type".into()),
        };
        Ok((key, None))
    }

    fn from_jwk(text: &str) -> Result<(AppKey, Option<String>), String> {
        let j: Jwk = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a JWK: {:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            )
        })?;
        let field = |v: &Option<String>, name: &str| -> Result<Vec<u8>, String> {
            v.as_deref()
                .and_then(b64url_decode)
                .ok_or_else(|| format!("the JWK has no usable \"{name}\" (a private key has it)"))
        };
        let key = match j.kty.as_str() {
            "RSA" => {
                // PKCS#1 RSAPrivateKey from the JWK's members.
                let mut body = vec![0x02, 0x01, 0x00];
                for (v, n) in [
                    (&j.n, "n"),
                    (&j.e, "e"),
                    (&j.d, "d"),
                    (&j.p, "p"),
                    (&j.q, "q"),
                    (&j.dp, "dp"),
                    (&j.dq, "dq"),
                    (&j.qi, "qi"),
                ] {
                    der_uint(&field(v, n)?, &mut body);
                }
                let mut der = vec![0x30];
                der_len(body.len(), &mut der);
                der.extend(body);
                AppKey::Rsa(
                    RsaKeyPair::from_der(&der)
                        .map_err(|e| format!("the JWK's RSA key cannot be used: {e}"))?,
                )
            }
            "EC" if j.crv.as_deref() == Some("P-256") => {
                let mut public = vec![4];
                public.extend(field(&j.x, "x")?);
                public.extend(field(&j.y, "y")?);
                AppKey::Ec(
                    EcdsaKeyPair::from_private_key_and_public_key(
                        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                        &field(&j.d, "d")?,
                        &public,
                        &ring::rand::SystemRandom::new(),
                    )
                    .map_err(|e| format!("the JWK's EC key cannot be used: {e}"))?,
                )
            }
            other => {
                return Err(format!(
                    "a JWK of kty {other:?}{}: RSA or EC P-256 keys sign (RS256, ES256)",
                    j.crv.map(|c| format!(", crv {c:?}")).unwrap_or_default()
                ));
            }
        };
        Ok((key, j.kid))
    }

    /// `RS256` or `ES256`.
    pub fn alg(&self) -> &'static str {
        match self {
            AppKey::Rsa(_) => "RS256",
            AppKey::Ec(_) => "ES256",
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let rng = ring::rand::SystemRandom::new();
        match self {
            AppKey::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| "RSA signing failed".to_string())?;
                Ok(sig)
            }
            AppKey::Ec(k) => k
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_string()),
        }
    }

    /// The public key as a JWK (what the app's JWKS must hold), without `kid`.
    pub fn public_jwk(&self) -> serde_json::Value {
        match self {
            AppKey::Rsa(k) => {
                let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public());
                serde_json::json!({"kty": "RSA", "n": b64url(&c.n), "e": b64url(&c.e)})
            }
            AppKey::Ec(k) => ec_jwk(k.public_key().as_ref()),
        }
    }

    /// A signed JWT of `header` and `claims` (both JSON objects).
    fn jwt(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, String> {
        jwt(header, claims, |m| self.sign(m))
    }
}

/// The P-256 public JWK of an uncompressed point.
fn ec_jwk(point: &[u8]) -> serde_json::Value {
    let (x, y) = point
        .get(1..)
        .unwrap_or_default()
        .split_at(point.len().saturating_sub(1) / 2);
    serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y)})
}

/// A SEC1 `ECPrivateKey` (P-256): the private scalar and the public point it carries.
fn sec1(der: &[u8], rng: &ring::rand::SystemRandom) -> Result<EcdsaKeyPair, String> {
    let bad = || "a SEC1 EC key that is not a P-256 key with its public key".to_string();
    // SEQUENCE { INTEGER 1, OCTET STRING d, [0] curve, [1] BIT STRING point }
    let find = |tag: u8, from: &[u8]| -> Option<(usize, usize)> {
        let mut i = 0;
        while i + 2 <= from.len() {
            let (t, len) = (from[i], usize::from(from[i + 1]));
            if len >= 0x80 {
                return None;
            }
            if t == tag {
                return Some((i + 2, len));
            }
            i += 2 + len;
        }
        None
    };
    let body = der.get(2..).ok_or_else(bad)?;
    let (d_at, d_len) = find(0x04, body).ok_or_else(bad)?;
    let d = body.get(d_at..d_at + d_len).ok_or_else(bad)?;
    let (p_at, p_len) = find(0xa1, body).ok_or_else(bad)?;
    let bits = body.get(p_at..p_at + p_len).ok_or_else(bad)?;
    // [1] { BIT STRING { 0 unused bits, point } }
    let point = bits.get(3..).ok_or_else(bad)?;
    EcdsaKeyPair::from_private_key_and_public_key(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        d,
        point,
        rng,
    )
    .map_err(|_| bad())
}

/// The DPoP key of this run (P-256, made at start, never written anywhere).
pub struct DpopKey {
    key: EcdsaKeyPair,
    jwk: serde_json::Value,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DpopKey(P-256, in memory, redacted)")
    }
}

impl DpopKey {
    /// A new key pair.
    ///
    /// # Errors
    /// If the system's random source fails.
    pub fn generate() -> Result<DpopKey, String> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot make a DPoP key".to_string())?;
        let key = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .map_err(|_| "cannot make a DPoP key".to_string())?;
        let jwk = ec_jwk(key.public_key().as_ref());
        Ok(DpopKey { key, jwk })
    }

    /// A proof for `method url` (query and fragment dropped), with `nonce` and, on API
    /// calls, `ath` of `token`.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        nonce: Option<&str>,
        token: Option<&str>,
        now: u64,
    ) -> Result<String, String> {
        let htu = url.split(['?', '#']).next().unwrap_or(url);
        let mut claims = serde_json::json!({
            "htm": method,
            "htu": htu,
            "iat": now,
            "jti": random_id(),
        });
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        if let Some(t) = token {
            claims["ath"] =
                b64url(ring::digest::digest(&ring::digest::SHA256, t.as_bytes()).as_ref()).into();
        }
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        jwt(&header, &claims, |m| {
            self.key
                .sign(&ring::rand::SystemRandom::new(), m)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "DPoP signing failed".to_string())
        })
    }
}

/// A signed JWT of `header` and `claims` (JSON objects), `sign` making the signature.
fn jwt(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    sign: impl Fn(&[u8]) -> Result<Vec<u8>, String>,
) -> Result<String, String> {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = sign(input.as_bytes())?;
    Ok(format!("{input}.{}", b64url(&sig)))
}

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
    /// The credentials of `o`, for the org at `base` (`https://acme.okta.com`).
    ///
    /// # Errors
    /// A key that cannot be used, named by its config key.
    pub fn new(o: &OAuth, base: &str) -> Result<TokenSource, String> {
        let (key, jwk_kid) = AppKey::parse(o.private_key.expose())
            .map_err(|e| format!("inputs.okta.credentials.oauth.{}: {e}", o.private_key_from))?;
        Ok(TokenSource {
            client_id: o.client_id.clone(),
            key,
            kid: o.key_id.clone().or(jwk_kid),
            scopes: o.scopes.clone(),
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
        let mut nonce_retried = false;
        let mut scope_retried = false;
        let mut clock_retried = false;
        loop {
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
                // Reused until 80% of its life: renewed well before it expires.
                let life = Duration::from_secs(a.expires_in.clamp(1, 86_400));
                let mut st = crate::lock(&self.state);
                st.issued += 1;
                return Ok(Token {
                    value: a.access_token,
                    kind,
                    renew_at: Instant::now() + life.mul_f64(0.8),
                    expires_at: Instant::now() + life.mul_f64(0.95),
                    scopes: a.scope.split_whitespace().map(str::to_string).collect(),
                });
            }
            let e: OAuthError = serde_json::from_str(&body).unwrap_or_default();
            // The first request went out on the local clock; Okta's `Date` now says it is
            // more than 30 s off: once more, on Okta's clock.
            let skew = crate::lock(&self.state).skew;
            if !clock_retried && (skew - used_skew).abs() > 30 {
                clock_retried = true;
                continue;
            }
            if e.error == "use_dpop_nonce" && !nonce_retried && self.mode != DpopMode::Off {
                nonce_retried = true;
                continue;
            }
            if e.error == "invalid_scope" && !scope_retried {
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
                    scope_retried = true;
                    log::error!(
                        "{}: OAuth: invalid_scope: the app is not granted {}; the services that need it wait (403) and the others go on. Grant it on the app's \"Okta API Scopes\" tab.",
                        super::SETUP_100,
                        named.join(" ")
                    );
                    crate::lock(&self.state).denied.extend(named);
                    continue;
                }
            }
            if e.error == "invalid_dpop_proof" && self.mode == DpopMode::Off {
                return Err(format!(
                    "invalid_dpop_proof: the app requires DPoP (\"Require Demonstrating Proof of Possession\") and dpop is false: set dpop: auto, or turn the requirement off for the app ({})",
                    crate::logging::escape_controls(&e.error_description)
                ));
            }
            return Err(format!(
                "the token request was refused (HTTP {status}): {}",
                explain(&e, status, &self.scopes)
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips() {
        for n in 0..40u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            let text = b64url(&data);
            assert!(!text.contains('=') && !text.contains('+') && !text.contains('/'));
            assert_eq!(b64url_decode(&text).unwrap(), data);
        }
        assert_eq!(b64url(b"hi?"), "aGk_");
        assert_eq!(b64url_decode("a b"), None);
    }

    #[test]
    fn keys_load_from_pem_and_jwk_and_sign() {
        let ec = rcgen::KeyPair::generate().unwrap();
        let (k, _) = AppKey::parse(&ec.serialize_pem()).unwrap();
        assert_eq!(k.alg(), "ES256");
        let jwk = k.public_jwk();
        assert_eq!(jwk["crv"], "P-256");
        let jwt = k
            .jwt(
                &serde_json::json!({"alg": "ES256"}),
                &serde_json::json!({"a": 1}),
            )
            .unwrap();
        assert_eq!(jwt.split('.').count(), 3);
        assert!(format!("{k:?}").contains("redacted"));
        assert!(AppKey::parse("not a key").is_err());
        assert!(
            AppKey::parse("{\"kty\":\"oct\",\"k\":\"AAAA\"}")
                .unwrap_err()
                .contains("oct")
        );
    }
}
