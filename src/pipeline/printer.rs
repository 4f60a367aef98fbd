//! The report printer (worker 0): which epochs get a report, and printing them.
//!
//! Results gathered on worker 0 arrive as differential updates; an epoch is reported once the
//! probe's frontier has passed it. In processing time every epoch gets a report, data or not
//! (the Spark job printed every batch); in event time, the epochs that had updates. Epochs
//! before the first reported one (restored state, a worker that started before worker 0) are
//! folded into the first report. When the input has ended, the final report is the full state;
//! in event time a restarted run that reports no epoch of its own stamps it with the last epoch
//! reported before the restart, as that run's final report was (the wall clock's epoch would
//! show a window from which every reading has expired).
//!
//! A windowed run (`--window`) also has updates at epochs where readings only leave the
//! window, up to a window past the last data: those epochs get no report of their own. Its
//! reports are the epochs that received a message on some worker (`Counter::Received`) and, in
//! processing time, every epoch up to the one the input finished in; the final report is the
//! window ending at the last reported epoch, never the empty state after the last expiry.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::rc::Rc;

use hygroflow_dataflows::{Counter, Epoch, Results, Stat, Transition};
use tracing::warn;

use crate::checkpoint::Printed;
use crate::live::LiveFeed;
use crate::sink::alerts::{Active, AlertLog};
use crate::sink::report::Reporter;

/// Empty processing-time epochs reported after a stall before the rest are skipped.
const MAX_EMPTY_REPORTS: u64 = 10_000;

/// Result updates as the dataflow's inspector collects them for the printer.
pub(crate) type Collected = Rc<RefCell<Vec<(Stat, Epoch, isize)>>>;

/// Alert transitions as the dataflow's inspector collects them for the printer.
pub(crate) type Transitions = Rc<RefCell<Vec<Transition>>>;

/// Whether anybody still reads the reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readers {
    /// Reports are being written.
    Reading,
    /// Stdout was closed (`| head`): the run should stop, quietly.
    Gone,
}

/// Worker 0's report state.
pub(crate) struct ReportPrinter {
    results: Results,
    collected: Collected,
    reporter: Option<Reporter>,
    /// Processing time reports every epoch from here on, data or not.
    next_epoch: Option<Epoch>,
    /// No report for an earlier epoch: its updates join the first report.
    first_epoch: Epoch,
    last_reported: Option<Epoch>,
    /// The epoch the run started in: what the final report is stamped with if none came before
    /// (event time, after a restart: the last epoch reported before it).
    start_epoch: Epoch,
    /// After a restart: the last epoch reported before it.
    resumed: Option<Epoch>,
    /// Windowed: only epochs that received messages, or processing time's every epoch, are
    /// reported, not those where readings only left the window.
    windowed: bool,
    /// Windowed, processing time: the epoch the input finished in; no later epoch is reported
    /// for being an epoch.
    finished_at: Option<Epoch>,
    /// Alerts: the transitions collected, those not yet logged, and the log.
    alerts: Option<(Transitions, BTreeMap<Epoch, Vec<Transition>>, AlertLog)>,
    /// `--http`: where each report also goes.
    live: Option<LiveFeed>,
}

impl ReportPrinter {
    /// A printer of what `collected` receives, for a run that started in `start_epoch`.
    /// `every_epoch`: processing time, where every epoch from the start is reported; in event
    /// time epoch 0 holds restored state (and records without a time) and reports follow the
    /// data. `windowed`: the run reports over a `--window`.
    pub(crate) fn new(
        collected: Collected,
        reporter: Option<Reporter>,
        start_epoch: Epoch,
        (every_epoch, windowed): (bool, bool),
    ) -> Self {
        ReportPrinter {
            results: Results::default(),
            collected,
            reporter,
            next_epoch: every_epoch.then_some(start_epoch),
            first_epoch: if every_epoch { start_epoch } else { 1 },
            last_reported: None,
            start_epoch,
            resumed: None,
            windowed,
            finished_at: None,
            alerts: None,
            live: None,
        }
    }

    /// Goes on from a checkpoint taken after epoch `last` had been reported (`None`: none
    /// had). Processing time reports every epoch from the start all the same.
    pub(crate) fn resumed_after(mut self, last: Option<Epoch>) -> Self {
        self.resumed = last;
        if let (None, Some(last)) = (self.next_epoch, last) {
            self.start_epoch = last;
        }
        self
    }

    /// What a checkpoint committed now, at `frontier` (every epoch before it printed, none
    /// after), records of the printer: the alerts raised, the last epoch reported (by this
    /// run or, before its first report, the one it resumed), and where a restart reads the
    /// results and alerts topics back.
    pub(crate) fn printed(&self, frontier: Epoch) -> Printed {
        let log = self.alerts.as_ref().map(|(_, _, log)| log);
        Printed {
            alerts: self.active_alerts(),
            last_reported: self.last_reported.or(self.resumed),
            rules: log.and_then(AlertLog::rules_applied),
            undelivered: log.map(AlertLog::undelivered).unwrap_or_default(),
            results_from: self
                .reporter
                .as_ref()
                .and_then(|r| r.resume_offsets(frontier)),
            alerts_from: log.and_then(|log| log.resume_offsets(frontier)),
        }
    }

