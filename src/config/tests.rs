//! Unit tests of the config: both layouts, every key's checks and messages, secrets, reload.

use super::*;
use std::time::Duration;

/// The config.yaml of Devo's collector, as issue 16 gives it.
const DEVO: &str = r#"
globals:
  debug: false
  id: not_used
  name: okta
  persistence:
    type: filesystem
    config:
      directory_name: state
  multiprocessing: false
  queue_max_size_in_mb: 1024
  queue_max_size_in_messages: 1000
  queue_max_elapsed_time_in_sec: 60
  queue_wrap_max_size_in_messages: 100
outputs:
  devo_1:
    type: devo_platform
    config:
      address: collector-us.devo.io
      port: 443
      type: SSL
      chain: chain.crt
      cert: mydomain.crt
      key: mydomain.key
inputs:
  okta:
    id: 65294
    enabled: true
    requests_per_second: 5
    credentials:
      okta_url: https://acme.okta.com
      api_token: 00abcdefSECRET
    services:
      logs:
        request_period_in_seconds: 60
        start: 2024-12-04T11:45:01Z
"#;

#[test]
fn devos_own_config_yaml_is_accepted_and_each_key_means_what_it_can() {
    let c = parse(DEVO).unwrap();
    assert_eq!(c.id, "not_used");
    assert_eq!(c.okta.id, "65294", "a numeric input id");
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(
        c.devo_state,
        Some(std::env::current_dir().unwrap().join("state/not_used")),
        "Devo's state folder, relative to the working directory"
    );
    assert_eq!(
        c.input_budget,
        Some(Limit {
            period: Duration::from_secs(1),
            requests: 5
        })
    );
    let notes = c.notes.join("\n");
    for key in [
        "globals.name",
        "globals.multiprocessing",
        "globals.queue_max_size_in_mb",
        "globals.queue_max_size_in_messages",
        "globals.queue_max_elapsed_time_in_sec",
        "globals.queue_wrap_max_size_in_messages",
    ] {
        assert!(
            notes.contains(&format!(
                "{key} (a key of Devo's collector framework) has no effect here"
            )),
            "{key}: {notes}"
        );
    }
    assert!(
        notes.contains("globals.spool.max_bytes_per_table"),
        "{notes}"
    );
    assert!(notes.contains("one process by design"), "{notes}");
    assert_eq!(c.okta.services[0].period, Duration::from_secs(60));
    assert!(c.okta.services[0].start.is_some());
    // debug: true is debug logging; a log_level wins over it.
    let debug = parse(&DEVO.replace("debug: false", "debug: true")).unwrap();
    assert_eq!(debug.log_level, LogLevel::Debug);
    let both = parse(&DEVO.replace("debug: false", "debug: true\n  log_level: warn")).unwrap();
    assert_eq!(both.log_level, LogLevel::Warn);
    // A fraction of a request a second is one request every so many seconds.
    let slow = parse(&DEVO.replace("requests_per_second: 5", "requests_per_second: 0.25")).unwrap();
    assert_eq!(
        slow.input_budget,
        Some(Limit {
            period: Duration::from_secs(4),
            requests: 1
        })
    );
    // Devo's other names for the start.
    for alias in [
        "historic_date_utc",
        "start_time_in_utc",
        "initial_start_time_in_utc",
    ] {
        let c = parse(&DEVO.replace("        start:", &format!("        {alias}:"))).unwrap();
        assert!(c.okta.services[0].start.is_some(), "{alias}");
    }
    // Devo's per-service keys with no effect are noted too.
    let c = parse(&DEVO.replace("        request_period_in_seconds: 60", "        request_period_in_seconds: 60\n        retries: 3\n        use_time_slots_for_retrievals: true")).unwrap();
    assert!(
        c.notes
            .iter()
            .any(|n| n.starts_with("inputs.okta.services.logs.retries")),
        "{:?}",
        c.notes
    );
}

