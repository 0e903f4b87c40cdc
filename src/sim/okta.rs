//! The simulated Okta org: `/api/v1/logs` with polling semantics (a `rel="next"` link on every
//! page, empty pages, opaque `after` cursors), the six inventory endpoints (see `inventory.rs`),
//! SSWS auth, rate-limit headers, and realistic, deterministic events generated on demand
//! (never all held in memory).

use super::inventory::{Counts, Inventory};
use super::strict::error_body;
use crate::config::ServiceKind;
use crate::httpd::{Reply, Request};
use crate::lock;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the simulated org serves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The API token it accepts.
    pub token: String,
    /// Total number of System Log events.
    pub total: u64,
    /// Events available at start.
    pub initial: u64,
    /// Events that become available per second after that.
    pub rate_per_sec: f64,
    /// Every n-th page request answers an empty page (0: never), as Okta does when caught up.
    pub empty_every: u64,
    /// Delay before each answer.
    pub page_delay: Duration,
    /// Inventory objects at start.
    pub objects: Counts,
    /// Endpoints that answer with an error status instead (403: missing role or scope; 404:
    /// the org lacks the feature), as an org can for one endpoint alone.
    pub refuse: Vec<(ServiceKind, u16)>,
    /// Okta's rate limit, enforced per endpoint: at most this many requests per
    /// `rate_window` (a window that starts at its first request, as Okta's are not aligned to
    /// the clock), with real `X-Rate-Limit-*` headers and 429s. `None`: no limit.
    pub rate_limit: Option<u64>,
    /// The rate-limit window (Okta's is a minute).
    pub rate_window: Duration,
    /// Admin-sized System Log events: about 6 KB on average, every 250th about 260 KB (real
    /// admin events with a large `debugContext` are that big), so a page of 1,000 is ~6 MB.
    pub big_events: bool,
    /// Every n-th page request that has a backlog behind it answers a short page (a seventh of
    /// the limit, or fewer), as Okta does mid-backlog (pages of 1000, 1000, 34, 203, 66 were
    /// seen with limit=1000); 0: never.
    pub short_every: u64,
    /// Answers as untidy as Okta's recorded ones (`../shared/samples/okta-replay/`): gzip
    /// bodies when asked, chunked bodies without `Content-Length`,
    /// `application/json;charset=UTF-8`, mixed-case header names, `self` and `next` in one
    /// `Link` value or `next` alone, pages without `X-Rate-Limit-*` or `X-Okta-Request-Id`,
    /// per-endpoint limits (50 to 1,000), a long `Content-Security-Policy` and several
    /// `Set-Cookie` lines, `WWW-Authenticate: SSWS` on a 401. Each varies with the request
    /// number, deterministically. Default: on.
    pub untidy: bool,
    /// An OAuth 2.0 API Services app: the org then takes its tokens (DPoP or Bearer) instead
    /// of `SSWS <token>`, and serves `/oauth2/v1/token`.
    pub oauth: Option<super::oauth::App>,
}

/// A fault the simulated org serves instead of (or on top of) a normal answer, once, to the
/// next request on an endpoint (see [`OktaSim::inject`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// An Okta error body with this status (500, 503, 401, 403, …).
    Status(u16),
    /// A 502 HTML page, as a load balancer sends.
    HtmlError,
    /// 200 with a body that is not JSON.
    NotJson,
    /// 200 with the page's JSON cut in half (the HTTP message itself is complete).
    Truncated,
    /// 200 with a JSON object instead of an array.
    NotArray,
    /// 200 with an array holding a number and a string.
    ItemNotObject,
    /// 200 with a body over the collector's 64 MiB cap.
    Huge,
    /// 200 with invalid UTF-8 inside a JSON string.
    InvalidUtf8,
    /// The normal page with a `Link` header that does not parse.
    BadLink,
    /// The normal page with a next link to another origin (this URL's scheme, host and port,
    /// with the path and query of a real next link).
    ForeignNext(String),
    /// The normal page with a next link equal to the request.
    LoopNext,
    /// The connection is closed without an answer.
    Reset,
    /// The answer comes after this delay.
    Hang(Duration),
    /// 429 E0000047 with the window resetting in 2 s.
    RateLimited,
    /// 429 for too many simultaneous requests (limit and remaining 0).
    ConcurrencyLimited,
    /// The normal answer with these headers instead of any of the same name (lowercase).
    Headers(Vec<(String, String)>),
    /// Exactly this answer: status, headers, body (no `Link`: the same page is asked next).
    Raw(u16, Vec<(String, String)>, Vec<u8>),
    /// The normal answer, mutated (see [`mutate`]) as the seed picks: a body made invalid
    /// (cut, a byte that JSON forbids anywhere), a garbled `Link`, rate-limit or `Date` header,
    /// another status. Whatever a mutation keeps valid means what the normal answer meant.
    Mutate(u64),
}

impl Default for Options {
    fn default() -> Options {
        Options {
            token: "sim-token".into(),
            total: 10_000,
            initial: 10_000,
            rate_per_sec: 0.0,
            empty_every: 0,
            page_delay: Duration::ZERO,
            objects: Counts::default(),
            refuse: Vec::new(),
            rate_limit: None,
            rate_window: Duration::from_secs(60),
            big_events: false,
            short_every: 0,
            untidy: true,
            oauth: None,
        }
    }
}

