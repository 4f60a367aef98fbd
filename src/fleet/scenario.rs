//! Scenarios: trouble injected into the simulated fleet on a timetable, so that the alerts it
//! should raise can be watched (gh-9 point 4).
//!
//! On its own the fleet raises no alert (see [`super`]). A scenario changes one device, from a
//! start measured from the start of the stream (`generate`: the first line's event time; the
//! demo: the run's start, taken once per process, so the same instant for all its workers; the
//! processes of a cluster each take their own, as far apart as they were started):
//!
//! | name        | device | what                                                         | alert it should raise               |
//! |-------------|--------|--------------------------------------------------------------|-------------------------------------|
//! | `excursion` | CT1    | +25 % RH for 2 minutes, then back to normal                  | `high`, raised then resolved        |
//! | `silence`   | SPECT1 | none of its sensors sends anything for 6 minutes             | `silent` after 5 minutes, resolved at the next reading |
//! | `drift`     | MRI1   | rises 30 % RH per hour for 12 minutes (+6), then holds at +6 | `rate` (MRI: 5 % RH an hour), inside the band |
//! | `outage`    | all    | nothing from any sensor for 6 minutes, every 30 minutes (a flaky network) | `silent` for every sensor, then resolved: an alarm flood |
//! | `soak`      | several | every 6 hours an excursion, a silence, a drift up and back, sensors and a device away for hours ([`super::soak`]) | every kind, again and again: simulated weeks |
//!
//! While a sensor is silenced, its slot in the rotation goes to the next sensor that is not, so
//! a stream keeps its rate and `generate --count` its number of lines. An outage silences every
//! sensor: its slots write no line (the demo does not inject it).
//!
//! `--scenario LIST` parses into [`Scenarios`]; a [`Plan`] resolves them against a fleet and a
//! start time and answers the generator's two questions about each reading: the humidity
//! offset of a device at an event time, and whether a device's sensors are silenced then.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::soak::Soak;
use super::Fleet;
use crate::flags;

/// What `excursion` adds to CT1's readings, in % RH.
pub const EXCURSION_RH: f64 = 25.0;
/// How fast `drift` raises MRI1's readings, in % RH an hour.
pub const DRIFT_RH_PER_HOUR: f64 = 30.0;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

/// The kinds of trouble a scenario injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// CT1 reads 25 % RH high for 2 minutes.
    Excursion,
    /// SPECT1's sensors send nothing for 6 minutes.
    Silence,
    /// MRI1 rises 30 % RH an hour for 12 minutes, then holds.
    Drift,
    /// No sensor sends anything for 6 minutes of every 30: the alarm flood of a network outage.
    Outage,
    /// Every six hours, trouble of each kind and sensors that come and go ([`super::soak`]).
    Soak,
}

/// How often an outage recurs.
const OUTAGE_EVERY_MS: i64 = 30 * MINUTE_MS;

impl Kind {
    /// Every kind the demo injects, in its order.
    pub const ALL: [Kind; 3] = [Kind::Excursion, Kind::Silence, Kind::Drift];

    /// Every kind `--scenario` takes.
    const NAMED: [Kind; 5] = [
        Kind::Excursion,
        Kind::Silence,
        Kind::Drift,
        Kind::Outage,
        Kind::Soak,
    ];

