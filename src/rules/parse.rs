//! From the text of a rules file to checked [`Rules`]: TOML tables walked with their spans, so
//! that every mistake names its line and key; percentages read exactly from the literal's text.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{
    round_up, Invalid, Maintenance, Mistake, Percent, Rules, Table, Target, DEFAULT_HYSTERESIS,
};
use crate::flags;

/// The line (from 1) of byte `offset` in `text`.
pub(super) fn line_of(text: &[u8], offset: usize) -> usize {
    let end = offset.min(text.len());
    text[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// One table as read: its name as written in brackets, its keys, and each key's line.
struct Layer {
    name: String,
    table: Table,
    lines: BTreeMap<&'static str, usize>,
}

/// Parses and checks a rules file.
pub(super) fn parse(text: &str, epoch: Duration) -> Result<Rules, Invalid> {
    let at = |span: std::ops::Range<usize>, mistake| Invalid {
        line: line_of(text.as_bytes(), span.start),
        mistake,
    };
    let doc = DeTable::parse(text).map_err(|e| {
        let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        at(e.span().unwrap_or(0..0), Mistake::Syntax(message))
    })?;
    let mut defaults = None;
    let mut modalities = BTreeMap::new();
    let mut devices = BTreeMap::new();
    let mut maintenance = Vec::new();
    for (key, value) in doc.get_ref().iter() {
        let name = key.get_ref().as_ref();
        match name {
            "maintenance" => {
                let entries = value
                    .get_ref()
                    .as_array()
                    .ok_or_else(|| at(key.span(), Mistake::MaintenanceNotArray))?;
                for entry in entries.iter() {
                    maintenance.push(read_maintenance(text, entry)?);
                }
            }
            "defaults" => defaults = Some(read_table(text, "defaults".to_owned(), value, epoch)?),
            "modality" | "device" => {
                let tables = value
                    .get_ref()
                    .as_table()
                    .ok_or_else(|| at(key.span(), Mistake::NotATable(name.to_owned())))?;
                for (id, table) in tables.iter() {
                    let id_text = id.get_ref().as_ref();
                    if name == "modality"
                        && (id_text.is_empty() || !id_text.bytes().all(|b| b.is_ascii_alphabetic()))
                    {
                        return Err(at(id.span(), Mistake::Modality(id_text.to_owned())));
                    }
                    if id_text.is_empty() {
                        return Err(at(id.span(), Mistake::EmptyDevice));
                    }
                    let full = format!("{name}.{}", super::toml_key(id_text));
                    let layer = read_table(text, full, table, epoch)?;
                    let into = if name == "modality" {
                        &mut modalities
                    } else {
                        &mut devices
                    };
                    into.insert(id_text.to_owned(), layer);
                }
            }
            _ => return Err(at(key.span(), Mistake::UnknownTable(name.to_owned()))),
        }
    }
    let defaults = defaults.unwrap_or_else(|| Layer {
        name: "defaults".to_owned(),
        table: Table::default(),
        lines: BTreeMap::new(),
    });
    check(&[&defaults])?;
    for layer in modalities.values() {
        check(&[&defaults, layer])?;
    }
    for (id, layer) in &devices {
        match modalities.get(super::modality(id)) {
            Some(modality) => check(&[&defaults, modality, layer])?,
            None => check(&[&defaults, layer])?,
        }
    }
    let tables = |layers: BTreeMap<String, Layer>| {
        layers
            .into_iter()
            .map(|(name, layer)| (name, layer.table))
            .collect()
    };
    let mut rules = Rules::new(defaults.table, tables(modalities), tables(devices), epoch);
    rules.maintenance = maintenance;
    Ok(rules)
}

/// Reads one `[[maintenance]]` entry.
fn read_maintenance(text: &str, entry: &Spanned<DeValue<'_>>) -> Result<Maintenance, Invalid> {
    let line = |span: std::ops::Range<usize>| line_of(text.as_bytes(), span.start);
    let first = line(entry.span());
    let Some(keys) = entry.get_ref().as_table() else {
        return Err(Invalid {
            line: first,
            mistake: Mistake::MaintenanceNotArray,
        });
    };
    let mut target = None;
    let (mut from, mut to, mut reason) = (None, None, String::new());
    for (key, value) in keys.iter() {
        let at = line(key.span());
        let invalid = |mistake| Invalid { line: at, mistake };
        let name = key.get_ref().as_ref();
        let Some(string) = value.get_ref().as_str() else {
            let known = ["device", "modality", "from", "to", "reason"];
            let Some(&key) = known.iter().find(|k| **k == name) else {
                return Err(invalid(Mistake::MaintenanceKey(name.to_owned())));
            };
            return Err(invalid(Mistake::NotAString {
                table: "[maintenance]".to_owned(),
                key,
                found: value.get_ref().type_str(),
            }));
        };
        match name {
            "device" | "modality" if target.is_some() => {
                return Err(invalid(Mistake::MaintenanceTarget))
            }
            "device" => target = Some(device_pattern(string).map_err(invalid)?),
            "modality" => {
                if string.is_empty() || !string.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(invalid(Mistake::MaintenanceModality(string.to_owned())));
                }
                target = Some(Target::Modality(string.to_owned()));
            }
            "from" | "to" => {
                let key = if name == "from" { "from" } else { "to" };
                let ms = crate::epoch::parse_event_time(string).ok_or_else(|| {
                    invalid(Mistake::MaintenanceTime {
                        key,
                        text: string.to_owned(),
                    })
                })?;
                let slot = if key == "from" { &mut from } else { &mut to };
                *slot = Some((ms, string.to_owned(), at));
            }
            "reason" => reason = crate::escape::escape(string).into_owned(),
            other => return Err(invalid(Mistake::MaintenanceKey(other.to_owned()))),
        }
    }
    let target = target.ok_or(Invalid {
        line: first,
        mistake: Mistake::MaintenanceTarget,
    })?;
    let missing = |key| Invalid {
        line: first,
        mistake: Mistake::MaintenanceMissing(key),
    };
    let (from_ms, from_text, _) = from.ok_or_else(|| missing("from"))?;
    let (to_ms, to_text, to_line) = to.ok_or_else(|| missing("to"))?;
    if to_ms <= from_ms {
        return Err(Invalid {
            line: to_line,
            mistake: Mistake::MaintenanceOrder {
                from: from_text,
                to: to_text,
            },
        });
    }
    Ok(Maintenance {
        target,
        from_ms,
        to_ms,
        span: (from_text, to_text),
        reason,
    })
}

/// A maintenance entry's `device`: an id, or a prefix ending in `*`.
fn device_pattern(text: &str) -> Result<Target, Mistake> {
    let bad = || Mistake::MaintenanceDevice(text.to_owned());
    if text.chars().any(char::is_control) {
        return Err(bad());
    }
    match text.strip_suffix('*') {
        Some(prefix) if !prefix.is_empty() && !prefix.contains('*') => {
            Ok(Target::Prefix(prefix.to_owned()))
        }
        Some(_) => Err(bad()),
        None if text.is_empty() || text.contains('*') => Err(bad()),
        None => Ok(Target::Device(text.to_owned())),
    }
}

/// Reads one table's keys.
fn read_table(
    text: &str,
    name: String,
    value: &Spanned<DeValue<'_>>,
    epoch: Duration,
) -> Result<Layer, Invalid> {
    let line = |span: std::ops::Range<usize>| line_of(text.as_bytes(), span.start);
    let Some(entries) = value.get_ref().as_table() else {
        return Err(Invalid {
            line: line(value.span()),
            mistake: Mistake::NotATable(name),
        });
    };
    let mut layer = Layer {
        name,
        table: Table::default(),
        lines: BTreeMap::new(),
    };
    for (key, value) in entries.iter() {
        let at = line(key.span());
        let invalid = |mistake| Invalid { line: at, mistake };
        let table = layer.name.clone();
        let (key, slot): (&'static str, _) = match key.get_ref().as_ref() {
            "low" => ("low", &mut layer.table.low),
            "high" => ("high", &mut layer.table.high),
            "hysteresis" => ("hysteresis", &mut layer.table.hysteresis),
            "rate_per_hour" => ("rate_per_hour", &mut layer.table.rate_per_hour),
            "retire_after" => {
                let off = value.get_ref().as_str() == Some("off");
                let retire = if off {
                    None
                } else {
                    Some(duration(&table, "retire_after", value.get_ref()).map_err(invalid)?)
                };
                layer.table.retire_after = Some(retire);
                layer.lines.insert("retire_after", at);
                continue;
            }
            "window" | "silence" => {
                let key = if key.get_ref() == "window" {
                    "window"
                } else {
                    "silence"
                };
                let duration = duration(&table, key, value.get_ref()).map_err(invalid)?;
                if key == "window" {
                    check_window(&table, duration, epoch).map_err(invalid)?;
                    layer.table.window = Some(duration);
                } else {
                    layer.table.silence = Some(duration);
                }
                layer.lines.insert(key, at);
                continue;
            }
            "severity" | "runbook_url" => {
                let text = value.get_ref().as_str().ok_or_else(|| Mistake::NotAString {
                    table: table.clone(),
                    key: if key.get_ref() == "severity" {
                        "severity"
                    } else {
                        "runbook_url"
                    },
                    found: value.get_ref().type_str(),
                });
                let text = text.map_err(invalid)?.to_owned();
                if key.get_ref() == "severity" {
                    if !matches!(text.as_str(), "critical" | "warning" | "info") {
                        return Err(invalid(Mistake::Severity { table, text }));
                    }
                    layer.table.severity = Some(text);
                    layer.lines.insert("severity", at);
                } else {
                    let ok = url::Url::parse(&text).is_ok_and(|u| {
                        matches!(u.scheme(), "http" | "https") && u.host_str().is_some()
                    }) && !text.chars().any(char::is_control);
                    if !ok {
                        return Err(invalid(Mistake::Runbook { table, text }));
                    }
                    layer.table.runbook_url = Some(text);
                    layer.lines.insert("runbook_url", at);
                }
                continue;
            }
            other => {
                return Err(invalid(Mistake::UnknownKey {
                    table,
                    key: other.to_owned(),
                }))
            }
        };
        *slot = Some(percent(&table, key, value.get_ref()).map_err(invalid)?);
        layer.lines.insert(key, at);
    }
    Ok(layer)
}

/// A percentage from a TOML integer or float, exactly.
fn percent(table: &str, key: &'static str, value: &DeValue<'_>) -> Result<Percent, Mistake> {
    let text = match value {
        DeValue::Integer(i) if i.radix() == 10 => i.as_str(),
        DeValue::Float(f) => f.as_str(),
        DeValue::Integer(i) => {
            return Err(Mistake::NotDecimal {
                table: table.to_owned(),
                key,
                text: i.to_string(),
            })
        }
        other => {
            return Err(Mistake::NotANumber {
                table: table.to_owned(),
                key,
                found: other.type_str(),
            })
        }
    };
    let mistake = |kind: fn(String, &'static str, String) -> Mistake| {
        kind(table.to_owned(), key, text.to_owned())
    };
    exact_micros(text)
        .map_err(|problem| match problem {
            Problem::NotDecimal => {
                mistake(|table, key, text| Mistake::NotDecimal { table, key, text })
            }
            Problem::TooPrecise => {
                mistake(|table, key, text| Mistake::TooPrecise { table, key, text })
            }
            Problem::Negative => mistake(|table, key, text| Mistake::Negative { table, key, text }),
            Problem::Above100 => mistake(|table, key, text| Mistake::Above100 { table, key, text }),
        })
        .and_then(|micros| {
            Percent::from_micros(micros)
                .ok_or_else(|| mistake(|table, key, text| Mistake::Above100 { table, key, text }))
        })
}

/// Why a number's text is not a percentage.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Problem {
    NotDecimal,
    TooPrecise,
    Negative,
    Above100,
}

