//! Forwarders: one task per output reads every table's spool up to its durable end (through
//! the output's own ack position) and delivers it. Byte-stream outputs (`devo_platform` over
//! mutual TLS, `relay` over TCP) live in `stream/`; request/response outputs (`devo_http`,
//! `console`) in `batch.rs`; what they share, reading a table and recording how far the
//! output has it, in `table.rs`. This file loads an output and starts the one that fits.

pub mod batch;
pub mod connection;
mod console;
pub mod http;
mod stream;
pub mod syslog;
mod table;
pub mod tls;
pub mod x509;

pub use table::{ACK_PERSIST_EVENTS, Table};

use crate::config::{Output, OutputKind};
use crate::shutdown::Shutdown;
use futures_rustls::rustls::ClientConfig;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use table::TableState;

/// A fatal forwarder error (the ack file cannot be written): the crate's one [`Fatal`].
pub use crate::Fatal;

/// What an output needs loaded before it runs.
#[derive(Debug)]
enum Prepared {
    Tls(Arc<ClientConfig>),
    Tcp,
    Http(http::DevoHttpSink),
    Console,
}

/// An output with what it needs loaded (TLS material, the HTTP client), ready to become a
/// [`Forwarder`] once its tables are open.
#[derive(Debug)]
pub struct Loaded {
    output: Output,
    prepared: Prepared,
}

/// Sends all tables to one output until shutdown.
#[derive(Debug)]
pub struct Forwarder {
    output: Output,
    prepared: Prepared,
    tables: Vec<Table>,
    connected: Arc<AtomicBool>,
    rejected_dir: std::path::PathBuf,
}

/// Loads what `output` needs, so a config whose files cannot be used is refused before any
/// spool is opened or anything stops.
///
/// # Errors
/// A message naming the key and file that cannot be loaded.
pub fn load(output: &Output) -> Result<Loaded, String> {
    let prepared = match &output.kind {
        OutputKind::Devo(d) => Prepared::Tls(tls::client_config(&output.name, d)?),
        OutputKind::Relay(_) => Prepared::Tcp,
        OutputKind::Http(h) => Prepared::Http(http::DevoHttpSink::new(&output.hostname, h)),
        OutputKind::Console => Prepared::Console,
    };
    Ok(Loaded {
        output: output.clone(),
        prepared,
    })
}

impl Loaded {
    /// The forwarder over `tables`; `connected` tells whether its peer is reachable. Batches
    /// the output rejects for good are kept under `<data_dir>/rejected/<output>/`.
    pub fn forwarder(
        self,
        tables: Vec<Table>,
        connected: Arc<AtomicBool>,
        data_dir: &std::path::Path,
    ) -> Forwarder {
        Forwarder {
            rejected_dir: data_dir.join("rejected").join(&self.output.name),
            output: self.output,
            prepared: self.prepared,
            tables,
            connected,
        }
    }
}

impl Forwarder {
    /// Runs until shutdown, reconnecting and retrying with backoff; nothing is acked before
    /// the output has it.
    ///
    /// # Errors
    /// [`Fatal`] if progress can no longer be recorded.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), Fatal> {
        let Forwarder {
            output,
            prepared,
            tables,
            connected,
            rejected_dir,
        } = self;
        let states = tables.into_iter().map(TableState::new).collect();
        match prepared {
            Prepared::Tls(config) => {
                stream::run(&output, Some(config), states, connected, shutdown).await
            }
            Prepared::Tcp => stream::run(&output, None, states, connected, shutdown).await,
            Prepared::Http(sink) => {
                batch::run(&output, sink, rejected_dir, states, connected, shutdown).await
            }
            Prepared::Console => {
                let sink = console::Console::new(&output.hostname);
                batch::run(&output, sink, rejected_dir, states, connected, shutdown).await
            }
        }
    }
}