    /// The name `--scenario` takes.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Excursion => "excursion",
            Kind::Silence => "silence",
            Kind::Drift => "drift",
            Kind::Outage => "outage",
            Kind::Soak => "soak",
        }
    }

    /// The device it happens to (an outage: every device).
    pub fn device(self) -> &'static str {
        match self {
            Kind::Excursion => "CT1",
            Kind::Silence => "SPECT1",
            Kind::Drift => "MRI1",
            Kind::Outage | Kind::Soak => "every device",
        }
    }

    /// Its start without `@DURATION`: the demo's, a minute apart.
    pub fn default_start(self) -> Duration {
        let minutes = match self {
            Kind::Excursion => 1,
            Kind::Silence => 2,
            Kind::Drift => 3,
            Kind::Outage => 10,
            Kind::Soak => 0,
        };
        Duration::from_secs(60 * minutes)
    }

    /// How long the trouble lasts, in ms (a drift then holds its offset; an outage recurs).
    pub fn length_ms(self) -> i64 {
        match self {
            Kind::Excursion => 2 * MINUTE_MS,
            Kind::Silence | Kind::Outage => 6 * MINUTE_MS,
            Kind::Drift => 12 * MINUTE_MS,
            Kind::Soak => super::soak::CYCLE_MS,
        }
    }

    /// What it adds to the device's humidity `elapsed_ms` after its start (negative: before).
    pub fn offset(self, elapsed_ms: i64) -> f64 {
        match self {
            Kind::Excursion if (0..self.length_ms()).contains(&elapsed_ms) => EXCURSION_RH,
            Kind::Drift if elapsed_ms > 0 => {
                DRIFT_RH_PER_HOUR * elapsed_ms.min(self.length_ms()) as f64 / HOUR_MS as f64
            }
            _ => 0.0,
        }
    }

    /// Whether the device's sensors are silenced `elapsed_ms` after its start.
    pub fn silences(self, elapsed_ms: i64) -> bool {
        match self {
            Kind::Silence => (0..self.length_ms()).contains(&elapsed_ms),
            Kind::Outage => elapsed_ms >= 0 && elapsed_ms % OUTAGE_EVERY_MS < self.length_ms(),
            _ => false,
        }
    }

    fn from_name(name: &str) -> Option<Kind> {
        Kind::NAMED.into_iter().find(|k| k.name() == name)
    }
}

/// One scenario: a kind of trouble and when it starts, from the start of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// What happens.
    pub kind: Kind,
    /// When, from the start of the stream.
    pub start: Duration,
}

/// The scenarios of a run or of `generate`: each kind at most once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scenarios(Vec<Scenario>);

impl Scenarios {
    /// No scenario: `generate`'s default.
    pub fn none() -> Scenarios {
        Scenarios(Vec::new())
    }

    /// The demo's default: every kind, a minute apart (excursion@1m,silence@2m,drift@3m).
    pub fn demo() -> Scenarios {
        Scenarios(
            Kind::ALL
                .into_iter()
                .map(|kind| Scenario {
                    kind,
                    start: kind.default_start(),
                })
                .collect(),
        )
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scenarios, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Scenario> {
        self.0.iter()
    }
}

/// `excursion@1m,silence@2m,drift@3m`, or `none`: what `--scenario` reads back as the same.
impl fmt::Display for Scenarios {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, s) in self.0.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            // `1h 30m` without its space: the list stays one shell word.
            let start = humantime::format_duration(s.start).to_string();
            write!(f, "{comma}{}@{}", s.kind.name(), start.replace(' ', ""))?;
        }
        Ok(())
    }
}

/// What is wrong with a `--scenario` list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// An empty item (`""`, `excursion,,drift`, a trailing comma).
    #[error("an empty scenario: expected {EXPECTED}")]
    Empty,
    /// A name that is not a scenario.
    #[error("unknown scenario '{0}': expected {EXPECTED}")]
    Unknown(String),
    /// The same scenario twice.
    #[error("{0} is given twice: give each scenario once")]
    Duplicate(&'static str),
    /// `none` with scenarios.
    #[error("none means no scenario: give it alone or leave it out")]
    NoneWithOthers,
    /// A start that is not a duration from 0s to a year.
    #[error("{name}@{text}: {why}")]
    Start {
        /// The scenario.
        name: &'static str,
        /// The start as typed.
        text: String,
        /// What a start must be.
        why: String,
    },
}

