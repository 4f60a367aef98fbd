//! Random kills (gh-12 point 3): a seeded plan kills the job with SIGKILL at random moments
//! while readings are still arriving: after a random delay, and (debug builds, which compile
//! the fault injection of `src/fault.rs`) at named points inside a checkpoint write, inside
//! the `COMMITTED` marker's write, between the marker and the offset commit, after the offset
//! commit and after the reports are printed. A whole 2-process cluster is killed the same way.
//! After every restart no report shows fewer messages than one before it, and the run that
//! goes to the end reports what an uninterrupted run does, with every dead letter and every
//! epoch's published report exactly once.
//!
//! The seed is printed first (a failing test shows it): `HYGROFLOW_KILL_SEED=S` replays a
//! plan. `HYGROFLOW_RANDOM_KILLS=N` sets the number of kills of the single process (12 by
//! default; the long variant, e.g. 100, takes minutes).

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use broker::{consume_all, Broker};
use common::{assert_report_matches, free_port, generate, hygroflow, json_lines, recompute, run};
use hygroflow::fault::POINTS;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// How one run of the job ends.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// SIGKILL from the test, this long after the first report (or the start, for a run that
    /// prints none within 20 s).
    After(Duration),
    /// The job kills itself the `n`th time it reaches the fault point.
    At(&'static str, u64),
}

