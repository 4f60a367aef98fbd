//! Kafka end to end, against a real broker (Tansu over TCP): the job's results, dead letters,
//! restarts after `kill -9`, a broker outage, and bad checkpoints. Each test has its own
//! broker and topics.

#[path = "common/broker.rs"]
mod broker;
mod common;
#[path = "common/proxy.rs"]
mod proxy;
#[path = "common/refusing_proxy.rs"]
mod refusing_proxy;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use broker::{committed_offsets, Broker};
use common::{
    assert_report_matches, committed_frontier, generate, hygroflow, json_lines, recompute, run,
    LiveJob, FAULTS,
};
use rand::Rng;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

/// One consumed message.
#[derive(Debug, Clone)]
struct Record {
    partition: i32,
    offset: i64,
    key: Vec<u8>,
    payload: Vec<u8>,
    headers: HashMap<String, String>,
}

/// Reads every message of `topic` (all partitions) up to end-of-partition on each.
fn read_all(brokers: &str, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "hygroflow-test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut at_end: BTreeMap<i32, bool> = partitions.iter().map(|p| (*p, false)).collect();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.values().any(|e| !e) {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                at_end.insert(m.partition(), false);
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                records.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().unwrap_or_default().to_vec(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p, true);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    records
}

/// Produces the lines of `path` into `topic` with `hygroflow produce`.
fn produce(brokers: &str, topic: &str, path: &Path) {
    let args = [
        "produce",
        "-b",
        brokers,
        "-t",
        topic,
        path.to_str().expect("utf8"),
    ];
    let out = run(&args);
    assert!(
        out.status.success(),
        "produce: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn job(brokers: &str, topic: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "-b",
        brokers,
        "-t",
        topic,
        "--format",
        "json",
        "--until-end",
        "--epoch",
        "200ms",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(
        out.status.success(),
        "run {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Is `bytes` a valid message by the README's rules? (naive, via serde_json::Value)
fn valid(bytes: &[u8]) -> bool {
    recompute(bytes).rejected_messages == 0 && !bytes.is_empty()
}

#[test]
fn four_partitions_at_1_and_3_workers_match_recomputation_and_dead_letters() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let readings = broker.topic_with_readings("readings", 4, 20_000, 21, 0.03, &[]);
    let expected = recompute(&readings.bytes);
    let source: HashMap<(i32, i64), Vec<u8>> = read_all(&brokers, "readings")
        .into_iter()
        .map(|r| ((r.partition, r.offset), r.payload))
        .collect();
    assert_eq!(source.len(), 20_000);

    for workers in ["1", "3"] {
        let dlq = format!("readings.dlq.w{workers}");
        broker.create_topic(&dlq, 1);
        let group = format!("g{workers}");
        let out = job(
            &brokers,
            "readings",
            &["-w", workers, "--group", &group, "--dlq-topic", &dlq],
        );
        let reports = json_lines(&out.stdout);
        assert_report_matches(reports.last().expect("final report"), &expected);

        let letters = read_all(&brokers, &dlq);
        assert_eq!(
            letters.len() as i64,
            expected.rejected_messages,
            "every rejected message, once"
        );
        for letter in &letters {
            assert_eq!(letter.headers["hygroflow.source.topic"], "readings");
            let p: i32 = letter.headers["hygroflow.source.partition"]
                .parse()
                .expect("partition");
            let o: i64 = letter.headers["hygroflow.source.offset"]
                .parse()
                .expect("offset");
            assert_eq!(source[&(p, o)], letter.payload, "the original bytes");
            assert!(
                !valid(&letter.payload),
                "only invalid messages are dead letters"
            );
            assert!(!letter.headers["hygroflow.error"].is_empty());
            assert!(!letter.headers["hygroflow.error.kind"].is_empty());
        }
        // Offsets are committed for the complete run.
        let ends = end_offsets(&source, 4);
        assert_eq!(committed_offsets(&brokers, &group, "readings", 4), ends);
    }
}

/// The true end offset of each partition, from what was read.
fn end_offsets(source: &HashMap<(i32, i64), Vec<u8>>, partitions: i32) -> BTreeMap<i32, i64> {
    (0..partitions)
        .map(|p| {
            (
                p,
                source
                    .keys()
                    .filter(|(q, _)| *q == p)
                    .map(|(_, o)| o + 1)
                    .max()
                    .unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn more_workers_than_partitions() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let readings = broker.topic_with_readings("few", 2, 5_000, 8, 0.02, &[]);
    let out = job(&brokers, "few", &["-w", "4"]);
    assert_report_matches(
        json_lines(&out.stdout).last().expect("final"),
        &recompute(&readings.bytes),
    );
}

/// Starts the kill test's job; in a debug build, `fault` (one of [`FAULTS`]) also kills it
/// there.
fn spawn_job(brokers: &str, topic: &str, state: &Path, group: &str, fault: Option<&str>) -> Child {
    let mut command = hygroflow();
    if let (Some(fault), true) = (fault, cfg!(debug_assertions)) {
        command.env("HYGROFLOW_FAULT", fault);
    }
    command
        .args([
            "run",
            "-b",
            brokers,
            "-t",
            topic,
            "--format",
            "json",
            "--until-end",
            "--epoch",
            "100ms",
            "-w",
            "2",
        ])
        .args([
            "--group",
            group,
            "--state-dir",
            state.to_str().expect("utf8"),
            "--results-topic",
            &format!("{topic}.results"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(state.with_extension("log"))
                .expect("job log"),
        ))
        .spawn()
        .expect("spawn")
}

#[test]
fn kill_9_and_restart_gives_the_uninterrupted_result() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    // Produced with ordinary batching (thousands of messages per batch): Tansu 0.6.0 answers a
    // fetch that starts inside a record batch with the *next* batch, and the source's resume
    // guard steps back until it is at the checkpointed offset (gh-12 point 1).
    let readings = broker.topic_with_readings("crashy", 4, 400_000, 33, 0.01, &[]);
    let expected = recompute(&readings.bytes);
    let state = readings.dir.path().join("state");

    let mut rng = rand::thread_rng();
    let mut last_total = 0i64;
    // Kill -9 at random moments until six kills hit a running job (a run that has already
    // finished, say once everything is read, does not count), and more while the topic lasts
    // until a restart has resumed inside a record batch (where the checkpointed offsets fall
    // depends on the timing).
    let log = || std::fs::read_to_string(state.with_extension("log")).unwrap_or_default();
    let mut kills = 0;
    let mut first_report: Option<Duration> = None;
    let mut read_to_the_end = false;
    for attempt in 0..30 {
        if kills >= 6 && (log().contains("resume guard") || read_to_the_end) {
            break;
        }
        let started = Instant::now();
        // After the first (which takes the measure), each run may also die at a fault point:
        // a job that takes in the rest of the topic within the timed kill's moment is still
        // killed in the middle of its commits.
        let fault = FAULTS[attempt % FAULTS.len()];
        let fault = first_report.is_some().then_some(fault);
        let mut child = spawn_job(&brokers, "crashy", &state, "crashy-group", fault);
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The first run is killed at its first report (it is running), and takes the measure of
        // the others: each is killed at a random moment between half and twice that time
        // after its start. Batched topics are read fast, and a report is printed only once its
        // checkpoint is committed, so a moment after a report would mostly find the job done.
        let first = match first_report {
            None => {
                let first = rx.recv_timeout(Duration::from_secs(20)).ok();
                first_report = Some(started.elapsed());
                first
            }
            Some(measure) => {
                std::thread::sleep(measure.mul_f64(rng.gen_range(0.5..2.0)));
                None
            }
        };
        let ended = child.try_wait().expect("try_wait");
        // Killed at its fault point: a kill of a running job all the same.
        let exited =
            ended.is_some_and(|s| std::os::unix::process::ExitStatusExt::signal(&s) != Some(9));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        reader.join().expect("reader");
        let reports: Vec<(u64, i64)> = first
            .into_iter()
            .chain(rx.try_iter())
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .map(|r| {
                let epoch = r["epoch"].as_u64().expect("epoch");
                (epoch, r["total_messages"].as_i64().expect("n"))
            })
            .collect();
        // A report is printed only once the checkpoint that covers it is committed, so a
        // restart never takes one back: its first report shows at least what every report
        // before the kill showed.
        if let Some((_, first)) = reports.first() {
            assert!(*first >= last_total, "a report after a restart shows fewer messages ({first}) than one before ({last_total})");
        }
        assert!(reports.windows(2).all(|w| w[0].1 <= w[1].1));
        if let (Some((epoch, _)), Some(committed)) = (reports.last(), committed_frontier(&state)) {
            assert!(
                *epoch < committed,
                "epoch {epoch} printed before its checkpoint ({committed})"
            );
        }
        last_total = reports
            .iter()
            .map(|(_, total)| *total)
            .fold(last_total, i64::max);
        eprintln!(
            "attempt: exited {exited}, {} reports, first {:?}",
            reports.len(),
            reports.first()
        );
        if exited {
            read_to_the_end = true;
        } else {
            kills += 1;
        }
    }
    assert!(kills >= 6, "six kill -9s of a running job: {}", log());
    // The last run goes to the end.
    let out = spawn_job(&brokers, "crashy", &state, "crashy-group", None)
        .wait_with_output()
        .expect("run");
    assert!(out.status.success(), "{}", log());
    // Resumes usually land inside record batches, and the guard steps back to each (when
    // none did, the topic ran out first; the guard's unit tests drive it against a Tansu-like
    // fake, and the random kill tests resume inside batches too).
    if !log().contains("resume guard") {
        eprintln!("no resume inside a batch in {kills} kills");
    }
    let restarted = json_lines(&out.stdout);
    let last = restarted.last().expect("final report");
    assert!(last["total_messages"].as_i64().expect("n") >= last_total);
    assert_report_matches(last, &expected);
    // Dead letters exactly once: the killed runs' rejects were read back at each start and
    // not sent again (gh-12 point 2).
    let letters = read_all(&brokers, "crashy.dlq");
    let distinct: std::collections::HashSet<(String, String)> = letters
        .iter()
        .map(|l| {
            (
                l.headers["hygroflow.source.partition"].clone(),
                l.headers["hygroflow.source.offset"].clone(),
            )
        })
        .collect();
    assert_eq!(
        distinct.len() as i64,
        expected.rejected_messages,
        "every reject"
    );
    let mut first_at = HashMap::new();
    let twice: Vec<(i64, i64)> = letters
        .iter()
        .filter_map(|l| {
            let source = (
                l.headers["hygroflow.source.partition"].clone(),
                l.headers["hygroflow.source.offset"].clone(),
            );
            first_at
                .insert(source, l.offset)
                .map(|first| (first, l.offset))
        })
        .collect();
    assert!(
        twice.is_empty(),
        "no reject twice: {} sent again, (first, again) dead-letter offsets from {:?} to {:?}",
        twice.len(),
        twice.first(),
        twice.last()
    );

    // Reports exactly once too: the results topic holds one report per epoch, read back at
    // each start (gh-12 point 2).
    let published = read_all(&brokers, "crashy.results");
    let epochs: std::collections::BTreeSet<Vec<u8>> =
        published.iter().map(|r| r.key.clone()).collect();
    assert_eq!(published.len(), epochs.len(), "no epoch published twice");

    // The same as a run that never crashed (its dead letters go elsewhere).
    let clean = job(
        &brokers,
        "crashy",
        &[
            "-w",
            "2",
            "--group",
            "clean",
            "--dlq-topic",
            "crashy.clean.dlq",
        ],
    );
    let clean_last = json_lines(&clean.stdout).pop().expect("final");
    for key in [
        "total_messages",
        "rejected_messages",
        "total_sensors",
        "sensors_by_device",
        "avg_humidity_by_device",
    ] {
        assert_eq!(last[key], clean_last[key], "{key}");
    }
    // And the consumer group's offsets are at the end.
    let source: HashMap<(i32, i64), Vec<u8>> = read_all(&brokers, "crashy")
        .into_iter()
        .map(|r| ((r.partition, r.offset), r.payload))
        .collect();
    assert_eq!(
        committed_offsets(&brokers, "crashy-group", "crashy", 4),
        end_offsets(&source, 4)
    );
}

#[test]
fn broker_outage_loses_nothing() {
    let (broker, proxy) = proxy::broker_behind_proxy();
    let brokers = broker.brokers();
    let first = broker.topic_with_readings("flaky", 2, 6_000, 41, 0.01, &[]);
    let second = first.dir.path().join("second.jsonl");
    generate(&second, 6_000, 42, 0.01);

    let job = LiveJob::spawn(&[
        "run",
        "-b",
        &brokers,
        "-t",
        "flaky",
        "--format",
        "json",
        "--epoch",
        "200ms",
        "-w",
        "2",
        "-X",
        "reconnect.backoff.max.ms=500",
    ]);
    job.wait_for_total(6_000);
    proxy.cut();
    std::thread::sleep(Duration::from_secs(4));
    proxy.restore();
    produce(&brokers, "flaky", &second);
    let last = job.wait_for_total(12_000);
    job.interrupt();
    let mut all = first.bytes.clone();
    all.extend(std::fs::read(&second).expect("read"));
    assert_report_matches(&last, &recompute(&all));
}

#[test]
fn corrupt_checkpoint_is_refused() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let readings = broker.topic_with_readings("ckpt", 2, 3_000, 5, 0.0, &[]);
    let dir = &readings.dir;
    let state = dir.path().join("state");
    job(
        &brokers,
        "ckpt",
        &["--state-dir", state.to_str().expect("utf8")],
    );
    let generation = std::fs::read_dir(&state)
        .expect("state dir")
        .filter_map(Result::ok)
        .find(|e| e.path().is_dir())
        .expect("a generation")
        .path();
    // A checkpoint file (its epoch log's tail past every checkpoint's length is never read).
    let file = std::fs::read_dir(&generation)
        .expect("gen")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .expect("a checkpoint");
    let mut bytes = std::fs::read(&file).expect("read");
    let n = bytes.len();
    bytes[n - 10] ^= 0x20;
    std::fs::write(&file, bytes).expect("write");
    let out = run(&[
        "run",
        "-b",
        &brokers,
        "-t",
        "ckpt",
        "--until-end",
        "--state-dir",
        state.to_str().expect("utf8"),
    ]);
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "nothing is reported from a half-loaded state"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr.lines().last().expect("an error");
    assert!(
        error.contains("refusing checkpoint") && error.contains("checksum"),
        "{stderr}"
    );
}

#[test]
fn missing_topic_and_bad_property_fail_with_one_line() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let out = run(&["run", "-b", &brokers, "-t", "no-such-topic", "--until-end"]);
    // The environment, not a flag: exit code 1 (gh-8 point 10).
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .last()
            .expect("error")
            .contains("no-such-topic does not exist"),
        "{stderr}"
    );
    broker.create_topic("exists", 1);
    let out = run(&[
        "run",
        "-b",
        &brokers,
        "-t",
        "exists",
        "--until-end",
        "-X",
        "no.such.property=1",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .last()
            .expect("error")
            .contains("no.such.property"),
        "{stderr}"
    );
    let out = run(&[
        "run",
        "-b",
        &brokers,
        "-t",
        "exists",
        "--until-end",
        "-X",
        "sasl.password=hunter2",
    ]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("hunter2"),
        "secrets never appear in logs"
    );
}

#[test]
fn event_time_from_kafka_with_results_topic() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    broker.create_topic("ev.results", 1);
    let readings = broker.topic_with_readings("ev", 3, 12_000, 17, 0.02, &[]);
    let out = job(
        &brokers,
        "ev",
        &[
            "--time",
            "event",
            "-w",
            "2",
            "--results-topic",
            "ev.results",
        ],
    );
    let reports = json_lines(&out.stdout);
    assert!(
        reports.len() >= 3,
        "12,000 readings 0.3 ms apart span several 200 ms epochs"
    );
    assert_report_matches(reports.last().expect("final"), &recompute(&readings.bytes));
    let published: Vec<Value> = read_all(&brokers, "ev.results")
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).expect("a JSON report"))
        .collect();
    assert_eq!(published, reports, "every report is published, in order");
}

