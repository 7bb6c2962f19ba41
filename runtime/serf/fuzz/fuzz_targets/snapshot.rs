//! Fuzz target: `hearsay_serf::snapshot::fuzz_replay` must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hearsay_serf::snapshot::fuzz_replay(data);
});
