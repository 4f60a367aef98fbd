//! Fuzz target: the message parser (`hygroflow::message::parse`), through
//! `hygroflow::fuzzing::message`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hygroflow::fuzzing::message(data));
