//! `hygroflow produce` and `hygroflow topic` against a real Kafka-API broker (Tansu, over TCP).
//! Each test starts its own broker and uses its own topic. The broker comes from
//! `scripts/install-tansu.sh`.

mod common;

#[path = "common/broker.rs"]
mod broker;
#[path = "common/proxy.rs"]
mod proxy;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use broker::{consume_all, Broker};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// The input lines as `produce` should send them: split at `\n`, one `\r` dropped, and no
/// extra empty line after a final newline.
fn lines_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .collect();
    if bytes.ends_with(b"\n") || bytes.is_empty() {
        lines.pop();
    }
    lines
}

/// The key a line must carry: its guid when the engine's parser accepts it.
fn expected_key(line: &[u8]) -> Option<Vec<u8>> {
    hygroflow::message::parse(
        line,
        line.len(),
        hygroflow::message::DEFAULT_MAX_MESSAGE_BYTES,
    )
    .ok()
    .map(|r| r.guid.as_bytes().to_vec())
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the command failed with exit code 1 and exactly one line on stderr, which contains
/// `needle`; returns that line.
fn assert_one_line_failure(out: &Output, needle: &str) -> String {
    let stderr = stderr_of(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {stderr}");
    assert!(lines[0].starts_with("hygroflow: "), "{stderr}");
    assert!(lines[0].contains(needle), "{needle:?} not in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines[0].to_owned()
}

/// Waits for `child` at most `limit`; kills it and fails the test past that.
fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("still running after {limit:?}; stderr: {}", stderr_of(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Generated readings with malformed ones among them, then the awkward cases by hand.
fn write_input(path: &Path) -> Vec<u8> {
    common::generate(path, 400, 7, 0.2);
    let mut bytes = std::fs::read(path).expect("read input");
    let valid =
        br#"{"guid":"crlf-1","medicalimagingdevice":"MRI1","payload":{"data":{"humidity":41.25}}}"#;
    bytes.extend_from_slice(b"\n"); // an empty line
    bytes.extend_from_slice(valid);
    bytes.extend_from_slice(b"\r\n"); // a Windows line end on a valid reading
    bytes.extend_from_slice(b"\r\n"); // a line that is only \r: empty too
    bytes.extend_from_slice(b"{\"guid\": \"\xff\xfe\"}\n"); // not UTF-8
    bytes.extend_from_slice(b"   \n"); // blanks
    bytes.extend_from_slice(br#"{"guid":"esc\u002dape","medicalimagingdevice":"CT2","payload":{"data":{"humidity":3}}}"#);
    bytes.extend_from_slice(b"\n");
    bytes.extend_from_slice(b"{\"truncated\": "); // the last line has no newline
    std::fs::write(path, &bytes).expect("write input");
    bytes
}

#[test]
fn produce_sends_every_line_byte_exact_keyed_by_guid() {
    let broker = Broker::start();
    let topic = "produce-every-line";
    broker.create_topic(topic, 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input.jsonl");
    let bytes = write_input(&path);
    let lines = lines_of(&bytes);
    assert_eq!(lines.len(), 400 + 7);

    let out = common::run(&[
        "produce",
        "-b",
        &broker.brokers(),
        "-t",
        topic,
        path.to_str().expect("utf-8 path"),
    ]);
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("produced {} messages", lines.len())),
        "{stderr}"
    );

    let received = consume_all(&broker.brokers(), topic, 3);
    assert_eq!(received.len(), lines.len());
    // Every line arrived once, byte for byte, with its key. (Unkeyed lines land in any
    // partition, so only the multiset can be compared for them.)
    let mut got: Vec<(Vec<u8>, Option<Vec<u8>>)> = received
        .iter()
        .map(|r| (r.payload.clone().unwrap_or_default(), r.key.clone()))
        .collect();
    let mut want: Vec<(Vec<u8>, Option<Vec<u8>>)> =
        lines.iter().map(|l| (l.clone(), expected_key(l))).collect();
    got.sort();
    want.sort();
    assert!(got == want, "the messages differ from the input lines");
    // One sensor's readings arrive in input order (each partition is read in offset order).
    let mut sent_by_key: BTreeMap<Vec<u8>, Vec<&[u8]>> = BTreeMap::new();
    for line in &lines {
        if let Some(key) = expected_key(line) {
            sent_by_key.entry(key).or_default().push(line);
        }
    }
    let mut got_by_key: BTreeMap<Vec<u8>, Vec<&[u8]>> = BTreeMap::new();
    for r in &received {
        if let (Some(key), Some(payload)) = (&r.key, &r.payload) {
            got_by_key.entry(key.clone()).or_default().push(payload);
        }
    }
    assert!(got_by_key == sent_by_key, "per-guid order differs");

    let keyed = received.iter().filter(|r| r.key.is_some()).count();
    let valid = lines.iter().filter(|l| expected_key(l).is_some()).count();
    assert_eq!(keyed, valid);
    assert!(valid > 300 && valid < lines.len(), "{valid} valid lines");
    // One sensor's readings stay in one partition.
    let mut partition_of: BTreeMap<&[u8], i32> = BTreeMap::new();
    for r in &received {
        if let Some(key) = &r.key {
            assert_eq!(*partition_of.entry(key).or_insert(r.partition), r.partition);
        }
    }
    // The escaped guid is sent unescaped; empty lines arrive as empty messages.
    assert!(received
        .iter()
        .any(|r| r.key.as_deref() == Some(b"esc-ape")));
    let empty = received
        .iter()
        .filter(|r| r.payload.as_deref().unwrap_or_default().is_empty())
        .count();
    let empty_lines = lines.iter().filter(|l| l.is_empty()).count();
    assert!(empty_lines >= 2);
    assert_eq!(empty, empty_lines);
    // Empty, not null: the engine sees an empty message.
    assert!(received.iter().all(|r| r.payload.is_some()));
}

#[test]
fn produce_reads_stdin_and_paces_to_the_rate() {
    let broker = Broker::start();
    let topic = "produce-stdin-rate";
    broker.create_topic(topic, 1);
    let input: String = (0..30)
        .map(|i| {
            format!(
                "{{\"guid\":\"g{i}\",\"medicalimagingdevice\":\"CT1\",\"payload\":{{\"data\":{{\"humidity\":{i}}}}}}}\n"
            )
        })
        .collect();
    let started = Instant::now();
    let mut child = common::hygroflow()
        .args(["produce", "-b", &broker.brokers(), "-t", topic, "-"])
        .args(["--rate", "100"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = wait_bounded(child, Duration::from_secs(60));
    assert!(out.status.success(), "{}", stderr_of(&out));
    // Pacing is a lower bound: the 30th message may not leave before 29/100 s.
    assert!(started.elapsed() >= Duration::from_millis(290));
    let stderr = stderr_of(&out);
    let bytes: usize = lines_of(input.as_bytes()).iter().map(Vec::len).sum();
    assert!(
        stderr.contains(&format!("produced 30 messages ({bytes} bytes)")),
        "{stderr}"
    );
    assert!(stderr.contains("messages/s"), "{stderr}");

    let received = consume_all(&broker.brokers(), topic, 1);
    let payloads: Vec<Vec<u8>> = received.into_iter().filter_map(|r| r.payload).collect();
    assert_eq!(payloads, lines_of(input.as_bytes()));
}

/// The rows of `topic describe`: (partition, low, high, committed, lag), "-" as `None`.
type Row = (i32, i64, i64, Option<i64>, Option<i64>);

fn describe_rows(stdout: &[u8]) -> Vec<Row> {
    let number = |s: &str| (s != "-").then(|| s.parse::<i64>().expect("a number"));
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let partition = words.first()?.parse::<i32>().ok()?;
            assert_eq!(words.len(), 5, "{line}");
            Some((
                partition,
                number(words[1])?,
                number(words[2])?,
                number(words[3]),
                number(words[4]),
            ))
        })
        .collect()
}

#[test]
fn topic_create_then_describe_shows_partitions_offsets_and_lag() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let topic = "create-describe";
    let out = common::run(&[
        "topic",
        "create",
        "-b",
        &brokers,
        "-t",
        topic,
        "--partitions",
        "4",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "created topic create-describe with 4 partitions\n"
    );

    let out = common::run(&["topic", "describe", "-b", &brokers, "-t", topic]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let rows = describe_rows(&out.stdout);
    assert_eq!(
        rows,
        (0..4).map(|p| (p, 0, 0, None, None)).collect::<Vec<Row>>(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Creating it again fails with one line.
    let out = common::run(&[
        "topic",
        "create",
        "-b",
        &brokers,
        "-t",
        topic,
        "--partitions",
        "4",
    ]);
    assert_one_line_failure(&out, "already exists");
    let out = common::run(&[
        "topic",
        "create",
        "-b",
        &brokers,
        "-t",
        "zero",
        "--partitions",
        "0",
    ]);
    // A flag error since gh-8: exit code 2 (tests/flags.rs has the rest).
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("'--partitions <PARTITIONS>': must be positive"),
        "{stderr}"
    );

    // Messages and a group's commit show up as offsets and lag.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input.jsonl");
    common::generate(&path, 200, 3, 0.0);
    let out = common::run(&[
        "produce",
        "-b",
        &brokers,
        "-t",
        topic,
        path.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let group = "describe-group";
    let consumer = broker::group_consumer(&brokers, group);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(topic, 0, Offset::Offset(1))
        .expect("add");
    consumer.commit(&commit, CommitMode::Sync).expect("commit");

    let out = common::run(&[
        "topic", "describe", "-b", &brokers, "-t", topic, "-g", group,
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let rows = describe_rows(&out.stdout);
    assert_eq!(rows.len(), 4, "{text}");
    let (_, low, high, committed, lag) = rows[0];
    assert_eq!((low, committed), (0, Some(1)), "{text}");
    assert!(high >= 1, "{text}");
    assert_eq!(lag, Some(high - 1), "{text}");
    for &(_, _, high, committed, lag) in &rows[1..] {
        assert_eq!((committed, lag), (None, None), "{text}");
        assert!(high >= 0, "{text}");
    }
    // The reported ends may be short on Tansu (it reports the start of the last batch + 1),
    // never long.
    let reported: i64 = rows.iter().map(|r| r.2).sum();
    assert!(reported > 0 && reported <= 200, "{text}");
}

#[test]
fn describe_of_a_missing_topic_fails_with_one_line() {
    let broker = Broker::start();
    for _ in 0..2 {
        // Twice: the first look must not have created the topic.
        let out = common::run(&[
            "topic",
            "describe",
            "-b",
            &broker.brokers(),
            "-t",
            "no-such-topic",
        ]);
        assert_one_line_failure(&out, "topic no-such-topic does not exist");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn produce_to_a_missing_topic_fails_with_one_line() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input.jsonl");
    common::generate(&path, 10, 1, 0.0);
    for _ in 0..2 {
        let out = common::run(&[
            "produce",
            "-b",
            &broker.brokers(),
            "-t",
            "no-such-topic",
            path.to_str().expect("path"),
        ]);
        assert_one_line_failure(&out, "topic no-such-topic does not exist");
    }
}

#[test]
fn produce_to_an_unreachable_broker_fails_cleanly_in_bounded_time() {
    // A port nobody listens on.
    let port = common::free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input.jsonl");
    common::generate(&path, 10, 1, 0.0);
    for brokers in [
        format!("127.0.0.1:{port}"),
        "no-such-host.invalid:9092".to_owned(),
    ] {
        let child = common::hygroflow()
            .args(["produce", "-b", &brokers, "-t", "t"])
            .args(["-X", "message.timeout.ms=2000"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = wait_bounded(child, Duration::from_secs(30));
        assert_one_line_failure(&out, &format!("from {brokers}"));
    }
    // An unknown -X property is one line too.
    let out = common::run(&[
        "produce",
        "-b",
        &format!("127.0.0.1:{port}"),
        "-t",
        "t",
        "-X",
        "no.such.property=1",
        path.to_str().expect("path"),
    ]);
    assert_one_line_failure(&out, "no.such.property");
}

#[test]
fn produce_fails_when_the_broker_goes_away_and_works_again_after() {
    let (broker, proxy) = proxy::broker_behind_proxy();
    let topic = "produce-outage";
    broker.create_topic(topic, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input.jsonl");
    common::generate(&path, 300, 5, 0.1);

    // 300 messages at 100/s take 3 s; the broker goes away after 1 s. Undelivered messages
    // fail message.timeout.ms after they were sent, but librdkafka notices only when its
    // reconnect backoff (up to reconnect.backoff.max.ms, 10 s by default) lets it look.
    let child = common::hygroflow()
        .args([
            "produce",
            "-b",
            &proxy.address(),
            "-t",
            topic,
            "--rate",
            "100",
        ])
        .args([
            "-X",
            "message.timeout.ms=2000",
            "-X",
            "reconnect.backoff.max.ms=1000",
        ])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(1));
    proxy.cut();
    let out = wait_bounded(child, Duration::from_secs(60));
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("hygroflow: ") && last.contains("of 300 messages were not delivered"),
        "{stderr}"
    );
    let delivered: u64 = stderr
        .split("produced ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    assert!(delivered > 0 && delivered < 300, "{stderr}");

    // Back up: what was reported delivered is there (a message whose acknowledgement was
    // lost in the cut may be there too), and producing works again.
    proxy.restore();
    let stored = consume_all(&proxy.address(), topic, 2).len() as u64;
    assert!(
        stored >= delivered && stored <= 300,
        "{stored} stored, {delivered} delivered"
    );
    let out = common::run(&[
        "produce",
        "-b",
        &proxy.address(),
        "-t",
        topic,
        path.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        consume_all(&proxy.address(), topic, 2).len() as u64,
        stored + 300
    );
}

#[test]
fn produce_names_the_line_of_a_message_too_large_to_send() {
    let broker = Broker::start();
    let topic = "produce-too-large";
    broker.create_topic(topic, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input.jsonl");
    let mut bytes = b"first\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'x', 1_100_000)); // over message.max.bytes (1,000,000)
    bytes.extend_from_slice(b"\nlast\n");
    std::fs::write(&path, &bytes).expect("write input");
    let out = common::run(&[
        "produce",
        "-b",
        &broker.brokers(),
        "-t",
        topic,
        path.to_str().expect("path"),
    ]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("1 of 3 messages were not delivered"),
        "{stderr}"
    );
    assert!(
        last.contains("line 2: ") && last.contains("MessageSizeTooLarge"),
        "{stderr}"
    );
    let payloads: Vec<Vec<u8>> = consume_all(&broker.brokers(), topic, 1)
        .into_iter()
        .filter_map(|r| r.payload)
        .collect();
    assert_eq!(payloads, [b"first".to_vec(), b"last".to_vec()]);
}

#[test]
fn gh_10_bench_with_brokers_times_the_engine_against_a_consume_only_floor() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = common::hygroflow()
        .args([
            "bench",
            "--messages",
            "3000",
            "-w",
            "1,2",
            "--sources",
            "file",
        ])
        .args([
            "--paced-rate",
            "0",
            "--partitions",
            "2",
            "-b",
            &broker.brokers(),
        ])
        .args(["--dir", dir.path().to_str().expect("utf8")])
        .output()
        .expect("bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", stderr_of(&out));
    for workers in [1, 2] {
        // Every message counted by the engine's final report ...
        let row = stdout
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "| kafka, 2 partitions | 3,000 | 2,100 | {workers} |"
                ))
            })
            .unwrap_or_else(|| panic!("a kafka row at {workers} worker(s): {stdout}"));
        assert!(row.ends_with("| yes |"), "{row}");
        // ... and by the floor, which read the same topic to its end.
        let note = format!("floor with {workers} thread(s) (3,000 messages in ");
        assert!(stdout.contains(&note), "{stdout}");
    }
}

/// A TLS-terminating proxy in front of the test broker (Tansu serves plaintext only): Python's
/// `ssl` with a certificate made here by `openssl req`, forwarding each connection to
/// `upstream`. Killed when dropped.
struct TlsProxy {
    child: Child,
    ca: std::path::PathBuf,
}

impl TlsProxy {
    fn start(dir: &Path, port: u16, upstream: &str) -> TlsProxy {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost", "-addext"])
            .arg("subjectAltName=IP:127.0.0.1,DNS:localhost")
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl runs");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let (host, up_port) = upstream.rsplit_once(':').expect("host:port");
        let script = r#"
import asyncio, ssl, sys
cert, key, port, host, up = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()
async def serve(reader, writer):
    try:
        up_reader, up_writer = await asyncio.open_connection(host, up)
    except OSError:
        writer.close()
        return
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", port, ssl=context)
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"#;
        let mut child = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&cert)
            .arg(&key)
            .arg(port.to_string())
            .args([host, up_port])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let mut ready = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready)
            .expect("read");
        assert_eq!(ready.trim(), "ready", "the TLS proxy started");
        TlsProxy { child, ca: cert }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 26 point 7: `-X security.protocol=SSL` failed with "OpenSSL not available at build
/// time". librdkafka is now built with OpenSSL (rdkafka's `ssl-vendored`: built from source,
/// nothing to install): readings produced, read and published over TLS, the broker's
/// certificate checked against a CA file, give the exact result; a client that does not trust
/// the certificate gets nothing through.
#[test]
fn gh_26_produce_and_run_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let broker = broker::Broker::start_advertised(port);
    let proxy = TlsProxy::start(dir.path(), port, &broker.listen_address());
    let brokers = format!("127.0.0.1:{port}");
    let ca = format!("ssl.ca.location={}", proxy.ca.display());
    let tls = ["-X", "security.protocol=SSL", "-X", &ca];
    let with_tls = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(tls);
        let out = common::run(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    with_tls(&[
        "topic",
        "create",
        "-b",
        &brokers,
        "-t",
        "tls",
        "--partitions",
        "2",
    ]);
    let input = dir.path().join("in.jsonl");
    common::generate(&input, 2_000, 5, 0.01);
    let path = input.to_str().expect("utf8");
    with_tls(&["produce", "-b", &brokers, "-t", "tls", path]);
    let out = with_tls(&[
        "run",
        "-b",
        &brokers,
        "-t",
        "tls",
        "--until-end",
        "--format",
        "json",
        "-w",
        "2",
        "--dlq-topic",
        "tls.dlq",
        "--results-topic",
        "tls.results",
    ]);
    let reports = common::json_lines(&out.stdout);
    let last = reports.last().expect("a report");
    let expected = common::recompute(&std::fs::read(&input).expect("read"));
    common::assert_report_matches(last, &expected);
    // Without the CA the broker's certificate is not trusted: the start-up check gives up.
    let untrusted = common::run(&[
        "topic",
        "describe",
        "-b",
        &brokers,
        "-t",
        "tls",
        "-X",
        "security.protocol=SSL",
    ]);
    assert!(!untrusted.status.success());
}

/// Issue 26 point 7: SASL over TLS with SCRAM (what managed Kafka services ask for) is built
/// in: a client with those settings is created and tries to connect, where before it was
/// refused at creation. (The test broker has no SASL: the handshake itself is not tested.)
#[test]
fn gh_26_sasl_ssl_with_scram_is_built_in() {
    let out = common::run(&[
        "topic",
        "describe",
        "-b",
        "127.0.0.1:1",
        "-t",
        "t",
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        "sasl.mechanism=SCRAM-SHA-512",
        "-X",
        "sasl.username=u",
        "-X",
        "sasl.password=secret-password",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        !err.contains("not available at build time") && !err.contains("not supported"),
        "{err}"
    );
    assert!(!err.contains("secret-password"), "{err}");
}