#[test]
fn devos_override_api_base_url_is_the_orgs_url() {
    let only = parse(
        &DEVO
            .replace("      okta_url: https://acme.okta.com\n", "")
            .replace(
                "    requests_per_second: 5\n",
                "    requests_per_second: 5\n    override_api_base_url: https://other.okta.com\n",
            ),
    )
    .unwrap();
    assert_eq!(only.okta.url.base(), "https://other.okta.com");
    let same = parse(&DEVO.replace(
        "    requests_per_second: 5\n",
        "    requests_per_second: 5\n    override_api_base_url: https://acme.okta.com/\n",
    ))
    .unwrap();
    assert_eq!(same.okta.url.base(), "https://acme.okta.com");
    let differ = parse(&DEVO.replace(
        "    requests_per_second: 5\n",
        "    requests_per_second: 5\n    override_api_base_url: https://evil.example.com\n",
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(differ.contains("name different orgs"), "{differ}");
    let neither = parse(&DEVO.replace("      okta_url: https://acme.okta.com\n", ""))
        .err()
        .unwrap()
        .to_string();
    assert!(
        neither.contains("inputs.okta.credentials.okta_url: missing"),
        "{neither}"
    );
}

#[test]
fn the_devo_layout_example_parses() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/devo-layout.example.yaml");
    let c = Config::load(&p).unwrap();
    assert_eq!(c.okta.id, "65294");
    assert!(c.devo_state.is_some());
    assert!(c.notes.len() >= 6, "{:?}", c.notes);
}

#[test]
fn a_sender_type_that_does_not_fit_the_output_is_refused() {
    let e = parse(&DEVO.replace("      type: SSL", "      type: TCP")).unwrap_err();
    assert!(e.0.contains("outputs.devo_1.config.type: \"TCP\" does not fit this output, which sends SSL; for TCP use an output of type relay"), "{}", e.0);
    let relay = DEVO.replace("    type: devo_platform\n", "    type: in_house_relay\n").replace(
            "      type: SSL\n      chain: chain.crt\n      cert: mydomain.crt\n      key: mydomain.key\n",
            "      type: TCP\n",
        );
    let c = parse(&relay).unwrap();
    assert!(
        matches!(&c.outputs[0].kind, OutputKind::Relay(a) if a.port == 443 && a.address == "collector-us.devo.io")
    );
    let e = parse(&relay.replace("type: TCP", "type: SSL")).unwrap_err();
    assert!(
        e.0.contains("for SSL use an output of type devo_platform"),
        "{}",
        e.0
    );
}

#[test]
fn an_unknown_key_is_named_with_the_nearest_known_one() {
    let e = parse(&DEVO.replace("requests_per_second", "request_per_second")).unwrap_err();
    assert!(
        e.0.contains("unknown field `request_per_second`"),
        "{}",
        e.0
    );
    assert!(
        e.0.contains("(did you mean `requests_per_second`?)"),
        "{}",
        e.0
    );
    assert!(e.0.contains("line "), "{}", e.0);
    let e = parse(&DEVO.replace("  multiprocessing: false", "  zzzzzzzz: 1")).unwrap_err();
    assert!(
        e.0.contains("unknown field `zzzzzzzz`") && !e.0.contains("did you mean"),
        "{}",
        e.0
    );
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

#[test]
fn a_relative_certificate_is_looked_for_where_devo_looks_too() {
    let c = parse(DEVO).unwrap();
    let OutputKind::Devo(d) = &c.outputs[0].kind else {
        panic!()
    };
    let msg = d.not_found.join("\n");
    let cwd = std::env::current_dir().unwrap();
    assert!(
            msg.contains(&format!(
                "outputs.devo_1.config.chain: chain.crt is neither at /etc/okc/chain.crt nor at {} (where Devo's collector looks)",
                cwd.join("certs/chain.crt").display()
            )),
            "{msg}"
        );
    assert_eq!(d.not_found.len(), 3);
}

#[test]
fn a_config_too_large_to_be_one_is_refused_at_once() {
    let nested = format!("globals: {}", "[".repeat(300_000));
    let t = std::time::Instant::now();
    let e = Config::parse(Path::new("c.yaml"), &nested).unwrap_err();
    assert!(e.0.contains("over the limit of 256 KiB"), "{}", e.0);
    assert!(t.elapsed() < std::time::Duration::from_secs(1));
}

const GOOD: &str = r#"
globals:
  id: okta-prod
  data_dir: data
outputs:
  devo_1:
    type: devo_platform
    config:
      address: collector-eu.devo.io
      chain: certs/chain.crt
      cert: certs/domain.crt
      key: certs/domain.key
      hostname: edge-01
inputs:
  okta:
    id: 65294
    enabled: true
    credentials:
      okta_url: https://acme.okta.com
      api_token: "00abcdefSECRET"
    services:
      logs:
        start: 2024-12-04T11:45:01Z
        request_period_in_seconds: 30
      users:
        enabled: false
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/okc/config.yaml"), text)
}

#[test]
fn an_oauth_app_resolves_and_a_changed_one_is_named_at_reload() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pem");
    std::fs::write(&key, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let with = |client: &str, extra: &str| {
        DEVO.replace(
            "      api_token: 00abcdefSECRET\n",
            &format!(
                "      oauth:\n        client_id: {client}\n        private_key_file: {}\n{extra}",
                key.display()
            ),
        )
    };
    let a = parse(&with("0oaA", "")).unwrap();
    let o = a.okta.oauth.as_ref().unwrap();
    assert_eq!(o.scopes, None, "what the enabled services need");
    assert_eq!(
        crate::okta::oauth::scopes(&a.okta.services),
        ["okta.logs.read"]
    );
    assert_eq!(o.dpop, DpopMode::Auto);
    assert!(
        !format!("{a:?}").contains("PRIVATE KEY"),
        "the key never shows in Debug"
    );
    let b = parse(&with("0oaB", "        dpop: false\n")).unwrap();
    assert_eq!(b.okta.oauth.as_ref().unwrap().dpop, DpopMode::Off);
    let changes = a.token_route_changes(&b).join("\n");
    assert!(
        changes.contains("a new token is taken for client 0oaB"),
        "{changes}"
    );
    assert!(a.token_route_changes(&a).is_empty());
    let bad = parse(&with("0oaA", "        dpop: sometimes\n"))
        .err()
        .unwrap()
        .to_string();
    assert!(bad.contains("is not auto, true or false"), "{bad}");
}

#[test]
fn a_full_config_resolves() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.data_dir, Path::new("/etc/okc/data"));
    let OutputKind::Devo(d) = &c.outputs[0].kind else {
        panic!("a devo_platform output")
    };
    assert_eq!(d.chain, Path::new("/etc/okc/certs/chain.crt"));
    assert_eq!(d.port, 443);
    assert_eq!(c.okta.id, "65294");
    assert_eq!(c.okta.url.base(), "https://acme.okta.com");
    assert_eq!(c.okta.services.len(), 1);
    assert_eq!(c.okta.services[0].tag, "auth.okta.system");
    assert_eq!(c.okta.services[0].period, Duration::from_secs(30));
    assert!(
        !format!("{c:?}").contains("SECRET"),
        "the token never shows in Debug"
    );
}

