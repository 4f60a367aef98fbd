//! Flag values with a documented range: every number, duration and name a flag takes is parsed
//! here, against the range its `--help` gives, so that a bad value is a usage error (exit code
//! 2, like clap's own) before anything is opened, allocated or connected, with a message that
//! says what would be accepted.
//!
//! Negative values reach these parsers (their flags set `allow_negative_numbers` or
//! `allow_hyphen_values`), so `-w -1` says that the value must be positive instead of clap's
//! "unexpected argument '-1' found".

use std::path::PathBuf;
use std::time::Duration;

/// The longest duration any flag takes: a year, as humantime counts it (365.25 days).
pub const YEAR: Duration = Duration::from_secs(31_557_600);

/// The most worker threads per process (`-w`).
pub const MAX_WORKERS: u64 = 256;
/// The most processes in a cluster (`-n`).
pub const MAX_PROCESSES: u64 = 1024;
/// The most sensors in a simulated fleet (`--sensors`): a byte each, once per process.
pub const MAX_SENSORS: u64 = 100_000_000;
/// The largest message size limit (`--max-message-bytes`): 256 MiB.
pub const MAX_MESSAGE_BYTES: u64 = 256 << 20;
/// The fastest rate of the demo fleet and of `produce --rate`, in messages per second.
pub const MAX_RATE: u64 = 10_000_000;

/// A parser of a whole number from `min` to `max`, for clap's `value_parser`.
pub fn whole<T>(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: TryFrom<u64>,
{
    move |text| {
        let range = format!("a whole number from {min} to {max}");
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(digits) => (true, digits),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("expected {range}"));
        }
        let zero = digits.bytes().all(|b| b == b'0');
        let too_large = || format!("too large: expected {range}");
        let value = if negative && !zero {
            None
        } else {
            Some(digits.parse::<u64>().map_err(|_| too_large())?)
        };
        match value {
            Some(v) if v > max => Err(too_large()),
            Some(v) if v >= min => T::try_from(v).map_err(|_| too_large()),
            _ if min == 0 => Err(format!("must not be negative: expected {range}")),
            _ if min == 1 => Err(format!("must be positive: expected {range}")),
            _ => Err(format!("too small: expected {range}")),
        }
    }
}

/// A parser of a finite number from `min` to `max` (`inf`, `NaN` and `1e300` are refused).
pub fn real(
    min: f64,
    max: f64,
) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |text| {
        let range = format!("a finite number from {min} to {max}");
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("expected {range}"))?;
        if value.is_nan() {
            Err(format!("expected {range}"))
        } else if value.is_infinite() {
            Err(format!("must be finite: expected {range}"))
        } else if value < min && min == 0.0 {
            Err(format!("must not be negative: expected {range}"))
        } else if value < min {
            Err(format!("too small: expected {range}"))
        } else if value > max {
            Err(format!("too large: expected {range}"))
        } else {
            Ok(value)
        }
    }
}

/// A parser of a duration from `min` to a [`YEAR`] (`3s`, `500ms`, `2m`, `1h 30m`).
pub fn duration(
    min: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    duration_between(min, YEAR)
}

/// A parser of a duration from `min` to `max` (at most a year), as [`duration`].
pub fn duration_between(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |text| {
        let range = format!(
            "a duration from {} to {}, such as 3s, 500ms or 2m",
            humantime::format_duration(min),
            if max == YEAR {
                "1y".to_owned()
            } else {
                humantime::format_duration(max).to_string()
            }
        );
        let text = text.trim();
        if text.starts_with('-') {
            return Err(if min.is_zero() {
                format!("must not be negative: expected {range}")
            } else {
                format!("must be positive: expected {range}")
            });
        }
        let value = match humantime::parse_duration(text) {
            Ok(value) => value,
            Err(humantime::DurationError::NumberOverflow) => {
                return Err(format!("too long: expected {range}"))
            }
            Err(_) => return Err(format!("expected {range}")),
        };
        if value > max.min(YEAR) {
            Err(format!("too long: expected {range}"))
        } else if value < min && value.is_zero() {
            Err(format!("must be positive: expected {range}"))
        } else if value < min {
            Err(format!("too short: expected {range}"))
        } else {
            Ok(value)
        }
    }
}

/// What `--window` names: every reading since the start, or a span of time (checked against
/// `--epoch` when the config is built).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowSpan {
    /// `cumulative`: everything since the start.
    Cumulative,
    /// The readings of the last span.
    Span(Duration),
}

