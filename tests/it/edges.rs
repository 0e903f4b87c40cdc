//! Promises at the edges (issue 24): a server certificate that must not abort the process,
//! inputs that must stay bounded (a cursor's uuid list, a snapshot listing), files that must be
//! refused (a state import that is not a regular file, an ack past the spool's end), and the
//! metrics port held by slow clients. Each against the real binary.

use crate::harness::*;
use futures_rustls::rustls;
use okta_collector::config::ServiceKind;
use okta_collector::sim::okta;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// How many of `lines` carry `tag`.
fn tagged(lines: &[Vec<u8>], tag: &str) -> usize {
    lines
        .iter()
        .filter(|l| {
            okta_collector::forward::syslog::parse_line(l).is_some_and(|(_, t, _)| t == tag)
        })
        .count()
}

/// A certificate resolver that presents a fixed chain as it is, however malformed: rustls
/// does not look at its own certificate, the peer does.
#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A TLS server on `port` that presents `cert` (DER, signed or not) with `key`'s signatures,
/// on a thread of its own, for as long as the test runs.
fn serve_certificate(port: u16, cert: Vec<u8>, key: &rcgen::KeyPair) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let signer = provider.key_provider.load_private_key(key_der).unwrap();
    let certified = rustls::sign::CertifiedKey::new(vec![cert.into()], signer);
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(Arc::new(certified))));
    let config = Arc::new(config);
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                if let Ok(mut conn) = rustls::ServerConnection::new(config) {
                    while conn.is_handshaking() {
                        if conn.complete_io(&mut stream).is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
}

/// A self-signed certificate whose `notBefore` UTCTime holds `time` (13 bytes) instead.
fn certificate_with_time(key: &rcgen::KeyPair, time: &[u8; 13]) -> Vec<u8> {
    let cert = rcgen::CertificateParams::new(vec!["devo.example".into()])
        .unwrap()
        .self_signed(key)
        .unwrap();
    let mut der = cert.der().to_vec();
    let at = der
        .windows(2)
        .position(|w| w == [0x17, 0x0d])
        .expect("a UTCTime in the certificate");
    der[at + 2..at + 15].copy_from_slice(time);
    der
}

#[test]
fn a_server_certificate_with_a_multi_byte_character_in_its_time_does_not_abort() {
    let mut env = Env::with_backlog(20);
    let key = rcgen::KeyPair::generate().unwrap();
    // '0', 'é' (two bytes), then ten digits: the two-digit year cuts the 'é' in half.
    let cert = certificate_with_time(&key, b"0\xc3\xa90101000000");
    serve_certificate(env.devo_port, cert, &key);
    env.write_config("");

    let (code, stdout, stderr) = env.validate();
    assert_eq!(
        code,
        Some(1),
        "validate ends with its own exit code, not an abort\n{stdout}{stderr}"
    );
    assert!(
        stdout.contains("unreadable: invalid certificate: a time of the wrong form"),
        "{stdout}"
    );

    let mut child = env.spawn();
    assert!(
        env.wait_for_more(
            "unreadable: invalid certificate",
            2,
            Duration::from_secs(30)
        ),
        "{}",
        env.logs()
    );
    let running = child.try_wait().unwrap().is_none();
    stop(&env, &mut child);
    assert!(running, "the collector is still running\n{}", env.logs());
}

#[test]
fn events_sharing_one_timestamp_keep_the_cursor_bounded_and_exact() {
    // Three pages of 1,000 events published in the same millisecond, each with a 1 KB uuid:
    // unbounded, the cursor copied into every frame would hold 3 MB of uuids.
    let mut env = Env::with_backlog(5);
    let published = okta_collector::time::format_millis(
        std::time::SystemTime::now() - Duration::from_secs(3600),
    );
    for page in 0..3 {
        let events: Vec<String> = (0..1000)
            .map(|i| {
                format!(
                    r#"{{"uuid":"{}{page:03}{i:04}","published":"{published}","eventType":"user.session.start"}}"#,
                    "u".repeat(1000)
                )
            })
            .collect();
        let next = format!(
            "{}/api/v1/logs?after=shared{page}&limit=1000",
            env.okta.url()
        );
        env.okta.inject(
            ServiceKind::Logs,
            okta::Fault::Raw(
                200,
                vec![
                    ("content-type".into(), "application/json".into()),
                    ("link".into(), format!("<{next}>; rel=\"next\"")),
                ],
                format!("[{}]", events.join(",")).into_bytes(),
            ),
        );
    }
    let devo = env.start_devo();
    env.write_config("");
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(60), || devo.count() >= 3000);
    stop(&env, &mut child);
    let logs = env.logs();
    assert!(all, "{} delivered", devo.count());
    assert!(
        logs.contains(&format!(
            "More events share the timestamp {published} than the cursor keeps uuids of"
        )),
        "the bound is said"
    );
    // The cursor stored with the last frame is bounded: no uuid over 64 bytes is kept.
    let (_copy, spool) = open_copy(&env.spool_dir());
    let cursor = spool.cursor().unwrap();
    assert!(
        cursor.len() < 45_000,
        "the cursor is {} bytes",
        cursor.len()
    );
    let c: serde_json::Value = serde_json::from_slice(&cursor).unwrap();
    assert_eq!(c["last_timestamp"], published.as_str());
    assert!(
        c["uuid_list"].as_array().unwrap().is_empty(),
        "no 1 KB uuid is kept"
    );
}