/// Millionths of a percent of a decimal literal (`45.5`, `+6e1`, `60.000001`), exactly: the
/// digits are shifted, never rounded.
pub(super) fn exact_micros(text: &str) -> Result<u32, Problem> {
    let text: String = text.chars().filter(|&c| c != '_').collect();
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let (mantissa, exponent) = match rest.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent),
        None => (rest, "0"),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let decimal = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !decimal(whole) || !decimal(fraction) {
        return Err(Problem::NotDecimal);
    }
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    if significant.is_empty() {
        return Ok(0);
    }
    if negative {
        return Err(Problem::Negative);
    }
    let exponent: i64 = match exponent.parse() {
        Ok(e) => e,
        Err(_) if exponent.starts_with('-') => return Err(Problem::TooPrecise),
        Err(_) => return Err(Problem::Above100),
    };
    // The value is 0.significant * 10^point. An exponent that takes `point` or `decimals`
    // out of i64 puts the value far outside 0.000001..=100 (gh-12: found by fuzzing).
    let leading_zeros = digits.len() - digits.trim_start_matches('0').len();
    let point = (i64::try_from(whole.len()).unwrap_or(i64::MAX) - leading_zeros as i64)
        .checked_add(exponent);
    let decimals = point.and_then(|point| (significant.len() as i64).checked_sub(point));
    let (Some(point), Some(decimals)) = (point, decimals) else {
        return Err(if exponent < 0 {
            Problem::TooPrecise
        } else {
            Problem::Above100
        });
    };
    if decimals > 6 {
        return Err(Problem::TooPrecise);
    }
    if point > 3 {
        return Err(Problem::Above100);
    }
    // At most 3 digits before the point and 6 after: fits in u64.
    let mantissa: u64 = significant.parse().map_err(|_| Problem::NotDecimal)?;
    let micros = mantissa * 10u64.pow(u32::try_from(6 - decimals).unwrap_or(0));
    match u32::try_from(micros) {
        Ok(micros) if micros <= Percent::MAX.micros() => Ok(micros),
        _ => Err(Problem::Above100),
    }
}

