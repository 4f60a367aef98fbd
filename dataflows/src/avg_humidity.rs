//! (i) Average humidity per device.
//!
//! Input: device sums `(device, (sum_micro, count))`, the pair being the difference.
//! Output: one `Stat::DeviceHumidity { device, sum_micro, count }` per device; the average is
//! `sum_micro / count / 1e6`, divided only when printed so it stays exact.
//!
//! ```text
//! device sums ─exchange(device)─> RunningSums ─> DeviceHumidity
//! ```
//!
//! `RunningSums` is `count_total` for this one shape, without an arrangement: each device
//! goes to the worker that owns its key, which keeps one running `(sum, count)` per device and,
//! once the frontier passes an epoch, adds that epoch's updates to it in epoch order and sends
//! the change of the device's fact (`-1` for the old sums, `+1` for the new). A device whose
//! sums return to `(0, 0)` (every reading left a window) has no fact, as with `count_total`.
//! Every device changes in nearly every epoch, so an arrangement of the sums (sorted batches,
//! merged and compacted) was a fifth of a worker's time in event time over many small epochs,
//! for a state that is only ever read at its newest epoch.

use std::collections::HashMap;

use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::CapabilitySet;

use crate::{DeviceKey, DeviceSums, Epoch, Stat, Tally};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Per-device sum and count of humidity readings.
pub fn avg_humidity(device_sums: DeviceSums<'_>) -> VecCollection<'_, Epoch, Stat, isize> {
    let by_device = Exchange::new(|(device, _, _): &(DeviceKey, Epoch, Tally)| device.1);
    device_sums
        .inner
        .unary_frontier(by_device, "RunningSums", |_, _| {
            let mut sums = RunningSums::default();
            // The updates not yet applied, in epoch order (they nearly always arrive in it),
            // and one capability at or before the earliest of them: an activation that
            // completes many epochs (event time replaying a file) sends all their changes in
            // one message, each change at its own epoch, as `count_total` does. A capability
            // and a message per epoch cost progress tracking at every operator downstream,
            // for every epoch: on the 1M-line file of readings 30 ms apart (10,000 epochs),
            // event time at 1 worker took 0.395 s (median of 12) with them and 0.325 s
            // without, the same file in processing time 0.24-0.25 s.
            let mut pending: Vec<(Epoch, DeviceKey, Tally)> = Vec::new();
            let mut held: CapabilitySet<Epoch> = CapabilitySet::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    crate::hold(&mut held, &cap);
                    let updates = data
                        .drain(..)
                        .map(|(device, epoch, diff)| (epoch, device, diff));
                    pending.extend(updates);
                });
                if !pending.is_sorted_by_key(|(epoch, _, _)| *epoch) {
                    pending.sort_by_key(|(epoch, _, _)| *epoch);
                }
                let due = pending.partition_point(|(epoch, _, _)| !frontier.less_equal(epoch));
                if due > 0 {
                    let mut session = output.session(&held);
                    for run in pending[..due].chunk_by(|a, b| a.0 == b.0) {
                        let epoch = run[0].0;
                        let updates = run.iter().map(|(_, device, diff)| (*device, *diff));
                        sums.apply(epoch, updates, &mut |(device, (sum_micro, count)), diff| {
                            let fact = Stat::DeviceHumidity {
                                device,
                                sum_micro,
                                count,
                            };
                            session.give((fact, epoch, diff));
                        });
                    }
                    pending.drain(..due);
                }
                match pending.first() {
                    Some((epoch, _, _)) => held.downgrade([epoch]),
                    None => held = CapabilitySet::new(),
                }
            }
        })
        .as_collection()
}

/// One worker's share of the devices: each device's sums so far.
#[derive(Debug, Default)]
struct RunningSums {
    /// Each device's place in `devices`.
    index: FastMap<DeviceKey, usize>,
    /// Every device this worker has summed (with `(0, 0)` when its readings all left a
    /// window: there are few devices, and one that returns takes its old place).
    devices: Vec<Running>,
    /// The devices an epoch changes, with their sums before it.
    touched: Vec<(usize, Tally)>,
}

/// One device's sums.
#[derive(Debug)]
struct Running {
    device: DeviceKey,
    sums: Tally,
    /// The last epoch that changed it.
    last: Option<Epoch>,
}

impl RunningSums {
    /// Adds one epoch's updates and tells `emit` how each device's sums changed: the old
    /// sums with `-1` and the new with `+1` (none for `(0, 0)`, which is no fact). Several
    /// updates of one device (from several workers) make one change.
    fn apply(
        &mut self,
        epoch: Epoch,
        updates: impl IntoIterator<Item = (DeviceKey, Tally)>,
        emit: &mut impl FnMut((DeviceKey, Tally), isize),
    ) {
        for (device, (sum, count)) in updates {
            let devices = &mut self.devices;
            let at = *self.index.entry(device).or_insert_with(|| {
                devices.push(Running {
                    device,
                    sums: (0, 0),
                    last: None,
                });
                devices.len() - 1
            });
            let running = &mut self.devices[at];
            if running.last != Some(epoch) {
                running.last = Some(epoch);
                self.touched.push((at, running.sums));
            }
            running.sums.0 += sum;
            running.sums.1 += count;
        }
        for (at, old) in self.touched.drain(..) {
            let Running { device, sums, .. } = self.devices[at];
            if sums == old {
                continue;
            }
            if old != (0, 0) {
                emit((device, old), -1);
            }
            if sums != (0, 0) {
                emit((device, sums), 1);
            }
        }
    }

    /// Devices with sums: those that have a fact.
    #[cfg(test)]
    fn with_sums(&self) -> usize {
        self.devices.iter().filter(|d| d.sums != (0, 0)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;

    #[test]
    fn an_epoch_changes_each_device_once_and_sums_that_return_to_zero_are_no_fact() {
        let (ct1, mri1) = (Key::of("CT1"), Key::of("MRI1"));
        let mut sums = RunningSums::default();
        let mut out = Vec::new();
        // Two workers' updates for CT1 in one epoch count as one change.
        sums.apply(
            1,
            vec![(ct1, (10, 1)), (mri1, (5, 1)), (ct1, (20, 1))],
            &mut |fact, diff| out.push((fact, diff)),
        );
        out.sort();
        let mut want = vec![((ct1, (30, 2)), 1), ((mri1, (5, 1)), 1)];
        want.sort();
        assert_eq!(out, want);
        out.clear();
        // A window retracts MRI1's readings and CT1's first; updates that cancel change nothing.
        sums.apply(
            2,
            vec![
                (mri1, (-5, -1)),
                (ct1, (-10, -1)),
                (ct1, (7, 1)),
                (ct1, (-7, -1)),
            ],
            &mut |fact, diff| out.push((fact, diff)),
        );
        out.sort();
        let mut want = vec![
            ((ct1, (20, 1)), 1),
            ((ct1, (30, 2)), -1),
            ((mri1, (5, 1)), -1),
        ];
        want.sort();
        assert_eq!(out, want);
        assert_eq!(sums.with_sums(), 1);
        out.clear();
        // A device back in the window starts again from nothing.
        sums.apply(3, vec![(mri1, (8, 1))], &mut |fact, diff| {
            out.push((fact, diff))
        });
        assert_eq!(out, vec![((mri1, (8, 1)), 1)]);
        assert_eq!(sums.with_sums(), 2);
    }
}