#[test]
fn a_snapshot_listing_larger_than_the_spool_bound_is_rolled_back_and_the_others_go_on() {
    let mut env = Env::new(okta::Options {
        total: 50,
        initial: 50,
        objects: okta_collector::sim::inventory::Counts {
            apps: 4_000,
            ..Default::default()
        },
        ..Default::default()
    });
    let devo = env.start_devo();
    env.config()
        .spool_bound(1 << 20)
        .service(
            "apps",
            "{request_period_in_seconds: 3600, requests_limits: []}",
        )
        .write();
    let mut child = env.spawn();
    let rolled = wait_until(Duration::from_secs(60), || {
        env.logs().contains("the listing is rolled back")
    });
    let logs_delivered = wait_until(Duration::from_secs(30), || {
        tagged(&devo.lines(), "auth.okta.system") >= 50
    });
    let running = child.try_wait().unwrap().is_none();
    stop(&env, &mut child);
    let logs = env.logs();
    assert!(rolled, "{logs}");
    assert!(
        logs.lines()
            .any(|l| l.contains("PullError 302") && l.contains("the listing is rolled back after"))
            && logs.contains("more than globals.spool.max_bytes_per_table (1048576)"),
        "{logs}"
    );
    assert!(logs_delivered, "the System Log goes on\n{logs}");
    assert!(running, "{logs}");
    let apps = tagged(&devo.lines(), "auth.okta.apps");
    assert_eq!(apps, 0, "nothing of the listing is sent");
    // Nothing of it stays on disk either.
    let bytes: u64 = std::fs::read_dir(env.path().join("data/spool/apps"))
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(bytes < 1 << 20, "{bytes} bytes left in the apps spool");
}

