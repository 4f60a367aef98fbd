//! The demo source: the simulated fleet streaming at a steady rate, until stopped.
//!
//! Every worker generates its own share (`rate / peers` messages a second) from its own
//! random stream, stamped with the current time, through the same parsing path as real input.
//! The shares interleave in the fleet's rotation, so together the workers have every sensor
//! report once per cycle; the scenarios' plan is the process's, timed from the run's start.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::{Deliver, Origin, Poll, PollError, RawRecord, Source};
use crate::fleet::scenario::Plan;
use crate::fleet::{Fleet, Generator};

/// Generates fleet readings at a fixed rate.
pub struct GeneratorSource {
    generator: Generator,
    per_second: f64,
    started: Instant,
    sent: u64,
    line: Vec<u8>,
    stopped: bool,
}

impl GeneratorSource {
    /// Worker `index` of `peers`, for a fleet streaming `rate` messages a second in total,
    /// with `plan`'s scenarios.
    pub fn new(fleet: Fleet, plan: Plan, seed: u64, rate: u64, index: usize, peers: usize) -> Self {
        GeneratorSource {
            generator: Generator::new(fleet, seed.wrapping_add(index as u64), 0.0)
                .with_plan(plan)
                .with_share(index, peers),
            per_second: rate as f64 / peers.max(1) as f64,
            started: Instant::now(),
            sent: 0,
            line: Vec::with_capacity(512),
            stopped: false,
        }
    }
}

impl Source for GeneratorSource {
    fn poll(&mut self, budget: usize, deliver: &mut Deliver<'_>) -> Result<Poll, PollError> {
        if self.stopped {
            return Ok(Poll::Finished);
        }
        let due = (self.started.elapsed().as_secs_f64() * self.per_second) as u64;
        let n = due.saturating_sub(self.sent).min(budget as u64);
        if n == 0 {
            return Ok(Poll::Idle);
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for _ in 0..n {
            self.line.clear();
            self.sent += 1;
            if !self.generator.write_line(now_ms, &mut self.line) {
                // Every sensor of this worker's share is silenced: its slot goes to no line.
                continue;
            }
            deliver(RawRecord {
                bytes: &self.line,
                len: self.line.len(),
                origin: Origin::Generated(self.sent),
            })
            .map_err(PollError::Deliver)?;
        }
        Ok(Poll::Busy)
    }

    fn stop(&mut self) {
        self.stopped = true;
    }
}
