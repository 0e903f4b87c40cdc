//! Durability through host trouble: a long Devo outage with a small spool bound (pullers pause,
//! disk stays bounded, everything is delivered after), a full disk (ENOSPC on a small tmpfs:
//! appends pause and resume within 5 s of space coming back), and `status` while running.

use crate::harness::*;
use okta_collector::sim::okta;
use std::process::Command;
use std::time::{Duration, Instant};

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn status(env: &Env) -> String {
    let out = Command::new(bin())
        .args(["status", "--config"])
        .arg(env.path().join("config.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_long_outage_with_a_small_spool_pauses_pulling_and_loses_nothing() {
    const TOTAL: u64 = 40_000;
    const MAX: u64 = 8 << 20;
    let mut env = Env::with_backlog(TOTAL);
    let text = env.config_with_globals(&format!("  spool:\n    max_bytes_per_table: {MAX}\n"));
    env.write_config_text(&text);
    // Devo is down.
    let mut child = env.spawn();
    assert!(
        wait_until(Duration::from_secs(30), || env
            .logs()
            .contains("Pulling is paused")),
        "{}",
        env.logs()
    );
    // Paused: the disk stays within the bound plus one segment (one page here), and no more
    // pages are asked for.
    let requests = env.okta.requests();
    let mut peak = 0;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        peak = peak.max(dir_bytes(&env.spool_dir()));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(peak <= MAX + (3 << 20), "spool grew to {peak} bytes");
    assert_eq!(env.okta.requests(), requests, "pulling really paused");
    let s = status(&env);
    assert!(s.contains("auth.okta.system (service logs"), "{s}");
    assert!(
        s.contains("waiting:") && !s.contains("waiting:     0 events"),
        "{s}"
    );
    assert!(s.contains("oldest:      an event of"), "{s}");
    assert!(s.contains("\"next_link\":\"http://"), "{s}");
    assert!(s.contains("last send:   never"), "{s}");
    // Devo comes back: everything arrives, pulling resumes by itself.
    let devo = env.start_devo();
    let all = wait_until(Duration::from_secs(120), || devo.count() >= TOTAL);
    // Delivered bytes count once the connection has outlived their acknowledgement by the
    // grace (1 s); the ack file follows within a second.
    let mut s = String::new();
    wait_until(Duration::from_secs(10), || {
        s = status(&env);
        s.contains("waiting:     0 events")
    });
    stop(&env, &mut child);
    assert!(all, "{} of {TOTAL}\n{}", devo.count(), env.logs());
    assert!(
        env.logs()
            .contains("Pulling resumes: the spool has room again")
    );
    let d = check_lines(&env, &devo.lines(), "auth.okta.system");
    d.assert_exactly_once(TOTAL);
    assert!(s.contains("waiting:     0 events"), "{s}");
    assert!(
        dir_bytes(&env.spool_dir()) <= MAX / 8 + (3 << 20),
        "acked segments were deleted"
    );
}

/// An outage with pages of admin-sized events (~7 MB a page) and a spool bound of `max`:
/// pulling pauses, the disk stays within the bound plus one segment plus one page, and once
/// Devo is back everything arrives and pulling resumes (it stopped for good when the bound
/// counted delivered bytes still on disk). With `lagging`, a second output comes up 8 s after
/// the first: the slower one decides.
fn outage_with_large_pages(total: u64, max: u64, lagging: bool) {
    let mut env = Env::new(okta::Options {
        total,
        initial: total,
        big_events: true,
        ..Default::default()
    });
    let port2 = free_port();
    let spool = format!("  spool:\n    max_bytes_per_table: {max}\n");
    let mut text = env.config_with_globals(&spool);
    if lagging {
        let second = format!(
            "outputs:\n  devo_2:\n    type: devo_platform\n    config:\n      address: 127.0.0.1\n      port: {port2}\n      chain: certs/chain.crt\n      cert: certs/domain.crt\n      key: certs/domain.key\n      hostname: {HOSTNAME}\n"
        );
        text = text.replacen("outputs:\n", &second, 1);
    }
    assert!(text.contains(&spool) && (!lagging || text.contains("devo_2")));
    env.write_config_text(&text);
    let mut child = env.spawn();
    assert!(
        wait_until(Duration::from_secs(60), || env
            .logs()
            .contains("Pulling is paused")),
        "{}",
        env.logs()
    );
    let segment = (max / 8).clamp(256 << 10, 32 << 20);
    let page = 8 << 20;
    let bound = max + segment + page;
    let mut peak = 0;
    let dir = env.spool_dir();
    let watch = |peak: &mut u64| *peak = (*peak).max(dir_bytes(&dir));
    let requests = env.okta.requests();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        watch(&mut peak);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(env.okta.requests(), requests, "pulling really paused");
    // Devo comes back.
    let devo = env.start_devo();
    let mut second = None;
    let started = Instant::now();
    let all = wait_until(Duration::from_secs(240), || {
        watch(&mut peak);
        if lagging && second.is_none() && started.elapsed() > Duration::from_secs(8) {
            second = Some(
                okta_collector::sim::devo::Receiver::start(
                    ([127, 0, 0, 1], port2).into(),
                    &env.pki,
                    okta_collector::sim::devo::Options {
                        keep_lines: true,
                        ..Default::default()
                    },
                )
                .unwrap(),
            );
        }
        devo.count() >= total && second.as_ref().is_none_or(|d| d.count() >= total)
    });
    let logs = env.logs();
    stop(&env, &mut child);
    assert!(all, "{} of {total}\n{logs}", devo.count());
    assert!(
        logs.contains("Pulling resumes: the spool has room again"),
        "{logs}"
    );
    assert!(
        peak <= bound,
        "the spool took {peak} bytes, over the bound {max} + a segment {segment} + a page {page}"
    );
    for d in std::iter::once(&devo).chain(second.as_ref()) {
        let got = check_lines(&env, &d.lines(), "auth.okta.system");
        got.assert_exactly_once(total);
    }
    eprintln!("peak spool {peak} bytes with a bound of {max}");
}

#[test]
fn pages_larger_than_half_the_bound_resume_after_an_outage() {
    outage_with_large_pages(6_000, 8 << 20, false);
}

#[test]
fn a_bound_smaller_than_one_page_lets_one_page_at_a_time_through() {
    outage_with_large_pages(4_000, 1 << 20, false);
}

#[test]
fn with_two_outputs_the_lagging_one_holds_the_bound_and_both_get_everything() {
    outage_with_large_pages(5_000, 8 << 20, true);
}

/// A tmpfs mounted for the test's data_dir, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts as root, or through `sudo -n` for another user (as `.ci/run` installs packages).
    fn mount(at: &std::path::Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let st = as_root("mount")
            // The collector's data_dir: this user's, writable by nobody else.
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700,uid={}", okta_collector::sys::euid()),
            ])
            .arg("okc-test")
            .arg(at)
            .status()
            .expect("mount(8)");
        assert!(
            st.success(),
            "mounting a tmpfs needs root or password-less sudo (CAP_SYS_ADMIN), as .ci/run has"
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = as_root("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_pauses_appends_and_they_resume_within_5s_of_space_coming_back() {
    const TOTAL: u64 = 10_000;
    let mut env = Env::with_backlog(TOTAL);
    let data = env.path().join("data");
    let _fs = Tmpfs::mount(&data, 64 << 20);
    // Leave about 1 MiB: less than one page of 1,000 events.
    let filler = data.join("filler");
    std::fs::write(&filler, vec![0u8; 63 << 20]).unwrap();
    let devo = env.start_devo();
    let text = env.config_with_globals(
        "  spool:\n    min_free_bytes: 0\n    max_bytes_per_table: 16777216\n",
    );
    env.write_config_text(&text);
    let mut child = env.spawn();
    assert!(
        wait_until(Duration::from_secs(30), || env
            .logs()
            .contains("Cannot write to the spool")),
        "{}",
        env.logs()
    );
    let logs = env.logs();
    assert!(logs.contains("No space left on device"), "{logs}");
    // A page already requested when the write failed (fetched ahead) may still arrive; after
    // it, nothing more is asked while the write fails.
    let at_failure = env.okta.requests();
    std::thread::sleep(Duration::from_secs(1));
    let requests = env.okta.requests();
    assert!(
        requests <= at_failure + 1,
        "{requests} requests, {at_failure} at the failure"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        env.okta.requests(),
        requests,
        "no page is asked while the write fails"
    );
    assert!(child.try_wait().unwrap().is_none(), "still running");
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || env.okta.requests() > requests),
        "{}",
        env.logs()
    );
    let resumed = freed.elapsed();
    assert!(
        resumed <= Duration::from_millis(5500),
        "resumed after {resumed:?}"
    );
    let all = wait_until(Duration::from_secs(60), || devo.count() >= TOTAL);
    env.settle();
    stop(&env, &mut child);
    assert!(all, "{}", env.logs());
    let d = check_lines(&env, &devo.lines(), "auth.okta.system");
    d.assert_exactly_once(TOTAL);
    // What is left in the spool (acked segments are deleted) is still an exact prefix.
    check_spool_is_exact_prefix(&env);
    eprintln!("appends resumed {resumed:?} after space came back");
}

#[test]
fn sigterm_while_the_disk_is_full_stops_promptly_and_cleanly() {
    let mut env = Env::new(okta::Options::default());
    let data = env.path().join("data");
    let _fs = Tmpfs::mount(&data, 8 << 20);
    std::fs::write(data.join("filler"), vec![0u8; 7 << 20]).unwrap();
    let _devo = env.start_devo();
    let text = env.config_with_globals("  spool:\n    min_free_bytes: 0\n");
    env.write_config_text(&text);
    let mut child = env.spawn();
    assert!(
        wait_until(Duration::from_secs(30), || env
            .logs()
            .contains("retrying in 4s")),
        "{}",
        env.logs()
    );
    let t = Instant::now();
    stop(&env, &mut child);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}
