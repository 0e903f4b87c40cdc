//! The collector's own health in Devo (`../shared/devo.md` §3.2): its log lines (the
//! statistics lines, and WARN and above by default) sent as Devo's collector framework sends
//! its own, under `devo.collectors.out.local.<level>` with a JSON body (`msg`, `time`,
//! `level`, `collector_name`, `collector_version`, `collector_image`, `input_name`,
//! `service_name`, `module_name`), through a spool per level like any table: nothing is lost
//! in an outage.
//!
//! Nothing loops: lines about sending (the `forward` module), about spools (the `spool`
//! crate) and this module's own are never captured, so a failure to send never produces a
//! line that is sent. Capturing never blocks logging: lines wait in a bounded queue
//! ([`QUEUE`]), and when it or a level's spool is full they are counted as dropped (the local
//! log keeps them all).

use spool::Spool;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The log target of the statistics lines: they are sent whatever the level (decided on the
/// target, never on a line's text).
pub const STATISTICS: &str = "okta_collector::statistics";

/// Lines waiting for the writer, at most.
pub const QUEUE: usize = 4_096;

/// The levels sent, each to its own table (a spool), lowest first.
pub const LEVELS: [(log::Level, &str); 3] = [
    (log::Level::Info, "info"),
    (log::Level::Warn, "warning"),
    (log::Level::Error, "error"),
];

/// The Devo tag of a level's lines.
pub fn tag(level: &str) -> String {
    format!("devo.collectors.out.local.{level}")
}

/// One captured line.
#[derive(Debug, Clone)]
pub struct Line {
    level: log::Level,
    body: String,
}

struct State {
    tx: async_channel::Sender<Line>,
    rx: async_channel::Receiver<Line>,
    /// 0: off; else the lowest `log::Level` sent, as a number.
    level: AtomicU8,
    /// `globals.id`.
    name: Mutex<String>,
    dropped: AtomicU64,
}

fn state() -> &'static State {
    static S: OnceLock<State> = OnceLock::new();
    S.get_or_init(|| {
        let (tx, rx) = async_channel::bounded(QUEUE);
        State {
            tx,
            rx,
            level: AtomicU8::new(0),
            name: Mutex::new(String::new()),
            dropped: AtomicU64::new(0),
        }
    })
}

/// Sets what is captured (`None` or `Off`: nothing; at most `Info`) and the collector's
/// name, from the config.
pub fn configure(level: Option<log::LevelFilter>, collector_name: &str) {
    let s = state();
    *crate::lock(&s.name) = collector_name.to_string();
    let n = match level.and_then(|l| l.to_level()) {
        None => 0,
        Some(l) => l.min(log::Level::Info) as u8,
    };
    s.level.store(n, Ordering::Relaxed);
}

/// Whether anything is captured (the logger then lets the statistics lines through).
pub fn enabled() -> bool {
    state().level.load(Ordering::Relaxed) != 0
}

/// Lines dropped since start (queue or spool full).
pub fn dropped() -> u64 {
    state().dropped.load(Ordering::Relaxed)
}

