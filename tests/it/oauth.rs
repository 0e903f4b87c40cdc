//! OAuth 2.0 API Services app instead of an API token: `private_key_jwt` client assertions
//! (ES256 and RS256), DPoP proofs with Okta's nonce (rotated), tokens renewed before they
//! expire, and the errors a misconfigured app gives, against the simulator playing Okta's
//! token endpoint and checks.

use crate::harness::*;
use okta_collector::jose::AppKey;
use okta_collector::sim::{oauth, okta};
use std::time::Duration;

/// An env whose org has an app with the public key of `key_pem` (written 0600 as app.pem).
fn env_with_app(
    key_pem: &str,
    app: impl FnOnce(serde_json::Value) -> oauth::App,
    opts: okta::Options,
) -> Env {
    let (key, _) = AppKey::parse(key_pem).unwrap();
    let env = Env::new(okta::Options {
        oauth: Some(app(key.public_jwk())),
        ..opts
    });
    let p = env.path().join("app.pem");
    std::fs::write(&p, key_pem).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    env
}

fn app(jwk: serde_json::Value) -> oauth::App {
    oauth::App::new("0oa1b2c3d4e5f6g7h8i9", jwk, vec!["okta.logs.read".into()])
}

/// The harness's config with the oauth block (and `extra` lines in it) instead of the token.
fn write_oauth_config(env: &Env, extra: &str) {
    let text = env.config_text("");
    let line = format!("      api_token: \"{TOKEN}\"\n");
    assert_eq!(text.matches(&line).count(), 1);
    env.write_config_text(&text.edit(
        &line,
        &format!(
            "      oauth:\n        client_id: 0oa1b2c3d4e5f6g7h8i9\n        private_key_file: app.pem\n{extra}"
        ),
    ));
}

#[test]
fn a_backfill_across_token_expiries_with_dpop_and_nonce_rotation_loses_nothing() {
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let total = 40_000;
    let mut env = env_with_app(
        &key,
        |jwk| oauth::App {
            token_lifetime: Duration::from_secs(2),
            nonce_every: 2,
            api_nonce: true,
            ..app(jwk)
        },
        okta::Options {
            total,
            initial: total,
            page_delay: Duration::from_millis(150),
            ..Default::default()
        },
    );
    let devo = env.start_devo();
    write_oauth_config(&env, "");
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(90), || devo.count() >= total);
    stop(&env, &mut child);
    let logs = env.logs();
    assert!(all, "{} of {total}; log:\n{logs}", devo.count());
    let d = check_lines(&env, &devo.lines(), "auth.okta.system");
    assert!(d.missing(total).is_empty() && d.duplicates() == 0);
    let (issued, nonces, expired) = env.okta.oauth_figures().unwrap();
    assert!(
        issued >= 3,
        "{issued} tokens for a 6 s backfill of 2 s tokens"
    );
    assert!(nonces >= 2, "{nonces} nonces");
    assert_eq!(expired, 0, "a token was sent after it expired");
    assert!(
        !logs.contains("PRIVATE KEY") && !logs.contains("DPoP ey"),
        "{logs}"
    );
}

#[test]
fn validate_says_dpop_and_the_scopes_and_each_error_names_its_cause() {
    // RS256 with an RSA key (made by openssl: ring cannot generate RSA keys).
    let dir = tempfile::tempdir().unwrap();
    let rsa = dir.path().join("rsa.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&rsa)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = std::fs::read_to_string(&rsa).unwrap();
    let mut env = env_with_app(&key, app, okta::Options::default());
    let _devo = env.start_devo();
    write_oauth_config(&env, "");
    let (code, out, _) = env.validate();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("[ OK ] okta OAuth app: client 0oa1b2c3d4e5f6g7h8i9 has a DPoP-bound token (proofs on every call); scopes granted: okta.logs.read"),
        "{out}"
    );

    // dpop: false against an app that requires it.
    write_oauth_config(&env, "        dpop: false\n");
    let (_, out, _) = env.validate();
    assert!(
        out.contains("SetupError 100") && out.contains("invalid_dpop_proof: the app requires DPoP"),
        "{out}"
    );

    // A scope the app was not granted.
    write_oauth_config(&env, "        scopes: [okta.logs.read, okta.users.read]\n");
    let (_, out, _) = env.validate();
    assert!(
        out.contains("invalid_scope") && out.contains("okta.users.read"),
        "{out}"
    );

    // Another key than the registered one.
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    std::fs::write(env.path().join("app.pem"), other).unwrap();
    write_oauth_config(&env, "");
    let (code, out, _) = env.validate();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("invalid_client") && out.contains("the key is not registered"),
        "{out}"
    );
    assert!(!out.contains("PRIVATE KEY"));
}

