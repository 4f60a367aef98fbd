//! hygroflow: real-time humidity analytics for the dataloggers beside hospital imaging
//! machines, on timely dataflow and differential dataflow.
//!
//! Data flows one way, and the modules follow it:
//!
//! ```text
//! bytes (file / generator)  -> source/    : raw messages, divided among workers
//!   -> message              : JSON -> Result<Reading, MessageError>
//!   -> epoch, tally         : which batch a record belongs to, summed per sensor
//!   -> analyses             : differential dataflows, no I/O (the `hygroflow-dataflows` crate)
//!   -> sink/                : stdout report, dead letters
//! ```
//!
//! `pipeline` is the one place where a worker's dataflow is assembled; `cli` and `config` turn
//! flags into the validated [`config::Config`] every worker runs with.

pub mod bench;
pub(crate) mod checkpoint;
pub mod cli;
pub(crate) mod cluster;
pub mod config;
pub mod epoch;
pub mod fleet;
pub mod kafka;
pub mod message;
pub mod pipeline;
pub(crate) mod sink;
pub(crate) mod source;
pub(crate) mod tally;
