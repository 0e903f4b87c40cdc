//! What a `devo_platform` connection trusts and presents: the CA chain, the client certificate
//! and key (matched by their public key, X.509 v1 included; errors naming the file), and the
//! verification of Devo's balancer (`server_name`, `check_hostname`, `legacy_signatures`),
//! which says what a refused server presented. The connection itself is `connection.rs`.

use super::x509;
use crate::config::DevoTls;
use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, ServerName, SignatureVerificationAlgorithm,
};
use futures_rustls::rustls::{self, ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// The rustls crypto provider used everywhere (ring, as ureq uses).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads output `name`'s TLS material into a client config (TLS 1.3 and 1.2 only).
///
/// The client certificate may be X.509 v1 (rustls's own key check reads v3 only): the key is
/// matched to the certificate here, by its SubjectPublicKeyInfo.
///
/// # Errors
/// A message naming the config key and the file that is missing, unreadable or invalid, and
/// what is wrong with it (an RSA key's size, a key of another certificate).
pub fn client_config(name: &str, o: &DevoTls) -> Result<Arc<ClientConfig>, String> {
    if !o.not_found.is_empty() {
        return Err(o.not_found.join("; "));
    }
    let key_name = |k: &str| format!("outputs.{name}.config.{k}");
    let mut roots = RootCertStore::empty();
    let mut anchors = Vec::new();
    for c in read_certs(&o.chain, &key_name("chain"))? {
        if let Ok(info) = x509::parse(&c) {
            anchors.push(info);
        }
        roots.add(c).map_err(|e| {
            format!(
                "{}: {}: invalid CA certificate: {e}",
                key_name("chain"),
                o.chain.display()
            )
        })?;
    }
    let server_name = match &o.server_name {
        None => None,
        Some(n) => Some(ServerName::try_from(n.clone()).map_err(|e| {
            format!(
                "{}: {n:?} is not a TLS server name: {e}",
                key_name("server_name")
            )
        })?),
    };
    let verify_with = if o.legacy_signatures {
        legacy_provider()
    } else {
        provider()
    };
    let webpki =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), verify_with)
            .build()
            .map_err(|e| format!("{}: {}: {e}", key_name("chain"), o.chain.display()))?;
    let verifier = Arc::new(DevoVerifier {
        inner: webpki,
        name: server_name,
        check_hostname: o.check_hostname,
        legacy_signatures: o.legacy_signatures,
        anchors,
    });
    let certified = certified_key(name, o)?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    Ok(Arc::new(config))
}

/// The client certificate chain and its key, checked to belong together.
fn certified_key(name: &str, o: &DevoTls) -> Result<rustls::sign::CertifiedKey, String> {
    let key_name = |k: &str| format!("outputs.{name}.config.{k}");
    let certs = read_certs(&o.cert, &key_name("cert"))?;
    let leaf = x509::parse(&certs[0]).map_err(|e| {
        format!(
            "{}: {}: the first certificate is not a valid X.509 certificate: {e}",
            key_name("cert"),
            o.cert.display()
        )
    })?;
    check_readable(&o.key, &key_name("key"))?;
    let key = PrivateKeyDer::from_pem_file(&o.key).map_err(|e| {
        format!(
            "{}: {}: no usable private key (PEM, PKCS#8, PKCS#1 or SEC1): {e}",
            key_name("key"),
            o.key.display()
        )
    })?;
    if let Some(bits) = x509::rsa_private_key_bits(key.secret_der())
        && !(RSA_SIGNING_BITS.0..=RSA_SIGNING_BITS.1).contains(&bits)
    {
        return Err(format!(
            "{}: {}: an RSA key of {bits} bits; keys of {} to {} bits can sign (ring's limit; Devo issues 2048-bit keys): ask Devo for a new certificate with a key in that range",
            key_name("key"),
            o.key.display(),
            RSA_SIGNING_BITS.0,
            RSA_SIGNING_BITS.1
        ));
    }
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| {
            format!(
                "{}: {}: the private key cannot sign (RSA 2048 to 4096 bits, ECDSA P-256 or P-384, or Ed25519): {e}",
                key_name("key"),
                o.key.display()
            )
        })?;
    if let Some(spki) = signing.public_key()
        && spki.as_ref() != leaf.spki.as_slice()
    {
        return Err(format!(
            "{} and {}: the key {} is not the key of the certificate {} ({leaf}): the two files are from different pairs",
            key_name("cert"),
            key_name("key"),
            o.key.display(),
            o.cert.display()
        ));
    }
    Ok(rustls::sign::CertifiedKey::new(certs, signing))
}

/// The RSA key sizes ring signs with (its private-key limits).
const RSA_SIGNING_BITS: (usize, usize) = (2048, 4096);

