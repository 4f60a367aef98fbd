//! Reading an output topic back to its end: which alert ids `--alerts-topic` already holds,
//! which rejected messages the dead-letter topic already holds, and which epochs' reports
//! `--results-topic` already holds.
//!
//! At start, the job reads every partition of the topic from its resume offset (the one the
//! checkpoint recorded, see `tail.rs`; without one, from the beginning) to the
//! end-of-partition event (not to the reported end offset, which the test broker gets wrong
//! for multi-record batches; see the notes on the broker), so that what a killed run published
//! after its last checkpoint is not published again. A resume offset inside a record batch is
//! read through the resume guard (`source/kafka/resume.rs`): a broker that answers with the
//! next batch is asked again from earlier, so nothing after the offset is missed.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hygroflow_dataflows::Epoch;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use super::redact::CreateError;
use super::tail::{resume_offsets, Ends, Known, ResumeOffsets};
use super::{partitions, ClientLog, ClientSettings};
use crate::source::kafka::resume::{ResumeGuard, Step};
use crate::source::kafka::{Detached, GUARD_SILENCE};

/// How long reading the topic back may take before the run gives up.
const READ_BACK_LIMIT: Duration = Duration::from_secs(60);

/// Why an output topic could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    /// The consumer could not be created.
    #[error("cannot create a Kafka consumer to read back {flag} {topic}: {error}")]
    Create {
        /// The flag naming the topic.
        flag: &'static str,
        /// The topic.
        topic: String,
        /// Why.
        error: CreateError,
    },
    /// The topic does not exist.
    #[error("{flag} {topic} does not exist (create it with `hygroflow topic create`)")]
    Missing {
        /// The flag naming the topic.
        flag: &'static str,
        /// The topic.
        topic: String,
    },
    /// Kafka failed.
    #[error("cannot read back {flag} {topic}: {error}")]
    Kafka {
        /// The flag naming the topic.
        flag: &'static str,
        /// The topic.
        topic: String,
        /// The error.
        error: KafkaError,
    },
    /// The end of every partition was not reached in time.
    #[error("reading back {flag} {topic} did not reach its end within 60 s")]
    Timeout {
        /// The flag naming the topic.
        flag: &'static str,
        /// The topic.
        topic: String,
    },
    /// The thread reading the topic back could not start, or ended without an answer.
    #[error("reading back {flag} {topic} ended without an answer")]
    Unanswered {
        /// The flag naming the topic.
        flag: &'static str,
        /// The topic.
        topic: String,
    },
}

/// What an output topic held from its resume offsets on: the keys `K` this run must not
/// publish again, and where they lie by the position `P` that decides whether a later
/// restart may publish them again (`tail.rs`).
#[derive(Debug)]
pub struct Held<K, P> {
    /// The keys found.
    pub keys: HashSet<K>,
    /// Where they lie.
    pub known: Known<P>,
}

impl<K: std::hash::Hash + Eq> Held<K, Epoch> {
    /// The tail a sink keeps of it, resumed after epoch `reported` had been reported.
    pub fn into_tail(self, reported: Option<Epoch>, ends: Ends) -> super::tail::EpochTail<K> {
        super::tail::EpochTail::new((self.keys, self.known), reported, ends)
    }
}

impl<K, P> Default for Held<K, P> {
    fn default() -> Self {
        Held {
            keys: HashSet::new(),
            known: Known::default(),
        }
    }
}

/// The dead letters found: `(source partition, source offset)`, by the same.
pub type Letters = Held<(i32, i64), (i32, i64)>;

/// What [`SentLetters`] waits for.
type Answer = Arc<OnceLock<Result<Letters, Arc<ReadBackError>>>>;

/// The dead letters a killed run already sent ([`dead_letters_sent`]), read back on a thread
/// of its own while the workers start: before, the read-back came first, and took 17-121 ms
/// of every Kafka run's start (`run --until-end` of 1M messages at 2 workers takes about
/// 0.5 s). Only a rejected message needs it: a worker's first one waits for the answer, so
/// nothing is sent to the dead-letter topic before it is read back, as before. A read-back
/// that fails is logged at once and stops the job at the first rejected message.
///
/// With `--state-dir` the read-back starts from the resume offsets of the checkpoint the
/// process resumes from, which its first worker knows once it has loaded it
/// ([`LetterStarter`]).
#[derive(Clone)]
pub struct SentLetters {
    answer: Answer,
    ends: Ends,
}

