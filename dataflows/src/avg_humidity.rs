//! (i) Average humidity per device.
//!
//! Input: device sums `(device, (sum_micro, count))`, the pair being the difference.
//! Output: one `Stat::DeviceHumidity { device, sum_micro, count }` per device; the average is
//! `sum_micro / count / 1e6`, divided only when printed so it stays exact.
//!
//! ```text
//! device sums ─count_total─> map ─> DeviceHumidity
//! ```
//!
//! `count_total` accumulates the differences per key, so the state is one `(sum, count)` per
//! device, whatever the number of messages.

use differential_dataflow::operators::CountTotal;
use differential_dataflow::VecCollection;

use crate::{DeviceSums, Epoch, Stat};

/// Per-device sum and count of humidity readings.
pub fn avg_humidity(device_sums: DeviceSums<'_>) -> VecCollection<'_, Epoch, Stat, isize> {
    device_sums
        .count_total()
        .map(|(device, (sum_micro, count))| Stat::DeviceHumidity {
            device,
            sum_micro,
            count,
        })
}
