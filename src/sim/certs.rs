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
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let e = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate().map_err(e)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
    let issuer = Issuer::new(ca, &ca_key);

    let server_key = KeyPair::generate().map_err(e)?;
    let mut sp = CertificateParams::new(vec!["localhost".to_string()]).map_err(e)?;
    sp.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    sp.distinguished_name.push(DnType::CommonName, "localhost");
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
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
