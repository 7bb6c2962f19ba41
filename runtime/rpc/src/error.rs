//! The one error type of `hearsay-rpc`: a socket failed, the peer does not speak Serf's RPC
//! protocol, or the agent answered with an error of its own.

use thiserror::Error;

/// Why an RPC call, or starting the server, failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket could not be bound, connected, read or written (`context` says which).
    // The source is in the message as well: the CLI prints this line alone, and its wording
    // is part of what users see.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `connecting to 127.0.0.1:7373`.
        context: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The peer sent something that is not Serf's RPC protocol (malformed msgpack, a message
    /// of the wrong shape, a value larger than [`crate::codec::MAX_VALUE_BYTES`], or than
    /// [`crate::codec::MAX_DEPLOY_BYTES`] for a `deploy` body).
    #[error("RPC protocol error: {0}")]
    Protocol(String),
    /// The agent closed the connection before answering.
    #[error("RPC protocol error: the agent closed the connection")]
    Closed,
    /// A request larger than any agent accepts, refused before it was sent.
    #[error("{command} request of {size} bytes is larger than an agent accepts ({max} bytes)")]
    TooLarge {
        /// The command, e.g. `deploy`.
        command: String,
        /// The request body's size (an upper bound), in bytes.
        size: usize,
        /// The largest body an agent accepts for it.
        max: usize,
    },
    /// The agent answered the request with this error (Serf's own words, e.g.
    /// [`crate::errors::AUTH_REQUIRED`]).
    #[error("{0}")]
    Remote(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
