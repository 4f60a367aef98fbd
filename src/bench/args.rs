//! Flags of `bench`, each value parsed against the range its help gives.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::flags;
use crate::kafka::Property;

/// Flags of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Messages per generated input, each 1 to 100000000; a list (1000000,10000000) shows how
    /// memory grows.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10000000",
        value_name = "N,...",
        allow_negative_numbers = true,
        value_parser = flags::whole::<u64>(1, MAX_MESSAGES)
    )]
    pub messages: Vec<u64>,
    /// Distinct sensors in the generated fleet, each 1 to 100000000; a list (10000,1000000)
    /// shows how memory grows.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2100",
        value_name = "N,...",
        allow_negative_numbers = true,
        value_parser = flags::whole::<usize>(1, flags::MAX_SENSORS)
    )]
    pub sensors: Vec<usize>,
    /// Worker counts to run (`-w` of each child), each 1 to 256.
    #[arg(
        short = 'w',
        long,
        value_delimiter = ',',
        default_value = "1,2,4",
        value_name = "N,...",
        allow_negative_numbers = true,
        value_parser = flags::whole::<usize>(1, flags::MAX_WORKERS)
    )]
    pub workers: Vec<usize>,
    /// Inputs to time (Kafka is added by --brokers).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "memory,file")]
    pub sources: Vec<BenchSource>,
    /// Runs of each configuration (and passes of the floor), 1 to 100; the fastest is reported.
    #[arg(
        long,
        default_value_t = 1,
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = flags::whole::<usize>(1, 100)
    )]
    pub repeat: usize,
    /// Epoch length of the throughput runs (event time), 1ms to 1y.
    #[arg(
        long,
        default_value = "3s",
        value_name = "DURATION",
        allow_hyphen_values = true,
        value_parser = flags::duration(Duration::from_millis(1))
    )]
    pub epoch: Duration,
    /// Milliseconds of event time between generated lines, 0 to 86400000 (as `generate`):
    /// 30 is 2,100 dataloggers reporting about once a minute (100 lines per 3-second epoch).
    #[arg(
        long,
        default_value_t = 0.3,
        allow_hyphen_values = true,
        value_parser = flags::real(0.0, 86_400_000.0)
    )]
    pub interval_ms: f64,
    /// Messages per second of the paced latency run, 0 to 10000000 (0 skips it).
    #[arg(
        long,
        default_value_t = 100_000,
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = flags::whole::<u64>(0, flags::MAX_RATE)
    )]
    pub paced_rate: u64,
    /// How long the paced latency run feeds messages, 1ms to 1y.
    #[arg(
        long,
        default_value = "30s",
        value_name = "DURATION",
        allow_hyphen_values = true,
        value_parser = flags::duration(Duration::from_millis(1))
    )]
    pub paced_for: Duration,
    /// Epoch length of the paced latency run (processing time), 1ms to 1y.
    #[arg(
        long,
        default_value = "1s",
        value_name = "DURATION",
        allow_hyphen_values = true,
        value_parser = flags::duration(Duration::from_millis(1))
    )]
    pub paced_epoch: Duration,
    /// Also run every throughput configuration over this window (`run --window`), beside the
    /// cumulative run: cumulative or a DURATION, a whole multiple of --epoch (e.g. 1m).
    #[arg(
        long,
        value_name = "cumulative|DURATION",
        allow_hyphen_values = true,
        value_parser = flags::window
    )]
    pub window: Option<flags::WindowSpan>,
    /// Also run every throughput configuration with these rules (`run --rules`: builtin, none
    /// or a TOML file), beside the run without alerts. The base runs use `--rules none`.
    #[arg(long, value_name = "builtin|none|FILE", value_parser = crate::rules::source)]
    pub rules: Option<crate::rules::RulesSource>,
    /// Trouble in the generated inputs (as `generate --scenario`): e.g. `outage,excursion,drift`
    /// is an alert flood, every sensor silent and back every 30 minutes.
    #[arg(long = "scenario", default_value = "none", value_name = "LIST", value_parser = crate::fleet::scenario::parse)]
    pub scenarios: crate::fleet::scenario::Scenarios,
    /// Seed and malformed fraction of the generated lines.
    #[command(flatten)]
    pub lines: crate::cli::LineArgs,
    /// Keep generated inputs here and reuse them (default: a temporary directory, removed).
    #[arg(long, value_name = "DIR", value_parser = flags::path)]
    pub dir: Option<PathBuf>,
    /// Also time reading from Kafka: each input is produced into a fresh topic here.
    #[arg(
        short = 'b',
        long,
        value_name = "BROKERS",
        value_parser = crate::kafka::parse_brokers
    )]
    pub brokers: Option<String>,
    /// Partitions of each benchmark topic, 1 to 10000 (default: the largest worker count).
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = flags::whole::<i32>(1, crate::kafka::admin::MAX_PARTITIONS)
    )]
    pub partitions: Option<i32>,
    /// librdkafka property for every Kafka command, key=value (repeatable).
    #[arg(
        short = 'X',
        value_name = "KEY=VALUE",
        value_parser = crate::kafka::parse_property
    )]
    pub properties: Vec<Property>,
    /// Measure one command instead: run `hygroflow ARGS`, print its wall time and peak RSS.
    #[arg(last = true, value_name = "ARGS")]
    pub child: Vec<OsString>,
}

/// The most messages per generated input: each is held in memory (about 230 bytes a line).
pub const MAX_MESSAGES: u64 = 100_000_000;

/// Where a throughput run reads its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchSource {
    /// Stdin, fed from the harness's memory at full speed: the engine without file reads.
    Memory,
    /// The generated file, `--input FILE`.
    File,
}
