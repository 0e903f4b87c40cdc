//! The outputs besides `devo_platform`: `relay` (plain TCP), `devo_http` (a real HTTP server on
//! 127.0.0.1 that injects a 500 and a 400) and `console`, each end to end through the real
//! binary, and several outputs side by side with their own ack positions.

use crate::harness::*;
use okta_collector::sim::okta;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A relay stand-in: accepts plain TCP connections on 127.0.0.1 and keeps every line.
#[derive(Clone)]
pub(crate) struct Relay {
    lines: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Relay {
    pub(crate) fn start(port: u16) -> Relay {
        Relay::start_at(([127, 0, 0, 1], port).into())
    }

    fn start_at(addr: std::net::SocketAddr) -> Relay {
        let listener = TcpListener::bind(addr).unwrap();
        let relay = Relay {
            lines: Arc::default(),
        };
        let lines = relay.lines.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let lines = lines.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn);
                    loop {
                        let mut line = Vec::new();
                        match r.read_until(b'\n', &mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line.ends_with(b"\n") => lines.lock().unwrap().push(line),
                            // A line cut by a dropped connection is not a delivery.
                            Ok(_) => return,
                        }
                    }
                });
            }
        });
        relay
    }

    pub(crate) fn lines(&self) -> Vec<Vec<u8>> {
        self.lines.lock().unwrap().clone()
    }
}

fn relay_output(name: &str, port: u16) -> String {
    format!(
        "  {name}:\n    type: relay\n    config:\n      address: 127.0.0.1\n      port: {port}\n      hostname: {HOSTNAME}\n"
    )
}

/// Inserts `extra` output definitions after the harness's `devo_1` output.
fn with_outputs(env: &Env, extra: &str) -> String {
    env.config_text("")
        .edit("inputs:\n", &format!("{extra}inputs:\n"))
}

/// The harness's config with `outputs` (YAML under `outputs:`) instead of its `devo_1`.
fn only_outputs(env: &Env, outputs: &str) -> String {
    let text = env.config_text("");
    let start = text.find("  devo_1:").unwrap();
    let end = text.find("inputs:").unwrap();
    format!("{}{outputs}{}", &text[..start], &text[end..])
}

#[test]
fn relay_and_devo_platform_side_by_side_each_get_everything_at_their_own_pace() {
    const TOTAL: u64 = 6_000;
    let mut env = Env::with_backlog(TOTAL);
    let devo = env.start_devo();
    let relay_port = free_port();
    env.write_config_text(&with_outputs(&env, &relay_output("relay_1", relay_port)));
    let mut child = env.spawn();
    // The relay is down at first: Devo gets everything regardless, and the spool keeps the
    // events for the relay.
    assert!(
        wait_until(Duration::from_secs(60), || devo.count() >= TOTAL),
        "{}",
        env.logs()
    );
    let spool = env.spool_dir();
    assert!(spool.join("ack.devo_1.state").exists());
    assert!(spool.join("ack.relay_1.state").exists());
    let relay = Relay::start(relay_port);
    assert!(
        wait_until(Duration::from_secs(90), || relay.lines().len() as u64
            >= TOTAL),
        "relay got {}\n{}",
        relay.lines().len(),
        env.logs()
    );
    stop(&env, &mut child);
    let d = check_lines(&env, &devo.lines(), "auth.okta.system");
    d.assert_exactly_once(TOTAL);
    let r = check_lines(&env, &relay.lines(), "auth.okta.system");
    assert!(r.missing(TOTAL).is_empty());
    assert_eq!(
        r.duplicates(),
        0,
        "the relay's stream is plain TCP: no probation, no re-send"
    );
    let logs = env.logs();
    assert!(logs.contains("DevoSender(relay_1,127.0.0.1:"), "{logs}");
    assert!(logs.contains("Connected (plain TCP to a relay)"), "{logs}");
    // Everything delivered to both: nothing waits.
    let out = Command::new(bin())
        .args(["status", "--config"])
        .arg(env.path().join("config.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("output relay_1: 0 events waiting"), "{text}");
    assert!(text.contains("output devo_1: 0 events waiting"), "{text}");
}

/// A Devo HTTP ingestion stand-in: answers the statuses in `script` to the first requests
/// (then 200), and keeps the events of every request it answered 200 to.
#[derive(Clone, Default)]
struct HttpDevo {
    script: Arc<Mutex<Vec<u16>>>,
    requests: Arc<Mutex<Vec<Posted>>>,
}

/// One request: its path, the status answered, and its events.
type Posted = (String, u16, Vec<Vec<u8>>);

impl HttpDevo {
    fn start(script: Vec<u16>) -> (HttpDevo, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = HttpDevo {
            script: Arc::new(Mutex::new(script)),
            ..HttpDevo::default()
        };
        let server = me.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let server = server.clone();
                std::thread::spawn(move || server.serve(conn));
            }
        });
        (me, port)
    }

    /// Serves keep-alive requests on one connection until it closes.
    fn serve(&self, conn: std::net::TcpStream) {
        let mut w = conn.try_clone().unwrap();
        let mut r = BufReader::new(conn);
        loop {
            let mut request_line = String::new();
            if r.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let mut len = 0usize;
            let mut gzip = false;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                let h = h.trim_end().to_ascii_lowercase();
                if h.is_empty() {
                    break;
                }
                if let Some(v) = h.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if h == "content-encoding: gzip" {
                    gzip = true;
                }
            }
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).unwrap();
            assert!(gzip, "batches are gzip-compressed");
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut text)
                .unwrap();
            let path = request_line.split_whitespace().nth(1).unwrap().to_string();
            let status = {
                let mut s = self.script.lock().unwrap();
                if s.is_empty() { 200 } else { s.remove(0) }
            };
            let events = text
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            self.requests.lock().unwrap().push((path, status, events));
            let reason = if status == 200 { "OK" } else { "Injected" };
            write!(w, "HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n").unwrap();
        }
    }

    /// Events of the requests answered 200.
    fn accepted(&self) -> Vec<Vec<u8>> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s, _)| *s == 200)
            .flat_map(|(_, _, e)| e.clone())
            .collect()
    }
}

