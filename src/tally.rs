//! Per-worker pre-aggregation, so the dataflow's input follows devices and sensors, not
//! messages.
//!
//! Within one epoch a worker adds up each device's readings, and remembers every
//! `(device, guid)` pair it has ever seen, in hash maps looked up with borrowed strings: a
//! message costs two lookups and no allocation (a new device or sensor costs its strings).
//! When the epoch closes, each device becomes one update whose difference is `(sum, count)`,
//! exactly what one update per message would have summed to, and each pair seen for the first
//! time becomes one `+1`.
//!
//! A windowed run (`--window 1m`) cannot send a sensor only once: a sensor is in the window
//! while any of its readings is. There [`WorkerTally::windowed`] keeps the set of pairs seen in
//! the open epoch instead, and every pair of the epoch is sent when it closes (the writer also
//! sends its retraction, at the epoch where it leaves the window).

use std::collections::HashMap;

use hygroflow_dataflows::{SensorKey, Tally};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One worker's tallies.
#[derive(Debug, Default)]
pub struct WorkerTally {
    /// This epoch's sum and count per device.
    devices: FastMap<String, Tally>,
    /// Every sensor this worker has seen: guid -> its devices (almost always one).
    seen: FastMap<String, Vec<String>>,
    /// Sensors first seen this epoch (windowed: seen this epoch).
    new_sensors: Vec<SensorKey>,
    /// Windowed: `seen` holds this epoch's sensors only, and is emptied when it closes.
    windowed: bool,
}

impl WorkerTally {
    /// The tallies of a windowed run: every epoch sends each sensor it saw, not only new ones.
    pub fn windowed() -> Self {
        WorkerTally {
            windowed: true,
            ..WorkerTally::default()
        }
    }

    /// Adds one reading.
    pub fn add(&mut self, guid: &str, device: &str, humidity_micro: i64) {
        match self.devices.get_mut(device) {
            Some(tally) => {
                tally.0 += humidity_micro;
                tally.1 += 1;
            }
            None => {
                self.devices.insert(device.to_owned(), (humidity_micro, 1));
            }
        }
        if self.mark_seen(device, guid) {
            self.new_sensors.push((device.to_owned(), guid.to_owned()));
        }
    }

    /// Records that `(device, guid)` is known; true if it was not.
    pub fn mark_seen(&mut self, device: &str, guid: &str) -> bool {
        match self.seen.get_mut(guid) {
            Some(devices) if devices.iter().any(|d| d == device) => false,
            Some(devices) => {
                devices.push(device.to_owned());
                true
            }
            None => {
                self.seen.insert(guid.to_owned(), vec![device.to_owned()]);
                true
            }
        }
    }

    /// Takes this epoch's per-device sums (the map keeps its capacity).
    pub fn drain_devices(&mut self) -> impl Iterator<Item = (String, Tally)> + '_ {
        self.devices.drain()
    }

    /// Takes the sensors first seen this epoch (windowed: every sensor seen this epoch).
    pub fn drain_new_sensors(&mut self) -> impl Iterator<Item = SensorKey> + '_ {
        if self.windowed {
            self.seen.clear();
        }
        self.new_sensors.drain(..)
    }

    /// Every sensor this worker has seen, sorted, as a checkpoint stores them.
    pub fn sensors(&self) -> Vec<SensorKey> {
        let mut all: Vec<SensorKey> = self
            .seen
            .iter()
            .flat_map(|(guid, devices)| devices.iter().map(|d| (d.clone(), guid.clone())))
            .collect();
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_per_device_and_reports_each_sensor_once() {
        let mut t = WorkerTally::default();
        t.add("g1", "CT1", 10);
        t.add("g1", "CT1", 20);
        t.add("g2", "CT1", 5);
        t.add("g1", "MRI1", 7);
        let mut devices: Vec<_> = t.drain_devices().collect();
        devices.sort();
        assert_eq!(
            devices,
            vec![("CT1".into(), (35, 3)), ("MRI1".into(), (7, 1))]
        );
        let new: Vec<_> = t.drain_new_sensors().collect();
        assert_eq!(new.len(), 3, "{new:?}");
        // The next epoch: known sensors are not sent again.
        t.add("g1", "CT1", 1);
        t.add("g3", "CT2", 1);
        let new: Vec<_> = t.drain_new_sensors().collect();
        assert_eq!(new, vec![("CT2".into(), "g3".into())]);
        assert_eq!(t.sensors().len(), 4);
        assert!(!t.mark_seen("CT1", "g2"));
    }

    #[test]
    fn windowed_tallies_send_every_sensor_of_each_epoch() {
        let mut t = WorkerTally::windowed();
        t.add("g1", "CT1", 10);
        t.add("g1", "CT1", 20);
        t.add("g2", "CT1", 5);
        let mut new: Vec<_> = t.drain_new_sensors().collect();
        new.sort();
        assert_eq!(
            new,
            vec![("CT1".into(), "g1".into()), ("CT1".into(), "g2".into())]
        );
        // The next epoch: a sensor seen before is sent again, once.
        t.add("g1", "CT1", 1);
        t.add("g1", "CT1", 2);
        let new: Vec<_> = t.drain_new_sensors().collect();
        assert_eq!(new, vec![("CT1".into(), "g1".into())]);
        assert_eq!(t.drain_new_sensors().count(), 0);
    }
}
