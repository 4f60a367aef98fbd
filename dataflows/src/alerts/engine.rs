//! The alerts of one worker's share of devices, epoch by epoch: pure, no timely.
//!
//! The operator in `mod.rs` hands [`AlertEngine::epoch`] each complete epoch, in order, with
//! what the workers observed in it. Restored observations arrive first and are settled into
//! state before the first epoch of the run.

use std::collections::{BTreeMap, BTreeSet};

use super::device::DeviceAlerts;
use super::silence::SensorClock;
use super::types::{AlertKind, AlertRules, Observation, Transition};
use super::FastMap;
use crate::Epoch;

use super::types::SensorName;

/// What the workers observed in one epoch, for this worker's devices.
#[derive(Debug, Default)]
pub(crate) struct EpochBatch {
    /// Some worker had a message in the epoch.
    pub(crate) reported: bool,
    /// Sum and count per device.
    pub(crate) readings: FastMap<String, (i64, i64)>,
    /// Sensors that read, by device.
    pub(crate) seen: Vec<(String, Vec<String>)>,
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
}

impl AlertEngine {
    pub(crate) fn new(rules: AlertRules) -> Self {
        AlertEngine {
            rules,
            devices: FastMap::default(),
            sensors: SensorClock::default(),
            restored: None,
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

    /// The silence of `device`, in epochs and milliseconds.
    fn silence(&mut self, device: &str) -> (u64, u64) {
        let rule = self.device(device).rule();
        (rule.silence, rule.silence_ms)
    }

    /// Rebuilds state from restored observations: windows, the hour of values at the
    /// reported epochs, last readings, and which alerts are raised. Raises nothing.
    fn settle(&mut self) {
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
                kind => self.device(&line.device).restore_raised(kind),
            }
        }
    }

    /// Processes complete epoch `epoch` and returns its transitions, sorted. Nothing is
    /// evaluated at an epoch no worker reported.
    pub(crate) fn epoch(&mut self, epoch: Epoch, batch: EpochBatch) -> Vec<Transition> {
        self.settle();
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
