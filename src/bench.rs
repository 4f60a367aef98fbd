//! `hygroflow bench`: the end-to-end benchmark of the whole engine.
//!
//! The harness generates the simulated fleet's lines once (as `hygroflow generate` writes
//! them), then runs this very binary as children, one configuration at a time:
//!
//! ```text
//! memory : harness ─stdin pipe (full speed)─> hygroflow run --input -    --time event -w N
//! file   :                                     hygroflow run --input FILE --time event -w N
//! kafka  : hygroflow produce FILE ─> topic ─> hygroflow run -b B -t T --until-end     -w N
//! paced  : harness ─stdin, R msgs/s─────────> hygroflow run --input -    --time processing
//!          every JSON report's arrival minus its `time` (the epoch's end) is one latency
//! floor  : the same bytes through `message::parse` in a loop on the harness's thread
//! ```
//!
//! Each child runs under `hygroflow bench -- ARGS`, which spawns `hygroflow ARGS`, waits for
//! it and prints its wall time and peak RSS from `getrusage(RUSAGE_CHILDREN)`: with exactly one
//! child, that is the child's own high-water mark. Every throughput run is checked: its final
//! report must count every generated line (valid plus rejected). The results come out as a
//! Markdown table with the command, the machine and the date.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context};
use clap::{Args, ValueEnum};
use nix::sys::resource::{getrusage, UsageWho};

use crate::cli::GenerateArgs;
use crate::epoch::parse_event_time;
use crate::message::{parse, DEFAULT_MAX_MESSAGE_BYTES};

/// Flags of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Messages per generated input; a list (1000000,10000000) shows how memory grows.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10000000",
        value_name = "N,..."
    )]
    pub messages: Vec<u64>,
    /// Distinct sensors in the generated fleet; a list (10000,1000000) shows how memory grows.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2100",
        value_name = "N,..."
    )]
    pub sensors: Vec<usize>,
    /// Worker counts to run (`-w` of each child).
    #[arg(
        short = 'w',
        long,
        value_delimiter = ',',
        default_value = "1,2,4",
        value_name = "N,..."
    )]
    pub workers: Vec<usize>,
    /// Inputs to time (Kafka is added by --brokers).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "memory,file")]
    pub sources: Vec<BenchSource>,
    /// Epoch length of the throughput runs (event time).
    #[arg(long, default_value = "3s", value_name = "DURATION")]
    pub epoch: String,
    /// Messages per second of the paced latency run (0 skips it).
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub paced_rate: u64,
    /// How long the paced latency run feeds messages.
    #[arg(long, default_value = "20s", value_name = "DURATION")]
    pub paced_for: String,
    /// Epoch length of the paced latency run (processing time).
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub paced_epoch: String,
    /// Fraction of generated lines that are malformed (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub bad_fraction: f64,
    /// Seed of the generated fleet.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep generated inputs here and reuse them (default: a temporary directory, removed).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Also time reading from Kafka: each input is produced into a fresh topic here.
    #[arg(short = 'b', long, value_name = "BROKERS")]
    pub brokers: Option<String>,
    /// Partitions of each benchmark topic (default: the largest worker count).
    #[arg(long, value_name = "N")]
    pub partitions: Option<i32>,
    /// Measure one command instead: run `hygroflow ARGS`, print its wall time and peak RSS.
    #[arg(last = true, value_name = "ARGS")]
    pub child: Vec<OsString>,
}

/// Where a throughput run reads its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchSource {
    /// Stdin, fed from the harness's memory at full speed: the engine without file reads.
    Memory,
    /// The generated file, `--input FILE`.
    File,
}

/// The line a measured child's wrapper prints on stderr.
const MARKER: &str = "hygroflow bench:";

