//! The one error type of `hearsay-serf`: why a Serf message, command or file was refused.

use thiserror::Error;

/// Why a Serf-layer input or command was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A membership or wire error from the layer below.
    #[error(transparent)]
    Swim(#[from] hearsay_swim::Error),
    /// A Serf message type byte Serf does not define.
    #[error("unknown Serf message type {0}")]
    UnknownMessageType(u8),
    /// A message body that did not decode.
    #[error("malformed Serf message: {0}")]
    Malformed(String),
    /// Encoded tags over memberlist's 512-byte metadata limit.
    #[error("encoded tags are {0} bytes, over the 512-byte limit")]
    TagsTooLarge(usize),
    /// A user event over the configured or hard size limit.
    #[error("user event of {size} bytes exceeds the limit of {limit} bytes")]
    UserEventTooLarge {
        /// The event's size in bytes: name plus payload, or the encoded message.
        size: usize,
        /// `SerfConfig::user_event_size_limit`, in bytes.
        limit: usize,
    },
    /// A query over the configured size limit.
    #[error("query of {size} bytes exceeds the limit of {limit} bytes")]
    QueryTooLarge {
        /// The encoded query's size in bytes.
        size: usize,
        /// `SerfConfig::query_size_limit`, in bytes.
        limit: usize,
    },
    /// A query response over the configured size limit.
    #[error("response of {size} bytes exceeds the limit of {limit} bytes")]
    ResponseTooLarge {
        /// The encoded response's size in bytes.
        size: usize,
        /// `SerfConfig::query_response_size_limit`, in bytes.
        limit: usize,
    },
    /// A query was answered twice from this node.
    #[error("response already sent")]
    AlreadyResponded,
    /// A response came after the query's deadline.
    #[error("response is past the deadline")]
    PastDeadline,
    /// The cluster speaks a protocol version too old for the operation.
    #[error("{0} requires protocol version {1} or higher")]
    ProtocolTooOld(&'static str, u8),
    /// A tag filter's regular expression did not compile.
    #[error("invalid tag filter regex {expr:?}: {reason}")]
    BadRegex {
        /// The expression as given.
        expr: String,
        /// The regex compiler's explanation.
        reason: String,
    },
    /// The node is leaving or has left.
    #[error("operation not allowed: the node is {0}")]
    NotAllowed(&'static str),
    /// A snapshot line that could not be parsed.
    #[error("snapshot line {line}: {reason}")]
    Snapshot {
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A key operation failed.
    #[error("key operation failed: {0}")]
    Key(String),
    /// A network coordinate, ping payload or RTT sample the Vivaldi client refused.
    #[error("coordinate refused: {0}")]
    Coordinate(String),
    /// A configuration value out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
