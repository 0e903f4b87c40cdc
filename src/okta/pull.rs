//! What every service's puller shares: the cycle loop with its backoff, one request with 429
//! waits and shutdown, page checks (body, `Link`, origin), spool commits, and the seed's
//! statistics line. The service-specific parts are in `logs.rs` and `inventory.rs`.

use super::client::{Client, FetchError, Response};
use super::{PULL_300, PULL_301, PULL_302, link, page};
use crate::config::{PullMode, Service, SpoolLimits};
use crate::shutdown::Shutdown;
use crate::time::jitter;
use spool::Spool;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Counters shared with the demo and the metrics endpoint.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events written to the spool.
    pub spooled: AtomicU64,
    /// Events dropped as duplicates (boundary uuids, re-listed objects, unchanged snapshots).
    pub duplicates: AtomicU64,
    /// Okta answers by HTTP status (0: no answer: connect error, timeout, reset).
    pub requests: std::sync::Mutex<std::collections::BTreeMap<u16, u64>>,
    /// The last `X-Rate-Limit-Remaining` seen, plus one (0: none seen yet).
    pub rate_remaining: AtomicU64,
    /// When a cycle last caught up, Unix seconds (0: never).
    pub last_pull: AtomicU64,
    /// Per commit since start: its first event's sequence number and time (Unix ms), for the
    /// age of the oldest event waiting (see [`Counters::oldest_waiting_ms`]).
    pub commits: std::sync::Mutex<std::collections::VecDeque<(u64, u64)>>,
}

/// Commits remembered for the oldest-waiting age (16 bytes each).
const COMMITS_KEPT: usize = 100_000;

impl Counters {
    /// The time (Unix ms) of the oldest event after `acked` (the slowest output's ack), as
    /// the first event of the commit that holds it; `None` when unknown (events spooled
    /// before this start, or no time in them).
    pub fn oldest_waiting_ms(&self, acked: u64) -> Option<u64> {
        let mut c = crate::lock(&self.commits);
        // Commits wholly before the ack are gone: keep the one the ack falls in.
        while c.len() > 1 && c.get(1).is_some_and(|(seq, _)| *seq <= acked) {
            c.pop_front();
        }
        c.front().map(|(_, ms)| *ms)
    }

    fn answered(&self, status: u16) {
        let mut m = crate::lock(&self.requests);
        *m.entry(status).or_insert(0) += 1;
    }
}

/// One running service: its client, spool and settings.
#[derive(Debug)]
pub struct Puller {
    /// The Okta client.
    pub client: Arc<Client>,
    /// This service's spool.
    pub spool: Spool,
    /// The service's settings.
    pub service: Service,
    /// Log prefix, e.g. `OktaResourcesPuller(okta#65294,logs#predefined)`.
    pub label: String,
    /// Shared counters.
    pub counters: Arc<Counters>,
    /// Request pacing (local budgets and Okta's headers).
    pub pacer: super::budget::Pacer,
    /// The shutdown flag, set by `run` (a retried spool write gives up on it too).
    pub stop: Shutdown,
    /// When the spool counts as full.
    pub spool_limits: SpoolLimits,
    /// Set while a spool write is failing and being retried: nothing is fetched ahead then.
    pub write_failing: std::sync::atomic::AtomicBool,
    /// Bytes of the commit in progress: not in the spool's durable end yet, but counted
    /// against its bound, so a page fetched ahead during a commit cannot take it further
    /// past the bound than one page.
    pub committing_bytes: AtomicU64,
}

/// A fatal puller error (the spool can no longer be written): the crate's one [`Fatal`].
pub use crate::Fatal;

/// Why a puller stops mid-way: a fatal error, or shutdown while waiting to write.
#[derive(Debug)]
pub(crate) enum Halt {
    /// See [`Fatal`].
    Fatal(String),
    /// Shutdown came while a write was being retried; nothing of it was committed.
    Shutdown,
}

