//! Taking over the state of Devo's Okta collector, so that switching neither loses nor repeats
//! events: its filesystem persistence keeps, per service, the same record our System Log
//! cursor is (`@persistence_version`, `next_link`, `initial_start_time_in_utc`,
//! `last_timestamp`, `uuid_list`), as JSON in
//! `<directory_name>/<globals.id>/okta_<input id>_logs_predefined_OktaResourcesPuller.json`.

use super::logs::LogsCursor;
use super::puller::Puller;
use std::path::Path;

/// A state file larger than this is not Devo's.
const MAX_BYTES: u64 = 1 << 20;

/// Reads a regular file of at most [`MAX_BYTES`]: anything else (a FIFO, which would hang a
/// plain open; a device such as `/dev/zero` behind a link, which never ends) is refused once
/// opened (without blocking) and looked at, and no more than the limit is ever read.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a regular file (a state file of Devo's collector is one)",
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("over {MAX_BYTES} bytes: not a state file of Devo's collector"),
        ));
    }
    Ok(bytes)
}

/// Reads and checks a Devo state file: the record, its next link on the org's origin (the
/// token would follow it elsewhere), its times readable.
///
/// # Errors
/// What is wrong with the file, naming it.
pub fn read(path: &Path, org: &crate::config::Origin) -> Result<LogsCursor, String> {
    let name = path.display();
    let bytes = read_bounded(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let mut c = LogsCursor::decode(&bytes).map_err(|e| {
        format!(
            "{name} is not Devo's System Log state (a JSON record with next_link, initial_start_time_in_utc, last_timestamp and uuid_list): {e} \
             (older releases wrote it with pickle, named by an MD5 hex: those are not read; let the old collector write its JSON state first)"
        )
    })?;
    if !c.next_link.is_empty() && !org.same_origin(&c.next_link) {
        return Err(format!(
            "{name}: its next_link {:?} is not on okta_url's origin ({}); it is not followed (the API token would leak)",
            crate::logging::escape_controls(&c.next_link),
            org.base()
        ));
    }
    for (key, value) in [
        (
            "initial_start_time_in_utc",
            &mut c.initial_start_time_in_utc,
        ),
        ("last_timestamp", &mut c.last_timestamp),
    ] {
        let Some(t) = crate::time::parse_rfc3339(value) else {
            return Err(format!(
                "{name}: {key} {:?} is not an RFC 3339 time",
                crate::logging::escape_controls(value)
            ));
        };
        // Written as ours are, so the start comparison compares times, not spellings.
        if key == "initial_start_time_in_utc" {
            *value = crate::time::format_seconds(t);
        }
    }
    c.configured_start = None;
    Ok(c)
}

/// The line that says what was (or would be) imported.
pub fn describe(path: &Path, c: &LogsCursor) -> String {
    format!(
        "{}: next_link={:?}, initial_start_time_in_utc={}, last_timestamp={}, {} uuids at that time",
        path.display(),
        c.next_link,
        c.initial_start_time_in_utc,
        c.last_timestamp,
        c.uuid_list.len()
    )
}

/// At a first start (no cursor of our own): the state of Devo's collector that the config's
/// `globals.persistence` names, if there is one, read and logged; `None` (an unreadable one
/// logged) starts a new persistence.
pub(crate) fn take_over(p: &Puller) -> Option<LogsCursor> {
    let file = p.service.devo_state.as_deref().filter(|f| f.exists())?;
    let label = &p.label;
    match read(file, p.client.url()) {
        Ok(c) => {
            log::info!(
                "{label} -> Importing the state of Devo's collector from {}",
                describe(file, &c)
            );
            Some(c)
        }
        Err(e) => {
            log::error!(
                "{label} -> The state of Devo's collector cannot be imported: {e}. A new persistence is started."
            );
            None
        }
    }
}

/// `okta-collector import-devo-state`: takes Devo's System Log state (`state`, or the file the
/// config's `globals.persistence` names) into the System Log spool as its cursor, so the next
/// `run` goes on from there. Refused while the collector runs (the spool is locked), and when
/// the spool has a cursor already unless `force` (events already spooled are still sent).
///
/// # Errors
/// What stops the import, with what to do.
pub fn import(
    config: &crate::config::Config,
    state: Option<&Path>,
    force: bool,
) -> Result<String, String> {
    use crate::config::ServiceKind;
    let service = config
        .okta
        .services
        .iter()
        .find(|s| s.kind == ServiceKind::Logs)
        .ok_or("the System Log service (inputs.okta.services.logs) is not enabled in the config")?;
    let file = state.or(service.devo_state.as_deref()).ok_or(
        "no state file: give --state FILE, or name Devo's persistence in the config (globals.persistence)",
    )?;
    let c = read(file, &config.okta.url)?;
    crate::private::ensure(&config.data_dir, true)?;
    crate::private::ensure(&config.spools_dir(), false)?;
    let dir = config.spool_dir(ServiceKind::Logs);
    crate::private::ensure(&dir, false)?;
    let consumers: Vec<&str> = config.outputs.iter().map(|o| o.name.as_str()).collect();
    let spool =
        spool::Spool::open_consumers(&dir, spool::Options::default(), &consumers).map_err(|e| {
            match e {
                spool::Error::Locked { .. } => format!(
                    "{e}: another okta-collector runs on this data_dir; stop it before importing"
                ),
                e => e.to_string(),
            }
        })?;
    if let Some(ours) = spool.cursor()
        && !force
    {
        return Err(format!(
            "the System Log spool {} has a cursor of its own already ({}); give --force to replace it with Devo's",
            dir.display(),
            crate::logging::escape_controls(&String::from_utf8_lossy(&ours))
        ));
    }
    spool
        .append(&[], &c.encode()?)
        .map_err(|e| format!("cannot write the cursor: {e}"))?;
    let mut out = format!(
        "Imported the state of Devo's collector from {}",
        describe(file, &c)
    );
    if let Some(start) = service.start.map(crate::time::format_seconds)
        && start != c.initial_start_time_in_utc
    {
        out.push_str(&format!(
            "\nNote: the configured start ({start}) differs from its initial_start_time_in_utc ({}): the next run resets the persistence to the configured start, as Devo's collector would; remove or change `start` to keep this state",
            c.initial_start_time_in_utc
        ));
    }
    Ok(out)
}

/// What `validate` says of Devo's state for the System Log: `None` when the config names no
/// Devo persistence.
pub fn would_import(config: &crate::config::Config) -> Option<Result<String, String>> {
    let service = config
        .okta
        .services
        .iter()
        .find(|s| s.kind == crate::config::ServiceKind::Logs)?;
    let file = service.devo_state.as_deref()?;
    if !file.exists() {
        return Some(Ok(format!(
            "no state file at {}: the System Log starts from its configured start",
            file.display()
        )));
    }
    let dir = config.spool_dir(crate::config::ServiceKind::Logs);
    let ours = spool::inspect(&dir, spool::Options::default(), &[])
        .ok()
        .and_then(|i| i.cursor);
    Some(read(file, &config.okta.url).map(|c| {
        if ours.is_some() {
            format!(
                "{} is not imported: the System Log spool has a cursor of its own",
                file.display()
            )
        } else {
            format!("would import {}", describe(file, &c))
        }
    }))
}
