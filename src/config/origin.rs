//! An `https://` origin (scheme, host, port) that a secret may be sent to: the Okta org's
//! `okta_url`, where the API token goes, and a `devo_http` URL. Every `next` link is checked
//! against it before the token follows it.

/// The org's base URL, split so next links can be checked against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `https` (or `http` for a loopback host).
    pub scheme: String,
    /// Host, lowercase.
    pub host: String,
    /// Port (the scheme's default when not given).
    pub port: u16,
}

impl Origin {
    /// Parses and checks an `okta_url`.
    pub fn parse(s: &str) -> Result<Origin, String> {
        let uri: ureq::http::Uri = s
            .trim()
            .parse()
            .map_err(|e| format!("{s:?} is not a URL ({e})"))?;
        if uri.scheme_str().is_none() {
            return Err(format!("{s:?} must start with https://"));
        }
        let Some(origin) = Origin::origin_of_uri(&uri).filter(|o| !o.host.is_empty()) else {
            return Err(format!(
                "{s:?} has no host; write it as https://<your-org>.okta.com"
            ));
        };
        let (scheme, host) = (&origin.scheme, &origin.host);
        match scheme.as_str() {
            "https" => {}
            "http" if is_loopback(host) => {}
            "http" => {
                return Err(format!(
                    "{s:?} uses http://; the API token must travel over https:// (http:// is accepted only for loopback hosts)"
                ));
            }
            _ => return Err(format!("{s:?} must start with https://")),
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "{s:?} must be the org's base URL, without a path or query (e.g. https://acme.okta.com)"
            ));
        }
        Ok(origin)
    }

    /// The base, e.g. `https://acme.okta.com` (with the port only when it is not the default).
    pub fn base(&self) -> String {
        let default = if self.scheme == "http" { 80 } else { 443 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            format!("{}://{}", self.scheme, host)
        } else {
            format!("{}://{}:{}", self.scheme, host, self.port)
        }
    }

    /// True if `url` has the same scheme, host and port: only then may the token be sent to it.
    pub fn same_origin(&self, url: &str) -> bool {
        Origin::origin_of(url).is_some_and(|o| o == *self)
    }

    fn origin_of(url: &str) -> Option<Origin> {
        Origin::origin_of_uri(&url.parse().ok()?)
    }

    /// Scheme and host lowercased, IPv6 brackets removed, the scheme's default port filled in.
    fn origin_of_uri(uri: &ureq::http::Uri) -> Option<Origin> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let host = uri.host()?.trim_matches(['[', ']']).to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        Some(Origin { scheme, host, port })
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
