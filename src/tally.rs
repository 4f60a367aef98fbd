//! Per-worker pre-aggregation, so the dataflow's input follows devices and sensors, not
//! messages.
//!
//! Within one epoch a worker adds up each device's readings and recognises the sensors it has
//! seen, as 32-byte keys (`hygroflow_dataflows::keys`). A message costs one lookup of its
//! device by borrowed name, one XXH3 of its guid and one lookup of the sensor's key, and no
//! allocation (a new device costs its name). When the epoch closes, each device becomes one
//! update whose difference is `(sum, count)`, exactly what one update per message would have
//! summed to, and each device seen for the first time sends its name once.
//!
//! [`WorkerTally::add`] says whether a reading's sensor is [`Sighting::New`], seen for the
//! first time in this epoch, or seen again; the epoch writer sends new sensors into the
//! dataflow (cumulative) or into the window (windowed). How much a worker remembers:
//! - [`Memory::All`]: every sensor it has seen with the last epoch it read in, so `New` is
//!   exact. Checkpoints need this (a worker's file lists its sensors) and so do alerts, which
//!   also get every sensor seen in each epoch by name, and keep each sensor's guid.
//! - [`Memory::Recent`]: a fixed 768 KB cache of recent sensors (4-way set-associative,
//!   16,384 entries). A sensor that fell out of it is `New` again; the dataflow's distinct counts
//!   take a sensor any number of times, so this costs an update, never a wrong count, and a
//!   worker's memory stays flat however many sensors there are: with two workers, only the
//!   sensors' owners (`distinct_sensors.rs`) keep them, not every worker that saw them. A fleet
//!   that fits (2,100 sensors) sends each sensor once, as with `All`.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use hygroflow_dataflows::{DeviceKey, Epoch, GuidKey, Key, SensorKey, Tally};

use crate::checkpoint::KnownSensors;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// How much of the sensors it has seen a worker remembers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Memory {
    /// Recent sensors only, in a fixed-size cache.
    #[default]
    Recent,
    /// Every sensor, with the last epoch it read in.
    All,
    /// Every sensor, and its name: also every sensor of each epoch by name (alerts).
    AllNamed,
}

/// What a reading says of its sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sighting {
    /// Not remembered: new to this worker (with [`Memory::Recent`], or forgotten).
    New(SensorKey),
    /// Remembered, and read for the first time in this epoch.
    FirstThisEpoch(SensorKey),
    /// Already read in this epoch.
    Again,
}

/// Sets of the recent-sensor cache.
const RECENT_SETS: usize = 1 << 12;

/// Entries of each set: 16,384 entries of 48 bytes, 768 KB, which stays in a core's L2 cache.
/// A set overflows when more than four of its sensors are recent: for 2,100 sensors that is
/// about one set in 6,000, so a small fleet's sensors are each sent once.
const RECENT_WAYS: usize = 4;

/// A device this worker has read from: its key and name, and this epoch's sums.
#[derive(Debug)]
struct Device {
    key: DeviceKey,
    name: String,
    /// This epoch's sum and count (a count of 0: not read in this epoch).
    sums: Tally,
}

/// One worker's tallies.
#[derive(Debug, Default)]
pub struct WorkerTally {
    /// Every device this worker has read from, by name: its index in `devices`. Kept across
    /// epochs, so a reading costs one lookup by borrowed name and an epoch allocates nothing.
    slots: FastMap<String, usize>,
    /// The devices of `slots`, with this epoch's sums.
    devices: Vec<Device>,
    /// The indices of the devices read in this epoch, in the order first read.
    read: Vec<usize>,
    /// The name of every device this worker has seen.
    names: FastMap<DeviceKey, String>,
    /// Devices first seen this epoch.
    new_names: Vec<(DeviceKey, String)>,
    /// `All`: every sensor this worker has seen, by device, with the last epoch it read in.
    /// One map per device of 24-byte entries: a million sensors cost about 40 MB.
    seen: FastMap<DeviceKey, FastMap<GuidKey, Epoch>>,
    /// `Recent`: recent sensors with the last epoch they read in (`RECENT_SETS` sets of
    /// `RECENT_WAYS`, allocated at the first reading).
    recent: Vec<Option<(SensorKey, Epoch)>>,
    /// `AllNamed`: every sensor seen this epoch, by device.
    epoch_names: FastMap<String, Vec<String>>,
    /// `AllNamed`: the guid of every sensor seen.
    guids: FastMap<GuidKey, Box<str>>,
    memory: Memory,
    /// The epoch readings are added to.
    epoch: Epoch,
}

