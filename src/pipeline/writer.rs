//! The epoch writer: the one owner of what a worker feeds into the dataflow.
//!
//! It owns the open epoch (in processing and in event time), the tallies of that epoch, the
//! rejected and late counts, the dead letters, the next offset of every partition it has
//! ingested, and the offsets of closed epochs that wait to be committed. Whatever moves the
//! open epoch (a record, the wall clock, an idle input following the wall clock) moves it here,
//! so a record for an epoch that has closed is always late, whichever way it closed.
//!
//! Closing an epoch sends its tallies into the dataflow (in a windowed run, also their
//! retraction at the epoch where they leave the window, and the count of messages the epoch
//! received, which tells the printer which epochs had data), makes its dead letters durable and,
//! when the worker checkpoints, hands the epoch to the [`Checkpointer`] before the input moves
//! on.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::mem;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hygroflow_dataflows::{Counter, Epoch, InputHandles, Key, Observation, SensorKey, Transition};
use tracing::warn;

use crate::checkpoint::{CheckpointError, WorkerState};
use crate::epoch::{assign_event, EpochGrid, EventTimes, TimeMode, Window};
use crate::message::{parse, ERROR_KINDS};
use crate::sink::rejects::{RejectError, Rejects};
use crate::source::{Origin, Progress, RawRecord};
use crate::tally::{Memory, Sighting, WorkerTally};
use crate::watermark::{Frontier, Watermarks};

use super::checkpointer::Checkpointer;
use super::window::WindowSensors;

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

/// Processing time with alerts: the most epochs the clock skipped that are still evaluated
/// (as the printer reports at most this many empty epochs after a stall).
const MAX_SKIPPED: u64 = 10_000;

/// Sensors whose readings from the future are logged one by one; later ones are only counted.
const FUTURE_LOGGED_SENSORS: usize = 1_000;

/// The side counts of one epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EpochCounts {
    /// Messages rejected by validation.
    pub(crate) rejected: i64,
    /// The same by rule: `ERROR_KINDS[i]`.
    pub(crate) rejected_as: [i64; ERROR_KINDS.len()],
    /// Event time: readings whose epoch had closed.
    pub(crate) late: i64,
    /// Event time: readings stamped more than `--max-clock-skew` ahead of the wall clock.
    pub(crate) future: i64,
}

impl EpochCounts {
    fn by_counter(self) -> impl Iterator<Item = (Counter, i64)> {
        let by_kind = (0..ERROR_KINDS.len())
            .map(move |i| (Counter::RejectedAs(i as u8), self.rejected_as[i]));
        [
            (Counter::Rejected, self.rejected),
            (Counter::Late, self.late),
            (Counter::Future, self.future),
        ]
        .into_iter()
        .chain(by_kind)
    }

    /// Adds `other`.
    pub(crate) fn add(&mut self, other: &EpochCounts) {
        self.rejected += other.rejected;
        self.late += other.late;
        self.future += other.future;
        for (mine, theirs) in self.rejected_as.iter_mut().zip(other.rejected_as) {
            *mine += theirs;
        }
    }

    /// The rejects by kind as a checkpoint keeps them: `(error_kind, count)`, non-zero ones.
    pub(crate) fn rejected_by_kind(&self) -> Vec<(String, i64)> {
        ERROR_KINDS
            .iter()
            .zip(self.rejected_as)
            .filter(|(_, n)| *n != 0)
            .map(|(kind, n)| (kind.to_string(), n))
            .collect()
    }

    /// The counts a checkpoint kept.
    pub(crate) fn of_state(state: &WorkerState) -> Self {
        let mut counts = EpochCounts {
            rejected: state.rejected,
            late: state.late,
            future: state.future,
            ..EpochCounts::default()
        };
        for (kind, n) in &state.rejected_as {
            if let Some(i) = ERROR_KINDS.iter().position(|k| k == kind) {
                counts.rejected_as[i] += n;
            }
        }
        counts
    }
}

