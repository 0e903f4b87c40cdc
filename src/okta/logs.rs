//! The System Log puller: follows `rel="next"` links from `/api/v1/logs`, drops boundary
//! duplicates, and appends each page's events with the cursor after them to the spool
//! (durable before the next request).

use super::client::{Client, FetchError, Response};
use super::cursor::LogsCursor;
use super::{PULL_301, PULL_302, link, page};
use crate::config::Service;
use crate::shutdown::Shutdown;
use crate::time::jitter;
use spool::Spool;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Page size asked of Okta (its maximum for the System Log).
pub const PAGE_LIMIT: u32 = 1000;
/// Okta keeps 90 days of System Log; an older `since` is clamped to this.
const RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// Counters shared with the demo and (later) metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events written to the spool.
    pub spooled: AtomicU64,
}

/// One running System Log service.
#[derive(Debug)]
pub struct LogsPuller {
    /// The Okta client.
    pub client: Arc<Client>,
    /// This service's spool.
    pub spool: Spool,
    /// The service's settings.
    pub service: Service,
    /// Log prefix, e.g. `okta#65294,logs#predefined`.
    pub label: String,
    /// Shared counters.
    pub counters: Arc<Counters>,
}

/// A fatal puller error: the spool can no longer be written.
#[derive(Debug)]
pub struct Fatal(pub String);

/// How a cycle ended.
enum CycleEnd {
    /// An empty page: caught up.
    UpToDate,
    /// Stopped by shutdown after the page in hand.
    Shutdown,
    /// A retryable problem, already logged.
    Failed,
}

#[derive(Default)]
struct Stats {
    requests: u64,
    received: u64,
    duplicates: u64,
    sent: u64,
}