/// What a list may hold, for error messages.
const EXPECTED: &str =
    "excursion, silence, drift, outage or soak, comma-separated, each optionally @START \
                        (e.g. excursion@5m,drift@90s), or none";

impl FromStr for Scenarios {
    type Err = ScenarioError;

    /// `NAME[@DURATION],...` or `none`; a NAME without `@DURATION` starts at its
    /// [`Kind::default_start`].
    fn from_str(text: &str) -> Result<Scenarios, ScenarioError> {
        let items: Vec<&str> = text.split(',').map(str::trim).collect();
        if items == ["none"] {
            return Ok(Scenarios::none());
        }
        let mut scenarios: Vec<Scenario> = Vec::with_capacity(items.len());
        for item in items {
            let (name, start) = match item.split_once('@') {
                Some((name, start)) => (name.trim(), Some(start.trim())),
                None => (item, None),
            };
            let kind = match (name, Kind::from_name(name)) {
                ("", _) => return Err(ScenarioError::Empty),
                ("none", _) => return Err(ScenarioError::NoneWithOthers),
                (_, Some(kind)) => kind,
                (_, None) => return Err(ScenarioError::Unknown(name.to_owned())),
            };
            if scenarios.iter().any(|s| s.kind == kind) {
                return Err(ScenarioError::Duplicate(kind.name()));
            }
            let start = match start {
                None => kind.default_start(),
                Some(text) => {
                    flags::duration(Duration::ZERO)(text).map_err(|why| ScenarioError::Start {
                        name: kind.name(),
                        text: text.to_owned(),
                        why: why.replace("a duration from", "a start from"),
                    })?
                }
            };
            scenarios.push(Scenario { kind, start });
        }
        Ok(Scenarios(scenarios))
    }
}

/// `--scenario`'s value parser.
pub fn parse(text: &str) -> Result<Scenarios, ScenarioError> {
    text.parse()
}

/// One scenario resolved against a fleet: its device's index and its start in Unix ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Injection {
    kind: Kind,
    device: usize,
    start_ms: i64,
}

/// Scenarios resolved against a fleet and the start of a stream, with a line per scenario
/// saying what is injected when ([`Plan::notes`]).
#[derive(Clone, Debug, Default)]
pub struct Plan {
    injections: Vec<Injection>,
    /// `soak`'s timetable.
    soak: Option<Soak>,
    notes: Vec<String>,
}

impl Plan {
    /// `scenarios` in `fleet`, times counted from `stream_start_ms` (Unix ms). A scenario
    /// whose device has no sensor in the fleet, or a silence that would leave no sensor to
    /// send anything, is left out, and its note says so.
    pub fn new(scenarios: &Scenarios, fleet: &Fleet, stream_start_ms: i64) -> Plan {
        let per_device = fleet.sensors_per_device();
        let total: usize = per_device.iter().sum();
        let mut plan = Plan::default();
        for scenario in scenarios.iter() {
            let kind = scenario.kind;
            let name = kind.name();
            let start_ms = stream_start_ms
                .saturating_add(i64::try_from(scenario.start.as_millis()).unwrap_or(i64::MAX));
            if kind == Kind::Soak {
                plan.soak = Soak::new(fleet, start_ms);
                plan.notes.push(plan.soak.as_ref().map_or_else(
                    || "scenario soak: no device has a sensor; nothing injected".to_owned(),
                    Soak::note,
                ));
                continue;
            }
            if kind == Kind::Outage {
                let injection = Injection {
                    kind,
                    device: usize::MAX,
                    start_ms,
                };
                plan.notes.push(injection.note(total));
                plan.injections.push(injection);
                continue;
            }
            let device = fleet.device_index(kind.device());
            let sensors = device.map_or(0, |d| per_device[d]);
            let Some(device) = device.filter(|_| sensors > 0) else {
                plan.notes.push(format!(
                    "scenario {name}: {} has no sensor in a fleet of {total} (raise --sensors); nothing injected",
                    kind.device()
                ));
                continue;
            };
            if kind == Kind::Silence && sensors == total {
                plan.notes.push(format!(
                    "scenario {name}: {} holds every sensor of the fleet, so nothing would be sent; nothing injected",
                    kind.device()
                ));
                continue;
            }
            let injection = Injection {
                kind,
                device,
                start_ms,
            };
            plan.notes.push(injection.note(sensors));
            plan.injections.push(injection);
        }
        plan
    }

