//! The checkpointer: one worker's side of `--state-dir` (see `checkpoint.rs` for the files).
//!
//! It owns the state directory's generation for this run, the control stream on which worker
//! 0 announces where the run resumes and what is committed, and the worker's cumulative totals
//! (what a checkpoint file holds). Its rules, in order:
//!
//! 1. the epoch writer hands it every epoch it closes ([`Checkpointer::write`]), and the
//!    worker's file for that epoch is durable before the input moves on;
//! 2. when the probe's frontier shows epochs complete on every worker, worker 0 writes the
//!    `COMMITTED` marker naming the frontier and tells every worker;
//! 3. only then ([`Checkpointer::on_frontier`] returns the committed frontier) are the offsets
//!    of those epochs committed to the consumer group.
//!
//! Materialize drives its offset commits from a resume frontier the same way.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use hygroflow_dataflows::{Epoch, Tally};
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::{Broadcast, Input as _};
use timely::dataflow::operators::Inspect;
use timely::dataflow::InputHandleVec;
use timely::worker::Worker;

use crate::checkpoint::{
    old_workers_for, CheckpointError, EpochLog, EpochRow, LogCut, LogRecord, Printed, RestorePoint,
    StateDir, WorkerState,
};
use crate::kafka::tail::{self, ResumeOffsets};
use crate::tally::WorkerTally;

use super::writer::{EpochCounts, EventTimeState, Offsets};

/// Checkpointing shared by the workers of a process.
pub(crate) struct Checkpoints {
    dir: StateDir,
    /// Process 0's `COMMITTED` marker, read at start (other processes have none).
    marker: Option<RestorePoint>,
    /// Lets the first local worker prepare the new generation before the others write to it.
    barrier: Barrier,
    /// This process's workers.
    local: Range<usize>,
    /// More than one process: a restart must keep the same number of workers.
    cluster: bool,
    /// Epochs of per-epoch sums each checkpoint keeps for windows and alerts (a rules reload
    /// with a longer window raises it).
    kept: Arc<AtomicU64>,
    /// What the printer had done at the marker's frontier (process 0; worker 0 goes on
    /// from it).
    printed: Printed,
}

impl Checkpoints {
    /// Checkpointing in `dir` for `local_workers` threads; `marker` is process 0's marker
    /// with what the printer had done at its frontier; each file keeps `kept` recent epochs'
    /// sums.
    pub(crate) fn new(
        dir: StateDir,
        (marker, printed): (Option<RestorePoint>, Printed),
        local: Range<usize>,
        cluster: bool,
        kept: Arc<AtomicU64>,
    ) -> Self {
        Checkpoints {
            dir,
            marker,
            barrier: Barrier::new(local.len()),
            local,
            cluster,
            kept,
            printed,
        }
    }

    /// Process 0: what the printer had done at the checkpoint this run resumes from.
    pub(crate) fn resumed(&self) -> &Printed {
        &self.printed
    }
}

