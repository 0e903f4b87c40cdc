//! okta-collector: pulls an Okta org's System Log and inventory into a durable per-table spool
//! and delivers it to Devo (mutual TLS, a relay, HTTP ingestion) or stdout. The binary
//! (`main.rs`) is a thin command line over this library.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod backoff;
pub mod config;
#[cfg(feature = "sim")]
pub mod demo;
pub mod errors;
pub mod forward;
#[cfg(all(test, feature = "sim"))]
mod fuzz;
pub mod http_agent;
pub mod httpd;
pub mod jose;
pub mod logging;
pub mod metrics;
pub mod okta;
pub mod pipeline;
pub mod private;
pub mod samples;
pub mod selfmon;
pub mod shutdown;
#[cfg(feature = "sim")]
pub mod sim;
pub mod status;
pub mod supervise;
pub mod sys;
pub mod time;
pub mod validate;
pub mod watch;

/// Locks `m`, a mutex poisoned by a panicking holder included (the release build aborts on a
/// panic; under test, the next holder sees the data as the panic left it).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A fatal error of a pipeline task: a puller's spool or a forwarder's ack file can no longer
/// be written. The pipeline stops with it (and the supervisor decides what follows). The
/// spool's own error is kept as the source; the texts are the ones users know.
#[derive(Debug)]
pub enum Fatal {
    /// A table's spool can no longer be written (a failed `fdatasync`, a transaction that
    /// cannot be cut back).
    Spool(spool::Error),
    /// An output's delivery progress cannot be recorded in a spool's ack file.
    Ack {
        /// The spool's folder.
        dir: std::path::PathBuf,
        /// Why.
        source: spool::Error,
    },
    /// A cursor cannot be encoded: the puller stops rather than commit an empty one.
    Cursor(String),
    /// A batch an output refused for good cannot be kept on disk, so its position is not
    /// acked past it.
    Rejected(String),
    /// An output given to a forwarder of another kind (a bug; config validation precludes it).
    Output(String),
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fatal::Spool(e) => write!(f, "{e}"),
            Fatal::Ack { dir, source } => write!(
                f,
                "cannot record delivery progress in {}: {source}",
                dir.display()
            ),
            Fatal::Cursor(m) | Fatal::Rejected(m) | Fatal::Output(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Fatal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Fatal::Spool(e) | Fatal::Ack { source: e, .. } => Some(e),
            _ => None,
        }
    }
}
