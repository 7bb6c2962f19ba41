//! [`UdpTcpTransport`]: memberlist's real transport, a tokio `UdpSocket` and `TcpListener`
//! bound to the same address and port.

use super::{Connector, Transport};
use crate::error::{Error, Result};
use std::io;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tracing::warn;

/// The address this host is reached at from outside, for a wildcard bind without an advertise
/// address: the source address the kernel would use toward a private and then a public
/// network (a connected UDP socket sends nothing). `None` when there is no route at all.
pub fn outward_ip() -> Option<std::net::IpAddr> {
    ["10.255.255.255:9", "192.0.2.1:9"]
        .iter()
        .find_map(|probe| {
            std::net::UdpSocket::bind("0.0.0.0:0")
                .and_then(|s| s.connect(probe).map(|()| s))
                .and_then(|s| s.local_addr())
                .ok()
                .map(|a| a.ip())
                .filter(|ip| !ip.is_unspecified())
        })
}

/// How often a port-0 bind retries when the UDP side of the TCP port it got is taken.
const PORT_ATTEMPTS: usize = 10;
/// Backlog of the TCP listener.
const BACKLOG: u32 = 1024;

/// A UDP socket and a TCP listener on one address, like memberlist's `NetTransport`.
#[derive(Debug)]
pub struct UdpTcpTransport {
    udp: UdpSocket,
    tcp: TcpListener,
    bound: SocketAddr,
    advertise: SocketAddr,
}

impl UdpTcpTransport {
    /// Binds TCP and UDP on `addr`, advertising the bound address. Port 0 picks one free port
    /// for both protocols.
    pub async fn bind(addr: SocketAddr) -> Result<Self> {
        Self::bind_with_advertise(addr, None).await
    }

    /// Like [`UdpTcpTransport::bind`], but peers are told to reach us at `advertise` (needed
    /// when binding a wildcard address or behind NAT). A zero advertise port means "the bound
    /// port".
    pub async fn bind_with_advertise(
        addr: SocketAddr,
        advertise: Option<SocketAddr>,
    ) -> Result<Self> {
        let (tcp, udp) = if addr.port() == 0 {
            bind_any_port(addr)?
        } else {
            let tcp = listen(addr)?;
            let udp = bind_udp(addr)?;
            (tcp, udp)
        };
        let bound = tcp.local_addr()?;
        let advertise = match advertise {
            Some(a) if a.port() == 0 => SocketAddr::new(a.ip(), bound.port()),
            Some(a) => a,
            None => bound,
        };
        if advertise.ip().is_unspecified() {
            warn!(%bound, "memberlist: advertising an unspecified address; peers cannot reach it, pass an advertise address");
        }
        Ok(Self {
            udp,
            tcp,
            bound,
            advertise,
        })
    }

    /// The address both sockets are bound to.
    pub fn bound_addr(&self) -> SocketAddr {
        self.bound
    }
}

/// TCP first (the kernel picks a free port), then UDP on that port; retried when UDP's port
/// is taken by someone else.
fn bind_any_port(addr: SocketAddr) -> Result<(TcpListener, UdpSocket)> {
    for _ in 0..PORT_ATTEMPTS {
        let tcp = listen(addr)?;
        let port = tcp.local_addr()?.port();
        match bind_udp(SocketAddr::new(addr.ip(), port)) {
            Ok(udp) => return Ok((tcp, udp)),
            Err(Error::Bind { source, .. }) if source.kind() == io::ErrorKind::AddrInUse => {
                continue
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::NoCommonPort {
        ip: addr.ip(),
        attempts: PORT_ATTEMPTS,
    })
}

fn listen(addr: SocketAddr) -> Result<TcpListener> {
    let bind_err = |source| Error::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(bind_err)?;
    // Lets a restarted node take its port back while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true).map_err(bind_err)?;
    socket.bind(addr).map_err(bind_err)?;
    socket.listen(BACKLOG).map_err(bind_err)
}

fn bind_udp(addr: SocketAddr) -> Result<UdpSocket> {
    let std = std::net::UdpSocket::bind(addr).map_err(|source| Error::Bind { addr, source })?;
    std.set_nonblocking(true)
        .map_err(|source| Error::Bind { addr, source })?;
    UdpSocket::from_std(std).map_err(|source| Error::Bind { addr, source })
}

impl Transport for UdpTcpTransport {
    type Stream = TcpStream;
    type Connector = TcpConnector;

    fn local_addr(&self) -> SocketAddr {
        self.advertise
    }

    async fn recv_packet(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.udp.recv_from(buf).await
    }

    async fn send_packet(&self, dst: SocketAddr, payload: &[u8]) -> io::Result<()> {
        self.udp.send_to(payload, dst).await.map(|_| ())
    }

    async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, from) = self.tcp.accept().await?;
        // Replies are small messages written once; do not hold them back.
        stream.set_nodelay(true)?;
        Ok((stream, from))
    }

    fn connector(&self) -> TcpConnector {
        TcpConnector
    }
}

/// Opens plain TCP connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Stream = TcpStream;

    async fn connect(&self, dst: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(dst).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}
