//! Fuzz target: the rules file (`--rules FILE`), through `hygroflow::fuzzing::rules`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hygroflow::fuzzing::rules(data));
