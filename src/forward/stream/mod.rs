//! The byte-stream outputs: `devo_platform` (syslog lines over mutual TLS) and `relay` (the
//! same lines over plain TCP). Syslog has no application ack, so only what the peer's TCP stack
//! acknowledged counts (bytes written minus `SIOCOUTQ`), and a reconnect rewinds to that point.

mod ack;

use super::connection::{self, Session};
use super::syslog;
use super::table::{TableState, next_frame, persist, persist_due, recycle, wait_for_work};
use crate::Fatal;
use crate::backoff::Backoff;
use crate::config::{Output, OutputKind};
use crate::shutdown::Shutdown;
use crate::time::{jitter, timeout};
use ack::{ACK_GRACE, AckTracker};
use futures_rustls::rustls::ClientConfig;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use spool::Position;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Bytes of syslog lines gathered before one write.
const BATCH_BYTES: usize = 256 << 10;
/// Bytes of lines handed to one vectored write on plain TCP (over TLS: one record's worth).
const VECTORED_BYTES: usize = 64 << 10;
/// Devo's load balancer drops idle connections; reconnect before sending after this.
const MAX_IDLE: Duration = Duration::from_secs(30);
/// Reconnect before sending on a connection older than this.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// Bound on each step of a clean close.
const CLOSE_STEP: Duration = Duration::from_secs(5);
/// Under TLS 1.3 the server judges the client certificate only after the client's handshake
/// is complete, so the first batch can reach the server's TCP stack (and be acknowledged
/// there) before the server rejects the session. Bytes sent on a TLS 1.3 connection count as
/// delivered only once it has lived this long without an alert, or after a clean close.
const PROBATION: Duration = Duration::from_secs(2);

struct Inflight {
    /// Stream offset at which the batch holding the frame ends.
    cipher_end: u64,
    /// Ack position once that offset is acknowledged.
    pos: Position,
    events: u64,
    /// The time of the batch's newest event (its frames' last events), Unix ms.
    newest_ms: Option<u64>,
}

/// A table and the frames written to the current connection but not yet acknowledged.
struct StreamTable {
    state: TableState,
    inflight: VecDeque<Inflight>,
}

enum End {
    Shutdown,
    Recycle,
    Failed(String),
}

/// What tells how much of the stream the peer has received: the bytes written and the
/// socket's send queue, judged by an [`AckTracker`].
struct Probe {
    written: Arc<AtomicU64>,
    socket: smol::net::TcpStream,
    acks: AckTracker,
    /// When the reading task saw the server end the connection (set there, at once).
    ended: Arc<std::sync::Mutex<Option<Instant>>>,
}

/// How the server's side of the connection ended, as seen by the reading task.
enum PeerEnd {
    /// EOF after a close_notify (or a plain FIN): the server read everything and closed.
    Clean,
    /// An alert, a reset, or EOF without close_notify.
    Failed(String),
}

impl Probe {
    fn new(written: Arc<AtomicU64>, socket: smol::net::TcpStream, trusted_from: Instant) -> Probe {
        Probe {
            written,
            socket,
            acks: AckTracker::new(trusted_from),
            ended: Arc::default(),
        }
    }

    /// Hands the tracker the instant the connection ended, if the reading task saw it end.
    fn sync_end(&mut self) {
        if let Some(at) = *crate::lock(&self.ended) {
            self.acks.ended_at(at);
        }
    }

    /// Notes how far the peer's TCP stack has acknowledged now. Call it while the connection
    /// is known to be up (never after a failure: then nothing new may be trusted).
    fn observe(&mut self) {
        self.sync_end();
        if let Some(k) = self.kernel_acked() {
            self.acks.observe(Instant::now(), k);
        }
    }

    /// Bytes delivered (see [`AckTracker::delivered`]); `None` during the probation.
    fn peer_acked(&mut self) -> Option<u64> {
        self.sync_end();
        self.acks.delivered(Instant::now())
    }

    /// The server closed cleanly after our close_notify: it read the whole stream.
    fn trust_everything(&mut self) {
        let acked = self.kernel_acked();
        self.acks.trust_everything(Instant::now(), acked);
    }

