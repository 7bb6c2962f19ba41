//! Entry points for the cargo-fuzz targets in `runtime/swim/fuzz`: each feeds arbitrary bytes
//! to a decoder and must never panic. Only built with the `fuzzing` feature (which the fuzz
//! crate turns on) and in unit tests, where `tests.rs` runs every entry point on generated
//! input.
//!
//! Besides "no panic", each checks invariants that hold for every input, so a fuzzer finding
//! a violation finds a real bug: whatever decodes re-encodes to something that decodes to the
//! same value, and a stream message reported complete is complete at exactly the bytes used.
//! The first input byte picks the codec configuration, so one target covers labelled,
//! encrypted, compressed and plain variants.

use super::{
    decode_compound, decode_compressed, decode_message, encode_message, lzw_compress,
    lzw_decompress, Codec, Message, WireConfig, MAX_DECOMPRESSED_BYTES,
};
use crate::keyring::Keyring;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The key every fuzz codec uses, so fuzzers can learn valid frames from the corpus.
pub const FUZZ_KEY: [u8; 16] = *b"hearsay-fuzz-key";
/// The label of labelled fuzz codecs.
pub const FUZZ_LABEL: &str = "fuzz";

/// A codec chosen by the bits of `selector`: 1 = label, 2 = keyring, 4 = verify incoming,
/// 8 = compression, 16 = encryption version 0.
pub fn fuzz_codec(selector: u8) -> Codec {
    let config = WireConfig {
        label: if selector & 1 != 0 {
            FUZZ_LABEL.into()
        } else {
            String::new()
        },
        compression: selector & 8 != 0,
        verify_incoming: selector & 4 != 0,
        verify_outgoing: true,
        encryption_version: if selector & 16 != 0 { 0 } else { 1 },
    };
    let keyring = (selector & 2 != 0)
        .then(|| Keyring::new(FUZZ_KEY.to_vec(), vec![]).expect("a 16-byte key is valid"));
    Codec::new(config, keyring)
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(0x5eed)
}

/// Re-encoding a decoded message and decoding it again gives the same message.
fn check_message(m: &Message) {
    let again = decode_message(&encode_message(m));
    assert_eq!(again.as_ref(), Ok(m), "message did not round-trip");
}

/// `data[0]` picks the codec; the rest is a UDP packet.
pub fn fuzz_packet(data: &[u8]) {
    let Some((&sel, pkt)) = data.split_first() else {
        return;
    };
    let codec = fuzz_codec(sel);
    if let Ok(opened) = codec.open_packet(pkt) {
        for m in &opened.messages {
            check_message(m);
            let sealed = codec.seal_packet(&encode_message(m), sel & 32 != 0, &mut rng());
            let back = codec.open_packet(&sealed).expect("our own packet opens");
            assert_eq!(back.messages.as_slice(), std::slice::from_ref(m));
        }
    }
}

/// The body of a compound message, then the same bytes as a whole plain packet.
pub fn fuzz_compound(data: &[u8]) {
    if let Ok(c) = decode_compound(data) {
        assert!(c.parts.iter().map(|p| p.len()).sum::<usize>() <= data.len());
        for part in c.parts {
            if let Ok(m) = decode_message(part) {
                check_message(&m);
            }
        }
    }
    let mut pkt = vec![7];
    pkt.extend_from_slice(data);
    let _ = fuzz_codec(0).open_packet(&pkt);
}

/// The body of a compress message, raw LZW, and LZW round trips of the input.
pub fn fuzz_compressed(data: &[u8]) {
    let _ = decode_compressed(data);
    let _ = lzw_decompress(data, MAX_DECOMPRESSED_BYTES);
    let packed = lzw_compress(data);
    assert_eq!(
        lzw_decompress(&packed, data.len()).as_deref(),
        Ok(data),
        "LZW did not round-trip"
    );
}

/// Encrypted packets and streams under the fuzz key; also seals the input as a user message
/// and checks it opens again.
pub fn fuzz_encrypted(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let codec = fuzz_codec(sel | 2);
    let _ = codec.open_packet(rest);
    let _ = codec.open_stream(rest);
    let _ = codec.open_stream_reply(rest);
    let user = Message::User(rest.to_vec());
    let sealed = codec.seal_packet(&encode_message(&user), sel & 32 != 0, &mut rng());
    let opened = codec.open_packet(&sealed).expect("our own packet opens");
    assert_eq!(opened.messages, vec![user]);
}

/// `data[0]` picks the codec; the rest is the front of a TCP stream.
pub fn fuzz_stream(data: &[u8]) {
    let Some((&sel, buf)) = data.split_first() else {
        return;
    };
    let codec = fuzz_codec(sel);
    let reply = sel & 64 != 0;
    let open = |b: &[u8]| {
        if reply {
            codec.open_stream_reply(b)
        } else {
            codec.open_stream(b)
        }
    };
    if let Ok(Some((msg, used))) = open(buf) {
        assert!(used <= buf.len());
        let exact = open(&buf[..used]).expect("the used bytes alone decode");
        assert_eq!(exact.as_ref().map(|(m, u)| (m, *u)), Some((&msg, used)));
        let sealed = if reply {
            codec.seal_stream_reply(&msg, &mut rng())
        } else {
            codec.seal_stream(&msg, &mut rng())
        };
        let back = open(&sealed).expect("our own stream opens");
        assert_eq!(back, Some((msg, sealed.len())));
    }
}

#[cfg(test)]
mod tests;
