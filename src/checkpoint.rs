//! Checkpoints: restartable state with exactly-once results (`--state-dir`).
//!
//! What determines every analysis is small: per device the sum and count of readings, the set
//! of `(device, guid)` sensors (as keys) with the epoch each last read in, the rejected and late
//! counters, and for windows and alerts the per-epoch sums of the recent epochs they still
//! need; the `COMMITTED` marker adds what the report printer had done at its frontier (the
//! alerts raised, the last epoch reported). Each worker keeps them for the records it
//! ingested, and whenever it closes an epoch it writes the table together with the next offset
//! of each of its partitions, before its input moves on. Both describe the same cut: offsets
//! of records that belong to later epochs are not in it.
//!
//! ```text
//! state-dir/
//!   COMMITTED                 generation G, frontier F, workers P  (written last, atomically)
//!   gen-G/w{worker}-e{epoch}.ckpt
//!   gen-G/w{worker}-l{start}.log  per-epoch sums, appended at each checkpoint (`epoch_log`)
//! ```
//!
//! When the dataflow's frontier passes `F`, every worker has closed every epoch before `F`
//! and written its file for it, so the first local worker writes `COMMITTED` naming `F`. A
//! restart loads, for each worker of generation `G`, its newest file with epoch < `F`, feeds
//! the rows back into the dataflow as weighted records, and seeks each partition to the saved
//! offset. A new run writes a new generation and deletes the old one once its own first commit
//! is durable, so files of two runs are never mixed.
//!
//! The per-epoch sums are the one part that grows with the hour that windows and rate alerts
//! look back over, so a checkpoint file does not hold them: it names how far into the
//! worker's append-only epoch log they reach, and each checkpoint appends one epoch's rows.
//!
//! Every file is written to a temporary name, fsynced, renamed over and its directory fsynced,
//! and starts with a header holding a format version, a CRC-32 and the body length. A file
//! with a wrong version, length or checksum is refused with a clear error, and nothing is
//! loaded unless every file loads.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use hygroflow_dataflows::{Epoch, GuidKey, Transition};
use serde::{Deserialize, Serialize};

use crate::kafka::tail::ResumeOffsets;

mod epoch_log;

pub use epoch_log::{EpochLog, EpochRow, LogCut, LogRecord};

/// The on-disk format version this hygroflow writes. It reads every version from
/// [`OLDEST_VERSION`] on, migrating older files as it loads them (see [`Check::migrate`]);
/// files of a newer version are refused with the version named.
pub const FORMAT_VERSION: u32 = 4;
/// The oldest format version read: 1, the first hygroflow's.
pub const OLDEST_VERSION: u32 = 1;
const CHECKPOINT_MAGIC: &str = "hygroflow-checkpoint";
const COMMIT_MAGIC: &str = "hygroflow-commit";
const COMMITTED: &str = "COMMITTED";

/// Why a state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A file is damaged or of another version.
    #[error("refusing checkpoint {path}: {reason}; move the state directory aside to start from the beginning of the topic")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `--state-dir` names something that is not a directory.
    #[error("--state-dir {0} is a file, not a directory")]
    NotADirectory(PathBuf),
    /// The state directory holds something hygroflow did not write.
    #[error("unexpected entry {entry} in --state-dir {dir}: hygroflow keeps only COMMITTED, gen-N/wW-eE.ckpt and gen-N/wW-lE.log there; move it away")]
    Unexpected {
        /// The directory.
        dir: PathBuf,
        /// The entry.
        entry: PathBuf,
    },
    /// The state directory was written with another value of a flag results depend on.
    #[error("state directory {dir} was written with {flag} {was}, this run has {flag} {now}: restart with {flag} {was}, or use another --state-dir")]
    OtherSettings {
        /// The directory.
        dir: PathBuf,
        /// The flag.
        flag: String,
        /// Its value then.
        was: String,
        /// Its value now.
        now: String,
    },
    /// The state directory was written with alerts on and this run has them off, or the
    /// other way round.
    #[error("state directory {dir} was written with --rules {was}, this run has {now}: alerts cannot be turned on or off over a state directory (a changed rules file is fine); restart with alerts as they were, or use another --state-dir")]
    OtherRules {
        /// The directory.
        dir: PathBuf,
        /// The rules then: `none` or a checksum of the resolved rules.
        was: String,
        /// The rules now.
        now: String,
    },
    /// The state directory belongs to another input.
    #[error("state directory {dir} holds the state of {found}, not of {expected}; use another --state-dir")]
    OtherInput {
        /// The directory.
        dir: PathBuf,
        /// The input recorded there.
        found: String,
        /// This run's input.
        expected: String,
    },
}

/// Resume offsets as a file keeps them, in partition order.
fn pairs(offsets: &ResumeOffsets) -> Vec<(i32, i64)> {
    offsets.iter().map(|(p, o)| (*p, *o)).collect()
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |error| CheckpointError::Io {
        path: path.to_owned(),
        error,
    }
}

/// One worker's cumulative state at an epoch boundary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerState {
    /// Next offset to read, per partition.
    pub offsets: BTreeMap<i32, i64>,
    /// Rejected messages so far.
    pub rejected: i64,
    /// Rejected messages so far by `error_kind` (absent in older files: none by kind).
    #[serde(default)]
    pub rejected_as: Vec<(String, i64)>,
    /// Late messages so far.
    pub late: i64,
    /// Messages stamped too far in the future so far (absent in older files: none).
    #[serde(default)]
    pub future: i64,
    /// `(device, sum_micro, count)` of the readings this worker took in.
    pub devices: Vec<(String, i64, i64)>,
    /// Every sensor this worker has seen, by device: its key and the last epoch it read in.
    pub sensors: Vec<KnownSensors>,
    /// `(epoch, device, sum_micro, count)` of the recent epochs that windows and alerts still
    /// need (the longest window, plus an hour for rate alerts). From format 4 on a file keeps
    /// them in the worker's epoch log (`log`) and a load fills them in from there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<EpochRow>,
    /// The recent epochs in which this worker had a message (from format 4 on, in the log).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reported: Vec<Epoch>,
    /// Format 4 on: where in the worker's epoch log `recent` and `reported` are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogCut>,
    /// Event time: `(partition, newest event time in ms)` of each partition this worker read,
    /// so that a restart closes the same epochs (absent in older files: none).
    #[serde(default)]
    pub watermarks: Vec<(i32, i64)>,
    /// Event time: `(epoch, guid, device, humidity_micro)` of the readings already read (their
    /// offsets are in `offsets`) whose epoch had not opened yet (absent in older files: none).
    #[serde(default)]
    pub pending: Vec<(Epoch, String, String, i64)>,
    /// With a dead-letter topic: `(partition, offset)` from which a restart from this file
    /// reads the topic back (`kafka/tail.rs`; absent in older files: from the beginning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters_from: Option<Vec<(i32, i64)>>,
}

