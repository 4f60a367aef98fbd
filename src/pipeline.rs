//! The one wiring point: each worker's dataflow, its source, and the loop that drives them.
//!
//! ```text
//!  Source ─poll─> RawRecord ─parse─┬─ok──> EpochTally ──(epoch closes)──> tallies input ─┐
//!                                  └─err─> dead letters + Rejected counter ─────────────┤
//!                                                       analyses (dataflows/) <─────────┘
//!                                                            │ gather to worker 0
//!                                                            └─> Results ─> Reporter
//! ```
//!
//! Every worker runs the same loop: close the epoch when its clock says so, poll its source,
//! parse and tally, step the dataflow. Closing an epoch sends the epoch's tallies into the
//! dataflow and, with `--state-dir`, writes the worker's checkpoint before the input moves on.
//! When the probe shows an epoch complete everywhere, the first worker of the process records
//! the checkpoint as committed, every worker commits its Kafka offsets, and worker 0 prints
//! the epoch's report.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context};
use differential_dataflow::input::{Input, InputSession};
use hygroflow_dataflows::{
    analyses, gather_to_first, Counter, Epoch, Results, SensorKey, Stat, Tally,
};
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::{Broadcast, Input as _};
use timely::dataflow::operators::Inspect;
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;
use tracing::{debug, info, warn};

use crate::checkpoint::{
    old_workers_for, RestorePoint, Restored, SensorTable, StateDir, WorkerState,
};
use crate::config::{Config, Input as InputConfig};
use crate::epoch::{parse_event_time, EventClock, TimeMode};
use crate::fleet::Fleet;
use crate::kafka::publisher::Publisher;
use crate::message::parse;
use crate::sink::rejects::{DeadLetterFile, DeadLetters, Rejects};
use crate::sink::report::Reporter;
use crate::source::file::{spawn_reader, FileSource};
use crate::source::generator::GeneratorSource;
use crate::source::kafka::{owns_partition, require_topic, KafkaSource};
use crate::source::{Origin, Poll, RawRecord, Source};
use crate::tally::EpochTally;

/// Empty processing-time epochs reported after a stall before the rest are skipped.
const MAX_EMPTY_REPORTS: u64 = 10_000;

/// Records a worker handles between two steps of the dataflow.
const POLL_BUDGET: usize = 4096;

/// How a run ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Reports stopped because stdout was closed (a closed pipe is not an error).
    pub pipe_closed: bool,
}

/// Checkpointing shared by the workers of a process.
struct Checkpoints {
    dir: StateDir,
    /// Process 0's `COMMITTED` marker, read at start (other processes have none).
    marker: Option<RestorePoint>,
    /// Lets the first local worker prepare the new generation before the others write to it.
    barrier: Barrier,
}

/// Messages from worker 0 to every worker about checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Control {
    /// The run's generation, and the state to resume from (process 0's marker).
    Start {
        generation: u64,
        restore: Option<RestorePoint>,
    },
    /// Process 0 has durably committed every epoch before `frontier`.
    Committed { frontier: Epoch },
}

/// A worker's end of the control stream.
struct ControlLink {
    /// Open on worker 0 only.
    input: Option<timely::dataflow::InputHandleVec<u64, Control>>,
    seen: Rc<RefCell<Vec<Control>>>,
    generation: u64,
    /// The latest frontier process 0 has committed, as heard here.
    committed: Epoch,
}

/// What the workers of one process share.
struct Shared {
    config: Config,
    file_sources: Mutex<Vec<Option<FileSource>>>,
    rejects_file: Option<DeadLetterFile>,
    out: Mutex<Option<Box<dyn Write + Send>>>,
    shutdown: Arc<AtomicBool>,
    checkpoints: Option<Checkpoints>,
}

