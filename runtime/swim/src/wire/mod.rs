//! memberlist's wire format: message bodies in go-msgpack's encoding, and the envelopes around
//! them (compound, LZW compression, CRC32, AES-GCM encryption, cluster label) for UDP packets
//! and TCP streams. Pure functions over byte slices: no sockets, no clock.

#[cfg(test)]
mod arb;
mod codec;
mod envelope;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod lzw;
pub mod msgpack;
mod stream;
pub mod types;

pub use codec::MAX_PUSH_STATE_NODES;
pub use envelope::{
    decode_compound, decode_compressed, encode_compounds, encode_compressed, label_overhead,
    CompoundParts, LABEL_MAX_SIZE, MAX_COMPOUND_PARTS, MAX_ENVELOPE_DEPTH,
};
pub use lzw::{compress as lzw_compress, decompress as lzw_decompress};
pub use stream::{encode_push_pull, encode_stream_message, MAX_PLAINTEXT_STREAM_BYTES};
pub use types::*;

use crate::error::{Error, Result};
use crate::keyring::Keyring;
use rand::RngCore;

/// memberlist's `UDPBufferSize`: the budget for one gossip packet.
pub const UDP_BUFFER_SIZE: usize = 1400;
/// memberlist's `MetaMaxSize`.
pub const META_MAX_SIZE: usize = 512;
/// memberlist's `maxPushStateBytes`: the largest push/pull or stream message accepted.
pub const MAX_STREAM_BYTES: usize = 20 * 1024 * 1024;
/// The largest decompressed payload accepted (upstream memberlist's `maxDecompressedBytes`).
pub const MAX_DECOMPRESSED_BYTES: usize = 40 * 1024 * 1024;
/// `compoundHeaderOverhead`: type byte + count byte.
pub const COMPOUND_HEADER_OVERHEAD: usize = 2;
/// `compoundOverhead`: the u16 length of each part.
pub const COMPOUND_OVERHEAD: usize = 2;
/// `userMsgOverhead`: the type byte in front of a user message.
pub const USER_MSG_OVERHEAD: usize = 1;

/// How packets and streams are sealed and opened: compression, encryption, label.
#[derive(Debug, Clone)]
pub struct WireConfig {
    /// memberlist's `Label` (empty = none): prefixed to every packet/stream, and the GCM
    /// additional data when encrypting.
    pub label: String,
    /// Compress outgoing messages with LZW when that makes them smaller.
    pub compression: bool,
    /// With a keyring: refuse unencrypted input (memberlist's `GossipVerifyIncoming`).
    pub verify_incoming: bool,
    /// With a keyring: encrypt output (memberlist's `GossipVerifyOutgoing`).
    pub verify_outgoing: bool,
    /// 0 (PKCS7 padded, protocol 1) or 1 (no padding).
    pub encryption_version: u8,
}

impl Default for WireConfig {
    fn default() -> Self {
        Self {
            label: String::new(),
            compression: true,
            verify_incoming: true,
            verify_outgoing: true,
            encryption_version: 1,
        }
    }
}

/// What a UDP packet held once its envelopes were opened.
#[derive(Debug, Default)]
pub struct Opened {
    /// Every message that decoded, in order.
    pub messages: Vec<Message>,
    /// Parts of a compound that failed to decode; the rest were still delivered.
    pub errors: Vec<crate::Error>,
}

/// Encodes one message as `[type byte][msgpack body]` (a user message is `[8][raw bytes]`).
pub fn encode_message(msg: &Message) -> Vec<u8> {
    codec::encode_message(msg)
}

/// Decodes one `[type byte][body]` message (no envelopes). Bytes after the body are
/// ignored, as go-msgpack's `Decode` ignores them.
pub fn decode_message(buf: &[u8]) -> Result<Message> {
    codec::decode_message(buf)
}

/// Packs encoded messages into one `compoundMsg` (at most 255 parts, each under 64 KiB).
///
/// # Panics
/// With more parts or a longer part; [`encode_compounds`] splits any number of parts.
pub fn encode_compound(parts: &[Vec<u8>]) -> Vec<u8> {
    envelope::encode_compound(parts)
}

