//! Whether one Kafka client has lost its brokers: the fact behind one log line when an outage
//! begins and one when it ends, however many errors librdkafka reports in between.
//!
//! librdkafka reports a broker that went away (killed, network cut) as a stream of transport
//! errors, one per connection and reconnect attempt, and keeps reconnecting by itself. An
//! [`Outage`] turns that stream into two events: the first transport error begins an outage,
//! and the first answer from a broker after it (a fetched record or end-of-partition, a
//! delivery report, a metadata reply) ends it.
//!
//! librdkafka queues a client's errors, fetched records and delivery reports on one queue, in
//! the order they happened, so a record polled after an error was mostly fetched after it. Not
//! always: right after a recovery, a connection that was being set up during the outage can
//! still fail, and an error and a record can then come a few milliseconds apart (seen after
//! network cuts, tests/broker_faults.rs). So an error within [`SETTLE`] of the end of an
//! outage is a flap: it begins an outage quietly, and only one that lasts [`SETTLE`] is
//! logged (when an error or the answer ending it shows that it lasted).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// How soon after the end of an outage an error is a flap rather than a new outage, and how
/// long a flap must last to be logged as one.
pub const SETTLE: Duration = Duration::from_secs(1);

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

/// What a transport error means for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// An outage begins (or a flap has lasted long enough to be one): log it, with how long
    /// it has lasted so far.
    Began(Duration),
    /// Part of an outage already logged, or a flap: nothing to log.
    Quiet,
}

/// How an outage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// From its first error to the first answer.
    pub lasted: Duration,
    /// Transport errors reported during it, the first included.
    pub errors: u64,
    /// Its beginning was never logged (a flap that lasted [`SETTLE`] without another error):
    /// log it now, before the end.
    pub unannounced: bool,
}

/// One client's outage, if it is in one.
#[derive(Debug, Default)]
pub struct Outage {
    /// Whether `state` holds an outage: read on every answer, without the lock.
    is_down: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone, Copy)]
enum State {
    /// Answering, never down.
    #[default]
    Never,
    /// Answering again since the end of an outage.
    Up(Instant),
    /// In an outage (or a flap) since `since`; `announced`: its beginning was logged.
    Down {
        since: Instant,
        errors: u64,
        announced: bool,
    },
}

impl Outage {
    /// Records a transport error at `now`.
    pub fn fault(&self, now: Instant) -> Fault {
        let Ok(mut state) = self.state.lock() else {
            return Fault::Quiet;
        };
        match &mut *state {
            State::Down {
                since,
                errors,
                announced,
            } => {
                *errors += 1;
                let lasted = now.saturating_duration_since(*since);
                if !*announced && lasted >= SETTLE {
                    *announced = true;
                    return Fault::Began(lasted);
                }
                Fault::Quiet
            }
            up => {
                let flap =
                    matches!(up, State::Up(at) if now.saturating_duration_since(*at) < SETTLE);
                *up = State::Down {
                    since: now,
                    errors: 1,
                    announced: !flap,
                };
                self.is_down.store(true, Ordering::Release);
                if flap {
                    Fault::Quiet
                } else {
                    Fault::Began(Duration::ZERO)
                }
            }
        }
    }

    /// Records that a broker answered at `now`; how the outage went when this ends one that
    /// is to be logged (one that began with a line, or a flap that lasted [`SETTLE`]).
    pub fn answered(&self, now: Instant) -> Option<Ended> {
        if !self.is_down.load(Ordering::Acquire) {
            return None;
        }
        let mut state = self.state.lock().ok()?;
        let State::Down {
            since,
            errors,
            announced,
        } = *state
        else {
            return None;
        };
        *state = State::Up(now);
        self.is_down.store(false, Ordering::Release);
        let lasted = now.saturating_duration_since(since);
        (announced || lasted >= SETTLE).then_some(Ended {
            lasted,
            errors,
            unannounced: !announced,
        })
    }

    /// Whether an outage (or a flap) has begun and not ended.
    pub fn is_down(&self) -> bool {
        self.is_down.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn many_errors_make_one_outage_and_the_first_answer_ends_it() {
        let outage = Outage::default();
        let t0 = Instant::now();
        assert_eq!(outage.answered(t0), None, "an answer outside an outage");
        assert_eq!(outage.fault(t0), Fault::Began(Duration::ZERO));
        assert!(outage.is_down());
        for i in 1..=5 {
            assert_eq!(
                outage.fault(t0 + i * 100 * MS),
                Fault::Quiet,
                "later errors"
            );
        }
        let ended = outage.answered(t0 + Duration::from_secs(10));
        assert_eq!(
            ended,
            Some(Ended {
                lasted: Duration::from_secs(10),
                errors: 6,
                unannounced: false,
            })
        );
        assert!(!outage.is_down());
        assert_eq!(outage.answered(t0 + Duration::from_secs(11)), None);
        // Long after, the next fault is a new outage.
        assert_eq!(
            outage.fault(t0 + Duration::from_secs(20)),
            Fault::Began(Duration::ZERO)
        );
    }

    #[test]
    fn a_flap_right_after_an_outage_is_quiet_unless_it_lasts() {
        let outage = Outage::default();
        let t0 = Instant::now();
        assert_eq!(outage.fault(t0), Fault::Began(Duration::ZERO));
        let back = t0 + Duration::from_secs(10);
        assert!(outage.answered(back).is_some());
        // An error and an answer a few milliseconds apart, just after: nothing to log.
        assert_eq!(outage.fault(back + 4 * MS), Fault::Quiet);
        assert!(outage.is_down());
        assert_eq!(outage.answered(back + 9 * MS), None);
        assert!(!outage.is_down());
        // A flap that goes on is logged at its first error after a second...
        assert_eq!(outage.fault(back + 500 * MS), Fault::Quiet);
        assert_eq!(outage.fault(back + 900 * MS), Fault::Quiet);
        assert_eq!(outage.fault(back + 1700 * MS), Fault::Began(1200 * MS));
        let ended = outage.answered(back + 5000 * MS).expect("logged");
        assert!(!ended.unannounced);
        assert_eq!(ended.errors, 3);
        // ...or at its end, when no error came meanwhile.
        let again = back + 5000 * MS;
        assert_eq!(outage.fault(again + 100 * MS), Fault::Quiet);
        let ended = outage.answered(again + 3000 * MS).expect("logged");
        assert!(ended.unannounced);
        assert_eq!(ended.lasted, 2900 * MS);
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