/// Runs the job until its input ends or `shutdown` is set; reports go to `out`.
pub fn run(
    config: Config,
    out: Box<dyn Write + Send>,
    shutdown: Arc<AtomicBool>,
) -> anyhow::Result<Outcome> {
    let mut reader = None;
    let mut file_sources = Vec::new();
    let mut checkpoints = None;
    match &config.input {
        InputConfig::File(path) => {
            let (input, name): (Box<dyn std::io::Read + Send>, String) = match path {
                Some(path) => (
                    Box::new(
                        std::fs::File::open(path)
                            .with_context(|| format!("cannot read input {}", path.display()))?,
                    ),
                    path.display().to_string(),
                ),
                None => (Box::new(std::io::stdin()), "stdin".to_owned()),
            };
            let (sources, handle) = spawn_reader(
                input,
                name,
                config.cluster.local_workers(),
                config.cluster.peers(),
                config.max_message_bytes,
            );
            file_sources = sources.into_iter().map(Some).collect();
            reader = Some(handle);
        }
        InputConfig::Kafka(kafka) => {
            // Fail fast, before any worker starts, on a bad property or a missing topic.
            let consumer = kafka.consumer()?;
            let stop = || shutdown.load(Ordering::Relaxed);
            let partitions = kafka.wait_for_partitions(&consumer, &stop)?;
            info!(topic = %kafka.topic, partitions = partitions.len(), group = %kafka.group, "kafka input");
            for topic in config
                .dlq_topic
                .iter()
                .chain(config.results.as_ref().map(|r| &r.topic))
            {
                require_topic(&consumer, topic)?;
            }
            match &config.state_dir {
                Some(dir) => {
                    let state = StateDir::open(dir, &config.input.name())?;
                    // Refuse a damaged directory before anything starts or is loaded.
                    state.validate()?;
                    let marker = if config.cluster.process == 0 {
                        state.marker()?
                    } else {
                        None
                    };
                    match &marker {
                        Some(point) => {
                            info!(state_dir = %dir.display(), frontier = point.frontier, "resuming from checkpoint")
                        }
                        None if config.cluster.process == 0 => {
                            info!(state_dir = %dir.display(), "no checkpoint yet: reading the topic from the earliest offset")
                        }
                        None => {
                            info!(state_dir = %dir.display(), "checkpoints: process 0 decides where to resume")
                        }
                    }
                    checkpoints = Some(Checkpoints {
                        dir: state,
                        marker,
                        barrier: Barrier::new(config.cluster.workers),
                    });
                }
                None => info!(
                    topic = %kafka.topic,
                    "no --state-dir: rebuilding the results from the earliest offset of every partition"
                ),
            }
        }
        InputConfig::Demo { .. } => {}
    }
    let rejects_file = match &config.rejects {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create rejects file {}", path.display()))?;
            Some(Arc::new(Mutex::new(std::io::BufWriter::new(file))))
        }
        None => None,
    };
    if config.cluster.process != 0 {
        info!(
            process = config.cluster.process,
            "reports are printed by process 0"
        );
    }
    let (allocators, network) =
        crate::cluster::allocators(&config.cluster, config.connect_timeout)?;
    let shared = Arc::new(Shared {
        config,
        file_sources: Mutex::new(file_sources),
        rejects_file,
        out: Mutex::new(Some(out)),
        shutdown,
        checkpoints,
    });
    let worker_shared = Arc::clone(&shared);
    let guards = timely::execute::execute_from(
        allocators,
        network,
        timely::WorkerConfig::default(),
        move |worker| {
            let result = run_worker(worker, &worker_shared);
            if result.is_err() {
                // One worker failing stops the others instead of leaving them waiting.
                worker_shared.shutdown.store(true, Ordering::SeqCst);
            }
            result
        },
    )
    .map_err(|e| anyhow!("cannot start workers: {e}"))?;
    let mut outcome = Outcome::default();
    let mut first_error = None;
    for result in guards.join() {
        match result {
            Ok(Ok(o)) => outcome.pipe_closed |= o.pipe_closed,
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(panic) => {
                first_error.get_or_insert(anyhow!("a worker failed: {panic}"));
            }
        }
    }
    if let Some(handle) = reader {
        // The reader ends once every worker's channel is closed; it never blocks past that.
        let _ = handle.join();
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}

