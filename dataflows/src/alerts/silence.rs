//! Silent sensors: when each sensor last read, when it falls silent and when it is retired.
//!
//! A sensor last seen at `s` is due at `s + silence` (in epochs); once silent, it is due
//! again at `s + retire` when its rule retires sensors. Due times sit in a `BTreeMap` of
//! sensor numbers, so a reported epoch looks only at the sensors due by then. A reading only
//! updates the sensor's last epoch; its entry, found due at the old time, moves to the new one
//! then. So a reading costs one lookup of its guid among its device's sensors (with borrowed
//! strings: nothing is allocated for a known sensor), and a sensor one number in the queue. A
//! network outage makes every sensor due and then resolved within minutes; the queue moves
//! numbers, and names are cloned only for the transitions. A retired sensor's number is
//! reused by the next new sensor, so sensors that come and go for months take no more room
//! than those there at once.

use std::collections::BTreeMap;

use super::types::{AlertKind, AlertState, Limit, Reason, Transition};
use crate::Epoch;

use super::FastMap;

/// A device's silence and retirement: `(epochs, milliseconds)` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    /// A sensor is silent this long after its last reading.
    pub(crate) silence: (u64, u64),
    /// A silent sensor is retired this long after its last reading (`None`: never).
    pub(crate) retire: Option<(u64, u64)>,
}

/// One sensor's clock.
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// The epoch of its last reading.
    last: Epoch,
    /// Whether it has an entry in the due queue...
    queued: bool,
    /// ...and at which epoch (entries elsewhere are stale: the sensor moved on).
    due: Epoch,
    /// Whether its `silent` alert is raised.
    silent: bool,
}

/// A device, as the clock knows it.
#[derive(Debug)]
struct Device {
    name: String,
    /// Its sensors' numbers, by guid.
    sensors: FastMap<String, u32>,
    /// Its silence and retirement (changed only by a rules change).
    timing: Timing,
}

/// One sensor: its device's number, its guid and its clock (`None` once retired: the number
/// is free).
#[derive(Debug)]
struct Sensor {
    device: u32,
    guid: String,
    clock: Option<Clock>,
}

/// The sensors of one worker's devices.
#[derive(Debug, Default)]
pub(crate) struct SensorClock {
    /// Device numbers, by name.
    by_name: FastMap<String, u32>,
    devices: Vec<Device>,
    sensors: Vec<Sensor>,
    /// Numbers of retired sensors, for new ones.
    free: Vec<u32>,
    due: BTreeMap<Epoch, Vec<u32>>,
}

/// When a sensor with `clock` is next due: silent, or, once silent, retired.
fn due_of(clock: &Clock, timing: Timing) -> Option<Epoch> {
    if clock.silent {
        timing
            .retire
            .map(|(epochs, _)| clock.last.saturating_add(epochs))
    } else {
        Some(clock.last.saturating_add(timing.silence.0))
    }
}

