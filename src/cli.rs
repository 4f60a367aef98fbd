//! Command-line flags (clap), turned into a validated [`Config`].
//!
//! Flags follow the conventions users know: timely's `-w/--workers`, `-n/--processes`,
//! `-p/--process`, `-h/--hostfile` (so help is `--help` only), and kcat's `-b`, `-t`, `-X`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    addresses, parse_epoch, Cluster, Config, ConfigError, Input, KafkaInput, ReportFormat,
    ResultsTopic,
};
use crate::epoch::TimeMode;
use crate::fleet::{Fleet, Generator, DEFAULT_SENSORS, GENERATE_START_MS};
use crate::kafka::{ClientSettings, Property};
use crate::message::DEFAULT_MAX_MESSAGE_BYTES;

/// Real-time humidity analytics for the dataloggers that protect hospital imaging machines.
///
/// With no command, runs the main job on the built-in simulated fleet until Ctrl-C.
#[derive(Debug, Parser)]
#[command(
    name = "hygroflow",
    version,
    disable_help_flag = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `run`, when no command is given.
    #[command(flatten)]
    pub run: RunArgs,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help, global = true)]
    help: Option<bool>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the analytics job (the default command).
    Run(Box<RunArgs>),
    /// Write reproducible JSON lines of the simulated fleet to stdout.
    Generate(GenerateArgs),
    /// Send JSON lines to a Kafka topic, keyed by guid.
    Produce(crate::kafka::produce::ProduceArgs),
    /// Create or describe a Kafka topic.
    Topic(crate::kafka::admin::TopicArgs),
    /// Measure throughput, report latency and peak memory of the whole engine.
    Bench(crate::bench::BenchArgs),
}

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// JSON lines to read (`-` for stdin); without it, the simulated fleet streams until Ctrl-C.
    #[arg(short = 'i', long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Epoch (batch) length, e.g. 3s, 500ms, 1m.
    #[arg(long, default_value = "3s", value_name = "DURATION")]
    pub epoch: String,
    /// Which clock assigns records to epochs.
    #[arg(long, value_enum, default_value_t = TimeMode::Processing)]
    pub time: TimeMode,
    /// Worker threads per process.
    #[arg(short = 'w', long, default_value_t = 1, value_name = "N")]
    pub workers: usize,
    /// Number of processes in a cluster.
    #[arg(short = 'n', long, default_value_t = 1, value_name = "N")]
    pub processes: usize,
    /// This process's index in the cluster (0 prints the reports).
    #[arg(short = 'p', long, default_value_t = 0, value_name = "I")]
    pub process: usize,
    /// One host:port per line, line i for process i (default: localhost:2101+i).
    #[arg(short = 'h', long, value_name = "FILE")]
    pub hostfile: Option<PathBuf>,
    /// Event time only: after this long without input, a worker's epochs follow the wall clock
    /// (one epoch behind) so that an idle partition or worker does not hold reports back.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub idle_timeout: String,
    /// Cluster only: how long processes wait for each other at start.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub connect_timeout: String,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Print only what changed in each epoch instead of the full state.
    #[arg(long)]
    pub changes: bool,
    /// Write every rejected message, with its reason, to this file as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Messages larger than this many bytes are rejected.
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGE_BYTES, value_name = "BYTES")]
    pub max_message_bytes: usize,
    /// Kafka bootstrap brokers, host:port[,host:port...].
    #[arg(short = 'b', long, value_name = "BROKERS", value_parser = crate::kafka::parse_brokers)]
    pub brokers: Option<String>,
    /// Kafka topic to consume.
    #[arg(short = 't', long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// Consumer group whose committed offsets show progress.
    #[arg(long, default_value = "hygroflow", value_name = "GROUP")]
    pub group: String,
    /// librdkafka property, key=value (repeatable; TLS, SASL, fetch sizes...).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = crate::kafka::parse_property)]
    pub properties: Vec<Property>,
    /// Consume up to the end offsets seen at start, print the final report and exit.
    #[arg(long)]
    pub until_end: bool,
    /// Directory for checkpoints: restarts resume exactly where the last complete epoch ended.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Dead-letter topic for rejected messages (default: <topic>.dlq).
    #[arg(long, value_name = "TOPIC")]
    pub dlq_topic: Option<String>,
    /// Also publish every report (the JSON object) to this topic.
    #[arg(long, value_name = "TOPIC")]
    pub results_topic: Option<String>,
    /// Demo only: messages per second from the simulated fleet.
    #[arg(long, default_value_t = 3_000, value_name = "N")]
    pub rate: u64,
    /// Demo only: sensors in the simulated fleet.
    #[arg(long, default_value_t = DEFAULT_SENSORS, value_name = "N")]
    pub sensors: usize,
    /// Demo only: seed of the simulated fleet.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
}

