//! The signing half of OAuth 2.0 (RFC 7515/7517/7518): the app's private key read from PEM or
//! from the JWK Okta's admin console gives, base64url, compact JWTs signed RS256 or ES256, and
//! the DPoP key made at start. Apart so that the config can check a key when it is loaded and
//! the token client can sign with it, neither importing the other.
//!
//! Nothing secret is ever formatted: the keys have no `Debug` output beyond their kind, and no
//! error text quotes them.

use ring::rand::SecureRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use std::time::SystemTime;

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
pub(crate) fn random_id() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn now_secs() -> u64 {
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
    pub(crate) fn jwt(
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
