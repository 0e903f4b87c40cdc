//! The `console` output: the syslog lines on standard output, a batch delivered once the write
//! is flushed. For trying a config out and for pipes; it shares the batch loop with `devo_http`.

use super::batch::{BatchSink, Delivery};
use super::syslog;
use std::io::Write;

#[derive(Debug, Clone)]
pub struct Console {
    hostname: String,
}

impl Console {
    /// Writes lines with `hostname` as the syslog HOSTNAME.
    pub fn new(hostname: &str) -> Console {
        Console {
            hostname: hostname.to_string(),
        }
    }
}

impl BatchSink for Console {
    fn batch_bytes(&self) -> usize {
        256 << 10
    }
    fn push(&self, buf: &mut Vec<u8>, date: &str, tag: &str, event: &[u8]) {
        syslog::push_line(buf, date, &self.hostname, tag, event);
    }
    fn deliver(&self, _tag: &str, batch: &[u8]) -> Delivery {
        let mut out = std::io::stdout().lock();
        match out.write_all(batch).and_then(|()| out.flush()) {
            Ok(()) => Delivery::Done,
            Err(e) => Delivery::Retry(format!("writing to standard output failed: {e}")),
        }
    }
    fn describe(&self, output: &str) -> String {
        format!("ConsoleSender({output})")
    }
}