impl WorkerTally {
    /// Tallies that remember sensors as `memory` says.
    pub fn new(memory: Memory) -> Self {
        WorkerTally {
            memory,
            ..WorkerTally::default()
        }
    }

    /// Readings from now on belong to `epoch`.
    pub fn open(&mut self, epoch: Epoch) {
        self.epoch = epoch;
    }

    /// Adds one reading, and says what it tells of its sensor.
    pub fn add(&mut self, guid: &str, device: &str, humidity_micro: i64) -> Sighting {
        let slot = match self.slots.get(device) {
            Some(slot) => *slot,
            None => self.first_reading(device),
        };
        let entry = &mut self.devices[slot];
        if entry.sums.1 == 0 {
            self.read.push(slot);
        }
        entry.sums.0 += humidity_micro;
        entry.sums.1 += 1;
        let device_key = entry.key;
        let sensor = (device_key, Key::of(guid));
        let sighting = match self.memory {
            Memory::Recent => self.recall(sensor),
            Memory::All | Memory::AllNamed => self.remember(sensor),
        };
        if self.memory == Memory::AllNamed {
            match sighting {
                Sighting::New(_) => {
                    self.guids.insert(sensor.1, guid.into());
                    track(&mut self.epoch_names, device, guid);
                }
                Sighting::FirstThisEpoch(_) => track(&mut self.epoch_names, device, guid),
                Sighting::Again => {}
            }
        }
        sighting
    }

    /// The first reading from `device` in this run: a slot for it, and its name sent if no
    /// checkpoint had it.
    #[cold]
    fn first_reading(&mut self, device: &str) -> usize {
        let key = Key::of(device);
        let slot = self.devices.len();
        self.devices.push(Device {
            key,
            name: device.to_owned(),
            sums: (0, 0),
        });
        self.slots.insert(device.to_owned(), slot);
        if let Entry::Vacant(name) = self.names.entry(key) {
            name.insert(device.to_owned());
            self.new_names.push((key, device.to_owned()));
        }
        slot
    }

    /// `All`: looks `sensor` up among every sensor seen.
    fn remember(&mut self, sensor: SensorKey) -> Sighting {
        let seen = match self.seen.get_mut(&sensor.0) {
            Some(seen) => seen,
            None => self.seen.entry(sensor.0).or_default(),
        };
        match seen.entry(sensor.1) {
            Entry::Occupied(mut last) if *last.get() != self.epoch => {
                *last.get_mut() = self.epoch;
                Sighting::FirstThisEpoch(sensor)
            }
            Entry::Occupied(_) => Sighting::Again,
            Entry::Vacant(last) => {
                last.insert(self.epoch);
                Sighting::New(sensor)
            }
        }
    }

    /// `Recent`: looks `sensor` up in the cache; a sensor not there takes the place of the
    /// set's entry that read longest ago.
    fn recall(&mut self, sensor: SensorKey) -> Sighting {
        if self.recent.is_empty() {
            self.recent = vec![None; RECENT_SETS * RECENT_WAYS];
        }
        let set = ((sensor.0 .1 ^ sensor.1 .1) as usize) & (RECENT_SETS - 1);
        let ways = &mut self.recent[RECENT_WAYS * set..RECENT_WAYS * (set + 1)];
        for (key, last) in ways.iter_mut().flatten() {
            if *key == sensor {
                if *last == self.epoch {
                    return Sighting::Again;
                }
                *last = self.epoch;
                return Sighting::FirstThisEpoch(sensor);
            }
        }
        // The way that read longest ago (an empty one first).
        let oldest = ways.iter_mut().min_by_key(|way| way.map(|(_, last)| last));
        if let Some(way) = oldest {
            *way = Some((sensor, self.epoch));
        }
        Sighting::New(sensor)
    }

    /// Records `device`'s name (restored from a checkpoint); true if it was not known.
    pub fn restore_name(&mut self, device: &str) -> bool {
        match self.names.entry(Key::of(device)) {
            Entry::Occupied(_) => false,
            Entry::Vacant(name) => {
                name.insert(device.to_owned());
                true
            }
        }
    }

