//! The contract between a sans-io protocol core and the driver that owns its sockets: the
//! membership core implements it, and so does the Serf layer that wraps it, so one driver in
//! `hearsay-net` runs either.

use crate::core::{StreamId, StreamOutcome, StreamRequest, Transmit};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A sans-io core that speaks memberlist's transport: UDP datagrams, TCP streams, timers.
pub trait Protocol: Send + 'static {
    /// What the core reports to its user.
    type Event: Clone + Send + std::fmt::Debug + 'static;

    /// A UDP datagram arrived from `from`.
    fn handle_packet(&mut self, now: Instant, from: SocketAddr, buf: &[u8]);
    /// Bytes so far on an incoming TCP connection.
    fn handle_stream(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) -> StreamOutcome;
    /// Bytes so far in reply on a stream the core asked for.
    fn handle_stream_reply(&mut self, now: Instant, id: StreamId, buf: &[u8]) -> StreamOutcome;
    /// A stream the core asked for failed (connect, write, read or timeout).
    fn handle_stream_failed(&mut self, now: Instant, id: StreamId, error: &str);
    /// A stream without a reply was written.
    fn handle_stream_sent(&mut self, id: StreamId);
    /// Timers due at `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The next stream to open.
    fn poll_stream(&mut self) -> Option<StreamRequest>;
    /// The next event for the user.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// When to call `handle_timeout` next.
    fn poll_timeout(&self) -> Option<Instant>;
    /// How long an incoming stream may take (memberlist's `TCPTimeout`).
    fn tcp_timeout(&self) -> Duration;
}

impl Protocol for crate::core::Swim {
    type Event = crate::core::Event;

    fn handle_packet(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) {
        Self::handle_packet(self, now, from, buf)
    }
    fn handle_stream(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) -> StreamOutcome {
        Self::handle_stream(self, now, from, buf)
    }
    fn handle_stream_reply(&mut self, now: Instant, id: StreamId, buf: &[u8]) -> StreamOutcome {
        Self::handle_stream_reply(self, now, id, buf)
    }
    fn handle_stream_failed(&mut self, now: Instant, id: StreamId, error: &str) {
        Self::handle_stream_failed(self, now, id, error)
    }
    fn handle_stream_sent(&mut self, id: StreamId) {
        Self::handle_stream_sent(self, id)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Self::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Self::poll_transmit(self)
    }
    fn poll_stream(&mut self) -> Option<StreamRequest> {
        Self::poll_stream(self)
    }
    fn poll_event(&mut self) -> Option<Self::Event> {
        Self::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Self::poll_timeout(self)
    }
    fn tcp_timeout(&self) -> Duration {
        self.config().tcp_timeout
    }
}
