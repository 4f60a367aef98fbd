//! Configuration: the validated settings every worker runs with.
//!
//! Flags are parsed by clap in `cli.rs`; this module checks them and builds a [`Config`],
//! so a bad flag fails before any worker starts, with a message saying what to fix.

use std::path::PathBuf;

use crate::epoch::{EpochGrid, TimeMode, Window};
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
        /// Trouble to inject (`--scenario`).
        scenarios: crate::fleet::scenario::Scenarios,
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

/// Where `--http` serves the live page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpAt {
    /// The address to listen on.
    pub addr: std::net::SocketAddr,
    /// The demo's default: another port when this one is taken.
    pub fallback: bool,
}

/// Where reports are published besides stdout.
#[derive(Clone, Debug)]
pub struct ResultsTopic {
    /// Brokers and `-X` properties.
    pub client: ClientSettings,
    /// The topic.
    pub topic: String,
}

/// Where the alert log goes (`--alerts FILE|-`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertsOut {
    /// Stdout: an epoch's alert lines come before its report.
    Stdout,
    /// A file, created or truncated at start.
    File(PathBuf),
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
    /// What each report covers (`--window`).
    pub window: Window,
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
    /// Event time: how far behind its partition's newest a reading may be and still join
    /// its own epoch (`--allowed-lateness`).
    pub allowed_lateness: std::time::Duration,
    /// Event time: readings stamped further ahead of the wall clock are not believed.
    pub max_clock_skew: std::time::Duration,
    /// The humidity rules; `None` (`--rules none`): alerts are off.
    pub rules: Option<crate::rules::Rules>,
    /// The rules file, which SIGHUP reads again; `None` for the built-in rules or none.
    pub rules_file: Option<std::path::PathBuf>,
    /// Where the alert log goes (`--alerts`).
    pub alerts: Option<AlertsOut>,
    /// Kafka topic every alert transition is published to (`--alerts-topic`).
    pub alerts_topic: Option<ResultsTopic>,
    /// Where alerts are notified (`--alertmanager`), from process 0.
    pub alertmanager: Option<crate::notify::Settings>,
    /// The live page and metrics (`--http`), served by process 0.
    pub http: Option<HttpAt>,
}

impl Config {
    /// How long a stop (SIGINT, SIGTERM) may take before the process exits regardless: the
    /// final report and checkpoint normally come well within it. Kafka allows for flushing
    /// dead letters and reports to the brokers.
    pub fn stop_bound(&self) -> std::time::Duration {
        match self.input {
            Input::Kafka(_) => std::time::Duration::from_secs(10),
            _ if self.results.is_some() => std::time::Duration::from_secs(10),
            _ => std::time::Duration::from_secs(2),
        }
    }
}

