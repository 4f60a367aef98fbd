//! Which sensors a worker has in the window: each enters once and leaves once.
//!
//! A windowed run counts a sensor while any of its readings is in the window. Sending `+1` at
//! every epoch a sensor reads in and `-1` a window later would cost two updates per sensor and
//! epoch, each arranged by the distinct counts. Instead the writer sends `+1` when a sensor
//! enters this worker's window and `-1` at the epoch it leaves (a window after its last
//! reading), and nothing while it keeps reading: a sensor that reports every epoch costs no
//! update at all. A leaving time is only acted on when the input reaches it, so a sensor that
//! read again in between simply stays.

use std::collections::{BTreeMap, HashMap};

use hygroflow_dataflows::{Epoch, SensorKey};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The sensors in one worker's window and when each leaves it.
#[derive(Debug)]
pub(crate) struct WindowSensors {
    /// Epochs in the window.
    epochs: u64,
    /// device -> guid -> the epoch at which the sensor leaves the window.
    leaves: FastMap<String, FastMap<String, Epoch>>,
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
    pub(crate) fn seen(&mut self, (device, guid): (&str, &str), epoch: Epoch) -> bool {
        let leaves = epoch.saturating_add(self.epochs);
        let sensors = match self.leaves.get_mut(device) {
            Some(sensors) => sensors,
            None => self.leaves.entry(device.to_owned()).or_default(),
        };
        match sensors.get_mut(guid) {
            Some(at) => {
                *at = (*at).max(leaves);
                false
            }
            None => {
                sensors.insert(guid.to_owned(), leaves);
                let sensor = (device.to_owned(), guid.to_owned());
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
                let sensors = self.leaves.get_mut(&sensor.0);
                match sensors.as_ref().and_then(|s| s.get(&sensor.1)).copied() {
                    Some(leaves) if leaves == at => {
                        if let Some(sensors) = sensors {
                            sensors.remove(&sensor.1);
                        }
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
    use super::*;

    #[test]
    fn a_sensor_enters_once_and_leaves_a_window_after_its_last_reading() {
        let mut w = WindowSensors::new(3);
        let g = ("CT1".to_owned(), "g".to_owned());
        assert!(w.seen(("CT1", "g"), 10));
        assert!(!w.seen(("CT1", "g"), 11));
        assert!(!w.seen(("CT1", "g"), 12));
        assert!(w.leaving_through(14).is_empty());
        assert_eq!(w.leaving_through(15), [(g.clone(), 15)]);
        assert!(w.seen(("CT1", "g"), 20), "it enters again");
        assert_eq!(w.leaving_through(Epoch::MAX), [(g, 23)]);
    }
}