#[test]
fn a_token_and_oauth_together_or_a_bad_key_are_config_errors() {
    let env = Env::new(okta::Options::default());
    std::fs::write(env.path().join("app.pem"), "not a key").unwrap();
    let text = env.config_text("").edit(
        &format!("      api_token: \"{TOKEN}\"\n"),
        &format!("      api_token: \"{TOKEN}\"\n      oauth:\n        client_id: 0oa1\n        private_key_file: app.pem\n"),
    );
    env.write_config_text(&text);
    let (code, out, _) = env.validate();
    assert_eq!(code, Some(1));
    let _ = out;
    let out = std::process::Command::new(bin())
        .args(["validate", "--config"])
        .arg(env.path().join("config.yaml"))
        .output()
        .unwrap();
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(err.contains("not both"), "{err}");
    write_oauth_config(&env, "");
    let out = std::process::Command::new(bin())
        .args(["validate", "--config"])
        .arg(env.path().join("config.yaml"))
        .output()
        .unwrap();
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("oauth.private_key_file") && err.contains("not a PEM private key"),
        "{err}"
    );
}

#[test]
fn the_demo_runs_the_whole_pipeline_as_an_oauth_app() {
    let out = std::process::Command::new(bin())
        .args(["demo", "--oauth", "--seconds", "4"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("lost: 0"), "{text}");
    let received: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("received by Devo (mTLS):"))
        .and_then(|r| r.split_whitespace().next())
        .map(|n| n.replace(',', "").parse().unwrap())
        .unwrap();
    assert!(received > 1_000, "{text}");
}

#[test]
fn a_local_clock_two_minutes_off_oktas_is_corrected_from_its_date() {
    for offset in [150, -150] {
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let total = 3_000;
        let mut env = env_with_app(
            &key,
            |jwk| oauth::App {
                clock_offset_secs: offset,
                // Stricter than the offset: proofs on the local clock are refused.
                iat_window_secs: 60,
                ..app(jwk)
            },
            okta::Options {
                total,
                initial: total,
                ..Default::default()
            },
        );
        let devo = env.start_devo();
        write_oauth_config(&env, "");
        let mut child = env.spawn();
        let all = wait_until(Duration::from_secs(30), || devo.count() >= total);
        stop(&env, &mut child);
        assert!(
            all,
            "offset {offset}: {} of {total}; log:\n{}",
            devo.count(),
            env.logs()
        );
    }
}

#[test]
fn a_scope_the_app_lacks_stops_only_the_service_that_needs_it() {
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let mut env = env_with_app(&key, app, okta::Options::default());
    let devo = env.start_devo();
    write_oauth_config(&env, "");
    // users is enabled too; the app is granted okta.logs.read only.
    let text = std::fs::read_to_string(env.path().join("config.yaml")).unwrap();
    env.write_config_text(&format!(
        "{text}      users:\n        request_period_in_seconds: 1\n"
    ));
    let mut child = env.spawn();
    let logs_ok = wait_until(Duration::from_secs(30), || devo.count() >= 10_000);
    stop(&env, &mut child);
    let logs = env.logs();
    assert!(logs_ok, "{} events; log:\n{logs}", devo.count());
    assert!(
        logs.contains("OAuth: invalid_scope: the app is not granted okta.users.read"),
        "{logs}"
    );
    assert!(
        logs.contains("users#predefined) -> SetupError 100") && logs.contains("okta.users.read"),
        "{logs}"
    );
}

