//! Oracle tests: the analyses, run at 1, 2 and 4 workers on random input, against a naive
//! `HashMap` recomputation of every epoch (as differential's `reduce_reference.rs` does).
//!
//! What is compared is the cumulative set of facts after each epoch, each `Stat` with its
//! multiplicity, exactly: sums and counts as integers, before any division or sorting.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use hygroflow_dataflows::{
    build, sensor_key, Counter, Distinct, Epoch, Key, Results, SensorKey, Stat, Tally,
    MICROS_PER_PERCENT,
};
use rand::{Rng, SeedableRng};

/// One reading: (epoch, device, guid, humidity in micro-percent).
type Reading = (Epoch, String, String, i64);

/// The cumulative facts after an epoch, each with its multiplicity.
type Facts = BTreeMap<Stat, isize>;

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
fn oracle(readings: &[Reading], rejected: &BTreeMap<Epoch, i64>) -> BTreeMap<Epoch, Facts> {
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
            let rejected: i64 = rejected.range(..=e).map(|(_, n)| n).sum();
            let facts: Facts = per_device
                .iter()
                .map(|(d, (s, c))| Stat::DeviceHumidity {
                    device: Key::of(d),
                    sum_micro: *s,
                    count: *c,
                })
                .chain(sensors.iter().map(|(d, g)| Stat::DeviceSensors {
                    device: Key::of(d),
                    sensors: g.len() as i64,
                }))
                .chain((!upto.is_empty()).then_some(Stat::TotalMessages(upto.len() as i64)))
                .chain((!guids.is_empty()).then_some(Stat::TotalSensors(guids.len() as i64)))
                // A count of nothing is no fact: no update ever reached it.
                .chain((rejected != 0).then_some(Stat::Count(Counter::Rejected, rejected)))
                .map(|stat| (stat, 1))
                .collect();
            (e, facts)
        })
        .collect()
}

/// Runs the analyses on `workers` threads; each worker feeds its share of the readings,
/// pre-aggregated per epoch and sensor as the engine does, and worker 0 reports every epoch.
/// Cumulative distinct counts take a sensor again at every epoch a worker sees it (as the
/// engine's tallies may, when they forget), windowed ones once per worker.
fn run_dataflow(
    readings: Vec<Reading>,
    rejected: BTreeMap<Epoch, i64>,
    (workers, distinct): (usize, Distinct),
) -> BTreeMap<Epoch, Facts> {
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
        let (mut inputs, probe) = worker.dataflow::<Epoch, _, _>(|scope| {
            let (inputs, stats, _) = build(scope, (distinct, None));
            let (probe, _) = stats
                .inspect_batch(move |_, updates| sink.borrow_mut().extend(updates.iter().cloned()))
                .probe();
            (inputs, probe)
        });
        let mut results = Results::default();
        let mut reports = BTreeMap::new();
        // As the engine does: per epoch one sum per device, and each sensor once per worker.
        let mut seen: BTreeSet<SensorKey> = BTreeSet::new();
        let mut named: BTreeSet<Key> = BTreeSet::new();
        for epoch in 0..=last {
            if distinct == Distinct::Cumulative {
                seen.clear();
            }
            let mut device_sums: BTreeMap<Key, Tally> = BTreeMap::new();
            for (i, (_, device, guid, h)) in
                readings.iter().enumerate().filter(|(_, r)| r.0 == epoch)
            {
                if i % peers == index {
                    let t = device_sums.entry(Key::of(device)).or_default();
                    t.0 += h;
                    t.1 += 1;
                    let key = sensor_key(device, guid);
                    if seen.insert(key) {
                        inputs.sensors.update(key, 1);
                    }
                    if named.insert(key.0) {
                        inputs.names.update((key.0, device.clone()), 1);
                    }
                }
            }
            for (device, t) in device_sums {
                inputs.device_sums.update(device, t);
                inputs.counters.update(Counter::Valid, t.1);
            }
            if index == 0 {
                if let Some(n) = rejected.get(&epoch) {
                    inputs.counters.update(Counter::Rejected, *n);
                }
            }
            inputs.advance_to(epoch + 1);
            inputs.flush();
            worker.step_while(|| probe.less_than(inputs.time()));
            if index == 0 {
                results.absorb(collected.borrow_mut().drain(..));
                let changes = results.advance(epoch);
                if !changes.is_empty() {
                    let facts: Facts = results.facts().map(|(s, r)| (s.clone(), *r)).collect();
                    reports.insert(epoch, facts);
                }
                for (stat, diff) in results.facts() {
                    assert_eq!(*diff, 1, "every fact holds once: {stat:?}");
                    if let Stat::DeviceHumidity { device, .. }
                    | Stat::DeviceSensors { device, .. } = stat
                    {
                        let name = results.name(device);
                        assert!(
                            name.is_some_and(|name| Key::of(name) == *device),
                            "epoch {epoch}: {stat:?} is named {name:?}"
                        );
                    }
                }
            } else {
                assert!(
                    collected.borrow().is_empty(),
                    "results gather on worker 0 only"
                );
            }
        }
        inputs.close();
        worker.step_while(|| !probe.done());
        reports
    })
    .expect("timely starts");
    let mut all = guards.join().into_iter().map(|r| r.expect("worker ran"));
    all.next().expect("worker 0")
}

