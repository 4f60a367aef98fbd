//! An in-memory topic for the runtime's tests: partitions of messages (and pauses), offsets,
//! commits recorded, and crashes injected where a test asks for them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;

use crate::source::kafka::owns_partition;
use crate::source::{Deliver, Origin, Poll, PollError, Progress, RawRecord, Source, SourceError};

use super::writer::Offsets;

/// One entry of a partition.
#[derive(Clone, Debug)]
pub(crate) enum Entry {
    /// A message at the next offset.
    Message(Vec<u8>),
    /// The partition has nothing more for this long.
    Pause(Duration),
}

/// Called with every commit; an error is returned from the source's `commit` (a failed commit).
pub(crate) type CommitHook = Box<dyn Fn(&Offsets) -> Result<(), KafkaError> + Send + Sync>;

/// Messages a poll hands over at most, per partition, as a broker's fetch would.
const FETCH: usize = 5;

/// A topic in memory.
pub(crate) struct MemoryTopic {
    partitions: Vec<Vec<Entry>>,
    /// A worker's source fails before delivering its `n`-th record of this run.
    crash_before_record: Option<usize>,
    on_commit: Option<CommitHook>,
    /// Each worker reads its partitions one after another, each to its end, instead of a
    /// fetch from each in turn: the order a broker may deliver them in that is worst for
    /// event time.
    one_by_one: bool,
    /// Every commit, in order: (worker, offsets).
    pub(crate) commits: Mutex<Vec<(usize, Offsets)>>,
}

impl MemoryTopic {
    /// A topic with these partitions.
    pub(crate) fn new(partitions: Vec<Vec<Entry>>) -> Self {
        MemoryTopic {
            partitions,
            crash_before_record: None,
            on_commit: None,
            one_by_one: false,
            commits: Mutex::new(Vec::new()),
        }
    }

    /// Each worker reads its partitions one by one, each to its end.
    pub(crate) fn one_by_one(mut self) -> Self {
        self.one_by_one = true;
        self
    }

    /// Every worker's source fails before delivering its `n`-th record.
    pub(crate) fn crash_before_record(mut self, n: usize) -> Self {
        self.crash_before_record = Some(n);
        self
    }

    /// Calls `hook` before every commit.
    pub(crate) fn on_commit(mut self, hook: CommitHook) -> Self {
        self.on_commit = Some(hook);
        self
    }

    /// Worker `index` of `peers`'s share, from the `resume` offsets.
    pub(crate) fn source(
        self: &Arc<Self>,
        index: usize,
        peers: usize,
        resume: &Offsets,
    ) -> MemorySource {
        let owned: Vec<Cursor> = (0..self.partitions.len())
            .filter_map(|p| i32::try_from(p).ok())
            .filter(|p| owns_partition(*p, index, peers))
            .map(|p| Cursor {
                partition: p,
                entry: 0,
                offset: 0,
                skip_to: resume.get(&p).copied().unwrap_or(0),
                paused_since: None,
                ended: false,
            })
            .collect();
        let progress = owned
            .iter()
            .map(|c: &Cursor| Progress::Assigned {
                partition: c.partition,
                at_start: true,
            })
            .collect();
        MemorySource {
            topic: Arc::clone(self),
            worker: index,
            owned,
            delivered: 0,
            stopped: false,
            progress,
        }
    }
}

/// Where a source stands in one partition.
struct Cursor {
    partition: i32,
    entry: usize,
    offset: i64,
    skip_to: i64,
    paused_since: Option<Instant>,
    /// Its end has been reported.
    ended: bool,
}

/// One worker's share of a [`MemoryTopic`].
pub(crate) struct MemorySource {
    topic: Arc<MemoryTopic>,
    worker: usize,
    owned: Vec<Cursor>,
    delivered: usize,
    stopped: bool,
    /// Not yet handed to the pipeline: the partitions assigned, and those at their end.
    progress: Vec<Progress>,
}

impl Source for MemorySource {
    fn poll(&mut self, budget: usize, deliver: &mut Deliver<'_>) -> Result<Poll, PollError> {
        if self.stopped {
            return Ok(Poll::Finished);
        }
        let mut sent = 0;
        let one_by_one = self.topic.one_by_one;
        for cursor in &mut self.owned {
            let entries = &self.topic.partitions[cursor.partition as usize];
            if cursor.ended {
                continue;
            }
            let mut fetched = 0;
            while sent < budget && fetched < FETCH {
                match entries.get(cursor.entry) {
                    None => break,
                    Some(Entry::Pause(pause)) => {
                        let since = *cursor.paused_since.get_or_insert_with(Instant::now);
                        if since.elapsed() < *pause {
                            break;
                        }
                        cursor.entry += 1;
                    }
                    Some(Entry::Message(bytes)) => {
                        let offset = cursor.offset;
                        cursor.entry += 1;
                        cursor.offset += 1;
                        // Fetches stay aligned to batches of FETCH, as a broker returns the
                        // whole batch holding the offset asked for.
                        fetched += 1;
                        if offset < cursor.skip_to {
                            continue;
                        }
                        if self.topic.crash_before_record == Some(self.delivered) {
                            return Err(PollError::Deliver("simulated crash".into()));
                        }
                        self.delivered += 1;
                        sent += 1;
                        deliver(RawRecord {
                            bytes,
                            len: bytes.len(),
                            origin: Origin::Kafka {
                                partition: cursor.partition,
                                offset,
                            },
                        })
                        .map_err(PollError::Deliver)?;
                    }
                }
            }
            if cursor.entry >= entries.len() {
                // As `--until-end` sees a partition at its end.
                cursor.ended = true;
                self.progress.push(Progress::CaughtUp(cursor.partition));
                self.progress.push(Progress::Finished(cursor.partition));
            } else if one_by_one {
                break;
            }
        }
        let more = self
            .owned
            .iter()
            .any(|c| c.entry < self.topic.partitions[c.partition as usize].len());
        Ok(match (sent, more) {
            (0, false) => Poll::Finished,
            (0, true) => Poll::Idle,
            _ => Poll::Busy,
        })
    }

    fn stop(&mut self) {
        self.stopped = true;
    }

    fn progress(&mut self, report: &mut dyn FnMut(Progress)) {
        for progress in self.progress.drain(..) {
            report(progress);
        }
    }

    fn commit(&mut self, offsets: &Offsets, _wait: bool) -> Result<(), crate::source::SourceError> {
        if let Some(hook) = &self.topic.on_commit {
            hook(offsets).map_err(SourceError::Kafka)?;
        }
        if let Ok(mut commits) = self.topic.commits.lock() {
            commits.push((self.worker, offsets.clone()));
        }
        Ok(())
    }
}
