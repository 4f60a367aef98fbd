//! Sinks: where reports and rejected messages go.

pub mod rejects;
pub mod report;
