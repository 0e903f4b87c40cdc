//! Unit tests of the stream output's writing: lines split across writes and batches, the
//! TLS record window.

use super::*;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Takes at most 7 bytes from at most its first two slices per write, as a busy socket or
/// a full TLS buffer may.
struct Stingy(Vec<u8>);
impl smol::io::AsyncWrite for Stingy {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len().min(7);
        self.0.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let mut n = 0;
        for b in bufs.iter().take(2) {
            let take = b.len().min(7 - n);
            self.0.extend_from_slice(&b[..take]);
            n += take;
            if n == 7 {
                break;
            }
        }
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[test]
fn vectored_lines_arrive_whole_and_in_order_through_partial_writes() {
    let events: Vec<Vec<u8>> = (0..50)
        .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 3)).into_bytes())
        .collect();
    let prefix = syslog::prefix("Dec  4 11:45:01", "h", "auth.okta.system");
    let mut want = Vec::new();
    let mut bufs = Vec::new();
    for ev in &events {
        syslog::push_line(&mut want, "Dec  4 11:45:01", "h", "auth.okta.system", ev);
        bufs.push(IoSlice::new(prefix.as_bytes()));
        bufs.push(IoSlice::new(ev));
        bufs.push(IoSlice::new(syslog::line_end(ev)));
    }
    let mut out = Stingy(Vec::new());
    let ends: Vec<usize> = (1..=events.len()).map(|k| 3 * k).collect();
    smol::block_on(write_lines(&mut out, &mut bufs, &ends, 64)).expect("write");
    assert_eq!(out.0, want);
}

/// Takes every write whole and records how many bytes each carried.
struct Calls(Vec<u8>, Vec<usize>);
impl smol::io::AsyncWrite for Calls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.extend_from_slice(buf);
        self.1.push(buf.len());
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let n = bufs.iter().map(|b| b.len()).sum();
        for b in bufs {
            self.0.extend_from_slice(b);
        }
        self.1.push(n);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[test]
fn each_write_carries_whole_lines_within_one_record_and_a_long_line_alone() {
    let sizes = [100, 5_000, 9_000, 16_000, 40_000, 10, 16_300, 16_300, 2];
    let events: Vec<Vec<u8>> = sizes
        .iter()
        .map(|&n| format!("{{\"pad\":\"{}\"}}", "y".repeat(n)).into_bytes())
        .collect();
    let prefix = syslog::prefix("Dec  4 11:45:01", "h", "auth.okta.system");
    let mut bufs = Vec::new();
    let mut ends = Vec::new();
    let mut lens = Vec::new();
    for ev in &events {
        bufs.push(IoSlice::new(prefix.as_bytes()));
        bufs.push(IoSlice::new(ev));
        bufs.push(IoSlice::new(syslog::line_end(ev)));
        ends.push(bufs.len());
        lens.push(prefix.len() + ev.len() + 1);
    }
    let mut out = Calls(Vec::new(), Vec::new());
    let window = connection::RECORD_BYTES;
    smol::block_on(write_lines(&mut out, &mut bufs, &ends, window)).expect("write");
    // Every call is a run of whole lines: its bytes are a sum of consecutive lines.
    let mut line = 0;
    for &n in &out.1 {
        let mut sum = 0;
        let first = line;
        while sum < n {
            sum += lens[line];
            line += 1;
        }
        assert_eq!(sum, n, "a write ended inside line {line}");
        assert!(
            n <= window || line == first + 1,
            "{n} bytes of several lines in one write"
        );
    }
    assert_eq!(line, lens.len());
    assert_eq!(out.1.len(), 7, "{:?}", out.1);
}
