//! Each owned partition's messages from a queue of its own, taken in batches.
//!
//! rdkafka's `BaseConsumer::poll` hands out one message per call, and every call reads the
//! clock three times (librdkafka's `max.poll.interval.ms` bookkeeping twice, the crate's
//! timeout once) and takes the queue's lock. Measured with `perf` on `run --until-end` of 4M
//! messages in 4 partitions at 2 workers: `clock_gettime` alone was 16% of each worker's
//! samples, and rdkafka's per-call work about as much again. librdkafka's
//! `rd_kafka_consume_batch_queue` pays that once per batch, but the crate does not offer it,
//! so this module makes the calls itself (the only `unsafe` code in hygroflow):
//!
//! - [`PartitionQueue::split`] takes a partition's queue off the consumer's queue
//!   (`rd_kafka_queue_get_partition`, then `rd_kafka_queue_forward` to nothing), as the crate's
//!   own `split_partition_queue` does. A partition queue only ever holds the partition's
//!   messages, its errors (end of partition among them) and librdkafka's version barriers
//!   after a seek, which the batch call serves itself: never the consumer's events (offset
//!   commits, client errors), which stay on the consumer's queue that `poll` serves.
//! - [`Batch`] owns the messages a batch call returned, and destroys them when it is cleared
//!   or dropped: a [`Record`] borrows its payload from the batch, so no payload outlives its
//!   message.
//!
//! A [`PartitionQueue`] holds a reference on the consumer: it must be dropped before the
//! consumer is (`KafkaSource` declares its queues and its batch before its consumer).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::ptr::{self, NonNull};

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};

/// One partition's own queue.
pub(super) struct PartitionQueue {
    queue: NonNull<rdsys::rd_kafka_queue_t>,
}

impl PartitionQueue {
    /// Moves `partition` of `topic` off `consumer`'s queue onto a queue of its own; `None` if
    /// librdkafka does not know the partition (then its messages stay on the consumer's queue).
    pub(super) fn split<C: ConsumerContext>(
        consumer: &BaseConsumer<C>,
        topic: &str,
        partition: i32,
    ) -> Option<Self> {
        let topic = CString::new(topic).ok()?;
        // SAFETY: the client pointer is valid while `consumer` lives; the queue returned is a
        // new reference, which `drop` gives back, before the consumer is dropped (see the
        // module docs).
        let queue = NonNull::new(unsafe {
            rdsys::rd_kafka_queue_get_partition(
                consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
            )
        })?;
        // SAFETY: `queue` is a valid queue; forwarding to null stops the forwarding.
        unsafe { rdsys::rd_kafka_queue_forward(queue.as_ptr(), ptr::null_mut()) };
        Some(PartitionQueue { queue })
    }

    /// Fills `batch` with at most `max` of the queued messages, without waiting; returns how
    /// many it took.
    pub(super) fn take(&self, batch: &mut Batch, max: usize) -> usize {
        batch.clear();
        batch.messages.resize(max, ptr::null_mut());
        // SAFETY: `messages` has room for `max` pointers; librdkafka writes at most that many
        // and returns their number (-1 on an invalid queue, which this is not).
        let taken = unsafe {
            rdsys::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                0,
                batch.messages.as_mut_ptr(),
                max,
            )
        };
        batch.messages.truncate(usize::try_from(taken).unwrap_or(0));
        batch.messages.len()
    }
}

impl Drop for PartitionQueue {
    fn drop(&mut self) {
        // SAFETY: the reference taken in `split`, given back once.
        unsafe { rdsys::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}

/// The messages of one batch call, destroyed when the batch is cleared or dropped.
#[derive(Default)]
pub(super) struct Batch {
    messages: Vec<*mut rdsys::rd_kafka_message_t>,
}

/// One message of a [`Batch`], or an error of its partition.
pub(super) enum Record<'b> {
    /// A message: its payload (empty if it has none) borrowed from the batch.
    Message {
        partition: i32,
        offset: i64,
        payload: &'b [u8],
    },
    /// The end of the partition as it stands.
    PartitionEof(i32),
    /// Another error of the partition.
    Error { partition: i32, error: KafkaError },
}

impl Batch {
    /// The records, in the partition's order.
    pub(super) fn records(&self) -> impl Iterator<Item = Record<'_>> {
        self.messages.iter().map(|&message| {
            // SAFETY: every pointer kept is a message from `rd_kafka_consume_batch_queue`,
            // alive until `clear` destroys it, which needs `&mut self`.
            let message = unsafe { &*message };
            match message.err {
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR => {
                    let payload = if message.payload.is_null() || message.len == 0 {
                        &[][..]
                    } else {
                        // SAFETY: librdkafka's payload of `len` bytes, alive with the message.
                        unsafe {
                            std::slice::from_raw_parts(message.payload as *const u8, message.len)
                        }
                    };
                    Record::Message {
                        partition: message.partition,
                        offset: message.offset,
                        payload,
                    }
                }
                RDKafkaRespErr::RD_KAFKA_RESP_ERR__PARTITION_EOF => {
                    Record::PartitionEof(message.partition)
                }
                error => Record::Error {
                    partition: message.partition,
                    error: KafkaError::MessageConsumption(RDKafkaErrorCode::from(error)),
                },
            }
        })
    }

    /// Destroys the messages.
    pub(super) fn clear(&mut self) {
        for message in self.messages.drain(..) {
            // SAFETY: each message once, from `rd_kafka_consume_batch_queue`.
            unsafe { rdsys::rd_kafka_message_destroy(message) }
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.clear();
    }
}