/// How a cycle ended.
pub(crate) enum CycleEnd {
    /// Caught up (an empty page, or the end of a listing).
    UpToDate,
    /// Stopped by shutdown.
    Shutdown,
    /// A retryable problem, already logged: retry with backoff (reset first if the cycle
    /// took pages before it failed).
    Failed {
        /// Whether the cycle took a page before failing.
        progress: bool,
    },
    /// The org refuses or lacks this endpoint, already logged: retry after a full period.
    Unavailable,
}

/// One cycle's figures, for the statistics line.
#[derive(Default)]
pub(crate) struct Stats {
    /// Pages taken (committed or staged) this cycle.
    pub pages: u64,
    pub requests: u64,
    pub received: u64,
    pub duplicates: u64,
    pub sent: u64,
}

/// The outcome of one request.
pub(crate) enum Got {
    /// A 2xx answer.
    Page(Response),
    /// Shutdown came first; nothing of the request counts.
    Shutdown,
    /// An error, already logged; the cycle should end this way.
    Failed(CycleEnd),
    /// Okta no longer honours the cursor in the URL (400 E0000029, "Invalid cursor."), logged:
    /// the caller goes on from what it knows without it.
    InvalidCursor,
}

impl Stats {
    /// A failed cycle's end.
    pub fn failed(&self) -> CycleEnd {
        CycleEnd::Failed {
            progress: self.pages > 0,
        }
    }
}

/// Events for the spool, as ranges of buffers: each a page's response body itself, with any
/// event rewritten onto one line appended after it. Pages go to the spool's blocking write
/// without a copy (and an allocation) per event, and several pages can go as one frame.
#[derive(Debug, Default)]
pub(crate) struct Events {
    parts: Vec<(Vec<u8>, Vec<std::ops::Range<usize>>)>,
}

/// Where an event of a page is: in the body, or rewritten.
pub(crate) enum Span {
    InBody(std::ops::Range<usize>),
    Rewritten(String),
}

impl Events {
    /// Where each line is: a line borrowed from `body` becomes its range there.
    pub fn spans(body: &[u8], lines: Vec<std::borrow::Cow<'_, str>>) -> Vec<Span> {
        let base = body.as_ptr() as usize;
        lines
            .into_iter()
            .map(|line| {
                let at = (line.as_ptr() as usize).wrapping_sub(base);
                match line {
                    std::borrow::Cow::Borrowed(l)
                        if at.checked_add(l.len()).is_some_and(|end| end <= body.len()) =>
                    {
                        Span::InBody(at..at + l.len())
                    }
                    other => Span::Rewritten(other.into_owned()),
                }
            })
            .collect()
    }

    /// The events at `spans`, taking `body` over.
    pub fn new(mut buf: Vec<u8>, spans: Vec<Span>) -> Events {
        let ranges = spans
            .into_iter()
            .map(|span| match span {
                Span::InBody(r) => r,
                Span::Rewritten(line) => {
                    let start = buf.len();
                    buf.extend_from_slice(line.as_bytes());
                    start..buf.len()
                }
            })
            .collect();
        Events {
            parts: vec![(buf, ranges)],
        }
    }

    /// A copy of `events` in one buffer.
    pub fn copied(events: &[&[u8]]) -> Events {
        let mut buf = Vec::with_capacity(events.iter().map(|e| e.len()).sum());
        let mut ranges = Vec::with_capacity(events.len());
        for e in events {
            let start = buf.len();
            buf.extend_from_slice(e);
            ranges.push(start..buf.len());
        }
        Events {
            parts: vec![(buf, ranges)],
        }
    }

    /// `other`'s events after these.
    pub fn extend(&mut self, mut other: Events) {
        self.parts.append(&mut other.parts);
    }

    /// The first event's bytes.
    pub fn first(&self) -> Option<&[u8]> {
        self.parts
            .iter()
            .find_map(|(buf, ranges)| ranges.first().map(|r| &buf[r.clone()]))
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|(_, r)| r.len()).sum()
    }

    /// Bytes held (bodies included).
    pub fn bytes(&self) -> usize {
        self.parts.iter().map(|(b, _)| b.len()).sum()
    }

    /// Each event's bytes, in order.
    pub fn slices(&self) -> Vec<&[u8]> {
        self.parts
            .iter()
            .flat_map(|(buf, ranges)| ranges.iter().map(|r| &buf[r.clone()]))
            .collect()
    }
}

