//! The Kafka floor of `hygroflow bench --brokers`: the same topic read by `threads` plain
//! rdkafka consumers that only count messages, with the engine's fetch settings, partition `p`
//! going to thread `p % threads` as the engine assigns them to workers. What the engine at
//! that many workers is measured against.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeVal;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::{partitions, ClientLog, ClientSettings};
use crate::source::kafka::{FETCH_QUEUE_BACKOFF, FETCH_WAIT};

/// How long one reading of the topic may take.
const LIMIT: Duration = Duration::from_secs(300);

struct FloorContext {
    log: ClientLog,
}

crate::kafka::log_through!(FloorContext, log);

impl rdkafka::consumer::ConsumerContext for FloorContext {}

/// What one reading of the topic took.
#[derive(Debug, Clone, Copy)]
pub(super) struct FloorRun {
    /// Messages read.
    pub(super) messages: u64,
    /// Wall time from the first consumer's start to the last one's end.
    pub(super) wall_s: f64,
    /// User plus system CPU time of this process meanwhile (the consumers and librdkafka's
    /// threads), to set beside the engine's.
    pub(super) cpu_s: f64,
}

/// This process's CPU time so far, in seconds.
fn cpu_time() -> anyhow::Result<f64> {
    let usage = getrusage(UsageWho::RUSAGE_SELF)?;
    let seconds = |t: TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(seconds(usage.user_time()) + seconds(usage.system_time()))
}

/// Reads the whole topic with `threads` consumers.
pub(super) fn consume_floor(
    settings: &ClientSettings,
    topic: &str,
    threads: usize,
) -> anyhow::Result<FloorRun> {
    let cpu_before = cpu_time()?;
    let started = Instant::now();
    let counts = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|index| scope.spawn(move || count(settings, topic, index, threads.max(1))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a floor consumer panicked"))?)
            .collect::<anyhow::Result<Vec<(u64, Instant)>>>()
    })?;
    let finished = counts.iter().map(|c| c.1).max().unwrap_or(started);
    Ok(FloorRun {
        messages: counts.iter().map(|c| c.0).sum(),
        wall_s: finished.duration_since(started).as_secs_f64(),
        // Includes the consumers' close (100 ms of waiting, little CPU).
        cpu_s: cpu_time()? - cpu_before,
    })
}

/// One consumer: counts the messages of its partitions up to their end-of-partition events,
/// and says when it had them all. Its close (rdkafka's drop of a consumer with a group id
/// takes 100 ms) comes after and is not timed, as the engine does not wait for it either.
fn count(
    settings: &ClientSettings,
    topic: &str,
    index: usize,
    threads: usize,
) -> anyhow::Result<(u64, Instant)> {
    let config = settings.config(&[
        ("group.id", "hygroflow-bench-floor"),
        ("enable.auto.commit", "false"),
        ("enable.partition.eof", "true"),
        // The engine's fetch settings (see src/source/kafka.rs for the figures behind them).
        FETCH_WAIT,
        FETCH_QUEUE_BACKOFF,
    ]);
    let context = FloorContext {
        log: ClientLog::new(settings.redactor(), "bench"),
    };
    let consumer: BaseConsumer<FloorContext> = settings.create(&config, context)?;
    let all = partitions(consumer.client(), topic, Duration::from_secs(10))
        .context("the floor's metadata")?
        .ok_or_else(|| anyhow!("topic {topic} is missing"))?;
    let mine: Vec<i32> = all
        .into_iter()
        .filter(|p| (*p as usize) % threads == index)
        .collect();
    let mut assignment = TopicPartitionList::new();
    for p in &mine {
        assignment.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut open: HashSet<i32> = mine.into_iter().collect();
    let (mut messages, mut bytes) = (0u64, 0usize);
    let deadline = Instant::now() + LIMIT;
    while !open.is_empty() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                messages += 1;
                bytes += message.payload().map_or(0, <[u8]>::len);
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(error)) => return Err(error.into()),
            None => {}
        }
    }
    anyhow::ensure!(
        open.is_empty(),
        "the floor did not reach the end of {topic} in time"
    );
    // Read the payloads, as the engine does: keep the count honest.
    std::hint::black_box(bytes);
    Ok((messages, Instant::now()))
}
