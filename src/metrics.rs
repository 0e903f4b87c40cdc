//! Observability: Prometheus text at `/metrics`, `/healthz` and `/readyz` on
//! `globals.metrics_listen`, and the seed's memory line (`[GC] global: … process: RSS(…)`).

use crate::httpd::{Reply, Request};
use crate::lock;
use crate::pipeline::{OutputStats, Pipeline, TableStats};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// What the endpoint reports: the running pipeline's figures (replaced at each reload, so
/// counters restart from zero then, which Prometheus treats as a reset).
#[derive(Debug, Clone, Default)]
pub struct Registry(Arc<Mutex<Option<View>>>);

#[derive(Debug, Clone)]
struct View {
    tables: Vec<TableStats>,
    outputs: Vec<OutputStats>,
}

impl Registry {
    /// Reports on `p` from now on.
    pub fn track(&self, p: &Pipeline) {
        *lock(&self.0) = Some(View {
            tables: p.stats.clone(),
            outputs: p.outputs.clone(),
        });
    }

    /// Stops reporting (and drops the handles on the stopped pipeline's spools, so their locks
    /// are released before a reload opens them again).
    pub fn clear(&self) {
        *lock(&self.0) = None;
    }

    /// True while every output's peer is reachable.
    fn connected(&self) -> bool {
        lock(&self.0).as_ref().is_some_and(|v| {
            v.outputs
                .iter()
                .all(|o| o.connected.load(Ordering::Relaxed))
        })
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let Some(v) = lock(&self.0).clone() else {
            return String::new();
        };
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP okta_collector_{name} {help}");
            let _ = writeln!(out, "# TYPE okta_collector_{name} {kind}");
            for (labels, value) in rows {
                let _ = writeln!(out, "okta_collector_{name}{{{labels}}} {value}");
            }
        };
        let labels = |t: &TableStats| format!("service=\"{}\",table=\"{}\"", t.service, t.tag);
        let per_table = |f: &dyn Fn(&TableStats) -> String| {
            v.tables
                .iter()
                .map(|t| (labels(t), f(t)))
                .collect::<Vec<_>>()
        };
        family(
            "events_pulled_total",
            "counter",
            "Events written to the spool.",
            per_table(&|t| t.pulled.spooled.load(Ordering::Relaxed).to_string()),
        );
        let mut sent = Vec::new();
        for t in &v.tables {
            for (o, d) in v.outputs.iter().zip(&t.delivered) {
                sent.push((
                    format!("{},output=\"{}\"", labels(t), o.name),
                    d.load(Ordering::Relaxed).to_string(),
                ));
            }
        }
        family(
            "events_sent_total",
            "counter",
            "Events the output acknowledged (its peer's TCP stack, or a 2xx), per output.",
            sent,
        );
        family(
            "duplicates_dropped_total",
            "counter",
            "Events dropped as duplicates or unchanged before spooling.",
            per_table(&|t| t.pulled.duplicates.load(Ordering::Relaxed).to_string()),
        );
        family(
            "spool_bytes",
            "gauge",
            "Bytes of the table's spool files.",
            per_table(&|t| t.spool.disk_bytes().unwrap_or(0).to_string()),
        );
        family(
            "spool_lost_events_total",
            "counter",
            "Events the spool lost to corruption (a corrupt frame skipped, a segment set aside), since it was created.",
            per_table(&|t| t.spool.losses().lost_events.to_string()),
        );
        family(
            "spool_corrupt_frames_total",
            "counter",
            "Corrupt frames the spool's readers skipped, since it was created.",
            per_table(&|t| t.spool.losses().corrupt_frames.to_string()),
        );
        family(
            "errors_total",
            "counter",
            "Errors logged, by the seed collector's error id (SetupError 100, PullError 302, ...).",
            crate::errors::counts()
                .into_iter()
                .map(|(id, n)| (format!("id=\"{}\"", id.code()), n.to_string()))
                .collect(),
        );
        let now_ms = crate::time::unix_millis(std::time::SystemTime::now()) as u64;
        let secs = |ms: u64| format!("{:.3}", now_ms.saturating_sub(ms) as f64 / 1000.0);
        let mut lag = Vec::new();
        for t in &v.tables {
            for (o, d) in v.outputs.iter().zip(&t.delivered_times) {
                let ms = d.load(Ordering::Relaxed);
                if ms > 0 {
                    lag.push((format!("{},output=\"{}\"", labels(t), o.name), secs(ms)));
                }
            }
        }
        family(
            "delivery_lag_seconds",
            "gauge",
            "Now minus the time (published, or lastUpdated) of the newest event the output delivered; absent until one is.",
            lag,
        );
        family(
            "oldest_waiting_event_age_seconds",
            "gauge",
            "Now minus the time of the oldest event not yet delivered by every output (0: none waits); absent when unknown (events spooled before this start).",
            v.tables
                .iter()
                .filter_map(|t| {
                    if t.waiting() == 0 {
                        return Some((labels(t), "0".to_string()));
                    }
                    let ms = t.pulled.oldest_waiting_ms(t.acked_by_outputs())?;
                    Some((labels(t), secs(ms)))
                })
                .collect(),
        );
        family(
            "spool_waiting_events",
            "gauge",
            "Events in the spool not yet acknowledged by every output.",
            per_table(&|t| t.waiting().to_string()),
        );
        let mut filtered = Vec::new();
        for t in &v.tables {
            for (rule, n) in lock(&t.pulled.filtered).iter() {
                filtered.push((format!("{},rule=\"{}\"", labels(t), rule), n.to_string()));
            }
        }
        family(
            "events_filtered_total",
            "counter",
            "System Log events left out by each drop or sample rule (the cursor moves past them).",
            filtered,
        );
        let mut requests = Vec::new();
        for t in &v.tables {
            let m = lock(&t.pulled.requests).clone();
            for (status, n) in m {
                requests.push((
                    format!("service=\"{}\",status=\"{status}\"", t.service),
                    n.to_string(),
                ));
            }
        }
        family(
            "okta_requests_total",
            "counter",
            "Requests to Okta by HTTP status (0: no answer).",
            requests,
        );
        let service = |t: &TableStats| format!("service=\"{}\"", t.service);
        family(
            "okta_rate_limit_remaining",
            "gauge",
            "The last X-Rate-Limit-Remaining Okta sent (-1: none yet).",
            v.tables
                .iter()
                .map(|t| {
                    let r = t.pulled.rate_remaining.load(Ordering::Relaxed);
                    (service(t), (r as i64 - 1).to_string())
                })
                .collect(),
        );
        family(
            "last_successful_pull_timestamp_seconds",
            "gauge",
            "When the service last caught up with Okta (0: not yet).",
            v.tables
                .iter()
                .map(|t| {
                    (
                        service(t),
                        t.pulled.last_pull.load(Ordering::Relaxed).to_string(),
                    )
                })
                .collect(),
        );
        family(
            "self_monitoring_dropped_total",
            "counter",
            "The collector's own lines not sent to Devo because the queue or their level's spool was full (the local log has them all).",
            vec![(String::new(), crate::selfmon::dropped().to_string())],
        );
        family(
            "output_connected",
            "gauge",
            "1 while the output's peer is reachable (a session up, or the last batch taken).",
            v.outputs
                .iter()
                .map(|o| {
                    (
                        format!("output=\"{}\",type=\"{}\"", o.name, o.kind),
                        u8::from(o.connected.load(Ordering::Relaxed)).to_string(),
                    )
                })
                .collect(),
        );
        out
    }
}

