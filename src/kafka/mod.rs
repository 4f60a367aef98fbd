//! Kafka plumbing shared by the source, the sinks and the tools: client settings from
//! kcat-style flags (`-b`, `-X key=value`), with the broker list checked and the `-X` values
//! kept out of every error and log line ([`redact`]). What the clients share once created
//! (their context, the metadata lookup, sending when the queue is full) is in [`client`].

pub mod admin;
pub(crate) mod client;
pub(crate) mod outage;
pub mod produce;
pub(crate) mod publisher;
pub(crate) mod readback;
pub mod redact;
pub(crate) mod tail;

pub(crate) use client::log_through;
pub(crate) use client::{enqueue, partitions, topic_partitions, ClientLog};

use std::fmt;

use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::ClientContext;

use redact::{CreateError, Redactor};

/// The longest librdkafka waits between two attempts to connect to a broker (its default:
/// 10 s, reached after about 6 s of failed attempts). With the default, after a 10 s network
/// cut (tests/broker_faults.rs) the job's clients reconnected up to 9 s after the network came
/// back, and a worker waiting for its dead letters to be acknowledged waited that long too.
/// The cost: while a broker is down, each client tries it once a second instead of every
/// 10 s. `-X reconnect.backoff.max.ms=...` overrides it.
pub const RECONNECT_BACKOFF_MAX: (&str, &str) = ("reconnect.backoff.max.ms", "1000");

/// The first wait before reconnecting to a broker (librdkafka's default: 100 ms). librdkafka
/// also derives from it the interval at which a client may open a connection for a request
/// that needs "any broker" (half of it, at least 11 ms): a new client learns the broker's id
/// from its bootstrap connection, drops that one, and its next metadata request waits out the
/// interval, 50 ms with the default (its debug log: "still suppressed for 49ms: application
/// metadata request"). A Kafka run makes four such clients in a row before its workers read:
/// `run --until-end` of 1,000 messages in 4 partitions at 2 workers (Tansu) took 0.17-0.27 s
/// with the default and 0.09 s with 10 ms. The cost: a lost broker is tried again after
/// 10 ms, 20 ms, 40 ms, ... instead of 100 ms, 200 ms, ... (up to [`RECONNECT_BACKOFF_MAX`]).
/// `-X reconnect.backoff.ms=...` overrides it.
pub const RECONNECT_BACKOFF: (&str, &str) = ("reconnect.backoff.ms", "10");

/// A `-X key=value` librdkafka property. Its `Debug` hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Property {
    /// The librdkafka property name.
    pub key: String,
    /// Its value.
    pub value: String,
}

impl fmt::Debug for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=***", self.key)
    }
}

/// Parses `key=value` for `-X`. The error does not repeat the text: it may hold a value.
pub fn parse_property(text: &str) -> Result<Property, String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok(Property {
            key: key.trim().to_owned(),
            value: value.to_owned(),
        }),
        _ => Err("expected key=value (a librdkafka property) with a non-empty key".to_owned()),
    }
}

/// The keys of `properties`, for logs: `-X` values are never shown.
pub fn keys(properties: &[Property]) -> String {
    properties
        .iter()
        .map(|p| p.key.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What is wrong with a `-b` broker list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokersError {
    /// The list is empty.
    #[error("no brokers given (-b host:port)")]
    Empty,
    /// An entry of the list is empty (`a:1,`).
    #[error("empty broker address in -b {0:?}")]
    EmptyAddress(String),
    /// An entry has an empty host, a host with spaces or control characters, or a port that is
    /// not a number from 1 to 65535.
    #[error("broker address {0:?} is not host:port (port 1 to 65535)")]
    NotHostPort(String),
}

/// Catches the `-b` mistakes librdkafka would not report clearly: an empty list or entry, a
/// host with spaces or control characters (`-b "not a broker"`, retried forever otherwise), and
/// a port that is not a number from 1 to 65535 (librdkafka silently wraps 99999 to 34463).
/// Other hosts are left to the resolver, and an unreachable broker to librdkafka's retries.
pub fn check_brokers(brokers: &str) -> Result<(), BrokersError> {
    if brokers.trim().is_empty() {
        return Err(BrokersError::Empty);
    }
    for entry in brokers.split(',').map(str::trim) {
        let address = entry.split_once("://").map_or(entry, |(_, rest)| rest);
        if address.is_empty() {
            return Err(BrokersError::EmptyAddress(brokers.to_owned()));
        }
        if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(BrokersError::NotHostPort(entry.to_owned()));
        }
        if let Some((host, port)) = address.rsplit_once(':') {
            if host.is_empty() || !port.parse::<u16>().is_ok_and(|p| p > 0) {
                return Err(BrokersError::NotHostPort(entry.to_owned()));
            }
        }
    }
    Ok(())
}

/// Parses `-b` for clap: the list as given, once [`check_brokers`] accepts it.
pub fn parse_brokers(text: &str) -> Result<String, BrokersError> {
    check_brokers(text)?;
    Ok(text.to_owned())
}

/// What is wrong with a topic name (Kafka's rules: 1 to 249 of `a-z A-Z 0-9 . _ -`, not `.`
/// or `..`). A name the broker could never hold is a flag error, not a missing topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The name is empty.
    #[error("a topic name cannot be empty")]
    Empty,
    /// The name is longer than Kafka allows.
    #[error("topic name is {0} characters long; Kafka allows at most 249")]
    TooLong(usize),
    /// The name has a character Kafka refuses, or is `.` or `..`.
    #[error("topic name {0:?} is not allowed: Kafka takes only letters, digits, '.', '_' and '-' (and not . or ..)")]
    Invalid(String),
}

