//! The one wiring point: each worker's dataflow, its source, and the loop that drives them.
//!
//! ```text
//!  Source ─poll─> RawRecord ─parse─┬─ok──> EpochTally ──(epoch closes)──> tallies input ─┐
//!                                  └─err─> Rejects (dead letters) + Rejected counter ───┤
//!                                                       analyses (dataflows/) <─────────┘
//!                                                            │ gather to worker 0
//!                                                            └─> Results ─> Reporter (stdout)
//! ```
//!
//! Every worker runs the same loop: close the epoch when its clock says so, poll its source,
//! parse and tally, step the dataflow. Worker 0 also watches the probe and prints each epoch's
//! report once every worker has moved past it.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context};
use differential_dataflow::input::{Input, InputSession};
use hygroflow_dataflows::{
    analyses, gather_to_first, Counter, Epoch, Results, SensorKey, Stat, Tally,
};
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;
use tracing::{debug, info};

use crate::config::{Config, Input as InputConfig};
use crate::epoch::{parse_event_time, EventClock, TimeMode};
use crate::fleet::Fleet;
use crate::message::parse;
use crate::sink::rejects::{DeadLetterFile, Rejects};
use crate::sink::report::Reporter;
use crate::source::file::{spawn_reader, FileSource};
use crate::source::generator::GeneratorSource;
use crate::source::{Poll, RawRecord, Source};
use crate::tally::EpochTally;

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
}