impl LogsPuller {
    /// Runs until shutdown. Returns `Err` only if the spool fails fatally.
    ///
    /// # Errors
    /// [`Fatal`] when the spool cannot be written any more.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), Fatal> {
        let label = &self.label;
        log::info!("{label} -> Reading persisted data");
        let mut cursor = match self.spool.cursor().map(|b| LogsCursor::decode(&b)) {
            Some(Ok(c)) => {
                log::info!(
                    "{label} -> Data retrieved from the persistence: next_link={:?}, initial_start_time_in_utc={}, last_timestamp={}",
                    c.next_link,
                    c.initial_start_time_in_utc,
                    c.last_timestamp
                );
                c
            }
            other => {
                if let Some(Err(e)) = other {
                    log::error!(
                        "{label} -> The persisted state cannot be read ({e}); starting a new one."
                    );
                } else {
                    log::warn!(
                        "{label} -> Persistence will be overridden due to the retrieved state is empty"
                    );
                }
                let now = SystemTime::now();
                let oldest = now.checked_sub(RETENTION).unwrap_or(SystemTime::UNIX_EPOCH);
                let mut start = self.service.start.unwrap_or(now);
                if start < oldest {
                    log::warn!(
                        "{label} -> start {} is older than Okta's 90-day System Log retention; starting at {} instead.",
                        crate::time::format_seconds(start),
                        crate::time::format_seconds(oldest)
                    );
                    start = oldest;
                }
                let c = LogsCursor::new(start);
                self.commit(&[], &c).await?;
                log::warn!("{label} -> Persistence has been updated successfully");
                c
            }
        };
        log::info!(
            "{label} -> Starting data collection every {} seconds",
            self.service.period.as_secs()
        );
        let mut backoff = Duration::from_secs(1);
        loop {
            if shutdown.is_set() {
                return Ok(());
            }
            let wait = match self.cycle(&mut cursor, &shutdown).await? {
                CycleEnd::Shutdown => return Ok(()),
                CycleEnd::UpToDate => {
                    backoff = Duration::from_secs(1);
                    self.service.period
                }
                CycleEnd::Failed => {
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

    /// One pull cycle: pages until an empty one (or an error, or shutdown).
    async fn cycle(&self, cursor: &mut LogsCursor, shutdown: &Shutdown) -> Result<CycleEnd, Fatal> {
        let label = &self.label;
        let started = Instant::now();
        let pulling_id = crate::time::unix_millis(SystemTime::now());
        let mut stats = Stats::default();
        let end = loop {
            let url = if cursor.next_link.is_empty() {
                format!(
                    "{}/api/v1/logs?since={}&limit={PAGE_LIMIT}&sortOrder=ASCENDING",
                    self.client.url().base(),
                    crate::time::format_millis(
                        crate::time::parse_rfc3339(&cursor.initial_start_time_in_utc)
                            .unwrap_or(SystemTime::now())
                    )
                )
            } else {
                cursor.next_link.clone()
            };
            let client = self.client.clone();
            let fetch_url = url.clone();
            // A request in flight when shutdown comes is abandoned: nothing of it was committed,
            // so the next start asks for the same page.
            let fetch = async { Some(smol::unblock(move || client.get(&fetch_url)).await) };
            let stop = async {
                shutdown.wait().await;
                None
            };
            let Some(resp) = smol::future::or(fetch, stop).await else {
                break CycleEnd::Shutdown;
            };
            stats.requests += 1;
            let resp = match resp {
                Ok(r) => r,
                Err(FetchError::Transport(e)) => {
                    log::error!("{label} -> {PULL_301}: {e}. The cursor is kept; retrying.");
                    break CycleEnd::Failed;
                }
                Err(e) => {
                    log::error!("{label} -> {PULL_302}: {e}. The cursor is kept; retrying.");
                    break CycleEnd::Failed;
                }
            };
            if resp.status == 429 {
                let wait = jitter(resp.rate_limit_wait());
                log::warn!(
                    "{label} -> Okta rate limit reached ({}); waiting {:.1}s, then retrying the same page.",
                    resp.error_details(),
                    wait.as_secs_f64()
                );
                if shutdown.sleep(wait).await {
                    break CycleEnd::Shutdown;
                }
                continue;
            }
            if !(200..300).contains(&resp.status) {
                log::error!(
                    "{label} -> {}. The cursor is kept; retrying.",
                    super::http_error(&resp, false)
                );
                break CycleEnd::Failed;
            }
            match self.take_page(cursor, &url, &resp, &mut stats).await? {
                Some(0) => break CycleEnd::UpToDate,
                Some(_) => {}
                None => break CycleEnd::Failed,
            }
            if shutdown.is_set() {
                break CycleEnd::Shutdown;
            }
        };
        let secs = started.elapsed().as_secs_f64();
        log::info!(
            "{label} -> Statistics for this pull cycle (@devo_pulling_id={pulling_id}):Number of requests made: {}; \
             Number of events received: {}; Number of duplicated events filtered out: {}; \
             Number of events generated and sent: {}; Average of events per second: {:.3}.",
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
        if matches!(end, CycleEnd::UpToDate) {
            log::info!("{label} -> The data is up to date!");
        }
        Ok(end)
    }

    /// Takes one page: dedup, then events and the new cursor into the spool in one frame.
    /// Returns the number of items on the page, or `None` if the page was rejected.
    async fn take_page(
        &self,
        cursor: &mut LogsCursor,
        url: &str,
        resp: &Response,
        stats: &mut Stats,
    ) -> Result<Option<usize>, Fatal> {
        let label = &self.label;
        let items = match page::split(&resp.body) {
            Ok(items) => items,
            Err(e) => {
                log::error!(
                    "{label} -> {PULL_302}: {e} ({}). The cursor is kept; retrying.",
                    resp.error_details()
                );
                return Ok(None);
            }
        };
        let next = match link::next(resp.links.iter().map(String::as_str)) {
            Ok(n) => n,
            Err(bad) => {
                log::error!(
                    "{label} -> {PULL_302}: the Link header {bad:?} does not parse. The cursor is kept; retrying."
                );
                return Ok(None);
            }
        };
        if let Some(n) = &next
            && !self.client.url().same_origin(n)
        {
            log::error!(
                "{label} -> {PULL_302}: the next link {n:?} points to another host than okta_url; it is not followed (the API token would leak). The cursor is kept."
            );
            return Ok(None);
        }
        let mut new_cursor = cursor.clone();
        let mut lines: Vec<std::borrow::Cow<'_, str>> = Vec::with_capacity(items.len());
        let mut dups = 0;
        for raw in &items {
            let m = page::meta(raw);
            if new_cursor.observe(m.uuid.as_deref(), m.published) {
                dups += 1;
            } else {
                lines.push(page::one_line(raw.get()));
            }
        }
        new_cursor.next_link = next.unwrap_or_else(|| url.to_string());
        stats.received += items.len() as u64;
        stats.duplicates += dups;
        if !lines.is_empty() || new_cursor != *cursor {
            let events: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
            self.commit(&events, &new_cursor).await?;
            stats.sent += events.len() as u64;
            self.counters
                .spooled
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            *cursor = new_cursor;
        }
        log::debug!(
            "{label} -> (Partial) Statistics for this pull cycle: {} events on the page, {dups} duplicated, next link {}",
            items.len(),
            cursor.next_link
        );
        Ok(Some(items.len()))
    }

    /// Appends events and cursor as one durable frame, retrying while the disk is full.
    async fn commit(&self, events: &[&[u8]], cursor: &LogsCursor) -> Result<(), Fatal> {
        // One owned copy for the blocking pool, shared by every attempt.
        let batch: Arc<(Vec<Vec<u8>>, Vec<u8>)> =
            Arc::new((events.iter().map(|e| e.to_vec()).collect(), cursor.encode()));
        let mut wait = Duration::from_secs(1);
        loop {
            let spool = self.spool.clone();
            let batch = batch.clone();
            let r = smol::unblock(move || {
                let refs: Vec<&[u8]> = batch.0.iter().map(Vec::as_slice).collect();
                spool.append(&refs, &batch.1)
            })
            .await;
            match r {
                Ok(_) => return Ok(()),
                Err(e) if e.is_fatal() => return Err(Fatal(e.to_string())),
                Err(e) => {
                    log::error!(
                        "{} -> Cannot write to the spool: {e}. Pulling is paused; retrying in {}s.",
                        self.label,
                        wait.as_secs()
                    );
                    smol::Timer::after(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}
