//! The analyses' per-epoch update cost, for 2.1k, 10k, 100k and 1M distinct sensors.
//!
//! One timely worker on the bench thread builds the engine's dataflow (all analyses, gathered
//! to worker 0, probed), loads every sensor once in a first epoch, and then each measured
//! iteration is one epoch: a fixed number of sensors (10k, or all 2.1k of the default fleet,
//! which is what a 3 s epoch of `hygroflow generate`'s 10k lines touches) get a new tally, as a
//! worker sends them when an epoch closes; the inputs advance, and the worker steps until the
//! probe passes the epoch.
//! The time per iteration is the dataflow's cost of one epoch; the throughput line is sensor
//! updates per second. Parsing and tallying are not included (see `benches/parse.rs` and
//! `hygroflow bench`).
//!
//! ```text
//! cargo bench --bench analyses            # all sizes
//! cargo bench --bench analyses -- 100k    # one size
//! ```

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use differential_dataflow::input::{Input, InputSession};
use hygroflow::fleet::device_names;
use hygroflow_dataflows::{
    analyses, gather_to_first, Counter, Epoch, SensorKey, Tally, MICROS_PER_PERCENT,
};
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;

/// Benchmark name, distinct sensors, sensors updated in each measured epoch.
const SIZES: [(&str, usize, usize); 4] = [
    ("2.1k", 2_100, 2_100),
    ("10k", 10_000, 10_000),
    ("100k", 100_000, 10_000),
    ("1M", 1_000_000, 10_000),
];

/// A loaded dataflow and where the next epoch's updates start.
struct Loaded {
    tallies: InputSession<Epoch, SensorKey, Tally>,
    counters: InputSession<Epoch, Counter, i64>,
    probe: ProbeHandle<Epoch>,
    keys: Vec<SensorKey>,
    next: usize,
}

impl Loaded {
    /// Builds the dataflow and loads `sensors` sensors in epoch 0.
    fn new(worker: &mut Worker, sensors: usize) -> Self {
        let (tallies, counters, probe) = worker.dataflow::<Epoch, _, _>(|scope| {
            let (tallies_in, tallies) = scope.new_collection::<SensorKey, Tally>();
            let (counters_in, counters) = scope.new_collection::<Counter, i64>();
            let (probe, _) = gather_to_first(analyses(tallies, counters)).probe();
            (tallies_in, counters_in, probe)
        });
        let devices = device_names();
        let keys = (0..sensors)
            .map(|i| {
                let device = devices[(i * 7_919) % devices.len()].clone();
                (device, format!("0-ZZZ{:08}-{:03}", i / 1_000, i % 1_000))
            })
            .collect();
        let mut loaded = Loaded {
            tallies,
            counters,
            probe,
            keys,
            next: 0,
        };
        let started = std::time::Instant::now();
        loaded.epoch(worker, sensors);
        eprintln!(
            "analyses: loaded {sensors} sensors in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        loaded
    }

    /// Sends one epoch updating `n` sensors (round robin) and steps until it is complete.
    fn epoch(&mut self, worker: &mut Worker, n: usize) {
        for _ in 0..n {
            let key = &self.keys[self.next];
            self.next = (self.next + 1) % self.keys.len();
            let humidity = (self.next as i64 % 100) * MICROS_PER_PERCENT;
            self.tallies.update(key.clone(), (humidity, 1));
        }
        self.counters.update(Counter::Rejected, 1);
        let next = self.tallies.time() + 1;
        self.tallies.advance_to(next);
        self.counters.advance_to(next);
        self.tallies.flush();
        self.counters.flush();
        let (probe, time) = (&self.probe, *self.tallies.time());
        worker.step_while(|| probe.less_than(&time));
    }

    /// Closes the inputs and lets the dataflow finish.
    fn close(self, worker: &mut Worker) {
        let Loaded {
            tallies,
            counters,
            probe,
            ..
        } = self;
        tallies.close();
        counters.close();
        worker.step_while(|| !probe.done());
    }
}

fn bench_analyses(c: &mut Criterion, worker: &mut Worker) {
    let mut group = c.benchmark_group("analyses_epoch");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, sensors, updates) in SIZES {
        group.throughput(Throughput::Elements(updates as u64));
        // Loaded on first use, so a filtered-out size costs nothing.
        let mut loaded: Option<Loaded> = None;
        group.bench_function(BenchmarkId::new("sensors", name), |b| {
            let state = loaded.get_or_insert_with(|| Loaded::new(worker, sensors));
            b.iter(|| state.epoch(worker, updates));
        });
        if let Some(state) = loaded {
            state.close(worker);
        }
    }
    group.finish();
}

fn main() {
    timely::execute_directly(|worker| {
        let mut criterion = Criterion::default().configure_from_args();
        bench_analyses(&mut criterion, worker);
        criterion.final_summary();
    });
}
