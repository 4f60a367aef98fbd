//! `hygroflow bench`: the end-to-end benchmark of the whole engine.
//!
//! The harness generates the simulated fleet's lines once (as `hygroflow generate` writes
//! them), then runs this very binary as children, one configuration at a time:
//!
//! ```text
//! memory : harness ─stdin pipe (full speed)─> hygroflow run --input -    --time event -w N
//! file   :                                     hygroflow run --input FILE --time event -w N
//!          and again with --time processing (one epoch): event time's floor, for the ratio
//! kafka  : hygroflow produce FILE ─> topic ─> hygroflow run -b B -t T --until-end     -w N
//! paced  : harness ─stdin, R msgs/s─────────> hygroflow run --input -    --time processing
//!          each JSON report's arrival minus its `time` (the epoch's end) is one latency
//! floor  : the same bytes through `message::parse` in a loop on the harness's thread
//! ```
//!
//! Each child runs under `hygroflow bench -- ARGS`, which spawns `hygroflow ARGS`, waits for
//! it and prints its wall time and peak RSS from `getrusage(RUSAGE_CHILDREN)`: with exactly one
//! child, that is the child's own high-water mark. Every throughput run is checked: its final
//! report must count every generated line (valid plus rejected). The results come out as
//! Markdown with the command, the machine, its load and the date.

mod args;
mod child;
mod kafka_floor;
mod report;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::{GenerateArgs, LineArgs};
use crate::config::ConfigError;
use crate::epoch::parse_event_time;
use crate::flags::WindowSpan;
use crate::message::{parse, DEFAULT_MAX_MESSAGE_BYTES};
use crate::rules::RulesSource;
pub use args::{BenchArgs, BenchSource, MAX_MESSAGES};
use child::{measure_one, run_child, ChildRun, Feed};
use report::{load_average, millis, thousands};

/// The start of the line a measured child's wrapper prints on stderr, and of progress lines.
const MARKER: &str = "hygroflow bench:";

/// Reports skipped at the start of a paced run (start-up, the first partial epoch).
const WARM_UP_REPORTS: usize = 2;

/// Runs the benchmark and prints its Markdown report to stdout.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if !args.child.is_empty() {
        return measure_one(&args.child);
    }
    let kafka_only = |given: bool, message| {
        if given && args.brokers.is_none() {
            Err(ConfigError::Combination(message))
        } else {
            Ok(())
        }
    };
    kafka_only(
        args.partitions.is_some(),
        "--partitions needs --brokers (-b host:port)",
    )?;
    kafka_only(
        !args.properties.is_empty(),
        "-X needs --brokers (-b host:port)",
    )?;
    let paced_for = args.paced_for;
    if cfg!(debug_assertions) {
        eprintln!("{MARKER} warning: a debug build; time the release build");
    }
    let dir = DataDir::new(args.dir.clone())?;
    let mut bench = Bench {
        args,
        paced_for,
        load_at_start: load_average(),
        floors: Vec::new(),
        rows: Vec::new(),
        latencies: Vec::new(),
        notes: Vec::new(),
    };
    for &messages in &args.messages {
        for &sensors in &args.sensors {
            bench.input(&dir, messages, sensors)?;
        }
    }
    print!("{}", bench.report());
    Ok(())
}

/// The results gathered so far.
struct Bench<'a> {
    args: &'a BenchArgs,
    paced_for: Duration,
    load_at_start: String,
    floors: Vec<(u64, usize, Floor)>,
    rows: Vec<Row>,
    latencies: Vec<Latency>,
    notes: Vec<String>,
}

