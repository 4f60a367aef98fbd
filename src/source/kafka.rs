//! The Kafka source: each worker consumes the partitions it owns, by manual assignment.
//!
//! Partition `p` belongs to global worker `p % peers` ([`owns_partition`]), in one process or
//! across a cluster, so no consumer-group rebalance ever moves a partition in the middle of an
//! epoch. A worker that owns nothing still advances every epoch (the pipeline does that). New
//! partitions are noticed from metadata every few seconds and assigned without a restart.
//!
//! Where a partition starts: at the checkpointed offset when a state directory has one,
//! otherwise at the beginning, because the cumulative results are rebuilt from the whole topic.
//! Offsets are committed to the consumer group only for epochs that are complete (and
//! checkpointed), so lag tools show true progress.
//!
//! `--until-end` stops a partition at the end seen at start. Tansu (the test broker) reports a
//! short end offset, so "at the end" means: librdkafka's end-of-partition event arrived, and
//! librdkafka's own position (the next offset it hands out) is at or past the end offset seen
//! at start. Broker errors are retried by librdkafka and the source carries on where it was. A
//! lost broker is one warning when the consumer loses it and one info line when a broker
//! answers again ([`crate::kafka::outage`]); other errors are logged at most every few seconds.
//!
//! The source keeps no offsets of its own: what was ingested is the pipeline's to know (it
//! hands the offsets back to [`Source::commit`]), and where the consumer stands, librdkafka's.
//!
//! Each owned partition's messages come from a queue of their own, a batch of up to
//! `BATCH` from each partition in turn (`batch.rs`): rdkafka's one-message `poll` read the
//! clock three times per message. The consumer's own queue is still polled first in every
//! poll, for its events and for any message fetched before its partition's queue was split
//! off. `hygroflow bench --brokers` (4M messages, 4 partitions, Tansu on the same 2 cores):
//! 2 workers used 2.97-3.34 CPU s and reached 83% of the consume-only floor with one `poll`
//! per message, 2.11-2.22 CPU s and 95-115% with batches.

mod batch;
mod delivered;
pub(crate) mod resume;

use self::batch::{Batch, PartitionQueue, Record};
use self::delivered::Delivered;
use self::resume::{ResumeGuard, Step};

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use crate::config::KafkaInput;

use super::{Deliver, Origin, Poll, PollError, Progress, RawRecord, Source, SourceError};
use crate::kafka::outage::is_unreachable;
use crate::kafka::redact::CreateError;
use crate::kafka::{partitions, ClientLog};

/// How often a worker looks for new partitions.
const METADATA_EVERY: Duration = Duration::from_secs(5);

/// Watermark requests a worker has in flight at once when it takes on partitions.
const WATERMARKS_AT_ONCE: usize = 16;

/// Metadata checks in a row that must miss the input topic before the job stops.
const MISSING_CHECKS: u32 = 2;
/// A partition resumed from a checkpoint that hears nothing this long, not even its end, is
/// fetched again from earlier (see `kafka/resume.rs`).
pub(crate) const GUARD_SILENCE: Duration = Duration::from_secs(1);
/// How often the same kind of broker error is logged.
const LOG_EVERY: Duration = Duration::from_secs(5);
/// Messages taken from a partition's queue at a time (see `batch.rs`).
const BATCH: usize = 1024;

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    /// Handed to the pipeline.
    Delivered,
    /// Not handed over: before the resume point, or delivered before.
    Skipped,
    /// The partition was sought back (see `resume.rs`): what was fetched after it is stale.
    Sought,
}

/// Which global worker consumes partition `partition`.
pub fn owns_partition(partition: i32, index: usize, peers: usize) -> bool {
    usize::try_from(partition).is_ok_and(|p| p % peers.max(1) == index)
}