/// Runs the benchmark and prints its Markdown report to stdout.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if !args.child.is_empty() {
        return measure_one(&args.child);
    }
    ensure!(!args.workers.contains(&0), "--workers must be at least 1");
    ensure!(!args.messages.contains(&0), "--messages must be at least 1");
    ensure!(!args.sensors.contains(&0), "--sensors must be at least 1");
    let paced_for = humantime::parse_duration(&args.paced_for)
        .with_context(|| format!("--paced-for {}", args.paced_for))?;
    if cfg!(debug_assertions) {
        eprintln!(
            "{MARKER} warning: a debug build; time the release binary (cargo build --release)"
        );
    }
    let dir = DataDir::new(args.dir.clone())?;
    let machine = machine();
    let mut floors = Vec::new();
    let mut rows = Vec::new();
    let mut latencies = Vec::new();
    for &messages in &args.messages {
        for &sensors in &args.sensors {
            let (path, data) = dir.input(args, messages, sensors)?;
            let floor = parse_floor(&data);
            eprintln!(
                "{MARKER} parse floor {messages} x {sensors}: {:.0} msgs/s",
                floor.rate()
            );
            let mut timed = |source: String, extra: &[String], workers: usize, feed: Feed<'_>| {
                let mut child_args = extra.to_vec();
                child_args.extend(["--format", "json", "--time", "event"].map(String::from));
                child_args.extend(["--epoch".into(), args.epoch.clone()]);
                child_args.extend(["-w".into(), workers.to_string()]);
                let mut last = String::new();
                let run = run_child(&child_args, feed, &mut |_, line| {
                    if !line.trim().is_empty() {
                        last = line.to_owned();
                    }
                })?;
                let counted = counted(&last);
                let row = Row {
                    source,
                    messages,
                    sensors,
                    workers,
                    run,
                    counted,
                    floor: floor.rate(),
                };
                eprintln!("{MARKER} {}", row.cells().join(" | "));
                rows.push(row);
                anyhow::Ok(())
            };
            for &workers in &args.workers {
                for source in &args.sources {
                    match source {
                        BenchSource::Memory => timed(
                            "memory".into(),
                            &to_strings(["run", "--input", "-"]),
                            workers,
                            Feed::Full(&data),
                        )?,
                        BenchSource::File => {
                            let input = path.display().to_string();
                            timed(
                                "file".into(),
                                &to_strings(["run", "--input", &input]),
                                workers,
                                Feed::Nothing,
                            )?;
                        }
                    }
                }
            }
            if let Some(brokers) = &args.brokers {
                let topic = format!(
                    "hygroflow-bench-{}-{messages}-{sensors}",
                    std::process::id()
                );
                let partitions = args
                    .partitions
                    .unwrap_or(args.workers.iter().copied().max().unwrap_or(1) as i32);
                let create = to_strings([
                    "topic",
                    "create",
                    "-b",
                    brokers,
                    "-t",
                    &topic,
                    "--partitions",
                    &partitions.to_string(),
                ]);
                run_child(&create, Feed::Nothing, &mut |_, _| {})?;
                let produce = to_strings([
                    "produce",
                    "-b",
                    brokers,
                    "-t",
                    &topic,
                    &path.display().to_string(),
                ]);
                let produced = run_child(&produce, Feed::Nothing, &mut |_, _| {})?;
                eprintln!(
                    "{MARKER} produced {messages} messages in {:.2} s",
                    produced.wall_s
                );
                for &workers in &args.workers {
                    let group = format!("{topic}-w{workers}");
                    let consume = to_strings([
                        "run",
                        "-b",
                        brokers,
                        "-t",
                        &topic,
                        "--until-end",
                        "--group",
                        &group,
                    ]);
                    timed(
                        format!("kafka ({partitions} partitions)"),
                        &consume,
                        workers,
                        Feed::Nothing,
                    )?;
                }
            }
            floors.push((messages, sensors, floor));
            if args.paced_rate > 0 && latencies.is_empty() {
                for &workers in &args.workers {
                    latencies.push(paced(args, workers, paced_for, &data)?);
                }
            }
        }
    }
    print!("{}", report(args, &machine, &floors, &rows, &latencies));
    Ok(())
}

/// `hygroflow bench -- ARGS`: runs `hygroflow ARGS` with inherited stdio, then prints its wall
/// time and peak RSS (the only child this process waits for, so RUSAGE_CHILDREN is its own).
fn measure_one(args: &[OsString]) -> anyhow::Result<()> {
    let started = Instant::now();
    let status = Command::new(std::env::current_exe()?).args(args).status()?;
    let wall = started.elapsed().as_secs_f64();
    // Linux reports ru_maxrss in KiB.
    let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN)?.max_rss();
    eprintln!("{MARKER} wall_s={wall:.3} peak_rss_kib={peak_kib} status={status}");
    ensure!(status.success(), "hygroflow {:?} failed: {status}", args);
    Ok(())
}

