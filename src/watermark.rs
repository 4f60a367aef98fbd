//! Event-time watermarks: one per partition a worker reads, and the worker's frontier, their
//! minimum.
//!
//! A partition's watermark is the newest event time read from it minus `--allowed-lateness`:
//! a reading older than that may still come, anything older is late. The worker's event-time
//! frontier is the minimum over the partitions that take part; timely then takes the minimum
//! over workers and processes. This is Flink's per-partition watermark (FLINK-3375) with its
//! idleness (`withIdleness`, FLINK-5479), in timely's terms.
//!
//! A partition takes part in the minimum in one of these states:
//!
//! ```text
//!            first reading                     nothing for --idle-timeout
//!  Pending ───────────────────> Active ──────────────────────────────────> Idle
//!     │ (at start: holds          ^   \ next reading                        │
//!     │  the frontier back)       │    └────────────────────────────────────┘
//!     │ caught up, nothing read   │
//!     └─────────────> Idle ───────┘ its first reading
//!  any ──(--until-end: at its end)──> Finished (leaves for good)
//! ```
//!
//! - `Pending`: assigned at start and not read from yet: it may hold data older than anything
//!   read so far, so nothing closes until it delivers, reports that it is at its end, or has
//!   been quiet for the idle timeout (FLINK-26018: a first fetch must not push the frontier
//!   past partitions that have not reported).
//! - `Active`: its watermark takes part in the minimum.
//! - `Idle` and `Finished` leave the minimum; they never set it to "end of time" for the
//!   others (FLINK-38477). A partition added while running starts idle and takes part from its
//!   first reading.
//!
//! Time is injected: every method that needs "now" takes it, so the rules are tested here
//! without sleeping.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A partition as the watermarks know it (`0` for a file, stdin or the simulated fleet).
pub type PartitionId = i32;

/// Where a partition stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Assigned at start, nothing read yet: holds the frontier back.
    Pending,
    /// Read from recently: its watermark takes part.
    Active,
    /// Nothing to read for the idle timeout (or caught up before its first reading).
    Idle,
    /// At its end with `--until-end`: nothing more will come.
    Finished,
}

/// One partition's watermark.
#[derive(Clone, Copy, Debug)]
struct Partition {
    /// The newest event time read from it, ms since the Unix epoch.
    newest_ms: Option<i64>,
    state: State,
    /// When it was last read from (or assigned, or restored).
    last_seen: Instant,
}

/// What the partitions allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frontier {
    /// A pending partition has not reported: nothing may close.
    Held,
    /// Every event time before this (ms since the Unix epoch) has been seen.
    At(i64),
    /// No partition takes part (none, or all idle or finished): nothing holds the worker back.
    Free,
}

/// A worker's partition watermarks.
#[derive(Clone, Debug)]
pub struct Watermarks {
    lateness_ms: i64,
    idle_timeout: Duration,
    partitions: BTreeMap<PartitionId, Partition>,
}

impl Watermarks {
    /// Watermarks that allow readings `lateness` behind their partition's newest, and let a
    /// partition leave the minimum after `idle_timeout` without readings.
    pub fn new(lateness: Duration, idle_timeout: Duration) -> Self {
        Watermarks {
            lateness_ms: i64::try_from(lateness.as_millis()).unwrap_or(i64::MAX),
            idle_timeout,
            partitions: BTreeMap::new(),
        }
    }

    /// `partition` is read from now on. Assigned at start it holds the frontier back until it
    /// reports (`held`); added while running it takes part from its first reading. A
    /// partition already known (restored from a checkpoint, say) keeps its watermark.
    pub fn assigned(&mut self, partition: PartitionId, held: bool, now: Instant) {
        self.partitions.entry(partition).or_insert(Partition {
            newest_ms: None,
            state: if held { State::Pending } else { State::Idle },
            last_seen: now,
        });
    }

    /// A checkpoint said `partition` had read up to `newest_ms`: it takes part again at once.
    pub fn restore(&mut self, partition: PartitionId, newest_ms: i64, now: Instant) {
        self.partitions.insert(
            partition,
            Partition {
                newest_ms: Some(newest_ms),
                state: State::Active,
                last_seen: now,
            },
        );
    }

