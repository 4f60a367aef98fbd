//! The job: what a process builds once from its validated [`Config`], and what each worker
//! asks it for (its source, its dead-letter target, the reporter), in the spirit of ripgrep's
//! `HiArgs`. Nothing else in the pipeline matches on the kind of input.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context};
use tracing::info;

use hygroflow_dataflows::AlertRules;

use crate::checkpoint::{Printed, Settings, StateDir};
use crate::config::{AlertsOut, Config, Input, KafkaInput};
use crate::epoch::TimeMode;
use crate::escape::escape;
use crate::fleet::{scenario::Plan, Fleet};
use crate::kafka::publisher::Publisher;
use crate::kafka::readback::{
    published_epochs, published_ids, LetterStarter, ReadBackError, SentLetters,
};
use crate::kafka::tail::{Ends, EpochTail, ResumeOffsets};
use crate::live::{Live, LiveFeed};
use crate::sink::alerts::{AlertLog, AlertTopic};
use crate::sink::rejects::{DeadLetterFile, DeadLetters};
use crate::sink::report::Reporter;
use crate::source::file::{range_sources, spawn_reader};
use crate::source::generator::GeneratorSource;
use crate::source::kafka::{require_topic, KafkaSource, KafkaSourceError};
use crate::source::Source;

use super::checkpointer::Checkpoints;
use super::reload::LiveRules;
use super::writer::Offsets;

/// Where a process's workers get their records.
pub(crate) enum Feed {
    /// The simulated fleet.
    Demo {
        /// Messages per second over all workers.
        rate: u64,
        /// The fleet, built once per process and shared by its workers.
        fleet: Fleet,
        /// Seed of the fleet and its readings.
        seed: u64,
        /// The scenarios, timed from the job's start: the same for every worker.
        plan: Plan,
    },
    /// Lines from the process's reader thread, one source per local worker.
    File {
        /// Taken by each local worker at start.
        sources: Mutex<Vec<Option<Box<dyn Source + Send>>>>,
        /// The reader threads; joined after the workers end.
        readers: Mutex<Vec<JoinHandle<()>>>,
        /// `--rejects`.
        rejects: Option<DeadLetterFile>,
    },
    /// A Kafka topic, and the rejects its dead-letter topic already holds.
    Kafka(KafkaInput, SentLetters),
    /// Partitions held in memory (tests of the runtime).
    #[cfg(test)]
    Memory(Arc<super::memory::MemoryTopic>),
}

/// What every worker of a process is built from.
pub(crate) struct Job {
    pub(crate) config: Config,
    feed: Feed,
    checkpoints: Option<Checkpoints>,
    out: Mutex<Option<Box<dyn Write + Send>>>,
    shutdown: Arc<AtomicBool>,
    /// A worker failed: the others stop without committing anything more.
    failed: AtomicBool,
    /// Process 0: where the alert log goes, opened once.
    alerts: Mutex<Option<AlertOutputs>>,
    /// Process 0 with `--http`: the live page's server.
    live: Option<Live>,
    /// The rules in force and those loaded since (`None`: alerts are off).
    rules: Option<Arc<LiveRules>>,
    /// With checkpoints: starts reading the dead-letter topic back once the first local
    /// worker knows where from.
    letter_starter: Mutex<Option<LetterStarter>>,
}

/// Process 0's alert outputs, prepared before any worker starts.
#[derive(Default)]
pub(crate) struct AlertOutputs {
    /// `--alerts FILE`, created or truncated.
    file: Option<std::fs::File>,
    /// `--alerts-topic`: the ids already in the topic, and its ends.
    published: Option<(EpochTail<String>, Ends)>,
}

