//! [`MemTransport`]: endpoints on an in-memory [`MemNetwork`]. Datagrams travel through
//! channels (and may be lost at a configurable rate), streams are `tokio::io::duplex` pipes.
//! Endpoints can be cut off from each other (partitions) to test failure detection without
//! real sockets.

use super::{Connector, Transport, MAX_DATAGRAM};
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;

/// Datagrams queued per endpoint before more are dropped (a full socket buffer).
const PACKET_QUEUE: usize = 4096;
/// Connections waiting to be accepted per endpoint (the listen backlog).
const ACCEPT_QUEUE: usize = 1024;
/// Bytes buffered in each direction of a stream.
const PIPE_BUFFER: usize = 64 * 1024;
/// First port handed out for port-0 binds.
const FIRST_EPHEMERAL_PORT: u16 = 40_000;

/// A shared in-memory network. Cloning gives another handle to the same network.
#[derive(Clone, Debug)]
pub struct MemNetwork {
    inner: Arc<Mutex<NetState>>,
}

#[derive(Debug)]
struct NetState {
    endpoints: HashMap<SocketAddr, Endpoint>,
    /// Endpoints talk only within the same group; everyone starts in group 0.
    groups: HashMap<SocketAddr, u64>,
    next_group: u64,
    loss: f64,
    rng: StdRng,
    next_id: u64,
    next_port: u16,
}

#[derive(Debug)]
struct Endpoint {
    id: u64,
    packets: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    streams: mpsc::Sender<(DuplexStream, SocketAddr)>,
}

impl Default for MemNetwork {
    fn default() -> Self {
        Self::new(0)
    }
}

impl MemNetwork {
    /// An empty network; `seed` drives packet loss.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(NetState {
                endpoints: HashMap::new(),
                groups: HashMap::new(),
                next_group: 1,
                loss: 0.0,
                rng: StdRng::seed_from_u64(seed),
                next_id: 1,
                next_port: FIRST_EPHEMERAL_PORT,
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, NetState> {
        // A panic while holding the lock cannot leave the maps half-updated; keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates an endpoint at `addr`; port 0 picks an unused port on that IP.
    pub fn bind(&self, addr: SocketAddr) -> Result<MemTransport> {
        let mut st = self.state();
        let addr = if addr.port() == 0 {
            st.free_port(addr).ok_or(Error::AddrInUse(addr))?
        } else {
            addr
        };
        if st.endpoints.contains_key(&addr) {
            return Err(Error::AddrInUse(addr));
        }
        let id = st.next_id;
        st.next_id += 1;
        let (ptx, prx) = mpsc::channel(PACKET_QUEUE);
        let (stx, srx) = mpsc::channel(ACCEPT_QUEUE);
        st.endpoints.insert(
            addr,
            Endpoint {
                id,
                packets: ptx,
                streams: stx,
            },
        );
        Ok(MemTransport {
            net: self.clone(),
            addr,
            id,
            packets: tokio::sync::Mutex::new(prx),
            streams: tokio::sync::Mutex::new(srx),
        })
    }

    /// Probability in `[0, 1]` that any datagram is lost. Streams stay reliable, like TCP.
    pub fn set_loss(&self, p: f64) {
        self.state().loss = p.clamp(0.0, 1.0);
    }

    /// Cuts `addr` off from every other endpoint: its datagrams vanish both ways and
    /// connections to or from it hang until the caller's timeout.
    pub fn isolate(&self, addr: SocketAddr) {
        let mut st = self.state();
        let g = st.next_group;
        st.next_group += 1;
        st.groups.insert(addr, g);
    }

    /// Puts every address in `addrs` into one new group, apart from everyone else.
    pub fn partition(&self, addrs: &[SocketAddr]) {
        let mut st = self.state();
        let g = st.next_group;
        st.next_group += 1;
        for a in addrs {
            st.groups.insert(*a, g);
        }
    }

    /// Ends every partition and isolation.
    pub fn heal(&self) {
        self.state().groups.clear();
    }

    /// True when an endpoint is bound at `addr`.
    pub fn is_bound(&self, addr: SocketAddr) -> bool {
        self.state().endpoints.contains_key(&addr)
    }

    fn connector(&self, from: SocketAddr) -> MemConnector {
        MemConnector {
            net: Arc::downgrade(&self.inner),
            from,
        }
    }
}

impl NetState {
    fn group(&self, addr: &SocketAddr) -> u64 {
        self.groups.get(addr).copied().unwrap_or(0)
    }