#[test]
fn broker_unreachable_at_start_is_retried() {
    let (broker, proxy) = proxy::broker_behind_proxy();
    let brokers = broker.brokers();
    let readings = broker.topic_with_readings("late", 2, 3_000, 3, 0.01, &[]);
    proxy.cut();
    let child = hygroflow()
        .args([
            "run",
            "-b",
            &brokers,
            "-t",
            "late",
            "--format",
            "json",
            "--until-end",
            "--epoch",
            "200ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(5));
    proxy.restore();
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot reach the Kafka brokers; retrying"),
        "{stderr}"
    );
    assert_report_matches(
        json_lines(&out.stdout).last().expect("final"),
        &recompute(&readings.bytes),
    );
}

#[test]
fn event_time_live_with_idle_workers_keeps_reporting() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let readings = broker.topic_with_readings("quiet", 1, 4_000, 23, 0.0, &[]);
    // Three workers, one partition: two workers never see a record.
    let job = LiveJob::spawn(&[
        "run",
        "-b",
        &brokers,
        "-t",
        "quiet",
        "--format",
        "json",
        "--time",
        "event",
        "--epoch",
        "1s",
        "-w",
        "3",
        "--idle-timeout",
        "1s",
    ]);
    let last = job.wait_for_total(4_000);
    job.interrupt();
    assert_report_matches(&last, &recompute(&readings.bytes));
}

