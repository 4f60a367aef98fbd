//! `--alertmanager` (issue 22) against a real Alertmanager (Debian's `prometheus-alertmanager`,
//! which `scripts/test.sh` installs when missing), started on loopback ports with its HA
//! gossip off, routing to a webhook receiver that is part of this test. What reaches the
//! webhook is compared with the job's own alert log. No assertion is about speed.

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{committed_frontier, free_port, hygroflow};

/// How long a notification may take to arrive (Alertmanager groups for 1 s here).
const PATIENCE: Duration = Duration::from_secs(60);

/// The notifications a webhook received, each Alertmanager's JSON body.
#[derive(Clone, Default)]
struct Webhook(Arc<Mutex<Vec<Value>>>);

impl Webhook {
    /// A receiver on a free loopback port; returns it and its port.
    fn start() -> (Webhook, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook");
        let port = listener.local_addr().expect("addr").port();
        let hook = Webhook::default();
        let received = hook.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(body) = read_post(stream) {
                    if let Ok(json) = serde_json::from_slice(&body) {
                        received.0.lock().expect("lock").push(json);
                    }
                }
            }
        });
        (hook, port)
    }

    /// Every alert notified so far: (notification status, alert status, labels, startsAt, endsAt).
    fn alerts(&self) -> Vec<(String, Value, String, String)> {
        let bodies = self.0.lock().expect("lock").clone();
        bodies
            .iter()
            .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
            .map(|a| {
                (
                    a["status"].as_str().unwrap_or_default().to_owned(),
                    a["labels"].clone(),
                    a["startsAt"].as_str().unwrap_or_default().to_owned(),
                    a["endsAt"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Waits until `done` holds of the alerts notified.
    fn wait_for(&self, what: &str, done: impl Fn(&[(String, Value, String, String)]) -> bool) {
        let start = Instant::now();
        loop {
            let alerts = self.alerts();
            if done(&alerts) {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "waiting for {what}; the webhook has {alerts:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Reads one HTTP POST from `stream`, answers 200, returns its body.
fn read_post(stream: TcpStream) -> Option<Vec<u8>> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    Some(body)
}

/// A running Alertmanager, stopped when dropped.
struct Alertmanager {
    child: Child,
    port: u16,
}

impl Alertmanager {
    /// Starts Alertmanager on `port`, keeping its data in `dir`, notifying `webhook_port`.
    fn start(dir: &Path, port: u16, webhook_port: u16) -> Alertmanager {
        std::fs::create_dir_all(dir).expect("Alertmanager's directory");
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route: {{receiver: hook, group_by: [alertname, device, sensor], group_wait: 1s, group_interval: 1s, repeat_interval: 1h}}\n\
                 receivers: [{{name: hook, webhook_configs: [{{url: 'http://127.0.0.1:{webhook_port}/', send_resolved: true}}]}}]\n"
            ),
        )
        .expect("write the config");
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager runs (scripts/test.sh installs it)");
        let am = Alertmanager { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < PATIENCE, "Alertmanager did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }
}

impl Alertmanager {
    /// Stops it as a service manager would (SIGTERM: it writes its notification log).
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hygroflow-am-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Generated lines with `scenario`: 20,000 readings 30 ms apart.
fn lines(scenario: &str) -> Vec<u8> {
    let out = hygroflow()
        .args([
            "generate",
            "--count",
            "20000",
            "--interval-ms",
            "30",
            "--scenario",
            scenario,
        ])
        .output()
        .expect("generate");
    assert!(out.status.success());
    out.stdout
}

/// CT1's excursion (too humid from 1 to 3 minutes in), cut after its first 2 minutes of
/// readings (30 ms apart): the first half raises the alert, the second resolves it.
fn excursion_in_halves() -> (Vec<u8>, Vec<u8>) {
    let mut first = lines("excursion@1m");
    let split = first
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(4000)
        .map_or(first.len(), |(i, _)| i + 1);
    let rest = first.split_off(split);
    (first, rest)
}

/// The job's alert log: (device, kind, sensor, state) per line.
fn log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("the alert log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The `alertname` a log line's kind notifies as.
fn alertname(kind: &str) -> &'static str {
    match kind {
        "high" => "HumidityHigh",
        "low" => "HumidityLow",
        "rate" => "HumidityRateOfChange",
        _ => "SensorSilent",
    }
}

/// Whether the webhook's alerts hold every transition of the alert log, by labels and
/// status, with `startsAt` the raising line's time and a resolve's `endsAt` its time.
fn notified_all(log: &[Value], alerts: &[(String, Value, String, String)]) -> bool {
    let time = |t: &Value| t["time"].as_str().unwrap_or_default().replace(".000Z", "Z");
    let mut raised_at = std::collections::BTreeMap::new();
    log.iter().all(|line| {
        let key = format!("{}/{}/{}", line["device"], line["kind"], line["sensor"]);
        let state = line["state"].as_str().unwrap_or_default();
        if state == "raised" {
            raised_at.insert(key.clone(), time(line));
        }
        let starts = raised_at.get(&key).cloned().unwrap_or_default();
        alerts.iter().any(|(status, labels, starts_at, ends_at)| {
            let same = labels["alertname"] == alertname(line["kind"].as_str().unwrap_or(""))
                && labels["device"] == line["device"]
                && labels.get("sensor").unwrap_or(&Value::Null) == &line["sensor"]
                && starts_at == &starts;
            match state {
                "raised" => same && status == "firing",
                _ => same && status == "resolved" && ends_at == &time(line),
            }
        })
    })
}

#[test]
fn gh_22_a_raise_and_its_resolve_reach_the_webhook_with_the_documented_labels() {
    let dir = temp_dir("labels");
    let (hook, hook_port) = Webhook::start();
    let am = Alertmanager::start(&dir, free_port(), hook_port);
    let input = dir.join("in.jsonl");
    std::fs::write(&input, lines("excursion@1m")).expect("input");
    let alerts = dir.join("alerts.jsonl");
    let out = hygroflow()
        .args(["run", "-i"])
        .arg(&input)
        .args(["--time", "event", "--format", "json", "--alertmanager"])
        .arg(format!("http://hospital:s3cret@127.0.0.1:{}/", am.port))
        .arg("--alerts")
        .arg(&alerts)
        .env("RUST_LOG", "info")
        .output()
        .expect("the job runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("s3cret"),
        "a password reached the log: {stderr}"
    );
    let log = log(&alerts);
    assert!(
        log.iter().any(|l| l["state"] == "raised") && log.iter().any(|l| l["state"] == "resolved"),
        "the excursion raises and resolves: {log:?}"
    );
    hook.wait_for("every transition of the log", |a| notified_all(&log, a));
    let (_, labels, _, _) = hook
        .alerts()
        .into_iter()
        .find(|(_, l, _, _)| l["alertname"] == "HumidityHigh")
        .expect("CT1's excursion");
    assert_eq!(
        labels,
        serde_json::json!({"alertname": "HumidityHigh", "device": "CT1", "modality": "CT", "severity": "critical"})
    );
}

/// A job reading CT1's excursion from stdin, fed in two halves, logging its alerts to a file.
struct Fed {
    job: Child,
    stdin: std::process::ChildStdin,
    rest: Vec<u8>,
    alerts: PathBuf,
}

impl Fed {
    /// Starts the job notifying Alertmanager on `am_port`, and feeds it the first 2 minutes
    /// of readings (30 ms apart): CT1 is too humid from 1 to 3 minutes in, so they raise its
    /// alert, and the rest resolves it. Returns once the raise is logged.
    fn start(dir: &Path, am_port: u16) -> Fed {
        let alerts = dir.join("alerts.jsonl");
        let mut job = hygroflow()
            .args(["run", "-i", "-", "--time", "event", "--format", "json"])
            .arg("--alertmanager")
            .arg(format!("http://127.0.0.1:{am_port}"))
            .arg("--alerts")
            .arg(&alerts)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the job starts");
        let mut stdin = job.stdin.take().expect("stdin");
        let (all, rest) = excursion_in_halves();
        stdin.write_all(&all).expect("feed");
        stdin.flush().expect("flush");
        let fed = Fed {
            job,
            stdin,
            rest,
            alerts,
        };
        fed.wait_for_lines(1, "the raise");
        fed
    }

    /// Feeds the rest; returns once the resolve is logged.
    fn finish_input(&mut self) {
        let rest = std::mem::take(&mut self.rest);
        self.stdin.write_all(&rest).expect("feed the rest");
        self.stdin.flush().expect("flush");
        self.wait_for_lines(2, "the resolve");
    }

    fn wait_for_lines(&self, n: usize, what: &str) {
        let start = Instant::now();
        while log_lines(&self.alerts) < n {
            assert!(start.elapsed() < PATIENCE, "the job logged no {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Closes stdin: the job must end well.
    fn end(self) {
        drop(self.stdin);
        let out = self.job.wait_with_output().expect("the job ends");
        assert!(out.status.success());
    }
}

#[test]
fn gh_22_an_alert_raised_while_alertmanager_is_down_arrives_when_it_is_back_and_resolves() {
    let dir = temp_dir("down");
    let (hook, hook_port) = Webhook::start();
    let am_port = free_port();
    // Nothing listens on Alertmanager's port while the alert is raised.
    let mut fed = Fed::start(&dir, am_port);
    // Some failed tries, with backoff.
    std::thread::sleep(Duration::from_secs(3));
    assert!(hook.alerts().is_empty());
    let _am = Alertmanager::start(&dir, am_port, hook_port);
    let raised = log(&fed.alerts);
    assert!(raised.iter().all(|l| l["state"] == "raised"), "{raised:?}");
    hook.wait_for("the alert raised while it was down", |a| {
        notified_all(&raised, a)
    });
    fed.finish_input();
    let log = log(&fed.alerts);
    hook.wait_for("the resolve", |a| notified_all(&log, a));
    fed.end();
}

#[test]
fn gh_22_a_resolve_made_while_alertmanager_is_stopped_arrives_when_it_restarts() {
    let dir = temp_dir("restart");
    let (hook, hook_port) = Webhook::start();
    let am_port = free_port();
    let am = Alertmanager::start(&dir, am_port, hook_port);
    let mut fed = Fed::start(&dir, am_port);
    let raised = log(&fed.alerts);
    hook.wait_for("the raise", |a| notified_all(&raised, a));
    am.stop();
    fed.finish_input();
    // Failed tries while it is stopped.
    std::thread::sleep(Duration::from_secs(3));
    let _am = Alertmanager::start(&dir, am_port, hook_port);
    let log = log(&fed.alerts);
    hook.wait_for("the resolve made while it was stopped", |a| {
        notified_all(&log, a)
    });
    fed.end();
}

fn log_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn gh_22_the_shipped_alertmanager_config_passes_amtool() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("alertmanager.yml");
    let out = Command::new("amtool")
        .args(["check-config"])
        .arg(&config)
        .output()
        .expect("amtool runs (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gh_22_a_bad_alertmanager_url_is_a_flag_error_that_keeps_the_password_to_itself() {
    for url in [
        "ftp://u:s3cret@host/",
        "http://u:s3cret@/",
        "127.0.0.1:9093",
        "http://h:9093/?x=s3cret",
    ] {
        let out = hygroflow()
            .args(["run", "-i", "-", "--alertmanager", url])
            .stdin(Stdio::null())
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{url}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--alertmanager"), "{stderr}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }
}

#[test]
fn gh_22_after_kill_9_the_restarted_job_sends_the_raised_alert_again_and_then_its_resolve() {
    let dir = temp_dir("kill");
    let broker = broker::Broker::start();
    broker.create_topic("am-in", 1);
    broker.create_topic("am-in.dlq", 1);
    let (first, rest) = excursion_in_halves();
    let produce = |bytes: &[u8], name: &str| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        let out = hygroflow()
            .args(["produce", "-b", &broker.brokers(), "-t", "am-in"])
            .arg(&path)
            .output()
            .expect("produce");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    produce(&first, "first.jsonl");
    let state = dir.join("state");
    let job = |am_port: u16, alerts: &Path| {
        let mut cmd = hygroflow();
        cmd.args([
            "run",
            "-b",
            &broker.brokers(),
            "-t",
            "am-in",
            "--time",
            "event",
        ])
        .args(["--format", "json", "--state-dir"])
        .arg(&state)
        .arg("--alertmanager")
        .arg(format!("http://127.0.0.1:{am_port}"))
        .arg("--alerts")
        .arg(alerts)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        cmd
    };
    let (hook1, hook1_port) = Webhook::start();
    let am1_port = free_port();
    let _am1 = Alertmanager::start(&dir.join("am1"), am1_port, hook1_port);
    let alerts1 = dir.join("alerts1.jsonl");
    let mut run1 = job(am1_port, &alerts1).spawn().expect("the job starts");
    // Killed once its raise is notified and checkpointed.
    let start = Instant::now();
    loop {
        let raised = std::fs::read_to_string(&alerts1).unwrap_or_default();
        let epoch = raised
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["state"] == "raised")
            .and_then(|l| l["epoch"].as_u64());
        let checkpointed = epoch.is_some_and(|e| committed_frontier(&state).is_some_and(|f| f > e));
        if checkpointed && hook1.alerts().iter().any(|(status, ..)| status == "firing") {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no raise notified and checkpointed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    run1.kill().expect("kill -9");
    let _ = run1.wait();
    let raised = log(&alerts1);
    // The restart notifies another Alertmanager, which has never heard of the alert: it
    // can only learn of it from the checkpoint, since the raise's epoch is not replayed.
    let (hook2, hook2_port) = Webhook::start();
    let am2_port = free_port();
    let _am2 = Alertmanager::start(&dir.join("am2"), am2_port, hook2_port);
    produce(&rest, "rest.jsonl");
    let alerts2 = dir.join("alerts2.jsonl");
    let out = job(am2_port, &alerts2)
        .arg("--until-end")
        .output()
        .expect("the restarted job runs");
    assert!(out.status.success());
    let after = log(&alerts2);
    assert!(
        after.iter().all(|l| l["state"] == "resolved") && !after.is_empty(),
        "the restart logs the resolve only: {after:?}"
    );
    let mut whole = raised.clone();
    whole.extend(after);
    hook2.wait_for("the raise from the checkpoint, then its resolve", |a| {
        notified_all(&whole, a)
    });
}
