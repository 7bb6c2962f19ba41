//! The one error type of `hearsay-agent`: every way running a node can fail, each variant
//! naming its cause.

use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// Why a call on a [`crate::SerfAgent`] failed.
#[derive(Debug, Error)]
pub enum Error {
    /// The driver or a transport failed, or the node has stopped ([`hearsay_net::Error::Stopped`]).
    #[error(transparent)]
    Net(#[from] hearsay_net::Error),
    /// The Serf layer refused the configuration or a command (too large, not allowed now, ...).
    #[error(transparent)]
    Serf(#[from] hearsay_serf::Error),
    /// A join contacted no node successfully; lists every address tried with its error.
    #[error("join failed: {}", describe_join_errors(.errors))]
    JoinFailed { errors: Vec<(SocketAddr, String)> },
    /// The snapshot file could not be read, written or compacted (the message names the file).
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A graceful leave did not finish within the time Serf's own timeouts allow.
    #[error("leave did not finish within {0:?}")]
    LeaveTimeout(Duration),
    /// The `-tags-file` could not be read or is not a JSON object of strings (the message
    /// names the file).
    #[error("tags file: {0}")]
    TagsFile(String),
    /// The agent's flags or config files are wrong (the message names the file or flag, and
    /// the key).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// `-iface` names no usable interface, or one without the `-bind` address (Serf's words).
    #[error("{0}")]
    Interface(String),
    /// `-encrypt` or `-keyring-file` does not give a usable keyring.
    #[error("{0}")]
    Keyring(String),
    /// The log output could not be installed (a global subscriber already exists).
    #[error("logging: {0}")]
    Logging(String),
    /// `-retry-join` gave up after `retry_max` failed attempts; the last failure is kept.
    #[error("retry-join: giving up after {attempts} attempts; last error: {last}")]
    RetryJoinExhausted { attempts: u32, last: Box<Error> },
    /// Another node holds our name and the cluster voted for it (Serf's name conflict).
    #[error("another node uses the name {name:?} and the cluster voted for it ({matching} of {responses} members know us at our address); start this node with a unique name")]
    NameConflict {
        name: String,
        matching: usize,
        responses: usize,
    },
    /// The RPC server could not start (its address could not be bound).
    #[error(transparent)]
    Rpc(#[from] hearsay_rpc::Error),
    /// A WebAssembly handler could not be loaded, or the handler set is not valid (the
    /// message names the handler, its module and the cause, on one line).
    #[error("{0}")]
    Handlers(String),
    /// A query reply outgrew Serf's UDP response limit, and the originator has no QUIC
    /// endpoint to stream it to (it is a Serf node, or advertises none): nothing was sent.
    #[error(
        "reply of at least {size} bytes to {origin:?} is too large for a Serf originator's UDP limit of {limit} bytes ({origin:?} advertises no QUIC endpoint); nothing was sent"
    )]
    ReplyTooLarge {
        origin: String,
        size: u64,
        limit: usize,
    },
    /// A reply needs QUIC but this agent runs without a QUIC endpoint.
    #[error("reply of at least {size} bytes needs QUIC, but this agent has no QUIC endpoint")]
    NoQuicEndpoint { size: u64 },
    /// The query's deadline passed before the reply was complete.
    #[error("the query's deadline passed after {written} bytes of the reply")]
    ReplyDeadline { written: u64 },
    /// One of a reply's QUIC streams (direct or relayed) fell behind the others by more than
    /// the straggler grace and was dropped (the reply goes on with the others).
    #[error("the stream fell {grace:?} behind the reply's other streams after {written} bytes")]
    ReplyStraggler {
        written: u64,
        grace: std::time::Duration,
    },
    /// A reply was written to after it had failed.
    #[error("the reply already failed")]
    ReplyFailed,
}

impl From<hearsay_net::quic::QuicError> for Error {
    fn from(e: hearsay_net::quic::QuicError) -> Self {
        Self::Net(hearsay_net::Error::Quic(e))
    }
}

impl Error {
    /// True when the node's driver task has stopped.
    pub fn is_stopped(&self) -> bool {
        matches!(self, Self::Net(hearsay_net::Error::Stopped))
    }
}

fn describe_join_errors(errors: &[(SocketAddr, String)]) -> String {
    if errors.is_empty() {
        return "no addresses to contact".to_owned();
    }
    errors
        .iter()
        .map(|(addr, e)| format!("{addr}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_error_names_every_address() {
        let e = Error::JoinFailed {
            errors: vec![("127.0.0.1:1".parse().unwrap(), "refused".into())],
        };
        assert!(e.to_string().contains("127.0.0.1:1: refused"), "{e}");
        assert!(Error::Net(hearsay_net::Error::Stopped).is_stopped());
    }
}
