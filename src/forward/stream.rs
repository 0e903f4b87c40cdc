//! The forwarder: reads every table's spool up to its durable end, sends syslog lines to one
//! Devo output over one mutual-TLS connection, and acks only what the peer's TCP stack has
//! acknowledged (bytes written minus `SIOCOUTQ`), rewinding to that point on reconnect.

pub mod syslog;
pub mod tls;

use crate::config::Output;
use crate::shutdown::Shutdown;
use crate::time::{jitter, timeout};
use futures_rustls::rustls::ClientConfig;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use spool::{Position, Reader, Spool};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

/// Bytes of syslog lines gathered before one write.
const BATCH_BYTES: usize = 256 << 10;
/// Devo's load balancer drops idle connections; reconnect before sending after this.
const MAX_IDLE: Duration = Duration::from_secs(30);
/// Reconnect before sending on a connection older than this.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// The ack position is made durable at least this often while it moves...
const ACK_PERSIST_EVERY: Duration = Duration::from_secs(1);
/// ...and as soon as this many events are acknowledged but not yet recorded. Together they
/// bound the events re-sent after a crash (the unacknowledged window).
pub const ACK_PERSIST_EVENTS: u64 = 2_000;
/// Bound on each step of a clean close.
const CLOSE_STEP: Duration = Duration::from_secs(5);
/// Under TLS 1.3 the server judges the client certificate only after the client's handshake
/// is complete, so the first batch can reach the server's TCP stack (and be acknowledged
/// there) before the server rejects the session. Bytes sent on a TLS 1.3 connection count as
/// delivered only once it has lived this long without an alert, or after a clean close.
const PROBATION: Duration = Duration::from_secs(2);

/// One table: a spool and the tag its events are sent with.
#[derive(Debug)]
pub struct Table {
    /// The Devo tag.
    pub tag: String,
    /// The table's spool.
    pub spool: Spool,
    /// Events acknowledged by the peer so far (for the demo and statistics).
    pub delivered: Arc<AtomicU64>,
}

/// A fatal forwarder error (the ack file cannot be written).
#[derive(Debug)]
pub struct Fatal(pub String);

/// Sends all tables to one output until shutdown.
#[derive(Debug)]
pub struct Forwarder {
    /// The output.
    pub output: Output,
    /// Its TLS client config.
    pub tls: Arc<ClientConfig>,
    /// The tables.
    pub tables: Vec<Table>,
    /// Whether a session with the peer is up (for `/readyz` and the metrics).
    pub connected: Arc<std::sync::atomic::AtomicBool>,
}

struct Inflight {
    /// Ciphertext offset at which the batch holding the frame ends.
    cipher_end: u64,
    /// Ack position once that offset is acknowledged.
    pos: Position,
    events: u64,
}

struct TableState {
    table: Table,
    reader: Option<Reader>,
    inflight: VecDeque<Inflight>,
    /// Peer-acknowledged position (in memory).
    acked: Position,
    /// Last position written to the ack file.
    persisted: Position,
}

enum End {
    Shutdown,
    Recycle,
    Failed(String),
}

/// What tells how much of the stream the peer has received.
struct Probe {
    written: Arc<AtomicU64>,
    socket: smol::net::TcpStream,
    /// Acknowledged bytes count only from this instant on (see [`PROBATION`]).
    trusted_from: Instant,
}

/// How the server's side of the connection ended, as seen by the reading task.
enum PeerEnd {
    /// EOF after a close_notify: the server read everything and closed.
    Clean,
    /// An alert, a reset, or EOF without close_notify.
    Failed(String),
}

impl Probe {
    /// Bytes the peer's TCP stack acknowledged, if the session is past its probation.
    fn peer_acked(&self) -> Option<u64> {
        if Instant::now() < self.trusted_from {
            return None;
        }
        self.kernel_acked()
    }

    /// Bytes the peer's TCP stack acknowledged: written minus what is still in the send queue.
    fn kernel_acked(&self) -> Option<u64> {
        let outq = crate::sys::send_queue_len(&self.socket)?;
        Some(self.written.load(Ordering::Relaxed).saturating_sub(outq))
    }
}

