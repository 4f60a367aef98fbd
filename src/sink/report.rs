//! The per-epoch report, as text (the seed's layout) or as one JSON object per line.
//!
//! Worker 0's [`Results`] hold the exact facts of each epoch; a [`Snapshot`] divides and sorts
//! them, and the [`Reporter`] prints it.

pub mod snapshot;

use std::io::{self, Write};

use hygroflow_dataflows::{Epoch, Results, Stat};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::config::ReportFormat;
use crate::epoch::{rfc3339, spark_time, EpochGrid, Window};
use crate::escape::Escaped;
use crate::kafka::publisher::{Outgoing, Publisher};
use crate::kafka::tail::{EpochTail, ResumeOffsets};
use crate::sink::alerts::{percent, Active, AlertLine};

pub use snapshot::Snapshot;

/// The JSON report, field order as documented.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    /// The epoch index.
    pub epoch: Epoch,
    /// The end of the epoch, RFC 3339.
    pub time: String,
    /// (ii) Valid messages processed.
    pub total_messages: i64,
    /// Messages rejected by validation.
    pub rejected_messages: i64,
    /// Messages that were late for their event-time epoch.
    pub late_messages: i64,
    /// Messages whose event time was more than `--max-clock-skew` ahead of the wall clock.
    pub future_messages: i64,
    /// (iv) Distinct sensors.
    pub total_sensors: i64,
    /// (i) Average humidity per device, descending (`--changes`: then, by device, those that
    /// left the window, with `null`).
    pub avg_humidity_by_device: Vec<(&'a str, Option<f64>)>,
    /// (iii) Distinct sensors per device, by device (`--changes`: `null` for a device whose
    /// sensors all left the window).
    pub sensors_by_device: Vec<(&'a str, Option<i64>)>,
    /// What the figures cover: `"cumulative"` or the window in seconds.
    pub window: WindowField,
    /// The raising line of every alert raised at this epoch, by device, kind and sensor.
    pub alerts_active: Vec<ActiveLine<'a>>,
}

/// One alert of a report's `alerts_active`: its line as the alert log wrote it, or formatted
/// now (the live page's copy).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ActiveLine<'a> {
    /// The line the alert log wrote when the alert was raised.
    Logged(&'a RawValue),
    /// A line formatted from the transition.
    Formatted(AlertLine<'a>),
}

impl<'a> ActiveLine<'a> {
    /// The lines of the alerts `active`, as logged.
    pub fn logged(active: &[&'a Active]) -> Vec<Self> {
        active.iter().map(|a| ActiveLine::Logged(&a.line)).collect()
    }
}

/// The JSON report's `"window"`: the string `"cumulative"`, or the window in seconds (a whole
/// number when it is one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WindowField {
    /// Every reading since the start.
    Cumulative,
    /// The last this many seconds.
    Seconds(f64),
}

impl WindowField {
    /// The field for `window` on `grid`.
    pub fn of(window: Window, grid: &EpochGrid) -> Self {
        match window.span(grid) {
            None => WindowField::Cumulative,
            Some(span) => WindowField::Seconds(span.as_secs_f64()),
        }
    }
}

impl Serialize for WindowField {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            WindowField::Cumulative => serializer.serialize_str("cumulative"),
            WindowField::Seconds(s) if s.fract() == 0.0 && s < 1e15 => {
                serializer.serialize_u64(s as u64)
            }
            WindowField::Seconds(s) => serializer.serialize_f64(s),
        }
    }
}

