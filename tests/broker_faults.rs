//! Broker faults in the middle of a run (issue 12 point 4), against a real broker (Tansu): the
//! broker killed with `kill -9` and restarted on its SQLite storage, the network to it cut for
//! 10 s, and a broker that answers slowly. In each, the job's final report equals a naive
//! recomputation of everything produced (nothing lost, nothing counted twice), every rejected
//! message is in the dead-letter topic exactly once, and the job logs one line when it loses
//! the broker and one when it has it back.
//!
//! `HYGROFLOW_LONG_TESTS=1` runs the long variants: five times the messages, and three faults
//! in a row.

#[path = "common/broker.rs"]
mod broker;
mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use broker::{committed_offsets, consume_all, group_consumer, Broker, Readings};
use common::{assert_report_matches, generate, recompute};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

/// Partitions of every input topic: two per worker.
const PARTITIONS: i32 = 4;
/// Fraction of malformed lines: they go to the dead-letter topic.
const BAD: f64 = 0.01;
/// Each line of the job's log that begins an outage, and each that ends one.
const LOST: &str = "kafka brokers unreachable";
const BACK: &str = "kafka brokers answer again";

/// Whether the long variants run (`HYGROFLOW_LONG_TESTS=1`).
fn long() -> bool {
    std::env::var("HYGROFLOW_LONG_TESTS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Messages produced before a fault, and again after it.
fn batch() -> u64 {
    if long() {
        100_000
    } else {
        20_000
    }
}

/// Faults in a row (one batch produced after each).
fn faults() -> u32 {
    if long() {
        3
    } else {
        1
    }
}

/// `hygroflow run` on a topic, live (without `--until-end`), with a state directory, run the
/// way an operator runs it: its stderr goes to a file, its JSON reports are read as they come,
/// and if it exits before it is stopped, it is started again on the same state directory.
struct Job {
    args: Vec<String>,
    log: PathBuf,
    child: Child,
    reports: mpsc::Receiver<Value>,
    /// The last report it printed.
    last: Option<Value>,
    /// Times it exited by itself and was started again.
    restarts: u32,
}

impl Job {
    /// Starts the job on `topic` with 2 workers, its state and log in `dir`.
    fn start(brokers: &str, topic: &str, dir: &Path) -> Job {
        let state = dir.join("state");
        let args: Vec<String> = [
            "run",
            "-b",
            brokers,
            "-t",
            topic,
            "--format",
            "json",
            "--epoch",
            "200ms",
            "-w",
            "2",
            "--group",
            &format!("{topic}-job"),
            "--state-dir",
            state.to_str().expect("utf8"),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let log = dir.join("job.log");
        let (child, reports) = spawn(&args, &log);
        Job {
            args,
            log,
            child,
            reports,
            last: None,
            restarts: 0,
        }
    }

    /// The first report with `total` messages (valid and rejected), starting the job again
    /// whenever it exits meanwhile (at most 3 times), within `within`.
    fn wait_for_total(&mut self, total: i64, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            assert!(
                Instant::now() < deadline,
                "no report with {total} messages within {within:?}: {}",
                self.log_text()
            );
            match self.reports.recv_timeout(Duration::from_millis(200)) {
                Ok(report) => {
                    self.last = Some(report.clone());
                    if seen(&report) >= total {
                        return report;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => self.restart_if_exited(),
            }
        }
    }

    /// An operator starts a job that exited by itself again.
    fn restart_if_exited(&mut self) {
        let Some(status) = self.child.try_wait().expect("try_wait") else {
            std::thread::sleep(Duration::from_millis(50));
            return;
        };
        assert!(
            self.restarts < 3,
            "the job exited a fourth time ({status}): {}",
            self.log_text()
        );
        eprintln!("the job exited by itself ({status}); starting it again");
        self.restarts += 1;
        (self.child, self.reports) = spawn(&self.args, &self.log);
    }

    /// Stops the job with Ctrl-C, checks that it exits cleanly, and returns its last report.
    fn stop(mut self) -> Value {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "{status}: {}", self.log_text());
        let last = self.reports.iter().last().or(self.last.take());
        last.expect("a final report")
    }

    /// Waits until what the job logged passes `check`, within `within`.
    fn wait_for_log(&mut self, check: impl Fn(&str) -> bool, within: Duration) {
        let deadline = Instant::now() + within;
        while !check(&self.log_text()) {
            assert!(
                Instant::now() < deadline,
                "the job's log did not show it within {within:?}: {}",
                self.log_text()
            );
            // Its reports are read meanwhile, so that it never blocks on a full pipe.
            match self.reports.recv_timeout(Duration::from_millis(200)) {
                Ok(report) => self.last = Some(report),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => self.restart_if_exited(),
            }
        }
    }

    /// What the job logged, over all its starts.
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // Its directory goes with the test's temporary directory.
            let kept = std::env::temp_dir().join(format!(
                "hygroflow-job-{}-{}.log",
                std::process::id(),
                self.args[4]
            ));
            if std::fs::copy(&self.log, &kept).is_ok() {
                eprintln!("job log kept at {}", kept.display());
            }
        }
    }
}

/// Starts `hygroflow args` with its info lines appended to `log`; its JSON reports come on
/// the channel, which closes when its stdout does.
fn spawn(args: &[String], log: &Path) -> (Child, mpsc::Receiver<Value>) {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("job log");
    let mut child = common::hygroflow()
        .env("RUST_LOG", "info")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn hygroflow");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(report) = serde_json::from_str::<Value>(&line) {
                if tx.send(report).is_err() {
                    break;
                }
            }
        }
    });
    (child, rx)
}