impl Job {
    /// Builds the job from the configuration: opens the input, checks what can be checked
    /// before any worker starts (Kafka properties, topics, the state directory), and opens
    /// the dead-letter file.
    pub(crate) fn new(
        config: Config,
        out: Box<dyn Write + Send>,
        shutdown: Arc<AtomicBool>,
    ) -> anyhow::Result<Job> {
        refuse_clobbering(&config)?;
        let mut checkpoints = None;
        let mut letter_starter = None;
        let rules = config
            .rules
            .as_ref()
            .map(|rules| LiveRules::new(rules, config.grid, config.window.epochs()));
        // Bound first: a busy address is worth knowing before anything else starts.
        let listener = match config.http {
            Some(at) if config.cluster.process == 0 => Some(crate::live::bind(&at)?),
            _ => None,
        };
        let feed = match &config.input {
            Input::Demo {
                rate,
                sensors,
                seed,
                scenarios,
            } => {
                info!(sensors, rate, "streaming the simulated fleet (devices CT1-SPECT8); Ctrl-C stops with a final report");
                let fleet = Fleet::new(*seed, *sensors);
                let plan = Plan::new(scenarios, &fleet, chrono::Utc::now().timestamp_millis());
                for note in plan.notes() {
                    info!("{note}");
                }
                Feed::Demo {
                    rate: *rate,
                    fleet,
                    seed: *seed,
                    plan,
                }
            }
            Input::File { path, rejects } => file_feed(&config, path.as_ref(), rejects.as_ref())?,
            Input::Kafka(kafka) => {
                // The state directory first: a mistake there is not worth waiting for brokers.
                checkpoints = match &kafka.state_dir {
                    Some(dir) => Some(open_state_dir(&config, kafka, dir, rules.as_ref())?),
                    None => {
                        info!(topic = %kafka.topic, "no --state-dir: rebuilding the results from the earliest offset of every partition");
                        None
                    }
                };
                check_kafka(&config, kafka, &shutdown)?;
                // Dead letters exactly once: what a killed run sent is not sent again. With
                // checkpoints, from where the files this process resumes from say.
                let (client, dlq, input) = (&kafka.client, &kafka.dlq_topic, &kafka.topic);
                let sent = if checkpoints.is_some() {
                    let (sent, starter) = SentLetters::after_restore(client, dlq, input);
                    letter_starter = Some(starter);
                    sent
                } else {
                    SentLetters::read_back(client, dlq, input)
                };
                Feed::Kafka(kafka.clone(), sent)
            }
        };
        if config.cluster.process != 0 {
            info!(
                process = config.cluster.process,
                "reports are printed by process 0"
            );
        }
        let resumed = checkpoints.as_ref().map(Checkpoints::resumed);
        let alerts = alert_outputs(&config, resumed)?;
        match (&rules, &config.rules_file) {
            (Some(rules), Some(path)) => rules.watch_sighup(path.clone()),
            _ => super::reload::ignore_sighup(),
        }
        .context("waiting for SIGHUP")?;
        let mut job = Job::with_feed(config, feed, checkpoints, out, shutdown);
        job.letter_starter = Mutex::new(letter_starter);
        job.rules = rules;
        if let Some(listener) = listener {
            let settings = crate::live::Settings {
                grid: job.config.grid,
                window: job.config.window,
                rules: job.alert_rules(),
            };
            job.live = Some(Live::start(listener, settings)?);
            if let Feed::Kafka(kafka, _) = &job.feed {
                // The lag of every partition, whichever process reads it.
                crate::live::lag::spawn(kafka, Arc::clone(&job.shutdown))
                    .context("starting the lag metrics' thread")?;
            }
        }
        *job.alerts
            .lock()
            .map_err(|_| anyhow!("alert outputs poisoned"))? = Some(alerts);
        Ok(job)
    }

    /// A job over a prepared feed.
    pub(crate) fn with_feed(
        config: Config,
        feed: Feed,
        checkpoints: Option<Checkpoints>,
        out: Box<dyn Write + Send>,
        shutdown: Arc<AtomicBool>,
    ) -> Job {
        Job {
            config,
            feed,
            checkpoints,
            out: Mutex::new(Some(out)),
            shutdown,
            failed: AtomicBool::new(false),
            alerts: Mutex::new(Some(AlertOutputs::default())),
            live: None,
            rules: None,
            letter_starter: Mutex::new(None),
        }
        .with_rules()
    }

