//! What the live page shows, kept from one report to the next: each device's current value,
//! band, state and the last 30 minutes of its values, the alerts raised now and the recent
//! transitions. Fed one [`Update`] per reported epoch by worker 0's printer; pure, no I/O.
//!
//! A device's current value is the `v` the alerts compare (its mean over its rule's window):
//! with a cumulative report it is the difference of the device's cumulative sums now and at
//! the window's start, which this view keeps per device (only the epochs where the sums
//! changed, at most [`MAX_HISTORY`] of them). With `--window` or without rules the page shows
//! the report's average instead.

use std::collections::{BTreeMap, VecDeque};

use hygroflow_dataflows::alerts::{AlertKind, AlertRules, AlertState, Reason};
use hygroflow_dataflows::{Epoch, Transition, MICROS_PER_PERCENT};
use serde::Serialize;

use crate::epoch::{rfc3339, EpochGrid};
use crate::notify::silences::{AlertKey, Silenced};
use crate::sink::alerts::AlertLine;

/// How far back a sparkline goes.
const SPARK_SPAN_MS: u64 = 30 * 60 * 1000;
/// Sparkline points kept are at least this far apart (at most 360 over 30 minutes).
const SPARK_STEP_MS: u64 = 5_000;
/// Sparkline points sent to the page, at most: every state carries every device's sparkline.
const SPARK_POINTS: usize = 120;
/// Per device, the most cumulative sums kept for the window's start.
pub const MAX_HISTORY: usize = 20_000;
/// Recent transitions shown below the active alerts.
const RECENT: usize = 30;
/// "Near a limit": within this many % RH of a band limit.
const NEAR_PERCENT: f64 = 2.0;

/// One reported epoch, as worker 0 hands it over.
#[derive(Clone, Debug, Default)]
pub struct Update {
    /// The epoch reported.
    pub epoch: Epoch,
    /// The report's JSON object (the full state, as `--format json` prints it).
    pub report_json: String,
    /// Per device: `(sum of humidity in micro-percent, readings)` as the report holds them.
    pub sums: BTreeMap<String, (i64, i64)>,
    /// Per device: distinct sensors.
    pub sensors: BTreeMap<String, i64>,
    /// The report's totals.
    pub totals: Totals,
    /// Rejected messages so far by `error_kind`, over every worker and process.
    pub rejected_by_kind: Vec<(&'static str, i64)>,
    /// The alerts raised now.
    pub active: Vec<Transition>,
    /// The transitions logged since the last update.
    pub transitions: Vec<Transition>,
    /// The devices in maintenance, with the maintenance in words.
    pub maintenance: BTreeMap<String, String>,
    /// The alerts Alertmanager reports silenced.
    pub silenced: BTreeMap<AlertKey, Silenced>,
    /// The rules in force, when the alert log knows them.
    pub rules: Option<AlertRules>,
}

/// A report's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Valid messages.
    pub messages: i64,
    /// Rejected messages.
    pub rejected: i64,
    /// Late messages.
    pub late: i64,
    /// Messages stamped too far ahead.
    pub future: i64,
    /// Distinct sensors.
    pub sensors: i64,
}

/// A device's state on the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TileState {
    /// Inside the band, more than 2 % RH from either limit.
    InBand,
    /// Inside the band, within 2 % RH of a limit.
    NearLimit,
    /// Outside the band.
    OutOfBand,
    /// Every sensor of the device is silent.
    Silent,
    /// No reading in the device's window (and not every sensor silent), or no band.
    NoValue,
}

/// One device's tile.
#[derive(Clone, Debug, Serialize)]
pub struct Tile {
    /// The device.
    pub device: String,
    /// Its group on the page: MRI, CT, PET-CT, SPECT, LINAC or other.
    pub modality: &'static str,
    /// Current humidity, % RH.
    pub value: Option<f64>,
    /// `[low, high]` in % RH (`null` for a side without a limit); `None` without rules.
    pub band: Option<(Option<f64>, Option<f64>)>,
    /// The state, also shown as a text label.
    pub state: TileState,
    /// Distinct sensors.
    pub sensors: i64,
    /// Sensors with a `silent` alert raised.
    pub silent: i64,
    /// In maintenance (`[[maintenance]]`): the maintenance in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<String>,
    /// `[milliseconds since the Unix epoch, % RH]`, oldest first, over the last 30 minutes.
    pub spark: Vec<(u64, f64)>,
}