/// Serves `/metrics`, `/healthz` (the process answers) and `/readyz` (the output is
/// connected) on `listen`, from a background thread.
///
/// # Errors
/// A message naming the address if it cannot be bound.
pub fn serve(listen: SocketAddr, registry: Registry) -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| format!("globals.metrics_listen: cannot listen on {listen}: {e}"))?;
    let reply = |status: u16, ctype: &str, body: String| Reply {
        status,
        headers: vec![("content-type".into(), ctype.into())],
        body: body.into_bytes(),
    };
    Ok(crate::httpd::serve(
        listener,
        Arc::new(move |req: &Request| match req.path() {
            "/metrics" => reply(200, "text/plain; version=0.0.4", registry.render()),
            "/healthz" => reply(200, "text/plain", "ok\n".into()),
            "/readyz" if registry.connected() => reply(200, "text/plain", "ready\n".into()),
            "/readyz" => reply(503, "text/plain", "an output is not connected\n".into()),
            _ => reply(
                404,
                "text/plain",
                "try /metrics, /healthz or /readyz\n".into(),
            ),
        }),
        crate::httpd::Limits::METRICS,
    ))
}

/// Memory figures for the seed's `[GC]` line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Memory {
    /// Share of the machine's memory in use, percent.
    pub global_pct: f64,
    /// Resident set size, MiB.
    pub rss_mib: f64,
    /// Virtual size, MiB.
    pub vms_mib: f64,
}

impl Memory {
    /// Reads `/proc/meminfo` and `/proc/self/statm` (zeros where they cannot be read).
    pub fn now() -> Memory {
        let kib = |text: &str, key: &str| -> Option<f64> {
            text.lines()
                .find(|l| l.starts_with(key))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let global_pct = match (kib(&meminfo, "MemTotal:"), kib(&meminfo, "MemAvailable:")) {
            (Some(t), Some(a)) if t > 0.0 => 100.0 * (t - a) / t,
            _ => 0.0,
        };
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let mut pages = statm
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(0.0));
        let (vms, rss) = (pages.next().unwrap_or(0.0), pages.next().unwrap_or(0.0));
        let page_mib = 4096.0 / 1_048_576.0;
        Memory {
            global_pct,
            rss_mib: rss * page_mib,
            vms_mib: vms * page_mib,
        }
    }

    /// `[GC] global: a% -> b%, process: RSS(x MiB -> y MiB), VMS(…)`, from `before` to `self`.
    pub fn line(&self, before: &Memory) -> String {
        format!(
            "[GC] global: {:.1}% -> {:.1}%, process: RSS({:.2}MiB -> {:.2}MiB), VMS({:.2}MiB -> {:.2}MiB)",
            before.global_pct,
            self.global_pct,
            before.rss_mib,
            self.rss_mib,
            before.vms_mib,
            self.vms_mib
        )
    }
}
