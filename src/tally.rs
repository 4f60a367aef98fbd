//! Per-worker pre-aggregation, so the dataflow's input follows devices and sensors, not
//! messages.
//!
//! Within one epoch a worker adds up each device's readings, and remembers every
//! `(device, guid)` pair it has ever seen with the last epoch it read in, in hash maps looked
//! up with borrowed strings: a message costs two lookups and no allocation (a new device or
//! sensor costs its strings). When the epoch closes, each device becomes one update whose
//! difference is `(sum, count)`, exactly what one update per message would have summed to,
//! and each pair seen for the first time becomes one `+1`.
//!
//! A windowed run (`--window 1m`) cannot send a sensor only once: a sensor is in the window
//! while any of its readings is. Alerts need every sensor that read in an epoch too (silent
//! sensors). Tallies that [`track epochs`](WorkerTally::tracking_epochs) also list the pairs
//! seen in the open epoch, each once, found with the same lookup.

use std::collections::HashMap;

use hygroflow_dataflows::{Epoch, SensorKey, Tally};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One worker's tallies.
#[derive(Debug, Default)]
pub struct WorkerTally {
    /// This epoch's sum and count per device.
    devices: FastMap<String, Tally>,
    /// Every sensor this worker has seen: guid -> its devices (almost always one), each with
    /// the last epoch it read in.
    seen: FastMap<String, Vec<(String, Epoch)>>,
    /// Sensors first seen this epoch.
    new_sensors: Vec<SensorKey>,
    /// Tracking epochs: every sensor seen this epoch, by device.
    epoch_sensors: FastMap<String, Vec<String>>,
    tracking: bool,
    /// The epoch readings are added to.
    epoch: Epoch,
}

impl WorkerTally {
    /// Tallies that also list every sensor seen in each epoch (windows, alerts).
    pub fn tracking_epochs() -> Self {
        WorkerTally {
            tracking: true,
            ..WorkerTally::default()
        }
    }

    /// Readings from now on belong to `epoch`.
    pub fn open(&mut self, epoch: Epoch) {
        self.epoch = epoch;
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
        let epoch = self.epoch;
        let devices = match self.seen.get_mut(guid) {
            Some(devices) => devices,
            None => self.seen.entry(guid.to_owned()).or_default(),
        };
        match devices.iter_mut().find(|(d, _)| d == device) {
            Some((_, last)) if *last == epoch => {}
            Some((_, last)) => {
                *last = epoch;
                if self.tracking {
                    track(&mut self.epoch_sensors, device, guid);
                }
            }
            None => {
                devices.push((device.to_owned(), epoch));
                if self.tracking {
                    track(&mut self.epoch_sensors, device, guid);
                }
                self.new_sensors.push((device.to_owned(), guid.to_owned()));
            }
        }
    }

    /// Records that `(device, guid)` last read at `epoch` (restored from a checkpoint); true
    /// if the pair was not known.
    pub fn restore_seen(&mut self, device: &str, guid: &str, epoch: Epoch) -> bool {
        let devices = self.seen.entry(guid.to_owned()).or_default();
        match devices.iter_mut().find(|(d, _)| d == device) {
            Some((_, last)) => {
                *last = (*last).max(epoch);
                false
            }
            None => {
                devices.push((device.to_owned(), epoch));
                true
            }
        }
    }

    /// Takes this epoch's per-device sums (the map keeps its capacity).
    pub fn drain_devices(&mut self) -> impl Iterator<Item = (String, Tally)> + '_ {
        self.devices.drain()
    }

    /// Takes the sensors first seen this epoch.
    pub fn drain_new_sensors(&mut self) -> impl Iterator<Item = SensorKey> + '_ {
        self.new_sensors.drain(..)
    }

    /// Tracking epochs: takes every sensor seen this epoch, each once, by device.
    pub fn drain_epoch_sensors(&mut self) -> impl Iterator<Item = (String, Vec<String>)> + '_ {
        self.epoch_sensors.drain()
    }

    /// Every sensor this worker has seen with the last epoch it read in, sorted, as a
    /// checkpoint stores them.
    pub fn sensors(&self) -> Vec<(String, String, Epoch)> {
        let mut all: Vec<(String, String, Epoch)> = self
            .seen
            .iter()
            .flat_map(|(guid, devices)| {
                devices
                    .iter()
                    .map(|(d, last)| (d.clone(), guid.clone(), *last))
            })
            .collect();
        all.sort();
        all
    }
}

/// Adds `guid` to the sensors of `device` seen this epoch.
fn track(epoch_sensors: &mut FastMap<String, Vec<String>>, device: &str, guid: &str) {
    match epoch_sensors.get_mut(device) {
        Some(guids) => guids.push(guid.to_owned()),
        None => {
            epoch_sensors.insert(device.to_owned(), vec![guid.to_owned()]);
        }
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
        assert!(!t.restore_seen("CT1", "g2", 0));
    }

    #[test]
    fn tracking_tallies_list_every_sensor_of_each_epoch_once() {
        let mut t = WorkerTally::tracking_epochs();
        t.open(7);
        t.add("g1", "CT1", 10);
        t.add("g1", "CT1", 20);
        t.add("g2", "CT1", 5);
        let mut new: Vec<_> = t.drain_epoch_sensors().collect();
        new.iter_mut().for_each(|(_, guids)| guids.sort());
        assert_eq!(new, vec![("CT1".into(), vec!["g1".into(), "g2".into()])]);
        assert_eq!(t.drain_new_sensors().count(), 2);
        // The next epoch: a sensor seen before is listed again, once.
        t.open(8);
        t.add("g1", "CT1", 1);
        t.add("g1", "CT1", 2);
        let new: Vec<_> = t.drain_epoch_sensors().collect();
        assert_eq!(new, vec![("CT1".into(), vec!["g1".into()])]);
        assert_eq!(t.drain_new_sensors().count(), 0);
        assert_eq!(
            t.sensors(),
            vec![
                ("CT1".into(), "g1".into(), 8),
                ("CT1".into(), "g2".into(), 7)
            ]
        );
    }
}
