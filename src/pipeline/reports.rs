//! Worker 0's reports: which epochs are ready to print, and printing them.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use hygroflow_dataflows::{Epoch, Results, Stat};
use tracing::warn;

use crate::sink::report::Reporter;

/// Empty processing-time epochs reported after a stall before the rest are skipped.
const MAX_EMPTY_REPORTS: u64 = 10_000;

/// Worker 0's report state.
pub(super) struct Reports {
    pub(super) results: Results,
    pub(super) collected: Rc<RefCell<Vec<(Stat, Epoch, isize)>>>,
    pub(super) reporter: Option<Reporter>,
    /// Processing time reports every epoch from here on, data or not.
    pub(super) next_epoch: Option<Epoch>,
    /// No report for an earlier epoch: its updates join the first report.
    pub(super) first_epoch: Epoch,
    pub(super) last_reported: Option<Epoch>,
}

impl Reports {
    /// Prints every epoch before `frontier` (`None`: everything is final).
    pub(super) fn print_ready(&mut self, frontier: Option<Epoch>) -> std::io::Result<()> {
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
    pub(super) fn print_final(&mut self, open: Epoch) -> std::io::Result<()> {
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
