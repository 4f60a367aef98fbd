//! Every flag of every subcommand, with values it must refuse (gh-8, points 7, 9, 10 and 12):
//! each refusal is a flag error (exit code 2) in one line on stderr, without a panic, before
//! anything is read, allocated or connected. `127.0.0.1:1` stands for a broker where a flag
//! needs one: nobody listens there, so a check that came after connecting would hang, and
//! every run is bounded. Then the environment's errors, which exit 1.

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::hygroflow;

/// A broker address nobody answers on.
const NOWHERE: &str = "127.0.0.1:1";

/// Runs the binary with `args`; fails the test if it runs longer than a few seconds.
fn run_bounded(args: &[&str]) -> Output {
    let mut child = hygroflow()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hygroflow");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "{args:?} still runs after 10 s: a flag check that waits for something\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("output")
}

/// `args` must fail with exit code `code` and one line on stderr that contains `says`.
fn fails(args: &[&str], code: i32, says: &str) {
    let out = run_bounded(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{args:?} panicked: {stderr}"
    );
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: one line expected, got {stderr:?}"
    );
    assert!(stderr.starts_with("hygroflow: "), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?}: {says:?} not in {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
}

/// A flag of a subcommand and the values it must refuse, given after `base`.
#[derive(Clone, Copy)]
struct Flag {
    /// The command line before the flag: the subcommand and any flags this one needs.
    base: &'static [&'static str],
    /// The flag as typed (short or long).
    flag: &'static str,
    /// What clap's message names it by (`--workers <N>` for `-w`).
    named: &'static str,
    /// Values to refuse.
    bad: &'static [&'static str],
}

/// Runs every bad value of every flag in `table`.
fn refuse_all(table: &[Flag]) {
    for row in table {
        for value in row.bad {
            let mut args = row.base.to_vec();
            args.extend([row.flag, value]);
            fails(&args, 2, &format!("'{}", row.named));
        }
    }
}

const INTEGERS: &[&str] = &["", "x", "1.5", "1e3", "18446744073709551616"];
const DURATIONS: &[&str] = &["", "x", "3", "-1s", "366d", "500000000000y"];
const BROKERS: &[&str] = &["", " ", "not a broker", "h:99999", "h:0", "a:1,", ":9092"];
const TOPICS: &[&str] = &["", "a b", "a/b", ".", "..", "t\u{1b}[2J"];
const SCENARIOS: &[&str] = &[
    "",
    ",",
    "flood",
    "none,drift",
    "drift,drift",
    "drift@",
    "drift@x",
    "drift@-1s",
    "drift@2y",
];