#[derive(Debug)]
struct Shared {
    opts: Options,
    started: Instant,
    base_ms: u64,
    /// When live events start (epoch ms): the first event after `initial` is published then,
    /// the others `1 / rate_per_sec` apart, so a tailing client sees events as new as the clock.
    live_ms: u64,
    addr: std::sync::OnceLock<SocketAddr>,
    requests: AtomicU64,
    page_requests: AtomicU64,
    inventory: Inventory,
    /// Who holds what: group members, app assignments, admin roles, factors.
    entitlements: super::entitlements::Entitlements,
    /// The System Log events of the entitlement changes tests made, after the generated
    /// stream (event `total + k` is the k-th), with their persistence times.
    changes: std::sync::Mutex<Vec<(u64, String)>>,
    faults: std::sync::Mutex<Vec<(ServiceKind, Fault)>>,
    /// Per endpoint: the current window's start (monotonic and wall clock) and requests in it.
    windows: std::sync::Mutex<std::collections::HashMap<String, (Instant, SystemTime, u64)>>,
    /// 429s served because the rate limit was exceeded (not injected ones).
    throttled: AtomicU64,
    /// When each request arrived.
    arrivals: std::sync::Mutex<Vec<Instant>>,
    /// Each request's path and query, in order.
    targets: std::sync::Mutex<Vec<String>>,
    /// The OAuth side, when `opts.oauth` is set.
    oauth: Option<super::oauth::Server>,
}

/// A running simulated org.
#[derive(Debug, Clone)]
pub struct OktaSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl OktaSim {
    /// Starts serving on `listen` (use port 0 for any free port).
    ///
    /// # Errors
    /// If the address cannot be bound.
    pub fn start(listen: SocketAddr, opts: Options) -> std::io::Result<OktaSim> {
        let listener = std::net::TcpListener::bind(listen)?;
        // Event persistence times start one day ago, one millisecond apart.
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
            .saturating_sub(86_400_000);
        let shared = Arc::new(Shared {
            inventory: Inventory::new(opts.objects),
            entitlements: super::entitlements::Entitlements::default(),
            changes: std::sync::Mutex::new(Vec::new()),
            faults: std::sync::Mutex::new(Vec::new()),
            windows: std::sync::Mutex::new(std::collections::HashMap::new()),
            throttled: AtomicU64::new(0),
            arrivals: std::sync::Mutex::new(Vec::new()),
            targets: std::sync::Mutex::new(Vec::new()),
            live_ms: (base_ms + 86_400_000).max(base_ms + opts.initial),
            oauth: opts.oauth.clone().map(super::oauth::Server::new),
            opts,
            started: Instant::now(),
            base_ms,
            addr: std::sync::OnceLock::new(),
            requests: AtomicU64::new(0),
            page_requests: AtomicU64::new(0),
        });
        let s = shared.clone();
        let addr = crate::httpd::serve(
            listener,
            Arc::new(move |req: &Request| s.handle(req)),
            crate::httpd::Limits::SIMULATOR,
        );
        let _ = shared.addr.set(addr);
        Ok(OktaSim { addr, shared })
    }

    /// The org URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OAuth side's figures: (tokens issued, nonces handed out, calls with an expired
    /// token), when the org has an OAuth app.
    pub fn oauth_figures(&self) -> Option<(u64, u64, u64)> {
        self.shared
            .oauth
            .as_ref()
            .map(|o| (o.issued(), o.nonces(), o.expired_used()))
    }

    /// Tokens the org revoked (`revoke_every`).
    pub fn oauth_revoked(&self) -> u64 {
        self.shared.oauth.as_ref().map_or(0, |o| o.revoked())
    }

    /// Token requests made after the token endpoint's 429, within its window.
    pub fn oauth_over_limit(&self) -> u64 {
        self.shared.oauth.as_ref().map_or(0, |o| o.over_limit())
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// The exact JSON of event `i`, as served.
    pub fn event(&self, i: u64) -> String {
        self.shared.event(i)
    }

    /// Queues `fault` for the next request on `kind`'s endpoint (faults queue in order).
    pub fn inject(&self, kind: ServiceKind, fault: Fault) {
        lock(&self.shared.faults).push((kind, fault));
    }

    /// Injected faults not served yet.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).len()
    }

    /// When each request so far arrived.
    pub fn arrivals(&self) -> Vec<Instant> {
        lock(&self.shared.arrivals).clone()
    }

    /// Each request's path and query so far, in order.
    pub fn targets(&self) -> Vec<String> {
        lock(&self.shared.targets).clone()
    }

    /// 429s served because the enforced rate limit was exceeded.
    pub fn throttled(&self) -> u64 {
        self.shared.throttled.load(Ordering::Relaxed)
    }

    /// The inventory, which a test may change while the collector runs.
    pub fn inventory(&self) -> &Inventory {
        &self.shared.inventory
    }

    /// The entitlements (group members, app assignments, admin roles, factors), which a test
    /// may change while the collector runs (see [`OktaSim::change`]).
    pub fn entitlements(&self) -> &super::entitlements::Entitlements {
        &self.shared.entitlements
    }

