//! One worker's loop: poll -> ingest -> step -> react to the frontier.
//!
//! The worker holds one owner per concern: its source, the [`EpochWriter`] (open epoch,
//! tallies, dead letters, offsets), the optional [`Checkpointer`], and on worker 0 the
//! [`ReportThread`] where the [`ReportPrinter`] runs. The loop only decides when each of them
//! acts.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use differential_dataflow::VecCollection;
use hygroflow_dataflows::{Distinct, Epoch, Stat};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{ProbeHandle, StreamVec};
use timely::worker::Worker;
use tracing::{debug, warn};

use crate::epoch::Window;
use crate::sink::rejects::Rejects;
use crate::source::{Poll, Source};

use super::checkpointer::{Checkpointer, Resume};
use super::job::Job;
use super::printer::{Collected, Readers, ReportPrinter, Transitions};
use super::report_thread::ReportThread;
use super::stop::StopLink;
use super::writer::{EpochWriter, EventClock};
use super::Outcome;
use crate::sink::held::Release;

/// Records a worker handles between two steps of the dataflow.
const POLL_BUDGET: usize = 4096;

/// Flow control: how many closed epochs a worker's input may have that the dataflow has not
/// completed on every worker before it stops taking input. Each epoch in flight holds its
/// per-device sums and new sensors; a report reader that stops reading holds worker 0, and
/// with it the frontier, so without this bound the other workers would pile up epochs for as
/// long as the input lasts. A replay in event time runs a few dozen epochs ahead per step.
const MAX_EPOCHS_AHEAD: u64 = 1024;

/// A worker and everything it owns.
pub(crate) struct WorkerLoop<'w> {
    worker: &'w mut Worker,
    job: &'w Job,
    source: Box<dyn Source>,
    writer: EpochWriter,
    checkpointer: Option<Checkpointer>,
    printer: Option<ReportThread>,
    /// With checkpoints: the reports held until the checkpoint that covers them is committed.
    release: Option<Release>,
    probe: ProbeHandle<Epoch>,
    last_data: Instant,
    /// The source has been told that the job is stopping.
    stopping: bool,
    /// Flow control: since when input is held back (`None`: it is not).
    held_since: Option<Instant>,
    /// When holding back was last logged.
    held_back_logged: Option<Instant>,
    /// Cluster mode: a stop anywhere stops every process.
    stop_link: Option<StopLink>,
    /// The generation of reloaded rules this worker last announced.
    rules_seen: u64,
    outcome: Outcome,
}

impl<'w> WorkerLoop<'w> {
    /// Builds the worker's dataflow, restores its checkpointed state and asks the job for
    /// its source, dead letters and (worker 0) reporter.
    pub(crate) fn build(worker: &'w mut Worker, job: &'w Job) -> anyhow::Result<Self> {
        let collected = Rc::new(RefCell::new(Vec::new()));
        let transitions: Transitions = Rc::new(RefCell::new(Vec::new()));
        let (sink, alert_sink) = (Rc::clone(&collected), Rc::clone(&transitions));
        let rules = job.alert_rules();
        let alerts_on = rules.is_some();
        let (inputs, probe) = worker.dataflow::<Epoch, _, _>(|scope| {
            let distinct = match job.config.window {
                Window::Cumulative => Distinct::Cumulative,
                Window::Epochs(_) => Distinct::Windowed,
            };
            let (inputs, results, alerts) = hygroflow_dataflows::build(scope, (distinct, rules));
            let (probe, _) = collect_into(results, sink).probe();
            alerts
                .inspect(move |t| alert_sink.borrow_mut().push(t.clone()))
                .probe_with(&probe);
            (inputs, probe)
        });
        let (index, peers) = (worker.index(), worker.peers());
        let stop_link = (job.config.cluster.processes > 1).then(|| StopLink::new(worker));
        let first_local = index == job.config.cluster.local_workers().start;
        let stop = || job.stopped();
        // Taken first: if this worker fails before starting it, it answers the others.
        let letter_starter = first_local.then(|| job.take_letter_starter()).flatten();
        let (checkpointer, resume) = match job.checkpoints() {
            Some(shared) => {
                let (checkpointer, resume) =
                    Checkpointer::start(worker, shared, first_local, &stop)?;
                (Some(checkpointer), resume)
            }
            None => (None, Resume::default()),
        };
        if let Some(starter) = letter_starter {
            starter.start(resume.dead_letters_from.clone());
        }
        let source = job.source(index, peers, &resume.offsets)?;
        let rejects = Rejects::new(job.config.input.name(), job.dead_letters(index, peers)?);
        let config = &job.config;
        // Only this worker's partitions: each partition's offset is in exactly one checkpoint.
        let offsets = owned(&resume.offsets, index, peers);
        let mut writer = EpochWriter::new(
            inputs,
            (
                config.time,
                config.grid,
                config.max_clock_skew,
                config.window,
            ),
            EventClock {
                allowed_lateness: config.allowed_lateness,
                idle_timeout: config.idle_timeout,
            },
            (alerts_on, checkpointer.is_some()),
            config.max_message_bytes,
            rejects,
            offsets,
        );
        writer.announce_epochs(index == 0);
        writer.restore(&resume.states, &resume.printed.alerts);
        writer.restore_watermarks(&owned(&resume.watermarks, index, peers));
        let start_epoch = config.grid.epoch_of(SystemTime::now());
        let mut release = None;
        let printer = if index == 0 {
            let every_epoch = !job.event_time();
            let mut reporter = job.reporter()?;
            // With checkpoints, no report is printed that a restart could take back.
            let marks = match (&mut reporter, &checkpointer) {
                (Some(reporter), Some(_)) => {
                    let (marks, held) = reporter.hold();
                    release = Some(held);
                    Some(marks)
                }
                _ => None,
            };
            let alert_log = job.alert_log(&resume.printed)?;
            let live = job.live_feed();
            let (windowed, resumed) = (
                config.window != Window::Cumulative,
                resume.printed.last_reported,
            );
            let make = move |collected, transitions| {
                let printer =
                    ReportPrinter::new(collected, reporter, start_epoch, (every_epoch, windowed))
                        .resumed_after(resumed)
                        .with_live(live);
                match alert_log {
                    Some(log) => printer.with_alerts(transitions, log),
                    None => printer,
                }
            };
            let thread = ReportThread::spawn((collected, transitions), make, marks)
                .context("starting the report thread")?;
            Some(thread)
        } else {
            None
        };
        Ok(WorkerLoop {
            worker,
            job,
            source,
            writer,
            checkpointer,
            printer,
            release,
            probe,
            last_data: Instant::now(),
            stopping: false,
            held_since: None,
            held_back_logged: None,
            stop_link,
            rules_seen: 0,
            outcome: Outcome::default(),
        })
    }

