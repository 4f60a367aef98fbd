//! Rejected messages: never fatal, never silently dropped.
//!
//! Every rejection is counted in the report. Its reason and raw bytes go to a dead-letter
//! topic (Kafka input: the original bytes as the value, headers naming the source topic,
//! partition, offset and the error), or to a dead-letter file (`--rejects FILE`, one JSON
//! object per line). With neither, the first few per epoch are logged as warnings with where
//! they came from, and the rest are summed up.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};

use base64::Engine;
use rdkafka::message::{Header, OwnedHeaders};
use serde::Serialize;
use tracing::warn;

use crate::kafka::publisher::{Outgoing, PublishError, Publisher};
use crate::kafka::readback::{ReadBackError, SentLetters};
use crate::kafka::tail::Ends;
use crate::message::MessageError;
use crate::source::{Origin, RawRecord};

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

/// Where rejected messages are kept.
pub enum DeadLetters {
    /// Logged (first few per epoch).
    Log,
    /// A JSON-lines file.
    File(DeadLetterFile),
    /// A Kafka topic.
    Topic {
        /// The producer.
        publisher: Box<Publisher>,
        /// The dead-letter topic.
        topic: String,
        /// `(partition, offset)` of the rejects the topic already held at start: not sent
        /// again.
        sent: SentLetters,
        /// The ends the producer has reached.
        ends: Ends,
        /// This worker's index and the number of workers: which source partitions it reads.
        owner: (usize, usize),
    },
}

/// Keeping a rejected message failed.
#[derive(Debug, thiserror::Error)]
pub enum RejectError {
    /// Writing the dead-letter file failed.
    #[error("writing dead letters")]
    Io(#[from] std::io::Error),
    /// Publishing to the dead-letter topic failed.
    #[error("publishing dead letters")]
    Publish(#[from] PublishError),
    /// The dead-letter topic could not be read back: what a killed run sent is not known.
    #[error("dead letters cannot be sent exactly once")]
    ReadBack(#[source] Arc<ReadBackError>),
}

/// A worker's handler for rejected messages.
pub struct Rejects {
    source: String,
    target: DeadLetters,
    logged_this_epoch: u64,
    unlogged_this_epoch: u64,
    unflushed: bool,
}

impl Rejects {
    /// Rejections from `source` (a file name or a topic), kept in `target`.
    pub fn new(source: String, target: DeadLetters) -> Self {
        Rejects {
            source,
            target,
            logged_this_epoch: 0,
            unlogged_this_epoch: 0,
            unflushed: false,
        }
    }

    /// Keeps a rejected record.
    pub fn reject(
        &mut self,
        record: &RawRecord<'_>,
        error: &MessageError,
    ) -> Result<(), RejectError> {
        match &mut self.target {
            DeadLetters::Topic {
                publisher,
                topic,
                sent,
                ..
            } => {
                // Nothing is sent before the topic is read back.
                let sent = sent.wait().map_err(RejectError::ReadBack)?;
                if let Origin::Kafka { partition, offset } = record.origin {
                    if sent.keys.contains(&(partition, offset)) {
                        return Ok(());
                    }
                }
                let mut headers = OwnedHeaders::new().insert(Header {
                    key: "hygroflow.source.topic",
                    value: Some(self.source.as_str()),
                });
                if let Origin::Kafka { partition, offset } = record.origin {
                    headers = headers
                        .insert(Header {
                            key: "hygroflow.source.partition",
                            value: Some(&partition.to_string()),
                        })
                        .insert(Header {
                            key: "hygroflow.source.offset",
                            value: Some(&offset.to_string()),
                        });
                }
                headers = headers
                    .insert(Header {
                        key: "hygroflow.error",
                        value: Some(&error.to_string()),
                    })
                    .insert(Header {
                        key: "hygroflow.error.kind",
                        value: Some(error.kind()),
                    });
                publisher.send(Outgoing::new(
                    topic.clone(),
                    None,
                    record.bytes.to_vec(),
                    Some(headers),
                ))?;
                self.unflushed = true;
                Ok(())
            }
            DeadLetters::File(file) => {
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
                let mut line = serde_json::to_vec(&letter).map_err(std::io::Error::from)?;
                line.push(b'\n');
                let mut file = file
                    .lock()
                    .map_err(|_| std::io::Error::other("dead-letter file lock poisoned"))?;
                file.write_all(&line)?;
                self.unflushed = true;
                Ok(())
            }
            DeadLetters::Log if self.logged_this_epoch < LOGGED_PER_EPOCH => {
                self.logged_this_epoch += 1;
                warn!(source = %self.source, origin = %record.origin, kind = error.kind(), "rejected message: {error}");
                Ok(())
            }
            DeadLetters::Log => {
                self.unlogged_this_epoch += 1;
                Ok(())
            }
        }
    }

    /// With a dead-letter topic: where a restart from a checkpoint cut now, with the source
    /// partitions' next offsets `offsets`, starts reading the topic back (`tail.rs`); `None`
    /// otherwise.
    pub fn resume_offsets(
        &self,
        offsets: &std::collections::BTreeMap<i32, i64>,
    ) -> Option<Vec<(i32, i64)>> {
        match &self.target {
            DeadLetters::Topic {
                sent, ends, owner, ..
            } => {
                let owns = |p| crate::source::kafka::owns_partition(p, owner.0, owner.1);
                Some(
                    sent.resume_offsets((offsets, &owns), ends)?
                        .into_iter()
                        .collect(),
                )
            }
            _ => None,
        }
    }

    /// Closes an epoch: sums up what was not logged, and makes the epoch's dead letters
    /// durable (file flushed, topic acknowledged) before the epoch can be checkpointed.
    pub fn end_epoch(&mut self) -> Result<(), RejectError> {
        if self.unlogged_this_epoch > 0 {
            warn!(
                source = %self.source,
                count = self.unlogged_this_epoch,
                "more rejected messages this epoch (pass --rejects FILE to keep them all)"
            );
        }
        self.logged_this_epoch = 0;
        self.unlogged_this_epoch = 0;
        if std::mem::take(&mut self.unflushed) {
            match &mut self.target {
                DeadLetters::Topic { publisher, .. } => publisher.flush()?,
                DeadLetters::File(file) => file
                    .lock()
                    .map_err(|_| std::io::Error::other("dead-letter file lock poisoned"))?
                    .flush()?,
                DeadLetters::Log => {}
            }
        }
        Ok(())
    }
}
