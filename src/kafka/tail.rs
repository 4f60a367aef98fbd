//! Where a restart starts reading an output topic back, so that start-up stays flat in the
//! topics' history (issue 23 point 1).
//!
//! A restart from a checkpoint publishes again what came after it: the reports and alert
//! transitions of the epochs from the committed frontier on, the dead letters of the source
//! offsets from the checkpointed ones on. To send none of them twice it reads back what the
//! killed run had sent of them. They all lie in the topic at or after a *resume offset* per
//! partition that each checkpoint records, the lower of two bounds:
//!
//! - [`Ends`]: the highest offset (plus one) known to be taken in each partition, from the
//!   producer's own delivery reports and from the end the read-back at start reached. Taken
//!   at the checkpoint's cut (the report thread has printed every epoch before the frontier
//!   and none after it; a worker has flushed its dead letters and reads on only after its
//!   file is written), it bounds everything sent after the cut: a message sent later is
//!   appended after every message already acknowledged. No broker query is needed, and a
//!   broker that reports a wrong end (Tansu does, `shared/notes/kafka-broker.md`) cannot
//!   mislead it.
//! - [`Known`]: what the read-back at start found that a later restart may still publish
//!   again (the killed run's messages after its last checkpoint), by the position that
//!   decides it (an epoch; a source partition's offset). Until this run passes them, the
//!   resume offset stays at or before them.
//!
//! ```text
//!   partition:  ...old history... | killed run, after its cut | this run, after the cut
//!                                 ^ Known::first_from          ^ Ends at the cut
//!   resume offset = min of the two
//! ```
//!
//! Reading back from there is only ever *more* than needed: anything read that is older is
//! already in the topic, so taking it as sent is still right.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, PoisonError};

/// Where to start reading each partition of an output topic; a partition that is absent is
/// read from its beginning.
pub type ResumeOffsets = BTreeMap<i32, i64>;

/// The highest offset plus one known to be taken in each partition of one output topic, by a
/// producer's delivery reports or by the read-back at start. Delivery reports come a whole
/// record batch at a time, so a producer's own ends are where batches end (a broker that
/// answers a fetch from inside a batch with the next one, as Tansu does, cannot skip part of
/// what a read-back from there must see).
#[derive(Clone, Debug, Default)]
pub struct Ends(Arc<Mutex<ResumeOffsets>>);

impl Ends {
    /// Every offset before `next` in `partition` is taken.
    pub fn reached(&self, partition: i32, next: i64) {
        let mut ends = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let end = ends.entry(partition).or_insert(next);
        *end = (*end).max(next);
    }

    /// The ends as they stand.
    pub fn now(&self) -> ResumeOffsets {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Messages found in an output topic at start, by the position `P` that decides whether a
/// restart may publish them again: for each position, the lowest offset per partition.
#[derive(Clone, Debug)]
pub struct Known<P> {
    first: BTreeMap<P, ResumeOffsets>,
}

impl<P> Default for Known<P> {
    fn default() -> Self {
        Known {
            first: BTreeMap::new(),
        }
    }
}

impl<P: Ord + Copy> Known<P> {
    /// A message at `position` lies at `offset` of `partition`.
    pub fn found(&mut self, position: P, partition: i32, offset: i64) {
        let first = self
            .first
            .entry(position)
            .or_default()
            .entry(partition)
            .or_insert(offset);
        *first = (*first).min(offset);
    }

    /// The lowest offset per partition of the messages at `positions`.
    pub fn first_in(&self, positions: impl RangeBounds<P>) -> ResumeOffsets {
        let mut first = ResumeOffsets::new();
        for offsets in self.first.range(positions).map(|(_, o)| o) {
            for (&partition, &offset) in offsets {
                let at = first.entry(partition).or_insert(offset);
                *at = (*at).min(offset);
            }
        }
        first
    }
}

impl Known<(i32, i64)> {
    /// The source partitions of the messages known by `(source partition, offset)`: one
    /// lookup per partition, not a look at every message.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        let mut from = Some((i32::MIN, i64::MIN));
        std::iter::from_fn(move || {
            let (&(partition, _), _) = self.first.range(from?..).next()?;
            from = partition.checked_add(1).map(|next| (next, i64::MIN));
            Some(partition)
        })
    }
}

/// The tail of an output topic whose messages belong to epochs (results, alerts), as its
/// sink keeps it: what the topic held from its resume offsets on, the last epoch reported
/// before the checkpoint this run resumed from (everything up to it was published and
/// acknowledged before that checkpoint was committed), and the ends its producer advances.
#[derive(Debug)]
pub struct EpochTail<K> {
    keys: HashSet<K>,
    known: Known<u64>,
    reported: Option<u64>,
    ends: Ends,
}

impl<K: Hash + Eq> EpochTail<K> {
    /// The tail of a topic that held `keys`, found at `known`, resumed after epoch `reported`
    /// had been reported (`None`: none had).
    pub fn new((keys, known): (HashSet<K>, Known<u64>), reported: Option<u64>, ends: Ends) -> Self {
        EpochTail {
            keys,
            known,
            reported,
            ends,
        }
    }