/// A duration from a TOML string, from 1ms to a year.
fn duration(table: &str, key: &'static str, value: &DeValue<'_>) -> Result<Duration, Mistake> {
    let Some(text) = value.as_str() else {
        return Err(Mistake::NotAString {
            table: table.to_owned(),
            key,
            found: value.type_str(),
        });
    };
    flags::duration(Duration::from_millis(1))(text).map_err(|problem| Mistake::Duration {
        table: table.to_owned(),
        key,
        text: text.to_owned(),
        problem,
    })
}

/// An explicit window must be a whole number of epochs.
fn check_window(table: &str, window: Duration, epoch: Duration) -> Result<(), Mistake> {
    let (w, e) = (window.as_nanos(), epoch.as_nanos().max(1));
    if w % e == 0 {
        return Ok(());
    }
    let show = |d: Duration| format!("\"{}\"", humantime::format_duration(d));
    let above = round_up(window, epoch);
    let below = above.saturating_sub(epoch);
    let suggestion = if below.is_zero() {
        show(above)
    } else {
        format!("{} or {}", show(below), show(above))
    };
    Err(Mistake::WindowNotMultiple {
        table: table.to_owned(),
        window: humantime::format_duration(window).to_string(),
        epoch: humantime::format_duration(epoch).to_string(),
        suggestion,
    })
}

