//! Stopping a cluster together: a signal to any process stops every process.
//!
//! Each worker holds an input to a small broadcast dataflow. The first time a worker sees its
//! process stopping (SIGINT, SIGTERM, a closed stdout), it says so on that stream; every worker
//! that hears it stops its own process. Each process then ends its input as on a local signal,
//! and process 0 prints the final report once the whole cluster's frontier is done.

use std::cell::Cell;
use std::rc::Rc;

use timely::dataflow::operators::vec::{Broadcast, Input as _};
use timely::dataflow::operators::Inspect;
use timely::dataflow::InputHandleVec;
use timely::worker::Worker;

use super::job::Job;

/// One worker's end of the cluster's stop stream.
pub(crate) struct StopLink {
    /// Dropped (closed) once this worker has said it is stopping.
    input: Option<InputHandleVec<u64, ()>>,
    heard: Rc<Cell<bool>>,
}

impl StopLink {
    /// Builds the stop stream in `worker`.
    pub(crate) fn new(worker: &mut Worker) -> Self {
        let heard = Rc::new(Cell::new(false));
        let sink = Rc::clone(&heard);
        let input = worker.dataflow::<u64, _, _>(|scope| {
            let (input, stream) = scope.new_input::<()>();
            stream.broadcast().inspect(move |_| sink.set(true));
            input
        });
        StopLink {
            input: Some(input),
            heard,
        }
    }

    /// Tells the cluster when this process stops, and stops this process when another did.
    pub(crate) fn exchange(&mut self, job: &Job) {
        if self.heard.get() && !job.stopped() {
            job.stop();
        }
        if job.stopped() {
            if let Some(mut input) = self.input.take() {
                input.send(());
                input.flush();
            }
        }
    }

    /// The worker's input has ended: nothing more will be said (the stream can complete).
    pub(crate) fn close(&mut self) {
        self.input = None;
    }
}
