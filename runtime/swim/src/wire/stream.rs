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
    read_user_msg_header, write_ack, write_err, write_ping, write_push_node_ref,
    write_push_pull_header, write_user_msg_header, PushPullHeader,
};
use super::envelope::{add_label, check_label, encode_compressed, split_label, LabelHeader};
use super::lzw;
use super::msgpack::{Reader, Writer};
use super::types::{MessageType, PushNodeRef, PushPull, StreamMessage};
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
        StreamMessage::PushPull(pp) => write_push_pull(
            &mut w,
            pp.join,
            pp.nodes.iter().map(PushNodeRef::from),
            &pp.user_state,
        ),
    }
    w.into_inner()
}

/// Encodes the plaintext form of a push/pull from borrowed node states: the same bytes as
/// [`encode_stream_message`] of the owned message.
pub fn encode_push_pull(join: bool, nodes: &[PushNodeRef<'_>], user_state: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    // About 70 bytes per node with short names: one allocation instead of doubling.
    w.buf.reserve(16 + nodes.len() * 72 + user_state.len());
    write_push_pull(&mut w, join, nodes.iter().copied(), user_state);
    w.into_inner()
}

/// A push/pull's type byte, header, node states and user state, however the states are held.
fn write_push_pull<'a>(
    w: &mut Writer,
    join: bool,
    nodes: impl ExactSizeIterator<Item = PushNodeRef<'a>>,
    user_state: &[u8],
) {
    w.buf.push(MessageType::PushPull as u8);
    write_push_pull_header(
        w,
        &PushPullHeader {
            nodes: nodes.len(),
            user_state_len: user_state.len(),
            join,
        },
    );
    for n in nodes {
        write_push_node_ref(w, &n);
    }
    w.buf.extend_from_slice(user_state);
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
        self.seal_stream_body(encode_stream_message(msg), with_label_header, rng)
    }

    /// Seals an encoded plaintext stream message (see [`encode_stream_message`]).
    pub(crate) fn seal_stream_body(
        &self,
        mut body: Vec<u8>,
        with_label_header: bool,
        rng: &mut dyn RngCore,
    ) -> Vec<u8> {
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
        if buf.is_empty() {
            // Nothing yet says whether a label header is coming.
            return Ok(None);
        }
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

#[cfg(test)]
mod tests {
    use super::super::arb;
    use super::super::{Ack, Ping, PushNodeState, WireConfig};
    use super::*;
    use crate::keyring::Keyring;
    use crate::wire::{NodeStateKind, MAX_PUSH_STATE_NODES};
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(11)
    }

    fn codec(label: &str, compression: bool, key: Option<u8>) -> Codec {
        Codec::new(
            WireConfig {
                label: label.into(),
                compression,
                ..WireConfig::default()
            },
            key.map(|k| Keyring::new(vec![k; 16], vec![]).unwrap()),
        )
    }

    fn plain() -> Codec {
        codec("", false, None)
    }

    fn node(name: &str) -> PushNodeState {
        PushNodeState {
            name: name.into(),
            addr: vec![10, 0, 0, 1],
            port: 7946,
            meta: vec![],
            incarnation: 1,
            state: NodeStateKind::Alive,
            vsn: vec![1, 5, 2, 2, 5, 4],
        }
    }

    fn push_pull(user_state: Vec<u8>) -> StreamMessage {
        StreamMessage::PushPull(PushPull {
            join: true,
            nodes: vec![node("a"), node("b")],
            user_state,
        })
    }

    /// A push/pull sealed from borrowed node states is byte for byte the owned message's,
    /// with and without compression, label and encryption, from either side.
    #[test]
    fn push_pull_from_refs_matches_owned() {
        let mut nodes = vec![node("alpha"), node("b"), node("c")];
        nodes[1].meta = vec![9; 40];
        nodes[2].state = NodeStateKind::Suspect;
        nodes[2].addr = vec![0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let refs: Vec<PushNodeRef<'_>> = nodes.iter().map(PushNodeRef::from).collect();
        let owned = StreamMessage::PushPull(PushPull {
            join: true,
            nodes: nodes.clone(),
            user_state: vec![1, 2, 3],
        });
        assert_eq!(
            encode_push_pull(true, &refs, &[1, 2, 3]),
            encode_stream_message(&owned)
        );
        for c in [
            plain(),
            codec("lbl", true, None),
            codec("", false, Some(7)),
            codec("lbl", true, Some(7)),
        ] {
            for dialing in [true, false] {
                let want = if dialing {
                    c.seal_stream(&owned, &mut rng())
                } else {
                    c.seal_stream_reply(&owned, &mut rng())
                };
                let got = c.seal_push_pull(true, &refs, &[1, 2, 3], dialing, &mut rng());
                assert_eq!(got, want, "dialing {dialing}");
            }
        }
    }

    #[test]
    fn golden_plain_push_pull() {
        let msg = StreamMessage::PushPull(PushPull {
            join: false,
            nodes: vec![node("a")],
            user_state: vec![0xaa, 0xbb],
        });
        let bytes = plain().seal_stream(&msg, &mut rng());
        let mut want = vec![6, 0x83, 0xa4];
        want.extend_from_slice(b"Join");
        want.extend_from_slice(&[0xc2, 0xa5]);
        want.extend_from_slice(b"Nodes");
        want.extend_from_slice(&[0x01, 0xac]);
        want.extend_from_slice(b"UserStateLen");
        want.push(0x02);
        let mut w = Writer::default();
        write_push_node_ref(&mut w, &PushNodeRef::from(&node("a")));
        want.extend_from_slice(&w.buf);
        want.extend_from_slice(&[0xaa, 0xbb]);
        assert_eq!(bytes, want);
        assert_eq!(plain().open_stream(&bytes), Ok(Some((msg, want.len()))));
    }

    #[test]
    fn golden_plain_user_message() {
        let bytes = plain().seal_stream(&StreamMessage::User(vec![1, 2, 3]), &mut rng());
        let mut want = vec![8, 0x81, 0xaa];
        want.extend_from_slice(b"UserMsgLen");
        want.extend_from_slice(&[0x03, 1, 2, 3]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn compressed_stream_is_always_compressed() {
        let c = codec("", true, None);
        let msg = StreamMessage::Ack(Ack {
            seq_no: 1,
            payload: vec![],
        });
        let bytes = c.seal_stream(&msg, &mut rng());
        assert_eq!(bytes[0], 9);
        assert_eq!(c.open_stream(&bytes), Ok(Some((msg.clone(), bytes.len()))));
        // A plain reader decompresses too: compression needs no agreement.
        assert_eq!(plain().open_stream(&bytes), Ok(Some((msg, bytes.len()))));
    }

    #[test]
    fn encrypted_stream_layout_and_aad() {
        let c = codec("", false, Some(1));
        let msg = push_pull(vec![5; 10]);
        let bytes = c.seal_stream(&msg, &mut rng());
        let plain_len = encode_stream_message(&msg).len();
        assert_eq!(bytes[0], 10);
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        assert_eq!(len, encrypted_length(1, plain_len));
        assert_eq!(bytes.len(), 5 + len);
        // The frame authenticates the 5-byte header (memberlist v0.2.2 with no label).
        let k = Keyring::new(vec![1; 16], vec![]).unwrap();
        let opened = k.decrypt(&bytes[5..], &bytes[..5]).unwrap();
        assert_eq!(opened, encode_stream_message(&msg));
        assert_eq!(c.open_stream(&bytes), Ok(Some((msg, bytes.len()))));
    }

    #[test]
    fn labelled_encrypted_stream_puts_label_in_aad() {
        let c = codec("dc1", true, Some(1));
        let msg = push_pull(vec![]);
        let bytes = c.seal_stream(&msg, &mut rng());
        assert_eq!(bytes[..5], [244, 3, b'd', b'c', b'1']);
        let k = Keyring::new(vec![1; 16], vec![]).unwrap();
        let mut aad = bytes[5..10].to_vec();
        aad.extend_from_slice(b"dc1");
        assert!(k.decrypt(&bytes[10..], &aad).is_ok());
        assert!(k.decrypt(&bytes[10..], &bytes[5..10]).is_err());
        assert_eq!(c.open_stream(&bytes), Ok(Some((msg.clone(), bytes.len()))));

        // A reply has no header but the same AAD.
        let reply = c.seal_stream_reply(&msg, &mut rng());
        assert_eq!(reply[0], 10);
        assert_eq!(
            c.open_stream_reply(&reply),
            Ok(Some((msg.clone(), reply.len())))
        );
        // A node with another label cannot open the reply.
        assert!(matches!(
            codec("dc2", true, Some(1)).open_stream_reply(&reply),
            Err(Error::DecryptFailed { .. })
        ));
        // The accepting side insists on the header.
        assert!(matches!(
            c.open_stream(&reply),
            Err(Error::LabelMismatch { .. })
        ));
    }

    #[test]
    fn stream_label_mismatch() {
        let bytes = codec("dc1", false, None).seal_stream(&push_pull(vec![]), &mut rng());
        assert_eq!(
            codec("dc2", false, None).open_stream(&bytes).unwrap_err(),
            Error::LabelMismatch {
                ours: "dc2".into(),
                theirs: "dc1".into()
            }
        );
        assert!(matches!(
            plain().open_stream(&bytes),
            Err(Error::LabelMismatch { .. })
        ));
        assert_eq!(
            plain().open_stream(&[244, 0]).unwrap_err(),
            Error::EmptyLabel
        );
        assert_eq!(plain().open_stream(&[244]), Ok(None));
        assert_eq!(plain().open_stream(&[244, 3, b'd']), Ok(None));
    }

    #[test]
    fn encryption_policy() {
        let plain_bytes = plain().seal_stream(&push_pull(vec![]), &mut rng());
        assert_eq!(
            codec("", false, Some(1))
                .open_stream(&plain_bytes)
                .unwrap_err(),
            Error::NotEncrypted
        );
        let mut lenient = codec("", false, Some(1));
        lenient.config.verify_incoming = false;
        assert!(lenient.open_stream(&plain_bytes).unwrap().is_some());
        let enc = codec("", false, Some(1)).seal_stream(&push_pull(vec![]), &mut rng());
        assert_eq!(
            plain().open_stream(&enc).unwrap_err(),
            Error::DecryptFailed { keys: 0 }
        );
        assert!(matches!(
            codec("", false, Some(2)).open_stream(&enc),
            Err(Error::DecryptFailed { keys: 1 })
        ));
    }

    #[test]
    fn size_limits() {
        let c = codec("", false, Some(1));
        assert!(matches!(
            c.open_stream(&[10, 0xff, 0xff, 0xff, 0xff]),
            Err(Error::TooLarge { .. })
        ));
        // A user message header claiming 4 GiB.
        let mut w = Writer::default();
        w.buf.push(8);
        write_user_msg_header(&mut w, u32::MAX as usize);
        assert!(matches!(
            plain().open_stream(&w.buf),
            Err(Error::TooLarge { .. })
        ));
        // A node state whose Meta claims 4 GiB: refused before waiting for it.
        let mut w = Writer::default();
        w.buf.push(6);
        write_push_pull_header(
            &mut w,
            &PushPullHeader {
                nodes: 1,
                user_state_len: 0,
                join: false,
            },
        );
        w.map_len(1);
        w.str("Meta");
        w.buf.extend_from_slice(&[0xdb, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            plain().open_stream(&w.buf),
            Err(Error::TooLarge { .. })
        ));
        // A node count over upstream's limit.
        let mut w = Writer::default();
        w.buf.push(6);
        w.map_len(1);
        w.str("Nodes");
        w.uint(MAX_PUSH_STATE_NODES as u64 + 1);
        assert!(matches!(
            plain().open_stream(&w.buf),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn incomplete_inside_complete_buffers_is_an_error() {
        // A compressed push/pull whose inner message is cut short.
        let mut inner = encode_stream_message(&push_pull(vec![1; 50]));
        inner.truncate(inner.len() - 1);
        let bytes = encode_compressed(&inner);
        assert!(matches!(
            plain().open_stream(&bytes),
            Err(Error::Truncated { .. })
        ));
        // The same for an encrypted frame.
        let c = codec("", false, Some(1));
        let k = Keyring::new(vec![1; 16], vec![]).unwrap();
        let len = encrypted_length(1, inner.len()) as u32;
        let mut bytes = vec![10];
        bytes.extend_from_slice(&len.to_be_bytes());
        let aad = bytes.clone();
        k.encrypt_into(1, &inner, &aad, &mut rng(), &mut bytes);
        assert!(matches!(
            c.open_stream(&bytes),
            Err(Error::Truncated { .. })
        ));
        // Empty decompressed content (upstream: "decompressed message is empty").
        assert!(matches!(
            plain().open_stream(&encode_compressed(&[])),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn unexpected_stream_types() {
        for t in [1u8, 3, 4, 5, 7, 11, 12, 99] {
            assert_eq!(
                plain().open_stream(&[t, 0x80]).unwrap_err(),
                Error::UnknownMessageType(t)
            );
        }
        // Compression inside compression is not something readStream unwraps.
        let twice = encode_compressed(&encode_compressed(&[0, 0x80]));
        assert_eq!(
            plain().open_stream(&twice).unwrap_err(),
            Error::UnknownMessageType(9)
        );
        assert_eq!(plain().open_stream(&[]), Ok(None));
    }

    #[test]
    fn trailing_bytes_are_left_for_the_next_message() {
        let a = plain().seal_stream(&push_pull(vec![1, 2]), &mut rng());
        let ping = StreamMessage::Ping(Ping {
            seq_no: 3,
            node: "n".into(),
            ..Default::default()
        });
        let b = plain().seal_stream(&ping, &mut rng());
        let both = [a.clone(), b.clone()].concat();
        let (m, used) = plain().open_stream(&both).unwrap().unwrap();
        assert_eq!((m, used), (push_pull(vec![1, 2]), a.len()));
        assert_eq!(
            plain().open_stream(&both[used..]),
            Ok(Some((ping, b.len())))
        );
    }

    #[test]
    fn large_user_state_round_trips() {
        let state: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        for c in [
            plain(),
            codec("dc", true, None),
            codec("", false, Some(9)),
            codec("x", true, Some(9)),
        ] {
            let msg = push_pull(state.clone());
            let bytes = c.seal_stream(&msg, &mut rng());
            assert_eq!(c.open_stream(&bytes), Ok(Some((msg, bytes.len()))));
            // A few prefixes: never complete early.
            for cut in [1, bytes.len() / 3, bytes.len() - 1] {
                assert_eq!(c.open_stream(&bytes[..cut]), Ok(None), "cut {cut}");
            }
        }
    }

    fn codec_variant() -> impl Strategy<Value = Codec> {
        (any::<bool>(), any::<bool>(), any::<bool>(), 0u8..2).prop_map(
            |(label, key, compression, vsn)| {
                Codec::new(
                    WireConfig {
                        label: if label { "lbl".into() } else { String::new() },
                        compression,
                        verify_incoming: true,
                        verify_outgoing: true,
                        encryption_version: vsn,
                    },
                    key.then(|| Keyring::new(vec![3; 24], vec![]).unwrap()),
                )
            },
        )
    }

    proptest! {
        #[test]
        fn stream_round_trip(
            c in codec_variant(),
            msg in arb::stream_message(3000),
            reply in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut r = StdRng::seed_from_u64(seed);
            let (bytes, opened) = if reply {
                let b = c.seal_stream_reply(&msg, &mut r);
                let o = c.open_stream_reply(&b);
                (b, o)
            } else {
                let b = c.seal_stream(&msg, &mut r);
                let o = c.open_stream(&b);
                (b, o)
            };
            prop_assert_eq!(opened, Ok(Some((msg, bytes.len()))));
        }

        #[test]
        fn every_prefix_needs_more(
            c in codec_variant(),
            msg in arb::stream_message(200),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let bytes = c.seal_stream(&msg, &mut rng());
            for cut in 0..bytes.len() {
                prop_assert_eq!(c.open_stream(&bytes[..cut]), Ok(None), "cut {}", cut);
            }
            // Whatever follows the message is not consumed.
            let mut more = bytes.clone();
            more.extend_from_slice(&tail);
            prop_assert_eq!(c.open_stream(&more), Ok(Some((msg, bytes.len()))));
        }

        #[test]
        fn stream_garbage_never_panics(
            c in codec_variant(),
            data in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let _ = c.open_stream(&data);
            let _ = c.open_stream_reply(&data);
        }
    }
}
