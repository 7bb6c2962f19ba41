//! The header a responder writes at the start of every large-response stream, and its codec.
//!
//! Wire layout (all integers big-endian):
//!
//! ```text
//! version u8 (1 or 2) | rest_len u16 | ltime u64 | query_id u32 | flags u8
//!   | [total_len u64, if flags & 1] | name_len u16 | name (UTF-8)
//!   | [relay section, if flags & 2 (version 2 only):
//!        origin_len u16 | origin (UTF-8) | fingerprint [32] | family u8 (4 or 6)
//!        | ip [4 or 16] | port u16 | remaining_ms u32]
//! ```
//!
//! `rest_len` counts the bytes after itself, so a reader learns the header's size from the
//! first three bytes and can refuse an oversized header before reading it. The decoder never
//! panics: every malformed input is a [`HeaderError`].
//!
//! Version 2 adds the relay section (a response sent to a relay node, which forwards it to the
//! originator the section names). The encoder writes the lowest version that can say what the
//! header holds, so a direct response is still a version 1 header that older hearsay nodes
//! accept; a relay header is version 2, which they refuse (their stream fails, nothing else).

use super::{Fingerprint, QuicAdvert};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use thiserror::Error;

/// The newest header version this code speaks (it reads 1 and 2).
pub const HEADER_VERSION: u8 = 2;
/// The version of a header without a relay section.
pub const HEADER_VERSION_DIRECT: u8 = 1;
/// Bytes before the variable part: version and `rest_len`.
pub const HEADER_PREFIX_LEN: usize = 3;
/// The longest node name a header carries (the length field is a u16; a name this long is
/// already far beyond Serf's practical limits).
pub const MAX_NAME_LEN: usize = 1024;

const FLAG_TOTAL_LEN: u8 = 1;
const FLAG_RELAY: u8 = 2;
/// Fixed bytes after the prefix: ltime, query id, flags, name length.
const FIXED_REST: usize = 8 + 4 + 1 + 2;

/// Identifies a large response: which query it answers (the query's Lamport time and id, as
/// in Serf's `messageQueryResponse`), who answers, optionally how long the body will be, and
/// for a relayed response where the relay node must forward it.
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
    /// Set when the stream goes through a relay node (Serf's relay factor): the relay node
    /// forwards the header unchanged and the body to [`Relay::origin_advert`].
    pub relay: Option<Relay>,
}

/// The relay section of a [`ResponseHeader`]: the originator a relay node forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// The originator's node name.
    pub origin: String,
    /// The originator's QUIC endpoint as the responder knows it from gossip. A relay node
    /// checks it against its own view of the originator's `_hearsay_quic` tag before dialling.
    pub origin_advert: QuicAdvert,
    /// Milliseconds left until the query's deadline when the responder opened the stream
    /// (relative, so the nodes' clocks need not agree): the relay gives up after that.
    pub remaining_ms: u32,
}

/// Why a header could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The input ended before the header did.
    #[error("header truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the header needs, counted from its start.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The first byte is not a version this code speaks.
    #[error(
        "unsupported response header version {0} (this node reads versions 1 to {HEADER_VERSION})"
    )]
    Version(u8),
    /// The declared header length is over the receiver's limit.
    #[error("response header of {len} bytes exceeds the header limit of {limit} bytes")]
    TooLarge {
        /// The header's declared size in bytes, prefix included.
        len: usize,
        /// The receiver's limit in bytes.
        limit: usize,
    },
    /// A flag bit the header's version does not define is set.
    #[error("unknown response header flags {flags:#04x} for version {version}")]
    Flags {
        /// The header's version.
        version: u8,
        /// The flags byte as received.
        flags: u8,
    },
    /// The declared lengths do not add up to the header length.
    #[error("response header length {declared} does not match its fields ({actual} bytes)")]
    LengthMismatch {
        /// The length the prefix declared for the rest of the header.
        declared: usize,
        /// The length its fields took.
        actual: usize,
    },
    /// A node name is longer than [`MAX_NAME_LEN`].
    #[error("node name of {0} bytes exceeds {MAX_NAME_LEN} bytes")]
    NameTooLong(usize),
    /// A node name is not UTF-8.
    #[error("node name is not valid UTF-8")]
    NameNotUtf8,
    /// The relay section's address family is neither 4 nor 6.
    #[error("relay section: unknown address family {0} (expected 4 or 6)")]
    AddressFamily(u8),
}