/// One device's sensors as a checkpoint stores them: the device's name, each sensor's guid
/// key with the last epoch it read in (24 bytes a sensor, base64 in the file), and with alerts
/// on each sensor's guid, in the same order (alerts name the sensors they watch).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownSensors {
    /// The device.
    pub device: String,
    /// Its sensors, by key, with their last epochs.
    #[serde(with = "packed_sensors")]
    pub sensors: Vec<(GuidKey, Epoch)>,
    /// Their guids, when alerts are on; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guids: Vec<String>,
}

impl KnownSensors {
    /// Each sensor with its guid, if the file has guids.
    pub fn each(&self) -> impl Iterator<Item = (GuidKey, Option<&str>, Epoch)> + '_ {
        self.sensors
            .iter()
            .enumerate()
            .map(|(i, (key, last))| (*key, self.guids.get(i).map(String::as_str), *last))
    }
}

/// `(guid key, epoch)` rows as one base64 string of 24-byte records (key, then epoch, big
/// endian): a third of the size of JSON numbers, and one string to parse.
mod packed_sensors {
    use base64::Engine as _;
    use hygroflow_dataflows::{Epoch, GuidKey, Key};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    const RECORD: usize = 24;

    pub(super) fn serialize<S: Serializer>(
        rows: &[(GuidKey, Epoch)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(rows.len() * RECORD);
        for (key, epoch) in rows {
            bytes.extend_from_slice(&key.to_bytes());
            bytes.extend_from_slice(&epoch.to_be_bytes());
        }
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(GuidKey, Epoch)>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| D::Error::custom(format!("sensor keys: {e}")))?;
        if bytes.len() % RECORD != 0 {
            return Err(D::Error::custom(format!(
                "sensor keys: {} bytes, not a multiple of {RECORD}",
                bytes.len()
            )));
        }
        Ok(bytes
            .chunks_exact(RECORD)
            .map(|record| {
                let mut key = [0; 16];
                let mut epoch = [0; 8];
                key.copy_from_slice(&record[..16]);
                epoch.copy_from_slice(&record[16..]);
                (Key::from_bytes(key), Epoch::from_be_bytes(epoch))
            })
            .collect())
    }
}

/// The flags a state directory's results depend on, as `(flag, value)`: a restart with another
/// value is refused, naming the flag.
pub type Settings = Vec<(String, String)>;

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointBody {
    input: String,
    #[serde(default)]
    settings: Settings,
    generation: u64,
    worker: usize,
    epoch: Epoch,
    state: WorkerState,
}

#[derive(Debug, Serialize, Deserialize)]
struct CommitBody {
    input: String,
    #[serde(default)]
    settings: Settings,
    generation: u64,
    frontier: Epoch,
    workers: usize,
    /// The raising line of every alert still raised at the frontier.
    #[serde(default)]
    alerts: Vec<Transition>,
    /// The last epoch reported before the frontier (absent in older files: unknown).
    #[serde(default)]
    last_reported: Option<Epoch>,
    /// The rules applied at the frontier, `rules#` and a checksum (absent in older files:
    /// those of `settings`).
    #[serde(default)]
    rules: Option<String>,
    /// `--alertmanager`: resolves logged before the frontier and not yet delivered, each
    /// with its raising transition.
    #[serde(default)]
    undelivered: Vec<(Transition, Transition)>,
    /// `--results-topic`: `(partition, offset)` from which a restart reads it back (absent:
    /// from the beginning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    results_from: Option<Vec<(i32, i64)>>,
    /// `--alerts-topic`: the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alerts_from: Option<Vec<(i32, i64)>>,
}

/// What process 0's report printer had done when a frontier was committed; a restart goes on
/// from there.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Printed {
    /// The raising line of every alert still raised at the frontier.
    pub alerts: Vec<Transition>,
    /// The last epoch reported before the frontier: a restart that reports nothing new ends
    /// with this epoch's report again, not with one of the wall clock's epoch.
    pub last_reported: Option<Epoch>,
    /// The rules applied at the frontier (`rules#` and a checksum); `None`: unknown.
    pub rules: Option<String>,
    /// `--alertmanager`: resolves logged before the frontier and not yet delivered, each
    /// with its raising transition (a restart delivers them).
    pub undelivered: Vec<(Transition, Transition)>,
    /// `--results-topic`: where a restart starts reading it back, per partition (`None`, or
    /// a partition left out: from the beginning).
    pub results_from: Option<ResumeOffsets>,
    /// `--alerts-topic`: the same.
    pub alerts_from: Option<ResumeOffsets>,
}

/// Where a run resumes: process 0's `COMMITTED` marker, sent to every worker at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePoint {
    /// The generation (run) whose files hold the state.
    pub generation: u64,
    /// Every worker had checkpointed every epoch before this one.
    pub frontier: Epoch,
    /// How many workers that run had in all.
    pub workers: usize,
}

/// What a worker resumes from: the states of the old workers it takes over.
#[derive(Debug, Default)]
pub struct Restored {
    /// `(old worker index, its state)`.
    pub workers: Vec<(usize, WorkerState)>,
}

impl Restored {
    /// The offset to resume each partition from.
    pub fn offsets(&self) -> BTreeMap<i32, i64> {
        self.workers
            .iter()
            .flat_map(|(_, w)| w.offsets.clone())
            .collect()
    }
}

/// Which old workers' states new worker `index` of `peers` feeds back.
pub fn old_workers_for(
    index: usize,
    peers: usize,
    old_workers: usize,
) -> impl Iterator<Item = usize> {
    (0..old_workers).filter(move |o| o % peers.max(1) == index)
}