/// How far ahead of the wall clock an event time may be before it is not believed.
#[derive(Debug)]
struct FutureGuard {
    max_skew: Duration,
    /// Event times after this (ms since the Unix epoch) are from the future.
    limit_ms: i64,
    /// Sensors already logged.
    logged: HashSet<String>,
}

impl FutureGuard {
    fn at(&mut self, now: SystemTime) {
        let ms = now
            .checked_add(self.max_skew)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(u128::MAX, |d| d.as_millis());
        self.limit_ms = i64::try_from(ms).unwrap_or(i64::MAX);
    }

    /// `event_ms` unless it is from the future (then logged once per sensor).
    fn believe(&mut self, event_ms: i64, guid: &str) -> Option<i64> {
        if event_ms <= self.limit_ms {
            return Some(event_ms);
        }
        if self.logged.len() < FUTURE_LOGGED_SENSORS && self.logged.insert(guid.to_owned()) {
            warn!(
                ?guid,
                event_ms,
                max_clock_skew = ?self.max_skew,
                "reading stamped too far in the future: it joins the open epoch (logged once per sensor)"
            );
        }
        None
    }
}

/// A valid reading of an epoch that has not opened yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PendingReading {
    /// The sensor.
    pub(crate) guid: String,
    /// Its device.
    pub(crate) device: String,
    /// Its humidity, in millionths.
    pub(crate) humidity_micro: i64,
}

/// How event time moves the open epoch: `--allowed-lateness` and `--idle-timeout`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EventClock {
    pub(crate) allowed_lateness: Duration,
    pub(crate) idle_timeout: Duration,
}

/// A worker's inputs into the dataflow, and the epoch they are open at.
pub(crate) struct EpochWriter {
    /// `None` once the input has finished and the inputs are closed.
    inputs: Option<InputHandles>,
    time: TimeMode,
    grid: EpochGrid,
    max_message_bytes: usize,
    open: Epoch,
    /// Windowed: how many epochs after its own an epoch's tallies are retracted.
    window: Option<u64>,
    /// Alerts are on: every epoch's observations go to the alerts' feed.
    alerts: bool,
    /// Processing time: this worker tells the alerts that each epoch is reported. One worker
    /// does, the cluster's first: the observation is broadcast, so every worker sending it
    /// (up to [`MAX_SKIPPED`] of them after a jump of the clock) cost memory and time in the
    /// square of the workers (`-w 64`: 9.9 GB with no input, issue 26 point 1).
    announces_epochs: bool,
    /// Windowed: the sensors in this worker's window.
    window_sensors: Option<WindowSensors>,
    tally: WorkerTally,
    counts: EpochCounts,
    /// Windowed: messages assigned to the open epoch (valid or rejected).
    received: i64,
    future: FutureGuard,
    /// Event time: reads each reading's `eventTime`.
    event_times: EventTimes,
    /// Event time: each partition's watermark; the open epoch follows their minimum.
    watermarks: Option<Watermarks>,
    /// Event time: readings of epochs after the open one, waiting for the frontier to reach
    /// their epoch (a partition ahead of the others, or readings inside the allowed lateness).
    pending: BTreeMap<Epoch, Vec<PendingReading>>,
    /// When the worker last polled: what "now" means for idle partitions.
    now: Instant,
    rejects: Rejects,
    offsets: Offsets,
    /// Closed epochs whose offsets wait until the epoch is complete everywhere.
    to_commit: VecDeque<(Epoch, Offsets)>,
    /// Closed epochs not yet complete everywhere (flow control: see [`EpochWriter::in_flight`]).
    unfinished: VecDeque<Epoch>,
}

