//! Sinks: where reports and rejected messages go.

pub mod alerts;
pub mod rejects;
pub mod report;
