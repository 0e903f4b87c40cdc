//! Response bodies that become spool frames without a copy: [`Events`] holds a page's body
//! itself with the ranges of its events (an event rewritten onto one line appended after it),
//! and the bodies go back to a small pool once their events are on disk, for the next pages to
//! be read into (fresh 2 MB buffers per page fragment the heap; BENCHMARKS.md, stop 13).

use std::sync::Mutex;

/// Body buffers whose events are on disk, kept for the next pages (see [`recycle_body`]).
static SPARE_BODIES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
/// How many spare bodies are kept: the pages in flight in one System Log puller (fetched,
/// waiting for the group commit, committing), and one more.
const SPARE_KEPT: usize = 4;
/// A buffer larger than this is not kept (a page is about 2 MB).
const SPARE_MAX_BYTES: usize = 8 << 20;

/// Hands a response body back once its events are on disk, for the next response to be read
/// into. A page is 2 MB. Allocated fresh for each page, such blocks fragment the allocator's
/// heap (a million-event backfill peaked at 25–31 MiB of RSS instead of 15), or, each as its
/// own mapping, cost a page fault per 4 KiB (14% more CPU per event). BENCHMARKS.md, stop 13.
pub fn recycle_body(mut body: Vec<u8>) {
    if body.capacity() == 0 || body.capacity() > SPARE_MAX_BYTES {
        return;
    }
    body.clear();
    let mut spare = crate::lock(&SPARE_BODIES);
    if spare.len() < SPARE_KEPT {
        spare.push(body);
    } else if let Some(smallest) = spare.iter_mut().min_by_key(|b| b.capacity()) {
        // The larger buffers are the ones worth keeping (a page, not an inventory's stage).
        if smallest.capacity() < body.capacity() {
            *smallest = body;
        }
    }
}

/// Frees the spare bodies: when the System Log puller has caught up, and every minute before
/// free memory goes back to the system (a collector that is not pulling holds none for long).
pub fn release_spare_bodies() {
    let spare = std::mem::take(&mut *crate::lock(&SPARE_BODIES));
    drop(spare); // freed outside the lock
}

/// A buffer for a body of `expected` bytes: a spare one if there is one.
pub(crate) fn body_buffer(expected: usize) -> Vec<u8> {
    let spare = crate::lock(&SPARE_BODIES).pop();
    let mut body = spare.unwrap_or_default();
    body.reserve(expected);
    body
}

/// Events for the spool, as ranges of buffers: each a page's response body itself, with any
/// event rewritten onto one line appended after it. Pages go to the spool's blocking write
/// without a copy (and an allocation) per event, and several pages can go as one frame.
#[derive(Debug, Default)]
pub(crate) struct Events {
    parts: Vec<(Vec<u8>, Vec<std::ops::Range<usize>>)>,
}

/// Where an event of a page is: in the body, or rewritten.
pub(crate) enum Span {
    InBody(std::ops::Range<usize>),
    Rewritten(String),
}

impl Events {
    /// Where each line is: a line borrowed from `body` becomes its range there.
    pub(crate) fn spans(body: &[u8], lines: Vec<std::borrow::Cow<'_, str>>) -> Vec<Span> {
        let base = body.as_ptr() as usize;
        lines
            .into_iter()
            .map(|line| {
                let at = (line.as_ptr() as usize).wrapping_sub(base);
                match line {
                    std::borrow::Cow::Borrowed(l)
                        if at.checked_add(l.len()).is_some_and(|end| end <= body.len()) =>
                    {
                        Span::InBody(at..at + l.len())
                    }
                    other => Span::Rewritten(other.into_owned()),
                }
            })
            .collect()
    }

    /// The events at `spans`, taking `body` over.
    pub(crate) fn new(mut buf: Vec<u8>, spans: Vec<Span>) -> Events {
        let ranges = spans
            .into_iter()
            .map(|span| match span {
                Span::InBody(r) => r,
                Span::Rewritten(line) => {
                    let start = buf.len();
                    buf.extend_from_slice(line.as_bytes());
                    start..buf.len()
                }
            })
            .collect();
        Events {
            parts: vec![(buf, ranges)],
        }
    }

    /// A copy of `events` in one buffer.
    pub(crate) fn copied(events: &[&[u8]]) -> Events {
        let mut buf = Vec::with_capacity(events.iter().map(|e| e.len()).sum());
        let mut ranges = Vec::with_capacity(events.len());
        for e in events {
            let start = buf.len();
            buf.extend_from_slice(e);
            ranges.push(start..buf.len());
        }
        Events {
            parts: vec![(buf, ranges)],
        }
    }

    /// `other`'s events after these.
    pub(crate) fn extend(&mut self, mut other: Events) {
        self.parts.append(&mut other.parts);
    }

    /// The first event's bytes.
    pub(crate) fn first(&self) -> Option<&[u8]> {
        self.parts
            .iter()
            .find_map(|(buf, ranges)| ranges.first().map(|r| &buf[r.clone()]))
    }

    /// The last event's bytes.
    pub(crate) fn last(&self) -> Option<&[u8]> {
        self.parts
            .iter()
            .rev()
            .find_map(|(buf, ranges)| ranges.last().map(|r| &buf[r.clone()]))
    }

    /// Number of events.
    pub(crate) fn len(&self) -> usize {
        self.parts.iter().map(|(_, r)| r.len()).sum()
    }

    /// Bytes held (bodies included).
    pub(crate) fn bytes(&self) -> usize {
        self.parts.iter().map(|(b, _)| b.len()).sum()
    }

    /// Each event's bytes, in order.
    pub(crate) fn slices(&self) -> Vec<&[u8]> {
        self.parts
            .iter()
            .flat_map(|(buf, ranges)| ranges.iter().map(|r| &buf[r.clone()]))
            .collect()
    }
}

impl Drop for Events {
    /// The bodies go back for the next pages to be read into.
    fn drop(&mut self) {
        for (buf, _) in self.parts.drain(..) {
            recycle_body(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spare_body_comes_back_empty_and_a_huge_one_is_not_kept() {
        // Other tests may take and hand back bodies meanwhile: only what holds whatever they
        // do is asserted.
        for _ in 0..SPARE_KEPT + 2 {
            recycle_body(b"an earlier page".repeat(1000));
        }
        for _ in 0..SPARE_KEPT + 2 {
            let b = body_buffer(100);
            assert!(b.is_empty(), "a spare body holds {} earlier bytes", b.len());
            assert!(b.capacity() >= 100);
        }
        recycle_body(vec![1; SPARE_MAX_BYTES + 1]);
        let kept = crate::lock(&SPARE_BODIES);
        assert!(kept.len() <= SPARE_KEPT);
        assert!(
            kept.iter()
                .all(|b| b.capacity() <= SPARE_MAX_BYTES && b.is_empty())
        );
    }
}
