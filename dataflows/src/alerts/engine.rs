//! The alerts of one worker's share of devices, epoch by epoch: pure, no timely.
//!
//! The operator in `mod.rs` hands [`AlertEngine::epoch`] each complete epoch, in order, with
//! what the workers observed in it. Restored observations arrive first and are settled into
//! state before the first epoch of the run.

use std::collections::{BTreeMap, BTreeSet};

use super::device::DeviceAlerts;
use super::silence::{SensorClock, Timing};
use super::types::{AlertKind, AlertRules, Observation, Transition};
use super::FastMap;
use crate::Epoch;

use super::types::SensorName;

/// What the workers observed in one epoch, for this worker's devices.
#[derive(Debug, Default)]
pub(crate) struct EpochBatch {
    /// Some worker had a message in the epoch.
    pub(crate) reported: bool,
    /// The epochs after this one up to here are reported too (`ReceivedThrough`).
    pub(crate) reported_through: Option<Epoch>,
    /// Sum and count per device.
    pub(crate) readings: FastMap<String, (i64, i64)>,
    /// Sensors that read, by device.
    pub(crate) seen: Vec<(String, Vec<String>)>,
    /// Checksums of rules that workers announced having loaded.
    pub(crate) rules: Vec<u32>,
}

impl EpochBatch {
    /// Adds a live observation with multiplicity `diff`.
    pub(crate) fn add(&mut self, observation: Observation, diff: isize) {
        let diff = diff as i64;
        match observation {
            Observation::Readings {
                device,
                sum_micro,
                count,
            } => {
                let entry = self.readings.entry(device).or_insert((0, 0));
                entry.0 += sum_micro * diff;
                entry.1 += count * diff;
            }
            Observation::Seen { device, guids } if diff > 0 => self.seen.push((device, guids)),
            Observation::Received if diff > 0 => self.reported = true,
            Observation::ReceivedThrough { through } if diff > 0 => {
                self.reported = true;
                self.reported_through = self.reported_through.max(Some(through));
            }
            Observation::Rules { checksum } if diff > 0 => self.rules.push(checksum),
            _ => {}
        }
    }
}

/// What a restart brings back, kept until the first epoch settles it.
#[derive(Debug, Default)]
struct Restored {
    readings: BTreeMap<(String, Epoch), (i64, i64)>,
    reported: BTreeSet<Epoch>,
    last_seen: Vec<(SensorName, Epoch)>,
    active: Vec<Transition>,
}

/// One worker's alert state.
pub(crate) struct AlertEngine {
    rules: AlertRules,
    /// The devices with state (an idle one is dropped). Evaluated in any order: an epoch's
    /// transitions are sorted before they leave.
    devices: FastMap<String, DeviceAlerts>,
    sensors: SensorClock,
    restored: Option<Restored>,
    /// Workers in the cluster: rules apply once each has announced them.
    peers: usize,
    /// Announcements of rules not applied yet, by checksum.
    announced: FastMap<u32, usize>,
}

impl AlertEngine {
    pub(crate) fn new(rules: AlertRules, peers: usize) -> Self {
        AlertEngine {
            rules,
            devices: FastMap::default(),
            sensors: SensorClock::default(),
            restored: None,
            peers: peers.max(1),
            announced: FastMap::default(),
        }
    }

    /// Whether `observation` is a restored one ([`Self::restore`] takes it).
    pub(crate) fn is_restore(observation: &Observation) -> bool {
        matches!(
            observation,
            Observation::PastReadings { .. }
                | Observation::PastReported { .. }
                | Observation::LastSeen { .. }
                | Observation::Active(_)
        )
    }

    /// Takes a restored observation.
    pub(crate) fn restore(&mut self, observation: Observation) {
        let restored = self.restored.get_or_insert_with(Restored::default);
        match observation {
            Observation::PastReadings {
                epoch,
                device,
                sum_micro,
                count,
            } => {
                let entry = restored.readings.entry((device, epoch)).or_insert((0, 0));
                entry.0 += sum_micro;
                entry.1 += count;
            }
            Observation::PastReported { epoch } => {
                restored.reported.insert(epoch);
            }
            Observation::LastSeen {
                device,
                guid,
                epoch,
            } => restored.last_seen.push(((device, guid), epoch)),
            Observation::Active(line) => restored.active.push(*line),
            _ => {}
        }
    }

