//! Running `hygroflow run --rules FILE --alerts FILE --format json` on an alert case (gh-9)
//! and checking what it wrote against the oracle: at 1, 2 and 4 workers, and on 2 processes of
//! 2 workers started from one command line with a hostfile, as `tests/cluster.rs` does.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::alert_cases::Case;
use super::alert_oracle::{assert_alerts, parse_input, recompute, Outcome};
use super::common::{free_port, hygroflow, json_lines};

/// Runs `cmd`, killing it and failing the test if it runs past a minute. The output is read
/// on another thread, so a child that prints much never blocks on a full pipe.
pub fn output_within(cmd: &mut Command, what: &str) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hygroflow");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{what} still runs after a minute");
        }
    }
}

/// Fails unless `out` is a success, showing its stderr.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The case's input and rules files in `dir`.
pub fn write_case(case: &Case, dir: &Path) -> (PathBuf, PathBuf) {
    let (input, rules) = (dir.join("in.jsonl"), dir.join("rules.toml"));
    std::fs::write(&input, &case.input).expect("write input");
    std::fs::write(&rules, case.rules.to_toml()).expect("write rules");
    (input, rules)
}

/// `run -i IN --time event --epoch L --rules RULES --alerts ALERTS --format json`.
pub fn run_args(case: &Case, input: &Path, rules: &Path, alerts: &str) -> Vec<String> {
    let path = |p: &Path| p.to_str().expect("UTF-8").to_owned();
    let epoch = case.epoch_flag();
    [
        "run",
        "-i",
        &path(input),
        "--time",
        "event",
        "--epoch",
        &epoch,
        "--rules",
        &path(rules),
        "--alerts",
        alerts,
        "--format",
        "json",
    ]
    .map(str::to_owned)
    .to_vec()
}

pub fn oracle_of(case: &Case) -> Outcome {
    recompute(
        &parse_input(case.input.as_bytes()),
        &case.rules,
        case.epoch_ms,
    )
}

