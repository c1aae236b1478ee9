#![no_main]
//! `cargo +nightly fuzz run config`: see keyshift_fuzzing::config.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyshift_fuzzing::config(data));
