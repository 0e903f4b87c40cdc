//! The running collector over time: the pipeline runs until shutdown, and is rebuilt when the
//! config watcher reports a config that validates (an invalid one never stops anything); and
//! the thread that hands free memory back to the system. Here rather than in `main.rs` so that
//! the reload decisions are library code with unit tests, and the binary stays a thin command
//! line.

use crate::config::Config;
use crate::metrics;
use crate::pipeline::{Error, Pipeline};
use crate::shutdown::Shutdown;
use crate::watch::ConfigWatcher;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the `[GC]` memory line is logged.
const MEMORY_LOG_PERIOD: Duration = Duration::from_secs(300);
/// How often free memory is handed back to the system.
const TRIM_PERIOD: Duration = Duration::from_secs(60);

/// Starts the thread that, every minute, frees the pullers' spare page buffers and hands free
/// memory back to the system, and every 5 minutes logs the `[GC]` memory line.
pub fn spawn_memory_trim() {
    std::thread::spawn(|| {
        let mut before = metrics::Memory::now();
        let mut last_line = Instant::now();
        loop {
            std::thread::sleep(TRIM_PERIOD);
            crate::okta::release_spare_bodies();
            crate::sys::release_free_memory();
            if last_line.elapsed() >= MEMORY_LOG_PERIOD {
                let now = metrics::Memory::now();
                log::info!("{}", now.line(&before));
                before = now;
                last_line = Instant::now();
            }
        }
    });
}

/// What a changed config file means for the running pipeline.
#[derive(Debug)]
pub enum Reload {
    /// The new config validates: stop the pipeline and start it on this one, after logging
    /// each warning (where the API token goes now, secret files others can read).
    Restart(Box<Config>, Vec<String>),
    /// It cannot be used: the running pipeline goes on; why, for the log.
    Keep(String),
}

/// Decides what the config text `text` (the file at `current.path`, changed) means: parsed
/// and checked as a start would check it (TLS material, the Okta client), before anything
/// stops.
pub fn decide(current: &Config, text: &str) -> Reload {
    match Config::parse(&current.path, text)
        .map_err(|e| e.to_string())
        .and_then(|c| Pipeline::check(&c).map(|()| c))
    {
        Ok(c) => {
            let mut warnings: Vec<String> = current
                .token_route_changes(&c)
                .into_iter()
                .map(|w| format!("Reload: {w}."))
                .collect();
            warnings.extend(c.secret_file_warnings());
            Reload::Restart(Box::new(c), warnings)
        }
        Err(e) => Reload::Keep(e),
    }
}

/// The next version of the config file that validates, with the warnings to log when it is
/// switched to (`None`: it changed but cannot be used, which is logged). Never returns without
/// a watcher.
async fn next_config(
    watcher: Option<&mut ConfigWatcher>,
    current: &Config,
) -> Option<(Box<Config>, Vec<String>)> {
    let Some(w) = watcher else {
        return std::future::pending().await;
    };
    match decide(current, &w.changed().await) {
        Reload::Keep(e) => {
            log::error!(
                "The config file changed but cannot be used, so the previous config stays in use: {e}"
            );
            None
        }
        Reload::Restart(c, warnings) => Some((c, warnings)),
    }
}

