//! The envelopes around UDP messages: cluster label, encryption, CRC32, compound and LZW
//! compression, sealed and opened in memberlist's order.
//!
//! Outermost first a packet is `[label header][encrypted frame | plaintext]`, and the plaintext
//! is `[12][crc32 BE][message]` or just `[message]`, where a message may itself be a compound
//! (`[7][count][u16 BE lengths][parts]`) or a compressed message (`[9][compress{Algo, Buf}]`).
//! Opening follows upstream memberlist's `ingestPacket`/`handleCommand`; sealing follows
//! `rawSendMsgPacket` plus the transport's `AddLabelHeaderToPacket`.

use super::codec::{decode_message, read_compress, write_compress};
use super::lzw;
use super::msgpack::{Reader, Writer};
use super::types::MessageType;
use super::{Codec, Opened, MAX_DECOMPRESSED_BYTES};
use crate::error::{Error, Result};
use crate::keyring::Keyring;
use rand::RngCore;

/// How many compound/compress envelopes may nest. memberlist itself sends at most
/// compress-around-compound (2); Go recurses without a limit.
pub const MAX_ENVELOPE_DEPTH: usize = 4;
/// memberlist's `LabelMaxSize`.
pub const LABEL_MAX_SIZE: usize = 255;
/// The most parts one compound message can announce (its count is one byte).
pub const MAX_COMPOUND_PARTS: usize = 255;

/// Packs encoded messages into one `compoundMsg`.
///
/// # Panics
/// With more than 255 parts or a part of 64 KiB or more: the format cannot express them.
/// [`encode_compounds`] splits any number of parts the way memberlist does.
pub(crate) fn encode_compound(parts: &[Vec<u8>]) -> Vec<u8> {
    assert!(
        parts.len() <= MAX_COMPOUND_PARTS,
        "compound of {} parts exceeds 255",
        parts.len()
    );
    let total: usize = parts.iter().map(|p| 2 + p.len()).sum();
    let mut out = Vec::with_capacity(2 + total);
    out.push(MessageType::Compound as u8);
    out.push(parts.len() as u8);
    for p in parts {
        let len = u16::try_from(p.len()).expect("compound part of 64 KiB or more");
        out.extend_from_slice(&len.to_be_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// memberlist's `makeCompoundMessages`: as many compounds of at most 255 parts as needed.
pub fn encode_compounds(parts: &[Vec<u8>]) -> Vec<Vec<u8>> {
    parts
        .chunks(MAX_COMPOUND_PARTS)
        .map(encode_compound)
        .collect()
}

/// What [`decode_compound`] found: whole parts, and how many announced parts were cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompoundParts<'a> {
    /// The parts that were whole, in order.
    pub parts: Vec<&'a [u8]>,
    /// Announced parts that did not fit in the buffer.
    pub truncated: usize,
    /// Bytes missing for those parts.
    pub missing_bytes: usize,
}

/// memberlist's `decodeCompoundMessage` on the body after the `7` type byte: a missing count
/// or length table is an error; a cut-off tail only counts the parts lost.
pub fn decode_compound(body: &[u8]) -> Result<CompoundParts<'_>> {
    let (&count, rest) = body.split_first().ok_or(Error::Truncated {
        what: "compound part count",
        needed: 1,
    })?;
    let count = usize::from(count);
    if rest.len() < 2 * count {
        return Err(Error::Truncated {
            what: "compound length table",
            needed: 2 * count - rest.len(),
        });
    }
    let (table, mut data) = rest.split_at(2 * count);
    let mut parts = Vec::with_capacity(count);
    for (i, len) in table.chunks_exact(2).enumerate() {
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if data.len() < len {
            let announced: usize = table[2 * i..]
                .chunks_exact(2)
                .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
                .sum();
            return Ok(CompoundParts {
                parts,
                truncated: count - i,
                missing_bytes: announced - data.len(),
            });
        }
        let (part, tail) = data.split_at(len);
        parts.push(part);
        data = tail;
    }
    Ok(CompoundParts {
        parts,
        truncated: 0,
        missing_bytes: 0,
    })
}

/// Wraps `msg` in a `compressMsg` envelope (always; the caller decides whether it paid off).
pub fn encode_compressed(msg: &[u8]) -> Vec<u8> {
    let packed = lzw::compress(msg);
    let mut w = Writer::new(Vec::with_capacity(packed.len() + 16));
    w.buf.push(MessageType::Compress as u8);
    write_compress(&mut w, &packed);
    w.into_inner()
}

/// Opens the body of a `compressMsg` (after the `9` type byte): the inner message bytes.
pub fn decode_compressed(body: &[u8]) -> Result<Vec<u8>> {
    let buf = read_compress(&mut Reader::new(body))?;
    lzw::decompress(&buf, MAX_DECOMPRESSED_BYTES)
}

/// Prefixes `[244][len][label]` when the label is not empty.
///
/// # Panics
/// If the label is longer than 255 bytes; [`Codec::try_new`] refuses such a configuration.
pub(crate) fn add_label(label: &str, rest: Vec<u8>) -> Vec<u8> {
    if label.is_empty() {
        return rest;
    }
    assert!(label.len() <= LABEL_MAX_SIZE, "label longer than 255 bytes");
    let mut out = Vec::with_capacity(2 + label.len() + rest.len());
    out.push(MessageType::HasLabel as u8);
    out.push(label.len() as u8);
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(&rest);
    out
}

/// Bytes the label header adds to every packet (memberlist's `labelOverhead`), for budgeting
/// piggybacked gossip.
pub fn label_overhead(label: &str) -> usize {
    if label.is_empty() {
        0
    } else {
        2 + label.len()
    }
}

/// Result of looking for a label header at the front of a buffer.
pub(crate) enum LabelHeader<'a> {
    /// Not enough bytes yet to tell (streams only).
    Incomplete { needed: usize },
    /// The label (empty when there was no header) and the bytes after the header.
    Found { label: &'a [u8], rest: &'a [u8] },
}

