//! The `okta-collector` command line: `run`, `validate`, `status`, `health`, `sim` and `demo`.

use clap::{Parser, Subcommand};
use okta_collector::config::Config;
use okta_collector::shutdown::Shutdown;
use okta_collector::watch::ConfigWatcher;
use okta_collector::{logging, metrics, status, supervise, validate};

#[cfg(feature = "sim")]
mod sim_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

/// Pulls an Okta org's System Log and delivers it to Devo, losing nothing on the way.
///
/// Events are written to an on-disk spool (one per Devo table, under `globals.data_dir`)
/// before anything is acknowledged to Okta, and sent to each configured output: Devo over
/// mutual TLS (devo_platform), an in-house relay over TCP (relay), Devo's HTTP ingestion
/// (devo_http) or stdout (console). Restarts, crashes and outages resume from the spool.
#[derive(Parser)]
#[command(name = "okta-collector", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run until SIGTERM or SIGINT: pull from Okta into the spool and forward to Devo.
    ///
    /// On SIGTERM/SIGINT it stops pulling, finishes the batch in hand, closes the TLS session
    /// cleanly and exits 0. Exit code 1: bad config or a fatal spool error.
    Run {
        /// The YAML config file (see config/config.example.yaml).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Check the config, the Okta token (one limit=1 request per service) and each output (a
    /// TLS handshake with the client certificate, a TCP connection to a relay, an empty batch
    /// to an HTTP endpoint), one line per check; exit 0 only if all pass. Pulls and sends no
    /// event.
    Validate {
        /// The YAML config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Show, per table, what waits in the spool (events, bytes, the oldest waiting event's
    /// age), the cursor, and the last pull and send. Reads the spool files only; safe while
    /// `run` is running.
    Status {
        /// The YAML config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Take over the System Log state of Devo's collector (its filesystem persistence) before
    /// the first run: the next `run` goes on from its next_link, dropping its uuid_list's
    /// events. `run` does this by itself on a first start when `globals.persistence` names
    /// the state; this is for a state file copied from elsewhere. Stop the collector first.
    ImportDevoState {
        /// The YAML config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Devo's state file (default: the one `globals.persistence` names), e.g.
        /// state/not_used/okta_65294_logs_predefined_OktaResourcesPuller.json.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Replace a cursor the System Log spool has already.
        #[arg(long)]
        force: bool,
    },
    /// Probe a running collector's health endpoint (for a container HEALTHCHECK, where there
    /// is no curl): exit 0 if it answers 2xx within 5 s, else 1.
    Health {
        /// The URL, e.g. http://127.0.0.1:9464/healthz (globals.metrics_listen).
        #[arg(
            long,
            value_name = "URL",
            default_value = "http://127.0.0.1:9464/healthz"
        )]
        url: String,
    },
    /// Serve the built-in simulated Okta org over HTTP until SIGTERM or SIGINT: all seven
    /// endpoints with realistic objects, a System Log backlog and live rate, optional rate
    /// limits with real headers and 429s. Events are generated on demand, never all held.
    #[cfg(feature = "sim")]
    Sim(sim_cmd::SimArgs),
    /// Run the real pipeline against a built-in simulated Okta org and a local Devo receiver
    /// with throwaway certificates. Needs no config and no network.
    #[cfg(feature = "sim")]
    Demo(sim_cmd::DemoArgs),
}

