//! A real Kafka-API broker for tests: Tansu with in-memory storage on a free 127.0.0.1 port,
//! killed when the fixture drops. Each test starts its own (Tansu starts in milliseconds)
//! and uses its own topics.
//!
//! [`Broker::start_durable`] keeps topics, records and committed offsets in a SQLite file
//! instead (Tansu's `libsql` feature), so that [`Broker::kill_9`] and [`Broker::restart`] show
//! what a broker crash does to its clients.
//!
//! The tansu binary is found at `$HYGROFLOW_TANSU`, then on `PATH`, then at
//! `~/.cargo/bin/tansu`; `scripts/install-tansu.sh` installs it. The broker's output goes to a
//! log file in the temp directory, kept (and its path printed) when the test panics.

#![allow(dead_code)]

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::common::free_port;

/// How long a starting broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The SQLite file of a durable broker, in its working directory. Tansu 0.6.0 resolves a
/// `sqlite://` URL against its working directory, the absolute form (`sqlite:///tmp/x.db`)
/// included, so the broker runs in the directory that keeps the file.
const SQLITE_URL: &str = "sqlite://tansu.db";

/// A running Tansu broker.
pub struct Broker {
    child: Child,
    port: u16,
    advertised: String,
    log: PathBuf,
    /// Where a durable broker keeps its SQLite file; `None`: in memory.
    durable: Option<PathBuf>,
}

impl Broker {
    /// Starts a broker that advertises the address it listens on.
    pub fn start() -> Broker {
        Broker::launch(None, None)
    }

    /// Starts a broker that tells clients to connect to `127.0.0.1:advertised_port` (a proxy
    /// in front of it) instead of the port it listens on.
    pub fn start_advertised(advertised_port: u16) -> Broker {
        Broker::launch(Some(advertised_port), None)
    }

    /// Starts a broker that keeps its topics, records and committed offsets in a SQLite file in
    /// `dir`, across [`Broker::kill_9`] and [`Broker::restart`]. Needs a tansu built with the
    /// `libsql` feature (`scripts/install-tansu.sh`).
    pub fn start_durable(dir: &Path) -> Broker {
        Broker::launch(None, Some(dir.to_owned()))
    }

    fn launch(advertised_port: Option<u16>, durable: Option<PathBuf>) -> Broker {
        let mut last_failure = String::new();
        // The free port may be taken by someone else before tansu binds it: try a few.
        for _ in 0..3 {
            let port = free_port();
            let advertised = format!("127.0.0.1:{}", advertised_port.unwrap_or(port));
            let log = std::env::temp_dir()
                .join(format!("hygroflow-tansu-{}-{port}.log", std::process::id()));
            File::create(&log).expect("create the broker log");
            let mut broker = Broker {
                child: spawn_tansu(port, &advertised, &log, durable.as_deref()),
                port,
                advertised,
                log,
                durable: durable.clone(),
            };
            match broker.wait_until_listening() {
                Ok(()) => return broker,
                Err(failure) => last_failure = failure,
            }
            // Dropping `broker` kills it and removes its log.
        }
        panic!("the tansu broker did not start: {last_failure}");
    }