    fn device(&mut self, device: &str) -> &mut DeviceAlerts {
        if !self.devices.contains_key(device) {
            let rule = (self.rules.rule_for)(device);
            self.devices
                .insert(device.to_owned(), DeviceAlerts::new(rule));
        }
        self.devices.get_mut(device).expect("inserted above")
    }

    /// The silence and retirement of `device`.
    fn silence(&mut self, device: &str) -> Timing {
        timing(self.device(device).rule())
    }

    /// Counts the announcements of `batch` and switches to rules every worker has loaded,
    /// from `epoch` on.
    fn announce(&mut self, epoch: Epoch, checksums: Vec<u32>) {
        for checksum in checksums {
            let count = self.announced.entry(checksum).or_insert(0);
            *count += 1;
            if *count < self.peers {
                continue;
            }
            self.announced.remove(&checksum);
            let Some(rules) = self.rules.book.get(checksum) else {
                continue;
            };
            rules.book.switched(epoch, checksum);
            self.rules = rules;
            let rule_for = &self.rules.rule_for;
            for (device, state) in &mut self.devices {
                state.set_rule(rule_for(device));
            }
            self.sensors.set_timings(|device| timing(&rule_for(device)));
        }
    }

    /// Rebuilds state from restored observations: windows, the hour of values at the
    /// reported epochs, last readings, and which alerts are raised. Raises nothing.
    fn settle(&mut self, first: Epoch) {
        let Some(restored) = self.restored.take() else {
            return;
        };
        let mut by_device: BTreeMap<String, Vec<(Epoch, i64, i64)>> = BTreeMap::new();
        for ((device, epoch), (sum, count)) in restored.readings {
            by_device
                .entry(device)
                .or_default()
                .push((epoch, sum, count));
        }
        let hour = self.rules.hour;
        for (device, mut readings) in by_device {
            readings.sort_unstable();
            let state = self.device(&device);
            let mut next = readings.into_iter().peekable();
            for &epoch in &restored.reported {
                while let Some((t, s, c)) = next.next_if(|(t, _, _)| *t <= epoch) {
                    state.add(t, s, c);
                }
                state.remember(epoch, hour);
            }
            for (t, s, c) in next {
                state.add(t, s, c);
            }
        }
        for ((device, guid), epoch) in restored.last_seen {
            let silence = self.silence(&device);
            self.sensors.remember(&device, &guid, epoch, silence);
        }
        for line in restored.active {
            match line.kind {
                AlertKind::Silent => {
                    if let Some(guid) = line.sensor {
                        let silence = self.silence(&line.device);
                        self.sensors.restore_silent(&line.device, &guid, silence);
                    }
                }
                kind => self.device(&line.device).restore_raised(kind, line.limit),
            }
        }
        self.sensors.forget_retired(first);
    }

    /// Processes complete epoch `epoch` and returns its transitions, sorted. Nothing is
    /// evaluated at an epoch no worker reported.
    pub(crate) fn epoch(&mut self, epoch: Epoch, batch: EpochBatch) -> Vec<Transition> {
        self.settle(epoch);
        if !batch.rules.is_empty() {
            self.announce(epoch, batch.rules);
        }
        let mut out = Vec::new();
        for (device, (sum, count)) in batch.readings {
            if count != 0 {
                self.device(&device).add(epoch, sum, count);
            }
        }
        for (device, guids) in batch.seen {
            let silence = self.silence(&device);
            self.sensors.seen(&device, guids, epoch, silence, &mut out);
        }
        if !batch.reported {
            return out;
        }
        let hour = self.rules.hour;
        for (device, state) in &mut self.devices {
            state.evaluate(device, epoch, hour, &mut out);
        }
        self.devices.retain(|_, state| !state.is_idle());
        self.sensors.raise_due(epoch, &mut out);
        out.sort();
        out
    }
}

/// A rule's silence and retirement, as the sensor clock applies them.
fn timing(rule: &super::types::DeviceRule) -> Timing {
    Timing {
        silence: (rule.silence, rule.silence_ms),
        retire: rule.retire,
    }
}
