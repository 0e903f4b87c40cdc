//! The page scanner's core: one hand-written pass over a body that validates it as strictly
//! as serde_json while it splits the items and reads their fields, eight bytes at a time
//! through string contents. Apart from `mod.rs` because it is the one place where speed
//! shapes the code; anything it does not accept goes to serde_json.

use super::item::{Item, KEYS, PageError};
use std::borrow::Cow;

/// Nesting allowed on the fast path (its recursion stays shallow); deeper pages go to
/// serde_json, which skips raw values without recursing.
const MAX_DEPTH: usize = 100;

/// Bytes that end a run of plain string content: `"`, `\` and the control characters.
const STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Where the first of the 8 bytes of `w` (little-endian) that is in [`STOP`] is, if any. The
/// classic "has a zero byte" and "has a byte less than n" word tricks: a borrow can set false
/// marks, but only above a true one, so the lowest mark is exact.
fn first_stop(w: u64) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let quote = w ^ (LO * u64::from(b'"'));
    let backslash = w ^ (LO * u64::from(b'\\'));
    let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let control = w.wrapping_sub(LO * 0x20) & !w & HI;
    let marks = zero(quote) | zero(backslash) | control;
    (marks != 0).then(|| marks.trailing_zeros() as usize / 8)
}

/// The one-pass scanner over a UTF-8 body.
pub(super) struct Scan<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    /// A CR or LF was skipped as whitespace since the flag was last cleared.
    newline: bool,
}

impl<'a> Scan<'a> {
    /// The items of a page, or `None` for anything but a valid JSON array of objects.
    /// The page's items; `Err(None)` if the fast path cannot say (serde_json then names the
    /// problem), `Err(Some(TooMany))` past `max_items`.
    pub(super) fn page(
        body: &'a [u8],
        max_items: usize,
    ) -> Result<Vec<Item<'a>>, Option<PageError>> {
        Scan::page_items(body, max_items)
            .ok_or(None)
            .and_then(|(items, over)| {
                if over {
                    Err(Some(PageError::TooMany(max_items)))
                } else {
                    Ok(items)
                }
            })
    }

    fn page_items(body: &'a [u8], max_items: usize) -> Option<(Vec<Item<'a>>, bool)> {
        let s = std::str::from_utf8(body).ok()?;
        let mut sc = Scan {
            s,
            b: body,
            i: 0,
            newline: false,
        };
        sc.ws();
        sc.eat(b'[')?;
        sc.ws();
        let mut items = Vec::new();
        if sc.eat(b']').is_none() {
            loop {
                if sc.peek()? != b'{' {
                    return None;
                }
                if items.len() == max_items {
                    return Some((items, true));
                }
                let start = sc.i;
                sc.newline = false;
                let mut fields = Default::default();
                sc.object(1, Some(&mut fields))?;
                items.push(Item {
                    raw: s.get(start..sc.i)?,
                    multiline: sc.newline,
                    fields,
                });
                if sc.next_member(b']')? {
                    break;
                }
            }
        }
        sc.ws();
        (sc.i == body.len()).then_some((items, false))
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// Skips JSON whitespace, noting a CR or LF.
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b' ' | b'\t' => {}
                b'\n' | b'\r' => self.newline = true,
                _ => return,
            }
            self.i += 1;
        }
    }

    /// A value starting at the current byte (no whitespace before it).
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(depth + 1, None),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        let b = self.b;
        let mut i = self.i;
        let digits = |mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => i = digits(i + 1),
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            let end = digits(i + 1);
            if end == i + 1 {
                return None;
            }
            i = end;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let end = digits(i);
            if end == i {
                return None;
            }
            i = end;
        }
        self.i = i;
        Some(())
    }

    /// A string starting at its opening quote: the range of its contents, and whether they
    /// hold an escape.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        let b = self.b;
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            loop {
                if let Some(chunk) = b.get(i..i + 8) {
                    let w = u64::from_le_bytes(chunk.try_into().ok()?);
                    match first_stop(w) {
                        Some(at) => {
                            i += at;
                            break;
                        }
                        None => i += 8,
                    }
                } else {
                    while b.get(i).is_some_and(|&c| !STOP[usize::from(c)]) {
                        i += 1;
                    }
                    break;
                }
            }
            match *b.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    return Some((start, i, escaped));
                }
                b'\\' => {
                    escaped = true;
                    match *b.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            if !b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            i += 6;
                        }
                        _ => return None,
                    }
                }
                // A raw control character: JSON strings must escape it.
                _ => return None,
            }
        }
    }

    /// The decoded string whose contents are at `start..end`.
    fn text(&self, start: usize, end: usize, escaped: bool) -> Option<Cow<'a, str>> {
        if escaped {
            serde_json::from_str::<String>(self.s.get(start - 1..end + 1)?)
                .ok()
                .map(Cow::Owned)
        } else {
            self.s.get(start..end).map(Cow::Borrowed)
        }
    }

    /// Enters the array or object at the current byte: whether it ends at once with `close`
    /// (`None` if it nests deeper than [`MAX_DEPTH`]). Inlined, as is [`Scan::next_member`]:
    /// they run for every array and object (without it the scan was 8% slower).
    #[inline(always)]
    fn open(&mut self, depth: usize, close: u8) -> Option<bool> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        Some(self.eat(close).is_some())
    }

    /// After a member of an array or object: whether `close` ended it (`false` after a comma,
    /// `None` for anything else).
    #[inline(always)]
    fn next_member(&mut self, close: u8) -> Option<bool> {
        self.ws();
        match self.bump()? {
            b',' => {
                self.ws();
                Some(false)
            }
            c if c == close => Some(true),
            _ => None,
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if self.open(depth, b']')? {
            return Some(());
        }
        loop {
            self.value(depth)?;
            if self.next_member(b']')? {
                return Some(());
            }
        }
    }

    /// An object starting at its `{`; with `fields`, its top-level string values of [`KEYS`]
    /// are read into them.
    fn object(
        &mut self,
        depth: usize,
        mut fields: Option<&mut [Option<Cow<'a, str>>; KEYS.len()]>,
    ) -> Option<()> {
        if self.open(depth, b'}')? {
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let (ks, ke, kesc) = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let slot = match fields {
                Some(_) => {
                    let key = self.text(ks, ke, kesc)?;
                    KEYS.iter().position(|k| *k == key)
                }
                None => None,
            };
            match (slot, fields.as_deref_mut()) {
                (Some(k), Some(f)) => {
                    f[k] = if self.peek()? == b'"' {
                        let (vs, ve, vesc) = self.string()?;
                        self.text(vs, ve, vesc)
                    } else {
                        self.value(depth)?;
                        None
                    };
                }
                _ => self.value(depth)?,
            }
            if self.next_member(b'}')? {
                return Some(());
            }
        }
    }
}