/// Messages a report has seen: valid and rejected.
fn seen(report: &Value) -> i64 {
    report["total_messages"].as_i64().expect("total_messages")
        + report["rejected_messages"]
            .as_i64()
            .expect("rejected_messages")
}

/// `count` more generated lines (seed `seed`) produced into `topic`; returns their bytes.
fn produce_more(brokers: &str, topic: &str, dir: &Path, count: u64, seed: u64) -> Vec<u8> {
    let path = dir.join(format!("more-{seed}.jsonl"));
    generate(&path, count, seed, BAD);
    let out = common::run(&[
        "produce",
        "-b",
        brokers,
        "-t",
        topic,
        path.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "produce: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&path).expect("read the lines")
}

/// Checks the end of a run: the topic holds exactly the produced lines, the final report
/// equals their recomputation, and the dead-letter topic holds each rejected line once.
fn assert_exactly_once(brokers: &str, topic: &str, produced: &[u8], last: &Value) {
    let mut lines: Vec<&[u8]> = produced.split(|b| *b == b'\n').collect();
    if produced.ends_with(b"\n") {
        lines.pop();
    }
    let mut held: Vec<Vec<u8>> = consume_all(brokers, topic, PARTITIONS)
        .into_iter()
        .map(|r| r.payload.unwrap_or_default())
        .collect();
    let mut lines: Vec<Vec<u8>> = lines.into_iter().map(<[u8]>::to_vec).collect();
    held.sort();
    lines.sort();
    assert!(
        held == lines,
        "the broker holds {} messages for {} produced",
        held.len(),
        lines.len()
    );
    let expected = recompute(produced);
    assert_report_matches(last, &expected);
    let letters = consume_all(brokers, &format!("{topic}.dlq"), 1);
    let sources: HashSet<(String, String)> = letters
        .iter()
        .map(|l| {
            let header = |k| l.header(k).expect("source header").to_owned();
            (
                header("hygroflow.source.partition"),
                header("hygroflow.source.offset"),
            )
        })
        .collect();
    assert_eq!(
        sources.len() as i64,
        expected.rejected_messages,
        "every reject has a dead letter"
    );
    assert_eq!(letters.len(), sources.len(), "no dead letter twice");
}

/// The workers whose consumers' outage lines are checked.
const WORKERS: [&str; 2] = ["worker 0", "worker 1"];

/// The outage lines of `worker`'s consumer in `log`, in order: "lost" and "back".
fn outage_lines(log: &str, worker: &str) -> Vec<&'static str> {
    // Its dead-letter producer is "worker N dead letters".
    let client = format!("client={worker} ");
    let producer = format!("client={worker} dead letters");
    log.lines()
        .filter(|l| l.contains(&client) && !l.contains(&producer))
        .filter_map(|l| {
            if l.contains(LOST) {
                Some("lost")
            } else if l.contains(BACK) {
                Some("back")
            } else {
                None
            }
        })
        .collect()
}

/// Checks that each worker's consumer logged, for each of `faults` faults, one line when it
/// lost the broker and then one when a broker answered again.
fn assert_fault_lines(log: &str, faults: u32) {
    let expected: Vec<&str> = (0..faults).flat_map(|_| ["lost", "back"]).collect();
    for worker in WORKERS {
        assert_eq!(
            outage_lines(log, worker),
            expected,
            "{worker}: one line when the broker is lost, one when it answers again, per fault:\n{log}"
        );
    }
}

/// Commits `offsets` for `group` (a witness that the broker keeps committed offsets).
fn commit(brokers: &str, group: &str, topic: &str, offsets: &BTreeMap<i32, Offset>) {
    let consumer = group_consumer(brokers, group);
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in offsets {
        tpl.add_partition_offset(topic, p, o).expect("offset");
    }
    consumer
        .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .expect("commit");
}

/// A topic of `batch()` readings with its dead-letter topic, produced with ordinary batching.
fn first_batch(broker: &Broker, topic: &str) -> Readings {
    broker.topic_with_readings(topic, PARTITIONS as u32, batch(), 1, BAD, &[])
}

/// Lines in `produced`.
fn count(produced: &[u8]) -> i64 {
    produced.iter().filter(|b| **b == b'\n').count() as i64
}

/// Runs `job` through `faults()` faults: each strikes once the job has reported some of the
/// newest batch (while it reads it, unless it read it all at once), `fault` does it and
/// undoes it, and once every worker has logged that a broker answers again, another half batch
/// is produced. Returns the job's last report, after every message, once it has stopped with
/// Ctrl-C.
fn through_faults(
    mut job: Job,
    brokers: &str,
    topic: &str,
    dir: &Path,
    produced: &mut Vec<u8>,
    mut fault: impl FnMut(),
) -> Value {
    let mut before = 0;
    for round in 0..faults() {
        let at = job.wait_for_total(before + 1, Duration::from_secs(60));
        eprintln!(
            "fault {round} with {} of {} messages read",
            seen(&at) - before,
            count(produced) - before
        );
        fault();
        // A worker with nothing left to read hears from the broker at its next metadata
        // request (every 5 s).
        let recovered = |log: &str| {
            WORKERS.iter().all(|w| {
                outage_lines(log, w)
                    .iter()
                    .filter(|l| **l == "back")
                    .count()
                    > round as usize
            })
        };
        job.wait_for_log(recovered, Duration::from_secs(60));
        before = count(produced);
        let seed = 100 + u64::from(round);
        produced.extend(produce_more(brokers, topic, dir, batch() / 2, seed));
    }
    job.wait_for_total(count(produced), Duration::from_secs(120));
    let restarts = job.restarts;
    let log = job.log_text();
    let last = job.stop();
    assert_eq!(restarts, 0, "the job survived every fault: {log}");
    assert_fault_lines(&log, faults());
    last
}

#[test]
fn gh_12_broker_kill_9_and_restart_on_sqlite_loses_nothing_and_counts_nothing_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start_durable(dir.path());
    let brokers = broker.brokers();
    let readings = first_batch(&broker, "crash");
    let mut produced = readings.bytes.clone();
    let job = Job::start(&brokers, "crash", readings.dir.path());
    // A witness that the broker keeps committed offsets (the job's own are committed again
    // every epoch, so they would not tell).
    let witness: BTreeMap<i32, Offset> = (0..PARTITIONS)
        .map(|p| (p, Offset::Offset(i64::from(p) + 1)))
        .collect();
    commit(&brokers, "witness", "crash", &witness);
    let last = through_faults(
        job,
        &brokers,
        "crash",
        readings.dir.path(),
        &mut produced,
        || {
            broker.kill_9();
            // Long enough for every client to notice, and for the job to close epochs meanwhile.
            std::thread::sleep(Duration::from_secs(3));
            broker.restart();
            let kept: BTreeMap<i32, Offset> =
                committed_offsets(&brokers, "witness", "crash", PARTITIONS)
                    .into_iter()
                    .map(|(p, o)| (p, Offset::Offset(o)))
                    .collect();
            assert_eq!(kept, witness, "a restarted broker keeps committed offsets");
        },
    );
    assert_exactly_once(&brokers, "crash", &produced, &last);
}

