//! Alerts: humidity bands, rate of change and silent sensors, as a log of transitions.
//!
//! Input: the *feed*, one [`Observation`] per device, sensor and epoch from each worker (and,
//! at a restart, what the checkpoint remembers). Output: every [`Transition`] (an alert raised
//! or resolved), stamped with its epoch, on the worker that handles its device.
//!
//! ```text
//!  feed ──┬─ Readings, Seen, restored state ── exchange by device ──┐
//!         └─ Received (reported epochs) ──────── broadcast ─────────┴─> AlertStates ─> transitions
//! ```
//!
//! Alerts are state machines over time, not a function of one epoch's collection, so they are
//! one custom operator ("AlertStates") rather than differential's `reduce`, which would
//! recompute each device's hour of history at every epoch. It is incremental all the same:
//! each epoch's observations are applied once, when the input frontier shows the epoch
//! complete, in epoch order, to state that follows devices and sensors: per device its window
//! of per-epoch sums, the running max and min of its values over the hour, and its raised
//! alerts; per sensor the epoch of its last reading. Every worker knows which epochs were
//! reported (alerts are evaluated only there), so the log is the same at any worker count.
//! The exact definitions are in the README ("Alerts").

mod device;
mod engine;
mod silence;
pub mod types;

use std::collections::BTreeMap;

use differential_dataflow::hashable::Hashable;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::broadcast::Broadcast;
use timely::dataflow::operators::vec::partition::Partition;
use timely::dataflow::operators::{Capability, Concat, Exchange};
use timely::dataflow::StreamVec;

pub use types::{
    AlertKind, AlertRules, AlertState, DeviceRule, Limit, Observation, Ratio, Reason, RuleBook,
    Transition,
};

use crate::{Epoch, Feed};

/// Hash maps of the alert state: local to a worker, so a fast, randomly seeded hasher.
type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use engine::{AlertEngine, EpochBatch};

/// Builds the alerts over `feed` with `rules`: each worker's transitions, stamped with their
/// epoch.
pub fn alerts<'scope>(
    feed: Feed<'scope>,
    rules: AlertRules,
) -> StreamVec<'scope, Epoch, Transition> {
    // One pass splits the feed (no copy of it): observations of a device go to its worker,
    // the reported epochs to every worker.
    let peers = feed.inner.scope().peers();
    let mut parts = feed.inner.partition(2, |update| {
        let part = u64::from(update.0.device().is_none());
        (part, update)
    });
    let everywhere = parts.pop().expect("two parts").broadcast();
    let by_device = parts
        .pop()
        .expect("two parts")
        .exchange(|(observation, _, _)| observation.device().unwrap_or_default().hashed());
    by_device
        .concat(everywhere)
        .unary_frontier(Pipeline, "AlertStates", move |_, _| {
            let mut engine = AlertEngine::new(rules, peers);
            let mut stash = BTreeMap::new();
            // Runs of reported epochs that no observation of their own stands for: keyed by
            // the next epoch to evaluate, with a capability from the run's start and its end.
            let mut runs: BTreeMap<Epoch, (Capability<Epoch>, Epoch)> = BTreeMap::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    for (observation, time, diff) in data.drain(..) {
                        if AlertEngine::is_restore(&observation) {
                            engine.restore(observation);
                            continue;
                        }
                        let (_, batch): &mut (_, EpochBatch) = stash
                            .entry(time)
                            .or_insert_with(|| (cap.delayed(&time, 0), EpochBatch::default()));
                        batch.add(observation, diff);
                    }
                });
                // The next epoch is the earlier of the next batch and the next epoch of a run.
                loop {
                    let next_batch = stash.keys().next().copied();
                    let next_run = runs.keys().next().copied();
                    let Some(epoch) = next_batch.into_iter().chain(next_run).min() else {
                        break;
                    };
                    if frontier.less_equal(&epoch) {
                        break;
                    }
                    let (cap, mut batch) = match stash.remove(&epoch) {
                        Some(found) => found,
                        None => {
                            let (run_cap, _) = &runs[&epoch];
                            (run_cap.delayed(&epoch), EpochBatch::default())
                        }
                    };
                    if let Some((run_cap, through)) = runs.remove(&epoch) {
                        batch.reported = true;
                        if epoch < through {
                            go_on(&mut runs, epoch + 1, through, &run_cap);
                        }
                    }
                    if let Some(through) = batch.reported_through.take().filter(|t| *t > epoch) {
                        go_on(&mut runs, epoch + 1, through, &cap);
                    }
                    let transitions = engine.epoch(epoch, batch);
                    if !transitions.is_empty() {
                        output.session(&cap).give_iterator(transitions.into_iter());
                    }
                }
            }
        })
}

/// A run of reported epochs goes on at `next` up to `through` (merged with one that is
/// already there).
fn go_on(
    runs: &mut BTreeMap<Epoch, (Capability<Epoch>, Epoch)>,
    next: Epoch,
    through: Epoch,
    cap: &Capability<Epoch>,
) {
    let (_, until) = runs
        .entry(next)
        .or_insert_with(|| (cap.delayed(&next), through));
    *until = through.max(*until);
}