/// Opens the pipeline, retrying for `patience`: after a reload the previous pipeline's spool
/// locks may take a moment to be released (everything else was checked before the switch).
async fn build_retrying(config: &Config, patience: Duration) -> Result<Pipeline, Error> {
    let deadline = Instant::now() + patience;
    loop {
        match Pipeline::build(config) {
            Ok(p) => return Ok(p),
            Err(e @ Error::SpoolLocked(_)) if Instant::now() < deadline => {
                log::debug!("Opening the pipeline failed ({e}); retrying.");
                smol::Timer::after(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs the pipeline until shutdown; when the watcher reports a config that validates, stops
/// it cleanly and starts it again on the new config (an invalid one is logged and ignored).
///
/// # Errors
/// A fatal error of the pipeline (a spool that cannot be written), or one that cannot be
/// opened.
pub async fn supervise(
    mut config: Config,
    shutdown: Shutdown,
    mut watcher: Option<ConfigWatcher>,
    registry: metrics::Registry,
) -> Result<(), Error> {
    let mut patience = Duration::ZERO;
    loop {
        let pipeline = build_retrying(&config, patience).await?;
        patience = Duration::from_secs(5);
        registry.track(&pipeline);
        let generation = Shutdown::new();
        let mut task = smol::spawn(pipeline.run(generation.clone()));
        enum Next {
            Stop,
            Changed(Option<(Box<Config>, Vec<String>)>),
            Ended(Result<(), crate::Fatal>),
        }
        let next = loop {
            let stop = async {
                shutdown.wait().await;
                Next::Stop
            };
            let ended = async { Next::Ended((&mut task).await) };
            let changed = async { Next::Changed(next_config(watcher.as_mut(), &config).await) };
            match smol::future::or(stop, smol::future::or(ended, changed)).await {
                Next::Changed(None) => continue,
                other => break other,
            }
        };
        match next {
            Next::Ended(r) => return r.map_err(Error::Fatal),
            Next::Stop => {
                generation.trigger();
                return task.await.map_err(Error::Fatal);
            }
            Next::Changed(None) => {}
            Next::Changed(Some((c, warnings))) => {
                log::info!(
                    "The config file {} changed; restarting the services and the output on it.",
                    config.path.display()
                );
                for w in warnings {
                    log::warn!("{w}");
                }
                generation.trigger();
                task.await.map_err(Error::Fatal)?;
                registry.clear();
                crate::selfmon::configure(c.self_monitoring.map(|l| l.filter()), &c.id);
                crate::logging::set_level(c.log_level.filter());
                config = *c;
            }
        }
    }
}

/// Reads the config file at `path` and parses it, keeping the text: the watcher starts from
/// the text the config was parsed from, so a change made while the collector starts is seen.
///
/// # Errors
/// The file cannot be read, or its config is not valid.
pub fn load_with_text(path: &Path) -> Result<(Config, String), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    let config = Config::parse(path, &text).map_err(|e| e.to_string())?;
    Ok((config, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
globals:
  data_dir: data
outputs:
  out:
    type: console
inputs:
  okta:
    credentials:
      okta_url: https://acme.okta.com
      api_token: 00abcdefSECRET
    services:
      logs: {}
"#;

    fn current(dir: &Path) -> Config {
        Config::parse(&dir.join("config.yaml"), BASE).unwrap()
    }

    #[test]
    fn a_config_that_does_not_parse_keeps_the_running_one_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        match decide(&current(dir.path()), "outputs: [") {
            Reload::Keep(why) => assert!(why.contains("config.yaml"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_config_whose_output_cannot_load_keeps_the_running_one() {
        let dir = tempfile::tempdir().unwrap();
        let text = BASE.replace(
            "    type: console\n",
            "    type: devo_platform\n    config:\n      address: collector-us.devo.io\n      chain: /nonexistent/chain.crt\n      cert: /nonexistent/c.crt\n      key: /nonexistent/c.key\n",
        );
        assert_ne!(text, BASE);
        match decide(&current(dir.path()), &text) {
            Reload::Keep(why) => assert!(why.contains("/nonexistent/"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_valid_change_restarts_and_names_where_the_token_goes_now() {
        let dir = tempfile::tempdir().unwrap();
        let text = BASE.replace("https://acme.okta.com", "https://other.okta.com");
        assert_ne!(text, BASE);
        match decide(&current(dir.path()), &text) {
            Reload::Restart(c, warnings) => {
                assert_eq!(c.okta.url.host, "other.okta.com");
                assert!(
                    warnings
                        .iter()
                        .any(|w| w.starts_with("Reload: ") && w.contains("other.okta.com")),
                    "{warnings:?}"
                );
                assert!(!format!("{warnings:?}").contains("SECRET"));
            }
            other => panic!("{other:?}"),
        }
        match decide(&current(dir.path()), BASE) {
            Reload::Restart(_, warnings) => assert!(warnings.is_empty(), "{warnings:?}"),
            other => panic!("{other:?}"),
        }
    }
}
