//! `hearsay-net`: the only crate that opens sockets. It drives the sans-io membership core
//! ([`hearsay_swim::Swim`]) over tokio UDP and TCP, and offers an in-memory transport with the
//! same contract for tests.
//!
//! What it is: transports ([`UdpTcpTransport`], [`MemTransport`]), the driver task that owns
//! the core, and the [`Memberlist`] handle. What it is not: no protocol logic lives here; the
//! core decides every message, this crate only moves bytes and time.

mod driver;
pub mod error;
pub mod memberlist;
pub mod transport;

pub use error::{Error, Result};
pub use hearsay_swim::{Config, Event, Keyring, Member, Profile};
pub use memberlist::{Memberlist, Options};
pub use transport::{
    Connector, MemNetwork, MemTransport, TcpConnector, Transport, UdpTcpTransport,
};
