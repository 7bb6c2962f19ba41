//! Fuzz target: `hearsay_serf::coordinate::fuzz_ping_payload` must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hearsay_serf::coordinate::fuzz_ping_payload(data);
});