    /// Bytes the peer's TCP stack acknowledged: written minus what is still in the send queue.
    fn kernel_acked(&self) -> Option<u64> {
        let outq = crate::sys::send_queue_len(&self.socket)?;
        Some(self.written.load(Ordering::Relaxed).saturating_sub(outq))
    }
}

/// Runs a byte-stream output until shutdown: connect, send, reconnect with backoff (2 s
/// doubling to 60 s). `tls` is the client config for `devo_platform`, `None` for `relay`.
pub(super) async fn run(
    output: &Output,
    tls: Option<Arc<ClientConfig>>,
    states: Vec<TableState>,
    connected: Arc<AtomicBool>,
    shutdown: Shutdown,
) -> Result<(), Fatal> {
    let (address, port) = match &output.kind {
        OutputKind::Devo(d) => (d.address.clone(), d.port),
        OutputKind::Relay(r) => (r.address.clone(), r.port),
        _ => {
            return Err(Fatal::Output(format!(
                "output {} is not a byte stream",
                output.name
            )));
        }
    };
    let name = format!("DevoSender({},{address}:{port})", output.name);
    let mut states: Vec<StreamTable> = states
        .into_iter()
        .map(|state| StreamTable {
            state,
            inflight: VecDeque::new(),
        })
        .collect();
    let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
    loop {
        if shutdown.is_set() {
            return persist(&mut states).await;
        }
        let connecting = Duration::from_secs(10);
        let session = match &tls {
            Some(config) => connection::connect(&address, port, config.clone(), connecting).await,
            None => connection::connect_plain(&address, port, connecting).await,
        };
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                let wait = jitter(backoff.next_wait());
                log::error!(
                    "{name} -> Cannot connect: {e}. Events stay in the spool; retrying in {:.0}s.",
                    wait.as_secs_f64()
                );
                if shutdown.sleep(wait).await {
                    return persist(&mut states).await;
                }
                continue;
            }
        };
        match &output.kind {
            OutputKind::Devo(d) => log::info!(
                "{name} -> Connected ({}, client certificate {}).",
                session.protocol(),
                d.cert.display()
            ),
            _ => log::info!("{name} -> Connected (plain TCP to a relay)."),
        }
        for s in &mut states {
            let acked = s.state.acked;
            if let Some(r) = s.state.reader.as_mut() {
                r.seek(acked);
            }
            s.inflight.clear();
        }
        let before: u64 = states.iter().map(|s| s.state.acked.seq).sum();
        connected.store(true, Ordering::Relaxed);
        let end = session_loop(output, session, &mut states, &shutdown).await;
        connected.store(false, Ordering::Relaxed);
        let end = end?;
        let progressed = states.iter().map(|s| s.state.acked.seq).sum::<u64>() > before;
        if progressed {
            backoff.reset();
        }
        match end {
            End::Shutdown => {
                log::info!("{name} -> Closed cleanly.");
                return persist(&mut states).await;
            }
            End::Recycle => log::info!("{name} -> Reconnecting (connection idle or old)."),
            End::Failed(e) => {
                let wait = jitter(backoff.next_wait());
                log::warn!(
                    "{name} -> Connection lost: {e}. Resending from the last acknowledged event after {:.0}s.",
                    wait.as_secs_f64()
                );
                if shutdown.sleep(wait).await {
                    return persist(&mut states).await;
                }
            }
        }
    }
}

impl AsRef<TableState> for StreamTable {
    fn as_ref(&self) -> &TableState {
        &self.state
    }
}

impl AsMut<TableState> for StreamTable {
    fn as_mut(&mut self) -> &mut TableState {
        &mut self.state
    }
}

