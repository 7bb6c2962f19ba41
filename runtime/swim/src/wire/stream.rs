//! TCP stream messages: encoding with memberlist's envelopes and incremental decoding from a
//! growing buffer.
//!
//! A stream message is `[label header]` (only from the side that dialed: upstream memberlist
//! writes it once per connection in its transport, and replies on the same connection carry
//! none) followed by either `[10][u32 BE length][encrypted frame]`, whose GCM additional data
//! is those 5 header bytes followed by the label, or the plaintext. The plaintext may be
//! `[9][compress{Algo, Buf}]` around the real message, which is one of `[0][ping]`,
//! `[2][ackResp]`, `[6][pushPullHeader][pushNodeState...][user state]`,
//! `[8][userMsgHeader][bytes]` or `[13][errResp]` (memberlist's `readStream`,
//! `readRemoteState`, `readUserMsg`).

use super::codec::{
    read_ack, read_compress, read_err, read_ping, read_push_node_state, read_push_pull_header,
    read_user_msg_header, write_ack, write_err, write_ping, write_push_node_state,
    write_push_pull_header, write_user_msg_header, PushPullHeader,
};
use super::envelope::{add_label, check_label, encode_compressed, split_label, LabelHeader};
use super::lzw;
use super::msgpack::{Reader, Writer};
use super::types::{MessageType, PushPull, StreamMessage};
use super::{Codec, MAX_DECOMPRESSED_BYTES, MAX_STREAM_BYTES};
use crate::error::{Error, Result};
use crate::keyring::encrypted_length;
use rand::RngCore;

/// Bytes of the encrypted stream header: `[10][u32 BE length]`.
const ENCRYPT_HEADER: usize = 5;

/// The most plaintext bytes one unencrypted stream message may take (after any label). Go
/// bounds a plaintext push/pull only by its parts (1 Mi nodes, 20 MiB user state); we bound
/// the whole by the same budget upstream uses for a decompressed push/pull.
pub const MAX_PLAINTEXT_STREAM_BYTES: usize = MAX_DECOMPRESSED_BYTES;

/// Encodes the plaintext form of a stream message (type byte included, no envelopes).
pub fn encode_stream_message(msg: &StreamMessage) -> Vec<u8> {
    let mut w = Writer::default();
    match msg {
        StreamMessage::Ping(p) => {
            w.buf.push(MessageType::Ping as u8);
            write_ping(&mut w, p);
        }
        StreamMessage::Ack(a) => {
            w.buf.push(MessageType::AckResp as u8);
            write_ack(&mut w, a);
        }
        StreamMessage::Err(e) => {
            w.buf.push(MessageType::Err as u8);
            write_err(&mut w, e);
        }
        StreamMessage::User(b) => {
            w.buf.push(MessageType::User as u8);
            write_user_msg_header(&mut w, b.len());
            w.buf.extend_from_slice(b);
        }
        StreamMessage::PushPull(pp) => {
            w.buf.push(MessageType::PushPull as u8);
            write_push_pull_header(
                &mut w,
                &PushPullHeader {
                    nodes: pp.nodes.len(),
                    user_state_len: pp.user_state.len(),
                    join: pp.join,
                },
            );
            for n in &pp.nodes {
                write_push_node_state(&mut w, n);
            }
            w.buf.extend_from_slice(&pp.user_state);
        }
    }
    w.into_inner()
}

/// Either a whole message and the bytes it used, or how many more bytes are needed at least.
enum Parsed<T> {
    Done(T, usize),
    NeedMore { what: &'static str, needed: usize },
}

impl<T> Parsed<T> {
    /// For a buffer that is already complete (decrypted or decompressed), "need more" means
    /// the sender cut it short.
    fn complete(self) -> Result<T> {
        match self {
            Parsed::Done(v, _) => Ok(v),
            Parsed::NeedMore { what, needed } => Err(Error::Truncated { what, needed }),
        }
    }
}

impl Codec {
    pub(crate) fn seal_stream_impl(
        &self,
        msg: &StreamMessage,
        with_label_header: bool,
        rng: &mut dyn RngCore,
    ) -> Vec<u8> {
        let mut body = encode_stream_message(msg);
        // memberlist's rawSendMsgStream compresses whenever compression is on, even if it
        // does not pay off.
        if self.config.compression {
            body = encode_compressed(&body);
        }
        if let Some(k) = self.sealing_keyring() {
            let vsn = self.config.encryption_version;
            let len = encrypted_length(vsn, body.len());
            let mut out = Vec::with_capacity(ENCRYPT_HEADER + len);
            out.push(MessageType::Encrypt as u8);
            out.extend_from_slice(&(len as u32).to_be_bytes());
            let mut aad = out.clone();
            aad.extend_from_slice(self.config.label.as_bytes());
            k.encrypt_into(vsn, &body, &aad, rng, &mut out);
            body = out;
        }
        if with_label_header {
            add_label(&self.config.label, body)
        } else {
            body
        }
    }

