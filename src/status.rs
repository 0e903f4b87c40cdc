//! `okta-collector status`: per table, what waits in the spool (events, bytes, the oldest
//! waiting event's age), the cursor, and when the last pull and send happened. Reads the spool
//! files only, without their lock, so it works while `run` is running.

use crate::config::Config;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

/// The report, one block per enabled service.
///
/// # Errors
/// A message if a spool directory cannot be read.
pub fn report(config: &Config) -> Result<String, String> {
    let mut out = String::new();
    let now = SystemTime::now();
    for s in &config.okta.services {
        let dir = config.spool_dir(s.kind);
        let _ = writeln!(
            out,
            "{} (service {}, spool {})",
            s.tag,
            s.kind.name(),
            dir.display()
        );
        if !dir.exists() {
            let _ = writeln!(out, "  no spool yet: the service has not run");
            continue;
        }
        let names: Vec<&str> = config.outputs.iter().map(|o| o.name.as_str()).collect();
        let i =
            spool::inspect(&dir, spool::Options::default(), &names).map_err(|e| e.to_string())?;
        let _ = writeln!(
            out,
            "  waiting:     {} events, {} ({} segments, {} on disk)",
            i.waiting(),
            bytes(i.waiting_bytes),
            i.segments,
            bytes(i.disk_bytes)
        );
        let _ = writeln!(
            out,
            "  losses:      {} events lost, {} corrupt frames skipped{}",
            i.losses.lost_events,
            i.losses.corrupt_frames,
            if i.losses.lost_events > 0 {
                " (see the log's \"lost to corruption\" lines)"
            } else {
                ""
            }
        );
        if let Some(e) = &i.oldest_waiting {
            let published = event_time(e);
            let _ = match (published, i.oldest_segment_created) {
                (Some(t), _) => writeln!(
                    out,
                    "  oldest:      an event of {} ({} old)",
                    crate::time::format_seconds(t),
                    ago(now, t)
                ),
                (None, Some(t)) => {
                    writeln!(out, "  oldest:      spooled at most {} ago", ago(now, t))
                }
                (None, None) => Ok(()),
            };
        }
        let cursor = i
            .cursor
            .as_deref()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .unwrap_or_else(|| "none yet".into());
        let cursor = if cursor.chars().count() > 400 {
            format!(
                "{}… ({} bytes)",
                cursor.chars().take(400).collect::<String>(),
                cursor.len()
            )
        } else {
            cursor
        };
        if s.kind.is_entitlement() {
            // Its progress is its folder's, not the spool cursor's.
            let progress =
                crate::okta::describe_entitlements(&config.entitlements_dir(s.kind), now)
                    .unwrap_or_else(|| "none yet".into());
            let _ = writeln!(out, "  progress:    {progress}");
        } else {
            let _ = writeln!(out, "  cursor:      {cursor}");
        }
        let when = |t: Option<SystemTime>| match t {
            Some(t) => format!("{} ({} ago)", crate::time::format_seconds(t), ago(now, t)),
            None => "never".into(),
        };
        let _ = writeln!(out, "  last pull:   {}", when(i.last_append));
        let _ = writeln!(out, "  last send:   {}", when(i.last_ack));
        if s.kind != crate::config::ServiceKind::Logs {
            // An inventory's newest object may be weeks old when all is delivered: its
            // freshness is the age of its last listing, not of its newest object.
            let _ = writeln!(
                out,
                "  listing:     the last one committed {}; {}",
                match i.last_append {
                    Some(t) => format!("{} ago", ago(now, t)),
                    None => "never".into(),
                },
                if i.waiting() == 0 {
                    "all of it delivered".to_string()
                } else {
                    format!("{} events of it waiting", i.waiting())
                }
            );
            continue;
        }
        for (name, c) in names.iter().zip(&i.consumers) {
            if let Some(ms) = c.delivered_time_ms {
                let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
                let _ = writeln!(
                    out,
                    "  lag:         {} behind: the newest event {name} delivered is of {}",
                    ago(now, t),
                    crate::time::format_seconds(t)
                );
            }
        }
        if i.consumers.len() > 1 {
            for c in &i.consumers {
                let _ = writeln!(
                    out,
                    "  output {}: {} events waiting, last send {}",
                    c.name,
                    i.next_seq.saturating_sub(c.acked_seq),
                    when(c.last_ack)
                );
            }
        }
    }
    if out.is_empty() {
        out.push_str("No Okta service is enabled.\n");
    }
    Ok(out)
}

/// `published` (System Log) or `lastUpdated` (inventory) of an event, if it has one.
use crate::okta::page::event_time;

fn ago(now: SystemTime, t: SystemTime) -> String {
    let d = now.duration_since(t).unwrap_or(Duration::ZERO).as_secs();
    match d {
        0..60 => format!("{d}s"),
        60..3600 => format!("{}m {}s", d / 60, d % 60),
        3600..86_400 => format!("{}h {}m", d / 3600, (d % 3600) / 60),
        _ => format!("{}d {}h", d / 86_400, (d % 86_400) / 3600),
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}
