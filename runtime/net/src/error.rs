//! The one error type of `hearsay-net`: every way binding, joining, leaving or talking to the
//! driver task can fail, each variant naming its cause.

use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// Why a transport could not be set up or a call on a [`crate::NodeHandle`] (or the
/// [`crate::Memberlist`] over it) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket could not be bound (address in use, no permission, bad address).
    #[error("failed to bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A port-0 bind kept finding the UDP side of a free TCP port taken.
    #[error("no port on {ip} was free for both TCP and UDP after {attempts} attempts")]
    NoCommonPort {
        /// The address bound.
        ip: std::net::IpAddr,
        /// How many ports were tried.
        attempts: usize,
    },
    /// A socket operation failed (connect, read, write, or reading a bound address).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The in-memory network already has an endpoint at this address.
    #[error("address {0} is already taken in the in-memory network")]
    AddrInUse(SocketAddr),
    /// The membership core refused the configuration or an argument (e.g. oversized metadata).
    #[error(transparent)]
    Swim(#[from] hearsay_swim::Error),
    /// A join contacted no node successfully; lists every address tried with its error.
    #[error("join failed: {}", describe_join_errors(.errors))]
    JoinFailed {
        /// Each address tried, with why it failed.
        errors: Vec<(SocketAddr, String)>,
    },
    /// A graceful leave was not disseminated within the time allowed.
    #[error("leave was not confirmed within {0:?}")]
    LeaveTimeout(Duration),
    /// A stream to or from a peer did not finish before its deadline.
    #[error("stream timed out")]
    StreamTimedOut,
    /// The peer closed a stream before a complete message arrived.
    #[error("connection closed after {0} bytes, before a complete message")]
    StreamTruncated(usize),
    /// A peer sent more on one stream than memberlist accepts.
    #[error("stream exceeded the limit of {limit} bytes")]
    StreamTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The driver task has stopped (after `shutdown`, or because it ended).
    #[error("the node's driver task has stopped")]
    Stopped,
    /// `-iface` names no usable interface, or one without the bind address (Serf's words).
    #[error("{0}")]
    Interface(String),
    /// A name mDNS discovery would put on the wire is not a DNS name (a label over 63 bytes,
    /// or a name over 255).
    #[error("{name:?} is not a DNS name: {source}")]
    DnsName {
        /// The name.
        name: String,
        /// Why it is not a DNS name.
        #[source]
        source: simple_dns::SimpleDnsError,
    },
    /// mDNS discovery's multicast socket could not be opened (port 5353 not shareable, no
    /// multicast route).
    #[error("cannot open the mDNS socket: {0}")]
    Mdns(#[source] std::io::Error),
    /// The QUIC transport for large query responses failed (the variant says why).
    #[error(transparent)]
    Quic(#[from] crate::quic::QuicError),
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
            errors: vec![
                ("127.0.0.1:1".parse().unwrap(), "connection refused".into()),
                ("127.0.0.1:2".parse().unwrap(), "timed out".into()),
            ],
        };
        let s = e.to_string();
        assert!(s.contains("127.0.0.1:1: connection refused"), "{s}");
        assert!(s.contains("127.0.0.1:2: timed out"), "{s}");
        let none = Error::JoinFailed { errors: vec![] }.to_string();
        assert!(none.contains("no addresses"), "{none}");
    }
}
