//! Per-epoch pre-aggregation on each worker.
//!
//! Within one epoch a worker adds up each sensor's readings in a hash map keyed by borrowed
//! strings, so a message costs one lookup and no allocation (a new sensor costs two strings).
//! When the epoch closes, each sensor becomes one dataflow update whose difference is
//! `(sum, count)`: exactly what one update per message would have summed to.

use std::collections::HashMap;

use hygroflow_dataflows::{SensorKey, Tally};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One epoch's readings on one worker, summed per sensor.
#[derive(Debug, Default)]
pub struct EpochTally {
    /// guid -> the devices it reported to this epoch (almost always one) and their tallies.
    by_guid: FastMap<String, Vec<(String, Tally)>>,
}

impl EpochTally {
    /// Adds one reading.
    pub fn add(&mut self, guid: &str, device: &str, humidity_micro: i64) {
        if let Some(devices) = self.by_guid.get_mut(guid) {
            match devices.iter_mut().find(|(d, _)| d == device) {
                Some((_, tally)) => {
                    tally.0 += humidity_micro;
                    tally.1 += 1;
                }
                None => devices.push((device.to_owned(), (humidity_micro, 1))),
            }
        } else {
            self.by_guid.insert(
                guid.to_owned(),
                vec![(device.to_owned(), (humidity_micro, 1))],
            );
        }
    }

    /// Whether nothing was added since the last drain.
    pub fn is_empty(&self) -> bool {
        self.by_guid.is_empty()
    }

    /// Takes every sensor's tally, leaving the map empty (its capacity is kept).
    pub fn drain(&mut self) -> impl Iterator<Item = (SensorKey, Tally)> + '_ {
        self.by_guid.drain().flat_map(|(guid, devices)| {
            devices
                .into_iter()
                .map(move |(device, tally)| ((device, guid.clone()), tally))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_per_sensor_and_device() {
        let mut t = EpochTally::default();
        t.add("g1", "CT1", 10);
        t.add("g1", "CT1", 20);
        t.add("g2", "CT1", 5);
        t.add("g1", "MRI1", 7);
        let mut got: Vec<_> = t.drain().collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (("CT1".into(), "g1".into()), (30, 2)),
                (("CT1".into(), "g2".into()), (5, 1)),
                (("MRI1".into(), "g1".into()), (7, 1)),
            ]
        );
        assert!(t.is_empty());
    }
}