#[test]
fn gh_12_network_cut_for_10_s_loses_nothing_and_counts_nothing_twice() {
    let (broker, proxy) = proxy::broker_behind_proxy();
    let brokers = broker.brokers();
    let readings = first_batch(&broker, "cut");
    let mut produced = readings.bytes.clone();
    let dir = readings.dir.path();
    // Slowed down until the cut, so that it comes while the job reads (Tansu in memory serves
    // the whole batch within the job's first epoch otherwise).
    proxy.slow_down(Duration::from_millis(50));
    let job = Job::start(&brokers, "cut", dir);
    let last = through_faults(job, &brokers, "cut", dir, &mut produced, || {
        proxy.slow_down(Duration::ZERO);
        proxy.cut();
        std::thread::sleep(Duration::from_secs(10));
        proxy.restore();
    });
    assert_exactly_once(&brokers, "cut", &produced, &last);
}

#[test]
fn gh_12_slow_broker_loses_nothing_and_the_job_does_not_give_up() {
    let (broker, proxy) = proxy::broker_behind_proxy();
    let brokers = broker.brokers();
    let count = batch() / 2;
    let readings = broker.topic_with_readings("slow", PARTITIONS as u32, count, 3, BAD, &[]);
    // Every request and every answer 300 ms late (each 64 KiB of an answer another 300 ms):
    // a fetch round trip takes 600 ms or more, past the 500 ms the live source gives a
    // metadata request.
    proxy.slow_down(Duration::from_millis(300));
    let started = Instant::now();
    let out = common::hygroflow()
        .env("RUST_LOG", "info")
        .args([
            "run",
            "-b",
            &brokers,
            "-t",
            "slow",
            "--format",
            "json",
            "--epoch",
            "200ms",
            "-w",
            "2",
            "--until-end",
            "--state-dir",
        ])
        .arg(readings.dir.path().join("state"))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    eprintln!(
        "{count} messages through a broker 300 ms slow each way in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    proxy.slow_down(Duration::ZERO);
    let last = common::json_lines(&out.stdout)
        .pop()
        .expect("a final report");
    assert_exactly_once(&brokers, "slow", &readings.bytes, &last);
    assert!(
        !stderr.contains(LOST),
        "a slow broker is not a lost one: {stderr}"
    );
}

impl Job {
    /// Waits for the job to exit by itself within `within` (it is not started again), and
    /// returns its exit code: `None` if a signal ended it (SIGSEGV, say).
    fn wait_for_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the job did not stop within {within:?}: {}",
                self.log_text()
            );
            // Its reports are read meanwhile, so that it never blocks on a full pipe.
            if let Ok(report) = self.reports.recv_timeout(Duration::from_millis(200)) {
                self.last = Some(report);
            }
        }
    }
}