/// `run`'s flags and their bad values.
#[rustfmt::skip]
fn run_flags() -> Vec<Flag> {
    const RUN: &[&str] = &["run"];
    const KAFKA: &[&str] = &["run", "-b", NOWHERE, "-t", "in"];
    let long_topic: &'static str = "t".repeat(250).leak();
    let topics: &'static [&'static str] = [TOPICS, &[long_topic]].concat().leak();
    vec![
        Flag { base: RUN, flag: "-i", named: "--input", bad: &[""] },
        Flag { base: RUN, flag: "--epoch", named: "--epoch", bad: &["0s", "0", "500us", "-5ms"] },
        Flag { base: RUN, flag: "--epoch", named: "--epoch", bad: DURATIONS },
        Flag { base: RUN, flag: "--time", named: "--time", bad: &["", "wall", "Event"] },
        Flag { base: RUN, flag: "--window", named: "--window", bad: &["0s", "-3s", "abc", "Cumulative", "2y"] },
        Flag { base: RUN, flag: "--window", named: "--window", bad: DURATIONS },
        Flag { base: RUN, flag: "-w", named: "--workers", bad: &["0", "-1", "257", "100000"] },
        Flag { base: RUN, flag: "--workers", named: "--workers", bad: INTEGERS },
        Flag { base: RUN, flag: "-n", named: "--processes", bad: &["0", "-1", "1025"] },
        Flag { base: RUN, flag: "-n", named: "--processes", bad: INTEGERS },
        Flag { base: RUN, flag: "-p", named: "--process", bad: &["-1", "1024"] },
        Flag { base: RUN, flag: "-p", named: "--process", bad: INTEGERS },
        Flag { base: RUN, flag: "-h", named: "--hostfile", bad: &[""] },
        Flag { base: RUN, flag: "--idle-timeout", named: "--idle-timeout", bad: DURATIONS },
        Flag { base: RUN, flag: "--allowed-lateness", named: "--allowed-lateness", bad: DURATIONS },
        Flag { base: RUN, flag: "--allowed-lateness", named: "--allowed-lateness", bad: &["61m", "2h", "3601s"] },
        Flag { base: RUN, flag: "--max-clock-skew", named: "--max-clock-skew", bad: DURATIONS },
        Flag { base: RUN, flag: "--connect-timeout", named: "--connect-timeout", bad: DURATIONS },
        Flag { base: RUN, flag: "--format", named: "--format", bad: &["", "xml"] },
        Flag { base: RUN, flag: "--rejects", named: "--rejects", bad: &[""] },
        Flag { base: RUN, flag: "--max-message-bytes", named: "--max-message-bytes", bad: &["0", "-1", "268435457"] },
        Flag { base: RUN, flag: "--max-message-bytes", named: "--max-message-bytes", bad: INTEGERS },
        Flag { base: &["run", "-t", "in"], flag: "-b", named: "--brokers", bad: BROKERS },
        Flag { base: &["run", "-b", NOWHERE], flag: "-t", named: "--topic", bad: topics },
        Flag { base: KAFKA, flag: "--group", named: "--group", bad: &["", " "] },
        Flag { base: KAFKA, flag: "-X", named: "-X", bad: &["", "novalue", "=x"] },
        Flag { base: KAFKA, flag: "--state-dir", named: "--state-dir", bad: &[""] },
        Flag { base: KAFKA, flag: "--dlq-topic", named: "--dlq-topic", bad: topics },
        Flag { base: KAFKA, flag: "--results-topic", named: "--results-topic", bad: topics },
        Flag { base: KAFKA, flag: "--alerts-topic", named: "--alerts-topic", bad: topics },
        Flag { base: RUN, flag: "--rules", named: "--rules", bad: &[""] },
        Flag { base: RUN, flag: "--alerts", named: "--alerts", bad: &[""] },
        Flag { base: RUN, flag: "--alertmanager", named: "--alertmanager", bad: &["", "127.0.0.1:9093", "ftp://h/", "http://h/?q=1", "http://:9093"] },
        Flag { base: RUN, flag: "--alertmanager-resend", named: "--alertmanager-resend", bad: DURATIONS },
        Flag { base: RUN, flag: "--alertmanager-resend", named: "--alertmanager-resend", bad: &["0s", "999ms", "61m", "2h"] },
        Flag { base: RUN, flag: "--rate", named: "--rate", bad: &["0", "-1", "10000001"] },
        Flag { base: RUN, flag: "--rate", named: "--rate", bad: INTEGERS },
        Flag { base: RUN, flag: "--sensors", named: "--sensors", bad: &["0", "-1", "100000001", "10000000000", "18446744073709551615"] },
        Flag { base: RUN, flag: "--sensors", named: "--sensors", bad: INTEGERS },
        Flag { base: RUN, flag: "--seed", named: "--seed", bad: &["-1", "", "x", "18446744073709551616"] },
        Flag { base: RUN, flag: "--scenario", named: "--scenario", bad: SCENARIOS },
        Flag { base: RUN, flag: "--http", named: "--http", bad: &["", "x", "8080", ":8080", "127.0.0.1:99999", "localhost:8080", "on"] },
    ]
}

#[test]
fn gh_8_run_refuses_bad_values_of_every_flag() {
    refuse_all(&run_flags());
    for args in [
        ["run", "--changes=yes"].as_slice(),
        &["run", "--until-end=yes"],
        &["run", "--no-such-flag"],
        &["run", "stray"],
        // Without a command, the flags are run's.
        &["-w", "0"],
        &["--epoch", "-1s"],
    ] {
        fails(args, 2, "");
    }
}

#[test]
fn gh_8_negative_numbers_say_the_value_must_be_positive() {
    for (args, says) in [
        (&["run", "-w", "-1"][..], "must be positive"),
        (&["run", "--epoch", "-1s"], "must be positive"),
        (&["run", "-p", "-1"], "must not be negative"),
        (&["run", "--idle-timeout", "-1s"], "must not be negative"),
        (&["generate", "--interval-ms", "-1"], "must not be negative"),
        (
            &[
                "topic",
                "create",
                "-b",
                NOWHERE,
                "-t",
                "t",
                "--partitions",
                "-3",
            ],
            "must be positive",
        ),
    ] {
        fails(args, 2, says);
    }
}

