//! Test harness: a temp folder with real certificates, the simulated Okta org, a mutual-TLS
//! Devo receiver, a config file, and the real `okta-collector` binary as a child process.

use okta_collector::forward::syslog;
use okta_collector::sim::{certs, devo, okta};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "00TEST-token-Do-Not-Log-4f1c2e";
pub const HOSTNAME: &str = "okta-test-host";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub pki: certs::Pki,
    pub okta: okta::OktaSim,
    pub devo_port: u16,
    pub devo: Option<devo::Receiver>,
    runs: usize,
}

impl Env {
    /// A fresh folder, certificates and simulated org; the receiver is not started yet.
    pub fn new(opts: okta::Options) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let pki = certs::generate(&dir.path().join("certs"), "test CA").unwrap();
        let okta = okta::OktaSim::start(
            ([127, 0, 0, 1], 0).into(),
            okta::Options {
                token: TOKEN.into(),
                ..opts
            },
        )
        .unwrap();
        let devo_port = free_port();
        Env {
            dir,
            pki,
            okta,
            devo_port,
            devo: None,
            runs: 0,
        }
    }

    /// [`Env::new`] with a System Log backlog of `events`, all there at start.
    pub fn with_backlog(events: u64) -> Env {
        Env::new(okta::Options {
            total: events,
            initial: events,
            ..Default::default()
        })
    }

    /// Starts the Devo receiver on the reserved port.
    pub fn start_devo(&mut self) -> devo::Receiver {
        self.start_devo_with(Duration::ZERO)
    }

    /// Starts the Devo receiver, taking `verify_delay` to judge client certificates.
    pub fn start_devo_with(&mut self, verify_delay: Duration) -> devo::Receiver {
        self.start_devo_opts(devo::Options {
            keep_lines: true,
            verify_delay,
            ..Default::default()
        })
    }

    /// Starts the Devo receiver with these options.
    pub fn start_devo_opts(&mut self, opts: devo::Options) -> devo::Receiver {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match devo::Receiver::start(([127, 0, 0, 1], self.devo_port).into(), &self.pki, opts) {
                Ok(r) => {
                    self.devo = Some(r.clone());
                    return r;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("receiver bind retry: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a config (with `services_extra` appended under `services.logs`) and returns its path.
    pub fn write_config(&self, logs_extra: &str) -> PathBuf {
        self.write_config_text(&self.config_text(logs_extra))
    }

    pub fn write_config_text(&self, text: &str) -> PathBuf {
        let p = self.path().join("config.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A typed builder of the test config: the template (this env's org, receiver and
    /// certificates; the System Log from the org's start, every second, no local budget) plus
    /// what a test sets.
    pub fn config(&self) -> Config<'_> {
        Config {
            env: self,
            globals: Vec::new(),
            logs: Vec::new(),
            services: Vec::new(),
        }
    }

    /// The config with `lines` (each indented two spaces) added under `globals:`.
    pub fn config_with_globals(&self, lines: &str) -> String {
        self.config().globals_yaml(lines).text()
    }

    /// The config with `logs_extra` (YAML indented for `services:` children) after the
    /// `logs` service.
    pub fn config_text(&self, logs_extra: &str) -> String {
        self.config().services_yaml(logs_extra).text()
    }

    /// Starts `okta-collector run` on the config; its stderr goes to `run-N.log`.
    pub fn spawn(&mut self) -> Child {
        self.spawn_with_env(&[])
    }

    /// [`Env::spawn`] with these environment variables (besides `PATH`).
    pub fn spawn_with_env(&mut self, vars: &[(&str, &str)]) -> Child {
        let config = self.path().join("config.yaml");
        self.spawn_at(&config, vars)
    }

    /// `okta-collector run --config <config>` with these environment variables.
    pub fn spawn_at(&mut self, config: &Path, vars: &[(&str, &str)]) -> Child {
        self.runs += 1;
        let log =
            std::fs::File::create(self.path().join(format!("run-{}.log", self.runs))).unwrap();
        Command::new(bin())
            .args(["run", "--config"])
            .arg(config)
            // The working directory is the test's folder (Devo's relative paths start there).
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// All stderr of all runs so far.
    pub fn logs(&self) -> String {
        (1..=self.runs)
            .map(|i| {
                std::fs::read_to_string(self.path().join(format!("run-{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("")
    }

    /// Waits until `needle` occurs in the log `more` times more than now: proof that
    /// something happened (cycles ran, a page was taken) where a fixed sleep only hopes so.
    pub fn wait_for_more(&self, needle: &str, more: usize, limit: Duration) -> bool {
        let now = self.logs().matches(needle).count();
        wait_until(limit, || self.logs().matches(needle).count() >= now + more)
    }

    /// `okta-collector validate` on the env's config, from its folder: the exit code, the
    /// standard output (one line per check) and the standard error.
    pub fn validate(&self) -> (Option<i32>, String, String) {
        let out = Command::new(bin())
            .args(["validate", "--config"])
            .arg(self.path().join("config.yaml"))
            .current_dir(self.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Waits for one more System Log cycle that finds nothing new, so that whatever was still
    /// to arrive (a duplicate too) has: proved by its log line, not hoped for by a sleep.
    #[track_caller]
    pub fn settle(&self) {
        assert!(
            self.wait_for_more("The data is up to date!", 1, Duration::from_secs(30)),
            "no further cycle ran\n{}",
            self.logs()
        );
    }

    /// Writes the config with Devo's filesystem persistence (`directory_name: state`) and
    /// returns where Devo's collector keeps the System Log state for it (its folder made).
    pub fn with_devo_persistence(&self) -> PathBuf {
        let text = self.config_with_globals(
            "  persistence:\n    type: filesystem\n    config:\n      directory_name: state\n",
        );
        self.write_config_text(&text);
        let dir = self.path().join("state/okta-test");
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("okta_65294_logs_predefined_OktaResourcesPuller.json")
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.path().join("data/spool/logs")
    }
}

/// The test config, built by [`Env::config`]: typed setters for what tests change, YAML for
/// the rest; `text` renders it, `write` saves it as the env's `config.yaml`.
pub struct Config<'a> {
    env: &'a Env,
    globals: Vec<String>,
    logs: Vec<String>,
    services: Vec<String>,
}

impl Config<'_> {
    /// `globals.<key>: <value>`.
    pub fn global(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.globals.push(format!("  {key}: {value}\n"));
        self
    }

    /// `globals.spool.max_bytes_per_table`.
    pub fn spool_bound(self, bytes: u64) -> Self {
        self.globals_yaml(&format!("  spool: {{max_bytes_per_table: {bytes}}}\n"))
    }

    /// Lines under `globals:` as they are (indented two spaces).
    pub fn globals_yaml(mut self, lines: &str) -> Self {
        self.globals.push(lines.to_string());
        self
    }

    /// `inputs.okta.services.logs.<key>: <value>`.
    pub fn logs(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.logs.push(format!("        {key}: {value}\n"));
        self
    }

    /// Another service, `inputs.okta.services.<name>: <settings>` (a YAML flow map such as
    /// `{request_period_in_seconds: 1, requests_limits: []}`, or `{}`).
    pub fn service(mut self, name: &str, settings: &str) -> Self {
        self.services.push(format!("      {name}: {settings}\n"));
        self
    }

    /// Lines after the `logs` service as they are (indented for `services:` children, or for
    /// `logs:` settings to extend it).
    pub fn services_yaml(mut self, lines: &str) -> Self {
        self.services.push(lines.to_string());
        self
    }

    /// The YAML text.
    pub fn text(&self) -> String {
        let env = self.env;
        format!(
            r#"globals:
  id: okta-test
  data_dir: data
  log_level: info
  self_monitoring: false
{globals}outputs:
  devo_1:
    type: devo_platform
    config:
      address: 127.0.0.1
      port: {port}
      chain: certs/chain.crt
      cert: certs/domain.crt
      key: certs/domain.key
      hostname: {HOSTNAME}
inputs:
  okta:
    id: "65294"
    enabled: true
    credentials:
      okta_url: {url}
      api_token: "{TOKEN}"
    services:
      logs:
        start: {start}
        request_period_in_seconds: 1
        requests_limits: []
{logs}{services}"#,
            globals = self.globals.concat(),
            logs = self.logs.concat(),
            services = self.services.concat(),
            port = env.devo_port,
            url = env.okta.url(),
            start = env.okta.start_time(),
        )
    }

    /// Writes the text as the env's `config.yaml`; returns its path.
    pub fn write(&self) -> PathBuf {
        self.env.write_config_text(&self.text())
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_okta-collector")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 50 ms until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

pub fn signal(child: &Child, sig: i32) {
    let name = if sig == 9 { "-KILL" } else { "-TERM" };
    let st = Command::new("kill")
        .arg(name)
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

/// SIGTERM, then the clean exit (code 0) within 30 s that `run` promises.
pub fn stop(env: &Env, child: &mut Child) {
    signal(child, 15);
    let st = wait_exit(child, Duration::from_secs(30));
    assert!(st.success(), "exit {st:?} after SIGTERM\n{}", env.logs());
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("okta-collector did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the receiver got, checked line by line against what the simulator served.
pub struct Delivery {
    /// How many times each event index arrived.
    pub counts: HashMap<u64, u32>,
    pub lines: usize,
}

impl Delivery {
    pub fn duplicates(&self) -> u64 {
        self.counts.values().map(|c| u64::from(c - 1)).sum()
    }

    pub fn missing(&self, total: u64) -> Vec<u64> {
        (0..total)
            .filter(|i| !self.counts.contains_key(i))
            .collect()
    }

    /// Every event `0..total` arrived, each once: the promise, checked in one place.
    #[track_caller]
    pub fn assert_exactly_once(&self, total: u64) {
        let missing = self.missing(total);
        assert!(
            missing.is_empty(),
            "{} of {total} events missing, the first {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert_eq!(self.duplicates(), 0, "events delivered twice");
    }
}

/// The JSON records delivered to `tag`, parsed (lines of other tables left out).
pub fn records(devo: &devo::Receiver, tag: &str) -> Vec<serde_json::Value> {
    devo.lines()
        .iter()
        .filter_map(|l| {
            let (_, t, e) = syslog::parse_line(l)?;
            (t == tag).then(|| serde_json::from_slice(e).ok()).flatten()
        })
        .collect()
}

/// The lines that are not the collector's own (self-monitoring, on by default in Devo's
/// config layouts: tags `devo.collectors.out.*`, checked in `selfmon.rs`).
pub fn without_self_monitoring(lines: &[Vec<u8>]) -> Vec<Vec<u8>> {
    lines
        .iter()
        .filter(|l| !String::from_utf8_lossy(l).contains(" devo.collectors.out."))
        .cloned()
        .collect()
}

/// Parses every received line; panics on a line that is not exactly an event the simulator
/// served, framed with the right hostname and `tag`.
pub fn check_lines(env: &Env, lines: &[Vec<u8>], tag: &str) -> Delivery {
    let mut counts = HashMap::new();
    for line in lines {
        let (host, t, event) = syslog::parse_line(line)
            .unwrap_or_else(|| panic!("not a syslog line: {}", String::from_utf8_lossy(line)));
        assert_eq!(host, HOSTNAME);
        assert_eq!(t, tag);
        let v: serde_json::Value = serde_json::from_slice(event).expect("event is JSON");
        let uuid = v["uuid"].as_str().expect("uuid");
        let i = okta::index_of(uuid).expect("a simulator uuid");
        assert_eq!(
            std::str::from_utf8(event).unwrap(),
            env.okta.event(i),
            "event {i} arrived altered"
        );
        *counts.entry(i).or_insert(0) += 1;
    }
    Delivery {
        counts,
        lines: lines.len(),
    }
}

/// What the spool holds after a run.
pub struct SpoolState {
    /// Events still in the spool files.
    pub events: u64,
    /// Events durable but not recorded as delivered: what a restart sends (again).
    pub unacked: u64,
}

/// Opens a copy of the spool in `dir` (its files copied to a temporary folder, returned with
/// it): checking a spool must not run recovery on it, take its lock or write to it.
pub fn open_copy(dir: &Path) -> (tempfile::TempDir, spool::Spool) {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, copy.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let s =
        spool::Spool::open_consumers(copy.path(), spool::Options::default(), &["devo_1"]).unwrap();
    (copy, s)
}

/// Reads every event still in the spool (from the oldest segment, ignoring the ack) and checks
/// that each event's sequence number equals its simulator index: the spool holds the
/// simulator's sequence once each, in order, with no duplicate and no gap.
pub fn check_spool_is_exact_prefix(env: &Env) -> SpoolState {
    let dir = env.spool_dir();
    if !dir.exists() {
        return SpoolState {
            events: 0,
            unacked: 0,
        };
    }
    let (_copy, s) = open_copy(&dir);
    let unacked = s.backlog();
    let mut n = 0;
    for_each_spooled(&s, |seq, e| {
        let v: serde_json::Value = serde_json::from_slice(e).unwrap();
        let i = okta::index_of(v["uuid"].as_str().unwrap()).unwrap();
        assert_eq!(seq, i, "spool sequence {seq} holds event {i}");
        assert_eq!(std::str::from_utf8(e).unwrap(), env.okta.event(i));
        n += 1;
    });
    SpoolState { events: n, unacked }
}

/// Calls `f` with every event still in a spool's files, from the oldest segment on (acked or
/// not), and its sequence number; asserts that no frame is corrupt.
pub fn for_each_spooled(s: &spool::Spool, mut f: impl FnMut(u64, &[u8])) {
    let mut segs: Vec<u64> = std::fs::read_dir(s.dir())
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".seg")?
                .parse()
                .ok()
        })
        .collect();
    segs.sort();
    let Some(&oldest) = segs.first() else {
        return;
    };
    let mut r = s.reader_for(0);
    r.seek(spool::Position {
        seq: 0,
        segment: oldest,
        offset: 0,
    });
    while let Some(frame) = r.next_frame().unwrap() {
        for (seq, e) in frame.events() {
            f(seq, e);
        }
    }
    assert_eq!(r.corrupt_frames(), 0);
}

/// `program` run as root: directly when the tests run as root, else through `sudo -n`.
pub fn as_root(program: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", program]);
        c
    }
}

/// An edit of a config text that fails the test when it would change nothing (the template
/// moved on), instead of silently testing the unedited config.
pub trait Edit {
    /// `self` with every `from` replaced by `to`; panics if there is no `from`.
    fn edit(&self, from: &str, to: &str) -> String;
}

impl Edit for str {
    #[track_caller]
    fn edit(&self, from: &str, to: &str) -> String {
        assert!(
            self.contains(from),
            "the edit found no {from:?} in the config text:\n{self}"
        );
        self.replace(from, to)
    }
}
