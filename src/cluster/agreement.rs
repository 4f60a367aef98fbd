//! What every process of a cluster must agree on, compared when the processes connect.
//!
//! Processes that disagree build different dataflows or cut time differently: with `-w 2`
//! against `-w 1` timely indexes past the end of its channels, and with `--epoch 1s` against
//! `--epoch 3s` no epoch is ever complete everywhere. So after timely's index handshake, and
//! before timely gets the socket, each side writes its [`Agreement`] and then reads the peer's
//! (writing first on both sides cannot deadlock: the record fits in any socket buffer). Any
//! difference ends both processes with the same line, naming the flag and both values.
//!
//! On the wire: a big-endian `u32` length, then that many bytes of JSON,
//! `{"version":1,"settings":[["-w","--workers 2"],...]}`: each setting is the flag to fix
//! and the value as the command line says it. A setting added later (a window, rules) is one
//! more pair; `version` changes only if this layout does.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::config::{Config, Input};

/// The layout of the record; a peer with another one is refused before its settings are read.
const VERSION: u32 = 1;

/// A record longer than this is not from a hygroflow process.
const MAX_BYTES: u32 = 64 * 1024;

/// The settings every process must share, as `(flag, value)` pairs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Agreement {
    version: u32,
    settings: Vec<(String, String)>,
}

/// Only the version, to refuse another layout before parsing the rest.
#[derive(Deserialize)]
struct Layout {
    version: u32,
}

/// Two processes disagree on one setting.
#[derive(Debug, thiserror::Error)]
#[error("process {} runs with {} but process {} with {}: start every process with the same {flag}", .higher.0, .higher.1, .lower.0, .lower.1)]
pub(crate) struct Disagreement {
    /// The flag to fix.
    flag: String,
    /// The higher-indexed process and its value.
    higher: (usize, String),
    /// The lower-indexed process and its value.
    lower: (usize, String),
}

/// The bytes of an input file that tell copies apart cheaply: its first 64 KiB.
const IDENTITY_BYTES: u64 = 64 * 1024;

/// What an input file is, as processes compare it: a regular file's size and the CRC-32 of
/// its first 64 KiB (the same file under two paths agrees, two files of one name do not);
/// stdin, a pipe or a file that cannot be read only by their kind (the job names a file it
/// cannot read later, in one line).
fn file_identity(path: Option<&std::path::Path>) -> String {
    use std::io::Read;
    let Some(path) = path else {
        return "--input - (stdin)".to_owned();
    };
    let regular = std::fs::metadata(path).ok().filter(|m| m.is_file());
    let Some(meta) = regular else {
        return "--input that is not a regular file".to_owned();
    };
    let mut head = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(IDENTITY_BYTES).read_to_end(&mut head));
    match read {
        Ok(_) => format!(
            "--input of {} bytes (CRC-32 of its first 64 KiB {:08x})",
            meta.len(),
            crc32fast::hash(&head)
        ),
        Err(_) => "--input that cannot be read".to_owned(),
    }
}

impl Agreement {
    /// What this process must share with the others, from its validated configuration.
    pub(crate) fn of(config: &Config) -> Self {
        let cluster = &config.cluster;
        let mut settings = vec![
            (
                "hygroflow release",
                format!("hygroflow {}", env!("CARGO_PKG_VERSION")),
            ),
            ("-n", format!("--processes {}", cluster.processes)),
            ("-w", format!("--workers {}", cluster.workers)),
            (
                "--epoch",
                format!("--epoch {}", humantime::format_duration(config.grid.len())),
            ),
            ("--time", format!("--time {}", time_name(config.time))),
            (
                "--allowed-lateness",
                format!(
                    "--allowed-lateness {}",
                    humantime::format_duration(config.allowed_lateness)
                ),
            ),
            (
                "--window",
                match config.window.span(&config.grid) {
                    Some(span) => format!("--window {}", humantime::format_duration(span)),
                    None => "--window cumulative".to_owned(),
                },
            ),
            (
                "--max-message-bytes",
                format!("--max-message-bytes {}", config.max_message_bytes),
            ),
            (
                "--rules",
                match &config.rules {
                    None => "--rules none".to_owned(),
                    // The resolved rules: the same file name may hold other rules elsewhere.
                    Some(rules) => format!(
                        "--rules with checksum {:08x}",
                        crc32fast::hash(rules.to_toml().as_bytes())
                    ),
                },
            ),
        ];
        match &config.input {
            Input::Demo {
                rate,
                sensors,
                seed,
                scenarios,
            } => settings.extend([
                ("input", "the demo fleet (no -i or -t)".to_owned()),
                ("--rate", format!("--rate {rate}")),
                ("--sensors", format!("--sensors {sensors}")),
                ("--seed", format!("--seed {seed}")),
                ("--scenario", format!("--scenario {scenarios}")),
            ]),
            // Each process reads its own copy, which may live at another path: the copies
            // must be the same bytes (issue 26 point 4).
            Input::File { path, .. } => settings.push(("input", file_identity(path.as_deref()))),
            Input::Kafka(kafka) => settings.extend([
                ("input", format!("--topic {}", kafka.topic)),
                ("--group", format!("--group {}", kafka.group)),
                ("--until-end", switch("--until-end", kafka.until_end)),
                // Each process has its own directory; only having one must agree.
                (
                    "--state-dir",
                    switch("--state-dir", kafka.state_dir.is_some()),
                ),
            ]),
        }
        Agreement {
            version: VERSION,
            settings: settings
                .into_iter()
                .map(|(flag, value)| (flag.to_owned(), value))
                .collect(),
        }
    }

