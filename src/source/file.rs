//! The file source: JSON lines from a file or stdin, divided among workers.
//!
//! A regular file read by several workers is cut into stripes of about 4 MiB, each boundary
//! moved to the next line start ([`line_aligned_bounds`]), and each worker reads its stripes (every
//! `peers`-th, so that the workers move through the file together) on its
//! own thread ([`range_sources`], `range.rs`): no thread deals lines to the others, no line is
//! copied between threads, and a rejected line is named by its byte offset. Stdin, pipes and FIFOs can only be read once, in order: there one
//! reader thread per process reads the input and deals lines out: line `i` (from 0)
//! belongs to global worker `i % peers`. A process keeps only its own workers' lines, so in a
//! cluster every process reads the same file and together they count each line exactly once.
//! Lines travel to workers in batches over bounded channels, so a slow worker slows the reader
//! instead of filling memory. A batch waits for more lines only while the input keeps coming:
//! when a pipe has nothing more right now, what was read goes to the workers at once (a helper
//! thread reads a few chunks ahead, so the reader can tell). A line longer than the size limit
//! is kept only up to the limit (its full length travels with it, and validation rejects it)
//! so one huge line cannot exhaust memory.

use std::io::Read;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{
    channel, sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError,
};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Deliver, Origin, Poll, PollError, RawRecord, Source, SourceError};

/// Bytes asked for in each read of the input. A pipe holds less (64 KiB by default, 1 MiB at
/// most unless an administrator raises `fs.pipe-max-size`), so a pipe whose writer paused
/// answers with a short read, except in the unlikely case where it holds exactly this much.
const READ_BYTES: usize = 1 << 20;
/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";
/// How long the reader waits for another read after a short one before it sends what it has
/// (an idle worker sleeps about this long between polls anyway).
const LINGER: Duration = Duration::from_millis(1);
/// How often a reader waiting for input looks whether the job is stopping.
const STOP_CHECK: Duration = Duration::from_millis(50);
/// Room left at the end of each read buffer for the line a read cut in two, so that it can
/// travel with the next read's lines (a longer line costs the buffer a reallocation).
const LINE_ROOM: usize = 16 * 1024;
/// Reads the input thread may be ahead of the dealer.
const READS_AHEAD: usize = 4;
/// Bytes per batch before it is sent to its worker, while the input keeps coming.
const BATCH_BYTES: usize = 256 * 1024;
/// Batches a worker may have queued before the reader waits.
const QUEUE_DEPTH: usize = 8;

/// A batch of whole lines for one worker.
#[derive(Debug, Default)]
struct LineBatch {
    data: Vec<u8>,
    /// (line number from 1, byte range in `data`, full length of the line)
    lines: Vec<(u64, Range<usize>, usize)>,
    /// `data` is a whole read buffer, handed over as it was read: the worker sends it back to
    /// the input thread for the next read.
    read_buffer: bool,
}

enum Feed {
    Lines(LineBatch),
    Failed(Arc<std::io::Error>),
}

/// Which global worker owns line `line` (counted from 0).
pub fn owner_of_line(line: u64, peers: usize) -> usize {
    (line % peers.max(1) as u64) as usize
}

