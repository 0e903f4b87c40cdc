//! The one doubling backoff every retry loop uses (a puller's failed cycles, 429s for
//! concurrency, spool writes the disk refuses; a forwarder's reconnects and refused batches),
//! so that each says only where it starts and where it stops growing.

use std::time::Duration;

/// Waits that double from `first` up to `max`, and start over at `first` after [`Backoff::reset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Waits of `first`, twice that, and so on, never over `max`.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The wait to make now; the one after it is twice as long (at most `max`).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        wait
    }

    /// Starts over at `first` (after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_start_over_after_a_reset() {
        let s = Duration::from_secs;
        let mut b = Backoff::new(s(1), s(5));
        let waits: Vec<Duration> = (0..5).map(|_| b.next_wait()).collect();
        assert_eq!(waits, [s(1), s(2), s(4), s(5), s(5)]);
        b.reset();
        assert_eq!(b.next_wait(), s(1));
        assert_eq!(b.next_wait(), s(2));
        let mut huge = Backoff::new(Duration::MAX / 2 + s(1), Duration::MAX);
        huge.next_wait();
        assert_eq!(huge.next_wait(), Duration::MAX, "no overflow");
    }
}
