//! The framing of a request stream: a small question (or a fetch by digest) one endpoint asks
//! another over the same pinned connections that carry large responses.
//!
//! Request, on the asking side's half of a bidirectional stream (integers big-endian):
//!
//! ```text
//! kind u8 (0x80) | service u8 | body_len u32 | body [body_len]   then the asker finishes
//! ```
//!
//! Reply, on the answering side's half:
//!
//! ```text
//! status u8 (0 = ok, 1 = error) | body_len u64 | body [body_len]  then the answerer finishes
//! ```
//!
//! An error reply's body is a UTF-8 message saying why (e.g. "no such module"), at most
//! [`MAX_ERROR_LEN`] bytes.
//!
//! The first byte of every stream tells its kind: a large-response stream starts with its
//! header version (1 or 2, see [`super::header`]), a request stream with [`REQUEST_KIND`],
//! whose high bit no response header version will ever have. A response-only node (older
//! hearsay) reads 0x80 as an unsupported header version and refuses the stream, so a request
//! to it fails instead of hanging.
//!
//! Both headers have a fixed size, so a reader learns the body's length from them and can
//! refuse an oversized body before reading it. The decoders never panic: every malformed input
//! is a [`FrameError`].

use thiserror::Error;

/// The first byte of a request stream (version 1 of the request framing).
pub const REQUEST_KIND: u8 = 0x80;
/// The size of an encoded [`RequestHeader`].
pub const REQUEST_HEADER_LEN: usize = 6;
/// The size of an encoded [`ReplyHeader`].
pub const REPLY_HEADER_LEN: usize = 9;
/// The longest error message a reply carries; a longer one is cut (at a character boundary)
/// by the answering side and refused by the asking side.
pub const MAX_ERROR_LEN: usize = 4096;

/// The start of a request stream: which service is asked and how long the question is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    /// The service asked (the embedder's numbering; the transport does not interpret it).
    pub service: u8,
    /// The request body's length in bytes.
    pub body_len: u32,
}

/// Whether a reply answers the request or says why it could not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ReplyStatus {
    /// The body is the answer.
    Ok = 0,
    /// The body is a UTF-8 message saying why the request failed.
    Error = 1,
}

/// The start of a reply: its status and body length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    /// Answer or error.
    pub status: ReplyStatus,
    /// The reply body's length in bytes.
    pub body_len: u64,
}

/// Why a request or reply header could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The input ended before the header did.
    #[error("request framing truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the header needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The first byte is not [`REQUEST_KIND`].
    #[error("not a request stream: first byte {0:#04x} (expected {REQUEST_KIND:#04x})")]
    Kind(u8),
    /// The reply's status byte is neither 0 nor 1.
    #[error("unknown reply status {0} (expected 0 or 1)")]
    Status(u8),
}

fn need(buf: &[u8], n: usize) -> Result<&[u8], FrameError> {
    buf.get(..n).ok_or(FrameError::Truncated {
        need: n,
        have: buf.len(),
    })
}

impl RequestHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; REQUEST_HEADER_LEN] {
        let mut out = [0u8; REQUEST_HEADER_LEN];
        out[0] = REQUEST_KIND;
        out[1] = self.service;
        out[2..].copy_from_slice(&self.body_len.to_be_bytes());
        out
    }

    /// Decodes the header at the front of `buf` (which may hold more, e.g. the body).
    pub fn decode(buf: &[u8]) -> Result<Self, FrameError> {
        let b = need(buf, REQUEST_HEADER_LEN)?;
        if b[0] != REQUEST_KIND {
            return Err(FrameError::Kind(b[0]));
        }
        Ok(Self {
            service: b[1],
            body_len: u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
        })
    }
}

impl ReplyHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; REPLY_HEADER_LEN] {
        let mut out = [0u8; REPLY_HEADER_LEN];
        out[0] = self.status as u8;
        out[1..].copy_from_slice(&self.body_len.to_be_bytes());
        out
    }

    /// Decodes the header at the front of `buf` (which may hold more, e.g. the body).
    pub fn decode(buf: &[u8]) -> Result<Self, FrameError> {
        let b = need(buf, REPLY_HEADER_LEN)?;
        let status = match b[0] {
            0 => ReplyStatus::Ok,
            1 => ReplyStatus::Error,
            other => return Err(FrameError::Status(other)),
        };
        let mut len = [0u8; 8];
        len.copy_from_slice(&b[1..]);
        Ok(Self {
            status,
            body_len: u64::from_be_bytes(len),
        })
    }
}