impl EpochWriter {
    /// A writer feeding `inputs` for reports over `window`, resuming at `offsets`; event times
    /// more than `max_skew` ahead of the wall clock are not believed. With `checkpoints`, its
    /// tally remembers every sensor (the checkpoint files list them).
    pub(crate) fn new(
        inputs: InputHandles,
        (time, grid, max_skew, window): (TimeMode, EpochGrid, Duration, Window),
        clock: EventClock,
        (alerts, checkpoints): (bool, bool),
        max_message_bytes: usize,
        rejects: Rejects,
        offsets: Offsets,
    ) -> Self {
        let mut future = FutureGuard {
            max_skew,
            limit_ms: 0,
            logged: HashSet::new(),
        };
        future.at(SystemTime::now());
        EpochWriter {
            inputs: Some(inputs),
            time,
            grid,
            max_message_bytes,
            open: 0,
            window: window.epochs(),
            alerts,
            announces_epochs: true,
            window_sensors: window.epochs().map(WindowSensors::new),
            tally: WorkerTally::new(if alerts {
                Memory::AllNamed
            } else if checkpoints {
                Memory::All
            } else {
                Memory::Recent
            }),
            counts: EpochCounts::default(),
            received: 0,
            future,
            event_times: EventTimes::default(),
            watermarks: (time == TimeMode::Event)
                .then(|| Watermarks::new(clock.allowed_lateness, clock.idle_timeout)),
            pending: BTreeMap::new(),
            now: Instant::now(),
            rejects,
            offsets,
            to_commit: VecDeque::new(),
            unfinished: VecDeque::new(),
        }
    }

    /// The open epoch.
    pub(crate) fn open(&self) -> Epoch {
        self.open
    }

    /// The wall clock, read once per poll: what "the future" means for event times.
    pub(crate) fn wall_clock(&mut self, now: SystemTime) {
        self.future.at(now);
        self.now = Instant::now();
    }

    /// Takes in what the source says of its partitions, lets quiet partitions go idle, and
    /// moves the open epoch to the partitions' frontier (event time).
    pub(crate) fn progress(
        &mut self,
        progress: &[Progress],
        journal: Option<&mut Checkpointer>,
    ) -> Result<(), WriteError> {
        let Some(watermarks) = &mut self.watermarks else {
            return Ok(());
        };
        for p in progress {
            match *p {
                Progress::Assigned {
                    partition,
                    at_start,
                } => watermarks.assigned(partition, at_start, self.now),
                Progress::CaughtUp(partition) => watermarks.caught_up(partition),
                Progress::Finished(partition) => watermarks.finished(partition),
            }
        }
        watermarks.tick(self.now);
        self.follow_watermarks(journal)
    }

    /// Whether no partition holds event time back (none, or every one idle or finished):
    /// then an idle worker may follow the wall clock.
    pub(crate) fn unheld(&self) -> bool {
        self.watermarks
            .as_ref()
            .is_none_or(|w| w.frontier() == Frontier::Free)
    }

