//! Builds and runs the pipeline from a [`Config`]: one spool and one puller per service, one
//! forwarder for the output. `main` (run), the demo and the tests all start it here.

use crate::config::{Config, Limit};
use crate::forward::{self, Forwarder, Table};
use crate::okta::budget::{Budget, Pacer};
use crate::okta::client::Client;
use crate::okta::pull::{Counters, Puller};
use crate::shutdown::Shutdown;
use spool::Spool;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

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
    /// Events the peer acknowledged.
    pub delivered: Arc<AtomicU64>,
}

/// A built, not yet running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    pullers: Vec<Puller>,
    forwarder: Forwarder,
    /// Per-table figures.
    pub stats: Vec<TableStats>,
    /// Whether the output's session is up.
    pub connected: Arc<std::sync::atomic::AtomicBool>,
    /// The output's name.
    pub output: String,
}

impl Pipeline {
    /// Checks what [`Pipeline::build`] would load besides the spools (TLS material, the Okta
    /// client's CA file and proxy), so a reloaded config can be refused before anything stops.
    ///
    /// # Errors
    /// A message naming what cannot be loaded.
    pub fn check(config: &Config) -> Result<(), String> {
        forward::tls::client_config(&config.output)?;
        Client::new(
            config.okta.url.clone(),
            config.okta.token.clone(),
            &config.okta.http,
        )?;
        Ok(())
    }

    /// Opens the spools (recovering them), loads the TLS material, builds the tasks.
    ///
    /// # Errors
    /// A message naming what cannot be opened or loaded.
    pub fn build(config: &Config) -> Result<Pipeline, String> {
        let tls = forward::tls::client_config(&config.output)?;
        let client = Arc::new(Client::new(
            config.okta.url.clone(),
            config.okta.token.clone(),
            &config.okta.http,
        )?);
        let global = Arc::new(std::sync::Mutex::new(Budget::new(
            &config
                .requests_per_minute
                .map(|n| Limit {
                    period: std::time::Duration::from_secs(60),
                    requests: n,
                })
                .into_iter()
                .collect::<Vec<_>>(),
        )));
        let mut pullers = Vec::new();
        let mut tables = Vec::new();
        let mut stats = Vec::new();
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
            let dir = config.data_dir.join("spool").join(service.kind.name());
            // Segments of at most an eighth of the table's bound, so acked ones are deleted
            // long before the bound is reached (only the active segment is never deleted).
            let opts = spool::Options {
                segment_bytes: (config.spool.max_bytes_per_table / 8).clamp(256 << 10, 32 << 20),
                ..spool::Options::default()
            };
            let spool = Spool::open(&dir, opts).map_err(|e| e.to_string())?;
            let delivered = Arc::new(AtomicU64::new(0));
            let counters = Arc::new(Counters::default());
            log::info!(
                "Spool {} opened: {} events waiting to be sent.",
                dir.display(),
                spool.backlog()
            );
            stats.push(TableStats {
                service: service.kind.name().to_string(),
                tag: service.tag.clone(),
                spool: spool.clone(),
                pulled: counters.clone(),
                delivered: delivered.clone(),
            });
            tables.push(Table {
                tag: service.tag.clone(),
                spool: spool.clone(),
                delivered,
            });
            pullers.push(Puller {
                client: client.clone(),
                label: format!(
                    "OktaResourcesPuller(okta#{},{}#predefined)",
                    config.okta.id,
                    service.kind.name()
                ),
                pacer: Pacer::new(&service.limits, global.clone()),
                spool_limits: config.spool,
                stop: Shutdown::new(),
                spool,
                service,
                counters,
            });
        }
        let connected = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let forwarder = Forwarder {
            output: config.output.clone(),
            tls,
            tables,
            connected: connected.clone(),
        };
        Ok(Pipeline {
            pullers,
            forwarder,
            stats,
            connected,
            output: config.output.name.clone(),
        })
    }

    /// Runs until `shutdown` is triggered (and everything has stopped cleanly), or until a
    /// task fails fatally, which triggers shutdown for the others.
    ///
    /// # Errors
    /// The fatal error.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), String> {
        let mut tasks: Vec<smol::Task<Result<(), String>>> = Vec::new();
        for p in self.pullers {
            let sd = shutdown.clone();
            tasks.push(smol::spawn(async move { p.run(sd).await.map_err(|e| e.0) }));
        }
        // A send statistics line for the output every SEND_STATS_PERIOD.
        let (stats, output, sd) = (self.stats.clone(), self.output.clone(), shutdown.clone());
        let _stats_task = smol::spawn(async move {
            let mut last: Vec<u64> = stats
                .iter()
                .map(|t| t.delivered.load(Ordering::Relaxed))
                .collect();
            while !sd.sleep(SEND_STATS_PERIOD).await {
                let now: Vec<u64> = stats
                    .iter()
                    .map(|t| t.delivered.load(Ordering::Relaxed))
                    .collect();
                let per_table: Vec<String> = stats
                    .iter()
                    .zip(now.iter().zip(&last))
                    .map(|(t, (n, l))| format!("{} {}", t.tag, n - l))
                    .collect();
                let waiting: u64 = stats.iter().map(|t| t.spool.backlog()).sum();
                log::info!(
                    "DevoSender({output}) -> Send statistics for the last {}s: {} events sent ({}); {waiting} waiting in the spool.",
                    SEND_STATS_PERIOD.as_secs(),
                    now.iter().zip(&last).map(|(n, l)| n - l).sum::<u64>(),
                    per_table.join(", ")
                );
                last = now;
            }
        });
        // The forwarder stops only after the pullers, so the frame in hand is sent.
        let pullers_done = Shutdown::new();
        let f = self.forwarder;
        let fsd = pullers_done.clone();
        let stop_all = shutdown.clone();
        let forwarder = smol::spawn(async move {
            let r = f.run(fsd).await.map_err(|e| e.0);
            if r.is_err() {
                stop_all.trigger();
            }
            r
        });
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
        if let Err(e) = forwarder.await {
            log::error!("Stopping: {e}");
            first_error.get_or_insert(e);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
