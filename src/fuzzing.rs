//! Entry points for `cargo fuzz` (`fuzz/`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`); not an API.
//!
//! One function per fuzz target, each taking arbitrary bytes and returning nothing. None may
//! panic, whatever the bytes: a panic here is a bug in the reader it drives. Beyond "does not
//! panic", each asserts what its reader promises (a reading's humidity is within 0..=100 %,
//! rules written out read back the same), so a fuzzer finds wrong answers as well as crashes.

use std::time::Duration;

use crate::epoch::{parse_event_time, EpochGrid};
use crate::escape::escape;
use crate::message::{parse, parse_with_serde, DEFAULT_MAX_MESSAGE_BYTES, ERROR_KINDS};
use crate::rules::{alert_rules, epochs_kept, Rules};

/// The message parser, at the default size limit and at a small one, and what the worker
/// does next with a reading (its event time) or a reject (its kind and message). The parser's
/// fast path must give exactly what serde_json gives.
pub fn message(data: &[u8]) {
    for limit in [DEFAULT_MAX_MESSAGE_BYTES, 64] {
        let parsed = parse(data, data.len(), limit);
        assert_eq!(
            parsed,
            parse_with_serde(data, data.len(), limit),
            "the fast path and serde_json disagree"
        );
        match parsed {
            Ok(reading) => {
                assert!(!reading.guid.is_empty() && !reading.device.is_empty());
                assert!((0..=100_000_000).contains(&reading.humidity_micro));
                let _ = escape(&reading.guid);
                let _ = escape(&reading.device);
                if let Some(time) = &reading.event_time {
                    let _ = parse_event_time(time);
                }
            }
            Err(error) => {
                let _ = error.to_string();
                assert_eq!(ERROR_KINDS[usize::from(error.kind_index())], error.kind());
            }
        }
    }
}

/// The checkpoint reader: the bytes as a worker's checkpoint file and as the `COMMITTED`
/// marker, whole and as a body past the header.
pub fn checkpoint(data: &[u8]) {
    crate::checkpoint::decode_untrusted(data);
}

/// The hostfile reader (`-h/--hostfile`), for a few cluster sizes.
pub fn hostfile(data: &[u8]) {
    // `addresses` reads the file as UTF-8 text and refuses anything else.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for processes in [2, 3, 64] {
        let found = crate::config::hostfile_addresses(text, processes);
        assert!(found.len() <= processes);
        for address in &found {
            assert!(!address.is_empty() && address.trim() == address && !address.starts_with('#'));
        }
    }
}

/// The rules file (`--rules FILE`) at two epoch lengths: parsed and checked, then written
/// out (`hygroflow rules`), read back, and applied as the alerts dataflow applies it.
pub fn rules(data: &[u8]) {
    // `Rules::load` refuses a file that is not UTF-8 before parsing it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for epoch in [Duration::from_secs(3), Duration::from_secs(7)] {
        let rules = match Rules::parse(text, epoch) {
            Ok(rules) => rules,
            Err(invalid) => {
                let _ = invalid.to_string();
                continue;
            }
        };
        let written = rules.to_toml();
        let again = match Rules::parse(&written, epoch) {
            Ok(again) => again,
            Err(invalid) => panic!("written rules do not read back: {invalid}\n{written}"),
        };
        assert_eq!(
            again.to_toml(),
            written,
            "written rules read back otherwise"
        );
        let Some(grid) = EpochGrid::new(epoch) else {
            continue;
        };
        let _ = epochs_kept(Some(&rules), Some(1), &grid);
        let applied = alert_rules(&rules, &grid, &Default::default());
        for device in ["", "MRI12", "CT1", "PETCT7", "x"] {
            assert_eq!(rules.rule_for(device), again.rule_for(device));
            let _ = (applied.rule_for)(device);
        }
    }
}
