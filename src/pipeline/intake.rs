//! A worker's inputs: tallies of the open epoch, and what closing an epoch must record
//! (dead letters made durable, a checkpoint written, offsets queued for commit).

use std::collections::{BTreeMap, VecDeque};

use differential_dataflow::input::InputSession;
use hygroflow_dataflows::{Counter, Epoch, SensorKey, Tally};

use crate::checkpoint::{StateDir, WorkerState};
use crate::sink::rejects::Rejects;
use crate::tally::WorkerTally;

/// Cumulative counts a worker keeps for its checkpoints.
#[derive(Debug, Default)]
pub(super) struct Totals {
    devices: BTreeMap<String, Tally>,
    rejected: i64,
    late: i64,
}

/// A worker's inputs, the epoch they are open at, and what closing an epoch must record.
pub(super) struct Intake<'a> {
    pub(super) device_sums: InputSession<Epoch, String, Tally>,
    pub(super) sensors: InputSession<Epoch, SensorKey, isize>,
    pub(super) counters: InputSession<Epoch, Counter, i64>,
    pub(super) tally: WorkerTally,
    pub(super) rejected: i64,
    pub(super) late: i64,
    pub(super) open: Epoch,
    pub(super) rejects: Rejects,
    /// Next offset per partition of what has been handled.
    pub(super) positions: BTreeMap<i32, i64>,
    /// Cumulative counts, kept only when checkpointing.
    pub(super) totals: Option<Totals>,
    /// Where this worker writes checkpoints, and the run's generation.
    pub(super) checkpoints: Option<(&'a StateDir, u64)>,
    pub(super) worker: usize,
    /// Closed epochs whose offsets wait to be committed.
    pub(super) to_commit: VecDeque<(Epoch, BTreeMap<i32, i64>)>,
}

impl Intake<'_> {
    /// Closes the open epoch and moves the inputs to `epoch` (if later).
    pub(super) fn advance_to(&mut self, epoch: Epoch) -> anyhow::Result<()> {
        if epoch <= self.open {
            return Ok(());
        }
        self.close_open()?;
        self.device_sums.advance_to(epoch);
        self.sensors.advance_to(epoch);
        self.counters.advance_to(epoch);
        self.device_sums.flush();
        self.sensors.flush();
        self.counters.flush();
        self.open = epoch;
        Ok(())
    }

    /// Sends the open epoch's tallies, makes its dead letters durable and checkpoints it.
    pub(super) fn close_open(&mut self) -> anyhow::Result<()> {
        for (device, tally) in self.tally.drain_devices() {
            if let Some(totals) = &mut self.totals {
                add(totals.devices.entry(device.clone()).or_default(), tally);
            }
            self.device_sums.update(device, tally);
        }
        for sensor in self.tally.drain_new_sensors() {
            self.sensors.update(sensor, 1);
        }
        let (rejected, late) = (
            std::mem::take(&mut self.rejected),
            std::mem::take(&mut self.late),
        );
        if rejected > 0 {
            self.counters.update(Counter::Rejected, rejected);
        }
        if late > 0 {
            self.counters.update(Counter::Late, late);
        }
        self.rejects.end_epoch()?;
        if let (Some(totals), Some((dir, generation))) = (&mut self.totals, self.checkpoints) {
            totals.rejected += rejected;
            totals.late += late;
            let state = WorkerState {
                offsets: self.positions.clone(),
                rejected: totals.rejected,
                late: totals.late,
                devices: totals
                    .devices
                    .iter()
                    .map(|(d, (s, c))| (d.clone(), *s, *c))
                    .collect(),
                sensors: self.tally.sensors(),
            };
            dir.write_worker(generation, self.worker, self.open, state)?;
        }
        self.to_commit
            .push_back((self.open, self.positions.clone()));
        Ok(())
    }

    /// Feeds a restored worker state back as weighted records.
    pub(super) fn restore(&mut self, state: &WorkerState) {
        for (device, sum, count) in &state.devices {
            if let Some(totals) = &mut self.totals {
                add(
                    totals.devices.entry(device.clone()).or_default(),
                    (*sum, *count),
                );
            }
            self.device_sums.update(device.clone(), (*sum, *count));
        }
        for (device, guid) in &state.sensors {
            if self.tally.mark_seen(device, guid) {
                self.sensors.update((device.clone(), guid.clone()), 1);
            }
        }
        if let Some(totals) = &mut self.totals {
            totals.rejected += state.rejected;
            totals.late += state.late;
        }
        if state.rejected != 0 {
            self.counters.update(Counter::Rejected, state.rejected);
        }
        if state.late != 0 {
            self.counters.update(Counter::Late, state.late);
        }
    }

    /// Closes the last epoch and the inputs.
    pub(super) fn finish(&mut self) -> anyhow::Result<()> {
        self.close_open()?;
        // Dropping a session closes its input; unattached sessions take their place.
        std::mem::replace(&mut self.device_sums, InputSession::new()).close();
        std::mem::replace(&mut self.sensors, InputSession::new()).close();
        std::mem::replace(&mut self.counters, InputSession::new()).close();
        Ok(())
    }
}

fn add(total: &mut Tally, more: Tally) {
    total.0 += more.0;
    total.1 += more.1;
}