impl Drop for Events {
    /// The bodies go back for the next pages to be read into.
    fn drop(&mut self) {
        for (buf, _) in self.parts.drain(..) {
            super::client::recycle_body(buf);
        }
    }
}

/// A checked page: its items, exactly as sent, and the next link, if any.
pub(crate) struct Page<'a> {
    pub items: Vec<page::Item<'a>>,
    pub next: Option<String>,
}

impl Puller {
    /// Runs until shutdown: restores the service's cursor, then runs cycles. After a cycle
    /// that caught up (or found the endpoint unavailable) it waits a period; after a failure it
    /// backs off from 1 s to 60 s (at most a period). Returns `Err` only if the spool fails
    /// fatally.
    ///
    /// # Errors
    /// [`Fatal`] when the spool cannot be written any more.
    pub async fn run(mut self, shutdown: Shutdown) -> Result<(), Fatal> {
        self.stop = shutdown;
        match self.run_cycles().await {
            Ok(()) | Err(Halt::Shutdown) => Ok(()),
            Err(Halt::Fatal(e)) => Err(Fatal(e)),
        }
    }

    async fn run_cycles(&self) -> Result<(), Halt> {
        use super::{inventory, logs};
        let shutdown = &self.stop;
        enum State {
            Logs(super::cursor::LogsCursor),
            Incremental(inventory::IncrementalCursor),
            Snapshot(inventory::SnapshotCursor),
        }
        let mut state = match self.service.kind.mode() {
            PullMode::Poll => State::Logs(logs::restore(self).await?),
            PullMode::Incremental => {
                State::Incremental(inventory::restore_incremental(self).await?)
            }
            PullMode::Snapshot => State::Snapshot(inventory::restore_snapshot(self)),
        };
        log::info!(
            "{} -> Starting data collection every {} seconds",
            self.label,
            self.service.period.as_secs()
        );
        let mut backoff = Duration::from_secs(1);
        loop {
            if shutdown.is_set() {
                return Ok(());
            }
            let end = match &mut state {
                State::Logs(c) => logs::cycle(self, c, shutdown).await?,
                State::Incremental(c) => inventory::incremental_cycle(self, c, shutdown).await?,
                State::Snapshot(c) => inventory::snapshot_cycle(self, c, shutdown).await?,
            };
            let wait = match end {
                CycleEnd::Shutdown => return Ok(()),
                CycleEnd::UpToDate | CycleEnd::Unavailable => {
                    backoff = Duration::from_secs(1);
                    if matches!(state, State::Logs(_)) {
                        // Caught up: the System Log's page buffers are not kept for a period.
                        super::client::release_spare_bodies();
                    }
                    self.service.period
                }
                CycleEnd::Failed { progress } => {
                    if progress {
                        // Only consecutive failures back off further.
                        backoff = Duration::from_secs(1);
                    }
                    let w = backoff.min(self.service.period.max(Duration::from_secs(1)));
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    jitter(w)
                }
            };
            if shutdown.sleep(wait).await {
                return Ok(());
            }
        }
    }

