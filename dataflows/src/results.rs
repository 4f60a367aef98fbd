//! Results: turns the stream of `Stat` updates gathered on worker 0 into reports.
//!
//! Differential sends changes (`+1` for a new fact, `-1` for a retracted one). `Results`
//! keeps the updates that arrived for epochs not yet complete, and when the caller says an
//! epoch is complete, applies every update at or before it to the cumulative state. Updates
//! for later epochs can arrive early (another worker may be ahead) and are kept for later.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Counter, Epoch, Stat, MICROS_PER_PERCENT};

/// Cumulative state plus updates not yet applied.
#[derive(Debug, Default)]
pub struct Results {
    pending: Vec<(Stat, Epoch, isize)>,
    state: BTreeMap<Stat, isize>,
}

impl Results {
    /// Takes updates as they arrive from the dataflow.
    pub fn absorb(&mut self, updates: impl IntoIterator<Item = (Stat, Epoch, isize)>) {
        self.pending.extend(updates);
    }

    /// Epochs before `frontier` that have updates waiting (`None`: the input is finished).
    pub fn pending_epochs(&self, frontier: Option<Epoch>) -> BTreeSet<Epoch> {
        self.pending
            .iter()
            .map(|(_, t, _)| *t)
            .filter(|t| frontier.is_none_or(|f| *t < f))
            .collect()
    }

    /// Applies every update at or before `epoch` and returns the facts that changed,
    /// consolidated: a fact whose additions and retractions cancel is not a change.
    pub fn advance(&mut self, epoch: Epoch) -> Vec<(Stat, isize)> {
        let mut changes: BTreeMap<Stat, isize> = BTreeMap::new();
        let mut later = Vec::new();
        for (stat, t, r) in self.pending.drain(..) {
            if t <= epoch {
                *changes.entry(stat).or_insert(0) += r;
            } else {
                later.push((stat, t, r));
            }
        }
        self.pending = later;
        changes.retain(|_, r| *r != 0);
        for (stat, r) in &changes {
            let entry = self.state.entry(stat.clone()).or_insert(0);
            *entry += r;
            if *entry == 0 {
                self.state.remove(stat);
            }
        }
        changes.into_iter().collect()
    }

    /// The cumulative state as a report.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::from_facts(self.state.iter().filter(|(_, r)| **r > 0).map(|(s, _)| s))
    }

    /// The facts in the cumulative state (each with multiplicity one when healthy).
    pub fn facts(&self) -> impl Iterator<Item = (&Stat, &isize)> {
        self.state.iter()
    }
}

/// The four analyses plus the side counters, sorted as the seed prints them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// (i) Average humidity per device, by value descending, ties by device ascending.
    pub avg_humidity_by_device: Vec<(String, f64)>,
    /// (ii) Valid messages processed.
    pub total_messages: i64,
    /// (iii) Distinct sensors per device, by device ascending (plain string order).
    pub sensors_by_device: Vec<(String, i64)>,
    /// (iv) Distinct sensors in total.
    pub total_sensors: i64,
    /// Messages rejected by validation.
    pub rejected_messages: i64,
    /// Messages that arrived after their event-time epoch had closed.
    pub late_messages: i64,
}

impl Snapshot {
    /// Builds a report from facts (the full state, or only the facts added in one epoch).
    pub fn from_facts<'a>(facts: impl IntoIterator<Item = &'a Stat>) -> Self {
        let mut snapshot = Snapshot::default();
        for fact in facts {
            match fact {
                Stat::DeviceHumidity {
                    device,
                    sum_micro,
                    count,
                } => {
                    if *count > 0 {
                        let avg = *sum_micro as f64 / *count as f64 / MICROS_PER_PERCENT as f64;
                        snapshot.avg_humidity_by_device.push((device.clone(), avg));
                    }
                }
                Stat::TotalMessages(n) => snapshot.total_messages = *n,
                Stat::DeviceSensors { device, sensors } => {
                    snapshot.sensors_by_device.push((device.clone(), *sensors));
                }
                Stat::TotalSensors(n) => snapshot.total_sensors = *n,
                Stat::Count(Counter::Rejected, n) => snapshot.rejected_messages = *n,
                Stat::Count(Counter::Late, n) => snapshot.late_messages = *n,
            }
        }
        snapshot
            .avg_humidity_by_device
            .sort_by(|(da, a), (db, b)| b.total_cmp(a).then_with(|| da.cmp(db)));
        snapshot.sensors_by_device.sort();
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_updates_wait_for_their_epoch() {
        let mut results = Results::default();
        results.absorb([
            (Stat::TotalMessages(3), 1, 1),
            (Stat::TotalMessages(3), 2, -1),
            (Stat::TotalMessages(5), 2, 1),
        ]);
        assert_eq!(results.pending_epochs(Some(2)), BTreeSet::from([1]));
        assert_eq!(results.advance(1), vec![(Stat::TotalMessages(3), 1)]);
        assert_eq!(results.snapshot().total_messages, 3);
        let changes = results.advance(2);
        assert_eq!(changes.len(), 2);
        assert_eq!(results.snapshot().total_messages, 5);
        assert!(results.pending_epochs(None).is_empty());
    }

    #[test]
    fn averages_sort_descending_with_ties_by_device() {
        let fact = |device: &str, sum_micro, count| Stat::DeviceHumidity {
            device: device.into(),
            sum_micro,
            count,
        };
        let facts = [
            fact("MRI1", 50_000_000, 1),
            fact("CT2", 100_000_000, 2),
            fact("CT1", 140_000_000, 2),
        ];
        let snapshot = Snapshot::from_facts(&facts);
        let order: Vec<&str> = snapshot
            .avg_humidity_by_device
            .iter()
            .map(|(d, _)| d.as_str())
            .collect();
        assert_eq!(order, ["CT1", "CT2", "MRI1"]);
    }
}
