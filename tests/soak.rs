//! Issue 23 point 2: weeks of a monitor's life, in minutes. The `soak` scenario (every 6 hours
//! of event time an excursion, a silence, a drift up and back, a fifth of the sensors away
//! long enough to be retired, a device away for 6 hours) over 20 sensors that each read every
//! 10 s is produced to a topic and replayed as fast as the job goes, with a checkpoint at every
//! epoch (the default) and the live page on. While it runs, the test samples at each tenth of
//! the simulated span: the job's peak RSS, the state directory's size (its largest in that
//! tenth), the bytes written per checkpoint, the live page's state and the number of metric
//! series. It checks that none of them grows with the simulated time, and that the alert log
//! equals an independent recomputation (`common/alert_oracle.rs`).
//!
//! The tests run 12 simulated hours; `HYGROFLOW_SOAK_DAYS=30 cargo test --release --test soak
//! -- --nocapture` runs 30 days and prints the table that the README quotes.

#[path = "common/alert_oracle.rs"]
mod alert_oracle;
#[path = "common/alert_rules.rs"]
mod alert_rules;
#[path = "common/broker.rs"]
mod broker;
mod common;
#[path = "common/web.rs"]
mod web;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alert_rules::{pct, Keys, Rules};
use serde_json::Value;

use common::hygroflow;

const EPOCH_MS: i64 = 3_000;
const SENSORS: u64 = 20;
/// Each sensor every 10 s.
const INTERVAL_MS: f64 = 10_000.0 / SENSORS as f64;

/// The built-in bands and hysteresis, a rate limit for every device (so that every drift
/// counts) and sensors retired 2 hours after they fall silent (so that the ones the scenario
/// takes away for 2 h 30 min are retired and come back as new).
fn rules() -> Rules {
    Rules {
        defaults: Keys {
            low: Some(pct("30")),
            high: Some(pct("60")),
            hysteresis: Some(pct("1")),
            rate_per_hour: Some(pct("5")),
            window_s: Some(60),
            silence_s: Some(300),
            retire_s: Some(7_200),
        },
        ..Rules::default()
    }
}

/// One sample, at the end of a tenth of the simulated span; the last at the job's exit, from
/// `getrusage`'s children usage (peak RSS only), when the page is already closed. The
/// state directory holds, besides the committed checkpoint and its epoch log, the files of the
/// epochs written and not yet committed: as many as the replay runs ahead of the frontier.
#[derive(Debug, Default, Clone)]
struct Sample {
    /// Simulated hours from the first epoch.
    hours: f64,
    /// Epochs reported so far.
    epochs: u64,
    /// VmHWM, kB (at the end: `ru_maxrss`, the same figure).
    peak_rss_kb: u64,
    /// The largest the state directory was in this tenth, bytes.
    state_bytes: u64,
    /// Bytes written per epoch (one checkpoint each) in this tenth; not known at the exit.
    per_checkpoint: Option<u64>,
    /// The live page, while the job runs.
    page: Option<Page>,
}

#[derive(Debug, Default, Clone)]
struct Page {
    /// Series on `/metrics`.
    series: usize,
    /// The page's state event, bytes, and its tiles, active alerts and recent transitions.
    bytes: usize,
    items: (usize, usize, usize),
}

/// What the kernel knows of the job at its exit.
struct Exit {
    success: bool,
    /// `ru_maxrss`, kB.
    peak_rss_kb: u64,
}

/// Waits for the job, for its peak RSS: `RUSAGE_CHILDREN`'s is the largest of the children
/// waited for, so it is the job's when the job's wait raised it (asserted).
fn wait_with_usage(job: &mut std::process::Child) -> Exit {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = || getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let before = usage();
    let status = job.wait().expect("the job ends");
    let after = usage();
    assert!(
        after.max_rss() > before.max_rss(),
        "the job's peak RSS ({} kB) is not above the other children's ({} kB)",
        after.max_rss(),
        before.max_rss()
    );
    Exit {
        success: status.success(),
        peak_rss_kb: u64::try_from(after.max_rss()).unwrap_or(0),
    }
}

fn proc_field(pid: u32, file: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn walk(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match entry.metadata() {
            Ok(m) if m.is_dir() => out.extend(walk(&entry.path())),
            Ok(m) => out.push((entry.path(), m.len())),
            Err(_) => {}
        }
    }
    out
}

/// The first `state` event of `/api/events`.
fn page_state(authority: &str) -> Value {
    let mut stream = TcpStream::connect(authority).expect("connect to the live page");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: {authority}\r\n\r\n"
    )
    .expect("request");
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let line = line.expect("an event");
        // Chunked: the data line arrives whole inside a chunk.
        if let Some(data) = line.strip_prefix("data: ") {
            return serde_json::from_str(data).expect("the state is JSON");
        }
    }
    panic!("no state event");
}

