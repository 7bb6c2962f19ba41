//! The one error type of `hearsay-swim`: every way input from the network or the caller can be
//! refused, each variant naming its cause.

use thiserror::Error;

/// Why a packet, stream, key or call was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before the structure it announced was complete.
    #[error("truncated input: needed {needed} more bytes while reading {what}")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// How many more bytes it needed (a lower bound).
        needed: usize,
    },
    /// A msgpack value had a type the field does not accept.
    #[error("malformed msgpack: {0}")]
    Msgpack(String),
    /// A length field exceeded the limit we accept (never allocated).
    #[error("{what} of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The field or message whose length was refused.
        what: &'static str,
        /// The length it announced, in bytes (or elements, for counts).
        len: usize,
        /// The largest length accepted.
        limit: usize,
    },
    /// A message type byte memberlist does not define, or one not allowed here.
    #[error("unknown or unexpected message type {0}")]
    UnknownMessageType(u8),
    /// A protocol-5 CRC header did not match the payload.
    #[error("CRC32 mismatch: header {expected:#010x}, payload {actual:#010x}")]
    CrcMismatch {
        /// The CRC32 the header carried.
        expected: u32,
        /// The CRC32 of the payload as received.
        actual: u32,
    },
    /// The compression envelope named an algorithm other than LZW.
    #[error("unsupported compression algorithm {0}")]
    UnknownCompression(i64),
    /// LZW data could not be decoded.
    #[error("LZW decompression failed: {0}")]
    Decompress(String),
    /// Nested envelopes (compound in compress in compound ...) went deeper than allowed.
    #[error("envelopes nested deeper than {0}")]
    TooDeep(usize),
    /// A packet or stream arrived without encryption while the keyring requires it.
    #[error("received an unencrypted message but encryption is required")]
    NotEncrypted,
    /// No key in the keyring could open the message (wrong key, or tampering).
    #[error("no installed key could decrypt the message ({keys} keys tried)")]
    DecryptFailed {
        /// How many keys were tried.
        keys: usize,
    },
    /// The encryption version byte is not one memberlist defines.
    #[error("unsupported encryption version {0}")]
    UnknownEncryptionVersion(u8),
    /// A key of a length AES does not take.
    #[error("key must be 16, 24 or 32 bytes (AES-128/192/256), got {0}")]
    BadKeyLength(usize),
    /// The primary key cannot be removed from the keyring.
    #[error("removing the primary key is not allowed")]
    RemovePrimaryKey,
    /// A key operation named a key the keyring does not hold.
    #[error("key is not in the keyring")]
    KeyNotInstalled,
    /// A Serf keyring file (JSON array of base64 keys) or base64 key could not be read.
    #[error("invalid keyring file or key: {0}")]
    KeyFile(String),
    /// The cluster label of a packet or stream did not match ours.
    #[error("cluster label mismatch: ours {ours:?}, theirs {theirs:?}")]
    LabelMismatch {
        /// Our label (`""` = none).
        ours: String,
        /// The label the packet or stream carried (`""` = none).
        theirs: String,
    },
    /// A label header (type 244) announcing a label of zero bytes, which memberlist refuses.
    #[error("label header present but the label is empty")]
    EmptyLabel,
    /// A label longer than memberlist's 255-byte limit.
    #[error("label of {0} bytes exceeds 255")]
    LabelTooLong(usize),
    /// A node address that is neither IPv4 nor IPv6.
    #[error("invalid node address ({0} bytes)")]
    BadAddress(usize),
    /// Node metadata over memberlist's 512-byte limit.
    #[error("node metadata of {0} bytes exceeds the 512-byte limit")]
    MetaTooLarge(usize),
    /// The remote side of a stream reported an error.
    #[error("remote error: {0}")]
    Remote(String),
    /// A join found no node to talk to.
    #[error("join failed: {0}")]
    JoinFailed(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
