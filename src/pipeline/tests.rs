//! The runtime's rules, in process: an in-memory topic, reports into a `Vec<u8>`, at 1 and 3
//! workers, no broker.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use serde_json::Value;

use super::checkpointer::Checkpoints;
use super::job::{Feed, Job};
use super::memory::{Entry, MemoryTopic};
use super::writer::Offsets;
use super::{run_job, Outcome};
use crate::checkpoint::StateDir;
use crate::config::{Cluster, Config, Input, KafkaInput, ReportFormat};
use crate::epoch::{EpochGrid, TimeMode, Window};
use crate::kafka::ClientSettings;

/// A report writer the test reads back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reading at `ms` milliseconds after the Unix epoch.
fn reading(guid: &str, device: &str, humidity: f64, ms: u64) -> Entry {
    let secs = ms / 1000;
    let time = format!("1970-01-01T00:00:{:02}.{:03}Z", secs % 60, ms % 1000);
    let time = if secs >= 60 {
        format!(
            "1970-01-01T00:{:02}:{:02}.{:03}Z",
            secs / 60,
            secs % 60,
            ms % 1000
        )
    } else {
        time
    };
    Entry::Message(
        format!(
            r#"{{"guid":"{guid}","medicalimagingdevice":"{device}","eventTime":"{time}","payload":{{"format":"urn:example:sensor:humidity","data":{{"humidity":{humidity}}}}}}}"#
        )
        .into_bytes(),
    )
}

/// Four partitions of readings over event-time epochs 10..=13 (1 s epochs), ten per
/// partition and epoch, with a few malformed messages. Polls take five messages from each
/// partition in turn, so no reading is late, before or after a restart.
fn fleet() -> Vec<Vec<Entry>> {
    (0..4)
        .map(|p| {
            (0..40u64)
                .map(|i| {
                    if (i + p) % 13 == 0 {
                        return Entry::Message(b"{not json".to_vec());
                    }
                    let guid = format!("g{}", (i * 7 + p) % 11);
                    let device = ["MRI1", "CT2", "SPECT3"][((i + p) % 3) as usize];
                    reading(
                        &guid,
                        device,
                        30.0 + (i % 50) as f64,
                        10_000 + (i / 10) * 1000 + (i % 10) * 50 + p * 7,
                    )
                })
                .collect()
        })
        .collect()
}

struct Run {
    result: anyhow::Result<Outcome>,
    reports: Vec<Value>,
}

fn config(workers: usize, time: TimeMode, epoch: Duration, idle: Duration) -> Config {
    Config {
        input: Input::Kafka(KafkaInput {
            client: ClientSettings::new("", &[]),
            topic: "memory".into(),
            group: "test".into(),
            until_end: true,
            dlq_topic: "memory.dlq".into(),
            state_dir: None,
        }),
        grid: EpochGrid::new(epoch).expect("a valid epoch"),
        window: Window::Cumulative,
        time,
        cluster: Cluster {
            workers,
            processes: 1,
            process: 0,
            addresses: Vec::new(),
        },
        format: ReportFormat::Json,
        changes: false,
        max_message_bytes: 1 << 20,
        results: None,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: idle,
        allowed_lateness: Duration::ZERO,
        max_clock_skew: Duration::from_secs(3600),
        rules: None,
        rules_file: None,
        alerts: None,
        alerts_topic: None,
        alertmanager: None,
        http: None,
    }
}

fn run(topic: &Arc<MemoryTopic>, config: Config, state: Option<&Path>) -> Run {
    let checkpoints = state.map(|dir| {
        let dir = StateDir::open(dir, "kafka:memory").expect("state dir");
        dir.validate().expect("valid state dir");
        let marker = dir.marker().expect("readable marker");
        Checkpoints::new(
            dir,
            (marker, Default::default()),
            config.cluster.local_workers(),
            false,
            Default::default(),
        )
    });
    let out = Shared::default();
    let job = Job::with_feed(
        config,
        Feed::Memory(Arc::clone(topic)),
        checkpoints,
        Box::new(out.clone()),
        Arc::new(AtomicBool::new(false)),
    );
    let result = run_job(job);
    let bytes = out.0.lock().expect("reports").clone();
    let reports = String::from_utf8(bytes)
        .expect("utf8 reports")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON report"))
        .collect();
    Run { result, reports }
}