/// A state directory for one input (one per process).
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
    input: String,
    settings: Settings,
    /// The warning about a directory without settings is given once.
    warned_unrecorded: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StateDir {
    /// Opens (creating it if needed) the state directory for `input` (e.g. `kafka:topic`).
    pub fn open(dir: &Path, input: &str) -> Result<Self, CheckpointError> {
        if let Some(file) = dir.ancestors().find(|a| a.exists() && !a.is_dir()) {
            return Err(CheckpointError::NotADirectory(file.to_owned()));
        }
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        Ok(StateDir {
            dir: dir.to_owned(),
            input: input.to_owned(),
            settings: Settings::new(),
            warned_unrecorded: Default::default(),
        })
    }

    /// The flags this run's results depend on: files written with others are refused.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    fn generation_dir(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("gen-{generation}"))
    }

    /// The committed restore point, if this directory has one (process 0's does).
    pub fn marker(&self) -> Result<Option<RestorePoint>, CheckpointError> {
        let marker = self.dir.join(COMMITTED);
        if !marker.exists() {
            return Ok(None);
        }
        let commit: CommitBody = read_framed(&marker, COMMIT_MAGIC)?;
        self.check_input(&commit.input)?;
        self.check_settings(&commit.settings)?;
        Ok(Some(RestorePoint {
            generation: commit.generation,
            frontier: commit.frontier,
            workers: commit.workers,
        }))
    }

    /// What the printer had done at the committed frontier (nothing without a marker).
    pub fn marker_printed(&self) -> Result<Printed, CheckpointError> {
        let marker = self.dir.join(COMMITTED);
        if !marker.exists() {
            return Ok(Printed::default());
        }
        let commit: CommitBody = read_framed(&marker, COMMIT_MAGIC)?;
        let setting = commit
            .settings
            .iter()
            .find(|(flag, _)| flag == "--rules")
            .map(|(_, value)| value.clone());
        Ok(Printed {
            alerts: commit.alerts,
            last_reported: commit.last_reported,
            rules: commit.rules.or(setting),
            undelivered: commit.undelivered,
            results_from: commit.results_from.map(|o| o.into_iter().collect()),
            alerts_from: commit.alerts_from.map(|o| o.into_iter().collect()),
        })
    }

    /// The generations here; anything else than `COMMITTED`, `gen-N` directories and the
    /// temporary files of an interrupted write is refused, named.
    fn generations(&self) -> Result<Vec<u64>, CheckpointError> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_error(&self.dir))? {
            let path = entry.map_err(io_error(&self.dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let generation = name
                .strip_prefix("gen-")
                .and_then(|g| g.parse::<u64>().ok())
                .filter(|_| path.is_dir());
            match generation {
                Some(generation) => found.push(generation),
                None if (name == COMMITTED && path.is_file()) || is_temporary(&path) => {}
                None => return Err(self.unexpected(path)),
            }
        }
        Ok(found)
    }

    fn unexpected(&self, entry: PathBuf) -> CheckpointError {
        CheckpointError::Unexpected {
            dir: self.dir.clone(),
            entry,
        }
    }

    /// Checks every checkpoint file here (header, length, checksum, input), so that a damaged
    /// directory is refused before anything is loaded.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        for generation in self.generations()? {
            let dir = self.generation_dir(generation);
            for entry in fs::read_dir(&dir).map_err(io_error(&dir))? {
                let path = entry.map_err(io_error(&dir))?.path();
                if parse_name(&path).is_some() && path.is_file() {
                    let body: CheckpointBody = read_framed(&path, CHECKPOINT_MAGIC)?;
                    self.check_input(&body.input)?;
                    self.check_settings(&body.settings)?;
                } else if epoch_log::parse_log_name(&path).is_some() && path.is_file() {
                    // A log is checked up to the length a checkpoint names, when it loads.
                } else if !is_temporary(&path) {
                    return Err(self.unexpected(path));
                }
            }
        }
        Ok(())
    }

    /// Loads, for each of `old_workers`, its newest checkpoint before `point.frontier`.
    pub fn load(
        &self,
        point: &RestorePoint,
        old_workers: impl Iterator<Item = usize>,
    ) -> Result<Restored, CheckpointError> {
        let gen_dir = self.generation_dir(point.generation);
        let mut files: Vec<(usize, Epoch, PathBuf)> = Vec::new();
        if gen_dir.exists() {
            for entry in fs::read_dir(&gen_dir).map_err(io_error(&gen_dir))? {
                let path = entry.map_err(io_error(&gen_dir))?.path();
                if let Some((worker, epoch)) = parse_name(&path) {
                    files.push((worker, epoch, path));
                }
            }
        }
        let mut restored = Restored::default();
        for worker in old_workers {
            let newest = files
                .iter()
                .filter(|(w, e, _)| *w == worker && *e < point.frontier)
                .max_by_key(|(_, e, _)| *e);
            let Some((_, epoch, path)) = newest else {
                return Err(CheckpointError::Corrupt {
                    path: gen_dir.clone(),
                    reason: format!(
                        "no checkpoint of worker {worker} before epoch {}",
                        point.frontier
                    ),
                });
            };
            let body: CheckpointBody = read_framed(path, CHECKPOINT_MAGIC)?;
            if body.worker != worker || body.epoch != *epoch || body.generation != point.generation
            {
                return Err(CheckpointError::Corrupt {
                    path: path.clone(),
                    reason: "its contents do not match its name".into(),
                });
            }
            self.check_input(&body.input)?;
            let mut state = body.state;
            if let Some(cut) = state.log {
                let log = gen_dir.join(epoch_log::log_name(worker, cut.start));
                let rows = epoch_log::read(&log, &cut)?;
                check_sums(rows.recent.iter().map(|(_, _, sum, count)| (*sum, *count))).map_err(
                    |reason| CheckpointError::Corrupt {
                        path: log.clone(),
                        reason,
                    },
                )?;
                state.recent.extend(rows.recent);
                state.reported.extend(rows.reported);
            }
            for partition in state.offsets.keys() {
                if restored
                    .workers
                    .iter()
                    .any(|(_, w)| w.offsets.contains_key(partition))
                {
                    return Err(CheckpointError::Corrupt {
                        path: path.clone(),
                        reason: format!("partition {partition} has offsets from two workers"),
                    });
                }
            }
            restored.workers.push((worker, state));
        }
        Ok(restored)
    }

    fn check_input(&self, found: &str) -> Result<(), CheckpointError> {
        if found != self.input {
            return Err(CheckpointError::OtherInput {
                dir: self.dir.clone(),
                found: found.to_owned(),
                expected: self.input.clone(),
            });
        }
        Ok(())
    }

    /// Refuses files written with other values of the flags results depend on.
    fn check_settings(&self, found: &Settings) -> Result<(), CheckpointError> {
        if self.settings.is_empty() {
            return Ok(());
        }
        if found.is_empty() {
            // Format version 1 recorded no settings: nothing to check them against (the
            // README says to resume such a directory with the flags it was written with).
            if !self
                .warned_unrecorded
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(
                    dir = %self.dir.display(),
                    "the state directory records no settings (format version 1): resuming with this run's --epoch and --window, which must be those it was written with"
                );
            }
            return Ok(());
        }
        for (flag, value) in &self.settings {
            let was = found.iter().find(|(f, _)| f == flag).map(|(_, v)| v);
            // Written before the flag existed: no lateness was allowed.
            let zero = "0s".to_owned();
            let was = was.or((flag == "--allowed-lateness").then_some(&zero));
            // Other rules are a rules change, taken at the restart; alerts on or off is not.
            let on = |v: &String| v != "none";
            if flag == "--rules" && was.is_some_and(|was| on(was) == on(value)) {
                continue;
            }
            if was != Some(value) && flag == "--rules" {
                return Err(CheckpointError::OtherRules {
                    dir: self.dir.clone(),
                    was: was.cloned().unwrap_or_else(|| "unrecorded".to_owned()),
                    now: value.clone(),
                });
            }
            if was != Some(value) {
                return Err(CheckpointError::OtherSettings {
                    dir: self.dir.clone(),
                    flag: flag.clone(),
                    was: was.cloned().unwrap_or_else(|| "unrecorded".to_owned()),
                    now: value.clone(),
                });
            }
        }
        Ok(())
    }

    /// Creates the directory of generation `generation` (nothing is removed before the new
    /// generation's first commit).
    pub fn start_generation(&self, generation: u64) -> Result<(), CheckpointError> {
        let dir = self.generation_dir(generation);
        if dir.exists() {
            // Debris of a run that crashed before its first commit.
            fs::remove_dir_all(&dir).map_err(io_error(&dir))?;
        }
        fs::create_dir_all(&dir).map_err(io_error(&dir))
    }

    /// Writes one worker's checkpoint for the epoch it just closed.
    pub fn write_worker(
        &self,
        generation: u64,
        worker: usize,
        epoch: Epoch,
        state: WorkerState,
    ) -> Result<(), CheckpointError> {
        let path = self
            .generation_dir(generation)
            .join(format!("w{worker}-e{epoch}.ckpt"));
        let body = CheckpointBody {
            input: self.input.clone(),
            settings: self.settings.clone(),
            generation,
            worker,
            epoch,
            state,
        };
        write_framed(&path, CHECKPOINT_MAGIC, &body)
    }

    /// Starts worker `worker`'s epoch log at the checkpoint of `epoch`, holding `base`, the
    /// rows still needed.
    pub fn create_log(
        &self,
        generation: u64,
        worker: usize,
        epoch: Epoch,
        base: &LogRecord,
    ) -> Result<EpochLog, CheckpointError> {
        EpochLog::create(&self.generation_dir(generation), worker, epoch, base)
    }

    /// Process 0: records that every worker has checkpointed every epoch before
    /// `point.frontier`, and what the printer had done by then.
    pub fn commit(&self, point: &RestorePoint, printed: &Printed) -> Result<(), CheckpointError> {
        let body = CommitBody {
            input: self.input.clone(),
            settings: self.settings.clone(),
            generation: point.generation,
            frontier: point.frontier,
            workers: point.workers,
            alerts: printed.alerts.clone(),
            last_reported: printed.last_reported,
            rules: printed.rules.clone(),
            undelivered: printed.undelivered.clone(),
            results_from: printed.results_from.as_ref().map(pairs),
            alerts_from: printed.alerts_from.as_ref().map(pairs),
        };
        write_framed(&self.dir.join(COMMITTED), COMMIT_MAGIC, &body)
    }

    /// Every process, once process 0 has committed `point`: removes other generations and
    /// each worker's files older than its newest one before the frontier.
    pub fn cleanup(&self, point: &RestorePoint) -> Result<(), CheckpointError> {
        for generation in self.generations()? {
            if generation != point.generation {
                let dir = self.generation_dir(generation);
                fs::remove_dir_all(&dir).map_err(io_error(&dir))?;
            }
        }
        let dir = self.generation_dir(point.generation);
        let mut files: Vec<(usize, Epoch, PathBuf)> = Vec::new();
        let mut logs: Vec<(usize, Epoch, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_error(&dir))? {
            let path = entry.map_err(io_error(&dir))?.path();
            if let Some((w, e)) = parse_name(&path) {
                files.push((w, e, path));
            } else if let Some((w, e)) = epoch_log::parse_log_name(&path) {
                logs.push((w, e, path));
            }
        }
        let workers: std::collections::BTreeSet<usize> = files.iter().map(|(w, _, _)| *w).collect();
        for worker in workers {
            let keep = files
                .iter()
                .filter(|(w, e, _)| *w == worker && *e < point.frontier)
                .map(|(_, e, _)| *e)
                .max();
            let Some(keep) = keep else {
                continue;
            };
            // The checkpoint kept names the newest log started at or before it; the files
            // before it, and the logs before that one, no restart loads again.
            let log = logs
                .iter()
                .filter(|(w, e, _)| *w == worker && *e <= keep)
                .map(|(_, e, _)| *e)
                .max();
            let old_files = files.iter().filter(|(w, e, _)| *w == worker && *e < keep);
            let old_logs = logs
                .iter()
                .filter(|(w, e, _)| *w == worker && log.is_some_and(|log| *e < log));
            for (_, _, path) in old_files.chain(old_logs) {
                // Already gone is fine: pruning is only housekeeping.
                let _ = fs::remove_file(path);
            }
        }
        Ok(())
    }
}

