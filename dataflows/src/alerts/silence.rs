//! Silent sensors: when each sensor last read, and when it falls silent.
//!
//! A sensor last seen at `s` is due at `s + silence` (in epochs). Due times sit in a
//! `BTreeMap`, so a reported epoch looks only at the sensors due by then; a sensor that read
//! again left a stale entry behind, recognised by its last-seen epoch and skipped.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::types::{AlertKind, AlertState, Limit, Transition};
use crate::{Epoch, SensorKey};

/// The sensors of one worker's devices.
#[derive(Debug, Default)]
pub(crate) struct SensorClock {
    last_seen: HashMap<SensorKey, Epoch>,
    due: BTreeMap<Epoch, Vec<SensorKey>>,
    silent: HashSet<SensorKey>,
}

impl SensorClock {
    /// `sensor` read at `epoch` (epochs in order); resolves its `silent` alert if raised.
    pub(crate) fn seen(
        &mut self,
        sensor: SensorKey,
        epoch: Epoch,
        (silence, silence_ms): (u64, u64),
        out: &mut Vec<Transition>,
    ) {
        if self.silent.remove(&sensor) {
            out.push(transition(&sensor, epoch, AlertState::Resolved, silence_ms));
        }
        self.remember(sensor, epoch, silence);
    }

    /// Restore: `sensor` last read at `epoch` (the newest of several wins).
    pub(crate) fn remember(&mut self, sensor: SensorKey, epoch: Epoch, silence: u64) {
        match self.last_seen.get_mut(&sensor) {
            Some(last) if *last >= epoch => return,
            Some(last) => *last = epoch,
            None => {
                self.last_seen.insert(sensor.clone(), epoch);
            }
        }
        self.due
            .entry(epoch.saturating_add(silence))
            .or_default()
            .push(sensor);
    }

    /// Restore: the sensor's `silent` alert was raised.
    pub(crate) fn restore_silent(&mut self, sensor: SensorKey) {
        self.silent.insert(sensor);
    }

    /// Raises `silent` for every sensor due by reported epoch `epoch`; `silence` gives a
    /// device's silence in epochs and milliseconds.
    pub(crate) fn raise_due(
        &mut self,
        epoch: Epoch,
        silence: impl Fn(&str) -> (u64, u64),
        out: &mut Vec<Transition>,
    ) {
        while let Some(entry) = self.due.first_entry() {
            if *entry.key() > epoch {
                break;
            }
            let due = *entry.key();
            for sensor in entry.remove() {
                let Some(&last) = self.last_seen.get(&sensor) else {
                    continue;
                };
                let (epochs, ms) = silence(&sensor.0);
                let current = last.saturating_add(epochs) == due;
                if current && last < epoch && self.silent.insert(sensor.clone()) {
                    out.push(transition(&sensor, epoch, AlertState::Raised, ms));
                }
            }
        }
    }
}

fn transition(sensor: &SensorKey, epoch: Epoch, state: AlertState, ms: u64) -> Transition {
    Transition {
        epoch,
        device: sensor.0.clone(),
        kind: AlertKind::Silent,
        sensor: Some(sensor.1.clone()),
        state,
        value: None,
        limit: Limit::Millis(ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sensor_is_silent_exactly_silence_epochs_after_its_last_reading() {
        let mut clock = SensorClock::default();
        let mut out = Vec::new();
        let g = ("SPECT1".to_owned(), "g".to_owned());
        let h = ("SPECT1".to_owned(), "h".to_owned());
        clock.seen(g.clone(), 10, (5, 15_000), &mut out);
        clock.seen(h.clone(), 11, (5, 15_000), &mut out);
        clock.raise_due(14, |_| (5, 15_000), &mut out);
        assert!(out.is_empty());
        clock.raise_due(15, |_| (5, 15_000), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sensor.as_deref(), Some("g"));
        // h read again at 16: its entry due at 16 is stale.
        clock.seen(h.clone(), 16, (5, 15_000), &mut out);
        clock.raise_due(16, |_| (5, 15_000), &mut out);
        clock.seen(g.clone(), 17, (5, 15_000), &mut out);
        let states: Vec<_> = out.iter().map(|t| (t.epoch, t.state)).collect();
        assert_eq!(
            states,
            [(15, AlertState::Raised), (17, AlertState::Resolved)]
        );
    }
}
