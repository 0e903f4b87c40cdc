//! The YAML config file: parsing (serde, unknown keys rejected with line and column) and
//! resolution into a checked [`Config`] (paths made absolute, URLs parsed, the token read).
//! Reads the token file, nothing else; TLS material is loaded by `forward::tls`.

use crate::time;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A secret string (the Okta API token). Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

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

// ---------------------------------------------------------------------------------------------
// Raw (serde) layer: the file's shape, nothing resolved.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    globals: RawGlobals,
    #[serde(default)]
    outputs: BTreeMap<String, RawOutput>,
    inputs: RawInputs,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGlobals {
    id: Option<Scalar>,
    /// Devo's collector framework: `true` turns debug logging on (unless `log_level` is set).
    debug: Option<bool>,
    /// Devo's collector framework: the collector's name (no effect here).
    name: Option<String>,
    /// Devo's collector framework: where its state is; read to take that state over.
    persistence: Option<RawPersistence>,
    /// Devo's collector framework keys with no effect here (each noted once at start).
    multiprocessing: Option<bool>,
    queue_max_size_in_mb: Option<u64>,
    queue_max_size_in_messages: Option<u64>,
    queue_max_elapsed_time_in_sec: Option<u64>,
    queue_wrap_max_size_in_messages: Option<u64>,
    sender_concurrent_connections: Option<u64>,
    sender_stats_period_in_sec: Option<u64>,
    devo_sender_threshold_for_using_gzip_in_transport_layer: Option<f64>,
    devo_sender_compression_level: Option<u64>,
    devo_sender_compression_buffer_in_bytes: Option<u64>,
    data_dir: Option<PathBuf>,
    log_level: Option<LogLevel>,
    requests_per_minute: Option<u32>,
    #[serde(default)]
    spool: RawSpool,
    metrics_listen: Option<String>,
    log_file: Option<PathBuf>,
    log_max_bytes: Option<u64>,
    log_keep: Option<u32>,
    log_format: Option<LogFormat>,
}

/// `globals.persistence` of Devo's collector framework.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPersistence {
    #[serde(rename = "type")]
    kind: String,
    config: Option<RawPersistenceConfig>,
}

