//! A worker's per-epoch sums as an append-only log (format 4 on), so that a checkpoint writes
//! what changed since the last one, not the hour of history that windows and rate alerts keep.
//!
//! ```text
//! gen-G/w{worker}-l{start}.log
//!   hygroflow-epoch-log 4\n
//!   record*   each: body length (u32, big endian), CRC-32 of the body (u32), JSON body
//! ```
//!
//! The first record of a log holds every row still needed when it was started (at the
//! checkpoint of epoch `start`); each later checkpoint appends the rows of the epoch it
//! closed, makes them durable, and names in its own file the log, the length it covers and
//! the first epoch still needed ([`LogCut`]). A restart reads only that length, so a record
//! torn by a crash past it belongs to no checkpoint and is never read. When the rows that have
//! expired outweigh the live ones, the next checkpoint starts a new log with the live rows
//! (compaction); the old log goes once no checkpoint that a restart may load names it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use hygroflow_dataflows::Epoch;
use serde::{Deserialize, Serialize};

use super::{io_error, CheckpointError, FORMAT_VERSION};

const LOG_MAGIC: &str = "hygroflow-epoch-log";
/// Bytes before a record's body: its length and its CRC-32.
const FRAME: usize = 8;
/// A log is compacted once it holds this many more rows than are live, at the least.
const MIN_DEAD_ROWS: usize = 4096;

/// One device's sums in one epoch: `(epoch, device, sum_micro, count)`.
pub type EpochRow = (Epoch, String, i64, i64);

/// What one record of a log adds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Per-epoch sums, oldest first.
    pub recent: Vec<EpochRow>,
    /// Epochs in which the worker had a message.
    pub reported: Vec<Epoch>,
}

impl LogRecord {
    fn is_empty(&self) -> bool {
        self.recent.is_empty() && self.reported.is_empty()
    }
}

/// Where a checkpoint's per-epoch sums are: the first `length` bytes of the log that began at
/// epoch `start`, less the rows and epochs before `first` (expired by then).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCut {
    /// The epoch whose checkpoint started the log: its file is `w{worker}-l{start}.log`.
    pub start: Epoch,
    /// The bytes of the log this checkpoint covers.
    pub length: u64,
    /// The first epoch still needed.
    pub first: Epoch,
}

/// `w3-l17.log` -> (3, 17).
pub(super) fn parse_log_name(path: &Path) -> Option<(usize, Epoch)> {
    let name = path.file_name()?.to_str()?.strip_suffix(".log")?;
    let (w, e) = name.strip_prefix('w')?.split_once("-l")?;
    Some((w.parse().ok()?, e.parse().ok()?))
}

pub(super) fn log_name(worker: usize, start: Epoch) -> String {
    format!("w{worker}-l{start}.log")
}

fn header() -> String {
    format!("{LOG_MAGIC} {FORMAT_VERSION}\n")
}

