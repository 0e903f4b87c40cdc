//! What the benchmark binaries share: their command-line arguments, a run's set-up (the
//! simulator, certificates, a receiver, a config, the real binary), and a process's CPU time
//! and memory read from /proc.
#![allow(dead_code)] // each bench binary uses its own part of it
#![allow(clippy::expect_used)] // a benchmark: a panic is a failed run, with its message

use okta_collector::sim::{certs, devo, okta};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The collector binary measured: this build's, or the one named by `OKTA_COLLECTOR_BIN`
/// (to compare two builds back to back with the same bench).
pub fn collector() -> std::ffi::OsString {
    std::env::var_os("OKTA_COLLECTOR_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_okta-collector").into())
}

/// Prints a bench's first line, the command that reproduces it, and the binary measured when
/// it is not this build's.
pub fn header(command: &str) {
    println!("{command}");
    if let Some(bin) = std::env::var_os("OKTA_COLLECTOR_BIN") {
        println!(
            "  collector: {} (OKTA_COLLECTOR_BIN)",
            bin.to_string_lossy()
        );
    }
}

/// One run: a folder under target/ (not /tmp, which may be a tmpfs where `fdatasync` costs
/// nothing), throwaway certificates, the simulated org, a reserved port for the receiver, and
/// a config for the real binary.
pub struct Run {
    pub dir: tempfile::TempDir,
    pub pki: certs::Pki,
    pub sim: okta::OktaSim,
    pub port: u16,
}

/// A collector config: the simulated org at `url`, the mutual-TLS receiver on `port` (the
/// certificates under `certs/`), `services` the YAML under `inputs.okta.services`. No local
/// budget, an 8 GiB spool bound.
pub fn config(port: u16, url: &str, services: &str) -> String {
    config_bounded(port, url, services, 8 << 30)
}

/// [`config`] with this spool bound.
pub fn config_bounded(port: u16, url: &str, services: &str, bound: u64) -> String {
    format!(
        r#"globals:
  data_dir: data
  log_level: warn
  self_monitoring: false
  requests_per_minute: 0
  spool:
    max_bytes_per_table: {bound}
outputs:
  devo:
    type: devo_platform
    config: {{address: 127.0.0.1, port: {port}, chain: certs/chain.crt, cert: certs/domain.crt, key: certs/domain.key, hostname: bench}}
inputs:
  okta:
    credentials: {{okta_url: "{url}", api_token: bench-token}}
    services:
{services}"#
    )
}

impl Run {
    /// `events` System Log events available at once; `services` is the YAML under
    /// `inputs.okta.services` (`{start}` is replaced by a start before the backlog). No local
    /// budget, an 8 GiB spool bound.
    pub fn new(events: u64, services: &str) -> Run {
        Run::with(events, services, 8 << 30, false)
    }

    /// [`Run::new`] with this spool bound, and admin-sized events (pages of about 6 MB) when
    /// `big_events`.
    pub fn with(events: u64, services: &str, bound: u64, big_events: bool) -> Run {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let pki = certs::generate(&dir.path().join("certs"), "bench CA").expect("certs");
        let sim = okta::OktaSim::start(
            ([127, 0, 0, 1], 0).into(),
            okta::Options {
                token: "bench-token".into(),
                total: events,
                initial: events,
                big_events,
                ..Default::default()
            },
        )
        .expect("simulator");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let services = services.replace("{start}", &sim.start_time());
        let config = config_bounded(port, &sim.url(), &services, bound);
        write_private(&dir.path().join("config.yaml"), &config).expect("config");
        Run {
            dir,
            pki,
            sim,
            port,
        }
    }

    /// Starts the mutual-TLS receiver on the reserved port.
    pub fn receiver(&self) -> devo::Receiver {
        devo::Receiver::start(
            ([127, 0, 0, 1], self.port).into(),
            &self.pki,
            devo::Options {
                keep_lines: false,
                verify_delay: Duration::ZERO,
                ..Default::default()
            },
        )
        .expect("receiver")
    }

    /// Starts `okta-collector run` on the config.
    pub fn spawn(&self) -> Child {
        Command::new(collector())
            .args(["run", "--config"])
            .arg(self.dir.path().join("config.yaml"))
            .stdout(Stdio::null())
            .spawn()
            .expect("okta-collector")
    }
}

/// Starts the collector on `run` with a receiver, waits until `events` lines have arrived,
/// stops it; returns (seconds from spawn to the last line, CPU seconds, peak RSS in MiB) of
/// the collector (benchmark 1's measure).
pub fn deliver_all(run: &Run, events: u64) -> (f64, f64, f64) {
    let rx = run.receiver();
    let started = std::time::Instant::now();
    let child = run.spawn();
    let mut last = (0.0, 0.0);
    while rx.count() < events {
        last = usage(child.id());
        std::thread::sleep(Duration::from_millis(100));
    }
    let secs = started.elapsed().as_secs_f64();
    let (cpu, rss) = usage(child.id());
    stop(child);
    (secs, cpu.max(last.0), rss.max(last.1))
}

/// SIGTERM, then the exit.
pub fn stop(mut child: Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

/// The value after `name` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `/proc/<pid>/status` figure in kB (`VmRSS:`, `VmHWM:`), as MiB.
pub fn status_mib(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// (user + system CPU seconds, peak RSS in MiB) of a running process.
pub fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    (cpu, status_mib(pid, "VmHWM:"))
}

/// Writes a config file readable by its owner only (it holds a token; the collector warns
/// about any other mode).
pub fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}