    /// Makes an entitlement change and, unless it is silent, writes its event to the System
    /// Log after every generated event (whose backlog should then be complete:
    /// `initial == total`). Returns the event's uuid (`None` for a silent change), or `None`
    /// too if the change changed nothing.
    pub fn change(&self, change: super::entitlements::Change) -> Option<String> {
        let s = &self.shared;
        let changed = if change.added {
            s.entitlements.add(&s.inventory, change.link)
        } else {
            s.entitlements.remove(&s.inventory, change.link)
        };
        let member_of = match change.link {
            super::entitlements::Link::Member { group, .. } => Some(group),
            _ => None,
        };
        if !changed {
            return None;
        }
        if change.silent {
            // Okta moves the group's lastMembershipUpdated whether or not it logs.
            if let Some(g) = member_of {
                s.inventory.membership_changed(group_kind(), g, None);
            }
            return None;
        }
        let mut changes = lock(&s.changes);
        let k = s.opts.total + changes.len() as u64;
        let last = changes.last().map_or_else(
            || s.persisted_ms(s.opts.total.saturating_sub(1)),
            |(ms, _)| *ms,
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let ms = now.max(last + 1);
        let id = uuid(k);
        let published = crate::time::format_millis(UNIX_EPOCH + Duration::from_millis(ms));
        changes.push((ms, change.event(&id, &published)));
        if let Some(g) = member_of {
            s.inventory.membership_changed(group_kind(), g, Some(ms));
        }
        Some(id)
    }

    /// A `start` that precedes every event.
    pub fn start_time(&self) -> String {
        crate::time::format_seconds(
            UNIX_EPOCH + Duration::from_millis(self.shared.base_ms) - Duration::from_secs(60),
        )
    }
}

impl Shared {
    fn event(&self, i: u64) -> String {
        if i >= self.opts.total
            && let Some((_, e)) = lock(&self.changes).get((i - self.opts.total) as usize)
        {
            return e.clone();
        }
        if self.opts.big_events {
            let reps = if i % 250 == 249 {
                26_000
            } else {
                400 + (mix(i) % 200) as usize
            };
            event_padded(self.persisted_ms(i), i, reps)
        } else {
            event_padded(self.persisted_ms(i), i, event_reps(i))
        }
    }

    fn available(&self) -> u64 {
        let grown = (self.started.elapsed().as_secs_f64() * self.opts.rate_per_sec) as u64;
        let generated = self.opts.total.min(self.opts.initial.saturating_add(grown));
        // The changes tests made follow the generated stream once it is complete.
        if generated == self.opts.total {
            generated + lock(&self.changes).len() as u64
        } else {
            generated
        }
    }

    /// Event `i`'s persistence (and publication) time, epoch ms: the backlog one millisecond
    /// apart from a day ago, live events as they arrive.
    fn persisted_ms(&self, i: u64) -> u64 {
        if i >= self.opts.total
            && let Some((ms, _)) = lock(&self.changes).get((i - self.opts.total) as usize)
        {
            return *ms;
        }
        let rate = self.opts.rate_per_sec;
        if i < self.opts.initial || rate <= 0.0 {
            self.base_ms + i
        } else {
            self.live_ms + ((i - self.opts.initial) as f64 * 1000.0 / rate) as u64
        }
    }

    /// The first event persisted at or after `ms` (the inverse of [`Shared::persisted_ms`]).
    fn index_at(&self, ms: u64) -> u64 {
        let rate = self.opts.rate_per_sec;
        let backlog_end = self.base_ms + self.opts.initial;
        let generated = if ms < backlog_end || rate <= 0.0 {
            ms.saturating_sub(self.base_ms)
        } else if ms <= self.live_ms {
            self.opts.initial
        } else {
            self.opts.initial + ((ms - self.live_ms) as f64 * rate / 1000.0).ceil() as u64
        };
        if generated < self.opts.total {
            return generated;
        }
        let earlier = lock(&self.changes).iter().filter(|(m, _)| *m < ms).count();
        self.opts.total + earlier as u64
    }

    /// Counts the request in its endpoint's window; returns the rate-limit headers and
    /// whether the limit is exceeded.
    fn rate(&self, path: &str, now: SystemTime) -> (Vec<(String, String)>, bool) {
        let secs = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        let Some(limit) = self.opts.rate_limit else {
            let reset = secs(now) as u64 + 60;
            return (rate_headers(1_000_000, 999_999, reset), false);
        };
        let mut w = lock(&self.windows);
        let e = w
            .entry(path.to_string())
            .or_insert((Instant::now(), now, 0));
        if e.0.elapsed() >= self.opts.rate_window {
            *e = (Instant::now(), now, 0);
        }
        e.2 += 1;
        let reset = (secs(e.1) + self.opts.rate_window.as_secs_f64()).ceil() as u64;
        let over = e.2 > limit;
        (rate_headers(limit, limit.saturating_sub(e.2), reset), over)
    }

    fn take_fault(&self, kind: Option<ServiceKind>) -> Option<Fault> {
        let kind = kind?;
        let mut f = lock(&self.faults);
        let i = f.iter().position(|(k, _)| *k == kind)?;
        Some(f.remove(i).1)
    }

    fn handle(&self, req: &Request) -> Reply {
        lock(&self.arrivals).push(Instant::now());
        lock(&self.targets).push(req.target.clone());
        if let Some(o) = &self.oauth
            && req.method == "POST"
            && req.path() == "/oauth2/v1/token"
        {
            return o.token(req, &self.base());
        }
        let kind = ServiceKind::SEED
            .into_iter()
            .find(|k| k.path() == req.path());
        let fault = self.take_fault(kind);
        let reply = self.answer(req, kind, fault.as_ref());
        match fault {
            Some(f) => self.apply(f, req, reply),
            None if self.opts.untidy => untidy(
                reply,
                kind,
                self.requests.load(Ordering::Relaxed),
                req.header("accept-encoding")
                    .is_some_and(|v| v.contains("gzip")),
            ),
            None => reply,
        }
    }