#[test]
fn gh_8_run_refuses_flags_that_do_not_go_together() {
    for (args, says) in [
        (
            &["run", "-n", "2", "-p", "2"][..],
            "--process 2 is out of range",
        ),
        (&["run", "-t", "in"], "--topic needs --brokers"),
        // Flag errors come before the input is opened: exit 2 although the file is missing.
        (
            &["run", "-i", "/no/such/file", "-b", NOWHERE, "-t", "in"],
            "either --input or --topic",
        ),
        (
            &["run", "--results-topic", "r"],
            "--results-topic needs --brokers",
        ),
        (
            &["run", "--state-dir", "s"],
            "--state-dir needs a Kafka input",
        ),
        (&["run", "--until-end"], "--until-end needs a Kafka input"),
        (
            &["run", "--window", "1s", "--epoch", "3s"],
            "--window 1s is not a whole multiple of --epoch 3s",
        ),
        (
            &["run", "--window", "4500ms", "--epoch", "3s"],
            "is not a whole multiple of --epoch 3s",
        ),
        (
            &["run", "--alerts-topic", "a"],
            "--alerts-topic needs --brokers",
        ),
        (
            &[
                "run",
                "--rules",
                "none",
                "--alertmanager",
                "http://127.0.0.1:9093",
            ],
            "--alerts, --alerts-topic and --alertmanager need rules",
        ),
        (
            &["run", "--rules", "none", "--alerts", "-"],
            "--alerts, --alerts-topic and --alertmanager need rules",
        ),
        (
            &["run", "-b", NOWHERE, "-t", "in", "--alerts-topic", "in.dlq"],
            "--alerts-topic in.dlq is also the dead-letter topic",
        ),
        (&["run", "-X", "a=b"], "-X needs --brokers"),
        (&["run", "--group", "g"], "--group needs a Kafka input"),
        (
            &["run", "-b", NOWHERE],
            "--brokers needs --topic, --results-topic or --alerts-topic",
        ),
        (
            &["run", "--dlq-topic", "d"],
            "--dlq-topic needs a Kafka input",
        ),
        (
            &["run", "-b", NOWHERE, "-t", "in", "--rejects", "r"],
            "go to --dlq-topic",
        ),
        (&["run", "--rejects", "r"], "--rejects needs --input"),
        // Demo-only flags with another input (gh-8 point 12).
        (
            &["run", "-i", "/no/such/file", "--rate", "5"],
            "--rate is for the simulated fleet only",
        ),
        (
            &["run", "-i", "-", "--sensors", "10"],
            "--sensors is for the simulated fleet only",
        ),
        (
            &["run", "-i", "-", "--seed", "2"],
            "--seed is for the simulated fleet only",
        ),
        (
            &["run", "-b", NOWHERE, "-t", "in", "--seed", "2"],
            "--seed is for the simulated fleet only",
        ),
        (
            &["run", "-b", NOWHERE, "-t", "in", "--rate", "1"],
            "--rate is for the simulated fleet only",
        ),
        (
            &["run", "-i", "-", "--scenario", "none"],
            "--scenario is for the simulated fleet only",
        ),
        (
            &["run", "-b", NOWHERE, "-t", "in", "--scenario", "drift@5m"],
            "--scenario is for the simulated fleet only",
        ),
        // A topic used twice would feed the job its own output (gh-8 point 12).
        (
            &["run", "-b", NOWHERE, "-t", "in", "--results-topic", "in"],
            "--results-topic in is also the input topic",
        ),
        (
            &["run", "-b", NOWHERE, "-t", "in", "--dlq-topic", "in"],
            "--dlq-topic in is also the input topic",
        ),
        (
            &[
                "run",
                "-b",
                NOWHERE,
                "-t",
                "in",
                "--results-topic",
                "in.dlq",
            ],
            "--results-topic in.dlq is also the dead-letter topic",
        ),
        (
            &[
                "run",
                "-b",
                NOWHERE,
                "-t",
                "in",
                "--dlq-topic",
                "d",
                "--results-topic",
                "d",
            ],
            "--results-topic d is also the dead-letter topic",
        ),
    ] {
        fails(args, 2, says);
    }
}