/// A worker's inputs, the epoch they are open at, and what closing an epoch must record.
struct Intake<'a> {
    tallies: InputSession<Epoch, SensorKey, Tally>,
    counters: InputSession<Epoch, Counter, i64>,
    tally: EpochTally,
    rejected: i64,
    late: i64,
    open: Epoch,
    rejects: Rejects,
    /// Next offset per partition of what has been handled.
    positions: BTreeMap<i32, i64>,
    /// Cumulative state, kept only when checkpointing.
    table: Option<(SensorTable, i64, i64)>,
    /// Where this worker writes checkpoints, and the run's generation.
    checkpoints: Option<(&'a StateDir, u64)>,
    worker: usize,
    /// Closed epochs whose offsets wait to be committed.
    to_commit: VecDeque<(Epoch, BTreeMap<i32, i64>)>,
}

impl Intake<'_> {
    /// Closes the open epoch and moves the inputs to `epoch` (if later).
    fn advance_to(&mut self, epoch: Epoch) -> anyhow::Result<()> {
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
    fn close_open(&mut self) -> anyhow::Result<()> {
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
    fn restore(&mut self, state: &WorkerState) {
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
    fn finish(&mut self) -> anyhow::Result<()> {
        self.close_open()?;
        // Dropping a session closes its input; unattached sessions take their place.
        std::mem::replace(&mut self.tallies, InputSession::new()).close();
        std::mem::replace(&mut self.counters, InputSession::new()).close();
        Ok(())
    }
}

/// Worker 0's report state.
struct Reports {
    results: Results,
    collected: Rc<RefCell<Vec<(Stat, Epoch, isize)>>>,
    reporter: Option<Reporter>,
    /// Processing time reports every epoch from here on, data or not.
    next_epoch: Option<Epoch>,
    /// No report for an earlier epoch: its updates join the first report.
    first_epoch: Epoch,
    last_reported: Option<Epoch>,
}

impl Reports {
    /// Prints every epoch before `frontier` (`None`: everything is final).
    fn print_ready(&mut self, frontier: Option<Epoch>) -> std::io::Result<()> {
        self.results.absorb(self.collected.borrow_mut().drain(..));
        let mut epochs: BTreeSet<Epoch> = self.results.pending_epochs(frontier);
        if let (Some(next), Some(frontier)) = (self.next_epoch, frontier) {
            if frontier.saturating_sub(next) > MAX_EMPTY_REPORTS {
                warn!(
                    epochs = frontier - next,
                    "the clock jumped ahead; skipping reports of empty epochs"
                );
                self.next_epoch = Some(frontier - 1);
            }
            epochs.extend(self.next_epoch.unwrap_or(next)..frontier);
        }
        for epoch in epochs {
            if epoch < self.first_epoch || self.last_reported.is_some_and(|last| epoch <= last) {
                // Updates before the first reported epoch (restored state, a worker that
                // started before worker 0) are folded into the next report.
                continue;
            }
            let changes = self.results.advance(epoch);
            if let Some(reporter) = &mut self.reporter {
                reporter.epoch(epoch, &self.results, &changes)?;
            }
            self.last_reported = Some(epoch);
            if self.next_epoch.is_some() {
                self.next_epoch = Some(epoch + 1);
            }
        }
        Ok(())
    }

    /// After the input ended: the final report, which is always the full state.
    fn print_final(&mut self, open: Epoch) -> std::io::Result<()> {
        self.print_ready(None)?;
        let last = self.last_reported.unwrap_or(open);
        let changes = self.results.advance(last);
        if let Some(reporter) = &mut self.reporter {
            if self.last_reported.is_none() || reporter.changes_only() || !changes.is_empty() {
                reporter.full(last, &self.results)?;
            }
            reporter.flush_published()?;
        }
        Ok(())
    }
}

fn run_worker(worker: &mut Worker, shared: &Shared) -> anyhow::Result<Outcome> {
    let config = &shared.config;
    let index = worker.index();
    let peers = worker.peers();
    let local = index - config.cluster.local_workers().start;
    let collected = Rc::new(RefCell::new(Vec::new()));

    let sink = Rc::clone(&collected);
    let (tallies, counters, probe): (_, _, ProbeHandle<Epoch>) =
        worker.dataflow::<Epoch, _, _>(|scope| {
            let (tallies_in, tallies) = scope.new_collection::<SensorKey, Tally>();
            let (counters_in, counters) = scope.new_collection::<Counter, i64>();
            let (probe, _) = gather_to_first(analyses(tallies, counters))
                .inspect_batch(move |_, updates| sink.borrow_mut().extend(updates.iter().cloned()))
                .probe();
            (tallies_in, counters_in, probe)
        });

    let stop = || shared.shutdown.load(Ordering::Relaxed);
    let mut control = None;
    let mut restored = Restored::default();
    let mut resume = BTreeMap::new();
    if let Some(checkpoints) = &shared.checkpoints {
        let (link, restore) = start_control(worker, checkpoints, local == 0, &stop)?;
        if let Some(point) = restore {
            if config.cluster.processes > 1 && point.workers != peers {
                return Err(anyhow!(
                    "the checkpoint was taken by {} workers in all, this cluster has {peers}: restart it with the same -n and -w",
                    point.workers
                ));
            }
            let olds: Vec<usize> = old_workers_for(index, peers, point.workers).collect();
            restored = checkpoints.dir.load(&point, olds.iter().copied())?;
            // Offsets of partitions this worker now owns may sit in another old worker's file
            // (a single process restarted with another -w): read them all here.
            let others: Vec<usize> = if config.cluster.processes > 1 {
                olds
            } else {
                (0..point.workers).collect()
            };
            resume = checkpoints.dir.load(&point, others.into_iter())?.offsets();
        }
        control = Some(link);
    }
    let (mut source, dead_letters): (Box<dyn Source>, DeadLetters) = match &config.input {
        InputConfig::Demo {
            rate,
            sensors,
            seed,
        } => (
            Box::new(GeneratorSource::new(
                Fleet::new(*seed, *sensors),
                *seed,
                *rate,
                index,
                peers,
            )),
            DeadLetters::Log,
        ),
        InputConfig::File(_) => {
            let source = shared
                .file_sources
                .lock()
                .map_err(|_| anyhow!("file sources lock poisoned"))?
                .get_mut(local)
                .and_then(Option::take)
                .ok_or_else(|| anyhow!("no file source for worker {index}"))?;
            let dead_letters = shared
                .rejects_file
                .clone()
                .map_or(DeadLetters::Log, DeadLetters::File);
            (Box::new(source), dead_letters)
        }
        InputConfig::Kafka(kafka) => {
            let source = KafkaSource::new(kafka, index, peers, &resume, &stop)?;
            let topic = config
                .dlq_topic
                .clone()
                .unwrap_or_else(|| format!("{}.dlq", kafka.topic));
            let publisher = Publisher::new(&kafka.client)?;
            (
                Box::new(source),
                DeadLetters::Topic {
                    publisher: Box::new(publisher),
                    topic,
                },
            )
        }
    };
    let source_name = match &config.input {
        InputConfig::Kafka(k) => k.topic.clone(),
        other => other.name(),
    };

    let grid = config.grid;
    let start_epoch = grid.epoch_of(SystemTime::now());
    let checkpoints = match (&shared.checkpoints, &control) {
        (Some(c), Some(link)) => Some((&c.dir, link.generation)),
        _ => None,
    };
    let mut intake = Intake {
        tallies,
        counters,
        tally: EpochTally::default(),
        rejected: 0,
        late: 0,
        open: 0,
        rejects: Rejects::new(source_name, dead_letters),
        // Only this worker's partitions: each partition's offset is in exactly one checkpoint.
        positions: resume
            .iter()
            .filter(|(p, _)| owns_partition(**p, index, peers))
            .map(|(p, o)| (*p, *o))
            .collect(),
        table: checkpoints.map(|_| (SensorTable::default(), 0, 0)),
        checkpoints,
        worker: index,
        to_commit: VecDeque::new(),
    };
    // Restored state goes in first, so that every checkpoint of this run includes it.
    for (_, state) in &restored.workers {
        intake.restore(state);
    }
    if config.time == TimeMode::Processing {
        intake.advance_to(start_epoch)?;
    }
    let mut event_clock = EventClock::default();

    let mut reports = (index == 0).then(|| -> anyhow::Result<Reports> {
        let mut reporter = shared
            .out
            .lock()
            .ok()
            .and_then(|mut out| out.take())
            .map(|out| Reporter::new(out, config.format, config.changes, grid));
        if let Some(results) = &config.results {
            let publisher = Publisher::new(&results.client)?;
            reporter = reporter.map(|r| r.publish_to(publisher, results.topic.clone()));
        }
        Ok(Reports {
            results: Results::default(),
            collected: Rc::clone(&collected),
            reporter,
            next_epoch: (config.time == TimeMode::Processing).then_some(start_epoch),
            // Epoch 0 holds restored state (and event-time records without a time).
            first_epoch: if config.time == TimeMode::Processing {
                start_epoch
            } else {
                1
            },
            last_reported: None,
        })
    });
    let mut reports = reports.take().transpose()?;
    let first_local = local == 0;

    let mut outcome = Outcome::default();
    let max_bytes = config.max_message_bytes;
    let event_time = config.time == TimeMode::Event;
    let mut failure: Option<anyhow::Error> = None;
    let mut finished = false;
    let mut last_data = Instant::now();
    loop {
        let mut poll = Poll::Finished;
        if !finished {
            if config.time == TimeMode::Processing {
                intake.advance_to(grid.epoch_of(SystemTime::now()))?;
            }
            poll = if stop() {
                Poll::Finished
            } else {
                source.poll(POLL_BUDGET, &mut |record: RawRecord<'_>| {
                    if failure.is_some() {
                        return;
                    }
                    match parse(record.bytes, record.len, max_bytes) {
                        Ok(reading) => {
                            if event_time {
                                let event_epoch = reading
                                    .event_time
                                    .as_deref()
                                    .and_then(parse_event_time)
                                    .map(|ms| grid.epoch_of_ms(ms));
                                let assigned = event_clock.assign(event_epoch, intake.open);
                                if let Err(e) = intake.advance_to(assigned.epoch) {
                                    failure = Some(e);
                                    return;
                                }
                                intake.late += i64::from(assigned.late);
                            }
                            intake.tally.add(
                                &reading.guid,
                                &reading.device,
                                reading.humidity_micro,
                            );
                        }
                        Err(error) => {
                            intake.rejected += 1;
                            if let Err(e) = intake.rejects.reject(&record, &error) {
                                failure = Some(e.into());
                            }
                        }
                    }
                    if let Origin::Kafka { partition, offset } = record.origin {
                        intake.positions.insert(partition, offset + 1);
                    }
                })?
            };
            if let Some(e) = failure.take() {
                return Err(e);
            }
            if poll == Poll::Finished {
                finished = true;
                debug!(worker = index, epoch = intake.open, "input finished");
                intake.finish()?;
                if let Some(reports) = reports.as_mut() {
                    reports.next_epoch = reports.next_epoch.map(|n| n.min(intake.open));
                }
            }
        }
        if poll == Poll::Busy {
            last_data = Instant::now();
        } else if event_time && !finished && last_data.elapsed() >= config.idle_timeout {
            // An idle input (no partition, or a quiet one) must not hold every report back:
            // it moves to the wall clock, one epoch behind, as event time does when live.
            let now = grid.epoch_of(SystemTime::now()).saturating_sub(1);
            if now > intake.open {
                debug!(
                    worker = index,
                    epoch = now,
                    "idle input follows the wall clock"
                );
                intake.advance_to(now)?;
            }
        }
        if poll == Poll::Busy {
            worker.step();
        } else {
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
        let done = probe.done();
        let frontier = probe.with_frontier(|f| f.first().copied());
        commit_complete(
            worker,
            &mut intake,
            source.as_mut(),
            control.as_mut(),
            frontier,
            first_local,
            peers,
            done,
            &stop,
        )?;
        if let Some(reports) = reports.as_mut() {
            let printed = if done {
                reports.print_final(reports.last_reported.unwrap_or(start_epoch))
            } else {
                reports.print_ready(frontier)
            };
            if let Err(e) = printed {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    // Nobody reads the reports any more: stop everything, quietly.
                    outcome.pipe_closed = true;
                    reports.reporter = None;
                    shared.shutdown.store(true, Ordering::SeqCst);
                } else {
                    return Err(e).context("writing the report");
                }
            }
        }
        if done {
            return Ok(outcome);
        }
    }
}

/// Starts the control stream: worker 0 announces the run's generation and where to resume
/// (its process's `COMMITTED` marker), and every worker waits to hear it. The first worker of
/// each process then prepares the new generation's directory.
fn start_control(
    worker: &mut Worker,
    checkpoints: &Checkpoints,
    first_local: bool,
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<(ControlLink, Option<RestorePoint>)> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&seen);
    let mut input = worker.dataflow::<u64, _, _>(|scope| {
        let (input, stream) = scope.new_input::<Control>();
        stream
            .broadcast()
            .inspect(move |message: &Control| sink.borrow_mut().push(message.clone()));
        input
    });
    let input = if worker.index() == 0 {
        let generation = checkpoints.marker.map_or(0, |m| m.generation + 1);
        input.send(Control::Start {
            generation,
            restore: checkpoints.marker,
        });
        input.flush();
        Some(input)
    } else {
        // Only worker 0 speaks on the control stream.
        None
    };
    let (generation, restore) = loop {
        let start = seen.borrow().iter().find_map(|c| match c {
            Control::Start {
                generation,
                restore,
            } => Some((*generation, *restore)),
            Control::Committed { .. } => None,
        });
        if let Some(start) = start {
            break start;
        }
        if stop() {
            return Err(anyhow!("stopped before the run started"));
        }
        worker.step_or_park(Some(Duration::from_millis(1)));
    };
    seen.borrow_mut()
        .retain(|c| matches!(c, Control::Committed { .. }));
    let prepared = if first_local {
        checkpoints.dir.start_generation(generation)
    } else {
        Ok(())
    };
    checkpoints.barrier.wait();
    prepared?;
    Ok((
        ControlLink {
            input,
            seen,
            generation,
            committed: 0,
        },
        restore,
    ))
}