    /// Runs until the dataflow is done.
    pub(crate) fn run(mut self) -> anyhow::Result<Outcome> {
        loop {
            let poll = self.poll()?;
            self.writer.flush();
            if poll == Poll::Busy {
                self.worker.step();
            } else {
                self.worker.step_or_park(Some(Duration::from_millis(1)));
            }
            if self.on_frontier()? {
                return Ok(self.outcome);
            }
        }
    }

    /// Moves the clock, polls the source and ingests what it delivers.
    fn poll(&mut self) -> anyhow::Result<Poll> {
        if self.writer.finished() {
            return Ok(Poll::Finished);
        }
        let wall = SystemTime::now();
        self.writer.wall_clock(wall);
        let now = self.job.config.grid.epoch_of(wall);
        // Held back, the clock stands still too: epochs closed while nobody reads the reports
        // would pile up all the same (the reports of the empty ones are skipped later).
        let held_back = self.hold_back();
        if !self.job.event_time() && !held_back {
            self.writer.advance_to(now, self.checkpointer.as_mut())?;
        }
        if let Some(link) = &mut self.stop_link {
            link.exchange(self.job);
        }
        if let Some(checksum) = self.job.rules_to_announce(&mut self.rules_seen) {
            self.writer.announce_rules(checksum);
        }
        if self.job.stopped() && !self.stopping {
            // Ctrl-C or SIGTERM: what was read is still processed, nothing more is read.
            self.source.stop();
            self.stopping = true;
        }
        if held_back {
            return Ok(Poll::Idle);
        }
        // Partitions assigned or at their end come before the records polled with them: a
        // partition assigned at start holds the frontier back from its first record on.
        self.progress()?;
        let (writer, journal) = (&mut self.writer, &mut self.checkpointer);
        let poll = self.source.poll(POLL_BUDGET, &mut |record| {
            writer.ingest(record, journal.as_mut()).map_err(Into::into)
        })?;
        self.progress()?;
        match poll {
            Poll::Busy => self.last_data = Instant::now(),
            Poll::Finished => {
                debug!(
                    worker = self.worker.index(),
                    epoch = self.writer.open(),
                    "input finished"
                );
                self.writer.finish(self.checkpointer.as_mut())?;
                if let Some(link) = &mut self.stop_link {
                    link.close();
                }
                if let Some(printer) = &mut self.printer {
                    printer.input_finished(self.writer.open());
                }
            }
            Poll::Idle => {
                let quiet = self.last_data.elapsed() >= self.job.config.idle_timeout;
                if self.job.event_time() && quiet && self.writer.unheld() {
                    self.follow_wall_clock(now)?;
                }
            }
        }
        Ok(poll)
    }

    /// Whether to take no input now: more than [`MAX_EPOCHS_AHEAD`] epochs closed by this
    /// worker's input are not complete yet; input goes on once half of them are. A replay runs
    /// into the bound now and then; input held back for seconds is logged, at most once a
    /// minute.
    fn hold_back(&mut self) -> bool {
        let frontier = self.probe.with_frontier(|f| f.first().copied());
        let epochs = self.writer.in_flight(frontier) as u64;
        let limit = match self.held_since {
            Some(_) => MAX_EPOCHS_AHEAD / 2,
            None => MAX_EPOCHS_AHEAD,
        };
        if epochs <= limit {
            self.held_since = None;
            return false;
        }
        let since = *self.held_since.get_or_insert_with(Instant::now);
        let quiet = self
            .held_back_logged
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if since.elapsed() >= Duration::from_secs(5) && quiet {
            warn!(
                worker = self.worker.index(),
                epochs,
                "input paused: {epochs} epochs have waited seconds for their reports (is anybody reading them?)"
            );
            self.held_back_logged = Some(Instant::now());
        }
        true
    }