fn metric_series(url: &str) -> usize {
    let (code, body) = web::get(&format!("http://{url}/"), "/metrics");
    assert_eq!(code, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

/// `"epoch":N` at the start of a report line.
fn epoch_of(line: &str) -> Option<i64> {
    let rest = line.strip_prefix("{\"epoch\":")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

fn soak(hours: f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = (hours * 3_600_000.0 / INTERVAL_MS).round() as u64;
    let input = dir.path().join("soak.jsonl");
    let generated = hygroflow()
        .args(["generate", "--count", &lines.to_string(), "--seed", "23"])
        .args(["--sensors", &SENSORS.to_string()])
        .args(["--interval-ms", &INTERVAL_MS.to_string()])
        .args(["--scenario", "soak"])
        .stdout(std::fs::File::create(&input).expect("input file"))
        .status()
        .expect("generate");
    assert!(generated.success());
    let rules_path = dir.path().join("rules.toml");
    std::fs::write(&rules_path, rules().to_toml()).expect("rules");

    let broker = broker::Broker::start();
    broker.create_topic("soak", 1);
    broker.create_topic("soak.dlq", 1);
    let produced = hygroflow()
        .args(["produce", "-b", &broker.brokers(), "-t", "soak"])
        .arg(&input)
        .output()
        .expect("produce");
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );

    let state = dir.path().join("state");
    let alerts = dir.path().join("alerts.jsonl");
    let log = dir.path().join("job.log");
    let mut job = Command::new(env!("CARGO_BIN_EXE_hygroflow"))
        .env("RUST_LOG", "info")
        .args([
            "run",
            "-b",
            &broker.brokers(),
            "-t",
            "soak",
            "--time",
            "event",
        ])
        .args(["--until-end", "--format", "json", "--http", "127.0.0.1:0"])
        .arg("--rules")
        .arg(&rules_path)
        .arg("--alerts")
        .arg(&alerts)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn the job");
    let pid = job.id();
    let stdout = BufReader::new(job.stdout.take().expect("stdout"));
    let started = Instant::now();
    let url = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(at) = text.find("url=http://") {
            let rest = &text[at + "url=http://".len()..];
            break rest[..rest.find(['/', ' ', '\n']).unwrap_or(rest.len())].to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no live page: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };

    let span = (hours * 3_600_000.0) as i64 / EPOCH_MS;
    let tenth = (span / 10).max(1);
    let mut samples: Vec<Sample> = Vec::new();
    let (mut first, mut epochs, mut largest) = (None, 0u64, 0u64);
    let (mut last_written, mut last_epochs) = (0u64, 0u64);
    let mut take = |at: i64, epochs: u64, largest: u64| {
        let written = proc_field(pid, "io", "write_bytes");
        let page = page_state(&url);
        let per_checkpoint = (written - last_written) / (epochs - last_epochs).max(1);
        (last_written, last_epochs) = (written, epochs);
        let count = |key: &str| page[key].as_array().map_or(0, Vec::len);
        Sample {
            hours: (at as f64 * EPOCH_MS as f64) / 3_600_000.0,
            epochs,
            peak_rss_kb: proc_field(pid, "status", "VmHWM"),
            state_bytes: largest,
            per_checkpoint: Some(per_checkpoint),
            page: Some(Page {
                series: metric_series(&url),
                bytes: page.to_string().len(),
                items: (count("devices"), count("active"), count("recent")),
            }),
        }
    };
    let mut last_at = 0;
    for line in stdout.lines().map_while(Result::ok) {
        let Some(epoch) = epoch_of(&line) else {
            continue;
        };
        let first = *first.get_or_insert(epoch);
        epochs += 1;
        // About 200 looks at the directory a tenth.
        if epochs % (tenth as u64 / 200).max(1) == 0 {
            largest = largest.max(dir_bytes(&state));
        }
        let at = epoch - first;
        last_at = at;
        // At each of the first nine tenths; the tenth is the job's exit, below.
        if at >= tenth * (samples.len() as i64 + 1) && samples.len() < 9 {
            samples.push(take(at, epochs, largest));
            largest = 0;
        }
    }
    largest = largest.max(dir_bytes(&state));
    let exit = wait_with_usage(&mut job);
    samples.push(Sample {
        hours: (last_at as f64 * EPOCH_MS as f64) / 3_600_000.0,
        epochs,
        peak_rss_kb: exit.peak_rss_kb,
        state_bytes: largest,
        per_checkpoint: None,
        page: None,
    });
    let mut files: Vec<String> = walk(&state)
        .into_iter()
        .map(|(path, len)| {
            format!(
                "{} {len}",
                path.strip_prefix(&state).unwrap_or(&path).display()
            )
        })
        .collect();
    files.sort();
    eprintln!("state directory at the end: {files:?}");
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exit.success, "the job failed: {log_text}");

    // The alert log, against the oracle.
    let readings = alert_oracle::parse_input(&std::fs::read(&input).expect("input"));
    let want = alert_oracle::recompute(&readings, &rules(), EPOCH_MS);
    let got: Vec<Value> = std::fs::read_to_string(&alerts)
        .expect("alerts")
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert line"))
        .collect();
    let kinds = |kind: &str, state: &str| {
        got.iter()
            .filter(|a| a["kind"] == kind && a["state"] == state)
            .count()
    };
    let retired = got.iter().filter(|a| a["reason"] == "retired").count();
    eprintln!(
        "soak of {hours} h: {} epochs, {} alert lines: high {}, silent {} (retired {retired}), rate {}",
        epochs,
        got.len(),
        kinds("high", "raised"),
        kinds("silent", "raised"),
        kinds("rate", "raised"),
    );
    for kind in ["high", "silent", "rate"] {
        assert!(kinds(kind, "raised") > 1, "{kind} raised again and again");
    }
    assert!(retired > 1, "sensors retired");
    alert_oracle::assert_alerts(&got, &want.log, EPOCH_MS, "soak");

    eprintln!("| simulated hours | epochs | peak RSS | state dir (largest) | written per checkpoint | metric series | page state (tiles, active, recent) |");
    eprintln!("|---|---|---|---|---|---|---|");
    for s in &samples {
        let page = s
            .page
            .as_ref()
            .map_or("(at exit: page closed) | -".into(), |p| {
                format!(
                    "{} | {:.1} kB ({}, {}, {})",
                    p.series,
                    p.bytes as f64 / 1e3,
                    p.items.0,
                    p.items.1,
                    p.items.2
                )
            });
        let written = s
            .per_checkpoint
            .map_or("-".into(), |w| format!("{:.1} kB", w as f64 / 1e3));
        eprintln!(
            "| {:.1} | {} | {:.1} MB | {:.0} kB | {written} | {page} |",
            s.hours,
            s.epochs,
            s.peak_rss_kb as f64 / 1024.0,
            s.state_bytes as f64 / 1e3,
        );
    }
    assert_eq!(samples.len(), 10, "a sample at each tenth");
    let (early, late) = (&samples[0], &samples[9]);
    // Nothing grows with age. The first tenth is past the hour of rate history, so the state
    // is whole by then; the epoch log's size goes up and down with its compactions, so the
    // largest of the later tenths is compared with the largest of the first three.
    assert!(
        late.peak_rss_kb * 10 <= early.peak_rss_kb * 11,
        "peak RSS {} kB at the end, {} kB at the first tenth",
        late.peak_rss_kb,
        early.peak_rss_kb
    );
    let early_state = samples[..3]
        .iter()
        .map(|s| s.state_bytes)
        .max()
        .unwrap_or(0);
    let late_state = samples[3..]
        .iter()
        .map(|s| s.state_bytes)
        .max()
        .unwrap_or(0);
    assert!(
        late_state * 10 <= early_state * 11,
        "state directory up to {late_state} bytes later, {early_state} early"
    );
    let early_write = samples[1..3]
        .iter()
        .filter_map(|s| s.per_checkpoint)
        .max()
        .unwrap_or(0);
    let late_write = samples[3..]
        .iter()
        .filter_map(|s| s.per_checkpoint)
        .max()
        .unwrap_or(0);
    assert!(
        late_write * 10 <= early_write * 12,
        "{late_write} bytes per checkpoint later, {early_write} early"
    );
    let pages: Vec<&Page> = samples.iter().filter_map(|s| s.page.as_ref()).collect();
    assert_eq!(pages.len(), 9, "the page at each of the first nine tenths");
    let early_series = pages[..3].iter().map(|p| p.series).max().unwrap_or(0);
    assert!(
        pages.iter().all(|p| p.series <= early_series),
        "metric series: {:?}",
        pages.iter().map(|p| p.series).collect::<Vec<_>>()
    );
    // The page's list of recent transitions fills to its 30 in the first hours.
    let early_page = pages[..3].iter().map(|p| p.bytes).max().unwrap_or(0);
    assert!(
        pages.iter().all(|p| p.bytes * 4 <= early_page * 5),
        "page state: {:?}",
        pages.iter().map(|p| p.bytes).collect::<Vec<_>>()
    );
}

#[test]
fn gh_23_weeks_of_trouble_replayed_keep_memory_checkpoints_and_the_page_flat_and_alerts_exact() {
    let days: f64 = std::env::var("HYGROFLOW_SOAK_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.5);
    soak(days * 24.0);
}
