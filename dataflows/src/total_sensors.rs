//! (iv) Total number of distinct sensors.
//!
//! Input: the distinct-sensor counts (`distinct_sensors.rs`), whose `All` entry has one
//! multiplicity per distinct guid over all devices.
//! Output: one `Stat::TotalSensors(n)`.
//!
//! ```text
//! counts ─filter(All)─> count_total ─map─> TotalSensors
//! ```
//!
//! State: one count.

use differential_dataflow::operators::CountTotal;
use differential_dataflow::VecCollection;

use crate::distinct_sensors::SensorCount;
use crate::{Epoch, Stat};

/// Distinct sensors over all devices.
pub fn total_sensors(
    counts: VecCollection<'_, Epoch, SensorCount, isize>,
) -> VecCollection<'_, Epoch, Stat, isize> {
    counts
        .filter(|count| *count == SensorCount::All)
        .map(|_| ())
        .count_total()
        .map(|((), n)| Stat::TotalSensors(n as i64))
}
