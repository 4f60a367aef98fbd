//! The one wiring point: each worker's dataflow, its source, and the loop that drives them.
//!
//! ```text
//!  Source ─poll─> RawRecord ─parse─┬─ok──> WorkerTally ─(epoch closes)─> device sums,  ─┐
//!                                  │                                     new sensors    │
//!                                  └─err─> dead letters + Rejected counter ─────────────┤
//!                                                       analyses (dataflows/) <─────────┘
//!                                                            │ gather to worker 0
//!                                                            └─> Results ─> Reporter
//! ```
//!
//! Every worker runs the same loop: close the epoch when its clock says so, poll its source,
//! parse and tally, step the dataflow. Closing an epoch sends the epoch's tallies into the
//! dataflow and, with `--state-dir`, writes the worker's checkpoint before the input moves on.
//! When the probe shows an epoch complete everywhere, worker 0 records the checkpoint as
//! committed (`control`), every worker commits its Kafka offsets, and worker 0 prints the
//! epoch's report (`reports`). `intake` holds what a worker feeds into the dataflow.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context};
use differential_dataflow::input::Input;
use hygroflow_dataflows::{analyses, gather_to_first, Counter, Epoch, Results, SensorKey, Tally};
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;
use tracing::{debug, info};

use crate::checkpoint::{old_workers_for, Restored, StateDir};
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
use crate::tally::WorkerTally;

mod control;
mod intake;
mod reports;

use control::{commit_complete, start_control, Checkpoints};
use intake::{Intake, Totals};
use reports::Reports;

/// Records a worker handles between two steps of the dataflow.
const POLL_BUDGET: usize = 4096;

/// How a run ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Reports stopped because stdout was closed (a closed pipe is not an error).
    pub pipe_closed: bool,
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
        InputConfig::Demo { rate, sensors, .. } => {
            info!(sensors, rate, "streaming the simulated fleet (devices CT1-SPECT8); Ctrl-C stops with a final report");
        }
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

fn run_worker(worker: &mut Worker, shared: &Shared) -> anyhow::Result<Outcome> {
    let config = &shared.config;
    let index = worker.index();
    let peers = worker.peers();
    let local = index - config.cluster.local_workers().start;
    let collected = Rc::new(RefCell::new(Vec::new()));

    let sink = Rc::clone(&collected);
    let (device_sums, sensors, counters, probe): (_, _, _, ProbeHandle<Epoch>) = worker
        .dataflow::<Epoch, _, _>(|scope| {
            let (sums_in, sums) = scope.new_collection::<String, Tally>();
            let (sensors_in, sensors) = scope.new_collection::<SensorKey, isize>();
            let (counters_in, counters) = scope.new_collection::<Counter, i64>();
            let (probe, _) = gather_to_first(analyses(sums, sensors, counters))
                .inspect_batch(move |_, updates| sink.borrow_mut().extend(updates.iter().cloned()))
                .probe();
            (sums_in, sensors_in, counters_in, probe)
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
        device_sums,
        sensors,
        counters,
        tally: WorkerTally::default(),
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
        totals: checkpoints.map(|_| Totals::default()),
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
                        return Ok(());
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
                                    return Ok(());
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
                    Ok(())
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