/// `generate`'s flags and their bad values.
#[rustfmt::skip]
fn generate_flags() -> Vec<Flag> {
    const GENERATE: &[&str] = &["generate"];
    vec![
        Flag { base: GENERATE, flag: "--count", named: "--count", bad: &["-1", "1000000000001"] },
        Flag { base: GENERATE, flag: "--count", named: "--count", bad: INTEGERS },
        Flag { base: GENERATE, flag: "--seed", named: "--seed", bad: &["-1"] },
        Flag { base: GENERATE, flag: "--seed", named: "--seed", bad: INTEGERS },
        Flag { base: GENERATE, flag: "--bad-fraction", named: "--bad-fraction", bad: &["2", "-0.1", "NaN", "inf", "", "x"] },
        Flag { base: GENERATE, flag: "--sensors", named: "--sensors", bad: &["0", "-5", "100000001", "18446744073709551615"] },
        Flag { base: GENERATE, flag: "--interval-ms", named: "--interval-ms", bad: &["inf", "-inf", "infinity", "NaN", "1e300", "-1", "-0.5", "86400001", "", "x"] },
        Flag { base: GENERATE, flag: "--scenario", named: "--scenario", bad: SCENARIOS },
    ]
}

#[test]
fn gh_8_generate_refuses_bad_values_of_every_flag() {
    refuse_all(&generate_flags());
    fails(
        &[
            "generate",
            "--count",
            "1000000000000",
            "--interval-ms",
            "86400000",
        ],
        2,
        "would run past the year 9999",
    );
    fails(&["generate", "stray"], 2, "");
}

/// `produce`'s and `topic`'s flags and their bad values.
#[rustfmt::skip]
fn produce_and_topic_flags() -> Vec<Flag> {
    const PRODUCE: &[&str] = &["produce", "-b", NOWHERE, "-t", "t", "/dev/null"];
    const CREATE: &[&str] = &["topic", "create", "-b", NOWHERE, "-t", "t"];
    const DESCRIBE: &[&str] = &["topic", "describe", "-b", NOWHERE, "-t", "t"];
    vec![
        Flag { base: &["produce", "-t", "t", "/dev/null"], flag: "-b", named: "--brokers", bad: BROKERS },
        Flag { base: &["produce", "-b", NOWHERE, "/dev/null"], flag: "-t", named: "--topic", bad: TOPICS },
        Flag { base: &["produce", "-b", NOWHERE, "-t", "t"], flag: "--", named: "<FILE>", bad: &[""] },
        Flag { base: PRODUCE, flag: "--rate", named: "--rate", bad: &["0", "-1", "10000001"] },
        Flag { base: PRODUCE, flag: "--rate", named: "--rate", bad: INTEGERS },
        Flag { base: PRODUCE, flag: "-X", named: "-X", bad: &["", "novalue"] },
        Flag { base: &["topic", "create", "-t", "t"], flag: "-b", named: "--brokers", bad: BROKERS },
        Flag { base: &["topic", "create", "-b", NOWHERE], flag: "-t", named: "--topic", bad: TOPICS },
        Flag { base: CREATE, flag: "--partitions", named: "--partitions", bad: &["0", "-1", "10001", "2147483648"] },
        Flag { base: CREATE, flag: "--partitions", named: "--partitions", bad: INTEGERS },
        Flag { base: CREATE, flag: "--replication", named: "--replication", bad: &["0", "-1", "101"] },
        Flag { base: CREATE, flag: "--replication", named: "--replication", bad: INTEGERS },
        Flag { base: CREATE, flag: "-X", named: "-X", bad: &["novalue"] },
        Flag { base: &["topic", "describe", "-t", "t"], flag: "-b", named: "--brokers", bad: BROKERS },
        Flag { base: &["topic", "describe", "-b", NOWHERE], flag: "-t", named: "--topic", bad: TOPICS },
        Flag { base: DESCRIBE, flag: "-g", named: "--group", bad: &["", " "] },
        Flag { base: DESCRIBE, flag: "-X", named: "-X", bad: &["novalue"] },
    ]
}

#[test]
fn gh_8_produce_and_topic_refuse_bad_values_of_every_flag() {
    refuse_all(&produce_and_topic_flags());
    fails(&["topic", "frobnicate"], 2, "");
    fails(&["produce", "-b", NOWHERE, "-t", "t"], 2, "FILE");
}

