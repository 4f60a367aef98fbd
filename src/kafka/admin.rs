//! `hygroflow topic create|describe`: topics, partitions, end offsets and consumer-group lag.

use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use futures_executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::{ClientLog, ClientSettings, Property};

/// Flags of `topic`.
#[derive(Debug, Args)]
pub struct TopicArgs {
    /// What to do with the topic.
    #[command(subcommand)]
    pub action: TopicAction,
}

/// `topic` actions.
#[derive(Debug, Subcommand)]
pub enum TopicAction {
    /// Create a topic.
    Create(CreateArgs),
    /// Show partitions, end offsets and a group's committed offsets (lag).
    Describe(DescribeArgs),
}

/// Flags of `topic create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Bootstrap brokers, host:port[,host:port...].
    #[arg(short = 'b', long, value_parser = super::parse_brokers)]
    pub brokers: String,
    /// Topic name.
    #[arg(short = 't', long, value_parser = super::parse_topic)]
    pub topic: String,
    /// Number of partitions, 1 to 10000.
    #[arg(
        long,
        default_value_t = 1,
        allow_negative_numbers = true,
        value_parser = crate::flags::whole::<i32>(1, MAX_PARTITIONS)
    )]
    pub partitions: i32,
    /// Replication factor, 1 to 100 (at most the number of brokers).
    #[arg(
        long,
        default_value_t = 1,
        allow_negative_numbers = true,
        value_parser = crate::flags::whole::<i32>(1, 100)
    )]
    pub replication: i32,
    /// librdkafka property passed through, key=value (repeatable).
    #[arg(short = 'X', value_parser = super::parse_property)]
    pub properties: Vec<Property>,
}

/// Flags of `topic describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Bootstrap brokers, host:port[,host:port...].
    #[arg(short = 'b', long, value_parser = super::parse_brokers)]
    pub brokers: String,
    /// Topic name.
    #[arg(short = 't', long, value_parser = super::parse_topic)]
    pub topic: String,
    /// Consumer group whose committed offsets (and lag) to show.
    #[arg(
        short = 'g',
        long,
        default_value = "hygroflow",
        value_parser = crate::flags::name
    )]
    pub group: String,
    /// librdkafka property passed through, key=value (repeatable).
    #[arg(short = 'X', value_parser = super::parse_property)]
    pub properties: Vec<Property>,
}

/// The most partitions `topic create` and `bench --partitions` ask for.
pub const MAX_PARTITIONS: u64 = 10_000;

/// How long one request to the broker may take before the command gives up.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a `topic` action.
pub fn run(args: &TopicArgs) -> anyhow::Result<()> {
    match &args.action {
        TopicAction::Create(args) => create(args),
        TopicAction::Describe(args) => {
            let table = describe(args)?;
            print!("{table}");
            Ok(())
        }
    }
}

/// Creates the topic with the broker's CreateTopics request.
fn create(args: &CreateArgs) -> anyhow::Result<()> {
    tracing::debug!(
        brokers = %args.brokers,
        topic = %args.topic,
        properties = %super::keys(&args.properties),
        "creating topic"
    );
    let settings = ClientSettings::new(&args.brokers, &args.properties);
    match create_topic(&settings, &args.topic, (args.partitions, args.replication))? {
        Created::New => {}
        Created::AlreadyThere => bail!("topic {} already exists on {}", args.topic, args.brokers),
    }
    println!(
        "created topic {} with {} partition{}",
        args.topic,
        args.partitions,
        if args.partitions == 1 { "" } else { "s" }
    );
    Ok(())
}

/// How a CreateTopics request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The topic was created.
    New,
    /// It existed already.
    AlreadyThere,
}

/// Creates `topic` with `partitions` and `replication`, waiting until the broker has it.
pub fn create_topic(
    settings: &ClientSettings,
    topic: &str,
    (partitions, replication): (i32, i32),
) -> anyhow::Result<Created> {
    let admin: AdminClient<ClientLog> = settings
        .create(&settings.config(&[]), ClientLog::quiet(settings.redactor()))
        .context("cannot create the Kafka admin client")?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let options = AdminOptions::new()
        // Give up on an unreachable broker after TIMEOUT rather than librdkafka's 60 s default.
        .request_timeout(Some(TIMEOUT))
        // Wait for the topic to exist on the broker before reporting success.
        .operation_timeout(Some(TIMEOUT));
    let results = match block_on(admin.create_topics([&new], &options)) {
        Ok(results) => results,
        Err(e) => bail!(
            "cannot create topic {topic} on {} (no answer within {TIMEOUT:?}?): {e}{}",
            settings.brokers(),
            admin.inner().context().suffix()
        ),
    };
    let mut created = Created::New;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => created = Created::AlreadyThere,
            Err((name, code)) => {
                bail!(
                    "cannot create topic {name} on {}: {code}",
                    settings.brokers()
                )
            }
        }
    }
    Ok(created)
}

