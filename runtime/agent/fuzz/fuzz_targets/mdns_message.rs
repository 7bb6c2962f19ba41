//! Fuzz target: `hearsay_agent::discover::dns::fuzz_message` (the mDNS packet decoder) must
//! never panic, and what decodes must re-encode and decode to the same message.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hearsay_agent::discover::dns::fuzz_message(data);
});
