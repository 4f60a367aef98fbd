//! Which sensors a worker has in the window: each enters once and leaves once.
//!
//! A windowed run counts a sensor while any of its readings is in the window. Sending `+1` at
//! every epoch a sensor reads in and `-1` a window later would cost two updates per sensor and
//! epoch, each arranged by the distinct counts. Instead the writer sends `+1` when a sensor
//! enters this worker's window and `-1` at the epoch it leaves (a window after its last
//! reading), and nothing while it keeps reading: a sensor that reports every epoch costs no
//! update at all. A leaving time is only acted on when the input reaches it, so a sensor that
//! read again in between simply stays.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use hygroflow_dataflows::{Epoch, SensorKey};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The sensors in one worker's window and when each leaves it.
#[derive(Debug)]
pub(crate) struct WindowSensors {
    /// Epochs in the window.
    epochs: u64,
    /// The epoch at which each sensor in the window leaves it.
    leaves: FastMap<SensorKey, Epoch>,
    /// Sensors by the leaving time they had when last checked (a later reading may have
    /// moved it: it is checked again then).
    due: BTreeMap<Epoch, Vec<SensorKey>>,
}

impl WindowSensors {
    /// Sensors in a window of `epochs` epochs.
    pub(crate) fn new(epochs: u64) -> Self {
        WindowSensors {
            epochs: epochs.max(1),
            leaves: FastMap::default(),
            due: BTreeMap::new(),
        }
    }

    /// Epochs in the window.
    pub(crate) fn epochs(&self) -> u64 {
        self.epochs
    }

    /// `sensor` read at `epoch` (or last read then, for a restored sensor); true if it
    /// enters the window (the caller sends its `+1`).
    pub(crate) fn seen(&mut self, sensor: SensorKey, epoch: Epoch) -> bool {
        let leaves = epoch.saturating_add(self.epochs);
        match self.leaves.entry(sensor) {
            Entry::Occupied(mut at) => {
                *at.get_mut() = (*at.get()).max(leaves);
                false
            }
            Entry::Vacant(at) => {
                at.insert(leaves);
                self.due.entry(leaves).or_default().push(sensor);
                true
            }
        }
    }

    /// The sensors that leave the window at an epoch up to `epoch`, each with that epoch (the
    /// caller sends their `-1` there).
    pub(crate) fn leaving_through(&mut self, epoch: Epoch) -> Vec<(SensorKey, Epoch)> {
        let mut out = Vec::new();
        while let Some(entry) = self.due.first_entry() {
            if *entry.key() > epoch {
                break;
            }
            let at = *entry.key();
            for sensor in entry.remove() {
                match self.leaves.get(&sensor).copied() {
                    Some(leaves) if leaves == at => {
                        self.leaves.remove(&sensor);
                        out.push((sensor, at));
                    }
                    // Read again since: check again when it would leave now.
                    Some(leaves) => self.due.entry(leaves).or_default().push(sensor),
                    None => {}
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use hygroflow_dataflows::sensor_key;

    use super::*;

    #[test]
    fn a_sensor_enters_once_and_leaves_a_window_after_its_last_reading() {
        let mut w = WindowSensors::new(3);
        let g = sensor_key("CT1", "g");
        assert!(w.seen(g, 10));
        assert!(!w.seen(g, 11));
        assert!(!w.seen(g, 12));
        assert!(w.leaving_through(14).is_empty());
        assert_eq!(w.leaving_through(15), [(g, 15)]);
        assert!(w.seen(g, 20), "it enters again");
        assert_eq!(w.leaving_through(Epoch::MAX), [(g, 23)]);
    }
}
