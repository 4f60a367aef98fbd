//! `--alertmanager` (issue 22) against a real Alertmanager (Debian's `prometheus-alertmanager`,
//! which `scripts/test.sh` installs when missing), started on loopback ports with its HA
//! gossip off, routing to a webhook receiver that is part of this test. What reaches the
//! webhook is compared with the job's own alert log. No assertion is about speed.

#[path = "common/alert_oracle.rs"]
mod alert_oracle;
#[path = "common/alert_rules.rs"]
mod alert_rules;
#[path = "common/broker.rs"]
mod broker;
mod common;
#[path = "common/proxy.rs"]
mod proxy;

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

/// A job reading generated lines from stdin, fed part by part, logging its alerts to a file.
struct Fed {
    job: Child,
    stdin: std::process::ChildStdin,
    parts: std::collections::VecDeque<Vec<u8>>,
    alerts: PathBuf,
}

impl Fed {
    /// Starts the job notifying Alertmanager on `am_port`, and feeds it the first 2 minutes
    /// of CT1's excursion (readings 30 ms apart): CT1 is too humid from 1 to 3 minutes in, so
    /// they raise its alert, and the rest resolves it. Returns once the raise is logged.
    fn start(dir: &Path, am_port: u16) -> Fed {
        let (first, rest) = excursion_in_halves();
        let fed = Fed::start_parts(
            dir,
            &format!("http://127.0.0.1:{am_port}"),
            &[],
            vec![first, rest],
        );
        fed.wait_for_lines(1, "the raise");
        fed
    }

    /// Starts the job notifying `am_url`, with `extra` flags, and feeds it the first of
    /// `parts`.
    fn start_parts(dir: &Path, am_url: &str, extra: &[&str], parts: Vec<Vec<u8>>) -> Fed {
        let alerts = dir.join("alerts.jsonl");
        let job = hygroflow()
            .args(["run", "-i", "-", "--time", "event", "--format", "json"])
            .arg("--alertmanager")
            .arg(am_url)
            .arg("--alerts")
            .arg(&alerts)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the job starts");
        let mut job = job;
        let stdin = job.stdin.take().expect("stdin");
        let mut fed = Fed {
            job,
            stdin,
            parts: parts.into(),
            alerts,
        };
        fed.feed_next();
        fed
    }

    /// Feeds the next part.
    fn feed_next(&mut self) {
        let part = self.parts.pop_front().expect("a part left");
        self.stdin.write_all(&part).expect("feed");
        self.stdin.flush().expect("flush");
    }

