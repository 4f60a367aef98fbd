//! The alert log: every transition as a JSON line, to a file, stdout or a Kafka topic, and
//! the set of alerts raised now, which each report shows.
//!
//! Worker 0 hands the log each reported epoch's transitions, sorted, before that epoch's
//! report. With `--alerts-topic`, ids already in the topic (read back at start) are not
//! published again, so a restart that replays an epoch repeats none of its alerts there.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Write};

use hygroflow_dataflows::alerts::{AlertKind, AlertState, Limit, Ratio, Transition};
use hygroflow_dataflows::Epoch;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::epoch::{rfc3339, EpochGrid};
use crate::kafka::publisher::{Outgoing, Publisher};

/// One line of the alert log, field order as documented.
#[derive(Debug, Serialize)]
pub struct AlertLine<'a> {
    /// `DEVICE/KIND/SENSOR-or-empty/EPOCH`.
    pub id: String,
    /// The epoch at which the condition first held.
    pub epoch: Epoch,
    /// The end of that epoch, RFC 3339.
    pub time: String,
    /// The imaging device.
    pub device: &'a str,
    /// The sensor, for `silent`.
    pub sensor: Option<&'a str>,
    /// `high`, `low`, `rate` or `silent`.
    pub kind: &'static str,
    /// `raised` or `resolved`.
    pub state: &'static str,
    /// The windowed mean or the hour's change that decided, in % RH (`null` for `silent`).
    pub value: Option<f64>,
    /// The threshold that decided: % RH, or for `silent` the silence in seconds.
    pub limit: f64,
}

/// A value in % RH, rounded to the millionth.
pub fn percent(value: Ratio) -> f64 {
    value.round_micro() as f64 / 1e6
}

impl<'a> AlertLine<'a> {
    /// The line of `t` on epochs of `grid`.
    pub fn new(t: &'a Transition, grid: &EpochGrid) -> Self {
        AlertLine {
            id: id(t),
            epoch: t.epoch,
            time: rfc3339(grid.end_of(t.epoch)),
            device: &t.device,
            sensor: t.sensor.as_deref(),
            kind: t.kind.name(),
            state: match t.state {
                AlertState::Raised => "raised",
                AlertState::Resolved => "resolved",
            },
            value: t.value.map(percent),
            limit: match t.limit {
                Limit::Micro(micro) => micro as f64 / 1e6,
                Limit::Millis(ms) => ms as f64 / 1e3,
            },
        }
    }
}

/// `DEVICE/KIND/SENSOR-or-empty/EPOCH`: names a transition across runs.
pub fn id(t: &Transition) -> String {
    format!(
        "{}/{}/{}/{}",
        t.device,
        t.kind.name(),
        t.sensor.as_deref().unwrap_or(""),
        t.epoch
    )
}

/// An alert raised now: its raising transition, and that transition's line as the log wrote
/// it. Every report lists the raised alerts; in a flood (a network outage silences every
/// sensor for minutes) that is thousands of lines per epoch, so each is formatted once, when
/// it is raised, and each report copies it.
#[derive(Clone, Debug)]
pub struct Active {
    /// The transition that raised the alert.
    pub transition: Transition,
    /// Its log line, as JSON.
    pub line: Box<RawValue>,
}

impl Active {
    /// The alert raised by `t`, on epochs of `grid`.
    pub fn new(t: Transition, grid: &EpochGrid) -> io::Result<Self> {
        let line = serde_json::to_string(&AlertLine::new(&t, grid))?;
        Self::with_line(t, line)
    }

    fn with_line(transition: Transition, line: String) -> io::Result<Self> {
        Ok(Active {
            transition,
            line: RawValue::from_string(line)?,
        })
    }
}

/// Where transitions go, and the alerts raised now.
pub struct AlertLog {
    grid: EpochGrid,
    /// Every alert raised now, by `(device, kind, sensor)`.
    active: BTreeMap<(String, AlertKind, Option<String>), Active>,
    file: Option<BufWriter<File>>,
    stdout: bool,
    topic: Option<AlertTopic>,
    /// `--http`: the transitions logged since the live page last took them.
    kept: Option<Vec<Transition>>,
    /// `--alertmanager`: where transitions are notified.
    notifier: Option<crate::notify::Notifier>,
}

/// `--alerts-topic`: the publisher, and the ids already in the topic.
pub struct AlertTopic {
    /// The producer.
    pub publisher: Publisher,
    /// The topic.
    pub topic: String,
    /// Ids found in the topic at start.
    pub published: HashSet<String>,
    /// Sent since the last flush.
    pub unflushed: bool,
}

impl AlertLog {
    /// A log of alerts on `grid`, starting with the alerts `active` at a restart.
    pub fn new(grid: EpochGrid, active: &[Transition]) -> io::Result<Self> {
        let active = active
            .iter()
            .map(|t| {
                let key = (t.device.clone(), t.kind, t.sensor.clone());
                Ok((key, Active::new(t.clone(), &grid)?))
            })
            .collect::<io::Result<_>>()?;
        Ok(AlertLog {
            grid,
            active,
            file: None,
            stdout: false,
            topic: None,
            kept: None,
            notifier: None,
        })
    }

    /// Also writes transitions to `file`.
    pub fn with_file(mut self, file: File) -> Self {
        self.file = Some(BufWriter::new(file));
        self
    }

    /// Also writes transitions to stdout, before each report.
    pub fn with_stdout(mut self) -> Self {
        self.stdout = true;
        self
    }

