//! Whether one Kafka client has lost its brokers: the fact behind one log line when an outage
//! begins and one when it ends, however many errors librdkafka reports in between.
//!
//! librdkafka reports a broker that went away (killed, network cut) as a stream of transport
//! errors, one per connection and reconnect attempt, and keeps reconnecting by itself. An
//! [`Outage`] turns that stream into two events: the first transport error begins an outage,
//! and the first answer from a broker after it (a fetched record or end-of-partition, a
//! delivery report, a metadata reply) ends it.
//!
//! An answer only ends an outage that began before it: librdkafka queues a client's errors,
//! log lines, fetched records and delivery reports on one queue, in the order they happened,
//! so a record polled after the error was fetched after it, on a new connection. A record
//! fetched before the broker went away and still queued comes before the error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Whether `error` says that brokers cannot be reached (the connection failed or broke, or no
/// broker is up), as opposed to an error that a broker answered with.
pub fn is_unreachable(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
        )
    )
}

/// How an outage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// From its first error to the first answer.
    pub lasted: Duration,
    /// Transport errors reported during it, the first included.
    pub errors: u64,
}

/// One client's outage, if it is in one.
#[derive(Debug, Default)]
pub struct Outage {
    /// Whether `down` holds an outage: read on every answer, without the lock.
    is_down: AtomicBool,
    down: Mutex<Option<Down>>,
}

#[derive(Debug, Clone, Copy)]
struct Down {
    since: Instant,
    errors: u64,
}

impl Outage {
    /// Records a transport error at `now`; true when it begins an outage.
    pub fn fault(&self, now: Instant) -> bool {
        let Ok(mut down) = self.down.lock() else {
            return false;
        };
        match down.as_mut() {
            Some(d) => {
                d.errors += 1;
                false
            }
            None => {
                *down = Some(Down {
                    since: now,
                    errors: 1,
                });
                self.is_down.store(true, Ordering::Release);
                true
            }
        }
    }

    /// Records that a broker answered at `now`; how the outage went when this ends one.
    pub fn answered(&self, now: Instant) -> Option<Ended> {
        if !self.is_down.load(Ordering::Acquire) {
            return None;
        }
        let mut down = self.down.lock().ok()?;
        let d = down.take()?;
        self.is_down.store(false, Ordering::Release);
        Some(Ended {
            lasted: now.saturating_duration_since(d.since),
            errors: d.errors,
        })
    }

    /// Whether an outage has begun and not ended.
    pub fn is_down(&self) -> bool {
        self.is_down.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_errors_make_one_outage_and_the_first_answer_ends_it() {
        let outage = Outage::default();
        let t0 = Instant::now();
        assert_eq!(outage.answered(t0), None, "an answer outside an outage");
        assert!(outage.fault(t0), "the first error begins it");
        assert!(outage.is_down());
        for i in 1..=5 {
            assert!(!outage.fault(t0 + Duration::from_millis(i)), "later errors");
        }
        let ended = outage.answered(t0 + Duration::from_secs(10));
        assert_eq!(
            ended,
            Some(Ended {
                lasted: Duration::from_secs(10),
                errors: 6
            })
        );
        assert!(!outage.is_down());
        assert_eq!(outage.answered(t0 + Duration::from_secs(11)), None);
        // The next fault is a new outage.
        assert!(outage.fault(t0 + Duration::from_secs(20)));
    }

    #[test]
    fn only_transport_errors_count() {
        let global = |code| KafkaError::Global(code);
        assert!(is_unreachable(&global(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
        assert!(is_unreachable(&global(RDKafkaErrorCode::AllBrokersDown)));
        assert!(is_unreachable(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::AllBrokersDown
        )));
        assert!(!is_unreachable(&global(RDKafkaErrorCode::PartitionEOF)));
        assert!(!is_unreachable(&global(
            RDKafkaErrorCode::UnknownTopicOrPartition
        )));
        assert!(!is_unreachable(&KafkaError::PartitionEOF(0)));
    }
}
