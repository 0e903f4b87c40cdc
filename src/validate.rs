//! `okta-collector validate`: checks the config, asks each enabled service's endpoint for one item,
//! and checks each output: one TLS session to a Devo load balancer (with a short read, since a
//! rejected client certificate shows only then under TLS 1.3), one TCP connection to a relay,
//! one empty batch to an HTTP endpoint. Pulls nothing and sends no event.

use crate::config::{Config, Output, OutputKind, ServiceKind};
use crate::errors::ErrorId::{Pull302 as PULL_302, Setup100 as SETUP_100, Setup101 as SETUP_101};
use crate::forward::batch::Delivery;
use crate::forward::{connection, tls};
use crate::okta;
use crate::okta::client::Client;
use crate::okta::page;
use smol::io::AsyncReadExt;
use std::time::Duration;

/// One check's outcome.
#[derive(Debug)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// `Ok(detail)` or `Err(problem)`.
    pub result: Result<String, String>,
}

/// Runs every check; the config must already have loaded.
pub fn run(config: &Config) -> Vec<Check> {
    let mut out = vec![Check {
        what: "config".into(),
        result: Ok(config.path.display().to_string()),
    }];
    // What `run` needs locally before it asks anything of Okta or Devo.
    out.push(Check {
        what: format!("data_dir {}", config.data_dir.display()),
        result: check_data_dir(config),
    });
    if let Some(listen) = config.metrics_listen {
        out.push(Check {
            what: "metrics_listen".into(),
            result: std::net::TcpListener::bind(listen)
                .map(|_| format!("{listen} can be listened on"))
                .map_err(|e| {
                    format!(
                        "globals.metrics_listen: cannot listen on {listen}: {e} (is a collector already running with this config? a port under 1024 needs privileges)"
                    )
                }),
        });
    }
    if let Some(file) = &config.log.file {
        out.push(Check {
            what: "log_file".into(),
            result: check_log_file(file),
        });
    }
    let client = match Client::for_input(&config.okta) {
        Ok(c) => Some(c),
        Err(e) => {
            out.push(Check {
                what: "okta connection settings".into(),
                result: Err(e),
            });
            None
        }
    };
    let services = match &client {
        Some(_) if config.okta.enabled => config.okta.services.clone(),
        _ => Vec::new(),
    };
    for (s, client) in services
        .iter()
        .zip(std::iter::repeat(client.as_ref()).flatten())
    {
        // The System Log's filter is asked as `run` asks it: Okta says here if it refuses it.
        let filter = s.filter.as_deref().map_or_else(String::new, |f| {
            format!("&filter={}", okta::link::percent_encode(f))
        });
        let url = format!(
            "{}{}?limit=1{filter}",
            config.okta.url.base(),
            s.kind.path()
        );
        // A rate limit that resets within VALIDATE_WAIT is waited out once, as `run` would.
        let mut waited = None;
        let mut got = client.get(&url);
        if let Ok(r) = &got
            && okta::api::classify(r) == okta::api::Class::RateLimited
            && r.rate_limit_wait() <= VALIDATE_WAIT
        {
            let wait = r.rate_limit_wait();
            std::thread::sleep(wait);
            waited = Some(wait);
            got = client.get(&url);
        }
        let after_wait = waited.map_or_else(String::new, |w| {
            format!(
                " (after waiting {} s for Okta's rate-limit reset)",
                w.as_secs()
            )
        });
        let class = got.as_ref().ok().map(okta::api::classify);
        let result = match got {
            Err(e) => Err(format!("{SETUP_101}: {e}")),
            Ok(r)
                if matches!(
                    class,
                    Some(okta::api::Class::RateLimited | okta::api::Class::Concurrency)
                ) =>
            {
                Err(format!(
                    "rate limited by Okta ({}): the org's budget for {} is used up for now; try again in {} s",
                    r.error_details(),
                    s.kind.path(),
                    r.rate_limit_wait().as_secs()
                ))
            }
            Ok(r) if r.status == 400 && s.filter.is_some() => Err(format!(
                "{SETUP_100}: Okta refuses inputs.okta.services.logs.filter {:?}: {}. Write it in Okta's SCIM syntax, e.g. eventType eq \"user.session.start\" or eventType sw \"user.\" (it cannot use `published`).",
                s.filter.as_deref().unwrap_or(""),
                r.error_details()
            )),
            Ok(r) if class != Some(okta::api::Class::Page) => {
                Err(okta::api::http_error(&r, true, s.kind))
            }
            Ok(r) => match count_items(s.kind, &r.body) {
                Ok(items) => Ok(format!(
                    "{}{}?limit=1 answered {}{after_wait}",
                    config.okta.url.base(),
                    s.kind.path(),
                    page_words(items)
                )),
                Err(e) => Err(format!("{PULL_302}: {e}")),
            },
        };
        out.push(Check {
            what: format!("okta service {}", s.kind.name()),
            result,
        });
    }
    if let Some(ts) = client.as_ref().and_then(|c| c.oauth()) {
        out.push(Check {
            what: "okta OAuth app".into(),
            result: oauth_check(config, ts),
        });
    }
    for o in &config.outputs {
        out.push(Check {
            what: format!("output {} ({})", o.name, o.type_name()),
            result: check_output(config, o),
        });
    }
    out
}