/// The seed: `HYGROFLOW_KILL_SEED`, or one from the clock, printed either way.
fn seed() -> u64 {
    let seed = std::env::var("HYGROFLOW_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        });
    eprintln!("random kills: seed {seed} (HYGROFLOW_KILL_SEED={seed} replays this plan)");
    seed
}

/// `kills` kills: with fault injection, every point once (in random order) and the rest
/// random points or random delays; without it, random delays.
fn plan(rng: &mut ChaCha8Rng, kills: usize) -> Vec<Kill> {
    let faults = cfg!(debug_assertions);
    let mut plan: Vec<Kill> = Vec::new();
    if faults {
        plan.extend(POINTS.iter().map(|p| Kill::At(p, rng.gen_range(1..=6))));
    }
    while plan.len() < kills {
        plan.push(if faults && rng.gen_bool(0.5) {
            Kill::At(POINTS[rng.gen_range(0..POINTS.len())], rng.gen_range(1..=8))
        } else {
            Kill::After(Duration::from_millis(rng.gen_range(0..1500)))
        });
    }
    // A seeded shuffle.
    for i in (1..plan.len()).rev() {
        plan.swap(i, rng.gen_range(0..=i));
    }
    plan
}

/// Generated readings (1% bad), cut into chunks that a thread produces one by one.
struct Feed {
    _dir: tempfile::TempDir,
    bytes: Vec<u8>,
    chunks: Vec<PathBuf>,
}

impl Feed {
    fn generate(count: u64, seed: u64, chunks: usize) -> Feed {
        let dir = tempfile::tempdir().expect("tempdir");
        let all = dir.path().join("all.jsonl");
        generate(&all, count, seed, 0.01);
        let bytes = std::fs::read(&all).expect("generated");
        let lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
        let per_chunk = lines.len().div_ceil(chunks);
        let chunks = lines
            .chunks(per_chunk)
            .enumerate()
            .map(|(i, chunk)| {
                let path = dir.path().join(format!("chunk-{i}.jsonl"));
                std::fs::write(&path, chunk.concat()).expect("chunk");
                path
            })
            .collect();
        Feed {
            _dir: dir,
            bytes,
            chunks,
        }
    }

    /// Produces one chunk every `pause` into `topic`, on a thread; `stop` ends it early.
    fn produce(&self, brokers: &str, topic: &str, pause: Duration) -> Producer {
        let (chunks, brokers, topic) = (self.chunks.clone(), brokers.to_owned(), topic.to_owned());
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for (i, chunk) in chunks.iter().enumerate() {
                if i > 0 && !stopped.load(Ordering::SeqCst) {
                    std::thread::sleep(pause);
                }
                let out = run(&[
                    "produce",
                    "-b",
                    &brokers,
                    "-t",
                    &topic,
                    chunk.to_str().expect("utf8"),
                ]);
                assert!(
                    out.status.success(),
                    "produce: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        });
        Producer { stop, thread }
    }
}

/// The thread producing a [`Feed`].
struct Producer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Producer {
    /// Produces what is left without pausing, and waits until it is all in the topic.
    fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("producer");
    }
}

/// A started job (or process of a cluster) and the reports it printed, read on a thread.
struct Running {
    child: Child,
    reports: mpsc::Receiver<String>,
    reader: JoinHandle<()>,
}

impl Running {
    fn spawn(mut command: Command, kill: Kill, log: &Path) -> Running {
        if let Kill::At(point, n) = kill {
            command.env("HYGROFLOW_FAULT", format!("{point}:{n}"));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("job log");
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, reports) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            reports,
            reader,
        }
    }

    /// Waits for the fault point (or `limit`), or kills after the delay. Returns whether the
    /// job was killed while running, and the `(epoch, total_messages)` of its reports.
    fn end(mut self, kill: Kill, limit: Duration) -> (bool, Vec<(u64, i64)>) {
        let mut lines = Vec::new();
        let killed = match kill {
            Kill::After(delay) => {
                if !delay.is_zero() {
                    lines.extend(self.reports.recv_timeout(Duration::from_secs(20)).ok());
                }
                std::thread::sleep(delay);
                let running = self.child.try_wait().expect("try_wait").is_none();
                let _ = self.child.kill();
                running
            }
            Kill::At(..) => {
                let deadline = Instant::now() + limit;
                loop {
                    if let Some(status) = self.child.try_wait().expect("try_wait") {
                        break status.signal() == Some(9);
                    }
                    if Instant::now() >= deadline {
                        let _ = self.child.kill();
                        break false;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        let _ = self.child.wait();
        self.reader.join().expect("reader");
        lines.extend(self.reports.try_iter());
        let reports: Vec<Value> = lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (killed, totals(&reports))
    }
}

/// `(epoch, total_messages)` of each report.
fn totals(reports: &[Value]) -> Vec<(u64, i64)> {
    reports
        .iter()
        .map(|r| {
            (
                r["epoch"].as_u64().expect("epoch"),
                r["total_messages"].as_i64().expect("total_messages"),
            )
        })
        .collect()
}

/// Reports across restarts: epochs move forward within a run, and no report shows fewer
/// messages than any report before it, in this run or an earlier one.
#[derive(Default)]
struct Monotonic {
    most: i64,
    reports: usize,
}

impl Monotonic {
    fn check(&mut self, reports: &[(u64, i64)], what: &str) {
        assert!(
            reports.windows(2).all(|w| w[0].0 < w[1].0),
            "{what}: epochs out of order {reports:?}"
        );
        for (epoch, total) in reports {
            assert!(
                *total >= self.most,
                "{what}: the report of epoch {epoch} shows {total} messages, an earlier one {}",
                self.most
            );
            self.most = *total;
        }
        self.reports += reports.len();
    }
}

/// The args of a live job on `topic` that checkpoints into `state`.
fn job_args(brokers: &str, topic: &str, state: &Path) -> Vec<String> {
    [
        "run",
        "-b",
        brokers,
        "-t",
        topic,
        "--format",
        "json",
        "--epoch",
        "100ms",
        "--group",
        &format!("{topic}-group"),
        "--state-dir",
        state.to_str().expect("utf8"),
        "--results-topic",
        &format!("{topic}.results"),
    ]
    .map(str::to_owned)
    .to_vec()
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The final run's report equals the recomputation; dead letters and published reports are
/// each there once.
fn assert_uninterrupted(brokers: &str, topic: &str, last: &Value, feed: &Feed) {
    let expected = recompute(&feed.bytes);
    let in_topic = consume_all(brokers, topic, 4).len();
    let lines = feed.bytes.iter().filter(|b| **b == b'\n').count();
    assert_eq!(in_topic, lines, "the topic holds each line once");
    assert_report_matches(last, &expected);
    let letters = consume_all(brokers, &format!("{topic}.dlq"), 1);
    assert_eq!(
        letters.len() as i64,
        expected.rejected_messages,
        "one dead letter per rejected message"
    );
    let published = consume_all(brokers, &format!("{topic}.results"), 1);
    let epochs: BTreeSet<Vec<u8>> = published.iter().filter_map(|r| r.key.clone()).collect();
    assert_eq!(published.len(), epochs.len(), "no epoch published twice");
}

#[test]
fn random_kills_of_a_job_never_take_a_report_back_and_end_exact() {
    let seed = seed();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let kills: usize = std::env::var("HYGROFLOW_RANDOM_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(12);
    let plan = plan(&mut rng, kills);
    let broker = Broker::start();
    let brokers = broker.brokers();
    let topic = "kills";
    broker.create_topic(topic, 4);
    broker.create_topic(&format!("{topic}.dlq"), 1);
    let feed = Feed::generate(60_000 + 10_000 * kills as u64, seed, 12 + kills);
    // Readings keep arriving through most of the kills.
    let producer = feed.produce(&brokers, topic, Duration::from_millis(1200));
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, log) = (dir.path().join("state"), dir.path().join("job.log"));
    let args = job_args(&brokers, topic, &state);

    let mut monotonic = Monotonic::default();
    let mut hit: BTreeSet<&str> = BTreeSet::new();
    for (i, kill) in plan.iter().enumerate() {
        let mut command = hygroflow();
        // A restart may change the number of workers: partitions change hands.
        command.args(&args).arg("-w").arg(["1", "2"][i % 2]);
        let (killed, reports) =
            Running::spawn(command, *kill, &log).end(*kill, Duration::from_secs(60));
        assert!(
            killed,
            "kill {i} ({kill:?}) found the job ended, seed {seed}: {}",
            log_text(&log)
        );
        if let Kill::At(point, _) = kill {
            hit.insert(point);
        }
        eprintln!(
            "kill {i} ({kill:?}): {} reports, last {:?}",
            reports.len(),
            reports.last()
        );
        monotonic.check(&reports, &format!("kill {i} ({kill:?}), seed {seed}"));
    }
    if cfg!(debug_assertions) {
        assert_eq!(hit.len(), POINTS.len(), "every fault point: {hit:?}");
    }
    producer.finish();

    let mut command = hygroflow();
    command.args(&args).args(["--until-end", "-w", "2"]);
    let out = command.output().expect("final run");
    assert!(
        out.status.success(),
        "seed {seed}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports = json_lines(&out.stdout);
    monotonic.check(&totals(&reports), &format!("the final run, seed {seed}"));
    assert!(
        monotonic.reports > kills,
        "reports were printed between kills"
    );
    let last = reports.last().expect("final report");
    assert_uninterrupted(&brokers, topic, last, &feed);
    assert!(
        !log_text(&log).contains("panicked"),
        "seed {seed}: {}",
        log_text(&log)
    );
}

#[test]
fn random_kills_of_a_whole_cluster_resume_exactly() {
    let seed = seed();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let broker = Broker::start();
    let brokers = broker.brokers();
    let topic = "cluster-kills";
    broker.create_topic(topic, 4);
    broker.create_topic(&format!("{topic}.dlq"), 1);
    let feed = Feed::generate(80_000, seed, 16);
    let producer = feed.produce(&brokers, topic, Duration::from_millis(900));
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(
        &hosts,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .expect("hostfile");
    let process = |p: usize| {
        let state = dir.path().join(format!("state-{p}"));
        let mut command = hygroflow();
        command
            .args(job_args(&brokers, topic, &state))
            .args(["-n", "2", "-p", &p.to_string(), "-w", "2"])
            .arg("-h")
            .arg(&hosts)
            .args(["--connect-timeout", "30s"]);
        (command, dir.path().join(format!("process-{p}.log")))
    };

    // Process 0 checkpoints its marker and prints; either process may be hit by a fault.
    let mut monotonic = Monotonic::default();
    for round in 0..5 {
        let faulty = rng.gen_range(0..2usize);
        // Only process 0 writes the marker and prints.
        let points: &[&'static str] = if faulty == 0 {
            &POINTS
        } else {
            &["log-append", "checkpoint-write", "after-offsets"]
        };
        let kill = if cfg!(debug_assertions) && round % 2 == 1 {
            Kill::At(points[rng.gen_range(0..points.len())], rng.gen_range(1..=6))
        } else {
            Kill::After(Duration::from_millis(rng.gen_range(0..1500)))
        };
        let running: Vec<Running> = (0..2)
            .map(|p| {
                let (command, log) = process(p);
                let this = if p == faulty {
                    kill
                } else {
                    Kill::After(Duration::ZERO)
                };
                Running::spawn(command, this, &log)
            })
            .collect();
        let mut ends = Vec::new();
        let mut running = running.into_iter();
        let (first, second) = (running.next(), running.next());
        let (faulty_run, other) = if faulty == 0 {
            (first, second)
        } else {
            (second, first)
        };
        // The faulty process ends first (its fault, or the delay); then the whole cluster is
        // killed.
        ends.push((
            faulty,
            faulty_run.expect("run").end(kill, Duration::from_secs(60)),
        ));
        let other_end = other
            .expect("run")
            .end(Kill::After(Duration::ZERO), Duration::ZERO);
        ends.push((1 - faulty, other_end));
        for (p, (_, reports)) in ends {
            if p == 0 {
                monotonic.check(
                    &reports,
                    &format!("round {round} ({kill:?} in process {faulty}), seed {seed}"),
                );
            }
        }
    }
    producer.finish();

    let finals: Vec<Child> = (0..2)
        .map(|p| {
            let (mut command, _) = process(p);
            command
                .arg("--until-end")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let outputs: Vec<_> = finals
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    for out in &outputs {
        assert!(
            out.status.success(),
            "seed {seed}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let reports = json_lines(&outputs[0].stdout);
    monotonic.check(&totals(&reports), &format!("the final run, seed {seed}"));
    let last = reports.last().expect("final report");
    assert_uninterrupted(&brokers, topic, last, &feed);
}
