//! A Devo-compatible receiver: syslog lines over TLS that requires a client certificate from
//! the given CA. Records complete lines; a connection that ends (or that it resets) with
//! the start of a line and not its end counts a partial line, which a receiver ingesting what
//! it has (Devo's balancer) would store truncated.

use super::certs::Pki;
use futures_rustls::rustls::pki_types::UnixTime;
use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use futures_rustls::rustls::server::WebPkiClientVerifier;
use futures_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use futures_rustls::rustls::{
    self, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running receiver.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<Vec<u8>>>>,
    count: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    partial: Arc<AtomicU64>,
}

/// How a receiver behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Keep every line (for tests), not just count them.
    pub keep_lines: bool,
    /// Time the receiver takes to judge a client certificate (like a server checking a
    /// revocation list); under TLS 1.3 the client has finished its handshake and is sending by then.
    pub verify_delay: Duration,
    /// Reset (RST) each connection at its first read after it has lived this long (zero:
    /// never), as a load balancer restarting mid-stream does: what the receiver's TCP stack
    /// acknowledged but it had not read yet is gone, and the sender's queue with it.
    pub reset_after: Duration,
    /// What makes closing the socket a reset (the tests give `SO_LINGER` with a zero
    /// timeout); without it the connection just closes.
    pub reset_socket: Option<fn(&std::net::TcpStream)>,
}

impl Receiver {
    /// Listens on `listen`.
    ///
    /// # Errors
    /// If the certificates cannot be loaded or the address cannot be bound.
    pub fn start(listen: SocketAddr, pki: &Pki, opts: Options) -> Result<Receiver, String> {
        let config = server_config(pki, opts.verify_delay)?;
        let listener =
            TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let r = Receiver {
            addr,
            lines: Arc::new(Mutex::new(Vec::new())),
            count: Arc::new(AtomicU64::new(0)),
            connections: Arc::new(AtomicU64::new(0)),
            partial: Arc::new(AtomicU64::new(0)),
        };
        let rc = r.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                rc.connections.fetch_add(1, Ordering::Relaxed);
                let (rc, config) = (rc.clone(), config.clone());
                std::thread::spawn(move || rc.serve(conn, config, opts));
            }
        });
        Ok(r)
    }

    /// Lines received so far (without their trailing LF).
    pub fn lines(&self) -> Vec<Vec<u8>> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Lines received so far from the `from`-th on (a bench's view of what is new).
    pub fn lines_from(&self, from: usize) -> Vec<Vec<u8>> {
        self.lines
            .lock()
            .map(|l| l.get(from..).map(<[_]>::to_vec).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Number of complete lines received.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Connections accepted.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Connections that ended with a partial line: bytes after the last LF, everything the
    /// TLS layer had decrypted read first.
    pub fn partial_lines(&self) -> u64 {
        self.partial.load(Ordering::Relaxed)
    }

    /// Takes the complete lines at the front of `partial`.
    fn take_lines(&self, partial: &mut Vec<u8>, keep: bool) {
        let mut start = 0;
        let mut got = Vec::new();
        while let Some(p) = partial[start..].iter().position(|&b| b == b'\n') {
            if keep {
                got.push(partial[start..start + p].to_vec());
            }
            self.count.fetch_add(1, Ordering::Relaxed);
            start += p + 1;
        }
        partial.drain(..start);
        if keep
            && !got.is_empty()
            && let Ok(mut l) = self.lines.lock()
        {
            l.extend(got);
        }
    }

    /// The connection ends: what the TLS layer decrypted and nobody read yet is read, and a
    /// line left without its end is counted.
    fn end(&self, conn: &mut rustls::ServerConnection, partial: &mut Vec<u8>, keep: bool) {
        let mut buf = [0u8; 16 << 10];
        while let Ok(n) = conn.reader().read(&mut buf) {
            if n == 0 {
                break;
            }
            partial.extend_from_slice(&buf[..n]);
        }
        self.take_lines(partial, keep);
        if !partial.is_empty() {
            self.partial.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn serve(&self, tcp: std::net::TcpStream, config: Arc<ServerConfig>, opts: Options) {
        let keep = opts.keep_lines;
        let Ok(conn) = rustls::ServerConnection::new(config) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut buf = vec![0u8; 64 << 10];
        let mut partial: Vec<u8> = Vec::new();
        let opened = std::time::Instant::now();
        loop {
            if !opts.reset_after.is_zero() && opened.elapsed() >= opts.reset_after {
                // What was decrypted is taken; the socket's unread bytes go with the reset.
                self.end(&mut tls.conn, &mut partial, keep);
                if let Some(reset) = opts.reset_socket {
                    reset(&tls.sock);
                }
                return;
            }
            match tls.read(&mut buf) {
                Ok(0) => {
                    // The client's close_notify: answer with ours and close.
                    self.end(&mut tls.conn, &mut partial, keep);
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                    let _ = tls.sock.shutdown(std::net::Shutdown::Both);
                    return;
                }
                Ok(n) => {
                    partial.extend_from_slice(&buf[..n]);
                    self.take_lines(&mut partial, keep);
                }
                Err(_) => {
                    // Cut without close_notify (a killed client, a reset), or rejected.
                    self.end(&mut tls.conn, &mut partial, keep);
                    // Rejected (e.g. an untrusted client certificate): like a load balancer,
                    // read what the client already sent (so its TCP stack sees it acknowledged)
                    // for a moment, then close. A sender must not count those bytes as delivered.
                    let mut sock = tls.sock;
                    let _ = sock.set_read_timeout(Some(std::time::Duration::from_millis(500)));
                    while matches!(sock.read(&mut buf), Ok(n) if n > 0) {}
                    return;
                }
            }
        }
    }
}

fn server_config(pki: &Pki, verify_delay: Duration) -> Result<Arc<ServerConfig>, String> {
    let provider = crate::forward::tls::provider();
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&pki.ca).map_err(|e| e.to_string())? {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let verifier = Arc::new(SlowVerifier {
        inner: verifier,
        delay: verify_delay,
    });
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.server_cert)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).map_err(|e| e.to_string())?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

/// A client-certificate verifier that takes `delay` before the real (WebPKI) verdict.
#[derive(Debug)]
struct SlowVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    delay: Duration,
}

impl ClientCertVerifier for SlowVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        std::thread::sleep(self.delay);
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