/// `run`'s checks of the data_dir: created (0700) if missing, owned by this user and writable
/// by nobody else, as every spool folder of an enabled service that exists; then a file
/// written and removed in it.
fn check_data_dir(config: &Config) -> Result<String, String> {
    crate::private::ensure(&config.data_dir, true)?;
    // The spool folders are checked where they exist; `validate` creates no spool.
    let spools = std::iter::once(config.spools_dir()).chain(
        config
            .okta
            .services
            .iter()
            .map(|s| config.spool_dir(s.kind)),
    );
    for dir in spools.filter(|d| d.exists()) {
        crate::private::ensure(&dir, false)?;
    }
    let probe = config
        .data_dir
        .join(format!(".validate-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"probe"))
        .map_err(|e| {
            format!(
                "cannot write in {}: {e} (is the disk full or read-only? the collector writes its spool there)",
                config.data_dir.display()
            )
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok("exists, is private to this user and can be written".into())
}

/// `run`'s check of the log file: it opens as `run` opens it (created if missing).
fn check_log_file(file: &std::path::Path) -> Result<String, String> {
    crate::logging::check_file(file)
        .map(|()| format!("{} can be written", file.display()))
        .map_err(|e| format!("globals.log_file: cannot open {}: {e}", file.display()))
}

/// Checks one output without sending an event.
fn check_output(config: &Config, o: &Output) -> Result<String, String> {
    match &o.kind {
        OutputKind::Devo(d) => {
            let tls_config = tls::client_config(&o.name, d)?;
            smol::block_on(async {
                let mut session =
                    connection::connect(&d.address, d.port, tls_config, Duration::from_secs(10))
                        .await?;
                let version = session.protocol();
                let mut buf = [0u8; 64];
                let read = crate::time::timeout(
                    Duration::from_millis(1500),
                    session.stream.read(&mut buf),
                )
                .await;
                match read {
                    None | Some(Ok(1..)) => {
                        let _ = smol::io::AsyncWriteExt::close(&mut session.stream).await;
                        Ok(format!(
                            "{}:{} accepted the client certificate ({version})",
                            d.address, d.port
                        ))
                    }
                    Some(Ok(0)) => Err(format!(
                        "{}:{} closed the connection right after the handshake: it probably rejected the client certificate {}",
                        d.address,
                        d.port,
                        d.cert.display()
                    )),
                    Some(Err(e)) => Err(format!(
                        "{}:{} rejected the session: {e} (check the client certificate {} and key {})",
                        d.address,
                        d.port,
                        d.cert.display(),
                        d.key.display()
                    )),
                }
            })
        }
        OutputKind::Relay(r) => smol::block_on(async {
            connection::connect_tcp(&r.address, r.port, Duration::from_secs(10)).await?;
            Ok(format!("{}:{} accepts TCP connections", r.address, r.port))
        }),
        OutputKind::Http(h) => {
            let sink = crate::forward::http::DevoHttpSink::new(&o.hostname, h);
            let tag = config
                .okta
                .services
                .first()
                .map_or("auth.okta.system", |s| s.tag.as_str());
            match sink.post(tag, b"") {
                Delivery::Done => Ok(format!("{} took an empty batch for {tag}", sink.shown())),
                Delivery::Retry(e) | Delivery::Rejected(e) => Err(format!("{}: {e}", sink.shown())),
            }
        }
        OutputKind::Console => Ok("standard output".into()),
    }
}

/// What a `limit=1` page held, in words.
fn page_words(n: usize) -> String {
    match n {
        0 => "an empty page (nothing to list, or no event since the start yet)".into(),
        1 => "1 item".into(),
        n => format!("{n} items (more than the 1 asked for: this endpoint does not honour limit)"),
    }
}

/// The items of a page of `kind`'s listing: a JSON array, or for the role holders
/// (`/api/v1/iam/assignees/users`) the `value` array of Okta's paged object.
fn count_items(kind: ServiceKind, body: &[u8]) -> Result<usize, String> {
    #[derive(serde::Deserialize)]
    struct Paged {
        value: Vec<serde::de::IgnoredAny>,
    }
    if kind == ServiceKind::AdminRoles {
        return serde_json::from_slice::<Paged>(body)
            .map(|p| p.value.len())
            .map_err(|e| format!("not Okta's paged list of role holders: {e}"));
    }
    page::split(body, kind.max_page_items())
        .map(|items| items.len())
        .map_err(|e| e.to_string())
}

/// What the OAuth app was granted, against what each enabled service needs.
fn oauth_check(config: &Config, ts: &crate::okta::oauth::TokenSource) -> Result<String, String> {
    let Some((dpop, granted, _)) = ts.granted() else {
        return Err(format!(
            "{SETUP_100}: no token was taken (see the services' lines above)"
        ));
    };
    let mut missing: Vec<String> = config
        .okta
        .services
        .iter()
        .flat_map(|s| s.kind.scopes().iter().map(move |scope| (s.kind, *scope)))
        .filter(|(_, scope)| !granted.iter().any(|g| g == scope))
        .map(|(kind, scope)| format!("{} needs {scope}", kind.name()))
        .collect();
    let denied: Vec<String> = ts
        .denied()
        .into_iter()
        .filter(|d| !missing.iter().any(|m| m.ends_with(d.as_str())))
        .map(|d| format!("{d} is asked for (oauth.scopes) but not granted (invalid_scope)"))
        .collect();
    missing.extend(denied);
    let how = if dpop {
        "a DPoP-bound token (proofs on every call)"
    } else {
        "a Bearer token (no DPoP)"
    };
    if missing.is_empty() {
        Ok(format!(
            "client {} has {how}; scopes granted: {}",
            config
                .okta
                .oauth
                .as_ref()
                .map_or("?", |o| o.client_id.as_str()),
            granted.join(" ")
        ))
    } else {
        Err(format!(
            "{SETUP_100}: {how}, but scopes are missing: {}; grant them on the app's \"Okta API Scopes\" tab (the admin role must also cover each endpoint)",
            missing.join(", ")
        ))
    }
}

/// The longest rate-limit reset `validate` waits out before asking again.
const VALIDATE_WAIT: std::time::Duration = std::time::Duration::from_secs(15);