/// The partitions of `all` that worker `index` of `peers` owns but has not assigned yet:
/// at start every owned partition, later the ones added to the topic while running.
pub fn partitions_to_add(
    all: &[i32],
    assigned: &BTreeSet<i32>,
    index: usize,
    peers: usize,
) -> Vec<i32> {
    let mut new: Vec<i32> = all
        .iter()
        .copied()
        .filter(|p| owns_partition(*p, index, peers) && !assigned.contains(p))
        .collect();
    new.sort_unstable();
    new.dedup();
    new
}

/// Why the Kafka input cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    /// The consumer could not be created (a bad `-X` property, say).
    #[error("cannot create Kafka consumer: {0}")]
    Create(CreateError),
    /// The topic does not exist.
    #[error("topic {0} does not exist (create it with `hygroflow topic create`)")]
    MissingTopic(String),
    /// Another Kafka call failed for good.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

/// The consumer's context: logs through [`ClientLog`], and reports failed commits.
pub struct SourceContext {
    log: ClientLog,
}

impl rdkafka::ClientContext for SourceContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        rdkafka::ClientContext::log(&self.log, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        rdkafka::ClientContext::error(&self.log, error, reason);
    }
}

impl ConsumerContext for SourceContext {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            warn!(%error, "offset commit failed; the next epoch's commit supersedes it");
        }
    }
}

/// How long a broker may hold a fetch waiting for more data (librdkafka's default: 500 ms).
/// Measured on the test broker (Tansu, 1M messages of 208 bytes in 4 partitions, `run
/// --until-end --rules none` at 1 worker): 12.3 s with the default, the job waiting on
/// fetches (1.2 s of CPU); 1.1 s with 10 ms. `queued.min.messages=1000000` on its own changed
/// nothing (12.1 s), and with 10 ms added nothing (1.2 s). The cost: an idle consumer asks
/// each broker every 10 ms. `-X fetch.wait.max.ms=...` overrides it.
pub const FETCH_WAIT: (&str, &str) = ("fetch.wait.max.ms", "10");

/// How long librdkafka postpones a partition's next fetch once its local queue is past
/// `queued.min.messages` (librdkafka's default: 1000 ms). A consumer that fetches faster than
/// the worker ingests fills that queue, and each time it does the partition stops for a whole
/// second. Measured on the test broker (Tansu, 4 partitions of 208-byte messages, `run
/// --until-end --rules none`, 3 runs each, load 4-6 from other jobs): 1M messages at 2 workers
/// 1.74-1.93 s with the default (130 MB peak RSS: full queues), 0.83-1.03 s with 10 ms; 4M at
/// 1 worker 3.9-8.2 s against 4.0-4.2 s; 4M at 2 workers 4.4-5.5 s against 3.4-3.7 s. 1 ms
/// was no better (3.9-5.3 s, 4M at 1 worker). The cost: a full queue is looked at every 10 ms
/// instead of every second. `-X fetch.queue.backoff.ms=...` overrides it.
pub const FETCH_QUEUE_BACKOFF: (&str, &str) = ("fetch.queue.backoff.ms", "10");

impl KafkaInput {
    /// The consumer configuration: hygroflow's settings, then the user's `-X` on top.
    pub fn consumer_config(&self) -> ClientConfig {
        self.client.config(&[
            // Required for committing offsets, even with manual assignment.
            ("group.id", &self.group),
            // Offsets are committed by hand, only for complete epochs.
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            // Every partition is assigned at an explicit offset (the checkpoint's, or the
            // beginning): one that the broker no longer has is an error, never a silent jump
            // (a topic recreated under the job, see `KafkaSource::fail_if_gone`).
            ("auto.offset.reset", "error"),
            // The end-of-partition event is the reliable "end" for --until-end (see module docs).
            ("enable.partition.eof", "true"),
            // Tansu waits out the whole fetch.wait.max.ms: 12.3 s -> 1.1 s for 1M messages.
            FETCH_WAIT,
            // A full local queue paused a partition for 1 s: 4M at 2 workers 4.4-5.5 s -> 3.4-3.7 s.
            FETCH_QUEUE_BACKOFF,
        ])
    }

