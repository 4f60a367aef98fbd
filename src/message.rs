//! Messages: bytes in, a validated [`Reading`] or a [`MessageError`] out.
//!
//! A message is one JSON object. It is valid when:
//! - the bytes are UTF-8 and parse as exactly one JSON object (surrounding whitespace is fine,
//!   unknown fields anywhere are ignored);
//! - `guid` is a non-empty string;
//! - the device is a non-empty string under `medicalimagingdevice`, or under
//!   `medicalImagingdevice` when the first is absent (the seed uses both spellings);
//! - `payload.data.humidity` is a JSON number with 0 <= humidity <= 100.
//!
//! Parsing borrows from the input: a reading costs no allocation unless a string holds JSON
//! escapes. Humidity becomes an integer number of millionths of a percent, exact for values
//! with up to six decimals.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use hygroflow_dataflows::MICROS_PER_PERCENT;

/// The default limit on one message's size.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// A valid humidity reading, borrowing its strings from the message bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading<'a> {
    /// The sensor (datalogger) id.
    pub guid: Cow<'a, str>,
    /// The imaging device the sensor watches.
    pub device: Cow<'a, str>,
    /// Humidity in millionths of a percent.
    pub humidity_micro: i64,
    /// The raw `eventTime` string, when present and a string.
    pub event_time: Option<Cow<'a, str>>,
}

/// Why a message was rejected: which validity rule it broke.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MessageError {
    /// The message is empty or only whitespace.
    #[error("empty message")]
    Empty,
    /// The message is larger than the configured limit.
    #[error("message of {len} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// Size of the message.
        len: usize,
        /// The limit (`--max-message-bytes`).
        limit: usize,
    },
    /// The bytes are not UTF-8.
    #[error("not valid UTF-8 (first bad byte at offset {valid_up_to})")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        valid_up_to: usize,
    },
    /// The text is not one JSON value.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// The JSON value is not an object.
    #[error("not a JSON object but {0}")]
    NotAnObject(&'static str),
    /// A required string field is absent.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A required string field holds something else.
    #[error("field `{field}` must be a string, found {found}")]
    NotAString {
        /// The field.
        field: &'static str,
        /// What it held.
        found: &'static str,
    },
    /// A required string field is empty.
    #[error("field `{0}` is an empty string")]
    EmptyString(&'static str),
    /// `payload.data.humidity` holds something other than a number.
    #[error("field `payload.data.humidity` must be a number, found {0}")]
    HumidityNotANumber(&'static str),
    /// `payload.data.humidity` is a number outside 0..=100 (or not finite).
    #[error("humidity {0} is outside 0..=100")]
    HumidityOutOfRange(f64),
}

impl MessageError {
    /// The position of [`MessageError::kind`] in [`ERROR_KINDS`] (how the dataflow counts
    /// rejects by kind).
    pub fn kind_index(&self) -> u8 {
        let kind = self.kind();
        ERROR_KINDS
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| i as u8)
    }

    /// A short, stable name for the rule that failed, for counters and dead-letter headers.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageError::Empty => "empty",
            MessageError::TooLarge { .. } => "too_large",
            MessageError::NotUtf8 { .. } => "not_utf8",
            MessageError::Json(_) => "not_json",
            MessageError::NotAnObject(_) => "not_an_object",
            MessageError::Missing(_) => "missing_field",
            MessageError::NotAString { .. } => "not_a_string",
            MessageError::EmptyString(_) => "empty_string",
            MessageError::HumidityNotANumber(_) => "humidity_not_a_number",
            MessageError::HumidityOutOfRange(_) => "humidity_out_of_range",
        }
    }
}

/// Every `error_kind`, in a fixed order: the dataflow counts rejects by their index here.
pub const ERROR_KINDS: [&str; 10] = [
    "empty",
    "too_large",
    "not_utf8",
    "not_json",
    "not_an_object",
    "missing_field",
    "not_a_string",
    "empty_string",
    "humidity_not_a_number",
    "humidity_out_of_range",
];

const GUID: &str = "guid";
const DEVICE: &str = "medicalimagingdevice";
const DEVICE_ALT: &str = "medicalImagingdevice";
const HUMIDITY: &str = "payload.data.humidity";

/// Parses and validates one message of `len` bytes (`bytes` may be a truncated prefix of a
/// longer message, in which case `len` is the full size and the message is too large).
///
/// A message as dataloggers send it takes the fast path ([`fast`]); anything else, every
/// invalid message included, is parsed by serde_json ([`parse_with_serde`]), which decides.
pub fn parse(bytes: &[u8], len: usize, max_bytes: usize) -> Result<Reading<'_>, MessageError> {
    parse_with(bytes, len, max_bytes, true)
}

/// [`parse`] without the fast path: what the fast path must agree with, for the fuzz target
/// and the tests.
pub fn parse_with_serde(
    bytes: &[u8],
    len: usize,
    max_bytes: usize,
) -> Result<Reading<'_>, MessageError> {
    parse_with(bytes, len, max_bytes, false)
}