/// Why checkpointing cannot go on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckpointerError {
    /// Reading or writing the state directory failed.
    #[error(transparent)]
    Files(#[from] CheckpointError),
    /// A cluster restarted with another number of workers.
    #[error("the checkpoint was taken by {taken} workers in all, this cluster has {now}: restart it with the same -n and -w")]
    Workers {
        /// Workers of the checkpointed run.
        taken: usize,
        /// Workers now.
        now: usize,
    },
    /// Stopped (Ctrl-C, another worker failed) before worker 0 said where to resume.
    #[error("stopped before the run started")]
    Stopped,
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

/// What a worker resumes from.
#[derive(Debug, Default)]
pub(crate) struct Resume {
    /// The states of the old workers this worker takes over.
    pub(crate) states: Vec<WorkerState>,
    /// The checkpointed next offset of every partition.
    pub(crate) offsets: Offsets,
    /// Event time: the checkpointed newest event time of every partition.
    pub(crate) watermarks: BTreeMap<i32, i64>,
    /// Worker 0: what the printer had done at the checkpoint's frontier.
    pub(crate) printed: Printed,
    /// The first local worker: where this process reads its dead-letter topic back from (the
    /// lowest over its checkpoint files; empty: from the beginning).
    pub(crate) dead_letters_from: ResumeOffsets,
}

/// Cumulative counts a worker keeps for its checkpoints, and the recent epochs' sums.
#[derive(Debug, Default)]
struct Totals {
    devices: BTreeMap<String, Tally>,
    counts: EpochCounts,
    /// `(epoch, device, sum, count)` of the last `kept` epochs, oldest first.
    recent: VecDeque<EpochRow>,
    /// The last `kept` epochs in which this worker had a message.
    reported: VecDeque<Epoch>,
    kept: Arc<AtomicU64>,
    /// The first epoch still kept: it only moves forward, also when a rules reload raises
    /// `kept` (what was forgotten stays forgotten, in memory and in the log alike).
    first: Epoch,
    /// What was added to `recent` and `reported` since the last checkpoint.
    unlogged: LogRecord,
    /// The epoch log this run's checkpoints append to; `None` before the first, and after a
    /// failed append (the next checkpoint starts a new one).
    log: Option<EpochLog>,
}

impl Totals {
    fn kept(&self) -> u64 {
        self.kept.load(Ordering::Relaxed)
    }

    fn count(&mut self, counts: EpochCounts) {
        self.counts.add(&counts);
    }

    /// Forgets the recent epochs that are `kept` or more before `epoch`.
    fn expire(&mut self, epoch: Epoch) {
        self.first = self.first.max((epoch + 1).saturating_sub(self.kept()));
        let first = self.first;
        while self.recent.front().is_some_and(|(e, ..)| *e < first) {
            self.recent.pop_front();
        }
        while self.reported.front().is_some_and(|e| *e < first) {
            self.reported.pop_front();
        }
    }

    /// Makes what changed since the last checkpoint durable in the epoch log, starting a new
    /// log (with every row still kept) before the first checkpoint and when the expired rows
    /// outweigh the live ones; returns where the checkpoint of `epoch` finds its rows.
    fn log_through(
        &mut self,
        dir: &StateDir,
        (generation, worker): (u64, usize),
        epoch: Epoch,
    ) -> Result<LogCut, CheckpointError> {
        let record = std::mem::take(&mut self.unlogged);
        let live = self.recent.len() + self.reported.len();
        let log = match self.log.take() {
            Some(mut log) if !log.wants_compaction(live) => {
                // On an error the log is dropped, its tail perhaps torn: the next checkpoint
                // starts a new one with every row still kept.
                log.append(&record)?;
                log
            }
            _ => {
                let base = LogRecord {
                    recent: self.recent.iter().cloned().collect(),
                    reported: self.reported.iter().copied().collect(),
                };
                dir.create_log(generation, worker, epoch, &base)?
            }
        };
        let cut = log.cut(self.first);
        self.log = Some(log);
        Ok(cut)
    }

    fn add(&mut self, device: &str, (sum, count): Tally) {
        match self.devices.get_mut(device) {
            Some(total) => {
                total.0 += sum;
                total.1 += count;
            }
            None => {
                self.devices.insert(device.to_owned(), (sum, count));
            }
        }
    }
}

/// One worker's checkpointing.
pub(crate) struct Checkpointer {
    dir: StateDir,
    generation: u64,
    worker: usize,
    peers: usize,
    first_local: bool,
    /// Worker 0's end of the control stream; dropped (closed) after the final commit.
    input: Option<InputHandleVec<u64, Control>>,
    heard: Rc<RefCell<Vec<Control>>>,
    /// The latest frontier process 0 has committed, as heard here.
    committed: Epoch,
    /// Worker 0: the frontier of the last `COMMITTED` marker it wrote.
    marked: Epoch,
    totals: Totals,
}

impl Checkpointer {
    /// Starts the control stream: worker 0 announces the run's generation and where to resume
    /// (its process's `COMMITTED` marker), and every worker waits to hear it, then loads the
    /// files of the old workers it takes over, once. The first worker of each process
    /// prepares the new generation's directory before any worker writes to it.
    pub(crate) fn start(
        worker: &mut Worker,
        shared: &Checkpoints,
        first_local: bool,
        stop: &dyn Fn() -> bool,
    ) -> Result<(Checkpointer, Resume), CheckpointerError> {
        let heard = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&heard);
        let input = worker.dataflow::<u64, _, _>(|scope| {
            let (input, stream) = scope.new_input::<Control>();
            stream
                .broadcast()
                .inspect(move |message: &Control| sink.borrow_mut().push(message.clone()));
            input
        });
        // Only worker 0 speaks on the control stream.
        let input = (worker.index() == 0).then(|| {
            let mut input = input;
            input.send(Control::Start {
                generation: shared.marker.map_or(0, |m| m.generation + 1),
                restore: shared.marker,
            });
            input.flush();
            input
        });
        let (generation, restore) = loop {
            let start = heard.borrow().iter().find_map(|c| match c {
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
                return Err(CheckpointerError::Stopped);
            }
            worker.step_or_park(Some(Duration::from_millis(1)));
        };
        heard
            .borrow_mut()
            .retain(|c| matches!(c, Control::Committed { .. }));
        let prepared = if first_local {
            shared.dir.start_generation(generation)
        } else {
            Ok(())
        };
        shared.barrier.wait();
        prepared?;
        let mut checkpointer = Checkpointer {
            dir: shared.dir.clone(),
            generation,
            worker: worker.index(),
            peers: worker.peers(),
            first_local,
            input,
            heard,
            committed: 0,
            marked: 0,
            totals: Totals {
                kept: Arc::clone(&shared.kept),
                ..Totals::default()
            },
        };
        let mut resume = match restore {
            Some(point) => checkpointer.load(&point, shared)?,
            None => Resume::default(),
        };
        if worker.index() == 0 {
            resume.printed = shared.printed.clone();
        }
        Ok((checkpointer, resume))
    }

    /// Loads the old workers' files this worker needs, each once: the states it takes over,
    /// and (a single process restarted with another `-w`) the offsets of every partition,
    /// since a partition it now owns may sit in another old worker's file.
    fn load(
        &mut self,
        point: &RestorePoint,
        shared: &Checkpoints,
    ) -> Result<Resume, CheckpointerError> {
        let cluster = shared.cluster;
        if cluster && point.workers != self.peers {
            return Err(CheckpointerError::Workers {
                taken: point.workers,
                now: self.peers,
            });
        }
        let mine: Vec<usize> = old_workers_for(self.worker, self.peers, point.workers).collect();
        // A cluster keeps its workers (checked above): this process's old workers are its
        // workers now, whose files its first worker reads for where the dead letters resume.
        let process: Vec<usize> = if cluster {
            shared.local.clone().collect()
        } else {
            (0..point.workers).collect()
        };
        let needed = if cluster && !self.first_local {
            mine.clone()
        } else {
            process.clone()
        };
        let loaded = self.dir.load(point, needed.into_iter())?;
        let dead_letters_from = if self.first_local {
            tail::lowest(
                loaded
                    .workers
                    .iter()
                    .filter(|(old, _)| process.contains(old))
                    .map(|(_, w)| w.dead_letters_from.iter().flatten().copied().collect()),
            )
        } else {
            ResumeOffsets::new()
        };
        let offsets = loaded.offsets();
        let watermarks = loaded
            .workers
            .iter()
            .flat_map(|(_, w)| w.watermarks.iter().copied())
            .collect();
        let states: Vec<WorkerState> = loaded
            .workers
            .into_iter()
            .filter(|(old, _)| mine.contains(old))
            .map(|(_, state)| state)
            .collect();
        let mut recent: Vec<EpochRow> = Vec::new();
        let mut reported: Vec<Epoch> = Vec::new();
        for state in &states {
            recent.extend(state.recent.iter().cloned());
            reported.extend(&state.reported);
            for (device, sum, count) in &state.devices {
                self.totals.add(device, (*sum, *count));
            }
            self.totals.count(EpochCounts::of_state(state));
        }
        // The recent epochs of the old workers this one takes over stay in its files.
        recent.sort();
        reported.sort_unstable();
        reported.dedup();
        self.totals.recent = recent.into();
        self.totals.reported = reported.into();
        Ok(Resume {
            states,
            offsets,
            watermarks,
            printed: Printed::default(),
            dead_letters_from,
        })
    }

    /// Adds a device's sums of `epoch`, the epoch being closed, to the totals.
    pub(crate) fn add_device(&mut self, epoch: Epoch, device: &str, sums: Tally) {
        self.totals.add(device, sums);
        if self.totals.kept() > 0 {
            let row = (epoch, device.to_owned(), sums.0, sums.1);
            self.totals.unlogged.recent.push(row.clone());
            self.totals.recent.push_back(row);
        }
    }

    /// Writes this worker's checkpoint for the epoch it just closed (rule 1).
    /// `dead_letters_from`: where a restart from it reads the dead-letter topic back.
    pub(crate) fn write(
        &mut self,
        epoch: Epoch,
        (counts, reported): (EpochCounts, bool),
        (offsets, dead_letters_from): (&Offsets, Option<Vec<(i32, i64)>>),
        (tally, event_time): (&WorkerTally, EventTimeState),
    ) -> Result<(), CheckpointError> {
        self.totals.count(counts);
        if reported && self.totals.kept() > 0 {
            self.totals.reported.push_back(epoch);
            self.totals.unlogged.reported.push(epoch);
        }
        self.totals.expire(epoch);
        let started = std::time::Instant::now();
        let log = if self.totals.kept() > 0 {
            let at = (self.generation, self.worker);
            Some(self.totals.log_through(&self.dir, at, epoch)?)
        } else {
            None
        };
        let state = WorkerState {
            offsets: offsets.clone(),
            rejected: self.totals.counts.rejected,
            rejected_as: self.totals.counts.rejected_by_kind(),
            late: self.totals.counts.late,
            future: self.totals.counts.future,
            devices: self
                .totals
                .devices
                .iter()
                .map(|(device, (sum, count))| (device.clone(), *sum, *count))
                .collect(),
            sensors: tally.sensors(),
            recent: Vec::new(),
            reported: Vec::new(),
            log,
            watermarks: event_time.watermarks,
            pending: event_time.pending,
            dead_letters_from,
        };
        let written = self
            .dir
            .write_worker(self.generation, self.worker, epoch, state);
        crate::live::metrics::checkpoint_written(started.elapsed());
        written
    }

    /// The dataflow's frontier moved to `frontier` (`done`: the dataflow has finished).
    /// Worker 0 commits the marker, with what the printer has `printed` up to the frontier,
    /// and tells everyone (rule 2); returns the frontier before which offsets may be
    /// committed (rule 3). When done, waits for the final commit.
    pub(crate) fn on_frontier(
        &mut self,
        worker: &mut Worker,
        (frontier, done): (Epoch, bool),
        printed: &Printed,
        stop: &dyn Fn() -> bool,
    ) -> Result<Epoch, CheckpointError> {
        if let Some(input) = self.input.as_mut() {
            if frontier > self.committed {
                let point = RestorePoint {
                    generation: self.generation,
                    frontier,
                    workers: self.peers,
                };
                self.dir.commit(&point, printed)?;
                crate::live::metrics::checkpoint_committed();
                self.marked = frontier;
                crate::fault::point("after-marker");
                input.send(Control::Committed { frontier });
                input.flush();
                if done {
                    // The final commit: close the control stream.
                    self.input = None;
                }
            }
        }
        self.absorb()?;
        while done && self.committed < frontier && !stop() {
            // The final offsets go in once process 0 has committed the final checkpoint.
            worker.step_or_park(Some(Duration::from_millis(1)));
            self.absorb()?;
        }
        Ok(self.committed.min(frontier))
    }

    /// Worker 0: every epoch before this frontier is in a durable `COMMITTED` marker (written
    /// by this run; 0 before its first).
    pub(crate) fn marked(&self) -> Epoch {
        self.marked
    }

    /// Takes in what worker 0 has said; the first worker of each process cleans up old files
    /// once a new commit is heard.
    fn absorb(&mut self) -> Result<(), CheckpointError> {
        let heard = self
            .heard
            .borrow_mut()
            .drain(..)
            .filter_map(|c| match c {
                Control::Committed { frontier } => Some(frontier),
                Control::Start { .. } => None,
            })
            .max();
        if let Some(frontier) = heard.filter(|f| *f > self.committed) {
            self.committed = frontier;
            if self.first_local {
                self.dir.cleanup(&RestorePoint {
                    generation: self.generation,
                    frontier,
                    workers: self.peers,
                })?;
            }
        }
        Ok(())
    }
}