#[test]
fn gh_12_missing_output_topics_are_created_with_a_warning() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let readings = broker.topic_with_readings("autocreate", 2, 3_000, 5, 0.05, &[]);
    let expected = recompute(&readings.bytes);
    assert!(expected.rejected_messages > 0);
    let (dlq, results, alerts) = ("auto.dead", "auto.results", "auto.alerts");
    let outputs = [
        "--time",
        "event",
        "--dlq-topic",
        dlq,
        "--results-topic",
        results,
        "--alerts-topic",
        alerts,
    ];
    let out = job(&brokers, "autocreate", &outputs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (topic, flag) in [
        (dlq, "--dlq-topic"),
        (results, "--results-topic"),
        (alerts, "--alerts-topic"),
    ] {
        let said = stderr
            .lines()
            .filter(|l| l.contains("created the missing output topic") && l.contains(topic))
            .collect::<Vec<_>>();
        assert_eq!(said.len(), 1, "one warning for {topic}: {stderr}");
        assert!(said[0].contains(flag), "{}", said[0]);
    }
    let reports = json_lines(&out.stdout);
    assert_report_matches(reports.last().expect("final report"), &expected);
    assert_eq!(
        read_all(&brokers, dlq).len() as i64,
        expected.rejected_messages,
        "every rejected message reached the created dead-letter topic"
    );
    assert_eq!(
        read_all(&brokers, results).len(),
        reports.len(),
        "every report reached the created results topic"
    );
    // Existing topics are used as they are: a second run creates nothing.
    let again = job(
        &brokers,
        "autocreate",
        &[&["--group", "again"][..], &outputs].concat(),
    );
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!stderr.contains("created the missing"), "{stderr}");
    // The second run (another group, from the earliest offsets, in event time) reports the
    // same epochs as the first, which published them all: read back at start, none is published again, as after
    // a crash between publishing a report and committing its checkpoint (gh-12 point 2).
    assert_eq!(json_lines(&again.stdout).len(), reports.len());
    assert_eq!(
        read_all(&brokers, results).len(),
        reports.len(),
        "no epoch published twice"
    );
    assert_eq!(
        read_all(&brokers, dlq).len() as i64,
        expected.rejected_messages,
        "no reject sent twice"
    );
}

