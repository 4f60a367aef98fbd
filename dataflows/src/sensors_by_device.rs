//! (iii) Number of distinct sensors per device.
//!
//! Input: sensors `((device, guid), n)`, `n` > 0 once any worker has seen the pair.
//! Output: one `Stat::DeviceSensors { device, sensors }` per device.
//!
//! ```text
//! sensors ─distinct_total─> (device, guid) ─map(device)─> count_total ─map─> DeviceSensors
//! ```
//!
//! State: one row per distinct `(device, guid)` pair and one count per device. A sensor that
//! reports to two devices counts once at each, as in the seed's `device:guid` keys.

use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use differential_dataflow::VecCollection;

use crate::{Epoch, Sensors, Stat};

/// Distinct sensors per device.
pub fn sensors_by_device(sensors: Sensors<'_>) -> VecCollection<'_, Epoch, Stat, isize> {
    sensors
        .distinct_total()
        .map(|(device, _guid)| device)
        .count_total()
        .map(|(device, sensors)| Stat::DeviceSensors {
            device,
            sensors: sensors as i64,
        })
}
