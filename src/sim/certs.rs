//! Throwaway PKI for the demo and the tests: a CA, a server certificate for 127.0.0.1 and
//! localhost, and a client certificate, written as PEM files.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use std::path::{Path, PathBuf};

/// Paths of the generated files.
#[derive(Debug, Clone)]
pub struct Pki {
    /// CA certificate (verifies both sides).
    pub ca: PathBuf,
    /// Server certificate and key.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// Client certificate.
    pub client_cert: PathBuf,
    /// Client key.
    pub client_key: PathBuf,
}

/// Generates a CA named `ca_name` and server and client certificates signed by it into `dir`.
///
/// # Errors
/// A message if generation or writing fails.
pub fn generate(dir: &Path, ca_name: &str) -> Result<Pki, String> {
    generate_shaped(dir, ca_name, &Shape::default())
}

/// How the server certificate looks (tests of the client's checks).
#[derive(Debug, Clone)]
pub struct Shape {
    /// The DNS names it holds (default: `localhost`).
    pub server_names: Vec<String>,
    /// Whether it holds 127.0.0.1 too (default: yes).
    pub server_ip: bool,
    /// Whether it is for client authentication only (EKU clientAuth), as Devo's client CA
    /// issues: such a leaf must never pass as the server.
    pub server_client_auth_only: bool,
}

impl Default for Shape {
    fn default() -> Shape {
        Shape {
            server_names: vec!["localhost".into()],
            server_ip: true,
            server_client_auth_only: false,
        }
    }
}

/// As [`generate`], with the server certificate in `shape`.
///
/// # Errors
/// As [`generate`].
pub fn generate_shaped(dir: &Path, ca_name: &str, shape: &Shape) -> Result<Pki, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let e = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate().map_err(e)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
    let issuer = Issuer::new(ca, &ca_key);

    let server_key = KeyPair::generate().map_err(e)?;
    let mut sp = CertificateParams::new(shape.server_names.clone()).map_err(e)?;
    if shape.server_ip {
        sp.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
    }
    let cn = shape.server_names.first().map_or("server", String::as_str);
    sp.distinguished_name.push(DnType::CommonName, cn);
    sp.extended_key_usages = vec![if shape.server_client_auth_only {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let server_cert = sp.signed_by(&server_key, &issuer).map_err(e)?;

    let client_key = KeyPair::generate().map_err(e)?;
    let mut cp = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    cp.distinguished_name
        .push(DnType::CommonName, "okta-collector");
    cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = cp.signed_by(&client_key, &issuer).map_err(e)?;

    let pki = Pki {
        ca: dir.join("chain.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("domain.crt"),
        client_key: dir.join("domain.key"),
    };
    for (p, pem, mode) in [
        (&pki.ca, ca_cert.pem(), 0o644),
        (&pki.server_cert, server_cert.pem(), 0o644),
        (&pki.server_key, server_key.serialize_pem(), 0o600),
        (&pki.client_cert, client_cert.pem(), 0o644),
        (&pki.client_key, client_key.serialize_pem(), 0o600),
    ] {
        // Private keys 0600: only this user reads them.
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(p)
            .and_then(|mut f| f.write_all(pem.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    Ok(pki)
}
