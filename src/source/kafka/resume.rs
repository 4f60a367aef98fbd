//! The resume guard: a partition resumed from a checkpointed offset starts exactly there.
//!
//! Kafka answers a fetch from offset `o` with the record batch that holds `o` (the client drops
//! the records before `o`). Some brokers and proxies answer with the *next* batch when `o` is
//! inside a batch: Tansu does (see `shared/notes/kafka-broker.md`). Resuming from a checkpoint
//! in the middle of a batch would then silently skip the batch's tail. So after a resume, the
//! first record of the partition is checked: if it is past the wanted offset, the fetch position
//! is stepped back until the first record returned is at or before it; the records before the
//! wanted offset are then skipped. The first step is as far back as the first record was
//! ahead (the batch's tail is a fair guess at a batch's size), each further one twice the last. Only when a fetch
//! from the partition's start still begins past the wanted offset are the records really gone
//! (deleted by retention, say), and that is an error: nothing is silently lost.
//!
//! A resume inside the partition's *last* batch gets no record at all from such a broker (there
//! is no next batch) and no end-of-partition event either (the fetch is before the end): the
//! partition would stall. So a guarded partition that hears nothing for a while is stepped
//! back too ([`ResumeGuard::on_silence`]), first to where the broker says its last batch
//! starts (Tansu reports a partition's end as that start plus one).

/// What to do with a record of a guarded partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Hand it over: the partition is at the wanted offset (the guard's work is done).
    Deliver,
    /// Drop it: it is before the wanted offset.
    Skip,
    /// Drop it and fetch again from this offset.
    Seek(i64),
    /// The records from the wanted offset up to this one are not on the broker.
    GiveUp(i64),
}

/// One resumed partition's guard.
#[derive(Clone, Debug)]
pub(crate) struct ResumeGuard {
    /// The checkpointed offset: the next record to ingest.
    wanted: i64,
    /// The partition's first offset (its low watermark).
    low: i64,
    /// Where the last fetch started.
    from: i64,
    /// How far before `wanted` the last fetch started.
    step: i64,
    /// Times the fetch position was stepped back.
    steps: u32,
    /// A fetch has returned a record at or before `wanted`: now skipping up to it.
    found: bool,
    /// The partition's end as the broker reported it at the resume.
    reported_end: i64,
}

impl ResumeGuard {
    /// A partition resumed at `wanted` whose first offset is `low`.
    pub(crate) fn new(wanted: i64, low: i64) -> Self {
        ResumeGuard {
            wanted,
            low,
            from: wanted,
            step: 0,
            steps: 0,
            found: false,
            reported_end: i64::MAX,
        }
    }

    /// The partition's end as the broker reports it.
    pub(crate) fn with_reported_end(mut self, end: i64) -> Self {
        self.reported_end = end;
        self
    }

    /// Nothing came for a while, no record and no end: steps back, or `None` when the fetch
    /// is already at the partition's start or has found its place.
    pub(crate) fn on_silence(&mut self) -> Option<i64> {
        if self.found || self.from <= self.low {
            return None;
        }
        self.step = if self.step == 0 {
            (self.wanted - self.reported_end.saturating_sub(1)).max(1)
        } else {
            self.step.saturating_mul(2)
        };
        self.steps += 1;
        self.from = self.wanted.saturating_sub(self.step).max(self.low);
        Some(self.from)
    }

    /// The offset the partition was resumed at.
    pub(crate) fn wanted(&self) -> i64 {
        self.wanted
    }

    /// Times the fetch position was stepped back.
    pub(crate) fn steps_back(&self) -> u32 {
        self.steps
    }