/// A flag or setting that cannot work, and what to do about it.
///
/// Most are flag errors: a value or a combination of flags that no environment could make
/// work, reported with exit code 2 like clap's own usage errors. The rest are about the
/// environment the flags name (a file that cannot be read): exit code 1. See
/// [`ConfigError::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--epoch` is not a usable epoch length.
    #[error("--epoch {0}: expected a duration of at least 1ms, such as 3s, 500ms or 1m")]
    Epoch(String),
    /// `--window` is not a whole multiple of `--epoch`.
    #[error("--window {window} is not a whole multiple of --epoch {epoch}: use cumulative, {epoch} or a multiple of it")]
    Window {
        /// The window given.
        window: String,
        /// The epoch length.
        epoch: String,
    },
    /// `--process` is outside `--processes`.
    #[error("--process {process} is out of range: with --processes {processes} it must be below {processes}")]
    Process {
        /// The index given.
        process: usize,
        /// The number of processes.
        processes: usize,
    },
    /// Flags that only make sense together are missing their partner, or exclude each other.
    #[error("{0}")]
    Combination(&'static str),
    /// `--alertmanager` is not a URL of an Alertmanager. The value is not repeated: it may
    /// carry a password.
    #[error("invalid value for '--alertmanager' (number {index}; the value is not repeated, it may hold a password): {reason}")]
    Alertmanager {
        /// Which `--alertmanager`, from 1.
        index: usize,
        /// What is wrong, without the URL's credentials.
        reason: String,
    },
    /// A flag of the simulated fleet given with another input, where it would be ignored.
    #[error("{0} is for the simulated fleet only: leave it out with --input or --topic")]
    DemoOnly(&'static str),
    /// Two topics the job uses are the same: it would read what it writes, or mix reports
    /// with dead letters.
    #[error("{flag} {topic} is also {other}: give each its own topic")]
    SameTopic {
        /// The flag that names the topic.
        flag: &'static str,
        /// The topic.
        topic: String,
        /// The other use of it.
        other: &'static str,
    },
    /// `generate` would stamp lines past the year 9999, which RFC 3339 cannot write.
    #[error("--count {count} lines --interval-ms {interval_ms} apart would run past the year 9999: lower --count or --interval-ms")]
    Timeline {
        /// Lines asked for.
        count: u64,
        /// Milliseconds between lines.
        interval_ms: f64,
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
    /// A rules file that cannot be read (exit code 1) or holds a mistake (exit code 2).
    #[error(transparent)]
    Rules(Box<crate::rules::RulesError>),
}

impl From<crate::rules::RulesError> for ConfigError {
    fn from(e: crate::rules::RulesError) -> Self {
        ConfigError::Rules(Box::new(e))
    }
}

impl ConfigError {
    /// The process's exit code for this error: 2 for a flag error (a value out of range, flags
    /// that do not go together), 1 for the environment (a file that cannot be read or holds
    /// too little).
    pub fn exit_code(&self) -> u8 {
        match self {
            ConfigError::Epoch(_)
            | ConfigError::Window { .. }
            | ConfigError::Process { .. }
            | ConfigError::Combination(_)
            | ConfigError::Alertmanager { .. }
            | ConfigError::DemoOnly(_)
            | ConfigError::SameTopic { .. }
            | ConfigError::Timeline { .. } => 2,
            ConfigError::Hostfile { .. } | ConfigError::TooFewHosts { .. } => 1,
            ConfigError::Rules(e) => e.exit_code(),
        }
    }
}

/// Refuses a topic used twice: results or dead letters written to the input topic come back
/// as rejected messages every epoch, and reports mixed with dead letters are neither.
pub fn check_topics(
    input: Option<&str>,
    dead_letters: Option<&str>,
    results: Option<&str>,
) -> Result<(), ConfigError> {
    const INPUT: &str = "the input topic (-t)";
    const DEAD_LETTERS: &str = "the dead-letter topic (--dlq-topic, default <topic>.dlq)";
    let same = |flag, topic: &str, other| {
        Err(ConfigError::SameTopic {
            flag,
            topic: topic.to_owned(),
            other,
        })
    };
    match (input, dead_letters, results) {
        (Some(i), Some(d), _) if d == i => same("--dlq-topic", d, INPUT),
        (Some(i), _, Some(r)) if r == i => same("--results-topic", r, INPUT),
        (_, Some(d), Some(r)) if r == d => same("--results-topic", r, DEAD_LETTERS),
        _ => Ok(()),
    }
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
    let limit = crate::small_file::SMALL_FILE_LIMIT;
    let bytes =
        crate::small_file::read_small(path, limit).map_err(|error| ConfigError::Hostfile {
            path: path.clone(),
            error,
        })?;
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::Hostfile {
        path: path.clone(),
        error: std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"),
    })?;
    let found = hostfile_addresses(&text, processes);
    if found.len() < processes {
        return Err(ConfigError::TooFewHosts {
            path: path.clone(),
            found: found.len(),
            processes,
        });
    }
    Ok(found)
}

/// The first `processes` addresses of a hostfile's text: one `host:port` a line, line i for
/// process i, blank lines and `#` comments skipped; fewer when the text has fewer.
pub fn hostfile_addresses(text: &str, processes: usize) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(processes)
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_errors_exit_2_and_the_environment_1() {
        assert_eq!(ConfigError::Combination("x").exit_code(), 2);
        assert_eq!(ConfigError::DemoOnly("--rate").exit_code(), 2);
        let missing = addresses(2, Some(&PathBuf::from("/no/such/hostfile"))).expect_err("none");
        assert_eq!(missing.exit_code(), 1, "{missing}");
    }

    #[test]
    fn gh_8_a_topic_serves_one_purpose() {
        assert!(check_topics(Some("in"), Some("in.dlq"), Some("out")).is_ok());
        assert!(check_topics(None, None, Some("out")).is_ok());
        for (dead_letters, results, says) in [
            ("in", "out", "--dlq-topic in is also the input topic"),
            ("in.dlq", "in", "--results-topic in is also the input topic"),
            (
                "in.dlq",
                "in.dlq",
                "--results-topic in.dlq is also the dead-letter topic",
            ),
        ] {
            let e = check_topics(Some("in"), Some(dead_letters), Some(results)).expect_err(says);
            assert!(e.to_string().starts_with(says), "{e}");
            assert_eq!(e.exit_code(), 2);
        }
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
