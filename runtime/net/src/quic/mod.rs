//! QUIC transport for large query responses (quinn + rustls, ring provider).
//!
//! Serf answers a query with one UDP packet of at most ~1 KiB. hearsay keeps gossip for
//! fan-out and streams larger answers over QUIC: every agent runs one [`QuicEndpoint`]
//! (server and client on the same UDP socket); a responder opens a bidirectional stream to the
//! originator's endpoint ([`QuicEndpoint::open_response`]), writes a small
//! [`ResponseHeader`] and then the body chunk by chunk as it is produced, and the originator
//! answers on the other half with its verdict (a clean end once its reader took the whole
//! body, or a reset whose [`StopCode`] says why it refused it); the originator reads
//! [`IncomingResponse`]s from [`IncomingResponses`], each body chunk by chunk through a
//! [`BodyReader`] that enforces the per-response and per-query byte limits ([`Limits`]).
//! Nothing on either side holds a whole response in memory: QUIC flow control (the
//! per-stream receive window) bounds what is buffered for a reader that has not caught up.
//!
//! The same endpoint and pinned connections carry small request/reply exchanges
//! ([`QuicEndpoint::request`] on the asking side; [`QuicEndpoint::bind_with_requests`] and
//! [`IncomingRequests`] on the answering side; framing in [`request`]): one stream each, told
//! apart from a response stream by its first byte, so both kinds share one connection.
//!
//! This module knows nothing of Serf's types: a query is named by its Lamport time and id, a
//! node by its name and [`QuicAdvert`] (address + certificate fingerprint, carried in the
//! `_hearsay_quic` tag).
//!
//! # Security modes ([`Security`])
//!
//! **Pinned** (the default). Each node generates a self-signed certificate at start (or keeps
//! one in a file, [`Identity::load_or_generate`]); peers learn its [`Fingerprint`] (sha256 of
//! the certificate DER) from gossip. The connecting side accepts a server only if it presents
//! the certificate whose fingerprint the advert names, and checks the TLS 1.3 handshake
//! signature with that certificate's key (so the server holds the key). The accepting side
//! requires a client certificate, checks its handshake signature, asks the configured
//! [`PeerFilter`] whether the fingerprint belongs to a known member (refusing the handshake
//! otherwise), and reports the fingerprint with every response.
//! Guarantees: confidentiality and integrity of the stream; the responder reaches exactly the
//! endpoint the advert names; the originator knows which certificate sent each response.
//! Does not guarantee: that the advert itself is genuine. That is as strong as gossip is: with
//! the keyring's encryption on, only key holders can forge adverts; without it, anyone who can
//! inject gossip can advertise their own fingerprint under a member's name. Without a filter,
//! the accepting side accepts any client that holds the key of some certificate; the embedder
//! must then check the reported fingerprint against its members.
//!
//! **CA**. The operator supplies a CA certificate and this node's certificate and key (PEM).
//! Both sides verify the peer's chain to the CA (mutual TLS), and the connecting side still
//! checks the advert's fingerprint, so a CA-signed certificate of one node cannot answer for
//! another. Guarantees: only holders of CA-signed certificates can connect or answer, even if
//! gossip is not encrypted. Does not guarantee: revocation (no CRL/OCSP is consulted), or that
//! the certificate's names match node names (peers are identified by fingerprint).

mod advert;
mod endpoint;
mod exchange;
pub mod header;
mod identity;
pub mod request;
pub mod tls;

pub use advert::{QuicAdvert, QUIC_TAG};
pub use endpoint::{
    BodyReader, Bytes, IncomingResponse, IncomingResponses, Limits, QuicConfig, QuicEndpoint,
    ResponseWriter, Security, StopCode,
};
pub use exchange::{IncomingRequest, IncomingRequests};
pub use header::{HeaderError, Relay, ResponseHeader};
pub use identity::{Fingerprint, Identity, FINGERPRINT_TEXT_LEN};
pub use request::FrameError;
pub use tls::PeerFilter;

use std::net::SocketAddr;
use thiserror::Error;

