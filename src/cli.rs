//! Command-line flags (clap), turned into a validated [`Config`].
//!
//! Flags follow the conventions users know: timely's `-w/--workers`, `-n/--processes`,
//! `-p/--process`, `-h/--hostfile` (so help is `--help` only), and kcat's `-b`, `-t`, `-X`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    addresses, check_topics, AlertsOut, Cluster, Config, ConfigError, HttpAt, Input, KafkaInput,
    ReportFormat, ResultsTopic,
};
use crate::epoch::{EpochGrid, TimeMode, Window};
use crate::flags;
use crate::fleet::scenario::{self, Plan, Scenarios};
use crate::fleet::{Fleet, Generator, DEFAULT_SENSORS, GENERATE_START_MS, LAST_EVENT_MS};
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
    Bench(Box<crate::bench::BenchArgs>),
    /// Print the humidity rules in force (built-in or a TOML file's) as TOML.
    Rules(crate::rules::RulesArgs),
}

/// Flags of `run`.
///
/// Every number and duration is parsed against the range its help gives (see [`flags`]);
/// [`RunArgs::config`] then checks the combinations.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// JSON lines to read (`-` for stdin); without it, the simulated fleet streams until Ctrl-C.
    #[arg(short = 'i', long, value_name = "FILE", value_parser = flags::path)]
    pub input: Option<PathBuf>,
    /// Epoch (batch) length, from 1ms to 1y, e.g. 3s, 500ms, 1m.
    #[arg(
        long,
        default_value = "3s",
        value_name = "DURATION",
        allow_hyphen_values = true,
        value_parser = flags::duration(Duration::from_millis(1))
    )]
    pub epoch: Duration,
    /// What each report covers: cumulative (every reading since the start) or the last
    /// DURATION, a whole multiple of --epoch (e.g. 1m).
    #[arg(
        long,
        default_value = "cumulative",
        value_name = "cumulative|DURATION",
        allow_hyphen_values = true,
        value_parser = flags::window
    )]
    pub window: flags::WindowSpan,
    /// Which clock assigns records to epochs.
    #[arg(long, value_enum, default_value_t = TimeMode::Processing)]
    pub time: TimeMode,
    /// Worker threads per process, 1 to 256.
    #[arg(
        short = 'w',
        long,
        default_value = "1",
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = flags::whole::<usize>(1, flags::MAX_WORKERS)
    )]
    pub workers: usize,
    /// Number of processes in a cluster, 1 to 1024.
    #[arg(
        short = 'n',
        long,
        default_value = "1",
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = flags::whole::<usize>(1, flags::MAX_PROCESSES)
    )]
    pub processes: usize,
    /// This process's index in the cluster, 0 to --processes minus 1 (0 prints the reports).
    #[arg(
        short = 'p',
        long,
        default_value = "0",
        value_name = "I",
        allow_negative_numbers = true,
        value_parser = flags::whole::<usize>(0, flags::MAX_PROCESSES - 1)
    )]
    pub process: usize,
    /// One host:port per line, line i for process i (default: localhost:2101+i).
    #[arg(short = 'h', long, value_name = "FILE", value_parser = flags::path)]
    pub hostfile: Option<PathBuf>,
    /// Event time only: a reading up to this far behind the newest reading of its partition
    /// still joins its own epoch. Each epoch's report waits about this much longer; 0s to 1h.
    #[arg(
        long,
        value_name = "DURATION",
        allow_hyphen_values = true,
        value_parser = flags::duration_between(Duration::ZERO, Duration::from_secs(3600))
    )]
    pub allowed_lateness: Option<Duration>,
    /// Event time only: a partition without readings for this long leaves the minimum that
    /// closes epochs (it joins again with its next reading), and a worker with no partition
    /// left follows the wall clock (one epoch behind), so that an idle partition or worker
    /// does not hold reports back; 0s to 1y.
    #[arg(
        long,
        default_value = "10s",
        value_name = "DURATION",
        allow_hyphen_values = true,
        value_parser = flags::duration(Duration::ZERO)
    )]
    pub idle_timeout: Duration,
    /// Event time only: a reading stamped more than this ahead of the wall clock joins the
    /// open epoch instead of moving it (counted as `future_messages`); 0s to 1y.
    #[arg(
        long,
        default_value = "1h",
        value_name = "DURATION",
        allow_hyphen_values = true,
        value_parser = flags::duration(Duration::ZERO)
    )]
    pub max_clock_skew: Duration,
    /// Cluster only: how long processes wait for each other at start, 0s to 1y.
    #[arg(
        long,
        default_value = "60s",
        value_name = "DURATION",
        allow_hyphen_values = true,
        value_parser = flags::duration(Duration::ZERO)
    )]
    pub connect_timeout: Duration,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Print only what changed in each epoch instead of the full state.
    #[arg(long)]
    pub changes: bool,
    /// Write every rejected message, with its reason, to this file as JSON lines.
    #[arg(long, value_name = "FILE", value_parser = flags::path)]
    pub rejects: Option<PathBuf>,
    /// Messages larger than this many bytes are rejected; 1 to 268435456 (256 MiB).
    #[arg(
        long,
        default_value_t = DEFAULT_MAX_MESSAGE_BYTES,
        value_name = "BYTES",
        allow_negative_numbers = true,
        value_parser = flags::whole::<usize>(1, flags::MAX_MESSAGE_BYTES)
    )]
    pub max_message_bytes: usize,
    /// Kafka bootstrap brokers, host:port[,host:port...].
    #[arg(short = 'b', long, value_name = "BROKERS", value_parser = crate::kafka::parse_brokers)]
    pub brokers: Option<String>,
    /// Kafka topic to consume.
    #[arg(short = 't', long, value_name = "TOPIC", value_parser = crate::kafka::parse_topic)]
    pub topic: Option<String>,
    /// Consumer group whose committed offsets show progress (default: hygroflow).
    #[arg(long, value_name = "GROUP", value_parser = flags::name)]
    pub group: Option<String>,
    /// librdkafka property, key=value (repeatable; TLS, SASL, fetch sizes...).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = crate::kafka::parse_property)]
    pub properties: Vec<Property>,
    /// Consume up to the end offsets seen at start, print the final report and exit.
    #[arg(long)]
    pub until_end: bool,
    /// Directory for checkpoints: restarts resume exactly where the last complete epoch ended.
    #[arg(long, value_name = "DIR", value_parser = flags::path)]
    pub state_dir: Option<PathBuf>,
    /// Dead-letter topic for rejected messages (default: <topic>.dlq); not the input topic.
    #[arg(long, value_name = "TOPIC", value_parser = crate::kafka::parse_topic)]
    pub dlq_topic: Option<String>,
    /// Also publish every report (the JSON object) to this topic; not the input or
    /// dead-letter topic.
    #[arg(long, value_name = "TOPIC", value_parser = crate::kafka::parse_topic)]
    pub results_topic: Option<String>,
    /// Humidity rules: builtin, none (alerts off) or a TOML file (see `hygroflow rules`);
    /// SIGHUP reads the file again, and a restart may change it (not alerts on or off).
    #[arg(
        long,
        default_value = "builtin",
        value_name = "builtin|none|FILE",
        value_parser = crate::rules::source
    )]
    pub rules: crate::rules::RulesSource,
    /// Write every alert transition to this file as JSON lines (`-`: stdout, each epoch's
    /// lines before its report).
    #[arg(long, value_name = "FILE|-", value_parser = flags::path)]
    pub alerts: Option<PathBuf>,
    /// Also publish every alert transition (key: the device) to this Kafka topic, each
    /// exactly once across restarts; not the input, dead-letter or results topic.
    #[arg(long, value_name = "TOPIC", value_parser = crate::kafka::parse_topic)]
    pub alerts_topic: Option<String>,
    /// Send every alert state to this Alertmanager (its v2 API; repeatable: every URL gets
    /// every alert), from process 0: http:// or https://, user:password@ allowed (never logged).
    #[arg(long = "alertmanager", value_name = "URL")]
    pub alertmanager: Vec<String>,
    /// How often a raised alert is sent to Alertmanager again, 1s to 1h; its `endsAt` is 4 of
    /// these ahead, so the alerts of a stopped job resolve by themselves.
    #[arg(
        long,
        default_value = "1m",
        value_name = "DURATION",
        allow_hyphen_values = true,
        value_parser = flags::duration_between(Duration::from_secs(1), Duration::from_secs(3600))
    )]
    pub alertmanager_resend: Duration,
    /// Serve the live page, its JSON and /metrics at this address (port 0: any free port), or
    /// off [default: off; the demo: 127.0.0.1:8080, or a free port when that is taken].
    #[arg(long, value_name = "ADDR|off", value_parser = flags::http)]
    pub http: Option<flags::Http>,
    /// Demo only: messages per second from the simulated fleet, 1 to 10000000 [default: 3000].
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = flags::whole::<u64>(1, flags::MAX_RATE)
    )]
    pub rate: Option<u64>,
    /// Demo only: sensors in the simulated fleet, 1 to 100000000 [default: 2100].
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = flags::whole::<usize>(1, flags::MAX_SENSORS)
    )]
    pub sensors: Option<usize>,
    /// Demo only: seed of the simulated fleet, 0 to 2^64-1 [default: 1].
    #[arg(
        long,
        value_name = "S",
        allow_negative_numbers = true,
        value_parser = flags::whole::<u64>(0, u64::MAX)
    )]
    pub seed: Option<u64>,
    /// Demo only: trouble to inject, comma-separated NAME[@START] (excursion, silence, drift,
    /// outage, soak; START from the run's start) or none [default: excursion@1m,silence@2m,drift@3m].
    #[arg(long = "scenario", value_name = "LIST", value_parser = scenario::parse)]
    pub scenarios: Option<Scenarios>,
}

