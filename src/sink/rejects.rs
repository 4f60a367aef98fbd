//! Rejected messages: never fatal, never silently dropped.
//!
//! Every rejection is counted in the report. Its reason and raw bytes go to a dead-letter
//! file (`--rejects FILE`, one JSON object per line) when one is given; otherwise the first
//! few per epoch are logged as warnings with where they came from, and the rest are summed up.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde::Serialize;
use tracing::warn;

use crate::message::MessageError;
use crate::source::RawRecord;

/// How many rejections a worker logs in full per epoch before summing up.
const LOGGED_PER_EPOCH: u64 = 5;

/// A dead-letter file shared by the workers of a process.
pub type DeadLetterFile = Arc<Mutex<BufWriter<File>>>;

/// One line of the dead-letter file.
#[derive(Serialize)]
struct DeadLetter<'a> {
    source: &'a str,
    origin: String,
    error_kind: &'static str,
    error: String,
    /// The message, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    /// The message in base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
    /// Set when the message was larger than the limit and only a prefix is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    full_len: Option<usize>,
}

/// A worker's handler for rejected messages.
pub struct Rejects {
    source: String,
    file: Option<DeadLetterFile>,
    logged_this_epoch: u64,
    unlogged_this_epoch: u64,
}

impl Rejects {
    /// Rejections from `source`, written to `file` if given.
    pub fn new(source: String, file: Option<DeadLetterFile>) -> Self {
        Rejects {
            source,
            file,
            logged_this_epoch: 0,
            unlogged_this_epoch: 0,
        }
    }

    /// Keeps a rejected record.
    pub fn reject(&mut self, record: &RawRecord<'_>, error: &MessageError) -> std::io::Result<()> {
        match &self.file {
            Some(file) => {
                let (raw, raw_base64) = match std::str::from_utf8(record.bytes) {
                    Ok(text) => (Some(text), None),
                    Err(_) => (
                        None,
                        Some(base64::engine::general_purpose::STANDARD.encode(record.bytes)),
                    ),
                };
                let letter = DeadLetter {
                    source: &self.source,
                    origin: record.origin.to_string(),
                    error_kind: error.kind(),
                    error: error.to_string(),
                    raw,
                    raw_base64,
                    full_len: (record.len > record.bytes.len()).then_some(record.len),
                };
                let mut line = serde_json::to_vec(&letter)?;
                line.push(b'\n');
                let mut file = file
                    .lock()
                    .map_err(|_| std::io::Error::other("dead-letter file lock poisoned"))?;
                file.write_all(&line)
            }
            None if self.logged_this_epoch < LOGGED_PER_EPOCH => {
                self.logged_this_epoch += 1;
                warn!(source = %self.source, origin = %record.origin, kind = error.kind(), "rejected message: {error}");
                Ok(())
            }
            None => {
                self.unlogged_this_epoch += 1;
                Ok(())
            }
        }
    }

    /// Closes an epoch: sums up what was not logged, and flushes the file.
    pub fn end_epoch(&mut self) -> std::io::Result<()> {
        if self.unlogged_this_epoch > 0 {
            warn!(
                source = %self.source,
                count = self.unlogged_this_epoch,
                "more rejected messages this epoch (pass --rejects FILE to keep them all)"
            );
        }
        self.logged_this_epoch = 0;
        self.unlogged_this_epoch = 0;
        if let Some(file) = &self.file {
            let mut file = file
                .lock()
                .map_err(|_| std::io::Error::other("dead-letter file lock poisoned"))?;
            file.flush()?;
        }
        Ok(())
    }
}
