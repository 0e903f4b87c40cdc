//! `globals`: the instance's id, data_dir and logging, the spool's bounds, the metrics
//! address, the global request budget, and the keys of Devo's collector framework (each
//! either meaning what it can here or noted once at start with why it has no effect).

use super::error::{ConfigError, Cx, err};
use super::raw::{LogFormat, LogLevel, RawGlobals, Scalar};
use std::path::{Path, PathBuf};

/// `globals.spool`: when a table's spool is full, its puller pauses (nothing is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    /// A table's spool may not grow past this (plus the frame in hand).
    pub max_bytes_per_table: u64,
    /// Pullers pause while the data_dir's file system has less free space than this;
    /// `None`: 1 GiB or 5% of the file system, whichever is smaller.
    pub min_free_bytes: Option<u64>,
}

impl SpoolLimits {
    /// The free space pullers keep on a file system of `total` bytes: the configured
    /// `min_free_bytes`, or 1 GiB or 5% of it, whichever is smaller.
    pub fn min_free(&self, total: u64) -> u64 {
        self.min_free_bytes
            .unwrap_or_else(|| (1 << 30).min(total / 20))
    }
}

/// `globals`, resolved.
pub(super) struct Globals {
    pub(super) id: String,
    pub(super) data_dir: PathBuf,
    pub(super) log_level: LogLevel,
    pub(super) notes: Vec<String>,
    pub(super) devo_state: Option<PathBuf>,
    pub(super) spool: SpoolLimits,
    pub(super) metrics_listen: Option<std::net::SocketAddr>,
    pub(super) log: crate::logging::Options,
    pub(super) requests_per_minute: Option<u32>,
    pub(super) self_monitoring: Option<LogLevel>,
}

/// Resolves `globals`.
pub(super) fn resolve(mut g: RawGlobals, cx: &Cx<'_>) -> Result<Globals, ConfigError> {
    let id =
        g.id.take()
            .map(Scalar::text)
            .unwrap_or_else(|| "okta-collector".to_string());
    let data_dir = cx.resolve(g.data_dir.as_deref().unwrap_or(Path::new("data")));
    // Devo's `debug: true` is debug logging, unless `log_level` says otherwise.
    let log_level = g.log_level.unwrap_or(if g.debug == Some(true) {
        LogLevel::Debug
    } else {
        LogLevel::Info
    });
    let mut notes = framework_notes(&g);
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
    let spool = SpoolLimits {
        max_bytes_per_table: match g.spool.max_bytes_per_table {
            None => 1 << 30,
            Some(n) if n < 1 << 20 => {
                return err(format!(
                    "{}: {n} is too small; give at least 1048576 (1 MiB), e.g. 1073741824 for 1 GiB",
                    cx.at("globals.spool.max_bytes_per_table")
                ));
            }
            Some(n) => n,
        },
        min_free_bytes: g.spool.min_free_bytes,
    };
    let metrics_listen = match g.metrics_listen.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(a) => Some(a.parse().map_err(|_| {
            ConfigError(format!(
                "{}: {a:?} is not an address:port; write it like 127.0.0.1:9464",
                cx.at("globals.metrics_listen")
            ))
        })?),
    };
    let log = crate::logging::Options {
        file: g.log_file.as_deref().map(|p| cx.resolve(p)),
        max_bytes: g.log_max_bytes.unwrap_or(10 << 20),
        keep: g.log_keep.unwrap_or(5),
        json: g.log_format == Some(LogFormat::Json),
    };
    let requests_per_minute = match g.requests_per_minute {
        None => Some(980),
        Some(0) => None,
        Some(n) => Some(n),
    };
    use super::raw::RawSelfMonitoring;
    let self_monitoring = match g.self_monitoring.take() {
        None | Some(RawSelfMonitoring::Switch(true)) => Some(LogLevel::Warn),
        Some(RawSelfMonitoring::Switch(false)) => None,
        Some(RawSelfMonitoring::Settings(s)) => match s.level.unwrap_or(LogLevel::Warn) {
            LogLevel::Debug | LogLevel::Trace => {
                return err(format!(
                    "{}: debug and trace lines are not sent to Devo (they would be most of the volume); use info, warn or error",
                    cx.at("globals.self_monitoring.level")
                ));
            }
            l => Some(l),
        },
    };
    Ok(Globals {
        id,
        data_dir,
        log_level,
        notes,
        devo_state,
        spool,
        metrics_listen,
        log,
        requests_per_minute,
        self_monitoring,
    })
}

/// One line for each key of Devo's collector framework that is set and has no effect here,
/// saying why.
fn framework_notes(g: &RawGlobals) -> Vec<String> {
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
    notes
}
