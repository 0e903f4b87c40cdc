//! The outputs: `devo_platform` (mutual TLS), `relay`, `devo_http` and `console`, each checked
//! with a message naming its key; certificates named relative to the config are also looked
//! for under `<working dir>/certs/`, as Devo's collector looks for them.

use super::error::{ConfigError, Cx, err};
use super::origin::Origin;
use super::raw::RawOutput;
use super::secret::Secret;
use super::secret::resolve_secret;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An output: where every table is delivered.
#[derive(Debug, Clone)]
pub struct Output {
    /// The key under `outputs` (letters, digits, `_`, `-`: it names the ack files).
    pub name: String,
    /// The syslog HOSTNAME field (devo_http: the `<host>` part of the URL).
    pub hostname: String,
    /// What kind of output, with its settings.
    pub kind: OutputKind,
}

/// The output types.
#[derive(Debug, Clone)]
pub enum OutputKind {
    /// Syslog lines over mutual TLS to a Devo load balancer (`devo_platform`).
    Devo(DevoTls),
    /// Syslog lines over plain TCP to a Devo in-house relay (`relay`).
    Relay(Address),
    /// Devo's HTTP ingestion, `/stream` mode (`devo_http`).
    Http(DevoHttp),
    /// The syslog lines on standard output (`console`).
    Console,
}

/// A host and port.
#[derive(Debug, Clone)]
pub struct Address {
    /// Host name or IP; for TLS also the SNI and the name verified.
    pub address: String,
    /// TCP port.
    pub port: u16,
}

/// A `devo_platform` output's endpoint and TLS material.
#[derive(Debug, Clone)]
pub struct DevoTls {
    /// Host name or IP of the Devo relay or load balancer; also the TLS SNI.
    pub address: String,
    /// TCP port.
    pub port: u16,
    /// CA chain that verifies the server.
    pub chain: PathBuf,
    /// Client certificate.
    pub cert: PathBuf,
    /// Client key.
    pub key: PathBuf,
    /// `server_name`: the name the certificate is checked against (`None`: `address`).
    pub server_name: Option<String>,
    /// `check_hostname` (default true): whether the certificate's name is checked at all.
    pub check_hostname: bool,
    /// `legacy_signatures` (default false): the server's chain may be signed with SHA-1 or
    /// by an RSA key of 1024 to 2047 bits (Devo's 2020 chain is SHA-1-signed).
    pub legacy_signatures: bool,
    /// Relative names found neither beside the config nor under `<working dir>/certs/`,
    /// each a message naming both places (loading the output fails with them).
    pub not_found: Vec<String>,
}

/// A `devo_http` output.
#[derive(Debug, Clone)]
pub struct DevoHttp {
    /// The endpoint's base URL without a trailing slash, e.g. `https://http-eu.devo.io`.
    pub url: String,
    /// The Devo domain.
    pub domain: String,
    /// The HTTP ingestion token (part of every request's path).
    pub token: Secret,
    /// The file that holds the token in clear (the config itself, or `token_file`), if any.
    pub token_file: Option<PathBuf>,
    /// Uncompressed bytes of events per request (Devo takes at most 32 MB per request).
    pub batch_bytes: usize,
    /// Whole-request timeout.
    pub request_timeout: Duration,
}

impl Output {
    /// The output's type as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            OutputKind::Devo(_) => "devo_platform",
            OutputKind::Relay(_) => "relay",
            OutputKind::Http(_) => "devo_http",
            OutputKind::Console => "console",
        }
    }
}

