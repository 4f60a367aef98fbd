//! Event time over a keyed multi-partition topic, against a real broker (Tansu over TCP):
//! whatever order the partitions are delivered in, at any worker or process count, the job
//! gives the file run's per-epoch reports and alert log; a partition left empty holds nothing
//! back; and a restart after `kill -9` resumes with the same epochs.

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use broker::{consume_all, Broker};
use common::{free_port, hygroflow, json_lines};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::Value;

/// Readings in the tests: 60 ms of event time apart, ascending, as the logger fleet.
const READINGS: u64 = 12_000;

/// What a run printed: its per-epoch reports and its alert log.
struct Printed {
    reports: Vec<Value>,
    alerts: String,
}

/// The generated readings in a file, with a scratch directory.
struct Fleet {
    dir: tempfile::TempDir,
    path: PathBuf,
}

fn fleet() -> Fleet {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("readings.jsonl");
    let out = common::run(&[
        "generate",
        "--count",
        &READINGS.to_string(),
        "--seed",
        "21",
        "--interval-ms",
        "60",
        "--scenario",
        "silence@2m,excursion@4m",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&path, out.stdout).expect("write the readings");
    Fleet { dir, path }
}

/// The flags every run shares: event time, 1 s epochs, the built-in rules, an alert log.
fn common_args(alerts: &Path) -> Vec<String> {
    [
        "--time",
        "event",
        "--format",
        "json",
        "--epoch",
        "1s",
        "--alerts",
        alerts.to_str().expect("utf8"),
    ]
    .map(String::from)
    .to_vec()
}

fn printed(out: &Output, alerts: &Path) -> Printed {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Printed {
        reports: json_lines(&out.stdout),
        alerts: std::fs::read_to_string(alerts).expect("the alert log"),
    }
}

/// The reference: the file read by one worker.
fn file_run(fleet: &Fleet) -> Printed {
    let alerts = fleet.dir.path().join("file.alerts");
    let out = hygroflow()
        .args(["run", "-i", fleet.path.to_str().expect("utf8")])
        .args(common_args(&alerts))
        .output()
        .expect("run");
    let printed = printed(&out, &alerts);
    assert!(
        printed.reports.len() > 600,
        "{} reports",
        printed.reports.len()
    );
    assert!(printed.alerts.lines().count() > 4, "{}", printed.alerts);
    printed
}

/// `run -b .. -t topic --until-end` with the common flags and `extra`.
fn kafka_args(brokers: &str, topic: &str, alerts: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["run", "-b", brokers, "-t", topic, "--until-end"]
        .map(String::from)
        .to_vec();
    args.extend(common_args(alerts));
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn kafka_run(brokers: &str, topic: &str, dir: &Path, extra: &[&str]) -> Printed {
    let alerts = dir.join(format!("{topic}{}.alerts", extra.join("")));
    let out = hygroflow()
        .args(kafka_args(brokers, topic, &alerts, extra))
        .output()
        .expect("run");
    printed(&out, &alerts)
}

fn assert_same(got: &Printed, expected: &Printed, what: &str) {
    assert_eq!(
        got.reports.len(),
        expected.reports.len(),
        "{what}: number of reports"
    );
    for (g, e) in got.reports.iter().zip(&expected.reports) {
        assert_eq!(g, e, "{what}: epoch {}", e["epoch"]);
    }
    assert_eq!(got.alerts, expected.alerts, "{what}: alert log");
    let last = got.reports.last().expect("a final report");
    assert_eq!(last["late_messages"], 0, "{what}");
}

/// Produces `(partition, payload)` to `topic`, in this order, each to its partition.
fn produce_to_partitions(brokers: &str, topic: &str, messages: &[(i32, Vec<u8>)]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for (partition, payload) in messages {
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .payload(payload)
            .partition(*partition);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

#[test]
fn keyed_partitions_give_the_file_runs_epochs_in_any_order_at_any_worker_count() {
    let fleet = fleet();
    let expected = file_run(&fleet);
    let broker = Broker::start();
    let brokers = broker.brokers();
    // Keyed by guid (`hygroflow produce`): each partition is in event-time order.
    broker.create_topic("keyed", 4);
    let out = common::run(&[
        "produce",
        "-b",
        &brokers,
        "-t",
        "keyed",
        fleet.path.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for workers in ["1", "2", "4"] {
        let got = kafka_run(&brokers, "keyed", fleet.dir.path(), &["-w", workers]);
        assert_same(&got, &expected, &format!("keyed topic, -w {workers}"));
    }

    // The same partitions, one produced whole before the others, and a fifth left empty.
    let mut by_partition: BTreeMap<i32, Vec<Vec<u8>>> = BTreeMap::new();
    for m in consume_all(&brokers, "keyed", 4) {
        by_partition
            .entry(m.partition)
            .or_default()
            .push(m.payload.unwrap_or_default());
    }
    let mut order: Vec<(i32, Vec<u8>)> = Vec::new();
    for payload in by_partition.remove(&2).unwrap_or_default() {
        order.push((2, payload));
    }
    let rest: Vec<(i32, Vec<Vec<u8>>)> = by_partition.into_iter().collect();
    let longest = rest.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
    for i in 0..longest {
        for (p, messages) in &rest {
            if let Some(m) = messages.get(i) {
                order.push((*p, m.clone()));
            }
        }
    }
    broker.create_topic("skewed", 5);
    produce_to_partitions(&brokers, "skewed", &order);
    for workers in ["1", "2"] {
        let got = kafka_run(&brokers, "skewed", fleet.dir.path(), &["-w", workers]);
        assert_same(
            &got,
            &expected,
            &format!("one partition first, one empty, -w {workers}"),
        );
    }

    // Two processes of two workers.
    let hosts = fleet.dir.path().join("hosts.txt");
    let lines: String = (0..2)
        .map(|_| format!("127.0.0.1:{}\n", free_port()))
        .collect();
    std::fs::write(&hosts, lines).expect("hostfile");
    let alerts = fleet.dir.path().join("cluster.alerts");
    let children: Vec<Child> = (0..2)
        .map(|p| {
            let other = fleet.dir.path().join(format!("cluster-{p}.alerts"));
            let log = if p == 0 { &alerts } else { &other };
            hygroflow()
                .args(kafka_args(&brokers, "skewed", log, &["-w", "2"]))
                .args(["-n", "2", "-p", &p.to_string(), "-h"])
                .arg(&hosts)
                .args(["--connect-timeout", "30s"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    for out in &outputs[1..] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = printed(&outputs[0], &alerts);
    assert_same(&got, &expected, "2 processes of 2 workers");
}

#[test]
fn kill_9_in_event_time_over_several_partitions_resumes_with_the_same_epochs() {
    let fleet = fleet();
    let expected = file_run(&fleet);
    let by_epoch: BTreeMap<i64, &Value> = expected
        .reports
        .iter()
        .map(|r| (r["epoch"].as_i64().unwrap_or_default(), r))
        .collect();
    let broker = Broker::start();
    let brokers = broker.brokers();
    broker.create_topic("killed", 4);
    let out = common::run(&[
        "produce",
        "-b",
        &brokers,
        "-t",
        "killed",
        fleet.path.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = fleet.dir.path().join("state");
    let alerts = fleet.dir.path().join("killed.alerts");
    let args = kafka_args(
        &brokers,
        "killed",
        &alerts,
        &["-w", "2", "--state-dir", state.to_str().expect("utf8")],
    );
    let mut printed = Vec::new();
    let mut kills = 0;
    for attempt in 0..12 {
        let mut command = hygroflow();
        if cfg!(debug_assertions) {
            // Killed at a fault point: between a checkpoint, its marker, the offsets and
            // the reports it releases.
            command.env(
                "HYGROFLOW_FAULT",
                common::FAULTS[attempt % common::FAULTS.len()],
            );
        }
        let mut child = command
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(300 + 150 * attempt as u64));
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait");
        let signalled = std::os::unix::process::ExitStatusExt::signal(&out.status).is_some();
        kills += usize::from(signalled || !out.status.success());
        printed.extend(json_lines(&out.stdout));
        if out.status.success() {
            break;
        }
    }
    assert!(kills >= 3, "{kills} runs killed");
    let last = hygroflow().args(&args).output().expect("run");
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    printed.extend(json_lines(&last.stdout));
    // Every report any run printed is the file run's report of its epoch, and the last run
    // ends with the file run's last report.
    for report in &printed {
        let epoch = report["epoch"].as_i64().unwrap_or_default();
        assert_eq!(Some(&report), by_epoch.get(&epoch), "epoch {epoch}");
    }
    assert_eq!(printed.last(), expected.reports.last());
    let epochs: Vec<i64> = printed.iter().filter_map(|r| r["epoch"].as_i64()).collect();
    assert!(
        epochs.len() >= expected.reports.len(),
        "every epoch reported"
    );
}
