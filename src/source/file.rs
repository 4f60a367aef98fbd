//! The file source: JSON lines from a file or stdin, divided among workers.
//!
//! One reader thread per process reads the input once and deals lines out: line `i` (from 0)
//! belongs to global worker `i % peers`. A process keeps only its own workers' lines, so in a
//! cluster every process reads the same file and together they count each line exactly once.
//! Lines travel to workers in batches over bounded channels, so a slow worker slows the reader
//! instead of filling memory. A batch waits for more lines only while the input keeps coming:
//! when a pipe has nothing more right now, what was read goes to the workers at once. A line
//! longer than the size limit is kept only up to the limit (its full length travels with it,
//! and validation rejects it) so one huge line cannot exhaust memory.

use std::io::Read;
use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Deliver, Origin, Poll, PollError, RawRecord, Source, SourceError};

/// Bytes asked for in each read of the input. A pipe holds less (64 KiB by default, 1 MiB at
/// most unless an administrator raises `fs.pipe-max-size`), so a pipe whose writer paused
/// answers with a short read, except in the unlikely case where it holds exactly this much.
const READ_BYTES: usize = 1 << 20;
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
}

enum Feed {
    Lines(LineBatch),
    Failed(Arc<std::io::Error>),
}

/// Which global worker owns line `line` (counted from 0).
pub fn owner_of_line(line: u64, peers: usize) -> usize {
    (line % peers.max(1) as u64) as usize
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
    let sources = receivers
        .into_iter()
        .map(|rx| FileSource {
            rx,
            name: name.clone(),
            batch: LineBatch::default(),
            next: 0,
        })
        .collect();
    let handle = std::thread::Builder::new()
        .name("hygroflow-reader".into())
        .spawn(move || {
            let mut dealer = Dealer::new(senders, local, peers);
            if let Err(e) = read_lines(input, max_line, &mut dealer) {
                dealer.fail(e);
            }
            dealer.finish();
        })
        .expect("spawning the reader thread");
    (sources, handle)
}