    /// The first local worker, with checkpoints and a dead-letter topic: what starts its
    /// read-back (dropped unstarted, it answers the waiting workers with an error).
    pub(crate) fn take_letter_starter(&self) -> Option<LetterStarter> {
        self.letter_starter.lock().ok().and_then(|mut s| s.take())
    }

    /// The rules of the configuration, unless already set.
    fn with_rules(mut self) -> Self {
        if self.rules.is_none() {
            self.rules =
                self.config.rules.as_ref().map(|rules| {
                    LiveRules::new(rules, self.config.grid, self.config.window.epochs())
                });
        }
        self
    }

    /// The checksum of rules loaded since `seen` (a generation this worker has announced),
    /// which it then announces; `None`: nothing new.
    pub(crate) fn rules_to_announce(&self, seen: &mut u64) -> Option<u32> {
        let (generation, checksum) = self.rules.as_ref()?.loaded();
        (generation > *seen).then(|| {
            *seen = generation;
            checksum
        })
    }

    /// The rules as the alerts dataflow applies them; `None`: alerts are off.
    pub(crate) fn alert_rules(&self) -> Option<AlertRules> {
        self.rules.as_ref()?.initial()
    }

    /// Worker 0's alert log, starting from the alerts `active` at a restart; `None` when
    /// alerts are off or another worker took it.
    pub(crate) fn alert_log(&self, printed: &Printed) -> anyhow::Result<Option<AlertLog>> {
        let active = &printed.alerts;
        if self.config.rules.is_none() {
            return Ok(None);
        }
        let outputs = self.alerts.lock().ok().and_then(|mut a| a.take());
        let Some(outputs) = outputs else {
            return Ok(None);
        };
        let mut log = AlertLog::new(self.config.grid, active)?;
        if self.live.is_some() {
            log = log.keeping_transitions();
        }
        if let Some(file) = outputs.file {
            log = log.with_file(file);
        }
        if self.config.alerts == Some(AlertsOut::Stdout) {
            log = log.with_stdout();
        }
        if let Some(settings) = &self.config.alertmanager {
            let generator_url = self
                .live
                .as_ref()
                .map(|live| format!("http://{}/", live.addr()))
                .unwrap_or_default();
            let notifier = crate::notify::Notifier::start(
                settings,
                (self.config.grid, self.config.rules.clone()),
                (active.clone(), printed.undelivered.clone()),
                generator_url,
            )?;
            log = log.with_notifier(notifier);
        }
        if let Some(rules) = &self.rules {
            log = log.with_rules(Arc::clone(rules), printed.rules.as_deref())?;
        }
        if let (Some(topic), Some((published, ends))) =
            (&self.config.alerts_topic, outputs.published)
        {
            log = log.with_topic(AlertTopic {
                publisher: Publisher::new(&topic.client, "alerts", ends)?,
                topic: topic.topic.clone(),
                published,
                unflushed: false,
            });
        }
        Ok(Some(log))
    }

    /// Where worker 0 hands its reports to the live page (`--http`, process 0).
    pub(crate) fn live_feed(&self) -> Option<LiveFeed> {
        self.live.as_ref().map(Live::feed)
    }

    /// Whether the run has been asked to stop (Ctrl-C, a failed worker, a closed stdout).
    pub(crate) fn stopped(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// Asks every worker to stop: inputs end, the final report is printed.
    pub(crate) fn stop(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
    }

    /// A worker failed: every worker stops at once, and no checkpoint is committed from now
    /// on (the failed worker's state is not in it).
    pub(crate) fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        self.stop();
    }

    /// Whether a worker has failed.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Checkpointing, when the job has a state directory.
    pub(crate) fn checkpoints(&self) -> Option<&Checkpoints> {
        self.checkpoints.as_ref()
    }

