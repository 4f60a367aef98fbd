//! Oracle tests: the analyses, run at 1, 2 and 4 workers on random input, against a naive
//! `HashMap` recomputation of every epoch (as differential's `reduce_reference.rs` does).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use differential_dataflow::input::Input;
use hygroflow_dataflows::results::Snapshot;
use hygroflow_dataflows::{
    analyses, gather_to_first, Counter, Epoch, Results, SensorKey, Stat, Tally, MICROS_PER_PERCENT,
};
use rand::{Rng, SeedableRng};

/// One reading: (epoch, device, guid, humidity in micro-percent).
type Reading = (Epoch, String, String, i64);

fn random_readings(seed: u64, n: usize, epochs: u64) -> Vec<Reading> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut readings: Vec<Reading> = (0..n)
        .map(|_| {
            let epoch = 10 + rng.gen_range(0..epochs);
            let device = format!("DEV{}", rng.gen_range(0..7));
            let guid = format!("g{}", rng.gen_range(0..40));
            let humidity = rng.gen_range(0..=100 * MICROS_PER_PERCENT);
            (epoch, device, guid, humidity)
        })
        .collect();
    readings.sort_by_key(|r| r.0);
    readings
}

/// The naive recomputation: every epoch's cumulative result from scratch.
fn oracle(readings: &[Reading], rejected: &BTreeMap<Epoch, i64>) -> BTreeMap<Epoch, Snapshot> {
    let epochs: BTreeSet<Epoch> = readings
        .iter()
        .map(|r| r.0)
        .chain(rejected.keys().copied())
        .collect();
    epochs
        .into_iter()
        .map(|e| {
            let upto: Vec<&Reading> = readings.iter().filter(|r| r.0 <= e).collect();
            let mut per_device: HashMap<&str, (i64, i64)> = HashMap::new();
            let mut sensors: HashMap<&str, BTreeSet<&str>> = HashMap::new();
            let mut guids = BTreeSet::new();
            for (_, device, guid, h) in &upto {
                let t = per_device.entry(device).or_default();
                t.0 += h;
                t.1 += 1;
                sensors.entry(device).or_default().insert(guid);
                guids.insert(guid.as_str());
            }
            let facts: Vec<Stat> = per_device
                .iter()
                .map(|(d, (s, c))| Stat::DeviceHumidity {
                    device: d.to_string(),
                    sum_micro: *s,
                    count: *c,
                })
                .chain(sensors.iter().map(|(d, g)| Stat::DeviceSensors {
                    device: d.to_string(),
                    sensors: g.len() as i64,
                }))
                .chain([
                    Stat::TotalMessages(upto.len() as i64),
                    Stat::TotalSensors(guids.len() as i64),
                    Stat::Count(
                        Counter::Rejected,
                        rejected.range(..=e).map(|(_, n)| n).sum(),
                    ),
                ])
                .collect();
            (e, Snapshot::from_facts(&facts))
        })
        .collect()
}

/// Runs the analyses on `workers` threads; each worker feeds its share of the readings,
/// pre-aggregated per epoch and sensor as the engine does, and worker 0 reports every epoch.
fn run_dataflow(
    readings: Vec<Reading>,
    rejected: BTreeMap<Epoch, i64>,
    workers: usize,
) -> BTreeMap<Epoch, Snapshot> {
    let last = readings
        .iter()
        .map(|r| r.0)
        .chain(rejected.keys().copied())
        .max()
        .unwrap_or(0);
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let collected = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&collected);
        let (mut sums, mut sensors, mut counters, probe) =
            worker.dataflow::<Epoch, _, _>(|scope| {
                let (si, s) = scope.new_collection::<String, Tally>();
                let (ni, n) = scope.new_collection::<SensorKey, isize>();
                let (ci, c) = scope.new_collection::<Counter, i64>();
                let (probe, _) = gather_to_first(analyses(s, n, c))
                    .inspect_batch(move |_, updates| {
                        sink.borrow_mut().extend(updates.iter().cloned())
                    })
                    .probe();
                (si, ni, ci, probe)
            });
        let mut results = Results::default();
        let mut reports = BTreeMap::new();
        // As the engine does: per epoch one sum per device, and each sensor once per worker.
        let mut seen: BTreeSet<SensorKey> = BTreeSet::new();
        for epoch in 0..=last {
            let mut device_sums: BTreeMap<String, Tally> = BTreeMap::new();
            for (i, (_, device, guid, h)) in
                readings.iter().enumerate().filter(|(_, r)| r.0 == epoch)
            {
                if i % peers == index {
                    let t = device_sums.entry(device.clone()).or_default();
                    t.0 += h;
                    t.1 += 1;
                    if seen.insert((device.clone(), guid.clone())) {
                        sensors.update((device.clone(), guid.clone()), 1);
                    }
                }
            }
            for (device, t) in device_sums {
                sums.update(device, t);
            }
            if index == 0 {
                if let Some(n) = rejected.get(&epoch) {
                    counters.update(Counter::Rejected, *n);
                }
            }
            sums.advance_to(epoch + 1);
            sensors.advance_to(epoch + 1);
            counters.advance_to(epoch + 1);
            sums.flush();
            sensors.flush();
            counters.flush();
            worker.step_while(|| probe.less_than(sums.time()));
            if index == 0 {
                results.absorb(collected.borrow_mut().drain(..));
                let changes = results.advance(epoch);
                if !changes.is_empty() {
                    reports.insert(epoch, results.snapshot());
                }
                for (stat, diff) in results.facts() {
                    assert_eq!(*diff, 1, "every fact holds once: {stat:?}");
                }
            } else {
                assert!(
                    collected.borrow().is_empty(),
                    "results gather on worker 0 only"
                );
            }
        }
        reports
    })
    .expect("timely starts");
    let mut all = guards.join().into_iter().map(|r| r.expect("worker ran"));
    all.next().expect("worker 0")
}

fn check(seed: u64, workers: usize) {
    let readings = random_readings(seed, 600, 12);
    let rejected: BTreeMap<Epoch, i64> = [(10, 2), (13, 1), (30, 4)].into_iter().collect();
    let expected = oracle(&readings, &rejected);
    let got = run_dataflow(readings, rejected, workers);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (epoch, snapshot) in &expected {
        assert_eq!(&got[epoch], snapshot, "epoch {epoch} at {workers} workers");
    }
    // Cumulative results only grow.
    let mut previous: Option<&Snapshot> = None;
    for snapshot in got.values() {
        if let Some(p) = previous {
            assert!(snapshot.total_messages >= p.total_messages);
            assert!(snapshot.total_sensors >= p.total_sensors);
            assert!(snapshot.rejected_messages >= p.rejected_messages);
            for (device, n) in &p.sensors_by_device {
                let now = snapshot
                    .sensors_by_device
                    .iter()
                    .find(|(d, _)| d == device)
                    .map(|(_, n)| *n);
                assert!(now >= Some(*n), "{device} lost sensors");
            }
        }
        previous = Some(snapshot);
    }
}

#[test]
fn matches_oracle_with_one_worker() {
    for seed in 0..3 {
        check(seed, 1);
    }
}

#[test]
fn matches_oracle_with_two_workers() {
    for seed in 3..6 {
        check(seed, 2);
    }
}

#[test]
fn matches_oracle_with_four_workers() {
    for seed in 6..9 {
        check(seed, 4);
    }
}

#[test]
fn empty_input_gives_no_facts() {
    let got = run_dataflow(Vec::new(), BTreeMap::new(), 2);
    assert!(got.is_empty());
}