fn event_config(workers: usize) -> Config {
    // A long idle timeout: epochs follow the data only.
    config(
        workers,
        TimeMode::Event,
        Duration::from_secs(1),
        Duration::from_secs(60),
    )
}

/// The facts of a report, without its epoch and time.
fn facts(report: &Value) -> Value {
    let mut facts = report.clone();
    if let Some(map) = facts.as_object_mut() {
        map.remove("epoch");
        map.remove("time");
    }
    facts
}

/// One field of every report, in order.
fn each(run: &Run, key: &str) -> Vec<i64> {
    run.reports.iter().filter_map(|r| r[key].as_i64()).collect()
}

/// A run over `partitions` that must succeed.
fn run_ok(partitions: Vec<Vec<Entry>>, config: Config) -> Run {
    let done = run(&Arc::new(MemoryTopic::new(partitions)), config, None);
    done.result.as_ref().expect("the run succeeds");
    done
}

fn last(run: &Run) -> Value {
    facts(run.reports.last().expect("a final report"))
}

/// The end offset of every partition.
fn ends(partitions: &[Vec<Entry>]) -> Offsets {
    partitions
        .iter()
        .enumerate()
        .map(|(p, entries)| {
            let messages = entries
                .iter()
                .filter(|e| matches!(e, Entry::Message(_)))
                .count();
            (p as i32, messages as i64)
        })
        .collect()
}

/// The offsets of the checkpoints the state directory's marker names (every worker's).
fn checkpointed_offsets(dir: &Path) -> Offsets {
    let state = StateDir::open(dir, "kafka:memory").expect("state dir");
    let mut last_error = None;
    for _ in 0..20 {
        // A newer marker may be pruning the files the one just read named: read again.
        let point = state
            .marker()
            .expect("a readable marker")
            .expect("offsets committed after a marker");
        match state.load(&point, 0..point.workers) {
            Ok(restored) => return restored.offsets(),
            Err(e) => last_error = Some(e),
        }
    }
    panic!("the marker's checkpoints do not load: {last_error:?}");
}

#[test]
fn gh_7_offsets_are_committed_only_after_the_marker_covers_their_checkpoint() {
    for workers in [1, 3] {
        let state = tempfile::tempdir().expect("tempdir");
        let dir = state.path().to_owned();
        let checked = Arc::new(Mutex::new(0usize));
        let count = Arc::clone(&checked);
        let topic = Arc::new(
            MemoryTopic::new(fleet()).on_commit(Box::new(move |offsets| {
                // At the moment offsets go to the group: the marker names a frontier whose
                // checkpoints (one per worker, all present) hold offsets at or past them.
                let saved = checkpointed_offsets(&dir);
                for (p, o) in offsets {
                    assert!(
                        saved.get(p).is_some_and(|s| s >= o),
                        "partition {p}: committed {o}, checkpointed {:?}",
                        saved.get(p)
                    );
                }
                *count.lock().expect("count") += 1;
                Ok(())
            })),
        );
        let done = run(&topic, event_config(workers), Some(state.path()));
        done.result.as_ref().expect("the run succeeds");
        let commits = topic.commits.lock().expect("commits").clone();
        assert_eq!(*checked.lock().expect("count"), commits.len());
        // How many epochs one commit covers depends on how far the frontier moved between
        // two looks; the order is checked at every commit, and there is more than the last.
        assert!(commits.len() >= 2, "{workers} workers: {commits:?}");
        let mut finals: Offsets = BTreeMap::new();
        for (_, offsets) in &commits {
            finals.extend(offsets.iter().map(|(p, o)| (*p, *o)));
        }
        assert_eq!(finals, ends(&fleet()), "{workers} workers");
    }
}