fn main() -> ExitCode {
    // Before any thread exists: one malloc arena for the whole process.
    okta_collector::sys::limit_malloc_arenas();
    // No core file can hold the token or the Devo key.
    okta_collector::sys::no_core_dumps();
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run(&config),
        Command::Validate { config } => validate_cmd(&config),
        Command::Health { url } => {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(std::time::Duration::from_secs(5)))
                .build()
                .into();
            match agent.get(&url).call() {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{url}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::ImportDevoState {
            config,
            state,
            force,
        } => match load(&config)
            .map(|c| okta_collector::okta::devo_state::import(&c, state.as_deref(), force))
        {
            Ok(Ok(text)) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
            Err(code) => code,
        },
        Command::Status { config } => match load(&config).map(|c| status::report(&c)) {
            Ok(Ok(text)) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
            Err(code) => code,
        },
        #[cfg(feature = "sim")]
        Command::Sim(args) => sim_cmd::sim(args),
        #[cfg(feature = "sim")]
        Command::Demo(args) => sim_cmd::demo(args),
    }
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

fn run(path: &std::path::Path) -> ExitCode {
    // Signals first: a SIGTERM during start-up then stops the run cleanly instead of killing it.
    let shutdown = Shutdown::new();
    if let Err(e) = on_signals(shutdown.clone()) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    // The text the config is parsed from is the one the watcher starts from: a change made
    // while the collector starts is then seen as one.
    let (config, loaded) = match supervise::load_with_text(path) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    okta_collector::selfmon::configure(config.self_monitoring.map(|l| l.filter()), &config.id);
    if let Err(e) = logging::init_with(config.log_level.filter(), &config.log) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    log::info!(
        "okta-collector {} starting (id {}, config {}, data_dir {}).",
        env!("CARGO_PKG_VERSION"),
        config.id,
        config.path.display(),
        config.data_dir.display()
    );
    for w in config.secret_file_warnings() {
        log::warn!("{w}");
    }
    for n in &config.notes {
        log::info!("{n}");
    }
    for w in config.tls_warnings() {
        log::warn!("{w}");
    }
    let registry = metrics::Registry::default();
    if let Some(listen) = config.metrics_listen {
        match metrics::serve(listen, registry.clone()) {
            Ok(addr) => {
                log::info!("Metrics on http://{addr}/metrics, probes on /healthz and /readyz.")
            }
            Err(e) => {
                log::error!("{e}");
                return ExitCode::FAILURE;
            }
        }
    }
    supervise::spawn_memory_trim();
    let watcher = match ConfigWatcher::start(path, loaded) {
        Ok(w) => Some(w),
        Err(e) => {
            log::warn!("{e}; changes to the config take effect at the next start only.");
            None
        }
    };
    match smol::block_on(supervise::supervise(config, shutdown, watcher, registry)) {
        Ok(()) => {
            log::info!("Stopped cleanly.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("Stopped: {e}. {}", e.remedy());
            ExitCode::FAILURE
        }
    }
}

fn validate_cmd(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => {
            println!("[FAIL] config {}", path.display());
            return code;
        }
    };
    logging::init(log::LevelFilter::Warn);
    for n in &config.notes {
        println!("[INFO] {n}");
    }
    for w in config.tls_warnings() {
        println!("[WARN] {w}");
    }
    let mut ok = true;
    match okta_collector::okta::devo_state::would_import(&config) {
        None => {}
        Some(Ok(what)) => println!("[ OK ] Devo's state: {}", logging::escape_controls(&what)),
        Some(Err(e)) => {
            ok = false;
            println!("[FAIL] Devo's state: {}", logging::escape_controls(&e));
        }
    }
    for c in validate::run(&config) {
        match c.result {
            // A detail may quote a peer (Okta's errorSummary): one check, one line.
            Ok(detail) => println!("[ OK ] {}: {}", c.what, logging::escape_controls(&detail)),
            Err(problem) => {
                ok = false;
                println!("[FAIL] {}: {}", c.what, logging::escape_controls(&problem));
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Triggers `shutdown` on SIGTERM or SIGINT.
fn on_signals(shutdown: Shutdown) -> Result<(), String> {
    use async_signal::{Signal, Signals};
    use smol::stream::StreamExt;
    let mut signals = Signals::new([Signal::Term, Signal::Int])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::spawn(move || {
        smol::block_on(async {
            if let Some(Ok(sig)) = signals.next().await {
                log::info!("Received {sig:?}; stopping after the batch in hand.");
                shutdown.trigger();
            }
        })
    });
    Ok(())
}
