//! RFC 3339 parsing (with offsets, strict), the timestamp formats we write, and the timing
//! helpers (timeout, jitter). No time zones. Times come from Okta, so parsing refuses what
//! could not be formatted again (past year 9999) rather than abort later.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses an RFC 3339 timestamp (`2024-12-04T11:45:01Z`, `2024-12-04T12:45:01.250+01:00`).
/// Returns `None` for anything else, including impossible dates such as February 30.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month as u32, day as u32);
    if civil_from_days(days) != (year, month as u32, day as u32) {
        return None;
    }
    let mut i = 19;
    let mut nanos: u64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start).min(9)..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec.min(59) - offset_secs;
    // Past 9999-12-31T23:59:59Z once the offset is applied, an instant cannot be written
    // back in RFC 3339: refused, so that nothing formatting a parsed time can fail.
    if secs > MAX_SECS {
        return None;
    }
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

/// 9999-12-31T23:59:59Z, the last second RFC 3339 can write.
const MAX_SECS: i64 = 253_402_300_799;

/// How far a time taken from Okta (a `Date` header, an object's time) may be from the local
/// clock before it is not believed.
pub const TRUSTED_SKEW: Duration = Duration::from_secs(600);

/// `t` if it is within [`TRUSTED_SKEW`] of `now`, else `now` (and `false`): a time from a peer
/// that would move a cursor or a watermark far from the local clock is not used.
pub fn clamp_to_local(t: SystemTime, now: SystemTime) -> (SystemTime, bool) {
    let off = match t.duration_since(now) {
        Ok(ahead) => ahead,
        Err(behind) => behind.duration(),
    };
    if off > TRUSTED_SKEW {
        (now, false)
    } else {
        (t, true)
    }
}

/// `t`, or the last instant RFC 3339 can write if `t` is later (formatting never fails).
fn writable(t: SystemTime) -> SystemTime {
    let max = UNIX_EPOCH + Duration::from_millis(MAX_SECS as u64 * 1000 + 999);
    t.min(max)
}

/// `d` plus up to 10% random jitter, so many agents do not retry in step.
pub fn jitter(d: Duration) -> Duration {
    d + d.mul_f64(fastrand::f64() * 0.1)
}

/// Runs `f` for at most `d`; `None` if it did not finish in time.
pub async fn timeout<T>(d: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(f.await) }, async {
        smol::Timer::after(d).await;
        None
    })
    .await
}

/// Formats as Okta wants query timestamps: `2024-12-04T11:45:01.000Z`.
pub fn format_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(writable(t)).to_string()
}

/// Formats as `2024-12-04T11:45:01Z` (seconds, UTC).
pub fn format_seconds(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(writable(t)).to_string()
}

