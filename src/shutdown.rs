//! A shutdown flag that tasks can poll or await; set once by SIGTERM/SIGINT (or a test/demo).
//! Every wait in the collector (a period, a backoff, a paused puller) goes through it, so a
//! stop is never held up by a sleep.

use event_listener::Event;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Cloneable handle on one shutdown flag.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    set: AtomicBool,
    event: Event,
}

impl Shutdown {
    /// A flag not yet set.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Sets the flag and wakes every waiter.
    pub fn trigger(&self) {
        self.0.set.store(true, Ordering::SeqCst);
        self.0.event.notify(usize::MAX);
    }

    /// True once triggered.
    pub fn is_set(&self) -> bool {
        self.0.set.load(Ordering::SeqCst)
    }

    /// Resolves once triggered.
    pub async fn wait(&self) {
        loop {
            if self.is_set() {
                return;
            }
            let l = self.0.event.listen();
            if self.is_set() {
                return;
            }
            l.await;
        }
    }

    /// Sleeps for `d`; returns `true` early if shutdown is triggered meanwhile.
    pub async fn sleep(&self, d: Duration) -> bool {
        smol::future::or(
            async {
                smol::Timer::after(d).await;
                self.is_set()
            },
            async {
                self.wait().await;
                true
            },
        )
        .await
    }
}
