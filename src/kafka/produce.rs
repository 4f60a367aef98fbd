//! `hygroflow produce`: JSON lines into a topic, keyed by `guid`.
//!
//! Each line of the input becomes one message, byte for byte (a trailing `\r` is dropped):
//! - a line that is a valid reading is keyed by its `guid`, so one sensor's readings stay in
//!   one partition, in order;
//! - a malformed line is sent too, without a key: those are the test data for the engine's
//!   dead-letter path. An empty line becomes an empty message for the same reason (a final
//!   newline at the end of the input does not make an extra, empty line).
//!
//! Delivery is checked, not assumed: the producer counts every delivery report, and the
//! command fails when any message could not be delivered once the queue has been flushed.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::{ClientLog, ClientSettings, Property};
use crate::message::{parse, DEFAULT_MAX_MESSAGE_BYTES};

/// Flags of `produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Bootstrap brokers, host:port[,host:port...].
    #[arg(short = 'b', long, value_parser = super::parse_brokers)]
    pub brokers: String,
    /// Topic to write to.
    #[arg(short = 't', long, value_parser = super::parse_topic)]
    pub topic: String,
    /// JSON lines to send (`-` for stdin).
    #[arg(value_name = "FILE", value_parser = crate::flags::path)]
    pub input: PathBuf,
    /// Messages per second, 1 to 10000000 (default: as fast as possible).
    #[arg(
        long,
        allow_negative_numbers = true,
        value_parser = crate::flags::whole::<u64>(1, crate::flags::MAX_RATE)
    )]
    pub rate: Option<u64>,
    /// librdkafka property passed through, key=value (repeatable).
    #[arg(short = 'X', value_parser = super::parse_property)]
    pub properties: Vec<Property>,
}

/// The longest wait for the topic's metadata before the first message. A `message.timeout.ms`
/// below it shortens it: a broker that cannot answer within the time one message may take to
/// be delivered would not have delivered that message either.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends the lines and prints a summary.
pub fn run(args: &ProduceArgs) -> anyhow::Result<()> {
    let (input, size) = open(&args.input)?;
    let settings = ClientSettings::new(&args.brokers, &args.properties);
    // A typo in -t must fail, not create a topic: hygroflow creates topics only explicitly.
    let config = settings.config(&[("allow.auto.create.topics", "false")]);
    tracing::debug!(
        brokers = %args.brokers,
        topic = %args.topic,
        properties = %super::keys(&args.properties),
        "starting producer"
    );
    let producer: BaseProducer<Tally> = settings
        .create(&config, Tally::new(ClientLog::quiet(settings.redactor())))
        .context("cannot create the Kafka producer")?;
    let metadata_timeout = config
        .get("message.timeout.ms")
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        // 0 means no timeout to librdkafka.
        .filter(|ms| *ms > 0)
        .map_or(METADATA_TIMEOUT, |ms| {
            METADATA_TIMEOUT.min(Duration::from_millis(ms))
        });
    // Fails with one line unless the broker answers and knows the topic.
    super::topic_partitions(
        producer.client(),
        &producer.context().log,
        &args.brokers,
        &args.topic,
        metadata_timeout,
        // Connection errors wait as events on the main queue: serve them to learn why.
        || producer.poll(Duration::ZERO),
    )?;

    let bar = progress_bar(size);
    let started = Instant::now();
    let sent = send_lines(&producer, &args.topic, input, args.rate, &bar, started);
    tracing::debug!(
        elapsed_s = started.elapsed().as_secs_f64(),
        in_flight = producer.in_flight_count(),
        "input sent, flushing"
    );
    // Even when reading failed, what was sent gets its delivery reports before we stop.
    let flushed = flush(&producer, &bar);
    bar.finish_and_clear();
    let sent = sent?;
    flushed?;
    let elapsed = started.elapsed().as_secs_f64();
    let tally = producer.context();
    let failed = tally.failed.load(Ordering::Relaxed) + sent.refused;
    let delivered = tally.delivered.load(Ordering::Relaxed);
    // The summary is for people; an unwritable stderr does not fail the command.
    let _ = writeln!(
        std::io::stderr(),
        "produced {delivered} messages ({} bytes) to {} in {elapsed:.2} s, {:.0} messages/s{}",
        tally.delivered_bytes.load(Ordering::Relaxed),
        args.topic,
        delivered as f64 / elapsed.max(1e-9),
        if failed > 0 {
            format!(", {failed} not delivered")
        } else {
            String::new()
        },
    );
    if failed > 0 {
        let first = tally
            .first_failure
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .or(sent.first_refusal)
            .unwrap_or_else(|| "no reason given".to_owned());
        bail!(
            "{failed} of {} messages were not delivered to {} on {} (first: {first}){}",
            sent.messages,
            args.topic,
            args.brokers,
            tally.log.suffix(),
        );
    }
    if delivered != sent.messages {
        bail!(
            "{} messages were sent but only {delivered} delivery reports arrived",
            sent.messages
        );
    }
    Ok(())
}

