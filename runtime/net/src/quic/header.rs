//! The header a responder writes at the start of every large-response stream, and its codec.
//!
//! Wire layout (all integers big-endian):
//!
//! ```text
//! version u8 (= 1) | rest_len u16 | ltime u64 | query_id u32 | flags u8
//!   | [total_len u64, if flags & 1] | name_len u16 | name (UTF-8)
//! ```
//!
//! `rest_len` counts the bytes after itself, so a reader learns the header's size from the
//! first three bytes and can refuse an oversized header before reading it. The decoder never
//! panics: every malformed input is a [`HeaderError`].

use thiserror::Error;

/// The only header version this code speaks.
pub const HEADER_VERSION: u8 = 1;
/// Bytes before the variable part: version and `rest_len`.
pub const HEADER_PREFIX_LEN: usize = 3;
/// The longest node name a header carries (the length field is a u16; a name this long is
/// already far beyond Serf's practical limits).
pub const MAX_NAME_LEN: usize = 1024;

const FLAG_TOTAL_LEN: u8 = 1;
/// Fixed bytes after the prefix: ltime, query id, flags, name length.
const FIXED_REST: usize = 8 + 4 + 1 + 2;

/// Identifies a large response: which query it answers (the query's Lamport time and id, as
/// in Serf's `messageQueryResponse`), who answers, and optionally how long the body will be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHeader {
    /// The query's Lamport time.
    pub ltime: u64,
    /// The query's id.
    pub query_id: u32,
    /// The responding node's name.
    pub from: String,
    /// The body's length, when the responder knows it up front. The receiver refuses a body
    /// whose length differs and can refuse one over its limit before reading it.
    pub total_len: Option<u64>,
}

/// Why a header could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// The input ended before the header did.
    #[error("header truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    /// The first byte is not a version this code speaks.
    #[error("unsupported response header version {0} (expected {HEADER_VERSION})")]
    Version(u8),
    /// The declared header length is over the receiver's limit.
    #[error("response header of {len} bytes exceeds the header limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    /// A flag bit this version does not define is set.
    #[error("unknown response header flags {0:#04x}")]
    Flags(u8),
    /// The declared lengths do not add up to the header length.
    #[error("response header length {declared} does not match its fields ({actual} bytes)")]
    LengthMismatch { declared: usize, actual: usize },
    /// The node name is longer than [`MAX_NAME_LEN`].
    #[error("node name of {0} bytes exceeds {MAX_NAME_LEN} bytes")]
    NameTooLong(usize),
    /// The node name is not UTF-8.
    #[error("node name is not valid UTF-8")]
    NameNotUtf8,
}

impl ResponseHeader {
    /// Encodes the header; fails only when the name is longer than [`MAX_NAME_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, HeaderError> {
        let name = self.from.as_bytes();
        if name.len() > MAX_NAME_LEN {
            return Err(HeaderError::NameTooLong(name.len()));
        }
        let rest = FIXED_REST + name.len() + if self.total_len.is_some() { 8 } else { 0 };
        let mut out = Vec::with_capacity(HEADER_PREFIX_LEN + rest);
        out.push(HEADER_VERSION);
        // rest <= FIXED_REST + 8 + MAX_NAME_LEN, far below u16::MAX.
        out.extend_from_slice(&(rest as u16).to_be_bytes());
        out.extend_from_slice(&self.ltime.to_be_bytes());
        out.extend_from_slice(&self.query_id.to_be_bytes());
        match self.total_len {
            Some(total) => {
                out.push(FLAG_TOTAL_LEN);
                out.extend_from_slice(&total.to_be_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name);
        Ok(out)
    }

    /// Reads the 3-byte prefix: checks the version and returns how many bytes follow,
    /// refusing more than `limit` (the whole header's size, prefix included).
    pub fn decode_prefix(prefix: &[u8], limit: usize) -> Result<usize, HeaderError> {
        if prefix.len() < HEADER_PREFIX_LEN {
            return Err(HeaderError::Truncated {
                need: HEADER_PREFIX_LEN,
                have: prefix.len(),
            });
        }
        if prefix[0] != HEADER_VERSION {
            return Err(HeaderError::Version(prefix[0]));
        }
        let rest = u16::from_be_bytes([prefix[1], prefix[2]]) as usize;
        if HEADER_PREFIX_LEN + rest > limit {
            return Err(HeaderError::TooLarge {
                len: HEADER_PREFIX_LEN + rest,
                limit,
            });
        }
        Ok(rest)
    }

    /// Decodes the part after the prefix (exactly the `rest_len` bytes).
    pub fn decode_rest(rest: &[u8]) -> Result<Self, HeaderError> {
        let mut r = Reader { buf: rest, pos: 0 };
        let ltime = u64::from_be_bytes(r.take::<8>()?);
        let query_id = u32::from_be_bytes(r.take::<4>()?);
        let [flags] = r.take::<1>()?;
        if flags & !FLAG_TOTAL_LEN != 0 {
            return Err(HeaderError::Flags(flags));
        }
        let total_len = if flags & FLAG_TOTAL_LEN != 0 {
            Some(u64::from_be_bytes(r.take::<8>()?))
        } else {
            None
        };
        let name_len = u16::from_be_bytes(r.take::<2>()?) as usize;
        if name_len > MAX_NAME_LEN {
            return Err(HeaderError::NameTooLong(name_len));
        }
        let name = r.slice(name_len)?;
        if r.pos != rest.len() {
            return Err(HeaderError::LengthMismatch {
                declared: rest.len(),
                actual: r.pos,
            });
        }
        let from = std::str::from_utf8(name)
            .map_err(|_| HeaderError::NameNotUtf8)?
            .to_owned();
        Ok(Self {
            ltime,
            query_id,
            from,
            total_len,
        })
    }

    /// Decodes a whole header from the front of `buf`, returning it and the bytes it used.
    pub fn decode(buf: &[u8], limit: usize) -> Result<(Self, usize), HeaderError> {
        let rest = Self::decode_prefix(buf, limit)?;
        let end = HEADER_PREFIX_LEN + rest;
        if buf.len() < end {
            return Err(HeaderError::Truncated {
                need: end,
                have: buf.len(),
            });
        }
        Ok((Self::decode_rest(&buf[HEADER_PREFIX_LEN..end])?, end))
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn slice(&mut self, n: usize) -> Result<&'a [u8], HeaderError> {
        let end = self.pos.saturating_add(n);
        if end > self.buf.len() {
            return Err(HeaderError::Truncated {
                need: end + HEADER_PREFIX_LEN,
                have: self.buf.len() + HEADER_PREFIX_LEN,
            });
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], HeaderError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.slice(N)?);
        Ok(out)
    }
}