fn parse_with(
    bytes: &[u8],
    len: usize,
    max_bytes: usize,
    fast_path: bool,
) -> Result<Reading<'_>, MessageError> {
    if len > max_bytes {
        return Err(MessageError::TooLarge {
            len,
            limit: max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| MessageError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    if text.trim_ascii().is_empty() {
        return Err(MessageError::Empty);
    }
    if fast_path {
        if let Some(reading) = fast::parse(text) {
            return Ok(reading);
        }
    }
    let top: Top<'_> = serde_json::from_str(text).map_err(|e| MessageError::Json(e.to_string()))?;
    let fields = match top {
        Top::Object(fields) => fields,
        Top::Other(found) => return Err(MessageError::NotAnObject(found)),
    };
    let guid = required_string(fields.guid, GUID)?;
    let device = match fields.device {
        Value::Missing => required_string(fields.device_alt, DEVICE_ALT)?,
        value => required_string(value, DEVICE)?,
    };
    let humidity_micro = match fields.humidity {
        Value::Number(h) if humidity_in_range(h) => humidity_micro(h),
        Value::Number(h) => return Err(MessageError::HumidityOutOfRange(h)),
        Value::Missing => return Err(MessageError::Missing(HUMIDITY)),
        other => return Err(MessageError::HumidityNotANumber(other.kind())),
    };
    let event_time = match fields.event_time {
        Value::String(s) => Some(s),
        _ => None,
    };
    Ok(Reading {
        guid,
        device,
        humidity_micro,
        event_time,
    })
}

/// Whether a humidity in percent is valid: finite, 0 to 100.
fn humidity_in_range(percent: f64) -> bool {
    percent.is_finite() && (0.0..=100.0).contains(&percent)
}

/// A valid humidity in millionths of a percent.
fn humidity_micro(percent: f64) -> i64 {
    (percent * MICROS_PER_PERCENT as f64).round() as i64
}

fn required_string<'a>(
    value: Value<'a>,
    field: &'static str,
) -> Result<Cow<'a, str>, MessageError> {
    match value {
        Value::String(s) if s.is_empty() => Err(MessageError::EmptyString(field)),
        Value::String(s) => Ok(s),
        Value::Missing => Err(MessageError::Missing(field)),
        other => Err(MessageError::NotAString {
            field,
            found: other.kind(),
        }),
    }
}

/// A JSON value as far as validation cares: strings and numbers are kept, the rest is named.
#[derive(Debug, Default)]
enum Value<'a> {
    #[default]
    Missing,
    Null,
    Bool,
    Number(f64),
    String(Cow<'a, str>),
    Array,
    Object,
}

impl Value<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Value::Missing => "nothing",
            Value::Null => "null",
            Value::Bool => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array => "an array",
            Value::Object => "an object",
        }
    }
}

/// The fields validation reads; everything else is skipped without allocating.
#[derive(Debug, Default)]
struct Fields<'a> {
    guid: Value<'a>,
    device: Value<'a>,
    device_alt: Value<'a>,
    event_time: Value<'a>,
    humidity: Value<'a>,
}

enum Top<'a> {
    Object(Fields<'a>),
    Other(&'static str),
}

/// Which fields of which object level we are reading.
#[derive(Clone, Copy)]
enum Level {
    Top,
    Payload,
    Data,
}

/// Visits any JSON value; at `Some(level)` an object's interesting fields go into `Fields`.
struct ValueVisitor<'f, 'a> {
    fields: Option<(&'f mut Fields<'a>, Level)>,
}

impl<'de, 'f> Visitor<'de> for ValueVisitor<'f, 'de> {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value<'de>, E> {
        Ok(Value::Number(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(Value::Number(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value<'de>, E> {
        Ok(Value::Number(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        let Some((fields, level)) = self.fields else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Value::Object);
        };
        while let Some(key) = map.next_key::<Key>()? {
            let slot = match (level, key) {
                (Level::Top, Key::Guid) => &mut fields.guid,
                (Level::Top, Key::Device) => &mut fields.device,
                (Level::Top, Key::DeviceAlt) => &mut fields.device_alt,
                (Level::Top, Key::EventTime) => &mut fields.event_time,
                (Level::Top, Key::Payload) => {
                    map.next_value_seed(Nested {
                        fields: &mut *fields,
                        level: Level::Payload,
                    })?;
                    continue;
                }
                (Level::Payload, Key::Data) => {
                    map.next_value_seed(Nested {
                        fields: &mut *fields,
                        level: Level::Data,
                    })?;
                    continue;
                }
                (Level::Data, Key::Humidity) => &mut fields.humidity,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = map.next_value_seed(Plain)?;
        }
        Ok(Value::Object)
    }
}

/// Seed for a value whose object fields are not interesting.
struct Plain;

impl<'de> de::DeserializeSeed<'de> for Plain {
    type Value = Value<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        d.deserialize_any(ValueVisitor { fields: None })
    }
}

/// Seed for `payload` and `payload.data`: an object there fills `Fields`.
struct Nested<'f, 'a> {
    fields: &'f mut Fields<'a>,
    level: Level,
}

impl<'de> de::DeserializeSeed<'de> for Nested<'_, 'de> {
    type Value = Value<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        d.deserialize_any(ValueVisitor {
            fields: Some((self.fields, self.level)),
        })
    }
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut fields = Fields::default();
        let value = d.deserialize_any(ValueVisitor {
            fields: Some((&mut fields, Level::Top)),
        })?;
        Ok(match value {
            Value::Object => Top::Object(fields),
            other => Top::Other(other.kind()),
        })
    }
}

/// Object keys validation looks at; any other key is `Other`, compared without allocating.
enum Key {
    Guid,
    Device,
    DeviceAlt,
    EventTime,
    Payload,
    Data,
    Humidity,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    GUID => Key::Guid,
                    DEVICE => Key::Device,
                    DEVICE_ALT => Key::DeviceAlt,
                    "eventTime" => Key::EventTime,
                    "payload" => Key::Payload,
                    "data" => Key::Data,
                    "humidity" => Key::Humidity,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

mod fast;
#[cfg(test)]
mod tests;