    /// Writes the record, length first.
    pub(crate) fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let len = u32::try_from(json.len())
            .ok()
            .filter(|len| *len <= MAX_BYTES)
            .ok_or_else(|| std::io::Error::other("the settings record is too long"))?;
        let mut record = len.to_be_bytes().to_vec();
        record.extend(json);
        out.write_all(&record)?;
        out.flush()
    }

    /// Reads a peer's record, exactly its bytes and no more (timely reads the rest).
    pub(crate) fn read_from(input: &mut impl Read) -> std::io::Result<Self> {
        let mut len = [0u8; 4];
        input.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len);
        if len > MAX_BYTES {
            return Err(invalid(format!(
                "a settings record of {len} bytes, more than {MAX_BYTES}"
            )));
        }
        let mut json = vec![0u8; len as usize];
        input.read_exact(&mut json)?;
        let layout: Layout = serde_json::from_slice(&json)
            .map_err(|e| invalid(format!("an unreadable settings record: {e}")))?;
        if layout.version != VERSION {
            return Ok(Agreement {
                version: layout.version,
                settings: Vec::new(),
            });
        }
        serde_json::from_slice(&json)
            .map_err(|e| invalid(format!("an unreadable settings record: {e}")))
    }

    /// Compares this process's (`me`) settings with those of process `peer`.
    pub(crate) fn check(
        &self,
        me: usize,
        theirs: &Agreement,
        peer: usize,
    ) -> Result<(), Disagreement> {
        let disagree = |flag: &str, mine: String, theirs: String| {
            let (higher, lower) = if peer > me {
                ((peer, theirs), (me, mine))
            } else {
                ((me, mine), (peer, theirs))
            };
            Err(Disagreement {
                flag: flag.to_owned(),
                higher,
                lower,
            })
        };
        if self.version != theirs.version {
            let layout = |v| format!("a hygroflow with cluster handshake version {v}");
            return disagree(
                "hygroflow release",
                layout(self.version),
                layout(theirs.version),
            );
        }
        let flags = self
            .settings
            .iter()
            .chain(&theirs.settings)
            .map(|(flag, _)| flag);
        for flag in flags {
            let (mine, their) = (self.value(flag), theirs.value(flag));
            if mine != their {
                return disagree(flag, mine, their);
            }
        }
        Ok(())
    }

    /// The value of `flag`, or `no <flag>` for a setting this side does not have.
    fn value(&self, flag: &str) -> String {
        self.settings
            .iter()
            .find(|(f, _)| f == flag)
            .map_or_else(|| format!("no {flag}"), |(_, value)| value.clone())
    }
}

/// The name `--time` takes for `mode`.
fn time_name(mode: crate::epoch::TimeMode) -> String {
    clap::ValueEnum::to_possible_value(&mode)
        .map_or_else(|| format!("{mode:?}"), |v| v.get_name().to_owned())
}

