//! One running service's puller and what every pull mode does with it: one request (pacing,
//! 429 waits, shutdown), a page's checks (body, `Link`, origin), spool commits that retry
//! while the disk refuses them, and the seed's statistics line. The modes (`logs`,
//! `incremental`, `snapshot`) use these; this file knows none of them (`cycle.rs` does).

use super::api::Class;
use super::body::Events;
use super::client::{Client, Response};
use super::{link, page};
use crate::backoff::Backoff;
use crate::config::{Service, SpoolLimits};
use crate::errors::ErrorId::{Pull300 as PULL_300, Pull302 as PULL_302};
use crate::shutdown::Shutdown;
use crate::time::jitter;
use spool::Spool;
use std::os::unix::fs::OpenOptionsExt;
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
    /// Events left out by each `drop` or `sample` rule, by the rule's label.
    pub filtered: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
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
    pub(crate) client: Arc<Client>,
    /// This service's spool.
    pub(crate) spool: Spool,
    /// The service's settings.
    pub(crate) service: Service,
    /// Log prefix, e.g. `OktaResourcesPuller(okta#65294,logs#predefined)`.
    pub(crate) label: String,
    /// Shared counters.
    pub(crate) counters: Arc<Counters>,
    /// Request pacing (local budgets and Okta's headers).
    pub(crate) pacer: super::budget::Pacer,
    /// The pipeline's flag for its pullers (a retried spool write gives up on it too).
    pub(crate) stop: Shutdown,
    /// When the spool counts as full.
    pub(crate) spool_limits: SpoolLimits,
    /// Set while a spool write is failing and being retried: nothing is fetched ahead then.
    pub(crate) write_failing: std::sync::atomic::AtomicBool,
    /// Bytes of the commit in progress: not in the spool's durable end yet, but counted
    /// against its bound, so a page fetched ahead during a commit cannot take it further
    /// past the bound than one page.
    pub(crate) committing_bytes: AtomicU64,
    /// Bytes of the open transaction's pending frames (a snapshot listing in progress): they
    /// count against the spool's bound, and a listing that cannot fit is rolled back.
    staged_bytes: AtomicU64,
    /// An entitlement service's System Log feed: the `logs` spool and this service's consumer
    /// index in it (`None`: `logs` is off, full listings only).
    pub(crate) feed: Option<(Spool, usize)>,
    /// The outputs among that spool's consumers (the first ones).
    pub(crate) feed_outputs: usize,
    /// Set when [`Puller::release_feed_if_lagging`] moved the feed's position: the reader
    /// follows it.
    pub(crate) feed_released: std::sync::atomic::AtomicBool,
    /// An entitlement service's folder for what it knows (`None` for the other services).
    pub(crate) state_dir: Option<std::path::PathBuf>,
}

/// A fatal puller error (the spool can no longer be written): the crate's one [`Fatal`].
pub use crate::Fatal;

/// Why a puller stops mid-way: a fatal error, or shutdown while waiting to write.
#[derive(Debug)]
pub(crate) enum Halt {
    /// See [`Fatal`].
    Fatal(Fatal),
    /// Shutdown came while a write was being retried; nothing of it was committed.
    Shutdown,
}

impl Halt {
    /// A cursor that cannot be encoded: fatal, never an empty cursor committed.
    pub(crate) fn cursor(e: String) -> Halt {
        Halt::Fatal(Fatal::Cursor(e))
    }
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
    /// Events left out by `drop` and `sample` rules.
    pub filtered: u64,
}

/// The outcome of one request.
pub(crate) enum Got {
    /// A 2xx answer.
    Page(Response),
    /// A 404, when the caller asked for one object that may not exist
    /// ([`Puller::get_or_missing`]).
    Missing,
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

/// A checked page: its items, exactly as sent, and the next link, if any.
pub(crate) struct Page<'a> {
    pub items: Vec<page::Item<'a>>,
    pub next: Option<String>,
}

