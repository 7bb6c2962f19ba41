//! Fuzz target: `hearsay_deploy::fuzzing::fuzz_set` must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hearsay_deploy::fuzzing::fuzz_set(data);
});
