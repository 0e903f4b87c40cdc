//! `okta-collector sim --replay DIR`: serves recorded Okta answers, so the collector meets
//! Okta's real bytes and headers (`../shared/samples/okta-replay/`, or traffic a user
//! captured to reproduce a problem).
//!
//! # The folder's format
//! One `NAME.json` per recorded answer:
//! `{"name", "recorded_request": "GET <url>", "status", "headers": [[name, value], …],
//! "wire": {"gzip": bool, "chunked": bool}, "body": "<file>"}`, the body in `<file>` as sent
//! (a `.gz` file name is only how it is stored: it is unpacked on load). Headers are served
//! in their recorded case and order, repeated lines included; the framing (`Content-Length`,
//! `Transfer-Encoding`, `Content-Encoding`, `Connection`) is made anew from `wire` (gzip only
//! when the request accepts it). Other files (`SOURCES.tsv`) are ignored.
//!
//! # What answers what
//! - The 200 answers of one path are its pages, in name order (`logs-1`, `logs-2`, …). A
//!   request without `after` gets page 1; a listing whose `filter` or `search` has a time
//!   condition (`lastUpdated gt "T"`, …) gets the recorded objects of all pages that meet it,
//!   bytes unchanged, with page 1's headers.
//! - Page k's `rel="next"` (origins rewritten to this server) leads to page k+1; to page k
//!   itself when it names page k's own cursor (the System Log's polling page); to an empty
//!   `[]` page with page k's headers and no `Link` when no page follows. Page k without a
//!   `next` but with a page after it gets a second `Link` line, `rel="next"`, with
//!   `after=<its last object's id>`.
//! - Errors are served by status: 401 to a request without `SSWS <token>`; 400 to an `after`
//!   cursor that is not one of these; 404 to a path with no pages; 429 and 5xx once, to the
//!   first request on the collection their recorded path lies under (`/api/v1/apps/…` →
//!   `/api/v1/apps`).
//! - Queries are checked as the simulator checks them (`strict.rs`).

use crate::config::ServiceKind;
use crate::httpd::{Reply, Request};
use crate::lock;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The largest body file read (the recordings' largest is 443 KB).
const MAX_BODY: u64 = 64 << 20;

#[derive(Deserialize)]
struct Recorded {
    name: String,
    recorded_request: String,
    status: u16,
    headers: Vec<(String, String)>,
    #[serde(default)]
    wire: Wire,
    body: String,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Wire {
    #[serde(default)]
    gzip: bool,
    #[serde(default)]
    chunked: bool,
}

/// One recorded answer, loaded.
#[derive(Debug, Clone)]
struct Answer {
    name: String,
    path: String,
    query: Vec<(String, String)>,
    status: u16,
    headers: Vec<(String, String)>,
    gzip: bool,
    chunked: bool,
    body: Vec<u8>,
}

/// Where a cursor leads.
#[derive(Debug, Clone, Copy)]
enum Goes {
    Page(usize),
    /// An empty page with this page's headers.
    EmptyAfter(usize),
}

#[derive(Debug, Default)]
struct Pages {
    pages: Vec<Answer>,
    /// `after` value → where it leads.
    cursors: HashMap<String, Goes>,
    /// Page k's synthesized next cursor, when its recording has none and a page follows.
    synthesized: HashMap<usize, String>,
}

#[derive(Debug)]
struct Shared {
    token: String,
    paths: HashMap<String, Pages>,
    errors: HashMap<u16, Answer>,
    /// Errors served once to their collection (429, 5xx): (collection, answer).
    once: Mutex<Vec<(String, Answer)>>,
    addr: std::sync::OnceLock<SocketAddr>,
    requests: Mutex<Vec<String>>,
}

/// A running replay server.
#[derive(Debug, Clone)]
pub struct Replay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    names: Vec<String>,
}

fn query_of(target: &str) -> Vec<(String, String)> {
    Request {
        method: "GET".into(),
        target: target.into(),
        ..Request::default()
    }
    .query()
}

/// Path and query of an absolute or relative URL.
fn target_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.find('/') {
        Some(i) if url.contains("://") => &rest[i..],
        _ => url,
    }
}

/// The collection a path lies under: its first three segments (`/api/v1/apps`).
fn collection(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", segs[..segs.len().min(3)].join("/"))
}

