//! Fuzz target: `hearsay_swim::wire::fuzzing::fuzz_packet` must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hearsay_swim::wire::fuzzing::fuzz_packet(data);
});