/// The alert log equals the oracle's, there is one report per reported epoch, and each
/// report's `alerts_active` is the oracle's active set there.
pub fn check_run(alerts: &[Value], reports: &[Value], want: &Outcome, epoch_ms: i64, what: &str) {
    assert_alerts(alerts, &want.log, epoch_ms, what);
    let epochs: Vec<Option<i64>> = reports.iter().map(|r| r["epoch"].as_i64()).collect();
    let expected: Vec<Option<i64>> = want.reported.iter().map(|(e, _)| Some(*e)).collect();
    assert_eq!(epochs, expected, "{what}: one report per epoch with a line");
    for (report, (e, active)) in reports.iter().zip(&want.reported) {
        let got = report["alerts_active"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: no alerts_active array in {report}"));
        assert_alerts(
            got,
            active,
            epoch_ms,
            &format!("{what}, alerts_active at {e}"),
        );
    }
}

/// Runs the case at 1, 2 and 4 workers and on 2 processes of 2 workers; each run's alert log
/// and reports must be the oracle's.
pub fn check_everywhere(case: &Case) {
    let want = oracle_of(case);
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, rules) = write_case(case, dir.path());
    for workers in ["1", "2", "4"] {
        let alerts = dir.path().join(format!("alerts-{workers}.jsonl"));
        let args = run_args(case, &input, &rules, alerts.to_str().expect("UTF-8"));
        let what = format!("-w {workers}");
        let out = output_within(hygroflow().args(&args).args(["-w", workers]), &what);
        assert_success(&out, &what);
        let log = json_lines(&std::fs::read(&alerts).expect("the alerts file"));
        check_run(&log, &json_lines(&out.stdout), &want, case.epoch_ms, &what);
    }
    // A cluster is started with one command line: every process gets the same flags.
    let hosts = dir.path().join("hosts.txt");
    let lines: String = (0..2)
        .map(|_| format!("127.0.0.1:{}\n", free_port()))
        .collect();
    std::fs::write(&hosts, lines).expect("hostfile");
    let alerts = dir.path().join("alerts-cluster.jsonl");
    let args = run_args(case, &input, &rules, alerts.to_str().expect("UTF-8"));
    let children: Vec<_> = (0..2)
        .map(|p| {
            let p = p.to_string();
            let hosts = hosts.to_str().expect("UTF-8").to_owned();
            let mut cmd = hygroflow();
            cmd.args(&args)
                .args(["-w", "2", "-n", "2", "-p", &p, "-h", &hosts])
                .args(["--connect-timeout", "30s"]);
            std::thread::spawn(move || output_within(&mut cmd, &format!("process {p}")))
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.join().expect("a process"))
        .collect();
    for (p, out) in outputs.iter().enumerate() {
        assert_success(out, &format!("process {p} of 2"));
    }
    assert!(outputs[1].stdout.is_empty(), "only process 0 prints");
    let log = json_lines(&std::fs::read(&alerts).expect("the alerts file"));
    let reports = json_lines(&outputs[0].stdout);
    check_run(
        &log,
        &reports,
        &want,
        case.epoch_ms,
        "2 processes x 2 workers",
    );
}

/// The case's rules changed as a rules reload would: other bands, hysteresis and silences,
/// the same windows and rates (a window longer than before would average only what was kept).
pub fn changed_rules(case: &Case) -> super::alert_rules::Rules {
    use super::alert_rules::pct;
    let mut rules = case.rules.clone();
    let s = case.epoch_ms / 1000;
    rules.defaults.high = Some(pct("55"));
    rules.defaults.low = Some(pct("33"));
    rules.defaults.silence_s = Some(5 * s);
    if let Some(mri) = rules.modality.get_mut("MRI") {
        mri.high = Some(pct("42.5"));
        mri.hysteresis = Some(pct("1.5"));
    }
    if let Some(petct2) = rules.device.get_mut("PETCT2") {
        petct2.silence_s = Some(3 * s);
    }
    rules
}

/// The oracle's log of `case` with `before` in force before epoch `change` and `after` from
/// it on.
pub fn oracle_changing(
    case: &Case,
    (before, after): (&super::alert_rules::Rules, &super::alert_rules::Rules),
    change: i64,
) -> Outcome {
    super::alert_oracle::recompute_with(
        &parse_input(case.input.as_bytes()),
        &|e| if e < change { before } else { after },
        case.epoch_ms,
    )
}

/// Splits an alert log into its `rules` lines and its transitions, checking that each
/// `rules` line comes before every transition of its epoch and after every earlier one.
pub fn split_rules_lines(log: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let mut rules = Vec::new();
    let mut transitions: Vec<Value> = Vec::new();
    for line in log {
        if line["event"] == "rules" {
            let epoch = line["epoch"].as_i64().expect("a rules line's epoch");
            assert!(
                transitions
                    .last()
                    .is_none_or(|t| t["epoch"].as_i64().expect("epoch") < epoch),
                "a rules line after a transition of its epoch: {line}"
            );
            rules.push(line.clone());
        } else {
            if let (Some(r), Some(e)) = (rules.last(), line["epoch"].as_i64()) {
                assert!(r["epoch"].as_i64() <= Some(e), "{line} before {r}");
            }
            transitions.push(line.clone());
        }
    }
    (rules, transitions)
}

/// Lines on a channel, read from `from` on a thread of their own.
pub fn lines_of(from: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits up to a minute for a line of `rx` that `wanted` accepts, keeping every line in
/// `seen`.
pub fn wait_line(
    rx: &std::sync::mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> String {
    let start = std::time::Instant::now();
    loop {
        let left = std::time::Duration::from_secs(60).saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if wanted(&line) {
                    return line;
                }
            }
            Err(_) => panic!("no {what} within a minute; got {seen:#?}"),
        }
    }
}

/// Sends SIGHUP to `pid`.
pub fn sighup(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
}