impl ControlLink {
    /// Takes in what worker 0 has said; the first worker of each process cleans up old files
    /// once a new commit is heard.
    fn absorb(&mut self, dir: &StateDir, first_local: bool, peers: usize) -> anyhow::Result<()> {
        let heard = self
            .seen
            .borrow_mut()
            .drain(..)
            .filter_map(|c| match c {
                Control::Committed { frontier } => Some(frontier),
                Control::Start { .. } => None,
            })
            .max();
        if let Some(frontier) = heard.filter(|f| *f > self.committed) {
            self.committed = frontier;
            if first_local {
                dir.cleanup(&RestorePoint {
                    generation: self.generation,
                    frontier,
                    workers: peers,
                })?;
            }
        }
        Ok(())
    }
}

/// Once epochs are complete everywhere: worker 0 records the checkpoint as committed and tells
/// everyone; each worker then commits the offsets of those epochs to the consumer group.
#[allow(clippy::too_many_arguments)]
fn commit_complete(
    worker: &mut Worker,
    intake: &mut Intake<'_>,
    source: &mut dyn Source,
    control: Option<&mut ControlLink>,
    frontier: Option<Epoch>,
    first_local: bool,
    peers: usize,
    done: bool,
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<()> {
    let frontier = frontier.unwrap_or(Epoch::MAX);
    let limit = match (control, intake.checkpoints) {
        (Some(link), Some((dir, generation))) => {
            if let Some(input) = link.input.as_mut() {
                if frontier > link.committed {
                    dir.commit(&RestorePoint {
                        generation,
                        frontier,
                        workers: peers,
                    })?;
                    input.send(Control::Committed { frontier });
                    input.flush();
                    if done {
                        // The final commit: close the control stream.
                        link.input = None;
                    }
                }
            }
            link.absorb(dir, first_local, peers)?;
            while done && link.committed < frontier && !stop() {
                // The final offsets go in once process 0 has committed the final checkpoint.
                worker.step_or_park(Some(Duration::from_millis(1)));
                link.absorb(dir, first_local, peers)?;
            }
            link.committed.min(frontier)
        }
        _ => frontier,
    };
    let mut latest = None;
    while intake
        .to_commit
        .front()
        .is_some_and(|(epoch, _)| *epoch < limit)
    {
        latest = intake.to_commit.pop_front().map(|(_, offsets)| offsets);
    }
    if let Some(offsets) = latest {
        source.commit(&offsets, done)?;
    }
    Ok(())
}