/// Runs the job until its input ends or `shutdown` is set; reports go to `out`.
pub fn run(
    config: Config,
    out: Box<dyn Write + Send>,
    shutdown: Arc<AtomicBool>,
) -> anyhow::Result<Outcome> {
    let mut reader = None;
    let mut file_sources = Vec::new();
    if let InputConfig::File(path) = &config.input {
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
    let timely_config = config.cluster.timely();
    let shared = Arc::new(Shared {
        config,
        file_sources: Mutex::new(file_sources),
        rejects_file,
        out: Mutex::new(Some(out)),
        shutdown,
    });
    let worker_shared = Arc::clone(&shared);
    let guards = timely::execute(timely_config, move |worker| {
        let result = run_worker(worker, &worker_shared);
        if result.is_err() {
            // One worker failing stops the others instead of leaving them waiting.
            worker_shared.shutdown.store(true, Ordering::SeqCst);
        }
        result
    })
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

/// The inputs of one worker's dataflow and the epoch they are open at.
struct Intake {
    tallies: InputSession<Epoch, SensorKey, Tally>,
    counters: InputSession<Epoch, Counter, i64>,
    tally: EpochTally,
    rejected: i64,
    late: i64,
    open: Epoch,
}

impl Intake {
    /// Sends the open epoch's tallies and moves the inputs to `epoch` (if later).
    fn advance_to(&mut self, epoch: Epoch) {
        if epoch <= self.open {
            return;
        }
        self.send_open();
        self.tallies.advance_to(epoch);
        self.counters.advance_to(epoch);
        self.tallies.flush();
        self.counters.flush();
        self.open = epoch;
    }

    fn send_open(&mut self) {
        for (key, tally) in self.tally.drain() {
            self.tallies.update(key, tally);
        }
        if self.rejected > 0 {
            self.counters
                .update(Counter::Rejected, std::mem::take(&mut self.rejected));
        }
        if self.late > 0 {
            self.counters
                .update(Counter::Late, std::mem::take(&mut self.late));
        }
    }

    /// Sends what is left and closes the inputs.
    fn finish(mut self) {
        self.send_open();
        self.tallies.close();
        self.counters.close();
    }
}

/// Worker 0's report state.
struct Reports {
    results: Results,
    collected: Rc<RefCell<Vec<(Stat, Epoch, isize)>>>,
    reporter: Option<Reporter>,
    /// Processing time reports every epoch from here on, data or not.
    next_epoch: Option<Epoch>,
    last_reported: Option<Epoch>,
}

impl Reports {
    /// Prints every epoch before `frontier` (`None`: everything is final).
    fn print_ready(&mut self, frontier: Option<Epoch>) -> std::io::Result<()> {
        self.results.absorb(self.collected.borrow_mut().drain(..));
        let mut epochs: BTreeSet<Epoch> = self.results.pending_epochs(frontier);
        if let (Some(next), Some(frontier)) = (self.next_epoch, frontier) {
            epochs.extend(next..frontier);
        }
        for epoch in epochs {
            if self.last_reported.is_some_and(|last| epoch <= last) {
                // Updates for an epoch already reported (a worker that started before worker
                // 0) are folded into the next report.
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

    let (mut source, source_name): (Box<dyn Source>, String) = match &config.input {
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
            "demo".to_owned(),
        ),
        InputConfig::File(path) => {
            let source = shared
                .file_sources
                .lock()
                .map_err(|_| anyhow!("file sources lock poisoned"))?
                .get_mut(local)
                .and_then(Option::take)
                .ok_or_else(|| anyhow!("no file source for worker {index}"))?;
            let name = path
                .as_ref()
                .map_or("stdin".to_owned(), |p| p.display().to_string());
            (Box::new(source), name)
        }
    };
    let mut rejects = Rejects::new(source_name, shared.rejects_file.clone());

    let grid = config.grid;
    let start_epoch = grid.epoch_of(SystemTime::now());
    let mut intake = Intake {
        tallies,
        counters,
        tally: EpochTally::default(),
        rejected: 0,
        late: 0,
        open: 0,
    };
    let mut event_clock = EventClock::default();
    if config.time == TimeMode::Processing {
        intake.advance_to(start_epoch);
    }

    let mut reports = (index == 0).then(|| Reports {
        results: Results::default(),
        collected: Rc::clone(&collected),
        reporter: shared
            .out
            .lock()
            .ok()
            .and_then(|mut out| out.take())
            .map(|out| Reporter::new(out, config.format, config.changes, grid)),
        next_epoch: (config.time == TimeMode::Processing).then_some(start_epoch),
        last_reported: None,
    });

    let mut outcome = Outcome::default();
    let max_bytes = config.max_message_bytes;
    let event_time = config.time == TimeMode::Event;
    let mut reject_error = None;
    let mut finished = false;
    let mut intake = Some(intake);
    loop {
        let mut poll = Poll::Finished;
        if let Some(open) = intake.as_mut() {
            if config.time == TimeMode::Processing {
                let now = grid.epoch_of(SystemTime::now());
                if now > open.open {
                    rejects.end_epoch().context("writing rejected messages")?;
                    open.advance_to(now);
                }
            }
            poll = if shared.shutdown.load(Ordering::Relaxed) {
                Poll::Finished
            } else {
                source.poll(POLL_BUDGET, &mut |record: RawRecord<'_>| match parse(
                    record.bytes,
                    record.len,
                    max_bytes,
                ) {
                    Ok(reading) => {
                        if event_time {
                            let event_epoch = reading
                                .event_time
                                .as_deref()
                                .and_then(parse_event_time)
                                .map(|ms| grid.epoch_of_ms(ms));
                            let assigned = event_clock.assign(event_epoch, open.open);
                            if assigned.epoch > open.open {
                                open.advance_to(assigned.epoch);
                            }
                            open.late += i64::from(assigned.late);
                        }
                        open.tally
                            .add(&reading.guid, &reading.device, reading.humidity_micro);
                    }
                    Err(error) => {
                        open.rejected += 1;
                        if let Err(e) = rejects.reject(&record, &error) {
                            reject_error.get_or_insert(e);
                        }
                    }
                })?
            };
        }
        if let Some(e) = reject_error.take() {
            return Err(e).context("writing rejected messages");
        }
        if poll == Poll::Finished && !finished {
            finished = true;
            rejects.end_epoch().context("writing rejected messages")?;
            if let Some(open) = intake.take() {
                debug!(worker = index, epoch = open.open, "input finished");
                let last = open.open;
                open.finish();
                if let Some(reports) = reports.as_mut() {
                    reports.next_epoch = reports.next_epoch.map(|n| n.min(last));
                }
            }
        }
        if poll == Poll::Busy {
            worker.step();
        } else {
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
        let done = probe.done();
        if let Some(reports) = reports.as_mut() {
            let frontier = probe.with_frontier(|f| f.first().copied());
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
