//! What can be wrong in a rules file: each kind of mistake its own one-line message, naming
//! the key and saying what would be accepted, with the line it is on.

use super::Percent;

/// A mistake in a rules file, and the line it is on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {mistake}")]
pub struct Invalid {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong.
    pub mistake: Mistake,
}

/// What can be wrong in a rules file: each kind of mistake its own message, naming the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Mistake {
    /// Not UTF-8 text.
    #[error("not UTF-8 text: save the file as UTF-8")]
    NotUtf8,
    /// Not TOML.
    #[error("not TOML: {0}")]
    Syntax(String),
    /// A top-level table that is not `defaults`, `modality` or `device`.
    #[error(
        "unknown table [{0}]: expected [defaults], [modality.NAME], [device.ID] or [[maintenance]]"
    )]
    UnknownTable(String),
    /// A table given as a plain value (`defaults = 3`).
    #[error("{0} must be a table: write [{0}] with its keys on the lines below")]
    NotATable(String),
    /// `[modality.X1]`: a modality is letters only.
    #[error("[modality.{0}]: a modality is the leading ASCII letters of device ids (MRI for MRI12), so {0} would never match")]
    Modality(String),
    /// `[device.""]`.
    #[error("[device.\"\"]: a device id must not be empty")]
    EmptyDevice,
    /// A key that no rule has.
    #[error("unknown key {key} in [{table}]: expected low, high, hysteresis, rate_per_hour, window, silence, retire_after, severity or runbook_url")]
    UnknownKey {
        /// The table.
        table: String,
        /// The key.
        key: String,
    },
    /// `maintenance` is not an array of tables.
    #[error("maintenance must be an array of tables: write [[maintenance]] with device or modality, from, to and reason on the lines below")]
    MaintenanceNotArray,
    /// A key that a maintenance entry does not have.
    #[error("unknown key {0} in [[maintenance]]: expected device, modality, from, to or reason")]
    MaintenanceKey(String),
    /// Neither or both of `device` and `modality`.
    #[error(
        "[[maintenance]] needs exactly one of device (an id, or a prefix ending in *) and modality"
    )]
    MaintenanceTarget,
    /// A `device` that is not an id or a prefix ending in `*`.
    #[error("device = {0:?} in [[maintenance]]: expected a device id (MRI12) or a prefix ending in * (MRI*), with no other *")]
    MaintenanceDevice(String),
    /// A `modality` that is not letters.
    #[error("modality = {0:?} in [[maintenance]]: a modality is the leading ASCII letters of device ids (MRI for MRI12)")]
    MaintenanceModality(String),
    /// A `from` or `to` that is not an RFC 3339 time.
    #[error("{key} = {text:?} in [[maintenance]]: expected an RFC 3339 time such as \"2026-12-07T06:00:00Z\"")]
    MaintenanceTime {
        /// `from` or `to`.
        key: &'static str,
        /// The value, as given.
        text: String,
    },
    /// `from` or `to` missing.
    #[error("[[maintenance]] needs {0} (an RFC 3339 time)")]
    MaintenanceMissing(&'static str),
    /// `to` not after `from`.
    #[error("[[maintenance]] to = {to:?} is not after from = {from:?}")]
    MaintenanceOrder {
        /// `from`, as given.
        from: String,
        /// `to`, as given.
        to: String,
    },
    /// `severity` is not one of the three Alertmanager conventions.
    #[error("severity = {text:?} in [{table}]: expected \"critical\", \"warning\" or \"info\"")]
    Severity {
        /// The table.
        table: String,
        /// The value, as given.
        text: String,
    },
    /// `runbook_url` is not an http(s) URL.
    #[error("runbook_url = {text:?} in [{table}]: expected an http:// or https:// URL")]
    Runbook {
        /// The table.
        table: String,
        /// The value, as given.
        text: String,
    },
    /// A percentage that is not a number.
    #[error("{key} in [{table}] must be a number of % RH such as 30 or 45.5, not a {found}")]
    NotANumber {
        /// The table.
        table: String,
        /// The key.
        key: &'static str,
        /// What TOML type it is.
        found: &'static str,
    },
    /// `inf`, `nan`, or an integer not in decimal.
    #[error("{key} = {text} in [{table}]: expected a decimal number of % RH such as 30 or 45.5")]
    NotDecimal {
        /// The table.
        table: String,
        /// The key.
        key: &'static str,
        /// The literal.
        text: String,
    },
    /// More than six digits after the point.
    #[error("{key} = {text} in [{table}] has more than 6 digits after the point: % RH is held in millionths")]
    TooPrecise {
        /// The table.
        table: String,
        /// The key.
        key: &'static str,
        /// The literal.
        text: String,
    },
    /// Below zero.
    #[error("{key} = {text} in [{table}] is negative: expected 0 to 100 % RH")]
    Negative {
        /// The table.
        table: String,
        /// The key.
        key: &'static str,
        /// The literal.
        text: String,
    },
    /// Above 100.
    #[error("{key} = {text} in [{table}] is above 100: expected 0 to 100 % RH")]
    Above100 {
        /// The table.
        table: String,
        /// The key.
        key: &'static str,
        /// The literal.
        text: String,
    },
    /// A duration that is not a string.
    #[error("{key} in [{table}] must be a duration in quotes such as \"1m\", not a {found}")]
    NotAString {
        /// The table.
        table: String,
        /// The key.
        key: &'static str,
        /// What TOML type it is.
        found: &'static str,
    },
    /// A duration string that does not parse or is out of range.
    #[error("{key} = \"{text}\" in [{table}]: {problem}")]
    Duration {
        /// The table.
        table: String,
        /// The key.
        key: &'static str,
        /// The string.
        text: String,
        /// What is wrong, with the accepted range.
        problem: String,
    },
    /// An explicit window that is not a whole number of epochs.
    #[error("window = \"{window}\" in [{table}] is not a multiple of the epoch ({epoch}, see --epoch): use {suggestion}")]
    WindowNotMultiple {
        /// The table.
        table: String,
        /// The window.
        window: String,
        /// The epoch length.
        epoch: String,
        /// The nearest multiples.
        suggestion: String,
    },
    /// `low >= high`.
    #[error("{key} in [{table}]: low ({low}) must be below high ({high})")]
    LowNotBelowHigh {
        /// The table whose resolved rule is wrong.
        table: String,
        /// The key to change.
        key: &'static str,
        /// The low limit.
        low: Percent,
        /// The high limit.
        high: Percent,
    },
    /// A hysteresis as wide as the band: a high alert would resolve only at the low limit.
    #[error("{key} in [{table}]: hysteresis ({hysteresis}) must be narrower than the band, high - low ({width})")]
    HysteresisWiderThanBand {
        /// The table whose resolved rule is wrong.
        table: String,
        /// The key to change.
        key: &'static str,
        /// The hysteresis.
        hysteresis: Percent,
        /// high - low.
        width: Percent,
    },
    /// A hysteresis as wide as the rate limit: a rate alert would resolve only at no change.
    #[error("{key} in [{table}]: hysteresis ({hysteresis}) must be below rate_per_hour ({rate})")]
    HysteresisWiderThanRate {
        /// The table whose resolved rule is wrong.
        table: String,
        /// The key to change.
        key: &'static str,
        /// The hysteresis.
        hysteresis: Percent,
        /// The rate limit.
        rate: Percent,
    },
}