/// How the harness feeds a child's stdin.
#[derive(Clone, Copy)]
enum Feed<'a> {
    /// Nothing: stdin is /dev/null.
    Nothing,
    /// All of it, as fast as the child reads.
    Full(&'a [u8]),
    /// Lines at `rate` per second for `length`, starting over at the end of `data`.
    Paced {
        data: &'a [u8],
        rate: u64,
        length: Duration,
    },
}

impl Feed<'_> {
    /// Writes to `stdin` and closes it; returns when it closed and how many lines went in.
    fn write(self, stdin: Option<ChildStdin>) -> std::io::Result<(SystemTime, u64)> {
        let Some(mut out) = stdin else {
            return Ok((SystemTime::now(), 0));
        };
        match self {
            Feed::Nothing => Ok((SystemTime::now(), 0)),
            Feed::Full(data) => {
                for chunk in data.chunks(1 << 20) {
                    out.write_all(chunk)?;
                }
                Ok((
                    SystemTime::now(),
                    memchr::memchr_iter(b'\n', data).count() as u64,
                ))
            }
            Feed::Paced { data, rate, length } => {
                let started = Instant::now();
                let (mut sent, mut at, mut chunk) = (0u64, 0usize, Vec::new());
                while started.elapsed() < length {
                    let due = (rate as f64 * started.elapsed().as_secs_f64()) as u64;
                    chunk.clear();
                    while sent < due {
                        at = if at >= data.len() { 0 } else { at };
                        let end =
                            memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i + 1);
                        chunk.extend_from_slice(&data[at..end]);
                        if chunk.last() != Some(&b'\n') {
                            chunk.push(b'\n');
                        }
                        (at, sent) = (end, sent + 1);
                    }
                    out.write_all(&chunk)?;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok((SystemTime::now(), sent))
            }
        }
    }
}

/// What a measured child did.
#[derive(Debug)]
struct ChildRun {
    wall_s: f64,
    peak_rss_kib: i64,
    /// When the harness closed the child's stdin, and the lines it wrote.
    fed: (SystemTime, u64),
}

/// Runs `hygroflow bench -- ARGS`, feeding its stdin and handing each stdout line, with its
/// arrival time, to `on_line`.
fn run_child(
    args: &[String],
    feed: Feed<'_>,
    on_line: &mut dyn FnMut(SystemTime, &str),
) -> anyhow::Result<ChildRun> {
    let stdin = if matches!(feed, Feed::Nothing) {
        Stdio::null()
    } else {
        Stdio::piped()
    };
    let mut child = Command::new(std::env::current_exe()?)
        .args(["bench", "--"])
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting a child")?;
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let (stdout, mut stderr) = (
        stdout.context("child stdout")?,
        stderr.context("child stderr")?,
    );
    let (status, fed, errors) = std::thread::scope(|s| {
        let feeder = s.spawn(move || feed.write(stdin));
        let errors = s.spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(line) => on_line(SystemTime::now(), &line),
                Err(_) => break,
            }
        }
        let status = child.wait();
        (status, feeder.join(), errors.join().unwrap_or_default())
    });
    let status = status?;
    let tail: Vec<&str> = errors.lines().rev().take(5).collect();
    ensure!(
        status.success(),
        "hygroflow {} failed ({status}): {}",
        args.join(" "),
        tail.join(" / ")
    );
    let fed = fed.map_err(|_| anyhow::anyhow!("the feeding thread panicked"))??;
    let marker = errors
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(MARKER))
        .context("no measurement from the child")?;
    let field = |name: &str| {
        marker
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
    };
    Ok(ChildRun {
        wall_s: field("wall_s").parse().context("wall_s")?,
        peak_rss_kib: field("peak_rss_kib").parse().context("peak_rss_kib")?,
        fed,
    })
}

