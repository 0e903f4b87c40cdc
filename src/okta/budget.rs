//! Request pacing, so the collector is never the reason an org hits a rate limit: local
//! budgets (sliding windows per service, and one for all services together) and Okta's own
//! `X-Rate-Limit-*` headers, which win: once `Remaining` is down to a floor of 5% of the limit
//! (at least 1), the service waits for the window's reset, measured against Okta's `Date`.

use super::client::Response;
use crate::config::Limit;
use crate::lock;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sliding windows: at most `limit` requests in any `period`.
#[derive(Debug, Default)]
pub struct Budget {
    windows: Vec<Window>,
}

#[derive(Debug)]
struct Window {
    period: Duration,
    limit: usize,
    /// Send times of the last `limit` requests, oldest first.
    sent: VecDeque<Instant>,
}

impl Budget {
    /// A budget of these limits (none: unlimited).
    pub fn new(limits: &[Limit]) -> Budget {
        Budget {
            windows: limits
                .iter()
                .map(|l| Window {
                    period: l.period,
                    limit: l.requests as usize,
                    sent: VecDeque::with_capacity(l.requests as usize),
                })
                .collect(),
        }
    }

    /// How long until one more request fits in every window.
    fn delay(&self, now: Instant) -> Duration {
        self.windows
            .iter()
            .filter(|w| w.sent.len() >= w.limit)
            .filter_map(|w| {
                w.sent
                    .front()
                    .map(|t| (*t + w.period).saturating_duration_since(now))
            })
            .max()
            .unwrap_or_default()
    }

    fn record(&mut self, now: Instant) {
        for w in &mut self.windows {
            if w.sent.len() >= w.limit {
                w.sent.pop_front();
            }
            w.sent.push_back(now);
        }
    }
}

/// Okta's view of the endpoint's bucket, from the last response that had the headers.
#[derive(Debug, Clone, Copy)]
struct OktaWindow {
    limit: u64,
    remaining: u64,
    resets_at: Instant,
}

impl OktaWindow {
    /// Requests Okta's bucket keeps in reserve for the rest of the org: 5% of the limit, at
    /// least 1.
    fn floor(&self) -> u64 {
        self.limit.div_ceil(20).max(1)
    }
}

/// One service's pacing: its own budget, the shared global one, and Okta's headers.
#[derive(Debug)]
pub struct Pacer {
    local: Mutex<Budget>,
    global: Arc<Mutex<Budget>>,
    okta: Mutex<Option<OktaWindow>>,
}

/// Why a request has to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The local budget (the service's or the global one) is used up.
    Local(Duration),
    /// Okta's `X-Rate-Limit-Remaining` is down to the floor.
    Okta(Duration),
}

impl Pacer {
    /// A pacer with the service's `limits` and the `global` budget shared by all services.
    pub fn new(limits: &[Limit], global: Arc<Mutex<Budget>>) -> Pacer {
        Pacer {
            local: Mutex::new(Budget::new(limits)),
            global,
            okta: Mutex::new(None),
        }
    }

    /// Takes a request slot now, or says how long to wait before asking again.
    pub fn try_take(&self, now: Instant) -> Result<(), Wait> {
        let mut okta = lock(&self.okta);
        if let Some(w) = okta.as_ref()
            && w.remaining <= w.floor()
            && now < w.resets_at
        {
            return Err(Wait::Okta(w.resets_at - now));
        }
        let mut local = lock(&self.local);
        let mut global = lock(&self.global);
        let d = local.delay(now).max(global.delay(now));
        if !d.is_zero() {
            return Err(Wait::Local(d));
        }
        local.record(now);
        global.record(now);
        if let Some(w) = okta.as_mut() {
            if now >= w.resets_at {
                *okta = None;
            } else {
                w.remaining = w.remaining.saturating_sub(1);
            }
        }
        Ok(())
    }

    /// Learns Okta's bucket from a response received at `received` (a concurrency 429, with
    /// limit 0, says nothing about the bucket and is ignored).
    pub fn observe(&self, resp: &Response, received: Instant) {
        if let (Some(limit), Some(remaining)) = (resp.rate_limit, resp.rate_remaining)
            && limit > 0
        {
            *lock(&self.okta) = Some(OktaWindow {
                limit,
                remaining,
                resets_at: received + resp.rate_limit_wait(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(period: u64, requests: u32) -> Limit {
        Limit {
            period: Duration::from_secs(period),
            requests,
        }
    }

    #[test]
    fn a_sliding_window_allows_exactly_its_limit() {
        let global = Arc::new(Mutex::new(Budget::default()));
        let p = Pacer::new(&[limit(60, 3)], global);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(p.try_take(t0 + Duration::from_secs(i)), Ok(()));
        }
        assert_eq!(
            p.try_take(t0 + Duration::from_secs(10)),
            Err(Wait::Local(Duration::from_secs(50)))
        );
        assert_eq!(p.try_take(t0 + Duration::from_secs(60)), Ok(()));
        assert!(p.try_take(t0 + Duration::from_secs(60)).is_err());
        assert_eq!(p.try_take(t0 + Duration::from_secs(61)), Ok(()));
    }

    #[test]
    fn the_global_budget_is_shared_and_no_limits_means_none() {
        let global = Arc::new(Mutex::new(Budget::new(&[limit(60, 2)])));
        let a = Pacer::new(&[], global.clone());
        let b = Pacer::new(&[], global);
        let t0 = Instant::now();
        assert_eq!(a.try_take(t0), Ok(()));
        assert_eq!(b.try_take(t0), Ok(()));
        assert!(a.try_take(t0).is_err());
        assert!(b.try_take(t0).is_err());
        let free = Pacer::new(&[], Arc::new(Mutex::new(Budget::default())));
        for _ in 0..10_000 {
            assert_eq!(free.try_take(t0), Ok(()));
        }
    }

    fn resp(limit: u64, remaining: u64, reset_in: u64) -> Response {
        let date = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Response {
            status: 200,
            body: Vec::new(),
            links: Vec::new(),
            request_id: None,
            // A local clock an hour off does not matter: only Reset − Date counts.
            date: Some(date),
            rate_reset: Some(1_700_000_000 + reset_in),
            rate_limit: Some(limit),
            rate_remaining: Some(remaining),
        }
    }

    #[test]
    fn okta_headers_stop_requests_at_a_five_percent_floor_until_reset() {
        let p = Pacer::new(&[], Arc::new(Mutex::new(Budget::default())));
        let t0 = Instant::now();
        p.observe(&resp(60, 5, 30), t0);
        assert_eq!(p.try_take(t0), Ok(()));
        assert_eq!(p.try_take(t0), Ok(()));
        assert_eq!(
            p.try_take(t0),
            Err(Wait::Okta(Duration::from_secs(30))),
            "3 left of 60: the floor"
        );
        assert_eq!(p.try_take(t0 + Duration::from_secs(30)), Ok(()));
        // Limit 10: the floor is still 1.
        p.observe(&resp(10, 1, 0), t0);
        assert_eq!(
            p.try_take(t0),
            Err(Wait::Okta(Duration::from_secs(1))),
            "a reset in the past still waits 1 s"
        );
        // A concurrency 429 (limit 0) says nothing about the bucket.
        let p = Pacer::new(&[], Arc::new(Mutex::new(Budget::default())));
        p.observe(&resp(0, 0, 30), t0);
        assert_eq!(p.try_take(t0), Ok(()));
    }
}
