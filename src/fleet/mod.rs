//! The simulated fleet: the demo's data and `hygroflow generate`'s.
//!
//! 51 imaging devices named as in the seed (CT1-CT12, LINAC1-LINAC7, MRI1-MRI12,
//! PETCT1-PETCT12, SPECT1-SPECT8) and about 2,100 sensors, each fixed to one device. Readings
//! are JSON lines in the seed's format; with a bad fraction, some lines are malformed in each of
//! the ways validation rejects. Everything follows from the seed, so output is reproducible.

use std::io::Write;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The default number of sensors in the fleet.
pub const DEFAULT_SENSORS: usize = 2_100;

/// The device families and how many of each the fleet has.
const FAMILIES: [(&str, usize); 5] = [
    ("CT", 12),
    ("LINAC", 7),
    ("MRI", 12),
    ("PETCT", 12),
    ("SPECT", 8),
];

/// The names of the 51 devices.
pub fn device_names() -> Vec<String> {
    FAMILIES
        .iter()
        .flat_map(|(family, n)| (1..=*n).map(move |i| format!("{family}{i}")))
        .collect()
}

/// A fleet of sensors and devices with a humidity baseline per device.
///
/// A sensor is its index: its guid follows from it ([`Guid`]), and only its device is stored,
/// in a byte shared by every clone, so a fleet of 10^8 sensors takes 100 MB once per process
/// whatever the number of workers.
#[derive(Clone, Debug)]
pub struct Fleet {
    devices: Vec<String>,
    baselines: Vec<f64>,
    /// The device of each sensor, by index.
    sensors: Arc<[u8]>,
}

impl Fleet {
    /// The fleet for `seed`, with `sensors` sensors (at least one).
    pub fn new(seed: u64, sensors: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let devices = device_names();
        let baselines = devices.iter().map(|_| rng.gen_range(30.0..70.0)).collect();
        let sensors = (0..sensors.max(1))
            .map(|_| {
                let device: usize = rng.gen_range(0..devices.len());
                // 51 devices: an index always fits.
                u8::try_from(device).unwrap_or(u8::MAX)
            })
            .collect();
        Fleet {
            devices,
            baselines,
            sensors,
        }
    }
}

/// The guid of sensor `i`: `0-ZZZ12345678-00A`, `0-ZZZ12345678-00B`, ...
struct Guid(usize);

impl std::fmt::Display for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.0;
        write!(
            f,
            "0-ZZZ{:08}-{:02}{}",
            12_345_678 + i / 2_600,
            (i / 26) % 100,
            char::from(b'A' + (i % 26) as u8)
        )
    }
}

/// Writes readings of a fleet as JSON lines, good and (when asked) bad.
#[derive(Clone, Debug)]
pub struct Generator {
    fleet: Fleet,
    rng: ChaCha8Rng,
    bad_fraction: f64,
}

impl Generator {
    /// A generator over `fleet`, drawing with `seed`; `bad_fraction` of lines are malformed.
    pub fn new(fleet: Fleet, seed: u64, bad_fraction: f64) -> Self {
        Generator {
            fleet,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
            bad_fraction: bad_fraction.clamp(0.0, 1.0),
        }
    }

    /// Appends one line (without its newline) to `out`, stamped `event_ms` (Unix ms).
    pub fn write_line(&mut self, event_ms: i64, out: &mut Vec<u8>) {
        if self.bad_fraction > 0.0 && self.rng.gen_bool(self.bad_fraction) {
            self.write_bad(event_ms, out);
        } else {
            self.write_good(event_ms, out);
        }
    }

    fn write_good(&mut self, event_ms: i64, out: &mut Vec<u8>) {
        let sensor = self.rng.gen_range(0..self.fleet.sensors.len());
        let device = usize::from(self.fleet.sensors[sensor]);
        let base = self.fleet.baselines[device];
        let humidity = (base + self.rng.gen_range(-15.0..15.0)).clamp(0.0, 100.0);
        // The seed spells the device key two ways; so does the fleet, one reading in ten.
        let key = if self.rng.gen_ratio(1, 10) {
            "medicalImagingdevice"
        } else {
            "medicalimagingdevice"
        };
        let _ = write!(
            out,
            r#"{{"guid":"{}","destination":"0-AAA12345678","{key}":"{}","eventTime":"{}","payload":{{"format":"urn:example:sensor:humidity","data":{{"humidity":{:.1}}}}}}}"#,
            Guid(sensor),
            self.fleet.devices[device],
            event_time(event_ms),
            humidity,
        );
    }

