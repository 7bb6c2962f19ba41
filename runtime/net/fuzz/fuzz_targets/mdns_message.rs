//! Fuzz target: `hearsay_net::discover::records::fuzz_message` (the mDNS packet decoder on
//! `simple-dns`, the responder and the peer reader) must never panic, and what decodes and
//! encodes must decode and encode to the same bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hearsay_net::discover::records::fuzz_message(data);
});
