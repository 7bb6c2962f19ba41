//! Fuzz target: `hearsay_deploy::fuzzing::fuzz_deployment` must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hearsay_deploy::fuzzing::fuzz_deployment(data);
});
