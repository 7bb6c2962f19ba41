//! The fuzz entry point of the RPC server's request decoding ([`fuzz_requests`]), for the
//! `rpc_request` fuzz target and its smoke test; not part of the protocol API.

use crate::codec::{
    decode_value, decode_value_within, encode_value, max_body_bytes, RequestHeader,
};
use crate::messages::Request;

/// Decodes every request in `data` (header, then a body for commands that take one) the
/// way the server does for a client past the handshake and auth (so a `deploy` body may be
/// up to [`crate::codec::MAX_DEPLOY_BYTES`]), until the input ends or is malformed. Never
/// panics; whatever decodes re-encodes stably (encode, decode, encode gives the same bytes).
/// Used by the fuzz target and its smoke test.
pub fn fuzz_requests(data: &[u8]) {
    let mut buf = data;
    while let Ok(Some((v, used))) = decode_value(buf) {
        buf = &buf[used..];
        let mut once = Vec::new();
        encode_value(&mut once, &v);
        let (again, n) = decode_value(&once)
            .expect("re-encoded value decodes")
            .expect("re-encoded value is complete");
        assert_eq!(n, once.len());
        let mut twice = Vec::new();
        encode_value(&mut twice, &again);
        assert_eq!(once, twice, "unstable re-encoding");
        let Ok(h) = RequestHeader::from_value(&v) else {
            return;
        };
        if !crate::command_has_body(&h.command) {
            continue;
        }
        let Ok(Some((body, used))) = decode_value_within(buf, max_body_bytes(&h.command)) else {
            return;
        };
        buf = &buf[used..];
        let _ = Request::parse(&h.command, body);
    }
}
