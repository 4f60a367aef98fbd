//! (ii) Total messages processed.
//!
//! Input: sensor tallies `((device, guid), (sum_micro, count))`.
//! Output: one `Stat::TotalMessages(n)`, the number of valid readings so far.
//!
//! ```text
//! tallies ─map(())─> count_total ─map─> TotalMessages
//! ```

use differential_dataflow::operators::CountTotal;
use differential_dataflow::VecCollection;

use crate::{Epoch, Stat, Tallies};

/// The number of valid readings so far.
pub fn total_messages(tallies: Tallies<'_>) -> VecCollection<'_, Epoch, Stat, isize> {
    tallies
        .map(|_| ())
        .count_total()
        .map(|((), (_sum, count))| Stat::TotalMessages(count))
}
