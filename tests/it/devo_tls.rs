//! Devo's certificates as they are: RSA CAs, SHA-1 signatures, 1024-bit signers, X.509 v1
//! client and server certificates, made with the openssl command and met by `openssl
//! s_server` (OpenSSL is what terminates TLS in front of most receivers); each refusal says
//! what the server presented and which check failed, and `legacy_signatures` opts in.

use crate::harness::*;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (tests/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed RSA CA of `bits`, signed with `md`: `<stem>.crt`, `<stem>.key` in `dir`.
fn ca(dir: &Path, stem: &str, cn: &str, bits: u32, md: &str) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            &format!("rsa:{bits}"),
            "-nodes",
            "-keyout",
            &format!("{stem}.key"),
            "-out",
            &format!("{stem}.crt"),
            "-subj",
            &format!("/O=LogTrust/CN={cn}"),
            "-days",
            "30",
            &format!("-{md}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
        dir,
    );
}

/// A leaf signed by CA `ca` with `md`: X.509 v1 when `ext` is `None`, else v3 with those
/// extension lines. `<stem>.crt`, `<stem>.key`.
fn leaf(dir: &Path, stem: &str, ca: &str, cn: &str, bits: u32, md: &str, ext: Option<&str>) {
    openssl(
        &[
            "req",
            "-new",
            "-newkey",
            &format!("rsa:{bits}"),
            "-nodes",
            "-keyout",
            &format!("{stem}.key"),
            "-out",
            &format!("{stem}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
        dir,
    );
    let serial = fastrand::u32(1..u32::MAX).to_string();
    let mut args = vec![
        "x509".to_string(),
        "-req".into(),
        "-in".into(),
        format!("{stem}.csr"),
        "-CA".into(),
        format!("{ca}.crt"),
        "-CAkey".into(),
        format!("{ca}.key"),
        "-set_serial".into(),
        serial,
        "-days".into(),
        "30".into(),
        format!("-{md}"),
        "-out".into(),
        format!("{stem}.crt"),
    ];
    if let Some(ext) = ext {
        std::fs::write(dir.join(format!("{stem}.ext")), ext).unwrap();
        args.extend(["-extfile".into(), format!("{stem}.ext")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(&args, dir);
}

const SERVER_EXT: &str = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n";
const CLIENT_EXT: &str = "extendedKeyUsage=clientAuth\n";

/// `openssl s_server` on `port` with `server`'s certificate, requiring a client certificate
/// from `client_ca`; what it receives is collected line by line.
struct SServer {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl SServer {
    fn start(dir: &Path, port: u16, server: &str, client_ca: &str) -> SServer {
        let mut child = Command::new("openssl")
            .args(["s_server", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .args([
                "-cert",
                &format!("{server}.crt"),
                "-key",
                &format!("{server}.key"),
            ])
            .args(["-CAfile", &format!("{client_ca}.crt")])
            .args(["-Verify", "3", "-verify_return_error", "-quiet"])
            // The server's own SHA-1 or 1024-bit certificate is loaded (the client judges).
            .args(["-cipher", "DEFAULT@SECLEVEL=0"])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("s_server.err")).unwrap())
            .spawn()
            .expect("openssl s_server");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                l.lock().unwrap().push(line);
            }
        });
        assert!(
            wait_until(Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            }),
            "s_server did not listen: {}",
            std::fs::read_to_string(dir.join("s_server.err")).unwrap_or_default()
        );
        SServer { child, lines }
    }

    fn count(&self, tag: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(tag))
            .count()
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The harness's config, its output's files replaced by `chain`, `cert`, `key` (relative to
/// the test folder) and `extra` lines added under the output's config.
fn config(env: &Env, chain: &str, cert: &str, key: &str, extra: &str) -> PathBuf {
    let text = env
        .config_text("")
        .edit("certs/chain.crt", chain)
        .edit("certs/domain.crt", cert)
        .edit("certs/domain.key", key);
    let anchor = format!("      hostname: {HOSTNAME}\n");
    assert_eq!(text.matches(&anchor).count(), 1);
    env.write_config_text(&text.edit(&anchor, &format!("{anchor}{extra}")))
}

fn env() -> Env {
    Env::with_backlog(40)
}

#[test]
fn a_v1_client_certificate_delivers_to_openssl() {
    let mut env = env();
    let d = env.path().to_path_buf();
    ca(&d, "ca", "logtrustCA", 4096, "sha256");
    leaf(
        &d,
        "server",
        "ca",
        "localhost",
        2048,
        "sha256",
        Some(SERVER_EXT),
    );
    // Devo's older client certificates: v1, no extensions.
    leaf(&d, "client", "ca", "okta-collector", 2048, "sha256", None);
    let info = std::fs::read_to_string(d.join("client.crt")).unwrap();
    assert!(info.contains("BEGIN CERTIFICATE"));
    let server = SServer::start(&d, env.devo_port, "server", "ca");
    config(&env, "ca.crt", "client.crt", "client.key", "");
    let (_, out, _) = env.validate();
    assert!(out.contains("[ OK ] output devo_1"), "{out}");
    let mut child = env.spawn();
    let tag = "auth.okta.system";
    let all = wait_until(Duration::from_secs(60), || server.count(tag) >= 40);
    stop(&env, &mut child);
    assert!(
        all,
        "{} of 40 lines; log:\n{}",
        server.count(tag),
        env.logs()
    );
    assert_eq!(server.count(tag), 40);
}

#[test]
fn client_key_problems_are_named() {
    let env = env();
    let d = env.path().to_path_buf();
    ca(&d, "ca", "userCA", 2048, "sha256");
    leaf(
        &d,
        "small",
        "ca",
        "okta-collector",
        1024,
        "sha256",
        Some(CLIENT_EXT),
    );
    leaf(&d, "other", "ca", "someone-else", 2048, "sha256", None);
    leaf(&d, "mine", "ca", "okta-collector", 2048, "sha256", None);

    config(&env, "ca.crt", "small.crt", "small.key", "");
    let (_, out, _) = env.validate();
    assert!(
        out.contains("an RSA key of 1024 bits; keys of 2048 to 4096 bits can sign"),
        "{out}"
    );
    config(&env, "ca.crt", "mine.crt", "other.key", "");
    let (_, out, _) = env.validate();
    assert!(
        out.contains("other.key is not the key of the certificate ")
            && out.contains("mine.crt (subject")
            && out.contains("subject \"CN=okta-collector\"")
            && out.contains("v1"),
        "{out}"
    );
}

/// `validate` against `openssl s_server` serving `server` (signed by CA `server_ca`), with
/// the collector's chain `server_ca` and a v3 client certificate, and `extra` config lines.
fn against(env: &Env, server: &str, server_ca: &str, extra: &str) -> String {
    let d = env.path();
    if !d.join("client.crt").exists() {
        ca(d, "client_ca", "userAWSUSCA", 2048, "sha256");
        leaf(
            d,
            "client",
            "client_ca",
            "okta-collector",
            2048,
            "sha256",
            Some(CLIENT_EXT),
        );
    }
    let _server = SServer::start(d, env.devo_port, server, "client_ca");
    config(
        env,
        &format!("{server_ca}.crt"),
        "client.crt",
        "client.key",
        extra,
    );
    env.validate().1
}

#[test]
fn a_sha1_signed_balancer_is_refused_naming_sha1_unless_legacy_signatures() {
    let env = env();
    let d = env.path();
    ca(d, "ca", "logtrustCA", 4096, "sha1");
    leaf(
        d,
        "server",
        "ca",
        "localhost",
        2048,
        "sha1",
        Some(SERVER_EXT),
    );
    let out = against(&env, "server", "ca", "");
    assert!(out.contains("[FAIL] output devo_1"), "{out}");
    assert!(
        out.contains(
            "signature algorithm: \"localhost\" is signed with sha1WithRSAEncryption (SHA-1), which WebPKI refuses; legacy_signatures: true accepts it"
        ),
        "{out}"
    );
    assert!(
        out.contains("the server presented [0] subject \"CN=localhost\", SAN [IP:127.0.0.1, DNS:localhost], issuer \"O=LogTrust, CN=logtrustCA\", signed sha1WithRSAEncryption, key RSA 2048 bits, v3, valid "),
        "{out}"
    );
    let out = against(&env, "server", "ca", "      legacy_signatures: true\n");
    assert!(out.contains("[ OK ] output devo_1"), "{out}");
    assert!(
        out.contains("[WARN] outputs.devo_1.config.legacy_signatures is true"),
        "{out}"
    );
}

#[test]
fn a_1024_bit_signer_is_refused_naming_its_size_unless_legacy_signatures() {
    let env = env();
    let d = env.path();
    ca(d, "ca", "oldCA", 1024, "sha256");
    leaf(
        d,
        "server",
        "ca",
        "localhost",
        2048,
        "sha256",
        Some(SERVER_EXT),
    );
    let out = against(&env, "server", "ca", "");
    assert!(
        out.contains("\"oldCA\" has an RSA key of 1024 bits")
            && out.contains("legacy_signatures: true accepts it"),
        "{out}"
    );
    let out = against(&env, "server", "ca", "      legacy_signatures: true\n");
    assert!(out.contains("[ OK ] output devo_1"), "{out}");
}

#[test]
fn a_v1_server_certificate_says_v1() {
    let env = env();
    let d = env.path();
    ca(d, "ca", "logtrustCA", 2048, "sha256");
    leaf(d, "server", "ca", "localhost", 2048, "sha256", None);
    let out = against(&env, "server", "ca", "      check_hostname: false\n");
    assert!(
        out.contains(
            "version: the certificate is X.509 v1; WebPKI verifies v3 server certificates only"
        ),
        "{out}"
    );
}

#[test]
fn a_name_mismatch_shows_the_presented_certificate_in_validate_and_the_log() {
    let mut env = env();
    okta_collector::sim::certs::generate_shaped(
        &env.path().join("certs"),
        "test CA",
        &okta_collector::sim::certs::Shape {
            server_names: vec!["collector-us.devo.io".into()],
            server_ip: false,
            server_client_auth_only: false,
        },
    )
    .unwrap();
    let _devo = env.start_devo();
    env.write_config("");
    let expect = [
        "host name: the certificate is not for 127.0.0.1 (it names [DNS:collector-us.devo.io]); set server_name to a name it holds, or check_hostname: false",
        "the server presented [0] subject \"CN=collector-us.devo.io\", SAN [DNS:collector-us.devo.io], issuer \"CN=test CA\", signed ecdsa-with-SHA256, key EC P-256, v3, valid ",
        "EKU [serverAuth]",
    ];
    let (_, out, _) = env.validate();
    for e in expect {
        assert!(out.contains(e), "{e}\n{out}");
    }
    let mut child = env.spawn();
    let logged = wait_until(Duration::from_secs(20), || {
        expect.iter().all(|e| env.logs().contains(e))
    });
    stop(&env, &mut child);
    assert!(logged, "{}", env.logs());
}