/// What one read of the input returned.
struct Chunk {
    buf: Vec<u8>,
    len: usize,
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Fewer bytes than were asked for: the input had nothing more at the time (a pipe or a
    /// terminal whose writer paused). A regular file answers in full until its end.
    fn is_short(&self) -> bool {
        self.len < self.buf.len()
    }
}

/// Starts the reader thread for `input`; returns one source per local worker.
///
/// `local` is the range of global worker indices that run in this process, `peers` the
/// number of workers in the whole computation.
pub fn spawn_reader(
    input: Box<dyn Read + Send>,
    name: String,
    local: Range<usize>,
    peers: usize,
    max_line: usize,
) -> (Vec<FileSource>, JoinHandle<()>) {
    let (senders, receivers): (Vec<_>, Vec<_>) =
        local.clone().map(|_| sync_channel(QUEUE_DEPTH)).unzip();
    let stop = Arc::new(AtomicBool::new(false));
    let (chunks, spare) = read_ahead(input);
    let sources = receivers
        .into_iter()
        .map(|rx| FileSource {
            rx,
            name: name.clone(),
            batch: LineBatch::default(),
            next: 0,
            stop: Arc::clone(&stop),
            spare: spare.clone(),
        })
        .collect();
    let handle = std::thread::Builder::new()
        .name("hygroflow-reader".into())
        .spawn(move || {
            let mut dealer = Dealer::new(senders, local, peers);
            if let Err(e) = read_lines(&chunks, &spare, max_line, &stop, &mut dealer) {
                dealer.fail(e);
            }
            dealer.finish();
        })
        .expect("spawning the reader thread");
    (sources, handle)
}

/// Bytes of a file each worker reads before the next worker's stripe (about 20,000 lines of
/// 208 bytes). Workers read stripes in turn, so in event time they move through the file's
/// epochs together: with one half of the file each, the second worker's epochs all came after
/// the first's, and its updates waited for the frontier (one run of 10M lines of 1M sensors
/// peaked at 1,262 MB at 2 workers).
pub const STRIPE_BYTES: u64 = 4 << 20;

/// One source per local worker for the regular file at `path`, each reading its own byte
/// ranges on its worker's thread: the file cut into stripes of about [`STRIPE_BYTES`], each
/// boundary moved to the next line start, and stripe `i` read by worker `i % peers`, so a line
/// belongs to the worker whose stripe holds its first byte. Rejected lines are named by byte
/// offset.
pub fn range_sources(
    path: &std::path::Path,
    name: &str,
    layout: (Range<usize>, usize),
    max_line: usize,
) -> std::io::Result<Vec<RangeSource>> {
    striped_sources(path, name, layout, (max_line, STRIPE_BYTES))
}

/// [`range_sources`] with stripes of `stripe` bytes.
pub fn striped_sources(
    path: &std::path::Path,
    name: &str,
    (local, peers): (Range<usize>, usize),
    (max_line, stripe): (usize, u64),
) -> std::io::Result<Vec<RangeSource>> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let peers = peers.max(1);
    let rounds = size.div_ceil(stripe.max(1) * peers as u64).max(1);
    let parts = usize::try_from(rounds)
        .ok()
        .and_then(|rounds| rounds.checked_mul(peers))
        .ok_or_else(|| std::io::Error::other("the file is too large to stripe"))?;
    let bounds = line_aligned_bounds(&mut file, size, parts)?;
    local
        .map(|worker| {
            let ranges: Vec<Range<u64>> = (worker..parts)
                .step_by(peers)
                .map(|part| bounds[part]..bounds[part + 1])
                .filter(|range| !range.is_empty())
                .collect();
            RangeSource::open(path, name.to_owned(), ranges, max_line)
        })
        .collect()
}

/// `parts + 1` offsets: 0, each `i * size / parts` moved to the start of the next line, and
/// `size`. Part `i` is `bounds[i]..bounds[i + 1]` (possibly empty).
pub fn line_aligned_bounds(
    file: &mut (impl Read + std::io::Seek),
    size: u64,
    parts: usize,
) -> std::io::Result<Vec<u64>> {
    use std::io::{BufRead, BufReader, SeekFrom};
    let parts = parts.max(1) as u64;
    let mut bounds = vec![0];
    for i in 1..parts {
        let cut = (u128::from(size) * u128::from(i) / u128::from(parts)) as u64;
        let previous = *bounds.last().unwrap_or(&0);
        let bound = if cut <= previous || cut == 0 {
            previous
        } else {
            // The line that holds byte `cut - 1` ends the previous part.
            file.seek(SeekFrom::Start(cut - 1))?;
            let mut rest = Vec::new();
            let read = BufReader::new(&mut *file).read_until(b'\n', &mut rest)?;
            (cut - 1 + read as u64).min(size)
        };
        bounds.push(bound.max(previous));
    }
    bounds.push(size);
    Ok(bounds)
}