async fn session_loop(
    output: &Output,
    session: Session,
    states: &mut [StreamTable],
    shutdown: &Shutdown,
) -> Result<End, Fatal> {
    // TLS 1.2 verifies the client certificate inside the handshake, and plain TCP has none:
    // no probation needed.
    let trusted_from = if session.judged_late() {
        Instant::now() + PROBATION
    } else {
        Instant::now()
    };
    let window = session.line_window().unwrap_or(VECTORED_BYTES);
    let Session {
        stream,
        written,
        socket,
        ..
    } = session;
    let mut probe = Probe::new(written, socket, trusted_from);
    let (mut rd, mut wr) = connection::split(stream);
    let (peer_tx, peer_rx) = smol::channel::bounded::<PeerEnd>(1);
    let ended = probe.ended.clone();
    // Devo sends nothing; a read returns only the server's EOF or alert (a rejected client
    // certificate under TLS 1.3 shows only here). The instant is kept at once: the loop may
    // notice the end up to an idle tick later, and the grace counts from the end itself.
    let _watch = smol::spawn(async move {
        let mut buf = [0u8; 4096];
        let reason = loop {
            match rd.read(&mut buf).await {
                // futures-rustls reports EOF without close_notify as an error.
                Ok(0) => break PeerEnd::Clean,
                Ok(_) => continue,
                Err(e) => break PeerEnd::Failed(format!("the server ended the session: {e}")),
            }
        };
        crate::lock(&ended).get_or_insert(Instant::now());
        let _ = peer_tx.send(reason).await;
    });
    let opened = Instant::now();
    let mut last_write = Instant::now();
    // A batch: the frames read (held until their lines are written) and, per frame, the
    // table, the ack position after it and its number of events.
    let mut frames: Vec<(usize, spool::Frame)> = Vec::new();
    let mut batch: Vec<(usize, Position, u64)> = Vec::new();
    let mut last_persist = Instant::now();
    let mut stalled_since: Option<Instant> = None;
    loop {
        if let Ok(end) = peer_rx.try_recv() {
            settle(states, &mut probe);
            persist(states).await?;
            let reason = match end {
                PeerEnd::Clean => "the server closed the connection".to_string(),
                PeerEnd::Failed(e) => e,
            };
            return Ok(End::Failed(reason));
        }
        if shutdown.is_set() {
            close(&mut wr, &peer_rx, &mut probe, states).await;
            return Ok(End::Shutdown);
        }
        batch.clear();
        let date = crate::time::syslog_date(SystemTime::now());
        let prefixes: Vec<String> = states
            .iter()
            .map(|s| syslog::prefix(&date, &output.hostname, &s.state.table.tag))
            .collect();
        gather(states, &prefixes, &mut frames, &mut batch).await;
        if frames.is_empty() {
            check_reader_stall(states, &mut stalled_since);
            probe.observe();
            settle(states, &mut probe);
            if persist_due(states, last_persist) {
                persist(states).await?;
                last_persist = Instant::now();
            }
            let confirming = states.iter().any(|s| !s.inflight.is_empty());
            wait_for_work(states, shutdown, confirming).await;
            continue;
        }
        stalled_since = None;
        if last_write.elapsed() > MAX_IDLE || opened.elapsed() > MAX_AGE {
            // The frames just read are read again from the ack position on the next connection.
            close(&mut wr, &peer_rx, &mut probe, states).await;
            return Ok(End::Recycle);
        }
        // A write to a peer that stopped reading blocks until TCP_USER_TIMEOUT; after a
        // shutdown request it gets CLOSE_STEP more, then counts as failed (nothing is lost:
        // the unacknowledged part is sent again at the next start).
        let write = write_frames(&mut wr, &frames, &prefixes, window);
        let bounded = async {
            shutdown.wait().await;
            smol::Timer::after(CLOSE_STEP).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the server stopped reading during shutdown",
            ))
        };
        if let Err(e) = smol::future::or(write, bounded).await {
            settle(states, &mut probe);
            persist(states).await?;
            return Ok(End::Failed(format!("sending failed: {e}")));
        }
        last_write = Instant::now();
        record_written(
            states,
            &mut frames,
            &mut batch,
            probe.written.load(Ordering::Relaxed),
        );
        probe.observe();
        settle(states, &mut probe);
        if persist_due(states, last_persist) {
            persist(states).await?;
            last_persist = Instant::now();
        }
    }
}