    /// Worker `index` of `peers`'s source; `resume` holds checkpointed next offsets.
    pub(crate) fn source(
        &self,
        index: usize,
        peers: usize,
        resume: &Offsets,
    ) -> anyhow::Result<Box<dyn Source>> {
        Ok(match &self.feed {
            Feed::Demo {
                rate,
                fleet,
                seed,
                plan,
            } => Box::new(GeneratorSource::new(
                fleet.clone(),
                plan.clone(),
                *seed,
                *rate,
                index,
                peers,
            )),
            Feed::File { sources, .. } => {
                let local = index - self.config.cluster.local_workers().start;
                let source = sources
                    .lock()
                    .map_err(|_| anyhow!("file sources lock poisoned"))?
                    .get_mut(local)
                    .and_then(Option::take)
                    .ok_or_else(|| anyhow!("no file source for worker {index}"))?;
                source
            }
            Feed::Kafka(kafka, _) => {
                let stop = || self.stopped();
                Box::new(KafkaSource::new(kafka, index, peers, resume, &stop)?)
            }
            #[cfg(test)]
            Feed::Memory(topic) => Box::new(topic.source(index, peers, resume)),
        })
    }

    /// Where worker `index` keeps rejected messages.
    pub(crate) fn dead_letters(&self, index: usize, peers: usize) -> anyhow::Result<DeadLetters> {
        Ok(match &self.feed {
            Feed::File {
                rejects: Some(file),
                ..
            } => DeadLetters::File(Arc::clone(file)),
            Feed::Kafka(kafka, sent) => {
                let ends = Ends::default();
                DeadLetters::Topic {
                    publisher: Box::new(
                        Publisher::new(
                            &kafka.client,
                            &format!("worker {index} dead letters"),
                            ends.clone(),
                        )?
                        .sharing(sent.ends()),
                    ),
                    topic: kafka.dlq_topic.clone(),
                    sent: sent.clone(),
                    ends,
                    owner: (index, peers),
                }
            }
            _ => DeadLetters::Log,
        })
    }

    /// The reporter: worker 0 takes it, once; every other worker gets `None`.
    pub(crate) fn reporter(&self) -> anyhow::Result<Option<Reporter>> {
        let out = self.out.lock().ok().and_then(|mut out| out.take());
        let Some(out) = out else {
            return Ok(None);
        };
        let config = &self.config;
        let mut reporter = Reporter::new(
            out,
            config.format,
            config.changes,
            (config.grid, config.window),
        );
        if let Some(results) = &config.results {
            // Reports a killed run published after its last checkpoint are not published
            // again; the checkpoint says where they may lie.
            let (reported, from) = match &self.checkpoints {
                Some(checkpoints) => {
                    let printed = checkpoints.resumed();
                    let from = printed.results_from.clone().unwrap_or_default();
                    (printed.last_reported, from)
                }
                None => (None, ResumeOffsets::new()),
            };
            let ends = Ends::default();
            let published = match published_epochs(&results.client, (&results.topic, &from, &ends))
            {
                Err(ReadBackError::Missing { .. }) => Default::default(),
                read => read?,
            };
            info!(topic = %results.topic, reports = published.keys.len(), from = ?from, "results topic read back");
            reporter = reporter.publish_to(
                Publisher::new(&results.client, "results", ends.clone())?,
                results.topic.clone(),
                published.into_tail(reported, ends),
            );
        }
        Ok(Some(reporter))
    }

    /// Whether epochs follow event time.
    pub(crate) fn event_time(&self) -> bool {
        self.config.time == TimeMode::Event
    }

    /// After the workers end: waits for the file reader, which ends once every worker's
    /// channel is closed (it never blocks past that).
    pub(crate) fn join_reader(&self) {
        if let Feed::File { readers, .. } = &self.feed {
            let handles = readers
                .lock()
                .map(|mut r| std::mem::take(&mut *r))
                .unwrap_or_default();
            for handle in handles {
                let _ = handle.join();
            }
        }
    }
}