/// `--flag` when it is on, `no --flag` when off.
fn switch(flag: &str, on: bool) -> String {
    if on {
        flag.to_owned()
    } else {
        format!("no {flag}")
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::config::{Cluster, ReportFormat};
    use crate::epoch::{EpochGrid, TimeMode, Window};

    fn agreement(pairs: &[(&str, &str)]) -> Agreement {
        Agreement {
            version: VERSION,
            settings: pairs
                .iter()
                .map(|(f, v)| ((*f).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// A demo run of `workers` workers, process `process` of two.
    fn demo(process: usize, workers: usize, epoch_ms: u64, time: TimeMode) -> Config {
        Config {
            input: Input::Demo {
                rate: 100,
                sensors: 10,
                seed: 1,
                scenarios: Default::default(),
            },
            grid: EpochGrid::new(Duration::from_millis(epoch_ms)).expect("epoch"),
            window: Window::Cumulative,
            time,
            cluster: Cluster {
                workers,
                processes: 2,
                process,
                addresses: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            },
            format: ReportFormat::Text,
            changes: false,
            max_message_bytes: 1 << 20,
            results: None,
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            allowed_lateness: Duration::ZERO,
            max_clock_skew: Duration::from_secs(3600),
            rules: None,
            rules_file: None,
            alerts: None,
            alerts_topic: None,
            alertmanager: None,
            http: None,
        }
    }

    #[test]
    fn what_must_agree_comes_from_the_config() {
        let check = |zero: &Config, one: &Config| {
            Agreement::of(one)
                .check(1, &Agreement::of(zero), 0)
                .map_err(|e| e.to_string())
        };
        let base = demo(0, 2, 3000, TimeMode::Processing);
        assert_eq!(
            check(&base, &demo(1, 2, 3000, TimeMode::Processing)),
            Ok(())
        );
        assert_eq!(
            check(&base, &demo(1, 2, 1000, TimeMode::Processing)).expect_err("epoch"),
            "process 1 runs with --epoch 1s but process 0 with --epoch 3s: \
             start every process with the same --epoch"
        );
        let e = check(&base, &demo(1, 2, 3000, TimeMode::Event)).expect_err("time");
        assert!(
            e.contains("--time event but process 0 with --time processing"),
            "{e}"
        );
        let mut file = demo(1, 2, 3000, TimeMode::Processing);
        file.input = Input::File {
            path: None,
            rejects: None,
        };
        let e = check(&base, &file).expect_err("input");
        assert!(
            e.contains("runs with --input - (stdin) but process 0 with the demo fleet"),
            "{e}"
        );
    }

    #[test]
    fn a_record_reads_back_exactly_and_leaves_what_follows() {
        let mine = agreement(&[("-w", "--workers 2"), ("--epoch", "--epoch 3s")]);
        let mut wire = Vec::new();
        mine.write_to(&mut wire).expect("write");
        wire.extend_from_slice(b"timely");
        let mut input = wire.as_slice();
        assert_eq!(Agreement::read_from(&mut input).expect("read"), mine);
        assert_eq!(input, b"timely", "the bytes after the record are timely's");
    }

    #[test]
    fn a_disagreement_names_the_flag_and_both_values_the_same_way_on_both_sides() {
        let zero = agreement(&[("-w", "--workers 2"), ("--epoch", "--epoch 1s")]);
        let one = agreement(&[("-w", "--workers 1"), ("--epoch", "--epoch 1s")]);
        let expected = "process 1 runs with --workers 1 but process 0 with --workers 2: \
                        start every process with the same -w";
        let seen_by_0 = zero.check(0, &one, 1).expect_err("differ");
        let seen_by_1 = one.check(1, &zero, 0).expect_err("differ");
        assert_eq!(seen_by_0.to_string(), expected);
        assert_eq!(seen_by_1.to_string(), expected);
        assert!(zero.check(0, &zero.clone(), 1).is_ok());
    }

    #[test]
    fn a_setting_only_one_side_has_disagrees() {
        let older = agreement(&[("-w", "--workers 1")]);
        let newer = agreement(&[("-w", "--workers 1"), ("--window", "--window 10s")]);
        let e = older.check(0, &newer, 2).expect_err("missing");
        assert_eq!(
            e.to_string(),
            "process 2 runs with --window 10s but process 0 with no --window: \
             start every process with the same --window"
        );
    }

    #[test]
    fn another_layout_is_refused_before_its_settings_are_read() {
        let mut wire = Vec::new();
        let json = br#"{"version":7,"settings":{"a new":"shape"}}"#;
        wire.extend((json.len() as u32).to_be_bytes());
        wire.extend(json);
        let theirs = Agreement::read_from(&mut wire.as_slice()).expect("the version reads");
        let e = agreement(&[]).check(1, &theirs, 0).expect_err("layout");
        assert!(e.to_string().contains("cluster handshake version 7"), "{e}");
    }

    #[test]
    fn garbage_is_an_error_not_an_allocation() {
        let e = Agreement::read_from(&mut &[0xff_u8, 0xff, 0xff, 0xff][..]).expect_err("long");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        let e = Agreement::read_from(&mut &b"\0\0\0\x02{x"[..]).expect_err("not json");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        let e = Agreement::read_from(&mut &b"\0\0"[..]).expect_err("short");
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
