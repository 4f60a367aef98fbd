//! Replays the committed fuzz corpora (`fuzz/corpus/TARGET/`) through the fuzz targets' own
//! entry points (`hygroflow::fuzzing`), on stable and without libFuzzer: every input the
//! fuzzer kept, and every input that once crashed a reader, is checked again by `cargo test`.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

/// Runs every file of `target`'s corpus through `entry`; returns how many there were.
fn replay(target: &str, entry: fn(&[u8])) -> usize {
    let dir = corpus(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| entry(&bytes));
        assert!(outcome.is_ok(), "{target}: {} panics", file.display());
    }
    files.len()
}

/// Replays `target`'s corpus, which must hold at least `at_least` inputs (a corpus emptied
/// by mistake must not pass silently).
fn check(target: &str, entry: fn(&[u8]), at_least: usize) {
    let replayed = replay(target, entry);
    assert!(
        replayed >= at_least,
        "{target}: {replayed} inputs in {}, expected at least {at_least}",
        corpus(target).display()
    );
}

#[test]
fn the_message_parser_handles_its_corpus() {
    check("parse_message", hygroflow::fuzzing::message, 1_000);
}

#[test]
fn the_checkpoint_reader_handles_its_corpus() {
    check("checkpoint", hygroflow::fuzzing::checkpoint, 2_000);
}

#[test]
fn the_hostfile_reader_handles_its_corpus() {
    check("hostfile", hygroflow::fuzzing::hostfile, 100);
}

#[test]
fn the_rules_reader_handles_its_corpus() {
    check("rules", hygroflow::fuzzing::rules, 1_000);
}

#[test]
fn gh_12_the_inputs_that_found_bugs_stay_in_the_corpus() {
    for (target, file) in [
        ("rules", "gh-12-exponent-overflow-above.toml"),
        ("rules", "gh-12-exponent-overflow-below.toml"),
        ("checkpoint", "gh-12-alert-zero-denominator"),
        ("checkpoint", "gh-12-alert-zero-denominator.body"),
    ] {
        assert!(corpus(target).join(file).is_file(), "{target}/{file}");
    }
}
