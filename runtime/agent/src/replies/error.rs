//! Why a reply to a query, or starting the QUIC side, failed ([`ReplyError`]).

use hearsay_net::quic::{QuicError, StopCode};
use std::time::Duration;
use thiserror::Error;

/// Why a reply to a query failed, or the QUIC endpoint could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The node refused (its Serf layer, or it has stopped).
    #[error(transparent)]
    Node(#[from] crate::node::Error),
    /// The QUIC endpoint or one of the reply's streams failed (the originator refused it,
    /// reset it, or could not be reached).
    #[error(transparent)]
    Quic(#[from] QuicError),
    /// A reply outgrew Serf's UDP response limit, and the originator has no QUIC endpoint to
    /// stream it to (it is a Serf node, or advertises none): nothing was sent.
    #[error(
        "reply of at least {size} bytes to {origin:?} is too large for a Serf originator's UDP limit of {limit} bytes ({origin:?} advertises no QUIC endpoint); nothing was sent"
    )]
    TooLarge {
        /// The originator's node name.
        origin: String,
        /// The reply's size, at least, in bytes.
        size: u64,
        /// The originator's UDP response limit, in bytes.
        limit: usize,
    },
    /// A reply needs QUIC but this agent runs without a QUIC endpoint.
    #[error("reply of at least {size} bytes needs QUIC, but this agent has no QUIC endpoint")]
    NoQuicEndpoint {
        /// The reply's size, at least, in bytes.
        size: u64,
    },
    /// The query's deadline passed before the reply was complete.
    #[error("the query's deadline passed after {written} bytes of the reply")]
    Deadline {
        /// The bytes written before the deadline.
        written: u64,
    },
    /// One of a reply's QUIC streams (direct or relayed) fell behind the others by more than
    /// the straggler grace and was dropped (the reply goes on with the others).
    #[error("the stream fell {grace:?} behind the reply's other streams after {written} bytes")]
    Straggler {
        /// The bytes written on the dropped stream.
        written: u64,
        /// The straggler grace it exceeded.
        grace: Duration,
    },
    /// A reply was written to after it had failed.
    #[error("the reply already failed")]
    Failed,
}

impl ReplyError {
    /// True when the originator refused this stream because the same node's response had
    /// already reached it on another path (the normal end of a losing relayed copy).
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Quic(q) if q.stop_code() == Some(StopCode::Duplicate))
    }
}

impl From<hearsay_net::Error> for ReplyError {
    fn from(e: hearsay_net::Error) -> Self {
        match e {
            hearsay_net::Error::Quic(q) => Self::Quic(q),
            other => Self::Node(other.into()),
        }
    }
}

impl From<hearsay_serf::Error> for ReplyError {
    fn from(e: hearsay_serf::Error) -> Self {
        Self::Node(e.into())
    }
}