/// Seals and opens packets and streams with a [`WireConfig`] and an optional [`Keyring`].
#[derive(Debug, Clone)]
pub struct Codec {
    /// Compression, encryption policy and label.
    pub config: WireConfig,
    /// The keys to encrypt with (the primary) and to try on input; `None` = no encryption.
    pub keyring: Option<Keyring>,
}

impl Codec {
    /// A codec with the given settings; `keyring` turns encryption on.
    pub fn new(config: WireConfig, keyring: Option<Keyring>) -> Self {
        Self { config, keyring }
    }

    /// Like [`Codec::new`], refusing a label over 255 bytes ([`Error::LabelTooLong`]) or an
    /// encryption version other than 0 and 1 ([`Error::UnknownEncryptionVersion`]), which
    /// the sealing functions cannot express.
    pub fn try_new(config: WireConfig, keyring: Option<Keyring>) -> Result<Self> {
        if config.label.len() > LABEL_MAX_SIZE {
            return Err(Error::LabelTooLong(config.label.len()));
        }
        if config.encryption_version > crate::keyring::MAX_ENCRYPTION_VERSION {
            return Err(Error::UnknownEncryptionVersion(config.encryption_version));
        }
        Ok(Self::new(config, keyring))
    }

    /// Wraps an encoded message (or compound) for UDP: compress if smaller, CRC header when
    /// `crc` (the peer speaks protocol 5), encrypt with the primary key, prefix the label.
    ///
    /// # Panics
    /// If the label is over 255 bytes (use [`Codec::try_new`] to refuse that up front).
    pub fn seal_packet(&self, msg: &[u8], crc: bool, rng: &mut dyn RngCore) -> Vec<u8> {
        self.seal_packet_impl(msg, crc, rng)
    }

    /// Opens a UDP packet: label, decryption, CRC, then compound/compress envelopes.
    ///
    /// A packet whose label differs from ours (a missing label counts as "") is refused with
    /// [`Error::LabelMismatch`]. Parts of a compound that fail, and a cut-off compound tail,
    /// are reported in [`Opened::errors`] while the other parts are still delivered.
    pub fn open_packet(&self, buf: &[u8]) -> Result<Opened> {
        self.open_packet_impl(buf)
    }

    /// Encodes a stream message with its envelopes (compression, encryption, label) as the
    /// side that opened the connection sends it: with the label header.
    ///
    /// # Panics
    /// If the label is over 255 bytes (use [`Codec::try_new`] to refuse that up front).
    pub fn seal_stream(&self, msg: &StreamMessage, rng: &mut dyn RngCore) -> Vec<u8> {
        self.seal_stream_impl(msg, true, rng)
    }

    /// Decodes one stream message from the front of `buf`, as the side that accepted the
    /// connection reads it: the label header must match ours. `Ok(None)` means the bytes so
    /// far are a valid prefix and more are needed; `Ok(Some((msg, used)))` gives the bytes used.
    pub fn open_stream(&self, buf: &[u8]) -> Result<Option<(StreamMessage, usize)>> {
        self.open_stream_impl(buf, true)
    }

    /// Encodes a reply on a connection the peer opened (push/pull answer, TCP ping ack,
    /// error): memberlist writes the label header once per connection, from the dialing side
    /// only, so a reply has none, but encryption still authenticates the label.
    pub fn seal_stream_reply(&self, msg: &StreamMessage, rng: &mut dyn RngCore) -> Vec<u8> {
        self.seal_stream_impl(msg, false, rng)
    }

    /// A push/pull from borrowed node states, sealed as [`Codec::seal_stream`] (`dialing`) or
    /// [`Codec::seal_stream_reply`] would seal the owned message: the same bytes, without a
    /// copy of every member's fields.
    pub fn seal_push_pull(
        &self,
        join: bool,
        nodes: &[PushNodeRef<'_>],
        user_state: &[u8],
        dialing: bool,
        rng: &mut dyn RngCore,
    ) -> Vec<u8> {
        self.seal_stream_body(encode_push_pull(join, nodes, user_state), dialing, rng)
    }

    /// Decodes a reply on a connection we opened: no label header, label authenticated by
    /// encryption. Same return contract as [`Codec::open_stream`].
    pub fn open_stream_reply(&self, buf: &[u8]) -> Result<Option<(StreamMessage, usize)>> {
        self.open_stream_impl(buf, false)
    }
}
