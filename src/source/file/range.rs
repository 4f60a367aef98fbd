//! One worker's part of a regular file, read on the worker's own thread.
//!
//! A part is whole lines (its bounds are line starts, see `line_aligned_bounds`), and a
//! regular file answers every read in full, so nothing here waits for more input the way a
//! pipe reader must: the worker reads a large chunk when its buffer runs out of whole lines
//! and hands each line to the dataflow straight from the buffer, with no thread between and no
//! copy. A line longer than the size limit is kept only up to the limit, with its full length.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Take};
use std::ops::Range;

use super::{trim_cr, BOM, READ_BYTES};
use crate::source::{Deliver, Origin, Poll, PollError, RawRecord, Source, SourceError};

/// A line longer than the size limit, being skipped to its end.
struct LongLine {
    kept: Vec<u8>,
    len: usize,
    at: u64,
}

/// One worker's part of a file.
pub struct RangeSource {
    input: Take<File>,
    name: String,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// The file offset of `buf[start]`.
    offset: u64,
    /// Bytes of a line kept at most (the size limit plus one, so validation sees it is over).
    keep: usize,
    long: Option<LongLine>,
    /// The ranges of the file still to read after this one, in order.
    next_ranges: VecDeque<Range<u64>>,
    read_all: bool,
    stopped: bool,
}

impl RangeSource {
    /// The part `input` of the file `name`, starting at file offset `offset`; lines longer
    /// than `max_line` are cut there.
    pub fn new(input: Take<File>, name: String, offset: u64, max_line: usize) -> Self {
        RangeSource {
            input,
            name,
            buf: Vec::new(),
            start: 0,
            end: 0,
            offset,
            keep: max_line.saturating_add(1),
            long: None,
            next_ranges: VecDeque::new(),
            read_all: false,
            stopped: false,
        }
    }

    /// A source reading `ranges` of the file at `path`, in order (each from a line start to a
    /// line start, or the file's end).
    pub fn open(
        path: &std::path::Path,
        name: String,
        ranges: Vec<Range<u64>>,
        max_line: usize,
    ) -> std::io::Result<Self> {
        let mut ranges = VecDeque::from(ranges);
        let first = ranges.pop_front().unwrap_or(0..0);
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(first.start))?;
        let mut source = RangeSource::new(
            file.take(first.end - first.start),
            name,
            first.start,
            max_line,
        );
        source.next_ranges = ranges;
        Ok(source)
    }

    /// Moves on to the next range, if there is one.
    fn next_range(&mut self) -> Result<bool, SourceError> {
        let Some(next) = self.next_ranges.pop_front() else {
            return Ok(false);
        };
        if let Err(error) = self.input.get_mut().seek(SeekFrom::Start(next.start)) {
            return Err(SourceError::Read {
                what: self.name.clone(),
                error: std::sync::Arc::new(error),
            });
        }
        self.input.set_limit(next.end - next.start);
        self.offset = next.start;
        self.start = 0;
        self.end = 0;
        self.read_all = false;
        Ok(true)
    }

    /// Moves what is left to the front and reads more after it; false at the end of the part.
    fn refill(&mut self) -> Result<bool, SourceError> {
        if self.buf.is_empty() {
            self.buf = vec![0; READ_BYTES];
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buf.len() {
            // A line fills the buffer: more room, up to the size limit and a chunk.
            let grown = (self.buf.len() * 2).min(self.keep.saturating_add(READ_BYTES));
            self.buf.resize(grown.max(self.buf.len()), 0);
        }
        let read = loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                read => break read,
            }
        };
        match read {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.end += n;
                Ok(true)
            }
            Err(error) => Err(SourceError::Read {
                what: self.name.clone(),
                error: std::sync::Arc::new(error),
            }),
        }
    }
}

impl Source for RangeSource {
    fn poll(&mut self, budget: usize, deliver: &mut Deliver<'_>) -> Result<Poll, PollError> {
        let mut delivered = 0;
        while delivered < budget && !self.stopped {
            let rest = &self.buf[self.start..self.end];
            if let Some(long) = &mut self.long {
                // Skipping a long line: count it to its newline (`Some(1)`) or the part's end
                // (`Some(0)`), then hand it over.
                let ended = match memchr::memchr(b'\n', rest) {
                    Some(n) => {
                        long.len += n;
                        self.start += n + 1;
                        Some(1)
                    }
                    None => {
                        long.len += rest.len();
                        self.start = self.end;
                        if !self.read_all && !self.refill()? {
                            self.read_all = true;
                        }
                        (self.read_all && self.start == self.end).then_some(0)
                    }
                };
                let done = ended.and_then(|newline| Some((newline, self.long.take()?)));
                if let Some((newline, long)) = done {
                    self.offset = long.at + long.len as u64 + newline;
                    deliver(RawRecord {
                        bytes: trim_cr(&long.kept),
                        len: long.len,
                        origin: Origin::Byte(long.at),
                    })
                    .map_err(PollError::Deliver)?;
                    delivered += 1;
                }
                continue;
            }
            let newline = memchr::memchr(b'\n', rest);
            let line_len = match newline {
                Some(n) => n,
                None if self.read_all => rest.len(),
                None if rest.len() >= self.keep => {
                    // Longer than the limit and no end in sight: keep the limit, skip the rest.
                    self.long = Some(LongLine {
                        kept: rest[..self.keep].to_vec(),
                        len: rest.len(),
                        at: self.offset,
                    });
                    self.start = self.end;
                    continue;
                }
                None => {
                    if !self.refill()? {
                        self.read_all = true;
                    }
                    continue;
                }
            };
            if line_len == 0 && newline.is_none() {
                // The end of a range: the next one, or the end of the part.
                if self.next_range()? {
                    continue;
                }
                return Ok(if delivered > 0 {
                    Poll::Busy
                } else {
                    Poll::Finished
                });
            }
            let line = &rest[..line_len];
            let at = self.offset;
            // A UTF-8 byte order mark at the very start of the file is not part of the line.
            let (bytes, len) = match line.strip_prefix(BOM) {
                Some(stripped) if at == 0 => (stripped, line_len - BOM.len()),
                _ => (line, line_len),
            };
            let bytes = trim_cr(&bytes[..bytes.len().min(self.keep)]);
            let consumed = line_len + usize::from(newline.is_some());
            deliver(RawRecord {
                bytes,
                len,
                origin: Origin::Byte(at),
            })
            .map_err(PollError::Deliver)?;
            self.start += consumed;
            self.offset += consumed as u64;
            delivered += 1;
        }
        Ok(if delivered > 0 || !self.stopped {
            Poll::Busy
        } else {
            Poll::Finished
        })
    }

    /// Nothing more is read; the lines already delivered stay delivered.
    fn stop(&mut self) {
        self.stopped = true;
    }
}