/// Messages per second of the demo fleet without `--rate`.
pub const DEFAULT_RATE: u64 = 3_000;

impl RunArgs {
    /// Checks the combinations of flags and builds the configuration. Flag errors come first,
    /// so that a run with a bad flag fails the same way whatever files exist.
    pub fn config(&self) -> Result<Config, ConfigError> {
        // Checked here rather than by clap, whose message would repeat the value (and a
        // password in it).
        let alertmanager = self
            .alertmanager
            .iter()
            .enumerate()
            .map(|(i, url)| {
                crate::notify::endpoint(url).map_err(|reason| ConfigError::Alertmanager {
                    index: i + 1,
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
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
            self.alerts_topic.is_none() || self.brokers.is_some(),
            "--alerts-topic needs --brokers (-b host:port)",
        )?;
        combination(
            (self.alerts.is_none() && self.alerts_topic.is_none() && self.alertmanager.is_empty())
                || self.rules != crate::rules::RulesSource::None,
            "--alerts, --alerts-topic and --alertmanager need rules: leave out --rules none",
        )?;
        combination(
            self.allowed_lateness.is_none() || self.time == crate::epoch::TimeMode::Event,
            "--allowed-lateness needs --time event: in processing time nothing is late",
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
            self.properties.is_empty() || self.brokers.is_some(),
            "-X needs --brokers (-b host:port): the properties configure Kafka clients",
        )?;
        combination(
            self.group.is_none() || self.topic.is_some(),
            "--group needs a Kafka input (-b and -t)",
        )?;
        combination(
            self.brokers.is_none()
                || self.topic.is_some()
                || self.results_topic.is_some()
                || self.alerts_topic.is_some(),
            "--brokers needs --topic, --results-topic or --alerts-topic: nothing would use it",
        )?;
        combination(
            self.rejects.is_none() || self.input.is_some(),
            "--rejects needs --input (the demo fleet sends no malformed messages)",
        )?;
        if self.input.is_some() || self.topic.is_some() {
            for (flag, given) in [
                ("--rate", self.rate.is_some()),
                ("--sensors", self.sensors.is_some()),
                ("--seed", self.seed.is_some()),
                ("--scenario", self.scenarios.is_some()),
            ] {
                if given {
                    return Err(ConfigError::DemoOnly(flag));
                }
            }
        }
        let dlq_topic = self.topic.as_ref().map(|topic| {
            self.dlq_topic
                .clone()
                .unwrap_or_else(|| format!("{topic}.dlq"))
        });
        check_topics(
            self.topic.as_deref(),
            dlq_topic.as_deref(),
            self.results_topic.as_deref(),
        )?;
        check_alerts_topic(
            self.alerts_topic.as_deref(),
            [
                (self.topic.as_deref(), "the input topic (-t)"),
                (dlq_topic.as_deref(), "the dead-letter topic"),
                (self.results_topic.as_deref(), "the results topic"),
            ],
        )?;
        let grid = EpochGrid::new(self.epoch).ok_or_else(|| {
            ConfigError::Epoch(humantime::format_duration(self.epoch).to_string())
        })?;
        let window = match self.window {
            flags::WindowSpan::Cumulative => Window::Cumulative,
            flags::WindowSpan::Span(span) => {
                Window::of(span, &grid).ok_or_else(|| ConfigError::Window {
                    window: humantime::format_duration(span).to_string(),
                    epoch: humantime::format_duration(self.epoch).to_string(),
                })?
            }
        };
        let rules = crate::rules::Rules::load(&self.rules, grid.len())?;
        let client = self
            .brokers
            .as_deref()
            .map(|b| ClientSettings::new(b, &self.properties));
        let input = match (&self.input, &self.topic, &client, dlq_topic) {
            (_, Some(topic), Some(client), Some(dlq_topic)) => Input::Kafka(KafkaInput {
                client: client.clone(),
                topic: topic.clone(),
                group: self.group.clone().unwrap_or_else(|| "hygroflow".to_owned()),
                until_end: self.until_end,
                dlq_topic,
                state_dir: self.state_dir.clone(),
            }),
            (None, _, _, _) => Input::Demo {
                rate: self.rate.unwrap_or(DEFAULT_RATE),
                sensors: self.sensors.unwrap_or(DEFAULT_SENSORS),
                seed: self.seed.unwrap_or(1),
                scenarios: self.scenarios.clone().unwrap_or_else(Scenarios::demo),
            },
            (Some(path), _, _, _) if path.as_os_str() == "-" => Input::File {
                path: None,
                rejects: self.rejects.clone(),
            },
            // The input is opened once, by the job: opening a FIFO here would consume it.
            (Some(path), _, _, _) => Input::File {
                path: Some(path.clone()),
                rejects: self.rejects.clone(),
            },
        };
        Ok(Config {
            input,
            grid,
            window,
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
            results: match (&self.results_topic, &client) {
                (Some(topic), Some(client)) => Some(ResultsTopic {
                    client: client.clone(),
                    topic: topic.clone(),
                }),
                _ => None,
            },
            rules,
            rules_file: match &self.rules {
                crate::rules::RulesSource::File(path) => Some(path.clone()),
                _ => None,
            },
            alerts: self.alerts.as_ref().map(|path| {
                if path.as_os_str() == "-" {
                    AlertsOut::Stdout
                } else {
                    AlertsOut::File(path.clone())
                }
            }),
            alerts_topic: match (&self.alerts_topic, client) {
                (Some(topic), Some(client)) => Some(ResultsTopic {
                    client,
                    topic: topic.clone(),
                }),
                _ => None,
            },
            alertmanager: (!alertmanager.is_empty()).then_some(crate::notify::Settings {
                endpoints: alertmanager,
                resend: self.alertmanager_resend,
            }),
            http: match (self.http, &self.input, &self.topic) {
                (Some(flags::Http::At(addr)), _, _) => Some(HttpAt {
                    addr,
                    fallback: false,
                }),
                (Some(flags::Http::Off), _, _) => None,
                (None, None, None) => Some(HttpAt {
                    addr: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
                    fallback: true,
                }),
                (None, _, _) => None,
            },
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
            allowed_lateness: self.allowed_lateness.unwrap_or_default(),
            max_clock_skew: self.max_clock_skew,
        })
    }
}

/// How generated lines are drawn (`generate` and `bench`).
#[derive(Debug, Args)]
pub struct LineArgs {
    /// Seed, 0 to 2^64-1: the same seed writes the same lines.
    #[arg(
        long,
        default_value_t = 1,
        allow_negative_numbers = true,
        value_parser = flags::whole::<u64>(0, u64::MAX)
    )]
    pub seed: u64,
    /// Fraction of lines that are malformed, 0 to 1.
    #[arg(
        long,
        default_value_t = 0.0,
        allow_hyphen_values = true,
        value_parser = flags::real(0.0, 1.0)
    )]
    pub bad_fraction: f64,
}

