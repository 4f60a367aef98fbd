//! The rules of the alert tests (gh-9), written by the test rather than parsed: each table's
//! keys as exact integers, the file given to `--rules` printed from them, and the rule in force
//! for a device merged key by key (device over modality over defaults over the spec's
//! defaults). Shares no code with the engine's `rules` module.

#![allow(dead_code)]

use std::collections::BTreeMap;

/// Millionths of a percent in one percent.
pub const MICROS: i64 = 1_000_000;

/// `"60.5"` as millionths of a percent, exactly.
pub fn pct(text: &str) -> i64 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    assert!(fraction.len() <= 6, "{text}");
    let whole: i64 = whole.parse().expect("whole percent");
    let fraction: i64 = format!("{fraction:0<6}").parse().expect("fraction");
    whole * MICROS + fraction
}

/// Millionths of a percent as a TOML float that reads back exactly.
fn toml_percent(micros: i64) -> String {
    let fraction = format!("{:06}", micros % MICROS);
    let fraction = fraction.trim_end_matches('0');
    let fraction = if fraction.is_empty() { "0" } else { fraction };
    format!("{}.{fraction}", micros / MICROS)
}

/// One table of a rules file; percentages in millionths, durations in seconds.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    pub low: Option<i64>,
    pub high: Option<i64>,
    pub hysteresis: Option<i64>,
    pub rate_per_hour: Option<i64>,
    pub window_s: Option<i64>,
    pub silence_s: Option<i64>,
    pub retire_s: Option<i64>,
}

impl Keys {
    fn over(&self, base: &Keys) -> Keys {
        Keys {
            low: self.low.or(base.low),
            high: self.high.or(base.high),
            hysteresis: self.hysteresis.or(base.hysteresis),
            rate_per_hour: self.rate_per_hour.or(base.rate_per_hour),
            window_s: self.window_s.or(base.window_s),
            silence_s: self.silence_s.or(base.silence_s),
            retire_s: self.retire_s.or(base.retire_s),
        }
    }

    fn toml(&self, out: &mut String) {
        let percents = [
            ("low", self.low),
            ("high", self.high),
            ("hysteresis", self.hysteresis),
            ("rate_per_hour", self.rate_per_hour),
        ];
        for (key, value) in percents {
            if let Some(v) = value {
                out.push_str(&format!("{key} = {}\n", toml_percent(v)));
            }
        }
        let durations = [
            ("window", self.window_s),
            ("silence", self.silence_s),
            ("retire_after", self.retire_s),
        ];
        for (key, value) in durations {
            if let Some(s) = value {
                out.push_str(&format!("{key} = \"{s}s\"\n"));
            }
        }
    }
}

/// A rules file: `[defaults]`, `[modality.NAME]`, `[device.ID]`.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub defaults: Keys,
    pub modality: BTreeMap<String, Keys>,
    pub device: BTreeMap<String, Keys>,
}

/// The rule in force for one device; percentages in millionths, durations in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub low: Option<i64>,
    pub high: Option<i64>,
    pub hysteresis: i64,
    pub rate_per_hour: Option<i64>,
    pub window_ms: i64,
    pub silence_ms: i64,
    /// A silent sensor is retired once silent this long past its silence.
    pub retire_ms: i64,
}

/// A device's modality: its id's leading ASCII letters, case-sensitive.
pub fn modality(device: &str) -> &str {
    let end = device
        .bytes()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(device.len());
    &device[..end]
}

impl Rules {
    /// The file's text.
    pub fn to_toml(&self) -> String {
        let mut out = String::from("[defaults]\n");
        self.defaults.toml(&mut out);
        for (kind, tables) in [("modality", &self.modality), ("device", &self.device)] {
            for (name, keys) in tables {
                out.push_str(&format!("\n[{kind}.\"{name}\"]\n"));
                keys.toml(&mut out);
            }
        }
        out
    }

    /// Device over modality over defaults, key by key, then the spec's defaults.
    pub fn rule(&self, device: &str) -> Rule {
        let none = Keys::default();
        let keys = self.device.get(device).unwrap_or(&none).over(
            &self
                .modality
                .get(modality(device))
                .unwrap_or(&none)
                .over(&self.defaults),
        );
        Rule {
            low: keys.low,
            high: keys.high,
            hysteresis: keys.hysteresis.unwrap_or(MICROS),
            rate_per_hour: keys.rate_per_hour,
            window_ms: keys.window_s.unwrap_or(60) * 1000,
            silence_ms: keys.silence_s.unwrap_or(300) * 1000,
            retire_ms: keys.retire_s.unwrap_or(86_400) * 1000,
        }
    }
}