    /// Also publishes transitions to a topic.
    pub fn with_topic(mut self, topic: AlertTopic) -> Self {
        self.topic = Some(topic);
        self
    }

    /// Also notifies Alertmanager of every transition.
    pub fn with_notifier(mut self, notifier: crate::notify::Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Also keeps the transitions it logs until [`AlertLog::take_transitions`] (the live page).
    pub fn keeping_transitions(mut self) -> Self {
        self.kept = Some(Vec::new());
        self
    }

    /// The transitions logged since the last call (none unless keeping them).
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        self.kept.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Every alert raised now, sorted by `(device, kind, sensor)`.
    pub fn active(&self) -> impl Iterator<Item = &Active> {
        self.active.values()
    }

    /// The raising transition of every alert raised now, sorted by `(device, kind, sensor)`.
    pub fn active_transitions(&self) -> impl Iterator<Item = &Transition> {
        self.active.values().map(|a| &a.transition)
    }

    /// Applies `transitions` (sorted) and writes them: to the file, to `stdout` (the
    /// reports' writer, when it is still read) and to the topic.
    pub fn record(
        &mut self,
        transitions: &[Transition],
        stdout: Option<&mut dyn Write>,
    ) -> io::Result<()> {
        if transitions.is_empty() {
            return Ok(());
        }
        if let Some(kept) = &mut self.kept {
            kept.extend_from_slice(transitions);
        }
        if let Some(notifier) = &self.notifier {
            notifier.record(transitions);
        }
        // About 200 bytes a line.
        let mut lines = Vec::with_capacity(transitions.len() * 256);
        for t in transitions {
            let start = lines.len();
            serde_json::to_writer(&mut lines, &AlertLine::new(t, &self.grid))?;
            let key = (t.device.clone(), t.kind, t.sensor.clone());
            match t.state {
                AlertState::Raised => {
                    // The line is JSON that serde_json has just written: it is UTF-8.
                    let line = String::from_utf8_lossy(&lines[start..]).into_owned();
                    self.active.insert(key, Active::with_line(t.clone(), line)?);
                }
                AlertState::Resolved => {
                    self.active.remove(&key);
                }
            }
            if let Some(topic) = &mut self.topic {
                let id = id(t);
                if !topic.published.contains(&id) {
                    let outgoing = Outgoing::new(
                        topic.topic.clone(),
                        Some(t.device.as_bytes().to_vec()),
                        lines[start..].to_vec(),
                        None,
                    );
                    topic.publisher.send(outgoing).map_err(io::Error::other)?;
                    topic.published.insert(id);
                    topic.unflushed = true;
                }
            }
            lines.push(b'\n');
        }
        if let Some(file) = &mut self.file {
            file.write_all(&lines)?;
            file.flush()?;
        }
        if let (true, Some(out)) = (self.stdout, stdout) {
            out.write_all(&lines)?;
        }
        Ok(())
    }

    /// Waits until every published transition is acknowledged (before a checkpoint commits
    /// the epochs they belong to).
    pub fn flush_published(&mut self) -> io::Result<()> {
        if let Some(topic) = &mut self.topic {
            if topic.unflushed {
                topic.publisher.flush().map_err(io::Error::other)?;
                topic.unflushed = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn alert_lines_have_the_documented_keys_in_order() {
        let grid = EpochGrid::new(Duration::from_secs(3)).expect("grid");
        let t = Transition {
            epoch: 553_047_784,
            device: "MRI12".into(),
            kind: AlertKind::High,
            sensor: None,
            state: AlertState::Raised,
            value: Some(Ratio {
                num: 181_000_001,
                den: 3,
            }),
            limit: Limit::Micro(60_000_000),
        };
        let text = serde_json::to_string(&AlertLine::new(&t, &grid)).expect("json");
        assert_eq!(
            text,
            r#"{"id":"MRI12/high//553047784","epoch":553047784,"time":"2022-07-30T01:09:15.000Z","device":"MRI12","sensor":null,"kind":"high","state":"raised","value":60.333334,"limit":60.0}"#
        );
        let silent = Transition {
            kind: AlertKind::Silent,
            sensor: Some("g".into()),
            value: None,
            limit: Limit::Millis(300_000),
            ..t
        };
        let line = serde_json::to_value(AlertLine::new(&silent, &grid)).expect("json");
        assert_eq!(line["id"], "MRI12/silent/g/553047784");
        assert_eq!(line["limit"], 300.0);
        assert_eq!(line["value"], serde_json::Value::Null);
    }

    #[test]
    fn the_log_keeps_the_raised_alerts() {
        let grid = EpochGrid::new(Duration::from_secs(3)).expect("grid");
        let raised = Transition {
            epoch: 5,
            device: "CT1".into(),
            kind: AlertKind::Low,
            sensor: None,
            state: AlertState::Raised,
            value: Some(Ratio { num: 1, den: 1 }),
            limit: Limit::Micro(30_000_000),
        };
        let resolved = Transition {
            epoch: 9,
            state: AlertState::Resolved,
            ..raised.clone()
        };
        let mut log = AlertLog::new(grid, &[]).expect("log").with_stdout();
        let mut out = Vec::new();
        log.record(std::slice::from_ref(&raised), Some(&mut out))
            .expect("records");
        assert_eq!(log.active().count(), 1);
        log.record(&[resolved], Some(&mut out)).expect("records");
        assert_eq!(log.active().count(), 0);
        assert_eq!(String::from_utf8(out).expect("utf8").lines().count(), 2);
    }
}