/// `reason` cut to at most [`MAX_ERROR_LEN`] bytes, at a character boundary.
pub(crate) fn error_message(reason: &str) -> &str {
    if reason.len() <= MAX_ERROR_LEN {
        return reason;
    }
    let mut end = MAX_ERROR_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Fuzz entry point (used by `runtime/net/fuzz` and the smoke unit test): decoding arbitrary
/// bytes as a request header and as a reply header never panics, and whatever decodes
/// re-encodes to the bytes it came from. Only built with the `fuzzing` feature and in unit
/// tests.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_request(data: &[u8]) {
    if let Ok(h) = RequestHeader::decode(data) {
        assert_eq!(
            h.encode()[..],
            data[..REQUEST_HEADER_LEN],
            "request header round trip differs"
        );
    }
    if let Ok(h) = ReplyHeader::decode(data) {
        assert_eq!(
            h.encode()[..],
            data[..REPLY_HEADER_LEN],
            "reply header round trip differs"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn request_header_layout_is_kind_service_length() {
        let h = RequestHeader {
            service: 7,
            body_len: 0x0102_0304,
        };
        assert_eq!(h.encode(), [0x80, 7, 1, 2, 3, 4]);
        assert_eq!(RequestHeader::decode(&[0x80, 7, 1, 2, 3, 4, 99]), Ok(h));
    }

    #[test]
    fn reply_header_layout_is_status_length() {
        let h = ReplyHeader {
            status: ReplyStatus::Error,
            body_len: 5,
        };
        assert_eq!(h.encode(), [1, 0, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(ReplyHeader::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn response_header_versions_are_not_requests() {
        for v in [1u8, 2, 3, 0x7f, 0] {
            assert_eq!(
                RequestHeader::decode(&[v, 0, 0, 0, 0, 0]),
                Err(FrameError::Kind(v))
            );
        }
        // And the response header decoder refuses the request kind as a version.
        assert!(crate::quic::ResponseHeader::decode(&[REQUEST_KIND, 0, 0], 4096).is_err());
    }

    #[test]
    fn rejects_truncation_and_unknown_status() {
        let req = RequestHeader {
            service: 1,
            body_len: 9,
        }
        .encode();
        for cut in 0..REQUEST_HEADER_LEN {
            assert_eq!(
                RequestHeader::decode(&req[..cut]),
                Err(FrameError::Truncated {
                    need: REQUEST_HEADER_LEN,
                    have: cut
                })
            );
        }
        let rep = ReplyHeader {
            status: ReplyStatus::Ok,
            body_len: 9,
        }
        .encode();
        for cut in 0..REPLY_HEADER_LEN {
            assert!(matches!(
                ReplyHeader::decode(&rep[..cut]),
                Err(FrameError::Truncated { .. })
            ));
        }
        let mut bad = rep;
        bad[0] = 2;
        assert_eq!(ReplyHeader::decode(&bad), Err(FrameError::Status(2)));
    }

    #[test]
    fn error_messages_are_cut_at_a_character_boundary() {
        assert_eq!(error_message("no such module"), "no such module");
        let long = "é".repeat(MAX_ERROR_LEN); // 2 bytes each
        let cut = error_message(&long);
        assert!(cut.len() <= MAX_ERROR_LEN && cut.len() > MAX_ERROR_LEN - 2);
        let odd = format!("x{long}");
        let cut = error_message(&odd);
        assert!(cut.len() <= MAX_ERROR_LEN && cut.len() >= MAX_ERROR_LEN - 1);
    }

    /// Runs the fuzz entry point over a few thousand seeded inputs: valid headers (with and
    /// without trailing bytes), mutated ones and random ones, so the target is exercised on
    /// every `cargo test` and not only under cargo-fuzz.
    #[test]
    fn fuzz_request_smoke() {
        let mut rng = StdRng::seed_from_u64(0x0052_4551);
        let mut decoded = 0;
        for i in 0..4000 {
            let mut input: Vec<u8> = match i % 3 {
                0 => RequestHeader {
                    service: rng.gen(),
                    body_len: rng.gen(),
                }
                .encode()
                .to_vec(),
                1 => ReplyHeader {
                    status: if rng.gen_bool(0.5) {
                        ReplyStatus::Ok
                    } else {
                        ReplyStatus::Error
                    },
                    body_len: rng.gen(),
                }
                .encode()
                .to_vec(),
                _ => (0..rng.gen_range(0..24)).map(|_| rng.gen()).collect(),
            };
            match rng.gen_range(0..4) {
                0 if !input.is_empty() => {
                    let at = rng.gen_range(0..input.len());
                    input[at] ^= 1 << rng.gen_range(0..8);
                }
                1 if !input.is_empty() => input.truncate(rng.gen_range(0..input.len())),
                2 => input.extend((0..rng.gen_range(0..8)).map(|_| rng.gen::<u8>())),
                _ => {}
            }
            fuzz_request(&input);
            if RequestHeader::decode(&input).is_ok() || ReplyHeader::decode(&input).is_ok() {
                decoded += 1;
            }
        }
        assert!(decoded > 1000, "only {decoded} inputs decoded");
        assert!(
            decoded < 4000,
            "every input decoded: the mutations did nothing"
        );
    }

    proptest! {
        #[test]
        fn prop_request_round_trip(service: u8, body_len: u32, tail in proptest::collection::vec(any::<u8>(), 0..16)) {
            let h = RequestHeader { service, body_len };
            let mut bytes = h.encode().to_vec();
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(RequestHeader::decode(&bytes), Ok(h));
            fuzz_request(&bytes);
        }

        #[test]
        fn prop_reply_round_trip(error: bool, body_len: u64) {
            let status = if error { ReplyStatus::Error } else { ReplyStatus::Ok };
            let h = ReplyHeader { status, body_len };
            prop_assert_eq!(ReplyHeader::decode(&h.encode()), Ok(h));
            fuzz_request(&h.encode());
        }

        #[test]
        fn prop_decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..32)) {
            fuzz_request(&data);
        }
    }
}
