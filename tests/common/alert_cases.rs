//! The inputs and rules of the alert tests (gh-9): hand-made cases at the edges of each rule
//! and a seeded random fleet near the limits. Every line is valid and event times never go
//! back, as the oracle (`alert_oracle.rs`) requires.

#![allow(dead_code)]

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::alert_oracle::format_time;
use super::alert_rules::{pct, Keys, Rules};

/// 2022-08-16T13:26:00Z: a whole minute, so epoch 0 of a case starts on an epoch boundary.
const BASE_MS: i64 = 1_660_656_360_000;

/// An input file and the rules it runs under.
pub struct Case {
    /// The epoch length, `--epoch`.
    pub epoch_ms: i64,
    pub rules: Rules,
    pub input: String,
}

impl Case {
    /// The absolute index of the case's epoch 0.
    pub fn base_epoch(&self) -> i64 {
        BASE_MS / self.epoch_ms
    }

    /// `--epoch` as text.
    pub fn epoch_flag(&self) -> String {
        if self.epoch_ms % 1000 == 0 {
            format!("{}s", self.epoch_ms / 1000)
        } else {
            format!("{}ms", self.epoch_ms)
        }
    }
}

/// Writes JSON lines in time order: epoch by epoch, a few milliseconds apart within one.
pub struct Lines {
    epoch_ms: i64,
    out: String,
    epoch: i64,
    in_epoch: i64,
}

impl Lines {
    pub fn new(epoch_ms: i64) -> Lines {
        Lines {
            epoch_ms,
            out: String::new(),
            epoch: 0,
            in_epoch: 0,
        }
    }

    /// A reading of `tenths` tenths of a percent in the case's epoch `epoch` (never earlier
    /// than the last line's), under the device key `medicalImagingdevice` when `alt_key`.
    pub fn push(&mut self, epoch: i64, device: &str, guid: &str, tenths: i64, alt_key: bool) {
        assert!(epoch >= self.epoch, "lines go forward in time");
        if epoch > self.epoch {
            (self.epoch, self.in_epoch) = (epoch, 0);
        }
        // Within the first half of the epoch: no question of rounding at its end.
        let offset_us = self.in_epoch * 3_217;
        assert!(
            offset_us < self.epoch_ms * 500,
            "too many lines in one epoch"
        );
        self.in_epoch += 1;
        let ms = BASE_MS + epoch * self.epoch_ms + offset_us / 1000;
        let time = format_time(ms);
        // Microseconds as in the spec's example: `…39.447974Z`.
        let time = format!("{}{:03}Z", &time[..time.len() - 1], offset_us % 1000);
        let key = if alt_key {
            "medicalImagingdevice"
        } else {
            "medicalimagingdevice"
        };
        let humidity = if tenths % 10 == 0 && epoch % 2 == 0 {
            format!("{}", tenths / 10)
        } else {
            format!("{}.{}", tenths / 10, tenths % 10)
        };
        self.out.push_str(&format!(
            "{{\"guid\":\"{guid}\",\"destination\":\"0-AAA12345678\",\"{key}\":\"{device}\",\
             \"eventTime\":\"{time}\",\"payload\":{{\"format\":\"urn:example:sensor:humidity\",\
             \"data\":{{\"humidity\":{humidity}}}}}}}\n"
        ));
    }

    /// Each `(device, guid, tenths per epoch from 0)`, epoch by epoch; `None`: no reading.
    pub fn series(epoch_ms: i64, series: &[(&str, &str, Vec<Option<i64>>)]) -> String {
        let mut lines = Lines::new(epoch_ms);
        let epochs = series.iter().map(|s| s.2.len()).max().unwrap_or(0);
        for e in 0..epochs {
            for (device, guid, values) in series {
                if let Some(Some(tenths)) = values.get(e) {
                    let alt = device.starts_with("MRI7");
                    lines.push(e as i64, device, guid, *tenths, alt);
                }
            }
        }
        lines.out
    }
}

/// `percent` in tenths: `t("60.1")` is 601.
fn t(percent: &str) -> i64 {
    pct(percent) / 100_000
}

/// A series of `text` values (`-` for no reading), in percent.
fn values(text: &str) -> Vec<Option<i64>> {
    text.split_whitespace()
        .map(|v| (v != "-").then(|| t(v)))
        .collect()
}

fn keys(set: &[(&str, &str)]) -> Keys {
    let mut k = Keys::default();
    for &(key, value) in set {
        let seconds = || value.parse::<i64>().expect("seconds");
        match key {
            "low" => k.low = Some(pct(value)),
            "high" => k.high = Some(pct(value)),
            "hysteresis" => k.hysteresis = Some(pct(value)),
            "rate_per_hour" => k.rate_per_hour = Some(pct(value)),
            "window" => k.window_s = Some(seconds()),
            "silence" => k.silence_s = Some(seconds()),
            "retire_after" => k.retire_s = Some(seconds()),
            _ => panic!("no key {key}"),
        }
    }
    k
}