/// Checks the rule that `layers` (general to specific) resolve to; a mistake is blamed on the
/// most specific key involved.
fn check(layers: &[&Layer]) -> Result<(), Invalid> {
    let mut table = Table::default();
    for layer in layers {
        table = layer.table.over(&table);
    }
    let name = layers.last().map_or(String::new(), |l| l.name.clone());
    // Where `key` was set: (how specific, line); `None` for a built-in default.
    let origin = |key: &str| {
        layers
            .iter()
            .enumerate()
            .rev()
            .find_map(|(rank, layer)| layer.lines.get(key).map(|&line| (rank, line)))
    };
    let blame = |a: &'static str, b: &'static str| {
        let (key, origin) = std::cmp::max_by_key((a, origin(a)), (b, origin(b)), |(_, o)| *o);
        (key, origin.map_or(1, |(_, line)| line))
    };
    let hysteresis = table.hysteresis.unwrap_or(DEFAULT_HYSTERESIS);
    if let (Some(low), Some(high)) = (table.low, table.high) {
        if low >= high {
            let (key, line) = blame("low", "high");
            return Err(Invalid {
                line,
                mistake: Mistake::LowNotBelowHigh {
                    table: name,
                    key,
                    low,
                    high,
                },
            });
        }
        let width = high.saturating_sub(low);
        if hysteresis >= width {
            let (key, line) = blame(
                "hysteresis",
                if origin("high") >= origin("low") {
                    "high"
                } else {
                    "low"
                },
            );
            return Err(Invalid {
                line,
                mistake: Mistake::HysteresisWiderThanBand {
                    table: name,
                    key,
                    hysteresis,
                    width,
                },
            });
        }
    }
    if let Some(rate) = table.rate_per_hour {
        if hysteresis >= rate {
            let (key, line) = blame("hysteresis", "rate_per_hour");
            return Err(Invalid {
                line,
                mistake: Mistake::HysteresisWiderThanRate {
                    table: name,
                    key,
                    hysteresis,
                    rate,
                },
            });
        }
    }
    Ok(())
}
