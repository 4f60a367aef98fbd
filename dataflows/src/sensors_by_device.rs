//! (iii) Number of distinct sensors per device.
//!
//! Inputs: the distinct-sensor counts (`distinct_sensors.rs`), whose `Device(key)` entries
//! have one multiplicity per distinct sensor of the device; device names `((key, name), n)`,
//! `n` > 0 once any worker has seen the device.
//! Output: one `Stat::DeviceSensors { device, sensors }` per device, by name.
//!
//! ```text
//! counts ─filter(Device)─> count_total ─┐
//!                                       join(key) ─map─> DeviceSensors
//! names ──distinct_total─> (key, name) ─┘
//! ```
//!
//! State: one count and one name per device. The names are joined only to the counts, which
//! change at most once per device and epoch, so text stays off the path of the sensors. A
//! sensor that reports to two devices counts once at each, as in the seed's `device:guid` keys.

use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use differential_dataflow::VecCollection;

use crate::distinct_sensors::SensorCount;
use crate::{Epoch, Names, Stat};

/// Distinct sensors per device.
pub fn sensors_by_device<'scope>(
    counts: VecCollection<'scope, Epoch, SensorCount, isize>,
    names: Names<'scope>,
) -> VecCollection<'scope, Epoch, Stat, isize> {
    let per_device = counts
        .flat_map(|count| match count {
            SensorCount::Device(device) => Some(device),
            SensorCount::All => None,
        })
        .count_total();
    per_device.join_map(names.distinct_total(), |_key, sensors, device| {
        Stat::DeviceSensors {
            device: device.clone(),
            sensors: *sensors as i64,
        }
    })
}