#[test]
fn gh_7_restart_after_a_crash_at_any_record_gives_the_uninterrupted_result() {
    for workers in [1, 3] {
        let whole = run(
            &Arc::new(MemoryTopic::new(fleet())),
            event_config(workers),
            None,
        );
        whole.result.as_ref().expect("the uninterrupted run");
        let expected = last(&whole);
        assert_eq!(expected["total_messages"], 160 - 13, "{expected}");
        assert_eq!(expected["late_messages"], 0, "{expected}");
        // With one worker, record 40 is the first of epoch 11: ingesting it writes epoch
        // 10's checkpoint, and a crash before record 41 (same poll, no step) comes after the
        // checkpoint and before the marker; 81 likewise for epoch 11. The others fall in the
        // middle of epochs, before or after markers and offset commits.
        // At 3 workers, worker 0 (partitions 0 and 3) reads the most: 80 records.
        let most = if workers == 1 { 160 } else { 80 };
        let crashes = [0, 1, 7, 20, 33, 41, 52, 79, 81, 120];
        for crash in crashes.into_iter().filter(|c| *c < most) {
            let state = tempfile::tempdir().expect("tempdir");
            let crashing = Arc::new(MemoryTopic::new(fleet()).crash_before_record(crash));
            let crashed = run(&crashing, event_config(workers), Some(state.path()));
            assert!(
                crashed.result.is_err(),
                "crash at {crash} must fail the run"
            );
            let topic = Arc::new(MemoryTopic::new(fleet()));
            let resumed = run(&topic, event_config(workers), Some(state.path()));
            resumed.result.as_ref().expect("the restarted run");
            assert_eq!(
                last(&resumed),
                expected,
                "{workers} workers, crash before record {crash}"
            );
            let before = crashed.reports.iter().map(|r| r["total_messages"].as_i64());
            let after = resumed
                .reports
                .first()
                .map(|r| r["total_messages"].as_i64());
            assert!(
                before.max().flatten() <= after.flatten(),
                "a report after the restart shows fewer messages than one before"
            );
        }
    }
}

#[test]
fn gh_7_restart_after_a_crash_between_the_marker_and_the_offset_commit() {
    for workers in [1, 3] {
        let whole = run(
            &Arc::new(MemoryTopic::new(fleet())),
            event_config(workers),
            None,
        );
        let expected = last(&whole);
        for nth in [0, 1, 3] {
            let state = tempfile::tempdir().expect("tempdir");
            let seen = Arc::new(Mutex::new(0usize));
            let commits = Arc::clone(&seen);
            let crashing = Arc::new(MemoryTopic::new(fleet()).on_commit(Box::new(move |_| {
                let mut seen = seen.lock().expect("count");
                *seen += 1;
                if *seen > nth {
                    // The process dies between writing the marker and committing offsets.
                    return Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::Fail));
                }
                Ok(())
            })));
            let crashed = run(&crashing, event_config(workers), Some(state.path()));
            if crashed.result.is_ok() {
                // How often offsets are committed depends on how far the dataflow gets per
                // step: a run may commit fewer times than `nth + 1`, and then never crashes.
                let commits = *commits.lock().expect("count");
                assert!(nth > 1 && commits <= nth, "commit {nth} must fail the run");
                continue;
            }
            let resumed = run(
                &Arc::new(MemoryTopic::new(fleet())),
                event_config(workers),
                Some(state.path()),
            );
            resumed.result.as_ref().expect("the restarted run");
            assert_eq!(last(&resumed), expected, "{workers} workers, commit {nth}");
        }
    }
}