impl Bench<'_> {
    /// Every configuration over one generated input.
    fn input(&mut self, dir: &DataDir, messages: u64, sensors: usize) -> anyhow::Result<()> {
        let (path, data) = dir.input(self.args, messages, sensors)?;
        let floor = (0..self.args.repeat)
            .map(|_| parse_floor(&data))
            .max_by(|a, b| a.rate().total_cmp(&b.rate()))
            .context("--repeat is at least 1")?;
        eprintln!("{MARKER} parse floor: {:.0} msgs/s", floor.rate());
        self.floors.push((messages, sensors, floor));
        let span_ms = messages.saturating_sub(1) as f64 * self.args.interval_ms;
        let epoch_ms = self.args.epoch.as_secs_f64() * 1e3;
        // A scenario's silences write no line: count what was written.
        let lines = data.iter().filter(|&&b| b == b'\n').count() as u64;
        let shape = Shape {
            epochs: (span_ms / epoch_ms).floor() + 1.0,
            messages: lines,
            sensors,
            floor: floor.rate(),
        };
        let variant = self.variant();
        for &workers in &self.args.workers {
            for source in &self.args.sources {
                let (input, feed) = match source {
                    BenchSource::Memory => ("-".to_owned(), Feed::Full(&data)),
                    BenchSource::File => (path.display().to_string(), Feed::Nothing),
                };
                let child = strings(&["run", "--input", &input, "--rules", "none"], &[]);
                let name = format!("{source:?}").to_lowercase();
                self.throughput(name.clone(), child.clone(), (workers, EVENT), feed, shape)?;
                if *source == BenchSource::File {
                    // Event time's floor: the same file in processing time, one epoch.
                    let named = format!("{name}, processing time");
                    let one_epoch = Shape {
                        epochs: 1.0,
                        ..shape
                    };
                    self.throughput(named.clone(), child, (workers, PROCESSING), feed, one_epoch)?;
                    self.compare(&named, &name, workers);
                }
                if let Some(flags) = &variant {
                    let child = strings(&["run", "--input", &input], flags);
                    let named = format!("{name}, {}", flags.join(" "));
                    self.throughput(named.clone(), child, (workers, EVENT), feed, shape)?;
                    self.compare(&name, &named, workers);
                    self.per_epoch(&name, &named, workers);
                    if *source == BenchSource::File {
                        self.compare(&format!("{name}, processing time"), &named, workers);
                    }
                    if workers > 1 {
                        self.scaling(&named, workers);
                    }
                }
            }
        }
        if let Some(brokers) = &self.args.brokers {
            self.kafka(brokers, &path, shape)?;
        }
        if self.args.paced_rate > 0 && self.latencies.is_empty() {
            for &workers in &self.args.workers {
                let latency = paced(self.args, workers, self.paced_for, &data)?;
                self.latencies.push(latency);
            }
        }
        Ok(())
    }

    /// The flags of the runs beside the base runs (`--window`, `--rules`), if any.
    fn variant(&self) -> Option<Vec<String>> {
        if self.args.window.is_none() && self.args.rules.is_none() {
            return None;
        }
        let window = match self.args.window {
            None | Some(WindowSpan::Cumulative) => "cumulative".to_owned(),
            Some(WindowSpan::Span(span)) => humantime::format_duration(span).to_string(),
        };
        let rules = match &self.args.rules {
            None | Some(RulesSource::None) => "none".to_owned(),
            Some(RulesSource::Builtin) => "builtin".to_owned(),
            Some(RulesSource::File(path)) => path.display().to_string(),
        };
        Some(vec!["--window".into(), window, "--rules".into(), rules])
    }

    /// Notes how the run named `variant` compares with the base run `base` at `workers`.
    fn compare(&mut self, base: &str, variant: &str, workers: usize) {
        let rate = |name: &str| {
            self.rows
                .iter()
                .rev()
                .find(|r| r.source == name && r.workers == workers)
                .map(|r| r.shape.messages as f64 / r.run.wall_s)
        };
        if let (Some(base_rate), Some(rate)) = (rate(base), rate(variant)) {
            self.notes.push(format!(
                "`{variant}` at {workers} worker(s): {} messages/s, {:.0}% of `{base}` ({} messages/s).",
                thousands(rate),
                100.0 * rate / base_rate,
                thousands(base_rate)
            ));
        }
    }

    /// Notes what each event-time epoch of `variant` costs beyond the base run `base`.
    fn per_epoch(&mut self, base: &str, variant: &str, workers: usize) {
        let row = |name: &str| {
            self.rows
                .iter()
                .rev()
                .find(|r| r.source == name && r.workers == workers)
        };
        if let (Some(base_row), Some(row)) = (row(base), row(variant)) {
            let epochs = row.shape.epochs.max(1.0);
            let extra_us = (row.run.wall_s - base_row.run.wall_s) * 1e6 / epochs;
            let cpu_us = (row.run.cpu_s - base_row.run.cpu_s) * 1e6 / epochs;
            self.notes.push(format!(
                "`{variant}` at {workers} worker(s): {extra_us:.1} us of wall time and \
                 {cpu_us:.1} us of CPU per epoch beyond `{base}` ({} epochs; {:.1} us and \
                 {:.1} us per epoch in all).",
                thousands(epochs),
                row.run.wall_s * 1e6 / epochs,
                row.run.cpu_s * 1e6 / epochs,
            ));
        }
    }

    /// Notes how `name` at `workers` compares with `name` at 1 worker.
    fn scaling(&mut self, name: &str, workers: usize) {
        let wall = |w: usize| {
            self.rows
                .iter()
                .rev()
                .find(|r| r.source == name && r.workers == w)
                .map(|r| r.run.wall_s)
        };
        if let (Some(one), Some(many)) = (wall(1), wall(workers)) {
            self.notes.push(format!(
                "`{name}`: {workers} workers {:.2}x 1 worker ({many:.2} s against {one:.2} s).",
                one / many
            ));
        }
    }

    /// Produces the input into a fresh topic, then reads it back with each worker count.
    fn kafka(&mut self, brokers: &str, path: &Path, shape: Shape) -> anyhow::Result<()> {
        let topic = format!(
            "hygroflow-bench-{}-{}x{}",
            std::process::id(),
            shape.messages,
            shape.sensors
        );
        let most = self.args.workers.iter().copied().max().unwrap_or(1);
        let partitions = self.args.partitions.unwrap_or(most as i32).to_string();
        let mut client = vec!["-b".to_owned(), brokers.to_owned()];
        client.extend(
            self.args
                .properties
                .iter()
                .flat_map(|p| ["-X".to_owned(), format!("{}={}", p.key, p.value)]),
        );
        let target = strings(&["-t", &topic], &client);
        // The run sends rejected messages to `<topic>.dlq`, which must exist too.
        for name in [topic.clone(), format!("{topic}.dlq")] {
            let create = ["topic", "create", "--partitions", &partitions, "-t", &name];
            run_child(&strings(&create, &client), Feed::Nothing, &mut |_, _| {})?;
        }
        let file = path.display().to_string();
        let produce = strings(&["produce", &file], &target);
        let produced = run_child(&produce, Feed::Nothing, &mut |_, _| {})?;
        self.notes.push(format!(
            "`hygroflow produce` wrote {} messages to `{topic}` ({partitions} partitions) in \
             {:.2} s ({} messages/s).",
            thousands(shape.messages as f64),
            produced.wall_s,
            thousands(shape.messages as f64 / produced.wall_s)
        ));
        let settings = crate::kafka::ClientSettings::new(brokers, &self.args.properties);
        for &workers in &self.args.workers {
            let floor = (0..self.args.repeat)
                .map(|_| kafka_floor::consume_floor(&settings, &topic, workers))
                .collect::<anyhow::Result<Vec<kafka_floor::FloorRun>>>()?
                .into_iter()
                .min_by(|a, b| a.wall_s.total_cmp(&b.wall_s))
                .context("--repeat is at least 1")?;
            let floor_rate = floor.messages as f64 / floor.wall_s;
            eprintln!("{MARKER} kafka floor, {workers} thread(s): {floor_rate:.0} msgs/s");
            let group = format!("{topic}-w{workers}");
            let run = strings(
                &["run", "--until-end", "--rules", "none", "--group", &group],
                &target,
            );
            let name = format!("kafka, {partitions} partitions");
            self.throughput(name.clone(), run, (workers, EVENT), Feed::Nothing, shape)?;
            let mut names = vec![name.clone()];
            if let Some(flags) = self.variant() {
                // Each configuration reads the whole topic under a group of its own.
                let group = format!("{group}-variant");
                let run = strings(&["run", "--until-end", "--group", &group], &target);
                let named = format!("{name}, {}", flags.join(" "));
                let run: Vec<String> = run.into_iter().chain(flags).collect();
                self.throughput(named.clone(), run, (workers, EVENT), Feed::Nothing, shape)?;
                names.push(named);
            }
            for name in names {
                self.note_floor(&name, workers, &floor);
            }
        }
        Ok(())
    }

    /// Notes how the Kafka run named `name` at `workers` compares with its consume-only floor.
    fn note_floor(&mut self, name: &str, workers: usize, floor: &kafka_floor::FloorRun) {
        let floor_rate = floor.messages as f64 / floor.wall_s;
        let engine = self
            .rows
            .iter()
            .rev()
            .find(|r| r.source == name && r.workers == workers)
            .map(|r| (r.shape.messages as f64 / r.run.wall_s, r.run.cpu_s));
        if let Some((engine, engine_cpu_s)) = engine {
            self.notes.push(format!(
                "`{name}` at {workers} worker(s): {} messages/s ({engine_cpu_s:.2} CPU s), \
                 {:.0}% of the consume-only floor with {workers} thread(s) ({} messages in \
                 {:.2} s and {:.2} CPU s, {} messages/s).",
                thousands(engine),
                100.0 * engine / floor_rate,
                thousands(floor.messages as f64),
                floor.wall_s,
                floor.cpu_s,
                thousands(floor_rate)
            ));
        }
    }

    /// Runs one configuration `--repeat` times in `time` (`--time`); keeps the fastest run and
    /// the largest RSS.
    fn throughput(
        &mut self,
        source: String,
        mut child: Vec<String>,
        (workers, time): (usize, &str),
        feed: Feed<'_>,
        shape: Shape,
    ) -> anyhow::Result<()> {
        child.extend(["--format", "json", "--time", time, "--epoch"].map(String::from));
        let epoch = humantime::format_duration(self.args.epoch).to_string();
        child.extend([epoch, "-w".into(), workers.to_string()]);
        // A windowed run's last report covers its last window, not every message.
        let windowed = child
            .windows(2)
            .any(|pair| pair[0] == "--window" && pair[1] != "cumulative");
        let mut best: Option<Row> = None;
        let mut peak_rss_kib = 0;
        for _ in 0..self.args.repeat {
            let mut last = String::new();
            let run = run_child(&child, feed, &mut |_, line| {
                if !line.trim().is_empty() {
                    last = line.to_owned();
                }
            })?;
            peak_rss_kib = peak_rss_kib.max(run.peak_rss_kib);
            let row = Row {
                source: source.clone(),
                shape,
                workers,
                run,
                counted: if windowed {
                    Counted::Window
                } else {
                    Counted::All(counted(&last))
                },
            };
            eprintln!("{MARKER} {}", row.cells().join(" | "));
            if best.as_ref().is_none_or(|b| row.run.wall_s < b.run.wall_s) {
                best = Some(row);
            }
        }
        if let Some(mut row) = best {
            row.run.peak_rss_kib = peak_rss_kib;
            self.rows.push(row);
        }
        Ok(())
    }
}

