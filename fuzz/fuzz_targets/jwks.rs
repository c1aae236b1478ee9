#![no_main]
//! `cargo +nightly fuzz run jwks`: see keyshift_fuzzing::jwks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyshift_fuzzing::jwks(data));
