//! Fuzz target: `hearsay_net::quic::request::fuzz_request` must never panic (and whatever
//! decodes as a request header or a reply header must re-encode to the same bytes).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hearsay_net::quic::request::fuzz_request(data);
});
