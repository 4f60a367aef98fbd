//! Hostile text and secrets (gh-8, points 5 and 6), from the binary: a device name cannot
//! forge report lines or reach the terminal, and no `-X` value is ever printed. No broker
//! runs here: `127.0.0.1:1` refuses every connection.

mod common;

use std::process::{Output, Stdio};
use std::time::Duration;

use common::{hygroflow, run};

/// Characters that must never reach a terminal raw: ESC, BEL, CR, NUL, C1's CSI, and the
/// bidirectional controls.
const RAW_CONTROLS: [char; 10] = [
    '\u{1b}', '\u{7}', '\r', '\0', '\u{9b}', '\u{202e}', '\u{2066}', '\u{200f}', '\u{61c}',
    '\u{2029}',
];

fn assert_no_raw_controls(what: &str, text: &str) {
    let found: Vec<char> = text.chars().filter(|c| RAW_CONTROLS.contains(c)).collect();
    assert!(found.is_empty(), "{what} holds raw {found:?}: {text:?}");
}

/// One reading of `device` (as JSON string content, escapes allowed) at a fixed event time.
fn reading(guid: usize, device_json: &str) -> String {
    format!(
        r#"{{"guid":"g{guid}","medicalimagingdevice":"{device_json}","eventTime":"2022-07-30T01:09:13.000Z","payload":{{"data":{{"humidity":{}}}}}}}"#,
        10 + guid
    )
}

