//! (iv) Total number of distinct sensors.
//!
//! Input: sensors `((device, guid), n)`, `n` > 0 once any worker has seen the pair.
//! Output: one `Stat::TotalSensors(n)`, the number of distinct `guid`s over all devices.
//!
//! ```text
//! sensors ─map(guid)─> distinct_total ─map(())─> count_total ─map─> TotalSensors
//! ```
//!
//! State: one row per distinct `guid`.

use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use differential_dataflow::VecCollection;

use crate::{Epoch, Sensors, Stat};

/// Distinct sensors over all devices.
pub fn total_sensors(sensors: Sensors<'_>) -> VecCollection<'_, Epoch, Stat, isize> {
    sensors
        .map(|(_device, guid)| guid)
        .distinct_total()
        .map(|_guid| ())
        .count_total()
        .map(|((), n)| Stat::TotalSensors(n as i64))
}
