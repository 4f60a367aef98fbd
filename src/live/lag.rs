//! Kafka consumer lag for `/metrics`, for every partition of the input topic, whichever
//! process of a cluster reads it.
//!
//! Process 0 asks the brokers once a second for each partition's high watermark and the
//! consumer group's committed offset, as `kafka-consumer-groups` does: the lag is the
//! difference (the high watermark minus the partition's start while nothing is committed).
//! Offsets are committed once an epoch is complete everywhere, so the figure trails the
//! consumers' positions by about an epoch. Against Tansu, whose high watermark is short by up
//! to one record batch (see the README), a negative difference is shown as 0.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tracing::debug;

use crate::config::KafkaInput;

/// How often the lag is read.
const EVERY: Duration = Duration::from_secs(1);

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Starts reading the lag of `kafka`'s topic for its group on a thread of its own, until
/// `stop` is set.
pub(crate) fn spawn(kafka: &KafkaInput, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let kafka = kafka.clone();
    std::thread::Builder::new()
        .name("hygroflow-lag".into())
        .spawn(move || {
            let consumer = match kafka.consumer("lag metrics") {
                Ok(consumer) => consumer,
                Err(error) => {
                    debug!(%error, "no consumer for the lag metrics");
                    return;
                }
            };
            while !stop.load(Ordering::Relaxed) {
                let topic = kafka.topic.as_str();
                let parts = crate::kafka::partitions(consumer.client(), topic, TIMEOUT);
                if let Ok(Some(parts)) = parts {
                    let mut tpl = TopicPartitionList::new();
                    for p in &parts {
                        tpl.add_partition(topic, *p);
                    }
                    let committed = consumer.committed_offsets(tpl, TIMEOUT).ok();
                    for p in parts {
                        let Ok((low, high)) = consumer.fetch_watermarks(topic, p, TIMEOUT) else {
                            continue;
                        };
                        let at = committed
                            .as_ref()
                            .and_then(|c| c.find_partition(topic, p))
                            .map(|e| e.offset());
                        let lag = match at {
                            Some(Offset::Offset(o)) => high - o,
                            _ => high - low,
                        };
                        super::metrics::kafka_lag(topic, p, lag.max(0));
                    }
                }
                for _ in 0..10 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(EVERY / 10);
                }
            }
        })
        .map(|_| ())
}