    /// Whether the message `key` of `epoch` is still to be published: not in the topic's
    /// tail, nor of an epoch reported before the checkpoint (a restart with nothing new ends
    /// with that epoch's report again).
    pub fn is_new(&self, epoch: u64, key: &K) -> bool {
        self.reported.is_none_or(|last| epoch > last) && !self.keys.contains(key)
    }

    /// Where a restart from a checkpoint cut now, at `frontier`, starts reading back.
    pub fn resume_offsets(&self, frontier: u64) -> ResumeOffsets {
        resume_offsets(&self.ends.now(), &self.known.first_in(frontier..))
    }
}

/// The resume offsets of a cut: per partition, the lower of where the ends stood and where
/// the first message still to be guarded against lies.
pub fn resume_offsets(ends: &ResumeOffsets, known: &ResumeOffsets) -> ResumeOffsets {
    let mut at = ends.clone();
    for (&partition, &offset) in known {
        let end = at.entry(partition).or_insert(offset);
        *end = (*end).min(offset);
    }
    at
}

/// The lowest resume offset per partition over several checkpoints; a partition that one of
/// them does not name is read from its beginning (absent).
pub fn lowest(all: impl IntoIterator<Item = ResumeOffsets>) -> ResumeOffsets {
    let mut all = all.into_iter();
    let Some(mut low) = all.next() else {
        return ResumeOffsets::new();
    };
    for next in all {
        low.retain(|partition, offset| match next.get(partition) {
            Some(&other) => {
                *offset = (*offset).min(other);
                true
            }
            None => false,
        });
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_partitions_of_known_letters_each_once() {
        let mut known = Known::default();
        assert_eq!(known.partitions().count(), 0);
        for (source, start) in [((3, 5), 1), ((3, 9), 2), ((-1, 0), 3), ((i32::MAX, 7), 4)] {
            known.found(source, 0, start);
        }
        assert_eq!(known.partitions().collect::<Vec<_>>(), [-1, 3, i32::MAX]);
    }

    #[test]
    fn ends_only_move_forward() {
        let ends = Ends::default();
        ends.reached(0, 10);
        ends.reached(0, 7);
        ends.reached(1, 3);
        assert_eq!(ends.now(), BTreeMap::from([(0, 10), (1, 3)]));
    }

    #[test]
    fn the_resume_offset_stays_before_what_a_restart_may_send_again() {
        let mut known = Known::default();
        // A killed run's reports of epochs 5 and 6 at offsets 40 and 41 of partition 0, and
        // of epoch 6 at offset 12 of partition 1.
        known.found(5u64, 0, 40);
        known.found(6, 0, 41);
        known.found(6, 1, 12);
        let ends = BTreeMap::from([(0, 50), (1, 20), (2, 3)]);
        // A checkpoint at frontier 5 must read both epochs back.
        assert_eq!(
            resume_offsets(&ends, &known.first_in(5..)),
            BTreeMap::from([(0, 40), (1, 12), (2, 3)])
        );
        // At frontier 6, epoch 5 is no longer published again.
        assert_eq!(
            resume_offsets(&ends, &known.first_in(6..)),
            BTreeMap::from([(0, 41), (1, 12), (2, 3)])
        );
        assert_eq!(resume_offsets(&ends, &known.first_in(7..)), ends);
    }

    #[test]
    fn the_lowest_of_several_checkpoints_reads_unnamed_partitions_from_the_start() {
        let a = BTreeMap::from([(0, 10), (1, 5)]);
        let b = BTreeMap::from([(0, 7)]);
        assert_eq!(lowest([a.clone(), b]), BTreeMap::from([(0, 7)]));
        assert_eq!(lowest([a.clone()]), a);
        assert_eq!(lowest(Vec::new()), BTreeMap::new());
    }
}
