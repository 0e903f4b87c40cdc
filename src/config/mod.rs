//! The YAML config file, in two stages (as ripgrep's flags are): `raw.rs` is the file's shape
//! for serde (unknown keys rejected with line and column, the nearest known key suggested);
//! the other files resolve it into a checked [`Config`] whose values need no more checking:
//! paths made absolute, URLs parsed, secrets read. Loading reads the secret files and the
//! OAuth key, nothing else; TLS material is loaded by `forward::tls`.
//!
//! | file | what it resolves |
//! |---|---|
//! | `globals.rs` | `globals`: ids, data_dir, logging, the spool's bounds, Devo's framework keys |
//! | `output.rs` | `outputs` |
//! | `okta.rs` | `inputs.okta`: the org, the token or OAuth app, timeouts, proxy |
//! | `service.rs` | `inputs.okta.services` and the service enum shared with `okta` |
//! | `secret.rs` | [`Secret`] and the three ways to give one |
//! | `origin.rs` | [`Origin`]: where a secret may be sent |
//! | `error.rs` | [`ConfigError`] and the context every step resolves in |
//!
//! The children never import this file or each other both ways: what the whole config is
//! asked (its secret files, warnings, what a reload changes) is answered here.

mod error;
mod globals;
mod okta;
mod origin;
mod output;
mod raw;
mod secret;
mod service;
#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub use globals::SpoolLimits;
pub use okta::{DpopMode, HttpSettings, OAuth, Okta};
pub use origin::Origin;
pub use output::{Address, DevoHttp, DevoTls, Output, OutputKind, machine_hostname};
pub use raw::{Emit, LogLevel};
pub use secret::Secret;
pub use service::{DEFAULT_FULL_LISTING_EVERY, MIN_FULL_LISTING_EVERY, Rule};
pub use service::{Limit, PullMode, Service, ServiceKind, devo_state_name};

use error::{Cx, err};
use raw::RawConfig;
use std::path::{Path, PathBuf};

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file.
    pub path: PathBuf,
    /// `globals.id`: names the instance.
    pub id: String,
    /// Absolute spool and state directory.
    pub data_dir: PathBuf,
    /// Log level.
    pub log_level: LogLevel,
    /// `globals.self_monitoring`: the lowest level of the collector's own log lines sent to
    /// Devo (the statistics lines always are); `None`: off.
    pub self_monitoring: Option<LogLevel>,
    /// The outputs, by name; each gets every table and keeps its own ack position per table.
    pub outputs: Vec<Output>,
    /// The Okta input.
    pub okta: Okta,
    /// `globals.requests_per_minute`: all services together (`None`: no global budget).
    pub requests_per_minute: Option<u32>,
    /// `inputs.okta.requests_per_second` (Devo's key): another budget for all services.
    pub input_budget: Option<Limit>,
    /// Keys of Devo's collector framework accepted with no effect, each with why: logged
    /// once at start (INFO).
    pub notes: Vec<String>,
    /// `globals.persistence` (filesystem): the folder of Devo's state files for this
    /// collector (`<directory_name>/<globals.id>`), to take them over.
    pub devo_state: Option<PathBuf>,
    /// `globals.spool`.
    pub spool: SpoolLimits,
    /// `globals.metrics_listen`: where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `globals.log_file`, `log_max_bytes`, `log_keep`, `log_format`.
    pub log: crate::logging::Options,
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" message: the known key nearest
/// to `x`, as " (did you mean `a`?)", if one is near enough; else nothing.
fn suggestion(message: &str) -> String {
    let Some(rest) = message.split("unknown field `").nth(1) else {
        return String::new();
    };
    let Some((unknown, rest)) = rest.split_once('`') else {
        return String::new();
    };
    let known = rest
        .split(" at line ")
        .next()
        .unwrap_or("")
        .split('`')
        .skip(1)
        .step_by(2);
    let best = known
        .map(|k| (edit_distance(unknown, k), k))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k)) if d > 0 && d <= (unknown.len() / 3).max(2) => {
            format!(" (did you mean `{k}`?)")
        }
        _ => String::new(),
    }
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The largest config file read.
pub const MAX_CONFIG_BYTES: usize = 256 << 10;