    pub(crate) fn open_stream_impl(
        &self,
        buf: &[u8],
        with_label_header: bool,
    ) -> Result<Option<(StreamMessage, usize)>> {
        let (label, rest) = if with_label_header {
            match split_label(buf)? {
                LabelHeader::Incomplete { .. } => return Ok(None),
                LabelHeader::Found { label, rest } => {
                    check_label(&self.config.label, label)?;
                    (label, rest)
                }
            }
        } else {
            // Replies carry no header but still authenticate the connection's label.
            (self.config.label.as_bytes(), buf)
        };
        let offset = buf.len() - rest.len();
        let Some(&ty) = rest.first() else {
            return Ok(None);
        };
        if ty == MessageType::Encrypt as u8 {
            let Some(keyring) = &self.keyring else {
                // memberlist: "remote state is encrypted and encryption is not configured".
                return Err(Error::DecryptFailed { keys: 0 });
            };
            if rest.len() < ENCRYPT_HEADER {
                return Ok(None);
            }
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            if len > MAX_STREAM_BYTES {
                return Err(Error::TooLarge {
                    what: "encrypted stream message",
                    len,
                    limit: MAX_STREAM_BYTES,
                });
            }
            let end = ENCRYPT_HEADER + len;
            if rest.len() < end {
                return Ok(None);
            }
            let mut aad = rest[..ENCRYPT_HEADER].to_vec();
            aad.extend_from_slice(label);
            let plain = keyring.decrypt(&rest[ENCRYPT_HEADER..end], &aad)?;
            let msg = parse_plaintext(&plain, true)?.complete()?;
            return Ok(Some((msg, offset + end)));
        }
        if self.keyring.is_some() && self.config.verify_incoming {
            return Err(Error::NotEncrypted);
        }
        match parse_plaintext(rest, true)? {
            Parsed::Done(msg, used) => Ok(Some((msg, offset + used))),
            Parsed::NeedMore { what, needed } => {
                let len = rest.len().saturating_add(needed);
                if len > MAX_PLAINTEXT_STREAM_BYTES {
                    return Err(Error::TooLarge {
                        what,
                        len,
                        limit: MAX_PLAINTEXT_STREAM_BYTES,
                    });
                }
                Ok(None)
            }
        }
    }
}

/// Parses a plaintext stream message, unwrapping one compression envelope when allowed
/// (memberlist's `readStream` decompresses once; the result is the final message).
fn parse_plaintext(buf: &[u8], allow_compress: bool) -> Result<Parsed<StreamMessage>> {
    let Some((&ty, body)) = buf.split_first() else {
        return Ok(Parsed::NeedMore {
            what: "stream message type byte",
            needed: 1,
        });
    };
    if ty == MessageType::Compress as u8 && allow_compress {
        let mut r = Reader::new(body);
        let packed = match read_compress(&mut r) {
            Err(Error::Truncated { what, needed }) => return Ok(Parsed::NeedMore { what, needed }),
            other => other?,
        };
        let inner = lzw::decompress(&packed, MAX_DECOMPRESSED_BYTES)?;
        let msg = parse_plaintext(&inner, false)?.complete()?;
        return Ok(Parsed::Done(msg, 1 + r.position()));
    }
    // Every truncation below is of `buf` itself, so it means "need more" here.
    match parse_body(ty, body) {
        Ok((msg, used)) => Ok(Parsed::Done(msg, 1 + used)),
        Err(Error::Truncated { what, needed }) => Ok(Parsed::NeedMore { what, needed }),
        Err(e) => Err(e),
    }
}

/// Decodes the body after the type byte; returns the message and the body bytes used.
fn parse_body(ty: u8, body: &[u8]) -> Result<(StreamMessage, usize)> {
    let mut r = Reader::new(body);
    let msg = match MessageType::from_u8(ty) {
        Some(MessageType::Ping) => StreamMessage::Ping(read_ping(&mut r)?),
        Some(MessageType::AckResp) => StreamMessage::Ack(read_ack(&mut r)?),
        Some(MessageType::Err) => StreamMessage::Err(read_err(&mut r)?),
        Some(MessageType::User) => {
            let len = read_user_msg_header(&mut r)?;
            StreamMessage::User(take(&mut r, len, "stream user message")?)
        }
        Some(MessageType::PushPull) => {
            let h = read_push_pull_header(&mut r)?;
            // Grow as states arrive: `h.nodes` is only a claim until the bytes are here.
            let mut nodes = Vec::new();
            for _ in 0..h.nodes {
                nodes.push(read_push_node_state(&mut r)?);
            }
            let user_state = take(&mut r, h.user_state_len, "push/pull user state")?;
            StreamMessage::PushPull(PushPull {
                join: h.join,
                nodes,
                user_state,
            })
        }
        _ => return Err(Error::UnknownMessageType(ty)),
    };
    Ok((msg, r.position()))
}

/// Raw bytes after a header that announced their length.
fn take(r: &mut Reader<'_>, len: usize, what: &'static str) -> Result<Vec<u8>> {
    let rest = r.rest();
    if rest.len() < len {
        return Err(Error::Truncated {
            what,
            needed: len - rest.len(),
        });
    }
    let out = rest[..len].to_vec();
    r.advance(len);
    Ok(out)
}