/// The page's state: what each event of `/api/events` carries.
#[derive(Clone, Debug, Serialize)]
pub struct PageState {
    /// The last reported epoch.
    pub epoch: Epoch,
    /// Its end, RFC 3339.
    pub time: String,
    /// The report's totals.
    pub totals: Totals,
    /// Whether the value is the rule window's mean (`true`) or the report's average.
    pub windowed_value: bool,
    /// One tile per device, by device: at most [`MAX_TILES`], the worst first (see
    /// [`worst_first`]).
    pub devices: Vec<Tile>,
    /// Devices left out of `devices`.
    pub more_devices: usize,
    /// The alerts raised now (alert log lines): at most [`MAX_ACTIVE`], the first by device.
    pub active: Vec<serde_json::Value>,
    /// Alerts raised now in all (`active` may hold fewer).
    pub active_total: usize,
    /// The most recent transitions, newest first.
    pub recent: Vec<serde_json::Value>,
}

/// The most tiles a state carries: with 100,000 devices every state was 20 MB, and one event
/// stream client received 62 MB in 3 s (issue 26 point 5). The worst devices come first, the
/// rest are counted.
pub const MAX_TILES: usize = 200;

/// The most raised alerts a state lists (the report's `alerts_active` lists them all).
pub const MAX_ACTIVE: usize = 200;

/// How much attention a state needs: out of band, then silent, near a limit, no value, in
/// band.
fn severity(state: TileState) -> u8 {
    match state {
        TileState::OutOfBand => 0,
        TileState::Silent => 1,
        TileState::NearLimit => 2,
        TileState::NoValue => 3,
        TileState::InBand => 4,
    }
}

/// Keeps at most `limit` of `tiles`, the worst first and then by device, in device order;
/// returns how many were left out.
fn worst_first(tiles: &mut Vec<Tile>, limit: usize) -> usize {
    if tiles.len() <= limit {
        return 0;
    }
    let left_out = tiles.len() - limit;
    tiles.sort_by(|a, b| (severity(a.state), &a.device).cmp(&(severity(b.state), &b.device)));
    tiles.truncate(limit);
    tiles.sort_by(|a, b| a.device.cmp(&b.device));
    left_out
}

#[derive(Default)]
struct DeviceHistory {
    /// Cumulative `(epoch, sum, count)` where they changed, oldest first.
    sums: VecDeque<(Epoch, i64, i64)>,
    /// Sparkline points.
    spark: VecDeque<(u64, f64)>,
}

/// The live view, updated once per reported epoch.
pub struct View {
    grid: EpochGrid,
    rules: Option<AlertRules>,
    /// The report is cumulative, so the rule window's mean can be derived from it.
    cumulative: bool,
    devices: BTreeMap<String, DeviceHistory>,
    recent: VecDeque<Transition>,
    last: Option<Update>,
    /// Per device, its retired sensors (`retire_after`).
    retired: BTreeMap<String, std::collections::BTreeSet<String>>,
}

impl View {
    /// A view of reports on `grid`; `rules` when alerts are on; `cumulative` when reports are.
    pub fn new(grid: EpochGrid, rules: Option<AlertRules>, cumulative: bool) -> Self {
        View {
            grid,
            rules,
            cumulative,
            devices: BTreeMap::new(),
            recent: VecDeque::new(),
            last: None,
            retired: BTreeMap::new(),
        }
    }

    /// Takes in one reported epoch.
    pub fn update(&mut self, mut update: Update) {
        if let Some(rules) = update.rules.take() {
            self.rules = Some(rules);
        }
        let now_ms = self.end_ms(update.epoch);
        for (device, &(sum, count)) in &update.sums {
            let history = self.devices.entry(device.clone()).or_default();
            if history
                .sums
                .back()
                .is_none_or(|&(_, s, c)| (s, c) != (sum, count))
            {
                history.sums.push_back((update.epoch, sum, count));
            }
        }
        // Values, then the sparkline points and the history no longer needed.
        let values: Vec<(String, Option<f64>)> = update
            .sums
            .keys()
            .map(|d| (d.clone(), self.value_of(d, &update)))
            .collect();
        for (device, value) in values {
            let keep = self.window_of(&device);
            let Some(history) = self.devices.get_mut(&device) else {
                continue;
            };
            // Keep the newest entry at or before the window's start, and every later one.
            let start = update.epoch.saturating_sub(keep);
            while history.sums.len() > 1
                && (history.sums.get(1).is_some_and(|&(e, _, _)| e <= start)
                    || history.sums.len() > MAX_HISTORY)
            {
                history.sums.pop_front();
            }
            if let Some(value) = value {
                let step = SPARK_STEP_MS.max(self.grid.len().as_millis() as u64);
                if history
                    .spark
                    .back()
                    .is_none_or(|&(t, _)| now_ms >= t + step)
                {
                    history
                        .spark
                        .push_back((now_ms, (value * 100.0).round() / 100.0));
                }
            }
            while history
                .spark
                .front()
                .is_some_and(|&(t, _)| t + SPARK_SPAN_MS < now_ms)
            {
                history.spark.pop_front();
            }
        }
        for t in &update.transitions {
            self.recent.push_front(t.clone());
            // A retired sensor no longer counts among its device's; one that falls silent
            // again has read since, and counts again.
            if let (AlertKind::Silent, Some(guid)) = (t.kind, &t.sensor) {
                let retired = self.retired.entry(t.device.clone()).or_default();
                if t.reason == Some(Reason::Retired) {
                    retired.insert(guid.clone());
                } else if t.state == AlertState::Raised {
                    retired.remove(guid);
                }
            }
        }
        self.recent.truncate(RECENT);
        self.last = Some(update);
    }