/// Waits until every message sent has its delivery report. That ends: librdkafka fails a
/// message message.timeout.ms after it was sent (noticed up to reconnect.backoff.max.ms late
/// while the broker is unreachable).
fn flush(producer: &BaseProducer<Tally>, bar: &ProgressBar) -> anyhow::Result<()> {
    loop {
        let in_flight = producer.in_flight_count();
        if in_flight == 0 {
            return Ok(());
        }
        bar.set_message(format!("waiting for {in_flight} delivery reports"));
        match producer.flush(Duration::from_millis(200)) {
            Ok(()) => return Ok(()),
            Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {}
            Err(e) => return Err(e).context("cannot flush the producer"),
        }
    }
}

/// What the send loop did.
struct Sent {
    /// Messages handed to the producer (including those it refused).
    messages: u64,
    /// Messages the producer refused to enqueue (counted as not delivered).
    refused: u64,
    /// Why the first refused message was refused.
    first_refusal: Option<String>,
}

/// Reads lines and hands each to the producer, pacing to `rate` messages per second.
fn send_lines(
    producer: &BaseProducer<Tally>,
    topic: &str,
    mut input: Box<dyn BufRead>,
    rate: Option<u64>,
    bar: &ProgressBar,
    started: Instant,
) -> anyhow::Result<Sent> {
    let mut sent = Sent {
        messages: 0,
        refused: 0,
        first_refusal: None,
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .context("cannot read input")?;
        if read == 0 {
            break;
        }
        let payload = strip_line_end(&line);
        if let Some(rate) = rate {
            // Message i leaves no earlier than i/rate seconds after the start; serving
            // delivery reports is how this waits.
            let due = started + Duration::from_secs_f64(sent.messages as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                producer.poll(due - now);
            }
        }
        let key = message_key(payload);
        let number = sent.messages as usize + 1;
        let mut record = BaseRecord::with_opaque_to(topic, number).payload(payload);
        if let Some(key) = &key {
            record = record.key(key.as_bytes());
        }
        if let Err(e) = super::enqueue(producer, record) {
            // Refused for this record alone (too large, for one): a per-record failure.
            sent.refused += 1;
            if sent.first_refusal.is_none() {
                sent.first_refusal = Some(format!("line {number}: {e}"));
            }
        }
        sent.messages += 1;
        producer.poll(Duration::ZERO);
        bar.inc(read as u64);
    }
    Ok(sent)
}

/// The line without its `\n` and a `\r` before it.
fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The key of a message: the reading's `guid` (unescaped) when the message is a valid reading.
fn message_key(payload: &[u8]) -> Option<Cow<'_, str>> {
    parse(payload, payload.len(), DEFAULT_MAX_MESSAGE_BYTES)
        .ok()
        .map(|reading| reading.guid)
}

/// Opens the input; its size when it is a regular file (for the progress bar).
fn open(path: &Path) -> anyhow::Result<(Box<dyn BufRead>, Option<u64>)> {
    if path.as_os_str() == "-" {
        return Ok((Box::new(BufReader::new(std::io::stdin())), None));
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let reader: Box<dyn Read> = Box::new(file);
    Ok((Box::new(BufReader::with_capacity(1 << 16, reader)), size))
}

/// A progress bar on stderr when stderr is a terminal, else a hidden one.
fn progress_bar(size: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match size {
        Some(size) => {
            let bar = ProgressBar::new(size);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec} {msg}")
            {
                bar.set_style(style);
            }
            bar
        }
    }
}

/// Counts delivery reports and remembers why things failed.
struct Tally {
    delivered: AtomicU64,
    delivered_bytes: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
    log: ClientLog,
}

impl Tally {
    fn new(log: ClientLog) -> Self {
        Tally {
            delivered: AtomicU64::new(0),
            delivered_bytes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_failure: Mutex::new(None),
            log,
        }
    }
}

super::log_through!(Tally, log);

impl ProducerContext for Tally {
    /// The input line number, for the message of a failure.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, line: usize) {
        match result {
            Ok(message) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.delivered_bytes
                    .fetch_add(message.payload_len() as u64, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_failure.lock() {
                    first.get_or_insert_with(|| format!("line {line}: {e}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_are_stripped_once() {
        assert_eq!(strip_line_end(b"{}\r\n"), b"{}");
        assert_eq!(strip_line_end(b"{}\n"), b"{}");
        assert_eq!(strip_line_end(b"{}"), b"{}");
        assert_eq!(strip_line_end(b"\n"), b"");
        assert_eq!(strip_line_end(b"\r\r\n"), b"\r");
    }

    #[test]
    fn valid_readings_are_keyed_by_guid_and_the_rest_are_not() {
        let valid = br#"{"guid":"g-1","medicalimagingdevice":"mri-2","payload":{"data":{"humidity":40.5}}}"#;
        assert_eq!(message_key(valid).as_deref(), Some("g-1"));
        let escaped = br#"{"guid":"g\u002d1","medicalimagingdevice":"mri-2","payload":{"data":{"humidity":1}}}"#;
        assert_eq!(message_key(escaped).as_deref(), Some("g-1"));
        let out_of_range =
            br#"{"guid":"g-1","medicalimagingdevice":"mri-2","payload":{"data":{"humidity":140}}}"#;
        assert_eq!(message_key(out_of_range), None);
        assert_eq!(message_key(b"not json"), None);
        assert_eq!(message_key(b""), None);
    }
}