/// memberlist's `RemoveLabelHeaderFromPacket`/`...FromStream`: a header must carry a label
/// of at least one byte.
pub(crate) fn split_label(buf: &[u8]) -> Result<LabelHeader<'_>> {
    match buf {
        [] => Ok(LabelHeader::Found {
            label: &[],
            rest: buf,
        }),
        [t, ..] if *t != MessageType::HasLabel as u8 => Ok(LabelHeader::Found {
            label: &[],
            rest: buf,
        }),
        [_] => Ok(LabelHeader::Incomplete { needed: 1 }),
        [_, 0, ..] => Err(Error::EmptyLabel),
        [_, n, rest @ ..] => {
            let n = usize::from(*n);
            if rest.len() < n {
                return Ok(LabelHeader::Incomplete {
                    needed: n - rest.len(),
                });
            }
            Ok(LabelHeader::Found {
                label: &rest[..n],
                rest: &rest[n..],
            })
        }
    }
}

/// The label check of upstream `ingestPacket`/`handleConn`: whatever the peer sent (nothing
/// counts as "") must equal ours exactly, so labelled and unlabelled nodes never mix.
pub(crate) fn check_label(ours: &str, theirs: &[u8]) -> Result<()> {
    if ours.as_bytes() == theirs {
        Ok(())
    } else {
        Err(Error::LabelMismatch {
            ours: ours.to_owned(),
            theirs: String::from_utf8_lossy(theirs).into_owned(),
        })
    }
}

impl Codec {
    /// The keyring when it should encrypt outgoing data.
    pub(crate) fn sealing_keyring(&self) -> Option<&Keyring> {
        self.keyring
            .as_ref()
            .filter(|_| self.config.verify_outgoing)
    }

    pub(crate) fn seal_packet_impl(&self, msg: &[u8], crc: bool, rng: &mut dyn RngCore) -> Vec<u8> {
        let mut body = None;
        if self.config.compression {
            let c = encode_compressed(msg);
            if c.len() < msg.len() {
                body = Some(c);
            }
        }
        let body = body.unwrap_or_else(|| msg.to_vec());
        let body = if crc {
            let mut out = Vec::with_capacity(5 + body.len());
            out.push(MessageType::HasCrc as u8);
            out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
            out.extend_from_slice(&body);
            out
        } else {
            body
        };
        let body = match self.sealing_keyring() {
            // Packets authenticate the label (empty when none) as GCM additional data.
            Some(k) => k.encrypt(
                self.config.encryption_version,
                &body,
                self.config.label.as_bytes(),
                rng,
            ),
            None => body,
        };
        add_label(&self.config.label, body)
    }

