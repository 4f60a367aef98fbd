//! The Markdown report of `hygroflow bench`: the command, the machine and its load, the date,
//! then the floor, throughput and latency tables.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Bench, Counted, Latency, Row, WARM_UP_REPORTS};

pub(super) fn millis(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// The machine, as the report's header states it.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| Some(l.strip_prefix("model name")?.split_once(':')?.1.trim()))
        .unwrap_or("unknown CPU");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0);
    let gib = mem_kib / 1_048_576.0;
    format!(
        "{cpus} CPUs (nproc), {model}, {gib:.0} GiB RAM, {}",
        std::env::consts::OS
    )
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews every number.
pub(super) fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Bench<'_> {
    pub(super) fn report(&self) -> String {
        let args = self.args;
        let command: Vec<String> = std::iter::once("hygroflow".to_owned())
            .chain(std::env::args().skip(1))
            .collect();
        let mut out =
            format!(
            "### hygroflow bench\n\n- command: `{}`\n- machine: {}\n- load average (1/5/15 min): \
             {} at start, {} at end\n- date: {}\n- hygroflow {}{}; inputs from `hygroflow \
             generate` (seed {}, {} malformed, {} ms of event time apart, scenario {}); event time, `--epoch {}`; \
             best of {} run(s)\n\n",
            command.join(" "),
            machine(),
            self.load_at_start,
            load_average(),
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            env!("CARGO_PKG_VERSION"),
            if cfg!(debug_assertions) { " (DEBUG BUILD)" } else { "" },
            args.lines.seed,
            args.lines.bad_fraction,
            args.interval_ms,
            args.scenarios,
            humantime::format_duration(args.epoch),
            args.repeat,
        );
        out += "Parse-only floor: the same bytes split into lines and validated by \
                `message::parse` on one thread, no dataflow.\n\n\
                | messages | sensors | bytes/line | messages/s | MB/s | valid |\n\
                |---:|---:|---:|---:|---:|---:|\n";
        for (messages, sensors, f) in &self.floors {
            out += &format!(
                "| {} | {} | {:.0} | {} | {:.0} | {} |\n",
                thousands(*messages as f64),
                thousands(*sensors as f64),
                f.bytes as f64 / f.messages as f64,
                thousands(f.rate()),
                f.bytes as f64 / f.seconds / 1e6,
                thousands(f.valid as f64)
            );
        }
        out += "\nEngine, end to end (child process start to exit; CPU is user + system time \
                of the child, all threads):\n\n\
                | input | messages | sensors | workers | wall s | CPU s | messages/s | \
                messages/s per worker | per worker / floor | messages per CPU s | epochs/s | \
                peak RSS MB | all counted |\n\
                |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
        for row in &self.rows {
            out += &format!("| {} |\n", row.cells().join(" | "));
        }
        let file_rows = self.rows.iter().filter(|r| r.source == "file");
        if let Some(best) = file_rows.max_by(|a, b| a.per_worker().total_cmp(&b.per_worker())) {
            out += &format!(
                "\nHeadline: from a file, {} messages/s per worker at {} worker(s), {:.0}% of \
                 the parse-only floor.\n",
                thousands(best.per_worker()),
                best.workers,
                100.0 * best.per_worker() / best.shape.floor
            );
        }
        for note in &self.notes {
            out += &format!("\n{note}\n");
        }
        if !self.latencies.is_empty() {
            out += &format!(
                "\nLatency from an epoch's end to its JSON report on stdout: `--input -` fed at \
                 {} messages/s for {}, processing time, `--epoch {}` (first {WARM_UP_REPORTS} \
                 reports skipped).\n\n| workers | achieved messages/s | reports | p50 ms | \
                 p99 ms | max ms | peak RSS MB |\n|---:|---:|---:|---:|---:|---:|---:|\n",
                thousands(args.paced_rate as f64),
                humantime::format_duration(args.paced_for),
                humantime::format_duration(args.paced_epoch)
            );
            for latency in &self.latencies {
                out += &format!("| {} |\n", latency.cells().join(" | "));
            }
        }
        out
    }
}

/// `1234567.8` as `1,234,568`.
pub(super) fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Row {
    pub(super) fn per_worker(&self) -> f64 {
        self.shape.messages as f64 / self.run.wall_s / self.workers as f64
    }

    pub(super) fn cells(&self) -> Vec<String> {
        let check = match self.counted {
            Counted::All(Some(n)) if n == self.shape.messages as i64 => "yes".to_owned(),
            Counted::All(Some(n)) => format!("**no: {n}**"),
            Counted::All(None) => "**no report**".to_owned(),
            Counted::Window => "window".to_owned(),
        };
        vec![
            self.source.clone(),
            thousands(self.shape.messages as f64),
            thousands(self.shape.sensors as f64),
            self.workers.to_string(),
            format!("{:.2}", self.run.wall_s),
            format!("{:.2}", self.run.cpu_s),
            thousands(self.shape.messages as f64 / self.run.wall_s),
            thousands(self.per_worker()),
            format!("{:.0}%", 100.0 * self.per_worker() / self.shape.floor),
            thousands(self.shape.messages as f64 / self.run.cpu_s),
            thousands(self.shape.epochs / self.run.wall_s),
            format!("{:.0}", self.run.peak_rss_kib as f64 / 1024.0),
            check,
        ]
    }
}

impl Latency {
    pub(super) fn cells(&self) -> Vec<String> {
        let n = self.samples.len();
        let quantile = |q: f64| match n {
            0 => "-".to_owned(),
            _ => format!(
                "{:.1}",
                self.samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
            ),
        };
        vec![
            self.workers.to_string(),
            thousands(self.achieved_rate),
            n.to_string(),
            quantile(0.5),
            quantile(0.99),
            quantile(1.0),
            format!("{:.0}", self.peak_rss_kib as f64 / 1024.0),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }
}
