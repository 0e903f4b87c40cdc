//! The byte-stream outputs' connections: TCP (with `TCP_NODELAY` and `TCP_USER_TIMEOUT`), the
//! TLS handshake over it or plain TCP to a relay, the bytes written counted on the socket (the
//! kernel-ack watermark compares them with `SIOCOUTQ`), and the read/write split that passes
//! vectored writes through. What a session is made of, apart from what it trusts (`tls.rs`).

use super::tls::handshake_error;
use futures_rustls::rustls::pki_types::ServerName;
use futures_rustls::rustls::{self, ClientConfig};
use smol::io::{AsyncRead, AsyncWrite};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// The plaintext of one full TLS record (2^14 bytes, TLS 1.2 and 1.3; rustls's default
/// fragment size).
pub const RECORD_BYTES: usize = 1 << 14;

/// A TCP stream that counts the bytes written to it (TLS ciphertext, records included).
#[derive(Debug)]
pub struct Counted {
    inner: smol::net::TcpStream,
    written: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &r {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// A byte stream the forwarder can split and share with a reading task.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// One half of a [`Stream`] shared between the forwarder and the task that reads the
/// server's EOF or alert: `smol::io::split`, except that vectored writes pass through (its
/// write half writes only the first slice of each), so syslog lines go from the spool's frames
/// into TLS records without being assembled first.
pub struct Half(Arc<std::sync::Mutex<Box<dyn Stream>>>);

impl std::fmt::Debug for Half {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Half")
    }
}

/// The two halves of `stream`.
pub fn split(stream: Box<dyn Stream>) -> (Half, Half) {
    let shared = Arc::new(std::sync::Mutex::new(stream));
    (Half(shared.clone()), Half(shared))
}

impl Half {
    fn with<R>(&self, f: impl FnOnce(Pin<&mut dyn Stream>) -> R) -> R {
        let mut s = crate::lock(&self.0);
        f(Pin::new(&mut **s))
    }
}

impl AsyncRead for Half {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        self.with(|s| s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Half {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.with(|s| s.poll_write(cx, buf))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.with(|s| s.poll_write_vectored(cx, bufs))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.with(|s| s.poll_flush(cx))
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.with(|s| s.poll_close(cx))
    }
}

/// An open session (TLS or plain TCP) and what is needed to know how much of it the peer has
/// received.
pub struct Session {
    /// The stream (TLS over the counted socket, or the counted socket itself).
    pub stream: Box<dyn Stream>,
    /// Bytes written to the socket so far (ciphertext, for TLS).
    pub written: Arc<AtomicU64>,
    /// A second handle on the socket, for `SIOCOUTQ`.
    pub socket: smol::net::TcpStream,
    /// The TLS version (always known once the handshake is done), `None` for plain TCP.
    pub version: Option<rustls::ProtocolVersion>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("protocol", &self.protocol())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// `TLSv1_3`, `TLSv1_2` or `TCP`, for messages.
    pub fn protocol(&self) -> String {
        self.version
            .map_or_else(|| "TCP".to_string(), |v| format!("{v:?}"))
    }

    /// True on TLS 1.3, where the server judges the client certificate only after the client's
    /// handshake is complete (see the forwarder's probation).
    pub fn judged_late(&self) -> bool {
        self.version == Some(rustls::ProtocolVersion::TLSv1_3)
    }

    /// The most bytes of whole lines one write may carry: one TLS record's plaintext, so a
    /// record never holds part of a line that a later record ends (see the stream
    /// forwarder's `write_lines`); no limit of that kind on plain TCP.
    pub fn line_window(&self) -> Option<usize> {
        self.version.map(|_| RECORD_BYTES)
    }
}

/// Connects over TCP to `address:port`, trying each resolved address, bounded by `timeout`;
/// sets `TCP_NODELAY` and `TCP_USER_TIMEOUT` (30 s).
///
/// # Errors
/// A message saying which step failed and why.
pub async fn connect_tcp(
    address: &str,
    port: u16,
    timeout: Duration,
) -> Result<smol::net::TcpStream, String> {
    let addrs = smol::net::resolve((address, port))
        .await
        .map_err(|e| format!("cannot resolve {address}: {e}"))?;
    let mut last = format!("{address} resolves to no address");
    for a in addrs {
        match crate::time::timeout(timeout, smol::net::TcpStream::connect(a)).await {
            Some(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                crate::sys::set_user_timeout(&tcp, Duration::from_secs(30));
                return Ok(tcp);
            }
            Some(Err(e)) => last = format!("cannot connect to {a}: {e}"),
            None => last = format!("connecting to {a} timed out after {}s", timeout.as_secs()),
        }
    }
    Err(last)
}

/// A plain TCP session (the relay output).
///
/// # Errors
/// As [`connect_tcp`].
pub async fn connect_plain(address: &str, port: u16, timeout: Duration) -> Result<Session, String> {
    let tcp = connect_tcp(address, port, timeout).await?;
    let written = Arc::new(AtomicU64::new(0));
    Ok(Session {
        stream: Box::new(Counted {
            inner: tcp.clone(),
            written: written.clone(),
        }),
        written,
        socket: tcp,
        version: None,
    })
}

/// Connects (TCP, then the TLS handshake with SNI = `address`), each step bounded by `timeout`.
///
/// # Errors
/// A message saying which step failed and why.
pub async fn connect(
    address: &str,
    port: u16,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<Session, String> {
    let tcp = connect_tcp(address, port, timeout).await?;
    let name = ServerName::try_from(address.to_string())
        .map_err(|e| format!("{address:?} is not a valid TLS server name: {e}"))?;
    let written = Arc::new(AtomicU64::new(0));
    let counted = Counted {
        inner: tcp.clone(),
        written: written.clone(),
    };
    let connector = futures_rustls::TlsConnector::from(config);
    match crate::time::timeout(timeout, connector.connect(name, counted)).await {
        Some(Ok(mut tls)) => {
            let version = tls.get_ref().1.protocol_version();
            // Every write is taken whole (never part of it, which would end a record inside
            // a line); the forwarder bounds what it writes before a flush instead.
            tls.get_mut().1.set_buffer_limit(None);
            Ok(Session {
                stream: Box::new(tls),
                written,
                socket: tcp,
                version,
            })
        }
        Some(Err(e)) => Err(format!(
            "TLS handshake with {address}:{port} failed: {}",
            handshake_error(&e)
        )),
        None => Err(format!("TLS handshake with {address}:{port} timed out")),
    }
}
