//! Distinct sensors: how many per device and in all, as counts that (iii) and (iv) report.
//!
//! Input: sensors `((device, guid), n)` as keys. Output: a collection of [`SensorCount`]s whose
//! multiplicity at an epoch is the number of distinct sensors (per device, or in all) seen up
//! to it (cumulative) or in its window (windowed).
//!
//! ```text
//! cumulative: sensors ─exchange(guid)─> FirstSeen ─> SensorCount (pre-counted per batch)
//! windowed:   sensors ─distinct_total─> (device, guid) ─map─> Device(device) ─┐
//!                    └─map(guid)─> distinct_total ─map─> All ─────────────────┴─> SensorCount
//! ```
//!
//! A cumulative run only ever adds sensors, so distinct counting needs no arrangement: the
//! `FirstSeen` operator sends each sensor to the worker that owns its guid, which keeps one
//! hash map entry per guid (40 bytes) and counts a sensor at the earliest epoch any worker saw
//! it. Workers may send a sensor more than once, and out of epoch order (one worker ahead of
//! another): a later sighting changes nothing, an earlier one moves the count to the earlier
//! epoch (`+1` there, `-1` where it was). State and work then follow distinct sensors, shared
//! among the workers, not sightings: no worker keeps a copy of the others' sensors.
//!
//! A windowed run retracts sensors as they leave the window, so there the counts are
//! differential's `distinct_total`, which accumulates sightings in epoch order.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use differential_dataflow::operators::ThresholdTotal;
use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::CapabilitySet;

use crate::{DeviceKey, Epoch, GuidKey, Sensors};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What a distinct sensor counts towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SensorCount {
    /// The sensors of one device: (iii).
    Device(DeviceKey),
    /// All sensors, each guid once whatever its devices: (iv).
    All,
}

/// How sensors come and go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distinct {
    /// Sensors are only added (`+1`), each possibly several times: counted at first sight.
    Cumulative,
    /// Sensors enter (`+1`) and leave (`-1`) a window.
    Windowed,
}

/// The distinct-sensor counts of `sensors`.
pub fn distinct_sensors<'scope>(
    sensors: Sensors<'scope>,
    distinct: Distinct,
) -> VecCollection<'scope, Epoch, SensorCount, isize> {
    match distinct {
        Distinct::Windowed => {
            let pairs = sensors.clone().distinct_total();
            let guids = sensors.map(|(_device, guid)| guid).distinct_total();
            pairs
                .map(|(device, _guid)| SensorCount::Device(device))
                .concat(guids.map(|_guid| SensorCount::All))
        }
        Distinct::Cumulative => first_seen(sensors),
    }
}