#[test]
fn the_token_endpoints_rate_limit_is_waited_out_not_hammered() {
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let total = 20_000;
    let mut env = env_with_app(
        &key,
        |jwk| oauth::App {
            token_lifetime: Duration::from_secs(2),
            token_limit: Some(2),
            token_window: Duration::from_secs(5),
            ..app(jwk)
        },
        okta::Options {
            total,
            initial: total,
            page_delay: Duration::from_millis(150),
            ..Default::default()
        },
    );
    let devo = env.start_devo();
    write_oauth_config(&env, "");
    // The key readable by others: warned about, as the token file is.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        env.path().join("app.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(90), || devo.count() >= total);
    stop(&env, &mut child);
    let logs = env.logs();
    assert!(all, "{} of {total}; log:\n{logs}", devo.count());
    let d = check_lines(&env, &devo.lines(), "auth.okta.system");
    assert!(d.missing(total).is_empty() && d.duplicates() == 0);
    assert!(logs.contains("rate-limited the app (HTTP 429)"), "{logs}");
    assert_eq!(
        env.okta.oauth_over_limit(),
        0,
        "token requests during the 429's window"
    );
    assert_eq!(
        env.okta.oauth_figures().unwrap().2,
        0,
        "an expired token was sent"
    );
    assert!(
        logs.contains("holds the OAuth app's private key and can be read by other users"),
        "{logs}"
    );
}

/// The private JWK of an RSA PEM key, as Okta's admin console gives one (built from
/// `openssl rsa -text`'s components).
fn rsa_jwk(pem_path: &std::path::Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["rsa", "-noout", "-text", "-in"])
        .arg(pem_path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut fields: std::collections::HashMap<String, Vec<u8>> = Default::default();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("publicExponent: ") {
            let n: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            fields.insert("e".into(), bytes);
            current = None;
        } else if !line.starts_with(' ') && line.ends_with(':') {
            current = Some(line.trim_end_matches(':').to_string());
        } else if let Some(c) = &current {
            let hex: String = line.trim().replace(':', "");
            let v = fields.entry(c.clone()).or_default();
            for i in (0..hex.len()).step_by(2) {
                v.push(u8::from_str_radix(&hex[i..i + 2], 16).unwrap());
            }
        }
    }
    let b = |name: &str| {
        okta_collector::jose::b64url(
            &fields[name]
                .iter()
                .copied()
                .skip_while(|x| *x == 0)
                .collect::<Vec<_>>(),
        )
    };
    serde_json::json!({
        "kty": "RSA", "kid": "console-kid-1", "alg": "RS256",
        "n": b("modulus"), "e": b("e"), "d": b("privateExponent"),
        "p": b("prime1"), "q": b("prime2"), "dp": b("exponent1"), "dq": b("exponent2"),
        "qi": b("coefficient"),
    })
    .to_string()
}

#[test]
fn the_jwk_the_admin_console_gives_signs_rs256() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("rsa.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let jwk = rsa_jwk(&pem);
    let (key, kid) = AppKey::parse(&jwk).unwrap();
    assert_eq!(
        (key.alg(), kid.as_deref()),
        ("RS256", Some("console-kid-1"))
    );
    let (from_pem, _) = AppKey::parse(&std::fs::read_to_string(&pem).unwrap()).unwrap();
    assert_eq!(key.public_jwk(), from_pem.public_jwk(), "the same key");
    let mut env = env_with_app(&jwk, app, okta::Options::default());
    let _devo = env.start_devo();
    write_oauth_config(&env, "");
    let (code, out, _) = env.validate();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("has a DPoP-bound token"), "{out}");
}

#[test]
fn a_revoked_token_is_renewed_once_and_the_request_retried() {
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let total = 30_000;
    let mut env = env_with_app(
        &key,
        |jwk| oauth::App {
            revoke_every: 7,
            ..app(jwk)
        },
        okta::Options {
            total,
            initial: total,
            ..Default::default()
        },
    );
    let devo = env.start_devo();
    write_oauth_config(&env, "");
    let mut child = env.spawn();
    let all = wait_until(Duration::from_secs(60), || devo.count() >= total);
    stop(&env, &mut child);
    let logs = env.logs();
    assert!(all, "{} of {total}; log:\n{logs}", devo.count());
    assert!(
        env.okta.oauth_revoked() >= 3,
        "{}",
        env.okta.oauth_revoked()
    );
    // Each revocation cost one renewal and one retry, never a failed request.
    assert!(!logs.contains("SetupError 100"), "{logs}");
    let (issued, _, _) = env.okta.oauth_figures().unwrap();
    assert_eq!(issued, env.okta.oauth_revoked() + 1);
}