/// Reads frames from every table until [`BATCH_BYTES`] of lines are gathered: `frames` holds
/// them (until their lines are written) and `batch`, per frame, its table, the ack position
/// after it and its number of events.
async fn gather(
    states: &mut [StreamTable],
    prefixes: &[String],
    frames: &mut Vec<(usize, spool::Frame)>,
    batch: &mut Vec<(usize, Position, u64)>,
) {
    let mut bytes = 0;
    for (i, s) in states.iter_mut().enumerate() {
        let s = &mut s.state;
        while bytes < BATCH_BYTES {
            let Some(frame) = next_frame(s).await else {
                break;
            };
            for (_, ev) in frame.events() {
                bytes += prefixes[i].len() + ev.len() + syslog::line_end(ev).len();
            }
            batch.push((i, frame.position(frame.end_seq()), frame.len() as u64));
            frames.push((i, frame));
        }
    }
}

/// Writes the frames' lines. Each line goes as its pieces, the event straight from the frame:
/// rustls copies them into its records, and nothing assembles the lines before.
async fn write_frames<W: smol::io::AsyncWrite + Unpin>(
    wr: &mut W,
    frames: &[(usize, spool::Frame)],
    prefixes: &[String],
    window: usize,
) -> std::io::Result<()> {
    let count = frames.iter().map(|(_, f)| f.len()).sum::<usize>();
    let mut lines = Vec::with_capacity(3 * count);
    let mut ends = Vec::with_capacity(count);
    for (i, frame) in frames {
        for (_, ev) in frame.events() {
            lines.push(IoSlice::new(prefixes[*i].as_bytes()));
            lines.push(IoSlice::new(ev));
            let end = syslog::line_end(ev);
            if !end.is_empty() {
                lines.push(IoSlice::new(end));
            }
            ends.push(lines.len());
        }
    }
    write_lines(wr, &mut lines, &ends, window).await?;
    wr.flush().await
}

/// After a write: the frames go back to their readers, and each becomes in flight, delivered
/// once the peer's TCP stack has acknowledged the stream up to `cipher_end`.
fn record_written(
    states: &mut [StreamTable],
    frames: &mut Vec<(usize, spool::Frame)>,
    batch: &mut Vec<(usize, Position, u64)>,
    cipher_end: u64,
) {
    let mut newest: Vec<Option<u64>> = vec![None; states.len()];
    for (i, frame) in frames.drain(..) {
        newest[i] = newest[i].max(frame.newest_time().map(|s| s * 1000));
        recycle(&mut states[i].state, frame);
    }
    for (i, pos, events) in batch.drain(..) {
        states[i].inflight.push_back(Inflight {
            cipher_end,
            pos,
            events,
            newest_ms: newest[i].take(),
        });
    }
}

/// Writes the lines in `bufs` (which it consumes; line k ends before slice `ends[k]`) with
/// vectored writes of whole lines, each at most `window` bytes (a longer line alone).
///
/// Over TLS the window is one record's plaintext ([`connection::RECORD_BYTES`]) and the session
/// takes every write whole (its buffer is unbounded, so it never takes part of one), so each
/// record holds whole lines only: a connection cut anywhere (kill -9, a reset, a timeout)
/// leaves the receiver no partial line, since a record cut short is never decrypted. A line
/// longer than a record spans records of its own. Over plain TCP (the relay) the window is
/// [`VECTORED_BYTES`] and a cut can leave the start of a line.
async fn write_lines<W: smol::io::AsyncWrite + Unpin>(
    w: &mut W,
    bufs: &mut [IoSlice<'_>],
    ends: &[usize],
    window: usize,
) -> std::io::Result<()> {
    let mut from = 0;
    let mut line = 0;
    while line < ends.len() {
        // Whole lines up to `window` bytes; at least one.
        let mut bytes = 0;
        let mut to = from;
        while line < ends.len() {
            let len: usize = bufs[to..ends[line]].iter().map(|b| b.len()).sum();
            if to > from && bytes + len > window {
                break;
            }
            bytes += len;
            to = ends[line];
            line += 1;
        }
        let mut part = &mut bufs[from..to];
        while !part.is_empty() {
            let n = w.write_vectored(part).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut part, n);
        }
        from = to;
    }
    Ok(())
}