/// Opens the input file (or stdin) once and starts the reader thread.
fn file_feed(
    config: &Config,
    path: Option<&PathBuf>,
    rejects: Option<&PathBuf>,
) -> anyhow::Result<Feed> {
    // Opened once: a FIFO or a pipe has nothing to give a second opener.
    let (input, name, identity): (Box<dyn std::io::Read + Send>, String, _) = match path {
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot read input {}", path.display()))?;
            let identity = FileId::of_file(&file);
            (Box::new(file), path.display().to_string(), identity)
        }
        None => {
            let identity = FileId::of_fd(std::io::stdin().as_fd());
            (Box::new(std::io::stdin()), "stdin".to_owned(), identity)
        }
    };
    if let Some(input) = identity.filter(FileId::is_regular) {
        refuse_overwriting(input, &name)?;
    }
    let rejects = match rejects {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create rejects file {}", path.display()))?;
            Some(Arc::new(Mutex::new(std::io::BufWriter::new(file))))
        }
        None => None,
    };
    let layout = (config.cluster.local_workers(), config.cluster.peers());
    let (sources, readers) = match path {
        // A regular file and several workers: each reads its own part.
        Some(path) if identity.is_some_and(|id| id.is_regular()) && layout.1 > 1 => {
            drop(input);
            let sources = range_sources(path, &name, layout, config.max_message_bytes)
                .with_context(|| format!("cannot read input {}", escape(&name)))?;
            let sources: Vec<Box<dyn Source + Send>> = sources
                .into_iter()
                .map(|s| Box::new(s) as Box<dyn Source + Send>)
                .collect();
            (sources, Vec::new())
        }
        _ => {
            let (sources, reader) =
                spawn_reader(input, name, layout.0, layout.1, config.max_message_bytes);
            let sources: Vec<Box<dyn Source + Send>> = sources
                .into_iter()
                .map(|s| Box::new(s) as Box<dyn Source + Send>)
                .collect();
            (sources, vec![reader])
        }
    };
    Ok(Feed::File {
        sources: Mutex::new(sources.into_iter().map(Some).collect()),
        readers: Mutex::new(readers),
        rejects,
    })
}

/// Which file an open handle is: device and inode, so that links count as the same file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    regular: bool,
}

impl FileId {
    fn of_metadata(m: &std::fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            regular: m.file_type().is_file(),
        }
    }

    fn of_file(file: &std::fs::File) -> Option<FileId> {
        file.metadata().ok().map(|m| FileId::of_metadata(&m))
    }

    fn of_fd(fd: BorrowedFd<'_>) -> Option<FileId> {
        let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
        FileId::of_file(&file)
    }

    fn is_regular(&self) -> bool {
        self.regular
    }
}

/// Refuses stdout redirected onto the input file (`>> input`), which would truncate or grow
/// what is being read. (Output files onto it are refused earlier: [`refuse_clobbering`].)
fn refuse_overwriting(input: FileId, name: &str) -> anyhow::Result<()> {
    if FileId::of_fd(std::io::stdout().as_fd()) == Some(input) {
        anyhow::bail!(
            "stdout is the input file {name}: reports written there would overwrite or grow the input; redirect stdout elsewhere"
        );
    }
    Ok(())
}

/// Which file a path names, for telling two paths of one file apart: its device and inode if
/// it exists (links and other spellings of it included), else its absolute path (two outputs
/// that will be created under one name).
#[derive(Debug, PartialEq, Eq)]
enum PathId {
    File(FileId),
    New(PathBuf),
}

impl PathId {
    fn of(path: &Path) -> PathId {
        match std::fs::metadata(path) {
            Ok(m) => PathId::File(FileId::of_metadata(&m)),
            // Its folder resolved (links, `..`), then its name.
            Err(_) => {
                let folder = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                let resolved = match (folder.canonicalize(), path.file_name()) {
                    (Ok(folder), Some(name)) => folder.join(name),
                    _ => std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
                };
                PathId::New(resolved)
            }
        }
    }
}