/// Everything that can go wrong in the QUIC transport, each variant naming its cause.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum QuicError {
    /// The UDP socket could not be bound.
    #[error("failed to bind the QUIC endpoint on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is out of range.
    #[error("invalid QUIC configuration: {0}")]
    Config(String),
    /// A certificate, key or TLS configuration is unusable.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why it could not be read or written.
        #[source]
        source: std::io::Error,
    },
    /// A fingerprint's text form did not parse.
    #[error("bad fingerprint {0}")]
    BadFingerprint(String),
    /// A `_hearsay_quic` tag value did not parse.
    #[error("bad QUIC advert {value:?}: {why}")]
    BadAdvert {
        /// The tag value.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// Connecting to a peer failed (unreachable, timed out, or refused in the handshake, e.g.
    /// its certificate is not the pinned one or it refused ours).
    #[error("QUIC connection to {addr} (expecting {fingerprint}) failed: {reason}")]
    Connect {
        /// The peer's address.
        addr: SocketAddr,
        /// The certificate fingerprint its advert names.
        fingerprint: Fingerprint,
        /// Why: the connection or handshake error, or the timeout.
        reason: String,
    },
    /// A header could not be encoded or the peer's header was malformed.
    #[error("response header: {0}")]
    Header(#[from] HeaderError),
    /// Writing a response failed: the connection was lost or the originator stopped reading
    /// (limit exceeded, header rejected, nobody waiting).
    #[error("sending the response to {addr} failed: {reason}")]
    Send {
        /// The originator's (or relay node's) address.
        addr: SocketAddr,
        /// Why: the connection or stream error.
        reason: String,
    },
    /// The originator (or a relay node passing on the originator's answer) refused the
    /// response with a [`StopCode`] (`code`; see [`StopCode::from_code`]).
    #[error("sending the response to {addr} failed: {}", StopCode::describe(*code))]
    Stopped {
        /// The originator's (or relay node's) address.
        addr: SocketAddr,
        /// The QUIC application error code of the stop.
        code: u64,
    },
    /// The producer wrote more or fewer bytes than the header declared.
    #[error("response body is {written} bytes but the header declared {declared}")]
    DeclaredLength {
        /// The length the header declared, in bytes.
        declared: u64,
        /// The bytes written.
        written: u64,
    },
    /// A response's body is over the per-response limit.
    #[error(
        "response from {from:?} exceeds the per-response limit of {limit} bytes ({how} {received} bytes)"
    )]
    ResponseLimit {
        /// The responding node's name.
        from: String,
        /// The per-response limit in bytes ([`Limits`]).
        limit: u64,
        /// The body's size in bytes, declared or counted so far (see `how`).
        received: u64,
        /// "declared" when the header announced it, "received at least" when counted.
        how: &'static str,
    },
    /// The responses to one query are together over the per-query limit.
    #[error(
        "responses to query (ltime {ltime}, id {query_id}) exceed the per-query limit of {limit} bytes (received at least {total} bytes; failing the response from {from:?})"
    )]
    QueryLimit {
        /// The query's Lamport time.
        ltime: u64,
        /// The query's id.
        query_id: u32,
        /// The node whose response crossed the limit (the one failed).
        from: String,
        /// The per-query limit in bytes ([`Limits`]).
        limit: u64,
        /// The bytes received for the query so far, at least.
        total: u64,
    },
    /// The body ended at a length other than the header declared.
    #[error("response from {from:?} ended after {received} bytes but declared {declared}")]
    Truncated {
        /// The responding node's name.
        from: String,
        /// The length the header declared, in bytes.
        declared: u64,
        /// The bytes received.
        received: u64,
    },
    /// The responder reset the stream (it aborted, or its producer failed).
    #[error(
        "response from {from:?} was aborted by the responder (code {code}) after {received} bytes"
    )]
    Reset {
        /// The responding node's name.
        from: String,
        /// The responder's QUIC application error code.
        code: u64,
        /// The body bytes received before the reset.
        received: u64,
    },
    /// The connection to the responder was lost mid-response.
    #[error("connection to {from:?} was lost after {received} bytes: {reason}")]
    ConnectionLost {
        /// The responding node's name.
        from: String,
        /// The body bytes received before the loss.
        received: u64,
        /// Why: the connection or read error.
        reason: String,
    },
    /// A body was read again after it had failed.
    #[error("response body already failed")]
    AlreadyFailed,
    /// A request ([`QuicEndpoint::request`]) failed on the way: the connection was lost, or
    /// the reply was malformed or cut short.
    #[error("request to {addr} failed: {reason}")]
    Request {
        /// The answering endpoint's address.
        addr: SocketAddr,
        /// Why: the connection or stream error, or what is wrong with the reply.
        reason: String,
    },
    /// The answering endpoint (or the asker, for a reply) refused a request stream with a
    /// [`StopCode`] (`code`; see [`StopCode::from_code`]): it does not serve requests, it
    /// dropped the request unanswered, it rejected the stream.
    #[error("request to {addr} failed: {}", exchange::describe_request(*code))]
    RequestStopped {
        /// The answering endpoint's address.
        addr: SocketAddr,
        /// The QUIC application error code of the stop or reset.
        code: u64,
    },
    /// The answering endpoint refused the request with a reason of its own
    /// ([`IncomingRequest::fail`], e.g. "no such module", or a request body over its limit).
    #[error("request to {addr} refused: {reason}")]
    Refused {
        /// The answering endpoint's address.
        addr: SocketAddr,
        /// The reason it gave.
        reason: String,
    },
    /// A reply declared a body over the asker's `max_reply`; it was refused before its body
    /// was read.
    #[error("reply from {addr} is {len} bytes, over the limit of {limit} bytes")]
    ReplyLimit {
        /// The answering endpoint's address.
        addr: SocketAddr,
        /// The reply body's declared length in bytes.
        len: u64,
        /// The asker's `max_reply` in bytes.
        limit: u64,
    },
    /// Sending a reply ([`IncomingRequest::reply`] or [`IncomingRequest::fail`]) failed: the
    /// asker refused it (e.g. over its `max_reply`) or the connection was lost.
    #[error("replying to {addr} failed: {reason}")]
    Reply {
        /// The asker's address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

impl QuicError {
    /// The [`StopCode`] the other side refused a response or request stream with, when that is
    /// what happened.
    pub fn stop_code(&self) -> Option<StopCode> {
        match self {
            Self::Stopped { code, .. } | Self::RequestStopped { code, .. } => {
                StopCode::from_code(*code)
            }
            _ => None,
        }
    }
}
