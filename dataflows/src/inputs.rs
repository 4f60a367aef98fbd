//! The dataflow's five inputs, moved together.
//!
//! [`InputHandles`] owns the input sessions that [`build`](crate::build) creates: device sums,
//! sensors, device names, counters and the alerts' feed. Every worker must move all five to
//! the same epochs, data or not, or the frontier stalls; `advance_to`, `flush` and `close` act
//! on all five at once, so no caller
//! can forget one (differential's `tpchlike` shares one `InputHandles` between its queries and
//! their tests the same way).
//!
//! `advance_to` only records the next epoch, as `InputSession::advance_to` does; `flush` sends
//! what is buffered and tells timely that earlier epochs are closed. Call both, in that order.

use differential_dataflow::input::InputSession;

use crate::{Counter, DeviceKey, Epoch, Observation, SensorKey, Tally};

/// The dataflow's inputs: what a worker sends into the analyses.
pub struct InputHandles {
    /// Per-device sums: one `(device key, (sum_micro, count))` update per device and epoch (in
    /// a windowed run, also its negation where the epoch leaves the window).
    pub device_sums: InputSession<Epoch, DeviceKey, Tally>,
    /// Sensors: `((device, guid), 1)`, as keys, when this worker sees a pair it does not
    /// remember (cumulative; any number of times), or in a windowed run `+1` when it enters
    /// this worker's window and `-1` at the epoch it leaves it, a window after its last
    /// reading.
    pub sensors: InputSession<Epoch, SensorKey, isize>,
    /// Device names: `((key, name), 1)` the first time this worker sees the device (never
    /// retracted: a name outlives the device's readings in a window).
    pub names: InputSession<Epoch, (DeviceKey, String), isize>,
    /// Side counters: `(Counter, n)`, the count being the difference.
    pub counters: InputSession<Epoch, Counter, i64>,
    /// The alerts' feed: per epoch, each device's sums, each sensor seen and whether the
    /// worker had a message (only sent when alerts are on).
    pub feed: InputSession<Epoch, Observation, isize>,
}

impl InputHandles {
    /// Records `epoch` as the time of later updates on all five inputs (no effect until `flush`).
    ///
    /// Panics, as `InputSession::advance_to` does, if `epoch` is before the inputs' time.
    pub fn advance_to(&mut self, epoch: Epoch) {
        self.device_sums.advance_to(epoch);
        self.sensors.advance_to(epoch);
        self.names.advance_to(epoch);
        self.counters.advance_to(epoch);
        self.feed.advance_to(epoch);
    }

    /// Sends the buffered updates of all five inputs and moves their frontier to their time.
    pub fn flush(&mut self) {
        self.device_sums.flush();
        self.sensors.flush();
        self.names.flush();
        self.counters.flush();
        self.feed.flush();
    }

    /// The epoch later updates go to: the time of all five inputs, which move together.
    pub fn time(&self) -> &Epoch {
        self.device_sums.time()
    }

    /// Flushes and closes all five inputs; the dataflow finishes once every worker has.
    pub fn close(self) {
        let InputHandles {
            device_sums,
            sensors,
            names,
            counters,
            feed,
        } = self;
        device_sums.close();
        sensors.close();
        names.close();
        counters.close();
        feed.close();
    }
}

impl Default for InputHandles {
    /// Inputs attached to no dataflow: what `std::mem::take` leaves behind when a caller that
    /// holds its inputs by `&mut` closes them.
    fn default() -> Self {
        InputHandles {
            device_sums: InputSession::new(),
            sensors: InputSession::new(),
            names: InputSession::new(),
            counters: InputSession::new(),
            feed: InputSession::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use crate::{build, sensor_key, Counter, Epoch, Key, Stat};

    #[test]
    fn the_inputs_move_together_and_close_together() {
        timely::execute_directly(|worker| {
            let seen = Rc::new(RefCell::new(Vec::new()));
            let sink = Rc::clone(&seen);
            let (mut inputs, probe) = worker.dataflow::<Epoch, _, _>(|scope| {
                let (inputs, stats, _) = build(scope, (crate::Distinct::Cumulative, None));
                let (probe, _) = stats
                    .inspect_batch(move |_, updates| {
                        sink.borrow_mut().extend(updates.iter().cloned())
                    })
                    .probe();
                (inputs, probe)
            });
            inputs.device_sums.update(Key::of("CT1"), (50_000_000, 1));
            inputs.counters.update(Counter::Valid, 1);
            inputs.sensors.update(sensor_key("CT1", "g1"), 1);
            inputs.names.update((Key::of("CT1"), "CT1".into()), 1);
            inputs.counters.update(Counter::Rejected, 2);
            inputs.advance_to(4);
            inputs.flush();
            assert_eq!(*inputs.time(), 4);
            worker.step_while(|| probe.less_than(inputs.time()));
            let mut got: Vec<(Stat, Epoch, isize)> = seen.borrow_mut().drain(..).collect();
            got.sort();
            let device = Key::of("CT1");
            assert_eq!(
                got,
                [
                    (
                        Stat::DeviceHumidity {
                            device,
                            sum_micro: 50_000_000,
                            count: 1
                        },
                        0,
                        1
                    ),
                    (Stat::TotalMessages(1), 0, 1),
                    (Stat::DeviceSensors { device, sensors: 1 }, 0, 1),
                    (
                        Stat::DeviceName {
                            device,
                            name: "CT1".into()
                        },
                        0,
                        1
                    ),
                    (Stat::TotalSensors(1), 0, 1),
                    (Stat::Count(Counter::Rejected, 2), 0, 1),
                ]
            );
            inputs.close();
            worker.step_while(|| !probe.done());
        });
    }

    #[test]
    fn unattached_inputs_close_quietly() {
        let mut inputs = super::InputHandles::default();
        inputs.advance_to(3);
        inputs.flush();
        std::mem::take(&mut inputs).close();
    }
}