    /// Kills the broker with SIGKILL (`kill -9`) and waits until it is gone.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the broker again on the same port and storage (after [`Broker::kill_9`]): a
    /// durable broker comes back with its topics, records and committed offsets. Its log goes
    /// on in the same file.
    pub fn restart(&mut self) {
        self.kill_9();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.child = spawn_tansu(
                self.port,
                &self.advertised,
                &self.log,
                self.durable.as_deref(),
            );
            match self.wait_until_listening() {
                Ok(()) => return,
                // The port may linger for a moment after the kill.
                Err(failure) if Instant::now() > deadline => {
                    panic!("the tansu broker did not start again: {failure}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Waits until the port accepts TCP connections, or describes why not.
    fn wait_until_listening(&mut self) -> Result<(), String> {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self.log_text();
                let hint = if log.contains("FeatureNotEnabled") {
                    "\nthis tansu lacks a storage feature: run scripts/install-tansu.sh"
                } else {
                    ""
                };
                return Err(format!("tansu exited with {status}: {log}{hint}"));
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nothing listening on {address} after {START_TIMEOUT:?}: {}",
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The bootstrap address for clients: the advertised one (the proxy's, when there is one).
    pub fn brokers(&self) -> String {
        self.advertised.clone()
    }

    /// The address the broker itself listens on (what a proxy forwards to).
    pub fn listen_address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port the broker itself listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// What the broker has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Creates `name` with `partitions` partitions through `hygroflow topic create`. It
    /// bootstraps from the broker's own port, but the request then goes to the advertised
    /// address: with `start_advertised`, start the proxy first.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(env!("CARGO_BIN_EXE_hygroflow"))
            .env("RUST_LOG", "warn")
            .args(["topic", "create", "-b", &self.listen_address(), "-t", name])
            .arg("--partitions")
            .arg(partitions.to_string())
            .output()
            .expect("run hygroflow topic create");
        assert!(
            out.status.success(),
            "hygroflow topic create {name} failed: {}\nbroker log {}",
            String::from_utf8_lossy(&out.stderr),
            self.log.display()
        );
    }
}

/// Generated readings produced into a topic (see [`Broker::topic_with_readings`]).
pub struct Readings {
    /// Holds the generated file.
    pub dir: tempfile::TempDir,
    /// The generated JSON lines.
    pub path: PathBuf,
    /// Their bytes.
    pub bytes: Vec<u8>,
}

impl Broker {
    /// Creates `topic` with `partitions` partitions and its dead-letter topic `topic.dlq`,
    /// then produces `count` lines of `hygroflow generate --seed seed --bad-fraction bad` into
    /// it, with `produce_args` added to `hygroflow produce`.
    pub fn topic_with_readings(
        &self,
        topic: &str,
        partitions: u32,
        count: u64,
        seed: u64,
        bad: f64,
        produce_args: &[&str],
    ) -> Readings {
        self.create_topic(topic, partitions);
        self.create_topic(&format!("{topic}.dlq"), 1);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(format!("{topic}.jsonl"));
        let hygroflow = || {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_hygroflow"));
            cmd.env("RUST_LOG", "warn");
            cmd
        };
        let out = hygroflow()
            .args([
                "generate",
                "--count",
                &count.to_string(),
                "--seed",
                &seed.to_string(),
            ])
            .args(["--bad-fraction", &bad.to_string()])
            .output()
            .expect("run hygroflow generate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&path, &out.stdout).expect("write the readings");
        let produced = hygroflow()
            .args(["produce", "-b", &self.brokers(), "-t", topic])
            .arg(&path)
            .args(produce_args)
            .output()
            .expect("run hygroflow produce");
        assert!(
            produced.status.success(),
            "hygroflow produce: {}",
            String::from_utf8_lossy(&produced.stderr)
        );
        Readings {
            dir,
            path,
            bytes: out.stdout,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("tansu broker log kept at {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// One message read back from the broker.
#[derive(Debug)]
pub struct Received {
    /// Its partition.
    pub partition: i32,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// `None` for a null value.
    pub payload: Option<Vec<u8>>,
    /// Its headers, values as lossy UTF-8.
    pub headers: Vec<(String, String)>,
}

impl Received {
    /// The value of header `key`, if it has one.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads partitions 0..`partitions` of `topic` from the start to their end-of-partition events
/// (the true end: Tansu's reported high watermark can be short), in offset order per
/// partition.
pub fn consume_all(brokers: &str, topic: &str, partitions: i32) -> Vec<Received> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut at_end = vec![false; partitions as usize];
    let mut received = Vec::new();
    // A guard against a hang: a durable broker (SQLite) serves only a few thousand messages a
    // second after restarts (250,000 took over a minute).
    let deadline = Instant::now() + Duration::from_secs(300);
    while at_end.iter().any(|e| !e) {
        assert!(
            Instant::now() < deadline,
            "reading {topic} took over 300 s; {} messages so far",
            received.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                at_end[m.partition() as usize] = false;
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let value = h.value.unwrap_or_default();
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(value).into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                received.push(Received {
                    partition: m.partition(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                    headers,
                });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => at_end[p as usize] = true,
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
        }
    }
    received
}

/// Starts tansu on 127.0.0.1:`port`, advertising `advertised`, appending its output to `log`,
/// in memory or (with `durable`) in a SQLite file in that directory.
fn spawn_tansu(port: u16, advertised: &str, log: &Path, durable: Option<&Path>) -> Child {
    let tansu = tansu_binary();
    let out = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .expect("open the broker log");
    let err = out.try_clone().expect("clone the broker log");
    let mut command = Command::new(&tansu);
    command
        .args(["broker", "--storage-engine"])
        .arg(if durable.is_some() {
            SQLITE_URL
        } else {
            "memory://tansu/"
        })
        .arg("--listener-url")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .arg("--advertised-listener-url")
        .arg(format!("tcp://{advertised}"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some(dir) = durable {
        command.current_dir(dir);
    }
    // Settings tansu would otherwise take from the environment.
    for var in ["LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE"] {
        command.env_remove(var);
    }
    command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", tansu.display()))
}

/// The tansu binary: `$HYGROFLOW_TANSU`, then `PATH`, then `~/.cargo/bin/tansu`.
pub fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("HYGROFLOW_TANSU") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "HYGROFLOW_TANSU={} is not a file: run scripts/install-tansu.sh",
            path.display()
        );
        return path;
    }
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("tansu")));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cargo/bin/tansu"));
    }
    candidates
        .into_iter()
        .find(|c| c.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no tansu binary (looked at $HYGROFLOW_TANSU, PATH and ~/.cargo/bin/tansu): \
                 run scripts/install-tansu.sh, or set HYGROFLOW_TANSU to its path"
            )
        })
}

/// A consumer in `group`, for reading or committing a group's offsets.
pub fn group_consumer(brokers: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer")
}

/// The committed offsets of `group` for partitions 0..`partitions` of `topic` (-1: none).
pub fn committed_offsets(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> std::collections::BTreeMap<i32, i64> {
    let consumer = group_consumer(brokers, group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets")
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => (e.partition(), o),
            _ => (e.partition(), -1),
        })
        .collect()
}