    /// The last report's JSON object.
    pub fn report_json(&self) -> Option<&str> {
        self.last.as_ref().map(|u| u.report_json.as_str())
    }

    /// The last update.
    pub fn last(&self) -> Option<&Update> {
        self.last.as_ref()
    }

    /// The rule window of `device`, in epochs (`0` without rules).
    fn window_of(&self, device: &str) -> u64 {
        self.rules
            .as_ref()
            .map_or(0, |rules| (rules.rule_for)(device).window)
    }

    fn end_ms(&self, epoch: Epoch) -> u64 {
        self.grid
            .end_of(epoch)
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// The current humidity of `device` at `update`: the rule window's mean, or the report's
    /// average; `None` without a reading in the window.
    fn value_of(&self, device: &str, update: &Update) -> Option<f64> {
        let &(sum, count) = update.sums.get(device)?;
        let (base_sum, base_count) = match (&self.rules, self.cumulative) {
            (Some(_), true) => {
                let start = update.epoch.saturating_sub(self.window_of(device));
                self.devices
                    .get(device)
                    .and_then(|h| h.sums.iter().rev().find(|&&(e, _, _)| e <= start))
                    .map_or((0, 0), |&(_, s, c)| (s, c))
            }
            _ => (0, 0),
        };
        let (sum, count) = (sum - base_sum, count - base_count);
        (count > 0).then(|| sum as f64 / count as f64 / MICROS_PER_PERCENT as f64)
    }

    /// The page's state after the last update; `None` before the first.
    pub fn page(&self) -> Option<PageState> {
        let update = self.last.as_ref()?;
        let mut silent: BTreeMap<&str, i64> = BTreeMap::new();
        for t in &update.active {
            if t.kind == AlertKind::Silent && t.state == AlertState::Raised {
                *silent.entry(t.device.as_str()).or_default() += 1;
            }
        }
        let mut names: Vec<&String> = update.sums.keys().chain(update.sensors.keys()).collect();
        names.sort();
        names.dedup();
        let mut devices: Vec<Tile> = names
            .into_iter()
            .map(|device| {
                let value = self.value_of(device, update);
                let retired = self
                    .retired
                    .get(device.as_str())
                    .map_or(0, |r| r.len() as i64);
                let sensors = (update.sensors.get(device).copied().unwrap_or(0) - retired).max(0);
                let silent = silent.get(device.as_str()).copied().unwrap_or(0);
                let band = self.rules.as_ref().map(|rules| {
                    let rule = (rules.rule_for)(device);
                    let pct = |m: i64| m as f64 / MICROS_PER_PERCENT as f64;
                    (rule.low.map(pct), rule.high.map(pct))
                });
                Tile {
                    modality: group(device),
                    value,
                    band,
                    state: state(value, band, (sensors, silent)),
                    sensors,
                    silent,
                    maintenance: update.maintenance.get(device.as_str()).cloned(),
                    spark: self
                        .devices
                        .get(device)
                        .map(|h| thin(&h.spark))
                        .unwrap_or_default(),
                    device: device.clone(),
                }
            })
            .collect();
        let more_devices = worst_first(&mut devices, MAX_TILES);
        let line = |t: &Transition| {
            serde_json::to_value(AlertLine::new(t, &self.grid)).unwrap_or_default()
        };
        Some(PageState {
            epoch: update.epoch,
            time: rfc3339(self.grid.end_of(update.epoch)),
            totals: update.totals,
            windowed_value: self.rules.is_some() && self.cumulative,
            devices,
            more_devices,
            active_total: update.active.len(),
            active: update
                .active
                .iter()
                .take(MAX_ACTIVE)
                .map(|t| {
                    let mut value = line(t);
                    let key = (t.device.clone(), t.kind, t.sensor.clone());
                    if let (Some(silence), Some(object)) =
                        (update.silenced.get(&key), value.as_object_mut())
                    {
                        let silence = serde_json::to_value(silence).unwrap_or_default();
                        object.insert("silenced".to_owned(), silence);
                    }
                    value
                })
                .collect(),
            recent: self.recent.iter().map(line).collect(),
        })
    }
}

/// At most [`SPARK_POINTS`] of `points`, evenly taken, the newest always among them.
fn thin(points: &VecDeque<(u64, f64)>) -> Vec<(u64, f64)> {
    let every = points.len().div_ceil(SPARK_POINTS).max(1);
    let last = points.len().saturating_sub(1);
    points
        .iter()
        .enumerate()
        .filter(|(i, _)| (last - i).is_multiple_of(every))
        .map(|(_, p)| *p)
        .collect()
}

/// The page's group of a device: its modality among the fleet's five, or `other`.
pub fn group(device: &str) -> &'static str {
    match crate::rules::modality(device) {
        "MRI" => "MRI",
        "CT" => "CT",
        "PETCT" => "PET-CT",
        "SPECT" => "SPECT",
        "LINAC" => "LINAC",
        _ => "other",
    }
}