/// Refuses, before any file is created or truncated, an output file that is one of the files
/// the job reads (the input, the rules file) or another output: `--alerts` onto the input
/// would truncate it, onto the rules file overwrite the rules, and `--alerts` and `--rejects`
/// in one file would lose lines of both (issue 26 point 2).
fn refuse_clobbering(config: &Config) -> anyhow::Result<()> {
    let mut read: Vec<(&str, &Path)> = Vec::new();
    let mut written: Vec<(&str, &Path)> = Vec::new();
    if let Input::File { path, rejects } = &config.input {
        if let Some(path) = path {
            read.push(("the input file", path));
        }
        if let Some(rejects) = rejects {
            written.push(("--rejects", rejects));
        }
    }
    if let Some(rules) = &config.rules_file {
        read.push(("the --rules file", rules));
    }
    if let Some(AlertsOut::File(alerts)) = &config.alerts {
        written.push(("--alerts", alerts));
    }
    let shown = |path: &Path| escape(&path.display().to_string()).into_owned();
    for (i, &(flag, path)) in written.iter().enumerate() {
        let id = PathId::of(path);
        if let Some((what, other)) = read.iter().find(|(_, other)| PathId::of(other) == id) {
            anyhow::bail!(
                "{flag} {} is {what} {}: writing there would destroy it; choose another file",
                shown(path),
                shown(other)
            );
        }
        if let Some((other_flag, other)) = written[..i]
            .iter()
            .find(|(_, other)| PathId::of(other) == id)
        {
            anyhow::bail!(
                "{flag} {} and {other_flag} {} are one file: each would overwrite the other's lines; give them two files",
                shown(path),
                shown(other)
            );
        }
    }
    Ok(())
}

/// Process 0 opens `--alerts FILE` and reads back `--alerts-topic` before any worker starts.
/// `resumed`: with checkpoints, what the printer had done at the checkpoint the run resumes
/// from (where the topic is read back from, the last epoch reported).
fn alert_outputs(config: &Config, resumed: Option<&Printed>) -> anyhow::Result<AlertOutputs> {
    let mut outputs = AlertOutputs::default();
    if config.cluster.process != 0 {
        return Ok(outputs);
    }
    if let Some(AlertsOut::File(path)) = &config.alerts {
        let file = std::fs::File::create(path).with_context(|| {
            format!(
                "cannot create --alerts file {}",
                crate::escape::escape(&path.display().to_string())
            )
        })?;
        outputs.file = Some(file);
    }
    if let Some(topic) = &config.alerts_topic {
        let (reported, from) = match resumed {
            Some(printed) => (
                printed.last_reported,
                printed.alerts_from.clone().unwrap_or_default(),
            ),
            None => (None, ResumeOffsets::new()),
        };
        let ends = Ends::default();
        let published = match published_ids(&topic.client, (&topic.topic, &from, &ends)) {
            Err(ReadBackError::Missing { .. }) => {
                crate::kafka::admin::create_missing(&topic.client, &topic.topic, "--alerts-topic")?;
                Default::default()
            }
            read => read?,
        };
        info!(topic = %topic.topic, already = published.keys.len(), from = ?from, "alerts topic read back");
        outputs.published = Some((published.into_tail(reported, ends.clone()), ends));
    }
    Ok(outputs)
}