/// Flags of `generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of lines to write, 0 to 10^12.
    #[arg(
        long,
        default_value_t = 10_000,
        allow_negative_numbers = true,
        value_parser = flags::whole::<u64>(0, MAX_COUNT)
    )]
    pub count: u64,
    /// Seed and malformed fraction of the lines.
    #[command(flatten)]
    pub lines: LineArgs,
    /// Sensors in the fleet, 1 to 100000000.
    #[arg(
        long,
        default_value_t = DEFAULT_SENSORS,
        allow_negative_numbers = true,
        value_parser = flags::whole::<usize>(1, flags::MAX_SENSORS)
    )]
    pub sensors: usize,
    /// Milliseconds of event time between consecutive lines, 0 to 86400000 (a day); the last
    /// line must fall before the year 10000.
    #[arg(
        long,
        default_value_t = 0.3,
        allow_hyphen_values = true,
        value_parser = flags::real(0.0, 86_400_000.0)
    )]
    pub interval_ms: f64,
    /// Trouble to inject: comma-separated NAME[@START] (excursion, silence, drift, outage:
    /// every sensor silent 6 minutes of every 30, whose slots write no line; soak: every 6
    /// hours trouble of each kind, sensors and a device away for hours; START from the first
    /// line's event time, e.g. excursion@5m) or none.
    #[arg(long = "scenario", default_value = "none", value_name = "LIST", value_parser = scenario::parse)]
    pub scenarios: Scenarios,
}

