//! Side counters: rejected, late and future messages.
//!
//! Input: `(Counter, i64)` updates, one per counter and epoch and worker.
//! Output: one `Stat::Count(counter, n)` per counter, cumulative.
//!
//! ```text
//! counters ─count_total─> Count
//! ```

use differential_dataflow::operators::CountTotal;
use differential_dataflow::VecCollection;

use crate::{Counters, Epoch, Stat};

/// Cumulative rejected, late and future counts.
pub fn counters(counters: Counters<'_>) -> VecCollection<'_, Epoch, Stat, isize> {
    counters
        .count_total()
        .map(|(counter, n)| Stat::Count(counter, n))
}