impl Forwarder {
    /// Runs until shutdown: connect, send, reconnect with backoff (2 s doubling to 60 s).
    ///
    /// # Errors
    /// [`Fatal`] if progress can no longer be recorded.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), Fatal> {
        let Forwarder {
            output,
            tls,
            tables,
            connected,
        } = self;
        let name = format!(
            "DevoSender({},{}:{})",
            output.name, output.address, output.port
        );
        let mut states: Vec<TableState> = tables
            .into_iter()
            .map(|t| {
                let acked = t.spool.acked();
                TableState {
                    reader: Some(t.spool.reader()),
                    table: t,
                    inflight: VecDeque::new(),
                    acked,
                    persisted: acked,
                }
            })
            .collect();
        let mut backoff = Duration::from_secs(2);
        loop {
            if shutdown.is_set() {
                return persist(&mut states).await;
            }
            let session = match tls::connect(&output, tls.clone(), Duration::from_secs(10)).await {
                Ok(s) => s,
                Err(e) => {
                    let wait = jitter(backoff);
                    log::error!(
                        "{name} -> Cannot connect: {e}. Events stay in the spool; retrying in {:.0}s.",
                        wait.as_secs_f64()
                    );
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    if shutdown.sleep(wait).await {
                        return persist(&mut states).await;
                    }
                    continue;
                }
            };
            let version = session.protocol();
            log::info!(
                "{name} -> Connected ({version}, client certificate {}).",
                output.cert.display()
            );
            for s in &mut states {
                if let Some(r) = s.reader.as_mut() {
                    r.seek(s.acked);
                }
                s.inflight.clear();
            }
            let before: u64 = states.iter().map(|s| s.acked.seq).sum();
            connected.store(true, Ordering::Relaxed);
            let end = session_loop(&output, session, &mut states, &shutdown).await;
            connected.store(false, Ordering::Relaxed);
            let end = end?;
            let progressed = states.iter().map(|s| s.acked.seq).sum::<u64>() > before;
            if progressed {
                backoff = Duration::from_secs(2);
            }
            match end {
                End::Shutdown => {
                    log::info!("{name} -> Closed cleanly.");
                    return persist(&mut states).await;
                }
                End::Recycle => log::info!("{name} -> Reconnecting (connection idle or old)."),
                End::Failed(e) => {
                    let wait = jitter(backoff);
                    log::warn!(
                        "{name} -> Connection lost: {e}. Resending from the last acknowledged event after {:.0}s.",
                        wait.as_secs_f64()
                    );
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    if shutdown.sleep(wait).await {
                        return persist(&mut states).await;
                    }
                }
            }
        }
    }
}

async fn session_loop(
    output: &Output,
    session: tls::Session,
    states: &mut [TableState],
    shutdown: &Shutdown,
) -> Result<End, Fatal> {
    let tls::Session {
        tls,
        written,
        socket,
    } = session;
    // TLS 1.2 verifies the client certificate inside the handshake: no probation needed.
    let tls12 = tls.get_ref().1.protocol_version()
        == Some(futures_rustls::rustls::ProtocolVersion::TLSv1_2);
    let trusted_from = if tls12 {
        Instant::now()
    } else {
        Instant::now() + PROBATION
    };
    let mut probe = Probe {
        written,
        socket,
        trusted_from,
    };
    let (mut rd, mut wr) = smol::io::split(tls);
    let (peer_tx, peer_rx) = smol::channel::bounded::<PeerEnd>(1);
    // Devo sends nothing; a read returns only the server's EOF or alert (a rejected client
    // certificate under TLS 1.3 shows only here).
    let _watch = smol::spawn(async move {
        let mut buf = [0u8; 4096];
        let reason = loop {
            match rd.read(&mut buf).await {
                // futures-rustls reports EOF without close_notify as an error.
                Ok(0) => break PeerEnd::Clean,
                Ok(_) => continue,
                Err(e) => break PeerEnd::Failed(format!("the server ended the TLS session: {e}")),
            }
        };
        let _ = peer_tx.send(reason).await;
    });
    let opened = Instant::now();
    let mut last_write = Instant::now();
    let mut buf = Vec::with_capacity(BATCH_BYTES + (64 << 10));
    let mut batch: Vec<(usize, Position, u64)> = Vec::new();
    let mut last_persist = Instant::now();
    loop {
        if let Ok(end) = peer_rx.try_recv() {
            settle(states, &probe);
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
        buf.clear();
        batch.clear();
        let date = crate::time::syslog_date(SystemTime::now());
        for (i, s) in states.iter_mut().enumerate() {
            while buf.len() < BATCH_BYTES {
                let Some(frame) = next_frame(s).await? else {
                    break;
                };
                for (_, ev) in frame.events() {
                    syslog::push_line(&mut buf, &date, &output.hostname, &s.table.tag, ev);
                }
                batch.push((i, frame.position(frame.end_seq()), frame.len() as u64));
            }
        }
        if buf.is_empty() {
            settle(states, &probe);
            if persist_due(states, last_persist) {
                persist(states).await?;
                last_persist = Instant::now();
            }
            wait_for_work(states, shutdown).await;
            continue;
        }
        if last_write.elapsed() > MAX_IDLE || opened.elapsed() > MAX_AGE {
            // The frames just read are read again from the ack position on the next connection.
            close(&mut wr, &peer_rx, &mut probe, states).await;
            return Ok(End::Recycle);
        }
        // A write to a peer that stopped reading blocks until TCP_USER_TIMEOUT; after a
        // shutdown request it gets CLOSE_STEP more, then counts as failed (nothing is lost:
        // the unacknowledged part is sent again at the next start).
        let write = async {
            wr.write_all(&buf).await?;
            wr.flush().await
        };
        let bounded = async {
            shutdown.wait().await;
            smol::Timer::after(CLOSE_STEP).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the server stopped reading during shutdown",
            ))
        };
        if let Err(e) = smol::future::or(write, bounded).await {
            settle(states, &probe);
            persist(states).await?;
            return Ok(End::Failed(format!("sending failed: {e}")));
        }
        last_write = Instant::now();
        let end = probe.written.load(Ordering::Relaxed);
        for (i, pos, events) in batch.drain(..) {
            states[i].inflight.push_back(Inflight {
                cipher_end: end,
                pos,
                events,
            });
        }
        settle(states, &probe);
        if persist_due(states, last_persist) {
            persist(states).await?;
            last_persist = Instant::now();
        }
    }
}

