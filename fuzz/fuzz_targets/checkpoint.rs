//! Fuzz target: the checkpoint reader: a worker's checkpoint file and the
//! `COMMITTED` marker, through `hygroflow::fuzzing::checkpoint`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hygroflow::fuzzing::checkpoint(data));