/// Parses a topic name for clap (`-t`, `--dlq-topic`, `--results-topic`).
pub fn parse_topic(text: &str) -> Result<String, TopicError> {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if text.is_empty() {
        Err(TopicError::Empty)
    } else if !text.chars().all(valid) || text == "." || text == ".." {
        Err(TopicError::Invalid(text.to_owned()))
    } else if text.len() > 249 {
        Err(TopicError::TooLong(text.len()))
    } else {
        Ok(text.to_owned())
    }
}

/// The brokers and the user's `-X` properties: the one owner of the values. Every Kafka client
/// is configured and created here, and the errors of its creation, like the log lines of its
/// [`ClientLog`] (made with [`ClientSettings::redactor`]), show the keys, never the values.
#[derive(Clone)]
pub struct ClientSettings {
    brokers: String,
    properties: Vec<Property>,
    redactor: Redactor,
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSettings")
            .field("brokers", &self.brokers)
            .field("properties", &self.properties)
            .finish()
    }
}

impl ClientSettings {
    /// The settings of clients of `brokers` with the `-X` `properties`.
    pub fn new(brokers: &str, properties: &[Property]) -> Self {
        ClientSettings {
            brokers: brokers.to_owned(),
            properties: properties.to_vec(),
            redactor: Redactor::new(properties),
        }
    }

    /// The `-b` broker list.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// A librdkafka configuration: hygroflow's settings for every client, its `defaults` for
    /// this one, then the brokers and the user's `-X` properties, so that those can override
    /// anything hygroflow sets.
    pub fn config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        // Back within a second of a broker that comes back (see the constant).
        config.set(RECONNECT_BACKOFF_MAX.0, RECONNECT_BACKOFF_MAX.1);
        // Start-up 0.17-0.27 s -> 0.09 s: no 50 ms wait per new client (see the constant).
        config.set(RECONNECT_BACKOFF.0, RECONNECT_BACKOFF.1);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        config.set("bootstrap.servers", &self.brokers);
        for p in &self.properties {
            config.set(&p.key, &p.value);
        }
        config
    }

    /// What takes the `-X` values out of a client's log lines (for its [`ClientLog`]).
    pub fn redactor(&self) -> Redactor {
        self.redactor.clone()
    }

    /// Creates a client from `config` (one of [`ClientSettings::config`]): librdkafka's refusal
    /// names the property, never a value.
    pub fn create<C, T>(&self, config: &ClientConfig, context: C) -> Result<T, CreateError>
    where
        C: ClientContext,
        T: FromClientConfigAndContext<C>,
    {
        config
            .create_with_context(context)
            .map_err(|e| CreateError::new(e, &self.redactor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_and_only_their_keys_are_shown() {
        let p = parse_property("sasl.password=hunter2").expect("valid");
        assert_eq!(p.key, "sasl.password");
        assert_eq!(p.value, "hunter2");
        let q = parse_property("fetch.min.bytes=1=2").expect("valid");
        assert_eq!(q.value, "1=2");
        assert!(parse_property("novalue").is_err());
        assert!(parse_property("=x").is_err());
        assert_eq!(
            keys(&[p.clone(), q.clone()]),
            "sasl.password fetch.min.bytes"
        );
        let settings = ClientSettings::new("k:9092", &[p.clone(), q]);
        assert_eq!(
            format!("{p:?} {settings:?}"),
            r#"sasl.password=*** ClientSettings { brokers: "k:9092", properties: [sasl.password=***, fetch.min.bytes=***] }"#
        );
    }

    #[test]
    fn the_users_properties_override_hygroflows_defaults() {
        let p = parse_property("group.id=mine").expect("valid");
        let config = ClientSettings::new("k:9092", &[p]).config(&[("group.id", "g"), ("a", "b")]);
        assert_eq!(config.get("group.id"), Some("mine"));
        assert_eq!(config.get("a"), Some("b"));
        assert_eq!(config.get("bootstrap.servers"), Some("k:9092"));
        assert_eq!(config.get("reconnect.backoff.max.ms"), Some("1000"));
        let p = parse_property("reconnect.backoff.max.ms=10000").expect("valid");
        let config = ClientSettings::new("k:9092", &[p]).config(&[]);
        assert_eq!(config.get("reconnect.backoff.max.ms"), Some("10000"));
    }

    #[test]
    fn broker_lists_are_checked_for_what_librdkafka_would_hide() {
        for good in [
            "localhost:9092",
            "a:1,b:2",
            "[::1]:9092",
            "PLAINTEXT://k:9092",
            "kafka",
        ] {
            assert!(check_brokers(good).is_ok(), "{good}");
            assert_eq!(parse_brokers(good).as_deref(), Ok(good));
        }
        for bad in [
            "",
            " ",
            "a:1,",
            "h:99999",
            "h:0",
            "a:b:c",
            ":9092",
            "h:",
            "not a broker",
            "h\t:9092",
        ] {
            assert!(check_brokers(bad).is_err(), "{bad}");
            assert!(parse_brokers(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topic_names_follow_kafkas_rules() {
        for good in ["humidityanalytics", "a.dlq", "A-b_c.9", &"t".repeat(249)] {
            assert_eq!(parse_topic(good).as_deref(), Ok(good));
        }
        assert_eq!(parse_topic(""), Err(TopicError::Empty));
        assert_eq!(parse_topic(&"t".repeat(250)), Err(TopicError::TooLong(250)));
        for bad in [".", "..", "a b", "a/b", "é", "t\n"] {
            assert!(
                matches!(parse_topic(bad), Err(TopicError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
