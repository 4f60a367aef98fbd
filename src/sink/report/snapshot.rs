//! What a report shows: the facts of an epoch, divided and sorted for display.
//!
//! The analyses (`hygroflow-dataflows`) keep exact integers: a device's humidity is a sum in
//! micro-percent and a count. Here, and only here, the sum is divided into an average in
//! percent, devices get their names back from their keys, and the lists are put in the order
//! the seed prints them.

use hygroflow_dataflows::{Counter, DeviceKey, Results, Stat, MICROS_PER_PERCENT};

/// The name of `device` as `results` know it. Every key reaches the report with its name (a
/// worker sends a device's name in the epoch it first reads from it); a key without one
/// would be a bug, and is shown as the key rather than dropped.
pub fn device_name(results: &Results, device: &DeviceKey) -> String {
    match results.name(device) {
        Some(name) => name.to_owned(),
        None => format!("device-{:016x}{:016x}", device.0, device.1),
    }
}

/// The four analyses plus the side counters, sorted as the seed prints them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// (i) Average humidity per device, by value descending, ties by device ascending.
    pub avg_humidity_by_device: Vec<(String, f64)>,
    /// (ii) Valid messages processed.
    pub total_messages: i64,
    /// (iii) Distinct sensors per device, by device ascending (plain string order).
    pub sensors_by_device: Vec<(String, i64)>,
    /// (iv) Distinct sensors in total.
    pub total_sensors: i64,
    /// Messages rejected by validation.
    pub rejected_messages: i64,
    /// Messages that arrived after their event-time epoch had closed.
    pub late_messages: i64,
    /// Messages whose event time was too far in the future (`--max-clock-skew`).
    pub future_messages: i64,
    /// `--changes` with a window: devices whose average left the report (no reading in the
    /// window any more), by device.
    pub humidity_gone: Vec<String>,
    /// `--changes` with a window: devices whose sensors all left the window, by device.
    pub sensors_gone: Vec<String>,
}

impl Snapshot {
    /// The cumulative state of `results` (the facts it holds).
    pub fn of(results: &Results) -> Self {
        Snapshot::from_facts(
            results.facts().filter(|(_, r)| **r > 0).map(|(s, _)| s),
            |device| device_name(results, device),
        )
    }

    /// The changes of one epoch: the facts added, and the devices whose facts were only
    /// retracted (they left a window), which `--changes` shows once with `null`.
    pub fn from_changes(changes: &[(Stat, isize)], results: &Results) -> Self {
        let name = |device: &DeviceKey| device_name(results, device);
        let mut snapshot =
            Snapshot::from_facts(changes.iter().filter(|(_, r)| *r > 0).map(|(s, _)| s), name);
        let device = |stat: &Stat, humidity: bool| match stat {
            Stat::DeviceHumidity { device, .. } if humidity => Some(name(device)),
            Stat::DeviceSensors { device, .. } if !humidity => Some(name(device)),
            _ => None,
        };
        for humidity in [true, false] {
            let added: std::collections::BTreeSet<String> = changes
                .iter()
                .filter(|(_, r)| *r > 0)
                .filter_map(|(s, _)| device(s, humidity))
                .collect();
            let gone: std::collections::BTreeSet<String> = changes
                .iter()
                .filter(|(_, r)| *r < 0)
                .filter_map(|(s, _)| device(s, humidity))
                .filter(|d| !added.contains(d))
                .collect();
            if humidity {
                snapshot.humidity_gone = gone.into_iter().collect();
            } else {
                snapshot.sensors_gone = gone.into_iter().collect();
            }
        }
        snapshot
    }