/// The RFC 3164 timestamp of a syslog header, in UTC: `Dec  4 11:45:01` (day padded with a space).
pub fn syslog_date(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (_, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[(m - 1) as usize],
        d,
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected_unix_ms: Option<u128>) {
        assert_eq!(
            parse_rfc3339(input).map(unix_millis),
            expected_unix_ms,
            "{input}"
        );
    }

    #[test]
    fn rfc3339_accepts_utc_fractions_and_offsets() {
        check("2024-12-04T11:45:01Z", Some(1_733_312_701_000));
        check("2024-12-04T11:45:01.250Z", Some(1_733_312_701_250));
        check("2024-12-04T12:45:01+01:00", Some(1_733_312_701_000));
        check("2024-12-04T10:45:01.5-01:00", Some(1_733_312_701_500));
        check("1970-01-01T00:00:00Z", Some(0));
        check("2024-02-29T00:00:00Z", Some(1_709_164_800_000));
    }

    #[test]
    fn rfc3339_refuses_what_it_could_not_write_back() {
        // Year 9999 with an offset that takes it into year 10000.
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59-01:00"), None);
        let last = parse_rfc3339("9999-12-31T23:59:59Z").unwrap();
        assert_eq!(format_seconds(last), "9999-12-31T23:59:59Z");
        assert!(parse_rfc3339("9999-12-31T23:59:59+01:00").is_some());
        // Formatting never fails, whatever the instant.
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(format_millis(far), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn times_far_from_the_local_clock_are_clamped() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let near = now + Duration::from_secs(599);
        assert_eq!(clamp_to_local(near, now), (near, true));
        let back = now - Duration::from_secs(599);
        assert_eq!(clamp_to_local(back, now), (back, true));
        assert_eq!(
            clamp_to_local(now + Duration::from_secs(601), now),
            (now, false)
        );
        assert_eq!(
            clamp_to_local(now - Duration::from_secs(3600), now),
            (now, false)
        );
    }

    #[test]
    fn rfc3339_rejects_everything_else() {
        for bad in [
            "2024-12-04",
            "2024-12-04 11:45",
            "2024-13-04T11:45:01Z",
            "2023-02-29T00:00:00Z",
            "2024-12-04T11:45:01",
            "2024-12-04T11:45:01+0100",
            "2024-12-04T11:45:01.Z",
            "yesterday",
            "2024-12-04T25:45:01Z",
            "2024-12-04T11:45:01Zjunk",
        ] {
            check(bad, None);
        }
    }

    #[test]
    fn syslog_date_pads_the_day_with_a_space() {
        let t = parse_rfc3339("2024-12-04T09:05:07Z").unwrap();
        assert_eq!(syslog_date(t), "Dec  4 09:05:07");
        let t = parse_rfc3339("2026-11-25T23:59:59Z").unwrap();
        assert_eq!(syslog_date(t), "Nov 25 23:59:59");
    }

    #[test]
    fn formats_round_trip() {
        let t = parse_rfc3339("2024-12-04T11:45:01.123Z").unwrap();
        assert_eq!(format_millis(t), "2024-12-04T11:45:01.123Z");
        assert_eq!(format_seconds(t), "2024-12-04T11:45:01Z");
    }
}

/// Parses an HTTP `Date` header (IMF-fixdate, `Wed, 25 Nov 2026 11:45:44 GMT`).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = s.split_ascii_whitespace();
    let _weekday = parts.next()?;
    let day: u32 = parts.next()?.parse().ok()?;
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as u32 + 1;
    let year: i64 = parts.next()?.parse().ok()?;
    let hms = parts.next()?;
    if parts.next()? != "GMT" {
        return None;
    }
    parse_rfc3339(&format!("{year:04}-{month:02}-{day:02}T{hms}Z"))
}

/// An IMF-fixdate, as Okta's `Date` headers.
pub fn format_http_date(t: SystemTime) -> String {
    // `Wed, 04 Dec 2024 11:45:01 GMT`, built from the RFC 3339 form.
    let s = crate::time::format_seconds(t);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    let part = |r: std::ops::Range<usize>| s.get(r).unwrap_or("00");
    let month: usize = part(5..7).parse().unwrap_or(1).clamp(1, 12);
    format!(
        "{}, {} {} {} {} GMT",
        DAYS[(days % 7) as usize],
        part(8..10),
        MONTHS[month - 1],
        part(0..4),
        part(11..19)
    )
}

#[cfg(test)]
mod http_date_tests {
    use super::*;

    #[test]
    fn http_dates_format_as_imf_fixdate() {
        let t = crate::time::parse_rfc3339("2024-12-04T11:45:01Z").unwrap();
        assert_eq!(format_http_date(t), "Wed, 04 Dec 2024 11:45:01 GMT");
        assert_eq!(parse_http_date(&format_http_date(t)), Some(t));
    }

    #[test]
    fn http_dates_parse() {
        let t = super::parse_http_date("Wed, 04 Dec 2024 11:45:01 GMT").unwrap();
        assert_eq!(super::format_seconds(t), "2024-12-04T11:45:01Z");
        assert!(super::parse_http_date("yesterday").is_none());
    }
}