/// What an interrupted atomic write leaves behind (`write_framed`'s temporary file).
fn is_temporary(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "tmp") && path.is_file()
}

/// `w3-e17.ckpt` -> (3, 17).
fn parse_name(path: &Path) -> Option<(usize, Epoch)> {
    let name = path.file_name()?.to_str()?.strip_suffix(".ckpt")?;
    let (w, e) = name.strip_prefix('w')?.split_once("-e")?;
    Some((w.parse().ok()?, e.parse().ok()?))
}

/// Writes `magic version crc len\n` + JSON body, atomically.
fn write_framed<T: Serialize>(path: &Path, magic: &str, body: &T) -> Result<(), CheckpointError> {
    let json = serde_json::to_vec(body).map_err(|e| CheckpointError::Io {
        path: path.to_owned(),
        error: e.into(),
    })?;
    let header = format!(
        "{magic} {FORMAT_VERSION} {:08x} {}\n",
        crc32fast::hash(&json),
        json.len()
    );
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
    file.write_all(header.as_bytes()).map_err(io_error(&tmp))?;
    let (head, tail) = json.split_at(json.len() / 2);
    file.write_all(head).map_err(io_error(&tmp))?;
    crate::fault::point(if magic == COMMIT_MAGIC {
        "marker-write"
    } else {
        "checkpoint-write"
    });
    file.write_all(tail).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error(path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// Reads and verifies a file written by [`write_framed`].
fn read_framed<T: for<'de> Deserialize<'de> + Check>(
    path: &Path,
    magic: &str,
) -> Result<T, CheckpointError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    decode_framed(&bytes, magic).map_err(|reason| CheckpointError::Corrupt {
        path: path.to_owned(),
        reason,
    })
}

/// Verifies and decodes the bytes of a file written by [`write_framed`]; the error says what
/// is wrong with them.
fn decode_framed<T: for<'de> Deserialize<'de> + Check>(
    bytes: &[u8],
    magic: &str,
) -> Result<T, String> {
    let newline = memchr::memchr(b'\n', bytes).ok_or("no header line")?;
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| "header is not text")?;
    let fields: Vec<&str> = header.split(' ').collect();
    let [found_magic, version, crc, len] = fields[..] else {
        return Err(format!("bad header {header:?}"));
    };
    if found_magic != magic {
        return Err(format!("not a {magic} file"));
    }
    let version = match version.parse::<u32>() {
        Ok(v) if (OLDEST_VERSION..=FORMAT_VERSION).contains(&v) => v,
        Ok(v) if v > FORMAT_VERSION => {
            return Err(format!(
                "format version {v}, written by a newer hygroflow; this one reads versions {OLDEST_VERSION} to {FORMAT_VERSION}: run the newer hygroflow, or use another --state-dir"
            ))
        }
        _ => {
            return Err(format!(
                "format version {version}, this hygroflow reads versions {OLDEST_VERSION} to {FORMAT_VERSION}"
            ))
        }
    };
    let body = &bytes[newline + 1..];
    if len.parse::<usize>().ok() != Some(body.len()) {
        return Err(format!(
            "length {} does not match the header's {len} (truncated?)",
            body.len()
        ));
    }
    if u32::from_str_radix(crc, 16).ok() != Some(crc32fast::hash(body)) {
        return Err("checksum mismatch".into());
    }
    decode_body(body, version)
}

