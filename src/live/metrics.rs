//! `/metrics`: the job's figures in the Prometheus (OpenMetrics) text format, written by the
//! `prometheus-client` crate.
//!
//! Most figures follow the reports (process 0's view of the whole cluster, updated once per
//! reported epoch). Two are counted where they happen, in this process, through
//! [`process_metrics`]: rejected messages by `error_kind` (each worker's dead letters) and
//! checkpoint write times.
//!
//! Device names come from the input, so per-device series are capped at [`MAX_DEVICES`]
//! label values: the first devices seen get series, later ones are only counted in
//! `hygroflow_devices_unexported`. Label values are escaped for the text format here (the
//! crate writes them as given).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use hygroflow_dataflows::alerts::{AlertKind, AlertState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::view::Update;

/// The most devices with series of their own.
pub const MAX_DEVICES: usize = 1_000;

/// `outcome` and, for rejected messages, `error_kind`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `valid`, `rejected` or `late`.
    pub outcome: &'static str,
}

/// `error_kind`, as "Messages and validity" names them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorKind {
    /// The rule the message broke.
    pub error_kind: &'static str,
}

/// A device, its name escaped for the text format.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Device {
    /// The device's name.
    pub device: String,
}

/// An alert kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// `high`, `low`, `rate` or `silent`.
    pub kind: &'static str,
}

/// What this process counts as it happens, whatever reads it.
pub struct ProcessMetrics {
    /// Seconds a worker took to write its checkpoint for an epoch.
    pub checkpoint_write: Histogram,
    /// Unix time of the last `COMMITTED` marker this process wrote (process 0).
    pub checkpoint_last_commit: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Kafka: messages behind the high watermark, per partition this process consumes.
    pub kafka_lag: Family<Partition, Gauge>,
    /// `--alertmanager`: alerts delivered (each URL counts its own).
    pub notifications_sent: Counter,
    /// `--alertmanager`: POSTs that failed.
    pub notifications_failed: Counter,
    /// `--alertmanager`: notifications waiting, over every URL.
    pub notifications_queued: Gauge,
    /// `--alertmanager`: notifications dropped (queue full, or refused with a 4xx).
    pub notifications_dropped: Counter,
    /// `--alertmanager`: Unix time of the last delivery.
    pub notifications_last_success: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// SIGHUP: rules files loaded.
    pub rules_reloads: Counter,
    /// SIGHUP: rules files refused (unreadable or invalid; the old rules stay).
    pub rules_reload_failures: Counter,
}

/// A Kafka partition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Partition {
    /// The topic, escaped for the text format.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

/// Records the consumer lag of `topic`'s `partition`.
pub fn kafka_lag(topic: &str, partition: i32, lag: i64) {
    let label = Partition {
        topic: label_value(topic),
        partition,
    };
    PROCESS.kafka_lag.get_or_create(&label).set(lag);
}

static PROCESS: LazyLock<ProcessMetrics> = LazyLock::new(|| ProcessMetrics {
    checkpoint_write: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
    checkpoint_last_commit: Gauge::default(),
    kafka_lag: Family::default(),
    notifications_sent: Counter::default(),
    notifications_failed: Counter::default(),
    notifications_queued: Gauge::default(),
    notifications_dropped: Counter::default(),
    notifications_last_success: Gauge::default(),
    rules_reloads: Counter::default(),
    rules_reload_failures: Counter::default(),
});

/// This process's counters (the checkpointer and the Kafka statistics add to them).
pub fn process_metrics() -> &'static ProcessMetrics {
    &PROCESS
}

/// Records a checkpoint that took `took` to write.
pub fn checkpoint_written(took: std::time::Duration) {
    PROCESS.checkpoint_write.observe(took.as_secs_f64());
}

/// When process 0 last committed a checkpoint; `None` before its first (or without
/// `--state-dir`).
static LAST_COMMIT: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// Records a `COMMITTED` marker just written.
pub fn checkpoint_committed() {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    PROCESS.checkpoint_last_commit.set(unix);
    if let Ok(mut last) = LAST_COMMIT.lock() {
        *last = Some(std::time::Instant::now());
    }
}

