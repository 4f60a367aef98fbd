//! Epochs: which batch a record belongs to.
//!
//! Epoch `e` covers `[e * len, (e + 1) * len)` milliseconds since the Unix epoch, so every
//! worker and every process agrees on epoch numbers without talking. A report for epoch `e`
//! is stamped with its end, `(e + 1) * len`.
//!
//! Two clocks decide a record's epoch:
//! - processing time (the default, as in the Spark job): the epoch in which it arrived; the
//!   wall clock closes epochs even when no data comes;
//! - event time: the epoch of its `eventTime`; an epoch closes when the worker's input has
//!   moved past it. A record older than the open epoch joins the open epoch and counts as late.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use hygroflow_dataflows::Epoch;

/// Which clock assigns records to epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeMode {
    /// A record belongs to the epoch in which it arrived.
    Processing,
    /// A record belongs to the epoch of its `eventTime`.
    Event,
}

/// The epoch grid: a fixed length in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochGrid {
    len_ms: u64,
}

impl EpochGrid {
    /// A grid of `len` epochs; `None` when `len` is under a millisecond.
    pub fn new(len: Duration) -> Option<Self> {
        let len_ms = u64::try_from(len.as_millis()).ok()?;
        (len_ms > 0).then_some(EpochGrid { len_ms })
    }

    /// The epoch holding the instant `ms` milliseconds after the Unix epoch.
    pub fn epoch_of_ms(&self, ms: i64) -> Epoch {
        u64::try_from(ms).map_or(0, |ms| ms / self.len_ms)
    }

    /// The epoch holding `now`.
    pub fn epoch_of(&self, now: SystemTime) -> Epoch {
        let ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        self.epoch_of_ms(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// When epoch `e` ends (and its report is due).
    pub fn end_of(&self, e: Epoch) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(e.saturating_add(1).saturating_mul(self.len_ms))
    }

    /// The epoch length.
    pub fn len(&self) -> Duration {
        Duration::from_millis(self.len_ms)
    }
}

/// What a report covers (`--window`): everything since the start, or the last few epochs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Window {
    /// Every reading since the start of the run (today's reports).
    #[default]
    Cumulative,
    /// The readings of the last `n` epochs: the report of epoch `e` covers `e - n + 1 ..= e`.
    Epochs(u64),
}

impl Window {
    /// The window of `span` on `grid`: `None` unless `span` is a whole, non-zero multiple of
    /// the epoch length.
    pub fn of(span: Duration, grid: &EpochGrid) -> Option<Self> {
        let span_ms = u64::try_from(span.as_millis()).ok()?;
        let whole = span.as_nanos().is_multiple_of(grid.len().as_nanos());
        (whole && span_ms >= grid.len_ms).then(|| Window::Epochs(span_ms / grid.len_ms))
    }

    /// The window's length on `grid` (`None`: cumulative).
    pub fn span(self, grid: &EpochGrid) -> Option<Duration> {
        let n = self.epochs()?;
        Some(Duration::from_millis(grid.len_ms.saturating_mul(n)))
    }

    /// How many epochs after its own an epoch's readings leave the window (`None`: never).
    pub fn epochs(self) -> Option<u64> {
        match self {
            Window::Cumulative => None,
            Window::Epochs(n) => Some(n),
        }
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp, e.g.
/// `2022-08-16T13:26:39.447974Z`; `None` when it does not parse.
pub fn parse_event_time(text: &str) -> Option<i64> {
    EventTimes::default().parse(text)
}

/// Reads a stream of event times as [`parse_event_time`] does, remembering the last minute:
/// a logger's readings share their `YYYY-MM-DDTHH:MM` with the one before nearly always, so
/// only the seconds and the fraction are read again. Measured on the 1M-line file of
/// readings 30 ms apart (`hygroflow run --time event -w 1`): the event-time parse was 7% of the
/// worker's samples in `perf`, the date and the calendar arithmetic most of it.
#[derive(Debug, Default)]
pub struct EventTimes {
    /// The last minute read: its text and its milliseconds since the Unix epoch.
    minute: Option<([u8; MINUTE_LEN], i64)>,
}

/// `YYYY-MM-DDTHH:MM`.
const MINUTE_LEN: usize = 16;

impl EventTimes {
    /// Milliseconds since the Unix epoch of `text`, as [`parse_event_time`].
    pub fn parse(&mut self, text: &str) -> Option<i64> {
        self.utc_millis(text.as_bytes()).or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.timestamp_millis())
        })
    }

    /// The shape nearly every reading has, `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, read directly: in
    /// event time this parse runs once per message and chrono's general parser was a tenth of
    /// the worker's time. Anything else (offsets, lowercase, leap seconds, more digits) is left
    /// to chrono, whose result this matches (the fraction truncates to milliseconds).
    fn utc_millis(&mut self, b: &[u8]) -> Option<i64> {
        let (minute, rest) = b.split_first_chunk::<MINUTE_LEN>()?;
        let second = second_millis(rest)?;
        match self.minute {
            Some((text, ms)) if text == *minute => Some(ms + second),
            _ => {
                let ms = minute_millis(minute)?;
                self.minute = Some((*minute, ms));
                Some(ms + second)
            }
        }
    }
}