    /// GETs `url`: waits out 429s and retries the same URL; logs anything else that is not a
    /// 2xx. A request in flight when shutdown comes is abandoned: nothing of it was committed,
    /// so the next start asks for the same page.
    pub(crate) async fn get(&self, url: &str, shutdown: &Shutdown, stats: &mut Stats) -> Got {
        let label = &self.label;
        let mut concurrency_backoff = Duration::from_secs(1);
        loop {
            if self.wait_for_room(shutdown).await || self.pace(shutdown).await {
                return Got::Shutdown;
            }
            let client = self.client.clone();
            let fetch_url = url.to_string();
            let fetch = async { Some(smol::unblock(move || client.get(&fetch_url)).await) };
            let stop = async {
                shutdown.wait().await;
                None
            };
            let Some(resp) = smol::future::or(fetch, stop).await else {
                return Got::Shutdown;
            };
            stats.requests += 1;
            self.counters
                .answered(resp.as_ref().map_or(0, |r| r.status));
            if let Ok(r) = &resp
                && let Some(left) = r.rate_remaining
            {
                self.counters
                    .rate_remaining
                    .store(left.saturating_add(1), Ordering::Relaxed);
            }
            let resp = match resp {
                Ok(r) => r,
                Err(FetchError::Transport(e)) => {
                    log::error!("{label} -> {PULL_301}: {e}. The cursor is kept; retrying.");
                    return Got::Failed(stats.failed());
                }
                Err(FetchError::Auth(e)) => {
                    log::error!(
                        "{label} -> {}: OAuth: {e}. The cursor is kept; retrying.",
                        super::SETUP_100
                    );
                    return Got::Failed(stats.failed());
                }
                Err(e) => {
                    log::error!("{label} -> {PULL_302}: {e}. The cursor is kept; retrying.");
                    return Got::Failed(stats.failed());
                }
            };
            self.pacer.observe(&resp, Instant::now());
            match resp.status {
                200..=299 => return Got::Page(resp),
                429 if resp.is_concurrency_limit() => {
                    let wait = jitter(concurrency_backoff);
                    concurrency_backoff = (concurrency_backoff * 2).min(Duration::from_secs(60));
                    log::warn!(
                        "{label} -> Okta's concurrency limit reached: too many simultaneous requests in the org ({}); waiting {:.1}s, then retrying the same page.",
                        resp.error_details(),
                        wait.as_secs_f64()
                    );
                    if shutdown.sleep(wait).await {
                        return Got::Shutdown;
                    }
                }
                429 => {
                    let wait = jitter(resp.rate_limit_wait());
                    log::warn!(
                        "{label} -> Okta rate limit reached ({}); waiting {:.1}s for the window's reset, then retrying the same page.",
                        resp.error_details(),
                        wait.as_secs_f64()
                    );
                    if shutdown.sleep(wait).await {
                        return Got::Shutdown;
                    }
                }
                401 | 403 | 404 => {
                    log::error!(
                        "{label} -> {} The other services go on; this one retries in {} seconds.",
                        super::http_error(&resp, false, self.service.kind),
                        self.service.period.as_secs()
                    );
                    return Got::Failed(CycleEnd::Unavailable);
                }
                400 if resp.is_invalid_cursor() => {
                    log::warn!(
                        "{label} -> {PULL_300}: Okta no longer honours the cursor of {} ({}).",
                        crate::logging::escape_controls(url),
                        resp.error_details()
                    );
                    return Got::InvalidCursor;
                }
                _ => {
                    log::error!(
                        "{label} -> {}. The cursor is kept; retrying.",
                        super::http_error(&resp, false, self.service.kind)
                    );
                    return Got::Failed(stats.failed());
                }
            }
        }
    }

    /// Why the spool cannot take another page now, if it cannot.
    ///
    /// The bound counts what the outputs have still to send (plus the commit in progress),
    /// not the bytes on disk: delivered bytes are deleted by the spool itself (a sealed
    /// segment as soon as every output has it), so counting them could keep a puller paused
    /// for good after an outage. A request goes out while less than the bound waits, so the
    /// spool waits at most the bound plus one page; a page larger than the bound goes
    /// through alone once everything before it is delivered.
    fn full(&self) -> Option<String> {
        let limits = self.spool_limits;
        if let Ok(waiting) = self.spool.waiting_bytes() {
            let bytes = waiting + self.committing_bytes.load(Ordering::Relaxed);
            if bytes >= limits.max_bytes_per_table {
                return Some(format!(
                    "its spool holds {bytes} bytes not yet delivered, at globals.spool.max_bytes_per_table ({})",
                    limits.max_bytes_per_table
                ));
            }
        }
        let (free, total) = crate::sys::disk_space(self.spool.dir())?;
        let min_free = limits
            .min_free_bytes
            .unwrap_or_else(|| (1 << 30).min(total / 20));
        (free < min_free).then(|| {
            format!(
                "the disk of {} has {free} bytes free, under globals.spool.min_free_bytes ({min_free})",
                self.spool.dir().display()
            )
        })
    }

