//! Reading a topic back to its end: which alert ids `--alerts-topic` already holds.
//!
//! At start, worker 0 reads every partition of the alerts topic from the beginning to the
//! end-of-partition event (not to the reported end offset, which the test broker gets wrong
//! for multi-record batches; see the notes on the broker) and collects the `"id"` of every
//! record, so that transitions a killed run published before its last checkpoint are not
//! published again.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::redact::CreateError;
use super::{partitions, ClientLog, ClientSettings};

/// How long reading the topic back may take before the run gives up.
const READ_BACK_LIMIT: Duration = Duration::from_secs(60);

/// Why the alerts topic could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    /// The consumer could not be created.
    #[error("cannot create a Kafka consumer to read back {topic}: {error}")]
    Create {
        /// The topic.
        topic: String,
        /// Why.
        error: CreateError,
    },
    /// The topic does not exist.
    #[error("--alerts-topic {0} does not exist (create it with `hygroflow topic create`)")]
    Missing(String),
    /// Kafka failed.
    #[error("cannot read back --alerts-topic {topic}: {error}")]
    Kafka {
        /// The topic.
        topic: String,
        /// The error.
        error: KafkaError,
    },
    /// The end of every partition was not reached in time.
    #[error("reading back --alerts-topic {0} did not reach its end within 60 s")]
    Timeout(String),
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
    let kafka = |error| ReadBackError::Kafka {
        topic: topic.to_owned(),
        error,
    };
    let config = settings.config(&[
        // Read only: no group offsets are kept or committed.
        ("group.id", "hygroflow-alerts-readback"),
        ("enable.auto.commit", "false"),
        // The end-of-partition event is the reliable end (see the module docs).
        ("enable.partition.eof", "true"),
    ]);
    let context = ReadBackContext {
        log: ClientLog::new(settings.redactor()),
    };
    let consumer: BaseConsumer<ReadBackContext> =
        settings
            .create(&config, context)
            .map_err(|error| ReadBackError::Create {
                topic: topic.to_owned(),
                error,
            })?;
    let ids = partitions(consumer.client(), topic, Duration::from_secs(10))
        .map_err(kafka)?
        .ok_or_else(|| ReadBackError::Missing(topic.to_owned()))?;
    let mut assignment = TopicPartitionList::new();
    for id in &ids {
        assignment
            .add_partition_offset(topic, *id, Offset::Beginning)
            .map_err(kafka)?;
    }
    consumer.assign(&assignment).map_err(kafka)?;
    let mut open: HashSet<i32> = ids.into_iter().collect();
    let mut found = HashSet::new();
    let deadline = Instant::now() + READ_BACK_LIMIT;
    while !open.is_empty() {
        if Instant::now() >= deadline {
            return Err(ReadBackError::Timeout(topic.to_owned()));
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                open.remove(&partition);
            }
            Some(Err(error)) => return Err(kafka(error)),
            Some(Ok(message)) => {
                let id = message
                    .payload()
                    .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                    .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned));
                found.extend(id);
            }
        }
    }
    Ok(found)
}
