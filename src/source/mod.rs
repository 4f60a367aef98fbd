//! Sources: where message bytes come from.
//!
//! A source hands each worker its share of raw messages; it knows nothing of parsing, epochs
//! or dataflows. The pipeline polls it with a budget and gets [`RawRecord`]s back. Adding a
//! source (Kafka) means implementing [`Source`], never touching the dataflows.

pub mod file;
pub mod generator;
pub mod kafka;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rdkafka::error::KafkaError;

/// Where a raw message came from, so a rejected one can be found again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Line number (from 1) in the input file.
    Line(u64),
    /// Byte offset (from 0) of the line in the input file, where workers read their own
    /// parts of a file and line numbers are not known.
    Byte(u64),
    /// Sequence number of a generated message on its worker.
    Generated(u64),
    /// A Kafka partition and offset.
    Kafka {
        /// Partition.
        partition: i32,
        /// Offset in the partition.
        offset: i64,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line(n) => write!(f, "line {n}"),
            Origin::Byte(n) => write!(f, "byte {n}"),
            Origin::Generated(n) => write!(f, "generated #{n}"),
            Origin::Kafka { partition, offset } => {
                write!(f, "partition {partition} offset {offset}")
            }
        }
    }
}

impl Origin {
    /// The partition it came from, as event time's watermarks count partitions: a Kafka
    /// partition, or `0` for a worker's share of a file, stdin or the simulated fleet.
    pub fn partition(&self) -> i32 {
        match self {
            Origin::Kafka { partition, .. } => *partition,
            Origin::Line(_) | Origin::Byte(_) | Origin::Generated(_) => 0,
        }
    }
}

/// What a source knows of a partition's progress; event time's watermarks wait on it (see
/// [`crate::watermark`]). Sources with one partition per worker report nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The source reads `partition` from now on; `at_start` when it was assigned before the
    /// first poll (it may hold readings older than anything read so far).
    Assigned {
        /// The partition.
        partition: i32,
        /// Assigned at start.
        at_start: bool,
    },
    /// `partition` has nothing more to read now.
    CaughtUp(i32),
    /// `partition` is at its end for good (`--until-end`).
    Finished(i32),
}

/// One message as it arrived.
#[derive(Clone, Copy, Debug)]
pub struct RawRecord<'a> {
    /// The bytes (a prefix only when the message was larger than the size limit).
    pub bytes: &'a [u8],
    /// The message's full size in bytes.
    pub len: usize,
    /// Where it came from.
    pub origin: Origin,
}

/// What a poll found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Records were delivered; there may be more right away.
    Busy,
    /// Nothing available now; poll again later.
    Idle,
    /// The input has ended; nothing more will come.
    Finished,
}

/// Errors a source can fail with at runtime.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading the input failed.
    #[error("reading {what}")]
    Read {
        /// What was being read.
        what: String,
        /// The I/O error (shared: the reader thread hands it to every worker).
        #[source]
        error: Arc<std::io::Error>,
    },
    /// Kafka failed in a way retries cannot fix.
    #[error("kafka: {0}")]
    Kafka(KafkaError),
    /// The input topic no longer exists on the brokers.
    #[error("kafka topic {topic} no longer exists on the brokers (deleted, or a broker came back without it): stopping. Every complete epoch is committed; once the topic is back, a restart resumes from the last checkpoint (if the topic was recreated, its offsets begin again: move the state directory aside first)")]
    TopicGone {
        /// The topic.
        topic: String,
    },
    /// The broker no longer has the records at a partition's position.
    #[error("kafka topic {topic}{}: the broker no longer has the records at the job's position (the topic was recreated or emptied under the job): stopping rather than skip records or count them twice. Every complete epoch is committed; to start over on the new topic, move the state directory aside", partition.map(|p| format!(" partition {p}")).unwrap_or_default())]
    OffsetGone {
        /// The topic.
        topic: String,
        /// The partition, when the error names it.
        partition: Option<i32>,
    },
    /// A resumed partition's records from its checkpointed offset are no longer on the broker.
    #[error("{topic} partition {partition}: resuming at checkpointed offset {wanted}, the broker's first record even from the partition's start is {first}: offsets {wanted} to {} are gone (retention?); refusing to skip them. Move the state directory aside to start from the earliest offset", first - 1)]
    RecordsGone {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The checkpointed offset.
        wanted: i64,
        /// The first offset the broker has.
        first: i64,
    },
}

/// What the consumer of a source's records failed with; the poll stops at that record.
pub type DeliverError = Box<dyn std::error::Error + Send + Sync>;

/// Why a poll stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The source itself failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The consumer of the records failed (writing a checkpoint or a dead letter, say).
    #[error(transparent)]
    Deliver(DeliverError),
}

/// Hands one record to the worker; an error stops the poll at that record.
pub type Deliver<'d> = dyn FnMut(RawRecord<'_>) -> Result<(), DeliverError> + 'd;

/// A worker's share of an input.
pub trait Source {
    /// Delivers at most `budget` records to `deliver`, stopping at the first one it refuses.
    fn poll(&mut self, budget: usize, deliver: &mut Deliver<'_>) -> Result<Poll, PollError>;

    /// The job is stopping (Ctrl-C, SIGTERM): take no new input. Later polls hand over what
    /// has already been read, then say [`Poll::Finished`].
    fn stop(&mut self);

    /// Hands over what happened to the source's partitions since the last call.
    fn progress(&mut self, report: &mut dyn FnMut(Progress)) {
        let _ = report;
    }

    /// Records that everything before `offsets` (next offset per partition) is complete and
    /// checkpointed; `wait` asks to wait for the broker's answer (at the end of a run).
    /// Sources without offsets ignore it.
    fn commit(&mut self, offsets: &BTreeMap<i32, i64>, wait: bool) -> Result<(), SourceError> {
        let _ = (offsets, wait);
        Ok(())
    }
}
