//! Checkpoints: restartable state with exactly-once results (`--state-dir`).
//!
//! What determines every analysis is small: per `(device, guid)` the sum and count of
//! readings, plus the rejected and late counters. Each worker keeps that cumulative table for
//! the records it ingested, and whenever it closes an epoch it writes the table together with
//! the next offset of each of its partitions, before its input moves on. Both describe the
//! same cut: offsets of records that belong to later epochs are not in it.
//!
//! ```text
//! state-dir/
//!   COMMITTED                 generation G, frontier F, workers P  (written last, atomically)
//!   gen-G/w{worker}-e{epoch}.ckpt
//! ```
//!
//! When the dataflow's frontier passes `F`, every worker has closed every epoch before `F`
//! and written its file for it, so the first local worker writes `COMMITTED` naming `F`. A
//! restart loads, for each worker of generation `G`, its newest file with epoch < `F`, feeds
//! the rows back into the dataflow as weighted records, and seeks each partition to the saved
//! offset. A new run writes a new generation and deletes the old one once its own first commit
//! is durable, so files of two runs are never mixed.
//!
//! Every file is written to a temporary name, fsynced, renamed over and its directory fsynced,
//! and starts with a header holding a format version, a CRC-32 and the body length. A file
//! with a wrong version, length or checksum is refused with a clear error, and nothing is
//! loaded unless every file loads.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use hygroflow_dataflows::{Epoch, SensorKey, Tally};
use serde::{Deserialize, Serialize};

/// The on-disk format version; files of another version are refused.
pub const FORMAT_VERSION: u32 = 1;
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
    /// Late messages so far.
    pub late: i64,
    /// `(device, guid, sum_micro, count)` per sensor.
    pub sensors: Vec<(String, String, i64, i64)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointBody {
    input: String,
    generation: u64,
    worker: usize,
    epoch: Epoch,
    state: WorkerState,
}

#[derive(Debug, Serialize, Deserialize)]
struct CommitBody {
    input: String,
    generation: u64,
    frontier: Epoch,
    workers: usize,
}

/// The cumulative table a worker keeps when checkpointing.
#[derive(Debug, Default)]
pub struct SensorTable {
    rows: HashMap<SensorKey, Tally>,
}

impl SensorTable {
    /// Adds one epoch's tally of a sensor.
    pub fn add(&mut self, key: &SensorKey, tally: Tally) {
        let row = self.rows.entry(key.clone()).or_insert((0, 0));
        row.0 += tally.0;
        row.1 += tally.1;
    }

    /// The rows, sorted, as stored in a checkpoint.
    pub fn rows(&self) -> Vec<(String, String, i64, i64)> {
        let mut rows: Vec<_> = self
            .rows
            .iter()
            .map(|((d, g), (s, c))| (d.clone(), g.clone(), *s, *c))
            .collect();
        rows.sort();
        rows
    }
}

/// What a restart resumes from.
#[derive(Debug, Default)]
pub struct Restored {
    /// The generation the files came from.
    pub generation: u64,
    /// Each old worker's state (its rows are spread over the new workers).
    pub workers: Vec<WorkerState>,
}

impl Restored {
    /// The offset to resume each partition from.
    pub fn offsets(&self) -> BTreeMap<i32, i64> {
        self.workers
            .iter()
            .flat_map(|w| w.offsets.clone())
            .collect()
    }

    /// The old workers' states that new worker `index` of `peers` feeds back.
    pub fn share(&self, index: usize, peers: usize) -> impl Iterator<Item = &WorkerState> {
        self.workers
            .iter()
            .enumerate()
            .filter(move |(i, _)| i % peers.max(1) == index)
            .map(|(_, w)| w)
    }
}

/// A state directory for one input.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
    input: String,
}

