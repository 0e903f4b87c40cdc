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

mod globals;
mod okta;
mod origin;
mod output;
mod raw;
mod secret;
mod service;
#[cfg(test)]
mod tests;

pub use globals::{LogLevel, SpoolLimits};
pub use okta::{DpopMode, HttpSettings, OAuth, Okta};
pub use origin::Origin;
pub use output::{Address, DevoHttp, DevoTls, Output, OutputKind};
pub use secret::Secret;
pub use service::{Emit, Limit, PullMode, Service, ServiceKind, devo_state_name};

use raw::RawConfig;
use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration error, with a message that names the key or file and how to fix it.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

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

impl Config {
    /// The folder of all spools: `<data_dir>/spool`.
    pub fn spools_dir(&self) -> PathBuf {
        self.data_dir.join("spool")
    }

    /// The spool folder of `kind`'s table: `<data_dir>/spool/<service>`.
    pub fn spool_dir(&self, kind: ServiceKind) -> PathBuf {
        self.spools_dir().join(kind.name())
    }
}

/// Where the file is, for the resolving stage: relative paths resolve against its folder, and
/// every message names the file and the key.
pub(crate) struct Cx<'a> {
    path: &'a Path,
    folder: PathBuf,
}

impl Cx<'_> {
    /// `p`, absolute: relative to the config's folder.
    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.folder.join(p)
        }
    }

    /// `<file>: <key>`, the start of a message about `key`.
    fn at(&self, key: &str) -> String {
        format!("{}: {key}", self.path.display())
    }
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
            ConfigError(format!("{}: {e}{}", path.display(), suggestion(&e)))
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

/// The machine's host name (the syslog HOSTNAME default).
pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}
