//! Property tests that fuzz every parser of outside input with proptest: the page scanner
//! (serde_json is the oracle), `Link` headers, the rate-limit and `Date` headers, RFC 3339,
//! the HTTP server's request heads, and the config loader. Each runs a bounded number of
//! cases in CI (a few seconds); `PROPTEST_CASES=100000 cargo test --lib fuzz` is a long run.

use proptest::prelude::*;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A simulated page of `n` events with bytes changed, removed or inserted at a few places.
fn mutated_page() -> impl Strategy<Value = Vec<u8>> {
    (
        0u64..6,
        proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 0..4),
    )
        .prop_map(|(n, edits)| {
            let events: Vec<String> = (0..n)
                .map(|i| crate::sim::okta::event(1_700_000_000_000, i))
                .collect();
            let mut b = format!("[{}]", events.join(",")).into_bytes();
            for (at, byte, op) in edits {
                let at = usize::from(at) % (b.len() + 1);
                match op {
                    0 if at < b.len() => b[at] = byte,
                    1 if at < b.len() => {
                        b.remove(at);
                    }
                    _ => b.insert(at, byte),
                }
            }
            b
        })
}

/// What serde_json makes of a page: the raw items, if it is an array of objects.
fn by_serde(b: &[u8]) -> Option<Vec<String>> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(b).ok()?;
    items
        .iter()
        .all(|v| v.get().starts_with('{'))
        .then(|| items.iter().map(|v| v.get().to_string()).collect())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_page_scanner_agrees_with_serde_json(body in mutated_page()) {
        let ours = crate::okta::page::split(&body, 1000);
        let serde = by_serde(&body);
        match (ours, serde) {
            (Ok(items), Some(raws)) => {
                let got: Vec<&str> = items.iter().map(crate::okta::page::Item::raw).collect();
                prop_assert_eq!(got, raws);
            }
            (Err(_), None) => {}
            (ours, serde) => prop_assert!(false, "scanner {:?}, serde {:?}", ours.map(|i| i.len()), serde.map(|s| s.len())),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_page_scanner(body in proptest::collection::vec(any::<u8>(), 0..512), cap in 0usize..8) {
        if let Ok(items) = crate::okta::page::split(&body, cap) {
            prop_assert!(items.len() <= cap);
            for i in &items {
                let _ = crate::okta::page::meta(i);
                let _ = crate::okta::page::object_meta(i);
                let _ = crate::okta::page::one_line(i);
            }
        }
    }

    #[test]
    fn link_headers_never_panic_and_a_well_formed_next_is_found(
        junk in "\\PC{0,200}",
        url in "https://[a-z]{1,10}\\.okta\\.com/api/v1/logs\\?after=[A-Za-z0-9_-]{1,30}",
    ) {
        let _ = crate::okta::link::parse(&junk);
        let _ = crate::okta::link::next([junk.as_str()]);
        let header = format!("<{url}>; rel=\"next\"");
        prop_assert_eq!(crate::okta::link::next([header.as_str()]), Ok(Some(url.clone())));
        let both = format!("<{url}x>; rel=\"self\", <{url}>; rel=\"next\"");
        prop_assert_eq!(crate::okta::link::next([both.as_str()]), Ok(Some(url)));
    }

    #[test]
    fn rate_limit_headers_of_any_value_give_a_bounded_wait(
        reset in any::<u64>(),
        date in any::<u64>(),
        limit in any::<u64>(),
        remaining in any::<u64>(),
    ) {
        let resp = crate::okta::client::Response {
            status: 429,
            body: Vec::new(),
            links: Vec::new(),
            request_id: None,
            date: UNIX_EPOCH.checked_add(Duration::from_secs(date % 400_000_000_000)),
            rate_reset: Some(reset),
            rate_limit: Some(limit),
            rate_remaining: Some(remaining),
        };
        let w = resp.rate_limit_wait();
        prop_assert!(w >= Duration::from_secs(1) && w <= Duration::from_secs(300), "{w:?}");
        let pacer = crate::okta::budget::Pacer::new(
            &[],
            std::sync::Arc::new(std::sync::Mutex::new(crate::okta::budget::Budget::new(&[]))),
        );
        let now = Instant::now();
        pacer.observe(&resp, now);
        let _ = pacer.try_take(now);
    }

    #[test]
    fn dates_never_panic_and_what_parses_formats_back(text in "\\PC{0,40}", secs in 0i64..253_402_300_799, ms in 0u64..1000) {
        let _ = crate::time::parse_rfc3339(&text);
        let _ = crate::time::parse_http_date(&text);
        let t = UNIX_EPOCH + Duration::from_secs(secs as u64) + Duration::from_millis(ms);
        let s = crate::time::format_millis(t);
        prop_assert_eq!(crate::time::parse_rfc3339(&s), Some(t));
        let _ = crate::time::syslog_date(t);
    }

    #[test]
    fn any_time_formats(secs in any::<u64>()) {
        if let Some(t) = UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
            let s = crate::time::format_millis(t);
            prop_assert!(crate::time::parse_rfc3339(&s).is_some(), "{s}");
            let _ = crate::time::format_seconds(t);
            let _ = crate::time::syslog_date(t);
            let _ = crate::time::clamp_to_local(t, SystemTime::now());
        }
    }

    #[test]
    fn the_config_loader_never_panics(text in "(globals:|outputs:|inputs:|  |- |\\[|\\{|: |\\n|[a-z_]{1,12}|\"|'|&a|\\*a|!!str|[0-9]{1,5}){0,60}") {
        let _ = crate::config::Config::parse(std::path::Path::new("/nonexistent/c.yaml"), &text);
    }
}

