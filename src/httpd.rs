//! A tiny blocking HTTP/1.1 server (a thread per connection, a bounded number of them), for
//! the metrics endpoint and the simulated Okta org. Anyone who reaches the metrics port (every
//! pod of a cluster) is a client, so every input is bounded: GET and HEAD only, no bodies, the
//! request line and headers within 8 KiB and within a total deadline (not only a timeout per
//! read: a client sending a byte every few seconds is cut off all the same), write timeouts, a
//! cap on connections, and no panic on any path. At the cap, a new connection evicts the one
//! that has waited longest for its request head: slow clients cannot hold every slot against
//! a liveness probe, which sends its head at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one server accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request line plus headers, in bytes.
    pub max_head: usize,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Longest wait for a whole request head, from when the server starts waiting for it
    /// (between requests on a kept-alive connection too), however the bytes trickle in.
    pub read_timeout: Duration,
    /// Longest wait for the client to take the answer.
    pub write_timeout: Duration,
    /// The largest request body taken (with `Content-Length`, on a POST); 0: no bodies.
    pub max_body: usize,
}

impl Limits {
    /// For the metrics and health endpoint: probes and scrapes, a few at a time.
    pub const METRICS: Limits = Limits {
        max_head: 8 << 10,
        max_connections: 32,
        read_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(5),
        max_body: 0,
    };
    /// For the simulator: the collector keeps connections alive between pages for longer.
    pub const SIMULATOR: Limits = Limits {
        max_head: 8 << 10,
        max_connections: 256,
        read_timeout: Duration::from_secs(120),
        write_timeout: Duration::from_secs(30),
        // The token endpoint's form (a client assertion and a DPoP proof are ~2 KB).
        max_body: 16 << 10,
    };
}

/// A parsed request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `GET`, ...
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// Header names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body (a POST's form, within [`Limits::max_body`]).
    pub body: Vec<u8>,
}

impl Request {
    /// First header of that (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    /// Query parameters, percent-decoded.
    pub fn query(&self) -> Vec<(String, String)> {
        let Some((_, q)) = self.target.split_once('?') else {
            return Vec::new();
        };
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }
}

/// A response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code; 0 closes the connection without answering (a reset).
    pub status: u16,
    /// Headers (repeat a name for several lines).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// The connections waiting for a request head, oldest first: the ones a new connection may
/// evict at the cap.
#[derive(Default)]
struct Waiting {
    next_id: AtomicU64,
    conns: Mutex<Vec<(u64, TcpStream)>>,
}

impl Waiting {
    fn register(&self, conn: &TcpStream) -> Option<u64> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let clone = conn.try_clone().ok()?;
        crate::lock(&self.conns).push((id, clone));
        Some(id)
    }

    fn unregister(&self, id: Option<u64>) {
        if let Some(id) = id {
            crate::lock(&self.conns).retain(|(i, _)| *i != id);
        }
    }

    /// Shuts the connection that has waited longest for its head (its thread then ends);
    /// false if none is waiting.
    fn evict_oldest(&self) -> bool {
        let mut conns = crate::lock(&self.conns);
        if conns.is_empty() {
            return false;
        }
        let (_, conn) = conns.remove(0);
        drop(conns);
        let _ = conn.shutdown(Shutdown::Both);
        true
    }
}

/// Serves `handler` on `listener` from a background thread, forever, within `limits`.
pub fn serve(
    listener: TcpListener,
    handler: Arc<dyn Fn(&Request) -> Reply + Send + Sync>,
    limits: Limits,
) -> SocketAddr {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let open = Arc::new(AtomicUsize::new(0));
    let waiting = Arc::new(Waiting::default());
    let accept = move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            if open.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
                // A slot is taken from the slowest client still sending its head; with none
                // (every slot answering), the newcomer is refused. The evicted thread ends
                // within moments, so the count overshoots the cap by the evictions in flight.
                if !waiting.evict_oldest() {
                    open.fetch_sub(1, Ordering::AcqRel);
                    refuse(&mut conn, 503, "too many connections");
                    continue;
                }
            }
            let (handler, done, waiting) = (handler.clone(), open.clone(), waiting.clone());
            let spawned = std::thread::Builder::new()
                .name("httpd".into())
                .stack_size(128 << 10)
                .spawn(move || {
                    let _ = handle(conn, &*handler, limits, &waiting);
                    done.fetch_sub(1, Ordering::AcqRel);
                });
            // No thread to be had (a process limit): the connection is dropped, the server
            // goes on.
            if spawned.is_err() {
                open.fetch_sub(1, Ordering::AcqRel);
            }
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("httpd-accept".into())
        .spawn(accept)
    {
        log::error!("cannot start the HTTP server on {addr}: {e}");
    }
    addr
}

/// A connection's reading side with a deadline for the whole request head: each read waits
/// at most what is left of it (and at most `per_read`), and none starts once it has passed.
struct Timed {
    conn: TcpStream,
    deadline: Instant,
    per_read: Duration,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request head took too long",
            ));
        }
        self.conn.set_read_timeout(Some(left.min(self.per_read)))?;
        self.conn.read(buf)
    }
}

