//! (ii) Total messages processed.
//!
//! Input: device sums `(device, (sum_micro, count))`, the pair being the difference.
//! Output: one `Stat::TotalMessages(n)`, the number of valid readings so far.
//!
//! ```text
//! device sums ─map(())─> count_total ─map─> TotalMessages
//! ```

use differential_dataflow::operators::CountTotal;
use differential_dataflow::VecCollection;

use crate::{DeviceSums, Epoch, Stat};

/// The number of valid readings so far.
pub fn total_messages(device_sums: DeviceSums<'_>) -> VecCollection<'_, Epoch, Stat, isize> {
    device_sums
        .map(|_| ())
        .count_total()
        .map(|((), (_sum, count))| Stat::TotalMessages(count))
}