    /// Applies a fault that changes a normal answer (or replaces it).
    fn apply(&self, fault: Fault, req: &Request, mut reply: Reply) -> Reply {
        let json_error = |status: u16, code: &str, summary: &str, headers| Reply {
            status,
            headers,
            body: error_body(code, summary),
        };
        let headers = reply.headers.clone();
        let base = self.base();
        let relink = |reply: &mut Reply, next: String| {
            reply
                .headers
                .retain(|(n, v)| n != "link" || !v.contains("rel=\"next\""));
            reply.headers.push(("link".into(), next));
        };
        match fault {
            Fault::Headers(extra) => {
                reply
                    .headers
                    .retain(|(n, _)| !extra.iter().any(|(e, _)| e == n));
                reply.headers.extend(extra);
                reply
            }
            Fault::Mutate(seed) => mutate(reply, seed),
            Fault::Raw(status, headers, body) => Reply {
                status,
                headers,
                body,
            },
            Fault::Status(st) => json_error(st, "E0000009", "Internal Server Error", headers),
            Fault::HtmlError => Reply {
                status: 502,
                headers: vec![("content-type".into(), "text/html".into())],
                body: b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>".to_vec(),
            },
            Fault::NotJson => Reply {
                status: 200,
                headers,
                body: b"Service temporarily unavailable, please retry".to_vec(),
            },
            Fault::Truncated => {
                reply.body.truncate(reply.body.len() / 2);
                reply
            }
            Fault::NotArray => Reply {
                status: 200,
                headers,
                body: br#"{"items":[],"note":"not an array"}"#.to_vec(),
            },
            Fault::ItemNotObject => Reply {
                status: 200,
                headers,
                body: br#"[1,"two"]"#.to_vec(),
            },
            Fault::Huge => {
                let mut body = Vec::with_capacity((65 << 20) + 16);
                body.extend_from_slice(br#"[{"pad":""#);
                body.resize((65 << 20) + 9, b'x');
                body.extend_from_slice(br#""}]"#);
                Reply {
                    status: 200,
                    headers,
                    body,
                }
            }
            Fault::InvalidUtf8 => Reply {
                status: 200,
                headers,
                body: b"[{\"uuid\":\"bad\",\"x\":\"\xff\xfe\"}]".to_vec(),
            },
            Fault::BadLink => {
                relink(&mut reply, "this is not a link".into());
                reply
            }
            Fault::ForeignNext(origin) => {
                relink(
                    &mut reply,
                    format!("<{origin}{}?after=1&limit=1000>; rel=\"next\"", req.path()),
                );
                reply
            }
            Fault::LoopNext => {
                relink(&mut reply, format!("<{base}{}>; rel=\"next\"", req.target));
                reply
            }
            Fault::Reset => Reply {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
            },
            Fault::Hang(_) => reply,
            Fault::RateLimited => {
                let now = SystemTime::now();
                let reset = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 2;
                let mut h = headers;
                h.retain(|(n, _)| !n.starts_with("x-rate-limit"));
                h.extend(rate_headers(600, 0, reset));
                json_error(
                    429,
                    "E0000047",
                    "API call exceeded rate limit due to too many requests.",
                    h,
                )
            }
            Fault::ConcurrencyLimited => {
                let mut h = headers;
                h.retain(|(n, _)| !n.starts_with("x-rate-limit"));
                let reset = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
                    + 60;
                h.extend(rate_headers(0, 0, reset));
                json_error(
                    429,
                    "E0000047",
                    "API call exceeded rate limit due to too many requests.",
                    h,
                )
            }
        }
    }

    /// The normal answer to a request.
    fn answer(&self, req: &Request, kind: Option<ServiceKind>, fault: Option<&Fault>) -> Reply {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !self.opts.page_delay.is_zero() {
            std::thread::sleep(self.opts.page_delay);
        }
        if let Some(Fault::Hang(d)) = fault {
            std::thread::sleep(*d);
        }
        let now = SystemTime::now();
        let (rate, over) = self.rate(req.path(), now);
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            (
                "date".to_string(),
                crate::time::format_http_date(self.oauth.as_ref().map_or(now, |o| o.now())),
            ),
            (
                "x-okta-request-id".to_string(),
                format!("sim-{}", self.requests.load(Ordering::Relaxed)),
            ),
        ];
        headers.extend(rate);
        if let Some(o) = &self.oauth {
            if let Err(mut r) = o.check_api(req, &self.base(), kind) {
                r.headers.extend(headers);
                return r;
            }
        } else if req.header("authorization") != Some(format!("SSWS {}", self.opts.token).as_str())
        {
            return Reply {
                status: 401,
                headers,
                body: error_body("E0000011", "Invalid token provided"),
            };
        }
        if over {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return Reply {
                status: 429,
                headers,
                body: error_body(
                    "E0000047",
                    "API call exceeded rate limit due to too many requests.",
                ),
            };
        }
        if let Some((_, status)) = self.opts.refuse.iter().find(|(k, _)| Some(*k) == kind) {
            let (code, summary) = if *status == 404 {
                (
                    "E0000007",
                    format!("Not found: Resource not found: {} (GET)", req.path()),
                )
            } else {
                (
                    "E0000006",
                    "You do not have permission to perform the requested action".to_string(),
                )
            };
            return Reply {
                status: *status,
                headers,
                body: error_body(code, &summary),
            };
        }
        if let Some(kind) = kind
            && let Err((status, code, summary)) = super::strict::check(kind, &req.query())
        {
            return Reply {
                status,
                headers,
                body: error_body(code, &summary),
            };
        }
        if req.method == "GET"
            && let Some(kind) = kind.filter(|k| *k != ServiceKind::Logs)
        {
            return self.list(kind, req, headers);
        }
        if req.method == "GET"
            && kind.is_none()
            && let Some(a) = self
                .entitlements
                .answer(&self.inventory, req.path(), &req.query())
        {
            let mut headers = headers;
            if let Some(after) = &a.after {
                headers.push((
                    "link".into(),
                    format!(
                        "<{}{}?after={after}&limit={}>; rel=\"next\"",
                        self.base(),
                        req.path(),
                        a.limit
                    ),
                ));
            }
            return Reply {
                status: a.status,
                headers,
                body: a.body.into_bytes(),
            };
        }
        if req.method != "GET" || kind != Some(ServiceKind::Logs) {
            return Reply {
                status: 404,
                headers,
                body: error_body(
                    "E0000007",
                    &format!("Not found: Resource not found: {} (GET)", req.path()),
                ),
            };
        }
        let q = req.query();
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let limit = get("limit")
            .and_then(|l| l.parse::<u64>().ok())
            .unwrap_or(100)
            .clamp(1, 1000);
        let start = if let Some(after) = get("after") {
            match after.rsplit('_').next().and_then(|i| i.parse::<u64>().ok()) {
                Some(i) => i,
                None => {
                    // Okta's answer to a cursor it does not honour (recorded: err-400-after).
                    return Reply {
                        status: 400,
                        headers,
                        body: serde_json::json!({
                            "errorCode": "E0000029",
                            "errorSummary": "Invalid paging request.",
                            "errorLink": "E0000029",
                            "errorId": "oaeSimulated0000000000000",
                            "errorCauses": [{"errorSummary": "Invalid cursor."}]
                        })
                        .to_string()
                        .into_bytes(),
                    };
                }
            }
        } else if let Some(since) = get("since") {
            match crate::time::parse_rfc3339(since) {
                Some(t) => {
                    let ms = t
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0);
                    self.index_at(ms)
                }
                None => {
                    return Reply {
                        status: 400,
                        headers,
                        body: error_body("E0000001", "Api validation failed: since"),
                    };
                }
            }
        } else {
            0
        };
        let n = self.page_requests.fetch_add(1, Ordering::Relaxed) + 1;
        let avail = self.available();
        let empty = self.opts.empty_every > 0 && n.is_multiple_of(self.opts.empty_every);
        let short = self.opts.short_every > 0
            && n.is_multiple_of(self.opts.short_every)
            && start + limit < avail;
        let end = if empty {
            start
        } else if short {
            start + 1 + mix(n) % (limit / 7).max(1)
        } else {
            (start + limit).min(avail).max(start)
        };
        let mut body = Vec::with_capacity(((end - start) * 1800) as usize + 2);
        body.push(b'[');
        for i in start..end {
            if i > start {
                body.push(b',');
            }
            body.extend_from_slice(self.event(i).as_bytes());
        }
        body.push(b']');
        let base = format!(
            "http://{}",
            self.addr
                .get()
                .copied()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
        );
        headers.push((
            "link".into(),
            format!("<{base}{}>; rel=\"self\"", req.target),
        ));
        headers.push((
            "link".into(),
            format!(
                "<{base}/api/v1/logs?after={}_{end}&limit={limit}&sortOrder=ASCENDING>; rel=\"next\"",
                self.persisted_ms(end)
            ),
        ));
        Reply {
            status: 200,
            headers,
            body,
        }
    }
}

impl Shared {
    fn base(&self) -> String {
        format!(
            "http://{}",
            self.addr
                .get()
                .copied()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
        )
    }