    /// Hands the source's news of its partitions to the epoch writer (event time's
    /// watermarks).
    fn progress(&mut self) -> anyhow::Result<()> {
        let mut news = Vec::new();
        self.source.progress(&mut |p| news.push(p));
        self.writer
            .progress(&news, self.checkpointer.as_mut())
            .map_err(Into::into)
    }

    /// An idle input (no partition, or a quiet one) must not hold every report back: in event
    /// time it moves to the wall clock, one epoch behind, as event time does when live.
    fn follow_wall_clock(&mut self, now: Epoch) -> anyhow::Result<()> {
        let behind = now.saturating_sub(1);
        if behind > self.writer.open() {
            debug!(
                worker = self.worker.index(),
                epoch = behind,
                "idle input follows the wall clock"
            );
            self.writer.advance_to(behind, self.checkpointer.as_mut())?;
        }
        Ok(())
    }

    /// Acts on the probe's frontier: commits checkpoints and offsets of complete epochs,
    /// prints their reports. Returns whether the dataflow is done.
    fn on_frontier(&mut self) -> anyhow::Result<bool> {
        let done = self.probe.done();
        let frontier = self.probe.with_frontier(|f| f.first().copied());
        if self.job.failed() {
            // Read after the frontier: a failed worker's dropped dataflow releases the
            // frontier, and its state must not be committed as complete.
            return Err(AnotherWorkerFailed.into());
        }
        // Reports and alerts first: an alert published to its topic before the checkpoint
        // that covers its epoch is never lost, and a replay does not publish it again.
        if let Some(printer) = &mut self.printer {
            let printable = if done { None } else { frontier };
            let readers = printer
                .on_frontier(printable)
                .context("writing the report")?;
            if readers == Readers::Gone {
                // Nobody reads the reports any more: stop everything, quietly.
                self.outcome.pipe_closed = true;
                self.job.stop();
            }
        }
        // Worker 0 commits no further than its report thread has printed.
        let (printed_before, printed) = self
            .printer
            .as_ref()
            .map_or((Epoch::MAX, Default::default()), ReportThread::printed);
        let complete = frontier.unwrap_or(Epoch::MAX).min(printed_before);
        let committed = match &mut self.checkpointer {
            Some(checkpointer) => {
                let stop = || self.job.stopped();
                checkpointer.on_frontier(self.worker, (complete, done), &printed, &stop)?
            }
            None => complete,
        };
        if let Some(offsets) = self.writer.committable(committed) {
            self.source.commit(&offsets, done)?;
            crate::fault::point("after-offsets");
        }
        self.release_committed()?;
        Ok(done)
    }

    /// Worker 0, with checkpoints: prints the reports that the `COMMITTED` marker now covers.
    fn release_committed(&mut self) -> anyhow::Result<()> {
        let (Some(release), Some(checkpointer)) = (&mut self.release, &self.checkpointer) else {
            return Ok(());
        };
        match release.release(checkpointer.marked()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                // Nobody reads the reports any more: stop everything, quietly.
                self.release = None;
                self.outcome.pipe_closed = true;
                self.job.stop();
            }
            Err(e) => return Err(e).context("writing the report"),
        }
        crate::fault::point("after-release");
        Ok(())
    }
}

/// The entries of `by_partition` for the partitions worker `index` of `peers` reads.
fn owned(by_partition: &BTreeMap<i32, i64>, index: usize, peers: usize) -> BTreeMap<i32, i64> {
    by_partition
        .iter()
        .filter(|(p, _)| crate::source::kafka::owns_partition(**p, index, peers))
        .map(|(p, o)| (*p, *o))
        .collect()
}

/// Moves the result updates that reach this worker into `collected`, for the printer, without
/// copying them (each update owns its device's name). Nothing comes out: a probe on the output
/// passes an epoch only once this operator has taken all of its updates.
fn collect_into<'scope>(
    results: VecCollection<'scope, Epoch, Stat, isize>,
    collected: Collected,
) -> StreamVec<'scope, Epoch, ()> {
    results
        .inner
        .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
            Pipeline,
            "CollectResults",
            move |_initial, _info| {
                move |input, _output| {
                    input.for_each(|_time, updates| {
                        let mut collected = collected.borrow_mut();
                        if collected.is_empty() {
                            // The usual case: the printer took the last ones.
                            std::mem::swap(&mut *collected, updates);
                        } else {
                            collected.append(updates);
                        }
                    });
                }
            },
        )
}

/// A worker stops because another failed: the job reports the other's error, not this.
#[derive(Debug, thiserror::Error)]
#[error("stopping: another worker failed")]
pub(crate) struct AnotherWorkerFailed;
