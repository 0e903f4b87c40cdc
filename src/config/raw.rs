//! The config file's shape, for serde and nothing else: every key either layout knows (ours
//! and Devo's collector framework's), unknown keys rejected, nothing resolved. The checked
//! types are built from these by the other files of `config/`; the two enums that need no
//! resolving (`log_level`, `emit`) are used as they are.

use super::secret::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) globals: RawGlobals,
    #[serde(default)]
    pub(super) outputs: BTreeMap<String, RawOutput>,
    pub(super) inputs: RawInputs,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGlobals {
    pub(super) id: Option<Scalar>,
    /// Devo's collector framework: `true` turns debug logging on (unless `log_level` is set).
    pub(super) debug: Option<bool>,
    /// Devo's collector framework: the collector's name (no effect here).
    pub(super) name: Option<String>,
    /// Devo's collector framework: where its state is; read to take that state over.
    pub(super) persistence: Option<RawPersistence>,
    /// Devo's collector framework keys with no effect here (each noted once at start).
    pub(super) multiprocessing: Option<bool>,
    pub(super) queue_max_size_in_mb: Option<u64>,
    pub(super) queue_max_size_in_messages: Option<u64>,
    pub(super) queue_max_elapsed_time_in_sec: Option<u64>,
    pub(super) queue_wrap_max_size_in_messages: Option<u64>,
    pub(super) sender_concurrent_connections: Option<u64>,
    pub(super) sender_stats_period_in_sec: Option<u64>,
    pub(super) devo_sender_threshold_for_using_gzip_in_transport_layer: Option<f64>,
    pub(super) devo_sender_compression_level: Option<u64>,
    pub(super) devo_sender_compression_buffer_in_bytes: Option<u64>,
    pub(super) data_dir: Option<PathBuf>,
    pub(super) log_level: Option<LogLevel>,
    pub(super) requests_per_minute: Option<u32>,
    #[serde(default)]
    pub(super) spool: RawSpool,
    pub(super) metrics_listen: Option<String>,
    pub(super) log_file: Option<PathBuf>,
    pub(super) log_max_bytes: Option<u64>,
    pub(super) log_keep: Option<u32>,
    pub(super) log_format: Option<LogFormat>,
    /// The collector's own log lines to Devo: `false`, `true`, or `{level: …}`.
    pub(super) self_monitoring: Option<RawSelfMonitoring>,
}

/// `globals.self_monitoring`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawSelfMonitoring {
    Switch(bool),
    Settings(RawSelfMonitoringSettings),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSelfMonitoringSettings {
    pub(super) level: Option<LogLevel>,
}

/// `globals.persistence` of Devo's collector framework.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPersistence {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) config: Option<RawPersistenceConfig>,
}

