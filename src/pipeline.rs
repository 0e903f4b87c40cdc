//! Builds and runs the pipeline from a [`Config`]: one spool and one puller per service, one
//! forwarder per output (each a consumer of every spool, with its own ack files). `main`
//! (run), the demo and the tests all start it here.

use crate::Fatal;
use crate::config::{Config, Limit};
use crate::forward::{self, Forwarder, Table};
use crate::okta::budget::{Budget, Pacer};
use crate::okta::client::Client;
use crate::okta::puller::{Counters, Puller};
use crate::shutdown::Shutdown;
use spool::Spool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How often the output's send statistics line is logged.
pub const SEND_STATS_PERIOD: std::time::Duration = std::time::Duration::from_secs(300);

/// Live figures of one table, for the demo's display.
#[derive(Debug, Clone)]
pub struct TableStats {
    /// Service name.
    pub service: String,
    /// Devo tag.
    pub tag: String,
    /// Its spool.
    pub spool: Spool,
    /// Puller counters.
    pub pulled: Arc<Counters>,
    /// Events each output delivered, in the order of [`Pipeline::outputs`].
    pub delivered: Vec<Arc<AtomicU64>>,
    /// The time of the newest event each output delivered, Unix ms (0: none yet).
    pub delivered_times: Vec<Arc<AtomicU64>>,
}

impl TableStats {
    /// Events every output has delivered (the slowest output's count).
    pub fn delivered_everywhere(&self) -> u64 {
        self.delivered
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Events not yet delivered by every output (the entitlement services' own positions in
    /// the System Log's spool, which come after the outputs', do not count).
    pub fn waiting(&self) -> u64 {
        (0..self.delivered.len())
            .map(|c| self.spool.backlog_of(c))
            .max()
            .unwrap_or(0)
    }

    /// The slowest output's ack position's sequence number.
    pub fn acked_by_outputs(&self) -> u64 {
        (0..self.delivered.len())
            .map(|c| self.spool.acked_by(c).seq)
            .min()
            .unwrap_or(0)
    }
}

/// Live state of one output.
#[derive(Debug, Clone)]
pub struct OutputStats {
    /// The key under `outputs`.
    pub name: String,
    /// Its type (`devo_platform`, `relay`, `devo_http`, `console`).
    pub kind: &'static str,
    /// Whether its peer is reachable (a session up, or the last request answered).
    pub connected: Arc<AtomicBool>,
}

/// Why a pipeline could not be built, or stopped: typed up to where it is decided on (the
/// supervisor waits for a spool still held by the pipeline it replaces, and for nothing else).
#[derive(Debug)]
pub enum Error {
    /// A table's spool is held by another process (or by the pipeline a reload replaces, for a
    /// moment); the message says what to do.
    SpoolLocked(String),
    /// Something cannot be opened or loaded; the message names it and what to do.
    Setup(String),
    /// A task failed fatally (a spool or an ack file can no longer be written).
    Fatal(Fatal),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::SpoolLocked(m) | Error::Setup(m) => f.write_str(m),
            Error::Fatal(e) => write!(f, "{e}"),
        }
    }
}

impl Error {
    /// What fixes it: a restart only helps a fatal error (the spool is recovered at start);
    /// a held spool or a setup problem needs the named thing fixed first.
    pub fn remedy(&self) -> &'static str {
        match self {
            Error::SpoolLocked(_) => {
                "Stop the other process that holds the spool, or give this collector a globals.data_dir of its own, then start again."
            }
            Error::Setup(_) => "Fix what it names, then start again.",
            Error::Fatal(_) => "Restart to recover from the spool (what was pulled is on disk).",
        }
    }
}

impl std::error::Error for Error {}

/// Opens (and so recovers) the spool of `kind`'s table, one consumer per output; a spool held
/// by another process is [`Error::SpoolLocked`].
fn open_spool(
    config: &Config,
    kind: crate::config::ServiceKind,
    consumers: &[&str],
) -> Result<Spool, Error> {
    open_spool_in(config, config.spool_dir(kind), consumers)
}

/// [`open_spool`] for the spool in `dir`.
fn open_spool_in(
    config: &Config,
    dir: std::path::PathBuf,
    consumers: &[&str],
) -> Result<Spool, Error> {
    crate::private::ensure(&dir, false).map_err(Error::Setup)?;
    // Segments of at most an eighth of the table's bound, so acked ones are deleted long
    // before the bound is reached (only the active segment is never deleted).
    let opts = spool::Options {
        segment_bytes: (config.spool.max_bytes_per_table / 8).clamp(256 << 10, 32 << 20),
        ..spool::Options::default()
    };
    Spool::open_consumers(&dir, opts, consumers).map_err(|e| match e {
        spool::Error::Locked { path } => Error::SpoolLocked(format!(
            "the spool {} is in use by another okta-collector process (its LOCK file is held); stop that process or give this one another data_dir",
            path.display()
        )),
        e => Error::Setup(e.to_string()),
    })
}

