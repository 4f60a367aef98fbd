//! What every Kafka client of hygroflow shares: the one client context ([`ClientLog`]) that
//! logs librdkafka's events through tracing, the metadata lookup of a topic's partitions
//! ([`partitions`], [`topic_partitions`]), and sending that waits while librdkafka's local
//! queue is full ([`enqueue`]).
//!
//! Producer and consumer contexts that need more (delivery reports, commit results) embed a
//! [`ClientLog`] and hand it their log and error events with `log_through!`.
//!
//! A broker that goes away (killed, network cut) is one warning when the client first loses it
//! and one info line when a broker answers again (see [`super::outage`]); librdkafka's own
//! reconnect errors in between are debug output.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::Client;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, ProducerContext};
use rdkafka::ClientContext;
use tracing::{debug, error, info, warn};

use super::outage::{is_unreachable, Fault, Outage};
use super::redact::Redactor;

/// How long to serve delivery reports before retrying a send refused with `QueueFull`.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(10);

/// The one client context: librdkafka's log lines and error events go through tracing, and the
/// last broker error is kept so that the message of a failure it leads to can name it. Both
/// pass its [`Redactor`] first: no `-X` value is logged or kept.
///
/// The end of a partition is not an error: it is how `--until-end` knows it is done.
#[derive(Debug)]
pub struct ClientLog {
    /// librdkafka's events only at debug level: for a command whose failure message names the
    /// last broker error instead. Otherwise (a job that keeps running while librdkafka
    /// retries) its warnings and errors are logged as warnings and errors.
    quiet: bool,
    /// Which of the job's clients this is, in its outage lines ("worker 0", "dead letters").
    client: String,
    last_error: Mutex<Option<String>>,
    redactor: Redactor,
    outage: Outage,
}

impl ClientLog {
    /// For a job's client, named `client` in its outage lines: librdkafka's warnings and
    /// errors are logged as such, and a lost broker once per outage.
    pub fn new(redactor: Redactor, client: impl Into<String>) -> Self {
        ClientLog {
            quiet: false,
            client: client.into(),
            last_error: Mutex::new(None),
            redactor,
            outage: Outage::default(),
        }
    }

    /// For a command (`produce`, `topic`): librdkafka retries connection problems itself, so
    /// its messages are debug output, and the last error goes into the command's failure line.
    pub fn quiet(redactor: Redactor) -> Self {
        ClientLog {
            quiet: true,
            ..ClientLog::new(redactor, "command")
        }
    }

    /// A broker answered this client (a record or end-of-partition fetched, a delivery
    /// acknowledged, metadata returned): ends an outage, with one line, if it is in one.
    pub fn answered(&self) {
        // Called for every record: outside an outage, an atomic load and no clock read (the
        // clock was 3% of a 2-worker Kafka run's CPU).
        if !self.outage.is_down() {
            return;
        }
        if let Some(ended) = self.outage.answered(Instant::now()) {
            if !self.quiet {
                if ended.unannounced {
                    warn!(
                        client = %self.client,
                        down_for = ?ended.lasted,
                        "kafka brokers unreachable; librdkafka keeps reconnecting"
                    );
                }
                info!(
                    client = %self.client,
                    down_for = ?ended.lasted,
                    errors = ended.errors,
                    "kafka brokers answer again"
                );
            }
        }
    }

    /// Whether this client has lost its brokers and not heard from one since.
    pub fn is_down(&self) -> bool {
        self.outage.is_down()
    }

    /// The last warning or error librdkafka reported, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// `; last broker error: ...` when librdkafka reported one, else nothing.
    pub fn suffix(&self) -> String {
        last_error_suffix(self.last_error().as_deref())
    }

    fn remember(&self, text: String) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(text);
        }
    }
}

/// `; last broker error: ...` for `last`, or nothing.
fn last_error_suffix(last: Option<&str>) -> String {
    last.map(|e| format!("; last broker error: {e}"))
        .unwrap_or_default()
}

