//! hygroflow: real-time humidity analytics for the dataloggers beside hospital imaging
//! machines, on timely dataflow and differential dataflow.
//!
//! Data flows one way, and the modules follow it:
//!
//! ```text
//! bytes (Kafka / file / generator) -> source/ : raw messages, divided among workers
//!   -> message              : JSON -> Result<Reading, MessageError>
//!   -> epoch, tally         : which batch a record belongs to, summed per device and sensor
//!   -> analyses             : differential dataflows, no I/O (the `hygroflow-dataflows` crate)
//!   -> sink/                : stdout report, dead letters, results topic
//! ```
//!
//! `cli` turns flags into the validated [`config::Config`] (`flags` parses each value against
//! its documented range); `pipeline` builds a job from it
//! once per process and runs each worker's loop (poll -> ingest -> step -> on_frontier), with
//! one owner per concern: the epoch writer, the checkpointer (`checkpoint` holds its files),
//! the report printer. `kafka` holds the Kafka plumbing and the `produce` and `topic` tools.
//! `rules` holds the humidity rules (bands, rates, windows, silences) and `hygroflow rules`.
//! `escape` is how text from the input is printed: control and bidirectional characters escaped.
//! `fuzzing` holds the entry points of the fuzz targets (`fuzz/`), not an API.

pub mod bench;
pub(crate) mod checkpoint;
pub mod cli;
pub(crate) mod cluster;
pub mod config;
pub mod epoch;
pub mod escape;
pub mod fault;
pub mod flags;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod kafka;
pub mod live;
pub mod message;
pub mod notify;
pub mod pipeline;
pub mod rules;
pub(crate) mod sink;
pub mod small_file;
pub(crate) mod source;
pub(crate) mod tally;
pub mod watermark;