/// Starts the read-back of a [`SentLetters`] once the resume offsets are known; dropped
/// without starting (its worker failed), it answers every waiter with an error.
pub struct LetterStarter {
    answer: Answer,
    ends: Ends,
    settings: ClientSettings,
    topic: String,
    source: String,
}

impl SentLetters {
    /// Starts reading back `topic`, the dead-letter topic of `source`, from its beginning.
    pub fn read_back(settings: &ClientSettings, topic: &str, source: &str) -> Self {
        let (sent, starter) = Self::after_restore(settings, topic, source);
        starter.start(ResumeOffsets::new());
        sent
    }

    /// The read-back of `topic`, the dead-letter topic of `source`, to start with `starter`.
    pub fn after_restore(
        settings: &ClientSettings,
        topic: &str,
        source: &str,
    ) -> (Self, LetterStarter) {
        let (answer, ends) = (Answer::default(), Ends::default());
        let starter = LetterStarter {
            answer: Arc::clone(&answer),
            ends: ends.clone(),
            settings: settings.clone(),
            topic: topic.to_owned(),
            source: source.to_owned(),
        };
        (SentLetters { answer, ends }, starter)
    }

    /// The highest offsets known taken in the topic: by the read-back at start, and by every
    /// dead-letter producer of the process that shares them ([`Publisher::sharing`]).
    ///
    /// [`Publisher::sharing`]: super::publisher::Publisher::sharing
    pub fn ends(&self) -> Ends {
        self.ends.clone()
    }

    /// The dead letters already sent, once read back (this waits for it).
    pub fn wait(&self) -> Result<&Letters, Arc<ReadBackError>> {
        self.answer.wait().as_ref().map_err(Arc::clone)
    }

    /// Where a restart from a worker's checkpoint cut now, with the next offsets `offsets` of
    /// its source partitions, starts reading the dead letters back, `own` being the ends its
    /// own producer has reached (waits for the read-back; `None` when it failed: from the
    /// beginning). The ends are also those every producer of the process shared after its
    /// polls ([`SentLetters::ends`]): anything this worker sends after the cut lies past
    /// them, and a worker that has sent nothing yet is not held at the start of the run.
    /// They advance by whole record batches (a batch's delivery reports are served in one
    /// poll), so a read-back from them never starts inside one.
    pub fn resume_offsets(
        &self,
        (offsets, owns): (&BTreeMap<i32, i64>, &dyn Fn(i32) -> bool),
        own: &Ends,
    ) -> Option<ResumeOffsets> {
        let letters = self.wait().ok()?;
        let mut first = ResumeOffsets::new();
        // Each source partition this worker reads: a partition it has not read from yet (not
        // in `offsets`) is read from its start, so every letter of it found counts.
        let partitions: std::collections::BTreeSet<i32> = letters
            .known
            .partitions()
            .filter(|p| owns(*p))
            .chain(offsets.keys().copied())
            .collect();
        for partition in partitions {
            let next = offsets.get(&partition).copied().unwrap_or(i64::MIN);
            let found = letters
                .known
                .first_in((partition, next)..=(partition, i64::MAX));
            first = resume_offsets(&first, &found);
        }
        let mut ends = self.ends.now();
        for (partition, end) in own.now() {
            let at = ends.entry(partition).or_insert(end);
            *at = (*at).max(end);
        }
        Some(resume_offsets(&ends, &first))
    }
}

impl LetterStarter {
    /// Starts reading back from `from`, on a thread of its own.
    pub fn start(self, from: ResumeOffsets) {
        let (settings, topic, source) = (
            self.settings.clone(),
            self.topic.clone(),
            self.source.clone(),
        );
        let ends = self.ends.clone();
        // If no thread starts, the starter drops with the closure and answers.
        let read = move || {
            let result = dead_letters_sent(&settings, (&topic, &from, &ends), &source);
            match &result {
                Ok(sent) => {
                    info!(%topic, letters = sent.keys.len(), from = ?from, "dead-letter topic read back")
                }
                Err(error) => {
                    warn!(%error, "the first rejected message will stop the job: dead letters cannot be sent exactly once")
                }
            }
            let _ = self.answer.set(result.map_err(Arc::new));
        };
        let _ = std::thread::Builder::new()
            .name("dlq-read-back".into())
            .spawn(read);
    }
}

