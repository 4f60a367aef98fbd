//! One device's alerts: its window of readings, its values over the last hour, and whether
//! its `high`, `low` and `rate` alerts are raised.

use std::cmp::Ordering;
use std::collections::VecDeque;

use super::types::{AlertKind, AlertState, DeviceRule, Limit, Ratio, Reason, Transition};
use crate::Epoch;

/// The values of the reported epochs within the hour, with their running max and min
/// (monotonic queues: each value enters and leaves each queue once).
#[derive(Debug, Default)]
struct HourOfValues {
    /// Candidates for the max: values decreasing from the front.
    max: VecDeque<(Epoch, Ratio)>,
    /// Candidates for the min: values increasing from the front.
    min: VecDeque<(Epoch, Ratio)>,
}

impl HourOfValues {
    fn push(&mut self, epoch: Epoch, value: Ratio) {
        while self.max.back().is_some_and(|(_, v)| *v <= value) {
            self.max.pop_back();
        }
        self.max.push_back((epoch, value));
        while self.min.back().is_some_and(|(_, v)| *v >= value) {
            self.min.pop_back();
        }
        self.min.push_back((epoch, value));
    }

    /// Forgets the values of epochs before `first`.
    fn expire(&mut self, first: Epoch) {
        while self.max.front().is_some_and(|(t, _)| *t < first) {
            self.max.pop_front();
        }
        while self.min.front().is_some_and(|(t, _)| *t < first) {
            self.min.pop_front();
        }
    }

    /// Max minus min of the values kept.
    fn range(&self) -> Option<Ratio> {
        let (_, max) = self.max.front()?;
        let (_, min) = self.min.front()?;
        Some(max.minus(*min))
    }

    fn is_empty(&self) -> bool {
        self.max.is_empty()
    }
}

/// A device's alert state.
#[derive(Debug)]
pub(crate) struct DeviceAlerts {
    rule: DeviceRule,
    /// Readings per epoch still in the window, oldest first.
    window: VecDeque<(Epoch, i64, i64)>,
    sum: i64,
    count: i64,
    hour: HourOfValues,
    high: bool,
    low: bool,
    rate: bool,
    /// The limits that raised `high`, `low` and `rate`, for a resolve by a rules change.
    raised_at: [i64; 3],
}

impl DeviceAlerts {
    pub(crate) fn new(rule: DeviceRule) -> Self {
        DeviceAlerts {
            rule,
            window: VecDeque::new(),
            sum: 0,
            count: 0,
            hour: HourOfValues::default(),
            high: false,
            low: false,
            rate: false,
            raised_at: [0; 3],
        }
    }

    pub(crate) fn rule(&self) -> &DeviceRule {
        &self.rule
    }

    /// Applies the device's rule after a rules change. What the window and the hour hold
    /// stays: a longer window averages what is kept until it has filled. An alert whose limit
    /// the new rule lacks resolves at the next evaluation.
    pub(crate) fn set_rule(&mut self, rule: DeviceRule) {
        self.rule = rule;
    }

    /// Adds readings of `epoch` (epochs arrive in order; a repeated epoch adds up).
    pub(crate) fn add(&mut self, epoch: Epoch, sum: i64, count: i64) {
        match self.window.back_mut() {
            Some((last, s, c)) if *last == epoch => {
                *s += sum;
                *c += count;
            }
            _ => self.window.push_back((epoch, sum, count)),
        }
        self.sum += sum;
        self.count += count;
    }

    /// Marks an alert raised before a restart, at `limit`.
    pub(crate) fn restore_raised(&mut self, kind: AlertKind, limit: Limit) {
        let limit = match limit {
            Limit::Micro(micro) => micro,
            Limit::Millis(_) => 0,
        };
        match kind {
            AlertKind::High => (self.high, self.raised_at[0]) = (true, limit),
            AlertKind::Low => (self.low, self.raised_at[1]) = (true, limit),
            AlertKind::Rate => (self.rate, self.raised_at[2]) = (true, limit),
            AlertKind::Silent => {}
        }
    }

    /// Whether the device has nothing in its window and nothing in its hour.
    pub(crate) fn is_idle(&self) -> bool {
        self.window.is_empty() && self.hour.is_empty() && !(self.high || self.low || self.rate)
    }

    /// The mean of the window ending at `epoch`, after forgetting older readings.
    fn value_at(&mut self, epoch: Epoch) -> Option<Ratio> {
        let first = (epoch + 1).saturating_sub(self.rule.window);
        while let Some(&(t, s, c)) = self.window.front() {
            if t >= first {
                break;
            }
            self.sum -= s;
            self.count -= c;
            self.window.pop_front();
        }
        (self.count > 0).then(|| Ratio::mean(self.sum, self.count))
    }

    /// Restore: records the value at a reported epoch before the resume point, for the rate.
    pub(crate) fn remember(&mut self, epoch: Epoch, hour: u64) {
        if let Some(value) = self.value_at(epoch) {
            if self.rule.rate_per_hour.is_some() {
                self.hour.expire((epoch + 1).saturating_sub(hour));
                self.hour.push(epoch, value);
            }
        }
    }

