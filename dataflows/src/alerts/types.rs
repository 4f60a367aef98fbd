//! What the alerts computation takes in and gives out: observations, rules, transitions.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::Epoch;

/// A sensor as the alerts name it in their lines: `(device, guid)`.
pub type SensorName = (String, String);

/// What a worker tells the alerts about an epoch (the feed's records), or, at a restart,
/// what the checkpoint remembers of the epochs before the resume point.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Observation {
    /// The sum and count of one device's valid readings in the epoch (this worker's share).
    Readings {
        /// The imaging device.
        device: String,
        /// Sum of humidities in micro-percent.
        sum_micro: i64,
        /// Number of readings.
        count: i64,
    },
    /// Sensors of one device that read in the epoch (one observation per device and epoch
    /// from each worker, so that the feed's size follows devices, not sensors).
    Seen {
        /// The imaging device.
        device: String,
        /// The sensors.
        guids: Vec<String>,
    },
    /// The epoch had at least one message (valid, rejected or late) on the sending worker:
    /// it is *reported*, and alerts are evaluated at it. Sent to every worker.
    Received,
    /// Processing time, after the clock skipped epochs (a stall, or the start): this epoch
    /// and every one after it up to `through` are reported, as if each had its `Received`.
    /// One observation for the run of them, not one per epoch: each epoch of its own would be
    /// a timestamp that every worker's progress tracking hears of from every other (memory and
    /// time in the square of the workers, issue 26 point 1). Sent to every worker.
    ReceivedThrough {
        /// The last epoch of the run.
        through: Epoch,
    },
    /// Restore: one device's readings in an epoch before the resume point.
    PastReadings {
        /// The epoch the readings belonged to.
        epoch: Epoch,
        /// The imaging device.
        device: String,
        /// Sum of humidities in micro-percent.
        sum_micro: i64,
        /// Number of readings.
        count: i64,
    },
    /// Restore: an epoch before the resume point that was reported. Sent to every worker.
    PastReported {
        /// The epoch.
        epoch: Epoch,
    },
    /// Restore: the last epoch a sensor read in, before the resume point.
    LastSeen {
        /// The imaging device.
        device: String,
        /// The sensor.
        guid: String,
        /// The epoch of its last reading.
        epoch: Epoch,
    },
    /// Restore: an alert raised before the resume point and not resolved (its raising line).
    Active(Box<Transition>),
    /// The sending worker's process has loaded the rules with this checksum (a reload). Sent
    /// to every worker; the rules apply from the epoch at which the last worker of the
    /// cluster has said so.
    Rules {
        /// The checksum of the rules, as [`RuleBook`] files them.
        checksum: u32,
    },
}

impl Observation {
    /// The device whose worker handles the observation; `None` for those every worker needs.
    pub fn device(&self) -> Option<&str> {
        match self {
            Observation::Readings { device, .. }
            | Observation::Seen { device, .. }
            | Observation::PastReadings { device, .. }
            | Observation::LastSeen { device, .. } => Some(device),
            Observation::Active(t) => Some(&t.device),
            Observation::Received
            | Observation::ReceivedThrough { .. }
            | Observation::PastReported { .. }
            | Observation::Rules { .. } => None,
        }
    }
}

/// One device's rule as the alerts apply it: limits in micro-percent, spans in epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    /// Below this, a `low` alert.
    pub low: Option<i64>,
    /// Above this, a `high` alert.
    pub high: Option<i64>,
    /// How far back past a limit the value must come to resolve its alert.
    pub hysteresis: i64,
    /// The most change within an hour before a `rate` alert.
    pub rate_per_hour: Option<i64>,
    /// Epochs in the averaging window (at least one).
    pub window: u64,
    /// A sensor is silent once this many epochs passed since its last reading.
    pub silence: u64,
    /// The silence in milliseconds, as alert lines show it.
    pub silence_ms: u64,
    /// A silent sensor is retired once this many epochs passed since its last reading, and
    /// the milliseconds alert lines show (`None`: never).
    pub retire: Option<(u64, u64)>,
}

/// The rules of every device, and the length of an hour in epochs.
#[derive(Clone)]
pub struct AlertRules {
    /// The rule of a device.
    pub rule_for: Arc<dyn Fn(&str) -> DeviceRule + Send + Sync>,
    /// Epochs `t` count towards the rate at `e` while `e - t < hour`: `ceil(3600 s / epoch)`.
    pub hour: u64,
    /// Where rules loaded while running are found (shared by the process's workers).
    pub book: RuleBook,
}

/// The rules a process has loaded while running, by checksum, and the epochs at which its
/// workers switched to them. Shared by the process's workers and its report printer: the
/// workers look rules up when the cluster has agreed on them (see [`Observation::Rules`])
/// and say when they switched; the printer logs each switch once.
#[derive(Clone, Default)]
pub struct RuleBook {
    inner: Arc<Mutex<Book>>,
}

