//! Alerts and windows with Kafka and `--state-dir` (gh-9), against a real broker (Tansu):
//! `kill -9` mid-run and restarts neither lose nor repeat a transition on `--alerts-topic`,
//! windowed reports resume exactly, a restart with another `--epoch` or `--window`, or with
//! alerts turned off, is refused, naming the flag, and a restart with a changed rules file
//! carries every alert state over and judges by the new rules from the checkpoint's frontier
//! (issue 22), as the oracle recomputes with the rules switched at that epoch.
//!
//! The input is the alert oracle's seeded random fleet (`common/alert_cases.rs`): 1 s epochs in
//! event time, bands the readings cross, a rate rule and sensors that fall silent. It goes to
//! 2 partitions read by 2 workers, one partition each, and each partition is in time order, so
//! no reading is late and every run of the same input gives the same reports and alerts.

#[path = "common/alert_cases.rs"]
mod alert_cases;
#[path = "common/alert_oracle.rs"]
mod alert_oracle;
#[path = "common/alert_rules.rs"]
mod alert_rules;
#[path = "common/alert_runs.rs"]
mod alert_runs;
#[path = "common/broker.rs"]
mod broker;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use alert_runs::{assert_success, oracle_of, output_within, write_case};
use broker::{consume_all, Broker};
use common::{committed_frontier, hygroflow, json_lines, FAULTS};

/// Partitions of the input topic, and workers: one partition each.
const PARTITIONS: u32 = 2;

/// Where the kills come, run after run: once the run has committed a checkpoint this many
/// epochs into the input (or further), and has then printed this many more reports. Early and
/// late in the input, at once after a commit and in the middle of printing. (Reports are
/// printed only after their commit, so a few reports later is a few commits later: more
/// would often find the job done.)
const KILLS: [(i64, usize); 5] = [(40, 0), (90, 2), (140, 0), (190, 5), (240, 1)];

/// Fetches of at most 10 kB (about 50 readings, a few epochs) with little waiting, and a local
/// queue of about as much: a job then takes in its input over a second or two and commits
/// checkpoints all along, so that kills land between them. With fetches of the default size
/// Tansu sends a whole partition at once, and a worker takes in all it has received (up to
/// 4,096 records) before the dataflow moves on: a run of this input would commit a checkpoint
/// only near its start and at its end. (Without the queue's limit, the consumer's default
/// `fetch.queue.backoff.ms=10` fills the queue ahead of the worker as fast.)
const SMALL_FETCHES: [&str; 8] = [
    "-X",
    "fetch.max.bytes=10000",
    "-X",
    "message.max.bytes=10000",
    "-X",
    "fetch.wait.max.ms=10",
    "-X",
    "queued.max.messages.kbytes=10",
];

/// A broker holding the random fleet's readings in `topic`, and the files of the case.
struct Fixture {
    broker: Broker,
    case: alert_cases::Case,
    dir: tempfile::TempDir,
    rules: PathBuf,
    topic: &'static str,
}

