//! Fuzz target: `hearsay_serf::messages::fuzz_message` must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hearsay_serf::messages::fuzz_message(data);
});
