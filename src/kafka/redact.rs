//! The user's `-X` values, kept out of every error and log line: they name a property's key,
//! never its value, whatever the key (a misspelt `sasl.pasword` is as secret as the real one).
//!
//! librdkafka quotes values in two places: the error of a property it refuses
//! (`KafkaError::ClientConfig`, which carries the key and the value), and its log lines (a
//! warning such as ``sasl.mechanism` set to `X` but ...``, the `debug=conf` dump of every
//! property as `key = value`). [`CreateError`] rebuilds the first from the key alone, and
//! [`Redactor::scrub`] replaces the values in the second with `***` before `ClientLog` logs
//! or keeps them.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use rdkafka::error::KafkaError;

use super::Property;

/// What replaces a value.
const HIDDEN: &str = "***";

/// Values shorter than this are not searched for in free text: replacing every `1` of a log
/// line (for `-X acks=1`) would garble it. They are still hidden where librdkafka names them
/// with their key: in a refused property's error and in its configuration dump.
pub const MIN_SEARCHED_LEN: usize = 4;

/// Whether `c` continues a word: a value is replaced where it stands as a whole word, so that
/// `-X debug=conf` leaves "configured" alone but not "set to `conf`".
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `text` with every whole-word occurrence of `value` replaced by `***`, if there is one.
fn replace_word(text: &str, value: &str) -> Option<String> {
    let mut out = String::new();
    let mut copied = 0;
    for (at, _) in text.match_indices(value) {
        let end = at + value.len();
        let before = text[..at].chars().next_back();
        let after = text[end..].chars().next();
        if before.is_some_and(is_word) || after.is_some_and(is_word) {
            continue;
        }
        out.push_str(&text[copied..at]);
        out.push_str(HIDDEN);
        copied = end;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// Takes the `-X` values out of text from librdkafka. Cheap to clone (one per client context).
#[derive(Clone, Default)]
pub struct Redactor {
    /// The keys, for librdkafka's `key = value` configuration dump.
    keys: Arc<[String]>,
    /// The values searched for in free text, longest first (so that a value holding a shorter
    /// one is replaced whole).
    values: Arc<[String]>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor of the values of `properties`.
    pub fn new(properties: &[Property]) -> Self {
        let mut values: Vec<String> = properties
            .iter()
            .map(|p| p.value.clone())
            .filter(|v| v.chars().count() >= MIN_SEARCHED_LEN)
            .collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Redactor {
            keys: properties.iter().map(|p| p.key.clone()).collect(),
            values: values.into(),
        }
    }

    /// Whether `key` was given with `-X`.
    pub fn has_key(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }

    /// `text` with every `-X` value replaced by `***`: in a line of librdkafka's configuration
    /// dump (`  key = value`) of a `-X` key, whatever the value; anywhere else, every value of
    /// at least [`MIN_SEARCHED_LEN`] characters that stands as a whole word.
    pub fn scrub<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut text = Cow::Borrowed(text);
        if let Some(dumped) = self.dump_line(&text) {
            text = Cow::Owned(dumped);
        }
        for value in self.values.iter() {
            if let Some(replaced) = replace_word(&text, value) {
                text = Cow::Owned(replaced);
            }
        }
        text
    }

    /// `  key = ***` when `text` is librdkafka's dump line of a `-X` key.
    fn dump_line(&self, text: &str) -> Option<String> {
        let trimmed = text.trim_start();
        let (key, _value) = trimmed.split_once(" = ")?;
        self.has_key(key)
            .then(|| format!("{}{key} = {HIDDEN}", &text[..text.len() - trimmed.len()]))
    }
}

/// A Kafka client could not be created. The message names the property at fault, never a
/// value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CreateError(String);

impl CreateError {
    /// The error of librdkafka's refusal, without the values `redactor` holds, nor the value of
    /// the property it refused.
    pub fn new(error: KafkaError, redactor: &Redactor) -> Self {
        match error {
            KafkaError::ClientConfig(_, description, key, value) => {
                let why = hide_value(description.trim(), &value);
                let why = redactor.scrub(&why);
                if redactor.has_key(&key) {
                    CreateError(format!("-X {key}: {why}"))
                } else {
                    CreateError(format!("property {key}: {why}"))
                }
            }
            other => CreateError(redactor.scrub(&other.to_string()).into_owned()),
        }
    }
}

/// librdkafka's description of a refused property, without its value: quoted (`Invalid value
/// "X" for ...`) or parsed (`... value 7 is outside allowed range 1..5`).
fn hide_value(description: &str, value: &str) -> String {
    let mut text = if value.is_empty() {
        description.to_owned()
    } else {
        description.replace(value, HIDDEN)
    };
    const OUTSIDE: &str = " is outside allowed range";
    if let Some((head, tail)) = text.split_once(OUTSIDE) {
        if let Some((before, _number)) = head.rsplit_once(" value ") {
            text = format!("{before} value {HIDDEN}{OUTSIDE}{tail}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::types::RDKafkaConfRes;

    fn property(key: &str, value: &str) -> Property {
        Property {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn values_are_replaced_as_whole_words_in_free_text() {
        let redactor = Redactor::new(&[
            property("sasl.mechanism", "S3cr3tValue"),
            property("client.id", "S3cr3t"),
            property("acks", "1"),
        ]);
        assert_eq!(
            redactor.scrub(
                "Configuration property `sasl.mechanism` set to `S3cr3tValue` but `security.protocol` is not configured for SASL"
            ),
            "Configuration property `sasl.mechanism` set to `***` but `security.protocol` is not configured for SASL"
        );
        // The longer value first: no `***Value` left over.
        assert_eq!(
            redactor.scrub("S3cr3tValue#consumer-1 S3cr3t:S3cr3t"),
            "***#consumer-1 ***:***"
        );
        // A value inside a longer word is a different word.
        assert_eq!(
            Redactor::new(&[property("debug", "conf")])
                .scrub("set to `conf` but not configured; conf"),
            "set to `***` but not configured; ***"
        );
        // Short values are not searched for in free text.
        assert_eq!(
            redactor.scrub("127.0.0.1:9092/bootstrap: Connect failed"),
            "127.0.0.1:9092/bootstrap: Connect failed"
        );
        assert!(matches!(redactor.scrub("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_configuration_dump_hides_every_value_of_a_user_key() {
        let redactor = Redactor::new(&[property("acks", "1"), property("client.id", "abc")]);
        assert_eq!(redactor.scrub("  acks = 1"), "  acks = ***");
        assert_eq!(redactor.scrub("  client.id = abc"), "  client.id = ***");
        assert_eq!(redactor.scrub("  linger.ms = 5"), "  linger.ms = 5");
    }

    #[test]
    fn a_refused_property_is_named_by_its_key_only() {
        let redactor = Redactor::new(&[property("sasl.pasword", "S3cr3tValue")]);
        let refused = KafkaError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN,
            "No such configuration property: \"sasl.pasword\"".into(),
            "sasl.pasword".into(),
            "S3cr3tValue".into(),
        );
        assert_eq!(
            CreateError::new(refused, &redactor).to_string(),
            "-X sasl.pasword: No such configuration property: \"sasl.pasword\""
        );
        // librdkafka's own words, each with the value taken out, however short.
        for (description, value, shown) in [
            (
                "Invalid value \"ab\" for configuration property \"security.protocol\"",
                "ab",
                "Invalid value \"***\" for configuration property \"security.protocol\"",
            ),
            (
                "Configuration property \"fetch.min.bytes\" value -5 is outside allowed range 1..100000000\n",
                "-05",
                "Configuration property \"fetch.min.bytes\" value *** is outside allowed range 1..100000000",
            ),
            (
                "Invalid value for configuration property \"x\": xyz",
                "xyz",
                "Invalid value for configuration property \"x\": ***",
            ),
        ] {
            let refused = KafkaError::ClientConfig(
                RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
                description.into(),
                "k".into(),
                value.into(),
            );
            assert_eq!(
                CreateError::new(refused, &Redactor::default()).to_string(),
                format!("property k: {shown}")
            );
        }
    }

    #[test]
    fn librdkafkas_refusals_never_show_the_value() {
        for (key, value) in [
            ("sasl.pasword", "S3cr3tValue"),
            ("security.protocol", "S3cr3tValue"),
            ("fetch.min.bytes", "-99"),
            ("enable.auto.commit", "S3cr3tValue"),
            ("sasl.mechanisms", "S3cr3tValue"),
        ] {
            let properties = [property(key, value)];
            let mut config = ClientConfig::new();
            config.set_log_level(RDKafkaLogLevel::Emerg);
            config.set(key, value);
            let Err(error) = config.create::<BaseConsumer>() else {
                // librdkafka accepted it (it warns in a log line instead).
                continue;
            };
            let shown = CreateError::new(error, &Redactor::new(&properties)).to_string();
            assert!(shown.starts_with(&format!("-X {key}: ")), "{shown}");
            assert!(!shown.contains(value), "{key}: {shown}");
        }
    }
}
