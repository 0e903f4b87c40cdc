//! A small, bounds-checked DER reader for what the TLS setup must say about a certificate or
//! key: subject, SAN, issuer, signature algorithm, key type and size, version, validity, EKU
//! (for messages when verification fails), the SubjectPublicKeyInfo (to match a client key to
//! its certificate, v1 certificates included) and an RSA private key's size.
//!
//! Every input is hostile: each length is checked against what is left, nothing recurses
//! without bound, and a malformed element is an error, never a panic.

use std::fmt;

/// One DER element: its tag, its content, and the whole encoding (tag and length included).
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

/// Reads elements one after another from a byte slice.
#[derive(Debug, Clone, Copy)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    fn next(&mut self) -> Result<Tlv<'a>, String> {
        let b = self.0;
        let (&tag, rest) = b
            .split_first()
            .ok_or("truncated DER: an element is missing")?;
        if tag & 0x1f == 0x1f {
            return Err("unsupported DER: a multi-byte tag".into());
        }
        let (&first, rest) = rest
            .split_first()
            .ok_or("truncated DER: a length is missing")?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err("invalid DER: a length of the wrong form".into());
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &d| (acc << 8) | usize::from(d));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(format!(
                "truncated DER: an element of {len} bytes with {} left",
                rest.len()
            ));
        }
        let header = b.len() - rest.len();
        let t = Tlv {
            tag,
            content: &rest[..len],
            whole: &b[..header + len],
        };
        self.0 = &rest[len..];
        Ok(t)
    }

    fn expect(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>, String> {
        let t = self.next()?;
        if t.tag != tag {
            return Err(format!(
                "invalid certificate: {what} has tag 0x{:02x}, not 0x{tag:02x}",
                t.tag
            ));
        }
        Ok(t)
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;

/// The dotted form of an OID's content.
fn oid_string(c: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut v: u64 = 0;
    for (i, &b) in c.iter().enumerate() {
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if parts.is_empty() {
                let (a, b) = match v {
                    0..=39 => (0, v),
                    40..=79 => (1, v - 40),
                    _ => (2, v - 80),
                };
                parts.push(a.to_string());
                parts.push(b.to_string());
            } else {
                parts.push(v.to_string());
            }
            v = 0;
        } else if i == c.len() - 1 || v > u64::MAX >> 8 {
            parts.push("?".into());
            break;
        }
    }
    parts.join(".")
}

/// Friendly names of the OIDs that appear in messages.
fn oid_name(dotted: &str) -> Option<&'static str> {
    Some(match dotted {
        "1.2.840.113549.1.1.1" => "RSA",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.10045.2.1" => "EC",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.10045.3.1.7" => "P-256",
        "1.3.132.0.34" => "P-384",
        "1.3.132.0.35" => "P-521",
        "1.3.101.112" => "Ed25519",
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.5" => "serialNumber",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.3.6.1.5.5.7.3.1" => "serverAuth",
        "1.3.6.1.5.5.7.3.2" => "clientAuth",
        "2.5.29.37.0" => "anyExtendedKeyUsage",
        _ => return None,
    })
}

fn named(dotted: String) -> String {
    oid_name(&dotted).map_or(dotted, str::to_string)
}

/// What a message says about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// 1, 2 or 3.
    pub version: u8,
    /// The subject, `CN=…, O=…` (RFC 4514 order reversed as OpenSSL prints it: outermost first).
    pub subject: String,
    /// The issuer, in the same form.
    pub issuer: String,
    /// Subject alternative names (`DNS:…`, `IP:…`, `email:…`, `URI:…`).
    pub san: Vec<String>,
    /// The signature algorithm's name (or dotted OID).
    pub signature: String,
    /// `RSA 2048 bits`, `EC P-256`, `Ed25519`, or the dotted OID.
    pub key: String,
    /// The RSA modulus size in bits (0 for other keys).
    pub rsa_bits: usize,
    /// notBefore and notAfter, RFC 3339 (UTC).
    pub not_before: String,
    /// See `not_before`.
    pub not_after: String,
    /// Extended key usages (`None`: the extension is absent, any purpose).
    pub eku: Option<Vec<String>>,
    /// Whether basicConstraints says CA.
    pub ca: bool,
    /// The SubjectPublicKeyInfo, whole DER.
    pub spki: Vec<u8>,
}

