//! The `soak` scenario: months of a hospital's trouble, on a timetable that repeats every six
//! hours of event time, so that a replay of simulated weeks meets every kind of alert, again
//! and again, and every kind of coming and going (issue 23 point 2).
//!
//! Time counts from the scenario's start; cycle `c` is the `c`-th six hours. The devices it
//! picks are those of the fleet that have sensors, `D` of them, numbered `0..D` in fleet
//! order (`d(k)` is number `k mod D`):
//!
//! | from (in the cycle) | for | device | what |
//! |---|---|---|---|
//! | 0:30 | 2 min | `d(7c)` | +25 % RH: an excursion (`high`) |
//! | 1:00 | 6 min | `d(11c + 3)` | its sensors send nothing (`silent`, resolved) |
//! | 2:00 | 24 min | `d(5c + 2)` | rises 30 % RH an hour for 12 minutes, falls back as fast (`rate`, where a rule has one) |
//! | 3:00 | 2 h 30 min | the sensors `s` with `s mod 5 = c mod 5` | send nothing: sensors that go (silent, then retired where `retire_after` is under 2 h 25 min) and come back as new ones |
//! | 4:00 | 6 h | `d(13c + 5)` | sends nothing: a device taken out and installed again |
//!
//! While its sensors are silenced, their slots of the rotation go to the others, as for every
//! scenario. Nothing here is random: the fleet's seed decides the rest.

use super::Fleet;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
/// How often the timetable repeats.
pub const CYCLE_MS: i64 = 6 * HOUR_MS;
/// The excursion's rise, in % RH.
const EXCURSION_RH: f64 = 25.0;
/// The drift's slope, in % RH an hour.
const DRIFT_RH_PER_HOUR: f64 = 30.0;

/// The soak timetable resolved against a fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soak {
    /// Its start, Unix ms.
    start_ms: i64,
    /// The fleet's devices with sensors, by fleet index.
    devices: Vec<usize>,
}

impl Soak {
    /// The timetable for `fleet` from `start_ms`; `None` if no device has a sensor.
    pub fn new(fleet: &Fleet, start_ms: i64) -> Option<Soak> {
        let devices: Vec<usize> = fleet
            .sensors_per_device()
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(d, _)| d)
            .collect();
        (!devices.is_empty()).then_some(Soak { start_ms, devices })
    }

    /// `(cycle, ms into it)` at `event_ms`; `None` before the start.
    fn at(&self, event_ms: i64) -> Option<(i64, i64)> {
        let elapsed = event_ms.checked_sub(self.start_ms).filter(|e| *e >= 0)?;
        Some((elapsed / CYCLE_MS, elapsed % CYCLE_MS))
    }

    /// The fleet index of device `d(k)`.
    fn device(&self, k: i64) -> usize {
        let n = self.devices.len() as i64;
        self.devices[usize::try_from(k.rem_euclid(n)).unwrap_or(0)]
    }

    /// What the timetable adds to device `device`'s humidity at `event_ms`, in % RH.
    pub fn offset(&self, device: usize, event_ms: i64) -> f64 {
        let Some((c, at)) = self.at(event_ms) else {
            return 0.0;
        };
        let mut offset = 0.0;
        if device == self.device(7 * c) && (30 * MINUTE_MS..32 * MINUTE_MS).contains(&at) {
            offset += EXCURSION_RH;
        }
        if device == self.device(5 * c + 2) {
            let into = at - 2 * HOUR_MS;
            let rise = 12 * MINUTE_MS;
            let ms = match into {
                _ if (0..rise).contains(&into) => into,
                _ if (rise..2 * rise).contains(&into) => 2 * rise - into,
                _ => 0,
            };
            offset += DRIFT_RH_PER_HOUR * ms as f64 / HOUR_MS as f64;
        }
        offset
    }

    /// Whether sensor `sensor` of device `device` sends nothing at `event_ms`.
    pub fn silences(&self, sensor: usize, device: usize, event_ms: i64) -> bool {
        let Some((c, at)) = self.at(event_ms) else {
            return false;
        };
        let silence =
            device == self.device(11 * c + 3) && (HOUR_MS..HOUR_MS + 6 * MINUTE_MS).contains(&at);
        let churn = (sensor % 5) as i64 == c % 5
            && (3 * HOUR_MS..5 * HOUR_MS + 30 * MINUTE_MS).contains(&at);
        // Out from 4:00 of its cycle to 4:00 of the next.
        let out = (at >= 4 * HOUR_MS && device == self.device(13 * c + 5))
            || (at < 4 * HOUR_MS && c > 0 && device == self.device(13 * (c - 1) + 5));
        silence || churn || out
    }

    /// What `generate` and the demo say about it.
    pub fn note(&self) -> String {
        format!(
            "scenario soak: every 6 hours an excursion, a silence, a drift up and back, a fifth of the sensors away for 2 h 30 min and a device away for 6 hours, among the {} devices with sensors",
            self.devices.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timetable_repeats_every_six_hours_and_touches_only_its_devices() {
        let fleet = Fleet::new(1, 60);
        let soak = Soak::new(&fleet, 1_000).expect("devices with sensors");
        let t = |c: i64, at: i64| 1_000 + c * CYCLE_MS + at;
        for c in 0..3 {
            let hot = soak.device(7 * c);
            assert_eq!(soak.offset(hot, t(c, 31 * MINUTE_MS)), EXCURSION_RH);
            assert_eq!(soak.offset(hot, t(c, 32 * MINUTE_MS)), 0.0);
            let drift = soak.device(5 * c + 2);
            let peak = soak.offset(drift, t(c, 2 * HOUR_MS + 12 * MINUTE_MS));
            assert!((peak - 6.0).abs() < 1e-9, "{peak}");
            assert_eq!(soak.offset(drift, t(c, 2 * HOUR_MS + 24 * MINUTE_MS)), 0.0);
            let quiet = soak.device(11 * c + 3);
            assert!(soak.silences(1, quiet, t(c, HOUR_MS)));
            let away_before = c > 0 && quiet == soak.device(13 * (c - 1) + 5);
            assert_eq!(
                soak.silences(1, quiet, t(c, HOUR_MS + 6 * MINUTE_MS)),
                away_before
            );
            let away = soak.device(13 * c + 5);
            assert!(soak.silences(1, away, t(c, 4 * HOUR_MS)));
            assert!(soak.silences(1, away, t(c + 1, 4 * HOUR_MS - 1)));
            let churned = usize::try_from(c % 5).expect("small") + 5;
            assert!(soak.silences(churned, usize::MAX, t(c, 3 * HOUR_MS)));
            assert!(!soak.silences(churned, usize::MAX, t(c, 5 * HOUR_MS + 30 * MINUTE_MS)));
            assert!(!soak.silences(churned + 1, usize::MAX, t(c, 3 * HOUR_MS)));
        }
        assert_eq!(soak.offset(soak.device(0), 999), 0.0);
        assert!(!soak.silences(0, soak.device(5), 999));
    }
}
