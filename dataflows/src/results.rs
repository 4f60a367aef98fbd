//! Results: turns the stream of `Stat` updates gathered on worker 0 into the cumulative facts
//! of each epoch.
//!
//! Differential sends changes (`+1` for a new fact, `-1` for a retracted one). `Results`
//! keeps the updates that arrived for epochs not yet complete, and when the caller says an
//! epoch is complete, applies every update at or before it to the cumulative state. Updates
//! for later epochs can arrive early (another worker may be ahead) and are kept for later.
//! The facts stay exact integers; the report sink in the root crate divides and sorts them.
//! Devices are keys in the facts; `Results` keeps each [`Stat::DeviceName`] in a table of
//! its own, so that the report can name them ([`Results::name`]).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use differential_dataflow::consolidation::consolidate;

use crate::{DeviceKey, Epoch, Stat};

/// Cumulative state plus updates not yet applied.
#[derive(Debug, Default)]
pub struct Results {
    /// Updates not yet applied, by epoch: advancing through many epochs at once (event time
    /// replaying a file) touches each update once.
    pending: BTreeMap<Epoch, Vec<(Stat, isize)>>,
    /// The facts now, hashed: an epoch changes a few hundred of them, and a tree of string
    /// keys made each change a chain of string comparisons.
    state: FastMap<Stat, isize>,
    /// Every device's name, by key (names are never retracted).
    names: FastMap<DeviceKey, String>,
}

type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

impl Results {
    /// Takes updates as they arrive from the dataflow.
    pub fn absorb(&mut self, updates: impl IntoIterator<Item = (Stat, Epoch, isize)>) {
        // Updates come in runs of one epoch: one lookup per run, not per update.
        let mut run: Option<(Epoch, Vec<(Stat, isize)>)> = None;
        for (stat, epoch, diff) in updates {
            match &mut run {
                Some((at, batch)) if *at == epoch => batch.push((stat, diff)),
                _ => {
                    self.keep(run.take());
                    run = Some((epoch, vec![(stat, diff)]));
                }
            }
        }
        self.keep(run);
    }

    fn keep(&mut self, run: Option<(Epoch, Vec<(Stat, isize)>)>) {
        if let Some((epoch, mut batch)) = run {
            let pending = self.pending.entry(epoch).or_default();
            if pending.is_empty() {
                *pending = batch;
            } else {
                pending.append(&mut batch);
            }
        }
    }

    /// The pending epochs before `frontier` (`None`: all), with their updates.
    fn pending_before(
        &self,
        frontier: Option<Epoch>,
    ) -> impl Iterator<Item = (&Epoch, &Vec<(Stat, isize)>)> {
        let end = frontier.unwrap_or(Epoch::MAX);
        let last = frontier
            .is_none()
            .then(|| self.pending.get_key_value(&Epoch::MAX));
        self.pending.range(..end).chain(last.flatten())
    }

    /// Epochs before `frontier` that have updates waiting (`None`: the input is finished).
    pub fn pending_epochs(&self, frontier: Option<Epoch>) -> BTreeSet<Epoch> {
        self.pending_before(frontier).map(|(t, _)| *t).collect()
    }

    /// Epochs before `frontier` (`None`: any) with a waiting update of a fact `pick` selects.
    pub fn pending_epochs_of(
        &self,
        frontier: Option<Epoch>,
        pick: impl Fn(&Stat) -> bool,
    ) -> BTreeSet<Epoch> {
        self.pending_before(frontier)
            .filter(|(_, updates)| updates.iter().any(|(stat, _)| pick(stat)))
            .map(|(t, _)| *t)
            .collect()
    }

    /// Applies every update at or before `epoch` and returns the facts that changed,
    /// consolidated: a fact whose additions and retractions cancel is not a change.
    pub fn advance(&mut self, epoch: Epoch) -> Vec<(Stat, isize)> {
        let mut changes = self.take_through(epoch);
        // Sorted and summed in place: the changes come out sorted, and no map is built.
        consolidate(&mut changes);
        for (stat, r) in &changes {
            self.fold(stat.clone(), *r);
        }
        changes
    }

