//! Checkpoint coordination: worker 0 decides where a run resumes and when an epoch is
//! committed, and tells every worker over a small control stream; offsets follow commits.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Barrier;
use std::time::Duration;

use anyhow::anyhow;
use hygroflow_dataflows::Epoch;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::{Broadcast, Input as _};
use timely::dataflow::operators::Inspect;
use timely::worker::Worker;

use crate::checkpoint::{RestorePoint, StateDir};
use crate::source::Source;

use super::intake::Intake;

/// Checkpointing shared by the workers of a process.
pub(super) struct Checkpoints {
    pub(super) dir: StateDir,
    /// Process 0's `COMMITTED` marker, read at start (other processes have none).
    pub(super) marker: Option<RestorePoint>,
    /// Lets the first local worker prepare the new generation before the others write to it.
    pub(super) barrier: Barrier,
}

/// Messages from worker 0 to every worker about checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Control {
    /// The run's generation, and the state to resume from (process 0's marker).
    Start {
        generation: u64,
        restore: Option<RestorePoint>,
    },
    /// Process 0 has durably committed every epoch before `frontier`.
    Committed { frontier: Epoch },
}

/// A worker's end of the control stream.
pub(super) struct ControlLink {
    /// Open on worker 0 only.
    pub(super) input: Option<timely::dataflow::InputHandleVec<u64, Control>>,
    pub(super) seen: Rc<RefCell<Vec<Control>>>,
    pub(super) generation: u64,
    /// The latest frontier process 0 has committed, as heard here.
    pub(super) committed: Epoch,
}

/// Starts the control stream: worker 0 announces the run's generation and where to resume
/// (its process's `COMMITTED` marker), and every worker waits to hear it. The first worker of
/// each process then prepares the new generation's directory.
pub(super) fn start_control(
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
    pub(super) fn absorb(
        &mut self,
        dir: &StateDir,
        first_local: bool,
        peers: usize,
    ) -> anyhow::Result<()> {
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
pub(super) fn commit_complete(
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
