#![no_main]
//! `cargo +nightly fuzz run token_request`: see keyshift_fuzzing::token_request.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyshift_fuzzing::token_request(data));