fn check_name(name: &str) -> Result<&[u8], HeaderError> {
    let bytes = name.as_bytes();
    if bytes.len() > MAX_NAME_LEN {
        return Err(HeaderError::NameTooLong(bytes.len()));
    }
    Ok(bytes)
}

impl Relay {
    fn encoded_len(&self) -> usize {
        let ip = match self.origin_advert.addr {
            SocketAddr::V4(_) => 4,
            SocketAddr::V6(_) => 16,
        };
        2 + self.origin.len() + 32 + 1 + ip + 2 + 4
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), HeaderError> {
        let origin = check_name(&self.origin)?;
        out.extend_from_slice(&(origin.len() as u16).to_be_bytes());
        out.extend_from_slice(origin);
        out.extend_from_slice(&self.origin_advert.fingerprint.0);
        match self.origin_advert.addr.ip() {
            IpAddr::V4(ip) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(6);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&self.origin_advert.addr.port().to_be_bytes());
        out.extend_from_slice(&self.remaining_ms.to_be_bytes());
        Ok(())
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, HeaderError> {
        let origin = r.name()?;
        let fingerprint = Fingerprint(r.take::<32>()?);
        let ip = match r.take::<1>()? {
            [4] => IpAddr::V4(Ipv4Addr::from(r.take::<4>()?)),
            [6] => IpAddr::V6(Ipv6Addr::from(r.take::<16>()?)),
            [other] => return Err(HeaderError::AddressFamily(other)),
        };
        let port = u16::from_be_bytes(r.take::<2>()?);
        let remaining_ms = u32::from_be_bytes(r.take::<4>()?);
        Ok(Self {
            origin,
            origin_advert: QuicAdvert {
                addr: SocketAddr::new(ip, port),
                fingerprint,
            },
            remaining_ms,
        })
    }
}

impl ResponseHeader {
    /// The version [`ResponseHeader::encode`] writes: 2 with a relay section, else 1.
    pub fn version(&self) -> u8 {
        if self.relay.is_some() {
            HEADER_VERSION
        } else {
            HEADER_VERSION_DIRECT
        }
    }

