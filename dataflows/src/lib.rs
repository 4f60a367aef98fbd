//! hygroflow's incremental analyses, and nothing else.
//!
//! This crate turns typed sensor tallies into the four per-epoch results of the original
//! Spark job, maintained incrementally with differential dataflow. It does no I/O and knows
//! nothing of Kafka, files or flags: the pipeline in the root crate (`src/pipeline/`) feeds it.
//!
//! ```text
//!  InputHandles                                  build(scope)
//!  device sums: (device key, (sum_micro, count)) ──> avg_humidity      ──┐
//!  sensors: ((device, guid) keys, +1) ─> distinct_sensors ─┬─> sensors_by_device ──┼─> Stat ─> worker 0
//!  names: ((device key, device), +1) ─────────────> sensors_by_device (DeviceName) ─┤
//!                                                          └─> total_sensors     ──┤
//!  counters: (Counter, i64) ──────────────────────> counters, total_messages ──┘
//!  feed: Observation (alerts on) ─────────────────> alerts ─> Transition ─> worker 0
//! ```
//!
//! The wiring exists once: [`build`] creates the five inputs in a scope, builds every
//! analysis (and, given [`AlertRules`], the [`alerts`]) and gathers their results to worker 0;
//! the caller gets the [`InputHandles`], the result collection and the stream of alert
//! transitions, and attaches its own `inspect_batch` and `probe`. The pipeline, the
//! oracle test (`tests/oracle.rs`) and the benchmark (`benches/analyses.rs`) all call it.
//! [`Results`] turns the gathered updates into the cumulative facts of each epoch; sorting and
//! dividing them for display is the report sink's business, not this crate's.
//!
//! The inputs are pre-aggregated on each worker, so their size follows devices and sensors,
//! not messages:
//! - *device sums*: per epoch, one update per device, by its 128-bit key, whose *difference*
//!   is `(sum of humidities, number of readings)`. Differential sums differences, so the
//!   analyses see exactly what one update per message would have summed to;
//! - *sensors*: a `(device, guid)` pair, as a pair of 128-bit [`keys`], enters when a worker
//!   sees it and does not remember it (see [`distinct_sensors`]). Workers may send the same
//!   pair, one worker more than once; the distinct counts absorb that;
//! - *names*: a device's key and name enter once per worker, the first time it sees the device,
//!   and leave as one [`Stat::DeviceName`] fact per device. The analyses and their results
//!   carry devices as keys; [`Results`] keeps the names apart and the report looks them up, so
//!   no device name is cloned, hashed or compared on the dataflow's per-epoch path.
//!
//! A windowed run (the root crate's `--window`) feeds the same inputs differently, and the
//! analyses do not change: every device update at epoch `e` comes with its negation at `e + n`
//! (`n` epochs in the window), and a sensor enters (`+1`) when it reads while out of the window
//! and leaves (`-1`) `n` epochs after its last reading, so each collection at `e` holds the
//! window `e-n+1 ..= e`. A device or sensor whose updates all expired
//! accumulates to zero and leaves the results. `Counter::Received` then marks the epochs that
//! had messages.
#![deny(missing_docs)]

pub mod alerts;
pub mod avg_humidity;
pub mod counters;
pub mod distinct_sensors;
pub mod inputs;
pub mod keys;
pub mod results;
pub mod sensors_by_device;
pub mod total_sensors;

use differential_dataflow::input::Input;
use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::ToStream;
use timely::dataflow::operators::{CapabilitySet, Exchange, InputCapability};
use timely::dataflow::{Scope, StreamVec};
use timely::order::PartialOrder;

pub use alerts::{AlertRules, Observation, Transition};

pub use distinct_sensors::{Distinct, SensorCount};
pub use inputs::InputHandles;
pub use keys::{sensor_key, DeviceKey, GuidKey, Key, SensorKey};
pub use results::Results;

/// An epoch: the index of a batch of `--epoch` length since the Unix epoch.
pub type Epoch = u64;

/// Humidity is carried in millionths of a percent, so sums and averages are exact integers.
pub const MICROS_PER_PERCENT: i64 = 1_000_000;

/// The difference carried by a sensor update: `(sum of humidity in micro-percent, readings)`.
pub type Tally = (i64, i64);

/// Per-device sums: the difference of a device's key is `(sum_micro, count)`.
pub type DeviceSums<'scope> = VecCollection<'scope, Epoch, DeviceKey, Tally>;

/// Sensors seen: `(device, guid)` keys with a positive count (one per worker that saw it).
pub type Sensors<'scope> = VecCollection<'scope, Epoch, SensorKey, isize>;

/// Device names: `(key, name)` with a positive count (one per worker that saw the device).
pub type Names<'scope> = VecCollection<'scope, Epoch, (DeviceKey, String), isize>;

/// The alerts' feed: observations of devices, sensors and reported epochs (see [`alerts`]).
pub type Feed<'scope> = VecCollection<'scope, Epoch, alerts::Observation, isize>;

/// Side counts that are not analyses of the readings but travel with them to the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Counter {
    /// Valid readings: each worker sends its epoch's count once, so the total of (ii) costs one
    /// update per worker and epoch, not one per device. It must agree with the counts of the
    /// device sums (the same readings, the same epochs, retracted where they leave a window).
    Valid,
    /// Messages that failed validation.
    Rejected,
    /// Valid messages whose event time fell before the open epoch (event time only).
    Late,
    /// Valid messages whose event time was too far ahead of the wall clock (event time only):
    /// they joined the open epoch instead of moving it.
    Future,
    /// Messages rejected by one rule (the index of its `error_kind` in the root crate's
    /// `message::ERROR_KINDS`), so that the metrics count rejects by kind over every worker
    /// and process. Not in the report, which counts rejects in all.
    RejectedAs(u8),
    /// Messages assigned to an epoch (valid, rejected or late), sent only by windowed runs:
    /// it changes exactly at the epochs that had a message on some worker, which tells the
    /// printer those epochs from the ones where readings only left the window. Not reported.
    Received,
}