/// The `rel="next"` URL of an answer's `Link` lines, if any.
fn next_link(headers: &[(String, String)]) -> Option<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("link"))
        .flat_map(|(_, v)| v.split(','))
        .find(|part| part.contains("rel=\"next\""))
        .and_then(|part| {
            let s = part.find('<')?;
            let e = part[s..].find('>')? + s;
            Some(part[s + 1..e].to_string())
        })
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn load_body(dir: &Path, file: &str) -> Result<Vec<u8>, String> {
    if file.contains('/') || file.starts_with('.') {
        return Err(format!(
            "{file:?}: a body must be a file name in the folder"
        ));
    }
    let p = dir.join(file);
    let f = std::fs::File::open(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mut raw = Vec::new();
    f.take(MAX_BODY)
        .read_to_end(&mut raw)
        .map_err(|e| format!("{}: {e}", p.display()))?;
    if !file.ends_with(".gz") {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .take(MAX_BODY)
        .read_to_end(&mut out)
        .map_err(|e| format!("{}: not gzip: {e}", p.display()))?;
    Ok(out)
}

/// Loads every answer of `dir`.
fn load(dir: &Path) -> Result<Vec<Answer>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let r: Recorded = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a recorded answer: {e}", f.display()))?;
        let url = r
            .recorded_request
            .split_once(' ')
            .map_or(r.recorded_request.as_str(), |(_, u)| u);
        let target = target_of(url);
        let path = target.split('?').next().unwrap_or("").to_string();
        let framing = [
            "content-length",
            "transfer-encoding",
            "content-encoding",
            "connection",
        ];
        out.push(Answer {
            name: r.name,
            path,
            query: query_of(target),
            status: r.status,
            headers: r
                .headers
                .into_iter()
                .filter(|(n, _)| !framing.iter().any(|f| n.eq_ignore_ascii_case(f)))
                .collect(),
            gzip: r.wire.gzip,
            chunked: r.wire.chunked,
            body: load_body(dir, &r.body)?,
        });
    }
    if out.is_empty() {
        return Err(format!(
            "{}: no recorded answer (NAME.json) in it",
            dir.display()
        ));
    }
    Ok(out)
}

/// The `id` of the last object of a JSON array body.
fn last_id(body: &[u8]) -> Option<String> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(body).ok()?;
    items.last()?.get("id")?.as_str().map(str::to_string)
}

impl Replay {
    /// Loads `dir` and serves it on `listen`, accepting `SSWS <token>`.
    ///
    /// # Errors
    /// A folder that cannot be read or holds a malformed answer; an address that cannot be bound.
    pub fn start(listen: SocketAddr, dir: &Path, token: &str) -> Result<Replay, String> {
        let answers = load(dir)?;
        let names = answers.iter().map(|a| a.name.clone()).collect();
        let mut paths: HashMap<String, Pages> = HashMap::new();
        let mut errors = HashMap::new();
        let mut once = Vec::new();
        for a in answers {
            match a.status {
                200..=299 => paths.entry(a.path.clone()).or_default().pages.push(a),
                429 | 500..=599 => once.push((collection(&a.path), a)),
                s => {
                    errors.entry(s).or_insert(a);
                }
            }
        }
        for p in paths.values_mut() {
            let n = p.pages.len();
            for k in 0..n {
                let page = &p.pages[k];
                let own = param(&page.query, "after").map(str::to_string);
                match next_link(&page.headers) {
                    Some(next) => {
                        let Some(after) =
                            param(&query_of(target_of(&next)), "after").map(str::to_string)
                        else {
                            continue;
                        };
                        let goes = if k + 1 < n {
                            Goes::Page(k + 1)
                        } else if own.as_deref() == Some(after.as_str()) {
                            Goes::Page(k)
                        } else {
                            Goes::EmptyAfter(k)
                        };
                        p.cursors.insert(after, goes);
                    }
                    None if k + 1 < n => {
                        if let Some(id) = last_id(&page.body) {
                            p.cursors.insert(id.clone(), Goes::Page(k + 1));
                            p.synthesized.insert(k, id);
                        }
                    }
                    None => {}
                }
            }
        }
        let shared = Arc::new(Shared {
            token: token.to_string(),
            paths,
            errors,
            once: Mutex::new(once),
            addr: std::sync::OnceLock::new(),
            requests: Mutex::new(Vec::new()),
        });
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let s = shared.clone();
        let addr = crate::httpd::serve(
            listener,
            Arc::new(move |req: &Request| s.handle(req)),
            crate::httpd::Limits::SIMULATOR,
        );
        let _ = shared.addr.set(addr);
        Ok(Replay {
            addr,
            shared,
            names,
        })
    }

