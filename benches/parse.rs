//! Message parsing and validation throughput: `hygroflow::message::parse` over generated lines.
//!
//! Two mixes of the simulated fleet's lines (`hygroflow generate`'s): all valid, and 10%
//! malformed in every way validation rejects. Each mix is measured twice, once reported as
//! messages per second (`Throughput::Elements`) and once as bytes per second
//! (`Throughput::Bytes`), since criterion takes one throughput unit per benchmark.
//!
//! ```text
//! cargo bench --bench parse
//! ```

use std::hint::black_box;
use std::ops::Range;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use hygroflow::fleet::{Fleet, Generator, DEFAULT_SENSORS, GENERATE_START_MS};
use hygroflow::message::{parse, DEFAULT_MAX_MESSAGE_BYTES};

/// Lines per benchmark iteration.
const LINES: usize = 10_000;

/// `LINES` generated lines in one buffer, and where each line is.
struct Lines {
    data: Vec<u8>,
    ranges: Vec<Range<usize>>,
}

fn lines(bad_fraction: f64) -> Lines {
    let seed = 1;
    let mut generator = Generator::new(Fleet::new(seed, DEFAULT_SENSORS), seed, bad_fraction);
    let mut data = Vec::new();
    let mut ranges = Vec::with_capacity(LINES);
    for i in 0..LINES {
        let start = data.len();
        // 0.3 ms apart, as `hygroflow generate` stamps them.
        generator.write_line(GENERATE_START_MS + (i as i64 * 3) / 10, &mut data);
        ranges.push(start..data.len());
    }
    Lines { data, ranges }
}

/// Parses every line once; returns how many were valid.
fn parse_all(lines: &Lines) -> usize {
    let mut valid = 0;
    for range in &lines.ranges {
        let bytes = &lines.data[range.clone()];
        if black_box(parse(
            black_box(bytes),
            bytes.len(),
            DEFAULT_MAX_MESSAGE_BYTES,
        ))
        .is_ok()
        {
            valid += 1;
        }
    }
    valid
}

fn bench_parse(c: &mut Criterion) {
    let mixes = [("valid", lines(0.0)), ("malformed_10pct", lines(0.1))];
    for (mix, lines) in &mixes {
        let valid = parse_all(lines);
        eprintln!(
            "parse/{mix}: {} lines, {} valid, {:.1} bytes per line",
            lines.ranges.len(),
            valid,
            lines.data.len() as f64 / lines.ranges.len() as f64
        );
    }
    for unit in ["messages", "bytes"] {
        let mut group = c.benchmark_group(format!("parse_{unit}"));
        group
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        for (mix, lines) in &mixes {
            group.throughput(match unit {
                "messages" => Throughput::Elements(lines.ranges.len() as u64),
                _ => Throughput::Bytes(lines.data.len() as u64),
            });
            group.bench_with_input(BenchmarkId::from_parameter(mix), lines, |b, lines| {
                b.iter(|| parse_all(lines))
            });
        }
        group.finish();
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_parse(&mut criterion);
    criterion.final_summary();
}
