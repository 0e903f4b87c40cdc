//! A Devo-compatible receiver: syslog lines over TLS that requires a client certificate from
//! the given CA. Records complete lines (a line cut by a dropped connection is not counted).

use super::certs::Pki;
use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use futures_rustls::rustls::server::WebPkiClientVerifier;
use futures_rustls::rustls::{self, RootCertStore, ServerConfig};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A running receiver.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<Vec<u8>>>>,
    count: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

impl Receiver {
    /// Listens on `listen`; with `keep_lines` every line is kept (for tests), else only counted.
    ///
    /// # Errors
    /// If the certificates cannot be loaded or the address cannot be bound.
    pub fn start(listen: SocketAddr, pki: &Pki, keep_lines: bool) -> Result<Receiver, String> {
        let config = server_config(pki)?;
        let listener =
            TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let r = Receiver {
            addr,
            lines: Arc::new(Mutex::new(Vec::new())),
            count: Arc::new(AtomicU64::new(0)),
            connections: Arc::new(AtomicU64::new(0)),
        };
        let rc = r.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                rc.connections.fetch_add(1, Ordering::Relaxed);
                let (rc, config) = (rc.clone(), config.clone());
                std::thread::spawn(move || rc.serve(conn, config, keep_lines));
            }
        });
        Ok(r)
    }

    /// Lines received so far (without their trailing LF).
    pub fn lines(&self) -> Vec<Vec<u8>> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Number of complete lines received.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Connections accepted.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    fn serve(&self, tcp: std::net::TcpStream, config: Arc<ServerConfig>, keep: bool) {
        let Ok(conn) = rustls::ServerConnection::new(config) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut buf = vec![0u8; 64 << 10];
        let mut partial: Vec<u8> = Vec::new();
        loop {
            match tls.read(&mut buf) {
                Ok(0) => {
                    // The client's close_notify: answer with ours and close.
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                    let _ = tls.sock.shutdown(std::net::Shutdown::Both);
                    return;
                }
                Ok(n) => {
                    partial.extend_from_slice(&buf[..n]);
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
                Err(_) => return,
            }
        }
    }
}

fn server_config(pki: &Pki) -> Result<Arc<ServerConfig>, String> {
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