/// Its `config`: `directory_name` for `filesystem`; a `redis` one has other keys.
#[derive(Deserialize)]
struct RawPersistenceConfig {
    directory_name: Option<PathBuf>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum LogFormat {
    Text,
    Json,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSpool {
    max_bytes_per_table: Option<u64>,
    min_free_bytes: Option<u64>,
}

/// `globals.spool`: when a table's spool is full, its puller pauses (nothing is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    /// A table's spool may not grow past this (plus the frame in hand).
    pub max_bytes_per_table: u64,
    /// Pullers pause while the data_dir's file system has less free space than this;
    /// `None`: 1 GiB or 5% of the file system, whichever is smaller.
    pub min_free_bytes: Option<u64>,
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

#[derive(Deserialize)]
#[serde(tag = "type", content = "config", deny_unknown_fields)]
enum RawOutput {
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
struct RawRelay {
    #[serde(alias = "url", alias = "location")]
    address: String,
    port: Option<u16>,
    hostname: Option<String>,
    /// Devo's sender type: `TCP` here.
    #[serde(rename = "type")]
    transport: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevoHttp {
    url: String,
    domain: String,
    token: Option<Secret>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    hostname: Option<String>,
    batch_bytes: Option<u64>,
    request_timeout_in_seconds: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    hostname: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevo {
    #[serde(alias = "url", alias = "location")]
    address: String,
    port: Option<u16>,
    #[serde(alias = "chain_loc")]
    chain: PathBuf,
    #[serde(alias = "cert_loc")]
    cert: PathBuf,
    #[serde(alias = "key_loc")]
    key: PathBuf,
    hostname: Option<String>,
    /// Devo's sender type: `SSL` (the only one a `devo_platform` output has).
    #[serde(rename = "type")]
    transport: Option<String>,
    /// The name the server's certificate is checked against, instead of `address`.
    server_name: Option<String>,
    /// Devo's collector's setting: `false` checks the chain, not the name.
    check_hostname: Option<bool>,
    /// Accept SHA-1 signatures and 1024-bit RSA signers in the server's chain.
    legacy_signatures: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInputs {
    okta: RawOkta,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOkta {
    id: Option<Scalar>,
    enabled: Option<bool>,
    /// Devo's local limiter for the whole input: a budget of this many requests a second.
    requests_per_second: Option<f64>,
    /// Devo's override of the collector definition's API base URL: for Okta, the org's URL
    /// (`credentials.okta_url`, which it may replace; both must then agree).
    override_api_base_url: Option<String>,
    credentials: RawCredentials,
    services: RawServices,
    ca_file: Option<PathBuf>,
    proxy: Option<Secret>,
    connect_timeout_in_seconds: Option<u64>,
    request_timeout_in_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    okta_url: Option<String>,
    api_token: Option<Secret>,
    api_token_env: Option<String>,
    api_token_file: Option<PathBuf>,
    /// An OAuth 2.0 API Services app instead of an API token.
    oauth: Option<RawOAuth>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth {
    client_id: String,
    private_key_file: Option<PathBuf>,
    private_key_env: Option<String>,
    key_id: Option<String>,
    scopes: Option<Vec<String>>,
    dpop: Option<RawDpop>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDpop {
    Switch(bool),
    Word(String),
}

/// Whether DPoP proofs are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopMode {
    /// A proof with the first token request, then as Okta issued: DPoP token, proofs; Bearer
    /// token, none.
    Auto,
    /// Always; a Bearer token is refused.
    On,
    /// Never.
    Off,
}

/// An OAuth 2.0 API Services app (`inputs.okta.credentials.oauth`).
#[derive(Debug, Clone)]
pub struct OAuth {
    /// The app's client id.
    pub client_id: String,
    /// The private key (PEM or JWK text).
    pub private_key: Secret,
    /// Where it came from, for messages: `private_key_file (path)` or `private_key_env (VAR)`.
    pub private_key_from: String,
    /// The key file, for the mode check.
    pub private_key_file: Option<PathBuf>,
    /// The `kid` registered with the app.
    pub key_id: Option<String>,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// DPoP.
    pub dpop: DpopMode,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServices {
    logs: Option<RawService>,
    apps: Option<RawService>,
    clients: Option<RawService>,
    groups: Option<RawService>,
    idps: Option<RawService>,
    users: Option<RawService>,
    zones: Option<RawService>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawService {
    enabled: Option<bool>,
    #[serde(
        alias = "initial_start_time_in_utc",
        alias = "historic_date_utc",
        alias = "start_time_in_utc"
    )]
    start: Option<Scalar>,
    request_period_in_seconds: Option<u64>,
    /// Devo's per-service keys with no effect here (noted once at start).
    requests_per_second: Option<f64>,
    retries: Option<u64>,
    use_time_slots_for_retrievals: Option<bool>,
    override_tag: Option<String>,
    emit: Option<Emit>,
    requests_limits: Option<Vec<RawLimit>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    period: u64,
    number_of_requests: u32,
}

/// A local request budget: at most `requests` in any `period` (a sliding window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The window.
    pub period: Duration,
    /// Requests allowed in it.
    pub requests: u32,
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

/// Any YAML scalar, kept as text, so a mistyped value gets our message rather than serde's.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    S(String),
    I(i64),
    F(f64),
    B(bool),
}

impl Scalar {
    fn text(self) -> String {
        match self {
            Scalar::S(s) => s,
            Scalar::I(i) => i.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Resolved layer.

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

/// The Okta input.
#[derive(Debug, Clone)]
pub struct Okta {
    /// `inputs.okta.id`.
    pub id: String,
    /// `inputs.okta.enabled`.
    pub enabled: bool,
    /// The org.
    pub url: OktaUrl,
    /// The API token.
    pub token: Secret,
    /// The file that holds the token in clear (the config itself, or `api_token_file`), if
    /// any; `None` when it comes from the environment.
    pub token_file: Option<PathBuf>,
    /// An OAuth app instead of the API token (`token` is then empty).
    pub oauth: Option<OAuth>,
    /// Services that run (listed and not disabled).
    pub services: Vec<Service>,
    /// How to reach the org.
    pub http: HttpSettings,
}

/// Connection settings for the org.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// PEM CA certificates trusted instead of the built-in roots (a TLS-inspecting proxy's).
    pub ca_file: Option<PathBuf>,
    /// An explicit proxy URL (may hold credentials, hence a `Secret`); otherwise `HTTPS_PROXY`,
    /// `ALL_PROXY` and `NO_PROXY` from the environment apply.
    pub proxy: Option<Secret>,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout, body included.
    pub request_timeout: Duration,
}

/// The org's base URL, split so next links can be checked against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OktaUrl {
    /// `https` (or `http` for a loopback host).
    pub scheme: String,
    /// Host, lowercase.
    pub host: String,
    /// Port (the scheme's default when not given).
    pub port: u16,
}

impl OktaUrl {
    /// Parses and checks an `okta_url`.
    pub fn parse(s: &str) -> Result<OktaUrl, String> {
        let uri: ureq::http::Uri = s
            .trim()
            .parse()
            .map_err(|e| format!("{s:?} is not a URL ({e})"))?;
        if uri.scheme_str().is_none() {
            return Err(format!("{s:?} must start with https://"));
        }
        let Some(origin) = OktaUrl::origin_of_uri(&uri).filter(|o| !o.host.is_empty()) else {
            return Err(format!(
                "{s:?} has no host; write it as https://<your-org>.okta.com"
            ));
        };
        let (scheme, host) = (&origin.scheme, &origin.host);
        match scheme.as_str() {
            "https" => {}
            "http" if is_loopback(host) => {}
            "http" => {
                return Err(format!(
                    "{s:?} uses http://; the API token must travel over https:// (http:// is accepted only for loopback hosts)"
                ));
            }
            _ => return Err(format!("{s:?} must start with https://")),
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "{s:?} must be the org's base URL, without a path or query (e.g. https://acme.okta.com)"
            ));
        }
        Ok(origin)
    }

    /// The base, e.g. `https://acme.okta.com` (with the port only when it is not the default).
    pub fn base(&self) -> String {
        let default = if self.scheme == "http" { 80 } else { 443 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            format!("{}://{}", self.scheme, host)
        } else {
            format!("{}://{}:{}", self.scheme, host, self.port)
        }
    }

    /// True if `url` has the same scheme, host and port: only then may the token be sent to it.
    pub fn same_origin(&self, url: &str) -> bool {
        OktaUrl::origin_of(url).is_some_and(|o| o == *self)
    }

    fn origin_of(url: &str) -> Option<OktaUrl> {
        OktaUrl::origin_of_uri(&url.parse().ok()?)
    }

    /// Scheme and host lowercased, IPv6 brackets removed, the scheme's default port filled in.
    fn origin_of_uri(uri: &ureq::http::Uri) -> Option<OktaUrl> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let host = uri.host()?.trim_matches(['[', ']']).to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        Some(OktaUrl { scheme, host, port })
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The seven Okta services of the seed collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// System Log, polled.
    Logs,
    /// Users, incremental on `lastUpdated`.
    Users,
    /// Groups, incremental on `lastUpdated` and `lastMembershipUpdated`.
    Groups,
    /// Applications, snapshot.
    Apps,
    /// Identity providers, snapshot.
    Idps,
    /// Network zones, snapshot.
    Zones,
    /// OAuth clients, snapshot.
    Clients,
}

/// How a service pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullMode {
    /// The System Log's polling (`since`, then `rel="next"` forever).
    Poll,
    /// A full listing first, then only what changed since a `lastUpdated` watermark.
    Incremental,
    /// A full listing every period.
    Snapshot,
}

impl ServiceKind {
    /// Every service, in the order the config lists them.
    pub const ALL: [ServiceKind; 7] = [
        ServiceKind::Logs,
        ServiceKind::Users,
        ServiceKind::Groups,
        ServiceKind::Apps,
        ServiceKind::Idps,
        ServiceKind::Zones,
        ServiceKind::Clients,
    ];
    /// The service's name in the config.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Logs => "logs",
            ServiceKind::Users => "users",
            ServiceKind::Groups => "groups",
            ServiceKind::Apps => "apps",
            ServiceKind::Idps => "idps",
            ServiceKind::Zones => "zones",
            ServiceKind::Clients => "clients",
        }
    }
    /// The Devo table the service feeds by default.
    pub fn default_tag(self) -> &'static str {
        match self {
            ServiceKind::Logs => "auth.okta.system",
            ServiceKind::Users => "auth.okta.users",
            ServiceKind::Groups => "auth.okta.groups",
            ServiceKind::Apps => "auth.okta.apps",
            ServiceKind::Idps => "auth.okta.idps",
            ServiceKind::Zones => "auth.okta.zones",
            ServiceKind::Clients => "auth.okta.clients",
        }
    }
    /// Default `request_period_in_seconds`.
    pub fn default_period(self) -> u64 {
        match self.mode() {
            PullMode::Poll => 60,
            PullMode::Incremental => 300,
            PullMode::Snapshot => 3600,
        }
    }
    /// The seed collector's default local budget, requests per minute.
    pub fn default_requests_per_minute(self) -> u32 {
        match self {
            ServiceKind::Logs | ServiceKind::Apps | ServiceKind::Clients => 20,
            _ => 100,
        }
    }
    /// How the service pulls.
    pub fn mode(self) -> PullMode {
        match self {
            ServiceKind::Logs => PullMode::Poll,
            ServiceKind::Users | ServiceKind::Groups => PullMode::Incremental,
            _ => PullMode::Snapshot,
        }
    }
    /// The most items Okta serves on one page of the endpoint (its documented maximum
    /// `limit`, `../shared/okta-api.md` §3.1); a page with more is refused (PullError 302),
    /// which bounds the memory a page takes. Zones document no maximum: 1,000.
    pub fn max_page_items(self) -> usize {
        match self {
            ServiceKind::Logs | ServiceKind::Zones => 1_000,
            ServiceKind::Groups => 10_000,
            ServiceKind::Users | ServiceKind::Apps | ServiceKind::Idps | ServiceKind::Clients => {
                200
            }
        }
    }
    /// The API path.
    pub fn path(self) -> &'static str {
        match self {
            ServiceKind::Logs => "/api/v1/logs",
            ServiceKind::Users => "/api/v1/users",
            ServiceKind::Groups => "/api/v1/groups",
            ServiceKind::Apps => "/api/v1/apps",
            ServiceKind::Idps => "/api/v1/idps",
            ServiceKind::Zones => "/api/v1/zones",
            ServiceKind::Clients => "/oauth2/v1/clients",
        }
    }
    /// The OAuth scope that reads it.
    pub fn scope(self) -> &'static str {
        match self {
            ServiceKind::Logs => "okta.logs.read",
            ServiceKind::Users => "okta.users.read",
            ServiceKind::Groups => "okta.groups.read",
            ServiceKind::Apps => "okta.apps.read",
            ServiceKind::Idps => "okta.idps.read",
            ServiceKind::Zones => "okta.networkZones.read",
            ServiceKind::Clients => "okta.clients.read",
        }
    }
    /// The admin role an API token's owner needs to read it.
    pub fn role(self) -> &'static str {
        match self {
            ServiceKind::Clients => {
                "Super Administrator or Application Administrator (OAuth clients are not visible to read-only admins)"
            }
            ServiceKind::Idps | ServiceKind::Zones => {
                "Read-Only Administrator, Organization Administrator or Super Administrator"
            }
            _ => "Read-Only Administrator (or any admin role that can view them)",
        }
    }
}