/// Creates the output topic `topic` (named by `flag`) that the job found missing, with one
/// partition, as Kafka Connect creates its dead-letter queue; says so in a warning, since a
/// misspelt name also ends here. A broker that refuses is a one-line error naming the topic.
pub fn create_missing(settings: &ClientSettings, topic: &str, flag: &str) -> anyhow::Result<()> {
    let created = create_topic(settings, topic, (1, 1))
        .with_context(|| format!("{flag} {topic} does not exist and could not be created"))?;
    if created == Created::New {
        tracing::warn!(%topic, flag, partitions = 1, "created the missing output topic");
    }
    Ok(())
}

/// One partition's row of `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    partition: i32,
    low: i64,
    high: i64,
    committed: Option<i64>,
}

impl Row {
    /// Messages the group has still to read; unknown when it committed nothing.
    fn lag(&self) -> Option<i64> {
        self.committed.map(|c| (self.high - c).max(0))
    }
}

/// Reads the partitions, their offsets and the group's committed offsets, as a table.
///
/// The high (end) offset is what the broker reports (ListOffsets, via librdkafka's watermark
/// query), and so is the lag computed from it. Tansu 0.6.0 reports the start of a partition's
/// last record batch plus one instead of the true end (see `shared/notes/kafka-broker.md`), so
/// against Tansu both columns can be short by up to one batch. This command does not read the
/// topic to correct them: to know where a partition really ends, consume it until the
/// end-of-partition event.
fn describe(args: &DescribeArgs) -> anyhow::Result<String> {
    let settings = ClientSettings::new(&args.brokers, &args.properties);
    let mut config = settings.config(&[]);
    config
        // Committed offsets are looked up per consumer group.
        .set("group.id", &args.group)
        // describe only looks: it never commits, so it cannot move the group's offsets.
        .set("enable.auto.commit", "false");
    tracing::debug!(
        brokers = %args.brokers,
        topic = %args.topic,
        group = %args.group,
        properties = %super::keys(&args.properties),
        "describing topic"
    );
    let consumer: BaseConsumer<ClientLog> = settings
        .create(&config, ClientLog::quiet(settings.redactor()))
        .context("cannot create the Kafka consumer")?;
    let partitions = super::topic_partitions(
        consumer.client(),
        consumer.context(),
        &args.brokers,
        &args.topic,
        TIMEOUT,
        // Connection errors wait as events on the consumer's queue: serving them hands them
        // to the context, which keeps the last one for the message. The consumer is assigned
        // nothing, so the poll returns no message.
        || {
            let _ = consumer.poll(Duration::ZERO);
        },
    )?;

    let mut wanted = TopicPartitionList::new();
    for &p in &partitions {
        wanted.add_partition(&args.topic, p);
    }
    let committed = consumer
        .committed_offsets(wanted, TIMEOUT)
        .with_context(|| format!("cannot read the committed offsets of group {}", args.group))?;
    let mut rows = Vec::with_capacity(partitions.len());
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(&args.topic, p, TIMEOUT)
            .with_context(|| format!("cannot read the offsets of {} partition {p}", args.topic))?;
        let committed = committed
            .find_partition(&args.topic, p)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        rows.push(Row {
            partition: p,
            low,
            high,
            committed,
        });
    }
    Ok(table(&args.topic, &args.group, &rows))
}

/// The `describe` table: a title line, a header, one row per partition, and a total.
fn table(topic: &str, group: &str, rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let dash = || "-".to_owned();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "topic {topic}: {} partition{}, group {group}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        out,
        "{:>9} {:>12} {:>12} {:>12} {:>12}",
        "partition", "low", "high", "committed", "lag"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:>9} {:>12} {:>12} {:>12} {:>12}",
            row.partition,
            row.low,
            row.high,
            row.committed.map_or_else(dash, |c| c.to_string()),
            row.lag().map_or_else(dash, |l| l.to_string()),
        );
    }
    let lags: Vec<i64> = rows.iter().filter_map(Row::lag).collect();
    let _ = writeln!(
        out,
        "{:>9} {:>12} {:>12} {:>12} {:>12}",
        "total",
        rows.iter().map(|r| r.low).sum::<i64>(),
        rows.iter().map(|r| r.high).sum::<i64>(),
        "-",
        if lags.is_empty() {
            dash()
        } else {
            lags.iter().sum::<i64>().to_string()
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_lag_only_where_the_group_committed() {
        let rows = [
            Row {
                partition: 0,
                low: 0,
                high: 10,
                committed: Some(7),
            },
            Row {
                partition: 1,
                low: 2,
                high: 5,
                committed: None,
            },
        ];
        let text = table("t", "g", &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "topic t: 2 partitions, group g");
        let words: Vec<Vec<&str>> = lines
            .iter()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(words[1], ["partition", "low", "high", "committed", "lag"]);
        assert_eq!(words[2], ["0", "0", "10", "7", "3"]);
        assert_eq!(words[3], ["1", "2", "5", "-", "-"]);
        assert_eq!(words[4], ["total", "2", "15", "-", "3"]);
    }
}
