//! The cycle loop of a puller: restore the service's cursor, then run its pull mode's cycles,
//! a period apart once caught up and with backoff after a failure. The only file that knows
//! the three modes: they know the puller, not each other.

use super::devo_state;
use super::entitlements::{self, EntitlementState};
use super::incremental::{self, IncrementalCursor};
use super::logs::{self, LogsCursor};
use super::puller::{CycleEnd, Fatal, Halt, Puller};
use super::snapshot::{self, SnapshotCursor};
use crate::backoff::Backoff;
use crate::config::PullMode;
use crate::time::jitter;
use std::time::Duration;

/// A mode's cursor, and so which mode runs.
enum State {
    Logs(LogsCursor),
    Incremental(IncrementalCursor),
    Snapshot(SnapshotCursor),
    Entitlements(Box<EntitlementState>),
}

impl Puller {
    /// Runs until shutdown: restores the service's cursor, then runs cycles. After a cycle
    /// that caught up (or found the endpoint unavailable) it waits a period; after a failure it
    /// backs off from 1 s to 60 s (at most a period). Returns `Err` only if the spool fails
    /// fatally.
    ///
    /// # Errors
    /// [`Fatal`] when the spool cannot be written any more.
    pub async fn run(self) -> Result<(), Fatal> {
        match self.run_cycles().await {
            Ok(()) | Err(Halt::Shutdown) => Ok(()),
            Err(Halt::Fatal(e)) => Err(e),
        }
    }

    async fn run_cycles(&self) -> Result<(), Halt> {
        let shutdown = &self.stop;
        let mut state = match self.service.kind.mode() {
            PullMode::Poll => State::Logs(logs::restore(self, devo_state::take_over).await?),
            PullMode::Incremental => State::Incremental(incremental::restore(self).await?),
            PullMode::Snapshot => State::Snapshot(snapshot::restore(self).await?),
            PullMode::Entitlements => {
                State::Entitlements(Box::new(entitlements::restore(self).await?))
            }
        };
        log::info!(
            "{} -> Starting data collection every {} seconds",
            self.label,
            self.service.period.as_secs()
        );
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            if shutdown.is_set() {
                return Ok(());
            }
            let end = match &mut state {
                State::Logs(c) => logs::cycle(self, c, shutdown).await?,
                State::Incremental(c) => incremental::cycle(self, c, shutdown).await?,
                State::Snapshot(c) => snapshot::cycle(self, c, shutdown).await?,
                State::Entitlements(s) => entitlements::cycle(self, s, shutdown).await?,
            };
            let wait = match end {
                CycleEnd::Shutdown => return Ok(()),
                CycleEnd::UpToDate | CycleEnd::Unavailable => {
                    backoff.reset();
                    self.service.period
                }
                CycleEnd::Failed { progress } => {
                    if progress {
                        // Only consecutive failures back off further.
                        backoff.reset();
                    }
                    jitter(
                        backoff
                            .next_wait()
                            .min(self.service.period.max(Duration::from_secs(1))),
                    )
                }
            };
            if shutdown.sleep(wait).await {
                return Ok(());
            }
        }
    }
}