#[test]
fn gh_7_event_time_reports_the_epochs_that_have_data() {
    for workers in [1, 3] {
        let partitions = vec![vec![
            reading("a", "CT1", 40.0, 10_100),
            reading("b", "CT1", 50.0, 10_900),
            reading("a", "CT1", 60.0, 12_500),
            reading("c", "MRI1", 70.0, 15_000),
        ]];
        let done = run_ok(partitions, event_config(workers));
        let epochs = each(&done, "epoch");
        assert_eq!(
            epochs,
            [10, 12, 15],
            "{workers} workers: {:?}",
            done.reports
        );
        let totals = each(&done, "total_messages");
        assert_eq!(totals, [2, 3, 4]);
    }
}

#[test]
fn gh_7_processing_time_reports_every_epoch_even_empty_ones() {
    for workers in [1, 3] {
        let partitions = vec![vec![
            reading("a", "CT1", 40.0, 0),
            Entry::Pause(Duration::from_millis(600)),
            reading("b", "CT1", 50.0, 0),
        ]];
        let config = config(
            workers,
            TimeMode::Processing,
            Duration::from_millis(100),
            Duration::from_secs(60),
        );
        let done = run_ok(partitions, config);
        let epochs = each(&done, "epoch");
        assert!(epochs.len() >= 5, "{workers} workers: {epochs:?}");
        assert!(
            epochs.windows(2).all(|w| w[1] == w[0] + 1),
            "no epoch is skipped: {epochs:?}"
        );
        let totals = each(&done, "total_messages");
        assert!(
            totals.windows(2).any(|w| w[0] == w[1]),
            "epochs without data are reported too: {totals:?}"
        );
        assert_eq!(totals.last(), Some(&2));
    }
}

#[test]
fn gh_7_a_record_for_an_epoch_closed_by_the_idle_clock_is_late() {
    for workers in [1, 3] {
        // Epoch 10 gets a reading, the input idles past --idle-timeout (the worker follows
        // the wall clock), then a reading for epoch 11 arrives: epoch 11 has closed.
        let partitions = vec![vec![
            reading("a", "CT1", 40.0, 10_100),
            Entry::Pause(Duration::from_millis(800)),
            reading("b", "CT1", 50.0, 11_100),
        ]];
        let config = config(
            workers,
            TimeMode::Event,
            Duration::from_secs(1),
            Duration::from_millis(100),
        );
        let done = run_ok(partitions, config);
        let first = done.reports.first().expect("a report");
        assert_eq!(first["epoch"], 10, "{:?}", done.reports);
        assert_eq!(first["total_messages"], 1);
        let end = last(&done);
        assert_eq!(end["total_messages"], 2, "{end}");
        assert_eq!(end["late_messages"], 1, "{end}");
    }
}

mod windows;

/// [`fleet`] without its malformed messages: a rejected message joins the open epoch, so only
/// valid readings are placed by their event time whatever the order of delivery.
fn valid_fleet() -> Vec<Vec<Entry>> {
    fleet()
        .into_iter()
        .map(|p| {
            p.into_iter()
                .filter(|e| !matches!(e, Entry::Message(m) if m.starts_with(b"{not")))
                .collect()
        })
        .collect()
}

#[test]
fn a_partition_read_whole_before_the_others_changes_no_epoch() {
    for workers in [1, 2, 4] {
        let in_turn = run_ok(valid_fleet(), event_config(workers));
        assert_eq!(
            each(&in_turn, "epoch"),
            [10, 11, 12, 13],
            "{workers} workers"
        );
        let topic = Arc::new(MemoryTopic::new(valid_fleet()).one_by_one());
        let one_by_one = run(&topic, event_config(workers), None);
        one_by_one.result.as_ref().expect("the run succeeds");
        assert_eq!(one_by_one.reports, in_turn.reports, "{workers} workers");
        assert_eq!(last(&one_by_one)["late_messages"], 0);
    }
}

#[test]
fn a_partition_left_empty_holds_nothing_back() {
    for workers in [1, 2] {
        let mut partitions = valid_fleet();
        partitions.push(Vec::new());
        let topic = Arc::new(MemoryTopic::new(partitions).one_by_one());
        let done = run(&topic, event_config(workers), None);
        done.result.as_ref().expect("the run succeeds");
        let in_turn = run_ok(valid_fleet(), event_config(workers));
        assert_eq!(done.reports, in_turn.reports, "{workers} workers");
    }
}

