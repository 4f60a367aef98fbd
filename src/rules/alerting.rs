//! From rules to what the alerts dataflow applies: limits in micro-percent, spans in epochs.

use std::sync::Arc;
use std::time::Duration;

use hygroflow_dataflows::alerts::{AlertRules, DeviceRule, RuleBook};

use super::{Rule, Rules};
use crate::epoch::EpochGrid;

/// The hour over which a rate is measured.
const HOUR: Duration = Duration::from_secs(3600);

/// Epochs `t` count towards the rate at `e` while `(e - t) * L < 1 h`: `ceil(1 h / L)`.
pub fn hour_epochs(grid: &EpochGrid) -> u64 {
    spans(HOUR, grid)
}

/// `span` in whole epochs, rounded up (at least one).
fn spans(span: Duration, grid: &EpochGrid) -> u64 {
    let epoch = grid.len().as_nanos().max(1);
    let n = span.as_nanos().div_ceil(epoch).max(1);
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The rule of one device for the dataflow.
fn device_rule(rule: &Rule, grid: &EpochGrid) -> DeviceRule {
    let micro = |p: super::Percent| i64::from(p.micros());
    DeviceRule {
        low: rule.low.map(micro),
        high: rule.high.map(micro),
        hysteresis: micro(rule.hysteresis),
        rate_per_hour: rule.rate_per_hour.map(micro),
        window: spans(rule.window, grid),
        silence: spans(rule.silence, grid),
        silence_ms: u64::try_from(rule.silence.as_millis()).unwrap_or(u64::MAX),
        // Retired once silent for `retire_after`: that long after it fell silent.
        retire: rule.retire_after.map(|d| {
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            (spans(rule.silence.saturating_add(d), grid), ms)
        }),
    }
}

/// The rules as the alerts dataflow applies them, on epochs of `grid`; `book`: where rules
/// loaded later are found.
pub fn alert_rules(rules: &Rules, grid: &EpochGrid, book: &RuleBook) -> AlertRules {
    let rules = rules.clone();
    let grid = *grid;
    AlertRules {
        rule_for: Arc::new(move |device| device_rule(&rules.rule_for(device), &grid)),
        hour: hour_epochs(&grid),
        book: book.clone(),
    }
}

/// How many recent epochs of per-epoch sums a checkpoint keeps so that windows and alerts
/// resume exactly: the longest window, plus an hour more when some rule has a rate (the
/// values of the last hour are means over their own windows).
pub fn epochs_kept(rules: Option<&Rules>, window: Option<u64>, grid: &EpochGrid) -> u64 {
    let alerts = rules.map_or(0, |rules| {
        let longest = spans(rules.longest_window(), grid);
        if rules.any_rate() {
            longest + hour_epochs(grid)
        } else {
            longest
        }
    });
    alerts.max(window.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_round_up_and_the_hour_is_exclusive() {
        let grid = EpochGrid::new(Duration::from_secs(7)).expect("grid");
        // (e - t) * 7 < 3600 holds for e - t <= 514: 515 epochs.
        assert_eq!(hour_epochs(&grid), 515);
        let three = EpochGrid::new(Duration::from_secs(3)).expect("grid");
        assert_eq!(hour_epochs(&three), 1200);
        let rule = Rules::builtin(Duration::from_secs(3)).rule_for("MRI4");
        let applied = device_rule(&rule, &three);
        assert_eq!(applied.window, 20);
        assert_eq!(applied.silence, 100);
        assert_eq!(applied.rate_per_hour, Some(5_000_000));
        let rules = Rules::builtin(Duration::from_secs(3));
        assert_eq!(epochs_kept(Some(&rules), Some(4), &three), 1220);
        assert_eq!(epochs_kept(None, Some(4), &three), 4);
    }
}
