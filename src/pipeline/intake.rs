//! A worker's inputs: tallies of the open epoch, and what closing an epoch must record
//! (dead letters made durable, a checkpoint written, offsets queued for commit).

use std::collections::{BTreeMap, VecDeque};

use differential_dataflow::input::InputSession;
use hygroflow_dataflows::{Counter, Epoch, SensorKey, Tally};

use crate::checkpoint::{SensorTable, StateDir, WorkerState};
use crate::sink::rejects::Rejects;
use crate::tally::EpochTally;

/// A worker's inputs, the epoch they are open at, and what closing an epoch must record.
pub(super) struct Intake<'a> {
    pub(super) tallies: InputSession<Epoch, SensorKey, Tally>,
    pub(super) counters: InputSession<Epoch, Counter, i64>,
    pub(super) tally: EpochTally,
    pub(super) rejected: i64,
    pub(super) late: i64,
    pub(super) open: Epoch,
    pub(super) rejects: Rejects,
    /// Next offset per partition of what has been handled.
    pub(super) positions: BTreeMap<i32, i64>,
    /// Cumulative state, kept only when checkpointing.
    pub(super) table: Option<(SensorTable, i64, i64)>,
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
        self.tallies.advance_to(epoch);
        self.counters.advance_to(epoch);
        self.tallies.flush();
        self.counters.flush();
        self.open = epoch;
        Ok(())
    }

    /// Sends the open epoch's tallies, makes its dead letters durable and checkpoints it.
    pub(super) fn close_open(&mut self) -> anyhow::Result<()> {
        for (key, tally) in self.tally.drain() {
            if let Some((table, _, _)) = &mut self.table {
                table.add(&key, tally);
            }
            self.tallies.update(key, tally);
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
        if let (Some((table, all_rejected, all_late)), Some((dir, generation))) =
            (&mut self.table, self.checkpoints)
        {
            *all_rejected += rejected;
            *all_late += late;
            let state = WorkerState {
                offsets: self.positions.clone(),
                rejected: *all_rejected,
                late: *all_late,
                sensors: table.rows(),
            };
            dir.write_worker(generation, self.worker, self.open, state)?;
        }
        self.to_commit
            .push_back((self.open, self.positions.clone()));
        Ok(())
    }

    /// Feeds a restored worker state back as weighted records.
    pub(super) fn restore(&mut self, state: &WorkerState) {
        for (device, guid, sum, count) in &state.sensors {
            let key = (device.clone(), guid.clone());
            if let Some((table, _, _)) = &mut self.table {
                table.add(&key, (*sum, *count));
            }
            self.tallies.update(key, (*sum, *count));
        }
        if let Some((_, rejected, late)) = &mut self.table {
            *rejected += state.rejected;
            *late += state.late;
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
        std::mem::replace(&mut self.tallies, InputSession::new()).close();
        std::mem::replace(&mut self.counters, InputSession::new()).close();
        Ok(())
    }
}
