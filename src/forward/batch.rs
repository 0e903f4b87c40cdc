//! The batch loop of the request/response outputs, `devo_http` (`http.rs`: a 2xx is Devo's
//! acknowledgement) and `console` (`console.rs`: a flushed write to stdout), each a
//! [`BatchSink`]. Each batch belongs to one table and is acked only once the
//! output has it. A batch the output rejects for good (an HTTP 4xx about the batch itself) is
//! written to a rejected-batch file and logged with its count, so the table goes on and
//! nothing is dropped unseen.

use super::table::{TableState, next_frame, persist, persist_due, recycle, wait_for_work};
use crate::Fatal;
use crate::backoff::Backoff;
use crate::config::Output;
use crate::shutdown::Shutdown;
use crate::time::jitter;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// What became of one batch.
#[derive(Debug)]
pub enum Delivery {
    /// The output has it.
    Done,
    /// Not delivered; the same batch is tried again after a backoff.
    Retry(String),
    /// Refused for good because of its content; it is set aside and the table goes on.
    Rejected(String),
}

/// An output that takes one batch at a time.
pub(crate) trait BatchSink: Send + Sync + Clone + 'static {
    /// Bytes of events gathered into one batch.
    fn batch_bytes(&self) -> usize;
    /// Appends `event` of table `tag` to a batch.
    fn push(&self, buf: &mut Vec<u8>, date: &str, tag: &str, event: &[u8]);
    /// Delivers a batch (blocking: it runs on the blocking pool).
    fn deliver(&self, tag: &str, batch: &[u8]) -> Delivery;
    /// The output as log lines name it.
    fn describe(&self, output: &str) -> String;
}

/// Runs a batch output until shutdown. `rejected_dir` receives the batches refused for good.
pub(super) async fn run<S: BatchSink>(
    output: &Output,
    sink: S,
    rejected_dir: PathBuf,
    mut states: Vec<TableState>,
    connected: Arc<AtomicBool>,
    shutdown: Shutdown,
) -> Result<(), Fatal> {
    let name = sink.describe(&output.name);
    let limit = sink.batch_bytes();
    let mut buf = Vec::with_capacity(limit + (64 << 10));
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut last_persist = Instant::now();
    let mut failing = false;
    connected.store(true, Ordering::Relaxed);
    loop {
        if shutdown.is_set() {
            return persist(&mut states).await;
        }
        let mut sent_any = false;
        for s in states.iter_mut() {
            buf.clear();
            let date = crate::time::syslog_date(SystemTime::now());
            let Some((pos, events, newest)) = gather(s, &sink, &date, limit, &mut buf).await else {
                continue;
            };
            sent_any = true;
            // Shared with each attempt on the blocking pool, not copied per attempt.
            let batch = Arc::new(std::mem::replace(
                &mut buf,
                Vec::with_capacity(limit + (64 << 10)),
            ));
            let taken = loop {
                let (sink2, tag, attempt) = (sink.clone(), s.table.tag.clone(), batch.clone());
                let d = smol::unblock(move || sink2.deliver(&tag, &attempt)).await;
                match d {
                    Delivery::Done => {
                        if failing {
                            log::info!("{name} -> Delivering again.");
                            failing = false;
                        }
                        connected.store(true, Ordering::Relaxed);
                        backoff.reset();
                        break true;
                    }
                    Delivery::Rejected(why) => {
                        let file = set_aside(&rejected_dir, &s.table.tag, batch.clone())
                            .await
                            .map_err(Fatal::Rejected)?;
                        log::error!(
                            "{name} -> {events} events of {} were rejected ({why}); they are kept in {} and the table goes on.",
                            s.table.tag,
                            file.display()
                        );
                        break false;
                    }
                    Delivery::Retry(why) => {
                        connected.store(false, Ordering::Relaxed);
                        failing = true;
                        let wait = jitter(backoff.next_wait());
                        log::error!(
                            "{name} -> {events} events of {} not delivered: {why}. They stay in the spool; retrying in {:.0}s.",
                            s.table.tag,
                            wait.as_secs_f64()
                        );
                        if shutdown.sleep(wait).await {
                            return persist(&mut states).await;
                        }
                    }
                }
            };
            s.acked = pos;
            if taken {
                s.table.delivered.fetch_add(events, Ordering::Relaxed);
                s.table.delivered_at(newest);
            }
            if persist_due(std::slice::from_ref(&*s), last_persist) {
                persist(std::slice::from_mut(s)).await?;
                last_persist = Instant::now();
            }
        }
        if !sent_any {
            if persist_due(&states, last_persist) {
                persist(&mut states).await?;
                last_persist = Instant::now();
            }
            wait_for_work(&mut states, &shutdown, false).await;
        }
    }
}

/// Reads events of one table into `buf` up to `limit` bytes (at least one event), returning
/// the ack position after the last one taken and how many were taken; `None` if there is
/// nothing to send. The reader is left at the first event not taken.
async fn gather<S: BatchSink>(
    s: &mut TableState,
    sink: &S,
    date: &str,
    limit: usize,
    buf: &mut Vec<u8>,
) -> Option<(spool::Position, u64, Option<u64>)> {
    let mut taken = None;
    let mut count = 0u64;
    // The time of the last event taken of each frame (one parse per frame).
    let mut newest: Option<u64> = None;
    while buf.len() < limit {
        let Some(frame) = next_frame(s).await else {
            break;
        };
        for (seq, ev) in frame.events() {
            if !buf.is_empty() && buf.len() + ev.len() + 1 > limit {
                // The rest of the frame goes in the next batch.
                if let Some(r) = s.reader.as_mut() {
                    r.seek(frame.position(seq));
                }
                // Part of the frame: its time (its newest event's) is counted with the rest.
                return taken.map(|p| (p, count, newest));
            }
            sink.push(buf, date, &s.table.tag, ev);
            count += 1;
            taken = Some(frame.position(seq + 1));
        }
        newest = newest.max(frame.newest_time().map(|s| s * 1000));
        recycle(s, frame);
    }
    taken.map(|p| (p, count, newest))
}

/// Writes a rejected batch to `<dir>/<tag>.<unix ms>.log` (0600, synced) and returns the path.
async fn set_aside(dir: &Path, tag: &str, batch: Arc<Vec<u8>>) -> Result<PathBuf, String> {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let path = dir.join(format!("{tag}.{ms}.log"));
    let (dir, p) = (dir.to_path_buf(), path.clone());
    smol::unblock(move || -> std::io::Result<()> {
        crate::private::ensure(&dir, false).map_err(std::io::Error::other)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)?;
        f.write_all(&batch)?;
        f.sync_all()?;
        std::fs::File::open(&dir)?.sync_all()
    })
    .await
    .map_err(|e| format!("cannot keep a rejected batch in {}: {e}", path.display()))?;
    Ok(path)
}