#[test]
fn gh_12_a_state_dir_on_a_full_disk_is_one_line_and_never_half_written() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let readings = broker.topic_with_readings("fulldisk", 2, 5_000, 8, 0.01, &[]);
    let expected = recompute(&readings.bytes);
    let state = readings.dir.path().join("state");
    let state_arg = state.to_str().expect("utf8");
    // A file-size limit of 4 KB stands in for a full disk: writing a checkpoint fails with
    // EFBIG. The shell ignores SIGXFSZ, so the job sees the error instead of being killed.
    let script = format!(
        "trap '' XFSZ; ulimit -f 8; exec \"$0\" run -b {brokers} -t fulldisk --until-end --format json --epoch 200ms --state-dir {state_arg}"
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_hygroflow")])
        .env("RUST_LOG", "warn")
        .output()
        .expect("bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(state_arg) && last.contains("File too large"),
        "one line naming the file and the error: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Nothing half-written is left to load: the next run, with room, validates the directory
    // and ends with the uninterrupted result.
    let resumed = job(&brokers, "fulldisk", &["--state-dir", state_arg]);
    let reports = json_lines(&resumed.stdout);
    assert_report_matches(reports.last().expect("final report"), &expected);

    // A state directory below a regular file cannot be created: one line naming the file in
    // the way.
    let below_a_file = readings
        .dir
        .path()
        .join("state")
        .join("COMMITTED")
        .join("sub");
    let below = below_a_file.to_str().expect("utf8");
    let out = run(&[
        "run",
        "-b",
        &brokers,
        "-t",
        "fulldisk",
        "--until-end",
        "--state-dir",
        below,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let in_the_way = state.join("COMMITTED");
    assert!(
        stderr.contains(&format!("{} is a file", in_the_way.display())),
        "{stderr}"
    );
}

/// Whether the tests run as root (who may write anywhere).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

#[test]
fn gh_12_a_read_only_state_dir_is_one_line() {
    use std::os::unix::fs::PermissionsExt;
    let broker = Broker::start();
    let brokers = broker.brokers();
    let readings = broker.topic_with_readings("readonly", 1, 200, 3, 0.0, &[]);
    // Other users may pass through the test's directory; the state directory is read-only.
    let dir = readings.dir.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let state = dir.join("state");
    std::fs::create_dir(&state).expect("state dir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    // Root writes anyway: run the job as nobody then.
    let binary = env!("CARGO_BIN_EXE_hygroflow");
    let mut command = if running_as_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", binary]);
        c
    } else {
        std::process::Command::new(binary)
    };
    let state_arg = state.to_str().expect("utf8");
    let out = command
        .args(["run", "-b", &brokers, "-t", "readonly", "--until-end"])
        .args(["--state-dir", state_arg])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(state_arg) && stderr.contains("Permission denied"),
        "one line naming the directory and the error: {stderr}"
    );
    assert!(out.stdout.is_empty(), "no report");
    // Nothing was written into it.
    let entries = std::fs::read_dir(&state).expect("read state").count();
    assert_eq!(entries, 0);
}

#[test]
fn gh_12_a_broker_that_refuses_to_create_an_output_topic_is_one_line_naming_it() {
    // Every connection goes through a proxy that, once told, answers CreateTopics with
    // TOPIC_AUTHORIZATION_FAILED, as a broker whose ACLs forbid it would.
    let port = common::free_port();
    let broker = Broker::start_advertised(port);
    let proxy = refusing_proxy::RefusingProxy::start(port, &broker.listen_address());
    broker.create_topic("guarded", 1);
    proxy.refuse();
    let brokers = format!("127.0.0.1:{port}");
    let out = run(&[
        "run",
        "-b",
        &brokers,
        "-t",
        "guarded",
        "--until-end",
        "--dlq-topic",
        "guarded.letters",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("--dlq-topic guarded.letters") && stderr.contains("authorization failed"),
        "names the flag, the topic and the broker's answer: {stderr}"
    );
    assert!(proxy.refused() >= 1, "the broker was asked");
}

#[test]
fn gh_12_a_state_dir_removed_while_running_is_one_line_naming_it() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    broker.topic_with_readings("vanishing", 1, 2_000, 4, 0.0, &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let state_arg = state.to_str().expect("utf8");
    // A live job (no --until-end) checkpoints every epoch, data or not.
    let mut child = hygroflow()
        .env("RUST_LOG", "warn")
        .args(["run", "-b", &brokers, "-t", "vanishing", "--epoch", "100ms"])
        .args(["--format", "json", "--state-dir", state_arg])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !state.join("COMMITTED").exists() {
        assert!(Instant::now() < deadline, "no checkpoint committed in 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The job writes into the directory every epoch, so a plain
    // `remove_dir_all` races with it (ENOTEMPTY). Renaming is atomic: from the
    // job's side the directory is gone at once.
    let gone = dir.path().join("gone");
    std::fs::rename(&state, &gone).expect("move the state directory away");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the job kept running without its state directory");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("hygroflow: ") && last.contains(state_arg),
        "one line naming the directory: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The log line in which a run says it read `topic` back (`dead-letter topic read back`, ...).
fn read_back_line<'a>(stderr: &'a str, what: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no {what:?} line: {stderr}"))
}

/// Issue 23 point 1: a restart reads its output topics back only from where its checkpoint
/// says a restart may have sent something again, and stays exactly once, after a clean stop
/// and after `kill -9`.
#[test]
fn gh_23_a_restart_reads_back_only_what_came_after_its_checkpoint() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    // Rejects (sent without a key) spread over both partitions, not stuck to one by
    // librdkafka's sticky partitioner: each worker sends dead letters.
    let spread = ["-X", "sticky.partitioning.linger.ms=0"];
    let first = broker.topic_with_readings("tail", 2, 4_000, 31, 0.05, &spread);
    let state = first.dir.path().join("state");
    // Bands narrow enough that the fleet's devices leave them within a run.
    let rules = first.dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[defaults]\nlow = 45.0\nhigh = 55.0\nhysteresis = 0.5\nwindow = \"200ms\"\nsilence = \"1h\"\n",
    )
    .expect("write the rules");
    let outputs = [
        "--rules",
        rules.to_str().expect("utf8"),
        "--state-dir",
        state.to_str().expect("utf8"),
        "--dlq-topic",
        "tail.dlq",
        "--results-topic",
        "tail.results",
        "--alerts-topic",
        "tail.alerts",
    ];
    let args = [
        &["run", "-b", &brokers, "-t", "tail", "--format", "json"][..],
        &["--until-end", "--epoch", "200ms", "-w", "2"],
        &outputs,
    ]
    .concat();
    let run_job = |fault: Option<&str>| {
        let mut cmd = hygroflow();
        cmd.env("RUST_LOG", "info").args(&args);
        if let Some(fault) = fault {
            cmd.env("HYGROFLOW_FAULT", fault);
        }
        cmd.output().expect("run")
    };
    let mut all = first.bytes.clone();
    let produce_more = |all: &mut Vec<u8>, seed: u64| {
        let path = first.dir.path().join(format!("more-{seed}.jsonl"));
        generate(&path, 1_500, seed, 0.05);
        let out = run(&[
            "produce",
            "-b",
            &brokers,
            "-t",
            "tail",
            path.to_str().expect("utf8"),
            spread[0],
            spread[1],
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        all.extend(std::fs::read(&path).expect("read"));
    };
    let exactly_once = |all: &[u8], out: &std::process::Output| {
        let expected = recompute(all);
        let reports = json_lines(&out.stdout);
        assert_report_matches(reports.last().expect("final report"), &expected);
        assert_eq!(
            read_all(&brokers, "tail.dlq").len() as i64,
            expected.rejected_messages,
            "each rejected message in the dead-letter topic once"
        );
        let results = read_all(&brokers, "tail.results");
        let epochs: std::collections::BTreeSet<_> = results.iter().map(|r| r.key.clone()).collect();
        assert_eq!(results.len(), epochs.len(), "no report published twice");
        let alerts = read_all(&brokers, "tail.alerts");
        let ids: std::collections::BTreeSet<String> = alerts
            .iter()
            .map(|r| {
                let line: Value = serde_json::from_slice(&r.payload).expect("an alert line");
                line["id"].as_str().expect("an id").to_owned()
            })
            .collect();
        assert_eq!(alerts.len(), ids.len(), "no alert line published twice");
        (reports.len(), alerts.len())
    };

    let out = run_job(None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, alerts) = exactly_once(&all, &out);
    assert!(alerts > 0, "the rules raise alerts on this feed");

    let count = |line: &str, key: &str| -> usize {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line}"))
    };
    let sizes = || ["tail.dlq", "tail.results", "tail.alerts"].map(|t| read_all(&brokers, t).len());
    let read_back = |stderr: &str| {
        [
            ("dead-letter topic read back", "letters="),
            ("results topic read back", "reports="),
            ("alerts topic read back", "already="),
        ]
        .map(|(what, key)| {
            let line = read_back_line(stderr, what);
            assert!(
                !line.contains("from={}"),
                "read from recorded offsets: {line}"
            );
            count(line, key)
        })
    };

    // A clean stop committed everything it sent: the restart reads no report and no alert
    // back, and at most the dead letters the last run sent after a worker's last cut (another
    // worker's letters acknowledged after it), never the history before.
    let before = sizes();
    produce_more(&mut all, 32);
    let out = run_job(None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let [letters, reports, alerts] = read_back(&stderr);
    assert_eq!((reports, alerts), (0, 0), "{stderr}");
    assert!(
        letters < before[0],
        "{letters} of {before:?} letters read back: {stderr}"
    );
    exactly_once(&all, &out);

    // Killed in the middle, with reports and dead letters of later epochs possibly sent: the
    // next run reads back what the killed run sent after its checkpoint (and, as above, the
    // last letters of the run before it), never the first run's history.
    produce_more(&mut all, 33);
    let killed = run_job(Some("checkpoint-write:3"));
    assert!(!killed.status.success(), "killed by its fault point");
    let out = run_job(None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let after = sizes();
    for (read, (before, after)) in read_back(&stderr)
        .into_iter()
        .zip(before.into_iter().zip(after))
    {
        assert!(
            read <= after - before,
            "{read} read back of {before} -> {after}: {stderr}"
        );
    }
    exactly_once(&all, &out);
}
