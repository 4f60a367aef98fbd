//! Fuzz target: the hostfile reader (`-h/--hostfile`), through `hygroflow::fuzzing::hostfile`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hygroflow::fuzzing::hostfile(data));