    /// Encodes the header; fails only when a name is longer than [`MAX_NAME_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, HeaderError> {
        let name = check_name(&self.from)?;
        let rest = FIXED_REST
            + name.len()
            + if self.total_len.is_some() { 8 } else { 0 }
            + self.relay.as_ref().map_or(0, Relay::encoded_len);
        let mut out = Vec::with_capacity(HEADER_PREFIX_LEN + rest);
        out.push(self.version());
        // rest <= FIXED_REST + 8 + 2 * MAX_NAME_LEN + 57, far below u16::MAX.
        out.extend_from_slice(&(rest as u16).to_be_bytes());
        out.extend_from_slice(&self.ltime.to_be_bytes());
        out.extend_from_slice(&self.query_id.to_be_bytes());
        let mut flags = 0;
        if self.total_len.is_some() {
            flags |= FLAG_TOTAL_LEN;
        }
        if self.relay.is_some() {
            flags |= FLAG_RELAY;
        }
        out.push(flags);
        if let Some(total) = self.total_len {
            out.extend_from_slice(&total.to_be_bytes());
        }
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name);
        if let Some(relay) = &self.relay {
            relay.encode_into(&mut out)?;
        }
        debug_assert_eq!(out.len(), HEADER_PREFIX_LEN + rest);
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
        if !(HEADER_VERSION_DIRECT..=HEADER_VERSION).contains(&prefix[0]) {
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

    /// Decodes the part after the prefix (exactly the `rest_len` bytes) of a header of
    /// `version` (from the prefix).
    pub fn decode_rest(version: u8, rest: &[u8]) -> Result<Self, HeaderError> {
        let known = match version {
            HEADER_VERSION_DIRECT => FLAG_TOTAL_LEN,
            HEADER_VERSION => FLAG_TOTAL_LEN | FLAG_RELAY,
            other => return Err(HeaderError::Version(other)),
        };
        let mut r = Reader { buf: rest, pos: 0 };
        let ltime = u64::from_be_bytes(r.take::<8>()?);
        let query_id = u32::from_be_bytes(r.take::<4>()?);
        let [flags] = r.take::<1>()?;
        if flags & !known != 0 {
            return Err(HeaderError::Flags { version, flags });
        }
        let total_len = if flags & FLAG_TOTAL_LEN != 0 {
            Some(u64::from_be_bytes(r.take::<8>()?))
        } else {
            None
        };
        let from = r.name()?;
        let relay = if flags & FLAG_RELAY != 0 {
            Some(Relay::decode_from(&mut r)?)
        } else {
            None
        };
        if r.pos != rest.len() {
            return Err(HeaderError::LengthMismatch {
                declared: rest.len(),
                actual: r.pos,
            });
        }
        Ok(Self {
            ltime,
            query_id,
            from,
            total_len,
            relay,
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
        Ok((
            Self::decode_rest(buf[0], &buf[HEADER_PREFIX_LEN..end])?,
            end,
        ))
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

    /// A u16-length-prefixed UTF-8 node name.
    fn name(&mut self) -> Result<String, HeaderError> {
        let len = u16::from_be_bytes(self.take::<2>()?) as usize;
        if len > MAX_NAME_LEN {
            return Err(HeaderError::NameTooLong(len));
        }
        let bytes = self.slice(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| HeaderError::NameNotUtf8)
    }
}

/// Fuzz entry point (used by `runtime/net/fuzz` and the `fuzz_smoke` unit test): decoding
/// arbitrary bytes (both versions, with and without the relay section) never panics, and
/// whatever decodes re-encodes to the same bytes, or, for a version 2 header without a relay
/// section (which the encoder writes as version 1), to a header that decodes the same. Only
/// built with the `fuzzing` feature and in unit tests.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_header(data: &[u8]) {
    if let Ok((header, used)) = ResponseHeader::decode(data, usize::MAX) {
        let again = header
            .encode()
            .expect("decoded names are within MAX_NAME_LEN");
        if again[0] == data[0] {
            assert_eq!(again, data[..used], "decode/encode round trip differs");
        } else {
            let (same, n) =
                ResponseHeader::decode(&again, usize::MAX).expect("an encoded header decodes");
            assert_eq!(
                (same, n),
                (header, again.len()),
                "re-encoded header differs"
            );
        }
    }
}

#[cfg(test)]
mod fuzz_smoke;

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
            relay: None,
        }
    }

    fn relay(addr: &str) -> Relay {
        Relay {
            origin: "origin-1".into(),
            origin_advert: QuicAdvert {
                addr: addr.parse().unwrap(),
                fingerprint: Fingerprint::of(addr.as_bytes()),
            },
            remaining_ms: 12_345,
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
            assert_eq!(bytes[0], HEADER_VERSION_DIRECT, "no relay: version 1");
            assert_eq!(
                ResponseHeader::decode(&bytes, 4096).unwrap(),
                (h, bytes.len())
            );
        }
    }

    #[test]
    fn relay_headers_are_version_2_and_round_trip_v4_and_v6() {
        for addr in ["10.0.0.5:7947", "[fe80::1234:5678:9abc:def0]:65535"] {
            for total_len in [None, Some(4 << 20)] {
                let h = ResponseHeader {
                    total_len,
                    relay: Some(relay(addr)),
                    ..sample()
                };
                let bytes = h.encode().unwrap();
                assert_eq!(bytes[0], 2);
                assert_eq!(bytes[3 + 12] & FLAG_RELAY, FLAG_RELAY);
                assert_eq!(
                    ResponseHeader::decode(&bytes, 4096).unwrap(),
                    (h, bytes.len())
                );
            }
        }
    }