#[test]
fn a_devo_state_file_that_is_a_fifo_or_a_link_to_a_device_is_refused_at_once() {
    let env = Env::with_backlog(5);
    let state = env.with_devo_persistence();
    for make in ["fifo", "zero"] {
        let _ = std::fs::remove_file(&state);
        match make {
            "fifo" => assert!(
                std::process::Command::new("mkfifo")
                    .arg(&state)
                    .status()
                    .unwrap()
                    .success()
            ),
            _ => std::os::unix::fs::symlink("/dev/zero", &state).unwrap(),
        }
        let mut child = std::process::Command::new(bin())
            .args(["validate", "--config"])
            .arg(env.path().join("config.yaml"))
            .current_dir(env.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let exited = wait_until(Duration::from_secs(20), || {
            child.try_wait().unwrap().is_some()
        });
        if !exited {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(exited, "{make}: validate hung");
        assert!(
            stdout.contains("not a regular file"),
            "{make}: the file is refused, naming why\n{stdout}"
        );
    }
}

/// The status line of one `GET path` (empty if none came within 3 s).
fn probe(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let mut got = vec![0u8; 256];
    let n = s.read(&mut got).unwrap_or(0);
    String::from_utf8_lossy(&got[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn slow_clients_holding_every_metrics_slot_do_not_shut_out_the_health_probes() {
    use std::io::Write;
    let mut env = Env::with_backlog(20);
    let addr = format!("127.0.0.1:{}", free_port());
    env.config().global("metrics_listen", &addr).write();
    let _devo = env.start_devo();
    let mut child = env.spawn();
    assert!(wait_until(Duration::from_secs(20), || probe(
        &addr, "/healthz"
    )
    .contains(" 200 ")));
    // 64 clients that send one byte of a request head every 2 s, reconnecting when cut off,
    // for 14 s: a per-read timeout alone lets them hold every slot for good.
    let stop_at = std::time::Instant::now() + Duration::from_secs(14);
    let slow: Vec<_> = (0..64)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                while std::time::Instant::now() < stop_at {
                    let Ok(mut s) = std::net::TcpStream::connect(&addr) else {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    for b in b"GET /metrics HTTP/1.1\r\nX: ".iter().cycle() {
                        if std::time::Instant::now() >= stop_at || s.write_all(&[*b]).is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_secs(2));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    // Probes every second while the slow clients hold on: every one is answered.
    let mut answers = Vec::new();
    while std::time::Instant::now() + Duration::from_secs(1) < stop_at {
        answers.push(probe(&addr, "/healthz"));
        answers.push(probe(&addr, "/readyz"));
        std::thread::sleep(Duration::from_secs(1));
    }
    for t in slow {
        t.join().unwrap();
    }
    let running = child.try_wait().unwrap().is_none();
    stop(&env, &mut child);
    assert!(running, "{}", env.logs());
    assert!(answers.len() >= 10, "{answers:?}");
    assert!(
        answers.iter().all(|a| a.starts_with("HTTP/1.1 200")),
        "every probe is answered 200 while slow clients hold the other slots: {answers:?}"
    );
}

#[test]
fn a_trace_log_file_beside_the_config_does_not_feed_the_watcher_its_own_writes() {
    let mut env = Env::with_backlog(50);
    let _devo = env.start_devo();
    let text = env.config_text("").edit(
        "  log_level: info\n",
        "  log_level: trace\n  log_file: okc.log\n",
    );
    env.write_config_text(&text);
    let mut child = env.spawn();
    let log = env.path().join("okc.log");
    assert!(wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("The data is up to date!"))
    }));
    let before = std::fs::metadata(&log).unwrap().len();
    std::thread::sleep(Duration::from_secs(4));
    let grown = std::fs::metadata(&log).unwrap().len() - before;
    let running = child.try_wait().unwrap().is_none();
    stop(&env, &mut child);
    assert!(running);
    // Four idle seconds at trace: a few cycles' lines, not a loop of the watcher's own.
    assert!(
        grown < 256 << 10,
        "the log grew by {grown} bytes in 4 s:\n{}",
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn validate_checks_what_run_checks_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let mut env = Env::with_backlog(5);
    let _devo = env.start_devo();
    // Everything fine: the local checks say OK.
    env.write_config("");
    let (code, out, err) = env.validate();
    let out = out + &err;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("[ OK ] data_dir "), "{out}");
    // A data_dir others can write in: `run` refuses it, so `validate` does.
    std::fs::set_permissions(
        env.path().join("data"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let (code, out, err) = env.validate();
    let out = out + &err;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("[FAIL] data_dir") && l.contains("chmod")),
        "{out}"
    );
    std::fs::set_permissions(
        env.path().join("data"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    // A metrics address already taken, and a log file that cannot be opened.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    env.config()
        .global("metrics_listen", addr)
        .global("log_file", "no/such/folder/okc.log")
        .write();
    let (code, out, err) = env.validate();
    let out = out + &err;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("[FAIL] metrics_listen")
            && l.contains(&format!("cannot listen on {addr}"))),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("[FAIL] log_file") && l.contains("no/such/folder/okc.log")),
        "{out}"
    );
    // And `run` does stop on the same address, saying what fixes it.
    let mut child = env.spawn();
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert!(!status.success());
}

#[test]
fn a_tab_in_the_config_is_named_as_a_tab() {
    let env = Env::new(okta::Options::default());
    let text = env
        .config_text("")
        .edit("  data_dir: data\n", "\tdata_dir: data\n");
    env.write_config_text(&text);
    let (code, out, err) = env.validate();
    let out = out + &err;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("line 3 is indented with a tab: YAML indents with spaces only"),
        "{out}"
    );
}
