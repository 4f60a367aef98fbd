//! The simulated fleet: the demo's data and `hygroflow generate`'s.
//!
//! 51 imaging devices named as in the seed (CT1-CT12, LINAC1-LINAC7, MRI1-MRI12,
//! PETCT1-PETCT12, SPECT1-SPECT8) and about 2,100 sensors, each fixed to one device. Readings
//! are JSON lines in the seed's format; with a bad fraction, some lines are malformed in each of
//! the ways validation rejects. Everything follows from the seed, so output is reproducible.
//!
//! By itself the fleet raises no alert under the built-in rules (30-60 % RH for every
//! modality, MRI at most 5 % RH of change an hour, a `silent` alert after 5 minutes), so that
//! only injected [`scenario`]s do:
//!
//! - each device's baseline lies in [`BASELINES`] (40-50 % RH), well inside the band;
//! - a reading is its device's baseline within [`NOISE`] (±2 % RH), so even a mean over one
//!   reading stays in the band, and a device's mean moves by less than 4 % RH, ever;
//! - sensors report in a fixed rotation, like dataloggers that each report once per cycle: a
//!   seeded permutation of all sensors, repeated. With 2,100 sensors and 30 ms between lines
//!   (`generate --interval-ms 30`), each sensor reports every 63 s, well within 5 minutes.
//!   The demo's workers share the rotation: worker `i` of `peers` takes slots `i`,
//!   `i + peers`, ..., so together they cover every sensor once per cycle.

pub mod scenario;
pub mod soak;

use std::io::Write;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use scenario::Plan;

/// The default number of sensors in the fleet.
pub const DEFAULT_SENSORS: usize = 2_100;

/// Where device baselines lie, in % RH: inside the built-in 30-60 band with a margin.
pub const BASELINES: std::ops::Range<f64> = 40.0..50.0;

/// How far a reading may stray from its device's baseline, in % RH (either way).
pub const NOISE: f64 = 2.0;

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
/// whatever the number of workers. The rotation is computed, not stored ([`Rotation`]).
#[derive(Clone, Debug)]
pub struct Fleet {
    devices: Vec<String>,
    baselines: Vec<f64>,
    /// The device of each sensor, by index.
    sensors: Arc<[u8]>,
    rotation: Rotation,
}

impl Fleet {
    /// The fleet for `seed`, with `sensors` sensors (at least one).
    pub fn new(seed: u64, sensors: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let devices = device_names();
        let baselines = devices.iter().map(|_| rng.gen_range(BASELINES)).collect();
        let sensors: Arc<[u8]> = (0..sensors.max(1))
            .map(|_| {
                let device: usize = rng.gen_range(0..devices.len());
                // 51 devices: an index always fits.
                u8::try_from(device).unwrap_or(u8::MAX)
            })
            .collect();
        let rotation = Rotation::new(sensors.len() as u64, &mut rng);
        Fleet {
            devices,
            baselines,
            sensors,
            rotation,
        }
    }

    /// The index of the device named `name`.
    pub fn device_index(&self, name: &str) -> Option<usize> {
        self.devices.iter().position(|d| d == name)
    }

    /// How many sensors each device has, by device index.
    pub fn sensors_per_device(&self) -> Vec<usize> {
        let mut counts = vec![0; self.devices.len()];
        for device in self.sensors.iter() {
            counts[usize::from(*device)] += 1;
        }
        counts
    }
}

/// The order sensors report in: slot `s` of the endless rotation is sensor
/// `(step * (s mod n) + shift) mod n`, a permutation of the `n` sensors because `step` and `n`
/// are coprime. Every `n` consecutive slots hold every sensor once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rotation {
    n: u64,
    step: u64,
    shift: u64,
}

impl Rotation {
    /// A rotation of `n` sensors (at least one) drawn from `rng`.
    fn new(n: u64, rng: &mut ChaCha8Rng) -> Rotation {
        let n = n.max(1);
        let mut step = rng.gen_range(0..n).max(1);
        while gcd(step, n) != 1 {
            step = step % (n - 1) + 1;
        }
        Rotation {
            n,
            step,
            shift: rng.gen_range(0..n),
        }
    }

