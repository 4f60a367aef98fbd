//! (ii) Total messages processed, and the side counters: rejected, late and future messages.
//!
//! Input: `(Counter, i64)` updates, one per counter and epoch and worker.
//! Output: `Stat::TotalMessages(n)` for `Counter::Valid`, the number of valid readings so far,
//! and one `Stat::Count(counter, n)` per other counter, cumulative.
//!
//! ```text
//! counters ─count_total─> TotalMessages, Count
//! ```
//!
//! The total of valid readings is a counter rather than a sum over the device sums: each worker
//! counts its epoch's readings once, so the total's arrangement takes one update per worker and
//! epoch instead of one per device.

use differential_dataflow::operators::CountTotal;
use differential_dataflow::VecCollection;

use crate::{Counter, Counters, Epoch, Stat};

/// The total of valid readings and the cumulative rejected, late and future counts.
pub fn counters(counters: Counters<'_>) -> VecCollection<'_, Epoch, Stat, isize> {
    counters.count_total().map(|(counter, n)| match counter {
        Counter::Valid => Stat::TotalMessages(n),
        counter => Stat::Count(counter, n),
    })
}