/// Its `config`: `directory_name` for `filesystem`; a `redis` one has other keys.
#[derive(Deserialize)]
pub(super) struct RawPersistenceConfig {
    pub(super) directory_name: Option<PathBuf>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum LogFormat {
    Text,
    Json,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpool {
    pub(super) max_bytes_per_table: Option<u64>,
    pub(super) min_free_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(tag = "type", content = "config", deny_unknown_fields)]
pub(super) enum RawOutput {
    #[serde(rename = "devo_platform")]
    DevoPlatform(RawDevo),
    #[serde(rename = "relay", alias = "in_house_relay")]
    Relay(RawRelay),
    #[serde(rename = "devo_http")]
    DevoHttp(RawDevoHttp),
    #[serde(rename = "console")]
    Console(Option<RawConsole>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelay {
    #[serde(alias = "url", alias = "location")]
    pub(super) address: String,
    pub(super) port: Option<u16>,
    pub(super) hostname: Option<String>,
    /// Devo's sender type: `TCP` here.
    #[serde(rename = "type")]
    pub(super) transport: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDevoHttp {
    pub(super) url: String,
    pub(super) domain: String,
    pub(super) token: Option<Secret>,
    pub(super) token_env: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) hostname: Option<String>,
    pub(super) batch_bytes: Option<u64>,
    pub(super) request_timeout_in_seconds: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    pub(super) hostname: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDevo {
    #[serde(alias = "url", alias = "location")]
    pub(super) address: String,
    pub(super) port: Option<u16>,
    #[serde(alias = "chain_loc")]
    pub(super) chain: PathBuf,
    #[serde(alias = "cert_loc")]
    pub(super) cert: PathBuf,
    #[serde(alias = "key_loc")]
    pub(super) key: PathBuf,
    pub(super) hostname: Option<String>,
    /// Devo's sender type: `SSL` (the only one a `devo_platform` output has).
    #[serde(rename = "type")]
    pub(super) transport: Option<String>,
    /// The name the server's certificate is checked against, instead of `address`.
    pub(super) server_name: Option<String>,
    /// Devo's collector's setting: `false` checks the chain, not the name.
    pub(super) check_hostname: Option<bool>,
    /// Accept SHA-1 signatures and 1024-bit RSA signers in the server's chain.
    pub(super) legacy_signatures: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInputs {
    pub(super) okta: RawOkta,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOkta {
    pub(super) id: Option<Scalar>,
    pub(super) enabled: Option<bool>,
    /// Devo's local limiter for the whole input: a budget of this many requests a second.
    pub(super) requests_per_second: Option<f64>,
    /// Devo's override of the collector definition's API base URL: for Okta, the org's URL
    /// (`credentials.okta_url`, which it may replace; both must then agree).
    pub(super) override_api_base_url: Option<String>,
    pub(super) credentials: RawCredentials,
    pub(super) services: RawServices,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) proxy: Option<Secret>,
    pub(super) connect_timeout_in_seconds: Option<u64>,
    pub(super) request_timeout_in_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredentials {
    pub(super) okta_url: Option<String>,
    pub(super) api_token: Option<Secret>,
    pub(super) api_token_env: Option<String>,
    pub(super) api_token_file: Option<PathBuf>,
    /// An OAuth 2.0 API Services app instead of an API token.
    pub(super) oauth: Option<RawOAuth>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOAuth {
    pub(super) client_id: String,
    pub(super) private_key_file: Option<PathBuf>,
    pub(super) private_key_env: Option<String>,
    pub(super) key_id: Option<String>,
    pub(super) scopes: Option<Vec<String>>,
    pub(super) dpop: Option<RawDpop>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawDpop {
    Switch(bool),
    Word(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServices {
    pub(super) logs: Option<RawService>,
    pub(super) apps: Option<RawService>,
    pub(super) clients: Option<RawService>,
    pub(super) groups: Option<RawService>,
    pub(super) idps: Option<RawService>,
    pub(super) users: Option<RawService>,
    pub(super) zones: Option<RawService>,
    pub(super) group_members: Option<RawService>,
    pub(super) app_assignments: Option<RawService>,
    pub(super) admin_roles: Option<RawService>,
    pub(super) factors: Option<RawService>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) enabled: Option<bool>,
    #[serde(
        alias = "initial_start_time_in_utc",
        alias = "historic_date_utc",
        alias = "start_time_in_utc"
    )]
    pub(super) start: Option<Scalar>,
    pub(super) request_period_in_seconds: Option<u64>,
    /// Devo's per-service keys with no effect here (noted once at start).
    pub(super) requests_per_second: Option<f64>,
    pub(super) retries: Option<u64>,
    pub(super) use_time_slots_for_retrievals: Option<bool>,
    pub(super) override_tag: Option<String>,
    pub(super) emit: Option<Emit>,
    /// The entitlement services' full listing period (humantime).
    pub(super) full_listing_every: Option<Scalar>,
    /// `logs`: Okta's SCIM `filter`, asked of Okta.
    pub(super) filter: Option<String>,
    /// `logs`: event types (exact or `*` globs) not spooled.
    pub(super) drop: Option<Vec<String>>,
    /// `logs`: event types spooled one in N.
    pub(super) sample: Option<Vec<RawSample>>,
    pub(super) requests_limits: Option<Vec<RawLimit>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSample {
    pub(super) event_type: String,
    pub(super) keep_one_in: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimit {
    pub(super) period: u64,
    pub(super) number_of_requests: u32,
}

/// Any YAML scalar, kept as text, so a mistyped value gets our message rather than serde's.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Scalar {
    S(String),
    I(i64),
    F(f64),
    B(bool),
}

impl Scalar {
    pub(super) fn text(self) -> String {
        match self {
            Scalar::S(s) => s,
            Scalar::I(i) => i.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }
    }
}

/// `globals.log_level`.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Lifecycle and statistics (default).
    Info,
    /// Per request.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The `log` crate's filter.
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// What a snapshot service writes each period (`emit`).
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Emit {
    /// Every object, every period, so a query can read the latest snapshot (default).
    #[default]
    All,
    /// Only new or changed objects (by content hash), and a deletion record for each object
    /// that disappeared.
    Changes,
}
