//! The analyses' per-epoch update cost, with 2.1k, 10k, 100k and 1M distinct sensors loaded.
//!
//! One timely worker on the bench thread builds the engine's dataflow with the engine's own
//! wiring (`hygroflow_dataflows::build`: all analyses, gathered to worker 0), probes it, and
//! loads every sensor once in a first epoch. Each measured iteration is then one epoch as a
//! worker sends it when an epoch closes: one `(sum, count)` update per device (all 51), plus
//! a number of sensors seen for the first time (0 in the steady state of the default fleet,
//! 1,000 for the larger sizes: a fleet still growing); the inputs advance, and the worker
//! steps until the probe passes the epoch. Parsing and tallying are not included (see
//! `benches/parse.rs` and `hygroflow bench`).
//!
//! ```text
//! cargo bench --bench analyses            # all sizes
//! cargo bench --bench analyses -- 100k    # one size
//! ```

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use hygroflow::fleet::device_names;
use hygroflow_dataflows::{
    build, sensor_key, Counter, Distinct, Epoch, InputHandles, Key, MICROS_PER_PERCENT,
};
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;

/// Benchmark name, distinct sensors loaded, new sensors in each measured epoch.
const SIZES: [(&str, usize, usize); 4] = [
    ("2.1k", 2_100, 0),
    ("10k", 10_000, 1_000),
    ("100k", 100_000, 1_000),
    ("1M", 1_000_000, 1_000),
];

/// A loaded dataflow and the next new sensor's number.
struct Loaded {
    inputs: InputHandles,
    probe: ProbeHandle<Epoch>,
    devices: Vec<String>,
    next: usize,
}

impl Loaded {
    /// Builds the dataflow and loads `sensors` sensors in epoch 0.
    fn new(worker: &mut Worker, sensors: usize) -> Self {
        let (mut inputs, probe) = worker.dataflow::<Epoch, _, _>(|scope| {
            let (inputs, stats, _) = build(scope, (Distinct::Cumulative, None));
            let (probe, _) = stats.probe();
            (inputs, probe)
        });
        for device in device_names() {
            inputs.names.update((Key::of(&device), device), 1);
        }
        let mut loaded = Loaded {
            inputs,
            probe,
            devices: device_names(),
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

    /// Sends one epoch (every device's sums and `new` new sensors) and steps until complete.
    fn epoch(&mut self, worker: &mut Worker, new: usize) {
        for (i, device) in self.devices.iter().enumerate() {
            let humidity = (i as i64 % 100) * MICROS_PER_PERCENT;
            self.inputs
                .device_sums
                .update(Key::of(device), (humidity * 40, 40));
        }
        for _ in 0..new {
            let i = self.next;
            self.next += 1;
            let device = &self.devices[(i * 7_919) % self.devices.len()];
            let guid = format!("0-ZZZ{:08}-{:03}", i / 1_000, i % 1_000);
            self.inputs.sensors.update(sensor_key(device, &guid), 1);
        }
        self.inputs
            .counters
            .update(Counter::Valid, 40 * self.devices.len() as i64);
        self.inputs.counters.update(Counter::Rejected, 1);
        let next = self.inputs.time() + 1;
        self.inputs.advance_to(next);
        self.inputs.flush();
        let (probe, time) = (&self.probe, *self.inputs.time());
        worker.step_while(|| probe.less_than(&time));
    }

    /// Closes the inputs and lets the dataflow finish.
    fn close(self, worker: &mut Worker) {
        let Loaded { inputs, probe, .. } = self;
        inputs.close();
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
        // Updates per epoch: one per device, plus the new sensors.
        group.throughput(Throughput::Elements(51 + updates as u64));
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