fn tables(set: &[(&str, &[(&str, &str)])]) -> BTreeMap<String, Keys> {
    set.iter()
        .map(|(name, k)| ((*name).to_owned(), keys(k)))
        .collect()
}

/// Means exactly at, just past, and back at each band edge; CT1 over one epoch with two
/// sensors, CT2 over three epochs.
pub fn band_edges() -> Case {
    let rules = Rules {
        defaults: keys(&[("window", "1"), ("silence", "3600")]),
        modality: tables(&[("CT", &[("low", "30"), ("high", "60"), ("hysteresis", "2")])]),
        device: tables(&[("CT2", &[("window", "3")])]),
    };
    let input = Lines::series(
        1000,
        &[
            (
                "CT1",
                "CT1-a",
                values("60 59.9 60 58 57.9 30 29.9 31.9 32.1 45"),
            ),
            (
                "CT1",
                "CT1-b",
                values("60 60.1 60.1 58.1 58.1 30 30 32 31.9 45"),
            ),
            ("CT2", "CT2-a", values("60 60 60.3 57 56.7 30 3 60 33 45")),
        ],
    );
    Case {
        epoch_ms: 1000,
        rules,
        input,
    }
}

/// Sensors quiet for exactly the silence, and for one epoch less; XR2 overrides the silence.
pub fn silence() -> Case {
    let rules = Rules {
        defaults: keys(&[("window", "1"), ("silence", "10")]),
        modality: BTreeMap::new(),
        device: tables(&[("XR2", &[("silence", "5")])]),
    };
    let every = vec![Some(500); 16];
    let at = |epochs: &[usize]| {
        let mut v = vec![None; 16];
        for &e in epochs {
            v[e] = Some(500);
        }
        v
    };
    let input = Lines::series(
        1000,
        &[
            ("XR1", "XR1-a", at(&[0, 12])),
            ("XR1", "XR1-b", every),
            ("XR1", "XR1-c", at(&[0, 10])),
            ("XR1", "XR1-d", at(&[0, 11])),
            ("XR2", "XR2-a", at(&[2, 9])),
        ],
    );
    Case {
        epoch_ms: 1000,
        rules,
        input,
    }
}

/// Epochs 6 to 19 have no line: nothing is evaluated there, and MRI1's window empties.
pub fn gaps() -> Case {
    let rules = Rules {
        defaults: keys(&[("high", "60"), ("window", "3"), ("silence", "10")]),
        ..Rules::default()
    };
    let quiet = " - - - - - - - - - - - - - -";
    let input = Lines::series(
        1000,
        &[
            (
                "CT1",
                "CT1-a",
                values(&format!("50 50 50 50 50 91{quiet} 59 50 50")),
            ),
            ("CT1", "CT1-b", values("50 50 50 50")),
            ("MRI1", "MRI1-a", values("70 70 70")),
        ],
    );
    Case {
        epoch_ms: 1000,
        rules,
        input,
    }
}

/// Rates at `--epoch 60s` (the hour is 60 epochs): excursions at and past the limit, leaving
/// the hour, and a resolution exactly at rate - hysteresis.
pub fn rate() -> Case {
    let rules = Rules {
        defaults: keys(&[("window", "60"), ("silence", "86400")]),
        modality: tables(&[("MRI", &[("rate_per_hour", "5")])]),
        device: BTreeMap::new(),
    };
    let series = |excursion: &str, later: Option<&str>| {
        let mut v = vec![Some(500); 106];
        v[5] = Some(t(excursion));
        if let Some(later) = later {
            v[40] = Some(t(later));
        }
        v
    };
    let input = Lines::series(
        60_000,
        &[
            ("MRI1", "MRI1-a", series("56", None)),
            ("MRI2", "MRI2-a", series("55", None)),
            ("MRI3", "MRI3-a", series("55.1", Some("54"))),
            ("MRI4", "MRI4-a", series("55.1", Some("54.1"))),
            ("MRI5", "MRI5-a", series("44", None)),
        ],
    );
    Case {
        epoch_ms: 60_000,
        rules,
        input,
    }
}

/// The rules file of [`overrides`].
fn override_rules() -> Rules {
    Rules {
        defaults: keys(&[("high", "60"), ("window", "3"), ("silence", "10")]),
        modality: tables(&[
            ("CT", &[("low", "30")]),
            (
                "MRI",
                &[
                    ("low", "35"),
                    ("high", "65"),
                    ("hysteresis", "0.5"),
                    ("rate_per_hour", "3"),
                ],
            ),
        ]),
        device: tables(&[
            ("CT9", &[("high", "55"), ("hysteresis", "0.5")]),
            ("MRI7", &[("window", "2"), ("low", "40")]),
        ]),
    }
}