/// Whether `error` is librdkafka's end-of-partition event (as a consumer error or as a global
/// error event).
fn is_partition_eof(error: &KafkaError) -> bool {
    matches!(error, KafkaError::PartitionEOF(_))
        || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
}

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let log_message = self.redactor.scrub(log_message);
        if (level as i32) <= RDKafkaLogLevel::Warning as i32 {
            self.remember(log_message.clone().into_owned());
        }
        // librdkafka's connection failures and disconnects: a failure at error level also comes
        // as an error event, which logs the outage once; a disconnect either heals at the next
        // connection or leads to such an event ("all brokers are down").
        if self.quiet || fac == "FAIL" {
            debug!(target: "librdkafka", ?level, facility = fac, "{log_message}");
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                error!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => {
                warn!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Debug => debug!(target: "librdkafka", facility = fac, "{log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if is_partition_eof(&error) {
            return;
        }
        let unreachable = is_unreachable(&error);
        let error = self.redactor.scrub(&error.to_string()).into_owned();
        let reason = self.redactor.scrub(reason);
        self.remember(format!("{error}: {reason}"));
        if self.quiet {
            debug!(target: "librdkafka", %error, "{reason}");
        } else if !unreachable {
            warn!(client = %self.client, %error, %reason, "kafka client error; librdkafka keeps retrying");
        } else {
            match self.outage.fault(Instant::now()) {
                Fault::Began(lasted) if lasted.is_zero() => warn!(
                    client = %self.client,
                    %error,
                    %reason,
                    "kafka brokers unreachable; librdkafka keeps reconnecting"
                ),
                Fault::Began(lasted) => warn!(
                    client = %self.client,
                    down_for = ?lasted,
                    %error,
                    %reason,
                    "kafka brokers unreachable; librdkafka keeps reconnecting"
                ),
                Fault::Quiet => debug!(client = %self.client, %error, "{reason}"),
            }
        }
    }
}

impl ConsumerContext for ClientLog {}

/// Implements `rdkafka::ClientContext` for a producer or consumer context by handing
/// librdkafka's log and error events to its [`ClientLog`] field: `log_through!(Context, field);`.
macro_rules! log_through {
    ($context:ty, $field:ident) => {
        impl rdkafka::ClientContext for $context {
            fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
                rdkafka::ClientContext::log(&self.$field, level, fac, log_message);
            }

            fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
                rdkafka::ClientContext::error(&self.$field, error, reason);
            }
        }
    };
}
pub(crate) use log_through;

/// The partitions of `topic`, sorted; `None` when the broker does not know the topic (or knows
/// it without partitions). No answer within `timeout`, or another error for the topic, is an
/// error.
pub fn partitions<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> KafkaResult<Option<Vec<i32>>> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match found.error() {
        Some(e) if RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition => {
            Ok(None)
        }
        Some(e) => Err(KafkaError::MetadataFetch(e.into())),
        None if found.partitions().is_empty() => Ok(None),
        None => {
            let mut ids: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
            ids.sort_unstable();
            Ok(Some(ids))
        }
    }
}

/// Why a command cannot use its topic.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The brokers did not describe the topic.
    #[error(
        "cannot get metadata for topic {topic} from {brokers} within {timeout:?}: {error}{}",
        last_error_suffix(.last_broker_error.as_deref())
    )]
    Metadata {
        /// The topic.
        topic: String,
        /// The `-b` list.
        brokers: String,
        /// How long the command waited.
        timeout: Duration,
        /// What librdkafka answered.
        error: KafkaError,
        /// The last warning or error librdkafka reported while trying.
        last_broker_error: Option<String>,
    },
    /// The topic does not exist (or has no partitions).
    #[error("topic {topic} does not exist on {brokers} (create it with `hygroflow topic create`)")]
    Missing {
        /// The topic.
        topic: String,
        /// The `-b` list.
        brokers: String,
    },
}

