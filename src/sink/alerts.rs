//! The alert log: every transition as a JSON line, to a file, stdout or a Kafka topic, and
//! the set of alerts raised now, which each report shows.
//!
//! Worker 0 hands the log each reported epoch's transitions, sorted, before that epoch's
//! report. With `--alerts-topic`, ids already in the topic (read back at start) are not
//! published again, so a restart that replays an epoch repeats none of its alerts there.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};

use hygroflow_dataflows::alerts::{AlertKind, AlertState, Limit, Ratio, Transition};
use hygroflow_dataflows::Epoch;
use serde::Serialize;
use serde_json::value::RawValue;

use std::sync::Arc;

use crate::epoch::{rfc3339, EpochGrid};
use crate::kafka::publisher::{Outgoing, Publisher};
use crate::kafka::tail::{EpochTail, ResumeOffsets};
use crate::pipeline::reload::{rules_name, LiveRules};
use crate::rules::Rules;

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
    /// The threshold that decided: % RH, or for `silent` the silence in seconds (for a
    /// retirement, `retire_after` in seconds).
    pub limit: f64,
    /// Why it resolved, when not because its condition ended: `rules` or `retired`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Raised or resolved during a maintenance of its device: logged, not notified.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shelved: bool,
}

/// The line that records a change of the rules: from its epoch on, the new rules apply.
#[derive(Debug, Serialize)]
pub struct RulesLine {
    /// `rules/CHECKSUM/EPOCH`.
    pub id: String,
    /// The first epoch judged by the new rules.
    pub epoch: Epoch,
    /// Its end, RFC 3339.
    pub time: String,
    /// `rules`.
    pub event: &'static str,
    /// The rules before, `rules#` and a checksum.
    pub was: String,
    /// The rules from now on.
    pub now: String,
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
            reason: t.reason.map(|r| r.name()),
            shelved: false,
        }
    }

    /// The line, marked shelved when `shelved`.
    pub fn shelved(mut self, shelved: bool) -> Self {
        self.shelved = shelved;
        self
    }
}

impl InForce {
    /// Whether `t` falls in a maintenance of its device.
    fn shelves(&self, t: &Transition, grid: &EpochGrid) -> bool {
        self.rules.as_ref().is_some_and(|r| {
            r.has_maintenance()
                && r.maintenance_for(&t.device, end_ms(grid, t.epoch))
                    .is_some()
        })
    }
}

