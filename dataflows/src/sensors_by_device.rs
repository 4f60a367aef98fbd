//! (iii) Number of distinct sensors per device.
//!
//! Input: sensor tallies `((device, guid), (sum_micro, count))`.
//! Output: one `Stat::DeviceSensors { device, sensors }` per device.
//!
//! ```text
//! tallies ─distinct_total─> (device, guid) ─map(device)─> count_total ─map─> DeviceSensors
//! ```
//!
//! State: one row per distinct `(device, guid)` pair and one count per device. A sensor that
//! reports to two devices counts once at each, as in the seed's `device:guid` keys.

use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use differential_dataflow::VecCollection;

use crate::{Epoch, Stat, Tallies};

/// Distinct sensors per device.
pub fn sensors_by_device(tallies: Tallies<'_>) -> VecCollection<'_, Epoch, Stat, isize> {
    tallies
        .distinct_total()
        .map(|(device, _guid)| device)
        .count_total()
        .map(|(device, sensors)| Stat::DeviceSensors {
            device,
            sensors: sensors as i64,
        })
}
