//! Interop with a real syslog server: Debian's rsyslog (imtcp + GnuTLS, client certificates
//! required, 1 MB messages) must parse the hostname, the tag (`programname`) and the event.

use crate::harness::*;
use okta_collector::sim::okta;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn rsyslog_with_client_certificates_receives_every_event_intact() {
    let rsyslogd = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let rsyslogd = rsyslogd
        .expect("rsyslogd is missing: apt-get install rsyslog rsyslog-gnutls (.ci/run does)");
    let total = 3_000;
    let env = Env::new(okta::Options {
        total,
        initial: total,
        ..Default::default()
    });
    let dir = env.path();
    let out_file = dir.join("rsyslog-out.log");
    let conf = format!(
        r#"global(maxMessageSize="1m" workDirectory="{dir}"
       defaultNetstreamDriverCAFile="{ca}" defaultNetstreamDriverCertFile="{cert}"
       defaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="fields" type="list") {{
  property(name="hostname") constant(value="\t") property(name="programname") constant(value="\t")
  property(name="msg" droplastlf="on") constant(value="\n")
}}
*.* action(type="omfile" file="{out}" template="fields")
"#,
        dir = dir.display(),
        ca = env.pki.ca.display(),
        cert = env.pki.server_cert.display(),
        key = env.pki.server_key.display(),
        port = env.devo_port,
        out = out_file.display(),
    );
    std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
    let check = Command::new(rsyslogd)
        .args(["-N1", "-f"])
        .arg(dir.join("rsyslog.conf"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "rsyslog rejects the config: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut rs = Command::new(rsyslogd)
        .args(["-n", "-f"])
        .arg(dir.join("rsyslog.conf"))
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("rsyslog.stderr")).unwrap())
        .spawn()
        .unwrap();
    let listening = wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", env.devo_port)).is_ok()
    });
    assert!(
        listening,
        "rsyslog did not listen: {}",
        std::fs::read_to_string(dir.join("rsyslog.stderr")).unwrap_or_default()
    );

    let mut env = env;
    env.write_config("");
    let mut child = env.spawn();
    let count = || {
        std::fs::read_to_string(&out_file)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let all = wait_until(Duration::from_secs(90), || count() >= total as usize);
    signal(&child, 15);
    let st = wait_exit(&mut child, Duration::from_secs(30));
    let _ = rs.kill();
    let _ = rs.wait();
    assert!(
        all,
        "rsyslog wrote {} of {total} lines\n{}",
        count(),
        env.logs()
    );
    assert!(st.success());
    let text = std::fs::read_to_string(&out_file).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut big = 0;
    for line in text.lines() {
        let mut f = line.splitn(3, '\t');
        let (host, prog, msg) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        assert_eq!(host, HOSTNAME);
        assert_eq!(prog, "auth.okta.system");
        let msg = msg.strip_prefix(' ').unwrap_or(msg);
        let v: serde_json::Value =
            serde_json::from_str(msg).unwrap_or_else(|e| panic!("{e}: {msg}"));
        let i = okta::index_of(v["uuid"].as_str().unwrap()).unwrap();
        assert_eq!(
            msg,
            env.okta.event(i),
            "event {i} altered by the trip through rsyslog"
        );
        if msg.len() > 8192 {
            big += 1;
        }
        assert!(seen.insert(i), "event {i} twice");
    }
    assert_eq!(seen.len(), total as usize);
    assert!(
        big >= 2,
        "events over rsyslog's 8 KB default were part of the run"
    );
}