/// The JSON body of a checkpoint file or marker of format `version`, past its header,
/// migrated to this version and checked.
fn decode_body<T: for<'de> Deserialize<'de> + Check>(
    body: &[u8],
    version: u32,
) -> Result<T, String> {
    let unreadable = |e: serde_json::Error| format!("unreadable contents: {e}");
    let body: T = if version == FORMAT_VERSION {
        serde_json::from_slice(body).map_err(unreadable)?
    } else {
        let old: serde_json::Value = serde_json::from_slice(body).map_err(unreadable)?;
        let migrated = T::migrate(version, old)
            .map_err(|e| format!("format version {version} cannot be migrated: {e}"))?;
        serde_json::from_value(migrated).map_err(unreadable)?
    };
    body.check()?;
    Ok(body)
}

/// What a decoded file must hold beyond the shape of its JSON: values a restart could not
/// use are refused here, with the rest of a damaged file, rather than met in the dataflow.
trait Check {
    /// Why the file cannot be used, if it cannot.
    fn check(&self) -> Result<(), String>;

    /// The body of a file of an older format `version`, as this version writes it. Fields
    /// added since have defaults; only a field whose shape changed needs more.
    fn migrate(version: u32, body: serde_json::Value) -> Result<serde_json::Value, String> {
        let _ = version;
        Ok(body)
    }
}

/// Versions 1 and 2 kept each sensor as `(device, guid)` (1) or `(device, guid, last
/// epoch)` (2); version 3 keeps a device's sensors together, by 128-bit key. A sensor of a
/// version 1 file, which had no last epoch (it had no alerts), counts as last seen at the
/// checkpoint's epoch.
fn migrate_sensors(version: u32, body: &mut serde_json::Value) -> Result<(), String> {
    let epoch = body["epoch"].as_u64().ok_or("no epoch")?;
    let Some(rows) = body.pointer_mut("/state/sensors") else {
        return Err("no state.sensors".into());
    };
    let rows: Vec<(String, String, Epoch)> = match version {
        1 => serde_json::from_value::<Vec<(String, String)>>(rows.take())
            .map_err(|e| format!("state.sensors: {e}"))?
            .into_iter()
            .map(|(device, guid)| (device, guid, epoch))
            .collect(),
        _ => serde_json::from_value(rows.take()).map_err(|e| format!("state.sensors: {e}"))?,
    };
    let mut by_device: Vec<KnownSensors> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (device, guid, last) in rows {
        let i = *index.entry(device.clone()).or_insert_with(|| {
            by_device.push(KnownSensors {
                device,
                ..KnownSensors::default()
            });
            by_device.len() - 1
        });
        by_device[i]
            .sensors
            .push((hygroflow_dataflows::Key::of(&guid), last));
        by_device[i].guids.push(guid);
    }
    *rows_slot(body)? = serde_json::to_value(by_device).map_err(|e| e.to_string())?;
    Ok(())
}

fn rows_slot(body: &mut serde_json::Value) -> Result<&mut serde_json::Value, String> {
    body.pointer_mut("/state/sensors")
        .ok_or_else(|| "no state.sensors".to_owned())
}

impl Check for CheckpointBody {
    fn migrate(version: u32, mut body: serde_json::Value) -> Result<serde_json::Value, String> {
        if version < 3 {
            migrate_sensors(version, &mut body)?;
        }
        Ok(body)
    }

    /// Counts are never negative, offsets neither, and a device's sum is that of `count`
    /// readings of 0 to 100 % RH: a restart would otherwise feed the analyses totals no input
    /// can produce (negative messages, averages above 100 %).
    fn check(&self) -> Result<(), String> {
        let state = &self.state;
        let counts = [
            ("rejected", state.rejected),
            ("late", state.late),
            ("future", state.future),
        ];
        let by_kind = state
            .rejected_as
            .iter()
            .map(|(_, n)| ("rejected by kind", *n));
        if let Some((what, n)) = counts.into_iter().chain(by_kind).find(|(_, n)| *n < 0) {
            return Err(format!("a negative count of {what} messages ({n})"));
        }
        if let Some((partition, offset)) = state.offsets.iter().find(|(_, o)| **o < 0) {
            return Err(format!(
                "a negative offset ({offset}) of partition {partition}"
            ));
        }
        check_resume_offsets("dead letters", state.dead_letters_from.as_deref())?;
        let sums = state.devices.iter().map(|(_, sum, count)| (*sum, *count));
        let recent = state.recent.iter().map(|(_, _, sum, count)| (*sum, *count));
        let pending = state.pending.iter().map(|(.., humidity)| (*humidity, 1));
        check_sums(sums.chain(recent).chain(pending))
    }
}

/// Refuses `(sum_micro, count)` pairs that no readings of 0 to 100 % RH add up to.
fn check_sums(sums: impl Iterator<Item = (i64, i64)>) -> Result<(), String> {
    let max_micro = i128::from(hygroflow_dataflows::MICROS_PER_PERCENT) * 100;
    for (sum, count) in sums {
        if count < 0 || sum < 0 || i128::from(sum) > i128::from(count) * max_micro {
            return Err(format!(
                "device sums ({sum} micro-percent over {count} readings) that no readings \
                 of 0 to 100 % RH add up to"
            ));
        }
    }
    Ok(())
}