impl Drop for LetterStarter {
    fn drop(&mut self) {
        // A no-op once answered: only a starter that never ran answers here.
        let _ = self.answer.set(Err(Arc::new(ReadBackError::Unanswered {
            flag: "--dlq-topic",
            topic: std::mem::take(&mut self.topic),
        })));
    }
}

struct ReadBackContext {
    log: ClientLog,
}

super::log_through!(ReadBackContext, log);

impl rdkafka::consumer::ConsumerContext for ReadBackContext {}

/// What to read back: the topic, where to start each partition, and the ends to advance to
/// where the read-back reached.
pub type ReadFrom<'a> = (&'a str, &'a ResumeOffsets, &'a Ends);

/// The epoch of an alert line's id (`.../EPOCH`).
fn epoch_of_id(id: &str) -> Option<Epoch> {
    id.rsplit('/').next()?.parse().ok()
}

/// The `"id"` of every record in `topic` from its resume offsets (records that are not alert
/// lines are skipped), by their epochs.
pub fn published_ids(
    settings: &ClientSettings,
    (topic, from, ends): ReadFrom<'_>,
) -> Result<Held<String, Epoch>, ReadBackError> {
    let mut held = Held::default();
    read_back(
        settings,
        ("--alerts-topic", topic),
        from,
        ends,
        |message, start| {
            let id = message
                .payload()
                .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned));
            if let Some(id) = id {
                if let Some(epoch) = epoch_of_id(&id) {
                    held.known.found(epoch, message.partition(), start);
                }
                held.keys.insert(id);
            }
        },
    )?;
    Ok(held)
}

/// The `(partition, offset)` of every message of `source` that the dead-letter topic `topic`
/// holds from its resume offsets, from their `hygroflow.source.*` headers: the rejects a
/// killed run sent after its last checkpoint, which the restarted run must not send again. A
/// set, not the highest offset per partition: a dead letter that failed and was sent again
/// may land after later ones, so the highest offset does not prove that the ones before it
/// are there.
pub fn dead_letters_sent(
    settings: &ClientSettings,
    (topic, from, ends): ReadFrom<'_>,
    source: &str,
) -> Result<Letters, ReadBackError> {
    let mut held = Letters::default();
    read_back(
        settings,
        ("--dlq-topic", topic),
        from,
        ends,
        |message, start| {
            let Some(headers) = message.headers() else {
                return;
            };
            let header = |key: &str| {
                headers
                    .iter()
                    .find(|h| h.key == key)
                    .and_then(|h| h.value)
                    .and_then(|v| std::str::from_utf8(v).ok())
            };
            if header("hygroflow.source.topic") != Some(source) {
                return;
            }
            let partition = header("hygroflow.source.partition").and_then(|p| p.parse().ok());
            let offset = header("hygroflow.source.offset").and_then(|o| o.parse().ok());
            if let (Some(partition), Some(offset)) = (partition, offset) {
                held.keys.insert((partition, offset));
                held.known
                    .found((partition, offset), message.partition(), start);
            }
        },
    )?;
    Ok(held)
}

/// The epochs whose reports `--results-topic` `topic` holds from its resume offsets (each
/// report's key is its epoch): a restarted run does not publish them again.
pub fn published_epochs(
    settings: &ClientSettings,
    (topic, from, ends): ReadFrom<'_>,
) -> Result<Held<Epoch, Epoch>, ReadBackError> {
    let mut held = Held::default();
    read_back(
        settings,
        ("--results-topic", topic),
        from,
        ends,
        |message, start| {
            let epoch = message
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(|k| k.parse::<u64>().ok());
            if let Some(epoch) = epoch {
                held.known.found(epoch, message.partition(), start);
                held.keys.insert(epoch);
            }
        },
    )?;
    Ok(held)
}

/// One partition being read back.
struct Reading {
    /// Where its reading started (earlier, once the guard has stepped back): where a batch
    /// begins, so a later restart that must read what was found here reads from there.
    from: i64,
    /// After the last record read.
    next: i64,
    /// The guard of a partition read from a resume offset, until it has found its place.
    guard: Option<ResumeGuard>,
    /// When it last heard anything.
    heard: Instant,
}