/// The digits of `digits` as a number, `None` if one is not a digit.
fn number(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

/// `YYYY-MM-DDTHH:MM` in milliseconds since the Unix epoch, if it is a real date and time.
fn minute_millis(b: &[u8; MINUTE_LEN]) -> Option<i64> {
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let (year, month, day) = (number(&b[0..4])?, number(&b[5..7])?, number(&b[8..10])?);
    let (hour, minute) = (number(&b[11..13])?, number(&b[14..16])?);
    let days_in_month = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 {
        return None;
    }
    Some((days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60) * 1_000)
}

/// `:SS[.f{1,9}]Z`, what follows the minute, in milliseconds (the fraction truncated).
fn second_millis(b: &[u8]) -> Option<i64> {
    let (&[b':', s1, s2], rest) = b.split_first_chunk::<3>()? else {
        return None;
    };
    let (&b'Z', fraction) = rest.split_last()? else {
        return None;
    };
    let second = number(&[s1, s2])?;
    if second > 59 {
        return None;
    }
    let millis = match fraction {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            let mut first3 = [b'0'; 3];
            for (to, from) in first3.iter_mut().zip(fraction) {
                *to = *from;
            }
            number(fraction)?;
            number(&first3)?
        }
        _ => return None,
    };
    Some(second * 1_000 + millis)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// RFC 3339 in UTC with milliseconds, as the JSON report prints times.
pub fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `2022-07-30 01:09:15`, as the Spark job's `Time:` header prints times.
pub fn spark_time(t: SystemTime) -> String {
    DateTime::<Utc>::from(t)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Where an event-time record goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The epoch the record joins.
    pub epoch: Epoch,
    /// The record's own epoch had already closed on this worker.
    pub late: bool,
}

/// Assigns an event-time record whose event time falls in `event_epoch` on a worker whose
/// open epoch is `open`: its own epoch when that is still open or later, otherwise the open
/// epoch, as a late record. A record without a usable event time joins the open epoch.
///
/// The open epoch has one owner (the pipeline's epoch writer); whatever moved it (records,
/// or the wall clock when the input was idle) decides what is late.
pub fn assign_event(open: Epoch, event_epoch: Option<Epoch>) -> Assignment {
    match event_epoch {
        Some(e) if e < open => Assignment {
            epoch: open,
            late: true,
        },
        Some(e) => Assignment {
            epoch: e,
            late: false,
        },
        None => Assignment {
            epoch: open,
            late: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> EpochGrid {
        EpochGrid::new(Duration::from_secs(3)).expect("3 s is a valid epoch")
    }

    #[test]
    fn the_direct_parse_agrees_with_chrono() {
        let chrono = |t: &str| {
            DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.timestamp_millis())
        };
        let mut texts: Vec<String> = [
            "2022-07-30T01:09:00.000000Z",
            "2022-07-30T01:09:00Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999Z",
            "0001-01-01T00:00:00.5Z",
            "2000-02-29T12:00:00.123456789Z",
            "1900-02-29T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2016-12-31T23:59:60Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.1234567891Z",
            "2024-01-01t00:00:00Z",
            "2024-01-01T00:00:00z",
            "2024-01-01T00:00:00+00:00",
            "2024-1-01T00:00:00Z",
            "2024-01-01T00:00:0xZ",
            "+024-01-01T00:00:00Z",
        ]
        .map(String::from)
        .to_vec();
        // Every day of a few years around leap years, at varied times and fractions.
        for (i, day) in (0..4 * 366).enumerate() {
            let date =
                chrono::NaiveDate::from_ymd_opt(1999, 1, 1).expect("date") + chrono::Days::new(day);
            let fraction = ["", ".7", ".04", ".999", ".123456"][i % 5];
            texts.push(format!(
                "{date}T{:02}:{:02}:{:02}{fraction}Z",
                i % 24,
                i % 60,
                (i * 7) % 60
            ));
        }
        for text in &texts {
            assert_eq!(parse_event_time(text), chrono(text), "{text}");
            if let Some(direct) = EventTimes::default().utc_millis(text.as_bytes()) {
                assert_eq!(Some(direct), chrono(text), "{text}");
            }
        }
        // One reader over all of them, each text also right after its minute was read: what
        // the remembered minute skips must not change a result.
        let mut stream = EventTimes::default();
        for text in &texts {
            let minute = format!("{}:00Z", text.get(..16).unwrap_or_default());
            let bad_second = format!("{}:6xZ", text.get(..16).unwrap_or_default());
            for t in [text, &minute, text, &bad_second, text] {
                assert_eq!(stream.parse(t), chrono(t), "{t} after {minute}");
            }
        }
    }

    #[test]
    fn epochs_are_a_grid_from_the_unix_epoch() {
        let g = grid();
        assert_eq!(g.epoch_of_ms(0), 0);
        assert_eq!(g.epoch_of_ms(2_999), 0);
        assert_eq!(g.epoch_of_ms(3_000), 1);
        assert_eq!(g.epoch_of_ms(-5), 0, "times before 1970 clamp to epoch 0");
        assert_eq!(g.end_of(0), UNIX_EPOCH + Duration::from_secs(3));
        assert_eq!(g.epoch_of(UNIX_EPOCH + Duration::from_millis(9_001)), 3);
        assert!(EpochGrid::new(Duration::from_micros(10)).is_none());
    }

    #[test]
    fn event_times_parse_as_rfc3339() {
        let ms = parse_event_time("2022-08-16T13:26:39.447974Z");
        assert_eq!(ms, Some(1_660_656_399_447));
        assert_eq!(parse_event_time("2022-08-16T15:26:39.447+02:00"), ms);
        assert_eq!(parse_event_time("16/08/2022"), None);
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_660_656_399_447)),
            "2022-08-16T13:26:39.447Z"
        );
        assert_eq!(
            spark_time(grid().end_of(grid().epoch_of_ms(1_659_143_353_000))),
            "2022-07-30 01:09:15"
        );
    }

    #[test]
    fn event_records_join_their_epoch_or_the_open_one_as_late() {
        let at = |epoch, late| Assignment { epoch, late };
        assert_eq!(assign_event(0, Some(10)), at(10, false));
        assert_eq!(assign_event(10, Some(12)), at(12, false));
        assert_eq!(assign_event(12, Some(12)), at(12, false));
        assert_eq!(assign_event(12, Some(11)), at(12, true));
        assert_eq!(assign_event(12, None), at(12, false));
        assert_eq!(assign_event(7, None), at(7, false));
    }

    #[test]
    fn gh_7_a_record_older_than_a_wall_clock_advance_is_late() {
        // The worker saw epoch 10, then idled and followed the wall clock to epoch 500: a
        // record for epoch 11 arriving now is late, although no record had moved past 11.
        assert_eq!(
            assign_event(500, Some(11)),
            Assignment {
                epoch: 500,
                late: true
            }
        );
    }

    #[test]
    fn gh_9_windows_are_whole_multiples_of_the_epoch() {
        let secs = Duration::from_secs;
        assert_eq!(Window::of(secs(3), &grid()), Some(Window::Epochs(1)));
        assert_eq!(Window::of(secs(60), &grid()), Some(Window::Epochs(20)));
        assert_eq!(Window::of(secs(1), &grid()), None);
        assert_eq!(Window::of(Duration::from_millis(4500), &grid()), None);
        assert_eq!(Window::of(Duration::ZERO, &grid()), None);
        assert_eq!(
            Window::of(Duration::from_nanos(3_000_000_001), &grid()),
            None
        );
        assert_eq!(Window::Epochs(20).span(&grid()), Some(secs(60)));
        assert_eq!(Window::Cumulative.span(&grid()), None);
        assert_eq!(Window::Cumulative.epochs(), None);
    }
}