#[test]
fn unknown_keys_are_named_with_line_and_column() {
    let e = parse(&GOOD.replace("api_token:", "api_tokn:"))
        .unwrap_err()
        .0;
    assert!(
        e.contains("unknown field `api_tokn`") && e.contains("line 20 column 7"),
        "{e}"
    );
    let e = parse(&GOOD.replace("users:", "usres:")).unwrap_err().0;
    assert!(e.contains("unknown field `usres`"), "{e}");
}

#[test]
fn start_errors_carry_the_seed_ids() {
    let e = parse(&GOOD.replace("2024-12-04T11:45:01Z", "2024-12-04"))
        .unwrap_err()
        .0;
    assert!(
        e.starts_with(
            "InitVariablesError 1: initial_start_time_in_utc is not set as per the datetime_format"
        ),
        "{e}"
    );
    let e = parse(&GOOD.replace("2024-12-04T11:45:01Z", "2999-01-01T00:00:00Z"))
        .unwrap_err()
        .0;
    assert!(
        e.starts_with("InitVariablesError 2: initial_start_time_in_utc is in the future"),
        "{e}"
    );
    let alias = GOOD.replace("start:", "initial_start_time_in_utc:");
    assert!(parse(&alias).is_ok());
}

#[test]
fn every_service_resolves_with_its_defaults() {
    let all = GOOD.replace(
            "      users:\n        enabled: false\n",
            "      users: {}\n      groups: {start: 2024-01-01T00:00:00Z}\n      apps: {emit: changes}\n      idps: {}\n      zones: {override_tag: my.zones}\n      clients: {request_period_in_seconds: 600}\n",
        );
    let c = parse(&all).unwrap();
    let got: Vec<_> = c
        .okta
        .services
        .iter()
        .map(|s| (s.kind.name(), s.tag.as_str(), s.period.as_secs(), s.emit))
        .collect();
    assert_eq!(
        got,
        vec![
            ("logs", "auth.okta.system", 30, Emit::All),
            ("users", "auth.okta.users", 300, Emit::All),
            ("groups", "auth.okta.groups", 300, Emit::All),
            ("apps", "auth.okta.apps", 3600, Emit::Changes),
            ("idps", "auth.okta.idps", 3600, Emit::All),
            ("zones", "my.zones", 3600, Emit::All),
            ("clients", "auth.okta.clients", 600, Emit::All),
        ]
    );
    assert!(c.okta.services[2].start.is_some());
    let e = parse(&all.replace("users: {}", "users: {emit: changes}"))
        .unwrap_err()
        .0;
    assert!(
        e.contains("services.users.emit: only the snapshot services"),
        "{e}"
    );
    let e = parse(&all.replace("idps: {}", "idps: {start: 2024-01-01T00:00:00Z}"))
        .unwrap_err()
        .0;
    assert!(
        e.contains("services.idps.start: `idps` has no time filter"),
        "{e}"
    );
    let e = parse(&all.replace("emit: changes", "emit: diff"))
        .unwrap_err()
        .0;
    assert!(e.contains("unknown variant `diff`"), "{e}");
}