impl Puller {
    /// The puller of `service`, writing to `spool`. `stop` is the pipeline's flag for its
    /// pullers: a spool write being retried gives up on it too.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        input_id: &str,
        service: Service,
        client: Arc<Client>,
        spool: Spool,
        counters: Arc<Counters>,
        pacer: super::budget::Pacer,
        spool_limits: SpoolLimits,
        stop: Shutdown,
    ) -> Puller {
        Puller {
            label: format!(
                "OktaResourcesPuller(okta#{input_id},{}#predefined)",
                service.kind.name()
            ),
            client,
            spool,
            service,
            counters,
            pacer,
            stop,
            spool_limits,
            write_failing: Default::default(),
            committing_bytes: Default::default(),
            staged_bytes: Default::default(),
            feed: None,
            feed_outputs: 0,
            feed_released: Default::default(),
            state_dir: None,
        }
    }

    /// Makes this an entitlement service's puller: what it knows lives in `state_dir`, and
    /// it follows the System Log through `feed` (the `logs` spool and its consumer index).
    pub(crate) fn with_entitlements(
        mut self,
        state_dir: std::path::PathBuf,
        feed: Option<(Spool, usize)>,
        outputs: usize,
    ) -> Puller {
        self.state_dir = Some(state_dir);
        self.feed = feed;
        self.feed_outputs = outputs;
        self
    }

    /// GETs `url`: waits out 429s and retries the same URL; logs anything else that is not a
    /// 2xx. A request in flight when shutdown comes is abandoned: nothing of it was committed,
    /// so the next start asks for the same page.
    pub(crate) async fn get(&self, url: &str, shutdown: &Shutdown, stats: &mut Stats) -> Got {
        self.request(url, shutdown, stats, false).await
    }

    /// [`Puller::get`] for one object that may not exist: a 404 is [`Got::Missing`] (Okta's
    /// `E0000007` for an assignment that is not there), not a setup error.
    pub(crate) async fn get_or_missing(
        &self,
        url: &str,
        shutdown: &Shutdown,
        stats: &mut Stats,
    ) -> Got {
        self.request(url, shutdown, stats, true).await
    }

    async fn request(
        &self,
        url: &str,
        shutdown: &Shutdown,
        stats: &mut Stats,
        missing_ok: bool,
    ) -> Got {
        let label = &self.label;
        let mut concurrency_backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
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
                Err(e) => {
                    log::error!("{label} -> {}: {e}. The cursor is kept; retrying.", e.id());
                    return Got::Failed(stats.failed());
                }
            };
            self.pacer.observe(&resp, Instant::now());
            if missing_ok && resp.status == 404 {
                return Got::Missing;
            }
            match super::api::classify(&resp) {
                Class::Page => return Got::Page(resp),
                Class::Concurrency => {
                    let wait = jitter(concurrency_backoff.next_wait());
                    log::warn!(
                        "{label} -> Okta's concurrency limit reached: too many simultaneous requests in the org ({}); waiting {:.1}s, then retrying the same page.",
                        resp.error_details(),
                        wait.as_secs_f64()
                    );
                    if shutdown.sleep(wait).await {
                        return Got::Shutdown;
                    }
                }
                Class::RateLimited => {
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
                Class::Refused => {
                    log::error!(
                        "{label} -> {} The other services go on; this one retries in {} seconds.",
                        super::api::http_error(&resp, false, self.service.kind),
                        self.service.period.as_secs()
                    );
                    return Got::Failed(CycleEnd::Unavailable);
                }
                Class::InvalidCursor => {
                    log::warn!(
                        "{label} -> {PULL_300}: Okta no longer honours the cursor of {} ({}).",
                        crate::logging::escape_controls(url),
                        resp.error_details()
                    );
                    return Got::InvalidCursor;
                }
                Class::Failed => {
                    log::error!(
                        "{label} -> {}. The cursor is kept; retrying.",
                        super::api::http_error(&resp, false, self.service.kind)
                    );
                    return Got::Failed(stats.failed());
                }
            }
        }
    }

    /// Why the spool cannot take another page now, if it cannot.
    ///
    /// The bound counts what the outputs have still to send (plus the commit in progress and
    /// an open listing's pending frames), not the bytes on disk: delivered bytes are deleted
    /// by the spool itself (a sealed segment as soon as every output has it), so counting them
    /// could keep a puller paused for good after an outage. A request goes out while less
    /// than the bound waits, so the spool waits at most the bound plus one page; a page larger
    /// than the bound goes through alone once everything before it is delivered.
    fn full(&self) -> Option<String> {
        let limits = self.spool_limits;
        if let Ok(waiting) = self.spool.waiting_bytes() {
            let bytes = waiting
                + self.committing_bytes.load(Ordering::Relaxed)
                + self.staged_bytes.load(Ordering::Relaxed);
            if bytes >= limits.max_bytes_per_table {
                return Some(format!(
                    "its spool holds {bytes} bytes not yet delivered, at globals.spool.max_bytes_per_table ({})",
                    limits.max_bytes_per_table
                ));
            }
        }
        let (free, total) = crate::sys::disk_space(self.spool.dir())?;
        let min_free = limits.min_free(total);
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
        // The outputs record their deliveries at once while a puller waits (not on their
        // usual second), so that it resumes as soon as they have sent.
        self.spool.want_room(true);
        let resumed = self.wait_until_room(shutdown, paused).await;
        self.spool.want_room(false);
        resumed
    }

    /// [`Puller::wait_for_room`]'s wait.
    async fn wait_until_room(&self, shutdown: &Shutdown, paused: Instant) -> bool {
        loop {
            // Woken by the outputs' acks (the listener is made before the check, so no ack
            // is missed); the disk's free space, which others change too, every 2 s.
            let acked = self.spool.listen_acked();
            if self.full().is_none() {
                log::info!(
                    "{} -> Pulling resumes: the spool has room again (paused {:.0}s).",
                    self.label,
                    paused.elapsed().as_secs_f64()
                );
                return false;
            }
            let woken = async {
                acked.await;
                false
            };
            let timer = async { shutdown.sleep(Duration::from_secs(2)).await };
            if smol::future::or(woken, timer).await || shutdown.is_set() {
                return true;
            }
        }
    }

    /// Whether a listing staged in a transaction can take `more` bytes: `Err` says why not
    /// (it holds the bound by itself, or the disk is at `min_free_bytes`); the caller rolls it
    /// back rather than waiting for room its own pending frames hold.
    pub(crate) fn listing_fits(&self, more: u64) -> Result<(), String> {
        let limits = self.spool_limits;
        let listing = self.staged_bytes.load(Ordering::Relaxed) + more;
        if listing > limits.max_bytes_per_table {
            return Err(format!(
                "the listing holds {listing} bytes, more than globals.spool.max_bytes_per_table ({}) allows one table to hold",
                limits.max_bytes_per_table
            ));
        }
        if let Some((free, total)) = crate::sys::disk_space(self.spool.dir()) {
            let min_free = limits.min_free(total);
            if free < min_free.saturating_add(more) {
                return Err(format!(
                    "the listing holds {listing} bytes and the disk of {} has {free} bytes free, under globals.spool.min_free_bytes ({min_free})",
                    self.spool.dir().display()
                ));
            }
        }
        Ok(())
    }

    /// An entitlement service never holds the System Log's spool: when that spool waits at
    /// half its bound or more and this service's position is behind every output's, the
    /// position moves to the spool's end (after [`RELIST_MARKER`] is durable in the service's
    /// folder, so a full listing finds what the skipped events changed). Checked before
    /// every request and through every wait for budget, so a slow listing never stops the
    /// System Log.
    fn release_feed_if_lagging(&self) {
        let (Some((spool, consumer)), Some(dir)) = (&self.feed, &self.state_dir) else {
            return;
        };
        let Ok(waiting) = spool.waiting_bytes() else {
            return;
        };
        let mine = spool.backlog_of(*consumer);
        if waiting < self.spool_limits.max_bytes_per_table / 2
            || mine == 0
            || (0..self.feed_outputs).any(|c| spool.backlog_of(c) >= mine)
        {
            return;
        }
        let marker = dir.join(RELIST_MARKER);
        let marked = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&marker)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::File::open(dir)?.sync_all());
        if let Err(e) = marked {
            log::error!(
                "{} -> Cannot write {}: {e}; the System Log's spool stays held.",
                self.label,
                marker.display()
            );
            return;
        }
        let d = spool.durable();
        let end = spool::Position {
            seq: d.next_seq,
            segment: d.segment,
            offset: d.offset,
        };
        if let Err(e) = spool.ack_by(*consumer, end) {
            log::error!(
                "{} -> Cannot move its System Log position: {e}.",
                self.label
            );
            return;
        }
        self.feed_released.store(true, Ordering::Release);
        log::warn!(
            "{} -> {mine} System Log events are skipped: following them held the System Log's spool at half its bound (globals.spool.max_bytes_per_table) while the outputs had sent them. A full listing runs next to find what they changed.",
            self.label
        );
    }

    /// Waits until the local budgets and Okta's headers allow one more request, and takes it.
    /// Returns true if shutdown came first.
    async fn pace(&self, shutdown: &Shutdown) -> bool {
        use super::budget::Wait;
        loop {
            self.release_feed_if_lagging();
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
            // A follower checks its lag every 2 s of a long wait.
            let wait = if self.feed.is_some() {
                wait.min(Duration::from_secs(2))
            } else {
                wait
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
        // Two events parsed per commit: the first for the oldest-waiting age, the last for the
        // frame's time (an output knows how fresh what it delivers is without reading Okta's
        // JSON).
        let first_ms = events.first().and_then(super::page::event_time_ms);
        let newest_s = events
            .last()
            .and_then(super::page::event_time_ms)
            .map(|ms| ms / 1000);
        let batch = Arc::new((events, cursor));
        async move {
            let written = self
                .write_retrying(move |spool: &Spool| {
                    spool
                        .append_dated(&batch.0.slices(), &batch.1, newest_s)
                        .map(|_| ())
                })
                .await;
            self.committing_bytes.store(0, Ordering::Relaxed);
            written?;
            self.staged_bytes.store(0, Ordering::Relaxed);
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
        let bytes = batch.bytes() as u64;
        self.write_retrying(move |spool: &Spool| spool.append_pending(&batch.slices()))
            .await?;
        self.staged_bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Discards the open transaction.
    pub(crate) async fn abort(&self) -> Result<(), Halt> {
        let spool = self.spool.clone();
        smol::unblock(move || spool.abort_pending())
            .await
            .map_err(|e| Halt::Fatal(Fatal::Spool(e)))?;
        self.staged_bytes.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Runs a spool write on the blocking pool; a non-fatal error (e.g. ENOSPC, after which the
    /// spool has cut the file back to its last durable end) pauses the puller and retries every
    /// 1, 2, 4, then 5 s, so appends resume within 5 s of space coming back.
    async fn write_retrying<F>(&self, write: F) -> Result<(), Halt>
    where
        F: Fn(&Spool) -> Result<(), spool::Error> + Send + Sync + 'static,
    {
        let write = Arc::new(write);
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        loop {
            let spool = self.spool.clone();
            let w = write.clone();
            match smol::unblock(move || w(&spool)).await {
                Ok(()) => {
                    self.write_failing.store(false, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) if e.is_fatal() => return Err(Halt::Fatal(Fatal::Spool(e))),
                Err(e) => {
                    self.write_failing.store(true, Ordering::Relaxed);
                    let wait = backoff.next_wait();
                    log::error!(
                        "{} -> Cannot write to the spool: {e}. Pulling is paused; retrying in {}s.",
                        self.label,
                        wait.as_secs()
                    );
                    if self.stop.sleep(wait).await {
                        return Err(Halt::Shutdown);
                    }
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
        // The seed's figures keep their wording; the rules' figure follows, when there are rules.
        let rules = if self.service.rules.is_empty() {
            String::new()
        } else {
            format!(
                " Number of events left out by drop and sample rules: {}.",
                stats.filtered
            )
        };
        log::info!(
            target: crate::selfmon::STATISTICS,
            "{} -> Statistics for this pull cycle (@devo_pulling_id={pulling_id}):Number of requests made: {}; \
             Number of events received: {}; Number of duplicated events filtered out: {}; \
             Number of events generated and sent: {}; Average of events per second: {:.3}.{rules}",
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

impl Puller {
    /// The `drop` or `sample` rule that leaves out an event of type `event_type` with this
    /// `uuid` (the first rule that matches decides; a sample keeps the events whose uuid
    /// hashes to 0 modulo N, so a page pulled again is decided the same way).
    pub(crate) fn left_out(&self, event_type: Option<&str>, uuid: Option<&str>) -> Option<usize> {
        let t = event_type?;
        let (i, rule) = self
            .service
            .rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(t))?;
        if rule.keep_one_in == 0 {
            return Some(i);
        }
        let h = uuid.map_or(0, |u| super::hash::fnv1a(u.as_bytes()));
        (!h.is_multiple_of(rule.keep_one_in)).then_some(i)
    }

    /// Counts the events each rule left out in a page (`by_rule[i]` for rule `i`).
    pub(crate) fn count_left_out(&self, by_rule: &[u64]) {
        if by_rule.iter().all(|n| *n == 0) {
            return;
        }
        let mut m = crate::lock(&self.counters.filtered);
        for (rule, n) in self.service.rules.iter().zip(by_rule) {
            if *n > 0 {
                *m.entry(rule.label.clone()).or_insert(0) += n;
            }
        }
    }
}

/// The file in an entitlement service's folder that says a full listing is due because
/// System Log events were skipped.
pub(crate) const RELIST_MARKER: &str = "relist";

/// The `@devo_pulling_id` of a cycle starting now.
pub(crate) fn pulling_id() -> u64 {
    crate::time::unix_millis(SystemTime::now()) as u64
}