/// For a command: the partitions of `topic` on `brokers` (see [`partitions`]), or why not
/// (boxed: it is large, and a command fails with it only once). When no answer comes,
/// `serve_events` runs the client's poll, so that `log` has seen the connection errors
/// librdkafka queued and the failure can name the last one.
pub fn topic_partitions<C: ClientContext>(
    client: &Client<C>,
    log: &ClientLog,
    brokers: &str,
    topic: &str,
    timeout: Duration,
    serve_events: impl FnOnce(),
) -> Result<Vec<i32>, Box<TopicError>> {
    match partitions(client, topic, timeout) {
        Ok(Some(ids)) => Ok(ids),
        Ok(None) => Err(Box::new(TopicError::Missing {
            topic: topic.to_owned(),
            brokers: brokers.to_owned(),
        })),
        Err(error) => {
            serve_events();
            Err(Box::new(TopicError::Metadata {
                topic: topic.to_owned(),
                brokers: brokers.to_owned(),
                timeout,
                error,
                last_broker_error: log.last_error(),
            }))
        }
    }
}

/// Hands `record` to the producer. While librdkafka's local queue is full, serves delivery
/// reports so that it drains, then tries again; any other refusal is the error.
pub fn enqueue<'a, K, P, C>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'a, K, P, C::DeliveryOpaque>,
) -> KafkaResult<()>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
    C: ProducerContext,
{
    loop {
        match producer.send(record) {
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(QUEUE_FULL_BACKOFF);
            }
            sent => return sent.map_err(|(error, _)| error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_broker_error_is_kept_and_the_end_of_a_partition_is_not_one() {
        let log = ClientLog::quiet(Redactor::default());
        assert_eq!(log.suffix(), "");
        log.error(KafkaError::PartitionEOF(3), "end");
        log.error(
            KafkaError::Global(RDKafkaErrorCode::PartitionEOF),
            "end of partition",
        );
        assert_eq!(
            log.last_error(),
            None,
            "the end of a partition is not an error"
        );
        log.error(
            KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            "connection refused",
        );
        assert!(
            log.suffix().starts_with("; last broker error: ")
                && log.suffix().ends_with(": connection refused"),
            "{}",
            log.suffix()
        );
        log.log(RDKafkaLogLevel::Info, "CONF", "nothing wrong");
        assert!(log.suffix().ends_with("connection refused"));
        log.log(RDKafkaLogLevel::Warning, "FAIL", "broker down");
        assert_eq!(log.suffix(), "; last broker error: broker down");
    }

    #[test]
    fn a_lost_broker_is_one_outage_until_it_answers() {
        let log = ClientLog::new(Redactor::default(), "test");
        log.error(
            KafkaError::Global(RDKafkaErrorCode::UnknownTopicOrPartition),
            "no such topic",
        );
        assert!(!log.is_down(), "a broker's answer is not an outage");
        for _ in 0..3 {
            log.error(
                KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
                "connection refused",
            );
            log.error(
                KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
                "1/1 brokers are down",
            );
        }
        assert!(log.is_down());
        assert!(log.suffix().ends_with("1/1 brokers are down"));
        log.answered();
        assert!(!log.is_down());
    }

    #[test]
    fn no_property_value_is_logged_or_kept() {
        let properties = [crate::kafka::Property {
            key: "sasl.mechanism".into(),
            value: "S3cr3tValue".into(),
        }];
        let log = ClientLog::new(Redactor::new(&properties), "test");
        log.log(
            RDKafkaLogLevel::Warning,
            "CONFWARN",
            "[thrd:app]: Configuration property `sasl.mechanism` set to `S3cr3tValue` but `security.protocol` is not configured for SASL",
        );
        assert!(
            log.suffix().contains("set to `***` but"),
            "{}",
            log.suffix()
        );
        log.error(
            KafkaError::Global(RDKafkaErrorCode::Authentication),
            "SASL S3cr3tValue refused",
        );
        assert!(
            log.suffix().ends_with(": SASL *** refused"),
            "{}",
            log.suffix()
        );
    }
}