/// How long since the last commit; `None` before the first.
pub fn since_last_commit() -> Option<std::time::Duration> {
    LAST_COMMIT.lock().ok()?.map(|t| t.elapsed())
}

/// The job's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    messages: Family<Outcome, Counter>,
    epochs: Counter,
    latency: Histogram,
    humidity: Family<Device, Gauge<f64, std::sync::atomic::AtomicU64>>,
    sensors: Family<Device, Gauge>,
    silent: Family<Device, Gauge>,
    total_sensors: Gauge,
    unexported: Gauge,
    alerts: Family<Kind, Gauge>,
    exported: HashSet<String>,
    /// Rejected messages by the rule they broke.
    rejected: Family<ErrorKind, Counter>,
    /// The report's figures already added to the counters.
    seen: (i64, i64, i64),
    /// The rejects by kind already added.
    seen_rejected: HashMap<&'static str, i64>,
    /// `--window`: the report's valid count is the window's, not a counter.
    valid_is_counter: bool,
}

impl Metrics {
    /// The registry; `cumulative`: the reports' `total_messages` only grows.
    pub fn new(cumulative: bool) -> Self {
        let mut registry = Registry::default();
        let messages = Family::<Outcome, Counter>::default();
        registry.register(
            "hygroflow_messages",
            "Messages by outcome: valid, rejected or late (cumulative, the reports' figures)",
            messages.clone(),
        );
        let rejected = Family::<ErrorKind, Counter>::default();
        registry.register(
            "hygroflow_rejected_messages",
            "Rejected messages by the rule they broke (error_kind), over every worker and process (the reports' figures)",
            rejected.clone(),
        );
        let epochs = Counter::default();
        registry.register(
            "hygroflow_epochs_reported",
            "Epochs reported",
            epochs.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        registry.register(
            "hygroflow_report_latency_seconds",
            "From the end of an epoch (wall clock) to its report",
            latency.clone(),
        );
        let humidity = Family::<Device, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "hygroflow_device_humidity_percent",
            "Current humidity of a device in % RH, as the live page shows it (at most 1000 devices)",
            humidity.clone(),
        );
        let sensors = Family::<Device, Gauge>::default();
        registry.register(
            "hygroflow_device_sensors",
            "Distinct sensors of a device (at most 1000 devices)",
            sensors.clone(),
        );
        let silent = Family::<Device, Gauge>::default();
        registry.register(
            "hygroflow_device_silent_sensors",
            "Sensors of a device with a silent alert raised (at most 1000 devices)",
            silent.clone(),
        );
        let total_sensors = Gauge::default();
        registry.register(
            "hygroflow_sensors",
            "Distinct sensors",
            total_sensors.clone(),
        );
        let unexported = Gauge::default();
        registry.register(
            "hygroflow_devices_unexported",
            "Devices without series of their own: over the cap of 1000",
            unexported.clone(),
        );
        let alerts = Family::<Kind, Gauge>::default();
        registry.register(
            "hygroflow_alerts_active",
            "Alerts raised now, by kind",
            alerts.clone(),
        );
        registry.register(
            "hygroflow_checkpoint_write_seconds",
            "Time a worker of this process took to write an epoch's checkpoint",
            process_metrics().checkpoint_write.clone(),
        );
        registry.register(
            "hygroflow_checkpoint_last_commit_timestamp_seconds",
            "--state-dir: Unix time of the last committed checkpoint (process 0; its age is time() minus this)",
            process_metrics().checkpoint_last_commit.clone(),
        );
        registry.register(
            "hygroflow_kafka_consumer_lag_messages",
            "Kafka: messages between a partition's high watermark and the consumer group's committed offset, every partition of the input topic (read by process 0 every second)",
            process_metrics().kafka_lag.clone(),
        );
        let process = process_metrics();
        registry.register(
            "hygroflow_alertmanager_sent",
            "--alertmanager: alerts delivered to Alertmanager (each URL counts its own)",
            process.notifications_sent.clone(),
        );
        registry.register(
            "hygroflow_alertmanager_failed",
            "--alertmanager: POSTs to Alertmanager that failed (retried unless refused with a 4xx other than 429)",
            process.notifications_failed.clone(),
        );
        registry.register(
            "hygroflow_alertmanager_queued",
            "--alertmanager: raises and resolves waiting to be delivered, over every URL",
            process.notifications_queued.clone(),
        );
        registry.register(
            "hygroflow_alertmanager_dropped",
            "--alertmanager: notifications dropped: the oldest when a URL's queue of 10000 is full, or refused with a 4xx",
            process.notifications_dropped.clone(),
        );
        registry.register(
            "hygroflow_alertmanager_last_success_timestamp_seconds",
            "--alertmanager: Unix time of the last delivery to Alertmanager",
            process.notifications_last_success.clone(),
        );
        registry.register(
            "hygroflow_rules_reloads",
            "SIGHUP: rules files loaded (they apply once every process of the cluster has them)",
            process.rules_reloads.clone(),
        );
        registry.register(
            "hygroflow_rules_reload_failures",
            "SIGHUP: rules files refused, unreadable or invalid (the rules in force stay; the log says why)",
            process.rules_reload_failures.clone(),
        );
        for outcome in ["valid", "rejected", "late"] {
            if outcome != "valid" || cumulative {
                let _ = messages.get_or_create(&Outcome { outcome });
            }
        }
        for kind in [
            AlertKind::High,
            AlertKind::Low,
            AlertKind::Rate,
            AlertKind::Silent,
        ] {
            let _ = alerts.get_or_create(&Kind { kind: kind.name() });
        }
        Metrics {
            registry,
            messages,
            epochs,
            latency,
            humidity,
            sensors,
            silent,
            total_sensors,
            unexported,
            alerts,
            exported: HashSet::new(),
            rejected,
            seen: (0, 0, 0),
            seen_rejected: HashMap::new(),
            valid_is_counter: cumulative,
        }
    }