/// The throughput runs' time: event time, except each file input's processing-time floor.
const EVENT: &str = "event";
/// Event time's floor: the same file in processing time (one epoch).
const PROCESSING: &str = "processing";

/// `fixed` words, then `tail`, as child arguments.
fn strings(fixed: &[&str], tail: &[String]) -> Vec<String> {
    let head = fixed.iter().map(|w| (*w).to_owned());
    head.chain(tail.iter().cloned()).collect()
}

/// Feeds `--input -` at a steady rate and times each report from its epoch's end.
fn paced(
    args: &BenchArgs,
    workers: usize,
    length: Duration,
    data: &[u8],
) -> anyhow::Result<Latency> {
    let fixed = [
        "run",
        "--input",
        "-",
        "--time",
        "processing",
        "--format",
        "json",
    ];
    let tail = [
        "--epoch".into(),
        humantime::format_duration(args.paced_epoch).to_string(),
        "-w".into(),
        workers.to_string(),
    ];
    let rate = args.paced_rate;
    let mut arrivals = Vec::new();
    let feed = Feed::Paced { data, rate, length };
    let run = run_child(&strings(&fixed, &tail), feed, &mut |at, line| {
        let report = serde_json::from_str::<serde_json::Value>(line).ok();
        if let Some(end) = report.and_then(|r| r["time"].as_str().and_then(parse_event_time)) {
            arrivals.push((at, end));
        }
    })?;
    // Only reports that arrived while messages flowed: the final one, printed when stdin
    // closes, is for an epoch that has not ended.
    let mut samples: Vec<f64> = arrivals
        .iter()
        .filter(|(at, _)| *at < run.fed.0)
        .skip(WARM_UP_REPORTS)
        .map(|(at, end)| millis(*at) - *end as f64)
        .collect();
    samples.sort_by(f64::total_cmp);
    let latency = Latency {
        workers,
        achieved_rate: run.fed.1 as f64 / length.as_secs_f64(),
        samples,
        peak_rss_kib: run.peak_rss_kib,
    };
    eprintln!("{MARKER} paced: {}", latency.cells().join(" | "));
    Ok(latency)
}