/// Reads `input` on a thread of its own, one chunk per read, at most [`READS_AHEAD`] reads
/// ahead; buffers sent back through the returned sender are reused. The thread ends at the end
/// of the input, after an error, or when the receiver is gone (at the next read that returns).
fn read_ahead(
    mut input: Box<dyn Read + Send>,
) -> (Receiver<std::io::Result<Chunk>>, Sender<Vec<u8>>) {
    let (full, chunks) = sync_channel(READS_AHEAD);
    let (spare, spares) = channel::<Vec<u8>>();
    std::thread::Builder::new()
        .name("hygroflow-input".into())
        .spawn(move || loop {
            let mut buf = match spares.try_recv() {
                Ok(mut spare) => {
                    spare.resize(READ_BYTES, 0);
                    spare
                }
                Err(_) => {
                    // Room for a line that a read cut, which travels at the buffer's end.
                    let mut buf = Vec::with_capacity(READ_BYTES + LINE_ROOM);
                    buf.resize(READ_BYTES, 0);
                    buf
                }
            };
            let read = loop {
                match input.read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    read => break read,
                }
            };
            let chunk = match read {
                Ok(0) => return,
                Ok(len) => Ok(Chunk { buf, len }),
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if full.send(chunk).is_err() || failed {
                return;
            }
        })
        .expect("spawning the input thread");
    (chunks, spare)
}