/// Answers `status` with a short text and closes (best effort, bounded by a short timeout).
fn refuse(conn: &mut TcpStream, status: u16, why: &str) {
    let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
    let body = format!("{why}\n");
    let answer = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    let _ = conn.write_all(answer.as_bytes());
}

/// Reads one line (up to LF) into `buf`, taking at most `*left` bytes of the head's budget.
/// `Ok(false)`: the connection closed first. An error if the budget runs out first.
fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    left: &mut usize,
) -> std::io::Result<bool> {
    buf.clear();
    let n = reader.take(*left as u64).read_until(b'\n', buf)?;
    *left -= n;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() != Some(&b'\n') {
        if *left == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "head too large",
            ));
        }
        return Ok(false);
    }
    Ok(true)
}

/// What a connection sent next.
enum Head {
    /// It closed (between requests, or mid-head).
    Closed,
    /// A request to answer.
    Request(Request),
    /// A request refused with this status and reason.
    Refused(u16, &'static str),
}

/// Reads the next request head.
fn read_head(reader: &mut impl BufRead, limits: Limits) -> std::io::Result<Head> {
    let mut left = limits.max_head;
    let mut line = Vec::with_capacity(256);
    let too_large = |e: &std::io::Error| e.kind() == std::io::ErrorKind::InvalidData;
    match read_line(reader, &mut line, &mut left) {
        Ok(true) => {}
        Ok(false) => return Ok(Head::Closed),
        Err(e) if too_large(&e) => return Ok(Head::Refused(431, "request line too long")),
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&line);
    let mut parts = text.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(Head::Refused(400, "bad request line"));
    };
    let mut req = Request {
        method: method.into(),
        target: target.into(),
        ..Request::default()
    };
    loop {
        match read_line(reader, &mut line, &mut left) {
            Ok(true) => {}
            Ok(false) => return Ok(Head::Closed),
            Err(e) if too_large(&e) => return Ok(Head::Refused(431, "request headers too large")),
            Err(e) => return Err(e),
        }
        let h = String::from_utf8_lossy(&line);
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            req.headers
                .push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let post = req.method == "POST" && limits.max_body > 0;
    if req.method != "GET" && req.method != "HEAD" && !post {
        return Ok(Head::Refused(405, "only GET and HEAD"));
    }
    if req.header("transfer-encoding").is_some() {
        return Ok(Head::Refused(413, "no chunked request bodies"));
    }
    let length = match req
        .header("content-length")
        .map(|v| v.trim().parse::<usize>())
    {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Ok(Head::Refused(400, "bad content-length")),
    };
    if length > 0 && (!post || length > limits.max_body) {
        return Ok(Head::Refused(413, "request body not taken"));
    }
    if length > 0 {
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(Head::Request(req))
}

fn handle(
    conn: TcpStream,
    handler: &(dyn Fn(&Request) -> Reply + Send + Sync),
    limits: Limits,
    waiting: &Waiting,
) -> std::io::Result<()> {
    let _ = conn.set_nodelay(true);
    conn.set_read_timeout(Some(limits.read_timeout))?;
    conn.set_write_timeout(Some(limits.write_timeout))?;
    let timed = Timed {
        conn: conn.try_clone()?,
        deadline: Instant::now() + limits.read_timeout,
        per_read: limits.read_timeout,
    };
    let mut reader = BufReader::with_capacity(4096, timed);
    let mut out = conn;
    loop {
        reader.get_mut().deadline = Instant::now() + limits.read_timeout;
        let id = waiting.register(&out);
        let head = read_head(&mut reader, limits);
        waiting.unregister(id);
        let req = match head? {
            Head::Closed => return Ok(()),
            Head::Request(req) => req,
            Head::Refused(status, why) => {
                refuse(&mut out, status, why);
                return Ok(());
            }
        };
        let reply = handler(&req);
        if reply.status == 0 {
            // A reset: the connection goes away without an answer.
            return Ok(());
        }
        // Framing the reply asks for: `Transfer-Encoding: chunked` (any case) sends the body
        // in chunks without a length, as Okta often does; `Connection: close` closes after it.
        let has = |name: &str, value: &str| {
            reply.headers.iter().any(|(n, v)| {
                n.eq_ignore_ascii_case(name) && v.to_ascii_lowercase().contains(value)
            })
        };
        let chunked = has("transfer-encoding", "chunked");
        let close = has("connection", "close");
        let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
        for (n, v) in &reply.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if !chunked {
            head.push_str(&format!("content-length: {}\r\n", reply.body.len()));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        if req.method != "HEAD" {
            if chunked {
                for chunk in reply.body.chunks(CHUNK_BYTES) {
                    out.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                    out.write_all(chunk)?;
                    out.write_all(b"\r\n")?;
                }
                out.write_all(b"0\r\n\r\n")?;
            } else {
                out.write_all(&reply.body)?;
            }
        }
        out.flush()?;
        if close {
            return Ok(());
        }
    }
}

/// The size of each chunk of a chunked reply.
const CHUNK_BYTES: usize = 8 << 10;

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// Decodes `%XX` escapes and `+` (as a space).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
