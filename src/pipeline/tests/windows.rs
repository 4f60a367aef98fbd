//! Windowed runs (`--window`, gh-9 point 1) against a naive recomputation over the window.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{event_config, reading, run_ok, Entry};
use crate::epoch::Window;

/// One valid reading as the recomputation sees it.
struct Truth {
    epoch: u64,
    device: String,
    guid: String,
    micro: i64,
}

/// Three partitions of event-time readings over 1 s epochs 10..=19, ten per partition and
/// epoch (polls take five from each partition in turn, so none is late). `PET4` reads only in
/// epochs 10, 11 and 15, and sensor `rare` only in epoch 12, so devices and sensors leave
/// windows and come back. One message is malformed.
fn windowed_fleet() -> (Vec<Vec<Entry>>, Vec<Truth>) {
    let mut truth = Vec::new();
    let partitions = (0..3u64)
        .map(|p| {
            let mut entries = Vec::new();
            for epoch in 10..20u64 {
                for i in 0..10u64 {
                    if p == 0 && epoch == 13 && i == 3 {
                        entries.push(Entry::Message(b"{not json".to_vec()));
                        continue;
                    }
                    let x = epoch * 31 + i * 7 + p * 5;
                    let device = match (epoch, x % 4) {
                        (10 | 11 | 15, 0) => "PET4",
                        (_, 0 | 1) => "MRI1",
                        (_, 2) => "CT2",
                        _ => "SPECT3",
                    };
                    let guid = if epoch == 12 && i == 9 {
                        "rare".to_owned()
                    } else {
                        format!("g{}", (x * 13 + epoch) % (4 + epoch % 5))
                    };
                    let tenths = 300 + (x * 17) % 400;
                    let humidity = tenths as f64 / 10.0;
                    let ms = epoch * 1000 + i * 50 + p * 7;
                    entries.push(reading(&guid, device, humidity, ms));
                    truth.push(Truth {
                        epoch,
                        device: device.to_owned(),
                        guid,
                        micro: tenths as i64 * 100_000,
                    });
                }
            }
            entries
        })
        .collect();
    (partitions, truth)
}

/// What the report of `epoch` must say over a window of `epochs` epochs, as the report's
/// JSON fields (without epoch, time and side counters).
fn recompute(truth: &[Truth], epoch: u64, epochs: u64) -> Value {
    let inside = truth
        .iter()
        .filter(|t| t.epoch <= epoch && t.epoch + epochs > epoch);
    let mut sums: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let mut sensors: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut guids = BTreeSet::new();
    let mut messages = 0;
    for t in inside {
        let sum = sums.entry(&t.device).or_default();
        sum.0 += t.micro;
        sum.1 += 1;
        sensors.entry(&t.device).or_default().insert(&t.guid);
        guids.insert(t.guid.as_str());
        messages += 1;
    }
    let mut avg: Vec<(&str, f64)> = sums
        .iter()
        .map(|(d, (sum, n))| (*d, *sum as f64 / *n as f64 / 1e6))
        .collect();
    avg.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    serde_json::json!({
        "total_messages": messages,
        "total_sensors": guids.len(),
        "avg_humidity_by_device": avg,
        "sensors_by_device": sensors.iter().map(|(d, s)| (*d, s.len())).collect::<Vec<_>>(),
    })
}

/// The analyses' fields of a report.
fn analyses(report: &Value) -> Value {
    let keys = [
        "total_messages",
        "total_sensors",
        "avg_humidity_by_device",
        "sensors_by_device",
    ];
    keys.iter()
        .map(|k| ((*k).to_owned(), report[*k].clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[test]
fn gh_9_windowed_reports_agree_with_a_recomputation_over_the_window() {
    for workers in [1, 3] {
        for epochs in [1, 3] {
            let (partitions, truth) = windowed_fleet();
            let mut config = event_config(workers);
            config.window = Window::Epochs(epochs);
            let run = run_ok(partitions, config);
            let reported: Vec<u64> = run
                .reports
                .iter()
                .filter_map(|r| r["epoch"].as_u64())
                .collect();
            // One report per epoch with data; none where readings only leave the window.
            assert_eq!(
                reported,
                (10..20).collect::<Vec<_>>(),
                "{workers} workers, window {epochs}"
            );
            for report in &run.reports {
                let epoch = report["epoch"].as_u64().expect("an epoch");
                assert_eq!(
                    analyses(report),
                    recompute(&truth, epoch, epochs),
                    "{workers} workers, window {epochs}, epoch {epoch}"
                );
                assert_eq!(report["window"], epochs, "window in seconds");
                assert_eq!(report["late_messages"], 0);
            }
            // PET4 has left the window ending at 14 (epochs 12..=14), and is back at 15.
            let at = |e: u64| &run.reports[(e - 10) as usize]["sensors_by_device"];
            let has_pet = |e| at(e).to_string().contains("PET4");
            assert!(!has_pet(14));
            assert!(has_pet(15));
            // Side counters stay cumulative.
            let last = run.reports.last().expect("a final report");
            assert_eq!(last["rejected_messages"], 1);
        }
    }
}
