//! Publishing to Kafka with retries that never drop a message silently.
//!
//! Used for dead letters, result reports and alerts, with an idempotent producer. librdkafka
//! already retries inside `message.timeout.ms`; a message that still fails comes back through
//! the delivery callback, is logged, and is sent again (with a growing pause) up to a limit,
//! after which the run fails with the error instead of losing the message. `flush` waits until everything sent so
//! far is acknowledged, so a checkpoint is never written ahead of its dead letters.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use tracing::warn;

use super::redact::CreateError;
use super::tail::Ends;
use super::{ClientLog, ClientSettings};

/// Attempts (each with librdkafka's own retries inside) before a message is given up as fatal.
const MAX_ATTEMPTS: u32 = 5;

/// A message to send, kept until acknowledged.
#[derive(Debug)]
pub struct Outgoing {
    /// Destination topic.
    pub topic: String,
    /// Message key.
    pub key: Option<Vec<u8>>,
    /// Message value.
    pub payload: Vec<u8>,
    /// Message headers.
    pub headers: Option<OwnedHeaders>,
    attempts: u32,
}

impl Outgoing {
    /// A new message.
    pub fn new(
        topic: String,
        key: Option<Vec<u8>>,
        payload: Vec<u8>,
        headers: Option<OwnedHeaders>,
    ) -> Self {
        Outgoing {
            topic,
            key,
            payload,
            headers,
            attempts: 0,
        }
    }
}

/// Why publishing failed for good.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The producer could not be created (a bad `-X` property, say).
    #[error("cannot create Kafka producer: {0}")]
    Create(CreateError),
    /// A message failed every attempt.
    #[error("could not deliver to topic {topic} after {attempts} attempts: {error}")]
    Undeliverable {
        /// The topic.
        topic: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        error: KafkaError,
    },
    /// Sending was refused outright.
    #[error("cannot send to topic {topic}: {error}")]
    Send {
        /// The topic.
        topic: String,
        /// The error.
        error: KafkaError,
    },
}

/// Collects failed deliveries so the owner can resend them, and records the offsets taken
/// in [`Ends`]; logs through [`ClientLog`].
pub struct PublishContext {
    log: ClientLog,
    failed: Mutex<Vec<(Arc<Outgoing>, KafkaError)>>,
    ends: Ends,
}

super::log_through!(PublishContext, log);

impl ProducerContext for PublishContext {
    type DeliveryOpaque = Arc<Outgoing>;

    fn delivery(&self, result: &DeliveryResult<'_>, outgoing: Arc<Outgoing>) {
        match result {
            // Delivery reports come in order with the client's errors: this one is news.
            Ok(message) => {
                self.log.answered();
                self.ends
                    .reached(message.partition(), message.offset().saturating_add(1));
            }
            Err((error, _)) => {
                if let Ok(mut failed) = self.failed.lock() {
                    failed.push((outgoing, error.clone()));
                }
            }
        }
    }
}

/// A producer that keeps every message until it is acknowledged.
pub struct Publisher {
    producer: BaseProducer<PublishContext>,
    /// Ends shared with the process's other producers of the same topic, advanced after each
    /// poll (so by whole record batches: a batch's delivery reports are served together).
    shared: Option<Ends>,
}

impl Publisher {
    /// A publisher to the brokers of `settings`, with its `-X` properties, named `client` in
    /// its outage log lines, recording each delivered message's offset in `ends`.
    pub fn new(settings: &ClientSettings, client: &str, ends: Ends) -> Result<Self, PublishError> {
        let context = PublishContext {
            log: ClientLog::new(settings.redactor(), client),
            failed: Mutex::new(Vec::new()),
            ends,
        };
        // Idempotent: within a run, librdkafka's own retries neither duplicate nor reorder a
        // dead letter, report or alert (up to 5 requests in flight). Tansu 0.6 grants the
        // producer id this needs; `-X enable.idempotence=false` turns it off for a broker that
        // does not.
        let defaults = [("enable.idempotence", "true")];
        let producer = settings
            .create(&settings.config(&defaults), context)
            .map_err(PublishError::Create)?;
        Ok(Publisher {
            producer,
            shared: None,
        })
    }

    /// The same, also advancing `shared`, the ends of every producer of its topic in the
    /// process: a message any of them sends later lies past them (tail.rs), so a worker that
    /// has sent nothing yet still has a bound better than the start of the run.
    pub fn sharing(self, shared: Ends) -> Self {
        Publisher {
            shared: Some(shared),
            ..self
        }
    }

    /// Hands this producer's ends, whole batches only, to the shared ones.
    fn share(&self) {
        if let Some(shared) = &self.shared {
            for (partition, end) in self.producer.context().ends.now() {
                shared.reached(partition, end);
            }
        }
    }

    /// Queues a message.
    pub fn send(&mut self, outgoing: Outgoing) -> Result<(), PublishError> {
        self.enqueue(Arc::new(outgoing))?;
        self.poll()
    }

    fn enqueue(&mut self, outgoing: Arc<Outgoing>) -> Result<(), PublishError> {
        let mut record = BaseRecord::<Vec<u8>, Vec<u8>, Arc<Outgoing>>::with_opaque_to(
            &outgoing.topic,
            Arc::clone(&outgoing),
        )
        .payload(&outgoing.payload);
        if let Some(key) = &outgoing.key {
            record = record.key(key);
        }
        if let Some(headers) = &outgoing.headers {
            record = record.headers(headers.clone());
        }
        super::enqueue(&self.producer, record).map_err(|error| PublishError::Send {
            topic: outgoing.topic.clone(),
            error,
        })
    }

    /// Serves delivery callbacks and resends failed messages.
    pub fn poll(&mut self) -> Result<(), PublishError> {
        self.producer.poll(Duration::ZERO);
        self.share();
        let failed = match self.producer.context().failed.lock() {
            Ok(mut failed) => std::mem::take(&mut *failed),
            Err(_) => Vec::new(),
        };
        for (outgoing, error) in failed {
            let attempts = outgoing.attempts + 1;
            if attempts >= MAX_ATTEMPTS {
                return Err(PublishError::Undeliverable {
                    topic: outgoing.topic.clone(),
                    attempts,
                    error,
                });
            }
            warn!(topic = %outgoing.topic, attempt = attempts, %error, "delivery failed, sending again");
            std::thread::sleep(Duration::from_millis(100 << attempts.min(5)));
            let again = Outgoing {
                topic: outgoing.topic.clone(),
                key: outgoing.key.clone(),
                payload: outgoing.payload.clone(),
                headers: outgoing.headers.clone(),
                attempts,
            };
            self.enqueue(Arc::new(again))?;
        }
        Ok(())
    }

    /// Waits until every message sent so far is acknowledged (resending failures).
    pub fn flush(&mut self) -> Result<(), PublishError> {
        let mut last_warning = Instant::now();
        loop {
            self.poll()?;
            if self.producer.in_flight_count() == 0 {
                // Deliveries reported in the last poll may have been re-queued; check once more.
                self.poll()?;
                if self.producer.in_flight_count() == 0 {
                    return Ok(());
                }
            }
            // flush serves delivery callbacks while it waits.
            let _ = self.producer.flush(Duration::from_millis(100));
            self.share();
            if last_warning.elapsed() >= Duration::from_secs(10) {
                warn!(
                    in_flight = self.producer.in_flight_count(),
                    "waiting for Kafka to acknowledge messages"
                );
                last_warning = Instant::now();
            }
        }
    }
}