    /// Takes in a reported epoch, `latency` seconds after its end, with `values` the devices'
    /// current humidity as the page shows it (empty: leave the devices' gauges as they are).
    pub fn update(&mut self, update: &Update, latency: f64, values: &[(String, Option<f64>)]) {
        self.epochs.inc();
        self.latency.observe(latency.max(0.0));
        let totals = update.totals;
        let add = |outcome: &'static str, seen: &mut i64, now: i64| {
            if now > *seen {
                self.messages
                    .get_or_create(&Outcome { outcome })
                    .inc_by((now - *seen) as u64);
                *seen = now;
            }
        };
        let mut seen = self.seen;
        if self.valid_is_counter {
            add("valid", &mut seen.0, totals.messages);
        }
        add("rejected", &mut seen.1, totals.rejected);
        add("late", &mut seen.2, totals.late);
        self.seen = seen;
        for (error_kind, now) in &update.rejected_by_kind {
            let seen = self.seen_rejected.entry(error_kind).or_insert(0);
            if now > seen {
                self.rejected
                    .get_or_create(&ErrorKind { error_kind })
                    .inc_by((now - *seen) as u64);
                *seen = *now;
            }
        }
        self.total_sensors.set(totals.sensors);
        let mut silent: std::collections::HashMap<&str, i64> = Default::default();
        let mut by_kind: std::collections::HashMap<&'static str, i64> = Default::default();
        for t in update
            .active
            .iter()
            .filter(|t| t.state == AlertState::Raised)
        {
            *by_kind.entry(t.kind.name()).or_default() += 1;
            if t.kind == AlertKind::Silent {
                *silent.entry(t.device.as_str()).or_default() += 1;
            }
        }
        for kind in [
            AlertKind::High,
            AlertKind::Low,
            AlertKind::Rate,
            AlertKind::Silent,
        ] {
            let n = by_kind.get(kind.name()).copied().unwrap_or(0);
            self.alerts
                .get_or_create(&Kind { kind: kind.name() })
                .set(n);
        }
        if values.is_empty() {
            return;
        }
        let mut unexported = 0;
        for (device, value) in values {
            if !self.exported.contains(device) {
                if self.exported.len() >= MAX_DEVICES {
                    unexported += 1;
                    continue;
                }
                self.exported.insert(device.clone());
            }
            let label = Device {
                device: label_value(device),
            };
            match value {
                Some(v) => {
                    self.humidity.get_or_create(&label).set(*v);
                }
                None => {
                    self.humidity.remove(&label);
                }
            }
            let sensors = update.sensors.get(device).copied().unwrap_or(0);
            self.sensors.get_or_create(&label).set(sensors);
            let silent = silent.get(device.as_str()).copied().unwrap_or(0);
            self.silent.get_or_create(&label).set(silent);
        }
        self.unexported.set(unexported);
    }

    /// The exposition, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// A label value escaped for the text format: first as hygroflow prints any name (control and