/// Fails fast, before any worker starts, on a bad property or a missing topic.
fn check_kafka(config: &Config, kafka: &KafkaInput, shutdown: &AtomicBool) -> anyhow::Result<()> {
    let consumer = crate::source::kafka::Detached::new(kafka.consumer("start-up check")?);
    let stop = || shutdown.load(Ordering::Relaxed);
    // Output topics that are missing are created (issue 12 point 7).
    let outputs = [
        Some((&kafka.dlq_topic, &kafka.client, "--dlq-topic")),
        config
            .results
            .as_ref()
            .map(|r| (&r.topic, &r.client, "--results-topic")),
        config
            .alerts_topic
            .as_ref()
            .map(|a| (&a.topic, &a.client, "--alerts-topic")),
    ];
    // One metadata request per topic, all at once: a broker far away costs one round trip
    // at start, not four (issue 23 point 5).
    let consumer = &consumer;
    let (input, outputs) = std::thread::scope(|scope| {
        let checks: Vec<_> = outputs
            .into_iter()
            .flatten()
            .map(|(topic, client, flag)| {
                scope.spawn(move || match require_topic(consumer, topic) {
                    Ok(()) => Ok(()),
                    Err(KafkaSourceError::MissingTopic(_)) => {
                        crate::kafka::admin::create_missing(client, topic, flag)
                    }
                    Err(error) => Err(error.into()),
                })
            })
            .collect();
        let input = kafka.wait_for_partitions(consumer, &stop);
        let outputs: Vec<anyhow::Result<()>> = checks
            .into_iter()
            .map(|check| {
                check
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("checking an output topic panicked")))
            })
            .collect();
        (input, outputs)
    });
    let partitions = input?;
    info!(topic = %kafka.topic, partitions = partitions.len(), group = %kafka.group, "kafka input");
    outputs.into_iter().collect()
}

/// Opens and checks the state directory; process 0 reads where to resume.
fn open_state_dir(
    config: &Config,
    kafka: &KafkaInput,
    dir: &std::path::Path,
    rules: Option<&Arc<LiveRules>>,
) -> anyhow::Result<Checkpoints> {
    let state = StateDir::open(dir, &kafka.checkpoint_name())?.with_settings(settings(config));
    // Refuse a damaged directory before anything starts or is loaded.
    state.validate()?;
    let first_process = config.cluster.process == 0;
    let marker = if first_process { state.marker()? } else { None };
    match &marker {
        Some(point) => {
            info!(state_dir = %dir.display(), frontier = point.frontier, "resuming from checkpoint")
        }
        None if first_process => {
            info!(state_dir = %dir.display(), "no checkpoint yet: reading the topic from the earliest offset")
        }
        None => info!(state_dir = %dir.display(), "checkpoints: process 0 decides where to resume"),
    }
    let printed = if first_process {
        state.marker_printed()?
    } else {
        Printed::default()
    };
    if let (Some(point), Some(rules)) = (&marker, rules) {
        let (_, now) = rules.loaded();
        let now_name = super::reload::rules_name(now);
        if let Some(was) = printed.rules.as_ref().filter(|was| **was != now_name) {
            info!(
                was = %escape(was),
                now = %now_name,
                from_epoch = point.frontier,
                "the rules changed since the checkpoint: windows, silence timers and raised alerts carry over and are judged by the new rules at the next reported epoch; a window longer than before uses what the checkpoint kept until it has filled"
            );
            rules.book.switched(point.frontier, now);
        }
    }
    let kept = match rules {
        Some(rules) => Arc::clone(&rules.kept),
        None => Arc::new(std::sync::atomic::AtomicU64::new(
            crate::rules::epochs_kept(None, config.window.epochs(), &config.grid),
        )),
    };
    Ok(Checkpoints::new(
        state,
        (marker, printed),
        config.cluster.local_workers(),
        config.cluster.processes > 1,
        kept,
    ))
}

/// The flags a state directory's results depend on, as it records them.
fn settings(config: &Config) -> Settings {
    let window = match config.window.span(&config.grid) {
        None => "cumulative".to_owned(),
        Some(span) => humantime::format_duration(span).to_string(),
    };
    let rules = match &config.rules {
        None => "none".to_owned(),
        // The resolved rules, not the file name: an edited file is other rules (taken as a
        // rules change at a restart).
        Some(rules) => super::reload::rules_name(rules.checksum()),
    };
    vec![
        (
            "--epoch".to_owned(),
            humantime::format_duration(config.grid.len()).to_string(),
        ),
        ("--window".to_owned(), window),
        ("--rules".to_owned(), rules),
        (
            "--allowed-lateness".to_owned(),
            humantime::format_duration(config.allowed_lateness).to_string(),
        ),
    ]
}