/// Gives every output (`tables`, one list per output) the table of `spool` under `tag`, and
/// returns the table's figures.
fn add_table(
    tables: &mut [Vec<Table>],
    service: &str,
    tag: &str,
    spool: &Spool,
    pulled: Arc<Counters>,
) -> TableStats {
    let delivered: Vec<_> = tables.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    // What `status` shows survives a restart: the spool keeps it.
    let delivered_times: Vec<_> = (0..tables.len())
        .map(|c| Arc::new(AtomicU64::new(spool.delivered_time(c).unwrap_or(0))))
        .collect();
    for (consumer, ((t, d), dt)) in tables
        .iter_mut()
        .zip(delivered.iter().cloned())
        .zip(delivered_times.iter().cloned())
        .enumerate()
    {
        t.push(Table {
            tag: tag.to_string(),
            spool: spool.clone(),
            consumer,
            delivered: d,
            delivered_time: dt,
        });
    }
    TableStats {
        service: service.to_string(),
        tag: tag.to_string(),
        spool: spool.clone(),
        pulled,
        delivered,
        delivered_times,
    }
}

/// A built, not yet running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    pullers: Vec<Puller>,
    /// The self-monitoring tables' spools, in `selfmon::LEVELS`' order (empty: off), and
    /// their bound.
    selfmon: (Vec<Spool>, u64),
    /// The pullers' flag: set when the pipeline's shutdown comes.
    pullers_stop: Shutdown,
    forwarders: Vec<Forwarder>,
    /// Per-table figures.
    pub stats: Vec<TableStats>,
    /// The outputs, in the config's order.
    pub outputs: Vec<OutputStats>,
}

impl Pipeline {
    /// Checks what [`Pipeline::build`] would load besides the spools (TLS material, the Okta
    /// client's CA file and proxy), so a reloaded config can be refused before anything stops.
    ///
    /// # Errors
    /// A message naming what cannot be loaded.
    pub fn check(config: &Config) -> Result<(), String> {
        for o in &config.outputs {
            forward::load(o)?;
        }
        Client::for_input(&config.okta)?;
        Ok(())
    }