impl SensorClock {
    /// The number of `device`, whose silence and retirement are `timing`.
    fn device(&mut self, device: &str, timing: Timing) -> u32 {
        if let Some(&number) = self.by_name.get(device) {
            return number;
        }
        let number = u32::try_from(self.devices.len()).unwrap_or(u32::MAX);
        self.devices.push(Device {
            name: device.to_owned(),
            sensors: FastMap::default(),
            timing,
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
        let sensor = Sensor {
            device,
            guid: guid.to_owned(),
            clock: Some(Clock {
                last: epoch,
                queued: false,
                due: 0,
                silent: false,
            }),
        };
        let number = match self.free.pop() {
            Some(number) => {
                self.sensors[number as usize] = sensor;
                number
            }
            None => {
                self.sensors.push(sensor);
                u32::try_from(self.sensors.len() - 1).unwrap_or(u32::MAX)
            }
        };
        known.insert(guid.to_owned(), number);
        number
    }

    /// The sensors `guids` of `device` read at `epoch` (epochs in order); resolves their
    /// `silent` alerts where raised. `timing`: the device's silence and retirement.
    pub(crate) fn seen(
        &mut self,
        device: &str,
        guids: Vec<String>,
        epoch: Epoch,
        timing: Timing,
        out: &mut Vec<Transition>,
    ) {
        let number = self.device(device, timing);
        for guid in guids {
            let sensor = self.sensor(number, &guid, epoch);
            if self.read(sensor, epoch) {
                let limit = Limit::Millis(timing.silence.1);
                out.push(transition(
                    (device, &guid),
                    epoch,
                    AlertState::Resolved,
                    limit,
                ));
            }
        }
    }

    /// `(device, guid)` read at `epoch` (restore: last read then; the newest wins).
    pub(crate) fn remember(&mut self, device: &str, guid: &str, epoch: Epoch, timing: Timing) {
        let number = self.device(device, timing);
        let sensor = self.sensor(number, guid, epoch);
        self.read(sensor, epoch);
    }

    /// Sensor number `sensor` read at `epoch`. Returns whether it was silent (it is not any
    /// more).
    fn read(&mut self, sensor: u32, epoch: Epoch) -> bool {
        let entry = &mut self.sensors[sensor as usize];
        let timing = self.devices[entry.device as usize].timing;
        let Some(clock) = &mut entry.clock else {
            return false;
        };
        let was_silent = clock.silent && clock.last < epoch;
        if was_silent {
            clock.silent = false;
        }
        clock.last = clock.last.max(epoch);
        // Queued already, an entry found due early moves on lazily; back from silence, its
        // entry (for retirement) may be far later than its new silence.
        if let Some(due) = due_of(clock, timing) {
            if !clock.queued || due < clock.due {
                clock.queued = true;
                clock.due = due;
                self.due.entry(due).or_default().push(sensor);
            }
        }
        was_silent
    }

    /// Restore: the `silent` alert of `guid` of `device` was raised.
    pub(crate) fn restore_silent(&mut self, device: &str, guid: &str, timing: Timing) {
        let number = self.device(device, timing);
        let sensor = self.sensor(number, guid, 0);
        if let Some(clock) = &mut self.sensors[sensor as usize].clock {
            clock.silent = true;
        }
    }

    /// Restore: forgets sensors that were retired before `epoch`, the first of the run (they
    /// were silent for `retire` and have no raised `silent` alert any more).
    pub(crate) fn forget_retired(&mut self, epoch: Epoch) {
        for number in 0..self.sensors.len() {
            let sensor = &self.sensors[number];
            let timing = self.devices[sensor.device as usize].timing;
            let retired = match (&sensor.clock, timing.retire) {
                (Some(clock), Some((epochs, _))) => {
                    !clock.silent && clock.last.saturating_add(epochs) < epoch
                }
                _ => false,
            };
            if retired {
                self.retire(u32::try_from(number).unwrap_or(u32::MAX));
            }
        }
    }

    /// Frees sensor `number`: its device forgets it, a new sensor takes its number.
    fn retire(&mut self, number: u32) {
        let Some(sensor) = self.sensors.get_mut(number as usize) else {
            return;
        };
        if sensor.clock.take().is_none() {
            return;
        }
        let guid = std::mem::take(&mut sensor.guid);
        self.devices[sensor.device as usize].sensors.remove(&guid);
        self.free.push(number);
    }

    /// A rules change: every device's silence and retirement from `timing_of`, and every
    /// sensor due again by them.
    pub(crate) fn set_timings(&mut self, timing_of: impl Fn(&str) -> Timing) {
        for device in &mut self.devices {
            device.timing = timing_of(&device.name);
        }
        self.due.clear();
        for (number, sensor) in self.sensors.iter_mut().enumerate() {
            let timing = self.devices[sensor.device as usize].timing;
            if let Some(clock) = &mut sensor.clock {
                clock.queued = false;
                if let Some(due) = due_of(clock, timing) {
                    clock.queued = true;
                    clock.due = due;
                    let number = u32::try_from(number).unwrap_or(u32::MAX);
                    self.due.entry(due).or_default().push(number);
                }
            }
        }
    }

    /// Raises `silent` for every sensor due by reported epoch `epoch`, and retires those
    /// silent for their device's `retire_after`.
    pub(crate) fn raise_due(&mut self, epoch: Epoch, out: &mut Vec<Transition>) {
        while let Some(entry) = self.due.first_entry() {
            let at = *entry.key();
            if at > epoch {
                break;
            }
            for number in entry.remove() {
                let Some(sensor) = self.sensors.get_mut(number as usize) else {
                    continue;
                };
                let device = &self.devices[sensor.device as usize];
                let timing = device.timing;
                let Some(clock) = &mut sensor.clock else {
                    continue;
                };
                if !clock.queued || clock.due != at {
                    // A stale entry: the sensor was queued again since.
                    continue;
                }
                match due_of(clock, timing) {
                    Some(due) if due > epoch => {
                        // It read again since: due later.
                        clock.due = due;
                        self.due.entry(due).or_default().push(number);
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        clock.queued = false;
                        continue;
                    }
                }
                if clock.silent {
                    let retire_ms = timing.retire.map_or(0, |(_, ms)| ms);
                    let mut line = transition(
                        (&device.name, &sensor.guid),
                        epoch,
                        AlertState::Resolved,
                        Limit::Millis(retire_ms),
                    );
                    line.reason = Some(Reason::Retired);
                    out.push(line);
                    self.retire(number);
                    continue;
                }
                if clock.last < epoch {
                    clock.silent = true;
                    out.push(transition(
                        (&device.name, &sensor.guid),
                        epoch,
                        AlertState::Raised,
                        Limit::Millis(timing.silence.1),
                    ));
                    // Due again to be retired, when its rule retires sensors.
                    match due_of(clock, timing) {
                        Some(due) => {
                            clock.due = due.max(epoch + 1);
                            self.due.entry(clock.due).or_default().push(number);
                        }
                        None => clock.queued = false,
                    }
                } else {
                    clock.queued = false;
                }
            }
        }
    }
}

fn transition(
    (device, guid): (&str, &str),
    epoch: Epoch,
    state: AlertState,
    limit: Limit,
) -> Transition {
    Transition {
        epoch,
        device: device.to_owned(),
        kind: AlertKind::Silent,
        sensor: Some(guid.to_owned()),
        state,
        value: None,
        limit,
        reason: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sensor_is_silent_exactly_silence_epochs_after_its_last_reading() {
        let mut clock = SensorClock::default();
        let mut out = Vec::new();
        let silence = Timing {
            silence: (5, 15_000),
            retire: None,
        };
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

#[cfg(test)]
mod retirement {
    use super::*;

    #[test]
    fn a_silent_sensor_is_retired_after_retire_epochs_and_comes_back_as_new() {
        let mut clock = SensorClock::default();
        let mut out = Vec::new();
        let timing = Timing {
            silence: (5, 15_000),
            retire: Some((20, 60_000)),
        };
        clock.seen("CT1", vec!["g".into()], 10, timing, &mut out);
        clock.raise_due(15, &mut out);
        clock.raise_due(29, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        clock.raise_due(30, &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[1].state, AlertState::Resolved);
        assert_eq!(out[1].reason, Some(Reason::Retired));
        assert_eq!(out[1].limit, Limit::Millis(60_000));
        // Back: a new sensor (no resolve), silent again 5 epochs later, in the freed number.
        clock.seen("CT1", vec!["g".into()], 40, timing, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(clock.sensors.len(), 1);
        clock.raise_due(45, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!((out[2].epoch, out[2].state), (45, AlertState::Raised));
    }

    #[test]
    fn a_sensor_back_from_silence_falls_silent_again_on_time_with_retirement_on() {
        let mut clock = SensorClock::default();
        let mut out = Vec::new();
        let timing = Timing {
            silence: (5, 15_000),
            retire: Some((1000, 3_000_000)),
        };
        clock.seen("CT1", vec!["g".into()], 10, timing, &mut out);
        clock.raise_due(15, &mut out);
        clock.seen("CT1", vec!["g".into()], 20, timing, &mut out);
        clock.raise_due(24, &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        clock.raise_due(25, &mut out);
        let states: Vec<_> = out.iter().map(|t| (t.epoch, t.state)).collect();
        assert_eq!(
            states,
            [
                (15, AlertState::Raised),
                (20, AlertState::Resolved),
                (25, AlertState::Raised)
            ]
        );
        // The stale entry at the old retirement time does nothing.
        clock.raise_due(1010, &mut out);
        assert_eq!(out.len(), 3);
        clock.raise_due(1020, &mut out);
        assert_eq!(out[3].reason, Some(Reason::Retired));
    }
}