    /// The org URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The names of the answers loaded.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The targets requested so far.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.requests).clone()
    }
}

/// Whether a recorded object meets a `filter`/`search` expression's time conditions
/// (clauses joined by `or`; a clause on another field is taken as met).
fn meets(obj: &serde_json::Value, expr: &str) -> bool {
    expr.split(" or ").any(|clause| {
        let mut t = clause.split_whitespace();
        let (Some(field), Some(op), Some(value)) = (t.next(), t.next(), t.next()) else {
            return true;
        };
        let Some(want) = crate::time::parse_rfc3339(value.trim_matches('"')) else {
            return true;
        };
        let Some(have) = obj
            .get(field)
            .and_then(|v| v.as_str())
            .and_then(crate::time::parse_rfc3339)
        else {
            return false;
        };
        match op.to_ascii_lowercase().as_str() {
            "gt" => have > want,
            "ge" => have >= want,
            "lt" => have < want,
            "le" => have <= want,
            "eq" => have == want,
            _ => true,
        }
    })
}

/// A time condition in a query, if any.
fn time_condition(q: &[(String, String)]) -> Option<&str> {
    ["filter", "search"]
        .into_iter()
        .filter_map(|k| param(q, k))
        .find(|v| v.contains("lastUpdated") || v.contains("lastMembershipUpdated"))
}

impl Shared {
    fn base(&self) -> String {
        self.addr
            .get()
            .map_or_else(|| "http://127.0.0.1".into(), |a| format!("http://{a}"))
    }

    fn handle(&self, req: &Request) -> Reply {
        lock(&self.requests).push(req.target.clone());
        let path = req.path().to_string();
        let gzip_ok = req
            .header("accept-encoding")
            .is_some_and(|v| v.contains("gzip"));
        let expected = format!("SSWS {}", self.token);
        if req.header("authorization") != Some(expected.as_str()) {
            return self.error(401, "E0000011", "Invalid token provided", gzip_ok);
        }
        {
            let mut once = lock(&self.once);
            if let Some(i) = once.iter().position(|(c, _)| path.starts_with(c.as_str())) {
                let (_, a) = once.remove(i);
                return self.reply(&a, a.body.clone(), None, gzip_ok, false);
            }
        }
        let q = req.query();
        if let Some(kind) = ServiceKind::SEED.into_iter().find(|k| k.path() == path)
            && let Err((status, code, summary)) = super::strict::check(kind, &q)
        {
            return self.error(status, code, &summary, gzip_ok);
        }
        let Some(p) = self.paths.get(&path) else {
            return self.error(
                404,
                "E0000007",
                &format!("Not found: Resource not found: {path} (GET)"),
                gzip_ok,
            );
        };
        let goes = match param(&q, "after") {
            None => Goes::Page(0),
            Some(a) => match p.cursors.get(a) {
                Some(g) => *g,
                None => return self.error(400, "E0000029", "Invalid paging request.", gzip_ok),
            },
        };
        match goes {
            Goes::EmptyAfter(k) => self.reply(&p.pages[k], b"[]".to_vec(), None, gzip_ok, true),
            Goes::Page(0) if param(&q, "after").is_none() && time_condition(&q).is_some() => {
                let expr = time_condition(&q).unwrap_or_default();
                let mut body = b"[".to_vec();
                let mut seen = HashSet::new();
                for page in &p.pages {
                    let Ok(items) =
                        serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(&page.body)
                    else {
                        continue;
                    };
                    for raw in items {
                        let v: serde_json::Value =
                            serde_json::from_str(raw.get()).unwrap_or_default();
                        if meets(&v, expr) && seen.insert(raw.get()) {
                            if body.len() > 1 {
                                body.push(b',');
                            }
                            body.extend_from_slice(raw.get().as_bytes());
                        }
                    }
                }
                body.push(b']');
                self.reply(&p.pages[0], body, None, gzip_ok, true)
            }
            Goes::Page(k) => {
                let next = p.synthesized.get(&k).map(|id| {
                    let mut t = format!(
                        "{}{path}?after={}",
                        self.base(),
                        crate::okta::link::percent_encode(id)
                    );
                    for (n, v) in q.iter().filter(|(n, _)| n != "after") {
                        t.push_str(&format!("&{n}={}", crate::okta::link::percent_encode(v)));
                    }
                    t
                });
                self.reply(&p.pages[k], p.pages[k].body.clone(), next, gzip_ok, false)
            }
        }
    }