    fn connected(&self, a: &SocketAddr, b: &SocketAddr) -> bool {
        self.group(a) == self.group(b)
    }

    fn free_port(&mut self, addr: SocketAddr) -> Option<SocketAddr> {
        for _ in 0..=u16::MAX {
            let port = self.next_port;
            self.next_port = self
                .next_port
                .checked_add(1)
                .unwrap_or(FIRST_EPHEMERAL_PORT);
            let candidate = SocketAddr::new(addr.ip(), port);
            if !self.endpoints.contains_key(&candidate) {
                return Some(candidate);
            }
        }
        None
    }
}

/// One endpoint of a [`MemNetwork`]. Dropping it unbinds the address: datagrams to it vanish
/// and connections are refused, as after a crash.
#[derive(Debug)]
pub struct MemTransport {
    net: MemNetwork,
    addr: SocketAddr,
    id: u64,
    packets: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    streams: tokio::sync::Mutex<mpsc::Receiver<(DuplexStream, SocketAddr)>>,
}

impl MemTransport {
    /// The network this endpoint belongs to.
    pub fn network(&self) -> &MemNetwork {
        &self.net
    }
}

impl Drop for MemTransport {
    fn drop(&mut self) {
        let mut st = self.net.state();
        if st
            .endpoints
            .get(&self.addr)
            .is_some_and(|e| e.id == self.id)
        {
            st.endpoints.remove(&self.addr);
        }
    }
}

impl Transport for MemTransport {
    type Stream = DuplexStream;
    type Connector = MemConnector;

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    async fn recv_packet(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut rx = self.packets.lock().await;
        // Never closed while we exist: the network holds the sender until we drop.
        let Some((bytes, from)) = rx.recv().await else {
            return std::future::pending().await;
        };
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok((n, from))
    }

    async fn send_packet(&self, dst: SocketAddr, payload: &[u8]) -> io::Result<()> {
        if payload.len() > MAX_DATAGRAM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("datagram of {} bytes is too long", payload.len()),
            ));
        }
        let mut st = self.net.state();
        if !st.connected(&self.addr, &dst) {
            return Ok(());
        }
        let loss = st.loss;
        if loss > 0.0 && st.rng.gen_bool(loss) {
            return Ok(());
        }
        if let Some(ep) = st.endpoints.get(&dst) {
            // A full queue drops the datagram, like a full socket buffer.
            let _ = ep.packets.try_send((payload.to_vec(), self.addr));
        }
        Ok(())
    }

    async fn accept(&self) -> io::Result<(DuplexStream, SocketAddr)> {
        let mut rx = self.streams.lock().await;
        match rx.recv().await {
            Some(s) => Ok(s),
            None => std::future::pending().await,
        }
    }

    fn connector(&self) -> MemConnector {
        self.net.connector(self.addr)
    }
}

/// Opens streams on a [`MemNetwork`] from one endpoint's address.
#[derive(Debug, Clone)]
pub struct MemConnector {
    net: Weak<Mutex<NetState>>,
    from: SocketAddr,
}

enum Dial {
    Connected(DuplexStream),
    Refused,
    Blackhole,
}

impl MemConnector {
    fn dial(&self, dst: SocketAddr) -> Dial {
        let Some(net) = self.net.upgrade() else {
            return Dial::Refused;
        };
        let st = net.lock().unwrap_or_else(|e| e.into_inner());
        if !st.connected(&self.from, &dst) {
            return Dial::Blackhole;
        }
        let Some(ep) = st.endpoints.get(&dst) else {
            return Dial::Refused;
        };
        let (ours, theirs) = tokio::io::duplex(PIPE_BUFFER);
        match ep.streams.try_send((theirs, self.from)) {
            Ok(()) => Dial::Connected(ours),
            Err(_) => Dial::Refused,
        }
    }
}

impl Connector for MemConnector {
    type Stream = DuplexStream;

    async fn connect(&self, dst: SocketAddr) -> io::Result<DuplexStream> {
        match self.dial(dst) {
            Dial::Connected(s) => Ok(s),
            Dial::Refused => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("connection refused: nothing listens at {dst}"),
            )),
            // A partition drops the SYN: the caller's timeout decides.
            Dial::Blackhole => std::future::pending().await,
        }
    }
}