/// Where a config that does not parse has a tab in a line's indentation, says so: YAML
/// indents with spaces only, and its own message ("found character that cannot start any
/// token") does not name the tab.
fn tab_hint(text: &str) -> String {
    text.lines()
        .position(|l| {
            l.chars()
                .take_while(|c| c.is_whitespace())
                .any(|c| c == '\t')
        })
        .map_or_else(String::new, |i| {
            format!(
                " (line {} is indented with a tab: YAML indents with spaces only; replace the tab with spaces)",
                i + 1
            )
        })
}

impl Config {
    /// The folder of all spools: `<data_dir>/spool`.
    pub fn spools_dir(&self) -> PathBuf {
        self.data_dir.join("spool")
    }

    /// The spool folder of `kind`'s table: `<data_dir>/spool/<service>`.
    pub fn spool_dir(&self, kind: ServiceKind) -> PathBuf {
        self.spools_dir().join(kind.name())
    }

    /// What entitlement service `kind` knows: `<data_dir>/entitlements/<service>`.
    pub fn entitlements_dir(&self, kind: ServiceKind) -> PathBuf {
        self.data_dir.join("entitlements").join(kind.name())
    }

    /// The consumers of `kind`'s spool: every output, and for the System Log each enabled
    /// entitlement service (which follows it), in that order.
    pub fn consumers(&self, kind: ServiceKind) -> Vec<String> {
        let mut out: Vec<String> = self.outputs.iter().map(|o| o.name.clone()).collect();
        if kind == ServiceKind::Logs {
            out.extend(
                self.okta
                    .services
                    .iter()
                    .filter(|s| s.kind.is_entitlement())
                    .map(|s| entitlement_consumer(s.kind)),
            );
        }
        out
    }
}

/// The start of the consumer names the entitlement services take in the System Log's spool
/// (reserved: no output may be named so).
pub const ENTITLEMENT_CONSUMER_PREFIX: &str = "okc-follow-";

/// The consumer name of entitlement service `kind` in the System Log's spool.
pub fn entitlement_consumer(kind: ServiceKind) -> String {
    format!("{ENTITLEMENT_CONSUMER_PREFIX}{}", kind.name())
}

impl Config {
    /// Reads, parses and checks the config file at `path`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, the key (with line and column for shape errors) and
    /// what to do.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ))
        })?;
        Config::parse(path, &text)
    }

    /// Parses `text` as if read from `path` (relative paths resolve against its folder).
    ///
    /// # Errors
    /// See [`Config::load`].
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        // A real config is a few KiB; parsing grows faster than the size with deep nesting.
        if text.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError(format!(
                "{}: the config file is {} bytes, over the limit of {} KiB (a config is a few KiB; is this the right file?)",
                path.display(),
                text.len(),
                MAX_CONFIG_BYTES >> 10
            )));
        }
        let raw: RawConfig = yaml_serde::from_str(text).map_err(|e| {
            let e = e.to_string();
            ConfigError(format!(
                "{}: {e}{}{}",
                path.display(),
                suggestion(&e),
                tab_hint(text)
            ))
        })?;
        let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let cx = Cx {
            path,
            folder: if folder.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                folder
            },
        };
        let mut g = globals::resolve(raw.globals, &cx)?;
        if raw.outputs.is_empty() {
            return err(format!(
                "{}: no output is configured; add one under `outputs:` (type: devo_platform, relay, devo_http or console; see config/config.example.yaml)",
                path.display()
            ));
        }
        let mut outputs = Vec::new();
        for (name, o) in raw.outputs {
            outputs.push(output::resolve(name, o, &cx)?);
        }
        let (okta, input_budget) =
            okta::resolve(raw.inputs.okta, &cx, g.devo_state.as_deref(), &mut g.notes)?;
        Ok(Config {
            path: path.to_path_buf(),
            id: g.id,
            data_dir: g.data_dir,
            log_level: g.log_level,
            self_monitoring: g.self_monitoring,
            outputs,
            okta,
            requests_per_minute: g.requests_per_minute,
            input_budget,
            spool: g.spool,
            metrics_listen: g.metrics_listen,
            log: g.log,
            notes: g.notes,
            devo_state: g.devo_state,
        })
    }
}