    /// The partition's next record is at `offset`.
    pub(crate) fn on_record(&mut self, offset: i64) -> Step {
        if self.found || offset <= self.wanted {
            self.found = true;
            return if offset < self.wanted {
                Step::Skip
            } else {
                Step::Deliver
            };
        }
        // The fetch began past the wanted offset.
        if self.from <= self.low {
            return Step::GiveUp(offset);
        }
        self.step = if self.step == 0 {
            (offset - self.wanted).max(1)
        } else {
            self.step.saturating_mul(2)
        };
        self.steps += 1;
        self.from = self.wanted.saturating_sub(self.step).max(self.low);
        Step::Seek(self.from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A partition of record batches, `(first offset, records)`, answering fetches as Tansu
    /// does (`next_batch_inside`: a fetch from inside a batch gets the next batch) or as Kafka
    /// does (the batch holding the offset, the records before it dropped by the client).
    struct Partition {
        batches: Vec<(i64, i64)>,
        next_batch_inside: bool,
    }

    impl Partition {
        fn fetch(&self, from: i64) -> Vec<i64> {
            let mut out = Vec::new();
            for &(start, len) in &self.batches {
                let end = start + len;
                if end <= from {
                    continue;
                }
                if start < from && self.next_batch_inside {
                    continue;
                }
                out.extend((start..end).filter(|o| *o >= from));
            }
            out
        }

        fn end(&self) -> i64 {
            self.batches.last().map_or(0, |(s, l)| s + l)
        }
    }

    /// Resumes `partition` at `wanted` with a guard: the offsets delivered, or the give-up.
    fn resume(partition: &Partition, wanted: i64) -> Result<(Vec<i64>, u32), i64> {
        let low = partition.batches.first().map_or(0, |(s, _)| *s);
        let mut guard = ResumeGuard::new(wanted, low);
        let mut records = partition.fetch(wanted);
        let mut delivered = Vec::new();
        let mut i = 0;
        while i < records.len() {
            let offset = records[i];
            i += 1;
            if !delivered.is_empty() {
                delivered.push(offset);
                continue;
            }
            match guard.on_record(offset) {
                Step::Deliver => delivered.push(offset),
                Step::Skip => {}
                Step::Seek(from) => {
                    records = partition.fetch(from);
                    i = 0;
                }
                Step::GiveUp(first) => return Err(first),
            }
        }
        Ok((delivered, guard.steps_back()))
    }

    fn batches(sizes: &[i64]) -> Vec<(i64, i64)> {
        let mut start = 0;
        sizes
            .iter()
            .map(|&len| {
                let batch = (start, len);
                start += len;
                batch
            })
            .collect()
    }

    #[test]
    fn a_resume_inside_a_batch_on_a_tansu_like_broker_loses_nothing() {
        let tansu = Partition {
            batches: batches(&[1_000, 4_096, 3, 10_000, 1, 7_000]),
            next_batch_inside: true,
        };
        for wanted in [
            0, 1, 999, 1_000, 1_001, 5_095, 5_096, 5_097, 5_098, 12_345, 15_099,
        ] {
            let (delivered, steps) = resume(&tansu, wanted).expect("resumes");
            assert_eq!(
                delivered,
                (wanted..tansu.end()).collect::<Vec<_>>(),
                "{wanted}"
            );
            // A first step as long as the batch's tail, then doubling: a few steps at most.
            assert!(steps <= 15, "{wanted}: {steps} steps");
            if wanted == 1_001 {
                assert_eq!(steps, 1, "the tail (4095) is a step past the batch's start");
            }
        }
        // Without the guard the tail of the batch would be gone.
        assert_eq!(tansu.fetch(1_001).first(), Some(&5_096));
    }

    #[test]
    fn a_kafka_like_broker_needs_no_step_back() {
        let kafka = Partition {
            batches: batches(&[1_000, 4_096, 3]),
            next_batch_inside: false,
        };
        for wanted in [0, 500, 1_000, 5_000] {
            let (delivered, steps) = resume(&kafka, wanted).expect("resumes");
            assert_eq!(delivered, (wanted..kafka.end()).collect::<Vec<_>>());
            assert_eq!(steps, 0);
        }
    }

    #[test]
    fn records_gone_from_the_partition_start_are_an_error_not_a_silent_skip() {
        // Retention deleted offsets 0..2000: the partition now starts at 2000.
        let trimmed = Partition {
            batches: vec![(2_000, 500), (2_500, 500)],
            next_batch_inside: true,
        };
        assert_eq!(resume(&trimmed, 1_500), Err(2_000));
        // Resuming inside the first remaining batch still works.
        let (delivered, _) = resume(&trimmed, 2_100).expect("resumes");
        assert_eq!(delivered.first(), Some(&2_100));
    }

    #[test]
    fn a_resume_inside_the_last_batch_of_a_tansu_like_broker_steps_back_when_nothing_comes() {
        let tansu = Partition {
            batches: batches(&[1_000, 4_096, 100]),
            next_batch_inside: true,
        };
        // Tansu reports the end as the last batch's start plus one.
        let reported_end = 5_097;
        for wanted in [5_097, 5_100, 5_195] {
            let mut guard = ResumeGuard::new(wanted, 0).with_reported_end(reported_end);
            assert!(tansu.fetch(wanted).is_empty(), "nothing, and no end");
            let from = guard.on_silence().expect("steps back");
            assert_eq!(from, 5_096, "to the last batch's start at once");
            let mut delivered = Vec::new();
            for offset in tansu.fetch(from) {
                match guard.on_record(offset) {
                    Step::Deliver => delivered.push(offset),
                    Step::Skip => {}
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(delivered, (wanted..5_196).collect::<Vec<_>>());
            assert_eq!(guard.on_silence(), None, "found: no more steps");
        }
        let mut at_start = ResumeGuard::new(0, 0);
        assert_eq!(at_start.on_silence(), None);
    }
}