/// One running service.
#[derive(Debug, Clone)]
pub struct Service {
    /// Which service.
    pub kind: ServiceKind,
    /// `start`, if given: the first pull's lower bound.
    pub start: Option<SystemTime>,
    /// Pause between cycles once caught up.
    pub period: Duration,
    /// The Devo tag (table).
    pub tag: String,
    /// What a snapshot service emits (always `All` for the others).
    pub emit: Emit,
    /// Local request budgets (empty: none).
    pub limits: Vec<Limit>,
    /// Devo's collector's state file for this service, when `globals.persistence` names one
    /// (only the System Log's is taken over): `<dir>/okta_<input id>_<service>_predefined_OktaResourcesPuller.json`.
    pub devo_state: Option<PathBuf>,
}

/// The name Devo's collector gives a service's state file (its filesystem persistence):
/// `<input name>_<input id>_<service name>_<service type>_<module name>.json`.
pub fn devo_state_name(input_id: &str, kind: ServiceKind) -> String {
    format!(
        "okta_{input_id}_{}_predefined_OktaResourcesPuller.json",
        kind.name()
    )
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
        let mut raw: RawConfig = yaml_serde::from_str(text).map_err(|e| {
            let e = e.to_string();
            ConfigError(format!("{}: {e}{}", path.display(), suggestion(&e)))
        })?;
        let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let folder = if folder.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            folder
        };
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                folder.join(p)
            }
        };
        let at = |key: &str| format!("{}: {key}", path.display());

        let id = raw
            .globals
            .id
            .take()
            .map(Scalar::text)
            .unwrap_or_else(|| "okta-collector".to_string());
        let data_dir = resolve(raw.globals.data_dir.as_deref().unwrap_or(Path::new("data")));
        let g = &raw.globals;
        // Devo's `debug: true` is debug logging, unless `log_level` says otherwise.
        let log_level = g.log_level.unwrap_or(if g.debug == Some(true) {
            LogLevel::Debug
        } else {
            LogLevel::Info
        });
        let mut notes = Vec::new();
        let mut no_effect = |key: &str, set: bool, why: &str| {
            if set {
                notes.push(format!(
                    "{key} (a key of Devo's collector framework) has no effect here: {why}."
                ));
            }
        };
        let queue = "events wait in the on-disk spool, bounded by globals.spool.max_bytes_per_table and min_free_bytes";
        no_effect(
            "globals.name",
            g.name.is_some(),
            "the log lines name the input and its services",
        );
        no_effect(
            "globals.multiprocessing",
            g.multiprocessing.is_some(),
            "the collector is one process by design, one task per service",
        );
        for (key, set) in [
            (
                "globals.queue_max_size_in_mb",
                g.queue_max_size_in_mb.is_some(),
            ),
            (
                "globals.queue_max_size_in_messages",
                g.queue_max_size_in_messages.is_some(),
            ),
            (
                "globals.queue_max_elapsed_time_in_sec",
                g.queue_max_elapsed_time_in_sec.is_some(),
            ),
            (
                "globals.queue_wrap_max_size_in_messages",
                g.queue_wrap_max_size_in_messages.is_some(),
            ),
        ] {
            no_effect(key, set, queue);
        }
        let sender =
            "each output keeps one connection, and sends from the spool as fast as the peer takes";
        for (key, set) in [
            (
                "globals.sender_concurrent_connections",
                g.sender_concurrent_connections.is_some(),
            ),
            (
                "globals.devo_sender_threshold_for_using_gzip_in_transport_layer",
                g.devo_sender_threshold_for_using_gzip_in_transport_layer
                    .is_some(),
            ),
            (
                "globals.devo_sender_compression_level",
                g.devo_sender_compression_level.is_some(),
            ),
            (
                "globals.devo_sender_compression_buffer_in_bytes",
                g.devo_sender_compression_buffer_in_bytes.is_some(),
            ),
        ] {
            no_effect(key, set, sender);
        }
        no_effect(
            "globals.sender_stats_period_in_sec",
            g.sender_stats_period_in_sec.is_some(),
            "the send statistics line comes every 300 s",
        );
        if g.debug.is_some() && g.log_level.is_some() {
            notes.push("globals.debug is overridden by globals.log_level.".into());
        }
        // Devo's persistence: where its state files are, to take them over.
        let devo_state = match &g.persistence {
            None => None,
            Some(p) if p.kind == "filesystem" => {
                let dir = p
                    .config
                    .as_ref()
                    .and_then(|c| c.directory_name.clone())
                    .unwrap_or_else(|| PathBuf::from("state"));
                // Relative to the working directory, as Devo's collector resolves it.
                let dir = if dir.is_absolute() {
                    dir
                } else {
                    std::env::current_dir().unwrap_or_default().join(dir)
                };
                Some(dir.join(&id))
            }
            Some(p) => {
                notes.push(format!(
                    "globals.persistence of type {:?} is not read: only Devo's filesystem persistence can be taken over (the state lives in the spool here).",
                    p.kind
                ));
                None
            }
        };

        if raw.outputs.is_empty() {
            return err(format!(
                "{}: no output is configured; add one under `outputs:` (type: devo_platform, relay, devo_http or console; see config/config.example.yaml)",
                path.display()
            ));
        }
        let mut outputs = Vec::new();
        for (name, o) in raw.outputs {
            outputs.push(resolve_output(name, o, path, &resolve, &at)?);
        }

        let o = raw.inputs.okta;
        let (url_key, url_text) = match (&o.credentials.okta_url, &o.override_api_base_url) {
            (Some(u), None) => ("inputs.okta.credentials.okta_url", u),
            (None, Some(u)) => ("inputs.okta.override_api_base_url", u),
            (Some(u), Some(b)) if OktaUrl::parse(b).is_err() => {
                ("inputs.okta.override_api_base_url", b)
            }
            (Some(u), Some(b)) if OktaUrl::parse(u) == OktaUrl::parse(b) => {
                ("inputs.okta.credentials.okta_url", u)
            }
            (Some(u), Some(b)) => {
                return err(format!(
                    "{}: {u:?} and inputs.okta.override_api_base_url {b:?} name different orgs; the API token goes to one org only: keep one of the two",
                    at("inputs.okta.credentials.okta_url")
                ));
            }
            (None, None) => {
                return err(format!(
                    "{}: missing; set it to the org's URL, e.g. https://acme.okta.com",
                    at("inputs.okta.credentials.okta_url")
                ));
            }
        };
        let url =
            OktaUrl::parse(url_text).map_err(|e| ConfigError(format!("{}: {e}", at(url_key))))?;
        let c = &o.credentials;
        let any_token =
            c.api_token.is_some() || c.api_token_env.is_some() || c.api_token_file.is_some();
        if any_token && c.oauth.is_some() {
            return err(format!(
                "{}: set either an API token (api_token, api_token_env or api_token_file) or oauth, not both",
                at("inputs.okta.credentials")
            ));
        }
        let (token, token_file) = if c.oauth.is_some() {
            (Secret::new(String::new()), None)
        } else {
            let token = resolve_token(c, &resolve, &at)?;
            let token_file = match (&c.api_token, &c.api_token_file) {
                (Some(_), _) => Some(path.to_path_buf()),
                (None, Some(f)) => Some(resolve(f)),
                (None, None) => None,
            };
            (token, token_file)
        };
        let raw_oauth = o.credentials.oauth;
        let mut services = Vec::new();
        let s = o.services;
        for (kind, svc) in [
            (ServiceKind::Logs, s.logs),
            (ServiceKind::Users, s.users),
            (ServiceKind::Groups, s.groups),
            (ServiceKind::Apps, s.apps),
            (ServiceKind::Idps, s.idps),
            (ServiceKind::Zones, s.zones),
            (ServiceKind::Clients, s.clients),
        ] {
            if let Some(svc) = svc
                && svc.enabled != Some(false)
            {
                let key = format!("inputs.okta.services.{}", kind.name());
                for (k, set, why) in [
                    (
                        "requests_per_second",
                        svc.requests_per_second.is_some(),
                        "a service's local budget is requests_limits",
                    ),
                    (
                        "retries",
                        svc.retries.is_some(),
                        "a failed cycle is retried with backoff until it succeeds",
                    ),
                    (
                        "use_time_slots_for_retrievals",
                        svc.use_time_slots_for_retrievals.is_some(),
                        "cycles run every request_period_in_seconds from the last one",
                    ),
                ] {
                    if set {
                        notes.push(format!("{key}.{k} (a key of Devo's collector framework) has no effect here: {why}."));
                    }
                }
                services.push(resolve_service(kind, svc, &at)?);
            }
        }
        let seconds = |key: &str, v: Option<u64>, default: u64| match v {
            None => Ok(Duration::from_secs(default)),
            Some(0) => err(format!(
                "{}: must be at least 1",
                at(&format!("inputs.okta.{key}"))
            )),
            Some(n) => Ok(Duration::from_secs(n)),
        };
        let http = HttpSettings {
            ca_file: o.ca_file.as_deref().map(resolve),
            proxy: o.proxy,
            connect_timeout: seconds(
                "connect_timeout_in_seconds",
                o.connect_timeout_in_seconds,
                10,
            )?,
            request_timeout: seconds(
                "request_timeout_in_seconds",
                o.request_timeout_in_seconds,
                60,
            )?,
        };
        if let Some(p) = &http.proxy
            && let Err(_) = ureq::Proxy::new(p.expose())
        {
            return err(format!(
                "{}: not a proxy URL; write it like http://proxy.example.com:3128 (credentials as http://user:password@host:port)",
                at("inputs.okta.proxy")
            ));
        }
        let spool = SpoolLimits {
            max_bytes_per_table: match raw.globals.spool.max_bytes_per_table {
                None => 1 << 30,
                Some(n) if n < 1 << 20 => {
                    return err(format!(
                        "{}: {n} is too small; give at least 1048576 (1 MiB), e.g. 1073741824 for 1 GiB",
                        at("globals.spool.max_bytes_per_table")
                    ));
                }
                Some(n) => n,
            },
            min_free_bytes: raw.globals.spool.min_free_bytes,
        };
        let metrics_listen = match raw.globals.metrics_listen.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => Some(a.parse().map_err(|_| {
                ConfigError(format!(
                    "{}: {a:?} is not an address:port; write it like 127.0.0.1:9464",
                    at("globals.metrics_listen")
                ))
            })?),
        };
        let log = crate::logging::Options {
            file: raw.globals.log_file.as_deref().map(resolve),
            max_bytes: raw.globals.log_max_bytes.unwrap_or(10 << 20),
            keep: raw.globals.log_keep.unwrap_or(5),
            json: raw.globals.log_format == Some(LogFormat::Json),
        };
        let requests_per_minute = match raw.globals.requests_per_minute {
            None => Some(980),
            Some(0) => None,
            Some(n) => Some(n),
        };
        let input_id = o.id.map(Scalar::text).unwrap_or_else(|| "okta".into());
        if let Some(dir) = &devo_state {
            for s in &mut services {
                if s.kind == ServiceKind::Logs {
                    s.devo_state = Some(dir.join(devo_state_name(&input_id, s.kind)));
                }
            }
        }
        let oauth = match raw_oauth {
            None => None,
            Some(r) => Some(resolve_oauth(r, &services, &resolve, &at)?),
        };
        // Devo's `requests_per_second` for the input: a local budget for all its services.
        let input_budget = match o.requests_per_second {
            None => None,
            Some(r) if !(r.is_finite() && r > 0.0 && r <= 1000.0) => {
                return err(format!(
                    "{}: {r} is not a rate; give requests per second between 0.001 and 1000",
                    at("inputs.okta.requests_per_second")
                ));
            }
            Some(r) if r >= 1.0 => Some(Limit {
                period: Duration::from_secs(1),
                requests: r.floor() as u32,
            }),
            Some(r) => Some(Limit {
                period: Duration::from_secs((1.0 / r).ceil() as u64),
                requests: 1,
            }),
        };
        Ok(Config {
            path: path.to_path_buf(),
            id,
            data_dir,
            log_level,
            outputs,
            okta: Okta {
                id: input_id,
                enabled: o.enabled.unwrap_or(true),
                url,
                token,
                token_file,
                oauth,
                services,
                http,
            },
            requests_per_minute,
            input_budget,
            spool,
            metrics_listen,
            log,
            notes,
            devo_state,
        })
    }
}

