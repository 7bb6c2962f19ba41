//! The transport contract the membership driver runs on: unreliable datagrams (memberlist's UDP
//! packets) and reliable byte streams (memberlist's TCP connections) on one address.
//!
//! Two implementations keep the same contract: [`UdpTcpTransport`] over real tokio sockets, and
//! [`MemTransport`] over an in-memory [`MemNetwork`] with loss and partitions, for tests.
//! `tests/contract.rs` runs one test suite against both.

mod mem;
mod udp_tcp;

pub use mem::{MemConnector, MemNetwork, MemTransport};
pub use udp_tcp::{outward_ip, TcpConnector, UdpTcpTransport};

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};

/// The largest datagram a transport delivers; longer ones are truncated (like UDP's limit).
pub const MAX_DATAGRAM: usize = 65_536;

/// One endpoint: receives datagrams and accepts streams at [`Transport::local_addr`], sends
/// datagrams, and hands out a [`Connector`] for opening streams from other tasks.
///
/// Every method takes `&self` so the driver can wait on datagrams and connections at once.
/// `recv_packet` and `accept` must be cancel-safe: the driver drops them when another input
/// wins a `select!`, and nothing may be lost when that happens. Dropping the transport closes
/// the endpoint.
pub trait Transport: Send + Sync + 'static {
    /// A connected, reliable, ordered byte stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Opens streams to other endpoints; cloned into the task of each outgoing stream.
    type Connector: Connector<Stream = Self::Stream>;

    /// The address peers reach this endpoint at (memberlist's advertise address).
    fn local_addr(&self) -> SocketAddr;

    /// Waits for the next datagram; copies it into `buf` and returns its length and sender.
    fn recv_packet<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'a;

    /// Sends one datagram. Delivery is not guaranteed; an error means it certainly was not sent.
    fn send_packet<'a>(
        &'a self,
        dst: SocketAddr,
        payload: &'a [u8],
    ) -> impl Future<Output = io::Result<()>> + Send + 'a;

    /// Waits for the next incoming stream and the address it came from.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send + '_;

    /// A handle that opens streams from this endpoint.
    fn connector(&self) -> Self::Connector;
}

/// Opens streams. Cheap to clone; usable after the [`Transport`] that made it is gone (then
/// connecting simply fails or goes nowhere).
pub trait Connector: Clone + Send + Sync + 'static {
    /// The stream type, the same as the transport's.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Connects to `dst`. May never finish when `dst` is unreachable (callers bound it with a
    /// timeout); fails at once when nothing listens there.
    fn connect(&self, dst: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}