/// `bench`'s flags and their bad values.
#[rustfmt::skip]
fn bench_flags() -> Vec<Flag> {
    const BENCH: &[&str] = &["bench"];
    vec![
        Flag { base: BENCH, flag: "--scenario", named: "--scenario", bad: SCENARIOS },
        Flag { base: BENCH, flag: "--messages", named: "--messages", bad: &["0", "-1", "100000001", "1,0", "1,,2"] },
        Flag { base: BENCH, flag: "--messages", named: "--messages", bad: INTEGERS },
        Flag { base: BENCH, flag: "--sensors", named: "--sensors", bad: &["0", "-1", "100000001", "10,0"] },
        Flag { base: BENCH, flag: "-w", named: "--workers", bad: &["0", "-1", "257", "1,0"] },
        Flag { base: BENCH, flag: "--sources", named: "--sources", bad: &["", "disk", "file,disk"] },
        Flag { base: BENCH, flag: "--repeat", named: "--repeat", bad: &["0", "-1", "101"] },
        Flag { base: BENCH, flag: "--window", named: "--window", bad: &["0s", "abc", "Cumulative"] },
        Flag { base: BENCH, flag: "--rules", named: "--rules", bad: &[""] },
        Flag { base: BENCH, flag: "--interval-ms", named: "--interval-ms", bad: &["", "x", "-1", "86400001", "NaN"] },
        Flag { base: BENCH, flag: "--epoch", named: "--epoch", bad: &["0s", "2y"] },
        Flag { base: BENCH, flag: "--epoch", named: "--epoch", bad: DURATIONS },
        Flag { base: BENCH, flag: "--paced-rate", named: "--paced-rate", bad: &["-1", "10000001"] },
        Flag { base: BENCH, flag: "--paced-for", named: "--paced-for", bad: &["0s", "-3s", "2y"] },
        Flag { base: BENCH, flag: "--paced-epoch", named: "--paced-epoch", bad: &["0s", "-1s", "2y"] },
        Flag { base: BENCH, flag: "--bad-fraction", named: "--bad-fraction", bad: &["2", "-1", "NaN", "inf"] },
        Flag { base: BENCH, flag: "--seed", named: "--seed", bad: &["-1", "x"] },
        Flag { base: BENCH, flag: "--dir", named: "--dir", bad: &[""] },
        Flag { base: BENCH, flag: "-b", named: "--brokers", bad: BROKERS },
        Flag { base: &["bench", "-b", NOWHERE], flag: "--partitions", named: "--partitions", bad: &["0", "-1", "10001"] },
        Flag { base: &["bench", "-b", NOWHERE], flag: "-X", named: "-X", bad: &["novalue"] },
    ]
}

#[test]
fn gh_8_bench_refuses_bad_values_before_generating_anything() {
    refuse_all(&bench_flags());
    fails(
        &["bench", "--partitions", "2"],
        2,
        "--partitions needs --brokers",
    );
    fails(&["bench", "-X", "a=b"], 2, "-X needs --brokers");
}

/// `rules`' flags and their bad values (gh-9 point 2).
#[rustfmt::skip]
fn rules_flags() -> Vec<Flag> {
    const RULES: &[&str] = &["rules"];
    vec![
        Flag { base: RULES, flag: "--rules", named: "--rules", bad: &[""] },
        Flag { base: RULES, flag: "--epoch", named: "--epoch", bad: &["0s", "0", "500us", "-5ms", "2y"] },
        Flag { base: RULES, flag: "--epoch", named: "--epoch", bad: DURATIONS },
    ]
}

#[test]
fn gh_9_rules_refuses_bad_values_of_every_flag() {
    refuse_all(&rules_flags());
    fails(&["rules", "stray"], 2, "");
    fails(
        &["rules", "--rules", "/no/such/rules.toml"],
        1,
        "cannot read rules file",
    );
}