/// Generated inputs: kept in `--dir`, or in a temporary directory removed on drop.
struct DataDir {
    path: PathBuf,
    temporary: bool,
}

impl DataDir {
    fn new(dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let (path, temporary) = match dir {
            Some(dir) => (dir, false),
            None => (
                std::env::temp_dir().join(format!("hygroflow-bench-{}", std::process::id())),
                true,
            ),
        };
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
        let name = format!(
            "fleet-{messages}x{sensors}-seed{}-bad{}.jsonl",
            args.seed, args.bad_fraction
        );
        let path = self.path.join(name);
        if path.exists() {
            eprintln!("{MARKER} reusing {}", path.display());
            return Ok((path.clone(), std::fs::read(&path)?));
        }
        let started = Instant::now();
        let generate = GenerateArgs {
            count: messages,
            seed: args.seed,
            bad_fraction: args.bad_fraction,
            sensors,
            interval_ms: 0.3,
        };
        let mut data = Vec::new();
        generate.write(&mut data)?;
        write_file(&path, &data)?;
        eprintln!(
            "{MARKER} generated {} ({:.0} MB) in {:.1} s",
            path.display(),
            data.len() as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
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

fn write_file(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(data)?;
    Ok(file.sync_all()?)
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
        valid += u64::from(
            std::hint::black_box(parse(line, line.len(), DEFAULT_MAX_MESSAGE_BYTES)).is_ok(),
        );
        messages += 1;
        at = end + 1;
    }
    Floor {
        messages,
        valid,
        bytes: data.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The final report's valid plus rejected messages.
fn counted(last_report: &str) -> Option<i64> {
    let report: serde_json::Value = serde_json::from_str(last_report).ok()?;
    Some(report["total_messages"].as_i64()? + report["rejected_messages"].as_i64()?)
}

/// One throughput run.
struct Row {
    source: String,
    messages: u64,
    sensors: usize,
    workers: usize,
    run: ChildRun,
    counted: Option<i64>,
    floor: f64,
}

impl Row {
    fn cells(&self) -> Vec<String> {
        let rate = self.messages as f64 / self.run.wall_s;
        let per_worker = rate / self.workers as f64;
        let check = match self.counted {
            Some(n) if n == self.messages as i64 => "yes".to_owned(),
            Some(n) => format!("**no: {n}**"),
            None => "**no report**".to_owned(),
        };
        vec![
            self.source.clone(),
            thousands(self.messages as f64),
            thousands(self.sensors as f64),
            self.workers.to_string(),
            format!("{:.2}", self.run.wall_s),
            thousands(rate),
            thousands(per_worker),
            format!("{:.0}%", 100.0 * per_worker / self.floor),
            format!("{:.0}", self.run.peak_rss_kib as f64 / 1024.0),
            check,
        ]
    }
}

/// Latencies from an epoch's end to its report's arrival, under a steady rate.
struct Latency {
    workers: usize,
    achieved_rate: f64,
    /// Milliseconds, sorted.
    samples: Vec<f64>,
    peak_rss_kib: i64,
}

/// Reports skipped at the start of a paced run (start-up, the first partial epoch).
const WARM_UP_REPORTS: usize = 2;

fn paced(
    args: &BenchArgs,
    workers: usize,
    length: Duration,
    data: &[u8],
) -> anyhow::Result<Latency> {
    let child_args = to_strings([
        "run",
        "--input",
        "-",
        "--time",
        "processing",
        "--format",
        "json",
    ])
    .into_iter()
    .chain([
        "--epoch".into(),
        args.paced_epoch.clone(),
        "-w".into(),
        workers.to_string(),
    ])
    .collect::<Vec<_>>();
    let mut arrivals = Vec::new();
    let run = run_child(
        &child_args,
        Feed::Paced {
            data,
            rate: args.paced_rate,
            length,
        },
        &mut |at, line| {
            let end = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|r| r["time"].as_str().and_then(parse_event_time));
            if let Some(end) = end {
                arrivals.push((at, end));
            }
        },
    )?;
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
    eprintln!(
        "{MARKER} paced w={workers}: {}",
        latency.cells().join(" | ")
    );
    Ok(latency)
}

impl Latency {
    fn cells(&self) -> Vec<String> {
        let quantile = |q: f64| match self.samples.len() {
            0 => "-".to_owned(),
            n => format!(
                "{:.1}",
                self.samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
            ),
        };
        vec![
            self.workers.to_string(),
            thousands(self.achieved_rate),
            self.samples.len().to_string(),
            quantile(0.5),
            quantile(0.99),
            quantile(1.0),
            format!("{:.0}", self.peak_rss_kib as f64 / 1024.0),
        ]
    }
}

fn millis(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// The machine, as the table's header states it.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0);
    format!(
        "{cpus} CPUs (nproc), {model}, {:.0} GiB RAM, {}",
        mem_kib / 1048576.0,
        std::env::consts::OS
    )
}

fn report(
    args: &BenchArgs,
    machine: &str,
    floors: &[(u64, usize, Floor)],
    rows: &[Row],
    latencies: &[Latency],
) -> String {
    let command: Vec<String> = std::iter::once("hygroflow".to_owned())
        .chain(std::env::args().skip(1))
        .collect();
    let mut out = format!(
        "### hygroflow bench\n\n- command: `{}`\n- machine: {machine}\n- date: {}\n- hygroflow {}{}, \
         inputs from `hygroflow generate` (seed {}, {} malformed), event time, `--epoch {}`\n\n",
        command.join(" "),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) { " (DEBUG BUILD)" } else { "" },
        args.seed,
        args.bad_fraction,
        args.epoch,
    );
    out += "Parse-only floor: the same bytes split into lines and validated by `message::parse` \
            on one thread, no dataflow.\n\n| messages | sensors | bytes/line | messages/s | MB/s | valid |\n|---:|---:|---:|---:|---:|---:|\n";
    for (messages, sensors, f) in floors {
        out += &format!(
            "| {} | {} | {:.0} | {} | {:.0} | {} |\n",
            thousands(*messages as f64),
            thousands(*sensors as f64),
            f.bytes as f64 / f.messages as f64,
            thousands(f.rate()),
            f.bytes as f64 / f.seconds / 1e6,
            thousands(f.valid as f64)
        );
    }
    out += "\nEngine, end to end (child process start to exit):\n\n| input | messages | sensors | workers | wall s | messages/s | messages/s per worker | per worker / floor | peak RSS MB | all counted |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
    for row in rows {
        out += &format!("| {} |\n", row.cells().join(" | "));
    }
    if let Some(best) = rows
        .iter()
        .filter(|r| r.source == "file")
        .max_by(|a, b| a.per_worker().total_cmp(&b.per_worker()))
    {
        out += &format!(
            "\nHeadline: from a file, {} messages/s per worker at {} worker(s) = {:.0}% of the parse-only floor.\n",
            thousands(best.per_worker()),
            best.workers,
            100.0 * best.per_worker() / best.floor
        );
    }
    if !latencies.is_empty() {
        out += &format!(
            "\nLatency from an epoch's end to its JSON report on stdout: `--input -` fed at {} messages/s \
             for {}, processing time, `--epoch {}` (first {WARM_UP_REPORTS} reports skipped).\n\n\
             | workers | achieved messages/s | reports | p50 ms | p99 ms | max ms | peak RSS MB |\n|---:|---:|---:|---:|---:|---:|---:|\n",
            thousands(args.paced_rate as f64),
            args.paced_for,
            args.paced_epoch
        );
        for l in latencies {
            out += &format!("| {} |\n", l.cells().join(" | "));
        }
    }
    out
}

impl Row {
    fn per_worker(&self) -> f64 {
        self.messages as f64 / self.run.wall_s / self.workers as f64
    }
}

fn to_strings<const N: usize>(words: [&str; N]) -> Vec<String> {
    words.map(String::from).to_vec()
}

/// `1234567.8` as `1,234,568`.
fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }

    #[test]
    fn floor_counts_lines_and_valid_ones() {
        let floor = parse_floor(b"{\"guid\":\"g\",\"medicalimagingdevice\":\"CT1\",\"payload\":{\"data\":{\"humidity\":5}}}\nnope\n");
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
}
