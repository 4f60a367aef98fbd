//! Reading an output topic back to its end: which alert ids `--alerts-topic` already holds,
//! which rejected messages the dead-letter topic already holds, and which epochs' reports
//! `--results-topic` already holds.
//!
//! At start, the job reads every partition of the topic from the beginning to the
//! end-of-partition event (not to the reported end offset, which the test broker gets wrong
//! for multi-record batches; see the notes on the broker), so that what a killed run published
//! after its last checkpoint is not published again.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use super::redact::CreateError;
use super::{partitions, ClientLog, ClientSettings};
use crate::source::kafka::Detached;

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

/// What [`SentLetters`] waits for.
type Answer = Arc<OnceLock<Result<HashSet<(i32, i64)>, Arc<ReadBackError>>>>;

/// The dead letters a killed run already sent ([`dead_letters_sent`]), read back on a thread
/// of its own while the workers start: before, the read-back came first, and took 17-121 ms
/// of every Kafka run's start (`run --until-end` of 1M messages at 2 workers takes about
/// 0.5 s). Only a rejected message needs it: a worker's first one waits for the answer, so
/// nothing is sent to the dead-letter topic before it is read back, as before. A read-back
/// that fails is logged at once and stops the job at the first rejected message.
#[derive(Clone)]
pub struct SentLetters(Answer);

impl SentLetters {
    /// Starts reading back `topic`, the dead-letter topic of `source`.
    pub fn read_back(settings: &ClientSettings, topic: &str, source: &str) -> Self {
        /// Answers for a thread that could not start or panicked (a no-op once answered), so
        /// that no worker waits for ever.
        struct Guard(Answer, String);
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = self.0.set(Err(Arc::new(ReadBackError::Unanswered {
                    flag: "--dlq-topic",
                    topic: std::mem::take(&mut self.1),
                })));
            }
        }
        let answer = Answer::default();
        let guard = Guard(Arc::clone(&answer), topic.to_owned());
        let (settings, topic, source) = (settings.clone(), topic.to_owned(), source.to_owned());
        let read = move || {
            let result = dead_letters_sent(&settings, &topic, &source);
            match &result {
                Ok(sent) => info!(%topic, letters = sent.len(), "dead-letter topic read back"),
                Err(error) => {
                    warn!(%error, "the first rejected message will stop the job: dead letters cannot be sent exactly once")
                }
            }
            let _ = guard.0.set(result.map_err(Arc::new));
        };
        // If no thread starts, the guard drops with the closure and answers.
        let _ = std::thread::Builder::new()
            .name("dlq-read-back".into())
            .spawn(read);
        SentLetters(answer)
    }

    /// The `(partition, offset)` of the dead letters already sent, once read back (this
    /// waits for it).
    pub fn wait(&self) -> Result<&HashSet<(i32, i64)>, Arc<ReadBackError>> {
        self.0.wait().as_ref().map_err(Arc::clone)
    }
}

struct ReadBackContext {
    log: ClientLog,
}

super::log_through!(ReadBackContext, log);

impl rdkafka::consumer::ConsumerContext for ReadBackContext {}

/// The `"id"` of every record in `topic` (records that are not alert lines are skipped).
pub fn published_ids(
    settings: &ClientSettings,
    topic: &str,
) -> Result<HashSet<String>, ReadBackError> {
    let mut found = HashSet::new();
    read_back(settings, ("--alerts-topic", topic), |message| {
        let id = message
            .payload()
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
            .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned));
        found.extend(id);
    })?;
    Ok(found)
}

/// The `(partition, offset)` of every message of `source` that the dead-letter topic `topic`
/// already holds, from its `hygroflow.source.*` headers: the rejects a killed run sent after
/// its last checkpoint, which the restarted run must not send again. A set, not the highest
/// offset per partition: a dead letter that failed and was sent again may land after later
/// ones, so the highest offset does not prove that the ones before it are there.
pub fn dead_letters_sent(
    settings: &ClientSettings,
    topic: &str,
    source: &str,
) -> Result<HashSet<(i32, i64)>, ReadBackError> {
    let mut sent = HashSet::new();
    read_back(settings, ("--dlq-topic", topic), |message| {
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
            sent.insert((partition, offset));
        }
    })?;
    Ok(sent)
}

/// The epochs whose reports `--results-topic` `topic` already holds (each report's key is its
/// epoch): a restarted run does not publish them again.
pub fn published_epochs(
    settings: &ClientSettings,
    topic: &str,
) -> Result<HashSet<u64>, ReadBackError> {
    let mut epochs = HashSet::new();
    read_back(settings, ("--results-topic", topic), |message| {
        let epoch = message
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.parse::<u64>().ok());
        epochs.extend(epoch);
    })?;
    Ok(epochs)
}

/// Reads every partition of `topic` (named by `flag`) from its beginning to its
/// end-of-partition event, handing each message to `visit`.
fn read_back(
    settings: &ClientSettings,
    (flag, topic): (&'static str, &str),
    mut visit: impl FnMut(&BorrowedMessage<'_>),
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
    for id in &ids {
        assignment
            .add_partition_offset(topic, *id, Offset::Beginning)
            .map_err(kafka)?;
    }
    consumer.assign(&assignment).map_err(kafka)?;
    let mut open: HashSet<i32> = ids.into_iter().collect();
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
                open.remove(&partition);
            }
            Some(Err(error)) => return Err(kafka(error)),
            Some(Ok(message)) => visit(&message),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::parse_property;

    #[test]
    fn a_read_back_that_fails_answers_every_waiter_with_its_error() {
        // librdkafka refuses the property when the consumer is created: no broker is needed.
        let bad = parse_property("no.such.property=1").expect("valid syntax");
        let sent = SentLetters::read_back(&ClientSettings::new("127.0.0.1:1", &[bad]), "d", "in");
        let (a, b) = (sent.clone(), sent);
        let waiter =
            std::thread::spawn(move || a.wait().map(HashSet::len).map_err(|e| e.to_string()));
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
