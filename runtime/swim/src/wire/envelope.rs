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
pub fn encode_compound(parts: &[Vec<u8>]) -> Vec<u8> {
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
pub fn add_label(label: &str, rest: Vec<u8>) -> Vec<u8> {
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

/// Result of looking for a label header at the front of a buffer.
pub enum LabelHeader<'a> {
    /// Not enough bytes yet to tell (streams only).
    Incomplete { needed: usize },
    /// The label (empty when there was no header) and the bytes after the header.
    Found { label: &'a [u8], rest: &'a [u8] },
}

/// memberlist's `RemoveLabelHeaderFromPacket`/`...FromStream`: a header must carry a label
/// of at least one byte.
pub fn split_label(buf: &[u8]) -> Result<LabelHeader<'_>> {
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
pub fn check_label(ours: &str, theirs: &[u8]) -> Result<()> {
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