    /// Builds a report from facts (the full state, or only the facts added in one epoch),
    /// naming devices by `name`.
    pub fn from_facts<'a>(
        facts: impl IntoIterator<Item = &'a Stat>,
        name: impl Fn(&DeviceKey) -> String,
    ) -> Self {
        let mut snapshot = Snapshot::default();
        for fact in facts {
            match fact {
                Stat::DeviceHumidity {
                    device,
                    sum_micro,
                    count,
                } => {
                    if *count > 0 {
                        let avg = *sum_micro as f64 / *count as f64 / MICROS_PER_PERCENT as f64;
                        snapshot.avg_humidity_by_device.push((name(device), avg));
                    }
                }
                Stat::TotalMessages(n) => snapshot.total_messages = *n,
                Stat::DeviceSensors { device, sensors } => {
                    snapshot.sensors_by_device.push((name(device), *sensors));
                }
                Stat::TotalSensors(n) => snapshot.total_sensors = *n,
                Stat::Count(Counter::Rejected, n) => snapshot.rejected_messages = *n,
                Stat::Count(Counter::Late, n) => snapshot.late_messages = *n,
                Stat::Count(Counter::Future, n) => snapshot.future_messages = *n,
                Stat::Count(Counter::Valid | Counter::Received | Counter::RejectedAs(_), _)
                | Stat::DeviceName { .. } => {}
            }
        }
        // Unstable sorts (no scratch buffer): no two devices have the same name, so the order
        // is the same as a stable sort's.
        snapshot
            .avg_humidity_by_device
            .sort_unstable_by(|(da, a), (db, b)| b.total_cmp(a).then_with(|| da.cmp(db)));
        snapshot.sensors_by_device.sort_unstable();
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use hygroflow_dataflows::Key;

    use super::*;

    /// Names the test's devices, whose keys are `Key::of` their names.
    fn name(device: &DeviceKey) -> String {
        ["CT1", "CT2", "CT10", "MRI1", "PETCT7"]
            .into_iter()
            .find(|name| Key::of(name) == *device)
            .unwrap_or("?")
            .to_string()
    }

    fn humidity(device: &str, sum_micro: i64, count: i64) -> Stat {
        Stat::DeviceHumidity {
            device: Key::of(device),
            sum_micro,
            count,
        }
    }

    #[test]
    fn averages_sort_descending_with_ties_by_device() {
        let facts = [
            humidity("MRI1", 50_000_000, 1),
            humidity("CT2", 100_000_000, 2),
            humidity("CT1", 140_000_000, 2),
        ];
        let snapshot = Snapshot::from_facts(&facts, name);
        let order: Vec<&str> = snapshot
            .avg_humidity_by_device
            .iter()
            .map(|(d, _)| d.as_str())
            .collect();
        assert_eq!(order, ["CT1", "CT2", "MRI1"]);
    }

    #[test]
    fn averages_are_percent_and_devices_without_readings_are_left_out() {
        let facts = [humidity("CT1", 133_000_000, 2), humidity("MRI1", 0, 0)];
        let snapshot = Snapshot::from_facts(&facts, name);
        assert_eq!(snapshot.avg_humidity_by_device, [("CT1".to_string(), 66.5)]);
    }

    #[test]
    fn sensors_sort_by_device() {
        let sensors = |device: &str, sensors| Stat::DeviceSensors {
            device: Key::of(device),
            sensors,
        };
        let facts = [
            sensors("PETCT7", 43),
            sensors("CT10", 2),
            sensors("CT1", 36),
        ];
        let snapshot = Snapshot::from_facts(&facts, name);
        assert_eq!(
            snapshot.sensors_by_device,
            [
                ("CT1".to_string(), 36),
                ("CT10".to_string(), 2),
                ("PETCT7".to_string(), 43)
            ]
        );
    }

    #[test]
    fn a_snapshot_of_results_shows_their_state_after_each_epoch() {
        let mut results = Results::default();
        results.absorb([
            (Stat::TotalMessages(3), 1, 1),
            (Stat::TotalMessages(3), 2, -1),
            (Stat::TotalMessages(5), 2, 1),
            (Stat::Count(Counter::Late, 1), 2, 1),
        ]);
        results.advance(1);
        assert_eq!(Snapshot::of(&results).total_messages, 3);
        results.advance(2);
        let snapshot = Snapshot::of(&results);
        assert_eq!(snapshot.total_messages, 5);
        assert_eq!(snapshot.late_messages, 1);
    }
}
