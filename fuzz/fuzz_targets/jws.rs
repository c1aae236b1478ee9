#![no_main]
//! `cargo +nightly fuzz run jws`: see keyshift_fuzzing::jws.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyshift_fuzzing::jws(data));