/// A secret given in one of three keys under `parent`: `<stem>` (the value), `<stem>_env` (a
/// variable holding it) or `<stem>_file` (a file holding it); exactly one. `what` names it in
/// the message when none is set. The value comes back trimmed.
fn resolve_secret(
    parent: &str,
    stem: &str,
    what: &str,
    inline: Option<&Secret>,
    env: Option<&str>,
    file: Option<&Path>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Secret, ConfigError> {
    let value = match (inline, env, file) {
        (Some(t), None, None) => t.expose().to_string(),
        (None, Some(var), None) => std::env::var(var).map_err(|_| {
            ConfigError(format!(
                "{parent}.{stem}_env: the environment variable {var} is not set"
            ))
        })?,
        (None, None, Some(file)) => {
            let p = resolve(file);
            std::fs::read_to_string(&p).map_err(|e| {
                ConfigError(format!(
                    "{parent}.{stem}_file: cannot read {}: {e}",
                    p.display()
                ))
            })?
        }
        (None, None, None) => {
            return err(format!(
                "{parent}: no {what}; set one of {stem}, {stem}_env or {stem}_file"
            ));
        }
        _ => {
            return err(format!(
                "{parent}: set only one of {stem}, {stem}_env and {stem}_file"
            ));
        }
    };
    Ok(Secret::new(value.trim().to_string()))
}

fn resolve_oauth(
    r: RawOAuth,
    services: &[Service],
    resolve: &dyn Fn(&Path) -> PathBuf,
    at: &dyn Fn(&str) -> String,
) -> Result<OAuth, ConfigError> {
    let key = at("inputs.okta.credentials.oauth");
    let client_id = r.client_id.trim().to_string();
    if client_id.is_empty()
        || client_id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return err(format!(
            "{key}.client_id: {:?} is not a client id (the app's \"Client ID\", e.g. 0oa1b2c3d4e5f6g7h8i9)",
            crate::logging::escape_controls(&client_id)
        ));
    }
    let (private_key, from, file) = match (&r.private_key_file, &r.private_key_env) {
        (Some(f), None) => {
            let p = resolve(f);
            let text = std::fs::read_to_string(&p).map_err(|e| {
                ConfigError(format!(
                    "{key}.private_key_file: cannot read {}: {e}",
                    p.display()
                ))
            })?;
            let from = format!("private_key_file ({})", p.display());
            (Secret::new(text), from, Some(p))
        }
        (None, Some(var)) => {
            let text = std::env::var(var).map_err(|_| {
                ConfigError(format!(
                    "{key}.private_key_env: the environment variable {var} is not set"
                ))
            })?;
            (Secret::new(text), format!("private_key_env ({var})"), None)
        }
        (None, None) => {
            return err(format!(
                "{key}: no private key; set private_key_file (PEM or the JWK JSON the admin console gives) or private_key_env"
            ));
        }
        (Some(_), Some(_)) => {
            return err(format!(
                "{key}: set only one of private_key_file and private_key_env"
            ));
        }
    };
    let dpop = match r.dpop {
        None => DpopMode::Auto,
        Some(RawDpop::Switch(true)) => DpopMode::On,
        Some(RawDpop::Switch(false)) => DpopMode::Off,
        Some(RawDpop::Word(w)) if w.eq_ignore_ascii_case("auto") => DpopMode::Auto,
        Some(RawDpop::Word(w)) => {
            return err(format!(
                "{key}.dpop: {:?} is not auto, true or false",
                crate::logging::escape_controls(&w)
            ));
        }
    };
    // Default: what the enabled services need (okta-api.md §1.2's scope table).
    let scopes = match r.scopes {
        Some(s) if s.is_empty() => {
            return err(format!(
                "{key}.scopes: empty; leave it out to ask for what the enabled services need"
            ));
        }
        Some(s) => s,
        None => {
            let mut s: Vec<String> = services
                .iter()
                .map(|s| s.kind.scope().to_string())
                .collect();
            s.dedup();
            s
        }
    };
    let oauth = OAuth {
        client_id,
        private_key,
        private_key_from: from,
        private_key_file: file,
        key_id: r.key_id,
        scopes,
        dpop,
    };
    // The key is read now, so a bad one is a config error naming it.
    crate::jose::AppKey::parse(oauth.private_key.expose())
        .map_err(|e| ConfigError(format!("{key}.{}: {e}", oauth.private_key_from)))?;
    Ok(oauth)
}

