//! `hearsay-net`: the only crate that opens sockets. It drives a sans-io core (any
//! [`hearsay_swim::Protocol`]: the membership core [`hearsay_swim::Swim`] or the Serf layer)
//! over tokio UDP and TCP, and offers an in-memory transport with the same contract for tests.
//!
//! What it is: transports ([`UdpTcpTransport`], [`MemTransport`]), the driver task that owns
//! the core with its generic [`NodeHandle`], and the [`Memberlist`] handle for the membership
//! core alone; and [`discover`], Serf's mDNS discovery (multicast sockets, the records on
//! `simple-dns`, the peers handed to the caller to join). What it is not: no protocol logic
//! lives here; the core decides every message, this crate only moves bytes and time. Nor
//! command lines: Serf's flag and address conventions are `hearsay_agent::conventions`.

#![warn(missing_docs, unreachable_pub)]

pub mod discover;
mod driver;
mod error;
mod limit;
mod memberlist;
pub mod quic;
pub mod transport;

pub use driver::{NodeHandle, DEFAULT_EVENT_CAPACITY};
pub use error::{Error, Result};
pub use hearsay_swim::{Config, Event, Keyring, Member, Profile, Protocol};
pub use memberlist::{Memberlist, Options};
pub use transport::{
    Connector, MemNetwork, MemTransport, TcpConnector, Transport, UdpTcpTransport,
};