    /// Records that `sensor` (named `guid`, if known) last read at `epoch` (restored from a
    /// checkpoint); true if the sensor was not known.
    pub fn restore_seen(&mut self, sensor: SensorKey, guid: Option<&str>, epoch: Epoch) -> bool {
        if let (Memory::AllNamed, Some(guid)) = (self.memory, guid) {
            self.guids.entry(sensor.1).or_insert_with(|| guid.into());
        }
        match self.seen.entry(sensor.0).or_default().entry(sensor.1) {
            Entry::Occupied(mut last) => {
                *last.get_mut() = (*last.get()).max(epoch);
                false
            }
            Entry::Vacant(last) => {
                last.insert(epoch);
                true
            }
        }
    }

    /// Takes this epoch's per-device sums: `each(key, name, sums)` for every device read in
    /// this epoch, in the order first read.
    pub fn drain_devices(&mut self, mut each: impl FnMut(DeviceKey, &str, Tally)) {
        for slot in self.read.drain(..) {
            let device = &mut self.devices[slot];
            each(device.key, &device.name, std::mem::take(&mut device.sums));
        }
    }

    /// Takes the devices first seen this epoch, with their keys.
    pub fn drain_new_names(&mut self) -> impl Iterator<Item = (DeviceKey, String)> + '_ {
        self.new_names.drain(..)
    }

    /// `AllNamed`: takes every sensor seen this epoch, each once, by device.
    pub fn drain_epoch_names(&mut self) -> impl Iterator<Item = (String, Vec<String>)> + '_ {
        self.epoch_names.drain()
    }

    /// `All`: every sensor this worker has seen with the last epoch it read in, by device,
    /// sorted, as a checkpoint stores them (with `AllNamed`, with their guids).
    pub fn sensors(&self) -> Vec<KnownSensors> {
        let mut all: Vec<KnownSensors> = self
            .seen
            .iter()
            .map(|(device, seen)| {
                let mut sensors: Vec<(GuidKey, Epoch)> =
                    seen.iter().map(|(guid, last)| (*guid, *last)).collect();
                sensors.sort_unstable();
                let guids = if self.memory == Memory::AllNamed {
                    let name = |(guid, _): &(GuidKey, Epoch)| {
                        self.guids
                            .get(guid)
                            .map_or_else(String::new, |g| g.to_string())
                    };
                    sensors.iter().map(name).collect()
                } else {
                    Vec::new()
                };
                KnownSensors {
                    device: self.names.get(device).cloned().unwrap_or_default(),
                    sensors,
                    guids,
                }
            })
            .collect();
        all.sort_by(|a, b| a.device.cmp(&b.device));
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
    use hygroflow_dataflows::sensor_key;

    use super::*;

    #[test]
    fn sums_per_device_and_says_what_each_reading_tells_of_its_sensor() {
        for memory in [Memory::Recent, Memory::All] {
            let mut t = WorkerTally::new(memory);
            let (g1, g2) = (sensor_key("CT1", "g1"), sensor_key("CT1", "g2"));
            assert_eq!(t.add("g1", "CT1", 10), Sighting::New(g1));
            assert_eq!(t.add("g1", "CT1", 20), Sighting::Again);
            assert_eq!(t.add("g2", "CT1", 5), Sighting::New(g2));
            let m1 = sensor_key("MRI1", "g1");
            assert_eq!(t.add("g1", "MRI1", 7), Sighting::New(m1), "{memory:?}");
            let mut devices = Vec::new();
            t.drain_devices(|key, name, sums| devices.push((key, name.to_owned(), sums)));
            assert_eq!(
                devices,
                vec![
                    (Key::of("CT1"), "CT1".into(), (35, 3)),
                    (Key::of("MRI1"), "MRI1".into(), (7, 1))
                ]
            );
            let mut names: Vec<_> = t.drain_new_names().map(|(_, name)| name).collect();
            names.sort();
            assert_eq!(names, ["CT1", "MRI1"]);
            // The next epoch: known sensors are seen for the first time in it, known devices
            // are not named again.
            t.open(1);
            assert_eq!(t.add("g1", "CT1", 1), Sighting::FirstThisEpoch(g1));
            assert_eq!(t.add("g1", "CT1", 1), Sighting::Again);
            let g3 = sensor_key("CT2", "g3");
            assert_eq!(t.add("g3", "CT2", 1), Sighting::New(g3));
            let names: Vec<_> = t.drain_new_names().collect();
            assert_eq!(names, vec![(Key::of("CT2"), "CT2".to_owned())]);
            // Only the devices read in this epoch, with this epoch's sums.
            let mut devices = Vec::new();
            t.drain_devices(|key, _, sums| devices.push((key, sums)));
            assert_eq!(
                devices,
                [(Key::of("CT1"), (2, 2)), (Key::of("CT2"), (1, 1))]
            );
            t.drain_devices(|_, name, _| panic!("{name} drained twice"));
        }
    }

    #[test]
    fn all_remembers_every_sensor_for_checkpoints() {
        let mut t = WorkerTally::new(Memory::All);
        t.add("g1", "CT1", 10);
        t.add("g2", "CT1", 5);
        t.open(3);
        t.add("g1", "CT1", 10);
        t.add("g3", "MRI1", 1);
        let sensors = t.sensors();
        assert_eq!(sensors.len(), 2);
        assert_eq!(sensors[0].device, "CT1");
        let mut ct1 = sensors[0].sensors.clone();
        ct1.sort_by_key(|(_, last)| *last);
        assert_eq!(ct1, vec![(Key::of("g2"), 0), (Key::of("g1"), 3)]);
        assert!(sensors.iter().all(|d| d.guids.is_empty()));
        assert!(!t.restore_seen(sensor_key("CT1", "g2"), None, 0));
        assert!(t.restore_seen(sensor_key("CT1", "g9"), None, 0));
        assert!(!t.restore_name("CT1"));
        assert!(t.restore_name("CT9"));
    }

    #[test]
    fn recent_forgets_beyond_its_size_and_never_grows() {
        let mut t = WorkerTally::new(Memory::Recent);
        let guids: Vec<String> = (0..200_000).map(|i| format!("g{i}")).collect();
        for guid in &guids {
            t.add(guid, "CT1", 1);
        }
        assert_eq!(t.recent.len(), RECENT_SETS * RECENT_WAYS);
        // The first sensors were pushed out by later ones: new to the cache again.
        let again = guids[..1000]
            .iter()
            .filter(|g| matches!(t.add(g, "CT1", 1), Sighting::New(_)))
            .count();
        assert!(again > 500, "{again} of 1000 forgotten");
        // A small fleet stays: each of 2,100 sensors is new once.
        let mut t = WorkerTally::new(Memory::Recent);
        let mut new = 0;
        for epoch in 0..5 {
            t.open(epoch);
            for guid in &guids[..2_100] {
                new += usize::from(matches!(t.add(guid, "CT1", 1), Sighting::New(_)));
            }
        }
        assert!(
            new < 2_100 + 50,
            "{new} sightings of 2,100 sensors were new"
        );
    }

    #[test]
    fn all_named_lists_every_sensor_of_each_epoch_once_by_name() {
        let mut t = WorkerTally::new(Memory::AllNamed);
        t.open(7);
        t.add("g1", "CT1", 10);
        t.add("g1", "CT1", 20);
        t.add("g2", "CT1", 5);
        let mut new: Vec<_> = t.drain_epoch_names().collect();
        new.iter_mut().for_each(|(_, guids)| guids.sort());
        assert_eq!(new, vec![("CT1".into(), vec!["g1".into(), "g2".into()])]);
        // The next epoch: a sensor seen before is listed again, once.
        t.open(8);
        t.add("g1", "CT1", 1);
        t.add("g1", "CT1", 2);
        let new: Vec<_> = t.drain_epoch_names().collect();
        assert_eq!(new, vec![("CT1".into(), vec!["g1".into()])]);
        let sensors = t.sensors();
        assert_eq!(sensors.len(), 1);
        let mut lasts: Vec<(String, Epoch)> = sensors[0]
            .guids
            .iter()
            .cloned()
            .zip(sensors[0].sensors.iter().map(|(_, last)| *last))
            .collect();
        lasts.sort();
        assert_eq!(lasts, vec![("g1".into(), 8), ("g2".into(), 7)]);
    }
}