fn check(seed: u64, workers: usize) {
    for distinct in [Distinct::Cumulative, Distinct::Windowed] {
        check_one(seed, (workers, distinct));
    }
}

fn check_one(seed: u64, (workers, distinct): (usize, Distinct)) {
    let readings = random_readings(seed, 600, 12);
    let rejected: BTreeMap<Epoch, i64> = [(10, 2), (13, 1), (30, 4)].into_iter().collect();
    let expected = oracle(&readings, &rejected);
    let got = run_dataflow(readings, rejected, (workers, distinct));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (epoch, facts) in &expected {
        assert_eq!(
            &got[epoch], facts,
            "epoch {epoch} at {workers} workers, {distinct:?}"
        );
    }
    // Cumulative results only grow.
    let mut previous: Option<&Facts> = None;
    for facts in got.values() {
        if let Some(p) = previous {
            let (now, before) = (Totals::of(facts), Totals::of(p));
            assert!(now.messages >= before.messages);
            assert!(now.sensors >= before.sensors);
            assert!(now.rejected >= before.rejected);
            for (device, n) in &before.sensors_by_device {
                let now = now.sensors_by_device.get(device).copied();
                assert!(now >= Some(*n), "{device:?} lost sensors");
            }
        }
        previous = Some(facts);
    }
}

/// The totals in a set of facts (0 where a total has no fact yet).
#[derive(Default)]
struct Totals<'a> {
    messages: i64,
    sensors: i64,
    rejected: i64,
    sensors_by_device: BTreeMap<&'a Key, i64>,
}

impl<'a> Totals<'a> {
    fn of(facts: &'a Facts) -> Self {
        let mut totals = Totals::default();
        for stat in facts.keys() {
            match stat {
                Stat::TotalMessages(n) => totals.messages = *n,
                Stat::TotalSensors(n) => totals.sensors = *n,
                Stat::Count(Counter::Rejected, n) => totals.rejected = *n,
                Stat::DeviceSensors { device, sensors } => {
                    totals.sensors_by_device.insert(device, *sensors);
                }
                Stat::DeviceHumidity { .. }
                | Stat::DeviceName { .. }
                | Stat::Count(
                    Counter::Valid
                    | Counter::Late
                    | Counter::Future
                    | Counter::Received
                    | Counter::RejectedAs(_),
                    _,
                ) => {}
            }
        }
        totals
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
    let got = run_dataflow(Vec::new(), BTreeMap::new(), (2, Distinct::Cumulative));
    assert!(got.is_empty());
}