/// A parser of `--window`: `cumulative` or a duration from 1ms to a [`YEAR`].
pub fn window(text: &str) -> Result<WindowSpan, String> {
    if text.trim() == "cumulative" {
        return Ok(WindowSpan::Cumulative);
    }
    duration(Duration::from_millis(1))(text)
        .map(WindowSpan::Span)
        .map_err(|e| e.replace("expected a duration", "expected cumulative or a duration"))
}

/// A text that must not be empty (`--group`).
pub fn name(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

/// A path that must not be empty (`-i ""` is a typo, not a file).
pub fn path(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        Err("expected a path, got nothing".to_owned())
    } else {
        Ok(PathBuf::from(text))
    }
}

/// `--http` as given: off, or where to listen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Http {
    /// `--http off`.
    Off,
    /// An address and port.
    At(std::net::SocketAddr),
}

/// `--http`: `off`, or an address and port such as `127.0.0.1:8080` (port 0: any free port).
pub fn http(text: &str) -> Result<Http, String> {
    let text = text.trim();
    if text == "off" {
        return Ok(Http::Off);
    }
    text.parse().map(Http::At).map_err(|_| {
        "expected off or an address with a port, such as 127.0.0.1:8080, [::1]:8080 or 0.0.0.0:8080 (port 0: any free port)".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_say_what_is_wrong_with_them() {
        let workers = whole::<usize>(1, 256);
        assert_eq!(workers("4"), Ok(4));
        assert_eq!(workers(" 256 "), Ok(256));
        assert_eq!(workers("+1"), Ok(1));
        for (bad, says) in [
            ("0", "must be positive"),
            ("-0", "must be positive"),
            ("-1", "must be positive"),
            ("257", "too large"),
            ("18446744073709551616", "too large"),
            ("-99999999999999999999", "must be positive"),
            ("1.5", "expected a whole number from 1 to 256"),
            ("", "expected"),
            ("-", "expected"),
            ("four", "expected"),
            ("1e3", "expected"),
        ] {
            let e = workers(bad).expect_err(bad);
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let process = whole::<usize>(0, 1023);
        assert_eq!(process("0"), Ok(0));
        assert!(process("-1")
            .expect_err("negative")
            .starts_with("must not be negative"));
        let partitions = whole::<i32>(1, 10_000);
        assert_eq!(partitions("10000"), Ok(10_000));
        let small = whole::<u8>(0, 1000);
        assert!(small("300").expect_err("u8").contains("too large"));
        assert!(whole::<u64>(2, 9)("1")
            .expect_err("small")
            .starts_with("too small"));
    }

    #[test]
    fn reals_are_finite_and_in_range() {
        let fraction = real(0.0, 1.0);
        assert_eq!(fraction("0.25"), Ok(0.25));
        assert_eq!(fraction("1"), Ok(1.0));
        for (bad, says) in [
            ("inf", "must be finite"),
            ("-infinity", "must be finite"),
            ("NaN", "expected"),
            ("1e300", "too large"),
            ("-0.1", "must not be negative"),
            ("1.0001", "too large"),
            ("half", "expected"),
            ("", "expected"),
        ] {
            let e = fraction(bad).expect_err(bad);
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        assert!(real(1.0, 2.0)("0.5")
            .expect_err("small")
            .starts_with("too small"));
    }

    #[test]
    fn durations_are_capped_at_a_year() {
        let epoch = duration(Duration::from_millis(1));
        assert_eq!(epoch("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(epoch("1y"), Ok(YEAR));
        for (bad, says) in [
            ("0s", "must be positive"),
            ("-1s", "must be positive"),
            ("500us", "too short"),
            ("366d", "too long"),
            ("500000000000y", "too long"),
            ("99999999999999999999999s", "too long"),
            ("three", "expected a duration from 1ms to 1y"),
            ("", "expected"),
            ("3", "expected"),
        ] {
            let e = epoch(bad).expect_err(bad);
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let timeout = duration(Duration::ZERO);
        assert_eq!(timeout("0s"), Ok(Duration::ZERO));
        assert!(timeout("-1s")
            .expect_err("negative")
            .starts_with("must not be negative"));
    }

    #[test]
    fn names_and_paths_are_not_empty() {
        assert_eq!(name("g").as_deref(), Ok("g"));
        assert!(name("").is_err() && name(" ").is_err());
        assert_eq!(path("a.jsonl"), Ok(PathBuf::from("a.jsonl")));
        assert!(path("").is_err());
    }
}