/// One partition of readings 100 ms apart over epochs 10..=19, each moved up to `by` ms
/// from its place in event-time order (deterministically), and the same in order.
fn shuffled(by: u64) -> (Vec<Vec<Entry>>, Vec<Vec<Entry>>) {
    let times: Vec<u64> = (0..100).map(|i| 10_000 + i * 100).collect();
    let entry = |ms: u64| {
        let i = (ms - 10_000) / 100;
        reading(
            &format!("g{}", i % 7),
            ["CT1", "MRI2"][(i % 2) as usize],
            40.0 + (i % 9) as f64,
            ms,
        )
    };
    let in_order = vec![times.iter().map(|ms| entry(*ms)).collect()];
    // Delivered in the order of `time + jitter`, jitter in 0..=by: a reading comes at most
    // `by` after one stamped later than it.
    let mut late_order = times.clone();
    late_order.sort_by_key(|ms| ms + (ms * 7919 % 1009) * by / 1008);
    let out_of_order = vec![late_order.iter().map(|ms| entry(*ms)).collect()];
    (in_order, out_of_order)
}

#[test]
fn readings_out_of_order_by_the_allowed_lateness_join_their_epochs() {
    let (in_order, out_of_order) = shuffled(1_500);
    for workers in [1, 2] {
        let expected = run_ok(in_order.clone(), event_config(workers));
        assert_eq!(last(&expected)["late_messages"], 0);
        let strict = run_ok(out_of_order.clone(), event_config(workers));
        let late = last(&strict)["late_messages"].as_i64().unwrap_or_default();
        assert!(late > 0, "without lateness some readings are late: {late}");
        assert_eq!(last(&strict)["total_messages"], 100);
        let mut config = event_config(workers);
        config.allowed_lateness = Duration::from_millis(1_500);
        let tolerant = run_ok(out_of_order.clone(), config);
        assert_eq!(tolerant.reports, expected.reports, "{workers} workers");
    }
}

#[test]
fn restart_after_a_crash_with_readings_waiting_for_their_epochs_resumes_the_same_epochs() {
    for workers in [1, 2] {
        let whole = run(
            &Arc::new(MemoryTopic::new(valid_fleet()).one_by_one()),
            event_config(workers),
            None,
        );
        whole.result.as_ref().expect("the uninterrupted run");
        let by_epoch: BTreeMap<i64, Value> = whole
            .reports
            .iter()
            .map(|r| (r["epoch"].as_i64().unwrap_or_default(), r.clone()))
            .collect();
        let most = if workers == 1 { 147 } else { 73 };
        for crash in [3, 37, 41, 60, 72, 90, 111, 130, 146]
            .into_iter()
            .filter(|c| *c < most)
        {
            let state = tempfile::tempdir().expect("tempdir");
            let crashing = MemoryTopic::new(valid_fleet())
                .one_by_one()
                .crash_before_record(crash);
            let crashed = run(
                &Arc::new(crashing),
                event_config(workers),
                Some(state.path()),
            );
            assert!(
                crashed.result.is_err(),
                "crash at {crash} must fail the run"
            );
            let topic = Arc::new(MemoryTopic::new(valid_fleet()).one_by_one());
            let resumed = run(&topic, event_config(workers), Some(state.path()));
            resumed.result.as_ref().expect("the restarted run");
            assert_eq!(
                last(&resumed),
                last(&whole),
                "{workers} workers, crash at {crash}"
            );
            for report in crashed.reports.iter().chain(&resumed.reports) {
                let epoch = report["epoch"].as_i64().unwrap_or_default();
                assert_eq!(
                    Some(report),
                    by_epoch.get(&epoch),
                    "{workers} workers, crash at {crash}: epoch {epoch}"
                );
            }
        }
    }
}