#[test]
fn rate_budgets_timeouts_and_proxy() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.requests_per_minute, Some(980));
    assert_eq!(
        c.okta.services[0].limits,
        vec![Limit {
            period: Duration::from_secs(60),
            requests: 20
        }]
    );
    assert_eq!(c.okta.http.connect_timeout, Duration::from_secs(10));
    assert_eq!(c.okta.http.request_timeout, Duration::from_secs(60));
    let custom = GOOD
            .replace(
                "        request_period_in_seconds: 30\n",
                "        request_period_in_seconds: 30\n        requests_limits: [{period: 1, number_of_requests: 2}, {period: 60, number_of_requests: 50}]\n",
            )
            .replace(
                "  data_dir: data\n",
                "  data_dir: data\n  requests_per_minute: 0\n",
            )
            .replace(
                "    services:\n",
                "    request_timeout_in_seconds: 5\n    proxy: http://user:pw@proxy.local:3128\n    services:\n",
            );
    let c = parse(&custom).unwrap();
    assert_eq!(c.requests_per_minute, None, "0 turns the global budget off");
    assert_eq!(c.okta.services[0].limits.len(), 2);
    assert_eq!(c.okta.http.request_timeout, Duration::from_secs(5));
    assert!(
        !format!("{c:?}").contains("pw@"),
        "proxy credentials are redacted"
    );
    let off = GOOD.replace(
        "        request_period_in_seconds: 30\n",
        "        request_period_in_seconds: 30\n        requests_limits: []\n",
    );
    assert!(parse(&off).unwrap().okta.services[0].limits.is_empty());
    let e = parse(&off.replace("[]", "[{period: 0, number_of_requests: 5}]"))
        .unwrap_err()
        .0;
    assert!(
        e.contains(
            "services.logs.requests_limits[0]: period and number_of_requests must be at least 1"
        ),
        "{e}"
    );
    let e = parse(&custom.replace(
        "request_timeout_in_seconds: 5",
        "request_timeout_in_seconds: 0",
    ))
    .unwrap_err()
    .0;
    assert!(
        e.contains("inputs.okta.request_timeout_in_seconds: must be at least 1"),
        "{e}"
    );
    let e = parse(&custom.replace("http://user:pw@proxy.local:3128", "\"::nonsense\""))
        .unwrap_err()
        .0;
    assert!(e.contains("inputs.okta.proxy: not a proxy URL"), "{e}");
}

