//! Kafka plumbing shared by the source, the sinks and the tools: client configuration from
//! kcat-style flags (`-b`, `-X key=value`), with secrets kept out of logs.

pub mod admin;
pub mod produce;
pub mod publisher;

use rdkafka::config::ClientConfig;

/// A `-X key=value` librdkafka property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Property {
    /// The librdkafka property name.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// Parses `key=value` for `-X`.
pub fn parse_property(text: &str) -> Result<Property, String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok(Property {
            key: key.trim().to_owned(),
            value: value.to_owned(),
        }),
        _ => Err(format!(
            "expected key=value (a librdkafka property), got {text:?}"
        )),
    }
}

/// Whether a property's value must never be logged.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "key", "token", "credential", "jaas"]
        .iter()
        .any(|s| key.contains(s))
}

/// The properties as `key=value` for logs, secrets replaced by `***`.
pub fn redacted(properties: &[Property]) -> String {
    properties
        .iter()
        .map(|p| {
            if is_secret(&p.key) {
                format!("{}=***", p.key)
            } else {
                format!("{}={}", p.key, p.value)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A librdkafka configuration for `brokers` with the user's `-X` properties applied last,
/// so they can override anything hygroflow sets.
pub fn client_config(brokers: &str, properties: &[Property]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for p in properties {
        config.set(&p.key, &p.value);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_and_secrets_are_redacted() {
        let p = parse_property("sasl.password=hunter2").expect("valid");
        assert_eq!(p.key, "sasl.password");
        assert_eq!(p.value, "hunter2");
        let q = parse_property("fetch.min.bytes=1=2").expect("valid");
        assert_eq!(q.value, "1=2");
        assert!(parse_property("novalue").is_err());
        assert!(parse_property("=x").is_err());
        let shown = redacted(&[p, q]);
        assert_eq!(shown, "sasl.password=*** fetch.min.bytes=1=2");
        assert!(is_secret("ssl.key.password"));
        assert!(!is_secret("bootstrap.servers"));
    }
}