/// The HTTP server's request parsing, through a real socket: any bytes get an answer or a
/// close, never a panic, within the head limit.
#[test]
fn the_http_server_takes_any_bytes() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = crate::httpd::serve(
        listener,
        std::sync::Arc::new(|_: &crate::httpd::Request| crate::httpd::Reply {
            status: 200,
            headers: Vec::new(),
            body: b"ok".to_vec(),
        }),
        crate::httpd::Limits {
            read_timeout: Duration::from_millis(200),
            ..crate::httpd::Limits::METRICS
        },
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: config().cases.min(512),
        ..config()
    });
    let heads = proptest::collection::vec(
        prop_oneof![
            Just(b"GET / HTTP/1.1\r\n".to_vec()),
            Just(b"HEAD /metrics HTTP/1.1\r\n".to_vec()),
            Just(b"POST / HTTP/1.1\r\n".to_vec()),
            Just(b"Content-Length: 18446744073709551615\r\n".to_vec()),
            Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(vec![b'a'; 3000]),
            proptest::collection::vec(any::<u8>(), 0..64),
        ],
        0..8,
    );
    runner
        .run(&heads, |parts| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = s.write_all(&parts.concat());
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            prop_assert!(
                got.is_empty() || got.starts_with(b"HTTP/1.1 "),
                "{:?}",
                String::from_utf8_lossy(&got)
            );
            Ok(())
        })
        .unwrap();
    // The server still answers.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

/// A real certificate (subject, SAN, key usages, validity) to mutate, made once.
fn certificate_template() -> Vec<u8> {
    static TEMPLATE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(make_certificate).clone()
}

#[allow(clippy::unwrap_used)] // test support: a panic is a failed test
fn make_certificate() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["collector-eu.devo.io".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Devo é ü 日本");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "logtrustCA");
    params
        .extended_key_usages
        .push(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    params.self_signed(&key).unwrap().der().to_vec()
}

/// Where a string or time element's content lies in `der` (tag, short length, content that
/// fits): UTF8String, PrintableString, IA5String, UTCTime, GeneralizedTime, BMPString.
fn text_fields(der: &[u8]) -> Vec<(usize, usize)> {
    (0..der.len().saturating_sub(2))
        .filter(|&i| matches!(der[i], 0x0c | 0x13 | 0x16 | 0x17 | 0x18 | 0x1e))
        .filter_map(|i| {
            let len = usize::from(der[i + 1]);
            (len < 0x80 && i + 2 + len <= der.len()).then_some((i + 2, len))
        })
        .collect()
}

/// Bytes that fill a field: digits, `Z`, and pieces of multi-byte UTF-8 (whole and cut).
fn field_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b"0".to_vec()),
            Just(b"9".to_vec()),
            Just(b"Z".to_vec()),
            Just("é".as_bytes().to_vec()),
            Just("日".as_bytes().to_vec()),
            Just("😀".as_bytes().to_vec()),
            Just(vec![0xc3]),
            Just(vec![0xe6, 0x97]),
            Just(vec![0xff]),
            any::<u8>().prop_map(|b| vec![b]),
        ],
        0..20,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic_the_certificate_reader(der in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = crate::forward::x509::parse(&der);
        let _ = crate::forward::x509::rsa_private_key_bits(&der);
    }

    #[test]
    fn multi_byte_text_in_any_string_or_time_field_never_panics_the_certificate_reader(
        edits in proptest::collection::vec((any::<u16>(), field_bytes()), 1..4),
    ) {
        let template = certificate_template();
        let fields = text_fields(&template);
        prop_assume!(!fields.is_empty());
        let mut der = template.clone();
        for (which, bytes) in edits {
            let (at, len) = fields[usize::from(which) % fields.len()];
            // The content is overwritten in place (the lengths stay right), padded or cut.
            for (k, slot) in der[at..at + len].iter_mut().enumerate() {
                *slot = bytes.get(k).copied().unwrap_or(b'0');
            }
        }
        if let Ok(info) = crate::forward::x509::parse(&der) {
            let _ = info.to_string();
        }
    }
}
