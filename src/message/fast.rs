//! The fast path of [`super::parse`]: one pass over the bytes for the message as dataloggers
//! send it, no serde.
//!
//! It answers only for a valid message whose strings hold no escapes and whose humidity is a
//! short number (at most 15 digits, a power of ten within 10^±22), and returns `None` for
//! anything else: then serde_json parses the message and says what is wrong with it. So the
//! rules, and every error, stay serde_json's; what this path must never do is accept what
//! serde_json rejects or read a different value, and the fuzz target and the tests check it
//! against the serde path on every input they have (`crate::fuzzing::message`).
//!
//! The grammar is JSON's: whitespace is space, tab, CR and LF; a string holds no control
//! character; a number is `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; nesting deeper
//! than [`MAX_DEPTH`] (serde_json allows 128) goes to serde. Keys and values are read as
//! [`super`]'s visitor reads them: the last of a repeated field wins, `payload` and
//! `payload.data` are looked into only when they are objects, and any other field is checked
//! and skipped.
//!
//! Measured (`hygroflow bench --messages 4000000 -w 1,2 --sources file`, its parse-only
//! floor): 3.52M messages/s with serde_json alone, 6.1-6.2M with this path.

use std::borrow::Cow;

use super::{humidity_in_range, humidity_micro, Reading, DEVICE, DEVICE_ALT, GUID};

/// Deeper objects and arrays go to serde_json (which allows 128).
const MAX_DEPTH: u32 = 64;

/// Exact powers of ten: a short significand times or over one of these is correctly rounded,
/// as serde_json computes it.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Which object the scanner is in, as far as the fields go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Payload,
    Data,
}

/// The fields read so far; `None` where absent.
#[derive(Default)]
struct Fields<'a> {
    guid: Option<&'a str>,
    device: Option<&'a str>,
    device_alt: Option<&'a str>,
    event_time: Option<&'a str>,
    humidity: Option<f64>,
}

/// The reading of `text` (valid UTF-8, not only whitespace), or `None` when serde_json must
/// decide.
pub(super) fn parse(text: &str) -> Option<Reading<'_>> {
    let mut scanner = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
        depth: 0,
    };
    let mut fields = Fields::default();
    scanner.whitespace();
    scanner.object(Some(Level::Top), &mut fields)?;
    scanner.whitespace();
    if scanner.at != scanner.bytes.len() {
        return None;
    }
    let guid = fields.guid.filter(|g| !g.is_empty())?;
    let device = match fields.device {
        Some(device) => device,
        None => fields.device_alt?,
    };
    if device.is_empty() {
        return None;
    }
    let humidity = fields.humidity.filter(|h| humidity_in_range(*h))?;
    Some(Reading {
        guid: Cow::Borrowed(guid),
        device: Cow::Borrowed(device),
        humidity_micro: humidity_micro(humidity),
        event_time: fields.event_time.map(Cow::Borrowed),
    })
}