/// A tile's state from its value, its band and `(sensors, silent sensors)`.
pub fn state(
    value: Option<f64>,
    band: Option<(Option<f64>, Option<f64>)>,
    (sensors, silent): (i64, i64),
) -> TileState {
    if sensors > 0 && silent >= sensors {
        return TileState::Silent;
    }
    let (Some(value), Some((low, high))) = (value, band) else {
        return TileState::NoValue;
    };
    if low.is_some_and(|l| value < l) || high.is_some_and(|h| value > h) {
        TileState::OutOfBand
    } else if low.is_some_and(|l| value - l <= NEAR_PERCENT)
        || high.is_some_and(|h| h - value <= NEAR_PERCENT)
    {
        TileState::NearLimit
    } else {
        TileState::InBand
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use hygroflow_dataflows::alerts::DeviceRule;

    use super::*;

    fn rules(window: u64) -> AlertRules {
        AlertRules {
            rule_for: Arc::new(move |_| DeviceRule {
                low: Some(30 * MICROS_PER_PERCENT),
                high: Some(60 * MICROS_PER_PERCENT),
                hysteresis: MICROS_PER_PERCENT,
                rate_per_hour: None,
                window,
                silence: 100,
                silence_ms: 300_000,
                retire: None,
            }),
            hour: 1200,
            book: Default::default(),
        }
    }

    fn update(epoch: Epoch, sum_percent: i64, count: i64) -> Update {
        Update {
            epoch,
            sums: [("CT1".to_owned(), (sum_percent * MICROS_PER_PERCENT, count))].into(),
            sensors: [("CT1".to_owned(), 2)].into(),
            ..Update::default()
        }
    }

    #[test]
    fn the_value_is_the_mean_over_the_rule_window() {
        let grid = EpochGrid::new(Duration::from_secs(3)).expect("grid");
        let mut view = View::new(grid, Some(rules(2)), true);
        // Epoch 10: one reading of 40; 11: one of 50; 12: one of 70; 13: nothing new.
        view.update(update(10, 40, 1));
        view.update(update(11, 90, 2));
        view.update(update(12, 160, 3));
        let page = view.page().expect("page");
        assert_eq!(page.devices[0].value, Some(60.0), "(50 + 70) / 2");
        assert_eq!(page.devices[0].state, TileState::NearLimit);
        view.update(update(13, 160, 3));
        assert_eq!(view.page().expect("page").devices[0].value, Some(70.0));
        view.update(update(14, 160, 3));
        let page = view.page().expect("page");
        assert_eq!(page.devices[0].value, None, "no reading in the window");
        assert_eq!(page.devices[0].modality, "CT");
    }

    #[test]
    fn a_retired_sensor_leaves_the_tile_and_maintenance_and_silences_show() {
        let grid = EpochGrid::new(Duration::from_secs(3)).expect("grid");
        let mut view = View::new(grid, Some(rules(2)), true);
        let silent = |state, reason| Transition {
            epoch: 10,
            device: "CT1".into(),
            kind: AlertKind::Silent,
            sensor: Some("g".into()),
            state,
            value: None,
            limit: hygroflow_dataflows::alerts::Limit::Millis(300_000),
            reason,
        };
        let raised = silent(AlertState::Raised, None);
        let mut u = update(10, 40, 1);
        u.active = vec![raised.clone()];
        u.silenced = [(
            ("CT1".to_owned(), AlertKind::Silent, Some("g".to_owned())),
            Silenced {
                by: "bme".into(),
                until: "2026-12-07T10:00:00Z".into(),
                comment: "battery".into(),
            },
        )]
        .into();
        u.maintenance = [("CT1".to_owned(), "coil service".to_owned())].into();
        view.update(u);
        let page = view.page().expect("page");
        assert_eq!(page.devices[0].sensors, 2);
        assert_eq!(page.devices[0].maintenance.as_deref(), Some("coil service"));
        assert_eq!(page.active[0]["silenced"]["by"], "bme");
        let mut u = update(11, 40, 1);
        u.transitions = vec![silent(AlertState::Resolved, Some(Reason::Retired))];
        view.update(u);
        let page = view.page().expect("page");
        assert_eq!(
            page.devices[0].sensors, 1,
            "the retired sensor no longer counts"
        );
        assert_eq!(page.devices[0].maintenance, None);
        // Back and silent again: it counts again.
        let mut u = update(12, 40, 1);
        u.transitions = vec![raised];
        view.update(u);
        assert_eq!(view.page().expect("page").devices[0].sensors, 2);
    }

    #[test]
    fn without_rules_the_value_is_the_report_average() {
        let grid = EpochGrid::new(Duration::from_secs(3)).expect("grid");
        let mut view = View::new(grid, None, true);
        view.update(update(10, 40, 1));
        view.update(update(11, 90, 2));
        let page = view.page().expect("page");
        assert_eq!(page.devices[0].value, Some(45.0));
        assert_eq!(page.devices[0].state, TileState::NoValue);
    }

    #[test]
    fn states_follow_the_band_and_the_silent_sensors() {
        let band = Some((Some(30.0), Some(60.0)));
        assert_eq!(state(Some(45.0), band, (3, 0)), TileState::InBand);
        assert_eq!(state(Some(58.5), band, (3, 0)), TileState::NearLimit);
        assert_eq!(state(Some(31.0), band, (3, 1)), TileState::NearLimit);
        assert_eq!(state(Some(60.1), band, (3, 0)), TileState::OutOfBand);
        assert_eq!(state(Some(29.0), band, (3, 0)), TileState::OutOfBand);
        assert_eq!(state(Some(45.0), band, (3, 3)), TileState::Silent);
        assert_eq!(state(None, band, (3, 2)), TileState::NoValue);
    }

    #[test]
    fn history_and_sparkline_stay_bounded() {
        let grid = EpochGrid::new(Duration::from_secs(3)).expect("grid");
        let mut view = View::new(grid, Some(rules(20)), true);
        for e in 0..5_000 {
            view.update(update(e, 45 * (e as i64 + 1), e as i64 + 1));
        }
        let history = view.devices.get("CT1").expect("device");
        assert!(history.sums.len() <= 22, "{}", history.sums.len());
        assert!(history.spark.len() <= 361, "{}", history.spark.len());
        let page = view.page().expect("page");
        assert!(page.devices[0].spark.len() <= SPARK_POINTS);
        assert_eq!(view.page().expect("page").devices[0].value, Some(45.0));
    }

    #[test]
    fn many_devices_give_a_bounded_state_the_worst_first() {
        let grid = EpochGrid::new(Duration::from_secs(3)).expect("grid");
        let mut view = View::new(grid, Some(rules(1)), true);
        // 20,000 devices in band, and 7 out of it (band 30-60 % RH).
        let devices = 20_000;
        let mut u = Update {
            epoch: 5,
            ..Update::default()
        };
        for i in 0..devices {
            let name = format!("MRI{i}");
            let humidity = if i % 3000 == 7 { 80 } else { 45 };
            u.sums
                .insert(name.clone(), (humidity * MICROS_PER_PERCENT, 1));
            u.sensors.insert(name, 1);
        }
        view.update(u);
        let page = view.page().expect("page");
        assert_eq!(page.devices.len(), MAX_TILES);
        assert_eq!(page.more_devices, devices - MAX_TILES);
        let out: Vec<&str> = page
            .devices
            .iter()
            .filter(|t| t.state == TileState::OutOfBand)
            .map(|t| t.device.as_str())
            .collect();
        assert_eq!(out.len(), 7, "every device out of band is shown");
        assert!(page.devices.windows(2).all(|w| w[0].device < w[1].device));
        let bytes = serde_json::to_vec(&page).expect("json").len();
        assert!(bytes < 256 * 1024, "{bytes} bytes for {devices} devices");
    }
}