impl StateDir {
    /// Opens (creating it if needed) the state directory for `input` (e.g. `kafka:topic`).
    pub fn open(dir: &Path, input: &str) -> Result<Self, CheckpointError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        Ok(StateDir {
            dir: dir.to_owned(),
            input: input.to_owned(),
        })
    }

    fn generation_dir(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("gen-{generation}"))
    }

    /// Loads the committed state, if any; refuses anything damaged.
    pub fn load(&self) -> Result<Option<Restored>, CheckpointError> {
        let marker = self.dir.join(COMMITTED);
        if !marker.exists() {
            return Ok(None);
        }
        let commit: CommitBody = read_framed(&marker, COMMIT_MAGIC)?;
        self.check_input(&commit.input)?;
        let gen_dir = self.generation_dir(commit.generation);
        let mut newest: Vec<Option<(Epoch, PathBuf)>> = vec![None; commit.workers];
        let entries = fs::read_dir(&gen_dir).map_err(io_error(&gen_dir))?;
        for entry in entries {
            let path = entry.map_err(io_error(&gen_dir))?.path();
            let Some((worker, epoch)) = parse_name(&path) else {
                continue;
            };
            if worker < commit.workers
                && epoch < commit.frontier
                && newest[worker].as_ref().is_none_or(|(e, _)| epoch > *e)
            {
                newest[worker] = Some((epoch, path));
            }
        }
        let mut workers = Vec::with_capacity(commit.workers);
        for (worker, found) in newest.into_iter().enumerate() {
            let Some((epoch, path)) = found else {
                return Err(CheckpointError::Corrupt {
                    path: gen_dir.clone(),
                    reason: format!(
                        "no checkpoint of worker {worker} before epoch {}",
                        commit.frontier
                    ),
                });
            };
            let body: CheckpointBody = read_framed(&path, CHECKPOINT_MAGIC)?;
            if body.worker != worker || body.epoch != epoch || body.generation != commit.generation
            {
                return Err(CheckpointError::Corrupt {
                    path,
                    reason: "its contents do not match its name".into(),
                });
            }
            self.check_input(&body.input)?;
            for partition in body.state.offsets.keys() {
                if workers.iter().any(|w: &WorkerState| w.offsets.contains_key(partition)) {
                    return Err(CheckpointError::Corrupt {
                        path,
                        reason: format!("partition {partition} has offsets from two workers"),
                    });
                }
            }
            workers.push(body.state);
        }
        Ok(Some(Restored {
            generation: commit.generation,
            workers,
        }))
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

    /// Prepares generation `generation` for writing, removing debris of runs that crashed
    /// before their first commit (any generation other than `keep`).
    pub fn start_generation(
        &self,
        generation: u64,
        keep: Option<u64>,
    ) -> Result<(), CheckpointError> {
        self.remove_generations(|g| Some(g) != keep)?;
        let dir = self.generation_dir(generation);
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
            generation,
            worker,
            epoch,
            state,
        };
        write_framed(&path, CHECKPOINT_MAGIC, &body)
    }

    /// Records that every worker has checkpointed every epoch before `frontier`, then
    /// removes what no restart can need any more.
    pub fn commit(
        &self,
        generation: u64,
        frontier: Epoch,
        workers: usize,
    ) -> Result<(), CheckpointError> {
        let body = CommitBody {
            input: self.input.clone(),
            generation,
            frontier,
            workers,
        };
        write_framed(&self.dir.join(COMMITTED), COMMIT_MAGIC, &body)?;
        self.remove_generations(|g| g != generation)?;
        self.prune(generation, frontier, workers)
    }

    /// Removes each worker's files older than its newest one before `frontier`.
    fn prune(
        &self,
        generation: u64,
        frontier: Epoch,
        workers: usize,
    ) -> Result<(), CheckpointError> {
        let dir = self.generation_dir(generation);
        let mut files: Vec<(usize, Epoch, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_error(&dir))? {
            let path = entry.map_err(io_error(&dir))?.path();
            if let Some((w, e)) = parse_name(&path) {
                files.push((w, e, path));
            }
        }
        for worker in 0..workers {
            let keep = files
                .iter()
                .filter(|(w, e, _)| *w == worker && *e < frontier)
                .map(|(_, e, _)| *e)
                .max();
            if let Some(keep) = keep {
                for (_, _, path) in files.iter().filter(|(w, e, _)| *w == worker && *e < keep) {
                    // Already gone is fine: pruning is only housekeeping.
                    let _ = fs::remove_file(path);
                }
            }
        }
        Ok(())
    }

    fn remove_generations(&self, remove: impl Fn(u64) -> bool) -> Result<(), CheckpointError> {
        for entry in fs::read_dir(&self.dir).map_err(io_error(&self.dir))? {
            let path = entry.map_err(io_error(&self.dir))?.path();
            let generation = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("gen-"))
                .and_then(|g| g.parse::<u64>().ok());
            if let Some(g) = generation.filter(|g| remove(*g)) {
                let _ = g;
                fs::remove_dir_all(&path).map_err(io_error(&path))?;
            }
        }
        Ok(())
    }
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
    file.write_all(&json).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error(path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// Reads and verifies a file written by [`write_framed`].
fn read_framed<T: for<'de> Deserialize<'de>>(
    path: &Path,
    magic: &str,
) -> Result<T, CheckpointError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let newline = memchr::memchr(b'\n', &bytes).ok_or_else(|| corrupt("no header line".into()))?;
    let header =
        std::str::from_utf8(&bytes[..newline]).map_err(|_| corrupt("header is not text".into()))?;
    let fields: Vec<&str> = header.split(' ').collect();
    let [found_magic, version, crc, len] = fields[..] else {
        return Err(corrupt(format!("bad header {header:?}")));
    };
    if found_magic != magic {
        return Err(corrupt(format!("not a {magic} file")));
    }
    if version != FORMAT_VERSION.to_string() {
        return Err(corrupt(format!(
            "format version {version}, this hygroflow reads version {FORMAT_VERSION}"
        )));
    }
    let body = &bytes[newline + 1..];
    if len.parse::<usize>().ok() != Some(body.len()) {
        return Err(corrupt(format!(
            "length {} does not match the header's {len} (truncated?)",
            body.len()
        )));
    }
    if u32::from_str_radix(crc, 16).ok() != Some(crc32fast::hash(body)) {
        return Err(corrupt("checksum mismatch".into()));
    }
    serde_json::from_slice(body).map_err(|e| corrupt(format!("unreadable contents: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(rows: &[(&str, &str, i64, i64)], offsets: &[(i32, i64)]) -> WorkerState {
        WorkerState {
            offsets: offsets.iter().copied().collect(),
            rejected: 1,
            late: 0,
            sensors: rows
                .iter()
                .map(|(d, g, s, c)| (d.to_string(), g.to_string(), *s, *c))
                .collect(),
        }
    }

    #[test]
    fn restores_each_workers_newest_file_before_the_frontier() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sd = StateDir::open(dir.path(), "kafka:t").expect("open");
        assert!(sd.load().expect("empty").is_none());
        sd.start_generation(0, None).expect("gen");
        sd.write_worker(0, 0, 10, state(&[("CT1", "a", 5, 1)], &[(0, 3)]))
            .expect("w0");
        sd.write_worker(0, 1, 10, state(&[("CT1", "b", 7, 1)], &[(1, 4)]))
            .expect("w1");
        sd.write_worker(0, 0, 12, state(&[("CT1", "a", 9, 2)], &[(0, 6)]))
            .expect("w0 later");
        sd.commit(0, 11, 2).expect("commit");
        let restored = sd.load().expect("load").expect("some");
        assert_eq!(
            restored.workers[0].offsets,
            BTreeMap::from([(0, 3)]),
            "epoch 12 is past the frontier"
        );
        assert_eq!(restored.offsets(), BTreeMap::from([(0, 3), (1, 4)]));
        // With one new worker it feeds both old workers' rows; with three, worker 2 feeds none.
        assert_eq!(restored.share(0, 1).count(), 2);
        assert_eq!(restored.share(2, 3).count(), 0);
        // A later commit prunes files no restart can need.
        sd.write_worker(0, 1, 12, state(&[("CT1", "b", 7, 1)], &[(1, 4)]))
            .expect("w1 later");
        sd.commit(0, 13, 2).expect("commit");
        let files = fs::read_dir(dir.path().join("gen-0")).expect("dir").count();
        assert_eq!(files, 2);
        let restored = sd.load().expect("load").expect("some");
        assert_eq!(
            restored.workers[0].sensors,
            vec![("CT1".into(), "a".into(), 9, 2)]
        );
    }

    #[test]
    fn a_new_generation_replaces_the_old_one_only_once_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sd = StateDir::open(dir.path(), "kafka:t").expect("open");
        sd.start_generation(0, None).expect("gen");
        sd.write_worker(0, 0, 1, state(&[], &[(0, 1)])).expect("w");
        sd.commit(0, 2, 1).expect("commit");
        sd.start_generation(1, Some(0)).expect("gen 1");
        sd.write_worker(1, 0, 0, state(&[], &[(0, 9)])).expect("w");
        // Crash here: generation 0 is still what loads.
        assert_eq!(sd.load().expect("load").expect("some").offsets()[&0], 1);
        sd.commit(1, 1, 1).expect("commit");
        assert_eq!(sd.load().expect("load").expect("some").offsets()[&0], 9);
        assert!(!dir.path().join("gen-0").exists());
    }

    #[test]
    fn damaged_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sd = StateDir::open(dir.path(), "kafka:t").expect("open");
        sd.start_generation(0, None).expect("gen");
        sd.write_worker(0, 0, 1, state(&[("CT1", "a", 5, 1)], &[(0, 1)]))
            .expect("w");
        sd.commit(0, 2, 1).expect("commit");
        let file = dir.path().join("gen-0").join("w0-e1.ckpt");
        let good = fs::read(&file).expect("read");

        let mut flipped = good.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        fs::write(&file, &flipped).expect("write");
        let e = sd.load().expect_err("checksum");
        assert!(e.to_string().contains("checksum mismatch"), "{e}");

        fs::write(&file, &good[..good.len() - 5]).expect("write");
        assert!(sd
            .load()
            .expect_err("truncated")
            .to_string()
            .contains("truncated"));

        let newer = String::from_utf8(good.clone())
            .expect("utf8")
            .replacen(" 1 ", " 99 ", 1);
        fs::write(&file, newer).expect("write");
        assert!(sd
            .load()
            .expect_err("version")
            .to_string()
            .contains("format version 99"));

        fs::write(&file, &good).expect("write");
        assert!(sd.load().is_ok());
        let other = StateDir::open(dir.path(), "kafka:other").expect("open");
        assert!(matches!(
            other.load(),
            Err(CheckpointError::OtherInput { .. })
        ));
    }
}