/// Resume offsets of an output topic are never negative.
fn check_resume_offsets(topic: &str, offsets: Option<&[(i32, i64)]>) -> Result<(), String> {
    match offsets.unwrap_or_default().iter().find(|(_, o)| *o < 0) {
        Some((partition, offset)) => Err(format!(
            "a negative resume offset ({offset}) of partition {partition} of the {topic} topic"
        )),
        None => Ok(()),
    }
}

impl Check for CommitBody {
    /// A raised alert's value is a humidity, or a change of one, as an exact fraction of
    /// counts of readings: a zero denominator would divide by zero when the restarted
    /// dataflow hashes the alert (gh-12, found while writing the checkpoint fuzz target). The
    /// denominator must be 1 to 2^63 - 1 and the value within ±100 % RH.
    fn check(&self) -> Result<(), String> {
        check_resume_offsets("results", self.results_from.as_deref())?;
        check_resume_offsets("alerts", self.alerts_from.as_deref())?;
        let percent = i128::from(hygroflow_dataflows::MICROS_PER_PERCENT) * 100;
        for alert in &self.alerts {
            let Some(value) = alert.value else {
                continue;
            };
            let den_ok = (1..=i128::from(i64::MAX)).contains(&value.den);
            if !den_ok || value.num.unsigned_abs() > (value.den * percent).unsigned_abs() {
                return Err(format!(
                    "an alert's value {}/{} is not a humidity (denominator 1 to 2^63 - 1, \
                     at most 100 % RH)",
                    value.num, value.den
                ));
            }
        }
        Ok(())
    }
}