    /// Applies every update at or before `epoch`, as [`Results::advance`] does, for a caller
    /// that does not need the changes: each update goes into the state as it is, unsorted.
    /// In event time over many small epochs, sorting each epoch's changes to consolidate them
    /// was a third of the report thread's time.
    pub fn apply(&mut self, epoch: Epoch) {
        for (stat, r) in self.take_through(epoch) {
            self.fold(stat, r);
        }
    }

    /// Adds `r` of `stat` to the state (a fact whose count returns to zero leaves it), or to
    /// the names.
    fn fold(&mut self, stat: Stat, r: isize) {
        if let Stat::DeviceName { device, name } = stat {
            if r > 0 {
                self.names.entry(device).or_insert(name);
            }
            return;
        }
        match self.state.entry(stat) {
            Entry::Occupied(mut entry) => {
                *entry.get_mut() += r;
                if *entry.get() == 0 {
                    entry.remove();
                }
            }
            Entry::Vacant(entry) => {
                entry.insert(r);
            }
        }
    }

    /// The pending updates at or before `epoch`, taken out.
    fn take_through(&mut self, epoch: Epoch) -> Vec<(Stat, isize)> {
        let due = match epoch.checked_add(1) {
            Some(next) => {
                let later = self.pending.split_off(&next);
                std::mem::replace(&mut self.pending, later)
            }
            None => std::mem::take(&mut self.pending),
        };
        if due.len() == 1 {
            due.into_values().next().unwrap_or_default()
        } else {
            due.into_values().flatten().collect()
        }
    }

    /// The facts in the cumulative state (each with multiplicity one when healthy), in no
    /// particular order; device names are not among them ([`Results::name`]).
    pub fn facts(&self) -> impl Iterator<Item = (&Stat, &isize)> {
        self.state.iter()
    }

    /// The name of the device whose key is `device`, once a fact has named it.
    pub fn name(&self, device: &DeviceKey) -> Option<&str> {
        self.names.get(device).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(results: &Results) -> Vec<(Stat, isize)> {
        let mut facts: Vec<(Stat, isize)> = results.facts().map(|(s, r)| (s.clone(), *r)).collect();
        facts.sort();
        facts
    }

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
        assert_eq!(facts(&results), [(Stat::TotalMessages(3), 1)]);
        let changes = results.advance(2);
        assert_eq!(changes.len(), 2);
        assert_eq!(facts(&results), [(Stat::TotalMessages(5), 1)]);
        assert!(results.pending_epochs(None).is_empty());
    }

    #[test]
    fn applying_unconsolidated_updates_reaches_the_state_that_advancing_does() {
        let ct1 = crate::Key::of("CT1");
        let humidity = |sum_micro, count| Stat::DeviceHumidity {
            device: ct1,
            sum_micro,
            count,
        };
        let name = Stat::DeviceName {
            device: ct1,
            name: "CT1".into(),
        };
        // A retraction before the addition it cancels, a fact added and retracted in one
        // epoch, and a name.
        let updates = [
            (Stat::TotalMessages(2), 1, -1),
            (humidity(10, 1), 1, 1),
            (name.clone(), 1, 1),
            (Stat::TotalMessages(2), 1, 1),
            (Stat::TotalMessages(3), 1, 1),
            (humidity(10, 1), 2, -1),
            (Stat::TotalSensors(1), 2, 1),
            (humidity(30, 2), 2, 1),
            (Stat::TotalSensors(1), 2, -1),
            (name, 2, 1),
        ];
        let (mut applied, mut advanced) = (Results::default(), Results::default());
        applied.absorb(updates.clone());
        advanced.absorb(updates);
        for epoch in [1, 2] {
            applied.apply(epoch);
            advanced.advance(epoch);
            assert_eq!(facts(&applied), facts(&advanced), "epoch {epoch}");
            assert_eq!(applied.name(&ct1), Some("CT1"));
        }
        assert_eq!(
            facts(&applied),
            [(humidity(30, 2), 1), (Stat::TotalMessages(3), 1)]
        );
    }
}