impl Config {
    /// The files that hold a secret in clear, each with what it holds: the Okta API token's
    /// (the config itself, or `api_token_file`), each `devo_http` token's, each client key.
    pub fn secret_files(&self) -> Vec<(PathBuf, String)> {
        let mut out: Vec<(PathBuf, String)> = Vec::new();
        let mut add = |p: &Path, what: String| match out.iter_mut().find(|(q, _)| q == p) {
            Some((_, w)) => {
                w.push_str(" and ");
                w.push_str(&what);
            }
            None => out.push((p.to_path_buf(), what)),
        };
        if let Some(f) = &self.okta.token_file {
            add(f, "the Okta API token".into());
        }
        if let Some(f) = self
            .okta
            .oauth
            .as_ref()
            .and_then(|o| o.private_key_file.as_ref())
        {
            add(f, "the OAuth app's private key".into());
        }
        for o in &self.outputs {
            match &o.kind {
                OutputKind::Http(h) => {
                    if let Some(f) = &h.token_file {
                        add(f, format!("outputs.{}'s ingestion token", o.name));
                    }
                }
                OutputKind::Devo(d) => add(&d.key, format!("outputs.{}'s client key", o.name)),
                _ => {}
            }
        }
        out
    }

    /// A warning for each file holding a secret in clear that other users can read.
    pub fn secret_file_warnings(&self) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt;
        self.secret_files()
            .into_iter()
            .filter_map(|(f, what)| {
                let mode = std::fs::metadata(&f).ok()?.permissions().mode() & 0o777;
                (mode & 0o077 != 0).then(|| {
                    format!(
                        "{} holds {what} and can be read by other users (mode {mode:03o}); \
                         run `chmod 600 {}` (or pass a token through its _env setting).",
                        f.display(),
                        f.display()
                    )
                })
            })
            .collect()
    }
}

impl Config {
    /// A warning for each output whose server certificate's name is not checked.
    pub fn tls_warnings(&self) -> Vec<String> {
        self.outputs
            .iter()
            .filter_map(|o| match &o.kind {
                OutputKind::Devo(d) => Some(
                    [
                        (!d.check_hostname).then(|| format!(
                            "outputs.{}.config.check_hostname is false: the server's certificate is verified against {} but its name is not checked against {} (as Devo's own collector does); set server_name to the name the certificate holds instead, if it holds one",
                            o.name,
                            d.chain.display(),
                            d.address
                        )),
                        d.legacy_signatures.then(|| format!(
                            "outputs.{}.config.legacy_signatures is true: the server's chain may be signed with SHA-1 or by an RSA key of 1024 bits, which can be forged; ask Devo for its SHA-256 chain (the 2022 chain files) and remove the setting",
                            o.name
                        )),
                    ]
                    .into_iter()
                    .flatten(),
                ),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

impl Config {
    /// What a reload changes about where the API token goes (`okta_url`, `proxy`,
    /// `ca_file`), one line each; nothing secret is named (a proxy URL may hold a password).
    pub fn token_route_changes(&self, new: &Config) -> Vec<String> {
        let mut out = Vec::new();
        if self.okta.url.base() != new.okta.url.base() {
            out.push(format!(
                "inputs.okta.credentials.okta_url changed from {} to {}: the API token goes to the new org from now on",
                self.okta.url.base(),
                new.okta.url.base()
            ));
        }
        let proxy = |c: &Config| c.okta.http.proxy.as_ref().map(|p| p.expose().to_string());
        if proxy(self) != proxy(new) {
            out.push(
                "the Okta proxy setting changed: the API token travels through the new proxy from now on".into(),
            );
        }
        if self.okta.http.ca_file != new.okta.http.ca_file {
            out.push(format!(
                "the Okta ca_file changed ({} -> {}): the certificates that vouch for the org are others from now on",
                self.okta.http.ca_file.as_deref().map_or("none".into(), |p| p.display().to_string()),
                new.okta.http.ca_file.as_deref().map_or("none".into(), |p| p.display().to_string())
            ));
        }
        let app = |c: &Config| {
            c.okta.oauth.as_ref().map(|o| {
                (
                    o.client_id.clone(),
                    o.private_key.clone(),
                    o.key_id.clone(),
                    o.scopes.clone(),
                    o.dpop,
                )
            })
        };
        if app(self) != app(new) {
            out.push(match &new.okta.oauth {
                Some(o) => format!(
                    "inputs.okta.credentials.oauth changed: a new token is taken for client {} and the old one is dropped",
                    o.client_id
                ),
                None => "inputs.okta.credentials.oauth was removed: the old token is dropped and the API token is used".into(),
            });
        }
        out
    }
}
