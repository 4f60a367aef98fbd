//! Silent sensors: when each sensor last read, and when it falls silent.
//!
//! A sensor last seen at `s` is due at `s + silence` (in epochs). Due times sit in a
//! `BTreeMap` of sensor numbers, so a reported epoch looks only at the sensors due by then.
//! A reading only updates the sensor's last epoch; its entry, found due at the old time, moves
//! to the new one then. So a reading costs one lookup of its guid among its device's sensors
//! (with borrowed strings: nothing is allocated for a known sensor), and a sensor one number in
//! the queue. A network outage makes every sensor due and then resolved within minutes; the
//! queue moves numbers, and names are cloned only for the transitions.

use std::collections::BTreeMap;

use super::types::{AlertKind, AlertState, Limit, Transition};
use crate::Epoch;

use super::FastMap;

/// One sensor's clock.
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// The epoch of its last reading.
    last: Epoch,
    /// Whether it has an entry in the due queue.
    queued: bool,
    /// Whether its `silent` alert is raised.
    silent: bool,
}

/// A device, as the clock knows it.
#[derive(Debug)]
struct Device {
    name: String,
    /// Its sensors' numbers, by guid.
    sensors: FastMap<String, u32>,
    /// Its silence, in epochs and in milliseconds (the rules do not change while running).
    silence: (u64, u64),
}

/// One sensor: its device's number, its guid and its clock.
#[derive(Debug)]
struct Sensor {
    device: u32,
    guid: String,
    clock: Clock,
}

/// The sensors of one worker's devices.
#[derive(Debug, Default)]
pub(crate) struct SensorClock {
    /// Device numbers, by name.
    by_name: FastMap<String, u32>,
    devices: Vec<Device>,
    sensors: Vec<Sensor>,
    due: BTreeMap<Epoch, Vec<u32>>,
}

impl SensorClock {
    /// The number of `device`, whose silence is `silence` (epochs, milliseconds).
    fn device(&mut self, device: &str, silence: (u64, u64)) -> u32 {
        if let Some(&number) = self.by_name.get(device) {
            return number;
        }
        let number = u32::try_from(self.devices.len()).unwrap_or(u32::MAX);
        self.devices.push(Device {
            name: device.to_owned(),
            sensors: FastMap::default(),
            silence,
        });
        self.by_name.insert(device.to_owned(), number);
        number
    }

    /// The number of sensor `guid` of device number `device`, new ones last read at `epoch`.
    fn sensor(&mut self, device: u32, guid: &str, epoch: Epoch) -> u32 {
        let known = &mut self.devices[device as usize].sensors;
        if let Some(&number) = known.get(guid) {
            return number;
        }
        let number = u32::try_from(self.sensors.len()).unwrap_or(u32::MAX);
        known.insert(guid.to_owned(), number);
        self.sensors.push(Sensor {
            device,
            guid: guid.to_owned(),
            clock: Clock {
                last: epoch,
                queued: false,
                silent: false,
            },
        });
        number
    }

    /// The sensors `guids` of `device` read at `epoch` (epochs in order); resolves their
    /// `silent` alerts where raised. `silence`: the device's, in epochs and milliseconds.
    pub(crate) fn seen(
        &mut self,
        device: &str,
        guids: Vec<String>,
        epoch: Epoch,
        silence: (u64, u64),
        out: &mut Vec<Transition>,
    ) {
        let number = self.device(device, silence);
        for guid in guids {
            let sensor = self.sensor(number, &guid, epoch);
            if self.read(sensor, epoch) {
                out.push(transition(
                    (device, &guid),
                    epoch,
                    AlertState::Resolved,
                    silence.1,
                ));
            }
        }
    }

    /// `(device, guid)` read at `epoch` (restore: last read then; the newest wins).
    pub(crate) fn remember(&mut self, device: &str, guid: &str, epoch: Epoch, silence: (u64, u64)) {
        let number = self.device(device, silence);
        let sensor = self.sensor(number, guid, epoch);
        self.read(sensor, epoch);
    }

    /// Sensor number `sensor` read at `epoch`. Returns whether it was silent (it is not any
    /// more).
    fn read(&mut self, sensor: u32, epoch: Epoch) -> bool {
        let entry = &mut self.sensors[sensor as usize];
        let clock = &mut entry.clock;
        let was_silent = clock.silent && clock.last < epoch;
        if was_silent {
            clock.silent = false;
        }
        clock.last = clock.last.max(epoch);
        if !clock.queued {
            clock.queued = true;
            let epochs = self.devices[entry.device as usize].silence.0;
            let due = clock.last.saturating_add(epochs);
            self.due.entry(due).or_default().push(sensor);
        }
        was_silent
    }

    /// Restore: the `silent` alert of `guid` of `device` was raised.
    pub(crate) fn restore_silent(&mut self, device: &str, guid: &str, silence: (u64, u64)) {
        let number = self.device(device, silence);
        let sensor = self.sensor(number, guid, 0);
        self.sensors[sensor as usize].clock.silent = true;
    }

    /// Raises `silent` for every sensor due by reported epoch `epoch`.
    pub(crate) fn raise_due(&mut self, epoch: Epoch, out: &mut Vec<Transition>) {
        while let Some(entry) = self.due.first_entry() {
            if *entry.key() > epoch {
                break;
            }
            for number in entry.remove() {
                let Some(sensor) = self.sensors.get_mut(number as usize) else {
                    continue;
                };
                let device = &self.devices[sensor.device as usize];
                let (epochs, ms) = device.silence;
                let clock = &mut sensor.clock;
                let due = clock.last.saturating_add(epochs);
                if due > epoch {
                    // It read again since: due later.
                    self.due.entry(due).or_default().push(number);
                    continue;
                }
                clock.queued = false;
                if clock.last < epoch && !clock.silent {
                    clock.silent = true;
                    out.push(transition(
                        (&device.name, &sensor.guid),
                        epoch,
                        AlertState::Raised,
                        ms,
                    ));
                }
            }
        }
    }
}

fn transition(
    (device, guid): (&str, &str),
    epoch: Epoch,
    state: AlertState,
    ms: u64,
) -> Transition {
    Transition {
        epoch,
        device: device.to_owned(),
        kind: AlertKind::Silent,
        sensor: Some(guid.to_owned()),
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
        let silence = (5, 15_000);
        clock.seen("SPECT1", vec!["g".into()], 10, silence, &mut out);
        clock.seen("SPECT1", vec!["h".into()], 11, silence, &mut out);
        clock.raise_due(14, &mut out);
        assert!(out.is_empty());
        clock.raise_due(15, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sensor.as_deref(), Some("g"));
        // h read again at 16: its entry due at 16 moves to 21.
        clock.seen("SPECT1", vec!["h".into()], 16, silence, &mut out);
        clock.raise_due(16, &mut out);
        clock.seen("SPECT1", vec!["g".into()], 17, silence, &mut out);
        clock.raise_due(21, &mut out);
        let states: Vec<_> = out
            .iter()
            .map(|t| (t.epoch, t.sensor.clone().unwrap_or_default(), t.state))
            .collect();
        assert_eq!(
            states,
            [
                (15, "g".to_owned(), AlertState::Raised),
                (17, "g".to_owned(), AlertState::Resolved),
                (21, "h".to_owned(), AlertState::Raised)
            ]
        );
    }
}