/// The most lines `generate --count` writes.
pub const MAX_COUNT: u64 = 1_000_000_000_000;

impl GenerateArgs {
    /// Writes the lines to `out`.
    pub fn write(&self, out: &mut dyn Write) -> anyhow::Result<()> {
        let span = self.count.saturating_sub(1) as f64 * self.interval_ms;
        if span.is_nan() || span > (LAST_EVENT_MS - GENERATE_START_MS) as f64 {
            return Err(ConfigError::Timeline {
                count: self.count,
                interval_ms: self.interval_ms,
            }
            .into());
        }
        let fleet = Fleet::new(self.lines.seed, self.sensors);
        let plan = Plan::new(&self.scenarios, &fleet, GENERATE_START_MS);
        for note in plan.notes() {
            tracing::info!("{note}");
        }
        let mut generator =
            Generator::new(fleet, self.lines.seed, self.lines.bad_fraction).with_plan(plan);
        let mut buf = Vec::with_capacity(1 << 16);
        for i in 0..self.count {
            // Within the year 9999, as checked above: no overflow.
            let event_ms = GENERATE_START_MS.saturating_add((i as f64 * self.interval_ms) as i64);
            // One share of the whole rotation: a line finds a sensor that is not silenced, but in an
            // outage.
            if generator.write_line(event_ms, &mut buf) {
                buf.push(b'\n');
            }
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

/// `--alerts-topic` must differ from every other topic of the run.
fn check_alerts_topic(
    alerts: Option<&str>,
    others: [(Option<&str>, &'static str); 3],
) -> Result<(), ConfigError> {
    let Some(alerts) = alerts else {
        return Ok(());
    };
    match others.into_iter().find(|(topic, _)| *topic == Some(alerts)) {
        Some((_, other)) => Err(ConfigError::SameTopic {
            flag: "--alerts-topic",
            topic: alerts.to_owned(),
            other,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("hygroflow").chain(args.iter().copied()))
    }

    fn run_config(args: &[&str]) -> Result<Config, ConfigError> {
        match parse(args).expect("flags parse").command {
            Some(Command::Run(run)) => run.config(),
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn the_command_line_is_consistent_and_every_default_is_in_range() {
        Cli::command().debug_assert();
        for args in [
            &["run"][..],
            &["generate"],
            &["bench"],
            &["rules"],
            &["produce", "-b", "h:1", "-t", "t", "f.jsonl"],
            &["topic", "create", "-b", "h:1", "-t", "t"],
            &["topic", "describe", "-b", "h:1", "-t", "t"],
        ] {
            if let Err(e) = parse(args) {
                panic!("{args:?}: {e}");
            }
        }
    }

    #[test]
    fn gh_8_demo_flags_have_defaults_and_belong_to_the_demo() {
        let config = run_config(&["run"]).expect("demo");
        let Input::Demo {
            rate,
            sensors,
            seed,
            scenarios,
        } = config.input
        else {
            panic!("not the demo: {:?}", config.input);
        };
        assert_eq!((rate, sensors, seed), (DEFAULT_RATE, DEFAULT_SENSORS, 1));
        assert_eq!(scenarios, Scenarios::demo());
        assert_eq!(config.grid.len(), Duration::from_secs(3));
        assert_eq!(config.connect_timeout, Duration::from_secs(60));
        let e = run_config(&["run", "-i", "-", "--sensors", "5"]).expect_err("with -i");
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e
            .to_string()
            .starts_with("--sensors is for the simulated fleet"));
    }

    #[test]
    fn gh_8_generate_stays_within_four_digit_years() {
        let args = |count, interval_ms| GenerateArgs {
            count,
            lines: LineArgs {
                seed: 1,
                bad_fraction: 0.0,
            },
            sensors: 10,
            interval_ms,
            scenarios: Scenarios::none(),
        };
        let e = args(MAX_COUNT, 86_400_000.0)
            .write(&mut Vec::new())
            .expect_err("past 9999");
        assert!(e.to_string().contains("past the year 9999"), "{e}");
        let mut out = Vec::new();
        args(2, 86_400_000.0).write(&mut out).expect("two days");
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 2);
        assert!(args(2, f64::NAN).write(&mut Vec::new()).is_err());
    }
}