impl CertInfo {
    /// True when the signature uses SHA-1 or MD5, which WebPKI refuses.
    pub fn weak_signature(&self) -> bool {
        matches!(
            self.signature.as_str(),
            "sha1WithRSAEncryption" | "md5WithRSAEncryption" | "ecdsa-with-SHA1"
        )
    }

    /// The subject's CN, or the whole subject when it has none.
    pub fn short_name(&self) -> &str {
        self.subject
            .split(", ")
            .find_map(|p| p.strip_prefix("CN="))
            .unwrap_or(&self.subject)
    }
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subject \"{}\", SAN [{}], issuer \"{}\", signed {}, key {}, v{}, valid {} to {}, EKU {}{}",
            self.subject,
            self.san.join(", "),
            self.issuer,
            self.signature,
            self.key,
            self.version,
            self.not_before,
            self.not_after,
            self.eku.as_ref().map_or_else(
                || "(none: any)".to_string(),
                |e| format!("[{}]", e.join(", "))
            ),
            if self.ca { ", CA" } else { "" }
        )
    }
}

fn name(t: Tlv<'_>) -> Result<String, String> {
    let mut rdns = Reader(t.content);
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let set = rdns.expect(SET, "a name's RDN")?;
        let mut atvs = Reader(set.content);
        while !atvs.is_empty() {
            let atv = atvs.expect(SEQUENCE, "a name's attribute")?;
            let mut r = Reader(atv.content);
            let ty = r.expect(OID, "an attribute type")?;
            let v = r.next()?;
            let text = String::from_utf8_lossy(v.content);
            parts.push(format!("{}={text}", named(oid_string(ty.content))));
        }
    }
    Ok(parts.join(", "))
}

fn time(t: Tlv<'_>) -> Result<String, String> {
    // Peer data: checked byte by byte before any slicing (a multi-byte UTF-8 character
    // across a field's boundary must be an error, never a panic).
    let c = t.content;
    let digits = |n: usize| c.len() >= n && c[..n].iter().all(u8::is_ascii_digit);
    let number = |b: &[u8]| b.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    let (year, rest) = match t.tag {
        0x17 if digits(12) => {
            let yy = number(&c[..2]);
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &c[2..])
        }
        0x18 if digits(14) => (number(&c[..4]), &c[4..]),
        _ => return Err("invalid certificate: a time of the wrong form".into()),
    };
    let d = |i: usize| {
        rest.get(i..i + 2)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("??")
    };
    Ok(format!(
        "{year:04}-{}-{}T{}:{}:{}Z",
        d(0),
        d(2),
        d(4),
        d(6),
        d(8)
    ))
}

/// The bits of a DER INTEGER's magnitude.
fn integer_bits(c: &[u8]) -> usize {
    let c = match c.iter().position(|&b| b != 0) {
        Some(i) => &c[i..],
        None => return 0,
    };
    c.len() * 8 - c[0].leading_zeros() as usize
}

fn public_key(t: Tlv<'_>) -> Result<(String, usize), String> {
    let mut r = Reader(t.content);
    let alg = r.expect(SEQUENCE, "the key's algorithm")?;
    let mut a = Reader(alg.content);
    let oid = oid_string(a.expect(OID, "the key's algorithm")?.content);
    let bits = r.expect(BIT_STRING, "the public key")?;
    match oid.as_str() {
        "1.2.840.113549.1.1.1" => {
            let key = bits.content.get(1..).unwrap_or_default();
            let seq = Reader(key).expect(SEQUENCE, "the RSA public key")?;
            let n = Reader(seq.content).expect(INTEGER, "the RSA modulus")?;
            let b = integer_bits(n.content);
            Ok((format!("RSA {b} bits"), b))
        }
        "1.2.840.10045.2.1" => {
            let curve = match a.next() {
                Ok(c) if c.tag == OID => named(oid_string(c.content)),
                _ => "(curve not named)".into(),
            };
            Ok((format!("EC {curve}"), 0))
        }
        _ => Ok((named(oid), 0)),
    }
}