    /// Waits while the spool is full: the puller pauses (the data waits at Okta, which keeps
    /// the System Log 90 days) and resumes by itself once the forwarder has drained some.
    /// Returns true if shutdown came first.
    async fn wait_for_room(&self, shutdown: &Shutdown) -> bool {
        let Some(why) = self.full() else {
            return false;
        };
        log::warn!(
            "{} -> Pulling is paused: {why}. Nothing is dropped; it resumes by itself when the output has sent enough (is Devo reachable?).",
            self.label
        );
        let paused = Instant::now();
        loop {
            if shutdown.sleep(Duration::from_millis(500)).await {
                return true;
            }
            if self.full().is_none() {
                log::info!(
                    "{} -> Pulling resumes: the spool has room again (paused {:.0}s).",
                    self.label,
                    paused.elapsed().as_secs_f64()
                );
                return false;
            }
        }
    }

    /// Waits until the local budgets and Okta's headers allow one more request, and takes it.
    /// Returns true if shutdown came first.
    async fn pace(&self, shutdown: &Shutdown) -> bool {
        use super::budget::Wait;
        loop {
            let wait = match self.pacer.try_take(Instant::now()) {
                Ok(()) => return false,
                Err(Wait::Local(d)) => {
                    // A short wait is routine pacing; a long one explains a pause in pulling.
                    let level = if d >= Duration::from_secs(5) {
                        log::Level::Info
                    } else {
                        log::Level::Debug
                    };
                    log::log!(
                        level,
                        "{} -> Local request budget used up (requests_limits, or globals.requests_per_minute for all services); waiting {:.1}s.",
                        self.label,
                        d.as_secs_f64()
                    );
                    d
                }
                Err(Wait::Okta(d)) => {
                    // Up to 1 s of jitter: enough to spread agents, little of the window lost.
                    let d = d.max(Duration::from_secs(1))
                        + Duration::from_millis(fastrand::u64(0..1000));
                    log::info!(
                        "{} -> Okta's rate-limit window for {} is down to its last 5%, kept for the rest of the org; waiting {:.1}s for its reset.",
                        self.label,
                        self.service.kind.path(),
                        d.as_secs_f64()
                    );
                    d
                }
            };
            if shutdown.sleep(wait).await {
                return true;
            }
        }
    }

