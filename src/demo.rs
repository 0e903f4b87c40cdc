//! `okta-collector demo`: the real pipeline against the built-in simulated Okta org and a local
//! Devo-compatible TLS receiver with throwaway certificates, with a live view of what flows.

use crate::config::{Config, ServiceKind};
use crate::pipeline::Pipeline;
use crate::shutdown::Shutdown;
use crate::sim;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The config the demo runs, with `{{OKTA_URL}}` and `{{DEVO_PORT}}` filled in.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.yaml");

/// Runs the demo for `seconds` (or until `shutdown`), printing progress to stdout.
///
/// # Errors
/// A message if the simulator, receiver or pipeline cannot start.
pub fn run(seconds: u64, keep: bool, oauth: bool, shutdown: Shutdown) -> Result<(), String> {
    let dir = private_temp_dir()?;
    let result = run_in(&dir, seconds, oauth, shutdown);
    if keep {
        println!("Files kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// A new folder under the temporary directory, 0700 and created exclusively (a name someone
/// else created first is never used, nor removed): the demo's keys and spool live there.
fn private_temp_dir() -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    let mut last = String::new();
    for _ in 0..16 {
        let dir = base.join(format!(
            "okta-collector-demo-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = e.to_string(),
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Err(format!(
        "cannot create a private folder under {}: {last}",
        base.display()
    ))
}

/// With `--oauth`: an API Services app whose key is made here (P-256, 0600), requiring DPoP,
/// one-minute tokens and a nonce rotated every 5 tokens; the config's token line becomes the
/// app's `oauth` block.
fn demo_app(dir: &std::path::Path) -> Result<(sim::oauth::App, String), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let pem = key.serialize_pem();
    let (app_key, _) = crate::jose::AppKey::parse(&pem)?;
    let path = dir.join("app.pem");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(pem.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let app = sim::oauth::App {
        token_lifetime: Duration::from_secs(60),
        nonce_every: 5,
        ..sim::oauth::App::new("0oademo0000000000001", app_key.public_jwk(), {
            let mut scopes: Vec<String> = ServiceKind::ALL
                .iter()
                .flat_map(|k| k.scopes())
                .map(|s| (*s).to_string())
                .collect();
            scopes.sort();
            scopes.dedup();
            scopes
        })
    };
    let block = "      oauth:\n        client_id: 0oademo0000000000001\n        private_key_file: app.pem\n".to_string();
    Ok((app, block))
}

fn run_in(
    dir: &std::path::Path,
    seconds: u64,
    oauth: bool,
    shutdown: Shutdown,
) -> Result<(), String> {
    let pki = sim::certs::generate(&dir.join("certs"), "okta-collector demo CA")?;
    let app = if oauth { Some(demo_app(dir)?) } else { None };
    let okta = sim::okta::OktaSim::start(
        ([127, 0, 0, 1], 0).into(),
        sim::okta::Options {
            token: "demo-token".into(),
            total: 5_000_000,
            initial: 20_000,
            rate_per_sec: 2_000.0,
            empty_every: 0,
            page_delay: Duration::from_millis(5),
            // Okta's untidiness (the default) and its short pages mid-backlog.
            short_every: 5,
            oauth: app.as_ref().map(|(a, _)| a.clone()),
            ..Default::default()
        },
    )
    .map_err(|e| format!("cannot start the simulated Okta org: {e}"))?;
    let devo = sim::devo::Receiver::start(
        ([127, 0, 0, 1], 0).into(),
        &pki,
        sim::devo::Options::default(),
    )?;
    let text = DEMO_CONFIG
        .replace("{{OKTA_URL}}", &okta.url())
        .replace("{{DEVO_PORT}}", &devo.addr.port().to_string())
        .replace("{{START}}", &okta.start_time());
    let text = match &app {
        Some((_, block)) => text.replace("      api_token: demo-token\n", block),
        None => text,
    };
    let config_path = dir.join("config.yaml");
    std::fs::write(&config_path, &text)
        .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    let config = Config::load(&config_path).map_err(|e| e.to_string())?;
    let pipeline = Pipeline::build(&config).map_err(|e| e.to_string())?;
    let stats = pipeline.stats.clone();

    println!(
        "okta-collector demo: simulated Okta org at {}, Devo receiver (mutual TLS) at {}",
        okta.url(),
        devo.addr
    );
    println!(
        "The org starts with a backlog of 20,000 System Log events and logs 2,000 more per second;\n\
         every 2 seconds an admin changes a user, a group and an app, and a group rule adds\n\
         someone to a group (found by the group's lastMembershipUpdated). Inventory and\n\
         entitlement rows (my.app.okta.*) are shown when they move."
    );
    println!(
        "Running {seconds}s (Ctrl-C stops earlier). Spool and state in {}.",
        config.data_dir.display()
    );
    println!(
        "`delivered` counts events the receiver's side has acknowledged; a new TLS session's first\n\
         2 seconds are confirmed together, once the receiver has clearly accepted our certificate.\n"
    );
    println!(
        "{:>5}  {:<28} {:>10} {:>9} {:>10} {:>9} {:>9}",
        "time", "table", "pulled", "/s", "delivered", "/s", "waiting"
    );

    let started = Instant::now();
    let sd = shutdown.clone();
    let task = std::thread::spawn(move || smol::block_on(pipeline.run(sd)));
    let mut last = vec![(0u64, 0u64); stats.len()];
    let mut tick = 0;
    while started.elapsed() < Duration::from_secs(seconds) && !shutdown.is_set() {
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() < Duration::from_secs(tick + 1) {
            continue;
        }
        tick += 1;
        if tick.is_multiple_of(2) {
            let inv = okta.inventory();
            inv.update(ServiceKind::Users, tick % 200);
            inv.update(ServiceKind::Groups, tick % 40);
            inv.update(ServiceKind::Apps, tick % 30);
            // A group rule adds a user to a group: no event of its own to follow.
            let (ent, group) = (okta.entitlements(), tick % 40);
            if let Some(user) = (0..inv.next_index(ServiceKind::Users))
                .find(|u| !ent.holds(inv, sim::entitlements::Link::Member { group, user: *u }))
            {
                okta.change(
                    sim::entitlements::Change::add(sim::entitlements::Link::Member { group, user })
                        .silent(),
                );
            }
        }
        for (i, s) in stats.iter().enumerate() {
            let pulled = s.pulled.spooled.load(Ordering::Relaxed);
            let delivered = s.delivered_everywhere();
            let moved = (pulled, delivered) != last[i] || pulled > delivered;
            if s.service != "logs" && tick > 1 && !moved {
                continue;
            }
            println!(
                "{:>4}s  {:<28} {:>10} {:>9} {:>10} {:>9} {:>9}",
                tick,
                s.tag,
                group(pulled),
                group(pulled - last[i].0),
                group(delivered),
                group(delivered - last[i].1),
                group(pulled.saturating_sub(delivered))
            );
            last[i] = (pulled, delivered);
        }
    }
    shutdown.trigger();
    let result = task
        .join()
        .map_err(|_| "the pipeline thread panicked".to_string())?;
    result.map_err(|e| e.to_string())?;
    let elapsed = started.elapsed().as_secs_f64();
    // The receiver may still be reading the last bytes.
    let pulled: u64 = stats
        .iter()
        .map(|s| s.pulled.spooled.load(Ordering::Relaxed))
        .sum();
    // The pipeline has stopped: what is still in the spool stays there for the next run.
    let waiting: u64 = stats.iter().map(|s| s.waiting()).sum();
    let deadline = Instant::now() + Duration::from_secs(2);
    while devo.count() < pulled.saturating_sub(waiting) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("\nSummary after {elapsed:.1}s:");
    println!(
        "  pulled from Okta:          {:>10} events in {} requests",
        group(pulled),
        group(okta.requests())
    );
    println!(
        "  received by Devo (mTLS):   {:>10} events ({:.0} events/s)",
        group(devo.count()),
        devo.count() as f64 / elapsed
    );
    println!("  kept in the spool for next run: {}", group(waiting));
    println!(
        "  lost: {}",
        group(pulled.saturating_sub(devo.count() + waiting))
    );
    println!(
        "\nNext: copy config/config.example.yaml, fill in your org and Devo certificates, then"
    );
    println!(
        "  okta-collector validate --config config.yaml && okta-collector run --config config.yaml"
    );
    Ok(())
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
