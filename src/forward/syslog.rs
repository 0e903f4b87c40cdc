//! Devo's syslog line: `<14>DATE HOSTNAME TAG: EVENT\n` (RFC 3164 header, LF-terminated). The
//! only place that knows the framing, so the TLS, relay and console outputs write one format.

/// PRI for facility user (1), severity info (6), as Devo's SDK sends.
pub const PRI: &str = "<14>";

/// Appends one line for `event` to `out`. `date` is an RFC 3164 timestamp (`Dec  4 11:45:01`).
/// The event must not contain a raw LF (the pullers guarantee it); a trailing LF is not doubled.
pub fn push_line(out: &mut Vec<u8>, date: &str, hostname: &str, tag: &str, event: &[u8]) {
    let end = line_end(event);
    out.reserve(PRI.len() + date.len() + hostname.len() + tag.len() + event.len() + 5);
    out.extend_from_slice(PRI.as_bytes());
    out.extend_from_slice(date.as_bytes());
    out.push(b' ');
    out.extend_from_slice(hostname.as_bytes());
    out.push(b' ');
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(event);
    out.extend_from_slice(end);
}

/// What comes before the event in each line of [`push_line`] (for writing a line as pieces:
/// this, the event, [`line_end`]).
pub fn prefix(date: &str, hostname: &str, tag: &str) -> String {
    format!("{PRI}{date} {hostname} {tag}: ")
}

/// What ends the line of `event`: an LF, or nothing if the event ends with one.
pub fn line_end(event: &[u8]) -> &'static [u8] {
    if event.last() == Some(&b'\n') {
        b""
    } else {
        b"\n"
    }
}

/// Splits a received line back into (hostname, tag, event); the inverse of [`push_line`],
/// used by the receivers of the demo and the tests.
pub fn parse_line(line: &[u8]) -> Option<(&str, &str, &[u8])> {
    let rest = line.strip_prefix(PRI.as_bytes())?;
    // The RFC 3164 date is 15 characters: "Mmm dd hh:mm:ss".
    let rest = rest.get(16..)?;
    let sp = rest.iter().position(|&b| b == b' ')?;
    let hostname = std::str::from_utf8(&rest[..sp]).ok()?;
    let rest = &rest[sp + 1..];
    let colon = rest.windows(2).position(|w| w == b": ")?;
    let tag = std::str::from_utf8(&rest[..colon]).ok()?;
    let event = &rest[colon + 2..];
    Some((hostname, tag, event.strip_suffix(b"\n").unwrap_or(event)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_the_devo_shape() {
        let mut out = Vec::new();
        push_line(
            &mut out,
            "Dec  4 11:45:01",
            "edge-01",
            "auth.okta.system",
            r#"{"a":"é"}"#.as_bytes(),
        );
        assert_eq!(
            out,
            "<14>Dec  4 11:45:01 edge-01 auth.okta.system: {\"a\":\"é\"}\n".as_bytes()
        );
        assert_eq!(
            parse_line(&out),
            Some(("edge-01", "auth.okta.system", r#"{"a":"é"}"#.as_bytes()))
        );
    }

    #[test]
    fn a_line_in_pieces_is_the_line() {
        for event in [&b"{\"a\":1}"[..], b"{}\n", b""] {
            let mut whole = Vec::new();
            push_line(
                &mut whole,
                "Dec  4 11:45:01",
                "edge-01",
                "auth.okta.system",
                event,
            );
            let pieces = [
                prefix("Dec  4 11:45:01", "edge-01", "auth.okta.system").as_bytes(),
                event,
                line_end(event),
            ]
            .concat();
            assert_eq!(pieces, whole);
        }
    }

    #[test]
    fn a_trailing_newline_is_not_doubled_and_lines_concatenate() {
        let mut out = Vec::new();
        push_line(&mut out, "Jan  1 00:00:00", "h", "t.a", b"{}\n");
        push_line(&mut out, "Jan  1 00:00:00", "h", "t.b", b"{\"k\":\": \"}");
        let lines: Vec<&[u8]> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            parse_line(lines[1]),
            Some(("h", "t.b", &b"{\"k\":\": \"}"[..]))
        );
    }
}