    /// Also logs the alert transitions `transitions` receives, before each epoch's report.
    pub(crate) fn with_alerts(mut self, transitions: Transitions, log: AlertLog) -> Self {
        self.alerts = Some((transitions, BTreeMap::new(), log));
        self
    }

    /// Also hands every report to the live page (`--http`).
    pub(crate) fn with_live(mut self, live: Option<LiveFeed>) -> Self {
        self.live = live;
        self
    }

    /// Hands the report of `epoch` to the live page, if there is one.
    fn show_live(&mut self, epoch: Epoch) {
        let Some(live) = &self.live else {
            return;
        };
        let (active, transitions) = match &mut self.alerts {
            Some((_, _, log)) => (
                log.active_transitions().cloned().collect(),
                log.take_transitions(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let log = self.alerts.as_ref().map(|(_, _, log)| log);
        let silenced = log
            .and_then(AlertLog::silences)
            .map(|s| s.lock().map(|s| s.clone()).unwrap_or_default())
            .unwrap_or_default();
        let maintenance = |device: &str| log.and_then(|log| log.maintenance_of(epoch, device));
        let notes = crate::live::Notes {
            maintenance: &maintenance,
            silenced,
            rules: log.and_then(AlertLog::alert_rules),
        };
        live.report(epoch, &self.results, (active, transitions), notes);
    }

    /// The raising line of every alert raised at the last printed epoch.
    pub(crate) fn active_alerts(&self) -> Vec<Transition> {
        self.alerts
            .as_ref()
            .map(|(_, _, log)| log.active_transitions().cloned().collect())
            .unwrap_or_default()
    }

    /// Logs the transitions of epochs up to `last` (`None`: all), sorted.
    fn log_alerts(&mut self, last: Option<Epoch>) -> io::Result<()> {
        let Some((collected, pending, log)) = &mut self.alerts else {
            return Ok(());
        };
        for t in collected.borrow_mut().drain(..) {
            pending.entry(t.epoch).or_default().push(t);
        }
        let later = match last {
            Some(last) => pending.split_off(&last.saturating_add(1)),
            None => BTreeMap::new(),
        };
        let mut due: Vec<Transition> = std::mem::replace(pending, later)
            .into_values()
            .flatten()
            .collect();
        due.sort();
        let stdout = self.reporter.as_mut().map(|r| r.out());
        log.record(&due, last, stdout)
    }

    /// The input has ended with `open` as its last epoch: nothing later gets a report of its
    /// own.
    pub(crate) fn input_finished(&mut self, open: Epoch) {
        self.next_epoch = self.next_epoch.map(|next| next.min(open));
        self.finished_at = Some(open);
    }

    /// Prints what the frontier has made final (`None`: the dataflow is done, print the final
    /// report). A closed stdout is not an error: printing stops and the caller is told.
    pub(crate) fn on_frontier(&mut self, frontier: Option<Epoch>) -> io::Result<Readers> {
        let printed = match frontier {
            Some(frontier) => self.print_ready(Some(frontier)),
            None => self.print_final(),
        };
        match printed {
            Ok(()) => Ok(Readers::Reading),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.reporter = None;
                Ok(Readers::Gone)
            }
            Err(e) => Err(e),
        }
    }

    /// Prints every epoch before `frontier` (`None`: everything is final).
    fn print_ready(&mut self, frontier: Option<Epoch>) -> io::Result<()> {
        self.results.absorb(self.collected.borrow_mut().drain(..));
        let mut epochs: BTreeSet<Epoch> = if self.windowed {
            let received = |stat: &Stat| matches!(stat, Stat::Count(Counter::Received, _));
            self.results.pending_epochs_of(frontier, received)
        } else {
            self.results.pending_epochs(frontier)
        };
        if let (Some(next), Some(mut frontier)) = (self.next_epoch, frontier) {
            if let (true, Some(last)) = (self.windowed, self.finished_at) {
                frontier = frontier.min(last + 1);
            }
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
                // Updates before the first reported epoch are folded into the next report.
                continue;
            }
            // Only `--changes` reads an epoch's changes; the other reports read the state.
            let changes = match &self.reporter {
                Some(reporter) if reporter.changes_only() => self.results.advance(epoch),
                _ => {
                    self.results.apply(epoch);
                    Vec::new()
                }
            };
            self.log_alerts(Some(epoch))?;
            if let Some(reporter) = &mut self.reporter {
                let active: Vec<&Active> = match &self.alerts {
                    Some((_, _, log)) => log.active().collect(),
                    None => Vec::new(),
                };
                reporter.epoch(epoch, (&self.results, &changes), &active)?;
            }
            self.show_live(epoch);
            self.last_reported = Some(epoch);
            if self.next_epoch.is_some() {
                self.next_epoch = Some(epoch + 1);
            }
        }
        // Transitions of epochs that got no report of their own are logged all the same.
        self.log_alerts(frontier.map(|f| f.saturating_sub(1)))?;
        if let Some((_, _, log)) = &mut self.alerts {
            log.flush_published()?;
        }
        Ok(())
    }

    /// After the input ended: the final report, which is always the full state.
    fn print_final(&mut self) -> io::Result<()> {
        self.print_ready(None)?;
        let last = self.last_reported.unwrap_or(self.start_epoch);
        let changes = self.results.advance(last);
        if let Some(reporter) = &mut self.reporter {
            if self.last_reported.is_none() || reporter.changes_only() || !changes.is_empty() {
                let active: Vec<&Active> = match &self.alerts {
                    Some((_, _, log)) => log.active().collect(),
                    None => Vec::new(),
                };
                reporter.full(last, &self.results, &active)?;
            }
            reporter.flush_published()?;
        }
        self.show_live(last);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use hygroflow_dataflows::{Counter, Stat};

    use super::*;
    use crate::config::ReportFormat;
    use crate::epoch::{EpochGrid, Window};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A JSON reporter into `out` of 1-second epochs and a 2-epoch window.
    fn two_epoch_window_json(out: &Shared) -> Reporter {
        let grid = EpochGrid::new(Duration::from_secs(1)).expect("grid");
        Reporter::new(
            Box::new(out.clone()),
            ReportFormat::Json,
            false,
            (grid, Window::Epochs(2)),
        )
    }

    #[test]
    fn gh_9_windows_report_no_epoch_where_readings_only_expire() {
        let out = Shared::default();
        let reporter = two_epoch_window_json(&out);
        let collected = Collected::default();
        // Processing time from epoch 5: data at 5 and 6, which expire at 7 and 8.
        let mut printer =
            ReportPrinter::new(Rc::clone(&collected), Some(reporter), 5, (true, true));
        collected.borrow_mut().extend([
            (Stat::TotalMessages(2), 5, 1),
            (Stat::Count(Counter::Received, 2), 5, 1),
            (Stat::TotalMessages(2), 6, -1),
            (Stat::TotalMessages(3), 6, 1),
            (Stat::Count(Counter::Received, 2), 6, -1),
            (Stat::Count(Counter::Received, 3), 6, 1),
            (Stat::TotalMessages(3), 7, -1),
            (Stat::TotalMessages(1), 7, 1),
            (Stat::TotalMessages(1), 8, -1),
        ]);
        printer.on_frontier(Some(6)).expect("prints");
        printer.input_finished(6);
        printer.on_frontier(Some(8)).expect("prints");
        printer.on_frontier(None).expect("prints");
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        let reports: Vec<(u64, i64)> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .map(|r| {
                (
                    r["epoch"].as_u64().expect("e"),
                    r["total_messages"].as_i64().expect("n"),
                )
            })
            .collect();
        // The final report is the window ending at epoch 6, not what is left after expiry.
        assert_eq!(reports, [(5, 2), (6, 3)]);
    }

    #[test]
    fn gh_9_a_restart_with_nothing_new_ends_with_the_last_reported_window_again() {
        let out = Shared::default();
        let reporter = two_epoch_window_json(&out);
        let collected = Collected::default();
        // Event time, restored from a checkpoint taken after epoch 10 was reported: readings
        // of epochs 9 and 10, fed back at time 0, leave the 2-epoch window at 11 and 12. The
        // wall clock is at epoch 500 and the input has nothing new.
        let mut printer =
            ReportPrinter::new(Rc::clone(&collected), Some(reporter), 500, (false, true))
                .resumed_after(Some(10));
        collected.borrow_mut().extend([
            (Stat::TotalMessages(5), 0, 1),
            (Stat::TotalMessages(5), 11, -1),
            (Stat::TotalMessages(2), 11, 1),
            (Stat::TotalMessages(2), 12, -1),
        ]);
        assert_eq!(printer.printed(0).last_reported, Some(10));
        printer.input_finished(0);
        printer.on_frontier(None).expect("prints");
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        let reports: Vec<(u64, i64)> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .map(|r| {
                (
                    r["epoch"].as_u64().expect("e"),
                    r["total_messages"].as_i64().expect("n"),
                )
            })
            .collect();
        assert_eq!(
            reports,
            [(10, 5)],
            "not the empty window at the wall clock's epoch"
        );
        assert_eq!(
            printer.printed(0).last_reported,
            Some(10),
            "kept for the next restart"
        );
    }
}
