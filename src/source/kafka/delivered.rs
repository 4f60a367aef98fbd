//! Each partition's next offset: records that come again are dropped.
//!
//! Kafka offsets only grow within a partition, so a record before the next offset to deliver
//! has been delivered already. librdkafka has been seen (against Tansu, after the resume
//! guard's seeks) to hand over such records again: counted twice, they broke exactly-once
//! results, until the random kill tests (tests/random_kills.rs) caught it.

use std::collections::BTreeMap;

use tracing::warn;

/// Each partition's next offset to deliver: a record before it has been delivered already.
/// After the resume guard's seeks, librdkafka has been seen (against Tansu) to hand over again
/// records it had delivered; they are dropped, with one log line per run of them.
#[derive(Debug, Default)]
pub(super) struct Delivered {
    next: BTreeMap<i32, i64>,
    /// Records dropped since the partition's last delivered one: `(first offset, count)`.
    repeated: BTreeMap<i32, (i64, u64)>,
}

impl Delivered {
    /// `partition` resumes at `offset`: the records before it were delivered before.
    pub(super) fn resume(&mut self, partition: i32, offset: i64) {
        self.next.insert(partition, offset);
    }

    /// Whether the record at `offset` of `partition` is new (worker `worker`'s, for the log).
    pub(super) fn is_new(&mut self, worker: usize, partition: i32, offset: i64) -> bool {
        let next = self.next.entry(partition).or_insert(0);
        if offset < *next {
            self.repeated.entry(partition).or_insert((offset, 0)).1 += 1;
            return false;
        }
        *next = offset + 1;
        if let Some((first, count)) = self.repeated.remove(&partition) {
            warn!(
                worker,
                partition,
                first,
                count,
                "records that were already delivered came again; dropped them"
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_that_comes_again_is_dropped() {
        let mut delivered = Delivered::default();
        delivered.resume(3, 100);
        assert!(!delivered.is_new(0, 3, 99), "before the resume offset");
        assert!(delivered.is_new(0, 3, 100));
        assert!(delivered.is_new(0, 3, 101));
        // Redelivered from an older fetch position, then the stream goes on.
        assert!(!delivered.is_new(0, 3, 100));
        assert!(!delivered.is_new(0, 3, 101));
        assert!(delivered.is_new(0, 3, 102));
        // Gaps (compaction, transaction markers) are fine; other partitions are separate.
        assert!(delivered.is_new(0, 3, 110));
        assert!(delivered.is_new(0, 1, 0));
        assert!(
            delivered.repeated.is_empty(),
            "the run of repeats was logged"
        );
    }
}