/// bidirectional characters as visible `\u{..}` escapes, see [`crate::escape`]), so that
/// neither a raw ESC nor a U+202E reaches whoever reads `/metrics` in a terminal; then the
/// text format's own escapes (backslash, double quote; no line feed is left).
pub fn label_value(text: &str) -> String {
    let text = crate::escape::escape(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::view::Totals;

    #[test]
    fn label_values_carry_no_control_or_bidirectional_character() {
        assert_eq!(label_value("MRI1"), "MRI1");
        assert_eq!(label_value("a\"b"), "a\\\"b");
        assert_eq!(
            label_value("x\u{1b}[31my\u{202e}z\n"),
            r"x\\u{1b}[31my\\u{202e}z\\n"
        );
        assert_eq!(label_value(r"back\slash"), r"back\\\\slash");
    }

    #[test]
    fn rejects_by_kind_follow_the_reports_cluster_wide_counts() {
        let mut metrics = Metrics::new(true);
        for by_kind in [vec![("not_json", 3)], vec![("not_json", 5), ("empty", 1)]] {
            let update = Update {
                rejected_by_kind: by_kind,
                ..Update::default()
            };
            metrics.update(&update, 0.1, &[]);
        }
        let text = metrics.encode();
        for line in [
            r#"hygroflow_rejected_messages_total{error_kind="not_json"} 5"#,
            r#"hygroflow_rejected_messages_total{error_kind="empty"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn device_names_cannot_break_the_exposition() {
        let mut metrics = Metrics::new(true);
        let name = "CT1\"} 1\nhygroflow_fake 1\\";
        let update = Update {
            sensors: [(name.to_owned(), 3)].into(),
            totals: Totals {
                messages: 5,
                ..Totals::default()
            },
            ..Update::default()
        };
        metrics.update(&update, 0.1, &[(name.to_owned(), Some(42.5))]);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"hygroflow_device_sensors{device="CT1\"} 1\\nhygroflow_fake 1\\\\"} 3"#
            ),
            "{text}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("hygroflow_fake")),
            "{text}"
        );
        assert!(
            text.contains("hygroflow_messages_total{outcome=\"valid\"} 5"),
            "{text}"
        );
    }

    #[test]
    fn device_series_are_capped() {
        let mut metrics = Metrics::new(true);
        let values: Vec<(String, Option<f64>)> = (0..MAX_DEVICES + 5)
            .map(|i| (format!("X{i}"), Some(1.0)))
            .collect();
        metrics.update(&Update::default(), 0.0, &values);
        let text = metrics.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with("hygroflow_device_humidity_percent{"))
            .count();
        assert_eq!(series, MAX_DEVICES);
        assert!(text.contains("hygroflow_devices_unexported 5"), "{text}");
    }

    #[test]
    fn counters_follow_the_reports_and_never_go_back() {
        let mut metrics = Metrics::new(true);
        for (messages, rejected) in [(10, 1), (25, 3), (25, 3)] {
            let update = Update {
                totals: Totals {
                    messages,
                    rejected,
                    ..Totals::default()
                },
                ..Update::default()
            };
            metrics.update(&update, 0.0, &[]);
        }
        let text = metrics.encode();
        assert!(
            text.contains("hygroflow_messages_total{outcome=\"valid\"} 25"),
            "{text}"
        );
        assert!(
            text.contains("hygroflow_messages_total{outcome=\"rejected\"} 3"),
            "{text}"
        );
        assert!(text.contains("hygroflow_epochs_reported_total 3"), "{text}");
    }
}
