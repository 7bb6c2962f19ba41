//! The entry point of the `message` cargo-fuzz target in `runtime/serf/fuzz`: arbitrary bytes
//! into every Serf decoder, which must never panic. Only built with the `fuzzing` feature
//! (which the fuzz crate turns on) and in unit tests, where `tests.rs` runs it on generated
//! input.
//!
//! Beyond "no panic" it checks that whatever decodes re-encodes into bytes that decode to the
//! same value, so a fuzzer finding a violation finds a real asymmetry between the encoder and
//! the decoder. The same bytes are also tried as tags, a filter and key payloads.

use super::{decode, decode_filter, decode_tags, encode, encode_filter, encode_tags};

/// Feeds `data` to [`decode`], [`decode_tags`] and [`decode_filter`]; panics only if a decoded
/// value does not survive re-encoding (a bug), never because of the input itself.
pub fn fuzz_message(data: &[u8]) {
    if let Ok(m) = decode(data) {
        let again = decode(&encode(&m));
        assert_eq!(again.as_ref(), Ok(&m), "message did not round-trip");
    }
    if let Ok(tags) = decode_tags(data) {
        if data.first() == Some(&super::TAG_MAGIC_BYTE) {
            assert_eq!(
                decode_tags(&encode_tags(&tags)),
                Ok(tags),
                "tags did not round-trip"
            );
        }
    }
    if let Ok(f) = decode_filter(data) {
        assert_eq!(
            decode_filter(&encode_filter(&f)),
            Ok(f),
            "filter did not round-trip"
        );
    }
}

#[cfg(test)]
mod tests;
