#![no_main]
//! `cargo +nightly fuzz run verify`: see keyshift_fuzzing::verify.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyshift_fuzzing::verify(data));
