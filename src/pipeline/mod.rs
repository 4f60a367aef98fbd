//! The one wiring point: each worker's dataflow, its source, and the loop that drives them.
//!
//! ```text
//!  Source ─poll─> RawRecord ─parse─┬─ok──> tallies ─(epoch closes)─> device sums,  ─┐
//!                                  │                                 new sensors    │
//!                                  └─err─> dead letters + Rejected counter ─────────┤
//!                                                  analyses (dataflows/) <──────────┘
//!                                                       │ gather to worker 0
//!                                                       └─> Results ─> ReportPrinter
//! ```
//!
//! - [`job`]: what a process builds once from the validated config: the feed of records,
//!   checkpointing, stdout; each worker asks it for its source, dead letters and reporter.
//! - [`worker`]: a worker's loop, poll -> ingest -> step -> on_frontier.
//! - [`writer`]: the epoch writer, the one owner of the open epoch, the tallies, the dead
//!   letters and the offsets waiting to commit.
//! - [`checkpointer`]: `--state-dir`: the worker's checkpoints, the control stream from worker
//!   0, and the order "checkpoint written -> epoch complete everywhere -> marker -> offsets
//!   committed".
//! - [`printer`]: worker 0's reports, as epochs complete.
//! - [`report_thread`]: the thread beside worker 0 where its printer runs.
//! - [`reload`]: the rules in force, and those SIGHUP loads while running.
//! - [`stop`]: in a cluster, a signal to any process stops every process.

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::anyhow;

use crate::config::Config;

mod checkpointer;
mod job;
#[cfg(test)]
mod memory;
mod printer;
pub(crate) mod reload;
mod report_thread;
mod stop;
#[cfg(test)]
mod tests;
mod window;
mod worker;
mod writer;

use job::Job;
use worker::WorkerLoop;

/// How a run ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Reports stopped because stdout was closed (a closed pipe is not an error).
    pub pipe_closed: bool,
}

/// Runs the job until its input ends or `shutdown` is set; reports go to `out`.
pub fn run(
    config: Config,
    out: Box<dyn Write + Send>,
    shutdown: Arc<AtomicBool>,
) -> anyhow::Result<Outcome> {
    run_job(Job::new(config, out, shutdown)?)
}

/// Starts the workers of `job` (timely threads, and the cluster's network) and waits for them.
fn run_job(job: Job) -> anyhow::Result<Outcome> {
    let (allocators, network) = crate::cluster::allocators(&job.config)?;
    let job = Arc::new(job);
    let shared = Arc::clone(&job);
    let guards = timely::execute::execute_from(
        allocators,
        network,
        timely::WorkerConfig::default(),
        move |worker| {
            let result = WorkerLoop::build(worker, &shared).and_then(WorkerLoop::run);
            if result.is_err() {
                // One worker failing stops the others instead of leaving them waiting.
                shared.fail();
            }
            result
        },
    )
    .map_err(|e| anyhow!("cannot start workers: {e}"))?;
    let mut outcome = Outcome::default();
    let mut first_error: Option<anyhow::Error> = None;
    for result in guards.join() {
        let error = match result {
            Ok(Ok(o)) => {
                outcome.pipe_closed |= o.pipe_closed;
                continue;
            }
            Ok(Err(e)) => e,
            Err(panic) => anyhow!("a worker failed: {panic}"),
        };
        // The cause, not a worker that stopped because of it, whatever their order.
        let echo = |e: &anyhow::Error| e.is::<worker::AnotherWorkerFailed>();
        if first_error
            .as_ref()
            .is_none_or(|first| echo(first) && !echo(&error))
        {
            first_error = Some(error);
        }
    }
    job.join_reader();
    match first_error {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}
