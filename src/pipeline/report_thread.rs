//! The report thread: worker 0's [`ReportPrinter`] runs beside the worker, not on its path.
//!
//! Building each epoch's snapshot and formatting it costs about as much as the dataflow's own
//! work when epochs are small (event time replaying a file: ~100 messages an epoch). Worker 0
//! hands the thread what its inspectors gathered, and each frontier, through a bounded channel
//! (a printer that falls behind holds the worker back, not memory), in the order it saw them,
//! so the reports come out exactly as the printer on the worker's thread wrote them.
//!
//! The checkpoint rule stays: an epoch is printed (its report rendered) before the checkpoint
//! that covers it is committed. The thread publishes, after each frontier it has printed, that frontier and what
//! the printer had [`Printed`] then; worker 0 commits checkpoints and offsets only up to it.
//! With checkpoints, "printed" means written to the held buffer of `sink/held.rs`: stdout
//! sees a report only once worker 0 has committed the checkpoint that covers it.
//!
//! ```text
//!  worker 0: inspect ─> Collected ─┐                       report thread
//!            frontier ─────────────┴─ ToPrinter (channel) ──> ReportPrinter ─> stdout
//!            commit up to <──────────── Status { printed_before, printed } ─┘
//! ```

use std::cell::RefCell;
use std::io;
use std::mem;
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use hygroflow_dataflows::{Epoch, Stat, Transition};

use crate::checkpoint::Printed;
use crate::sink::held::Marks;

use super::printer::{Collected, Readers, ReportPrinter, Transitions};

/// Messages in flight to the thread before the worker waits for it.
const QUEUE: usize = 256;

/// What worker 0 tells the thread, in order.
enum ToPrinter {
    /// Updates and transitions gathered since the last message, and the frontier now
    /// (`None`: the dataflow is done, print the final report).
    Frontier {
        updates: Vec<(Stat, Epoch, isize)>,
        transitions: Vec<Transition>,
        frontier: Option<Epoch>,
    },
    /// The input ended with this epoch open.
    InputFinished(Epoch),
}

/// What the thread has done, as worker 0 reads it.
#[derive(Default)]
struct Status {
    /// Every epoch before this one is printed (`Epoch::MAX`: the final report too).
    printed_before: Epoch,
    /// What the printer had printed then.
    printed: Printed,
    /// Stdout was closed.
    gone: bool,
    /// Writing failed; the thread has stopped.
    error: Option<io::Error>,
}

/// Worker 0's handle on the report thread.
pub(crate) struct ReportThread {
    /// `None` once the final report has been asked for.
    tx: Option<SyncSender<ToPrinter>>,
    status: Arc<Mutex<Status>>,
    thread: Option<JoinHandle<()>>,
    /// What the dataflow's inspectors gather on this worker.
    collected: Collected,
    transitions: Transitions,
    /// The last frontier sent.
    sent: Option<Epoch>,
}

impl ReportThread {
    /// Starts the thread, which hands on what the dataflow's inspectors gather into
    /// `collected` and `transitions`; `make` builds its printer there, of what the given
    /// collections receive.
    /// With checkpoints, `marks` records the frontier of what it has written (`held.rs`).
    pub(crate) fn spawn(
        (collected, transitions): (Collected, Transitions),
        make: impl FnOnce(Collected, Transitions) -> ReportPrinter + Send + 'static,
        marks: Option<Marks>,
    ) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let status = Arc::new(Mutex::new(Status::default()));
        let shared = Arc::clone(&status);
        let thread = std::thread::Builder::new()
            .name("hygroflow-report".into())
            .spawn(move || serve(make, &rx, &shared, marks.as_ref()))?;
        Ok(ReportThread {
            tx: Some(tx),
            status,
            thread: Some(thread),
            collected,
            transitions,
            sent: None,
        })
    }

    /// The input has ended with `open` as its last epoch.
    pub(crate) fn input_finished(&mut self, open: Epoch) {
        self.send(ToPrinter::InputFinished(open));
    }

    /// Hands the thread what the frontier has made final (`None`: the dataflow is done; then
    /// waits until the final report is written). Returns whether anybody still reads the
    /// reports, or the error that stopped the thread.
    pub(crate) fn on_frontier(&mut self, frontier: Option<Epoch>) -> io::Result<Readers> {
        let updates = mem::take(&mut *self.collected.borrow_mut());
        let transitions = mem::take(&mut *self.transitions.borrow_mut());
        let moved = frontier != self.sent || frontier.is_none();
        if moved || !updates.is_empty() || !transitions.is_empty() {
            self.sent = frontier;
            self.send(ToPrinter::Frontier {
                updates,
                transitions,
                frontier,
            });
        }
        if frontier.is_none() {
            self.join();
        }
        let mut status = self.status();
        if let Some(error) = status.error.take() {
            return Err(error);
        }
        Ok(if status.gone {
            Readers::Gone
        } else {
            Readers::Reading
        })
    }

    /// The frontier before which every epoch is printed, and what the printer had printed
    /// then: how far checkpoints and offsets may be committed.
    pub(crate) fn printed(&self) -> (Epoch, Printed) {
        let status = self.status();
        (status.printed_before, status.printed.clone())
    }

    fn send(&mut self, message: ToPrinter) {
        let stopped = self.tx.as_ref().is_some_and(|tx| tx.send(message).is_err());
        if stopped {
            // The thread has stopped on an error, which `status` holds.
            self.tx = None;
        }
    }

    fn join(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                self.status().error = Some(io::Error::other("the report thread panicked"));
            }
        }
    }

    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ReportThread {
    /// A worker that stops early lets the thread print what it was handed, and waits for it.
    fn drop(&mut self) {
        self.join();
    }
}

/// The thread's loop: prints as told until the final report, the worker's end, or an error.
fn serve(
    make: impl FnOnce(Collected, Transitions) -> ReportPrinter,
    rx: &Receiver<ToPrinter>,
    status: &Mutex<Status>,
    marks: Option<&Marks>,
) {
    let collected = Collected::default();
    let transitions: Transitions = Rc::new(RefCell::new(Vec::new()));
    let mut printer = make(Rc::clone(&collected), Rc::clone(&transitions));
    let lock = || status.lock().unwrap_or_else(|e| e.into_inner());
    lock().printed = printer.printed(0);
    while let Ok(message) = rx.recv() {
        match message {
            ToPrinter::InputFinished(open) => printer.input_finished(open),
            ToPrinter::Frontier {
                updates,
                transitions: new,
                frontier,
            } => {
                take_into(&collected, updates);
                take_into(&transitions, new);
                let result = printer.on_frontier(frontier);
                if let (Ok(_), Some(marks)) = (&result, marks) {
                    marks.at(frontier.unwrap_or(Epoch::MAX));
                }
                let mut status = lock();
                match result {
                    Ok(readers) => {
                        status.gone |= readers == Readers::Gone;
                        status.printed_before = frontier.unwrap_or(Epoch::MAX);
                        status.printed = printer.printed(frontier.unwrap_or(Epoch::MAX));
                    }
                    Err(error) => {
                        status.error = Some(error);
                        return;
                    }
                }
                if frontier.is_none() {
                    return;
                }
            }
        }
    }
}

/// Appends `items` to `into`, without a copy when the printer has drained it (the usual case).
fn take_into<T>(into: &RefCell<Vec<T>>, mut items: Vec<T>) {
    let mut into = into.borrow_mut();
    if into.is_empty() {
        mem::swap(&mut *into, &mut items);
    } else {
        into.append(&mut items);
    }
}