/// True when an acked position moved and the time or event bound is reached.
fn persist_due(states: &[TableState], last_persist: Instant) -> bool {
    states.iter().any(|s| {
        let behind = s.acked.seq.saturating_sub(s.persisted.seq);
        behind >= ACK_PERSIST_EVENTS || (behind > 0 && last_persist.elapsed() >= ACK_PERSIST_EVERY)
    })
}

/// Reads the table's next frame off the reactor.
async fn next_frame(s: &mut TableState) -> Result<Option<spool::Frame>, Fatal> {
    let Some(mut reader) = s.reader.take() else {
        return Ok(None);
    };
    let (reader, r) = smol::unblock(move || {
        let r = reader.next_frame();
        (reader, r)
    })
    .await;
    s.reader = Some(reader);
    match r {
        Ok(f) => Ok(f),
        Err(e) => {
            log::error!(
                "Cannot read the spool {}: {e}",
                s.table.spool.dir().display()
            );
            Ok(None)
        }
    }
}

/// Moves each table's acked position over the batches the peer has acknowledged.
fn settle(states: &mut [TableState], probe: &Probe) {
    let Some(acked) = probe.peer_acked() else {
        return;
    };
    for s in states {
        while let Some(f) = s.inflight.front() {
            if f.cipher_end > acked {
                break;
            }
            s.acked = f.pos;
            s.table.delivered.fetch_add(f.events, Ordering::Relaxed);
            s.inflight.pop_front();
        }
    }
}

/// Writes acked positions that moved to the ack files.
async fn persist(states: &mut [TableState]) -> Result<(), Fatal> {
    for s in states.iter_mut() {
        if s.acked == s.persisted {
            continue;
        }
        let spool = s.table.spool.clone();
        let pos = s.acked;
        match smol::unblock(move || spool.ack(pos)).await {
            Ok(()) => s.persisted = pos,
            Err(e) => {
                return Err(Fatal(format!(
                    "cannot record delivery progress in {}: {e}",
                    s.table.spool.dir().display()
                )));
            }
        }
    }
    Ok(())
}

/// Clean close: close_notify and half-close, wait (bounded) for the server's EOF and for the
/// send queue to drain, then count what the peer acknowledged. A clean EOF from the server
/// (its close_notify) proves it read the whole stream, probation or not.
async fn close<W: smol::io::AsyncWrite + Unpin>(
    wr: &mut W,
    peer_rx: &smol::channel::Receiver<PeerEnd>,
    probe: &mut Probe,
    states: &mut [TableState],
) {
    let _ = timeout(CLOSE_STEP, wr.close()).await;
    if let Some(Ok(PeerEnd::Clean)) = timeout(CLOSE_STEP, peer_rx.recv()).await {
        probe.trusted_from = Instant::now();
    }
    let deadline = Instant::now() + CLOSE_STEP;
    while crate::sys::send_queue_len(&probe.socket).is_some_and(|q| q > 0)
        && Instant::now() < deadline
    {
        smol::Timer::after(Duration::from_millis(20)).await;
    }
    settle(states, probe);
}

/// Waits for a spool append, shutdown, or 200 ms.
async fn wait_for_work(states: &[TableState], shutdown: &Shutdown) {
    let mut listeners: Vec<_> = states.iter().map(|s| s.table.spool.listen()).collect();
    let any_append = std::future::poll_fn(|cx| {
        for l in listeners.iter_mut() {
            if Pin::new(l).poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    });
    // A message from the server stays in the channel for the loop to read; the timer bounds
    // how long it waits there.
    smol::future::or(
        smol::future::or(any_append, async {
            smol::Timer::after(Duration::from_millis(200)).await;
        }),
        shutdown.wait(),
    )
    .await;
}