fn frame(record: &LogRecord) -> std::io::Result<Vec<u8>> {
    let body = serde_json::to_vec(record)?;
    let len =
        u32::try_from(body.len()).map_err(|_| std::io::Error::other("a log record over 4 GiB"))?;
    let mut bytes = Vec::with_capacity(FRAME + body.len());
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// One worker's open log, appended to at each checkpoint.
#[derive(Debug)]
pub struct EpochLog {
    path: PathBuf,
    file: File,
    start: Epoch,
    length: u64,
    /// Rows in the log, live or expired.
    rows: usize,
}

impl EpochLog {
    /// Starts the log `w{worker}-l{start}.log` in `dir` with `base`, the rows still needed,
    /// durably (the file and its directory entry).
    pub(super) fn create(
        dir: &Path,
        worker: usize,
        start: Epoch,
        base: &LogRecord,
    ) -> Result<EpochLog, CheckpointError> {
        let path = dir.join(log_name(worker, start));
        let mut file = File::create(&path).map_err(io_error(&path))?;
        let mut bytes = header().into_bytes();
        bytes.extend_from_slice(&frame(base).map_err(io_error(&path))?);
        file.write_all(&bytes).map_err(io_error(&path))?;
        file.sync_all().map_err(io_error(&path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(dir))?;
        Ok(EpochLog {
            path,
            file,
            start,
            length: bytes.len() as u64,
            rows: base.recent.len() + base.reported.len(),
        })
    }

    /// Appends `record` and makes it durable; an empty record writes nothing.
    pub fn append(&mut self, record: &LogRecord) -> Result<(), CheckpointError> {
        if record.is_empty() {
            return Ok(());
        }
        let bytes = frame(record).map_err(io_error(&self.path))?;
        let (head, tail) = bytes.split_at(bytes.len() / 2);
        self.file.write_all(head).map_err(io_error(&self.path))?;
        crate::fault::point("log-append");
        self.file.write_all(tail).map_err(io_error(&self.path))?;
        self.file.sync_data().map_err(io_error(&self.path))?;
        self.length += bytes.len() as u64;
        self.rows += record.recent.len() + record.reported.len();
        Ok(())
    }

    /// Whether the rows that have expired outweigh the `live` ones: time for a new log.
    pub fn wants_compaction(&self, live: usize) -> bool {
        self.rows > 2 * live + MIN_DEAD_ROWS
    }

    /// What a checkpoint taken now names, with `first` the first epoch still needed.
    pub fn cut(&self, first: Epoch) -> LogCut {
        LogCut {
            start: self.start,
            length: self.length,
            first,
        }
    }
}

/// Reads the rows a checkpoint's `cut` names from the log at `path`: its first `cut.length`
/// bytes, every record whole and checked, less what expired before `cut.first`.
pub(super) fn read(path: &Path, cut: &LogCut) -> Result<LogRecord, CheckpointError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    decode(&bytes, cut).map_err(|reason| CheckpointError::Corrupt {
        path: path.to_owned(),
        reason,
    })
}

/// The rows of the first `cut.length` bytes of a log, from `cut.first` on.
pub(super) fn decode(bytes: &[u8], cut: &LogCut) -> Result<LogRecord, String> {
    let length = usize::try_from(cut.length).map_err(|_| "a log length beyond memory")?;
    let Some(bytes) = bytes.get(..length) else {
        return Err(format!(
            "{} bytes, the checkpoint names {length} (truncated?)",
            bytes.len()
        ));
    };
    let newline = memchr::memchr(b'\n', bytes).ok_or("no header line")?;
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| "header is not text")?;
    match header.split_once(' ') {
        Some((LOG_MAGIC, version)) if version.parse() == Ok(FORMAT_VERSION) => {}
        Some((LOG_MAGIC, version)) => {
            return Err(format!(
                "an epoch log of format version {version}, this hygroflow writes {FORMAT_VERSION}"
            ))
        }
        _ => return Err(format!("not a {LOG_MAGIC} file")),
    }
    let mut rest = &bytes[newline + 1..];
    let mut out = LogRecord::default();
    while !rest.is_empty() {
        let Some((frame, after)) = rest.split_first_chunk::<FRAME>() else {
            return Err("a record cut inside its frame".into());
        };
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        let crc = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let Some(body) = after.get(..len) else {
            return Err(format!(
                "a record of {len} bytes with {} left in the checkpoint's length",
                after.len()
            ));
        };
        if crc32fast::hash(body) != crc {
            return Err("a record's checksum does not match".into());
        }
        let record: LogRecord =
            serde_json::from_slice(body).map_err(|e| format!("an unreadable record: {e}"))?;
        out.recent.extend(
            record
                .recent
                .into_iter()
                .filter(|(epoch, ..)| *epoch >= cut.first),
        );
        out.reported
            .extend(record.reported.into_iter().filter(|e| *e >= cut.first));
        rest = &after[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(epochs: std::ops::Range<Epoch>) -> LogRecord {
        LogRecord {
            recent: epochs.clone().map(|e| (e, "CT1".into(), 5, 1)).collect(),
            reported: epochs.collect(),
        }
    }

    #[test]
    fn a_cut_reads_what_was_appended_up_to_it_less_what_expired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = EpochLog::create(dir.path(), 0, 3, &rows(0..3)).expect("create");
        let early = log.cut(1);
        log.append(&rows(3..4)).expect("append");
        log.append(&LogRecord::default()).expect("nothing");
        let cut = log.cut(2);
        log.append(&rows(4..6)).expect("append");
        let path = dir.path().join(log_name(0, 3));
        assert_eq!(parse_log_name(&path), Some((0, 3)));
        assert_eq!(read(&path, &early).expect("early"), rows(1..3));
        assert_eq!(read(&path, &cut).expect("cut"), rows(2..4));
        assert_eq!(read(&path, &log.cut(0)).expect("all"), rows(0..6));
    }

    #[test]
    fn a_torn_record_past_the_cut_is_never_read_and_damage_before_it_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = EpochLog::create(dir.path(), 1, 0, &rows(0..2)).expect("create");
        log.append(&rows(2..3)).expect("append");
        let cut = log.cut(0);
        let path = dir.path().join(log_name(1, 0));
        let mut bytes = fs::read(&path).expect("read");
        // A crash in the middle of the next append.
        bytes.extend_from_slice(&frame(&rows(3..4)).expect("frame")[..11]);
        assert_eq!(decode(&bytes, &cut).expect("torn tail"), rows(0..3));
        for at in 0..cut.length as usize {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            let decoded = decode(&damaged, &cut);
            assert!(decoded.is_err(), "byte {at}: {decoded:?}");
        }
        let short = decode(&bytes[..cut.length as usize - 1], &cut).expect_err("short");
        assert!(short.contains("truncated"), "{short}");
        let foreign = decode(b"PNG\n", &LogCut { length: 4, ..cut }).expect_err("foreign");
        assert!(foreign.contains("not a hygroflow-epoch-log"), "{foreign}");
    }
}