fn extensions(t: Tlv<'_>, info: &mut CertInfo) -> Result<(), String> {
    let seq = Reader(t.content).expect(SEQUENCE, "the extensions")?;
    let mut exts = Reader(seq.content);
    while !exts.is_empty() {
        let ext = exts.expect(SEQUENCE, "an extension")?;
        let mut r = Reader(ext.content);
        let oid = oid_string(r.expect(OID, "an extension's id")?.content);
        if r.peek_tag() == Some(BOOLEAN) {
            r.next()?;
        }
        let value = r.expect(OCTET_STRING, "an extension's value")?.content;
        match oid.as_str() {
            "2.5.29.17" => {
                let names = Reader(value).expect(SEQUENCE, "the SAN")?;
                let mut n = Reader(names.content);
                while !n.is_empty() {
                    let g = n.next()?;
                    let text = |p: &str| format!("{p}:{}", String::from_utf8_lossy(g.content));
                    info.san.push(match g.tag {
                        0x81 => text("email"),
                        0x82 => text("DNS"),
                        0x86 => text("URI"),
                        0x87 => match g.content.len() {
                            4 => format!(
                                "IP:{}",
                                std::net::Ipv4Addr::new(
                                    g.content[0],
                                    g.content[1],
                                    g.content[2],
                                    g.content[3]
                                )
                            ),
                            16 => {
                                let mut o = [0u8; 16];
                                o.copy_from_slice(g.content);
                                format!("IP:{}", std::net::Ipv6Addr::from(o))
                            }
                            _ => "IP:(invalid)".into(),
                        },
                        other => format!("(name of tag 0x{other:02x})"),
                    });
                }
            }
            "2.5.29.37" => {
                let list = Reader(value).expect(SEQUENCE, "the EKU")?;
                let mut l = Reader(list.content);
                let mut ekus = Vec::new();
                while !l.is_empty() {
                    ekus.push(named(oid_string(l.expect(OID, "an EKU")?.content)));
                }
                info.eku = Some(ekus);
            }
            "2.5.29.19" => {
                let bc = Reader(value).expect(SEQUENCE, "basicConstraints")?;
                let mut b = Reader(bc.content);
                if b.peek_tag() == Some(BOOLEAN) {
                    info.ca = b.next()?.content.first().is_some_and(|&v| v != 0);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads a DER certificate.
///
/// # Errors
/// What is malformed.
pub fn parse(der: &[u8]) -> Result<CertInfo, String> {
    let cert = Reader(der).expect(SEQUENCE, "the certificate")?;
    let mut c = Reader(cert.content);
    let tbs = c.expect(SEQUENCE, "the TBS certificate")?;
    let mut t = Reader(tbs.content);
    let version = if t.peek_tag() == Some(0xa0) {
        let v = Reader(t.next()?.content).expect(INTEGER, "the version")?;
        match v.content {
            [0] => 1,
            [1] => 2,
            [2] => 3,
            _ => return Err("invalid certificate: an unknown version".into()),
        }
    } else {
        1
    };
    t.expect(INTEGER, "the serial number")?;
    let sig = t.expect(SEQUENCE, "the signature algorithm")?;
    let signature = named(oid_string(
        Reader(sig.content)
            .expect(OID, "the signature algorithm")?
            .content,
    ));
    let issuer = name(t.expect(SEQUENCE, "the issuer")?)?;
    let validity = t.expect(SEQUENCE, "the validity")?;
    let mut v = Reader(validity.content);
    let not_before = time(v.next()?)?;
    let not_after = time(v.next()?)?;
    let subject = name(t.expect(SEQUENCE, "the subject")?)?;
    let spki = t.expect(SEQUENCE, "the public key")?;
    let (key, rsa_bits) = public_key(spki)?;
    let mut info = CertInfo {
        version,
        subject,
        issuer,
        san: Vec::new(),
        signature,
        key,
        rsa_bits,
        not_before,
        not_after,
        eku: None,
        ca: false,
        spki: spki.whole.to_vec(),
    };
    while !t.is_empty() {
        let e = t.next()?;
        if e.tag == 0xa3 {
            extensions(e, &mut info)?;
        }
    }
    Ok(info)
}

/// The modulus size of an RSA private key in PKCS#8 or PKCS#1 DER; `None` for other keys
/// (or input that is neither).
pub fn rsa_private_key_bits(der: &[u8]) -> Option<usize> {
    let outer = Reader(der).expect(SEQUENCE, "the key").ok()?;
    let mut r = Reader(outer.content);
    r.expect(INTEGER, "the version").ok()?;
    let next = r.next().ok()?;
    match next.tag {
        // PKCS#1: version, then the modulus.
        INTEGER => Some(integer_bits(next.content)),
        // PKCS#8: version, algorithm, then the PKCS#1 key in an OCTET STRING.
        SEQUENCE => {
            let oid = Reader(next.content).expect(OID, "the algorithm").ok()?;
            if oid_string(oid.content) != "1.2.840.113549.1.1.1" {
                return None;
            }
            let inner = r.expect(OCTET_STRING, "the key").ok()?;
            rsa_private_key_bits(inner.content)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures_rustls::rustls::pki_types::pem::PemObject;
    use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    fn pem_der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn reads_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["collector-us.devo.io".into()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "balancer");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Devo");
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress([10, 0, 0, 1].into()));
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.self_signed(&key).unwrap();
        let info = parse(cert.der()).unwrap();
        assert_eq!(info.version, 3);
        assert_eq!(info.subject, "CN=balancer, O=Devo");
        assert_eq!(info.issuer, info.subject);
        assert_eq!(info.san, ["DNS:collector-us.devo.io", "IP:10.0.0.1"]);
        assert_eq!(info.signature, "ecdsa-with-SHA256");
        assert_eq!(info.key, "EC P-256");
        assert_eq!(info.eku, Some(vec!["serverAuth".to_string()]));
        assert_eq!(info.short_name(), "balancer");
        assert_eq!(
            info.spki,
            rcgen::PublicKeyData::subject_public_key_info(&key)
        );
        assert!(!info.weak_signature());
    }

    #[test]
    fn reads_rsa_keys_of_each_size() {
        // ring cannot generate RSA keys; the openssl command (installed by tests/run) can.
        let dir = tempfile::tempdir().unwrap();
        for bits in [1024, 2048, 3072] {
            let key = dir.path().join(format!("{bits}.key"));
            let ok = std::process::Command::new("openssl")
                .args(["genrsa", "-out"])
                .arg(&key)
                .arg(bits.to_string())
                .output()
                .unwrap();
            assert!(ok.status.success(), "{ok:?}");
            let pk8 = PrivateKeyDer::from_pem_file(&key).unwrap();
            assert_eq!(rsa_private_key_bits(pk8.secret_der()), Some(bits));
            let out = std::process::Command::new("openssl")
                .args(["rsa", "-traditional", "-outform", "DER", "-in"])
                .arg(&key)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            assert_eq!(rsa_private_key_bits(&out.stdout), Some(bits), "PKCS#1");
        }
        let ec = rcgen::KeyPair::generate().unwrap();
        assert_eq!(rsa_private_key_bits(&ec.serialize_der()), None);
    }

    #[test]
    fn reads_devo_published_chains_when_present() {
        let Some(dir) = crate::samples::shared_samples(
            "devo-chain",
            "reads_devo_published_chains_when_present",
        ) else {
            return;
        };
        let rd = std::fs::read_dir(&dir).unwrap();
        let mut seen = 0;
        for f in rd.flatten() {
            if f.path().extension().is_none_or(|e| e != "crt") {
                continue;
            }
            let text = std::fs::read_to_string(f.path()).unwrap();
            for block in text.split_inclusive("-----END CERTIFICATE-----\n") {
                if !block.contains("BEGIN CERTIFICATE") {
                    continue;
                }
                let info = parse(&pem_der(block)).unwrap();
                assert_eq!(info.key, "RSA 4096 bits", "{info}");
                assert_eq!(info.version, 3);
                assert!(info.issuer.ends_with("CN=logtrustCA"), "{info}");
                assert_eq!(
                    info.weak_signature(),
                    f.path().to_string_lossy().contains("2020"),
                    "{info}"
                );
                seen += 1;
            }
        }
        assert!(seen >= 8, "{seen} certificates read");
    }

    #[test]
    fn hostile_input_is_an_error() {
        for bad in [
            &b""[..],
            &[0x30],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x03, 0x30, 0x01],
            &[0x1f, 0x00],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
            assert_eq!(rsa_private_key_bits(bad), None);
        }
        // Every truncation of a real certificate is an error, never a panic.
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        for n in 0..der.len() {
            assert!(parse(&der[..n]).is_err());
        }
        for i in 0..der.len() {
            let mut d = der.clone();
            d[i] ^= 0xff;
            let _ = parse(&d);
        }
    }

    #[test]
    fn oids() {
        assert_eq!(
            oid_string(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05]),
            "1.2.840.113549.1.1.5"
        );
        assert_eq!(oid_string(&[0x55, 0x04, 0x03]), "2.5.4.3");
        assert_eq!(oid_string(&[0x88]), "?");
    }
}
