//! Helpers shared by the binary tests: running the binary, and a naive recomputation of the
//! final result straight from the JSON lines (serde_json::Value, no code shared with the engine).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// A free port on 127.0.0.1 (free when asked; another process may take it before it is used).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// The built binary.
pub fn hygroflow() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hygroflow"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// Fault points for the kill tests: in a debug build (what CI runs) each run can also kill
/// itself at one of these (`src/fault.rs`, `HYGROFLOW_FAULT`), counted from its start: a run that takes in its input faster than the
/// test can see its commits (it may commit everything in a few steps) is still killed in the
/// middle, between its checkpoint, its marker, its offsets and its printed reports.
pub const FAULTS: [&str; 5] = [
    "after-marker:4",
    "after-release:6",
    "checkpoint-write:5",
    "after-offsets:4",
    "marker-write:5",
];

/// The frontier named by the `COMMITTED` marker of the state directory `state` (a header
/// line, then JSON; see src/checkpoint.rs), if there is one: every epoch before it is
/// checkpointed.
pub fn committed_frontier(state: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(state.join("COMMITTED")).ok()?;
    let (_, body) = text.split_once('\n')?;
    serde_json::from_str::<Value>(body).ok()?["frontier"].as_u64()
}

/// Runs the binary with `args`, returning its output.
pub fn run(args: &[&str]) -> Output {
    hygroflow().args(args).output().expect("the binary runs")
}

/// Writes `count` generated lines with `bad` malformed fraction to `path`.
pub fn generate(path: &Path, count: u64, seed: u64, bad: f64) {
    let out = run(&[
        "generate",
        "--count",
        &count.to_string(),
        "--seed",
        &seed.to_string(),
        "--bad-fraction",
        &bad.to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(path, out.stdout).expect("write input");
}

/// The final result, recomputed naively.
#[derive(Debug, PartialEq)]
pub struct Expected {
    pub total_messages: i64,
    pub rejected_messages: i64,
    pub total_sensors: i64,
    pub avg: BTreeMap<String, f64>,
    pub sensors_by_device: BTreeMap<String, i64>,
}

fn device_of(v: &Value) -> Option<&str> {
    match v.get("medicalimagingdevice") {
        Some(d) => d.as_str(),
        None => v.get("medicalImagingdevice").and_then(Value::as_str),
    }
}

/// Applies the README's validity rules to each line, then sums everything up.
pub fn recompute(bytes: &[u8]) -> Expected {
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    if bytes.ends_with(b"\n") {
        lines.pop();
    }
    let mut rejected = 0;
    let mut per_device: BTreeMap<String, (f64, i64)> = BTreeMap::new();
    let mut pairs: BTreeSet<(String, String)> = BTreeSet::new();
    let mut guids: BTreeSet<String> = BTreeSet::new();
    for line in lines {
        let valid = std::str::from_utf8(line)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .filter(Value::is_object)
            .and_then(|v| {
                let guid = v
                    .get("guid")?
                    .as_str()
                    .filter(|g| !g.is_empty())?
                    .to_owned();
                let device = device_of(&v).filter(|d| !d.is_empty())?.to_owned();
                let h = v.pointer("/payload/data/humidity")?.as_f64()?;
                (0.0..=100.0).contains(&h).then_some((guid, device, h))
            });
        match valid {
            Some((guid, device, h)) => {
                let e = per_device.entry(device.clone()).or_default();
                e.0 += h;
                e.1 += 1;
                pairs.insert((device, guid.clone()));
                guids.insert(guid);
            }
            None => rejected += 1,
        }
    }
    let mut sensors_by_device = BTreeMap::new();
    for (device, _) in &pairs {
        *sensors_by_device.entry(device.clone()).or_insert(0) += 1;
    }
    Expected {
        total_messages: per_device.values().map(|(_, c)| c).sum(),
        rejected_messages: rejected,
        total_sensors: guids.len() as i64,
        avg: per_device
            .into_iter()
            .map(|(d, (s, c))| (d, s / c as f64))
            .collect(),
        sensors_by_device,
    }
}

/// Checks a JSON report against the recomputation (averages to 1e-9 relative).
pub fn assert_report_matches(report: &Value, expected: &Expected) {
    assert_eq!(
        report["total_messages"], expected.total_messages,
        "{report}"
    );
    assert_eq!(report["rejected_messages"], expected.rejected_messages);
    assert_eq!(report["total_sensors"], expected.total_sensors);
    let sensors: BTreeMap<String, i64> = report["sensors_by_device"]
        .as_array()
        .expect("array")
        .iter()
        .map(|p| {
            (
                p[0].as_str().expect("device").to_owned(),
                p[1].as_i64().expect("count"),
            )
        })
        .collect();
    assert_eq!(sensors, expected.sensors_by_device);
    let avg = report["avg_humidity_by_device"].as_array().expect("array");
    assert_eq!(avg.len(), expected.avg.len());
    let mut previous = f64::INFINITY;
    for pair in avg {
        let device = pair[0].as_str().expect("device");
        let value = pair[1].as_f64().expect("number");
        let want = expected.avg[device];
        assert!(
            ((value - want) / want).abs() < 1e-9,
            "{device}: {value} vs {want}"
        );
        assert!(value <= previous, "averages are sorted descending");
        previous = value;
    }
}

/// Parses stdout as JSON lines.
pub fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// A running job whose JSON reports are read as they come.
pub struct LiveJob {
    child: std::process::Child,
    reports: std::sync::mpsc::Receiver<Value>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl LiveJob {
    /// Starts `hygroflow` with `args` (which should include `--format json`).
    pub fn spawn(args: &[&str]) -> LiveJob {
        use std::io::BufRead;
        let mut child = hygroflow()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn hygroflow");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, reports) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(report) = serde_json::from_str(&line) {
                    if tx.send(report).is_err() {
                        break;
                    }
                }
            }
        });
        LiveJob {
            child,
            reports,
            reader: Some(reader),
        }
    }

    /// The first report with at least `total` messages (valid and rejected), within a minute.
    pub fn wait_for_total(&self, total: i64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let report = self
                .reports
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no report with {total} messages: {e}"));
            let seen = report["total_messages"].as_i64().expect("total_messages")
                + report["rejected_messages"]
                    .as_i64()
                    .expect("rejected_messages");
            if seen >= total {
                return report;
            }
        }
    }

    /// Stops the job with Ctrl-C and checks that it exits cleanly.
    pub fn interrupt(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        let status = self.child.wait().expect("wait");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("report reader");
        }
        assert!(status.success(), "{stderr}");
    }
}

impl Drop for LiveJob {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