    /// One line per scenario: what is injected, from when to when (or why not).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// What the scenarios add to device `device`'s humidity at `event_ms`.
    pub fn offset(&self, device: usize, event_ms: i64) -> f64 {
        let soak = self
            .soak
            .as_ref()
            .map_or(0.0, |s| s.offset(device, event_ms));
        self.injections
            .iter()
            .filter(|i| i.device == device)
            .map(|i| i.kind.offset(event_ms.saturating_sub(i.start_ms)))
            .sum::<f64>()
            + soak
    }

    /// Whether sensor `sensor` of device `device` is silenced at `event_ms`.
    pub fn silenced(&self, sensor: usize, device: usize, event_ms: i64) -> bool {
        self.soak
            .as_ref()
            .is_some_and(|s| s.silences(sensor, device, event_ms))
            || self.injections.iter().any(|i| {
                (i.device == device || i.kind == Kind::Outage)
                    && i.kind.silences(event_ms.saturating_sub(i.start_ms))
            })
    }

    /// Whether an outage silences every sensor at `event_ms`.
    pub fn outage(&self, event_ms: i64) -> bool {
        self.injections
            .iter()
            .any(|i| i.kind == Kind::Outage && i.kind.silences(event_ms.saturating_sub(i.start_ms)))
    }
}

impl Injection {
    /// `scenario excursion: CT1 +25 % RH from 2022-07-30T01:10:00.000Z to ...`.
    fn note(&self, sensors: usize) -> String {
        let (kind, device) = (self.kind, self.kind.device());
        let from = time(self.start_ms);
        let to = time(self.start_ms.saturating_add(kind.length_ms()));
        let name = kind.name();
        match kind {
            Kind::Excursion => {
                format!("scenario {name}: {device} +{EXCURSION_RH} % RH from {from} to {to}")
            }
            Kind::Silence => format!(
                "scenario {name}: {device}'s {sensors} sensor{} send nothing from {from} to {to}",
                if sensors == 1 { "" } else { "s" }
            ),
            Kind::Outage => format!(
                "scenario {name}: none of the fleet's {sensors} sensors sends anything for 6 minutes of every 30, from {from}"
            ),
            // Its note is the timetable's (`Soak::note`); it is never an injection.
            Kind::Soak => format!("scenario {name} from {from}"),
            Kind::Drift => {
                let total = kind.offset(kind.length_ms());
                format!("scenario {name}: {device} rises {DRIFT_RH_PER_HOUR} % RH per hour from {from} to {to} (+{total} % RH), then holds at +{total} % RH")
            }
        }
    }
}