    /// A recorded error of `status`, or Okta's body for it when none was recorded.
    fn error(&self, status: u16, code: &str, summary: &str, gzip_ok: bool) -> Reply {
        match self.errors.get(&status) {
            Some(a) => self.reply(a, a.body.clone(), None, gzip_ok, false),
            None => Reply {
                status,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: super::strict::error_body(code, summary),
            },
        }
    }

    /// `a`'s status and headers (origins of `Link` rewritten to this server; without `Link`
    /// when `drop_links`; a second `Link` line when `next` is given) with `body`, framed as
    /// recorded.
    fn reply(
        &self,
        a: &Answer,
        body: Vec<u8>,
        next: Option<String>,
        gzip_ok: bool,
        drop_links: bool,
    ) -> Reply {
        let base = self.base();
        let mut headers: Vec<(String, String)> = a
            .headers
            .iter()
            .filter(|(n, _)| !(drop_links && n.eq_ignore_ascii_case("link")))
            .map(|(n, v)| {
                if n.eq_ignore_ascii_case("link") {
                    (n.clone(), rewrite_origins(v, &base))
                } else {
                    (n.clone(), v.clone())
                }
            })
            .collect();
        if let Some(next) = next {
            let name = a
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("link"))
                .map_or("link".to_string(), |(n, _)| n.clone());
            headers.push((name, format!("<{next}>; rel=\"next\"")));
        }
        let body = if a.gzip && gzip_ok {
            use std::io::Write;
            let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            match g.write_all(&body).and_then(|()| g.finish()) {
                Ok(z) => {
                    headers.push(("Content-Encoding".into(), "gzip".into()));
                    z
                }
                Err(_) => body,
            }
        } else {
            body
        };
        if a.chunked {
            headers.push(("Transfer-Encoding".into(), "chunked".into()));
        }
        Reply {
            status: a.status,
            headers,
            body,
        }
    }
}

/// `value` with the scheme and host of every `<URL>` replaced by `base`.
fn rewrite_origins(value: &str, base: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(s) = rest.find('<') {
        out.push_str(&rest[..=s]);
        rest = &rest[s + 1..];
        let end = rest.find('>').unwrap_or(rest.len());
        let url = &rest[..end];
        out.push_str(base);
        out.push_str(target_of(url));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(collection("/api/v1/apps/x/features"), "/api/v1/apps");
        assert_eq!(
            target_of("https://a.okta.com/api/v1/logs?x=1"),
            "/api/v1/logs?x=1"
        );
        assert_eq!(
            rewrite_origins(
                "<https://a.okta.com/api/v1/logs?a=1>; rel=\"self\", <https://b.okta.com:443/api/v1/logs?after=2>; rel=\"next\"",
                "http://127.0.0.1:9"
            ),
            "<http://127.0.0.1:9/api/v1/logs?a=1>; rel=\"self\", <http://127.0.0.1:9/api/v1/logs?after=2>; rel=\"next\""
        );
        let h = vec![(
            "link".to_string(),
            "<https://x/a?after=1>; rel=\"self\", <https://x/a?after=2>; rel=\"next\"".to_string(),
        )];
        assert_eq!(next_link(&h).as_deref(), Some("https://x/a?after=2"));
        let o = serde_json::json!({"lastUpdated": "2024-01-02T00:00:00.000Z"});
        assert!(meets(&o, "lastUpdated gt \"2024-01-01T00:00:00.000Z\""));
        assert!(!meets(&o, "lastUpdated gt \"2024-01-02T00:00:00.000Z\""));
        assert!(meets(&o, "lastUpdated ge \"2024-01-02T00:00:00.000Z\""));
        assert!(meets(
            &o,
            "lastMembershipUpdated gt \"2025-01-01T00:00:00Z\" or lastUpdated gt \"2023-01-01T00:00:00Z\""
        ));
    }
}