    /// Feeds the rest; returns once the resolve is logged.
    fn finish_input(&mut self) {
        self.feed_next();
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

/// `bytes` cut before the lines numbered `at` (from 0, ascending).
fn cut_lines(bytes: &[u8], at: &[usize]) -> Vec<Vec<u8>> {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let mut bounds: Vec<usize> = at
        .iter()
        .map(|&n| starts.get(n).copied().unwrap_or(bytes.len()))
        .collect();
    bounds.insert(0, 0);
    bounds.push(bytes.len());
    bounds
        .windows(2)
        .map(|w| bytes[w[0]..w[1]].to_vec())
        .collect()
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
fn gh_22_alertmanager_stopped_for_30_s_gets_every_raise_and_resolve_made_meanwhile() {
    let dir = temp_dir("restart");
    let (hook, hook_port) = Webhook::start();
    let am_port = free_port();
    let am = Alertmanager::start(&dir, am_port, hook_port);
    // CT1 too humid from 1 to 3 minutes in; SPECT1 silent from 1:30 to 7:30 (raised at 6:30,
    // its 5 minutes of silence). Fed in three parts: to 2 minutes, to 7, and the rest.
    let lines = lines("excursion@1m,silence@90s");
    let parts = cut_lines(&lines, &[4000, 14000]);
    let mut fed = Fed::start_parts(&dir, &format!("http://127.0.0.1:{am_port}"), &[], parts);
    fed.wait_for_lines(1, "CT1's raise");
    let raised = log(&fed.alerts);
    hook.wait_for("the raise", |a| notified_all(&raised, a));
    am.stop();
    let stopped = Instant::now();
    // Meanwhile: CT1's resolve, and SPECT1's silent sensors raised.
    fed.feed_next();
    fed.wait_for_lines(3, "CT1's resolve and SPECT1's silence");
    std::thread::sleep(Duration::from_secs(30).saturating_sub(stopped.elapsed()));
    let meanwhile = log(&fed.alerts);
    assert!(
        meanwhile
            .iter()
            .any(|l| l["state"] == "resolved" && l["device"] == "CT1")
            && meanwhile
                .iter()
                .any(|l| l["state"] == "raised" && l["device"] == "SPECT1"),
        "{meanwhile:?}"
    );
    let _am = Alertmanager::start(&dir, am_port, hook_port);
    hook.wait_for("every raise and resolve made while it was stopped", |a| {
        notified_all(&meanwhile, a)
    });
    // And SPECT1's resolves, after it.
    fed.feed_next();
    let count = meanwhile.len();
    let start = Instant::now();
    while !log(&fed.alerts)
        .iter()
        .skip(count)
        .any(|l| l["device"] == "SPECT1")
    {
        assert!(start.elapsed() < PATIENCE, "SPECT1 resolved");
        std::thread::sleep(Duration::from_millis(100));
    }
    let path = fed.alerts.clone();
    fed.end();
    let all = log(&path);
    hook.wait_for("every transition", |a| notified_all(&all, a));
}

fn log_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn gh_22_the_shipped_alertmanager_config_passes_amtool() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = root.join("alertmanager.yml");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let text = std::fs::read_to_string(&config).expect("alertmanager.yml");
    assert!(
        readme.contains(&format!("```yaml\n{text}```")),
        "the README's copy of alertmanager.yml is not the file"
    );
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

#[test]
fn gh_22_a_resolve_logged_and_checkpointed_but_undelivered_at_kill_9_is_delivered_by_the_restart() {
    let dir = temp_dir("undelivered");
    let broker = broker::Broker::start();
    broker.create_topic("am-undelivered", 1);
    broker.create_topic("am-undelivered.dlq", 1);
    let (first, rest) = excursion_in_halves();
    let produce = |bytes: &[u8], name: &str| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        let out = hygroflow()
            .args(["produce", "-b", &broker.brokers(), "-t", "am-undelivered"])
            .arg(&path)
            .output()
            .expect("produce");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (hook, hook_port) = Webhook::start();
    let am = Alertmanager::start(&dir.join("am"), free_port(), hook_port);
    // The job reaches Alertmanager through a proxy that the test can cut.
    let proxy = proxy::Proxy::start(0, &format!("127.0.0.1:{}", am.port));
    let state = dir.join("state");
    let job = |alerts: &Path| {
        let mut cmd = hygroflow();
        cmd.args(["run", "-b", &broker.brokers(), "-t", "am-undelivered"])
            .args(["--time", "event", "--format", "json", "--state-dir"])
            .arg(&state)
            .arg("--alertmanager")
            .arg(format!("http://{}", proxy.address()))
            .arg("--alerts")
            .arg(alerts)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(alerts.with_extension("log")).expect("a log"));
        cmd
    };
    produce(&first, "first.jsonl");
    let alerts1 = dir.join("alerts1.jsonl");
    let mut run1 = job(&alerts1).spawn().expect("the job starts");
    let raised = {
        let start = Instant::now();
        loop {
            let log = log_if_any(&alerts1);
            if !log.is_empty() && notified_all(&log, &hook.alerts()) {
                break log;
            }
            assert!(start.elapsed() < PATIENCE, "the raise was not notified");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // Alertmanager out of reach: the resolve is logged, checkpointed, and stays queued.
    proxy.cut();
    produce(&rest, "rest.jsonl");
    let start = Instant::now();
    let resolve = loop {
        let resolve = log_if_any(&alerts1)
            .into_iter()
            .find(|l| l["state"] == "resolved");
        let epoch = resolve.as_ref().and_then(|l| l["epoch"].as_u64());
        if epoch.is_some_and(|e| committed_frontier(&state).is_some_and(|f| f > e)) {
            break resolve.expect("found");
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no resolve logged and checkpointed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !hook
            .alerts()
            .iter()
            .any(|(status, ..)| status == "resolved"),
        "the resolve went through the cut"
    );
    run1.kill().expect("kill -9");
    let _ = run1.wait();
    // The restart has nothing to replay before the resolve: only the checkpoint knows it.
    proxy.restore();
    let alerts2 = dir.join("alerts2.jsonl");
    let out = job(&alerts2)
        .arg("--until-end")
        .output()
        .expect("the restarted job runs");
    assert!(out.status.success());
    assert!(
        log_if_any(&alerts2)
            .iter()
            .all(|l| l["epoch"].as_u64() > resolve["epoch"].as_u64()),
        "the resolve's epoch is not replayed"
    );
    let mut whole = raised;
    whole.push(resolve);
    hook.wait_for("the resolve from the checkpoint", |a| {
        notified_all(&whole, a)
    });
}

/// The alert log's lines, none while it does not exist.
fn log_if_any(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// GET `path` from 127.0.0.1:`port`: the body (chunked bodies joined).
fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    if !text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// The live page's first state from its event stream on `port`.
fn page_state(port: u16) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .expect("request");
    for line in BufReader::new(stream).lines() {
        let line = line.expect("an event line");
        if let Some(data) = line.strip_prefix("data:") {
            return serde_json::from_str(data.trim()).expect("the state's JSON");
        }
    }
    panic!("no state on the event stream");
}

#[test]
fn gh_22_a_maintenance_shelves_notifications_not_the_log_and_its_end_notifies() {
    let dir = temp_dir("maintenance");
    let (hook, hook_port) = Webhook::start();
    let am = Alertmanager::start(&dir, free_port(), hook_port);
    let lines = lines("excursion@1m");
    let first: Value =
        serde_json::from_slice(lines.split(|b| *b == b'\n').next().expect("a line")).expect("JSON");
    let start_ms = alert_oracle::parse_time(first["eventTime"].as_str().expect("eventTime"));
    // CT1 in maintenance for the first 2.5 minutes: its raise (at 1 minute) is shelved until
    // then, its resolve (past 3 minutes) is not.
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "[defaults]\nlow = 30\nhigh = 60\n\n[[maintenance]]\ndevice = \"CT1\"\nfrom = \"2000-01-01T00:00:00Z\"\nto = \"{}\"\nreason = \"humidifier service\"\n",
            alert_oracle::format_time(start_ms + 150_000)
        ),
    )
    .expect("rules");
    let http = free_port();
    let rules_flag = rules.to_str().expect("UTF-8");
    let http_flag = format!("127.0.0.1:{http}");
    let parts = cut_lines(&lines, &[4000]);
    let mut fed = Fed::start_parts(
        &dir,
        &format!("http://127.0.0.1:{}", am.port),
        &["--rules", rules_flag, "--http", &http_flag],
        parts,
    );
    fed.wait_for_lines(1, "the shelved raise");
    let raise = log(&fed.alerts).remove(0);
    assert_eq!(
        (
            raise["device"].as_str(),
            raise["state"].as_str(),
            raise["shelved"].as_bool()
        ),
        (Some("CT1"), Some("raised"), Some(true)),
        "{raise}"
    );
    let state = page_state(http);
    let ct1 = state["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|t| t["device"] == "CT1"))
        .cloned()
        .expect("CT1's tile");
    assert!(
        ct1["maintenance"]
            .as_str()
            .is_some_and(|m| m.starts_with("humidifier service")),
        "{ct1}"
    );
    // Sent nowhere while the maintenance lasts.
    std::thread::sleep(Duration::from_secs(3));
    assert!(hook.alerts().is_empty(), "{:?}", hook.alerts());
    fed.feed_next();
    fed.wait_for_lines(2, "the resolve");
    let all = log(&fed.alerts);
    assert_eq!(all[1]["state"], "resolved");
    assert!(all[1].get("shelved").is_none(), "{}", all[1]);
    // The maintenance ended with the alert still raised: it was notified then, and resolved.
    hook.wait_for("the raise after the maintenance, and the resolve", |a| {
        notified_all(&all, a)
    });
    fed.end();
}

#[test]
fn gh_22_the_page_shows_who_silenced_an_alert_in_alertmanager_and_until_when() {
    let dir = temp_dir("silences");
    let (hook, hook_port) = Webhook::start();
    let am = Alertmanager::start(&dir, free_port(), hook_port);
    let http = free_port();
    let http_flag = format!("127.0.0.1:{http}");
    let (first, rest) = excursion_in_halves();
    let fed = Fed::start_parts(
        &dir,
        &format!("http://127.0.0.1:{}", am.port),
        &["--http", &http_flag],
        vec![first, rest],
    );
    fed.wait_for_lines(1, "the raise");
    let raised = log(&fed.alerts);
    hook.wait_for("the raise", |a| notified_all(&raised, a));
    let out = Command::new("amtool")
        .arg(format!("--alertmanager.url=http://127.0.0.1:{}", am.port))
        .args([
            "silence",
            "add",
            "alertname=HumidityHigh",
            "device=CT1",
            "--author=nurse <b>ward 3</b>",
            "--comment=humidifier checked by hand",
            "--duration=1h",
        ])
        .output()
        .expect("amtool runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = Instant::now();
    let line = loop {
        let alerts: Value =
            serde_json::from_str(&http_get(http, "/api/alerts")).unwrap_or_default();
        let silenced = alerts.as_array().and_then(|a| {
            a.iter()
                .find(|l| l["device"] == "CT1" && l["silenced"].is_object())
                .cloned()
        });
        if let Some(line) = silenced {
            break line;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the page never showed the silence: {alerts}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let silenced = &line["silenced"];
    assert_eq!(
        silenced["by"], "nurse <b>ward 3</b>",
        "kept as text: {line}"
    );
    assert_eq!(silenced["comment"], "humidifier checked by hand");
    assert!(
        silenced["until"].as_str().is_some_and(|u| u.len() >= 20),
        "{line}"
    );
    fed.end();
}
