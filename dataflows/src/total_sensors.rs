//! (iv) Total number of distinct sensors.
//!
//! Input: sensor tallies `((device, guid), (sum_micro, count))`.
//! Output: one `Stat::TotalSensors(n)`, the number of distinct `guid`s over all devices.
//!
//! ```text
//! tallies ─map(guid)─> distinct_total ─map(())─> count_total ─map─> TotalSensors
//! ```
//!
//! State: one row per distinct `guid`.

use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use differential_dataflow::VecCollection;

use crate::{Epoch, Stat, Tallies};

/// Distinct sensors over all devices.
pub fn total_sensors(tallies: Tallies<'_>) -> VecCollection<'_, Epoch, Stat, isize> {
    tallies
        .map(|(_device, guid)| guid)
        .distinct_total()
        .map(|_guid| ())
        .count_total()
        .map(|((), n)| Stat::TotalSensors(n as i64))
}