/// Reads every partition of `topic` (named by `flag`) from its offset in `from` (absent: its
/// beginning) to its end-of-partition event, handing each message to `visit` with the offset
/// its partition was read from, and advances `ends` to where each partition ended.
fn read_back(
    settings: &ClientSettings,
    (flag, topic): (&'static str, &str),
    from: &ResumeOffsets,
    ends: &Ends,
    mut visit: impl FnMut(&BorrowedMessage<'_>, i64),
) -> Result<(), ReadBackError> {
    let kafka = |error| ReadBackError::Kafka {
        flag,
        topic: topic.to_owned(),
        error,
    };
    let config = settings.config(&[
        // Read only: no group offsets are kept or committed.
        ("group.id", "hygroflow-readback"),
        ("enable.auto.commit", "false"),
        // The end-of-partition event is the reliable end (see the module docs).
        ("enable.partition.eof", "true"),
        // Tansu holds each fetch for the whole fetch.wait.max.ms (librdkafka's default: 500 ms)
        // when it has little to send: reading back a small dead-letter topic cost 1 s of every
        // start (1M messages at 1 worker: 2.0 s -> 1.0 s with 10 ms).
        crate::source::kafka::FETCH_WAIT,
    ]);
    let context = ReadBackContext {
        log: ClientLog::new(settings.redactor(), format!("{flag} read-back")),
    };
    // Closed on a thread of its own: librdkafka's close of a consumer with a group id waits
    // 100 ms, which came before any worker started.
    let consumer: Detached<ReadBackContext> =
        Detached::new(settings.create(&config, context).map_err(|error| {
            ReadBackError::Create {
                flag,
                topic: topic.to_owned(),
                error,
            }
        })?);
    let ids = partitions(consumer.client(), topic, Duration::from_secs(10))
        .map_err(kafka)?
        .ok_or_else(|| ReadBackError::Missing {
            flag,
            topic: topic.to_owned(),
        })?;
    let mut assignment = TopicPartitionList::new();
    let mut open: BTreeMap<i32, Reading> = BTreeMap::new();
    for id in ids {
        let reading =
            start_reading(&consumer, (topic, id), from.get(&id).copied()).map_err(kafka)?;
        assignment
            .add_partition_offset(topic, id, Offset::Offset(reading.from))
            .map_err(kafka)?;
        open.insert(id, reading);
    }
    consumer.assign(&assignment).map_err(kafka)?;
    let deadline = Instant::now() + READ_BACK_LIMIT;
    while !open.is_empty() {
        if Instant::now() >= deadline {
            return Err(ReadBackError::Timeout {
                flag,
                topic: topic.to_owned(),
            });
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                // Where the partition ends: its position now, else where its reading began.
                let position = consumer
                    .position()
                    .ok()
                    .and_then(|p| p.find_partition(topic, partition)?.offset().to_raw())
                    .filter(|o| *o >= 0);
                if let Some(reading) = open.remove(&partition) {
                    ends.reached(
                        partition,
                        position.unwrap_or(reading.next.max(reading.from)),
                    );
                }
            }
            Some(Err(error)) => return Err(kafka(error)),
            Some(Ok(message)) => {
                let (partition, offset) = (message.partition(), message.offset());
                if let Some(reading) = open.get_mut(&partition) {
                    reading.heard = Instant::now();
                    if let Some(guard) = &mut reading.guard {
                        match guard.on_record(offset) {
                            Step::Deliver | Step::Skip | Step::GiveUp(_) => reading.guard = None,
                            Step::Seek(back) => {
                                seek(&consumer, (topic, partition), back).map_err(kafka)?;
                                reading.from = back;
                                continue;
                            }
                        }
                    }
                    reading.next = reading.next.max(offset.saturating_add(1));
                    visit(&message, reading.from);
                }
            }
        }
        // A resume offset inside the last batch: no record and no end from such a broker.
        for (&partition, reading) in &mut open {
            if reading.heard.elapsed() < GUARD_SILENCE {
                continue;
            }
            reading.heard = Instant::now();
            if let Some(back) = reading.guard.as_mut().and_then(ResumeGuard::on_silence) {
                seek(&consumer, (topic, partition), back).map_err(kafka)?;
                reading.from = back;
            }
        }
    }
    Ok(())
}

/// Where to start reading `partition` back, resumed at `resume` (`None`: its beginning).
fn start_reading<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    (topic, partition): (&str, i32),
    resume: Option<i64>,
) -> Result<Reading, KafkaError> {
    let (low, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    let heard = Instant::now();
    Ok(match resume {
        Some(wanted) if wanted > low => Reading {
            from: wanted,
            next: wanted,
            guard: Some(ResumeGuard::new(wanted, low).with_reported_end(high)),
            heard,
        },
        _ => Reading {
            from: low,
            next: low,
            guard: None,
            heard,
        },
    })
}

/// Fetches `partition` again from `offset`.
fn seek<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    (topic, partition): (&str, i32),
    offset: i64,
) -> Result<(), KafkaError> {
    consumer.seek(
        topic,
        partition,
        Offset::Offset(offset),
        Duration::from_secs(10),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::parse_property;

    #[test]
    fn an_alert_ids_epoch_is_its_last_part() {
        assert_eq!(epoch_of_id("MRI12/high//140"), Some(140));
        assert_eq!(epoch_of_id("rules/0badf00d/7"), Some(7));
        assert_eq!(epoch_of_id("no epoch"), None);
    }

    #[test]
    fn a_starter_that_never_starts_answers_every_waiter() {
        let (sent, starter) =
            SentLetters::after_restore(&ClientSettings::new("127.0.0.1:1", &[]), "d", "in");
        drop(starter);
        let error = sent.wait().expect_err("never read back");
        assert!(
            matches!(*error, ReadBackError::Unanswered { .. }),
            "{error}"
        );
        let all = |_| true;
        assert_eq!(
            sent.resume_offsets((&BTreeMap::from([(0, 5)]), &all), &Ends::default()),
            None
        );
    }

    #[test]
    fn a_cut_is_held_by_the_letters_found_past_it_in_the_partitions_its_worker_reads() {
        let (sent, _starter) =
            SentLetters::after_restore(&ClientSettings::new("127.0.0.1:1", &[]), "d", "in");
        let mut letters = Letters::default();
        for (source, start) in [((1, 10), 100), ((1, 20), 100), ((3, 5), 40), ((2, 9), 7)] {
            letters.keys.insert(source);
            letters.known.found(source, 0, start);
        }
        assert!(sent.answer.set(Ok(letters)).is_ok());
        sent.ends().reached(0, 500);
        // Worker 1 of 2 reads partitions 1 and 3; it has not read from 3 yet.
        let odd = |p: i32| p % 2 == 1;
        let at = |offsets: &[(i32, i64)]| {
            let offsets = offsets.iter().copied().collect();
            sent.resume_offsets((&offsets, &odd), &Ends::default())
        };
        assert_eq!(at(&[(1, 15)]), Some(BTreeMap::from([(0, 40)])));
        assert_eq!(at(&[(1, 15), (3, 6)]), Some(BTreeMap::from([(0, 100)])));
        assert_eq!(at(&[(1, 25), (3, 6)]), Some(BTreeMap::from([(0, 500)])));
        // Partition 2's letter is its reader's (worker 0) to hold.
        assert_eq!(
            at(&[(1, 25), (3, 6), (5, 0)]),
            Some(BTreeMap::from([(0, 500)]))
        );
    }

    #[test]
    fn a_read_back_that_fails_answers_every_waiter_with_its_error() {
        // librdkafka refuses the property when the consumer is created: no broker is needed.
        let bad = parse_property("no.such.property=1").expect("valid syntax");
        let sent = SentLetters::read_back(&ClientSettings::new("127.0.0.1:1", &[bad]), "d", "in");
        let (a, b) = (sent.clone(), sent);
        let waiter =
            std::thread::spawn(move || a.wait().map(|l| l.keys.len()).map_err(|e| e.to_string()));
        let error = b.wait().expect_err("the consumer cannot be created");
        assert!(
            matches!(
                *error,
                ReadBackError::Create {
                    flag: "--dlq-topic",
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(waiter.join().expect("no panic"), Err(error.to_string()));
    }
}