    fn write_bad(&mut self, event_ms: i64, out: &mut Vec<u8>) {
        let start = out.len();
        match self.rng.gen_range(0..9) {
            0 => {
                self.write_good(event_ms, out);
                let keep = start + (out.len() - start) / 2;
                out.truncate(keep);
            }
            1 => {
                self.write_good(event_ms, out);
                replace_humidity(out, start, br#""71.7""#);
            }
            2 => {
                self.write_good(event_ms, out);
                replace_humidity(out, start, b"140.5");
            }
            3 => out.extend_from_slice(
                br#"{"destination":"0-AAA12345678","medicalimagingdevice":"MRI1","payload":{"data":{"humidity":50.0}}}"#,
            ),
            4 => out.extend_from_slice(
                br#"{"guid":"0-ZZZ00000000-00X","medicalimagingdevice":"","payload":{"data":{"humidity":50.0}}}"#,
            ),
            5 => out.extend_from_slice(b"{\"guid\":\"\xff\xfe\",\"medicalimagingdevice\":\"CT1\"}"),
            6 => {}
            7 => out.extend_from_slice(b"[1,2,3]"),
            _ => {
                self.write_good(event_ms, out);
                replace_humidity(out, start, b"null");
            }
        }
    }
}

/// Replaces the humidity number of the line starting at `start` with `with`.
fn replace_humidity(out: &mut Vec<u8>, start: usize, with: &[u8]) {
    let key = br#""humidity":"#;
    if let Some(at) = memchr::memmem::rfind(&out[start..], key) {
        let from = start + at + key.len();
        let to = out[from..]
            .iter()
            .position(|b| *b == b'}')
            .map_or(out.len(), |p| from + p);
        out.splice(from..to, with.iter().copied());
    }
}

/// `2022-08-16T13:26:39.447000Z`, the seed's format.
fn event_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// The event time of the first generated line: the seed's first batch.
pub const GENERATE_START_MS: i64 = 1_659_143_340_000; // 2022-07-30T01:09:00Z

/// The latest event time a generated line may carry: RFC 3339 writes four-digit years.
pub const LAST_EVENT_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse, DEFAULT_MAX_MESSAGE_BYTES};

    #[test]
    fn fleet_has_the_seeds_devices() {
        let names = device_names();
        assert_eq!(names.len(), 51);
        assert_eq!(names[0], "CT1");
        assert_eq!(names[50], "SPECT8");
        let fleet = Fleet::new(1, DEFAULT_SENSORS);
        let guids: std::collections::HashSet<_> = (0..fleet.sensors.len())
            .map(|i| Guid(i).to_string())
            .collect();
        assert_eq!(guids.len(), DEFAULT_SENSORS, "guids are unique");
        assert_eq!(Guid(0).to_string(), "0-ZZZ12345678-00A");
        assert_eq!(Guid(2_627).to_string(), "0-ZZZ12345679-01B");
    }

    #[test]
    fn good_lines_parse_and_bad_lines_do_not() {
        let mut good = Generator::new(Fleet::new(3, 50), 3, 0.0);
        let mut bad = Generator::new(Fleet::new(3, 50), 3, 1.0);
        for _ in 0..200 {
            let mut line = Vec::new();
            good.write_line(GENERATE_START_MS, &mut line);
            assert!(
                parse(&line, line.len(), DEFAULT_MAX_MESSAGE_BYTES).is_ok(),
                "{}",
                String::from_utf8_lossy(&line)
            );
            assert!(!line.contains(&b'\n'));
            let mut line = Vec::new();
            bad.write_line(GENERATE_START_MS, &mut line);
            assert!(
                parse(&line, line.len(), DEFAULT_MAX_MESSAGE_BYTES).is_err(),
                "{}",
                String::from_utf8_lossy(&line)
            );
            assert!(!line.contains(&b'\n'));
        }
    }

    #[test]
    fn the_last_event_time_is_the_year_9999() {
        assert_eq!(event_time(LAST_EVENT_MS), "9999-12-31T23:59:59.999000Z");
    }

    #[test]
    fn same_seed_same_lines() {
        let lines = |seed| {
            let mut g = Generator::new(Fleet::new(seed, 100), seed, 0.1);
            let mut out = Vec::new();
            for i in 0..100 {
                g.write_line(GENERATE_START_MS + i, &mut out);
                out.push(b'\n');
            }
            out
        };
        assert_eq!(lines(7), lines(7));
        assert_ne!(lines(7), lines(8));
    }
}