/// Moves each table's acked position over the batches the peer has acknowledged.
fn settle(states: &mut [StreamTable], probe: &mut Probe) {
    let Some(acked) = probe.peer_acked() else {
        return;
    };
    for s in states {
        while let Some(f) = s.inflight.front() {
            if f.cipher_end > acked {
                break;
            }
            s.state.acked = f.pos;
            s.state
                .table
                .delivered
                .fetch_add(f.events, Ordering::Relaxed);
            s.state.table.delivered_at(f.newest_ms);
            s.inflight.pop_front();
        }
    }
}

/// How long the reader may find nothing while the spool's durable end is past what was
/// written, before that is called a stall.
const READER_STALL: Duration = Duration::from_secs(5);

/// A reader that finds no frame while durable events lie past what this connection has
/// written is stuck (it must never be: each append wakes the forwarder, and an idle tick
/// looks again). Says so at WARN, naming where it reads and what waits, and reads again
/// from the last event written, so that a stall costs seconds, not a silent minute.
fn check_reader_stall(states: &mut [StreamTable], since: &mut Option<Instant>) {
    let mut stuck = false;
    for s in states.iter_mut() {
        let written = s.inflight.back().map_or(s.state.acked, |f| f.pos);
        let durable = s.state.table.spool.durable();
        if durable.next_seq <= written.seq {
            continue;
        }
        stuck = true;
        if since.is_some_and(|t| t.elapsed() >= READER_STALL) {
            log::warn!(
                "{} spool {}: the reader found nothing for {}s although events {} to {} are durable (it reads after event {}, segment {} offset {}; durable end segment {} offset {}); reading again from there.",
                s.state.table.tag,
                s.state.table.spool.dir().display(),
                READER_STALL.as_secs(),
                written.seq,
                durable.next_seq - 1,
                written.seq,
                written.segment,
                written.offset,
                durable.segment,
                durable.offset
            );
            if let Some(r) = s.state.reader.as_mut() {
                r.seek(written);
            }
        }
    }
    match (stuck, *since) {
        (false, _) => *since = None,
        (true, None) => *since = Some(Instant::now()),
        (true, Some(t)) if t.elapsed() >= READER_STALL => *since = None,
        (true, Some(_)) => {}
    }
}

/// Clean close: close_notify and half-close, wait (bounded) for the server's EOF and for the
/// send queue to drain, then count what the peer acknowledged. A clean EOF from the server
/// (its close_notify) proves it read the whole stream, probation or not; without one, the
/// acknowledged bytes count only if the connection is not failed [`ACK_GRACE`] later.
async fn close<W: smol::io::AsyncWrite + Unpin>(
    wr: &mut W,
    peer_rx: &smol::channel::Receiver<PeerEnd>,
    probe: &mut Probe,
    states: &mut [StreamTable],
) {
    let _ = timeout(CLOSE_STEP, wr.close()).await;
    let clean = matches!(
        timeout(CLOSE_STEP, peer_rx.recv()).await,
        Some(Ok(PeerEnd::Clean))
    );
    let deadline = Instant::now() + CLOSE_STEP;
    while crate::sys::send_queue_len(&probe.socket).is_some_and(|q| q > 0)
        && Instant::now() < deadline
    {
        smol::Timer::after(Duration::from_millis(20)).await;
    }
    if clean {
        probe.trust_everything();
    } else {
        // No answer to our close: what the peer acknowledged counts once the connection has
        // outlived the grace without the server failing it.
        probe.observe();
        smol::Timer::after(ACK_GRACE).await;
        if matches!(peer_rx.try_recv(), Ok(PeerEnd::Failed(_))) {
            return;
        }
    }
    settle(states, probe);
}

#[cfg(test)]
mod tests;