/// Decodes untrusted `bytes` as every kind of file a state directory holds, both as a whole
/// file (header and body) and as a body alone, so that a fuzzer gets past the checksum; then
/// walks what decoded as a restart would. Never panics: the entry of `crate::fuzzing`.
pub(crate) fn decode_untrusted(bytes: &[u8]) {
    let checkpoints = [
        decode_framed::<CheckpointBody>(bytes, CHECKPOINT_MAGIC),
        decode_body::<CheckpointBody>(bytes, FORMAT_VERSION),
    ];
    let whole = LogCut {
        start: 0,
        length: bytes.len() as u64,
        first: 0,
    };
    if let Ok(rows) = epoch_log::decode(bytes, &whole) {
        let _ = check_sums(rows.recent.iter().map(|(_, _, sum, count)| (*sum, *count)));
    }
    for body in checkpoints.into_iter().flatten() {
        let restored = Restored {
            workers: vec![(body.worker, body.state)],
        };
        let _ = restored.offsets();
        for known in restored.workers.iter().flat_map(|(_, w)| &w.sensors) {
            let _ = known.each().count();
        }
    }
    let commits = [
        decode_framed::<CommitBody>(bytes, COMMIT_MAGIC),
        decode_body::<CommitBody>(bytes, FORMAT_VERSION),
    ];
    for commit in commits.into_iter().flatten() {
        // A restart feeds the alerts still raised into the dataflow, which hashes them.
        for alert in &commit.alerts {
            let mut hasher = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(alert, &mut hasher);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(rows: &[(&str, &str, i64, i64)], offsets: &[(i32, i64)]) -> WorkerState {
        WorkerState {
            offsets: offsets.iter().copied().collect(),
            rejected: 1,
            late: 0,
            future: 0,
            devices: rows
                .iter()
                .map(|(d, _, s, c)| (d.to_string(), *s, *c))
                .collect(),
            sensors: rows
                .iter()
                .map(|(d, g, _, _)| KnownSensors {
                    device: d.to_string(),
                    sensors: vec![(hygroflow_dataflows::Key::of(g), 0)],
                    guids: vec![g.to_string()],
                })
                .collect(),
            ..WorkerState::default()
        }
    }

    /// A file of format `version` holding `body`, framed as that version wrote it.
    fn framed(magic: &str, version: u32, body: &str) -> Vec<u8> {
        let header = format!(
            "{magic} {version} {:08x} {}\n",
            crc32fast::hash(body.as_bytes()),
            body.len()
        );
        [header.as_bytes(), body.as_bytes()].concat()
    }

    #[test]
    fn files_of_format_versions_1_and_2_are_migrated_and_newer_ones_refused() {
        let v2 = r#"{"input":"kafka:t","settings":[],"generation":0,"worker":0,"epoch":40,"state":{"offsets":{"0":7},"rejected":1,"late":0,"devices":[["CT1",90000000,2]],"sensors":[["CT1","a",38],["MRI1","c",39],["CT1","b",12]],"recent":[],"reported":[]}}"#;
        let body: CheckpointBody =
            decode_framed(&framed(CHECKPOINT_MAGIC, 2, v2), CHECKPOINT_MAGIC).expect("migrates");
        let sensors = &body.state.sensors;
        assert_eq!(sensors.len(), 2, "{sensors:?}");
        assert_eq!(sensors[0].device, "CT1");
        assert_eq!(sensors[0].guids, ["a", "b"]);
        assert_eq!(
            sensors[0].sensors,
            [
                (hygroflow_dataflows::Key::of("a"), 38),
                (hygroflow_dataflows::Key::of("b"), 12)
            ]
        );
        assert_eq!(body.state.offsets, BTreeMap::from([(0, 7)]));
        // Version 1: no last epochs, taken as the checkpoint's.
        let v1 = r#"{"input":"kafka:t","generation":0,"worker":0,"epoch":40,"state":{"offsets":{"0":7},"rejected":1,"late":0,"devices":[["CT1",90000000,2]],"sensors":[["CT1","a"]]}}"#;
        let body: CheckpointBody =
            decode_framed(&framed(CHECKPOINT_MAGIC, 1, v1), CHECKPOINT_MAGIC).expect("migrates");
        assert_eq!(body.state.sensors[0].sensors[0].1, 40);
        // A marker of version 2 reads as it is.
        let commit = r#"{"input":"kafka:t","settings":[],"generation":0,"frontier":41,"workers":1,"alerts":[],"last_reported":40}"#;
        let commit: CommitBody =
            decode_framed(&framed(COMMIT_MAGIC, 2, commit), COMMIT_MAGIC).expect("reads");
        assert_eq!(commit.frontier, 41);
        // Newer: refused, naming the version; damaged old files too.
        let newer =
            decode_framed::<CheckpointBody>(&framed(CHECKPOINT_MAGIC, 5, v2), CHECKPOINT_MAGIC)
                .expect_err("newer");
        assert!(
            newer.contains("format version 5, written by a newer hygroflow"),
            "{newer}"
        );
        let bad = v2.replace(r#"["CT1","a",38]"#, r#"["CT1",38]"#);
        let bad =
            decode_framed::<CheckpointBody>(&framed(CHECKPOINT_MAGIC, 2, &bad), CHECKPOINT_MAGIC)
                .expect_err("bad");
        assert!(bad.contains("format version 2 cannot be migrated"), "{bad}");
        let zero =
            decode_framed::<CheckpointBody>(&framed(CHECKPOINT_MAGIC, 0, v2), CHECKPOINT_MAGIC)
                .expect_err("zero");
        assert!(zero.contains("reads versions 1 to 4"), "{zero}");
    }

    fn point(generation: u64, frontier: Epoch, workers: usize) -> RestorePoint {
        RestorePoint {
            generation,
            frontier,
            workers,
        }
    }

    #[test]
    fn restores_each_workers_newest_file_before_the_frontier() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sd = StateDir::open(dir.path(), "kafka:t").expect("open");
        assert!(sd.marker().expect("empty").is_none());
        sd.start_generation(0).expect("gen");
        sd.write_worker(0, 0, 10, state(&[("CT1", "a", 5, 1)], &[(0, 3)]))
            .expect("w0");
        sd.write_worker(0, 1, 10, state(&[("CT1", "b", 7, 1)], &[(1, 4)]))
            .expect("w1");
        sd.write_worker(0, 0, 12, state(&[("CT1", "a", 9, 2)], &[(0, 6)]))
            .expect("w0 later");
        let printed = Printed {
            alerts: Vec::new(),
            last_reported: Some(10),
            ..Printed::default()
        };
        sd.commit(&point(0, 11, 2), &printed).expect("commit");
        let p = sd.marker().expect("marker").expect("some");
        assert_eq!(p, point(0, 11, 2));
        assert_eq!(sd.marker_printed().expect("printed"), printed);
        let restored = sd.load(&p, 0..2).expect("load");
        assert_eq!(
            restored.workers[0].1.offsets,
            BTreeMap::from([(0, 3)]),
            "epoch 12 is past the frontier"
        );
        assert_eq!(restored.offsets(), BTreeMap::from([(0, 3), (1, 4)]));
        // With one new worker it takes both old workers; with three, worker 2 takes none.
        assert_eq!(old_workers_for(0, 1, 2).count(), 2);
        assert_eq!(old_workers_for(2, 3, 2).count(), 0);
        // Cleaning up after a later commit prunes files no restart can need.
        sd.write_worker(0, 1, 12, state(&[("CT1", "b", 7, 1)], &[(1, 4)]))
            .expect("w1 later");
        sd.commit(&point(0, 13, 2), &Printed::default())
            .expect("commit");
        sd.cleanup(&point(0, 13, 2)).expect("cleanup");
        let files = fs::read_dir(dir.path().join("gen-0")).expect("dir").count();
        assert_eq!(files, 2);
        let restored = sd.load(&point(0, 13, 2), 0..2).expect("load");
        assert_eq!(restored.workers[0].1.devices, vec![("CT1".into(), 9, 2)]);
    }

    #[test]
    fn per_epoch_sums_load_from_the_epoch_log_and_logs_no_restart_needs_are_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sd = StateDir::open(dir.path(), "kafka:t").expect("open");
        sd.start_generation(0).expect("gen");
        let rows = |epochs: std::ops::Range<Epoch>| LogRecord {
            recent: epochs.clone().map(|e| (e, "CT1".into(), 5, 1)).collect(),
            reported: epochs.collect(),
        };
        let with_log = |cut: LogCut| WorkerState {
            log: Some(cut),
            ..state(&[("CT1", "a", 5, 1)], &[(0, 3)])
        };
        let mut log = sd.create_log(0, 0, 10, &rows(5..10)).expect("log");
        log.append(&rows(10..11)).expect("append");
        sd.write_worker(0, 0, 10, with_log(log.cut(6))).expect("w0");
        // A compaction at epoch 11 starts a new log; epoch 10's checkpoint keeps the old one.
        let mut log = sd.create_log(0, 0, 11, &rows(7..11)).expect("new log");
        log.append(&rows(11..12)).expect("append");
        sd.write_worker(0, 0, 11, with_log(log.cut(7)))
            .expect("w0 later");
        sd.commit(&point(0, 11, 1), &Printed::default())
            .expect("commit");
        sd.cleanup(&point(0, 11, 1)).expect("cleanup");
        let state = sd.load(&point(0, 11, 1), 0..1).expect("load");
        assert_eq!(state.workers[0].1.recent, rows(6..11).recent);
        assert_eq!(state.workers[0].1.reported, rows(6..11).reported);
        assert!(dir.path().join("gen-0/w0-l10.log").exists());
        sd.commit(&point(0, 12, 1), &Printed::default())
            .expect("commit");
        sd.cleanup(&point(0, 12, 1)).expect("cleanup");
        assert!(!dir.path().join("gen-0/w0-l10.log").exists());
        let state = sd.load(&point(0, 12, 1), 0..1).expect("load");
        assert_eq!(state.workers[0].1.recent, rows(7..12).recent);
        sd.validate().expect("a log is no stranger");
        // A log shorter than its checkpoint says is refused, named.
        let path = dir.path().join("gen-0/w0-l11.log");
        let bytes = fs::read(&path).expect("read");
        fs::write(&path, &bytes[..bytes.len() - 1]).expect("truncate");
        let e = sd.load(&point(0, 12, 1), 0..1).expect_err("truncated");
        assert!(e.to_string().contains("w0-l11.log"), "{e}");
        assert!(e.to_string().contains("truncated"), "{e}");
        fs::remove_file(&path).expect("rm");
        let e = sd.load(&point(0, 12, 1), 0..1).expect_err("missing");
        assert!(e.to_string().contains("w0-l11.log"), "{e}");
    }

    #[test]
    fn a_new_generation_replaces_the_old_one_only_once_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sd = StateDir::open(dir.path(), "kafka:t").expect("open");
        sd.start_generation(0).expect("gen");
        sd.write_worker(0, 0, 1, state(&[], &[(0, 1)])).expect("w");
        sd.commit(&point(0, 2, 1), &Printed::default())
            .expect("commit");
        sd.start_generation(1).expect("gen 1");
        sd.write_worker(1, 0, 0, state(&[], &[(0, 9)])).expect("w");
        // Crash here: generation 0 is still what loads.
        let p = sd.marker().expect("marker").expect("some");
        assert_eq!(sd.load(&p, 0..1).expect("load").offsets()[&0], 1);
        sd.commit(&point(1, 1, 1), &Printed::default())
            .expect("commit");
        sd.cleanup(&point(1, 1, 1)).expect("cleanup");
        let p = sd.marker().expect("marker").expect("some");
        assert_eq!(sd.load(&p, 0..1).expect("load").offsets()[&0], 9);
        assert!(!dir.path().join("gen-0").exists());
    }

    #[test]
    fn gh_8_a_state_dir_that_is_a_file_or_holds_strangers_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("state");
        fs::write(&file, b"x").expect("write");
        let e = StateDir::open(&file, "kafka:t").expect_err("a file");
        assert_eq!(
            e.to_string(),
            format!("--state-dir {} is a file, not a directory", file.display())
        );
        let e = StateDir::open(&file.join("below"), "kafka:t").expect_err("below a file");
        assert!(e.to_string().contains("is a file, not a directory"), "{e}");

        let sd = StateDir::open(&dir.path().join("ok"), "kafka:t").expect("open");
        sd.start_generation(0).expect("gen");
        sd.write_worker(0, 0, 1, state(&[("CT1", "a", 5, 1)], &[(0, 1)]))
            .expect("w");
        sd.validate().expect("clean");
        let stray = dir.path().join("ok").join("gen-0").join("notes.txt");
        fs::write(&stray, b"x").expect("write");
        let e = sd.validate().expect_err("a stray file");
        assert!(e.to_string().contains("notes.txt"), "{e}");
        fs::remove_file(&stray).expect("remove");
        let stray = dir.path().join("ok").join("gen-7");
        fs::write(&stray, b"not a directory").expect("write");
        let e = sd.validate().expect_err("a file named like a generation");
        assert!(e.to_string().contains("gen-7"), "{e}");
    }

    #[test]
    fn gh_12_a_marker_with_an_alert_value_a_restart_cannot_hash_is_refused() {
        use hygroflow_dataflows::alerts::{AlertKind, AlertState, Limit, Ratio};
        let dir = tempfile::tempdir().expect("tempdir");
        let sd = StateDir::open(dir.path(), "kafka:t").expect("open");
        let alert = |num, den| Transition {
            epoch: 1,
            device: "CT1".into(),
            kind: AlertKind::High,
            sensor: None,
            state: AlertState::Raised,
            value: Some(Ratio { num, den }),
            limit: Limit::Micro(60_000_000),
            reason: None,
        };
        let printed = |alerts| Printed {
            alerts,
            last_reported: Some(1),
            ..Printed::default()
        };
        let good = printed(vec![alert(6_500_000_000, 97), alert(-5_000_001, 1)]);
        sd.commit(&point(0, 2, 1), &good).expect("commit");
        assert_eq!(sd.marker_printed().expect("a humidity"), good);
        // A zero denominator once divided by zero in the restarted dataflow.
        for (num, den) in [(1, 0), (1, -3), (10_000_000_001, 100), (1, 1 << 64)] {
            sd.commit(&point(0, 2, 1), &printed(vec![alert(num, den)]))
                .expect("commit");
            let e = sd.marker_printed().expect_err("not a humidity");
            assert!(e.to_string().contains("is not a humidity"), "{e}");
            assert!(matches!(sd.marker(), Err(CheckpointError::Corrupt { .. })));
        }
    }

    #[test]
    fn impossible_counts_are_refused() {
        let bad = [
            WorkerState {
                rejected: -1,
                ..state(&[], &[])
            },
            WorkerState {
                rejected_as: vec![("bad_json".into(), -2)],
                ..state(&[], &[])
            },
            state(&[], &[(0, -5)]),
            state(&[("CT1", "a", -5, 1)], &[]),
            state(&[("CT1", "a", 5, -1)], &[]),
            state(&[("CT1", "a", 100_000_001, 1)], &[]),
            WorkerState {
                recent: vec![(3, "CT1".into(), 7, -1)],
                ..state(&[], &[])
            },
            WorkerState {
                pending: vec![(3, "g".into(), "CT1".into(), -7)],
                ..state(&[], &[])
            },
        ];
        for (i, worker_state) in bad.into_iter().enumerate() {
            let dir = tempfile::tempdir().expect("tempdir");
            let sd = StateDir::open(dir.path(), "kafka:t").expect("open");
            sd.start_generation(0).expect("gen");
            sd.write_worker(0, 0, 1, worker_state).expect("written");
            sd.commit(&point(0, 2, 1), &Printed::default())
                .expect("commit");
            let e = sd.validate().expect_err("refused");
            assert!(matches!(e, CheckpointError::Corrupt { .. }), "{i}: {e}");
        }
        // Sums at the limits are fine: 100 % RH, and nothing read.
        let dir = tempfile::tempdir().expect("tempdir");
        let sd = StateDir::open(dir.path(), "kafka:t").expect("open");
        sd.start_generation(0).expect("gen");
        let edge = state(
            &[("CT1", "a", 100_000_000, 1), ("CT2", "b", 0, 0)],
            &[(0, 0)],
        );
        sd.write_worker(0, 0, 1, edge).expect("written");
        sd.commit(&point(0, 2, 1), &Printed::default())
            .expect("commit");
        assert!(sd.validate().is_ok());
    }

    #[test]
    fn damaged_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sd = StateDir::open(dir.path(), "kafka:t").expect("open");
        sd.start_generation(0).expect("gen");
        sd.write_worker(0, 0, 1, state(&[("CT1", "a", 5, 1)], &[(0, 1)]))
            .expect("w");
        sd.commit(&point(0, 2, 1), &Printed::default())
            .expect("commit");
        let file = dir.path().join("gen-0").join("w0-e1.ckpt");
        let good = fs::read(&file).expect("read");

        let mut flipped = good.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        fs::write(&file, &flipped).expect("write");
        let e = sd.validate().expect_err("checksum");
        assert!(e.to_string().contains("checksum mismatch"), "{e}");

        fs::write(&file, &good[..good.len() - 5]).expect("write");
        assert!(sd
            .validate()
            .expect_err("truncated")
            .to_string()
            .contains("truncated"));

        let newer = String::from_utf8(good.clone()).expect("utf8").replacen(
            &format!(" {FORMAT_VERSION} "),
            " 99 ",
            1,
        );
        fs::write(&file, newer).expect("write");
        assert!(sd
            .validate()
            .expect_err("version")
            .to_string()
            .contains("format version 99"));

        fs::write(&file, &good).expect("write");
        assert!(sd.validate().is_ok());
        assert!(sd.load(&point(0, 2, 1), 0..1).is_ok());
        let other = StateDir::open(dir.path(), "kafka:other").expect("open");
        assert!(matches!(
            other.marker(),
            Err(CheckpointError::OtherInput { .. })
        ));
    }
}