    #[test]
    fn the_relay_section_is_refused_in_version_1_and_checked_in_version_2() {
        let h = ResponseHeader {
            relay: Some(relay("127.0.0.1:9")),
            ..sample()
        };
        let bytes = h.encode().unwrap();
        // The same bytes labelled version 1: the relay flag is unknown there.
        let mut v1 = bytes.clone();
        v1[0] = 1;
        assert_eq!(
            ResponseHeader::decode(&v1, 4096),
            Err(HeaderError::Flags {
                version: 1,
                flags: FLAG_TOTAL_LEN | FLAG_RELAY
            })
        );
        // Unknown flag bits are refused in version 2 too.
        let mut bad = bytes.clone();
        bad[3 + 12] |= 0x40;
        assert!(matches!(
            ResponseHeader::decode(&bad, 4096),
            Err(HeaderError::Flags { version: 2, .. })
        ));
        // The address family byte sits 4 (ip) + 2 (port) + 4 (remaining) + 1 before the end.
        let mut bad = bytes.clone();
        let fam = bad.len() - 11;
        assert_eq!(bad[fam], 4);
        bad[fam] = 5;
        assert_eq!(
            ResponseHeader::decode(&bad, 4096),
            Err(HeaderError::AddressFamily(5))
        );
        // A long origin name is refused by the encoder; a bad one by the decoder.
        let long = ResponseHeader {
            relay: Some(Relay {
                origin: "o".repeat(MAX_NAME_LEN + 1),
                ..relay("127.0.0.1:9")
            }),
            ..sample()
        };
        assert_eq!(
            long.encode(),
            Err(HeaderError::NameTooLong(MAX_NAME_LEN + 1))
        );
        let mut bad = bytes.clone();
        let origin_start = HEADER_PREFIX_LEN + FIXED_REST + 8 + "node-a".len() + 2;
        bad[origin_start] = 0xff;
        assert_eq!(
            ResponseHeader::decode(&bad, 4096),
            Err(HeaderError::NameNotUtf8)
        );
        for cut in 0..bytes.len() {
            assert!(
                matches!(
                    ResponseHeader::decode(&bytes[..cut], 4096),
                    Err(HeaderError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_version_2_header_without_relay_decodes_and_fuzz_accepts_it() {
        let mut bytes = sample().encode().unwrap();
        bytes[0] = 2;
        assert_eq!(
            ResponseHeader::decode(&bytes, 4096).unwrap(),
            (sample(), bytes.len())
        );
        fuzz_header(&bytes);
    }

    #[test]
    fn rejects_bad_version_size_flags_and_names() {
        let bytes = sample().encode().unwrap();
        for v in [0, 3, 9] {
            let mut bad = bytes.clone();
            bad[0] = v;
            assert_eq!(
                ResponseHeader::decode(&bad, 4096),
                Err(HeaderError::Version(v))
            );
        }
        assert!(matches!(
            ResponseHeader::decode(&bytes, 10),
            Err(HeaderError::TooLarge { limit: 10, .. })
        ));
        let mut bad = bytes.clone();
        bad[3 + 12] = 0x80;
        assert_eq!(
            ResponseHeader::decode(&bad, 4096),
            Err(HeaderError::Flags {
                version: 1,
                flags: 0x80
            })
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

    fn any_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
        ]
    }

    fn any_relay() -> impl Strategy<Value = Option<Relay>> {
        proptest::option::of(
            ("\\PC{0,64}", any::<[u8; 32]>(), any_addr(), any::<u32>()).prop_map(
                |(origin, fp, addr, remaining_ms)| Relay {
                    origin,
                    origin_advert: QuicAdvert {
                        addr,
                        fingerprint: Fingerprint(fp),
                    },
                    remaining_ms,
                },
            ),
        )
    }

    proptest! {
        #[test]
        fn prop_round_trip(
            ltime: u64,
            query_id: u32,
            total_len: Option<u64>,
            from in "\\PC{0,64}",
            relay in any_relay(),
        ) {
            let h = ResponseHeader { ltime, query_id, from, total_len, relay };
            let bytes = h.encode().unwrap();
            prop_assert_eq!(ResponseHeader::decode(&bytes, usize::MAX).unwrap(), (h, bytes.len()));
            fuzz_header(&bytes);
        }

        #[test]
        fn prop_decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..160)) {
            fuzz_header(&data);
        }

        #[test]
        fn prop_mutated_relay_headers_never_panic(
            relay in any_relay(),
            at in any::<prop::sample::Index>(),
            byte: u8,
        ) {
            let h = ResponseHeader { relay, ..sample() };
            let mut bytes = h.encode().unwrap();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            fuzz_header(&bytes);
        }
    }
}