/// The end of `epoch`, in milliseconds since the Unix epoch: the time maintenance is judged at.
fn end_ms(grid: &EpochGrid, epoch: Epoch) -> i64 {
    grid.end_of(epoch)
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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
    /// The alert raised by `t`, on epochs of `grid`, shelved or not.
    pub fn new(t: Transition, grid: &EpochGrid, shelved: bool) -> io::Result<Self> {
        let line = serde_json::to_string(&AlertLine::new(&t, grid).shelved(shelved))?;
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
    /// The rules in force (maintenance), and where their changes are found.
    rules: Option<InForce>,
}

/// The rules the log applies now, and the process's book of rules.
struct InForce {
    live: Arc<LiveRules>,
    /// The checksum of the rules in force.
    applied: u32,
    rules: Option<Rules>,
}

/// `--alerts-topic`: the publisher, and the ids already in the topic.
pub struct AlertTopic {
    /// The producer.
    pub publisher: Publisher,
    /// The topic.
    pub topic: String,
    /// Ids found in the topic at start: what a killed run published after its last
    /// checkpoint, which this run replays (a run offers each transition once, so what it
    /// publishes itself is not added), and where a restart starts reading it back.
    pub published: EpochTail<String>,
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
                Ok((key, Active::new(t.clone(), &grid, false)?))
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
            rules: None,
        })
    }

    /// Applies `live`'s rules: maintenance shelves alerts, and each change of the rules gets
    /// a line. `applied`: the rules in force at the restart's frontier (`rules#` and a
    /// checksum), when known.
    pub fn with_rules(mut self, live: Arc<LiveRules>, applied: Option<&str>) -> io::Result<Self> {
        let (_, loaded) = live.loaded();
        let applied = applied
            .and_then(|name| name.strip_prefix("rules#"))
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .unwrap_or(loaded);
        let rules = live.rules(loaded);
        self.rules = Some(InForce {
            live,
            applied,
            rules,
        });
        // Alerts raised at a restart show as shelved when their epoch was in maintenance.
        let grid = self.grid;
        for active in self.active.values_mut() {
            let shelved = self
                .rules
                .as_ref()
                .is_some_and(|r| r.shelves(&active.transition, &grid));
            if shelved {
                *active = Active::new(active.transition.clone(), &grid, true)?;
            }
        }
        Ok(self)
    }

    /// The rules in force, `rules#` and a checksum (what a checkpoint records).
    pub fn rules_applied(&self) -> Option<String> {
        self.rules.as_ref().map(|r| rules_name(r.applied))
    }

    /// `--alertmanager`: the resolves not yet delivered (what a checkpoint records).
    pub fn undelivered(&self) -> Vec<(Transition, Transition)> {
        self.notifier
            .as_ref()
            .map(crate::notify::Notifier::undelivered)
            .unwrap_or_default()
    }

    /// The rules in force as the dataflow applies them (the page's bands).
    pub fn alert_rules(&self) -> Option<hygroflow_dataflows::AlertRules> {
        let rules = self.rules.as_ref()?;
        rules.live.book.get(rules.applied)
    }

    /// `--alertmanager`: the alerts Alertmanager reports silenced.
    pub fn silences(&self) -> Option<crate::notify::silences::Silences> {
        self.notifier
            .as_ref()
            .map(crate::notify::Notifier::silences)
    }

    /// The reason of the maintenance `device` is in at `epoch`, if any.
    pub fn maintenance_of(&self, epoch: Epoch, device: &str) -> Option<String> {
        let rules = self.rules.as_ref()?.rules.as_ref()?;
        if !rules.has_maintenance() {
            return None;
        }
        let m = rules.maintenance_for(device, end_ms(&self.grid, epoch))?;
        Some(if m.reason.is_empty() {
            format!("until {}", m.span.1)
        } else {
            format!("{} (until {})", m.reason, m.span.1)
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
        through: Option<Epoch>,
        stdout: Option<&mut dyn Write>,
    ) -> io::Result<()> {
        let switches = match &self.rules {
            Some(rules) => rules.live.book.take_switches(through.unwrap_or(Epoch::MAX)),
            None => Vec::new(),
        };
        if transitions.is_empty() && switches.is_empty() {
            self.review_maintenance(through);
            return Ok(());
        }
        if let Some(kept) = &mut self.kept {
            kept.extend_from_slice(transitions);
        }
        let grid = self.grid;
        // About 200 bytes a line.
        let mut lines = Vec::with_capacity(transitions.len() * 256);
        let mut switches = switches.into_iter().peekable();
        let mut notify_from = 0;
        for (i, t) in transitions.iter().enumerate() {
            while let Some((epoch, checksum)) = switches.next_if(|(e, _)| *e <= t.epoch) {
                self.notify(&transitions[notify_from..i]);
                notify_from = i;
                self.switch_rules(epoch, checksum, &mut lines)?;
            }
            let start = lines.len();
            let shelved = self.rules.as_ref().is_some_and(|r| r.shelves(t, &grid));
            serde_json::to_writer(&mut lines, &AlertLine::new(t, &grid).shelved(shelved))?;
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
                if topic.published.is_new(t.epoch, &id(t)) {
                    let outgoing = Outgoing::new(
                        topic.topic.clone(),
                        Some(t.device.as_bytes().to_vec()),
                        lines[start..].to_vec(),
                        None,
                    );
                    topic.publisher.send(outgoing).map_err(io::Error::other)?;
                    topic.unflushed = true;
                }
            }
            lines.push(b'\n');
        }
        self.notify(&transitions[notify_from..]);
        for (epoch, checksum) in switches {
            self.switch_rules(epoch, checksum, &mut lines)?;
        }
        self.review_maintenance(through);
        if let Some(file) = &mut self.file {
            file.write_all(&lines)?;
            file.flush()?;
        }
        if let (true, Some(out)) = (self.stdout, stdout) {
            out.write_all(&lines)?;
        }
        Ok(())
    }

    /// Hands `transitions` to the notifier, each with whether the rules in force shelve it.
    fn notify(&self, transitions: &[Transition]) {
        let (Some(notifier), false) = (&self.notifier, transitions.is_empty()) else {
            return;
        };
        let grid = self.grid;
        let rules = self.rules.as_ref();
        notifier.record(transitions, |t| rules.is_some_and(|r| r.shelves(t, &grid)));
    }

    /// Alerts shelved by a maintenance that has ended by epoch `through` are notified now.
    fn review_maintenance(&self, through: Option<Epoch>) {
        let (Some(notifier), Some(rules), Some(through)) = (&self.notifier, &self.rules, through)
        else {
            return;
        };
        let ms = end_ms(&self.grid, through);
        let in_force = rules.rules.as_ref();
        notifier
            .unshelve(|device| in_force.is_some_and(|r| r.maintenance_for(device, ms).is_some()));
    }

    /// From `epoch` on, the rules filed under `checksum` apply: one line records it.
    fn switch_rules(&mut self, epoch: Epoch, checksum: u32, lines: &mut Vec<u8>) -> io::Result<()> {
        let Some(rules) = &mut self.rules else {
            return Ok(());
        };
        if rules.applied == checksum {
            return Ok(());
        }
        let line = RulesLine {
            id: format!("rules/{checksum:08x}/{epoch}"),
            epoch,
            time: rfc3339(self.grid.end_of(epoch)),
            event: "rules",
            was: rules_name(rules.applied),
            now: rules_name(checksum),
        };
        rules.applied = checksum;
        rules.rules = rules.live.rules(checksum);
        if let (Some(notifier), Some(new)) = (&self.notifier, &rules.rules) {
            notifier.set_rules(new.clone());
        }
        let start = lines.len();
        serde_json::to_writer(&mut *lines, &line)?;
        if let Some(topic) = &mut self.topic {
            if topic.published.is_new(epoch, &line.id) {
                let outgoing = Outgoing::new(
                    topic.topic.clone(),
                    Some(b"rules".to_vec()),
                    lines[start..].to_vec(),
                    None,
                );
                topic.publisher.send(outgoing).map_err(io::Error::other)?;
                topic.unflushed = true;
            }
        }
        lines.push(b'\n');
        Ok(())
    }

    /// With `--alerts-topic`: where a restart from a checkpoint cut now, at `frontier`,
    /// starts reading it back.
    pub fn resume_offsets(&self, frontier: Epoch) -> Option<ResumeOffsets> {
        Some(self.topic.as_ref()?.published.resume_offsets(frontier))
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
            reason: None,
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
            reason: None,
        };
        let resolved = Transition {
            epoch: 9,
            state: AlertState::Resolved,
            ..raised.clone()
        };
        let mut log = AlertLog::new(grid, &[]).expect("log").with_stdout();
        let mut out = Vec::new();
        log.record(std::slice::from_ref(&raised), None, Some(&mut out))
            .expect("records");
        assert_eq!(log.active().count(), 1);
        log.record(&[resolved], None, Some(&mut out))
            .expect("records");
        assert_eq!(log.active().count(), 0);
        assert_eq!(String::from_utf8(out).expect("utf8").lines().count(), 2);
    }
}