    /// Evaluates the device at reported epoch `epoch`, appending its transitions to `out`.
    pub(crate) fn evaluate(
        &mut self,
        device: &str,
        epoch: Epoch,
        hour: u64,
        out: &mut Vec<Transition>,
    ) {
        let Some(value) = self.value_at(epoch) else {
            return;
        };
        let rule = self.rule;
        let mut emit = |kind, state, value, limit, reason| {
            out.push(Transition {
                epoch,
                device: device.to_owned(),
                kind,
                sensor: None,
                state,
                value: Some(value),
                limit: Limit::Micro(limit),
                reason,
            });
        };
        match rule.high {
            Some(high) => {
                let (raised, limit) =
                    band(&mut self.high, value, high, high - rule.hysteresis, true);
                if let Some(state) = raised {
                    self.raised_at[0] = limit;
                    emit(AlertKind::High, state, value, limit, None);
                }
            }
            None if self.high => {
                self.high = false;
                let limit = self.raised_at[0];
                emit(
                    AlertKind::High,
                    AlertState::Resolved,
                    value,
                    limit,
                    Some(Reason::Rules),
                );
            }
            None => {}
        }
        match rule.low {
            Some(low) => {
                let (raised, limit) = band(&mut self.low, value, low, low + rule.hysteresis, false);
                if let Some(state) = raised {
                    self.raised_at[1] = limit;
                    emit(AlertKind::Low, state, value, limit, None);
                }
            }
            None if self.low => {
                self.low = false;
                let limit = self.raised_at[1];
                emit(
                    AlertKind::Low,
                    AlertState::Resolved,
                    value,
                    limit,
                    Some(Reason::Rules),
                );
            }
            None => {}
        }
        match rule.rate_per_hour {
            Some(rate) => {
                self.hour.expire((epoch + 1).saturating_sub(hour));
                self.hour.push(epoch, value);
                if let Some(range) = self.hour.range() {
                    let (raised, limit) =
                        band(&mut self.rate, range, rate, rate - rule.hysteresis, true);
                    if let Some(state) = raised {
                        self.raised_at[2] = limit;
                        emit(AlertKind::Rate, state, range, limit, None);
                    }
                }
            }
            None if self.rate => {
                self.rate = false;
                let range = self.hour.range().unwrap_or(Ratio { num: 0, den: 1 });
                let limit = self.raised_at[2];
                emit(
                    AlertKind::Rate,
                    AlertState::Resolved,
                    range,
                    limit,
                    Some(Reason::Rules),
                );
            }
            None => {}
        }
    }
}

/// One side of a band with hysteresis: raises past `limit`, resolves back past `back`.
/// `above`: the alert is for values above `limit` (else below). Returns the transition, if
/// any, and the threshold that decided it.
fn band(
    raised: &mut bool,
    value: Ratio,
    limit: i64,
    back: i64,
    above: bool,
) -> (Option<AlertState>, i64) {
    let (outside, inside) = if above {
        (Ordering::Greater, Ordering::Greater)
    } else {
        (Ordering::Less, Ordering::Less)
    };
    if !*raised && value.cmp_micro(limit) == outside {
        *raised = true;
        return (Some(AlertState::Raised), limit);
    }
    // Resolved when no longer beyond `back`: v <= back (above), v >= back (below).
    if *raised && value.cmp_micro(back) != inside {
        *raised = false;
        return (Some(AlertState::Resolved), back);
    }
    (None, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 1_000_000;

    fn rule(window: u64) -> DeviceRule {
        DeviceRule {
            low: Some(30 * M),
            high: Some(60 * M),
            hysteresis: M,
            rate_per_hour: Some(5 * M),
            window,
            silence: 100,
            silence_ms: 300_000,
            retire: None,
        }
    }

    fn states(out: &[Transition]) -> Vec<(Epoch, AlertKind, AlertState)> {
        out.iter().map(|t| (t.epoch, t.kind, t.state)).collect()
    }

    #[test]
    fn high_is_raised_past_the_limit_and_resolved_at_the_limit_less_hysteresis() {
        let mut d = DeviceAlerts::new(DeviceRule {
            rate_per_hour: None,
            ..rule(1)
        });
        let mut out = Vec::new();
        for (epoch, humidity) in [(1, 60), (2, 61), (3, 60), (4, 59)] {
            d.add(epoch, humidity * M, 1);
            d.evaluate("CT1", epoch, 1200, &mut out);
        }
        assert_eq!(
            states(&out),
            [
                (2, AlertKind::High, AlertState::Raised),
                (4, AlertKind::High, AlertState::Resolved)
            ]
        );
        assert_eq!(out[1].limit, Limit::Micro(59 * M));
    }

    #[test]
    fn low_uses_the_window_mean_and_no_value_changes_nothing() {
        let mut d = DeviceAlerts::new(DeviceRule {
            rate_per_hour: None,
            ..rule(2)
        });
        let mut out = Vec::new();
        d.add(1, 40 * M, 1);
        d.evaluate("CT1", 1, 1200, &mut out);
        d.add(2, 19 * M, 1);
        d.evaluate("CT1", 2, 1200, &mut out); // mean 29.5 < 30
        d.evaluate("CT1", 9, 1200, &mut out); // empty window: no change
        d.add(10, 31 * M, 1);
        d.evaluate("CT1", 10, 1200, &mut out); // 31 >= 30 + 1
        assert_eq!(
            states(&out),
            [
                (2, AlertKind::Low, AlertState::Raised),
                (10, AlertKind::Low, AlertState::Resolved)
            ]
        );
    }

    #[test]
    fn rate_counts_an_excursion_until_it_leaves_the_hour() {
        let mut d = DeviceAlerts::new(rule(1));
        let mut out = Vec::new();
        for (epoch, humidity) in [(0, 40), (1, 46), (2, 40), (5, 40), (6, 40)] {
            d.add(epoch, humidity * M, 1);
            d.evaluate("MRI1", epoch, 5, &mut out);
        }
        // 46 - 40 > 5 at epoch 1; epoch 1 leaves the hour (5 epochs) at epoch 6.
        assert_eq!(
            states(&out),
            [
                (1, AlertKind::Rate, AlertState::Raised),
                (6, AlertKind::Rate, AlertState::Resolved)
            ]
        );
    }
}
