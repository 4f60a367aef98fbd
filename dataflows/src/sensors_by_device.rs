//! (iii) Number of distinct sensors per device, and the devices' names.
//!
//! Inputs: the distinct-sensor counts (`distinct_sensors.rs`), whose `Device(key)` entries
//! have one multiplicity per distinct sensor of the device; device names `((key, name), n)`,
//! `n` > 0 once any worker has seen the device.
//! Output: one `Stat::DeviceSensors { device, sensors }` per device, by key, and one
//! `Stat::DeviceName { device, name }` per device, which names the keys of every result.
//!
//! ```text
//! counts ─filter(Device)─> count_total ─map─> DeviceSensors
//! names ──distinct_total─> map ─> DeviceName
//! ```
//!
//! State: one count and one name per device. Names are not joined to the counts: a name
//! changes never and a count at most once per device and epoch, and the report looks names
//! up, so text stays off the dataflow's per-epoch path. A sensor that reports to two devices
//! counts once at each, as in the seed's `device:guid` keys.

use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use differential_dataflow::VecCollection;

use crate::distinct_sensors::SensorCount;
use crate::{Epoch, Names, Stat};

/// Distinct sensors per device, and the devices' names.
pub fn sensors_by_device<'scope>(
    counts: VecCollection<'scope, Epoch, SensorCount, isize>,
    names: Names<'scope>,
) -> VecCollection<'scope, Epoch, Stat, isize> {
    let per_device = counts
        .flat_map(|count| match count {
            SensorCount::Device(device) => Some(device),
            SensorCount::All => None,
        })
        .count_total()
        .map(|(device, sensors)| Stat::DeviceSensors {
            device,
            sensors: sensors as i64,
        });
    let named = names
        .distinct_total()
        .map(|(device, name)| Stat::DeviceName { device, name });
    per_device.concat(named)
}