fn resolve_token(
    c: &RawCredentials,
    resolve: &dyn Fn(&Path) -> PathBuf,
    at: &dyn Fn(&str) -> String,
) -> Result<Secret, ConfigError> {
    let key = at("inputs.okta.credentials");
    let token = resolve_secret(
        &key,
        "api_token",
        "API token",
        c.api_token.as_ref(),
        c.api_token_env.as_deref(),
        c.api_token_file.as_deref(),
        resolve,
    )?;
    let trimmed = token.expose();
    if trimmed.is_empty() {
        return err(format!("{key}: the API token is empty"));
    }
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return err(format!(
            "{key}: the API token contains spaces or control characters; check that it was copied whole"
        ));
    }
    Ok(Secret::new(trimmed.to_string()))
}

fn resolve_output(
    name: String,
    o: RawOutput,
    config_path: &Path,
    resolve: &dyn Fn(&Path) -> PathBuf,
    at: &dyn Fn(&str) -> String,
) -> Result<Output, ConfigError> {
    let key = |k: &str| at(&format!("outputs.{name}.config.{k}"));
    if !spool::valid_consumer_name(&name) {
        return err(format!(
            "{}: {name:?} cannot name an output: use letters, digits, _ and - only (it names the output's ack files)",
            at(&format!("outputs.{name}"))
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
            if let Err(e) = OktaUrl::parse(&url) {
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
                resolve,
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

fn resolve_service(
    kind: ServiceKind,
    s: RawService,
    at: &dyn Fn(&str) -> String,
) -> Result<Service, ConfigError> {
    let key = at(&format!("inputs.okta.services.{}", kind.name()));
    let emit = match (s.emit, kind.mode()) {
        (None, _) => Emit::All,
        (Some(e), PullMode::Snapshot) => e,
        (Some(_), _) => {
            return err(format!(
                "{key}.emit: only the snapshot services (apps, idps, zones, clients) take `emit`; \
                 `{}` already sends only what changed; remove the key",
                kind.name()
            ));
        }
    };
    let start = match s.start.map(Scalar::text) {
        None => None,
        Some(_) if kind.mode() == PullMode::Snapshot => {
            return err(format!(
                "{key}.start: `{}` has no time filter in Okta's API and is listed whole every period; \
                 remove the key",
                kind.name()
            ));
        }
        Some(text) => match time::parse_rfc3339(text.trim()) {
            None => {
                return err(format!(
                    "InitVariablesError 1: initial_start_time_in_utc is not set as per the datetime_format : \
                     YYYY-MM-DDTHH:MM:SSZ (RFC 3339). {key}.start is {text:?}; write it like 2024-12-04T11:45:01Z"
                ));
            }
            Some(t) if t > SystemTime::now() => {
                return err(format!(
                    "InitVariablesError 2: initial_start_time_in_utc is in the future. {key}.start is {text:?}; \
                     use a time in the past, or remove it to start from now"
                ));
            }
            Some(t) => Some(t),
        },
    };
    let period = s.request_period_in_seconds.unwrap_or(kind.default_period());
    if period == 0 {
        return err(format!(
            "{key}.request_period_in_seconds: must be at least 1"
        ));
    }
    let tag = s
        .override_tag
        .unwrap_or_else(|| kind.default_tag().to_string());
    if tag.is_empty()
        || tag.len() > 1024
        || !tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        || tag.starts_with('.')
        || tag.ends_with('.')
    {
        return err(format!(
            "{key}.override_tag: {tag:?} is not a Devo tag (dot-separated levels of letters, digits, '_' and '-', e.g. my.app.okta.logs)"
        ));
    }
    let limits = match s.requests_limits {
        None => vec![Limit {
            period: Duration::from_secs(60),
            requests: kind.default_requests_per_minute(),
        }],
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, l) in list.into_iter().enumerate() {
                if l.period == 0 || l.number_of_requests == 0 {
                    return err(format!(
                        "{key}.requests_limits[{i}]: period and number_of_requests must be at least 1 \
                         (write `requests_limits: []` for no local budget)"
                    ));
                }
                out.push(Limit {
                    period: Duration::from_secs(l.period),
                    requests: l.number_of_requests,
                });
            }
            out
        }
    };
    Ok(Service {
        kind,
        start,
        period: Duration::from_secs(period),
        tag,
        emit,
        limits,
        devo_state: None,
    })
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

/// The machine's host name (the syslog HOSTNAME default).
pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config.yaml of Devo's collector, as issue 16 gives it.
    const DEVO: &str = r#"
globals:
  debug: false
  id: not_used
  name: okta
  persistence:
    type: filesystem
    config:
      directory_name: state
  multiprocessing: false
  queue_max_size_in_mb: 1024
  queue_max_size_in_messages: 1000
  queue_max_elapsed_time_in_sec: 60
  queue_wrap_max_size_in_messages: 100
outputs:
  devo_1:
    type: devo_platform
    config:
      address: collector-us.devo.io
      port: 443
      type: SSL
      chain: chain.crt
      cert: mydomain.crt
      key: mydomain.key
inputs:
  okta:
    id: 65294
    enabled: true
    requests_per_second: 5
    credentials:
      okta_url: https://acme.okta.com
      api_token: 00abcdefSECRET
    services:
      logs:
        request_period_in_seconds: 60
        start: 2024-12-04T11:45:01Z
"#;

    #[test]
    fn devos_own_config_yaml_is_accepted_and_each_key_means_what_it_can() {
        let c = parse(DEVO).unwrap();
        assert_eq!(c.id, "not_used");
        assert_eq!(c.okta.id, "65294", "a numeric input id");
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(
            c.devo_state,
            Some(std::env::current_dir().unwrap().join("state/not_used")),
            "Devo's state folder, relative to the working directory"
        );
        assert_eq!(
            c.input_budget,
            Some(Limit {
                period: Duration::from_secs(1),
                requests: 5
            })
        );
        let notes = c.notes.join("\n");
        for key in [
            "globals.name",
            "globals.multiprocessing",
            "globals.queue_max_size_in_mb",
            "globals.queue_max_size_in_messages",
            "globals.queue_max_elapsed_time_in_sec",
            "globals.queue_wrap_max_size_in_messages",
        ] {
            assert!(
                notes.contains(&format!(
                    "{key} (a key of Devo's collector framework) has no effect here"
                )),
                "{key}: {notes}"
            );
        }
        assert!(
            notes.contains("globals.spool.max_bytes_per_table"),
            "{notes}"
        );
        assert!(notes.contains("one process by design"), "{notes}");
        assert_eq!(c.okta.services[0].period, Duration::from_secs(60));
        assert!(c.okta.services[0].start.is_some());
        // debug: true is debug logging; a log_level wins over it.
        let debug = parse(&DEVO.replace("debug: false", "debug: true")).unwrap();
        assert_eq!(debug.log_level, LogLevel::Debug);
        let both = parse(&DEVO.replace("debug: false", "debug: true\n  log_level: warn")).unwrap();
        assert_eq!(both.log_level, LogLevel::Warn);
        // A fraction of a request a second is one request every so many seconds.
        let slow =
            parse(&DEVO.replace("requests_per_second: 5", "requests_per_second: 0.25")).unwrap();
        assert_eq!(
            slow.input_budget,
            Some(Limit {
                period: Duration::from_secs(4),
                requests: 1
            })
        );
        // Devo's other names for the start.
        for alias in [
            "historic_date_utc",
            "start_time_in_utc",
            "initial_start_time_in_utc",
        ] {
            let c = parse(&DEVO.replace("        start:", &format!("        {alias}:"))).unwrap();
            assert!(c.okta.services[0].start.is_some(), "{alias}");
        }
        // Devo's per-service keys with no effect are noted too.
        let c = parse(&DEVO.replace("        request_period_in_seconds: 60", "        request_period_in_seconds: 60\n        retries: 3\n        use_time_slots_for_retrievals: true")).unwrap();
        assert!(
            c.notes
                .iter()
                .any(|n| n.starts_with("inputs.okta.services.logs.retries")),
            "{:?}",
            c.notes
        );
    }

    #[test]
    fn devos_override_api_base_url_is_the_orgs_url() {
        let only = parse(&DEVO.replace(
            "      okta_url: https://acme.okta.com\n",
            "",
        ).replace("    requests_per_second: 5\n", "    requests_per_second: 5\n    override_api_base_url: https://other.okta.com\n"))
        .unwrap();
        assert_eq!(only.okta.url.base(), "https://other.okta.com");
        let same = parse(&DEVO.replace(
            "    requests_per_second: 5\n",
            "    requests_per_second: 5\n    override_api_base_url: https://acme.okta.com/\n",
        ))
        .unwrap();
        assert_eq!(same.okta.url.base(), "https://acme.okta.com");
        let differ = parse(&DEVO.replace(
            "    requests_per_second: 5\n",
            "    requests_per_second: 5\n    override_api_base_url: https://evil.example.com\n",
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(differ.contains("name different orgs"), "{differ}");
        let neither = parse(&DEVO.replace("      okta_url: https://acme.okta.com\n", ""))
            .err()
            .unwrap()
            .to_string();
        assert!(
            neither.contains("inputs.okta.credentials.okta_url: missing"),
            "{neither}"
        );
    }

    #[test]
    fn the_devo_layout_example_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/devo-layout.example.yaml");
        let c = Config::load(&p).unwrap();
        assert_eq!(c.okta.id, "65294");
        assert!(c.devo_state.is_some());
        assert!(c.notes.len() >= 6, "{:?}", c.notes);
    }

    #[test]
    fn a_sender_type_that_does_not_fit_the_output_is_refused() {
        let e = parse(&DEVO.replace("      type: SSL", "      type: TCP")).unwrap_err();
        assert!(e.0.contains("outputs.devo_1.config.type: \"TCP\" does not fit this output, which sends SSL; for TCP use an output of type relay"), "{}", e.0);
        let relay = DEVO.replace("    type: devo_platform\n", "    type: in_house_relay\n").replace(
            "      type: SSL\n      chain: chain.crt\n      cert: mydomain.crt\n      key: mydomain.key\n",
            "      type: TCP\n",
        );
        let c = parse(&relay).unwrap();
        assert!(
            matches!(&c.outputs[0].kind, OutputKind::Relay(a) if a.port == 443 && a.address == "collector-us.devo.io")
        );
        let e = parse(&relay.replace("type: TCP", "type: SSL")).unwrap_err();
        assert!(
            e.0.contains("for SSL use an output of type devo_platform"),
            "{}",
            e.0
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_the_nearest_known_one() {
        let e = parse(&DEVO.replace("requests_per_second", "request_per_second")).unwrap_err();
        assert!(
            e.0.contains("unknown field `request_per_second`"),
            "{}",
            e.0
        );
        assert!(
            e.0.contains("(did you mean `requests_per_second`?)"),
            "{}",
            e.0
        );
        assert!(e.0.contains("line "), "{}", e.0);
        let e = parse(&DEVO.replace("  multiprocessing: false", "  zzzzzzzz: 1")).unwrap_err();
        assert!(
            e.0.contains("unknown field `zzzzzzzz`") && !e.0.contains("did you mean"),
            "{}",
            e.0
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn a_relative_certificate_is_looked_for_where_devo_looks_too() {
        let c = parse(DEVO).unwrap();
        let OutputKind::Devo(d) = &c.outputs[0].kind else {
            panic!()
        };
        let msg = d.not_found.join("\n");
        let cwd = std::env::current_dir().unwrap();
        assert!(
            msg.contains(&format!(
                "outputs.devo_1.config.chain: chain.crt is neither at /etc/okc/chain.crt nor at {} (where Devo's collector looks)",
                cwd.join("certs/chain.crt").display()
            )),
            "{msg}"
        );
        assert_eq!(d.not_found.len(), 3);
    }

    #[test]
    fn a_config_too_large_to_be_one_is_refused_at_once() {
        let nested = format!("globals: {}", "[".repeat(300_000));
        let t = std::time::Instant::now();
        let e = Config::parse(Path::new("c.yaml"), &nested).unwrap_err();
        assert!(e.0.contains("over the limit of 256 KiB"), "{}", e.0);
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }

    const GOOD: &str = r#"
globals:
  id: okta-prod
  data_dir: data
outputs:
  devo_1:
    type: devo_platform
    config:
      address: collector-eu.devo.io
      chain: certs/chain.crt
      cert: certs/domain.crt
      key: certs/domain.key
      hostname: edge-01
inputs:
  okta:
    id: 65294
    enabled: true
    credentials:
      okta_url: https://acme.okta.com
      api_token: "00abcdefSECRET"
    services:
      logs:
        start: 2024-12-04T11:45:01Z
        request_period_in_seconds: 30
      users:
        enabled: false
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/okc/config.yaml"), text)
    }

    #[test]
    fn an_oauth_app_resolves_and_a_changed_one_is_named_at_reload() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("app.pem");
        std::fs::write(&key, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let with = |client: &str, extra: &str| {
            DEVO.replace(
                "      api_token: 00abcdefSECRET\n",
                &format!(
                    "      oauth:\n        client_id: {client}\n        private_key_file: {}\n{extra}",
                    key.display()
                ),
            )
        };
        let a = parse(&with("0oaA", "")).unwrap();
        let o = a.okta.oauth.as_ref().unwrap();
        assert_eq!(
            o.scopes,
            ["okta.logs.read"],
            "what the enabled services need"
        );
        assert_eq!(o.dpop, DpopMode::Auto);
        assert!(
            !format!("{a:?}").contains("PRIVATE KEY"),
            "the key never shows in Debug"
        );
        let b = parse(&with("0oaB", "        dpop: false\n")).unwrap();
        assert_eq!(b.okta.oauth.as_ref().unwrap().dpop, DpopMode::Off);
        let changes = a.token_route_changes(&b).join("\n");
        assert!(
            changes.contains("a new token is taken for client 0oaB"),
            "{changes}"
        );
        assert!(a.token_route_changes(&a).is_empty());
        let bad = parse(&with("0oaA", "        dpop: sometimes\n"))
            .err()
            .unwrap()
            .to_string();
        assert!(bad.contains("is not auto, true or false"), "{bad}");
    }

    #[test]
    fn a_full_config_resolves() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.data_dir, Path::new("/etc/okc/data"));
        let OutputKind::Devo(d) = &c.outputs[0].kind else {
            panic!("a devo_platform output")
        };
        assert_eq!(d.chain, Path::new("/etc/okc/certs/chain.crt"));
        assert_eq!(d.port, 443);
        assert_eq!(c.okta.id, "65294");
        assert_eq!(c.okta.url.base(), "https://acme.okta.com");
        assert_eq!(c.okta.services.len(), 1);
        assert_eq!(c.okta.services[0].tag, "auth.okta.system");
        assert_eq!(c.okta.services[0].period, Duration::from_secs(30));
        assert!(
            !format!("{c:?}").contains("SECRET"),
            "the token never shows in Debug"
        );
    }

    #[test]
    fn unknown_keys_are_named_with_line_and_column() {
        let e = parse(&GOOD.replace("api_token:", "api_tokn:"))
            .unwrap_err()
            .0;
        assert!(
            e.contains("unknown field `api_tokn`") && e.contains("line 20 column 7"),
            "{e}"
        );
        let e = parse(&GOOD.replace("users:", "usres:")).unwrap_err().0;
        assert!(e.contains("unknown field `usres`"), "{e}");
    }

    #[test]
    fn start_errors_carry_the_seed_ids() {
        let e = parse(&GOOD.replace("2024-12-04T11:45:01Z", "2024-12-04"))
            .unwrap_err()
            .0;
        assert!(e.starts_with("InitVariablesError 1: initial_start_time_in_utc is not set as per the datetime_format"), "{e}");
        let e = parse(&GOOD.replace("2024-12-04T11:45:01Z", "2999-01-01T00:00:00Z"))
            .unwrap_err()
            .0;
        assert!(
            e.starts_with("InitVariablesError 2: initial_start_time_in_utc is in the future"),
            "{e}"
        );
        let alias = GOOD.replace("start:", "initial_start_time_in_utc:");
        assert!(parse(&alias).is_ok());
    }

    #[test]
    fn every_service_resolves_with_its_defaults() {
        let all = GOOD.replace(
            "      users:\n        enabled: false\n",
            "      users: {}\n      groups: {start: 2024-01-01T00:00:00Z}\n      apps: {emit: changes}\n      idps: {}\n      zones: {override_tag: my.zones}\n      clients: {request_period_in_seconds: 600}\n",
        );
        let c = parse(&all).unwrap();
        let got: Vec<_> = c
            .okta
            .services
            .iter()
            .map(|s| (s.kind.name(), s.tag.as_str(), s.period.as_secs(), s.emit))
            .collect();
        assert_eq!(
            got,
            vec![
                ("logs", "auth.okta.system", 30, Emit::All),
                ("users", "auth.okta.users", 300, Emit::All),
                ("groups", "auth.okta.groups", 300, Emit::All),
                ("apps", "auth.okta.apps", 3600, Emit::Changes),
                ("idps", "auth.okta.idps", 3600, Emit::All),
                ("zones", "my.zones", 3600, Emit::All),
                ("clients", "auth.okta.clients", 600, Emit::All),
            ]
        );
        assert!(c.okta.services[2].start.is_some());
        let e = parse(&all.replace("users: {}", "users: {emit: changes}"))
            .unwrap_err()
            .0;
        assert!(
            e.contains("services.users.emit: only the snapshot services"),
            "{e}"
        );
        let e = parse(&all.replace("idps: {}", "idps: {start: 2024-01-01T00:00:00Z}"))
            .unwrap_err()
            .0;
        assert!(
            e.contains("services.idps.start: `idps` has no time filter"),
            "{e}"
        );
        let e = parse(&all.replace("emit: changes", "emit: diff"))
            .unwrap_err()
            .0;
        assert!(e.contains("unknown variant `diff`"), "{e}");
    }

    #[test]
    fn rate_budgets_timeouts_and_proxy() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.requests_per_minute, Some(980));
        assert_eq!(
            c.okta.services[0].limits,
            vec![Limit {
                period: Duration::from_secs(60),
                requests: 20
            }]
        );
        assert_eq!(c.okta.http.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.okta.http.request_timeout, Duration::from_secs(60));
        let custom = GOOD
            .replace(
                "        request_period_in_seconds: 30\n",
                "        request_period_in_seconds: 30\n        requests_limits: [{period: 1, number_of_requests: 2}, {period: 60, number_of_requests: 50}]\n",
            )
            .replace(
                "  data_dir: data\n",
                "  data_dir: data\n  requests_per_minute: 0\n",
            )
            .replace(
                "    services:\n",
                "    request_timeout_in_seconds: 5\n    proxy: http://user:pw@proxy.local:3128\n    services:\n",
            );
        let c = parse(&custom).unwrap();
        assert_eq!(c.requests_per_minute, None, "0 turns the global budget off");
        assert_eq!(c.okta.services[0].limits.len(), 2);
        assert_eq!(c.okta.http.request_timeout, Duration::from_secs(5));
        assert!(
            !format!("{c:?}").contains("pw@"),
            "proxy credentials are redacted"
        );
        let off = GOOD.replace(
            "        request_period_in_seconds: 30\n",
            "        request_period_in_seconds: 30\n        requests_limits: []\n",
        );
        assert!(parse(&off).unwrap().okta.services[0].limits.is_empty());
        let e = parse(&off.replace("[]", "[{period: 0, number_of_requests: 5}]"))
            .unwrap_err()
            .0;
        assert!(
            e.contains(
                "services.logs.requests_limits[0]: period and number_of_requests must be at least 1"
            ),
            "{e}"
        );
        let e = parse(&custom.replace(
            "request_timeout_in_seconds: 5",
            "request_timeout_in_seconds: 0",
        ))
        .unwrap_err()
        .0;
        assert!(
            e.contains("inputs.okta.request_timeout_in_seconds: must be at least 1"),
            "{e}"
        );
        let e = parse(&custom.replace("http://user:pw@proxy.local:3128", "\"::nonsense\""))
            .unwrap_err()
            .0;
        assert!(e.contains("inputs.okta.proxy: not a proxy URL"), "{e}");
    }

    #[test]
    fn okta_url_rules() {
        assert!(
            OktaUrl::parse("http://acme.okta.com")
                .unwrap_err()
                .contains("https")
        );
        assert_eq!(
            OktaUrl::parse("http://127.0.0.1:8080").unwrap().base(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            OktaUrl::parse("https://acme.okta.com/").unwrap().base(),
            "https://acme.okta.com"
        );
        assert!(OktaUrl::parse("https://acme.okta.com/api").is_err());
        assert!(
            OktaUrl::parse("acme.okta.com")
                .unwrap_err()
                .contains("must start with https://")
        );
        assert!(
            OktaUrl::parse("ftp://acme.okta.com")
                .unwrap_err()
                .contains("must start with https://")
        );
        let u = OktaUrl::parse("https://acme.okta.com").unwrap();
        assert!(u.same_origin("https://acme.okta.com/api/v1/logs?after=1"));
        assert!(u.same_origin("https://ACME.okta.com:443/api/v1/logs"));
        assert!(!u.same_origin("https://evil.com/api/v1/logs"));
        assert!(!u.same_origin("http://acme.okta.com/api/v1/logs"));
        assert!(!u.same_origin("https://acme.okta.com:8443/api/v1/logs"));
        assert!(!u.same_origin("https://acme.okta.com.evil.com/api/v1/logs"));
    }

    #[test]
    fn token_sources() {
        let e = parse(&GOOD.replace(
            "api_token: \"00abcdefSECRET\"",
            "api_token_env: OKC_TEST_NO_SUCH_VAR",
        ))
        .unwrap_err()
        .0;
        assert!(e.contains("OKC_TEST_NO_SUCH_VAR is not set"), "{e}");
        let e = parse(&GOOD.replace(
            "api_token: \"00abcdefSECRET\"",
            "api_token_file: /nonexistent/tok",
        ))
        .unwrap_err()
        .0;
        assert!(e.contains("/nonexistent/tok"), "{e}");
        assert!(!e.contains("SECRET"));
    }
}