/// The `FirstSeen` operator: each guid's worker counts it at the earliest epoch it was seen.
fn first_seen(sensors: Sensors<'_>) -> VecCollection<'_, Epoch, SensorCount, isize> {
    let by_guid = Exchange::new(|((_, guid), _, _): &((DeviceKey, GuidKey), Epoch, isize)| guid.1);
    sensors
        .inner
        .unary(by_guid, "FirstSeen", |_, _| {
            let mut seen = FirstSeen::default();
            let mut counts = BTreeMap::new();
            move |input, output| {
                // One capability at or before everything this activation received: its
                // counts go out in one message, each at its own epoch (which is never before
                // the sighting's, so never before the message's).
                let mut held: CapabilitySet<Epoch> = CapabilitySet::new();
                input.for_each(|cap, data| {
                    crate::hold(&mut held, &cap);
                    for ((device, guid), epoch, diff) in data.drain(..) {
                        if diff > 0 {
                            seen.see(device, guid, epoch, &mut |count, at, d| {
                                *counts.entry((at, count)).or_insert(0) += d;
                            });
                        }
                    }
                });
                // Pre-counted over everything this activation received: one update per
                // count and epoch, not one per sensor or per batch from the exchange.
                if !counts.is_empty() {
                    let mut session = output.session(&held);
                    for ((epoch, count), diff) in std::mem::take(&mut counts) {
                        if diff != 0 {
                            session.give((count, epoch, diff));
                        }
                    }
                }
            }
        })
        .as_collection()
}

/// One worker's share of the distinct sensors: the earliest epoch of each guid's sensors.
#[derive(Debug, Default)]
struct FirstSeen {
    /// Each guid's first device and the earliest epoch it was seen there.
    first: FastMap<GuidKey, (DeviceKey, Epoch)>,
    /// The rare guid seen at more than one device: its other devices.
    others: FastMap<(DeviceKey, GuidKey), Epoch>,
    /// Guids at more than one device: the earliest epoch at any of them.
    earliest: FastMap<GuidKey, Epoch>,
}

impl FirstSeen {
    /// Sees `guid` at `device` at `epoch`, and tells `emit` how the counts change.
    fn see(
        &mut self,
        device: DeviceKey,
        guid: GuidKey,
        epoch: Epoch,
        emit: &mut impl FnMut(SensorCount, Epoch, isize),
    ) {
        let (first_device, first_epoch) = match self.first.entry(guid) {
            Entry::Vacant(entry) => {
                entry.insert((device, epoch));
                emit(SensorCount::Device(device), epoch, 1);
                emit(SensorCount::All, epoch, 1);
                return;
            }
            Entry::Occupied(entry) => entry.into_mut(),
        };
        // The guid's earliest epoch before this sighting.
        let was = self.earliest.get(&guid).copied().unwrap_or(*first_epoch);
        if *first_device == device {
            if epoch < *first_epoch {
                move_count(SensorCount::Device(device), (*first_epoch, epoch), emit);
                *first_epoch = epoch;
            }
        } else {
            match self.others.entry((device, guid)) {
                Entry::Vacant(entry) => {
                    entry.insert(epoch);
                    emit(SensorCount::Device(device), epoch, 1);
                }
                Entry::Occupied(mut entry) => {
                    if epoch < *entry.get() {
                        move_count(SensorCount::Device(device), (*entry.get(), epoch), emit);
                        entry.insert(epoch);
                    }
                }
            }
            self.earliest.entry(guid).or_insert(was);
        }
        if epoch < was {
            move_count(SensorCount::All, (was, epoch), emit);
            if let Some(earliest) = self.earliest.get_mut(&guid) {
                *earliest = epoch;
            }
        }
    }
}

/// Moves one count of `count` from epoch `from` to the earlier epoch `to`.
fn move_count(
    count: SensorCount,
    (from, to): (Epoch, Epoch),
    emit: &mut impl FnMut(SensorCount, Epoch, isize),
) {
    emit(count, to, 1);
    emit(count, from, -1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;

    /// Feeds sightings to a `FirstSeen` and returns the counts at each epoch, accumulated.
    fn counts(sightings: &[(&str, &str, Epoch)]) -> BTreeMap<(SensorCount, Epoch), isize> {
        let mut seen = FirstSeen::default();
        let mut out = BTreeMap::new();
        for (device, guid, epoch) in sightings {
            seen.see(Key::of(device), Key::of(guid), *epoch, &mut |c, e, d| {
                *out.entry((c, e)).or_insert(0) += d;
            });
        }
        out.retain(|_, d| *d != 0);
        out
    }

    #[test]
    fn each_sensor_counts_once_at_its_earliest_epoch_whatever_the_order() {
        let ct1 = SensorCount::Device(Key::of("CT1"));
        let mri = SensorCount::Device(Key::of("MRI1"));
        let got = counts(&[
            ("CT1", "a", 9),
            ("CT1", "a", 12),
            ("CT1", "a", 5),
            ("CT1", "b", 7),
            // "a" at a second device: one more sensor of MRI1, not of all.
            ("MRI1", "a", 8),
            ("MRI1", "a", 3),
            ("MRI1", "a", 4),
        ]);
        let expected: BTreeMap<_, _> = [
            ((ct1, 5), 1),
            ((ct1, 7), 1),
            ((mri, 3), 1),
            ((SensorCount::All, 3), 1),
            ((SensorCount::All, 7), 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, expected);
    }
}