    /// Opens the epoch of the partitions' frontier, if it is later than the open one.
    fn follow_watermarks(&mut self, journal: Option<&mut Checkpointer>) -> Result<(), WriteError> {
        let Some(Frontier::At(ms)) = self.watermarks.as_ref().map(Watermarks::frontier) else {
            return Ok(());
        };
        let epoch = self.grid.epoch_of_ms(ms);
        if epoch > self.open {
            self.advance_to(epoch, journal)?;
        }
        Ok(())
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
                    let event_ms = (reading.event_time.as_deref())
                        .and_then(|text| self.event_times.parse(text));
                    let believed = event_ms.and_then(|ms| self.future.believe(ms, &reading.guid));
                    self.counts.future += i64::from(event_ms.is_some() && believed.is_none());
                    let partition = record.origin.partition();
                    if let Some(watermarks) = &mut self.watermarks {
                        // A reading from the future moves no watermark.
                        let moved = match believed {
                            Some(ms) => watermarks.observe(partition, ms, self.now),
                            None => {
                                watermarks.touch(partition, self.now);
                                false
                            }
                        };
                        // The frontier is at most this reading's time: only one for a later
                        // epoch than the open one can move the open epoch.
                        let later =
                            believed.is_some_and(|ms| self.grid.epoch_of_ms(ms) > self.open);
                        if moved && later {
                            self.follow_watermarks(journal)?;
                        }
                    }
                    let event_epoch = believed.map(|ms| self.grid.epoch_of_ms(ms));
                    let assigned = assign_event(self.open, event_epoch);
                    self.counts.late += i64::from(assigned.late);
                    if assigned.epoch > self.open {
                        // Its epoch opens when every partition's watermark has reached it.
                        self.pending
                            .entry(assigned.epoch)
                            .or_default()
                            .push(PendingReading {
                                guid: reading.guid.into_owned(),
                                device: reading.device.into_owned(),
                                humidity_micro: reading.humidity_micro,
                            });
                        self.offset(record.origin);
                        return Ok(());
                    }
                }
                let sighting =
                    self.tally
                        .add(&reading.guid, &reading.device, reading.humidity_micro);
                self.sensor(sighting);
            }
            Err(error) => {
                self.counts.rejected += 1;
                self.counts.rejected_as[usize::from(error.kind_index())] += 1;
                self.rejects.reject(&record, &error)?;
            }
        }
        self.received += 1;
        self.offset(record.origin);
        Ok(())
    }

    /// Notes that the record at `origin` has been ingested.
    fn offset(&mut self, origin: Origin) {
        if let Origin::Kafka { partition, offset } = origin {
            self.offsets.insert(partition, offset + 1);
        }
    }

    /// Tallies the readings that waited for `epoch` into the open epoch (the same one, but for
    /// readings restored from a checkpoint whose epoch this run has passed).
    fn take_pending(&mut self, epoch: Epoch) {
        let Some(readings) = self.pending.remove(&epoch) else {
            return;
        };
        for r in readings {
            let sighting = self.tally.add(&r.guid, &r.device, r.humidity_micro);
            self.sensor(sighting);
            self.received += 1;
        }
    }

    /// Sends a sensor a reading named, if the dataflow needs it: cumulative, a sensor new to
    /// the tally (the distinct counts absorb one the tally forgot and sends again); windowed,
    /// one that enters the window, at its first reading in the epoch.
    fn sensor(&mut self, sighting: Sighting) {
        let Some(inputs) = &mut self.inputs else {
            return;
        };
        match (sighting, &mut self.window_sensors) {
            (Sighting::New(sensor), None) => inputs.sensors.update(sensor, 1),
            (Sighting::New(sensor) | Sighting::FirstThisEpoch(sensor), Some(window)) => {
                if window.seen(sensor, self.open) {
                    inputs.sensors.update(sensor, 1);
                }
            }
            (Sighting::FirstThisEpoch(_), None) | (Sighting::Again, _) => {}
        }
    }

    /// Closes the open epoch and opens `epoch`, if it is later; nothing otherwise. Each epoch
    /// in between that has readings waiting opens and closes on the way, in order.
    pub(crate) fn advance_to(
        &mut self,
        epoch: Epoch,
        mut journal: Option<&mut Checkpointer>,
    ) -> Result<(), WriteError> {
        while let Some(waiting) = self.pending.keys().next().copied() {
            if waiting >= epoch || self.inputs.is_none() {
                break;
            }
            self.step_to(waiting, journal.as_deref_mut())?;
            self.take_pending(waiting);
        }
        self.step_to(epoch, journal)?;
        let open = self.open;
        self.take_pending(open);
        Ok(())
    }

    /// Closes the open epoch and opens `epoch`, if it is later; nothing otherwise.
    fn step_to(
        &mut self,
        epoch: Epoch,
        journal: Option<&mut Checkpointer>,
    ) -> Result<(), WriteError> {
        if epoch <= self.open || self.inputs.is_none() {
            return Ok(());
        }
        self.close_open(journal)?;
        if let Some(inputs) = &mut self.inputs {
            if self.alerts && self.time == TimeMode::Processing && self.announces_epochs {
                // Processing time reports every epoch: those the clock skipped too.
                // One observation for the run of them (see `ReceivedThrough`).
                let first = (self.open + 1).max(epoch.saturating_sub(MAX_SKIPPED));
                if first < epoch {
                    let through = epoch - 1;
                    inputs
                        .feed
                        .update_at(Observation::ReceivedThrough { through }, first, 1);
                }
            }
            if let Some(window) = &mut self.window_sensors {
                send_leaving(inputs, window.leaving_through(epoch));
            }
            // The dataflow hears of it at the next flush: one step takes every epoch closed
            // since the last one.
            inputs.advance_to(epoch);
        }
        self.open = epoch;
        self.tally.open(epoch);
        Ok(())
    }

    /// Whether this worker tells the alerts, in processing time, that each epoch is reported
    /// (see `announces_epochs`); the cluster's first worker does.
    pub(crate) fn announce_epochs(&mut self, yes: bool) {
        self.announces_epochs = yes;
    }

    /// Tells every worker's alerts that this process has loaded the rules `checksum`, at the
    /// open epoch (they apply once every worker of the cluster has said so).
    pub(crate) fn announce_rules(&mut self, checksum: u32) {
        if let (true, Some(inputs)) = (self.alerts, &mut self.inputs) {
            inputs.feed.update(Observation::Rules { checksum }, 1);
        }
    }

    /// Hands the dataflow what the epochs closed since the last flush sent, and moves its
    /// inputs to the open epoch. The worker flushes once before each step, so input far
    /// behind the clock (a file replayed in event time) reaches the dataflow many epochs at a
    /// time, in one batch, and a live input each epoch as it closes.
    pub(crate) fn flush(&mut self) {
        if let Some(inputs) = &mut self.inputs {
            inputs.flush();
        }
    }

    /// The input has ended: closes the open epoch, then each epoch that has readings waiting,
    /// and the dataflow's inputs.
    pub(crate) fn finish(
        &mut self,
        mut journal: Option<&mut Checkpointer>,
    ) -> Result<(), WriteError> {
        if self.inputs.is_none() {
            return Ok(());
        }
        if let Some(last) = self.pending.keys().next_back().copied() {
            self.advance_to(last, journal.as_deref_mut())?;
        }
        self.close_open(journal)?;
        if let Some(mut inputs) = self.inputs.take() {
            if let Some(window) = &mut self.window_sensors {
                send_leaving(&mut inputs, window.leaving_through(Epoch::MAX));
            }
            inputs.close();
        }
        Ok(())
    }

    /// Sends the open epoch's tallies, makes its dead letters durable and checkpoints it.
    fn close_open(&mut self, mut journal: Option<&mut Checkpointer>) -> Result<(), WriteError> {
        let Some(inputs) = &mut self.inputs else {
            return Ok(());
        };
        let received = mem::take(&mut self.received);
        let open = self.open;
        // Windowed: each update at the open epoch is undone where it leaves the window.
        let expiry = self.window.map(|window| open + window);
        let alerts = self.alerts;
        let mut valid = 0;
        self.tally.drain_devices(|device, name, (sum, count)| {
            valid += count;
            if let Some(journal) = journal.as_deref_mut() {
                journal.add_device(open, name, (sum, count));
            }
            if alerts {
                inputs.feed.update(
                    Observation::Readings {
                        device: name.to_owned(),
                        sum_micro: sum,
                        count,
                    },
                    1,
                );
            }
            if let Some(expiry) = expiry {
                inputs.device_sums.update_at(device, expiry, (-sum, -count));
            }
            inputs.device_sums.update(device, (sum, count));
        });
        send_valid(inputs, valid, expiry);
        send_sensors(inputs, &mut self.tally, alerts);
        if expiry.is_some() && received != 0 {
            inputs.counters.update(Counter::Received, received);
        }
        let reported = match self.time {
            TimeMode::Processing => self.announces_epochs,
            TimeMode::Event => received != 0,
        };
        if alerts && reported {
            inputs.feed.update(Observation::Received, 1);
        }
        let counts = mem::take(&mut self.counts);
        for (counter, count) in counts.by_counter() {
            if count != 0 {
                inputs.counters.update(counter, count);
            }
        }
        self.rejects.end_epoch()?;
        if let Some(journal) = journal {
            let event_time = self.event_time_state();
            let dead_letters_from = self.rejects.resume_offsets(&self.offsets);
            journal.write(
                self.open,
                (counts, reported),
                (&self.offsets, dead_letters_from),
                (&self.tally, event_time),
            )?;
        }
        if !self.offsets.is_empty() {
            self.to_commit.push_back((self.open, self.offsets.clone()));
        }
        self.unfinished.push_back(open);
        Ok(())
    }

    /// What a checkpoint keeps of event time: each partition's newest event time and the
    /// readings waiting for their epochs.
    fn event_time_state(&self) -> EventTimeState {
        EventTimeState {
            watermarks: self
                .watermarks
                .as_ref()
                .map(Watermarks::newest)
                .unwrap_or_default(),
            pending: self
                .pending
                .iter()
                .flat_map(|(epoch, readings)| {
                    readings
                        .iter()
                        .map(|r| (*epoch, r.guid.clone(), r.device.clone(), r.humidity_micro))
                })
                .collect(),
        }
    }

    /// How many epochs this writer has closed that the dataflow has not completed on every
    /// worker (before `frontier`): what this worker's input has in flight.
    pub(crate) fn in_flight(&mut self, frontier: Option<Epoch>) -> usize {
        let frontier = frontier.unwrap_or(Epoch::MAX);
        while self.unfinished.front().is_some_and(|e| *e < frontier) {
            self.unfinished.pop_front();
        }
        self.unfinished.len()
    }

    /// Feeds restored worker states back as weighted records (before any record of this run,
    /// so every checkpoint of the run includes them), and `active`, the alerts raised when the
    /// checkpoint was committed (worker 0 passes them, the others none).
    pub(crate) fn restore<'s>(
        &mut self,
        states: impl IntoIterator<Item = &'s WorkerState>,
        active: &[Transition],
    ) {
        let Some(inputs) = &mut self.inputs else {
            return;
        };
        for state in states {
            for (epoch, guid, device, humidity_micro) in &state.pending {
                self.pending
                    .entry(*epoch)
                    .or_default()
                    .push(PendingReading {
                        guid: guid.clone(),
                        device: device.clone(),
                        humidity_micro: *humidity_micro,
                    });
            }
            restore_analyses(inputs, &mut self.tally, state, self.window_sensors.as_mut());
            if self.alerts {
                restore_feed(inputs, state);
            }
            for (counter, count) in EpochCounts::of_state(state).by_counter() {
                if count != 0 {
                    inputs.counters.update(counter, count);
                }
            }
        }
        if self.alerts {
            for line in active {
                inputs
                    .feed
                    .update(Observation::Active(Box::new(line.clone())), 1);
            }
        }
    }

    /// Event time: the checkpointed newest event time of each partition this worker reads
    /// (`watermarks`); they take part in the frontier at once.
    pub(crate) fn restore_watermarks(&mut self, watermarks: &BTreeMap<i32, i64>) {
        if let Some(w) = &mut self.watermarks {
            for (&partition, &newest_ms) in watermarks {
                w.restore(partition, newest_ms, self.now);
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

/// What a checkpoint keeps of event time (see [`WorkerState`]).
#[derive(Debug, Default)]
pub(crate) struct EventTimeState {
    /// `(partition, newest event time in ms)`.
    pub(crate) watermarks: Vec<(i32, i64)>,
    /// `(epoch, guid, device, humidity_micro)` of the readings waiting for their epoch.
    pub(crate) pending: Vec<(Epoch, String, String, i64)>,
}

/// Counts `valid` readings of the open epoch (retracted at `expiry`, in a window), as the
/// device sums just sent count them.
fn send_valid(inputs: &mut InputHandles, valid: i64, expiry: Option<Epoch>) {
    if valid != 0 {
        inputs.counters.update(Counter::Valid, valid);
        if let Some(expiry) = expiry {
            inputs.counters.update_at(Counter::Valid, expiry, -valid);
        }
    }
}

/// Restores one old worker's part of the analyses. Cumulative: its totals and its sensors.
/// Windowed: the per-epoch sums still in the window, each retracted where it leaves, and each
/// sensor until a window past its last reading.
fn restore_analyses(
    inputs: &mut InputHandles,
    tally: &mut WorkerTally,
    state: &WorkerState,
    window: Option<&mut WindowSensors>,
) {
    // Every device restored is named, once per worker, as a first reading names it.
    let mut named = |name: &str| {
        let device = Key::of(name);
        if tally.restore_name(name) {
            inputs.names.update((device, name.to_owned()), 1);
        }
        device
    };
    let mut sums = Vec::new();
    match &window {
        None => {
            for (name, sum, count) in &state.devices {
                sums.push((named(name), None, (*sum, *count)));
            }
        }
        Some(window) => {
            for (epoch, name, sum, count) in &state.recent {
                let expiry = epoch.saturating_add(window.epochs());
                sums.push((named(name), Some(expiry), (*sum, *count)));
            }
        }
    }
    for (device, expiry, (sum, count)) in sums {
        if let Some(expiry) = expiry {
            inputs.device_sums.update_at(device, expiry, (-sum, -count));
        }
        inputs.device_sums.update(device, (sum, count));
        send_valid(inputs, count, expiry);
    }
    let mut window = window;
    for known in &state.sensors {
        let device = Key::of(&known.device);
        if tally.restore_name(&known.device) {
            inputs.names.update((device, known.device.clone()), 1);
        }
        for (guid, name, last) in known.each() {
            let sensor = (device, guid);
            let new = tally.restore_seen(sensor, name, last);
            let enters = match window.as_deref_mut() {
                None => new,
                Some(window) => window.seen(sensor, last),
            };
            if enters {
                inputs.sensors.update(sensor, 1);
            }
        }
    }
}

/// Restores one old worker's part of the alerts' feed: its recent per-epoch sums, the epochs
/// it reported, and when each of its sensors last read.
fn restore_feed(inputs: &mut InputHandles, state: &WorkerState) {
    for (epoch, device, sum, count) in &state.recent {
        let past = Observation::PastReadings {
            epoch: *epoch,
            device: device.clone(),
            sum_micro: *sum,
            count: *count,
        };
        inputs.feed.update(past, 1);
    }
    for epoch in &state.reported {
        inputs
            .feed
            .update(Observation::PastReported { epoch: *epoch }, 1);
    }
    for known in &state.sensors {
        for (_, guid, epoch) in known.each() {
            let seen = Observation::LastSeen {
                device: known.device.clone(),
                guid: guid.unwrap_or_default().to_owned(),
                epoch,
            };
            inputs.feed.update(seen, 1);
        }
    }
}

/// Sends the names of the devices seen for the first time in the closing epoch and, with
/// alerts, every sensor seen in it to the alerts' feed, by name, one observation per device.
/// (Sensors went in as they were read: [`EpochWriter::sensor`].)
fn send_sensors(inputs: &mut InputHandles, tally: &mut WorkerTally, alerts: bool) {
    for name in tally.drain_new_names() {
        inputs.names.update(name, 1);
    }
    if alerts {
        for (device, guids) in tally.drain_epoch_names() {
            inputs.feed.update(Observation::Seen { device, guids }, 1);
        }
    }
}

/// Sends the `-1` of every sensor leaving the window, at the epoch it leaves.
fn send_leaving(inputs: &mut InputHandles, leaving: Vec<(SensorKey, Epoch)>) {
    for (sensor, at) in leaving {
        inputs.sensors.update_at(sensor, at, -1);
    }
}