    /// Creates a consumer, named `client` in its outage log lines.
    pub fn consumer(&self, client: &str) -> Result<BaseConsumer<SourceContext>, KafkaSourceError> {
        let context = SourceContext {
            log: ClientLog::new(self.client.redactor(), client),
        };
        self.client
            .create(&self.consumer_config(), context)
            .map_err(KafkaSourceError::Create)
    }

    /// The topic's partitions, retrying with backoff while no broker answers.
    /// `stop` ends the wait early (Ctrl-C).
    pub fn wait_for_partitions(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<i32>, KafkaSourceError> {
        let mut backoff = Duration::from_millis(250);
        loop {
            match partitions(consumer.client(), &self.topic, Duration::from_secs(2)) {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => return Err(KafkaSourceError::MissingTopic(self.topic.clone())),
                Err(error) if stop() => return Err(error.into()),
                Err(error) => {
                    warn!(%error, retry_in = ?backoff, "cannot reach the Kafka brokers; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

/// A consumer whose drop runs on a thread of its own.
///
/// rdkafka's `BaseConsumer` drop closes a consumer that has a `group.id` by polling 100 ms at a
/// time until librdkafka says it is closed, and that poll only returns at its timeout: every
/// drop costs 100 ms (measured: 100 ms for the start-up check's consumer, and the last 0.1 s
/// of a 1.04 s `run --until-end` of 1M messages). Nothing waits for the close: offsets are
/// committed synchronously before the end, and a manually assigned consumer has no group
/// membership to leave, so a process that exits first loses nothing. (The output topics'
/// read-back consumers close the same way.)
pub struct Detached<C: ConsumerContext + 'static = SourceContext>(Option<BaseConsumer<C>>);

impl<C: ConsumerContext + 'static> Detached<C> {
    /// Wraps `consumer`.
    pub fn new(consumer: BaseConsumer<C>) -> Self {
        Detached(Some(consumer))
    }
}

impl<C: ConsumerContext + 'static> Deref for Detached<C> {
    type Target = BaseConsumer<C>;

    fn deref(&self) -> &Self::Target {
        match &self.0 {
            Some(consumer) => consumer,
            None => unreachable!("the consumer is only taken out by drop"),
        }
    }
}

impl<C: ConsumerContext + 'static> Drop for Detached<C> {
    fn drop(&mut self) {
        if let Some(consumer) = self.0.take() {
            // If no thread can be started, the closure (and the consumer) drops here.
            let _ = std::thread::Builder::new()
                .name("kafka-close".into())
                .spawn(move || drop(consumer));
        }
    }
}

/// Checks that `topic` exists (a dead-letter or results topic), naming it if not.
pub fn require_topic(
    consumer: &BaseConsumer<SourceContext>,
    topic: &str,
) -> Result<(), KafkaSourceError> {
    match partitions(consumer.client(), topic, Duration::from_secs(10))? {
        Some(_) => Ok(()),
        None => Err(KafkaSourceError::MissingTopic(topic.to_owned())),
    }
}

/// Where a partition stands against its end: for `--until-end`, and in event time.
#[derive(Debug, Clone, Copy)]
struct End {
    /// The end offset the broker reported when the partition was assigned.
    target: i64,
    /// End-of-partition seen, with nothing after it yet.
    eof: bool,
}

/// Whether every partition reported its end with nothing after it, at or past the end offset
/// seen at start; `next_offset` says where a partition's consumer is.
fn reached_end(ends: &BTreeMap<i32, End>, next_offset: impl Fn(i32) -> i64) -> bool {
    ends.iter()
        .all(|(&p, end)| end.eof && next_offset(p) >= end.target)
}

/// The next offset of a partition: librdkafka's `position` once a message has come, before
/// that the checkpointed offset it resumed at, or 0 when it started at the beginning.
fn next_offset(position: Option<Offset>, resumed_at: Option<i64>) -> i64 {
    match position {
        Some(Offset::Offset(o)) => o,
        _ => resumed_at.unwrap_or(0),
    }
}

/// One worker's consumer.
pub struct KafkaSource {
    /// The owned partitions' own queues, read in batches ([`batch`]). Declared before the
    /// consumer: they are dropped first.
    queues: Vec<PartitionQueue>,
    /// The messages of the last batch (destroyed before the next is taken).
    batch: Batch,
    /// The queue a batch was last taken from.
    next_queue: usize,
    /// A message from the consumer's queue, copied out.
    scratch: Vec<u8>,
    consumer: Detached,
    topic: String,
    index: usize,
    peers: usize,
    owned: BTreeSet<i32>,
    /// Each owned partition's end as the broker reported it when it was assigned, and whether
    /// its end event has come since its last record: `--until-end` stops there, and in event
    /// time a partition at or past it has nothing more to read now.
    ends: BTreeMap<i32, End>,
    /// `--until-end`: stop once every partition is at its end.
    until_end: bool,
    last_metadata: Instant,
    /// Metadata checks in a row that did not find the topic.
    missing: u32,
    last_error_log: Option<Instant>,
    /// Resumed partitions whose first message has not arrived yet, with the resume offset:
    /// where the partition stands until librdkafka has a position for it.
    resumed_at: BTreeMap<i32, i64>,
    /// Resumed partitions not yet at their checkpointed offset (see `resume.rs`).
    guards: BTreeMap<i32, ResumeGuard>,
    /// When each guarded partition last had a record, an end or a seek.
    guard_heard: BTreeMap<i32, Instant>,
    /// Each partition's next offset to deliver.
    delivered: Delivered,
    /// The job is stopping: nothing more is consumed.
    stopped: bool,
    /// What happened to the partitions since the pipeline last asked ([`Source::progress`]).
    progress: Vec<Progress>,
}

impl KafkaSource {
    /// Worker `index` of `peers`; `resume` holds checkpointed next offsets.
    pub fn new(
        input: &KafkaInput,
        index: usize,
        peers: usize,
        resume: &BTreeMap<i32, i64>,
        stop: &dyn Fn() -> bool,
    ) -> Result<Self, KafkaSourceError> {
        let consumer = Detached::new(input.consumer(&format!("worker {index}"))?);
        let all = input.wait_for_partitions(&consumer, stop)?;
        let mut source = KafkaSource {
            queues: Vec::new(),
            batch: Batch::default(),
            next_queue: 0,
            scratch: Vec::new(),
            consumer,
            topic: input.topic.clone(),
            index,
            peers,
            owned: BTreeSet::new(),
            ends: BTreeMap::new(),
            until_end: input.until_end,
            last_metadata: Instant::now(),
            missing: 0,
            last_error_log: None,
            resumed_at: BTreeMap::new(),
            guards: BTreeMap::new(),
            guard_heard: BTreeMap::new(),
            delivered: Delivered::default(),
            stopped: false,
            progress: Vec::new(),
        };
        source.assign(&all, resume)?;
        Ok(source)
    }

    /// Assigns the partitions of `all` that this worker owns and does not have yet.
    fn assign(&mut self, all: &[i32], resume: &BTreeMap<i32, i64>) -> KafkaResult<()> {
        let mut tpl = TopicPartitionList::new();
        let mut added = Vec::new();
        let new = partitions_to_add(all, &self.owned, self.index, self.peers);
        let watermarks = self.watermarks(&new)?;
        for (p, (low, high)) in new.into_iter().zip(watermarks) {
            let offset = match resume.get(&p) {
                Some(&o) => Offset::Offset(o),
                None => Offset::Beginning,
            };
            tpl.add_partition_offset(&self.topic, p, offset)?;
            if let Some(&o) = resume.get(&p) {
                self.resumed_at.insert(p, o);
                self.delivered.resume(p, o);
                self.guards
                    .insert(p, ResumeGuard::new(o, low).with_reported_end(high));
                self.guard_heard.insert(p, Instant::now());
            }
            self.ends.insert(
                p,
                End {
                    target: high,
                    eof: false,
                },
            );
            added.push(p);
        }
        if added.is_empty() {
            return Ok(());
        }
        let at_start = self.owned.is_empty();
        if at_start {
            self.consumer.assign(&tpl)?;
        } else {
            self.consumer.incremental_assign(&tpl)?;
        }
        self.progress
            .extend(added.iter().map(|&partition| Progress::Assigned {
                partition,
                at_start,
            }));
        info!(worker = self.index, partitions = ?added, topic = %self.topic, "consuming partitions");
        for &p in &added {
            match PartitionQueue::split(&self.consumer, &self.topic, p) {
                Some(queue) => self.queues.push(queue),
                // Its messages come through the consumer's queue, one at a time.
                None => warn!(
                    worker = self.index,
                    partition = p,
                    "cannot read this partition in batches"
                ),
            }
        }
        self.owned.extend(added);
        Ok(())
    }

    /// The low and high watermarks of `partitions`, in their order: the requests go out
    /// [`WATERMARKS_AT_ONCE`] at a time, so that a start with many partitions on a broker
    /// far away waits a few round trips, not one per partition.
    fn watermarks(&self, partitions: &[i32]) -> KafkaResult<Vec<(i64, i64)>> {
        let (consumer, topic) = (&*self.consumer, self.topic.as_str());
        let mut found = Vec::with_capacity(partitions.len());
        for chunk in partitions.chunks(WATERMARKS_AT_ONCE) {
            std::thread::scope(|scope| {
                let asks: Vec<_> = chunk
                    .iter()
                    .map(|&p| {
                        scope.spawn(move || {
                            consumer.fetch_watermarks(topic, p, Duration::from_secs(10))
                        })
                    })
                    .collect();
                for ask in asks {
                    found.push(
                        ask.join()
                            .unwrap_or(Err(KafkaError::MetadataFetch(RDKafkaErrorCode::Fail)))?,
                    );
                }
                Ok::<_, KafkaError>(())
            })?;
        }
        Ok(found)
    }

    /// Whether `--until-end` is done: see [`reached_end`].
    fn at_end(&mut self) -> bool {
        let ends = &self.ends;
        if !self.until_end {
            return false;
        }
        if !ends.values().all(|end| end.eof) {
            return false;
        }
        match self.consumer.position() {
            Ok(positions) => reached_end(ends, |p| self.next_offset(&positions, p)),
            Err(error) => {
                self.log_error(&error);
                false
            }
        }
    }

    /// The next offset of `partition` given librdkafka's `positions` (see [`next_offset`]).
    fn next_offset(&self, positions: &TopicPartitionList, partition: i32) -> i64 {
        next_offset(
            positions
                .find_partition(&self.topic, partition)
                .map(|e| e.offset()),
            self.resumed_at.get(&partition).copied(),
        )
    }

    /// Hands one fetched record to `deliver`, unless the resume guard or the delivered
    /// offsets say otherwise.
    fn record(
        &mut self,
        (partition, offset, bytes): (i32, i64, &[u8]),
        deliver: &mut Deliver<'_>,
    ) -> Result<Handled, PollError> {
        if let Some(guard) = self.guards.get_mut(&partition) {
            self.guard_heard.insert(partition, Instant::now());
            match guard.on_record(offset) {
                Step::Deliver => {
                    if guard.steps_back() > 0 {
                        info!(
                            worker = self.index,
                            partition,
                            resumed = guard.wanted(),
                            steps_back = guard.steps_back(),
                            "resume guard: the partition resumed exactly at its checkpointed offset"
                        );
                    }
                    self.guards.remove(&partition);
                    self.guard_heard.remove(&partition);
                }
                Step::Skip => return Ok(Handled::Skipped),
                Step::Seek(from) => {
                    warn!(
                        worker = self.index,
                        partition,
                        resumed = guard.wanted(),
                        first = offset,
                        fetch_from = from,
                        "resume guard: the broker's first record is past the checkpointed offset (a fetch from inside a record batch?); fetching again from an earlier offset"
                    );
                    let offset = Offset::Offset(from);
                    self.consumer
                        .seek(&self.topic, partition, offset, Duration::from_secs(10))
                        .map_err(SourceError::Kafka)?;
                    return Ok(Handled::Sought);
                }
                Step::GiveUp(first) => {
                    return Err(SourceError::RecordsGone {
                        topic: self.topic.clone(),
                        partition,
                        wanted: guard.wanted(),
                        first,
                    }
                    .into());
                }
            }
        }
        self.resumed_at.remove(&partition);
        if !self.delivered.is_new(self.index, partition, offset) {
            return Ok(Handled::Skipped);
        }
        deliver(RawRecord {
            bytes,
            len: bytes.len(),
            origin: Origin::Kafka { partition, offset },
        })
        .map_err(PollError::Deliver)?;
        if let Some(end) = self.ends.get_mut(&partition) {
            end.eof = false;
        }
        Ok(Handled::Delivered)
    }

    /// A guarded partition that has heard nothing (no record, no end) for [`GUARD_SILENCE`]
    /// was resumed inside its last batch on a broker that answers with the next one: it
    /// steps back (see `resume.rs`).
    fn step_back_silent_guards(&mut self) -> Result<(), PollError> {
        if self.guards.is_empty() {
            return Ok(());
        }
        let silent: Vec<i32> = self
            .guard_heard
            .iter()
            .filter(|(p, at)| {
                at.elapsed() >= GUARD_SILENCE
                    && self.guards.contains_key(p)
                    && !self.ends.get(p).is_some_and(|e| e.eof)
            })
            .map(|(p, _)| *p)
            .collect();
        for partition in silent {
            self.guard_heard.insert(partition, Instant::now());
            let Some(guard) = self.guards.get_mut(&partition) else {
                continue;
            };
            let Some(from) = guard.on_silence() else {
                continue;
            };
            warn!(
                worker = self.index,
                partition,
                resumed = guard.wanted(),
                fetch_from = from,
                "resume guard: nothing came from the checkpointed offset, nor the partition's end (a fetch from inside its last batch?); fetching again from an earlier offset"
            );
            self.consumer
                .seek(
                    &self.topic,
                    partition,
                    Offset::Offset(from),
                    Duration::from_secs(10),
                )
                .map_err(SourceError::Kafka)?;
        }
        Ok(())
    }

    /// librdkafka says `partition` is at its end as it stands.
    fn partition_eof(&mut self, partition: i32) {
        debug!(worker = self.index, partition, "end of partition");
        let Some(end) = self.ends.get_mut(&partition) else {
            return;
        };
        end.eof = true;
        let end = end.target;
        // Tansu's end event can come before the end it reported (see `reached_end`): only a
        // position at or past that end is at the end.
        let next = match self.consumer.position() {
            Ok(positions) => self.next_offset(&positions, partition),
            Err(error) => {
                self.log_error(&error);
                return;
            }
        };
        if next >= end {
            self.progress.push(Progress::CaughtUp(partition));
            if self.until_end {
                self.progress.push(Progress::Finished(partition));
            }
        }
    }

    /// Stops on an error that says the records at the consumer's position are gone: the
    /// topic was recreated (its offsets begin again) or emptied. Going on from another offset
    /// would skip records or count them twice; the consumer is configured to say so
    /// (`auto.offset.reset=error`) rather than jump.
    fn fail_if_gone(&self, partition: Option<i32>, error: &KafkaError) -> Result<(), SourceError> {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset) {
            return Err(SourceError::OffsetGone {
                topic: self.topic.clone(),
                partition,
            });
        }
        Ok(())
    }

    fn log_error(&mut self, error: &KafkaError) {
        // A lost broker is logged once per outage by the client's context.
        if is_unreachable(error) || self.consumer.context().log.is_down() {
            debug!(worker = self.index, %error, "kafka consumer error during an outage");
            return;
        }
        if self.last_error_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            warn!(worker = self.index, %error, "kafka consumer error; retrying");
            self.last_error_log = Some(Instant::now());
        }
    }
}

impl Source for KafkaSource {
    fn poll(&mut self, budget: usize, deliver: &mut Deliver<'_>) -> Result<Poll, PollError> {
        if self.stopped {
            // Fetched but undelivered messages were never ingested: their offsets are not
            // committed, and a restart reads them again.
            return Ok(Poll::Finished);
        }
        self.step_back_silent_guards()?;
        // A metadata reply ends an outage too (a live job at the end of its topic fetches no
        // record), but only once the errors queued before it are served: see below.
        let mut metadata_answered = false;
        if !self.until_end && self.last_metadata.elapsed() >= METADATA_EVERY {
            self.last_metadata = Instant::now();
            match partitions(
                self.consumer.client(),
                &self.topic,
                Duration::from_millis(500),
            ) {
                Ok(Some(all)) => {
                    metadata_answered = true;
                    self.missing = 0;
                    self.assign(&all, &BTreeMap::new())
                        .map_err(SourceError::Kafka)?
                }
                // Deleted under the job, or a broker came back without it: nothing to
                // wait for that would give the same topic back. Twice in a row, as a
                // cluster's metadata can miss a topic for a moment after a failover.
                Ok(None) => {
                    metadata_answered = true;
                    self.missing += 1;
                    if self.missing >= MISSING_CHECKS {
                        return Err(SourceError::TopicGone {
                            topic: self.topic.clone(),
                        }
                        .into());
                    }
                    warn!(worker = self.index, topic = %self.topic, "kafka topic missing from the broker's metadata; stopping if it is still missing at the next check");
                }
                Err(error) => self.log_error(&error),
            }
        }
        // The consumer's queue first: its events, and any message fetched before its
        // partition's queue was split off, which comes before everything on that queue.
        let mut delivered = 0;
        while delivered < budget {
            match self.consumer.poll(Duration::ZERO) {
                Some(Ok(message)) => {
                    // Fetched after any error polled before it (and before any polled after:
                    // ended here, not once the loop is done).
                    self.consumer.context().log.answered();
                    let (partition, offset) = (message.partition(), message.offset());
                    // Copied out of the message, which borrows the consumer: this path only
                    // carries what was fetched before its partition's queue was split off.
                    let mut bytes = std::mem::take(&mut self.scratch);
                    bytes.clear();
                    bytes.extend_from_slice(message.payload().unwrap_or_default());
                    drop(message);
                    let handled = self.record((partition, offset, &bytes), deliver);
                    self.scratch = bytes;
                    if handled? == Handled::Delivered {
                        delivered += 1;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    self.consumer.context().log.answered();
                    self.partition_eof(partition);
                }
                Some(Err(error)) => {
                    self.fail_if_gone(None, &error)?;
                    self.log_error(&error);
                    break;
                }
                None => {
                    // Nothing queued from before the metadata reply is left.
                    if metadata_answered {
                        self.consumer.context().log.answered();
                    }
                    break;
                }
            }
        }
        // Then the partitions' own queues, a batch from each in turn (the first one after the
        // one that came first last time): a partition with a long queue does not hold the
        // others back, in event time their readings interleave as they were fetched.
        let mut batch = std::mem::take(&mut self.batch);
        let mut empty_in_a_row = 0;
        while delivered < budget && empty_in_a_row < self.queues.len() {
            self.next_queue = (self.next_queue + 1) % self.queues.len();
            let queue = &self.queues[self.next_queue];
            if queue.take(&mut batch, (budget - delivered).min(BATCH)) == 0 {
                empty_in_a_row += 1;
                continue;
            }
            empty_in_a_row = 0;
            self.consumer.context().log.answered();
            for record in batch.records() {
                match record {
                    Record::Message {
                        partition,
                        offset,
                        payload,
                    } => match self.record((partition, offset, payload), deliver)? {
                        Handled::Delivered => delivered += 1,
                        Handled::Skipped => {}
                        // The rest of the batch is from before the seek.
                        Handled::Sought => break,
                    },
                    Record::PartitionEof(partition) => self.partition_eof(partition),
                    Record::Error { partition, error } => {
                        self.fail_if_gone(Some(partition), &error)?;
                        self.log_error(&error);
                        break;
                    }
                }
            }
            batch.clear();
        }
        self.batch = batch;
        if delivered > 0 {
            Ok(Poll::Busy)
        } else if self.at_end() {
            Ok(Poll::Finished)
        } else {
            Ok(Poll::Idle)
        }
    }

    fn stop(&mut self) {
        self.stopped = true;
    }

    fn progress(&mut self, report: &mut dyn FnMut(Progress)) {
        for progress in self.progress.drain(..) {
            report(progress);
        }
    }

    /// Commits `offsets` (next offsets per partition) to the consumer group.
    fn commit(&mut self, offsets: &BTreeMap<i32, i64>, wait: bool) -> Result<(), SourceError> {
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in offsets.iter().filter(|(p, _)| self.owned.contains(p)) {
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o))
                .map_err(SourceError::Kafka)?;
        }
        if tpl.count() > 0 {
            // Async while running: the outcome arrives in commit_callback, a failed commit is
            // superseded by the next epoch's, and restarts resume from checkpoints, not
            // commits. Sync at the end, so the final offsets are in before the process exits.
            let mode = if wait {
                CommitMode::Sync
            } else {
                CommitMode::Async
            };
            self.consumer
                .commit(&tpl, mode)
                .map_err(SourceError::Kafka)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_has_exactly_one_owner() {
        for peers in 1..=7 {
            for p in 0..40 {
                let owners: Vec<usize> = (0..peers)
                    .filter(|&w| owns_partition(p, w, peers))
                    .collect();
                assert_eq!(owners, vec![p as usize % peers]);
            }
        }
        assert!(
            !owns_partition(-1, 0, 1),
            "no one owns an invalid partition"
        );
    }

    #[test]
    fn partitions_added_later_go_to_their_owner_once() {
        let mut assigned = BTreeSet::new();
        let first = partitions_to_add(&[0, 1, 2, 3], &assigned, 1, 3);
        assert_eq!(first, vec![1]);
        assigned.extend(first);
        // The topic grows from 4 to 8 partitions while running.
        assert_eq!(
            partitions_to_add(&[0, 1, 2, 3, 4, 5, 6, 7], &assigned, 1, 3),
            vec![4, 7]
        );
        assigned.extend([4, 7]);
        assert!(partitions_to_add(&[0, 1, 2, 3, 4, 5, 6, 7], &assigned, 1, 3).is_empty());
    }

    #[test]
    fn until_end_needs_every_end_event_at_or_past_the_end_seen_at_start() {
        let end = |target, eof| End { target, eof };
        let ends = BTreeMap::from([(0, end(10, true)), (1, end(0, true))]);
        assert!(reached_end(&ends, |p| if p == 0 { 10 } else { 0 }));
        // Tansu's end-of-partition event can come before the reported end: not done yet.
        assert!(!reached_end(&ends, |p| if p == 0 { 9 } else { 0 }));
        let waiting = BTreeMap::from([(0, end(10, true)), (1, end(0, false))]);
        assert!(!reached_end(&waiting, |_| 10));
        assert!(reached_end(&BTreeMap::new(), |_| 0), "nothing owned");
    }

    #[test]
    fn the_next_offset_is_librdkafkas_position_then_the_resume_point() {
        assert_eq!(next_offset(Some(Offset::Offset(42)), Some(7)), 42);
        assert_eq!(next_offset(Some(Offset::Invalid), Some(7)), 7);
        assert_eq!(next_offset(None, Some(7)), 7);
        assert_eq!(next_offset(Some(Offset::Invalid), None), 0);
    }

    #[test]
    fn partitions_spread_evenly_and_extra_workers_own_nothing() {
        let owned = |w| (0..4).filter(|&p| owns_partition(p, w, 6)).count();
        assert_eq!(
            (0..6).map(owned).collect::<Vec<_>>(),
            vec![1, 1, 1, 1, 0, 0]
        );
        let owned = |w| (0..12).filter(|&p| owns_partition(p, w, 4)).count();
        assert!((0..4).all(|w| owned(w) == 3));
    }
}
