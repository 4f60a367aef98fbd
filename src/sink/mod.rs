//! Sinks: where reports and rejected messages go.

pub mod alerts;
pub(crate) mod held;
pub mod rejects;
pub mod report;