/// Fuzz entry point (used by `runtime/net/fuzz` and `tests/quic_fuzz_smoke.rs`): decoding
/// arbitrary bytes never panics, and whatever decodes re-encodes to the same bytes.
pub fn fuzz_header(data: &[u8]) {
    if let Ok((header, used)) = ResponseHeader::decode(data, usize::MAX) {
        let again = header
            .encode()
            .expect("a decoded name is within MAX_NAME_LEN");
        assert_eq!(again, data[..used], "decode/encode round trip differs");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> ResponseHeader {
        ResponseHeader {
            ltime: 42,
            query_id: 7,
            from: "node-a".into(),
            total_len: Some(16 << 20),
        }
    }

    #[test]
    fn round_trips_with_and_without_total() {
        for total_len in [None, Some(0), Some(u64::MAX)] {
            let h = ResponseHeader {
                total_len,
                ..sample()
            };
            let bytes = h.encode().unwrap();
            assert_eq!(
                ResponseHeader::decode(&bytes, 4096).unwrap(),
                (h, bytes.len())
            );
        }
    }

    #[test]
    fn rejects_bad_version_size_flags_and_names() {
        let bytes = sample().encode().unwrap();
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert_eq!(
            ResponseHeader::decode(&bad, 4096),
            Err(HeaderError::Version(9))
        );
        assert!(matches!(
            ResponseHeader::decode(&bytes, 10),
            Err(HeaderError::TooLarge { limit: 10, .. })
        ));
        let mut bad = bytes.clone();
        bad[3 + 12] = 0x80;
        assert_eq!(
            ResponseHeader::decode(&bad, 4096),
            Err(HeaderError::Flags(0x80))
        );
        let long = ResponseHeader {
            from: "x".repeat(MAX_NAME_LEN + 1),
            ..sample()
        };
        assert_eq!(
            long.encode(),
            Err(HeaderError::NameTooLong(MAX_NAME_LEN + 1))
        );
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 1] = 0xff;
        assert_eq!(
            ResponseHeader::decode(&bad, 4096),
            Err(HeaderError::NameNotUtf8)
        );
    }

    #[test]
    fn rejects_length_mismatch_and_truncation() {
        let mut bytes = sample().encode().unwrap();
        // Claim one more byte than the fields use, and supply it.
        let rest = u16::from_be_bytes([bytes[1], bytes[2]]) + 1;
        bytes[1..3].copy_from_slice(&rest.to_be_bytes());
        bytes.push(0);
        assert!(matches!(
            ResponseHeader::decode(&bytes, 4096),
            Err(HeaderError::LengthMismatch { .. })
        ));
        let good = sample().encode().unwrap();
        for cut in 0..good.len() {
            assert!(
                matches!(
                    ResponseHeader::decode(&good[..cut], 4096),
                    Err(HeaderError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(ltime: u64, query_id: u32, total_len: Option<u64>, from in "\\PC{0,64}") {
            let h = ResponseHeader { ltime, query_id, from, total_len };
            let bytes = h.encode().unwrap();
            prop_assert_eq!(ResponseHeader::decode(&bytes, usize::MAX).unwrap(), (h, bytes.len()));
        }

        #[test]
        fn prop_decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            fuzz_header(&data);
        }
    }
}