    /// Opens the spools (recovering them), loads the TLS material, builds the tasks.
    ///
    /// # Errors
    /// [`Error::SpoolLocked`] if a spool is held by another process; [`Error::Setup`] naming
    /// what else cannot be opened or loaded.
    pub fn build(config: &Config) -> Result<Pipeline, Error> {
        crate::private::ensure(&config.data_dir, true)
            .map_err(|e| Error::Setup(format!("globals.data_dir: {e}")))?;
        crate::private::ensure(&config.spools_dir(), false).map_err(Error::Setup)?;
        let loaded = config
            .outputs
            .iter()
            .map(forward::load)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::Setup)?;
        let client = Arc::new(Client::for_input(&config.okta).map_err(Error::Setup)?);
        let global = Arc::new(std::sync::Mutex::new(Budget::new(
            &config
                .requests_per_minute
                .map(|n| Limit {
                    period: std::time::Duration::from_secs(60),
                    requests: n,
                })
                .into_iter()
                .chain(config.input_budget)
                .collect::<Vec<_>>(),
        )));
        let mut pullers = Vec::new();
        let pullers_stop = Shutdown::new();
        let mut tables: Vec<Vec<Table>> = config.outputs.iter().map(|_| Vec::new()).collect();
        let mut stats = Vec::new();
        let consumers: Vec<&str> = config.outputs.iter().map(|o| o.name.as_str()).collect();
        // The System Log's spool, which the entitlement services follow.
        let mut logs_spool: Option<Spool> = None;
        let services = if config.okta.enabled {
            config.okta.services.clone()
        } else {
            Vec::new()
        };
        if services.is_empty() {
            log::warn!(
                "No Okta service is enabled in {}; nothing will be pulled.",
                config.path.display()
            );
        }
        for service in services {
            let all_consumers = config.consumers(service.kind);
            let names: Vec<&str> = all_consumers.iter().map(String::as_str).collect();
            let spool = open_spool(config, service.kind, &names)?;
            if service.kind == crate::config::ServiceKind::Logs {
                logs_spool = Some(spool.clone());
            }
            let counters = Arc::new(Counters::default());
            let table = add_table(
                &mut tables,
                service.kind.name(),
                &service.tag,
                &spool,
                counters.clone(),
            );
            log::info!(
                "Spool {} opened: {} events waiting to be sent.",
                spool.dir().display(),
                table.waiting()
            );
            stats.push(table);
            let pacer = Pacer::new(&service.limits, global.clone());
            let kind = service.kind;
            let mut puller = Puller::new(
                &config.okta.id,
                service,
                client.clone(),
                spool,
                counters,
                pacer,
                config.spool,
                pullers_stop.clone(),
            );
            if kind.is_entitlement() {
                let dir = config.entitlements_dir(kind);
                crate::private::ensure(&dir, false).map_err(Error::Setup)?;
                let name = crate::config::entitlement_consumer(kind);
                let feed = logs_spool.as_ref().and_then(|s| {
                    let c = config.consumers(crate::config::ServiceKind::Logs);
                    c.iter().position(|n| *n == name).map(|i| (s.clone(), i))
                });
                puller = puller.with_entitlements(dir, feed, config.outputs.len());
            }
            pullers.push(puller);
        }
        // The collector's own lines, a table per level (`selfmon`).
        let mut selfmon_spools = Vec::new();
        if config.self_monitoring.is_some() {
            for (_, level) in crate::selfmon::LEVELS {
                let spool = open_spool_in(
                    config,
                    config.spools_dir().join(format!("self-{level}")),
                    &consumers,
                )?;
                let tag = crate::selfmon::tag(level);
                stats.push(add_table(
                    &mut tables,
                    "self_monitoring",
                    &tag,
                    &spool,
                    Arc::new(Counters::default()),
                ));
                selfmon_spools.push(spool);
            }
        }
        let mut forwarders = Vec::new();
        let mut outputs = Vec::new();
        for ((o, l), t) in config.outputs.iter().zip(loaded).zip(tables) {
            let connected = Arc::new(AtomicBool::new(false));
            outputs.push(OutputStats {
                name: o.name.clone(),
                kind: o.type_name(),
                connected: connected.clone(),
            });
            forwarders.push(l.forwarder(t, connected, &config.data_dir));
        }
        Ok(Pipeline {
            pullers_stop,
            pullers,
            selfmon: (selfmon_spools, config.spool.max_bytes_per_table),
            forwarders,
            stats,
            outputs,
        })
    }

    /// Runs until `shutdown` is triggered (and everything has stopped cleanly), or until a
    /// task fails fatally, which triggers shutdown for the others.
    ///
    /// # Errors
    /// The fatal error.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), Fatal> {
        let mut tasks: Vec<smol::Task<Result<(), Fatal>>> = Vec::new();
        let (sd, stop) = (shutdown.clone(), self.pullers_stop.clone());
        let _relay = smol::spawn(async move {
            sd.wait().await;
            stop.trigger();
        });
        for p in self.pullers {
            tasks.push(smol::spawn(async move { p.run().await }));
        }
        let (spools, bound) = self.selfmon;
        let _selfmon = (!spools.is_empty()).then(|| {
            smol::spawn(crate::selfmon::run(
                spools,
                bound,
                self.pullers_stop.clone(),
            ))
        });
        // A send statistics line per output every SEND_STATS_PERIOD.
        let (stats, outputs, sd) = (self.stats.clone(), self.outputs.clone(), shutdown.clone());
        let _stats_task = smol::spawn(async move {
            let count = |o: usize| -> Vec<u64> {
                stats
                    .iter()
                    .map(|t| t.delivered[o].load(Ordering::Relaxed))
                    .collect()
            };
            let mut last: Vec<Vec<u64>> = (0..outputs.len()).map(count).collect();
            while !sd.sleep(SEND_STATS_PERIOD).await {
                for (o, out) in outputs.iter().enumerate() {
                    let now = count(o);
                    let per_table: Vec<String> = stats
                        .iter()
                        .zip(now.iter().zip(&last[o]))
                        .map(|(t, (n, l))| format!("{} {}", t.tag, n - l))
                        .collect();
                    let waiting: u64 = stats.iter().map(|t| t.spool.backlog_of(o)).sum();
                    log::info!(
                        "DevoSender({}) -> Send statistics for the last {}s: {} events sent ({}); {waiting} waiting in the spool.",
                        out.name,
                        SEND_STATS_PERIOD.as_secs(),
                        now.iter().zip(&last[o]).map(|(n, l)| n - l).sum::<u64>(),
                        per_table.join(", ")
                    );
                    last[o] = now;
                }
            }
        });
        // The forwarders stop only after the pullers, so the frame in hand is sent.
        let pullers_done = Shutdown::new();
        let forwarders: Vec<_> = self
            .forwarders
            .into_iter()
            .map(|f| {
                let (fsd, stop_all) = (pullers_done.clone(), shutdown.clone());
                smol::spawn(async move {
                    let r = f.run(fsd).await;
                    if r.is_err() {
                        stop_all.trigger();
                    }
                    r
                })
            })
            .collect();
        let mut first_error = None;
        for t in tasks {
            if let Err(e) = t.await {
                log::error!("Stopping: {e}");
                shutdown.trigger();
                first_error.get_or_insert(e);
            }
        }
        shutdown.wait().await;
        pullers_done.trigger();
        for f in forwarders {
            if let Err(e) = f.await {
                log::error!("Stopping: {e}");
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
