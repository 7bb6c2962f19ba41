//! Fuzz target: `hearsay_net::quic::header::fuzz_header` must never panic (and whatever
//! decodes must re-encode to the same bytes). It decodes both header versions, including the
//! version 2 relay section (originator name, fingerprint, address family, ip, port, time left).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hearsay_net::quic::header::fuzz_header(data);
});