    pub(crate) fn open_packet_impl(&self, buf: &[u8]) -> Result<Opened> {
        let (label, rest) = match split_label(buf)? {
            LabelHeader::Found { label, rest } => (label, rest),
            LabelHeader::Incomplete { needed } => {
                return Err(Error::Truncated {
                    what: "label header",
                    needed,
                })
            }
        };
        check_label(&self.config.label, label)?;
        let plain;
        let mut buf = rest;
        if let Some(k) = &self.keyring {
            match k.decrypt(buf, label) {
                Ok(p) => {
                    plain = p;
                    buf = &plain;
                }
                // memberlist treats undecryptable input as plaintext when it may accept it.
                Err(_) if !self.config.verify_incoming => {}
                Err(e) => return Err(e),
            }
        }
        if buf.len() >= 5 && buf[0] == MessageType::HasCrc as u8 {
            let expected = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
            let actual = crc32fast::hash(&buf[5..]);
            if expected != actual {
                return Err(Error::CrcMismatch { expected, actual });
            }
            buf = &buf[5..];
        }
        let mut opened = Opened::default();
        open_command(buf, 0, &mut opened)?;
        Ok(opened)
    }
}

/// memberlist's `handleCommand` on one (possibly enveloped) message. Errors inside a compound
/// part go to `opened.errors`; errors of the message itself are returned.
fn open_command(buf: &[u8], depth: usize, opened: &mut Opened) -> Result<()> {
    let Some((&ty, body)) = buf.split_first() else {
        return Err(Error::Truncated {
            what: "message type byte",
            needed: 1,
        });
    };
    match MessageType::from_u8(ty) {
        Some(MessageType::Compound) => {
            enter(depth)?;
            let c = decode_compound(body)?;
            for part in c.parts {
                if let Err(e) = open_command(part, depth + 1, opened) {
                    opened.errors.push(e);
                }
            }
            if c.truncated > 0 {
                opened.errors.push(Error::Truncated {
                    what: "compound message parts",
                    needed: c.missing_bytes,
                });
            }
            Ok(())
        }
        Some(MessageType::Compress) => {
            enter(depth)?;
            let inner = decode_compressed(body)?;
            open_command(&inner, depth + 1, opened)
        }
        _ => {
            opened.messages.push(decode_message(buf)?);
            Ok(())
        }
    }
}

