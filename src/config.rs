//! Configuration: the validated settings every worker runs with.
//!
//! Flags are parsed by clap in `cli.rs`; this module checks them and builds a [`Config`],
//! so a bad flag fails before any worker starts, with a message saying what to fix.

use std::path::PathBuf;

use crate::epoch::{EpochGrid, TimeMode};
use crate::kafka::ClientSettings;

/// Where readings come from, with the options that only make sense for that input.
#[derive(Clone, Debug)]
pub enum Input {
    /// The built-in simulated fleet, streaming until stopped.
    Demo {
        /// Messages per second over all workers.
        rate: u64,
        /// Sensors in the fleet.
        sensors: usize,
        /// Seed of the fleet and of the readings.
        seed: u64,
    },
    /// JSON lines from a file or stdin.
    File {
        /// The file; `None` for stdin.
        path: Option<PathBuf>,
        /// Dead-letter file for rejected lines (`--rejects`).
        rejects: Option<PathBuf>,
    },
    /// A Kafka topic.
    Kafka(KafkaInput),
}

impl Input {
    /// A short name for logs and rejected messages (a topic, a file name, `stdin`, `demo`).
    pub fn name(&self) -> String {
        match self {
            Input::Demo { .. } => "demo".to_owned(),
            Input::File {
                path: Some(path), ..
            } => path.display().to_string(),
            Input::File { path: None, .. } => "stdin".to_owned(),
            Input::Kafka(k) => k.topic.clone(),
        }
    }
}

/// Settings of the Kafka input.
#[derive(Clone, Debug)]
pub struct KafkaInput {
    /// The client settings (brokers, `-X` properties).
    pub client: ClientSettings,
    /// The topic.
    pub topic: String,
    /// Consumer group for committed offsets.
    pub group: String,
    /// Stop at the end offsets seen at start.
    pub until_end: bool,
    /// Dead-letter topic for rejected messages (`--dlq-topic`, default `<topic>.dlq`).
    pub dlq_topic: String,
    /// Directory for checkpoints (`--state-dir`).
    pub state_dir: Option<PathBuf>,
}

impl KafkaInput {
    /// The name checkpoints record, so a state directory is never used for another topic.
    pub fn checkpoint_name(&self) -> String {
        format!("kafka:{}", self.topic)
    }
}

/// How reports are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// The Spark job's layout: a `Time:` header and the four analyses.
    Text,
    /// One JSON object per epoch, on one line.
    Json,
}

/// Where reports are published besides stdout.
#[derive(Clone, Debug)]
pub struct ResultsTopic {
    /// Brokers and `-X` properties.
    pub client: ClientSettings,
    /// The topic.
    pub topic: String,
}

/// How the workers are laid out: timely's threads and processes.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// Worker threads per process.
    pub workers: usize,
    /// Number of processes.
    pub processes: usize,
    /// This process's index.
    pub process: usize,
    /// `host:port` of every process (empty for one process).
    pub addresses: Vec<String>,
}

impl Cluster {
    /// Workers in the whole computation.
    pub fn peers(&self) -> usize {
        self.workers * self.processes
    }

    /// Global indices of this process's workers.
    pub fn local_workers(&self) -> std::ops::Range<usize> {
        let first = self.process * self.workers;
        first..first + self.workers
    }

    /// timely's communication for one process (`cluster.rs` connects several itself).
    pub fn single_process(&self) -> timely::CommunicationConfig {
        if self.workers > 1 {
            timely::CommunicationConfig::Process(self.workers)
        } else {
            timely::CommunicationConfig::Thread
        }
    }
}

/// Everything a run needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where readings come from.
    pub input: Input,
    /// The epoch grid (`--epoch`).
    pub grid: EpochGrid,
    /// Which clock assigns epochs (`--time`).
    pub time: TimeMode,
    /// Workers and processes.
    pub cluster: Cluster,
    /// Report format.
    pub format: ReportFormat,
    /// Print only what changed each epoch.
    pub changes: bool,
    /// Messages larger than this are rejected.
    pub max_message_bytes: usize,
    /// Topic that receives every report.
    pub results: Option<ResultsTopic>,
    /// How long cluster processes wait for each other at start.
    pub connect_timeout: std::time::Duration,
    /// Event time: after this long without input a worker follows the wall clock.
    pub idle_timeout: std::time::Duration,
}