/// The one line a stopped job writes last (its error), after its log lines.
fn last_line(log: &str) -> &str {
    log.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// Issue 23 point 5 and issue 26 point 8: an in-memory broker killed and started again comes
/// back without any topic. librdkafka 2.12.1 crashed the job with SIGSEGV about a second later
/// (its leader update from the broker's fetch answers, see vendor/README.md); now the job
/// notices that its topic is gone and stops with exit 1 and one line. Nothing is lost: every
/// complete epoch's checkpoint is kept, so the same state directory resumes once the topic
/// is back.
#[test]
fn gh_23_a_broker_restarted_empty_stops_the_job_with_one_line_not_a_crash() {
    let mut broker = Broker::start();
    let brokers = broker.brokers();
    let readings = first_batch(&broker, "empty");
    let produced = count(&readings.bytes);
    let mut job = Job::start(&brokers, "empty", readings.dir.path());
    job.wait_for_total(produced, Duration::from_secs(60));
    broker.restart();
    // Two metadata checks 5 s apart must miss the topic.
    let code = job.wait_for_exit(Duration::from_secs(40));
    let log = job.log_text();
    assert_eq!(code, Some(1), "exit 1, not a signal: {log}");
    let line = last_line(&log);
    assert!(
        line.starts_with("hygroflow: kafka topic empty no longer exists on the brokers"),
        "{line}"
    );
    assert_eq!(job.restarts, 0);
}

/// Issue 23 point 5: the broker comes back empty and the topic is created again at once, with
/// fewer records than the job had read. librdkafka crashed here too. Now the job lives on:
/// Kafka would answer its fetches past the new ends with "offset out of range", which stops
/// it with one line (`auto.offset.reset=error`); Tansu answers them with nothing, so the job
/// waits at its offsets, counts nothing of the new topic, and stops cleanly on Ctrl-C.
#[test]
fn gh_23_a_topic_recreated_under_the_job_does_not_crash_it() {
    let mut broker = Broker::start();
    let brokers = broker.brokers();
    let readings = first_batch(&broker, "again");
    let produced = count(&readings.bytes);
    let mut job = Job::start(&brokers, "again", readings.dir.path());
    job.wait_for_total(produced, Duration::from_secs(60));
    broker.restart();
    broker.create_topic("again", PARTITIONS as u32);
    produce_more(&brokers, "again", readings.dir.path(), batch() / 10, 9);
    // The crash came within about a second; two metadata checks see the topic meanwhile.
    let deadline = Instant::now() + Duration::from_secs(12);
    while Instant::now() < deadline {
        assert!(
            job.child.try_wait().expect("try_wait").is_none(),
            "the job exited: {}",
            job.log_text()
        );
        if let Ok(report) = job.reports.recv_timeout(Duration::from_millis(200)) {
            job.last = Some(report);
        }
    }
    let last = job.stop();
    assert_eq!(seen(&last), produced, "nothing of the new topic: {last}");
}
