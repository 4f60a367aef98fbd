//! The job's life among hostile surroundings (issue 8): signals, pipes, FIFOs, unwritable
//! stderr, outputs that would overwrite the input. Every test runs the real binary.

mod common;

use std::fs::File;
use std::process::Stdio;

use common::{generate, hygroflow, json_lines};

#[test]
fn gh_8_an_unwritable_stderr_does_not_stop_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("small.jsonl");
    generate(&input, 12, 7, 0.2);
    let full = File::options()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = hygroflow()
        .env("RUST_LOG", "info")
        .args(["run", "-i", input.to_str().expect("utf8"), "--format", "json"])
        .stderr(Stdio::from(full))
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{:?}", out.status);
    let reports = json_lines(&out.stdout);
    let last = reports.last().expect("a final report");
    let seen = last["total_messages"].as_i64().unwrap_or(0)
        + last["rejected_messages"].as_i64().unwrap_or(0);
    assert_eq!(seen, 12, "{last}");
}