/// The bytes of `word` (little-endian) that end a string or send the message to serde: a
/// quote, a backslash or a control character (below 0x20). The lowest byte whose high bit is
/// set in the result is the first such byte; bits above it may be set spuriously.
fn string_stops(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    // A byte of `v` is below `n` (n <= 128) where `(v - n) & !v` sets its high bit; a borrow
    // can only mark bytes above a true one.
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH_BITS;
    below(word ^ (ONES * u64::from(b'"')), 1)
        | below(word ^ (ONES * u64::from(b'\\')), 1)
        | below(word, 0x20)
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    depth: u32,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A string without escapes or control characters, quotes taken off.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        // Eight bytes at a time to the first byte that ends the string or sends the message
        // to serde; byte by byte near the end of the message.
        loop {
            let Some(word) = self.bytes.get(self.at..self.at + 8) else {
                while !matches!(self.peek()?, b'"' | b'\\' | 0..=0x1f) {
                    self.at += 1;
                }
                break;
            };
            let stops = string_stops(u64::from_le_bytes(word.try_into().ok()?));
            if stops != 0 {
                self.at += (stops.trailing_zeros() / 8) as usize;
                break;
            }
            self.at += 8;
        }
        if self.peek()? != b'"' {
            return None;
        }
        // Both ends sit next to an ASCII quote, so they are character boundaries.
        let string = self.text.get(start..self.at)?;
        self.at += 1;
        Some(string)
    }

    /// A number by JSON's grammar; its value when short enough to compute exactly as
    /// serde_json does (`Some(None)` for a valid number this path does not evaluate).
    fn number(&mut self) -> Option<Option<f64>> {
        let negative = self.eat(b'-').is_some();
        let (mut significand, mut digits) = (0u64, 0u32);
        let mut digit = |scanner: &mut Self| -> bool {
            match scanner.peek() {
                Some(d @ b'0'..=b'9') => {
                    scanner.at += 1;
                    if digits < 19 {
                        significand = significand * 10 + u64::from(d - b'0');
                    }
                    // Leading zeros are not significant digits.
                    if significand > 0 {
                        digits += 1;
                    }
                    true
                }
                _ => false,
            }
        };
        match self.peek()? {
            b'0' => {
                digit(self);
            }
            b'1'..=b'9' => while digit(self) {},
            _ => return None,
        }
        let mut exponent: i64 = 0;
        if self.eat(b'.').is_some() {
            let before = self.at;
            while digit(self) {
                exponent -= 1;
            }
            if self.at == before {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            let negative_exponent = match self.peek()? {
                b'-' => {
                    self.at += 1;
                    true
                }
                b'+' => {
                    self.at += 1;
                    false
                }
                _ => false,
            };
            let (mut written, before) = (0i64, self.at);
            while let Some(d @ b'0'..=b'9') = self.peek() {
                self.at += 1;
                written = (written * 10 + i64::from(d - b'0')).min(1 << 20);
            }
            if self.at == before {
                return None;
            }
            exponent += if negative_exponent { -written } else { written };
        }
        if digits > 15 {
            return Some(None);
        }
        let Some(&power) = POW10.get(exponent.unsigned_abs() as usize) else {
            return Some(None);
        };
        let magnitude = if exponent >= 0 {
            significand as f64 * power
        } else {
            significand as f64 / power
        };
        Some(Some(if negative { -magnitude } else { magnitude }))
    }

    /// Any JSON value, checked and skipped.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(None, &mut Fields::default()),
            b'[' => self.array(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => None,
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// After an element: `Some(true)` past a comma (another element follows), `Some(false)`
    /// past the closing `close`, `None` at anything else.
    fn next_element(&mut self, close: u8) -> Option<bool> {
        self.whitespace();
        let byte = self.peek()?;
        self.at += 1;
        if byte == b',' {
            self.whitespace();
            Some(true)
        } else {
            (byte == close).then_some(false)
        }
    }

    fn array(&mut self) -> Option<()> {
        self.enter()?;
        self.eat(b'[')?;
        self.whitespace();
        if self.eat(b']').is_none() {
            loop {
                self.skip()?;
                if !self.next_element(b']')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// An object; at `Some(level)` its fields of interest go into `fields`.
    fn object(&mut self, level: Option<Level>, fields: &mut Fields<'a>) -> Option<()> {
        self.enter()?;
        self.eat(b'{')?;
        self.whitespace();
        if self.eat(b'}').is_none() {
            loop {
                let key = self.string()?;
                self.whitespace();
                self.eat(b':')?;
                self.whitespace();
                match (level, key) {
                    (Some(Level::Top), GUID) => fields.guid = Some(self.string()?),
                    (Some(Level::Top), DEVICE) => fields.device = Some(self.string()?),
                    (Some(Level::Top), DEVICE_ALT) => fields.device_alt = Some(self.string()?),
                    (Some(Level::Top), "eventTime") => fields.event_time = Some(self.string()?),
                    (Some(Level::Top), "payload") => self.object(Some(Level::Payload), fields)?,
                    (Some(Level::Payload), "data") => self.object(Some(Level::Data), fields)?,
                    (Some(Level::Data), "humidity") => fields.humidity = Some(self.number()??),
                    _ => self.skip()?,
                }
                if !self.next_element(b'}')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_stop_in_a_word_is_the_first_byte_that_ends_a_string() {
        let stops = |byte: u8| byte == b'"' || byte == b'\\' || byte < 0x20;
        let first = |word: [u8; 8]| match string_stops(u64::from_le_bytes(word)) {
            0 => None,
            mask => Some(mask.trailing_zeros() as usize / 8),
        };
        for byte in 0..=u8::MAX {
            for at in 0..8 {
                for filler in [b'a', 0xc3, b' ', b'~', 0xff] {
                    let mut word = [filler; 8];
                    word[at] = byte;
                    assert_eq!(
                        first(word),
                        stops(byte).then_some(at),
                        "byte {byte:#04x} at {at} among {filler:#04x}"
                    );
                    // A second stop after the first one does not move it.
                    for later in at + 1..8 {
                        let mut two = word;
                        two[later] = b'"';
                        let expected = if stops(byte) { at } else { later };
                        assert_eq!(first(two), Some(expected), "{two:?}");
                    }
                }
            }
        }
    }
}
