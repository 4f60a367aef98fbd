//! Silent sensors: when each sensor last read, and when it falls silent.
//!
//! A sensor last seen at `s` is due at `s + silence` (in epochs). Due times sit in a
//! `BTreeMap`, so a reported epoch looks only at the sensors due by then. A reading only
//! updates the sensor's last epoch; its entry, found due at the old time, moves to the new
//! one then. So a reading costs one lookup (by device, then by guid, with borrowed strings)
//! and a sensor one entry in the queue.

use std::collections::BTreeMap;

use super::types::{AlertKind, AlertState, Limit, Transition};
use crate::Epoch;

use super::types::SensorName;

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

/// The sensors of one worker's devices.
#[derive(Debug, Default)]
pub(crate) struct SensorClock {
    /// device -> guid -> clock.
    devices: FastMap<String, FastMap<String, Clock>>,
    due: BTreeMap<Epoch, Vec<SensorName>>,
}

impl SensorClock {
    /// The sensors `guids` of `device` read at `epoch` (epochs in order); resolves their
    /// `silent` alerts where raised.
    pub(crate) fn seen(
        &mut self,
        device: &str,
        guids: Vec<String>,
        epoch: Epoch,
        (silence, silence_ms): (u64, u64),
        out: &mut Vec<Transition>,
    ) {
        for guid in guids {
            if self.remember(device, guid.as_str(), epoch, silence) {
                out.push(transition(
                    (device, &guid),
                    epoch,
                    AlertState::Resolved,
                    silence_ms,
                ));
            }
        }
    }

    /// `(device, guid)` read at `epoch` (restore: last read then; the newest wins). Returns
    /// whether it was silent (it is not any more).
    pub(crate) fn remember(
        &mut self,
        device: &str,
        guid: &str,
        epoch: Epoch,
        silence: u64,
    ) -> bool {
        let sensors = match self.devices.get_mut(device) {
            Some(sensors) => sensors,
            None => self.devices.entry(device.to_owned()).or_default(),
        };
        let clock = match sensors.get_mut(guid) {
            Some(clock) => clock,
            None => sensors.entry(guid.to_owned()).or_insert(Clock {
                last: epoch,
                queued: false,
                silent: false,
            }),
        };
        let was_silent = clock.silent && clock.last < epoch;
        if was_silent {
            clock.silent = false;
        }
        clock.last = clock.last.max(epoch);
        if !clock.queued {
            clock.queued = true;
            let due = clock.last.saturating_add(silence);
            let sensor = (device.to_owned(), guid.to_owned());
            self.due.entry(due).or_default().push(sensor);
        }
        was_silent
    }

    /// Restore: the sensor's `silent` alert was raised.
    pub(crate) fn restore_silent(&mut self, (device, guid): SensorName) {
        let sensors = self.devices.entry(device).or_default();
        let clock = sensors.entry(guid).or_insert(Clock {
            last: 0,
            queued: false,
            silent: false,
        });
        clock.silent = true;
    }

    /// Raises `silent` for every sensor due by reported epoch `epoch`; `silence` gives a
    /// device's silence in epochs and milliseconds.
    pub(crate) fn raise_due(
        &mut self,
        epoch: Epoch,
        silence: impl Fn(&str) -> (u64, u64),
        out: &mut Vec<Transition>,
    ) {
        while let Some(entry) = self.due.first_entry() {
            if *entry.key() > epoch {
                break;
            }
            for sensor in entry.remove() {
                let Some(clock) = self
                    .devices
                    .get_mut(&sensor.0)
                    .and_then(|sensors| sensors.get_mut(&sensor.1))
                else {
                    continue;
                };
                let (epochs, ms) = silence(&sensor.0);
                let due = clock.last.saturating_add(epochs);
                if due > epoch {
                    // It read again since: due later.
                    self.due.entry(due).or_default().push(sensor);
                    continue;
                }
                clock.queued = false;
                if clock.last < epoch && !clock.silent {
                    clock.silent = true;
                    out.push(transition(
                        (&sensor.0, &sensor.1),
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
        clock.raise_due(14, |_| silence, &mut out);
        assert!(out.is_empty());
        clock.raise_due(15, |_| silence, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sensor.as_deref(), Some("g"));
        // h read again at 16: its entry due at 16 moves to 21.
        clock.seen("SPECT1", vec!["h".into()], 16, silence, &mut out);
        clock.raise_due(16, |_| silence, &mut out);
        clock.seen("SPECT1", vec!["g".into()], 17, silence, &mut out);
        clock.raise_due(21, |_| silence, &mut out);
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