/// Called by the logger for every record: captures it if it is sent.
pub fn capture(record: &log::Record<'_>) {
    let s = state();
    let min = s.level.load(Ordering::Relaxed);
    if min == 0 {
        return;
    }
    let target = record.target();
    if !target.starts_with("okta_collector")
        || target.starts_with("okta_collector::forward")
        || target.starts_with("okta_collector::selfmon")
    {
        return;
    }
    // Above the chosen level only the statistics lines go; nothing else is formatted.
    if (record.level() as u8) > min && target != STATISTICS {
        return;
    }
    let text = record.args().to_string();
    let Some(level) = LEVELS
        .iter()
        .rev()
        .find(|(l, _)| record.level() <= *l)
        .map(|(l, _)| *l)
    else {
        return;
    };
    let body = body(record.level(), target, &text, &crate::lock(&s.name));
    if s.tx.try_send(Line { level, body }).is_err() {
        s.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// The JSON body Devo's collector framework sends for a line of its own.
fn body(level: log::Level, target: &str, text: &str, name: &str) -> String {
    // `OktaResourcesPuller(okta#65294,logs#predefined) -> …`: the module and the service.
    let (module, service, input) = match text.split_once(" -> ") {
        Some((label, _)) if label.ends_with(')') && label.contains('(') => {
            let (module, args) = label.split_once('(').unwrap_or((label, ""));
            let mut parts = args.trim_end_matches(')').split(',');
            let input = parts.next().and_then(|p| p.split('#').next()).unwrap_or("");
            let service = parts.next().and_then(|p| p.split('#').next()).unwrap_or("");
            (module.to_string(), service.to_string(), input.to_string())
        }
        _ => (
            target.rsplit("::").next().unwrap_or(target).to_string(),
            String::new(),
            String::new(),
        ),
    };
    let level = match level {
        log::Level::Warn => "WARNING",
        l => l.as_str(),
    };
    serde_json::json!({
        "msg": text,
        "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        "level": level,
        "collector_name": name,
        "collector_version": env!("CARGO_PKG_VERSION"),
        "collector_image": "okta-collector",
        "input_name": input,
        "service_name": service,
        "module_name": module,
    })
    .to_string()
}

/// Writes captured lines to their level's spool (`spools` in [`LEVELS`]' order) until
/// `stop`: a batch per level every 200 ms at most, one `fdatasync` each. A spool at its bound
/// (`max_bytes`) takes nothing more: its lines are dropped and counted.
pub async fn run(spools: Vec<Spool>, max_bytes: u64, stop: crate::shutdown::Shutdown) {
    let rx = state().rx.clone();
    loop {
        let first = smol::future::or(async { rx.recv().await.ok() }, async {
            stop.wait().await;
            None
        })
        .await;
        let Some(first) = first else {
            return;
        };
        let mut batch = vec![first];
        // A little more, without waiting long: lines come in bursts (a cycle's end).
        smol::Timer::after(Duration::from_millis(200)).await;
        while batch.len() < 1_000 {
            match rx.try_recv() {
                Ok(l) => batch.push(l),
                Err(_) => break,
            }
        }
        for (i, (level, _)) in LEVELS.iter().enumerate() {
            let lines: Vec<Vec<u8>> = batch
                .iter()
                .filter(|l| l.level == *level)
                .map(|l| l.body.clone().into_bytes())
                .collect();
            let Some(spool) = spools.get(i).cloned() else {
                continue;
            };
            if lines.is_empty() {
                continue;
            }
            let n = lines.len() as u64;
            let at_bound = spool.waiting_bytes().is_ok_and(|w| w >= max_bytes);
            if at_bound {
                state().dropped.fetch_add(n, Ordering::Relaxed);
                continue;
            }
            let newest = crate::time::unix_millis(std::time::SystemTime::now()) as u64 / 1000;
            let written = smol::unblock(move || {
                let slices: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
                spool.append_dated(&slices, b"{}", Some(newest))
            })
            .await;
            if written.is_err() {
                // Not logged: a line about it would be captured again.
                state().dropped.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pullers_line_names_its_module_service_and_input() {
        let b = body(
            log::Level::Warn,
            "okta_collector::okta::puller",
            "OktaResourcesPuller(okta#65294,logs#predefined) -> Okta rate limit reached",
            "okta-test",
        );
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["module_name"], "OktaResourcesPuller");
        assert_eq!(v["service_name"], "logs");
        assert_eq!(v["input_name"], "okta");
        assert_eq!(v["level"], "WARNING");
        assert_eq!(v["collector_name"], "okta-test");
        assert!(v["msg"].as_str().unwrap().ends_with("rate limit reached"));
        let b = body(log::Level::Error, "okta_collector::pipeline", "a\nb", "x");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(
            (v["module_name"].as_str(), v["service_name"].as_str()),
            (Some("pipeline"), Some(""))
        );
        assert_eq!(v["msg"], "a\nb");
    }
}