#[derive(Default)]
struct Book {
    rules: HashMap<u32, AlertRules>,
    switches: BTreeSet<(Epoch, u32)>,
}

impl RuleBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        // A worker that panicked holding the lock left a consistent map: use it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Files `rules` under `checksum`, for the workers to switch to.
    pub fn add(&self, checksum: u32, rules: AlertRules) {
        self.lock().rules.insert(checksum, rules);
    }

    /// The rules filed under `checksum`.
    pub fn get(&self, checksum: u32) -> Option<AlertRules> {
        self.lock().rules.get(&checksum).cloned()
    }

    /// Records that the rules `checksum` apply from `epoch` on (every worker says so).
    pub fn switched(&self, epoch: Epoch, checksum: u32) {
        self.lock().switches.insert((epoch, checksum));
    }

    /// The switches at epochs up to `through`, in order, taken out of the book.
    pub fn take_switches(&self, through: Epoch) -> Vec<(Epoch, u32)> {
        let mut book = self.lock();
        let later = book.switches.split_off(&(through.saturating_add(1), 0));
        std::mem::replace(&mut book.switches, later)
            .into_iter()
            .collect()
    }
}

impl std::fmt::Debug for AlertRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertRules")
            .field("hour", &self.hour)
            .finish_non_exhaustive()
    }
}

/// What an alert watches. Ordered as the names sort: high, low, rate, silent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    /// The windowed mean above `high`.
    High,
    /// The windowed mean below `low`.
    Low,
    /// The windowed mean moved more than `rate_per_hour` within the last hour.
    Rate,
    /// A sensor has not read for `silence`.
    Silent,
}

impl AlertKind {
    /// The name in alert lines.
    pub fn name(self) -> &'static str {
        match self {
            AlertKind::High => "high",
            AlertKind::Low => "low",
            AlertKind::Rate => "rate",
            AlertKind::Silent => "silent",
        }
    }
}

/// Why an alert resolved, when not because its condition ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// The rules changed and no longer have its limit.
    Rules,
    /// Its sensor was silent for `retire_after`: it is no longer one of the device's.
    Retired,
}

impl Reason {
    /// The name in alert lines.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Rules => "rules",
            Reason::Retired => "retired",
        }
    }
}

/// Whether a transition raises or resolves its alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertState {
    /// The condition began to hold.
    Raised,
    /// The condition ended.
    Resolved,
}

/// An exact non-negative rational number of micro-percent: `num / den`, `den > 0`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Ratio {
    /// Numerator.
    pub num: i128,
    /// Denominator, positive.
    pub den: i128,
}

impl Ratio {
    /// `sum / count` micro-percent (`count > 0`).
    pub fn mean(sum: i64, count: i64) -> Ratio {
        Ratio {
            num: i128::from(sum),
            den: i128::from(count.max(1)),
        }
    }

    /// `self - other`.
    pub fn minus(self, other: Ratio) -> Ratio {
        Ratio {
            num: self.num * other.den - other.num * self.den,
            den: self.den * other.den,
        }
    }

    /// How `self` compares with `micro` micro-percent, exactly.
    pub fn cmp_micro(self, micro: i64) -> Ordering {
        self.num.cmp(&(i128::from(micro) * self.den))
    }

    /// The value rounded to whole micro-percent (halves away from zero).
    pub fn round_micro(self) -> i128 {
        let twice = 2 * self.num;
        if twice >= 0 {
            (twice + self.den) / (2 * self.den)
        } else {
            -((-twice + self.den) / (2 * self.den))
        }
    }
}

impl PartialEq for Ratio {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ratio {}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.num * other.den).cmp(&(other.num * self.den))
    }
}

impl std::hash::Hash for Ratio {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.round_micro().hash(state);
    }
}

/// The threshold that decided a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Limit {
    /// A humidity or a change of it, in micro-percent.
    Micro(i64),
    /// A silence, in milliseconds.
    Millis(u64),
}

/// One change of an alert's state. Ordered as alert logs sort: by epoch, device, kind, sensor.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Transition {
    /// The first reported epoch at which the condition held.
    pub epoch: Epoch,
    /// The imaging device.
    pub device: String,
    /// What is watched.
    pub kind: AlertKind,
    /// The sensor, for `silent`.
    pub sensor: Option<String>,
    /// Raised or resolved.
    pub state: AlertState,
    /// The windowed mean or the hour's change that decided (`None` for `silent`).
    pub value: Option<Ratio>,
    /// The threshold that decided.
    pub limit: Limit,
    /// Why it resolved, when not because its condition ended (absent in older checkpoints).
    #[serde(default)]
    pub reason: Option<Reason>,
}

impl Transition {
    /// The alert this transition belongs to: `(device, kind, sensor)`.
    pub fn key(&self) -> (&str, AlertKind, Option<&str>) {
        (&self.device, self.kind, self.sensor.as_deref())
    }
}
