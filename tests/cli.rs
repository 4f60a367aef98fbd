//! Binary tests: the real `hygroflow` binary on generated files with malformed lines.

mod common;

use std::io::{BufRead, Write};
use std::process::Stdio;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{assert_report_matches, generate, hygroflow, json_lines, recompute, run};

fn input(count: u64, seed: u64, bad: f64) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input.jsonl");
    generate(&path, count, seed, bad);
    let bytes = std::fs::read(&path).expect("read back");
    (dir, path, bytes)
}

/// Runs `hygroflow run -i PATH --format json EXTRA...`, which must succeed.
fn run_file(path: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "-i",
        path.to_str().expect("utf8"),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn json_final_report_matches_recomputation_at_1_and_4_workers() {
    let (_dir, path, bytes) = input(30_000, 11, 0.03);
    let expected = recompute(&bytes);
    assert!(
        expected.rejected_messages > 500,
        "the input has malformed lines"
    );
    for workers in ["1", "4"] {
        for time in ["processing", "event"] {
            let out = run_file(&path, &["-w", workers, "--time", time]);
            let reports = json_lines(&out.stdout);
            let last = reports.last().expect("at least one report");
            assert_report_matches(last, &expected);
            let keys = [
                "epoch",
                "time",
                "total_messages",
                "rejected_messages",
                "late_messages",
                "future_messages",
                "total_sensors",
                "avg_humidity_by_device",
                "sensors_by_device",
                "window",
                "alerts_active",
            ];
            assert_eq!(
                last.as_object().expect("object").len(),
                keys.len(),
                "exactly the documented keys"
            );
            let raw = String::from_utf8_lossy(&out.stdout);
            let line = raw.lines().last().expect("a line");
            let positions: Vec<usize> = keys
                .iter()
                .map(|k| line.find(&format!("\"{k}\":")).expect("key present"))
                .collect();
            assert!(
                positions.windows(2).all(|w| w[0] < w[1]),
                "keys in the documented order: {line}"
            );
        }
    }
}

#[test]
fn event_time_epochs_are_the_same_at_any_worker_count() {
    let (_dir, path, bytes) = input(20_000, 5, 0.01);
    let per_epoch =
        |workers: &str| json_lines(&run_file(&path, &["-w", workers, "--time", "event"]).stdout);
    let one = per_epoch("1");
    // 20,000 lines 0.3 ms apart span 6 s: two 3-second epochs after the first partial one.
    assert!(one.len() >= 2, "{one:?}");
    let epochs: Vec<u64> = one
        .iter()
        .map(|r| r["epoch"].as_u64().expect("epoch"))
        .collect();
    assert!(
        epochs.windows(2).all(|w| w[0] < w[1]),
        "epochs ascend: {epochs:?}"
    );
    let totals: Vec<i64> = one
        .iter()
        .map(|r| r["total_messages"].as_i64().expect("n"))
        .collect();
    assert!(
        totals.windows(2).all(|w| w[0] <= w[1]),
        "cumulative totals only grow: {totals:?}"
    );
    assert_eq!(one, per_epoch("3"));
    assert_report_matches(one.last().expect("final"), &recompute(&bytes));
}

#[test]
fn text_report_matches_recomputation() {
    let (_dir, path, bytes) = input(5_000, 2, 0.02);
    let expected = recompute(&bytes);
    for workers in ["1", "4"] {
        let out = run(&[
            "run",
            "--input",
            path.to_str().expect("utf8"),
            "-w",
            workers,
            "--time",
            "event",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf8");
        let last = text.rsplit("Time: ").next().expect("a report");
        assert!(
            last.contains(&format!(
                "Total number of messages: {}\n",
                expected.total_messages
            )),
            "{last}"
        );
        assert!(last.contains(&format!(
            "Total number of sensors: {}\n",
            expected.total_sensors
        )));
        assert!(last.contains(&format!(
            "Rejected messages: {}",
            expected.rejected_messages
        )));
        for (device, n) in &expected.sensors_by_device {
            assert!(last.contains(&format!("({device}, {n})\n")), "{device}");
        }
        let (top, avg) = expected
            .avg
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("devices");
        let first_row = last.lines().find(|l| l.starts_with('(')).expect("rows");
        assert_eq!(first_row, format!("({top}, {avg:.2})"));
    }
}

#[test]
fn stdin_input_and_changes() {
    let (_dir, _path, bytes) = input(8_000, 3, 0.05);
    let mut child = hygroflow()
        .args([
            "run",
            "-i",
            "-",
            "-w",
            "2",
            "--format",
            "json",
            "--time",
            "event",
            "--changes",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .expect("feed stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let reports = json_lines(&out.stdout);
    // With --changes the run ends with one full report: the final result.
    assert_report_matches(reports.last().expect("final"), &recompute(&bytes));
    let first = &reports[0];
    let changed = first["sensors_by_device"].as_array().expect("array").len();
    assert!(changed > 0 && changed <= 51);
}

#[test]
fn dead_letters_keep_every_rejected_line() {
    let (dir, path, bytes) = input(4_000, 9, 0.1);
    let rejects = dir.path().join("rejects.jsonl");
    run_file(
        &path,
        &["-w", "3", "--rejects", rejects.to_str().expect("utf8")],
    );
    let expected = recompute(&bytes);
    let letters = json_lines(&std::fs::read(&rejects).expect("rejects file"));
    assert_eq!(letters.len() as i64, expected.rejected_messages);
    // Three workers read their own parts of the file: a line is named by its byte offset.
    let line_at = |offset: usize| {
        assert!(
            offset == 0 || bytes[offset - 1] == b'\n',
            "a line starts at {offset}"
        );
        let end = bytes[offset..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |p| offset + p);
        &bytes[offset..end]
    };
    for letter in &letters {
        let origin = letter["origin"].as_str().expect("origin");
        let offset: usize = origin
            .strip_prefix("byte ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a byte offset: {origin}"));
        let original = line_at(offset);
        match letter.get("raw").and_then(|r| r.as_str()) {
            Some(raw) => assert_eq!(raw.as_bytes(), original),
            None => assert!(
                letter["raw_base64"].is_string(),
                "non-UTF-8 lines are kept in base64"
            ),
        }
        assert!(!letter["error"].as_str().expect("error").is_empty());
    }
}

#[test]
fn huge_and_hostile_lines_are_rejected_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hostile.jsonl");
    let good =
        r#"{"guid":"g1","medicalimagingdevice":"MRI1","payload":{"data":{"humidity":50.5}}}"#;
    let mut bytes = Vec::new();
    bytes.extend_from_slice(good.as_bytes());
    bytes.push(b'\n');
    bytes.extend(std::iter::repeat_n(b'x', 10 << 20));
    bytes.push(b'\n');
    bytes.extend_from_slice(b"\xff\xfe\n\n{\"guid\":\n[]\n");
    bytes.extend_from_slice(good.as_bytes());
    std::fs::write(&path, &bytes).expect("write");
    let out = run_file(&path, &[]);
    let last = json_lines(&out.stdout).pop().expect("final");
    assert_eq!(last["total_messages"], 2);
    assert_eq!(last["rejected_messages"], 5);
    assert_eq!(last["avg_humidity_by_device"][0][1], 50.5);
}

/// Runs the binary with `args`, which must fail with one line on stderr; returns its output.
fn fails_with_one_line(args: &[&str]) -> std::process::Output {
    let out = run(args);
    assert!(!out.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{args:?}: one line, got {stderr:?}"
    );
    assert!(stderr.starts_with("hygroflow: "), "{stderr}");
    assert!(!stderr.contains("panicked"));
    out
}

#[test]
fn bad_flags_and_files_fail_with_one_line() {
    for args in [
        vec!["run", "--epoch", "0s"],
        vec!["run", "--workers", "0"],
        vec!["run", "--input", "/no/such/file.jsonl"],
        vec!["run", "--format", "xml"],
        vec!["run", "--no-such-flag"],
        vec!["run", "-n", "2", "-p", "5"],
        vec!["generate", "--bad-fraction", "2"],
    ] {
        fails_with_one_line(&args);
    }
}

#[test]
fn gh_7_run_checks_the_broker_list() {
    // The same mistakes `produce` refuses, refused before any connection is tried (no broker
    // runs here: a list that passed would be retried until the test timed out).
    for (brokers, why) in [
        ("host:notaport", "is not host:port"),
        ("", "no brokers given"),
        ("a:9092,", "empty broker address"),
        ("h:99999", "is not host:port"),
    ] {
        let out = fails_with_one_line(&["run", "-b", brokers, "-t", "t", "--until-end"]);
        assert_eq!(out.status.code(), Some(2), "{brokers:?}: a flag error");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{brokers:?}: {stderr}");
    }
}

#[test]
fn closed_stdout_pipe_exits_quietly() {
    let (_dir, path, _bytes) = input(20_000, 4, 0.0);
    let mut child = hygroflow()
        .args([
            "run",
            "-i",
            path.to_str().expect("utf8"),
            "--epoch",
            "1ms",
            "--time",
            "event",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(141),
        "quietly, with SIGPIPE's shell status"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same for `generate | head -1`.
    let mut child = hygroflow()
        .args(["generate", "--count", "10000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut first,
    )
    .expect("one line");
    assert!(first.starts_with('{'));
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(141));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn demo_runs_without_arguments_until_interrupted() {
    let child = hygroflow()
        .args([
            "--epoch", "300ms", "--format", "json", "-w", "2", "--rate", "20000",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    // The demo's default scenarios, each said once, in wall-clock time (gh-9 point 4).
    let stderr = String::from_utf8_lossy(&out.stderr);
    for says in [
        "scenario excursion: CT1 +25 % RH from ",
        "scenario silence: SPECT1's ",
        "scenario drift: MRI1 rises 30 % RH per hour from ",
    ] {
        assert_eq!(stderr.matches(says).count(), 1, "{says:?} in {stderr}");
    }
    let reports = json_lines(&out.stdout);
    assert!(
        reports.len() >= 3,
        "a report every epoch: {}",
        reports.len()
    );
    let last = reports.last().expect("final");
    assert!(last["total_messages"].as_i64().expect("n") > 5_000);
    assert_eq!(last["sensors_by_device"].as_array().expect("a").len(), 51);
    let epochs: Vec<u64> = reports
        .iter()
        .map(|r| r["epoch"].as_u64().expect("e"))
        .collect();
    assert!(
        epochs.windows(2).all(|w| w[1] == w[0] + 1 || w[1] == w[0]),
        "no epoch skipped: {epochs:?}"
    );
}

/// A `hygroflow run -i -` job fed through its stdin, whose JSON reports are read as they come.
struct PipedJob {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    reports: Receiver<serde_json::Value>,
}

impl PipedJob {
    /// Starts `hygroflow run -i - --format json EXTRA...`.
    fn spawn(extra: &[&str]) -> PipedJob {
        let mut child = hygroflow()
            .args(["run", "-i", "-", "--format", "json"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, reports) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let report = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
                if tx.send(report).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        PipedJob {
            child,
            stdin,
            reports,
        }
    }

    /// Writes `bytes` to the job's stdin, then leaves the pipe open and quiet.
    fn feed(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(bytes).expect("feed stdin");
        stdin.flush().expect("flush stdin");
    }

    /// The first report that counts any message, waiting while the input is quiet (at most
    /// 30 s, far longer than it takes: this is a deadline against hanging, not a timing).
    fn first_report_with_messages(&self) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let report = self.reports.recv_timeout(left).unwrap_or_else(|e| {
                panic!("no report counted the lines written before the pause: {e}")
            });
            if report["total_messages"].as_i64().expect("total_messages") > 0 {
                return report;
            }
        }
    }

    /// Closes stdin, waits for the job to succeed and returns the reports not yet read.
    fn finish(mut self) -> Vec<serde_json::Value> {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "{status}");
        self.reports.iter().collect()
    }
}

impl Drop for PipedJob {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first `n` lines of `bytes`, and the rest.
fn split_after_lines(bytes: &[u8], n: usize) -> (&[u8], &[u8]) {
    let end = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map(|(i, _)| i + 1)
        .expect("enough lines");
    bytes.split_at(end)
}

#[test]
fn gh_7_a_live_pipe_reports_lines_within_their_epoch() {
    let (_dir, _path, bytes) = input(10, 7, 0.0);
    let (first, rest) = split_after_lines(&bytes, 5);
    let mut job = PipedJob::spawn(&["--epoch", "1s"]);
    job.feed(first);
    // The pipe stays open and quiet until a report counts what was written before the pause.
    let report = job.first_report_with_messages();
    assert_eq!(report["total_messages"], 5, "{report}");
    job.feed(rest);
    let reports = job.finish();
    let last = reports.last().expect("a final report");
    assert_report_matches(last, &recompute(&bytes));
    assert_eq!(last["total_messages"], 10);
}

#[test]
fn gh_7_late_records_after_an_idle_pause_count_as_late() {
    // 20 readings 100 ms apart in event time: all in one 3-second epoch.
    let generated = run(&[
        "generate",
        "--count",
        "20",
        "--seed",
        "7",
        "--interval-ms",
        "100",
    ]);
    assert!(generated.status.success());
    let bytes = generated.stdout;
    let (first, rest) = split_after_lines(&bytes, 10);
    let mut job = PipedJob::spawn(&["--time", "event", "--idle-timeout", "1s"]);
    job.feed(first);
    // After --idle-timeout the idle worker follows the wall clock: the first ten's epoch
    // closes and is reported while the pipe is still open.
    let report = job.first_report_with_messages();
    assert_eq!(report["total_messages"], 10, "{report}");
    assert_eq!(report["late_messages"], 0, "{report}");
    job.feed(rest);
    let reports = job.finish();
    let last = reports.last().expect("a final report");
    assert_eq!(last["total_messages"], 20, "{last}");
    assert_eq!(
        last["late_messages"], 10,
        "the last ten belong to an epoch already reported: {last}"
    );
}

#[test]
fn gh_9_a_window_of_one_epoch_gives_the_spark_jobs_per_batch_figures() {
    // 3,000 readings 10 ms apart: ten batches and a bit.
    let generated = run(&[
        "generate",
        "--count",
        "3000",
        "--seed",
        "5",
        "--interval-ms",
        "10",
    ]);
    assert!(generated.status.success());
    let bytes = generated.stdout;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input.jsonl");
    std::fs::write(&path, &bytes).expect("write the input");
    // The lines of each 3-second batch of event time, as the Spark job cut them.
    let mut batches: std::collections::BTreeMap<u64, Vec<u8>> = Default::default();
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let value: serde_json::Value = serde_json::from_slice(line).expect("a valid line");
        let time = value["eventTime"].as_str().expect("eventTime");
        let ms = chrono::DateTime::parse_from_rfc3339(time)
            .expect("RFC 3339")
            .timestamp_millis();
        let epoch = u64::try_from(ms).expect("after 1970") / 3000;
        batches.entry(epoch).or_default().extend_from_slice(line);
    }
    assert!(batches.len() > 3, "several batches: {}", batches.len());
    for workers in ["1", "2"] {
        let args = ["-w", workers, "--time", "event", "--epoch", "3s"];
        let out = run_file(&path, &[&args[..], &["--window", "3s"]].concat());
        let reports = json_lines(&out.stdout);
        let epochs: Vec<u64> = reports.iter().filter_map(|r| r["epoch"].as_u64()).collect();
        assert_eq!(epochs, batches.keys().copied().collect::<Vec<_>>());
        for report in &reports {
            let epoch = report["epoch"].as_u64().expect("epoch");
            assert_report_matches(report, &recompute(&batches[&epoch]));
            assert_eq!(report["window"], 3, "{report}");
            assert_eq!(report["late_messages"], 0, "{report}");
        }
    }
}

#[test]
fn gh_9_with_changes_a_device_leaving_the_window_appears_once_with_null() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input.jsonl");
    let line = |device: &str, second: u32| {
        format!(
            r#"{{"guid":"g-{device}","medicalimagingdevice":"{device}","eventTime":"2022-07-30T01:09:{second:02}.000Z","payload":{{"data":{{"humidity":45.0}}}}}}"#
        )
    };
    // CT1 reads at second 0 only; MRI1 at 0, 2, 4 and 6: with a 2-second window CT1 leaves
    // the window at epoch 2 (second 2) and is not in it at 4 or 6.
    let lines = [
        line("CT1", 0),
        line("MRI1", 0),
        line("MRI1", 2),
        line("MRI1", 4),
        line("MRI1", 6),
    ];
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    let args = [
        "--time",
        "event",
        "--epoch",
        "1s",
        "--window",
        "2s",
        "--changes",
    ];
    let reports = json_lines(&run_file(&path, &args).stdout);
    let nulls: Vec<(u64, &str)> = reports
        .iter()
        .flat_map(|r| {
            let epoch = r["epoch"].as_u64().expect("epoch");
            let listed = r["avg_humidity_by_device"].as_array().expect("list");
            listed
                .iter()
                .filter(|entry| entry[1].is_null())
                .map(move |entry| (epoch, entry[0].as_str().expect("device")))
        })
        .collect();
    let first = reports[0]["epoch"].as_u64().expect("epoch");
    assert_eq!(nulls, [(first + 2, "CT1")], "{reports:#?}");
    let sensor_nulls = reports
        .iter()
        .flat_map(|r| r["sensors_by_device"].as_array().expect("list").clone())
        .filter(|entry| entry[1].is_null())
        .count();
    assert_eq!(sensor_nulls, 1, "{reports:#?}");
    // Without --changes the window simply leaves CT1 out.
    let full = json_lines(&run_file(&path, &args[..6]).stdout);
    let last = full.last().expect("a report");
    assert_eq!(
        last["avg_humidity_by_device"],
        serde_json::json!([["MRI1", 45.0]])
    );
}

/// The lines of `hygroflow generate ARGS` (which must succeed), each as (event ms from the
/// first line, device, humidity, guid), and its stderr at log level info.
fn generated(args: &[&str]) -> (Vec<(i64, String, f64, String)>, String) {
    let out = hygroflow()
        .arg("generate")
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    let mut first = None;
    let lines = json_lines(&out.stdout)
        .iter()
        .map(|v| {
            let time = v["eventTime"].as_str().expect("eventTime");
            let ms = chrono::DateTime::parse_from_rfc3339(time)
                .expect("RFC 3339")
                .timestamp_millis();
            let device = v["medicalimagingdevice"]
                .as_str()
                .or_else(|| v["medicalImagingdevice"].as_str())
                .expect("device");
            let humidity = v["payload"]["data"]["humidity"].as_f64().expect("humidity");
            let guid = v["guid"].as_str().expect("guid");
            let from = *first.get_or_insert(ms);
            (ms - from, device.to_owned(), humidity, guid.to_owned())
        })
        .collect();
    (lines, stderr)
}

#[test]
fn gh_9_an_excursion_raises_ct1_by_25_inside_its_window_only() {
    // 4 minutes of lines 30 ms apart; CT1 reads +25 % RH from 1m to 3m.
    let args = ["--count", "8000", "--interval-ms", "30", "--seed", "3"];
    let (plain, quiet) = generated(&args);
    assert!(quiet.is_empty(), "no scenario, nothing said: {quiet}");
    let (raised, said) = generated(&[&args[..], &["--scenario", "excursion@1m"]].concat());
    assert!(
        said.contains("scenario excursion: CT1 +25 % RH from 2022-07-30T01:10:00.000Z to 2022-07-30T01:12:00.000Z"),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "{said}");
    assert_eq!(plain.len(), raised.len());
    let mut inside = 0;
    for (p, r) in plain.iter().zip(&raised) {
        // The same sensors at the same times: only CT1's humidity moves, inside the window.
        assert_eq!((p.0, &p.1, &p.3), (r.0, &r.1, &r.3));
        let window = (60_000..180_000).contains(&p.0);
        let expected = if window && p.1 == "CT1" { 25.0 } else { 0.0 };
        assert!((r.2 - p.2 - expected).abs() < 0.11, "{p:?} -> {r:?}");
        inside += usize::from(window && p.1 == "CT1");
    }
    assert!(inside > 50, "CT1 reads often in 2 minutes: {inside}");
}

#[test]
fn gh_9_the_fleet_alone_raises_no_alert() {
    // 20 minutes at a realistic pace: about one reading per device every 1.5 s.
    let (lines, stderr) = generated(&["--count", "40000", "--interval-ms", "30"]);
    assert!(stderr.is_empty(), "{stderr}");
    let mut by_device: std::collections::BTreeMap<&str, Vec<(i64, f64)>> = Default::default();
    let mut last_seen: std::collections::HashMap<&str, i64> = Default::default();
    let mut longest_gap = 0;
    for (ms, device, humidity, guid) in &lines {
        by_device.entry(device).or_default().push((*ms, *humidity));
        if let Some(before) = last_seen.insert(guid, *ms) {
            longest_gap = longest_gap.max(ms - before);
        }
    }
    assert_eq!(by_device.len(), 51);
    assert_eq!(last_seen.len(), 2_100, "every sensor reports");
    assert!(
        longest_gap < 5 * 60_000,
        "no sensor falls silent: {longest_gap} ms"
    );
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    for (device, readings) in by_device {
        let all: Vec<f64> = readings.iter().map(|r| r.1).collect();
        assert!((30.0..=60.0).contains(&mean(&all)), "{device}");
        let mut minutes: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
        for (ms, humidity) in readings {
            minutes.entry(ms / 60_000).or_default().push(humidity);
        }
        let means: Vec<f64> = minutes.values().map(|m| mean(m)).collect();
        assert!(
            means.iter().all(|m| (30.0..=60.0).contains(m)),
            "{device}: {means:?}"
        );
        let max = means.iter().copied().fold(f64::MIN, f64::max);
        let min = means.iter().copied().fold(f64::MAX, f64::min);
        assert!(max - min < 5.0, "{device}: per-minute means {means:?}");
    }
}

#[test]
fn gh_10_the_scaling_script_writes_a_speed_up_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("scaling.md");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/scaling.sh");
    let run = std::process::Command::new(script)
        .arg(&out)
        .env("HYGROFLOW", env!("CARGO_BIN_EXE_hygroflow"))
        .env("WORKERS", "1,2")
        .env("MESSAGES", "3000")
        .env("REPEAT", "1")
        .output()
        .expect("the script runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let table = std::fs::read_to_string(&out).expect("the table");
    for (input, workers) in [("simulated fleet (stdin)", 1), ("file", 1), ("file", 2)] {
        let row = format!("| {input} | {workers} | ");
        assert!(table.contains(&row), "{row}: {table}");
    }
    for input in ["simulated fleet (stdin)", "file"] {
        let one = format!("| {input} | 1 | ");
        let row = table
            .lines()
            .find(|l| l.starts_with(&one))
            .expect("a 1-worker row");
        assert!(
            row.ends_with("| 1.00x |"),
            "the base of the speed-up: {row}"
        );
    }
}

#[test]
fn gh_9_alerts_active_is_complete_with_changes_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input.jsonl");
    let generated = run(&[
        "generate",
        "--count",
        "12000",
        "--interval-ms",
        "30",
        "--scenario",
        "excursion@1m",
    ]);
    assert!(generated.status.success());
    std::fs::write(&path, &generated.stdout).expect("write");
    let args = ["--time", "event"];
    let full = json_lines(&run_file(&path, &args).stdout);
    let changes = json_lines(&run_file(&path, &[&args[..], &["--changes"]].concat()).stdout);
    let active = |reports: &[serde_json::Value]| -> Vec<(u64, serde_json::Value)> {
        reports
            .iter()
            .map(|r| {
                (
                    r["epoch"].as_u64().expect("epoch"),
                    r["alerts_active"].clone(),
                )
            })
            .collect()
    };
    let (full, changes) = (active(&full), active(&changes));
    assert!(
        full.iter()
            .any(|(_, a)| a.as_array().is_some_and(|a| !a.is_empty())),
        "the excursion raises an alert"
    );
    // --changes ends with one more full report of the last epoch.
    assert_eq!(
        changes[..full.len()],
        full[..],
        "the same alerts at every epoch"
    );
}