impl<'a> JsonReport<'a> {
    /// The JSON report of `snapshot` at `epoch`, with the alerts `active` then.
    pub fn new(
        epoch: Epoch,
        (grid, window): (&EpochGrid, Window),
        snapshot: &'a Snapshot,
        active: Vec<ActiveLine<'a>>,
    ) -> Self {
        JsonReport {
            epoch,
            time: rfc3339(grid.end_of(epoch)),
            total_messages: snapshot.total_messages,
            rejected_messages: snapshot.rejected_messages,
            late_messages: snapshot.late_messages,
            future_messages: snapshot.future_messages,
            total_sensors: snapshot.total_sensors,
            avg_humidity_by_device: snapshot
                .avg_humidity_by_device
                .iter()
                .map(|(d, avg)| (d.as_str(), Some(*avg)))
                .chain(snapshot.humidity_gone.iter().map(|d| (d.as_str(), None)))
                .collect(),
            sensors_by_device: {
                let mut sensors: Vec<(&str, Option<i64>)> = snapshot
                    .sensors_by_device
                    .iter()
                    .map(|(d, n)| (d.as_str(), Some(*n)))
                    .chain(snapshot.sensors_gone.iter().map(|d| (d.as_str(), None)))
                    .collect();
                // The snapshot's list is sorted already; gone devices (`--changes` with a
                // window) are not in it, so no two names are the same.
                if !snapshot.sensors_gone.is_empty() {
                    sensors.sort_unstable_by(|a, b| a.0.cmp(b.0));
                }
                sensors
            },
            window: WindowField::of(window, grid),
            alerts_active: active,
        }
    }
}

/// Prints reports to a writer.
pub struct Reporter {
    out: Box<dyn Write + Send>,
    format: ReportFormat,
    changes_only: bool,
    grid: EpochGrid,
    window: Window,
    line: Vec<u8>,
    results_topic: Option<(Publisher, String)>,
    /// The epochs whose reports the results topic held at start (not published again), and
    /// where a restart starts reading it back.
    published: Option<EpochTail<Epoch>>,
}

impl Reporter {
    /// A reporter writing to `out`, of figures over `window`.
    pub fn new(
        out: Box<dyn Write + Send>,
        format: ReportFormat,
        changes_only: bool,
        (grid, window): (EpochGrid, Window),
    ) -> Self {
        Reporter {
            out,
            format,
            changes_only,
            grid,
            window,
            line: Vec::with_capacity(4096),
            results_topic: None,
            published: None,
        }
    }

    /// Also publishes every report (as its JSON object) to `topic`.
    pub fn publish_to(
        mut self,
        publisher: Publisher,
        topic: String,
        published: EpochTail<Epoch>,
    ) -> Self {
        self.results_topic = Some((publisher, topic));
        self.published = Some(published);
        self
    }

    /// With `--results-topic`: where a restart from a checkpoint cut now, at `frontier`,
    /// starts reading it back.
    pub fn resume_offsets(&self, frontier: Epoch) -> Option<ResumeOffsets> {
        Some(self.published.as_ref()?.resume_offsets(frontier))
    }

    /// Waits until every published report is acknowledged.
    pub fn flush_published(&mut self) -> io::Result<()> {
        if let Some((publisher, _)) = &mut self.results_topic {
            publisher.flush().map_err(io::Error::other)?;
        }
        Ok(())
    }

    /// Reports epoch `epoch`: the full state, or with `--changes` the facts that changed.
    pub fn epoch(
        &mut self,
        epoch: Epoch,
        (results, changes): (&Results, &[(Stat, isize)]),
        active: &[&Active],
    ) -> io::Result<()> {
        let snapshot = if self.changes_only {
            let mut changed = Snapshot::from_changes(changes, results);
            // Totals are always shown with their current values.
            let full = Snapshot::of(results);
            changed.total_messages = full.total_messages;
            changed.total_sensors = full.total_sensors;
            changed.rejected_messages = full.rejected_messages;
            changed.late_messages = full.late_messages;
            changed.future_messages = full.future_messages;
            changed
        } else {
            Snapshot::of(results)
        };
        self.write(epoch, &snapshot, active)
    }

    /// Reports the full state at `epoch`, whatever `--changes` says (the final line).
    pub fn full(&mut self, epoch: Epoch, results: &Results, active: &[&Active]) -> io::Result<()> {
        self.write(epoch, &Snapshot::of(results), active)
    }

