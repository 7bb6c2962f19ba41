//! Fuzz target: `hearsay_net::quic::header::fuzz_header` must never panic (and whatever
//! decodes must re-encode to the same bytes).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hearsay_net::quic::header::fuzz_header(data);
});