    /// The sensor in slot `slot`.
    fn sensor(&self, slot: u64) -> usize {
        let at = u128::from(slot % self.n);
        let sensor = (u128::from(self.step) * at + u128::from(self.shift)) % u128::from(self.n);
        // Below n, a number of sensors: it fits.
        usize::try_from(sensor).unwrap_or(0)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
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
    plan: Plan,
    /// The next slot of the rotation this generator fills.
    slot: u64,
    /// How far it moves on per reading: the number of generators sharing the rotation.
    stride: u64,
}

impl Generator {
    /// A generator over `fleet`, drawing with `seed`; `bad_fraction` of lines are malformed.
    /// It fills every slot of the rotation, with no scenario.
    pub fn new(fleet: Fleet, seed: u64, bad_fraction: f64) -> Self {
        Generator {
            fleet,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
            bad_fraction: bad_fraction.clamp(0.0, 1.0),
            plan: Plan::default(),
            slot: 0,
            stride: 1,
        }
    }

    /// The same, injecting `plan`'s scenarios.
    pub fn with_plan(self, plan: Plan) -> Self {
        Generator { plan, ..self }
    }

    /// The same, filling share `index` of `peers` of the rotation: slots `index`,
    /// `index + peers`, ...
    pub fn with_share(self, index: usize, peers: usize) -> Self {
        Generator {
            slot: index as u64,
            stride: peers.max(1) as u64,
            ..self
        }
    }

    /// Appends one line (without its newline) to `out`, stamped `event_ms` (Unix ms). Returns
    /// false, having written nothing, when a scenario silences every sensor of this
    /// generator's share (a demo worker's share of a tiny fleet).
    pub fn write_line(&mut self, event_ms: i64, out: &mut Vec<u8>) -> bool {
        if self.bad_fraction > 0.0 && self.rng.gen_bool(self.bad_fraction) {
            self.write_bad(event_ms, out)
        } else {
            self.write_good(event_ms, out)
        }
    }

    /// The next sensor of this generator's share of the rotation that is not silenced at
    /// `event_ms`, with its device: a silenced sensor's slot goes to the next one.
    fn next_sensor(&mut self, event_ms: i64) -> Option<(usize, usize)> {
        if self.plan.outage(event_ms) {
            return None;
        }
        for _ in 0..self.fleet.sensors.len() {
            let sensor = self.fleet.rotation.sensor(self.slot);
            self.slot = self.slot.wrapping_add(self.stride);
            let device = usize::from(self.fleet.sensors[sensor]);
            if !self.plan.silenced(sensor, device, event_ms) {
                return Some((sensor, device));
            }
        }
        None
    }

    fn write_good(&mut self, event_ms: i64, out: &mut Vec<u8>) -> bool {
        let Some((sensor, device)) = self.next_sensor(event_ms) else {
            return false;
        };
        let base = self.fleet.baselines[device] + self.plan.offset(device, event_ms);
        let humidity = (base + self.rng.gen_range(-NOISE..NOISE)).clamp(0.0, 100.0);
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
        true
    }