    /// With checkpoints: what this reporter writes is held until the checkpoint that covers
    /// it is committed (`held.rs`). Returns the printer's marks and worker 0's release.
    pub(crate) fn hold(&mut self) -> (super::held::Marks, super::held::Release) {
        let out = std::mem::replace(&mut self.out, Box::new(io::sink()));
        let (held, marks, release) = super::held::hold(out);
        self.out = held;
        (marks, release)
    }

    /// The reports' writer, for alert lines that go before a report (`--alerts -`).
    pub fn out(&mut self) -> &mut dyn Write {
        &mut self.out
    }

    /// Whether reports print only changes.
    pub fn changes_only(&self) -> bool {
        self.changes_only
    }

    fn write(&mut self, epoch: Epoch, snapshot: &Snapshot, active: &[&Active]) -> io::Result<()> {
        let on = (&self.grid, self.window);
        let fresh = self
            .published
            .as_ref()
            .is_some_and(|p| p.is_new(epoch, &epoch));
        self.line.clear();
        if let (Some((publisher, topic)), true) = (&mut self.results_topic, fresh) {
            let report = JsonReport::new(epoch, on, snapshot, ActiveLine::logged(active));
            serde_json::to_writer(&mut self.line, &report)?;
            publisher
                .send(Outgoing::new(
                    topic.clone(),
                    Some(epoch.to_string().into_bytes()),
                    self.line.clone(),
                    None,
                ))
                .map_err(io::Error::other)?;
            if self.format != ReportFormat::Json {
                self.line.clear();
            }
        }
        match self.format {
            ReportFormat::Json => {
                if self.line.is_empty() {
                    let report = JsonReport::new(epoch, on, snapshot, ActiveLine::logged(active));
                    serde_json::to_writer(&mut self.line, &report)?;
                }
                self.line.push(b'\n');
            }
            ReportFormat::Text => {
                write_text(
                    &mut self.line,
                    &spark_time(self.grid.end_of(epoch)),
                    snapshot,
                )?;
                write_active(&mut self.line, &self.grid, active)?;
            }
        }
        self.out.write_all(&self.line)?;
        self.out.flush()
    }
}

const RULE: &str = "-------------------------------------------";

/// The seed's layout, one section per analysis. Device names come from the input: they are
/// escaped, so that none can add a line or reach the terminal's control sequences.
fn write_text(out: &mut Vec<u8>, time: &str, s: &Snapshot) -> io::Result<()> {
    writeln!(out, "{RULE}\nTime: {time}\n{RULE}")?;
    writeln!(out, "Average humidity by device:")?;
    for (device, avg) in &s.avg_humidity_by_device {
        writeln!(out, "({}, {avg:.2})", Escaped(device))?;
    }
    for device in &s.humidity_gone {
        writeln!(out, "({}, -)", Escaped(device))?;
    }
    writeln!(out, "\nTotal number of messages: {}", s.total_messages)?;
    writeln!(out, "\nNumber of sensors by device:")?;
    for (device, n) in &s.sensors_by_device {
        writeln!(out, "({}, {n})", Escaped(device))?;
    }
    for device in &s.sensors_gone {
        writeln!(out, "({}, -)", Escaped(device))?;
    }
    writeln!(out, "\nTotal number of sensors: {}", s.total_sensors)?;
    writeln!(
        out,
        "Rejected messages: {}  Late messages: {}  Future messages: {}\n",
        s.rejected_messages, s.late_messages, s.future_messages
    )
}

