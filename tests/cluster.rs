//! Cluster mode: processes on 127.0.0.1 give the same results as one process, a missing peer
//! is named, processes that disagree on a flag refuse each other, and a dead peer stops the rest.

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_report_matches, free_port, generate, hygroflow, json_lines, recompute, run};

fn hostfile(dir: &Path, processes: usize) -> std::path::PathBuf {
    let path = dir.join("hosts.txt");
    let lines: String = (0..processes)
        .map(|_| format!("127.0.0.1:{}\n", free_port()))
        .collect();
    std::fs::write(&path, lines).expect("hostfile");
    path
}

/// Starts process `p` of `processes` with `args` on the hostfile `hosts`.
fn spawn_process(p: usize, processes: usize, hosts: &Path, args: &[&str]) -> Child {
    hygroflow()
        .env("RUST_LOG", "info")
        .args(args)
        .args(["-n", &processes.to_string(), "-p", &p.to_string()])
        .args([
            "-h",
            hosts.to_str().expect("utf8"),
            "--connect-timeout",
            "30s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Runs `processes` processes of `workers` workers each with `args`; returns their outputs.
fn run_cluster(processes: usize, workers: usize, hosts: &Path, args: &[&str]) -> Vec<Output> {
    let workers = workers.to_string();
    let args: Vec<&str> = args.iter().copied().chain(["-w", &workers]).collect();
    let children: Vec<Child> = (0..processes)
        .map(|p| spawn_process(p, processes, hosts, &args))
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect()
}

/// Waits for `child`, killing it and failing the test if it runs past `limit`.
fn wait_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "{what} still runs after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("wait")
}

/// Two processes, process 0 with `zero` and process 1 with `one` besides the same `common`
/// flags, both exit with the same one-line error that contains each of `expected`.
fn assert_refused(common: &[&str], zero: &[&str], one: &[&str], expected: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = hostfile(dir.path(), 2);
    let zero: Vec<&str> = common.iter().chain(zero).copied().collect();
    let one: Vec<&str> = common.iter().chain(one).copied().collect();
    let children = [
        spawn_process(0, 2, &hosts, &zero),
        spawn_process(1, 2, &hosts, &one),
    ];
    let mut errors = Vec::new();
    for (p, child) in children.into_iter().enumerate() {
        let out = wait_within(child, Duration::from_secs(20), &format!("process {p}"));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "process {p}: {stderr}");
        assert!(!stderr.contains("panicked"), "process {p}: {stderr}");
        let last = stderr.lines().last().expect("an error").to_owned();
        for part in expected {
            assert!(
                last.contains(part),
                "process {p} does not say {part:?}: {stderr}"
            );
        }
        errors.push(last);
    }
    assert_eq!(errors[0], errors[1], "both processes say the same");
}

#[test]
fn two_processes_of_two_workers_equal_one_worker_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.jsonl");
    generate(&input, 40_000, 12, 0.02);
    let input = input.to_str().expect("utf8");
    let hosts = hostfile(dir.path(), 2);
    for time in ["event", "processing"] {
        let args = ["run", "-i", input, "--format", "json", "--time", time];
        let single = run(&args);
        assert!(single.status.success());
        let outputs = run_cluster(2, 2, &hosts, &args);
        for out in &outputs {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(outputs[1].stdout.is_empty(), "only process 0 prints");
        assert!(String::from_utf8_lossy(&outputs[1].stderr)
            .contains("reports are printed by process 0"));
        let cluster = json_lines(&outputs[0].stdout);
        let single = json_lines(&single.stdout);
        if time == "event" {
            assert_eq!(cluster, single, "the same report for every epoch");
        }
        assert_report_matches(
            cluster.last().expect("final"),
            &recompute(&std::fs::read(input).expect("read")),
        );
    }
}

#[test]
fn two_processes_of_two_workers_equal_one_worker_from_kafka() {
    let broker = broker::Broker::start();
    let brokers = broker.brokers();
    let readings = broker.topic_with_readings("cluster", 4, 20_000, 13, 0.02, &[]);
    let dir = &readings.dir;
    let base = [
        "run",
        "-b",
        &brokers,
        "-t",
        "cluster",
        "--until-end",
        "--format",
        "json",
        "--epoch",
        "200ms",
    ];
    let mut single_args = base.to_vec();
    single_args.extend(["--group", "single", "--dlq-topic", "cluster.dlq"]);
    let single = run(&single_args);
    assert!(
        single.status.success(),
        "{}",
        String::from_utf8_lossy(&single.stderr)
    );
    let mut cluster_args = base.to_vec();
    cluster_args.extend(["--group", "cluster", "--dlq-topic", "cluster.dlq"]);
    let outputs = run_cluster(2, 2, &hostfile(dir.path(), 2), &cluster_args);
    for out in &outputs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cluster_last = json_lines(&outputs[0].stdout).pop().expect("final");
    let single_last = json_lines(&single.stdout).pop().expect("final");
    for key in [
        "total_messages",
        "rejected_messages",
        "total_sensors",
        "sensors_by_device",
        "avg_humidity_by_device",
    ] {
        assert_eq!(cluster_last[key], single_last[key], "{key}");
    }
    assert_report_matches(&cluster_last, &recompute(&readings.bytes));
}

#[test]
fn a_peer_that_never_comes_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = hostfile(dir.path(), 2);
    let address = std::fs::read_to_string(&hosts)
        .expect("read")
        .lines()
        .next()
        .expect("line")
        .to_owned();
    let out = run(&[
        "run",
        "-n",
        "2",
        "-p",
        "1",
        "-h",
        hosts.to_str().expect("utf8"),
        "--connect-timeout",
        "1s",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().expect("an error");
    assert!(
        last.contains(&format!("cannot reach process 0 at {address}")),
        "{stderr}"
    );
}

#[test]
fn a_dead_peer_stops_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = hostfile(dir.path(), 2);
    let spawn = |p: &str| {
        hygroflow()
            .args([
                "--epoch",
                "200ms",
                "--format",
                "json",
                "-n",
                "2",
                "-p",
                p,
                "-h",
                hosts.to_str().expect("utf8"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let mut first = spawn("0");
    let mut second = spawn("1");
    std::thread::sleep(Duration::from_secs(2));
    second.kill().expect("kill -9");
    let _ = second.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = first.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "process 0 hangs after its peer died"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut first.stderr.take().expect("stderr"), &mut stderr)
        .expect("read");
    assert!(
        stderr.contains("lost the connection to a peer process"),
        "{stderr}"
    );
}

#[test]
fn a_whole_cluster_restarted_after_kill_9_resumes_exactly() {
    use rand::Rng;
    let broker = broker::Broker::start();
    let brokers = broker.brokers();
    // Ordinary batching: Tansu answers a fetch from inside a batch with the next batch, and
    // the resume guard steps back to the checkpointed offset (gh-12 point 1).
    let readings = broker.topic_with_readings("restart", 4, 120_000, 14, 0.01, &[]);
    let dir = &readings.dir;
    let hosts = hostfile(dir.path(), 2);
    let state = |p: usize| dir.path().join(format!("state-{p}"));
    let spawn = |p: usize, workers: &str| {
        hygroflow()
            .args([
                "run",
                "-b",
                &brokers,
                "-t",
                "restart",
                "--until-end",
                "--format",
                "json",
                "--epoch",
                "100ms",
            ])
            .args([
                "--group",
                "restart",
                "--state-dir",
                state(p).to_str().expect("utf8"),
            ])
            .args([
                "-n",
                "2",
                "-p",
                &p.to_string(),
                "-w",
                workers,
                "-h",
                hosts.to_str().expect("utf8"),
                "--connect-timeout",
                "30s",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let mut rng = rand::thread_rng();
    // Four kills at random moments, and more (each a little later) until process 0 has
    // committed a checkpoint: on a loaded machine a cluster may need longer to start.
    let mut rounds = 0u64;
    while rounds < 4 || !state(0).join("COMMITTED").exists() {
        assert!(rounds < 20, "process 0 never committed a checkpoint");
        let mut children = [spawn(0, "2"), spawn(1, "2")];
        let pause = rng.gen_range(500..2500) + rounds.saturating_sub(3) * 1000;
        std::thread::sleep(Duration::from_millis(pause));
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
        rounds += 1;
    }
    let outputs: Vec<Output> = [spawn(0, "2"), spawn(1, "2")]
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    for out in &outputs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let last = json_lines(&outputs[0].stdout).pop().expect("final");
    assert_report_matches(&last, &recompute(&readings.bytes));

    // Restarting with another layout is refused rather than resumed wrongly.
    let (out, other) = (spawn(0, "1"), spawn(1, "1"));
    let first = out.wait_with_output().expect("wait");
    let _ = other.wait_with_output();
    assert!(!first.status.success());
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("same -n and -w"), "{stderr}");
}

#[test]
fn gh_8_processes_with_other_workers_refuse_each_other() {
    assert_refused(
        &["--epoch", "200ms"],
        &["-w", "2"],
        &["-w", "1"],
        &[
            "process 1 runs with --workers 1 but process 0 with --workers 2",
            "the same -w",
        ],
    );
}

#[test]
fn gh_8_processes_with_other_epochs_refuse_each_other() {
    assert_refused(
        &[],
        &["--epoch", "1s"],
        &["--epoch", "3s"],
        &[
            "process 1 runs with --epoch 3s but process 0 with --epoch 1s",
            "the same --epoch",
        ],
    );
}

#[test]
fn gh_8_processes_with_other_clocks_refuse_each_other() {
    assert_refused(
        &["--epoch", "200ms"],
        &["--time", "event"],
        &[],
        &[
            "process 1 runs with --time processing but process 0 with --time event",
            "the same --time",
        ],
    );
}

#[test]
fn gh_8_process_0_names_each_peer_it_waits_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = hostfile(dir.path(), 3);
    let addresses: Vec<String> = std::fs::read_to_string(&hosts)
        .expect("read")
        .lines()
        .map(String::from)
        .collect();
    let out = run(&[
        "run",
        "-n",
        "3",
        "-p",
        "0",
        "-h",
        hosts.to_str().expect("utf8"),
        "--connect-timeout",
        "2s",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (process, address) in addresses.iter().enumerate().skip(1) {
        assert!(
            stderr.lines().any(|l| l.contains("has not connected yet")
                && l.contains(&format!("process={process}"))
                && l.contains(address.as_str())),
            "process 0 names process {process} at {address} while it waits: {stderr}"
        );
    }
    let last = stderr.lines().last().expect("an error");
    assert!(last.contains("did not connect"), "{stderr}");
}

#[test]
fn gh_8_a_signal_to_any_process_stops_the_whole_cluster() {
    for signalled in [1, 0] {
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts = hostfile(dir.path(), 2);
        let args = ["run", "--format", "json", "--epoch", "500ms", "-w", "2"];
        let mut children: Vec<Child> = (0..2).map(|p| spawn_process(p, 2, &hosts, &args)).collect();
        // The demo streams until stopped: wait for the cluster's first report.
        let stdout = children[0].stdout.take().expect("stdout");
        let (first, reports) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in
                std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok)
            {
                let _ = first.send(());
                lines.push(line);
            }
            lines
        });
        reports
            .recv_timeout(Duration::from_secs(60))
            .expect("the cluster reports");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &children[signalled].id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|c| wait_within(c, Duration::from_secs(15), "a process after the signal"))
            .collect();
        for (p, out) in outputs.iter().enumerate() {
            assert!(
                out.status.success(),
                "process {p} (signal to {signalled}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let lines = reader.join().expect("reader").join("\n");
        let reports = json_lines(lines.as_bytes());
        let last = reports.last().expect("process 0 prints a final report");
        assert!(last["total_messages"].as_i64().unwrap_or(0) > 0, "{last}");
    }
}

/// Issue 26 point 4: two processes given different files both exited 0 with a report that
/// matched neither. The files' sizes and first bytes are compared at the handshake: both
/// stop with the same line. The same bytes under two paths (each process its own copy) agree.
#[test]
fn gh_26_processes_with_different_input_files_refuse_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, copy) = (
        dir.path().join("a.jsonl"),
        dir.path().join("b.jsonl"),
        dir.path().join("copy-of-a.jsonl"),
    );
    common::generate(&a, 300, 1, 0.0);
    common::generate(&b, 300, 2, 0.0);
    std::fs::copy(&a, &copy).expect("copy");
    let path = |p: &Path| p.to_str().expect("utf8").to_owned();
    let (a, b, copy) = (path(&a), path(&b), path(&copy));
    assert_refused(
        &[],
        &["-i", &a],
        &["-i", &b],
        &["process 1 runs with --input of ", "the same input"],
    );
    let hosts = hostfile(dir.path(), 2);
    let outputs: Vec<Output> = [(0, &a), (1, &copy)]
        .map(|(p, file)| spawn_process(p, 2, &hosts, &["-i", file, "--format", "json"]))
        .into_iter()
        .enumerate()
        .map(|(p, child)| wait_within(child, Duration::from_secs(30), &format!("process {p}")))
        .collect();
    for out in &outputs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