/// The provider whose certificate-signature algorithms also take SHA-1 and RSA signers of
/// 1,024 bits or more (`legacy_signatures: true`); handshake signatures are unchanged.
fn legacy_provider() -> Arc<rustls::crypto::CryptoProvider> {
    static LEGACY: std::sync::OnceLock<Vec<&'static dyn SignatureVerificationAlgorithm>> =
        std::sync::OnceLock::new();
    let mut p = rustls::crypto::ring::default_provider();
    let all = LEGACY.get_or_init(|| {
        // First: webpki stops at the first algorithm whose identifiers match, so the ones
        // that take 1,024-bit keys go before the defaults that take 2,048 and up.
        let mut v: Vec<&'static dyn SignatureVerificationAlgorithm> =
            vec![&LEGACY_SHA1, &LEGACY_SHA256, &LEGACY_SHA512];
        v.extend_from_slice(p.signature_verification_algorithms.all);
        v
    });
    p.signature_verification_algorithms = rustls::crypto::WebPkiSupportedAlgorithms {
        all: all.as_slice(),
        mapping: p.signature_verification_algorithms.mapping,
    };
    Arc::new(p)
}

static LEGACY_SHA1: LegacyRsa = LegacyRsa {
    signature: SHA1_WITH_RSA,
    ring: &ring::signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
};
static LEGACY_SHA256: LegacyRsa = LegacyRsa {
    signature: rustls::pki_types::alg_id::RSA_PKCS1_SHA256,
    ring: &ring::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
};
static LEGACY_SHA512: LegacyRsa = LegacyRsa {
    signature: rustls::pki_types::alg_id::RSA_PKCS1_SHA512,
    ring: &ring::signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
};

/// sha1WithRSAEncryption with NULL parameters, as an AlgorithmIdentifier's content.
const SHA1_WITH_RSA: rustls::pki_types::AlgorithmIdentifier =
    rustls::pki_types::AlgorithmIdentifier::from_slice(&[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
    ]);

/// An RSA PKCS#1 v1.5 certificate signature that WebPKI's defaults refuse.
#[derive(Debug)]
struct LegacyRsa {
    signature: rustls::pki_types::AlgorithmIdentifier,
    ring: &'static ring::signature::RsaParameters,
}

impl SignatureVerificationAlgorithm for LegacyRsa {
    fn public_key_alg_id(&self) -> rustls::pki_types::AlgorithmIdentifier {
        rustls::pki_types::alg_id::RSA_ENCRYPTION
    }
    fn signature_alg_id(&self) -> rustls::pki_types::AlgorithmIdentifier {
        self.signature
    }
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), rustls::pki_types::InvalidSignature> {
        ring::signature::UnparsedPublicKey::new(self.ring, public_key)
            .verify(message, signature)
            .map_err(|_| rustls::pki_types::InvalidSignature)
    }
}

/// WebPKI's verification of Devo's server certificate against `chain`, with the name it is
/// checked against being `server_name` when the config gives one (the SNI stays `address`, as
/// Devo's clients send it), and with the name not checked at all under `check_hostname:
/// false` (Devo's own collector's setting). Everything else (the chain to `chain`, validity,
/// signatures, and the leaf being for server authentication: `chain.crt` also holds Devo's
/// client CA, so another customer's client certificate must not pass as the balancer) is
/// checked always: WebPKI checks those before the name.
#[derive(Debug)]
struct DevoVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: Option<ServerName<'static>>,
    check_hostname: bool,
    legacy_signatures: bool,
    /// The CAs of `chain`, for messages.
    anchors: Vec<x509::CertInfo>,
}

/// A server certificate refused, with what the server presented and which check failed, so
/// the first failure in the field says what to change.
#[derive(Debug)]
struct Refused {
    cause: rustls::Error,
    check: String,
    presented: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signature-algorithm errors' own text is a list of OIDs in hex: the check says
        // it in words.
        let cause = match &self.cause {
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnsupportedSignatureAlgorithmContext { .. }
                | rustls::CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                    ..
                },
            ) => String::new(),
            other => format!(" ({other})"),
        };
        write!(
            f,
            "{}{cause}; the server presented {}",
            self.check, self.presented
        )
    }
}

impl std::error::Error for Refused {}

/// A handshake's error in words: a refused server certificate with what was presented,
/// anything else as rustls says it.
pub(super) fn handshake_error(e: &std::io::Error) -> String {
    let refused = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .and_then(|r| match r {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o)) => {
                o.0.downcast_ref::<Refused>()
            }
            _ => None,
        });
    match refused {
        Some(r) => format!("the server's certificate is refused: {r}"),
        None => e.to_string(),
    }
}