/// Reads `input` line by line, keeping at most `max_line + 1` bytes of any line.
///
/// A read that returns fewer bytes than it asked for means the input has nothing more right
/// now: a pipe or a terminal whose writer paused. Every batch waiting then goes to its worker
/// before the next read, which may block, so a line reaches the dataflow in the epoch it
/// arrived in. A regular file returns full reads until its end, so it still travels in full
/// batches.
fn read_lines(
    mut input: Box<dyn Read + Send>,
    max_line: usize,
    dealer: &mut Dealer,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; READ_BYTES];
    let keep = max_line.saturating_add(1);
    let mut partial: Vec<u8> = Vec::new();
    let mut partial_len = 0usize;
    let mut in_line = false;
    loop {
        let read = match input.read(&mut buffer) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if read == 0 {
            if in_line {
                dealer.line(&partial, partial_len);
            }
            return Ok(());
        }
        let buf = &buffer[..read];
        let mut consumed = 0;
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
        if read < buffer.len() {
            dealer.flush();
        }
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

    fn line(&mut self, bytes: &[u8], len: usize) {
        let owner = owner_of_line(self.line, self.peers);
        self.line += 1;
        if !self.local.contains(&owner) {
            return;
        }
        let slot = owner - self.local.start;
        let batch = &mut self.batches[slot];
        let start = batch.data.len();
        let bytes = trim_cr(bytes);
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
}

impl Source for FileSource {
    fn poll(&mut self, budget: usize, deliver: &mut Deliver<'_>) -> Result<Poll, PollError> {
        let mut delivered = 0;
        while delivered < budget {
            if self.next == self.batch.lines.len() {
                match self.rx.try_recv() {
                    Ok(Feed::Lines(batch)) => {
                        self.batch = batch;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(sources: Vec<FileSource>) -> Vec<Vec<(u64, Vec<u8>, usize)>> {
        sources
            .into_iter()
            .map(|mut s| {
                let mut got = Vec::new();
                loop {
                    let poll = s
                        .poll(3, &mut |r| {
                            if let Origin::Line(n) = r.origin {
                                got.push((n, r.bytes.to_vec(), r.len));
                            }
                            Ok(())
                        })
                        .expect("no read error");
                    if poll == Poll::Finished {
                        break got;
                    }
                }
            })
            .collect()
    }

    #[test]
    fn lines_are_dealt_round_robin_over_global_workers() {
        let input = b"a\nbb\n\nccc\r\nd".to_vec();
        // Process holding global workers 1 and 2 of 3.
        let (sources, handle) = spawn_reader(
            Box::new(std::io::Cursor::new(input)),
            "t".into(),
            1..3,
            3,
            100,
        );
        let got = drain(sources);
        handle.join().expect("reader thread");
        assert_eq!(got[0], vec![(2, b"bb".to_vec(), 2), (5, b"d".to_vec(), 1)]);
        assert_eq!(got[1], vec![(3, b"".to_vec(), 0)]);
    }

    #[test]
    fn every_line_goes_to_exactly_one_worker() {
        let text: String = (0..1000).map(|i| format!("line{i}\n")).collect();
        let (sources, handle) = spawn_reader(
            Box::new(std::io::Cursor::new(text.into_bytes())),
            "t".into(),
            0..4,
            4,
            100,
        );
        let mut all: Vec<u64> = drain(sources)
            .into_iter()
            .flatten()
            .map(|(n, _, _)| n)
            .collect();
        handle.join().expect("reader thread");
        all.sort();
        assert_eq!(all, (1..=1000).collect::<Vec<_>>());
    }

    #[test]
    fn long_lines_are_capped_but_keep_their_length() {
        let mut input = vec![b'x'; 5000];
        input.push(b'\n');
        input.extend_from_slice(b"ok\n");
        let (sources, handle) = spawn_reader(
            Box::new(std::io::Cursor::new(input)),
            "t".into(),
            0..1,
            1,
            10,
        );
        let got = drain(sources);
        handle.join().expect("reader thread");
        assert_eq!(got[0][0].1.len(), 11);
        assert_eq!(got[0][0].2, 5000);
        assert_eq!(got[0][1], (2, b"ok".to_vec(), 2));
    }

    /// A pipe: each read returns at most what the writer has written so far (a short read),
    /// and blocks while the writer has written nothing more.
    struct Pipe {
        chunks: Receiver<Vec<u8>>,
        pending: Vec<u8>,
    }

    /// The writing end of a [`Pipe`]; dropping it closes the pipe.
    fn pipe() -> (std::sync::mpsc::Sender<Vec<u8>>, Pipe) {
        let (tx, chunks) = std::sync::mpsc::channel();
        let pipe = Pipe {
            chunks,
            pending: Vec::new(),
        };
        (tx, pipe)
    }

    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pending.is_empty() {
                match self.chunks.recv() {
                    Ok(chunk) => self.pending = chunk,
                    Err(_) => return Ok(0),
                }
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    /// Polls until `count` lines have arrived, failing after ten seconds instead of hanging.
    fn receive(source: &mut FileSource, count: usize) -> Vec<(u64, Vec<u8>)> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < count {
            assert!(
                std::time::Instant::now() < deadline,
                "only {got:?} of {count} lines arrived"
            );
            let poll = source
                .poll(count - got.len(), &mut |r| {
                    if let Origin::Line(n) = r.origin {
                        got.push((n, r.bytes.to_vec()));
                    }
                    Ok(())
                })
                .expect("no read error");
            match poll {
                Poll::Busy => {}
                Poll::Idle => std::thread::sleep(std::time::Duration::from_millis(1)),
                Poll::Finished => panic!("the input ended after {got:?}"),
            }
        }
        got
    }

    #[test]
    fn lines_before_a_pause_in_a_pipe_arrive_before_the_rest_is_written() {
        let (writer, input) = pipe();
        let (mut sources, handle) = spawn_reader(Box::new(input), "t".into(), 0..2, 2, 100);
        // The last line is still being written when the writer pauses.
        writer
            .send(b"a\nb\r\nc\npart".to_vec())
            .expect("the reader is reading");
        assert_eq!(
            receive(&mut sources[0], 2),
            vec![(1, b"a".to_vec()), (3, b"c".to_vec())]
        );
        assert_eq!(receive(&mut sources[1], 1), vec![(2, b"b".to_vec())]);
        writer
            .send(b"ial\ne\n".to_vec())
            .expect("the reader is reading");
        assert_eq!(receive(&mut sources[1], 1), vec![(4, b"partial".to_vec())]);
        assert_eq!(receive(&mut sources[0], 1), vec![(5, b"e".to_vec())]);
        drop(writer);
        let rest = drain(sources);
        handle.join().expect("reader thread");
        assert_eq!(rest, vec![vec![], vec![]], "nothing twice");
    }

    #[test]
    fn a_paused_pipe_still_caps_long_lines() {
        let (writer, input) = pipe();
        let (mut sources, handle) = spawn_reader(Box::new(input), "t".into(), 0..1, 1, 10);
        for piece in [vec![b'x'; 6], vec![b'x'; 20], b"\nok\n".to_vec()] {
            writer.send(piece).expect("the reader is reading");
        }
        let got = receive(&mut sources[0], 2);
        assert_eq!(got[0], (1, vec![b'x'; 11]));
        assert_eq!(got[1], (2, b"ok".to_vec()));
        drop(writer);
        drop(sources);
        handle.join().expect("reader thread");
    }

    #[test]
    fn full_reads_send_full_batches() {
        // A regular file answers every read in full until its end, as a cursor does.
        // Lines long enough that batches fill up on bytes before they do on lines.
        let text: String = (0..60_000).map(|i| format!("line {i:>40}\n")).collect();
        let size = text.len();
        assert!(size > 2 * READ_BYTES);
        let (tx, rx) = sync_channel(size / BATCH_BYTES + 2);
        let mut dealer = Dealer::new(vec![tx], 0..1, 1);
        read_lines(
            Box::new(std::io::Cursor::new(text.into_bytes())),
            100,
            &mut dealer,
        )
        .expect("reads");
        dealer.finish();
        let sizes: Vec<usize> = rx
            .iter()
            .map(|feed| match feed {
                Feed::Lines(batch) => batch.data.len(),
                Feed::Failed(e) => panic!("{e}"),
            })
            .collect();
        let (last, full) = sizes.split_last().expect("batches");
        assert!(full.iter().all(|&n| n >= BATCH_BYTES), "{sizes:?}");
        assert!(*last > 0);
    }

    #[test]
    fn a_read_error_keeps_its_cause() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "bad disk",
                ))
            }
        }
        let (mut sources, handle) = spawn_reader(Box::new(Broken), "in.jsonl".into(), 0..1, 1, 10);
        let error = loop {
            match sources[0].poll(10, &mut |_| Ok(())) {
                Ok(Poll::Finished) => panic!("the error was lost"),
                Ok(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
                Err(e) => break e,
            }
        };
        handle.join().expect("reader thread");
        assert_eq!(error.to_string(), "reading in.jsonl");
        let cause = std::error::Error::source(&error)
            .and_then(|e| e.downcast_ref::<Arc<std::io::Error>>())
            .expect("the I/O error is the cause");
        assert_eq!(cause.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(cause.to_string(), "bad disk");
    }
}