/// A flag or setting that cannot work, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--epoch` is not a usable duration.
    #[error("--epoch {0:?}: expected a duration of at least 1ms, such as 3s, 500ms or 1m")]
    Epoch(String),
    /// A duration flag does not parse.
    #[error("{0} {1:?}: expected a duration such as 60s or 2m")]
    Duration(&'static str, String),
    /// A count that must be positive is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// `--process` is outside `--processes`.
    #[error("--process {process} is out of range: with --processes {processes} it must be below {processes}")]
    Process {
        /// The index given.
        process: usize,
        /// The number of processes.
        processes: usize,
    },
    /// The hostfile cannot be read.
    #[error("cannot read hostfile {path}: {error}")]
    Hostfile {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The hostfile has too few addresses.
    #[error("hostfile {path} lists {found} addresses but --processes is {processes}: give one host:port per line, line i for process i")]
    TooFewHosts {
        /// The file.
        path: PathBuf,
        /// Addresses found.
        found: usize,
        /// Processes asked for.
        processes: usize,
    },
    /// The input file cannot be opened.
    #[error("cannot read input {path}: {error}")]
    Input {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Flags that only make sense together are missing their partner.
    #[error("{0}")]
    Combination(&'static str),
    /// `--bad-fraction` is not a fraction.
    #[error("--bad-fraction {0} must be between 0 and 1")]
    BadFraction(f64),
}

/// Parses `--epoch` (`3s`, `500ms`, `1m`).
pub fn parse_epoch(text: &str) -> Result<EpochGrid, ConfigError> {
    humantime::parse_duration(text)
        .ok()
        .and_then(EpochGrid::new)
        .ok_or_else(|| ConfigError::Epoch(text.to_owned()))
}

/// The processes' addresses: from the hostfile, or `localhost:2101+i` as timely does.
pub fn addresses(processes: usize, hostfile: Option<&PathBuf>) -> Result<Vec<String>, ConfigError> {
    if processes <= 1 {
        return Ok(Vec::new());
    }
    let Some(path) = hostfile else {
        return Ok((0..processes)
            .map(|i| format!("localhost:{}", 2101 + i))
            .collect());
    };
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Hostfile {
        path: path.clone(),
        error,
    })?;
    let found: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(processes)
        .map(String::from)
        .collect();
    if found.len() < processes {
        return Err(ConfigError::TooFewHosts {
            path: path.clone(),
            found: found.len(),
            processes,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn epochs_parse_as_durations() {
        assert_eq!(parse_epoch("3s").expect("3s").len(), Duration::from_secs(3));
        assert_eq!(
            parse_epoch("250ms").expect("250ms").len(),
            Duration::from_millis(250)
        );
        let e = parse_epoch("0s").expect_err("zero");
        assert!(e.to_string().contains("at least 1ms"), "{e}");
        assert!(parse_epoch("three").is_err());
    }

    #[test]
    fn hostfile_needs_a_line_per_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hosts");
        std::fs::write(&path, "127.0.0.1:2201\n\n127.0.0.1:2202\n127.0.0.1:2203\n").expect("write");
        assert_eq!(
            addresses(2, Some(&path)).expect("two"),
            vec!["127.0.0.1:2201", "127.0.0.1:2202"]
        );
        let e = addresses(4, Some(&path)).expect_err("too few");
        assert!(e.to_string().contains("lists 3 addresses"), "{e}");
        assert_eq!(
            addresses(2, None).expect("default"),
            vec!["localhost:2101", "localhost:2102"]
        );
    }

    #[test]
    fn local_workers_are_a_contiguous_range() {
        let c = Cluster {
            workers: 3,
            processes: 2,
            process: 1,
            addresses: vec![],
        };
        assert_eq!(c.peers(), 6);
        assert_eq!(c.local_workers(), 3..6);
    }
}
