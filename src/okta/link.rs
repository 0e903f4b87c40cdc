//! RFC 8288 `Link` header parsing: finds the `rel="next"` URL among every `Link` header value.
//! Okta writes them in more than one form (one header or several, `self` and `next` together or
//! `next` alone), and the next link decides what is asked for next, so it is parsed strictly.

/// One link: its URL and its relation types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The target, as given between `<` and `>`.
    pub url: String,
    /// The `rel` values, lowercase.
    pub rels: Vec<String>,
}

/// Parses one `Link` header value, which may hold several comma-separated links.
/// `None` if it does not parse.
pub fn parse(value: &str) -> Option<Vec<Link>> {
    let b = value.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        while i < b.len() && b[i] == b',' {
            i += 1;
            skip_ws(&mut i);
        }
        if i >= b.len() {
            return Some(out);
        }
        if b[i] != b'<' {
            return None;
        }
        let end = value[i + 1..].find('>')? + i + 1;
        let url = value[i + 1..end].trim().to_string();
        i = end + 1;
        let mut rels = Vec::new();
        // Parameters: ; name[=value] until a comma outside quotes.
        loop {
            skip_ws(&mut i);
            if i >= b.len() || b[i] == b',' {
                break;
            }
            if b[i] != b';' {
                return None;
            }
            i += 1;
            skip_ws(&mut i);
            let name_start = i;
            while i < b.len() && !matches!(b[i], b'=' | b';' | b',' | b' ' | b'\t') {
                i += 1;
            }
            let name = value[name_start..i].to_ascii_lowercase();
            skip_ws(&mut i);
            let mut val = String::new();
            if i < b.len() && b[i] == b'=' {
                i += 1;
                skip_ws(&mut i);
                if i < b.len() && b[i] == b'"' {
                    i += 1;
                    let close = value[i..].find('"')? + i;
                    val = value[i..close].to_string();
                    i = close + 1;
                } else {
                    let s = i;
                    while i < b.len() && !matches!(b[i], b';' | b',' | b' ' | b'\t') {
                        i += 1;
                    }
                    val = value[s..i].to_string();
                }
            }
            if name == "rel" {
                rels.extend(val.split_ascii_whitespace().map(|r| r.to_ascii_lowercase()));
            }
        }
        if url.is_empty() {
            return None;
        }
        out.push(Link { url, rels });
    }
}

/// The `rel="next"` URL across all `values` (one per `Link` header line).
/// `Err(value)` names a value that does not parse.
pub fn next<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Option<String>, String> {
    let mut next = None;
    for v in values {
        let links = parse(v).ok_or_else(|| v.to_string())?;
        if let Some(l) = links
            .into_iter()
            .find(|l| l.rels.iter().any(|r| r == "next"))
        {
            next.get_or_insert(l.url);
        }
    }
    Ok(next)
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub fn percent_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len() * 3);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(values: &[&str], expected: Result<Option<&str>, ()>) {
        let got = next(values.iter().copied()).map_err(|_| ());
        assert_eq!(got, expected.map(|o| o.map(String::from)), "{values:?}");
    }

    #[test]
    fn next_link_in_separate_headers_and_in_one() {
        let self_ = r#"<https://acme.okta.com/api/v1/logs?limit=2>; rel="self""#;
        let next_ =
            r#"<https://acme.okta.com/api/v1/logs?after=1627500044869_1&limit=2>; rel="next""#;
        let url = "https://acme.okta.com/api/v1/logs?after=1627500044869_1&limit=2";
        check(&[self_, next_], Ok(Some(url)));
        check(&[&format!("{self_}, {next_}")], Ok(Some(url)));
        check(&[self_], Ok(None));
        check(&[], Ok(None));
    }

    #[test]
    fn unusual_but_valid_forms() {
        check(
            &["<https://x/a?b=1,2>; rel=next"],
            Ok(Some("https://x/a?b=1,2")),
        );
        check(
            &["<https://x/a>;rel=\"prev next\";title=\"a,b\""],
            Ok(Some("https://x/a")),
        );
        check(&["<https://x/a>; REL=\"NEXT\""], Ok(Some("https://x/a")));
        check(
            &["<https://x/s>; rel=\"self\" , <https://x/n>; rel=\"next\""],
            Ok(Some("https://x/n")),
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        check(&["https://x/a; rel=next"], Err(()));
        check(&["<https://x/a; rel=next"], Err(()));
        check(&["<https://x/a>; rel=\"next"], Err(()));
        check(&["<https://x/a> rel=next"], Err(()));
        check(&["<>; rel=next"], Err(()));
    }
    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            percent_encode("lastUpdated ge \"2024-01-01T00:00:00.000Z\""),
            "lastUpdated%20ge%20%222024-01-01T00%3A00%3A00.000Z%22"
        );
        assert_eq!(percent_encode("status pr"), "status%20pr");
    }
}