impl Fixture {
    /// 300 one-second epochs of the seeded fleet in `topic` (2 partitions, one record per batch:
    /// Tansu 0.6.0 answers a fetch that starts inside a batch with the next batch, see
    /// tests/kafka.rs), with its dead-letter topic.
    fn new(topic: &'static str) -> Fixture {
        let broker = Broker::start();
        let case = alert_cases::random(29, 1000, 300);
        let dir = tempfile::tempdir().expect("tempdir");
        let (input, rules) = write_case(&case, dir.path());
        broker.create_topic(topic, PARTITIONS);
        broker.create_topic(&format!("{topic}.dlq"), 1);
        let out = output_within(
            hygroflow()
                .args(["produce", "-b", &broker.brokers(), "-t", topic])
                // Batches of 20 readings (4 kB): resumes land inside batches and go through
                // the resume guard, and a batch fits in one small fetch (FETCH, above), so
                // checkpoints are committed all along the run. (tests/kafka.rs kills a job
                // whose topic was produced with librdkafka's default batching: thousands a
                // batch.)
                .arg(&input)
                .args(["-X", "batch.num.messages=20"]),
            "produce",
        );
        assert_success(&out, "produce");
        Fixture {
            broker,
            case,
            dir,
            rules,
            topic,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `run` on the topic to its end, in event time, 2 workers, JSON reports, in consumer
    /// group `group`, with `extra` flags; 1 s epochs unless `extra` has an `--epoch`.
    fn args(&self, group: &str, extra: &[&str]) -> Vec<String> {
        let workers = PARTITIONS.to_string();
        let epoch = match extra.iter().position(|a| *a == "--epoch") {
            Some(i) => extra[i + 1].to_owned(),
            None => self.case.epoch_flag(),
        };
        let extra: Vec<&str> = match extra.iter().position(|a| *a == "--epoch") {
            Some(i) => [&extra[..i], &extra[i + 2..]].concat(),
            None => extra.to_vec(),
        };
        let mut args: Vec<String> = [
            "run",
            "-b",
            &self.broker.brokers(),
            "-t",
            self.topic,
            "--until-end",
            "--format",
            "json",
            "--time",
            "event",
            "--epoch",
            &epoch,
            "-w",
            &workers,
            "--group",
            group,
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    }

    /// Runs to the end without interruption; fails unless it succeeds.
    fn run(&self, group: &str, extra: &[&str]) -> Output {
        let args = self.args(group, extra);
        let out = output_within(hygroflow().args(&args), group);
        assert_success(&out, group);
        out
    }
}

/// How one start of a restarted job ended.
enum Ending {
    /// Killed with SIGKILL after printing these reports, with this frontier committed.
    Killed(Vec<Value>, u64),
    /// Ran to the end and printed these reports.
    Finished(Vec<Value>),
}

/// Starts `args` (with `--state-dir state`). With `kill: Some((epoch, more))`, kills it with
/// SIGKILL once it has committed a frontier of its own at `epoch` or later and then printed
/// `more` reports, unless it ends first. Its stderr goes to `log`.
fn start_and_kill(
    args: &[String],
    state: &Path,
    (kill, fault): (Option<(u64, usize)>, Option<&str>),
    log: &Path,
) -> Ending {
    let restored = committed_frontier(state).unwrap_or(0);
    let mut command = hygroflow();
    if let (Some(fault), true) = (fault, cfg!(debug_assertions)) {
        command.env("HYGROFLOW_FAULT", fault);
    }
    let mut child = command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(File::create(log).expect("the job's log"))
        .spawn()
        .expect("spawn hygroflow");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut lines: Vec<String> = Vec::new();
    // How many reports had been printed when the run committed past the kill's epoch.
    let mut printed_at_commit = None;
    let killed = loop {
        lines.extend(rx.try_iter());
        if child.try_wait().expect("try_wait").is_some() {
            break false;
        }
        if let Some((epoch, more)) = kill {
            if printed_at_commit.is_none() {
                let committed = committed_frontier(state).unwrap_or(0);
                if committed > restored && committed >= epoch {
                    printed_at_commit = Some(lines.len());
                }
            }
            if printed_at_commit.is_some_and(|n| lines.len() >= n + more) {
                break child.kill().is_ok();
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the job still runs after a minute; log {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let status = child.wait().expect("wait");
    // Killed by this test, or by its own fault point.
    let killed = killed || std::os::unix::process::ExitStatusExt::signal(&status) == Some(9);
    reader.join().expect("the report reader");
    lines.extend(rx.try_iter());
    // SIGKILL can cut the last line short (the reports of several epochs go out in one
    // write); every other line is a whole report.
    if killed
        && lines
            .last()
            .is_some_and(|l| serde_json::from_str::<Value>(l).is_err())
    {
        lines.pop();
    }
    let reports = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    // A kill that came after the run had ended anyway counts as a finished run.
    if killed && !status.success() {
        let committed = committed_frontier(state).expect("a commit before the kill");
        Ending::Killed(reports, committed)
    } else {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        assert!(status.success(), "the restarted job failed: {log}");
        Ending::Finished(reports)
    }
}

/// Each report by its epoch.
fn by_epoch(reports: &[Value]) -> BTreeMap<i64, Value> {
    reports
        .iter()
        .map(|r| (r["epoch"].as_i64().expect("epoch"), r.clone()))
        .collect()
}

/// Runs `args` (with `--state-dir state`), killing it at [`KILLS`]'s points (epochs counted
/// from `first_epoch`) and then running it to the end; returns the frontier committed at each
/// kill and the last run's reports. Every report of every run must be `clean`'s report of its
/// epoch (each epoch's result is fixed by the input, whichever run computes it), and after
/// every kill `check` runs with the committed frontier.
fn kill_until_finished(
    (args, state): (&[String], &Path),
    (clean, first_epoch): (&BTreeMap<i64, Value>, i64),
    log: &Path,
    mut check: impl FnMut(u64),
) -> (Vec<u64>, Vec<Value>) {
    let mut kills = Vec::new();
    for start in 0.. {
        let kill = KILLS
            .get(start)
            .map(|(epochs, more)| ((first_epoch + epochs) as u64, *more));
        let ending = start_and_kill(args, state, (kill, FAULTS.get(start).copied()), log);
        let reports = match &ending {
            Ending::Killed(reports, _) | Ending::Finished(reports) => reports,
        };
        for report in reports {
            let epoch = report["epoch"].as_i64().expect("epoch");
            let want = clean.get(&epoch).unwrap_or_else(|| {
                panic!("start {start}: a report of epoch {epoch}, which the uninterrupted run does not report: {report}")
            });
            assert_eq!(
                report, want,
                "start {start}: the report of epoch {epoch} differs from the uninterrupted run's"
            );
        }
        match ending {
            Ending::Killed(_, committed) => {
                check(committed);
                kills.push(committed);
            }
            Ending::Finished(reports) => return (kills, reports),
        }
    }
    unreachable!("the last start runs to the end")
}

/// The kills came at several points, none before the last one's checkpoint and the input
/// checkpointed further along them (a run killed at a fault point may die before it commits
/// anything new), and the final run, resumed from the last of them, printed the uninterrupted
/// run's reports of the epochs after it, in order, down to the same final report.
fn assert_resumed(kills: &[u64], last: &[Value], clean: &[Value]) {
    assert!(kills.len() >= 3, "only {} kills: {kills:?}", kills.len());
    assert!(kills.windows(2).all(|k| k[0] <= k[1]), "{kills:?}");
    assert!(
        kills.first() < kills.last(),
        "no progress between kills: {kills:?}"
    );
    let first = last.first().expect("the final run reports");
    let resumed = *kills.last().expect("a kill");
    let first_epoch = first["epoch"].as_u64().expect("epoch");
    assert!(
        first_epoch >= resumed || resumed == u64::MAX,
        "the final run reports epoch {first_epoch}, before its checkpoint's frontier {resumed}"
    );
    let from = clean
        .iter()
        .position(|r| r["epoch"] == first["epoch"])
        .expect("the final run's first epoch is reported by the uninterrupted run");
    assert_eq!(last, &clean[from..], "the final run's reports");
    assert_eq!(last.last(), clean.last(), "the final report");
}

/// Every alert in `topic`: `(key, line)`.
fn published(brokers: &str, topic: &str) -> Vec<(String, Value)> {
    consume_all(brokers, topic, PARTITIONS as i32)
        .into_iter()
        .map(|r| {
            let key = String::from_utf8(r.key.expect("every alert has a key")).expect("UTF-8");
            let payload = r.payload.expect("every alert has a value");
            let line = serde_json::from_slice(&payload).expect("an alert line");
            (key, line)
        })
        .collect()
}

/// Published alerts by id; fails on an id published twice or a key that is not the device.
fn published_by_id(brokers: &str, topic: &str) -> BTreeMap<String, Value> {
    let mut by_id = BTreeMap::new();
    for (key, line) in published(brokers, topic) {
        assert_eq!(
            line["device"],
            key.as_str(),
            "the key is the device: {line}"
        );
        let id = line["id"].as_str().expect("id").to_owned();
        if let Some(first) = by_id.insert(id.clone(), line.clone()) {
            panic!("{id} published twice:\n  {first}\n  {line}");
        }
    }
    by_id
}

#[test]
fn gh_9_kill_9_with_alerts_topic_loses_no_transition_and_repeats_none() {
    let fx = Fixture::new("beds");
    let brokers = fx.broker.brokers();
    let rules = fx.rules.to_str().expect("UTF-8");
    // The uninterrupted run: its alert log is the oracle's.
    let clean_log = fx.path("clean-alerts.jsonl");
    let clean = fx.run(
        "clean",
        &[
            "--rules",
            rules,
            "--alerts",
            clean_log.to_str().expect("UTF-8"),
        ],
    );
    let clean_reports = json_lines(&clean.stdout);
    let clean_alerts = json_lines(&std::fs::read(&clean_log).expect("the alert log"));
    let want = oracle_of(&fx.case);
    alert_oracle::assert_alerts(&clean_alerts, &want.log, fx.case.epoch_ms, "uninterrupted");
    let kinds: BTreeSet<(&str, &str)> = clean_alerts
        .iter()
        .map(|a| {
            let (kind, state) = (a["kind"].as_str(), a["state"].as_str());
            (kind.expect("kind"), state.expect("state"))
        })
        .collect();
    for kind in ["high", "low", "rate", "silent"] {
        assert!(kinds.contains(&(kind, "raised")), "no {kind} alert raised");
    }
    for kind in ["high", "low", "silent"] {
        assert!(
            kinds.contains(&(kind, "resolved")),
            "no {kind} alert resolved"
        );
    }
    let clean_by_id: BTreeMap<String, Value> = clean_alerts
        .iter()
        .map(|a| (a["id"].as_str().expect("id").to_owned(), a.clone()))
        .collect();
    assert_eq!(clean_by_id.len(), clean_alerts.len(), "ids are unique");

    // The same input, killed with SIGKILL again and again, publishing to a topic.
    fx.broker.create_topic("beds.alerts", PARTITIONS);
    let state = fx.path("state");
    let mut args = vec![
        "--rules",
        rules,
        "--state-dir",
        state.to_str().expect("UTF-8"),
        "--alerts-topic",
        "beds.alerts",
    ];
    args.extend(SMALL_FETCHES);
    let args = fx.args("killed", &args);
    let (kills, last) = kill_until_finished(
        (&args, &state),
        (&by_epoch(&clean_reports), fx.case.base_epoch()),
        &fx.path("killed.log"),
        |committed| {
            // After each kill the topic holds lines of the uninterrupted log, each once, and
            // every transition of the epochs the last checkpoint covers: they are published
            // and acknowledged before the checkpoint is committed.
            let so_far = published_by_id(&brokers, "beds.alerts");
            for (id, line) in &so_far {
                assert_eq!(Some(line), clean_by_id.get(id), "published before a kill");
            }
            for (id, line) in &clean_by_id {
                let covered = line["epoch"].as_u64().expect("epoch") < committed;
                assert!(
                    !covered || so_far.contains_key(id),
                    "{id} is not in the topic, yet the checkpoint of epochs before {committed} is committed"
                );
            }
        },
    );
    assert_resumed(&kills, &last, &clean_reports);

    // Every transition of the uninterrupted log is in the topic, exactly once.
    let topic = published_by_id(&brokers, "beds.alerts");
    let missing: Vec<&String> = clean_by_id
        .keys()
        .filter(|id| !topic.contains_key(*id))
        .collect();
    let extra: Vec<&String> = topic
        .keys()
        .filter(|id| !clean_by_id.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing from the topic: {missing:?}\nnot in the uninterrupted log: {extra:?}"
    );
    assert_eq!(topic, clean_by_id, "the published lines");
}

#[test]
fn gh_9_windows_resume_exactly_after_kill_9() {
    let fx = Fixture::new("wards");
    let window = ["--window", "5s", "--rules", "none"];
    let clean = json_lines(&fx.run("clean", &window).stdout);
    assert!(clean.len() > 200, "{} reports", clean.len());
    assert!(clean.iter().all(|r| r["window"] == 5), "5 s windows");
    // The window moves: the latest report is not everything read.
    let read = alert_oracle::parse_input(fx.case.input.as_bytes()).len();
    let last_total = clean.last().expect("final")["total_messages"].as_u64();
    assert!(last_total.expect("total") < read as u64 / 10);

    let state = fx.path("state");
    let mut args = window.to_vec();
    args.extend(["--state-dir", state.to_str().expect("UTF-8")]);
    args.extend(SMALL_FETCHES);
    let args = fx.args("killed", &args);
    let (kills, last) = kill_until_finished(
        (&args, &state),
        (&by_epoch(&clean), fx.case.base_epoch()),
        &fx.path("killed.log"),
        |_| {},
    );
    assert_resumed(&kills, &last, &clean);
    // Once more after the end: nothing is left to read, and the final report is the same
    // window again, not the empty one at the wall clock's epoch.
    let again = start_and_kill(&args, &state, (None, None), &fx.path("again.log"));
    let Ending::Finished(again) = again else {
        unreachable!("not killed")
    };
    assert_eq!(again.as_slice(), &clean[clean.len() - 1..], "after the end");
}

/// Runs `args`, which must fail without a report and with one line on stderr; returns the
/// exit code and that line.
fn refused(fx: &Fixture, args: &[&str]) -> (Option<i32>, String) {
    let args = fx.args("again", args);
    let out = output_within(hygroflow().args(&args), "a refused restart");
    assert!(out.stdout.is_empty(), "a refused run reports nothing");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    (out.status.code(), lines[0].to_owned())
}

#[test]
fn gh_9_restart_with_other_epoch_window_or_alerts_off_is_refused() {
    let fx = Fixture::new("rooms");
    let state = fx.path("state");
    let state = state.to_str().expect("UTF-8");
    let rules = fx.rules.to_str().expect("UTF-8");
    let flags = |epoch, window, rules| {
        vec![
            "--epoch",
            epoch,
            "--window",
            window,
            "--rules",
            rules,
            "--state-dir",
            state,
        ]
    };
    let first = json_lines(&fx.run("first", &flags("1s", "6s", rules)).stdout);
    assert!(!first.is_empty());

    // One flag changed at a time (the rules' windows are whole multiples of 500ms too).
    for (args, flag, was_now) in [
        (
            flags("500ms", "6s", rules),
            "--epoch",
            Some(("1s", "500ms")),
        ),
        (flags("1s", "5s", rules), "--window", Some(("6s", "5s"))),
        (flags("1s", "6s", "none"), "--rules", None),
    ] {
        let (code, error) = refused(&fx, &args);
        assert!(
            matches!(code, Some(c) if c != 0),
            "{flag}: exit code {code:?}"
        );
        let names_it = if flag == "--rules" {
            error.contains("was written with --rules rules#")
                && error.contains("this run has none")
                && error.contains("alerts cannot be turned on or off")
        } else {
            error.contains(&format!("was written with {flag} "))
        };
        assert!(names_it && error.contains(state), "{flag}: {error}");
        if let Some((was, now)) = was_now {
            let says = format!("was written with {flag} {was}, this run has {flag} {now}");
            assert!(error.contains(&says), "{error}");
        }
    }
    // Nothing was spoiled: the same flags resume, and the same rules under another file name
    // are the same rules. With nothing left to read, the resumed run ends with the first
    // run's final report.
    let same_rules = fx.path("same-rules.toml");
    std::fs::copy(&fx.rules, &same_rules).expect("copy");
    let same_rules = same_rules.to_str().expect("UTF-8");
    let again = json_lines(&fx.run("first", &flags("1s", "6s", same_rules)).stdout);
    assert_eq!(
        again.as_slice(),
        &first[first.len() - 1..],
        "after the refusals"
    );
}

#[test]
fn gh_22_a_rules_change_at_restart_carries_every_state_over_and_judges_by_the_new_rules() {
    let fx = Fixture::new("wards");
    let state = fx.path("state");
    let rules = fx.rules.to_str().expect("UTF-8");
    let changed = alert_runs::changed_rules(&fx.case);
    let changed_path = fx.path("changed-rules.toml");
    std::fs::write(&changed_path, changed.to_toml()).expect("write");
    // Killed mid-run with the first rules...
    let mut args = vec![
        "--rules",
        rules,
        "--state-dir",
        state.to_str().expect("UTF-8"),
    ];
    args.extend(SMALL_FETCHES);
    let first = fx.args("ward", &args);
    let ending = start_and_kill(
        &first,
        &state,
        (Some((120, 0)), None),
        &fx.path("first.log"),
    );
    let Ending::Killed(_, frontier) = ending else {
        panic!("the first run ended before it was killed");
    };
    // ...and restarted with the changed rules file.
    let log_path = fx.path("alerts.jsonl");
    let mut args = vec![
        "--rules",
        changed_path.to_str().expect("UTF-8"),
        "--state-dir",
        state.to_str().expect("UTF-8"),
        "--alerts",
        log_path.to_str().expect("UTF-8"),
    ];
    args.extend(SMALL_FETCHES);
    let again = fx.run("ward", &args);
    let log = json_lines(&std::fs::read(&log_path).expect("the alert log"));
    let (rules_lines, transitions) = alert_runs::split_rules_lines(&log);
    assert_eq!(
        rules_lines.len(),
        1,
        "one line records the change: {rules_lines:?}"
    );
    let line = &rules_lines[0];
    assert_eq!(line["epoch"].as_u64(), Some(frontier), "{line}");
    assert_ne!(line["was"], line["now"], "{line}");
    assert!(
        line["was"]
            .as_str()
            .is_some_and(|w| w.starts_with("rules#")),
        "{line}"
    );
    assert!(!json_lines(&again.stdout).is_empty(), "the restart reports");
    // Everything from the frontier on is what the oracle says with the rules switched there:
    // windows, silence timers and raised alerts carried over.
    let change = i64::try_from(frontier).expect("epoch");
    let want = alert_runs::oracle_changing(&fx.case, (&fx.case.rules, &changed), change);
    let after: Vec<_> = want.log.into_iter().filter(|a| a.epoch >= change).collect();
    alert_oracle::assert_alerts(&transitions, &after, fx.case.epoch_ms, "after the change");
    // And the change mattered: the old rules alone would have logged otherwise.
    let unchanged = oracle_of(&fx.case);
    let unchanged: Vec<_> = unchanged
        .log
        .into_iter()
        .filter(|a| a.epoch >= change)
        .collect();
    assert_ne!(unchanged, after, "the changed rules change nothing here");
}

#[test]
fn gh_22_in_a_cluster_reloaded_rules_apply_once_every_process_has_them() {
    let broker = Broker::start();
    let case = alert_cases::random(37, 1000, 300);
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, rules_path) = write_case(&case, dir.path());
    broker.create_topic("reload", PARTITIONS);
    broker.create_topic("reload.dlq", 1);
    // The input in three parts by epoch: to 100, to 200, the rest.
    let base = case.base_epoch();
    let epoch_of = |line: &str| {
        let v: Value = serde_json::from_str(line).expect("JSON");
        alert_oracle::parse_time(v["eventTime"].as_str().expect("eventTime"))
            .div_euclid(case.epoch_ms)
    };
    let mut parts = [String::new(), String::new(), String::new()];
    for line in case.input.lines() {
        let e = epoch_of(line) - base;
        parts[usize::from(e >= 100) + usize::from(e >= 200)].push_str(&format!("{line}\n"));
    }
    let produce = |i: usize| {
        let path = dir.path().join(format!("part{i}.jsonl"));
        std::fs::write(&path, &parts[i]).expect("write");
        let out = output_within(
            hygroflow()
                .args(["produce", "-b", &broker.brokers(), "-t", "reload"])
                .arg(&path),
            "produce",
        );
        assert_success(&out, "produce");
    };
    let hosts = dir.path().join("hosts.txt");
    let lines: String = (0..2)
        .map(|_| format!("127.0.0.1:{}\n", common::free_port()))
        .collect();
    std::fs::write(&hosts, lines).expect("hostfile");
    let log_path = dir.path().join("alerts.jsonl");
    let spawn = |p: &str| {
        hygroflow()
            .args([
                "run",
                "-b",
                &broker.brokers(),
                "-t",
                "reload",
                "--time",
                "event",
            ])
            .args([
                "--epoch",
                &case.epoch_flag(),
                "--idle-timeout",
                "1s",
                "--format",
                "json",
            ])
            .arg("--rules")
            .arg(&rules_path)
            .arg("--alerts")
            .arg(&log_path)
            .args(["-w", "1", "-n", "2", "-p", p, "-h"])
            .arg(&hosts)
            .args(["--connect-timeout", "30s"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("a process starts")
    };
    let (mut p0, mut p1) = (spawn("0"), spawn("1"));
    let reports = alert_runs::lines_of(p0.stdout.take().expect("stdout"));
    let (err0, err1) = (
        alert_runs::lines_of(p0.stderr.take().expect("stderr")),
        alert_runs::lines_of(p1.stderr.take().expect("stderr")),
    );
    let _quiet = p1.stdout.take();
    let (mut printed, mut logged0, mut logged1) = (Vec::new(), Vec::new(), Vec::new());
    let reported_to = |printed: &mut Vec<String>, e: i64| {
        alert_runs::wait_line(&reports, printed, "a report", |l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|r| r["epoch"].as_i64())
                .is_some_and(|r| r >= base + e)
        });
    };
    produce(0);
    reported_to(&mut printed, 95);
    // Process 1 alone reloads: the old rules stay while epochs 100 to 200 are reported.
    let changed = alert_runs::changed_rules(&case);
    std::fs::write(&rules_path, changed.to_toml()).expect("write");
    alert_runs::sighup(p1.id());
    alert_runs::wait_line(&err1, &mut logged1, "process 1's reload", |l| {
        l.contains("rules reloaded")
    });
    produce(1);
    reported_to(&mut printed, 195);
    let before_p0 = printed
        .iter()
        .chain(reports.try_iter().collect::<Vec<_>>().iter())
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["epoch"].as_i64())
        .max()
        .expect("reports");
    // Then process 0 too: from one epoch on, the new rules, in both.
    alert_runs::sighup(p0.id());
    alert_runs::wait_line(&err0, &mut logged0, "process 0's reload", |l| {
        l.contains("rules reloaded")
    });
    produce(2);
    reported_to(&mut printed, 295);
    // SIGTERM to one process stops both; what was read is processed.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &p0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(p0.wait().expect("p0 ends").success(), "{logged0:#?}");
    assert!(p1.wait().expect("p1 ends").success(), "{logged1:#?}");
    let log = json_lines(&std::fs::read(&log_path).expect("the alert log"));
    let (rules_lines, transitions) = alert_runs::split_rules_lines(&log);
    assert_eq!(rules_lines.len(), 1, "{rules_lines:?}");
    let change = rules_lines[0]["epoch"].as_i64().expect("epoch");
    assert!(
        change > before_p0,
        "the new rules apply from {change}, yet epochs to {before_p0} were reported before process 0 had them"
    );
    let want = alert_runs::oracle_changing(&case, (&case.rules, &changed), change);
    alert_oracle::assert_alerts(&transitions, &want.log, case.epoch_ms, "cluster SIGHUP");
}