    /// Checks a 2xx page: a JSON array of objects, a `Link` header that parses, a next link
    /// on the org's origin (never followed elsewhere: the token would leak), and no next link
    /// equal to `url` after a non-empty page (a loop; only an empty System Log page may point to
    /// itself). Logs and returns `None` if any check fails.
    pub(crate) fn check_page<'a>(&self, url: &str, resp: &'a Response) -> Option<Page<'a>> {
        let label = &self.label;
        let items = match page::split(&resp.body, self.service.kind.max_page_items()) {
            Ok(items) => items,
            Err(e) => {
                log::error!(
                    "{label} -> {PULL_302}: {e} ({}). The cursor is kept; retrying.",
                    resp.error_details()
                );
                return None;
            }
        };
        let next = match link::next(resp.links.iter().map(String::as_str)) {
            Ok(n) => n,
            Err(bad) => {
                log::error!(
                    "{label} -> {PULL_302}: the Link header {bad:?} does not parse. The cursor is kept; retrying."
                );
                return None;
            }
        };
        if let Some(n) = &next {
            if !self.client.url().same_origin(n) {
                log::error!(
                    "{label} -> {PULL_302}: the next link {n:?} points to another host than okta_url; it is not followed (the API token would leak). The cursor is kept."
                );
                return None;
            }
            if n == url && !items.is_empty() {
                log::error!(
                    "{label} -> {PULL_302}: the next link is the page just read ({n:?}) although it held {} items: a loop. The cursor is kept; retrying.",
                    items.len()
                );
                return None;
            }
        }
        Some(Page { items, next })
    }

    /// Appends events and cursor as one durable frame (committing any pending frames before
    /// it), retrying while the disk refuses the write.
    ///
    /// The commit counts against the spool's bound from the call on, before the returned
    /// future is first polled: a fetch started beside it sees it.
    pub(crate) fn commit(
        &self,
        events: Events,
        cursor: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<(), Halt>> + Send + '_ {
        let n = events.len() as u64;
        self.committing_bytes
            .store(events.bytes() as u64, Ordering::Relaxed);
        // One event parsed per commit, for the oldest-waiting age.
        let first_ms = events.first().and_then(super::page::event_time_ms);
        let batch = Arc::new((events, cursor));
        async move {
            let written = self
                .write_retrying(move |spool: &Spool| {
                    spool.append(&batch.0.slices(), &batch.1).map(|_| ())
                })
                .await;
            self.committing_bytes.store(0, Ordering::Relaxed);
            written?;
            self.counters.spooled.fetch_add(n, Ordering::Relaxed);
            if let Some(ms) = first_ms {
                let first = self.spool.durable().next_seq.saturating_sub(n);
                let mut c = crate::lock(&self.counters.commits);
                if c.len() == COMMITS_KEPT {
                    c.pop_front();
                }
                c.push_back((first, ms));
            }
            Ok(())
        }
    }

    /// Writes events as pending frames of the open transaction (see `spool`), retrying while
    /// the disk refuses the write. They count as spooled only once committed.
    pub(crate) async fn stage(&self, events: &[&[u8]]) -> Result<(), Halt> {
        if events.is_empty() {
            return Ok(());
        }
        let batch = Arc::new(Events::copied(events));
        self.write_retrying(move |spool: &Spool| spool.append_pending(&batch.slices()))
            .await
    }

    /// Discards the open transaction.
    pub(crate) async fn abort(&self) -> Result<(), Halt> {
        let spool = self.spool.clone();
        smol::unblock(move || spool.abort_pending())
            .await
            .map_err(|e| Halt::Fatal(e.to_string()))
    }

    /// Runs a spool write on the blocking pool; a non-fatal error (e.g. ENOSPC, after which the
    /// spool has cut the file back to its last durable end) pauses the puller and retries every
    /// 1, 2, 4, then 5 s, so appends resume within 5 s of space coming back.
    async fn write_retrying<F>(&self, write: F) -> Result<(), Halt>
    where
        F: Fn(&Spool) -> Result<(), spool::Error> + Send + Sync + 'static,
    {
        let write = Arc::new(write);
        let mut wait = Duration::from_secs(1);
        loop {
            let spool = self.spool.clone();
            let w = write.clone();
            match smol::unblock(move || w(&spool)).await {
                Ok(()) => {
                    self.write_failing.store(false, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) if e.is_fatal() => return Err(Halt::Fatal(e.to_string())),
                Err(e) => {
                    self.write_failing.store(true, Ordering::Relaxed);
                    log::error!(
                        "{} -> Cannot write to the spool: {e}. Pulling is paused; retrying in {}s.",
                        self.label,
                        wait.as_secs()
                    );
                    if self.stop.sleep(wait).await {
                        return Err(Halt::Shutdown);
                    }
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// The seed's statistics line for a cycle, and "The data is up to date!" when it caught up.
    pub(crate) fn log_stats(
        &self,
        stats: &Stats,
        started: Instant,
        pulling_id: u64,
        end: &CycleEnd,
    ) {
        let secs = started.elapsed().as_secs_f64();
        log::info!(
            "{} -> Statistics for this pull cycle (@devo_pulling_id={pulling_id}):Number of requests made: {}; \
             Number of events received: {}; Number of duplicated events filtered out: {}; \
             Number of events generated and sent: {}; Average of events per second: {:.3}.",
            self.label,
            stats.requests,
            stats.received,
            stats.duplicates,
            stats.sent,
            if secs > 0.0 {
                stats.sent as f64 / secs
            } else {
                0.0
            }
        );
        self.counters
            .duplicates
            .fetch_add(stats.duplicates, Ordering::Relaxed);
        if matches!(end, CycleEnd::UpToDate) {
            self.counters.last_pull.store(
                crate::time::unix_millis(SystemTime::now()) as u64 / 1000,
                Ordering::Relaxed,
            );
            log::info!("{} -> The data is up to date!", self.label);
        }
    }
}

/// The `@devo_pulling_id` of a cycle starting now.
pub(crate) fn pulling_id() -> u64 {
    crate::time::unix_millis(SystemTime::now()) as u64
}
