//! What counts as delivered on a byte stream, with the clock passed in so it can be tested
//! without a socket: kernel acknowledgements count once the connection has outlived them by
//! [`ACK_GRACE`] (a server that resets throws away what its kernel acknowledged but it had not
//! read), and nothing counts during a TLS 1.3 session's probation (the server judges the
//! client certificate after the handshake), unless the server closed cleanly.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The peer's TCP stack acknowledges bytes when they reach its receive buffer, before the
/// server has read them; a server that resets the connection (a load balancer restarting)
/// throws away what it had not read. Acknowledged bytes count as delivered only once the
/// connection has stayed up this long after the acknowledgement was seen, or after a clean
/// close. A reconnect re-sends at most this much more.
pub(super) const ACK_GRACE: Duration = Duration::from_secs(1);

/// Acknowledged byte counts seen, and what of them is confirmed.
#[derive(Debug)]
pub(super) struct AckTracker {
    /// Acknowledged bytes count only from this instant on (the probation's end).
    trusted_from: Instant,
    /// Kernel acknowledgements seen and when, oldest first, not yet [`ACK_GRACE`] old.
    seen: VecDeque<(Instant, u64)>,
    /// Bytes acknowledged at least [`ACK_GRACE`] ago: what counts as delivered.
    confirmed: u64,
    /// When the connection ended (the server's reset, alert or EOF), if it did: the grace and
    /// the probation are judged against that instant, not against when the end was noticed.
    ended: Option<Instant>,
    /// The server answered our close: everything it acknowledged counts, ended or not.
    closed_cleanly: bool,
}

impl AckTracker {
    /// Nothing acknowledged yet; nothing counts before `trusted_from`.
    pub(super) fn new(trusted_from: Instant) -> AckTracker {
        AckTracker {
            trusted_from,
            seen: VecDeque::new(),
            confirmed: 0,
            ended: None,
            closed_cleanly: false,
        }
    }

    /// The connection ended at `at` (the first end reported counts): acknowledgements count
    /// only if the connection outlived them by [`ACK_GRACE`] before `at`, however much later
    /// the end is noticed.
    pub(super) fn ended_at(&mut self, at: Instant) {
        if !self.closed_cleanly {
            self.ended.get_or_insert(at);
        }
    }

    /// Notes that the peer's kernel has acknowledged `acked` bytes at `now` (only while the
    /// connection is known to be up).
    pub(super) fn observe(&mut self, now: Instant, acked: u64) {
        if self.ended.is_some_and(|e| now >= e) {
            return;
        }
        if self.seen.back().is_none_or(|&(_, last)| acked > last) && acked > self.confirmed {
            self.seen.push_back((now, acked));
        }
    }

    /// Bytes delivered at `now`: acknowledged at least [`ACK_GRACE`] before, on a session past
    /// its probation; `None` during the probation.
    pub(super) fn delivered(&mut self, now: Instant) -> Option<u64> {
        let now = self.ended.map_or(now, |e| e.min(now));
        while let Some(&(t, k)) = self.seen.front() {
            if now.duration_since(t) < ACK_GRACE {
                break;
            }
            self.confirmed = self.confirmed.max(k);
            self.seen.pop_front();
        }
        if now < self.trusted_from {
            return None;
        }
        Some(self.confirmed)
    }

    /// The server closed cleanly after our close_notify at `now`: it read the whole stream,
    /// `acked` bytes of it as far as the kernel knows.
    pub(super) fn trust_everything(&mut self, now: Instant, acked: Option<u64>) {
        self.trusted_from = now;
        self.closed_cleanly = true;
        self.ended = None;
        if let Some(k) = acked {
            self.confirmed = self.confirmed.max(k);
        }
        self.seen.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_is_judged_from_when_the_connection_ended_not_when_that_was_noticed() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut a = AckTracker::new(t0);
        a.observe(t0, 100);
        // The server resets 800 ms after acknowledging; the forwarder notices 500 ms later
        // (its idle tick), when the acknowledgement is 1.3 s old.
        a.ended_at(t0 + ms(800));
        assert_eq!(
            a.delivered(t0 + ms(1_300)),
            Some(0),
            "the connection did not outlive the acknowledgement by the grace"
        );
        // Nothing seen after the end counts either, and a later end changes nothing.
        a.observe(t0 + ms(900), 200);
        a.ended_at(t0 + ms(5_000));
        assert_eq!(a.delivered(t0 + ms(9_000)), Some(0));
        // An acknowledgement the connection did outlive by the grace counts.
        let mut b = AckTracker::new(t0);
        b.observe(t0, 100);
        b.ended_at(t0 + ms(1_200));
        assert_eq!(b.delivered(t0 + ms(1_700)), Some(100));
        // An end during the TLS 1.3 probation counts nothing, however late it is noticed.
        let mut c = AckTracker::new(t0 + ms(2_000));
        c.observe(t0 + ms(100), 100);
        c.ended_at(t0 + ms(1_500));
        assert_eq!(c.delivered(t0 + ms(3_000)), None);
        // After our close the server's EOF ends the connection, and everything counts.
        let mut d = AckTracker::new(t0);
        d.observe(t0, 50);
        d.trust_everything(t0 + ms(100), Some(300));
        d.ended_at(t0 + ms(100));
        assert_eq!(d.delivered(t0 + ms(150)), Some(300));
    }

    #[test]
    fn an_acknowledgement_counts_once_the_connection_outlived_it_by_the_grace() {
        let t0 = Instant::now();
        let mut a = AckTracker::new(t0);
        a.observe(t0, 100);
        assert_eq!(a.delivered(t0), Some(0), "not yet");
        a.observe(t0 + Duration::from_millis(500), 250);
        assert_eq!(a.delivered(t0 + ACK_GRACE), Some(100));
        assert_eq!(
            a.delivered(t0 + ACK_GRACE + Duration::from_millis(500)),
            Some(250)
        );
        a.observe(t0 + ACK_GRACE * 3, 200);
        assert_eq!(a.delivered(t0 + ACK_GRACE * 9), Some(250), "never back");
    }

    #[test]
    fn nothing_counts_during_the_probation_unless_the_server_closed_cleanly() {
        let t0 = Instant::now();
        let probation = Duration::from_secs(2);
        let mut a = AckTracker::new(t0 + probation);
        a.observe(t0, 100);
        assert_eq!(
            a.delivered(t0 + ACK_GRACE),
            None,
            "acknowledged, still on probation"
        );
        assert_eq!(a.delivered(t0 + probation), Some(100));
        let mut b = AckTracker::new(t0 + probation);
        b.observe(t0, 100);
        b.trust_everything(t0 + Duration::from_millis(10), Some(180));
        assert_eq!(b.delivered(t0 + Duration::from_millis(10)), Some(180));
    }
}