    /// A malformed line; false as for [`Generator::write_line`].
    fn write_bad(&mut self, event_ms: i64, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let humidity: &[u8] = match self.rng.gen_range(0..9) {
            0 => {
                let written = self.write_good(event_ms, out);
                let keep = start + (out.len() - start) / 2;
                out.truncate(keep);
                return written;
            }
            1 => br#""71.7""#,
            2 => b"140.5",
            3 => {
                out.extend_from_slice(
                    br#"{"destination":"0-AAA12345678","medicalimagingdevice":"MRI1","payload":{"data":{"humidity":50.0}}}"#,
                );
                return true;
            }
            4 => {
                out.extend_from_slice(
                    br#"{"guid":"0-ZZZ00000000-00X","medicalimagingdevice":"","payload":{"data":{"humidity":50.0}}}"#,
                );
                return true;
            }
            5 => {
                out.extend_from_slice(b"{\"guid\":\"\xff\xfe\",\"medicalimagingdevice\":\"CT1\"}");
                return true;
            }
            6 => return true,
            7 => {
                out.extend_from_slice(b"[1,2,3]");
                return true;
            }
            _ => b"null",
        };
        let written = self.write_good(event_ms, out);
        if written {
            replace_humidity(out, start, humidity);
        }
        written
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

    /// The guid and humidity of each of `n` good lines of `generator`, one every `step_ms`.
    fn readings(generator: &mut Generator, n: usize, step_ms: i64) -> Vec<(String, f64)> {
        (0..n)
            .map(|i| {
                let mut line = Vec::new();
                assert!(generator.write_line(GENERATE_START_MS + i as i64 * step_ms, &mut line));
                let r = parse(&line, line.len(), DEFAULT_MAX_MESSAGE_BYTES).expect("good line");
                (r.guid.into_owned(), r.humidity_micro as f64 / 1e6)
            })
            .collect()
    }

    #[test]
    fn gh_9_every_sensor_reports_once_per_rotation() {
        for sensors in [1, 2, 7, 100, DEFAULT_SENSORS] {
            let mut g = Generator::new(Fleet::new(5, sensors), 5, 0.0);
            let lines = readings(&mut g, 3 * sensors, 1);
            for cycle in lines.chunks(sensors) {
                let guids: std::collections::HashSet<_> = cycle.iter().map(|r| &r.0).collect();
                assert_eq!(guids.len(), sensors, "{sensors} sensors");
            }
        }
    }

    #[test]
    fn gh_9_workers_share_the_rotation() {
        let sensors = 100;
        for peers in [2, 3, 4, 7] {
            let fleet = Fleet::new(9, sensors);
            let mut guids = std::collections::HashSet::new();
            for index in 0..peers {
                let mut g =
                    Generator::new(fleet.clone(), 9 + index as u64, 0.0).with_share(index, peers);
                let lines = readings(&mut g, sensors.div_ceil(peers), 1);
                guids.extend(lines.into_iter().map(|r| r.0));
            }
            assert_eq!(guids.len(), sensors, "{peers} workers");
        }
    }

    #[test]
    fn gh_9_the_fleet_stays_inside_the_builtin_bands() {
        let rules = crate::rules::Rules::builtin(std::time::Duration::from_secs(3));
        let percent = |p: crate::rules::Percent| f64::from(p.micros()) / 1e6;
        let excursion = scenario::EXCURSION_RH;
        let drift = scenario::Kind::Drift.offset(i64::MAX);
        for device in device_names() {
            let rule = rules.rule_for(&device);
            let (low, high) = (
                rule.low.map_or(0.0, percent),
                rule.high.map_or(100.0, percent),
            );
            // A margin of at least 5 % RH either way, even with a drift's offset.
            assert!(low + 5.0 <= BASELINES.start - NOISE, "{device}");
            assert!(BASELINES.end + NOISE + drift + 2.0 <= high, "{device}");
            // Noise alone cannot make a rate alert: a mean moves by less than 2 * NOISE.
            if let Some(rate) = rule.rate_per_hour {
                assert!(2.0 * NOISE + 0.1 < percent(rate), "{device}");
                assert!(drift > percent(rate), "a drift makes one");
            }
            // An excursion leaves the band without leaving 0..100.
            assert!(BASELINES.start - NOISE + excursion > high + 1.0);
            assert!(BASELINES.end + NOISE + excursion < 100.0);
        }
        let fleet = Fleet::new(1, DEFAULT_SENSORS);
        assert!(fleet.baselines.iter().all(|b| BASELINES.contains(b)));
        let mut g = Generator::new(fleet, 1, 0.0);
        for (_, humidity) in readings(&mut g, 10_000, 1) {
            assert!((BASELINES.start - NOISE..=BASELINES.end + NOISE).contains(&humidity));
        }
    }

    #[test]
    fn gh_9_a_silenced_device_sends_nothing_and_its_slots_go_to_others() {
        use scenario::{Plan, Scenarios};
        let fleet = Fleet::new(1, 300);
        let spect1 = fleet.device_index("SPECT1").expect("SPECT1");
        let quiet: std::collections::HashSet<String> = (0..300)
            .filter(|s| usize::from(fleet.sensors[*s]) == spect1)
            .map(|s| Guid(s).to_string())
            .collect();
        assert!(!quiet.is_empty());
        let scenarios: Scenarios = "silence@1m".parse().expect("list");
        let plan = Plan::new(&scenarios, &fleet, GENERATE_START_MS);
        let mut g = Generator::new(fleet, 1, 0.0).with_plan(plan);
        // One line a second for 15 minutes: silenced from 1m to 7m, then 480 lines (more
        // than one rotation of 300).
        let lines = readings(&mut g, 900, 1_000);
        for (second, (guid, _)) in lines.iter().enumerate() {
            let silenced = (60..420).contains(&second);
            assert!(!(silenced && quiet.contains(guid)), "{guid} at {second} s");
        }
        let after: std::collections::HashSet<_> = lines[420..].iter().map(|r| &r.0).collect();
        assert!(quiet.iter().all(|guid| after.contains(guid)), "they resume");
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
