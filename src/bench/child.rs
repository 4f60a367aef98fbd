//! Children of `hygroflow bench`: each configuration runs as `hygroflow bench -- ARGS`, a
//! wrapper that runs `hygroflow ARGS` and reports its wall time and peak RSS; the harness feeds
//! the child's stdin and reads its stdout line by line as it arrives.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{ensure, Context};
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeVal;

use super::MARKER;

/// `hygroflow bench -- ARGS`: runs `hygroflow ARGS` with inherited stdio, then prints its wall
/// time, CPU time and peak RSS (the only child this process waits for, so RUSAGE_CHILDREN is
/// its own).
pub(super) fn measure_one(args: &[OsString]) -> anyhow::Result<()> {
    let started = Instant::now();
    let status = Command::new(std::env::current_exe()?).args(args).status()?;
    let wall = started.elapsed().as_secs_f64();
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let seconds = |t: TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let cpu = seconds(usage.user_time()) + seconds(usage.system_time());
    // Linux reports ru_maxrss in KiB.
    let peak_kib = usage.max_rss();
    eprintln!("{MARKER} wall_s={wall:.3} cpu_s={cpu:.3} peak_rss_kib={peak_kib} status={status}");
    let command = shown(args.iter().map(|a| a.to_string_lossy()));
    ensure!(status.success(), "hygroflow {command} failed: {status}");
    Ok(())
}

/// A command line for an error message, each `-X key=value` shown as `-X key=***`: no `-X`
/// value is ever printed.
fn shown<S: AsRef<str>>(args: impl IntoIterator<Item = S>) -> String {
    let mut after_x = false;
    let mut words = Vec::new();
    for arg in args {
        let arg = arg.as_ref();
        words.push(match arg.split_once('=') {
            Some((key, _)) if after_x => format!("{key}=***"),
            _ if after_x => "***".to_owned(),
            _ => arg.to_owned(),
        });
        after_x = arg == "-X";
    }
    words.join(" ")
}

/// How the harness feeds a child's stdin.
#[derive(Clone, Copy)]
pub(super) enum Feed<'a> {
    /// Nothing: stdin is /dev/null.
    Nothing,
    /// All of it, as fast as the child reads.
    Full(&'a [u8]),
    /// Lines at `rate` per second for `length`, starting over at the end of `data`.
    Paced {
        data: &'a [u8],
        rate: u64,
        length: Duration,
    },
}

impl Feed<'_> {
    /// Writes to `stdin` and closes it; returns when it closed and how many lines went in.
    fn write(self, stdin: Option<ChildStdin>) -> std::io::Result<(SystemTime, u64)> {
        let mut out = match (self, stdin) {
            (Feed::Nothing, _) | (_, None) => return Ok((SystemTime::now(), 0)),
            (_, Some(out)) => out,
        };
        if let Feed::Full(data) = self {
            for chunk in data.chunks(1 << 20) {
                out.write_all(chunk)?;
            }
            let lines = memchr::memchr_iter(b'\n', data).count() as u64;
            return Ok((SystemTime::now(), lines));
        }
        let Feed::Paced { data, rate, length } = self else {
            return Ok((SystemTime::now(), 0));
        };
        let started = Instant::now();
        let (mut sent, mut at, mut chunk) = (0u64, 0usize, Vec::new());
        while started.elapsed() < length {
            let due = (rate as f64 * started.elapsed().as_secs_f64()) as u64;
            chunk.clear();
            while sent < due {
                at = if at >= data.len() { 0 } else { at };
                let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i + 1);
                chunk.extend_from_slice(&data[at..end]);
                if chunk.last() != Some(&b'\n') {
                    chunk.push(b'\n');
                }
                (at, sent) = (end, sent + 1);
            }
            out.write_all(&chunk)?;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok((SystemTime::now(), sent))
    }
}

/// What a measured child did.
#[derive(Debug)]
pub(super) struct ChildRun {
    pub(super) wall_s: f64,
    /// User plus system CPU time: less skewed than wall time by other work on the machine.
    pub(super) cpu_s: f64,
    pub(super) peak_rss_kib: i64,
    /// When the harness closed the child's stdin, and the lines it wrote.
    pub(super) fed: (SystemTime, u64),
}

/// Runs `hygroflow bench -- ARGS`, feeding its stdin and handing each stdout line, with its
/// arrival time, to `on_line`.
pub(super) fn run_child(
    args: &[String],
    feed: Feed<'_>,
    on_line: &mut dyn FnMut(SystemTime, &str),
) -> anyhow::Result<ChildRun> {
    let stdin = match feed {
        Feed::Nothing => Stdio::null(),
        _ => Stdio::piped(),
    };
    let mut child = Command::new(std::env::current_exe()?)
        .args(["bench", "--"])
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting a child")?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().context("child stdout")?;
    let mut stderr = child.stderr.take().context("child stderr")?;
    let (status, fed, errors) = std::thread::scope(|s| {
        let feeder = s.spawn(move || feed.write(stdin));
        let errors = s.spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            on_line(SystemTime::now(), &line);
        }
        let status = child.wait();
        (status, feeder.join(), errors.join().unwrap_or_default())
    });
    let status = status?;
    let lines: Vec<&str> = errors.lines().collect();
    let tail = &lines[lines.len().saturating_sub(5)..];
    let command = shown(args);
    ensure!(
        status.success(),
        "hygroflow {command} failed ({status}): {}",
        tail.join(" / ")
    );
    let fed = fed.map_err(|_| anyhow::anyhow!("the feeding thread panicked"))??;
    let marker = errors
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(MARKER))
        .context("no measurement from the child")?;
    let field = |name: &str| {
        let value = marker
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='));
        value.with_context(|| format!("no {name} from the child"))
    };
    Ok(ChildRun {
        wall_s: field("wall_s")?.parse()?,
        cpu_s: field("cpu_s")?.parse()?,
        peak_rss_kib: field("peak_rss_kib")?.parse()?,
        fed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_is_shown_without_property_values() {
        assert_eq!(
            shown([
                "run",
                "-b",
                "k:1",
                "-X",
                "sasl.pasword=S3cr3t",
                "-X",
                "oops",
                "-t",
                "t"
            ]),
            "run -b k:1 -X sasl.pasword=*** -X *** -t t"
        );
    }
}
