//! An independent oracle for the alert log of gh-9: a naive recomputation, from the JSON lines
//! and a rules table built in the test, of every alert transition and of the alerts active at
//! each reported epoch. It shares no code with the engine: the input is read with serde_json,
//! times are converted by hand, and every comparison is made in integers (micro-percent).
//!
//! ```text
//! JSON lines --parse_input--> readings --recompute(rules, L)--> Outcome { log, reported }
//! Rules --to_toml--> the file given to `--rules`
//! ```
//!
//! It holds only for the inputs the tests write: every line valid and event times
//! non-decreasing, so each reading belongs to the epoch of its `eventTime` and none is late.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{json, Value};

pub use super::alert_rules::{Rules, MICROS};

/// The span of a rate, fixed by the spec.
const HOUR_MS: i64 = 3_600_000;
/// The longest window the oracle keeps sums for.
const DAY_MS: i64 = 24 * HOUR_MS;

/// One valid reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    pub guid: String,
    pub device: String,
    /// Event time, milliseconds since the Unix epoch.
    pub ms: i64,
    /// Humidity in millionths of a percent.
    pub micros: i64,
}

/// Reads JSON lines; panics on a line that is not valid (the tests write only valid ones).
pub fn parse_input(bytes: &[u8]) -> Vec<Reading> {
    let text = std::str::from_utf8(bytes).expect("UTF-8 input");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let device = match v.get("medicalimagingdevice") {
                Some(d) => d.as_str(),
                None => v.get("medicalImagingdevice").and_then(Value::as_str),
            };
            let text = |s: Option<&str>| {
                s.filter(|s| !s.is_empty())
                    .unwrap_or_else(|| panic!("not valid: {line}"))
                    .to_owned()
            };
            let humidity = v
                .pointer("/payload/data/humidity")
                .and_then(Value::as_f64)
                .filter(|h| (0.0..=100.0).contains(h))
                .unwrap_or_else(|| panic!("no humidity in 0..=100: {line}"));
            let micros = (humidity * MICROS as f64).round() as i64;
            assert_eq!(micros % 100_000, 0, "at most one decimal: {line}");
            let time = v.get("eventTime").and_then(Value::as_str);
            Reading {
                guid: text(v.get("guid").and_then(Value::as_str)),
                device: text(device),
                ms: parse_time(&text(time)),
                micros,
            }
        })
        .collect()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` to milliseconds since the Unix epoch (fraction truncated).
pub fn parse_time(t: &str) -> i64 {
    let b = t.as_bytes();
    let shape = b.len() >= 20
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|&i| b[i] == b':')
        && t.ends_with('Z');
    assert!(shape, "not an RFC 3339 UTC time: {t}");
    let num = |from: usize, to: usize| -> i64 {
        t[from..to]
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {t}"))
    };
    let fraction = &t[19..t.len() - 1];
    let ms = match fraction.strip_prefix('.') {
        None if fraction.is_empty() => 0,
        Some(digits) if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) => {
            format!("{digits:0<3}")[..3].parse::<i64>().expect("digits")
        }
        _ => panic!("bad fraction in {t}"),
    };
    let days = days_from_civil(num(0, 4), num(5, 7), num(8, 10));
    ((days * 24 + num(11, 13)) * 60 + num(14, 16)) * 60_000 + num(17, 19) * 1000 + ms
}

/// Milliseconds since the Unix epoch as `%Y-%m-%dT%H:%M:%S%.3fZ`.
pub fn format_time(ms: i64) -> String {
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// What an alert is about; the order is the order of the names as strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    High,
    Low,
    Rate,
    Silent,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::High => "high",
            Kind::Low => "low",
            Kind::Rate => "rate",
            Kind::Silent => "silent",
        }
    }
}

/// One line of the alert log.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub epoch: i64,
    pub device: String,
    pub kind: Kind,
    /// The guid, for a silent alert.
    pub sensor: Option<String>,
    pub raised: bool,
    /// The value or rate that decided, in percent; `None` for silent.
    pub value: Option<f64>,
    /// The threshold that decided, in percent (silent: the silence in seconds; retired: the
    /// retirement in seconds).
    pub limit: f64,
    /// `Some("retired")` for a silent sensor's retirement.
    pub reason: Option<&'static str>,
}

/// Which alert: (device, kind, sensor or "").
type Key = (String, Kind, String);

impl Alert {
    fn key(&self) -> Key {
        let sensor = self.sensor.clone().unwrap_or_default();
        (self.device.clone(), self.kind, sensor)
    }

    /// The line the engine must write, with epochs `epoch_ms` long.
    pub fn to_json(&self, epoch_ms: i64) -> Value {
        let sensor = self.sensor.as_deref().unwrap_or("");
        let mut line = json!({
            "id": format!("{}/{}/{sensor}/{}", self.device, self.kind.name(), self.epoch),
            "epoch": self.epoch,
            "time": format_time((self.epoch + 1) * epoch_ms),
            "device": self.device,
            "sensor": self.sensor,
            "kind": self.kind.name(),
            "state": if self.raised { "raised" } else { "resolved" },
            "value": self.value,
            "limit": self.limit,
        });
        if let Some(reason) = self.reason {
            line["reason"] = json!(reason);
        }
        line
    }
}

/// The alert log and, for each reported epoch in order, the raising lines still active there
/// (sorted by device, kind, sensor).
#[derive(Debug, Default)]
pub struct Outcome {
    pub log: Vec<Alert>,
    pub reported: Vec<(i64, Vec<Alert>)>,
}

/// A mean: sum and count of micro-percent readings.
#[derive(Clone, Copy, Debug)]
struct Mean(i64, i64);

impl Mean {
    fn percent(self) -> f64 {
        self.0 as f64 / self.1 as f64 / MICROS as f64
    }

    /// `self` < `other`, exactly.
    fn below(self, other: Mean) -> bool {
        i128::from(self.0) * i128::from(other.1) < i128::from(other.0) * i128::from(self.1)
    }
}

/// The transitions of one epoch, applied to the active set as they are found.
struct Judge<'a> {
    epoch: i64,
    active: &'a mut BTreeMap<Key, Alert>,
    changes: Vec<Alert>,
}

impl Judge<'_> {
    /// Raises at `raise.1` when inactive and `raise.0`; resolves at `resolve.1` when active and
    /// `resolve.0`.
    fn judge(
        &mut self,
        (device, kind, sensor): (&str, Kind, Option<&str>),
        value: Option<f64>,
        raise: (bool, i64),
        resolve: (bool, i64),
        scale: f64,
    ) {
        let key = (device.to_owned(), kind, sensor.unwrap_or("").to_owned());
        let is_active = self.active.contains_key(&key);
        let (holds, limit) = if is_active { resolve } else { raise };
        if !holds {
            return;
        }
        let alert = Alert {
            epoch: self.epoch,
            device: device.to_owned(),
            kind,
            sensor: sensor.map(str::to_owned),
            raised: !is_active,
            value,
            limit: limit as f64 / scale,
            reason: None,
        };
        if is_active {
            self.active.remove(&key);
        } else {
            self.active.insert(key, alert.clone());
        }
        self.changes.push(alert);
    }
}

/// Recomputes the alert log of `readings` (non-decreasing event times) with epochs `epoch_ms`.
pub fn recompute(readings: &[Reading], rules: &Rules, epoch_ms: i64) -> Outcome {
    recompute_with(readings, &|_| rules, epoch_ms)
}

/// As [`recompute`], with the rules `rules_at(e)` in force at epoch `e` (a rules change).
pub fn recompute_with<'r>(
    readings: &[Reading],
    rules_at: &dyn Fn(i64) -> &'r Rules,
    epoch_ms: i64,
) -> Outcome {
    assert!(
        readings.windows(2).all(|w| w[0].ms <= w[1].ms),
        "the oracle needs non-decreasing event times"
    );
    let mut by_epoch: BTreeMap<i64, Vec<&Reading>> = BTreeMap::new();
    for r in readings {
        by_epoch
            .entry(r.ms.div_euclid(epoch_ms))
            .or_default()
            .push(r);
    }
    // device -> epoch -> (sum, count)
    let mut sums: BTreeMap<&str, BTreeMap<i64, Mean>> = BTreeMap::new();
    // device -> (reported epoch, value there) of the last hour, for rates
    let mut history: BTreeMap<&str, VecDeque<(i64, Mean)>> = BTreeMap::new();
    let mut last_seen: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    let mut active: BTreeMap<Key, Alert> = BTreeMap::new();
    let mut outcome = Outcome::default();
    for (&e, batch) in &by_epoch {
        let rules = rules_at(e);
        let mut judge = Judge {
            epoch: e,
            active: &mut active,
            changes: Vec::new(),
        };
        let reading: BTreeSet<(&str, &str)> = batch
            .iter()
            .map(|r| (r.device.as_str(), r.guid.as_str()))
            .collect();
        let mut retired: Vec<(&str, &str)> = Vec::new();
        for (&(device, guid), &seen) in &last_seen {
            let rule = rules.rule(device);
            let silence = rule.silence_ms;
            let here = reading.contains(&(device, guid));
            let key = (device.to_owned(), Kind::Silent, guid.to_owned());
            // Silent since an earlier reported epoch, and for silence + retire_after.
            if !here
                && judge.active.contains_key(&key)
                && (e - seen) * epoch_ms >= silence + rule.retire_ms
            {
                judge.active.remove(&key);
                judge.changes.push(Alert {
                    epoch: e,
                    device: device.to_owned(),
                    kind: Kind::Silent,
                    sensor: Some(guid.to_owned()),
                    raised: false,
                    value: None,
                    limit: rule.retire_ms as f64 / 1000.0,
                    reason: Some("retired"),
                });
                retired.push((device, guid));
                continue;
            }
            let quiet = !here && (e - seen) * epoch_ms >= silence;
            let limit = (quiet, silence);
            let back = (here, silence);
            judge.judge(
                (device, Kind::Silent, Some(guid)),
                None,
                limit,
                back,
                1000.0,
            );
        }
        // A retired sensor that reads again is a new one.
        for sensor in retired {
            last_seen.remove(&sensor);
        }
        for r in batch {
            let cell = sums
                .entry(&r.device)
                .or_default()
                .entry(e)
                .or_insert(Mean(0, 0));
            cell.0 += r.micros;
            cell.1 += 1;
            last_seen.insert((&r.device, &r.guid), e);
        }
        for (&device, epochs) in sums.iter_mut() {
            let rule = rules.rule(device);
            assert_eq!(
                rule.window_ms % epoch_ms,
                0,
                "{device}: window not in epochs"
            );
            assert!(rule.window_ms <= DAY_MS, "{device}: a window over a day");
            let first = e - rule.window_ms / epoch_ms + 1;
            // What no window reaches any more (the soak test's weeks).
            while let Some(old) = epochs.first_entry() {
                if *old.key() >= e - DAY_MS / epoch_ms {
                    break;
                }
                old.remove();
            }
            let v = epochs
                .range(first..=e)
                .fold(Mean(0, 0), |m, (_, c)| Mean(m.0 + c.0, m.1 + c.1));
            if v.1 == 0 {
                continue;
            }
            let (sum, count, hyst) = (v.0, v.1, rule.hysteresis);
            if let Some(high) = rule.high {
                let raise = (sum > high * count, high);
                let resolve = (sum <= (high - hyst) * count, high - hyst);
                let what = (device, Kind::High, None);
                judge.judge(what, Some(v.percent()), raise, resolve, MICROS as f64);
            }
            if let Some(low) = rule.low {
                let raise = (sum < low * count, low);
                let resolve = (sum >= (low + hyst) * count, low + hyst);
                let what = (device, Kind::Low, None);
                judge.judge(what, Some(v.percent()), raise, resolve, MICROS as f64);
            }
            let past = history.entry(device).or_default();
            past.push_back((e, v));
            while past
                .front()
                .is_some_and(|(t, _)| (e - t) * epoch_ms >= HOUR_MS)
            {
                past.pop_front();
            }
            if let Some(rate) = rule.rate_per_hour {
                let hour = past.iter();
                let (mut max, mut min) = (v, v);
                for &(_, m) in hour {
                    max = if max.below(m) { m } else { max };
                    min = if m.below(min) { m } else { min };
                }
                // r = max - min = num / den, exactly.
                let num =
                    i128::from(max.0) * i128::from(min.1) - i128::from(min.0) * i128::from(max.1);
                let den = i128::from(max.1) * i128::from(min.1);
                let r = num as f64 / den as f64 / MICROS as f64;
                let raise = (num > i128::from(rate) * den, rate);
                let resolve = (num <= i128::from(rate - hyst) * den, rate - hyst);
                let what = (device, Kind::Rate, None);
                judge.judge(what, Some(r), raise, resolve, MICROS as f64);
            }
        }
        let mut changes = judge.changes;
        changes.sort_by_key(Alert::key);
        outcome.log.extend(changes);
        outcome
            .reported
            .push((e, active.values().cloned().collect()));
    }
    outcome
}

/// Checks one line written by the engine against the oracle's: the same keys, every value
/// equal, `value` and `limit` within 1e-6.
pub fn assert_alert(got: &Value, want: &Alert, epoch_ms: i64, what: &str) {
    let want = want.to_json(epoch_ms);
    let (g, w) = (got.as_object(), want.as_object().expect("object"));
    let g = g.unwrap_or_else(|| panic!("{what}: not an object: {got}"));
    let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(keys(g), keys(w), "{what}: keys of {got}");
    for (key, expected) in w {
        let found = &g[key];
        let close = match (key.as_str(), found.as_f64(), expected.as_f64()) {
            ("value" | "limit", Some(a), Some(b)) => (a - b).abs() <= 1e-6,
            _ => found == expected,
        };
        assert!(
            close,
            "{what}: {key} is {found}, not {expected}\n got {got}\nwant {want}"
        );
    }
}

/// Checks a whole log, line by line, with the first difference shown in context.
pub fn assert_alerts(got: &[Value], want: &[Alert], epoch_ms: i64, what: &str) {
    let show = |lines: Vec<String>| lines.join("\n  ");
    if got.len() != want.len() {
        let ids = |v: &Value| format!("{} {}", v["id"], v["state"]);
        let got: Vec<String> = got.iter().map(ids).collect();
        let want: Vec<String> = want.iter().map(|a| ids(&a.to_json(epoch_ms))).collect();
        panic!(
            "{what}: {} alert lines, the oracle has {}\n got:\n  {}\nwant:\n  {}",
            got.len(),
            want.len(),
            show(got),
            show(want)
        );
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_alert(g, w, epoch_ms, &format!("{what}, line {}", i + 1));
    }
}
