//! Upgrades keep state (issue 23 point 4): a state directory written by each released
//! checkpoint format (`tests/fixtures/upgrade/state-vN`, made by
//! `scripts/make-state-fixture.sh` with a build of that release from the first 400 lines of
//! `first.jsonl`) is resumed by this hygroflow, and its final report after the rest of the input
//! equals an uninterrupted run's. A directory of a newer format is refused with the version
//! named.

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::{hygroflow, json_lines};

/// The format this hygroflow writes (`checkpoint::FORMAT_VERSION`): its fixture is the newest.
const FORMAT_VERSION: u32 = 4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade")
}

/// A copy of `from` at `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The topic `upgrade` with first.jsonl then rest.jsonl, as the fixtures were made.
fn broker_with_input() -> broker::Broker {
    let broker = broker::Broker::start();
    broker.create_topic("upgrade", 1);
    broker.create_topic("upgrade.dlq", 1);
    for part in ["first.jsonl", "rest.jsonl"] {
        let out = hygroflow()
            .args(["produce", "-b", &broker.brokers(), "-t", "upgrade"])
            .arg(fixtures().join(part))
            .output()
            .expect("produce");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    broker
}

fn run(broker: &broker::Broker, state: Option<&Path>, group: &str) -> (Vec<Value>, String) {
    let mut cmd = hygroflow();
    cmd.args([
        "run",
        "-b",
        &broker.brokers(),
        "-t",
        "upgrade",
        "--group",
        group,
    ])
    .args(["--time", "event", "--until-end", "--format", "json"])
    .env("RUST_LOG", "warn");
    if let Some(state) = state {
        cmd.arg("--state-dir").arg(state);
    }
    let out = cmd.output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (json_lines(&out.stdout), stderr)
}

/// The report's totals and analyses, without what depends on the run (its time).
fn analyses(report: &Value) -> Value {
    let mut report = report.clone();
    if let Some(object) = report.as_object_mut() {
        object.remove("time");
        object.remove("epoch");
    }
    report
}

#[test]
fn gh_23_a_state_directory_of_each_released_format_resumes_exactly() {
    let broker = broker_with_input();
    let (clean, _) = run(&broker, None, "clean");
    let want = analyses(clean.last().expect("a final report"));
    assert!(
        want["rejected_messages"].as_i64() > Some(0),
        "the input has bad lines: {want}"
    );
    for version in 1..=FORMAT_VERSION {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        copy_dir(&fixtures().join(format!("state-v{version}")), &state);
        let (resumed, stderr) = run(&broker, Some(&state), &format!("v{version}"));
        let got = analyses(resumed.last().expect("a final report"));
        assert_eq!(got, want, "resumed from format version {version}; {stderr}");
        // The first new report is past the fixture's last one: nothing was read twice.
        assert!(
            resumed.len() < clean.len(),
            "version {version}: {} reports",
            resumed.len()
        );
        let marker = std::fs::read_to_string(state.join("COMMITTED")).expect("marker");
        assert!(
            marker.starts_with(&format!("hygroflow-commit {FORMAT_VERSION} ")),
            "migrated on: {marker:.40}"
        );
    }
}

#[test]
fn gh_23_a_state_directory_of_a_newer_format_is_refused_with_the_version() {
    let broker = broker_with_input();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    copy_dir(&fixtures().join(format!("state-v{FORMAT_VERSION}")), &state);
    let marker = state.join("COMMITTED");
    let text = std::fs::read_to_string(&marker).expect("marker");
    std::fs::write(
        &marker,
        text.replacen(
            &format!("hygroflow-commit {FORMAT_VERSION} "),
            &format!("hygroflow-commit {} ", FORMAT_VERSION + 1),
            1,
        ),
    )
    .expect("write");
    let out = hygroflow()
        .args([
            "run",
            "-b",
            &broker.brokers(),
            "-t",
            "upgrade",
            "--until-end",
            "--state-dir",
        ])
        .arg(&state)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains(&format!(
            "format version {}, written by a newer hygroflow",
            FORMAT_VERSION + 1
        )) && lines[0].contains("COMMITTED"),
        "{stderr}"
    );
}