/// Generated inputs: kept in `--dir`, or in a temporary directory removed on drop.
struct DataDir {
    path: PathBuf,
    temporary: bool,
}

impl DataDir {
    fn new(dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let temporary = dir.is_none();
        let path = dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("hygroflow-bench-{}", std::process::id()))
        });
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(DataDir { path, temporary })
    }

    /// The input of `messages` lines over `sensors` sensors: its path and its bytes.
    fn input(
        &self,
        args: &BenchArgs,
        messages: u64,
        sensors: usize,
    ) -> anyhow::Result<(PathBuf, Vec<u8>)> {
        let (seed, bad_fraction) = (args.lines.seed, args.lines.bad_fraction);
        let interval = args.interval_ms;
        let scenarios = args.scenarios.to_string().replace([',', '@'], "-");
        let name = format!(
            "fleet-{messages}x{sensors}-seed{seed}-bad{bad_fraction}-every{interval}ms-{scenarios}.jsonl"
        );
        let path = self.path.join(name);
        if path.exists() {
            eprintln!("{MARKER} reusing {}", path.display());
            let data = std::fs::read(&path)?;
            return Ok((path, data));
        }
        let started = Instant::now();
        let generate = GenerateArgs {
            count: messages,
            lines: LineArgs { seed, bad_fraction },
            sensors,
            interval_ms: args.interval_ms,
            scenarios: args.scenarios.clone(),
        };
        let mut data = Vec::new();
        generate.write(&mut data)?;
        let mut file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        file.write_all(&data)?;
        file.sync_all()?;
        let seconds = started.elapsed().as_secs_f64();
        eprintln!("{MARKER} generated {} in {seconds:.1} s", path.display());
        Ok((path, data))
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The parse-only floor: lines split and validated on one thread, no dataflow.
#[derive(Clone, Copy, Debug)]
struct Floor {
    messages: u64,
    valid: u64,
    bytes: u64,
    seconds: f64,
}

impl Floor {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds
    }
}