impl DevoVerifier {
    /// Which check failed, in words, with what to change.
    fn check(
        &self,
        cause: &rustls::Error,
        chain: &[Result<x509::CertInfo, String>],
        name: &ServerName<'_>,
    ) -> String {
        use rustls::CertificateError as C;
        let infos: Vec<&x509::CertInfo> = chain.iter().filter_map(|c| c.as_ref().ok()).collect();
        let leaf = infos.first();
        let legacy_hint = if self.legacy_signatures {
            "legacy_signatures is already true"
        } else {
            "legacy_signatures: true accepts it"
        };
        let rustls::Error::InvalidCertificate(e) = cause else {
            return "verification".into();
        };
        match e {
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "host name: the certificate is not for {} (it names {}); set server_name to a name it holds, or check_hostname: false",
                name.to_str(),
                leaf.map_or_else(
                    || "nothing readable".into(),
                    |l| format!("[{}]", l.san.join(", "))
                )
            ),
            C::UnknownIssuer => format!(
                "chain: the certificate does not lead to a CA of chain (CAs there: {}; the server's issuer: {})",
                self.anchors
                    .iter()
                    .map(|a| a.short_name())
                    .collect::<Vec<_>>()
                    .join(", "),
                infos.last().map_or("unknown", |c| c.issuer.as_str())
            ),
            C::UnsupportedSignatureAlgorithmContext { .. }
            | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                let weak: Vec<String> = infos
                    .iter()
                    .copied()
                    .filter(|c| c.weak_signature())
                    .map(|c| {
                        let hash = if c.signature.starts_with("md5") {
                            "MD5"
                        } else {
                            "SHA-1"
                        };
                        format!(
                            "\"{}\" is signed with {} ({hash})",
                            c.short_name(),
                            c.signature
                        )
                    })
                    .collect();
                if weak.is_empty() {
                    "signature algorithm: a signature in the chain uses an algorithm WebPKI does not verify".into()
                } else {
                    format!(
                        "signature algorithm: {}, which WebPKI refuses; {legacy_hint}",
                        weak.join(", ")
                    )
                }
            }
            C::BadSignature => {
                let small: Vec<String> = infos
                    .iter()
                    .copied()
                    .chain(self.anchors.iter())
                    .filter(|c| c.rsa_bits > 0 && c.rsa_bits < 2048)
                    .map(|c| {
                        format!(
                            "\"{}\" has an RSA key of {} bits",
                            c.short_name(),
                            c.rsa_bits
                        )
                    })
                    .collect();
                if small.is_empty() {
                    "signature: a signature in the chain does not verify with its issuer's key"
                        .into()
                } else {
                    format!(
                        "signature: a signer's key is below the 2048 bits WebPKI takes ({}); {legacy_hint}",
                        small.join(", ")
                    )
                }
            }
            C::Expired | C::ExpiredContext { .. } => {
                "validity: the certificate (or one in its chain) has expired".into()
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "validity: the certificate is not valid yet (is this host's clock right?)".into()
            }
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => format!(
                "purpose (EKU): the certificate is for {}, not server authentication (chain also holds Devo's client CA: this is probably a client certificate)",
                leaf.and_then(|l| l.eku.as_ref())
                    .map_or_else(|| "nothing".into(), |e| e.join(", "))
            ),
            _ if leaf.is_some_and(|l| l.version != 3) => format!(
                "version: the certificate is X.509 v{}; WebPKI verifies v3 server certificates only (ask Devo)",
                leaf.map_or(0, |l| l.version)
            ),
            C::BadEncoding => "encoding: the certificate is not valid DER".into(),
            _ => "verification".into(),
        }
    }
}

impl rustls::client::danger::ServerCertVerifier for DevoVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let name = self.name.as_ref().unwrap_or(server_name);
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.check_hostname => {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            Err(cause) => {
                let chain: Vec<Result<x509::CertInfo, String>> = std::iter::once(end_entity)
                    .chain(intermediates)
                    .map(|c| x509::parse(c))
                    .collect();
                let check = self.check(&cause, &chain, name);
                let presented = chain
                    .iter()
                    .enumerate()
                    .map(|(i, c)| match c {
                        Ok(info) => format!("[{i}] {info}"),
                        Err(e) => format!("[{i}] (unreadable: {e})"),
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Other(rustls::OtherError(Arc::new(Refused {
                        cause,
                        check,
                        presented,
                    }))),
                ))
            }
            ok => ok,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn check_readable(p: &Path, key: &str) -> Result<(), String> {
    std::fs::File::open(p)
        .map(drop)
        .map_err(|e| format!("{key}: cannot read {}: {e}", p.display()))
}

fn read_certs(p: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    check_readable(p, key)?;
    let certs: Vec<_> = CertificateDer::pem_file_iter(p)
        .map_err(|e| format!("{key}: {}: {e}", p.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{key}: {}: not a PEM certificate file: {e}", p.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{key}: {}: no PEM certificate in the file",
            p.display()
        ));
    }
    Ok(certs)
}