impl RunArgs {
    /// Checks the flags and builds the configuration.
    pub fn config(&self) -> Result<Config, ConfigError> {
        for (name, value) in [
            ("--workers", self.workers),
            ("--processes", self.processes),
            ("--max-message-bytes", self.max_message_bytes),
            ("--sensors", self.sensors),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.process >= self.processes {
            return Err(ConfigError::Process {
                process: self.process,
                processes: self.processes,
            });
        }
        let combination = |ok: bool, message| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Combination(message))
            }
        };
        combination(
            self.topic.is_none() || self.brokers.is_some(),
            "--topic needs --brokers (-b host:port)",
        )?;
        combination(
            self.topic.is_none() || self.input.is_none(),
            "read either --input or --topic, not both",
        )?;
        combination(
            self.results_topic.is_none() || self.brokers.is_some(),
            "--results-topic needs --brokers (-b host:port)",
        )?;
        combination(
            self.state_dir.is_none() || self.topic.is_some(),
            "--state-dir needs a Kafka input (-b and -t)",
        )?;
        combination(
            !self.until_end || self.topic.is_some(),
            "--until-end needs a Kafka input (-b and -t)",
        )?;
        combination(
            self.dlq_topic.is_none() || self.topic.is_some(),
            "--dlq-topic needs a Kafka input (-b and -t)",
        )?;
        combination(
            self.rejects.is_none() || self.topic.is_none(),
            "with a Kafka input rejected messages go to --dlq-topic, not --rejects",
        )?;
        combination(
            self.rejects.is_none() || self.input.is_some(),
            "--rejects needs --input (the demo fleet sends no malformed messages)",
        )?;
        let client = self
            .brokers
            .as_deref()
            .map(|b| ClientSettings::new(b, &self.properties));
        let input = match (&self.input, &self.topic, &client) {
            (_, Some(topic), Some(client)) => Input::Kafka(KafkaInput {
                client: client.clone(),
                topic: topic.clone(),
                group: self.group.clone(),
                until_end: self.until_end,
                dlq_topic: self
                    .dlq_topic
                    .clone()
                    .unwrap_or_else(|| format!("{topic}.dlq")),
                state_dir: self.state_dir.clone(),
            }),
            (None, _, _) => Input::Demo {
                rate: self.rate,
                sensors: self.sensors,
                seed: self.seed,
            },
            (Some(path), _, _) if path.as_os_str() == "-" => Input::File {
                path: None,
                rejects: self.rejects.clone(),
            },
            (Some(path), _, _) => {
                std::fs::File::open(path).map_err(|error| ConfigError::Input {
                    path: path.clone(),
                    error,
                })?;
                Input::File {
                    path: Some(path.clone()),
                    rejects: self.rejects.clone(),
                }
            }
        };
        Ok(Config {
            input,
            grid: parse_epoch(&self.epoch)?,
            time: self.time,
            cluster: Cluster {
                workers: self.workers,
                processes: self.processes,
                process: self.process,
                addresses: addresses(self.processes, self.hostfile.as_ref())?,
            },
            format: self.format,
            changes: self.changes,
            max_message_bytes: self.max_message_bytes,
            results: match (&self.results_topic, client) {
                (Some(topic), Some(client)) => Some(ResultsTopic {
                    client,
                    topic: topic.clone(),
                }),
                _ => None,
            },
            connect_timeout: humantime::parse_duration(&self.connect_timeout).map_err(|_| {
                ConfigError::Duration("--connect-timeout", self.connect_timeout.clone())
            })?,
            idle_timeout: humantime::parse_duration(&self.idle_timeout)
                .map_err(|_| ConfigError::Duration("--idle-timeout", self.idle_timeout.clone()))?,
        })
    }
}

/// Flags of `generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of lines to write.
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Seed: the same seed writes the same lines.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fraction of lines that are malformed (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub bad_fraction: f64,
    /// Sensors in the fleet.
    #[arg(long, default_value_t = DEFAULT_SENSORS)]
    pub sensors: usize,
    /// Milliseconds of event time between consecutive lines.
    #[arg(long, default_value_t = 0.3)]
    pub interval_ms: f64,
}

impl GenerateArgs {
    /// Writes the lines to `out`.
    pub fn write(&self, out: &mut dyn Write) -> anyhow::Result<()> {
        if !(0.0..=1.0).contains(&self.bad_fraction) {
            return Err(ConfigError::BadFraction(self.bad_fraction).into());
        }
        if self.sensors == 0 {
            return Err(ConfigError::Zero("--sensors").into());
        }
        let mut generator = Generator::new(
            Fleet::new(self.seed, self.sensors),
            self.seed,
            self.bad_fraction,
        );
        let mut buf = Vec::with_capacity(1 << 16);
        for i in 0..self.count {
            let event_ms = GENERATE_START_MS + (i as f64 * self.interval_ms) as i64;
            generator.write_line(event_ms, &mut buf);
            buf.push(b'\n');
            if buf.len() >= 1 << 16 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)?;
        out.flush()?;
        Ok(())
    }
}