fn enter(depth: usize) -> Result<()> {
    if depth >= MAX_ENVELOPE_DEPTH {
        return Err(Error::TooDeep(MAX_ENVELOPE_DEPTH));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::arb;
    use super::super::{encode_message, Message, Nack, Ping, WireConfig};
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn plain() -> Codec {
        Codec::new(
            WireConfig {
                compression: false,
                ..WireConfig::default()
            },
            None,
        )
    }

    fn with(label: &str, key: Option<u8>, verify_incoming: bool) -> Codec {
        Codec::new(
            WireConfig {
                label: label.into(),
                verify_incoming,
                ..WireConfig::default()
            },
            key.map(|k| Keyring::new(vec![k; 16], vec![]).unwrap()),
        )
    }

    fn nack(seq_no: u32) -> Message {
        Message::Nack(Nack { seq_no })
    }

    #[test]
    fn golden_compound() {
        let parts = vec![vec![1, 2, 3], vec![], vec![9]];
        assert_eq!(
            encode_compound(&parts),
            [7, 3, 0, 3, 0, 0, 0, 1, 1, 2, 3, 9]
        );
        let c = decode_compound(&[3, 0, 3, 0, 0, 0, 1, 1, 2, 3, 9]).unwrap();
        assert_eq!(c.parts, vec![&[1u8, 2, 3][..], &[], &[9]]);
        assert_eq!(c.truncated, 0);
    }

    #[test]
    fn compound_delivers_whole_parts_and_reports_truncated_tail() {
        let parts: Vec<_> = (1..=3).map(|i| encode_message(&nack(i))).collect();
        let mut buf = encode_compound(&parts);
        buf.truncate(buf.len() - 2);
        let opened = plain().open_packet(&buf).unwrap();
        assert_eq!(opened.messages, vec![nack(1), nack(2)]);
        assert_eq!(
            opened.errors,
            vec![Error::Truncated {
                what: "compound message parts",
                needed: 2
            }]
        );
    }

    #[test]
    fn compound_keeps_going_after_a_bad_part() {
        let parts = vec![
            encode_message(&nack(1)),
            vec![0x06, 0x80],
            vec![],
            encode_message(&nack(2)),
        ];
        let opened = plain().open_packet(&encode_compound(&parts)).unwrap();
        assert_eq!(opened.messages, vec![nack(1), nack(2)]);
        assert_eq!(opened.errors.len(), 2);
        assert_eq!(opened.errors[0], Error::UnknownMessageType(6));
    }

    #[test]
    fn compound_with_short_length_table_is_refused() {
        assert!(matches!(
            plain().open_packet(&[7, 255, 0, 1]),
            Err(Error::Truncated {
                what: "compound length table",
                needed: 508
            })
        ));
        assert!(matches!(
            plain().open_packet(&[7]),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn encode_compounds_splits_at_255() {
        let parts = vec![vec![8u8]; 600];
        let c = encode_compounds(&parts);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0][1], 255);
        assert_eq!(c[2][1], 90);
    }

    #[test]
    fn golden_crc_header() {
        let msg = encode_message(&nack(1));
        let pkt = plain().seal_packet(&msg, true, &mut rng());
        assert_eq!(pkt[0], 12);
        assert_eq!(pkt[1..5], crc32fast::hash(&msg).to_be_bytes());
        assert_eq!(pkt[5..], msg[..]);
        // CRC-32/IEEE of "123456789" is the standard check value.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
        assert_eq!(plain().open_packet(&pkt).unwrap().messages, vec![nack(1)]);
    }

    #[test]
    fn crc_mismatch_is_refused() {
        let mut pkt = plain().seal_packet(&encode_message(&nack(1)), true, &mut rng());
        let last = pkt.len() - 1;
        pkt[last] ^= 1;
        assert!(matches!(
            plain().open_packet(&pkt),
            Err(Error::CrcMismatch { .. })
        ));
        // Shorter than a CRC header: handled as a message of type 12, which is not one.
        assert_eq!(
            plain().open_packet(&[12, 0, 0]).unwrap_err(),
            Error::UnknownMessageType(12)
        );
    }

    #[test]
    fn golden_label_header() {
        let c = with("dc1", None, true);
        let msg = encode_message(&nack(1));
        let pkt = c.seal_packet(&msg, false, &mut rng());
        assert_eq!(pkt[..5], [244, 3, b'd', b'c', b'1']);
        assert_eq!(pkt[5..], msg[..]);
        assert_eq!(c.open_packet(&pkt).unwrap().messages, vec![nack(1)]);
    }

    #[test]
    fn label_rules_follow_upstream() {
        let msg = encode_message(&nack(1));
        let dc1 = with("dc1", None, true);
        let dc2 = with("dc2", None, true);
        let none = with("", None, true);
        let labelled = dc1.seal_packet(&msg, false, &mut rng());
        let bare = none.seal_packet(&msg, false, &mut rng());
        assert_eq!(
            dc2.open_packet(&labelled).unwrap_err(),
            Error::LabelMismatch {
                ours: "dc2".into(),
                theirs: "dc1".into()
            }
        );
        // Labelled and unlabelled nodes refuse each other in both directions.
        assert!(matches!(
            none.open_packet(&labelled),
            Err(Error::LabelMismatch { .. })
        ));
        assert_eq!(
            dc1.open_packet(&bare).unwrap_err(),
            Error::LabelMismatch {
                ours: "dc1".into(),
                theirs: String::new()
            }
        );
        assert_eq!(
            none.open_packet(&[244, 0, 1]).unwrap_err(),
            Error::EmptyLabel
        );
        assert!(matches!(
            dc1.open_packet(&[244, 3, b'd']),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            dc1.open_packet(&[244]),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn label_overhead_matches_header() {
        assert_eq!(label_overhead(""), 0);
        assert_eq!(label_overhead("dc1"), add_label("dc1", vec![]).len());
    }

    #[test]
    fn try_new_refuses_long_label() {
        let config = WireConfig {
            label: "x".repeat(256),
            ..WireConfig::default()
        };
        assert_eq!(
            Codec::try_new(config, None).unwrap_err(),
            Error::LabelTooLong(256)
        );
    }

    #[test]
    fn golden_compress_envelope() {
        // compress{Algo: 0, Buf: lzw("ab")} with its type byte.
        let c = encode_compressed(b"ab");
        let mut want = vec![9, 0x82, 0xa4];
        want.extend_from_slice(b"Algo");
        want.extend_from_slice(&[0x00, 0xa3]);
        want.extend_from_slice(b"Buf");
        want.extend_from_slice(&[0xa4, 0x61, 0xc4, 0x04, 0x04]);
        assert_eq!(c, want);
        assert_eq!(decode_compressed(&c[1..]), Ok(b"ab".to_vec()));
    }

    #[test]
    fn compression_only_when_smaller() {
        let c = with("", None, true);
        let small = encode_message(&nack(1));
        assert_eq!(c.seal_packet(&small, false, &mut rng()), small);
        let big = encode_message(&Message::User(vec![b'z'; 1000]));
        let pkt = c.seal_packet(&big, false, &mut rng());
        assert_eq!(pkt[0], 9);
        assert!(pkt.len() < big.len());
        assert_eq!(
            plain().open_packet(&pkt).unwrap().messages,
            vec![Message::User(vec![b'z'; 1000])]
        );
    }

    #[test]
    fn compressed_compound_opens() {
        let parts: Vec<_> = (0..20).map(|i| encode_message(&nack(i))).collect();
        let pkt = with("", None, true).seal_packet(&encode_compound(&parts), true, &mut rng());
        assert_eq!(pkt[0], 12);
        assert_eq!(pkt[5], 9);
        let opened = plain().open_packet(&pkt).unwrap();
        assert_eq!(opened.messages, (0..20).map(nack).collect::<Vec<_>>());
    }

    #[test]
    fn unknown_compression_algorithm() {
        let mut w = Writer::default();
        w.buf.push(9);
        w.map_len(2);
        w.str("Algo");
        w.uint(1);
        w.str("Buf");
        w.raw(&[1, 1]);
        assert_eq!(
            plain().open_packet(&w.buf).unwrap_err(),
            Error::UnknownCompression(1)
        );
    }

    #[test]
    fn nesting_depth_is_limited() {
        let msg = encode_message(&nack(1));
        let mut compound = msg.clone();
        for _ in 0..MAX_ENVELOPE_DEPTH {
            compound = encode_compound(&[compound]);
        }
        assert_eq!(plain().open_packet(&compound).unwrap().messages, [nack(1)]);
        let deeper = encode_compound(&[compound]);
        let opened = plain().open_packet(&deeper).unwrap();
        assert!(opened.messages.is_empty());
        assert_eq!(opened.errors, [Error::TooDeep(MAX_ENVELOPE_DEPTH)]);

        let mut compressed = msg;
        for _ in 0..=MAX_ENVELOPE_DEPTH {
            compressed = encode_compressed(&compressed);
        }
        assert_eq!(
            plain().open_packet(&compressed).unwrap_err(),
            Error::TooDeep(MAX_ENVELOPE_DEPTH)
        );
    }

    #[test]
    fn stream_only_and_bad_types_are_refused_in_packets() {
        for t in [6u8, 10, 12, 14, 200] {
            assert_eq!(
                plain().open_packet(&[t, 0x80]).unwrap_err(),
                Error::UnknownMessageType(t),
                "type {t}"
            );
        }
        assert!(matches!(
            plain().open_packet(&[]),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn oversized_lengths_are_truncation_not_allocation() {
        // compress{Buf: raw32 of 4 GiB} with nothing behind it.
        let mut w = Writer::default();
        w.buf.push(9);
        w.map_len(2);
        w.str("Algo");
        w.uint(0);
        w.str("Buf");
        w.buf.extend_from_slice(&[0xdb, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            plain().open_packet(&w.buf),
            Err(Error::Truncated { .. })
        ));
        // A ping whose Node claims 4 GiB.
        let pkt = [
            0, 0x81, 0xa4, b'N', b'o', b'd', b'e', 0xdb, 0xff, 0xff, 0xff, 0xff,
        ];
        assert!(matches!(
            plain().open_packet(&pkt),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn encrypted_packets() {
        let c = with("", Some(1), true);
        let msg = encode_message(&nack(5));
        let pkt = c.seal_packet(&msg, true, &mut rng());
        assert_eq!(pkt[0], 1, "encryption version byte");
        assert_eq!(pkt.len(), 1 + 12 + 5 + msg.len() + 16);
        assert_eq!(c.open_packet(&pkt).unwrap().messages, [nack(5)]);
        // Another key cannot open it; plaintext is refused while verifying.
        assert!(matches!(
            with("", Some(2), true).open_packet(&pkt),
            Err(Error::DecryptFailed { .. })
        ));
        assert!(c.open_packet(&msg).is_err());
        // Without verify_incoming, undecryptable bytes are read as plaintext.
        assert_eq!(
            with("", Some(1), false).open_packet(&msg).unwrap().messages,
            [nack(5)]
        );
        // A codec without a keyring sees only ciphertext.
        assert!(plain().open_packet(&pkt).is_err());
    }

    #[test]
    fn encrypted_packet_version_0_pads() {
        let mut c = with("", Some(1), true);
        c.config.encryption_version = 0;
        let msg = encode_message(&nack(5));
        let pkt = c.seal_packet(&msg, false, &mut rng());
        assert_eq!(pkt[0], 0);
        assert_eq!((pkt.len() - 29) % 16, 0);
        assert_eq!(c.open_packet(&pkt).unwrap().messages, [nack(5)]);
    }

    #[test]
    fn label_is_authenticated_when_encrypting() {
        let msg = encode_message(&nack(5));
        let pkt = with("dc1", Some(1), true).seal_packet(&msg, false, &mut rng());
        // Swap the label header: the label check passes but GCM refuses the AAD.
        let mut forged = vec![244, 3, b'd', b'c', b'2'];
        forged.extend_from_slice(&pkt[5..]);
        assert!(matches!(
            with("dc2", Some(1), true).open_packet(&forged),
            Err(Error::DecryptFailed { .. })
        ));
        assert_eq!(
            with("dc1", Some(1), true)
                .open_packet(&pkt)
                .unwrap()
                .messages,
            [nack(5)]
        );
    }

    #[test]
    fn ping_in_a_packet() {
        let p = Message::Ping(Ping {
            seq_no: 1,
            node: "a".into(),
            ..Default::default()
        });
        let pkt = plain().seal_packet(&encode_message(&p), false, &mut rng());
        assert_eq!(plain().open_packet(&pkt).unwrap().messages, [p]);
    }

    fn codec_variant() -> impl Strategy<Value = Codec> {
        (any::<bool>(), any::<bool>(), any::<bool>(), 0u8..2).prop_map(
            |(label, key, compression, vsn)| {
                Codec::new(
                    WireConfig {
                        label: if label {
                            "cluster-a".into()
                        } else {
                            String::new()
                        },
                        compression,
                        verify_incoming: true,
                        verify_outgoing: true,
                        encryption_version: vsn,
                    },
                    key.then(|| Keyring::new(vec![3; 32], vec![vec![4; 16]]).unwrap()),
                )
            },
        )
    }

    proptest! {
        #[test]
        fn message_round_trip(m in arb::message()) {
            prop_assert_eq!(decode_message(&encode_message(&m)), Ok(m));
        }

        #[test]
        fn compound_round_trip(ms in proptest::collection::vec(arb::message(), 0..40)) {
            let parts: Vec<_> = ms.iter().map(encode_message).collect();
            let body = encode_compound(&parts);
            let c = decode_compound(&body[1..]).unwrap();
            prop_assert_eq!(c.truncated, 0);
            prop_assert_eq!(c.parts.len(), ms.len());
            let opened = plain().open_packet(&body).unwrap();
            prop_assert!(opened.errors.is_empty());
            prop_assert_eq!(opened.messages, ms);
        }

        #[test]
        fn compound_truncated_anywhere(
            ms in proptest::collection::vec(arb::message(), 1..10),
            cut in any::<proptest::sample::Index>(),
        ) {
            let parts: Vec<_> = ms.iter().map(encode_message).collect();
            let body = encode_compound(&parts);
            let at = cut.index(body.len());
            // Never panics; whatever is delivered is a prefix of what was sent.
            if let Ok(opened) = plain().open_packet(&body[..at]) {
                prop_assert!(opened.messages.len() <= ms.len());
                let n = opened.messages.len();
                prop_assert_eq!(&opened.messages[..], &ms[..n]);
            }
        }

        #[test]
        fn compressed_round_trip(m in arb::message()) {
            let c = encode_compressed(&encode_message(&m));
            prop_assert_eq!(plain().open_packet(&c).unwrap().messages, vec![m]);
        }

        #[test]
        fn packet_round_trip(
            codec in codec_variant(),
            ms in proptest::collection::vec(arb::message(), 1..8),
            crc in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let parts: Vec<_> = ms.iter().map(encode_message).collect();
            let msg = if parts.len() == 1 { parts[0].clone() } else { encode_compound(&parts) };
            let pkt = codec.seal_packet(&msg, crc, &mut StdRng::seed_from_u64(seed));
            let opened = codec.open_packet(&pkt).unwrap();
            prop_assert!(opened.errors.is_empty());
            prop_assert_eq!(opened.messages, ms);
        }

        #[test]
        fn packet_garbage_never_panics(
            codec in codec_variant(),
            data in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let _ = codec.open_packet(&data);
        }
    }
}