/// The text report's last block: `Active alerts:` and one line per alert, or `none`.
fn write_active(out: &mut Vec<u8>, grid: &EpochGrid, active: &[&Active]) -> io::Result<()> {
    if active.is_empty() {
        return writeln!(out, "Active alerts: none\n");
    }
    writeln!(out, "Active alerts:")?;
    for t in active.iter().map(|a| &a.transition) {
        let sensor = t.sensor.as_deref().unwrap_or("-");
        let since = spark_time(grid.end_of(t.epoch));
        write!(
            out,
            "({}, {}, {}, since {since}, ",
            Escaped(&t.device),
            t.kind.name(),
            Escaped(sensor)
        )?;
        match t.value {
            Some(value) => writeln!(out, "{:.2})", percent(value))?,
            None => writeln!(out, "-)")?,
        }
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn snapshot() -> Snapshot {
        Snapshot {
            avg_humidity_by_device: vec![("PETCT7".into(), 70.813615), ("CT1".into(), 66.5)],
            total_messages: 10000,
            sensors_by_device: vec![("CT1".into(), 36), ("PETCT7".into(), 43)],
            total_sensors: 79,
            rejected_messages: 2,
            late_messages: 0,
            future_messages: 0,
            ..Snapshot::default()
        }
    }

    #[test]
    fn json_report_has_exactly_the_documented_keys_in_order() {
        let grid = EpochGrid::new(Duration::from_secs(3)).expect("valid");
        let s = snapshot();
        let text = serde_json::to_string(&JsonReport::new(
            553_047_784,
            (&grid, Window::Cumulative),
            &s,
            Vec::new(),
        ))
        .expect("serializes");
        assert_eq!(
            text,
            r#"{"epoch":553047784,"time":"2022-07-30T01:09:15.000Z","total_messages":10000,"rejected_messages":2,"late_messages":0,"future_messages":0,"total_sensors":79,"avg_humidity_by_device":[["PETCT7",70.813615],["CT1",66.5]],"sensors_by_device":[["CT1",36],["PETCT7",43]],"window":"cumulative","alerts_active":[]}"#
        );
        let windowed = |window| {
            let report = JsonReport::new(553_047_784, (&grid, window), &s, Vec::new());
            serde_json::to_value(report).expect("serializes")["window"].clone()
        };
        assert_eq!(windowed(Window::Epochs(20)), serde_json::json!(60));
        let half = EpochGrid::new(Duration::from_millis(500)).expect("valid");
        let report = JsonReport::new(1, (&half, Window::Epochs(3)), &s, Vec::new());
        assert_eq!(serde_json::to_value(report).expect("json")["window"], 1.5);
    }

    #[test]
    fn text_report_looks_like_the_seed() {
        let mut out = Vec::new();
        write_text(&mut out, "2022-07-30 01:09:15", &snapshot()).expect("writes");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("Time: 2022-07-30 01:09:15\n"));
        assert!(text.contains("(PETCT7, 70.81)\n(CT1, 66.50)\n"));
        assert!(text.contains("Total number of messages: 10000\n"));
        assert!(text.contains("(CT1, 36)\n(PETCT7, 43)\n"));
        assert!(text.contains("Total number of sensors: 79\n"));
    }

    #[test]
    fn device_names_cannot_forge_lines_or_reach_the_terminal() {
        let forged = "MRI1\n(FAKE, 99.99)\n\nTotal number of messages: 999999";
        let hostile = "\u{1b}]0;title\u{7}\u{1b}[2J\r\0\u{202e}CT";
        let s = Snapshot {
            avg_humidity_by_device: vec![(forged.into(), 50.0), (hostile.into(), 40.0)],
            total_messages: 2,
            sensors_by_device: vec![(forged.into(), 1), (hostile.into(), 1)],
            total_sensors: 2,
            ..Snapshot::default()
        };
        let mut out = Vec::new();
        write_text(&mut out, "2022-07-30 01:09:15", &s).expect("writes");
        let text = String::from_utf8(out).expect("utf8");
        let mut clean = Vec::new();
        write_text(&mut clean, "2022-07-30 01:09:15", &snapshot()).expect("writes");
        let clean = String::from_utf8(clean).expect("utf8");
        assert_eq!(text.lines().count(), clean.lines().count(), "{text}");
        let totals = text
            .lines()
            .filter(|l| l.starts_with("Total number of messages"));
        assert_eq!(totals.count(), 1, "{text}");
        assert!(text.contains(r"(MRI1\n(FAKE, 99.99)\n\nTotal number of messages: 999999, 50.00)"));
        assert!(text.contains(r"(\u{1b}]0;title\u{7}\u{1b}[2J\r\u{0}\u{202e}CT, 1)"));
        assert!(!text.contains(['\u{1b}', '\r', '\0', '\u{7}', '\u{202e}']));
    }
}