#[test]
fn gh_8_device_names_cannot_forge_report_lines_or_reach_the_terminal() {
    // The devices as they stand in the JSON lines, and as the report must show them.
    let devices = [
        (
            r"MRI1\n(FAKE, 99.99)\n\nTotal number of messages: 999999",
            r"MRI1\n(FAKE, 99.99)\n\nTotal number of messages: 999999",
        ),
        (
            r"\u001b]0;pwned\u0007\u001b[2J\r\u0000CT",
            r"\u{1b}]0;pwned\u{7}\u{1b}[2J\r\u{0}CT",
        ),
        (
            "\u{202e}LAER\u{2066}\u{200f}\u{61c}\u{2029}",
            r"\u{202e}LAER\u{2066}\u{200f}\u{61c}\u{2029}",
        ),
        ("\u{9b}31mPET", r"\u{9b}31mPET"),
        (r"back\\slash\\n", r"back\\slash\\n"),
        ("CT1", "CT1"),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    // The file name reaches stderr in the log line of a rejected message.
    let path = dir.path().join("in\u{1b}[31m\n\u{202e}.jsonl");
    let mut lines: Vec<String> = devices
        .iter()
        .enumerate()
        .map(|(i, (json, _))| reading(i, json))
        .collect();
    lines.push("not json\u{1b}[2J".to_owned());
    std::fs::write(&path, lines.join("\n") + "\n").expect("write input");

    let out = run(&["run", "-i", path.to_str().expect("utf8"), "--time", "event"]);
    let stdout = String::from_utf8(out.stdout).expect("utf8 stdout");
    let stderr = String::from_utf8(out.stderr).expect("utf8 stderr");
    assert!(out.status.success(), "{stderr}");
    assert_no_raw_controls("stdout", &stdout);
    assert_no_raw_controls("stderr", &stderr);

    // Every report has its fixed lines, one row per device in each of its two lists, and
    // (every reading is below the built-in 30 % RH) one `low` alert per device.
    let per_report = 14 + 3 * devices.len();
    let starting = |prefix: &str| stdout.lines().filter(|l| l.starts_with(prefix)).count();
    let reports = starting("Time: ");
    assert!(reports >= 1, "{stdout}");
    assert_eq!(stdout.lines().count(), reports * per_report, "{stdout}");
    assert_eq!(starting("Total number of messages: "), reports, "{stdout}");
    assert_eq!(starting("Total number of sensors: "), reports, "{stdout}");
    assert_eq!(starting("Rejected messages: "), reports, "{stdout}");
    let last = stdout.rsplit("Time: ").next().expect("a report");
    for (i, (_, shown)) in devices.iter().enumerate() {
        assert!(
            last.contains(&format!("\n({shown}, {}.00)\n", 10 + i)),
            "{shown}: {last}"
        );
        assert!(
            last.contains(&format!("\n({shown}, 1)\n")),
            "{shown}: {last}"
        );
    }
    assert!(last.contains("\nTotal number of messages: 6\n"), "{last}");
    // The active alerts name the devices escaped too, one line each.
    for (_, shown) in &devices {
        assert!(
            last.contains(&format!("\n({shown}, low, -, since ")),
            "{shown}: {last}"
        );
    }

    // The rejected line is logged once, on one line, its file name escaped.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(r"in\u{1b}[31m\n\u{202e}.jsonl"), "{stderr}");
}

/// Asserts that `out` shows none of `values`, on stdout or stderr.
fn assert_hidden(what: &str, out: &Output, values: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for value in values {
        assert!(
            !stdout.contains(value) && !stderr.contains(value),
            "{what}: {value} shown:\n{stdout}\n{stderr}"
        );
    }
    stderr
}

/// The four commands that create Kafka clients, each with `-X extra...`, against no broker.
fn commands(extra: &[&str]) -> Vec<Vec<String>> {
    let base: [&[&str]; 4] = [
        &["run", "-b", "127.0.0.1:1", "-t", "t"],
        &["produce", "-b", "127.0.0.1:1", "-t", "t", "/dev/null"],
        &["topic", "create", "-b", "127.0.0.1:1", "-t", "t"],
        &["topic", "describe", "-b", "127.0.0.1:1", "-t", "t"],
    ];
    base.iter()
        .map(|args| {
            let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            for property in extra {
                args.extend(["-X".to_owned(), property.to_string()]);
            }
            args
        })
        .collect()
}

#[test]
fn gh_8_a_refused_property_is_named_without_its_value() {
    for (property, key) in [
        // A misspelt key: librdkafka's error quoted the value.
        ("sasl.pasword=S3cr3tValue", "sasl.pasword"),
        // A known key with a value librdkafka refuses, quoting it.
        ("security.protocol=S3cr3tValue", "security.protocol"),
    ] {
        for args in commands(&[property]) {
            let out = hygroflow()
                .args(&args)
                .env("RUST_LOG", "debug")
                .output()
                .expect("runs");
            assert!(!out.status.success(), "{args:?}");
            let stderr = assert_hidden(&format!("{args:?}"), &out, &["S3cr3tValue"]);
            let error = stderr
                .lines()
                .find(|l| l.starts_with("hygroflow: "))
                .unwrap_or_else(|| panic!("{args:?}: no error line in {stderr}"));
            assert!(error.contains(&format!("-X {key}: ")), "{args:?}: {error}");
        }
    }
}

/// Valid properties whose values librdkafka would log: a client id (in its log lines), a SASL
/// mechanism without SASL (its warning quotes it), a password, and the dump of them all.
const VALID: [&str; 4] = [
    "client.id=S3cr3tClient",
    "sasl.mechanism=S3cr3tMech",
    "sasl.password=S3cr3tPass",
    "debug=conf,broker",
];
const VALID_VALUES: [&str; 3] = ["S3cr3tClient", "S3cr3tMech", "S3cr3tPass"];

/// Runs command `index` of [`commands`] with the [`VALID`] properties, logging everything.
fn with_valid_properties(index: usize) -> (String, Output) {
    let mut extra = VALID.to_vec();
    // produce waits for the topic's metadata at most message.timeout.ms.
    extra.push("message.timeout.ms=3000");
    let args = commands(&extra).swap_remove(index);
    let out = hygroflow()
        .args(&args)
        .env("RUST_LOG", "debug")
        .output()
        .expect("runs");
    assert!(!out.status.success(), "{args:?}: no broker, no success");
    (format!("{args:?}"), out)
}

#[test]
fn gh_8_produce_never_shows_a_property_value() {
    let (what, out) = with_valid_properties(1);
    let stderr = assert_hidden(&what, &out, &VALID_VALUES);
    assert!(stderr.contains("client.id"), "keys are shown: {stderr}");
}

#[test]
fn gh_8_topic_create_never_shows_a_property_value() {
    let (what, out) = with_valid_properties(2);
    assert_hidden(&what, &out, &VALID_VALUES);
}

#[test]
fn gh_8_topic_describe_never_shows_a_property_value() {
    let (what, out) = with_valid_properties(3);
    assert_hidden(&what, &out, &VALID_VALUES);
}

#[test]
fn gh_8_run_never_shows_a_property_value() {
    // The job retries an unreachable broker until stopped: stop it after a few retries.
    let mut args = commands(&VALID).swap_remove(0);
    args.extend(["--results-topic".to_owned(), "r".to_owned()]);
    let mut child = hygroflow()
        .args(&args)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    std::thread::sleep(Duration::from_secs(4));
    child.kill().expect("kill");
    let out = child.wait_with_output().expect("output");
    let stderr = assert_hidden(&format!("{args:?}"), &out, &VALID_VALUES);
    assert!(
        stderr.contains("cannot reach the Kafka brokers"),
        "{stderr}"
    );
}

#[test]
fn gh_8_a_malformed_property_is_not_echoed() {
    for args in commands(&["sasl.password:S3cr3tValue"]) {
        let out = hygroflow().args(&args).output().expect("the binary runs");
        let what = args.join(" ");
        assert_eq!(out.status.code(), Some(2), "{what}");
        let stderr = assert_hidden(&what, &out, &["S3cr3tValue"]);
        assert!(stderr.contains("-X"), "{what}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
    }
}