#[test]
fn okta_url_rules() {
    assert!(
        Origin::parse("http://acme.okta.com")
            .unwrap_err()
            .contains("https")
    );
    assert_eq!(
        Origin::parse("http://127.0.0.1:8080").unwrap().base(),
        "http://127.0.0.1:8080"
    );
    assert_eq!(
        Origin::parse("https://acme.okta.com/").unwrap().base(),
        "https://acme.okta.com"
    );
    assert!(Origin::parse("https://acme.okta.com/api").is_err());
    assert!(
        Origin::parse("acme.okta.com")
            .unwrap_err()
            .contains("must start with https://")
    );
    assert!(
        Origin::parse("ftp://acme.okta.com")
            .unwrap_err()
            .contains("must start with https://")
    );
    let u = Origin::parse("https://acme.okta.com").unwrap();
    assert!(u.same_origin("https://acme.okta.com/api/v1/logs?after=1"));
    assert!(u.same_origin("https://ACME.okta.com:443/api/v1/logs"));
    assert!(!u.same_origin("https://evil.com/api/v1/logs"));
    assert!(!u.same_origin("http://acme.okta.com/api/v1/logs"));
    assert!(!u.same_origin("https://acme.okta.com:8443/api/v1/logs"));
    assert!(!u.same_origin("https://acme.okta.com.evil.com/api/v1/logs"));
}

#[test]
fn token_sources() {
    let e = parse(&GOOD.replace(
        "api_token: \"00abcdefSECRET\"",
        "api_token_env: OKC_TEST_NO_SUCH_VAR",
    ))
    .unwrap_err()
    .0;
    assert!(e.contains("OKC_TEST_NO_SUCH_VAR is not set"), "{e}");
    let e = parse(&GOOD.replace(
        "api_token: \"00abcdefSECRET\"",
        "api_token_file: /nonexistent/tok",
    ))
    .unwrap_err()
    .0;
    assert!(e.contains("/nonexistent/tok"), "{e}");
    assert!(!e.contains("SECRET"));
}

#[test]
fn rule_patterns_match_whole_event_types_with_stars_anywhere() {
    let rule = |p: &str| super::Rule {
        label: String::new(),
        pattern: p.into(),
        keep_one_in: 0,
    };
    for (p, t, want) in [
        ("policy.evaluate_sign_on", "policy.evaluate_sign_on", true),
        ("policy.evaluate_sign_on", "policy.evaluate_sign_on2", false),
        ("system.agent.*", "system.agent.ad.connect", true),
        ("system.agent.*", "system.agents", false),
        ("*", "anything", true),
        ("*.session.*", "user.session.start", true),
        ("user.*.start", "user.session.start", true),
        ("user.*.start", "user.session.end", false),
        ("a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
        ("", "", true),
    ] {
        assert_eq!(rule(p).matches(t), want, "{p} ~ {t}");
    }
}