    /// A reading stamped `event_ms` came from `partition`. Returns whether the partition's
    /// watermark or state changed (only then can the frontier move).
    pub fn observe(&mut self, partition: PartitionId, event_ms: i64, now: Instant) -> bool {
        let p = self.partitions.entry(partition).or_insert(Partition {
            newest_ms: None,
            state: State::Idle,
            last_seen: now,
        });
        p.last_seen = now;
        let rejoined = p.state != State::Active && p.state != State::Finished;
        if rejoined {
            p.state = State::Active;
        }
        let newer = p.newest_ms.is_none_or(|n| event_ms > n);
        if newer {
            p.newest_ms = Some(event_ms);
        }
        rejoined || newer
    }

    /// A reading without a usable event time came from `partition`: it keeps the partition
    /// from going idle, and moves no watermark.
    pub fn touch(&mut self, partition: PartitionId, now: Instant) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.last_seen = now;
        }
    }

    /// `partition` has nothing more to read now. One that never delivered holds nothing
    /// back from here on (an empty partition); one that did stays until it idles.
    pub fn caught_up(&mut self, partition: PartitionId) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            if p.state == State::Pending {
                p.state = State::Idle;
            }
        }
    }

    /// `partition` is at its end for good (`--until-end`): it leaves the minimum.
    pub fn finished(&mut self, partition: PartitionId) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.state = State::Finished;
        }
    }

    /// Partitions without readings for the idle timeout leave the minimum. Returns whether
    /// any did.
    pub fn tick(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for p in self.partitions.values_mut() {
            let quiet = now.saturating_duration_since(p.last_seen) >= self.idle_timeout;
            if quiet && matches!(p.state, State::Pending | State::Active) {
                p.state = State::Idle;
                changed = true;
            }
        }
        changed
    }

    /// The minimum over the partitions that take part.
    pub fn frontier(&self) -> Frontier {
        let mut min: Option<i64> = None;
        for p in self.partitions.values() {
            match (p.state, p.newest_ms) {
                (State::Pending, _) => return Frontier::Held,
                (State::Active, Some(newest)) => {
                    let mark = newest.saturating_sub(self.lateness_ms);
                    min = Some(min.map_or(mark, |m| m.min(mark)));
                }
                _ => {}
            }
        }
        min.map_or(Frontier::Free, Frontier::At)
    }

    /// Each partition's newest event time, for checkpoints.
    pub fn newest(&self) -> Vec<(PartitionId, i64)> {
        self.partitions
            .iter()
            .filter_map(|(id, p)| p.newest_ms.map(|n| (*id, n)))
            .collect()
    }

    /// The state of `partition`, if it is known.
    pub fn state(&self, partition: PartitionId) -> Option<State> {
        self.partitions.get(&partition).map(|p| p.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(10);

    fn marks(lateness_ms: u64) -> (Watermarks, Instant) {
        (
            Watermarks::new(Duration::from_millis(lateness_ms), IDLE),
            Instant::now(),
        )
    }

    #[test]
    fn the_frontier_is_the_slowest_active_partition() {
        let (mut w, t) = marks(0);
        assert_eq!(w.frontier(), Frontier::Free, "no partitions");
        w.observe(0, 5_000, t);
        assert_eq!(w.frontier(), Frontier::At(5_000));
        w.observe(1, 1_000, t);
        assert_eq!(w.frontier(), Frontier::At(1_000));
        w.observe(1, 9_000, t);
        assert_eq!(w.frontier(), Frontier::At(5_000));
        assert!(!w.observe(0, 4_000, t), "an older reading moves nothing");
        assert_eq!(w.frontier(), Frontier::At(5_000));
    }

    #[test]
    fn allowed_lateness_holds_each_watermark_back() {
        let (mut w, t) = marks(2_500);
        w.observe(0, 10_000, t);
        w.observe(1, 12_000, t);
        assert_eq!(w.frontier(), Frontier::At(7_500));
    }

    #[test]
    fn a_partition_assigned_at_start_holds_everything_until_it_reports() {
        let (mut w, t) = marks(0);
        w.assigned(0, true, t);
        w.assigned(1, true, t);
        // Partition 0 is delivered whole before partition 1 says anything.
        w.observe(0, 100_000, t);
        assert_eq!(w.frontier(), Frontier::Held);
        w.observe(1, 3_000, t);
        assert_eq!(w.frontier(), Frontier::At(3_000));
    }

    #[test]
    fn an_empty_partition_holds_nothing_back() {
        let (mut w, t) = marks(0);
        w.assigned(0, true, t);
        w.assigned(1, true, t);
        w.caught_up(1);
        w.observe(0, 7_000, t);
        assert_eq!(w.frontier(), Frontier::At(7_000));
        assert_eq!(w.state(1), Some(State::Idle));
        // Caught up after readings, a partition stays in until it idles.
        w.caught_up(0);
        assert_eq!(w.state(0), Some(State::Active));
    }

    #[test]
    fn an_idle_partition_leaves_and_rejoins_with_its_next_reading() {
        let (mut w, t) = marks(0);
        w.observe(0, 1_000, t);
        w.observe(1, 50_000, t + Duration::from_secs(5));
        assert!(!w.tick(t + Duration::from_secs(9)));
        assert_eq!(w.frontier(), Frontier::At(1_000));
        assert!(
            w.tick(t + IDLE),
            "partition 0 is quiet for the idle timeout"
        );
        assert_eq!(w.state(0), Some(State::Idle));
        assert_eq!(w.frontier(), Frontier::At(50_000));
        assert!(w.observe(0, 2_000, t + Duration::from_secs(11)));
        assert_eq!(w.frontier(), Frontier::At(2_000), "it rejoins where it is");
        assert!(w.tick(t + Duration::from_secs(30)));
        assert_eq!(w.frontier(), Frontier::Free, "all idle: nothing holds back");
    }

    #[test]
    fn a_pending_partition_that_never_reports_goes_idle() {
        let (mut w, t) = marks(0);
        w.assigned(0, true, t);
        w.observe(1, 4_000, t);
        assert_eq!(w.frontier(), Frontier::Held);
        w.tick(t + IDLE);
        assert_eq!(w.frontier(), Frontier::Free);
    }

    #[test]
    fn a_finished_partition_leaves_for_good() {
        let (mut w, t) = marks(0);
        w.observe(0, 1_000, t);
        w.observe(1, 8_000, t);
        w.finished(0);
        assert_eq!(w.frontier(), Frontier::At(8_000));
        w.observe(0, 2_000, t);
        assert_eq!(w.state(0), Some(State::Finished));
        assert_eq!(w.frontier(), Frontier::At(8_000));
        w.finished(1);
        assert_eq!(
            w.frontier(),
            Frontier::Free,
            "never end of time for the others"
        );
    }

    #[test]
    fn reassigned_and_added_partitions_take_part_from_their_first_reading() {
        let (mut w, t) = marks(0);
        w.observe(0, 9_000, t);
        w.assigned(7, false, t);
        assert_eq!(
            w.frontier(),
            Frontier::At(9_000),
            "added while running: not held"
        );
        w.observe(7, 6_000, t);
        assert_eq!(w.frontier(), Frontier::At(6_000));
        // Assigning a known partition again keeps its watermark.
        w.assigned(7, true, t);
        assert_eq!(w.frontier(), Frontier::At(6_000));
    }

    #[test]
    fn restored_watermarks_take_part_at_once_and_are_checkpointed() {
        let (mut w, t) = marks(1_000);
        w.restore(2, 30_000, t);
        w.restore(3, 20_000, t);
        w.assigned(2, true, t);
        w.assigned(3, true, t);
        assert_eq!(w.frontier(), Frontier::At(19_000));
        assert_eq!(w.newest(), vec![(2, 30_000), (3, 20_000)]);
    }

    #[test]
    fn a_reading_without_event_time_keeps_a_partition_from_idling() {
        let (mut w, t) = marks(0);
        w.observe(0, 1_000, t);
        w.observe(1, 5_000, t);
        w.touch(0, t + Duration::from_secs(8));
        w.tick(t + Duration::from_secs(12));
        assert_eq!(w.state(0), Some(State::Active));
        assert_eq!(w.state(1), Some(State::Idle));
        assert_eq!(w.frontier(), Frontier::At(1_000));
    }
}
