//! One table as one output sees it, and what both kinds of output do with it: read frames
//! off the reactor (the reads run on the blocking pool), recycle their buffers, wait for work,
//! and record how far the output has the table (the ack file, at least every second or
//! 2,000 events while it moves). `stream.rs` and `batch.rs` use these; neither knows the other.

use crate::Fatal;
use crate::shutdown::Shutdown;
use spool::{Position, Reader, Spool};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

/// The ack position is made durable at least this often while it moves...
const ACK_PERSIST_EVERY: Duration = Duration::from_secs(1);
/// ...and as soon as this many events are acknowledged but not yet recorded. Together they
/// bound the events re-sent after a crash (the unacknowledged window).
pub const ACK_PERSIST_EVENTS: u64 = 2_000;

/// One table as one output sees it: the spool, the tag, and which of the spool's consumers
/// the output is.
#[derive(Debug)]
pub struct Table {
    /// The Devo tag.
    pub tag: String,
    /// The table's spool.
    pub spool: Spool,
    /// The output's consumer index in the spool (its ack file).
    pub consumer: usize,
    /// Events this output delivered so far (for the demo, statistics and metrics).
    pub delivered: Arc<AtomicU64>,
    /// The time (`published`, or `lastUpdated`) of the newest event delivered, Unix ms (0:
    /// none yet): the delivery lag is now minus it.
    pub delivered_time: Arc<AtomicU64>,
}

impl Table {
    /// Records that an event of time `ms` (Unix ms) was delivered.
    pub fn delivered_at(&self, ms: Option<u64>) {
        if let Some(ms) = ms {
            self.delivered_time.fetch_max(ms, Ordering::Relaxed);
        }
    }
}

/// A table's reading and acking state inside a forwarder.
pub(crate) struct TableState {
    pub(crate) table: Table,
    pub(crate) reader: Option<Reader>,
    /// Delivered position (in memory).
    pub(crate) acked: Position,
    /// Last position written to the ack file.
    pub(crate) persisted: Position,
}

impl TableState {
    pub(crate) fn new(t: Table) -> TableState {
        let acked = t.spool.acked_by(t.consumer);
        TableState {
            reader: Some(t.spool.reader_for(t.consumer)),
            table: t,
            acked,
            persisted: acked,
        }
    }
}

impl AsRef<TableState> for TableState {
    fn as_ref(&self) -> &TableState {
        self
    }
}

impl AsMut<TableState> for TableState {
    fn as_mut(&mut self) -> &mut TableState {
        self
    }
}

/// True when an acked position moved and the time or event bound is reached.
pub(crate) fn persist_due<T: AsRef<TableState>>(states: &[T], last_persist: Instant) -> bool {
    states.iter().map(AsRef::as_ref).any(|s| {
        let behind = s.acked.seq.saturating_sub(s.persisted.seq);
        behind >= ACK_PERSIST_EVENTS
            || (behind > 0
                && (last_persist.elapsed() >= ACK_PERSIST_EVERY || s.table.spool.room_wanted()))
    })
}

/// Reads the table's next frame off the reactor.
pub(crate) async fn next_frame(s: &mut TableState) -> Option<spool::Frame> {
    let mut reader = s.reader.take()?;
    let (reader, r) = smol::unblock(move || {
        let r = reader.next_frame();
        (reader, r)
    })
    .await;
    s.reader = Some(reader);
    match r {
        Ok(f) => f,
        Err(e) => {
            log::error!(
                "Cannot read the spool {}: {e}",
                s.table.spool.dir().display()
            );
            None
        }
    }
}

/// Hands a frame's buffer back to the table's reader, for the next frame.
pub(crate) fn recycle(s: &mut TableState, frame: spool::Frame) {
    if let Some(r) = s.reader.as_mut() {
        r.recycle(frame);
    }
}

/// Writes acked positions that moved to the ack files.
pub(crate) async fn persist<T: AsMut<TableState>>(states: &mut [T]) -> Result<(), Fatal> {
    for s in states.iter_mut().map(AsMut::as_mut) {
        if s.acked == s.persisted {
            continue;
        }
        let (spool, consumer, pos) = (s.table.spool.clone(), s.table.consumer, s.acked);
        let time = s.table.delivered_time.load(Ordering::Relaxed);
        match smol::unblock(move || {
            spool.ack_by(consumer, pos)?;
            if time > 0 {
                // For `status` only: a failure to write it is not an error.
                let _ = spool.record_delivered_time(consumer, time);
            }
            Ok::<(), spool::Error>(())
        })
        .await
        {
            Ok(()) => s.persisted = pos,
            Err(e) => {
                return Err(Fatal::Ack {
                    dir: s.table.spool.dir().to_path_buf(),
                    source: e,
                });
            }
        }
    }
    Ok(())
}

/// How long an idle forwarder waits before it looks again (at a server's message, at
/// acknowledgements to confirm, at the ack file).
const IDLE_TICK: Duration = Duration::from_millis(500);

/// How long a forwarder with deliveries still to confirm waits before it looks again, while a
/// puller waits for the room they free.
const CONFIRM_TICK: Duration = Duration::from_millis(50);

/// Waits for a spool append, shutdown, or [`IDLE_TICK`] ([`CONFIRM_TICK`] when `confirming`
/// and a puller waits for room). After a whole tick without an append, the readers let go of
/// their frame buffers: an idle forwarder holds no page.
pub(crate) async fn wait_for_work<T: AsMut<TableState>>(
    states: &mut [T],
    shutdown: &Shutdown,
    confirming: bool,
) {
    let tick = if confirming
        && states
            .iter_mut()
            .any(|s| s.as_mut().table.spool.room_wanted())
    {
        CONFIRM_TICK
    } else {
        IDLE_TICK
    };
    let mut listeners: Vec<_> = states
        .iter_mut()
        .map(|s| s.as_mut().table.spool.listen())
        .collect();
    let any_append = std::future::poll_fn(|cx| {
        for l in listeners.iter_mut() {
            if Pin::new(l).poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    });
    // A message from a stream's server stays in its channel for the loop to read; the timer
    // bounds how long it waits there.
    let idle = smol::future::or(
        smol::future::or(
            async {
                any_append.await;
                false
            },
            async {
                smol::Timer::after(tick).await;
                tick == IDLE_TICK
            },
        ),
        async {
            shutdown.wait().await;
            false
        },
    )
    .await;
    if idle {
        for s in states {
            if let Some(r) = s.as_mut().reader.as_mut() {
                r.release_buffer();
            }
        }
    }
}