#[test]
fn gh_8_the_environment_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.jsonl");
    common::generate(&input, 10, 1, 0.0);
    let input = input.to_str().expect("utf8");
    let missing = dir.path().join("missing");
    let missing = missing.to_str().expect("utf8");
    let in_missing_dir = format!("{missing}/rejects.jsonl");
    fails(&["run", "-i", missing], 1, "cannot read input");
    let alerts_in_missing_dir = format!("{missing}/alerts.jsonl");
    fails(
        &["run", "-i", input, "--alerts", &alerts_in_missing_dir],
        1,
        "cannot create --alerts file",
    );
    fails(
        &["run", "-i", input, "--rules", missing],
        1,
        "cannot read rules file",
    );
    fails(
        &["run", "-i", input, "--rejects", &in_missing_dir],
        1,
        "cannot create rejects file",
    );
    fails(
        &["run", "-i", input, "-n", "2", "-h", missing],
        1,
        "cannot read hostfile",
    );
    fails(
        &["produce", "-b", NOWHERE, "-t", "t", missing],
        1,
        "cannot open",
    );
    // A port another process holds.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hosts = dir.path().join("hosts");
    let address = busy.local_addr().expect("address");
    std::fs::write(&hosts, format!("{address}\n127.0.0.1:1\n")).expect("hostfile");
    fails(
        &[
            "run",
            "-i",
            input,
            "-n",
            "2",
            "-p",
            "0",
            "-h",
            hosts.to_str().expect("utf8"),
            "--connect-timeout",
            "1s",
        ],
        1,
        "cannot listen",
    );
}

#[test]
fn gh_8_values_at_the_limits_are_accepted() {
    // The ends of the documented ranges work: the largest of them on tiny inputs.
    let out = run_bounded(&[
        "generate",
        "--count",
        "3",
        "--interval-ms",
        "86400000",
        "--seed",
        "18446744073709551615",
        "--bad-fraction",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    let out = run_bounded(&["generate", "--count", "0"]);
    assert!(out.status.success() && out.stdout.is_empty());
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.jsonl");
    common::generate(&input, 12, 7, 0.2);
    let out = run_bounded(&[
        "run",
        "-i",
        input.to_str().expect("utf8"),
        "--format",
        "json",
        "--epoch",
        "1y",
        "--idle-timeout",
        "1y",
        "--connect-timeout",
        "1y",
        "--max-clock-skew",
        "1y",
        "--max-message-bytes",
        "268435456",
        "-w",
        "16",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = common::json_lines(&out.stdout).pop().expect("a report");
    assert_eq!(
        last["total_messages"].as_i64().expect("n")
            + last["rejected_messages"].as_i64().expect("n"),
        12
    );
}

#[test]
fn gh_8_the_tables_cover_every_flag_of_every_subcommand() {
    use clap::CommandFactory;
    let cli = hygroflow::cli::Cli::command();
    // Switches take no value: `--changes=yes` is their bad value (above).
    let switches = ["--changes", "--until-end"];
    let tables = [
        (vec!["run"], run_flags()),
        (vec!["generate"], generate_flags()),
        (vec!["produce"], produce_and_topic_flags()),
        (vec!["topic", "create"], produce_and_topic_flags()),
        (vec!["topic", "describe"], produce_and_topic_flags()),
        (vec!["bench"], bench_flags()),
        (vec!["rules"], rules_flags()),
    ];
    for (path, table) in tables {
        let mut command = &cli;
        for name in &path {
            command = command.find_subcommand(name).expect("a subcommand");
        }
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if ["help", "version", "child"].contains(&id) {
                continue;
            }
            let named = match (arg.get_long(), arg.get_short()) {
                (Some(long), _) => format!("--{long}"),
                (None, Some(short)) => format!("-{short}"),
                (None, None) => {
                    let value = arg.get_value_names().and_then(|names| names.first());
                    format!("<{}>", value.map_or(id.to_uppercase(), |v| v.to_string()))
                }
            };
            let covered = switches.contains(&named.as_str())
                || table.iter().any(|row| {
                    row.named == named && row.base.starts_with(&path) && !row.bad.is_empty()
                });
            assert!(
                covered,
                "{path:?} {named} has no bad values in tests/flags.rs"
            );
        }
    }
}

/// Issue 26 point 3: `rules --rules /dev/zero` and `-h /dev/zero` read without limit (3 GB in
/// 4 s). A rules file or a hostfile is read up to 1 MiB; more is one line naming the file,
/// exit 1.
#[test]
fn gh_26_an_endless_rules_file_or_hostfile_is_one_line_not_gigabytes() {
    for args in [
        &["rules", "--rules", "/dev/zero"][..],
        &["run", "-i", "/dev/null", "--rules", "/dev/zero"][..],
        &[
            "run",
            "-n",
            "2",
            "-p",
            "0",
            "-h",
            "/dev/zero",
            "-i",
            "/dev/null",
        ][..],
    ] {
        let out = run_bounded(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.trim_end().lines().count() == 1
                && err.contains("/dev/zero")
                && err.contains("holds more than 1048576 bytes"),
            "{args:?}: {err}"
        );
    }
}
