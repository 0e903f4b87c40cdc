//! The simulator's commands (`sim`, `demo`), in the default build only: the shipped build
//! (`--no-default-features`) carries no simulator.

use crate::on_signals;
use okta_collector::shutdown::Shutdown;
use okta_collector::{demo, logging};
use std::process::ExitCode;

/// `okta-collector sim`'s options.
#[derive(clap::Args)]
pub struct SimArgs {
    /// Address to listen on (loopback unless you mean otherwise).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// The API token it accepts (as `SSWS <token>`).
    #[arg(long, default_value = "sim-token", value_name = "TOKEN")]
    pub token: String,
    /// System Log events in all.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub events: u64,
    /// Events available at start (default: all of them).
    #[arg(long, value_name = "N")]
    pub initial: Option<u64>,
    /// Events that become available per second after that.
    #[arg(long, default_value_t = 0.0, value_name = "N")]
    pub rate: f64,
    /// Users (groups, apps, idps, zones and clients scale with it).
    #[arg(long, default_value_t = 250, value_name = "N")]
    pub users: u64,
    /// Enforce this many requests per endpoint per window, with X-Rate-Limit-* and 429s.
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u64>,
    /// The rate-limit window in seconds (Okta's is 60).
    #[arg(long, default_value_t = 60, value_name = "S")]
    pub rate_window: u64,
    /// Serve the recorded Okta answers of this folder instead (NAME.json + body files, the
    /// format of ../shared/samples/okta-replay/; see src/sim/replay.rs): real headers and
    /// bodies, pages chained by their next links, 401 for another token.
    #[arg(long, value_name = "DIR")]
    pub replay: Option<std::path::PathBuf>,
}

/// `okta-collector demo`'s options.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub seconds: u64,
    /// Keep the demo's temporary folder (config, certificates, spool) and print its path.
    #[arg(long)]
    pub keep: bool,
    /// Log level of the collector's own log lines on stderr.
    #[arg(long, default_value = "error", value_name = "LEVEL")]
    pub log_level: log::LevelFilter,
    /// Authenticate as an OAuth 2.0 API Services app (private_key_jwt, DPoP with Okta's
    /// nonce, one-minute tokens) instead of an API token.
    #[arg(long)]
    pub oauth: bool,
}

/// Serves the simulated org (or the recorded answers of a folder) until SIGTERM or SIGINT.
pub fn sim(args: SimArgs) -> ExitCode {
    let SimArgs {
        listen,
        token,
        events,
        initial,
        rate,
        users,
        rate_limit,
        rate_window,
        replay,
    } = args;
    use okta_collector::sim;
    let shutdown = Shutdown::new();
    if let Err(e) = on_signals(shutdown.clone()) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(dir) = replay {
        return match sim::replay::Replay::start(listen, &dir, &token) {
            Ok(r) => {
                println!(
                    "Replaying {} recorded Okta answers from {} at {} (token {token:?}). Ctrl-C stops.",
                    r.names().len(),
                    dir.display(),
                    r.url()
                );
                println!("okta_url: {}", r.url());
                smol::block_on(shutdown.wait());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = sim::okta::Options {
        token: token.clone(),
        total: events,
        initial: initial.unwrap_or(events),
        rate_per_sec: rate,
        objects: sim::inventory::Counts {
            users,
            groups: (users / 6).max(1),
            apps: (users / 8).max(1),
            idps: 3,
            zones: 4,
            clients: (users / 20).max(1),
        },
        rate_limit,
        rate_window: std::time::Duration::from_secs(rate_window.max(1)),
        ..Default::default()
    };
    match sim::okta::OktaSim::start(listen, opts) {
        Ok(org) => {
            println!(
                "Simulated Okta org at {} (token {token:?}): {events} System Log events, {users} users. Ctrl-C stops.",
                org.url()
            );
            println!("okta_url: {}   start: {}", org.url(), org.start_time());
            smol::block_on(shutdown.wait());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the whole pipeline against the simulator for `seconds`.
pub fn demo(args: DemoArgs) -> ExitCode {
    let DemoArgs {
        seconds,
        keep,
        log_level,
        oauth,
    } = args;
    logging::init(log_level);
    let shutdown = Shutdown::new();
    if let Err(e) = on_signals(shutdown.clone()) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match demo::run(seconds, keep, oauth, shutdown) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
