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
/// be written. The pipeline stops with it (and the supervisor decides what follows).
#[derive(Debug)]
pub struct Fatal(pub String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fatal {}