    /// A page of an inventory listing, with `self` and (if more follow) `next` links that
    /// repeat the query with the new `after`.
    fn list(&self, kind: ServiceKind, req: &Request, mut headers: Vec<(String, String)>) -> Reply {
        let q = req.query();
        let page = match self.inventory.list(kind, &q) {
            Ok(p) => p,
            Err(bad) => {
                return Reply {
                    status: 400,
                    headers,
                    body: error_body(bad.0, &bad.1),
                };
            }
        };
        let base = self.base();
        headers.push((
            "link".into(),
            format!("<{base}{}>; rel=\"self\"", req.target),
        ));
        if let Some(after) = page.after {
            let mut next = format!("{base}{}?after={after}", kind.path());
            if page.limit != u64::MAX {
                next.push_str(&format!("&limit={}", page.limit));
            }
            for (k, v) in &q {
                if k == "search" || k == "filter" {
                    next.push_str(&format!("&{k}={}", crate::okta::link::percent_encode(v)));
                }
            }
            headers.push(("link".into(), format!("<{next}>; rel=\"next\"")));
        }
        Reply {
            status: 200,
            headers,
            body: page.body,
        }
    }
}

fn group_kind() -> ServiceKind {
    ServiceKind::Groups
}

/// The limit Okta advertises per endpoint when the simulator enforces none (the recorded
/// answers show 50 to 1,000; real orgs differ by plan).
fn advertised_limit(kind: Option<ServiceKind>) -> u64 {
    match kind {
        Some(ServiceKind::Logs) => 120,
        Some(ServiceKind::Users) => 300,
        Some(ServiceKind::Groups) => 250,
        Some(ServiceKind::Apps) => 50,
        Some(ServiceKind::Idps) => 1000,
        Some(ServiceKind::Zones) => 100,
        Some(ServiceKind::Clients) => 60,
        Some(_) | None => 600,
    }
}

/// A long policy header, as Okta sends on every answer.
const CSP: &str = "default-src 'self' sim.okta.com *.oktacdn.com; connect-src 'self' sim.okta.com sim-admin.okta.com *.oktacdn.com *.mixpanel.com *.mapbox.com app.pendo.io data.pendo.io pendo-static-5634101834153984.storage.googleapis.com *.authenticatorlocalprod.com:8769 http://localhost:8769 http://127.0.0.1:8769 https://oinmanager.okta.com data:; script-src 'unsafe-inline' 'unsafe-eval' 'self' sim.okta.com *.oktacdn.com; style-src 'unsafe-inline' 'self' sim.okta.com *.oktacdn.com app.pendo.io cdn.pendo.io; frame-src 'self' sim.okta.com sim-admin.okta.com login.okta.com; img-src 'self' sim.okta.com *.oktacdn.com *.tiles.mapbox.com *.mapbox.com app.pendo.io data.pendo.io cdn.pendo.io data: blob:; font-src 'self' sim.okta.com data: *.oktacdn.com fonts.gstatic.com; frame-ancestors 'self'";

/// `Title-Case` of a lowercase header name.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// A normal answer made as untidy as Okta's (see [`Options::untidy`]); `n` picks the forms.
fn untidy(mut reply: Reply, kind: Option<ServiceKind>, n: u64, gzip_ok: bool) -> Reply {
    let h = &mut reply.headers;
    if n % 2 == 1 {
        for (name, v) in h.iter_mut() {
            if name == "content-type" {
                *v = "application/json;charset=UTF-8".into();
            }
        }
    }
    // The advertised limit of the endpoint, unless the simulator enforces one.
    let enforced_looking = h
        .iter()
        .any(|(n, v)| n == "x-rate-limit-limit" && v != "1000000");
    if !enforced_looking {
        let limit = advertised_limit(kind);
        for (name, v) in h.iter_mut() {
            match name.as_str() {
                "x-rate-limit-limit" => *v = limit.to_string(),
                "x-rate-limit-remaining" => *v = (limit - 1).to_string(),
                _ => {}
            }
        }
    }
    if reply.status == 200 && n % 7 == 3 {
        // Some answers carry neither rate-limit headers nor a request id.
        h.retain(|(n, _)| !n.starts_with("x-rate-limit") && n != "x-okta-request-id");
    }
    if reply.status == 401 {
        h.push(("www-authenticate".into(), "SSWS".into()));
    }
    let links: Vec<String> = h
        .iter()
        .filter(|(n, _)| n == "link")
        .map(|(_, v)| v.clone())
        .collect();
    if links.len() == 2 {
        h.retain(|(n, _)| n != "link");
        match n % 3 {
            // One value holding both, as the System Log's recorded pages have it.
            0 => h.push(("link".into(), links.join(", "))),
            // `next` alone, as the recorded idps page has it.
            1 => h.push(("link".into(), links[1].clone())),
            _ => h.extend(links.into_iter().map(|l| ("link".to_string(), l))),
        }
    }
    h.push(("server".into(), "nginx".into()));
    h.push(("content-security-policy".into(), CSP.into()));
    h.push(("p3p".into(), "CP=\"HONK\"".into()));
    for cookie in [
        "sid=\"\"; Expires=Thu, 01-Jan-1970 00:00:10 GMT; Path=/",
        "JSESSIONID=E8C3FDC7FFE2574EECF96726E76FE6B1; Path=/; Secure; HttpOnly",
        "xids=\"\";Version=1;Path=/;Max-Age=0",
    ] {
        h.push(("set-cookie".into(), cookie.into()));
    }
    if n % 3 != 2 {
        for (name, _) in h.iter_mut() {
            *name = title_case(name);
        }
    }
    if n.is_multiple_of(2) {
        h.push(("Transfer-Encoding".into(), "chunked".into()));
    }
    if gzip_ok && reply.body.len() > 64 {
        use std::io::Write;
        let mut g = flate2::write::GzEncoder::new(
            Vec::with_capacity(reply.body.len() / 4),
            flate2::Compression::fast(),
        );
        if g.write_all(&reply.body).is_ok()
            && let Ok(z) = g.finish()
        {
            reply.body = z;
            reply
                .headers
                .push(("Content-Encoding".into(), "gzip".into()));
        }
    }
    reply
}

fn rate_headers(limit: u64, remaining: u64, reset: u64) -> Vec<(String, String)> {
    vec![
        ("x-rate-limit-limit".to_string(), limit.to_string()),
        ("x-rate-limit-remaining".to_string(), remaining.to_string()),
        ("x-rate-limit-reset".to_string(), reset.to_string()),
    ]
}

/// The uuid of event `i`: unique, shaped like Okta's.
pub fn uuid(i: u64) -> String {
    let h = mix(i);
    format!(
        "{:08x}-{:04x}-11ef-{:04x}-{:012x}",
        (h >> 32) as u32,
        (h >> 16) as u16,
        0x8000 | (h as u16 & 0x3fff),
        i
    )
}

/// The index of an event from its uuid (the inverse of [`uuid`]).
pub fn index_of(uuid: &str) -> Option<u64> {
    u64::from_str_radix(uuid.rsplit('-').next()?, 16).ok()
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const PEOPLE: [(&str, &str); 8] = [
    ("José Müller", "jose.muller@example.com"),
    ("渡辺 健", "ken.watanabe@example.co.jp"),
    ("Zoë Ødegaard", "zoe.odegaard@example.no"),
    ("Ελένη Παπαδοπούλου", "eleni.p@example.gr"),
    ("Amélie Dubois", "amelie.dubois@example.fr"),
    ("Ana Gonçalves", "ana.goncalves@example.com.br"),
    ("Okta System", "system@okta.com"),
    ("Sam O'Neil", "sam.oneil@example.com"),
];
const PLACES: [(&str, &str, &str, &str, f64, f64); 5] = [
    ("Zürich", "Zurich", "Switzerland", "8001", 47.3769, 8.5417),
    (
        "São Paulo",
        "Sao Paulo",
        "Brazil",
        "01000-000",
        -23.5505,
        -46.6333,
    ),
    ("東京", "Tokyo", "Japan", "100-0001", 35.6762, 139.6503),
    (
        "Dublin",
        "California",
        "United States",
        "94568",
        37.7201,
        -121.919,
    ),
    (
        "Kraków",
        "Lesser Poland",
        "Poland",
        "30-001",
        50.0647,
        19.945,
    ),
];
const TYPES: [(&str, &str, &str); 6] = [
    (
        "user.session.start",
        "core.user_auth.login_success",
        "User login to Okta",
    ),
    (
        "user.session.end",
        "core.user_auth.logout_success",
        "User logout from Okta",
    ),
    (
        "user.authentication.sso",
        "app.auth.sso",
        "User single sign on to app",
    ),
    (
        "policy.evaluate_sign_on",
        "",
        "Evaluation of sign-on policy",
    ),
    (
        "user.account.update_password",
        "core.user.config.password_update.success",
        "User update password for Okta",
    ),
    (
        "system.api_token.create",
        "api.token.create",
        "Create API token",
    ),
];

/// The JSON of event `i`: 1–3 KB, nested objects, unicode, nulls, the string "null", a JSON
/// document inside a string; every 50th event is published 90 s before its neighbours (late)
/// and every 997th is about 14 KB.
pub fn event(base_ms: u64, i: u64) -> String {
    event_padded(base_ms + i, i, event_reps(i))
}

/// The padding of event `i`: every 997th is large (about 14 KB), past rsyslog's default 8 KB
/// message limit.
fn event_reps(i: u64) -> usize {
    let h = mix(i ^ 0x5bd1_e995);
    if i % 997 == 996 {
        1_400
    } else {
        ((h >> 20) % 30) as usize
    }
}

/// `reply` mutated as `seed` picks (one to three changes). A mutation never changes what a
/// valid answer means: a body is only made invalid (cut short, or given a byte JSON allows
/// nowhere), a garbled `Link` is added beside the real one (so the answer is refused or reads
/// as before), and header values that pace the client are made unreadable, never "wait". A
/// client that loses an event to one of these lost it.
pub fn mutate(mut reply: Reply, seed: u64) -> Reply {
    let mut rng = fastrand::Rng::with_seed(seed);
    // Unreadable as numbers: ignored, as a missing header is.
    const NUMBERS: [&str; 5] = ["", "-1", "18446744073709551616", "abc", "\u{1b}[31m"];
    const LINKS: [&str; 5] = ["", "<>; rel=", "<", "x; rel=\"next\"", "<http://a>; rel"];
    const DATES: [&str; 4] = [
        "",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "yesterday",
        "Thu, 01 Jan 1970 00:00:00 GMT",
    ];
    let pick = |rng: &mut fastrand::Rng, from: &[&str]| from[rng.usize(0..from.len())].to_string();
    for _ in 0..rng.usize(1..=3) {
        match rng.u8(0..7) {
            0 if !reply.body.is_empty() => {
                let at = rng.usize(0..reply.body.len());
                reply.body.truncate(at);
            }
            1 => {
                let at = rng.usize(0..=reply.body.len());
                // 0xff is never UTF-8; 0x01 is allowed neither in a string nor between tokens.
                reply.body.insert(at, if rng.bool() { 0xff } else { 0x01 });
            }
            2 => {
                let v = pick(&mut rng, &LINKS);
                reply.headers.push(("link".into(), v));
            }
            3 => {
                let name = [
                    "x-rate-limit-reset",
                    "x-rate-limit-remaining",
                    "x-rate-limit-limit",
                ][rng.usize(0..3)];
                let v = pick(&mut rng, &NUMBERS);
                reply.headers.retain(|(n, _)| n != name);
                reply.headers.push((name.into(), v));
            }
            4 => {
                let v = pick(&mut rng, &DATES);
                reply.headers.retain(|(n, _)| n != "date");
                reply.headers.push(("date".into(), v));
            }
            5 => {
                reply.status =
                    [201, 204, 301, 400, 401, 403, 404, 418, 500, 502, 503][rng.usize(0..11)]
            }
            _ => {
                let n = rng.usize(1..20);
                reply
                    .headers
                    .extend((0..n).map(|i| (format!("x-junk-{i}"), "x".repeat(rng.usize(0..400)))));
            }
        }
    }
    reply
}

/// Event `i`, persisted at `ms`, with its `requestUri` padded by `reps` × 10 bytes.
fn event_padded(ms: u64, i: u64, reps: usize) -> String {
    let h = mix(i ^ 0x5bd1_e995);
    let (name, login) = PEOPLE[(h % PEOPLE.len() as u64) as usize];
    let (city, state, country, postal, lat, lon) =
        PLACES[((h >> 8) % PLACES.len() as u64) as usize];
    let (etype, legacy, msg) = TYPES[((h >> 16) % TYPES.len() as u64) as usize];
    let late = if i % 50 == 49 { 90_000 } else { 0 };
    let published =
        crate::time::format_millis(UNIX_EPOCH + Duration::from_millis(ms.saturating_sub(late)));
    let ip = format!(
        "{}.{}.{}.{}",
        10 + (h >> 24) % 200,
        (h >> 32) % 256,
        (h >> 40) % 256,
        1 + (h >> 48) % 254
    );
    let legacy = if legacy.is_empty() {
        "null".to_string()
    } else {
        format!("\"{legacy}\"")
    };
    let outcome = if h.is_multiple_of(11) {
        r#"{"reason":"INVALID_CREDENTIALS","result":"FAILURE"}"#
    } else {
        r#"{"reason":null,"result":"SUCCESS"}"#
    };
    let pad = "a1b2c3d4e5".repeat(reps);
    let zone = if h.is_multiple_of(3) {
        "\"null\"".to_string()
    } else {
        "null".to_string()
    };
    let target = if h.is_multiple_of(4) {
        "null".to_string()
    } else {
        format!(
            r#"[{{"alternateId":"{login}","detailEntry":null,"displayName":"{name}","id":"00u{:017x}","type":"User"}}]"#,
            h >> 4
        )
    };
    format!(
        concat!(
            r#"{{"actor":{{"alternateId":"{login}","detailEntry":null,"displayName":"{name}","id":"00u{actor:017x}","type":"User"}},"#,
            r#""authenticationContext":{{"authenticationProvider":null,"authenticationStep":0,"credentialProvider":null,"credentialType":null,"externalSessionId":"102{sess:022x}","interface":null,"issuer":null}},"#,
            r#""client":{{"device":"Computer","geographicalContext":{{"city":"{city}","country":"{country}","geolocation":{{"lat":{lat},"lon":{lon}}},"postalCode":"{postal}","state":"{state}"}},"id":null,"ipAddress":"{ip}","userAgent":{{"browser":"FIREFOX","os":"Mac OS X","rawUserAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:72.0) Gecko/20100101 Firefox/72.0"}},"zone":{zone}}},"#,
            r#""debugContext":{{"debugData":{{"requestId":"X{req:023x}","requestUri":"/api/v1/authn/{pad}","threatSuspected":"false","behaviors":"{{\"New Geo-Location\":\"NEGATIVE\",\"New Device\":\"POSITIVE\"}}","url":"/login/do-login?seq={i}"}}}},"#,
            r#""displayMessage":"{msg}","eventType":"{etype}","legacyEventType":{legacy},"outcome":{outcome},"published":"{published}","#,
            r#""request":{{"ipChain":[{{"geographicalContext":{{"city":"{city}","country":"{country}","geolocation":{{"lat":{lat},"lon":{lon}}},"postalCode":"{postal}","state":"{state}"}},"ip":"{ip}","source":null,"version":"V4"}}]}},"#,
            r#""securityContext":{{"asNumber":null,"asOrg":null,"domain":null,"isProxy":null,"isp":null}},"severity":"INFO","target":{target},"#,
            r#""transaction":{{"detail":{{}},"id":"X{req:023x}","type":"WEB"}},"uuid":"{uuid}","version":"0"}}"#
        ),
        login = login,
        name = name,
        actor = h >> 3,
        sess = h,
        city = city,
        country = country,
        lat = lat,
        lon = lon,
        postal = postal,
        state = state,
        ip = ip,
        zone = zone,
        req = h.rotate_left(7),
        pad = pad,
        i = i,
        msg = msg,
        etype = etype,
        legacy = legacy,
        outcome = outcome,
        published = published,
        target = target,
        uuid = uuid(i),
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn untidy_answers_take_each_of_oktas_forms() {
        let page = || Reply {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-okta-request-id".into(), "r".into()),
                ("x-rate-limit-limit".into(), "1000000".into()),
                ("x-rate-limit-remaining".into(), "999999".into()),
                ("x-rate-limit-reset".into(), "1".into()),
                ("link".into(), "<http://a/x>; rel=\"self\"".into()),
                ("link".into(), "<http://a/x?after=1>; rel=\"next\"".into()),
            ],
            body: vec![b' '; 1000],
        };
        let (mut merged, mut next_only, mut bare, mut titled, mut chunked, mut charset) =
            (false, false, false, false, false, false);
        for n in 0..42 {
            let r = untidy(page(), Some(ServiceKind::Logs), n, true);
            let get = |name: &str| {
                r.headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str())
                    .collect::<Vec<_>>()
            };
            let links = get("link");
            merged |= links.len() == 1 && links[0].contains("self") && links[0].contains("next");
            next_only |= links.len() == 1 && !links[0].contains("self");
            bare |= get("x-rate-limit-limit").is_empty() && get("x-okta-request-id").is_empty();
            titled |= r.headers.iter().any(|(k, _)| k == "Content-Type");
            chunked |= get("transfer-encoding") == ["chunked"];
            charset |= get("content-type") == ["application/json;charset=UTF-8"];
            assert_eq!(get("set-cookie").len(), 3);
            assert_eq!(get("content-encoding"), ["gzip"]);
            let limit = get("x-rate-limit-limit");
            assert!(limit.is_empty() || limit == ["120"], "{limit:?}");
        }
        assert!(merged && next_only && bare && titled && chunked && charset);
        let denied = untidy(
            Reply {
                status: 401,
                headers: Vec::new(),
                body: Vec::new(),
            },
            None,
            2,
            false,
        );
        assert!(
            denied
                .headers
                .contains(&("www-authenticate".into(), "SSWS".into()))
        );
    }

    use super::*;

    #[test]
    fn events_are_valid_json_of_realistic_size_with_unique_uuids() {
        let mut total = 0;
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000 {
            let e = event(1_700_000_000_000, i);
            let v: serde_json::Value = serde_json::from_str(&e).unwrap();
            assert_eq!(v["uuid"].as_str().unwrap(), uuid(i));
            assert_eq!(index_of(&uuid(i)), Some(i));
            assert!(seen.insert(uuid(i)));
            if i % 997 == 996 {
                assert!(e.len() > 8192, "event {i} is one of the large ones");
                continue;
            }
            assert!(
                (900..3200).contains(&e.len()),
                "event {i} is {} bytes",
                e.len()
            );
            total += e.len();
        }
        let avg = total / 1998;
        assert!((1200..2200).contains(&avg), "average {avg}");
        println!("average event size {avg} bytes");
    }
}