/// Several modalities, device tables over them, devices with only `high` (PETCT1, SPECT3,
/// and `ct1`, whose modality `ct` is not `CT`); MRI7 is spelled `medicalImagingdevice`.
pub fn overrides() -> Case {
    let input = Lines::series(
        1000,
        &[
            (
                "CT1",
                "CT1-a",
                values("56 56 56 56 56 56 56 56 56 56 56 56"),
            ),
            (
                "CT9",
                "CT9-a",
                values("56 56 56 56 56 56 54.5 54.5 54.5 54.5 54.5 54.5"),
            ),
            (
                "MRI1",
                "MRI1-a",
                values("50 50 50 50 53 53 53 53.1 53.1 53.1 53.1 53.1"),
            ),
            (
                "MRI7",
                "MRI7-a",
                values("39.9 39.9 39.9 39.9 39.9 39.9 40.5 40.5 40.5 40.5 40.5 40.5"),
            ),
            (
                "PETCT1",
                "PETCT1-a",
                values("10 10 10 10 10 10 10 10 10 100 100 100"),
            ),
            (
                "SPECT3",
                "SPECT3-a",
                values("60 60 60 60 60 60 60 60 60 60 60 60"),
            ),
            (
                "ct1",
                "ct1-a",
                values("20 20 20 61 61 61 61 61 61 61 61 61"),
            ),
        ],
    );
    Case {
        epoch_ms: 1000,
        rules: override_rules(),
        input,
    }
}

/// A seeded fleet of 8 devices of 4 modalities, 3 sensors each, over `epochs` epochs: levels
/// wander near the limits, an epoch in ten has no line, sensors fall quiet for a while.
pub fn random(seed: u64, epoch_ms: i64, epochs: i64) -> Case {
    let s = epoch_ms / 1000;
    let (w2, w3, w5) = (
        (2 * s).to_string(),
        (3 * s).to_string(),
        (5 * s).to_string(),
    );
    let (quiet, short) = ((8 * s).to_string(), (4 * s).to_string());
    let rules = Rules {
        defaults: keys(&[
            ("low", "30"),
            ("high", "60"),
            ("rate_per_hour", "4"),
            ("window", &w3),
            ("silence", &quiet),
        ]),
        modality: tables(&[
            ("CT", &[("rate_per_hour", "2.5")]),
            (
                "MRI",
                &[
                    ("low", "35"),
                    ("high", "40.5"),
                    ("hysteresis", "0.5"),
                    ("window", &w2),
                ],
            ),
        ]),
        device: tables(&[
            ("CT3", &[("high", "58.5"), ("window", &w5)]),
            ("PETCT2", &[("silence", &short), ("low", "31.5")]),
        ]),
    };
    let devices = [
        "CT1", "CT3", "MRI1", "MRI2", "PETCT1", "PETCT2", "SPECT1", "SPECT2",
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    // Each device starts at one of its limits, in tenths.
    let mut level: Vec<i64> = devices
        .iter()
        .map(|d| {
            if d.starts_with("MRI") {
                380
            } else {
                [300, 600][rng.gen_range(0..2)]
            }
        })
        .collect();
    let mut quiet_until = vec![[0i64; 3]; devices.len()];
    let mut lines = Lines::new(epoch_ms);
    for e in 0..epochs {
        if rng.gen_bool(0.1) {
            continue;
        }
        for (d, device) in devices.iter().enumerate() {
            level[d] = (level[d] + rng.gen_range(-6..=6)).clamp(250, 700);
            for (k, until) in quiet_until[d].iter_mut().enumerate() {
                if e < *until {
                    continue;
                }
                if rng.gen_bool(0.03) {
                    *until = e + rng.gen_range(3..15);
                    continue;
                }
                let guid = format!("0-{device}-{k:02}");
                for _ in 0..rng.gen_range(1..=2) {
                    let tenths = (level[d] + rng.gen_range(-4..=4)).clamp(0, 1000);
                    lines.push(e, device, &guid, tenths, rng.gen_bool(0.2));
                }
            }
        }
    }
    Case {
        epoch_ms,
        rules,
        input: lines.out,
    }
}

/// The simulated fleet with its three scenarios (`hygroflow generate --scenario ...`), 15
/// minutes of 2,100 sensors at 30 ms a line, under the built-in rules written out by hand from
/// the README's table: 30-60 % RH everywhere, MRI at most 5 % RH an hour, a 1-minute window and
/// a 5-minute silence, 3-second epochs.
pub fn generated_scenarios(generated: String) -> Case {
    let band = [
        ("low", "30"),
        ("high", "60"),
        ("window", "60"),
        ("silence", "300"),
    ];
    let rules = Rules {
        defaults: keys(&band),
        modality: tables(&[("MRI", &[("rate_per_hour", "5")])]),
        device: BTreeMap::new(),
    };
    Case {
        epoch_ms: 3000,
        rules,
        input: generated,
    }
}
