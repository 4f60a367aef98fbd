//! The epoch writer: the one owner of what a worker feeds into the dataflow.
//!
//! It owns the open epoch (in processing and in event time), the tallies of that epoch, the
//! rejected and late counts, the dead letters, the next offset of every partition it has
//! ingested, and the offsets of closed epochs that wait to be committed. Whatever moves the
//! open epoch (a record, the wall clock, an idle input following the wall clock) moves it here,
//! so a record for an epoch that has closed is always late, whichever way it closed.
//!
//! Closing an epoch sends its tallies into the dataflow, makes its dead letters durable and,
//! when the worker checkpoints, hands the epoch to the [`Checkpointer`] before the input moves
//! on.

use std::collections::{BTreeMap, VecDeque};
use std::mem;

use hygroflow_dataflows::{Counter, Epoch, InputHandles};

use crate::checkpoint::{CheckpointError, WorkerState};
use crate::epoch::{assign_event, parse_event_time, EpochGrid, TimeMode};
use crate::message::parse;
use crate::sink::rejects::{RejectError, Rejects};
use crate::source::{Origin, RawRecord};
use crate::tally::WorkerTally;

use super::checkpointer::Checkpointer;

/// Closing an epoch failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// A rejected message could not be kept.
    #[error(transparent)]
    Reject(#[from] RejectError),
    /// The epoch's checkpoint could not be written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// Next offset per partition: what has been ingested.
pub(crate) type Offsets = BTreeMap<i32, i64>;

/// A worker's inputs into the dataflow, and the epoch they are open at.
pub(crate) struct EpochWriter {
    /// `None` once the input has finished and the inputs are closed.
    inputs: Option<InputHandles>,
    time: TimeMode,
    grid: EpochGrid,
    max_message_bytes: usize,
    open: Epoch,
    tally: WorkerTally,
    rejected: i64,
    late: i64,
    rejects: Rejects,
    offsets: Offsets,
    /// Closed epochs whose offsets wait until the epoch is complete everywhere.
    to_commit: VecDeque<(Epoch, Offsets)>,
}

impl EpochWriter {
    /// A writer feeding `inputs`, open at `open`, resuming at `offsets`.
    pub(crate) fn new(
        inputs: InputHandles,
        time: TimeMode,
        grid: EpochGrid,
        max_message_bytes: usize,
        rejects: Rejects,
        offsets: Offsets,
    ) -> Self {
        EpochWriter {
            inputs: Some(inputs),
            time,
            grid,
            max_message_bytes,
            open: 0,
            tally: WorkerTally::default(),
            rejected: 0,
            late: 0,
            rejects,
            offsets,
            to_commit: VecDeque::new(),
        }
    }

    /// The open epoch.
    pub(crate) fn open(&self) -> Epoch {
        self.open
    }

    /// Whether the input has finished.
    pub(crate) fn finished(&self) -> bool {
        self.inputs.is_none()
    }

    /// Parses one record and tallies it into its epoch, or keeps it as rejected.
    pub(crate) fn ingest(
        &mut self,
        record: RawRecord<'_>,
        journal: Option<&mut Checkpointer>,
    ) -> Result<(), WriteError> {
        match parse(record.bytes, record.len, self.max_message_bytes) {
            Ok(reading) => {
                if self.time == TimeMode::Event {
                    let event_epoch = reading
                        .event_time
                        .as_deref()
                        .and_then(parse_event_time)
                        .map(|ms| self.grid.epoch_of_ms(ms));
                    let assigned = assign_event(self.open, event_epoch);
                    self.advance_to(assigned.epoch, journal)?;
                    self.late += i64::from(assigned.late);
                }
                self.tally
                    .add(&reading.guid, &reading.device, reading.humidity_micro);
            }
            Err(error) => {
                self.rejected += 1;
                self.rejects.reject(&record, &error)?;
            }
        }
        if let Origin::Kafka { partition, offset } = record.origin {
            self.offsets.insert(partition, offset + 1);
        }
        Ok(())
    }

    /// Closes the open epoch and opens `epoch`, if it is later; nothing otherwise.
    pub(crate) fn advance_to(
        &mut self,
        epoch: Epoch,
        journal: Option<&mut Checkpointer>,
    ) -> Result<(), WriteError> {
        if epoch <= self.open || self.inputs.is_none() {
            return Ok(());
        }
        self.close_open(journal)?;
        if let Some(inputs) = &mut self.inputs {
            inputs.advance_to(epoch);
            inputs.flush();
        }
        self.open = epoch;
        Ok(())
    }

    /// The input has ended: closes the open epoch and the dataflow's inputs.
    pub(crate) fn finish(&mut self, journal: Option<&mut Checkpointer>) -> Result<(), WriteError> {
        if self.inputs.is_none() {
            return Ok(());
        }
        self.close_open(journal)?;
        if let Some(inputs) = self.inputs.take() {
            inputs.close();
        }
        Ok(())
    }

    /// Sends the open epoch's tallies, makes its dead letters durable and checkpoints it.
    fn close_open(&mut self, mut journal: Option<&mut Checkpointer>) -> Result<(), WriteError> {
        let Some(inputs) = &mut self.inputs else {
            return Ok(());
        };
        for (device, sums) in self.tally.drain_devices() {
            if let Some(journal) = journal.as_deref_mut() {
                journal.add_device(&device, sums);
            }
            inputs.device_sums.update(device, sums);
        }
        for sensor in self.tally.drain_new_sensors() {
            inputs.sensors.update(sensor, 1);
        }
        let rejected = mem::take(&mut self.rejected);
        let late = mem::take(&mut self.late);
        for (counter, count) in [(Counter::Rejected, rejected), (Counter::Late, late)] {
            if count != 0 {
                inputs.counters.update(counter, count);
            }
        }
        self.rejects.end_epoch()?;
        if let Some(journal) = journal {
            journal.write(self.open, rejected, late, &self.offsets, &self.tally)?;
        }
        if !self.offsets.is_empty() {
            self.to_commit.push_back((self.open, self.offsets.clone()));
        }
        Ok(())
    }

    /// Feeds restored worker states back as weighted records (before any record of this run,
    /// so every checkpoint of the run includes them).
    pub(crate) fn restore<'s>(&mut self, states: impl IntoIterator<Item = &'s WorkerState>) {
        let Some(inputs) = &mut self.inputs else {
            return;
        };
        for state in states {
            for (device, sum, count) in &state.devices {
                inputs.device_sums.update(device.clone(), (*sum, *count));
            }
            for (device, guid) in &state.sensors {
                if self.tally.mark_seen(device, guid) {
                    inputs.sensors.update((device.clone(), guid.clone()), 1);
                }
            }
            for (counter, count) in [
                (Counter::Rejected, state.rejected),
                (Counter::Late, state.late),
            ] {
                if count != 0 {
                    inputs.counters.update(counter, count);
                }
            }
        }
    }

    /// The newest offsets of closed epochs before `frontier`, once: what may be committed now.
    pub(crate) fn committable(&mut self, frontier: Epoch) -> Option<Offsets> {
        let mut latest = None;
        while self.to_commit.front().is_some_and(|(e, _)| *e < frontier) {
            latest = self.to_commit.pop_front().map(|(_, offsets)| offsets);
        }
        latest
    }
}