/// Resolves `outputs.<name>`.
pub(super) fn resolve(name: String, o: RawOutput, cx: &Cx<'_>) -> Result<Output, ConfigError> {
    let (config_path, resolve, at) = (cx.path, |p: &Path| cx.resolve(p), |k: &str| cx.at(k));
    let key = |k: &str| at(&format!("outputs.{name}.config.{k}"));
    if !spool::valid_consumer_name(&name) {
        return err(format!(
            "{}: {name:?} cannot name an output: use letters, digits, _ and - only (it names the output's ack files)",
            at(&format!("outputs.{name}"))
        ));
    }
    if name.starts_with(super::ENTITLEMENT_CONSUMER_PREFIX) {
        return err(format!(
            "{}: names starting with {:?} are the entitlement services' own positions in the System Log's spool; choose another name",
            at(&format!("outputs.{name}")),
            super::ENTITLEMENT_CONSUMER_PREFIX
        ));
    }
    let host = |a: &str, k: &str| {
        if a.trim().is_empty() || a.contains(char::is_whitespace) {
            err(format!("{}: {a:?} is not a host name", key(k)))
        } else {
            Ok(a.to_string())
        }
    };
    // Devo's sender type, checked against the output's.
    let transport = |t: &Option<String>, want: &str, other: &str| match t {
        Some(t) if !t.eq_ignore_ascii_case(want) => err(format!(
            "{}: {t:?} does not fit this output, which sends {want}; for {t} use an output of type {other}",
            key("type")
        )),
        _ => Ok(()),
    };
    let (hostname, kind) = match o {
        RawOutput::DevoPlatform(d) => {
            transport(&d.transport, "SSL", "relay (plain TCP)")?;
            // A relative name is looked for beside the config, then where Devo's collector
            // looks: <working dir>/certs/.
            let mut not_found = Vec::new();
            let mut cert = |k: &str, p: &Path| {
                let here = resolve(p);
                if p.is_absolute() || here.exists() {
                    return here;
                }
                let devo = std::env::current_dir()
                    .unwrap_or_default()
                    .join("certs")
                    .join(p);
                if devo.exists() {
                    return devo;
                }
                not_found.push(format!(
                    "{}: {} is neither at {} nor at {} (where Devo's collector looks)",
                    key(k),
                    p.display(),
                    here.display(),
                    devo.display()
                ));
                here
            };
            let (chain, c, k) = (
                cert("chain", &d.chain),
                cert("cert", &d.cert),
                cert("key", &d.key),
            );
            (
                d.hostname,
                OutputKind::Devo(DevoTls {
                    address: host(&d.address, "address")?,
                    port: d.port.unwrap_or(443),
                    chain,
                    cert: c,
                    key: k,
                    server_name: d.server_name,
                    check_hostname: d.check_hostname.unwrap_or(true),
                    legacy_signatures: d.legacy_signatures.unwrap_or(false),
                    not_found,
                }),
            )
        }
        RawOutput::Relay(r) => {
            transport(&r.transport, "TCP", "devo_platform (TLS)")?;
            (
                r.hostname,
                OutputKind::Relay(Address {
                    address: host(&r.address, "address")?,
                    port: r.port.unwrap_or(13000),
                }),
            )
        }
        RawOutput::Console(c) => (c.unwrap_or_default().hostname, OutputKind::Console),
        RawOutput::DevoHttp(h) => {
            let url = h.url.trim().trim_end_matches('/').to_string();
            if let Err(e) = Origin::parse(&url) {
                return err(format!(
                    "{}: {e}; give the endpoint's base URL, e.g. https://http-eu.devo.io (the token travels in the path, so http:// is accepted only for loopback hosts)",
                    key("url")
                ));
            }
            if h.domain.is_empty() || h.domain.contains(['/', ' ', '?', '#']) {
                return err(format!(
                    "{}: {:?} is not a Devo domain name",
                    key("domain"),
                    h.domain
                ));
            }
            let token = resolve_secret(
                &at(&format!("outputs.{name}.config")),
                "token",
                "HTTP ingestion token (Administration → Credentials → Authentication tokens)",
                h.token.as_ref(),
                h.token_env.as_deref(),
                h.token_file.as_deref(),
                &resolve,
            )?;
            let token_file = match (&h.token, &h.token_file) {
                (Some(_), _) => Some(config_path.to_path_buf()),
                (None, Some(f)) => Some(resolve(f)),
                (None, None) => None,
            };
            let t = token.expose();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return err(format!(
                    "{}: the ingestion token must be letters and digits; check that it was copied whole",
                    key("token")
                ));
            }
            const MAX_BATCH: u64 = 30 << 20;
            let batch_bytes = match h.batch_bytes {
                None => 4 << 20,
                Some(n) if (64 << 10..=MAX_BATCH).contains(&n) => n,
                Some(n) => {
                    return err(format!(
                        "{}: {n} is out of range; give 65536 to {MAX_BATCH} (Devo takes at most 32 MB per request)",
                        key("batch_bytes")
                    ));
                }
            };
            let request_timeout = match h.request_timeout_in_seconds {
                None => Duration::from_secs(60),
                Some(0) => {
                    return err(format!(
                        "{}: must be at least 1",
                        key("request_timeout_in_seconds")
                    ));
                }
                Some(n) => Duration::from_secs(n),
            };
            (
                h.hostname,
                OutputKind::Http(DevoHttp {
                    url,
                    domain: h.domain,
                    token,
                    token_file,
                    batch_bytes: batch_bytes as usize,
                    request_timeout,
                }),
            )
        }
    };
    let hostname = hostname.unwrap_or_else(machine_hostname);
    if hostname.is_empty()
        || hostname.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/')
    {
        return err(format!(
            "{}: {hostname:?} cannot be a syslog HOSTNAME (one word, no spaces)",
            key("hostname")
        ));
    }
    Ok(Output {
        name,
        hostname,
        kind,
    })
}

/// The machine's host name (the syslog HOSTNAME default).
pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}
