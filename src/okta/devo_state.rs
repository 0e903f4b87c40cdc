//! Taking over the state of Devo's Okta collector, so that switching neither loses nor repeats
//! events: its filesystem persistence keeps, per service, the same record our System Log
//! cursor is (`@persistence_version`, `next_link`, `initial_start_time_in_utc`,
//! `last_timestamp`, `uuid_list`), as JSON in
//! `<directory_name>/<globals.id>/okta_<input id>_logs_predefined_OktaResourcesPuller.json`.

use super::cursor::LogsCursor;
use std::path::Path;

/// A state file larger than this is not Devo's.
const MAX_BYTES: u64 = 1 << 20;

/// Reads and checks a Devo state file: the record, its next link on the org's origin (the
/// token would follow it elsewhere), its times readable.
///
/// # Errors
/// What is wrong with the file, naming it.
pub fn read(path: &Path, org: &crate::config::OktaUrl) -> Result<LogsCursor, String> {
    let name = path.display();
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {name}: {e}"))?
        .len();
    if len > MAX_BYTES {
        return Err(format!(
            "{name} is {len} bytes: not a state file of Devo's collector"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {name}: {e}"))?;
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
