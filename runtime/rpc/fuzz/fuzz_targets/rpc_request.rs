//! Fuzz target: `hearsay_rpc::fuzzing::fuzz_requests` (the RPC server's request decoding) must
//! never panic, and what decodes must re-encode stably.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hearsay_rpc::fuzzing::fuzz_requests(data);
});
