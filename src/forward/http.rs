//! The `devo_http` output's client: Devo's HTTP ingestion in `/stream` mode, one gzip-compressed
//! POST of LF-separated events per batch of one table, the ingestion token in the path (never
//! logged: every URL shown has it replaced).

use super::batch::{BatchSink, Delivery};
use crate::config::{DevoHttp, Secret};
use std::io::{Read, Write};
use std::time::Duration;

/// Posts batches to one Devo HTTP endpoint.
#[derive(Debug, Clone)]
pub struct DevoHttpSink {
    agent: ureq::Agent,
    /// `<url>/stream/<domain>/token!`
    prefix: String,
    token: Secret,
    /// `/<host>/`, the part between the token and the tag.
    host: String,
    /// The URL as shown in logs: the token replaced by `***`.
    shown: String,
    /// Uncompressed bytes per request.
    pub batch_bytes: usize,
}

impl DevoHttpSink {
    /// A client for `h`, posting as `hostname`.
    pub fn new(hostname: &str, h: &DevoHttp) -> DevoHttpSink {
        let agent: ureq::Agent =
            crate::http_agent::config(Duration::from_secs(10), h.request_timeout)
                .build()
                .into();
        DevoHttpSink {
            agent,
            prefix: format!("{}/stream/{}/token!", h.url, h.domain),
            token: h.token.clone(),
            host: format!("/{hostname}/"),
            shown: format!("{}/stream/{}/token!***/{hostname}", h.url, h.domain),
            batch_bytes: h.batch_bytes,
        }
    }

    /// The endpoint as logs show it (no token).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Posts `body` (events, one per line) to table `tag` (blocking; run it off the reactor).
    pub fn post(&self, tag: &str, body: &[u8]) -> Delivery {
        let url = format!("{}{}{}{tag}", self.prefix, self.token.expose(), self.host);
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::fast(),
        );
        let compressed = match gz.write_all(body).and_then(|()| gz.finish()) {
            Ok(c) => c,
            Err(e) => return Delivery::Retry(format!("compressing the batch failed: {e}")),
        };
        let resp = self
            .agent
            .post(&url)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Content-Encoding", "gzip")
            .send(&compressed[..]);
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => return Delivery::Retry(self.redact(&e.to_string())),
        };
        let status = resp.status().as_u16();
        let mut text = Vec::new();
        let _ = resp.body_mut().as_reader().take(512).read_to_end(&mut text);
        let text = self.redact(String::from_utf8_lossy(&text).trim());
        let said = if text.is_empty() {
            String::new()
        } else {
            format!(": {text:?}")
        };
        match status {
            200..=299 => Delivery::Done,
            // The endpoint's configuration, not the batch: the data waits in the spool.
            401 | 403 => Delivery::Retry(format!(
                "HTTP {status}{said}: Devo refused the ingestion token for table {tag} (check the token and that its target tables cover {tag})"
            )),
            404 => Delivery::Retry(format!(
                "HTTP 404{said}: no such endpoint (check url and domain)"
            )),
            408 | 429 => Delivery::Retry(format!("HTTP {status}{said}")),
            400..=499 => Delivery::Rejected(format!("HTTP {status}{said}")),
            _ => Delivery::Retry(format!("HTTP {status}{said}")),
        }
    }

    fn redact(&self, s: &str) -> String {
        s.replace(self.token.expose(), "***")
    }
}

impl BatchSink for DevoHttpSink {
    fn batch_bytes(&self) -> usize {
        self.batch_bytes
    }
    fn push(&self, buf: &mut Vec<u8>, _date: &str, _tag: &str, event: &[u8]) {
        buf.extend_from_slice(event);
        if event.last() != Some(&b'\n') {
            buf.push(b'\n');
        }
    }
    fn deliver(&self, tag: &str, batch: &[u8]) -> Delivery {
        self.post(tag, batch)
    }
    fn describe(&self, output: &str) -> String {
        format!("DevoHttpSender({output},{})", self.shown())
    }
}