/// Splits the input's chunks into lines, keeping at most `max_line + 1` bytes of any line.
///
/// Before it waits for the input, the reader sends every batch that holds lines if the last
/// read was short and no read since has brought more: the input has nothing more right now,
/// and a line must reach the dataflow in the epoch it arrived in. A regular file answers in
/// full until its end, and a pipe that keeps coming has its next chunk waiting, so both
/// still travel in full batches.
///
/// When the job stops (`stop`), it hands over the lines it has and ends, within
/// [`STOP_CHECK`] even while the input has nothing to give; the input thread may stay blocked
/// in its read, and nobody waits for it.
fn read_lines(
    chunks: &Receiver<std::io::Result<Chunk>>,
    spare: &Sender<Vec<u8>>,
    max_line: usize,
    stop: &AtomicBool,
    dealer: &mut Dealer,
) -> std::io::Result<()> {
    let keep = max_line.saturating_add(1);
    let mut partial: Vec<u8> = Vec::new();
    let mut partial_len = 0usize;
    let mut in_line = false;
    let mut short = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let next = match chunks.try_recv() {
            Ok(next) => Some(next),
            Err(TryRecvError::Empty) => {
                // A pipe that keeps coming (`cat file |`) answers its next short read within
                // microseconds: only a short read with no successor within LINGER means the
                // input has nothing more right now, and what was read goes out then.
                let wait = if short { LINGER } else { STOP_CHECK };
                match chunks.recv_timeout(wait) {
                    Ok(next) => Some(next),
                    Err(RecvTimeoutError::Timeout) => {
                        if short {
                            dealer.flush();
                            short = false;
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => None,
                }
            }
            Err(TryRecvError::Disconnected) => None,
        };
        let Some(chunk) = next.transpose()? else {
            if in_line {
                dealer.line(&partial, partial_len);
            }
            return Ok(());
        };
        short = chunk.is_short();
        let buf = chunk.bytes();
        let mut consumed = 0;
        // The line the last read left unfinished, once this read ends it: (kept, length).
        let mut first = None;
        if in_line {
            if let Some(end) = memchr::memchr(b'\n', buf) {
                let room = keep.saturating_sub(partial.len());
                partial.extend_from_slice(&buf[..end.min(room)]);
                first = Some((std::mem::take(&mut partial), partial_len + end));
                partial_len = 0;
                in_line = false;
                consumed = end + 1;
            }
        }
        let last_line_end = memchr::memrchr(b'\n', buf).map(|n| n + 1);
        if let (false, false, true, Some(end)) = (
            short,
            in_line,
            dealer.takes_whole_reads(),
            last_line_end.filter(|end| *end > consumed),
        ) {
            // A full read for the only worker: its whole lines go over in the read's own
            // buffer, not copied line by line (a fifth of the bytes' cost at one worker).
            let rest = &buf[end..];
            partial.extend_from_slice(&rest[..rest.len().min(keep)]);
            partial_len = rest.len();
            in_line = !rest.is_empty();
            dealer.whole_read(chunk.buf, (first, consumed..end), keep);
            continue;
        }
        if let Some((line, len)) = first {
            dealer.line(&line, len);
        }
        while consumed < buf.len() {
            let rest = &buf[consumed..];
            match memchr::memchr(b'\n', rest) {
                Some(end) if !in_line => {
                    let line = &rest[..end];
                    dealer.line(&line[..line.len().min(keep)], line.len());
                    consumed += end + 1;
                }
                Some(end) => {
                    let room = keep.saturating_sub(partial.len());
                    partial.extend_from_slice(&rest[..end.min(room)]);
                    partial_len += end;
                    dealer.line(&partial, partial_len);
                    partial.clear();
                    partial_len = 0;
                    in_line = false;
                    consumed += end + 1;
                }
                None => {
                    let room = keep.saturating_sub(partial.len());
                    partial.extend_from_slice(&rest[..rest.len().min(room)]);
                    partial_len += rest.len();
                    in_line = true;
                    consumed = buf.len();
                }
            }
        }
        // The input thread is gone when this fails; the buffer is not needed then.
        let _ = spare.send(chunk.buf);
    }
}

/// Deals lines to the local workers' batches.
struct Dealer {
    senders: Vec<Option<SyncSender<Feed>>>,
    batches: Vec<LineBatch>,
    local: Range<usize>,
    peers: usize,
    line: u64,
}

impl Dealer {
    fn new(senders: Vec<SyncSender<Feed>>, local: Range<usize>, peers: usize) -> Self {
        let batches = senders.iter().map(|_| LineBatch::default()).collect();
        Dealer {
            senders: senders.into_iter().map(Some).collect(),
            batches,
            local,
            peers,
            line: 0,
        }
    }

    /// Every line goes to the one local worker, which the whole input belongs to.
    fn takes_whole_reads(&self) -> bool {
        self.peers == 1 && self.batches.len() == 1
    }

    /// Sends the whole lines `lines` of the read buffer `buf` to the only worker, in the
    /// buffer itself, after the lines dealt before them and `first`, the line that the last
    /// read left unfinished and this one ended (kept bytes and full length), which travels
    /// at the buffer's end (the input thread leaves room for it).
    fn whole_read(
        &mut self,
        mut buf: Vec<u8>,
        (first, lines): (Option<(Vec<u8>, usize)>, Range<usize>),
        keep: usize,
    ) {
        self.flush();
        let mut batch = LineBatch {
            lines: Vec::with_capacity((lines.end - lines.start) / 128 + 2),
            read_buffer: true,
            ..LineBatch::default()
        };
        if let Some((line, len)) = first {
            let at = buf.len();
            buf.extend_from_slice(&line);
            self.number(&mut batch, (&buf, at..buf.len()), len, keep);
        }
        let mut at = lines.start;
        for end in memchr::memchr_iter(b'\n', &buf[lines.clone()]) {
            let end = lines.start + end;
            self.number(&mut batch, (&buf, at..end), end - at, keep);
            at = end + 1;
        }
        batch.data = buf;
        self.batches[0] = batch;
        self.send(0);
    }

    /// Adds the line `buf[line]`, `len` bytes long in the input, to `batch` by range.
    fn number(
        &mut self,
        batch: &mut LineBatch,
        (buf, line): (&[u8], Range<usize>),
        len: usize,
        keep: usize,
    ) {
        // Kept up to the limit, as the callers of `line` keep a copied line.
        let end = (line.start + len.min(keep)).min(buf.len());
        let (kept, len) = line_body(self.line == 0, &buf[line.start..end], len);
        self.line += 1;
        let kept = line.start + kept.start..line.start + kept.end;
        batch.lines.push((self.line, kept, len));
    }

    fn line(&mut self, bytes: &[u8], len: usize) {
        let (kept, len) = line_body(self.line == 0, bytes, len);
        let bytes = &bytes[kept];
        let owner = owner_of_line(self.line, self.peers);
        self.line += 1;
        if !self.local.contains(&owner) {
            return;
        }
        let slot = owner - self.local.start;
        let batch = &mut self.batches[slot];
        let start = batch.data.len();
        batch.data.extend_from_slice(bytes);
        batch.lines.push((self.line, start..batch.data.len(), len));
        if batch.data.len() >= BATCH_BYTES || batch.lines.len() >= 8192 {
            self.send(slot);
        }
    }

    fn send(&mut self, slot: usize) {
        let batch = std::mem::take(&mut self.batches[slot]);
        if let Some(tx) = &self.senders[slot] {
            if tx.send(Feed::Lines(batch)).is_err() {
                // The worker stopped (shutdown); stop feeding it.
                self.senders[slot] = None;
            }
        }
    }

    /// Sends every batch that holds lines.
    fn flush(&mut self) {
        for slot in 0..self.batches.len() {
            if !self.batches[slot].lines.is_empty() {
                self.send(slot);
            }
        }
    }

    fn fail(&mut self, error: std::io::Error) {
        let error = Arc::new(error);
        for tx in self.senders.iter().flatten() {
            let _ = tx.send(Feed::Failed(Arc::clone(&error)));
        }
    }

    fn finish(mut self) {
        self.flush();
    }
}

/// What a line's `bytes` (kept up to the limit) hold of it, and its full length `len`: without
/// a UTF-8 byte order mark if it is the input's `first` line (Windows tools write one), and
/// without a trailing carriage return.
fn line_body(first: bool, bytes: &[u8], len: usize) -> (Range<usize>, usize) {
    let (skip, len) = match bytes.strip_prefix(BOM) {
        Some(_) if first => (BOM.len(), len - BOM.len()),
        _ => (0, len),
    };
    (skip..skip + trim_cr(&bytes[skip..]).len(), len)
}

/// Drops one trailing carriage return (CRLF files); JSON allows it anyway, but the raw
/// bytes kept for a rejected line read better without it.
fn trim_cr(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

/// One worker's end of the reader.
pub struct FileSource {
    rx: Receiver<Feed>,
    name: String,
    batch: LineBatch,
    next: usize,
    /// Shared with the reader: set when the job stops.
    stop: Arc<AtomicBool>,
    /// Read buffers handed over whole go back to the input thread here.
    spare: Sender<Vec<u8>>,
}

impl Source for FileSource {
    fn poll(&mut self, budget: usize, deliver: &mut Deliver<'_>) -> Result<Poll, PollError> {
        let mut delivered = 0;
        while delivered < budget {
            if self.next == self.batch.lines.len() {
                match self.rx.try_recv() {
                    Ok(Feed::Lines(batch)) => {
                        let done = std::mem::replace(&mut self.batch, batch);
                        if done.read_buffer {
                            // The input thread is gone at the end of the input: no matter.
                            let _ = self.spare.send(done.data);
                        }
                        self.next = 0;
                    }
                    Ok(Feed::Failed(error)) => {
                        return Err(SourceError::Read {
                            what: self.name.clone(),
                            error,
                        }
                        .into())
                    }
                    Err(TryRecvError::Empty) => {
                        return Ok(if delivered > 0 {
                            Poll::Busy
                        } else {
                            Poll::Idle
                        });
                    }
                    Err(TryRecvError::Disconnected) => {
                        return Ok(if delivered > 0 {
                            Poll::Busy
                        } else {
                            Poll::Finished
                        });
                    }
                }
                continue;
            }
            let (line, range, len) = self.batch.lines[self.next].clone();
            self.next += 1;
            delivered += 1;
            let bytes = &self.batch.data[range];
            deliver(RawRecord {
                bytes,
                len: len.max(bytes.len()),
                origin: Origin::Line(line),
            })
            .map_err(PollError::Deliver)?;
        }
        Ok(Poll::Busy)
    }

    /// The reader hands over the lines it holds and ends; this source delivers them, then
    /// says `Finished` when the reader's channel closes.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

mod range;
#[cfg(test)]
mod tests;

pub use range::RangeSource;