fn parse_floor(data: &[u8]) -> Floor {
    let started = Instant::now();
    let (mut messages, mut valid, mut at) = (0u64, 0u64, 0usize);
    while at < data.len() {
        let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i);
        let line = &data[at..end];
        let parsed = parse(line, line.len(), DEFAULT_MAX_MESSAGE_BYTES);
        valid += u64::from(std::hint::black_box(parsed).is_ok());
        messages += 1;
        at = end + 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let bytes = data.len() as u64;
    Floor {
        messages,
        valid,
        bytes,
        seconds,
    }
}

/// The final report's valid plus rejected messages.
fn counted(last_report: &str) -> Option<i64> {
    let report: serde_json::Value = serde_json::from_str(last_report).ok()?;
    Some(report["total_messages"].as_i64()? + report["rejected_messages"].as_i64()?)
}

/// What was generated, and the floor for those bytes.
#[derive(Clone, Copy, Debug)]
struct Shape {
    /// Event-time epochs the input spans (about: the first may start mid-epoch).
    epochs: f64,
    messages: u64,
    sensors: usize,
    floor: f64,
}

/// One throughput configuration's result.
struct Row {
    source: String,
    shape: Shape,
    workers: usize,
    run: ChildRun,
    counted: Counted,
}

/// What a run's last report counted.
enum Counted {
    /// Valid plus rejected messages (`None`: no report).
    All(Option<i64>),
    /// A windowed run: its last report covers its last window only.
    Window,
}

/// Latencies from an epoch's end to its report's arrival, under a steady rate.
struct Latency {
    workers: usize,
    achieved_rate: f64,
    /// Milliseconds, sorted.
    samples: Vec<f64>,
    peak_rss_kib: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_counts_lines_and_valid_ones() {
        let good =
            br#"{"guid":"g","medicalimagingdevice":"CT1","payload":{"data":{"humidity":5}}}"#;
        let floor = parse_floor(&[&good[..], b"\nnope\n"].concat());
        assert_eq!((floor.messages, floor.valid), (2, 1));
    }

    #[test]
    fn counted_adds_valid_and_rejected() {
        assert_eq!(
            counted(r#"{"total_messages":7,"rejected_messages":3}"#),
            Some(10)
        );
        assert_eq!(counted("not json"), None);
    }

    #[test]
    fn child_arguments_keep_their_order() {
        let tail = ["-b".to_owned(), "k:9092".to_owned()];
        assert_eq!(
            strings(&["topic", "create"], &tail),
            ["topic", "create", "-b", "k:9092"]
        );
    }
}