#[test]
fn devo_http_retries_a_500_and_sets_a_400_batch_aside_with_nothing_lost() {
    const TOTAL: u64 = 3_000;
    const DEVO_TOKEN: &str = "a5370g9e8f7d7edf9dHTTPsecret42";
    let mut env = Env::with_backlog(TOTAL);
    // The first request fails with a 500 (retried); the third is refused with a 400.
    let (http, port) = HttpDevo::start(vec![500, 200, 400]);
    let metrics = format!("127.0.0.1:{}", free_port());
    env.write_config_text(
        &only_outputs(
            &env,
            &format!(
                "  http_1:\n    type: devo_http\n    config:\n      url: http://127.0.0.1:{port}\n      domain: acme\n      token: {DEVO_TOKEN}\n      hostname: {HOSTNAME}\n      batch_bytes: 65536\n"
            ),
        )
        .edit(
            "  log_level: info\n",
            &format!("  log_level: info\n  metrics_listen: {metrics}\n"),
        ),
    );
    let mut child = env.spawn();
    let rejected_dir = env.path().join("data/rejected/http_1");
    let rejected = || -> Vec<Vec<u8>> {
        let Ok(dir) = std::fs::read_dir(&rejected_dir) else {
            return Vec::new();
        };
        dir.flat_map(|e| {
            let t = std::fs::read(e.unwrap().path()).unwrap();
            t.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
    };
    assert!(
        wait_until(Duration::from_secs(60), || {
            (http.accepted().len() + rejected().len()) as u64 >= TOTAL
        }),
        "{}",
        env.logs()
    );
    // The set-aside batch is not counted as sent.
    let sent = r#"okta_collector_events_sent_total{service="logs",table="auth.okta.system",output="http_1"}"#;
    let accepted = http.accepted().len() as f64;
    let counted = wait_until(Duration::from_secs(10), || {
        crate::observability::parse(&crate::observability::get(&metrics, "/metrics").1)
            .get(sent)
            .copied()
            == Some(accepted)
    });
    assert!(
        counted,
        "{}",
        crate::observability::get(&metrics, "/metrics").1
    );
    stop(&env, &mut child);
    let requests = http.requests.lock().unwrap().clone();
    for (path, _, _) in &requests {
        assert_eq!(
            path,
            &format!("/stream/acme/token!{DEVO_TOKEN}/{HOSTNAME}/auth.okta.system")
        );
    }
    let (refused, failed) = (&requests[2], &requests[0]);
    assert_eq!((failed.1, refused.1), (500, 400));
    // The 500's batch was sent again whole and taken.
    assert_eq!(requests[1].2, failed.2);
    let mut counts = std::collections::HashMap::new();
    let kept = rejected();
    assert_eq!(kept, refused.2, "the refused batch is kept, byte for byte");
    for e in http.accepted().iter().chain(&kept) {
        let v: serde_json::Value = serde_json::from_slice(e).unwrap();
        let i = okta::index_of(v["uuid"].as_str().unwrap()).unwrap();
        assert_eq!(std::str::from_utf8(e).unwrap(), env.okta.event(i));
        *counts.entry(i).or_insert(0u32) += 1;
    }
    assert_eq!(
        counts.len() as u64,
        TOTAL,
        "every event arrived or was set aside"
    );
    assert!(counts.values().all(|c| *c == 1), "and only once");
    let logs = env.logs();
    assert!(
        logs.contains(&format!(
            "{} events of auth.okta.system were rejected (HTTP 400",
            refused.2.len()
        )),
        "{logs}"
    );
    assert!(logs.contains("not delivered: HTTP 500"), "{logs}");
    assert!(logs.contains("token!***"), "{logs}");
    assert!(
        !logs.contains(DEVO_TOKEN),
        "the ingestion token never shows in logs"
    );
}

#[test]
fn console_writes_the_syslog_lines_to_stdout() {
    const TOTAL: u64 = 1_500;
    let env = Env::with_backlog(TOTAL);
    let config = env.write_config_text(&only_outputs(
        &env,
        &format!("  debug:\n    type: console\n    config:\n      hostname: {HOSTNAME}\n"),
    ));
    let out_path = env.path().join("stdout.txt");
    let mut child = Command::new(bin())
        .args(["run", "--config"])
        .arg(&config)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(env.path().join("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    let lines = || -> Vec<Vec<u8>> {
        std::fs::read(&out_path)
            .unwrap()
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    };
    assert!(wait_until(Duration::from_secs(30), || lines().len() as u64 >= TOTAL));
    signal(&child, 15);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    let d = check_lines(&env, &lines(), "auth.okta.system");
    d.assert_exactly_once(TOTAL);
    let err = std::fs::read_to_string(env.path().join("stderr.txt")).unwrap();
    assert!(err.contains("Stopped cleanly."), "{err}");
}

/// A network namespace joined to this one by a veth pair, removed on drop. Cutting the link
/// makes a real black hole: packets to the far side get no answer and no reset.
struct Netns {
    name: String,
    host_if: String,
    far_ip: String,
}

impl Netns {
    fn new() -> Netns {
        let n = std::process::id() % 200 + 20;
        let ns = Netns {
            name: format!("okc-bh-{}", std::process::id()),
            host_if: format!("okcbh{n}h"),
            far_ip: format!("10.251.{n}.2"),
        };
        let peer = format!("okcbh{n}n");
        let run = |args: &[&str]| {
            let st = as_root("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?} failed (the test needs root)");
        };
        let _ = as_root("ip").args(["netns", "del", &ns.name]).status();
        let _ = as_root("ip").args(["link", "del", &ns.host_if]).status();
        run(&["netns", "add", &ns.name]);
        run(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        run(&["link", "set", &peer, "netns", &ns.name]);
        run(&[
            "addr",
            "add",
            &format!("10.251.{n}.1/30"),
            "dev",
            &ns.host_if,
        ]);
        run(&["link", "set", &ns.host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns.name, "ip"];
            all.extend_from_slice(args);
            run(&all);
        };
        inside(&["addr", "add", &format!("10.251.{n}.2/30"), "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        ns
    }

    /// Cuts (false) or restores (true) the link.
    fn link(&self, up: bool) {
        let st = as_root("ip")
            .args(["link", "set", &self.host_if, if up { "up" } else { "down" }])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// A relay listening on the far side, port `port`.
    fn relay(&self, port: u16) -> Relay {
        let path = std::path::PathBuf::from(format!("/var/run/netns/{}", self.name));
        let addr: std::net::SocketAddr = format!("{}:{port}", self.far_ip).parse().unwrap();
        std::thread::spawn(move || {
            crate::sys::enter_netns(&path).expect("setns (the test needs root)");
            Relay::start_at(addr)
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = as_root("ip").args(["link", "del", &self.host_if]).status();
        let _ = as_root("ip").args(["netns", "del", &self.name]).status();
    }
}

#[test]
fn a_black_holed_relay_is_detected_by_tcp_user_timeout_and_nothing_is_lost() {
    let total = 40_000;
    let mut env = Env::new(okta::Options {
        total,
        initial: 2_000,
        rate_per_sec: 1_000.0,
        page_delay: Duration::from_millis(30),
        ..Default::default()
    });
    let ns = Netns::new();
    let relay = ns.relay(13000);
    env.write_config_text(&only_outputs(
        &env,
        &format!(
            "  relay_1:\n    type: relay\n    config:\n      address: {}\n      hostname: {HOSTNAME}\n",
            ns.far_ip
        ),
    ));
    let mut child = env.spawn();
    assert!(
        wait_until(Duration::from_secs(30), || relay.lines().len() >= 5_000),
        "{}",
        env.logs()
    );
    // The relay vanishes without a word: nothing more is acknowledged, so nothing more may
    // count as delivered; TCP_USER_TIMEOUT (30 s) ends the connection.
    ns.link(false);
    let at_cut = relay.lines().len();
    let detected = wait_until(Duration::from_secs(50), || {
        env.logs().contains("Connection lost")
    });
    ns.link(true);
    assert!(detected, "{}", env.logs());
    assert!(
        relay.lines().len() < total as usize,
        "the cut happened mid-stream ({at_cut})"
    );
    let all = wait_until(Duration::from_secs(90), || {
        relay.lines().len() >= total as usize
            && check_lines(&env, &relay.lines(), "auth.okta.system")
                .missing(total)
                .is_empty()
    });
    stop(&env, &mut child);
    let d = check_lines(&env, &relay.lines(), "auth.okta.system");
    eprintln!(
        "black hole: {} lines before the cut, {} duplicates after it",
        at_cut,
        d.duplicates()
    );
    assert!(all, "{} missing\n{}", d.missing(total).len(), env.logs());
}