/// The counters collection: one update per counter and epoch, the difference is the count.
pub type Counters<'scope> = VecCollection<'scope, Epoch, Counter, i64>;

/// One fact of the cumulative result. A report is the set of facts at an epoch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stat {
    /// Sum and count of humidity readings of one device: (i).
    DeviceHumidity {
        /// The imaging device's key (its name is a [`Stat::DeviceName`]).
        device: DeviceKey,
        /// Sum of humidities in micro-percent.
        sum_micro: i64,
        /// Number of readings.
        count: i64,
    },
    /// Valid messages processed: (ii).
    TotalMessages(i64),
    /// Distinct sensors seen at one device: (iii).
    DeviceSensors {
        /// The imaging device's key (its name is a [`Stat::DeviceName`]).
        device: DeviceKey,
        /// Number of distinct `guid`s.
        sensors: i64,
    },
    /// The name of a device key, once per device (never retracted). [`Results`] keeps these
    /// apart from the other facts, to name the devices of a report.
    DeviceName {
        /// The device's key.
        device: DeviceKey,
        /// The imaging device, as the messages spell it.
        name: String,
    },
    /// Distinct sensors over all devices: (iv).
    TotalSensors(i64),
    /// A side counter (rejected or late messages).
    Count(Counter, i64),
}

/// Builds the analyses in `scope`: their five inputs, every analysis, and the results
/// gathered to worker 0.
///
/// Every worker calls it in the same dataflow. The caller feeds the returned inputs and
/// attaches what reads the results (`inspect_batch`, `probe`, `capture`); on workers other
/// than 0 the result collection stays empty.
///
/// ```
/// use hygroflow_dataflows::{build, Distinct, Epoch};
///
/// timely::execute_directly(|worker| {
///     let (mut inputs, probe) = worker.dataflow::<Epoch, _, _>(|scope| {
///         let (inputs, stats, _) = build(scope, (Distinct::Cumulative, None));
///         let (probe, _) = stats.inspect(|(stat, epoch, diff)| println!("{epoch}: {stat:?} {diff:+}")).probe();
///         (inputs, probe)
///     });
///     inputs.device_sums.update(hygroflow_dataflows::Key::of("CT1"), (66_500_000, 1));
///     inputs.counters.update(hygroflow_dataflows::Counter::Valid, 1);
///     inputs.advance_to(1);
///     inputs.flush();
///     worker.step_while(|| probe.less_than(inputs.time()));
///     inputs.close();
/// });
/// ```
pub fn build(
    scope: Scope<'_, Epoch>,
    (distinct, rules): (Distinct, Option<AlertRules>),
) -> (
    InputHandles,
    VecCollection<'_, Epoch, Stat, isize>,
    StreamVec<'_, Epoch, Transition>,
) {
    let (device_sums, sums) = scope.new_collection::<DeviceKey, Tally>();
    let (sensors, seen) = scope.new_collection::<SensorKey, isize>();
    let (names, named) = scope.new_collection::<(DeviceKey, String), isize>();
    let (counters, counts) = scope.new_collection::<Counter, i64>();
    let (feed, observations) = scope.new_collection::<Observation, isize>();
    let inputs = InputHandles {
        device_sums,
        sensors,
        names,
        counters,
        feed,
    };
    let transitions = match rules {
        Some(rules) => alerts::alerts(observations, rules).exchange(|_| 0),
        None => {
            drop(observations);
            std::iter::empty::<Transition>().to_stream(scope)
        }
    };
    (
        inputs,
        gather_to_first(analyses(sums, (seen, named, distinct), counts)),
        transitions,
    )
}

/// Builds all analyses and concatenates their results.
fn analyses<'scope>(
    device_sums: DeviceSums<'scope>,
    (sensors, names, distinct): (Sensors<'scope>, Names<'scope>, Distinct),
    counters: Counters<'scope>,
) -> VecCollection<'scope, Epoch, Stat, isize> {
    let sensor_counts = distinct_sensors::distinct_sensors(sensors, distinct);
    avg_humidity::avg_humidity(device_sums)
        .concat(sensors_by_device::sensors_by_device(
            sensor_counts.clone(),
            names,
        ))
        .concat(total_sensors::total_sensors(sensor_counts))
        .concat(counters::counters(counters))
}

/// Adds to `held` a capability for each time of the message `cap` came with, unless `held`
/// already has one at or before it: an operator that sends everything one activation completes
/// in one message, each update at its own epoch (as differential's `count_total` does), holds
/// one capability at or before the earliest, not one per epoch.
fn hold(held: &mut CapabilitySet<Epoch>, cap: &InputCapability<Epoch>) {
    let covered = cap
        .stamp()
        .iter()
        .all(|t| held.iter().any(|h| h.time().less_equal(t)));
    if !covered {
        for capability in cap.retain_stamp(0).iter() {
            held.insert(capability.clone());
        }
    }
}

/// Routes every result update to worker 0, where reports are assembled.
fn gather_to_first(
    stats: VecCollection<'_, Epoch, Stat, isize>,
) -> VecCollection<'_, Epoch, Stat, isize> {
    stats.inner.exchange(|_| 0).as_collection()
}