/// `2022-07-30T01:10:00.000Z`.
fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{DEFAULT_SENSORS, GENERATE_START_MS};

    fn list(text: &str) -> Vec<(Kind, u64)> {
        text.parse::<Scenarios>()
            .expect(text)
            .iter()
            .map(|s| (s.kind, s.start.as_secs()))
            .collect()
    }

    #[test]
    fn lists_parse_with_or_without_a_start() {
        assert_eq!(list("none"), []);
        assert_eq!(list(" none "), []);
        assert_eq!(list("excursion@5m"), [(Kind::Excursion, 300)]);
        assert_eq!(
            list("drift@90s, silence,excursion@0s"),
            [
                (Kind::Drift, 90),
                (Kind::Silence, 120),
                (Kind::Excursion, 0)
            ]
        );
        assert_eq!(
            list("excursion,silence,drift"),
            [
                (Kind::Excursion, 60),
                (Kind::Silence, 120),
                (Kind::Drift, 180)
            ]
        );
        assert_eq!(list("excursion@1h 30m"), [(Kind::Excursion, 5400)]);
    }

    #[test]
    fn bad_lists_say_what_to_fix() {
        for (bad, says) in [
            (
                "",
                "an empty scenario: expected excursion, silence, drift, outage or soak",
            ),
            ("excursion,", "an empty scenario"),
            ("excursion,,drift", "an empty scenario"),
            ("@5m", "an empty scenario"),
            ("flood", "unknown scenario 'flood': expected excursion"),
            ("Excursion", "unknown scenario 'Excursion'"),
            ("excursion,excursion@5m", "excursion is given twice"),
            ("none,drift", "none means no scenario"),
            ("drift,none", "none means no scenario"),
            ("drift@", "drift@: expected a start from 0s to 1y"),
            ("drift@x", "drift@x: expected a start from 0s to 1y"),
            ("drift@5", "drift@5: expected"),
            ("drift@-1s", "drift@-1s: must not be negative"),
            ("drift@2y", "drift@2y: too long"),
        ] {
            let e = bad.parse::<Scenarios>().expect_err(bad).to_string();
            assert!(e.starts_with(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn lists_print_as_they_parse() {
        for text in [
            "none",
            "excursion@1m,silence@2m,drift@3m",
            "drift@1h30m,silence@0s",
        ] {
            let scenarios: Scenarios = text.parse().expect(text);
            assert_eq!(scenarios.to_string(), text);
        }
        assert_eq!(
            Scenarios::demo().to_string(),
            "excursion@1m,silence@2m,drift@3m"
        );
        assert!(Scenarios::none().is_empty());
    }

    #[test]
    fn offsets_follow_the_timetable() {
        let min = MINUTE_MS;
        for (kind, elapsed, offset) in [
            (Kind::Excursion, -1, 0.0),
            (Kind::Excursion, 0, 25.0),
            (Kind::Excursion, 2 * min - 1, 25.0),
            (Kind::Excursion, 2 * min, 0.0),
            (Kind::Drift, -min, 0.0),
            (Kind::Drift, 0, 0.0),
            (Kind::Drift, 6 * min, 3.0),
            (Kind::Drift, 12 * min, 6.0),
            (Kind::Drift, 10 * HOUR_MS, 6.0),
            (Kind::Silence, 3 * min, 0.0),
        ] {
            assert_eq!(kind.offset(elapsed), offset, "{kind:?} at {elapsed}");
        }
        assert!(!Kind::Silence.silences(-1));
        assert!(Kind::Silence.silences(0));
        assert!(Kind::Silence.silences(6 * min - 1));
        assert!(!Kind::Silence.silences(6 * min));
        assert!(!Kind::Drift.silences(0) && !Kind::Excursion.silences(0));
        for (elapsed, silenced) in [
            (-1, false),
            (0, true),
            (6 * min - 1, true),
            (6 * min, false),
            (30 * min, true),
            (36 * min, false),
        ] {
            assert_eq!(
                Kind::Outage.silences(elapsed),
                silenced,
                "outage at {elapsed}"
            );
        }
    }

    #[test]
    fn an_outage_silences_every_device_every_half_hour() {
        let fleet = Fleet::new(1, DEFAULT_SENSORS);
        let outage: Scenarios = "outage@0s".parse().expect("list");
        let plan = Plan::new(&outage, &fleet, GENERATE_START_MS);
        let at = |minutes: i64| GENERATE_START_MS + minutes * MINUTE_MS;
        for device in 0..fleet.sensors_per_device().len() {
            assert!(plan.silenced(0, device, at(1)) && plan.silenced(0, device, at(31)));
            assert!(!plan.silenced(0, device, at(7)) && !plan.silenced(0, device, at(37)));
        }
        assert!(plan.outage(at(0)) && !plan.outage(at(6)));
        assert!(plan.notes()[0].starts_with("scenario outage: none of the fleet's 2100 sensors"));
    }

    #[test]
    fn a_plan_changes_only_its_devices_in_its_time() {
        let fleet = Fleet::new(1, DEFAULT_SENSORS);
        let plan = Plan::new(&Scenarios::demo(), &fleet, GENERATE_START_MS);
        let device = |name| fleet.device_index(name).expect(name);
        let (ct1, spect1, mri1) = (device("CT1"), device("SPECT1"), device("MRI1"));
        let at = |minutes: f64| GENERATE_START_MS + (minutes * MINUTE_MS as f64) as i64;
        assert_eq!(plan.offset(ct1, at(0.99)), 0.0);
        assert_eq!(plan.offset(ct1, at(1.0)), 25.0);
        assert_eq!(plan.offset(ct1, at(3.0)), 0.0);
        assert_eq!(plan.offset(mri1, at(9.0)), 3.0);
        assert_eq!(plan.offset(mri1, at(60.0)), 6.0);
        assert!(plan.silenced(0, spect1, at(2.0)) && !plan.silenced(0, spect1, at(8.0)));
        for other in ["CT2", "MRI2", "SPECT2", "LINAC1", "PETCT1"] {
            for minutes in [0.0, 1.5, 2.5, 9.0, 60.0] {
                assert_eq!(plan.offset(device(other), at(minutes)), 0.0);
                assert!(!plan.silenced(0, device(other), at(minutes)));
            }
        }
        assert_eq!(
            plan.notes()[0],
            "scenario excursion: CT1 +25 % RH from 2022-07-30T01:10:00.000Z to 2022-07-30T01:12:00.000Z"
        );
        assert!(plan.notes()[1].starts_with("scenario silence: SPECT1's "));
        assert!(plan.notes()[1].ends_with(
            " sensors send nothing from 2022-07-30T01:11:00.000Z to 2022-07-30T01:17:00.000Z"
        ));
        assert_eq!(
            plan.notes()[2],
            "scenario drift: MRI1 rises 30 % RH per hour from 2022-07-30T01:12:00.000Z to 2022-07-30T01:24:00.000Z (+6 % RH), then holds at +6 % RH"
        );
    }

    #[test]
    fn a_fleet_too_small_for_a_scenario_says_so() {
        let fleet = Fleet::new(1, 1);
        let plan = Plan::new(&Scenarios::demo(), &fleet, GENERATE_START_MS);
        let skipped = plan
            .notes()
            .iter()
            .filter(|n| n.ends_with("nothing injected"))
            .count();
        assert!(skipped >= 2, "{:?}", plan.notes());
        assert_eq!(plan.notes().len(), 3);
        assert!(
            plan.notes()[0]
                .ends_with("has no sensor in a fleet of 1 (raise --sensors); nothing injected")
                || plan.notes()[0].starts_with("scenario excursion: CT1 +25"),
            "{:?}",
            plan.notes()
        );
        // A one-sensor fleet whose sensor is SPECT1's: silencing it would leave nothing to send.
        let spect1 = (0..1000)
            .map(|seed| Fleet::new(seed, 1))
            .find(|f| f.sensors_per_device()[f.device_index("SPECT1").expect("SPECT1")] == 1)
            .expect("some seed puts the sensor on SPECT1");
        let silence: Scenarios = "silence".parse().expect("list");
        let plan = Plan::new(&silence, &spect1, GENERATE_START_MS);
        assert_eq!(
            plan.notes(),
            ["scenario silence: SPECT1 holds every sensor of the fleet, so nothing would be sent; nothing injected"]
        );
        for device in 0..51 {
            assert!(!plan.silenced(0, device, GENERATE_START_MS + 3 * MINUTE_MS));
        }
    }
}
