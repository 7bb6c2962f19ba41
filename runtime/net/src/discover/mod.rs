//! mDNS discovery as Serf's agent does it (`-discover=CLUSTER`, `-iface`): a node advertises
//! itself as instance `<node>` of service `_serf_<CLUSTER>._tcp.local.` (PTR, SRV, A/AAAA and
//! TXT records, answered to whoever asks, as hashicorp/mdns answers), asks for that service
//! every 60 s (the first time at once), and hands on every peer it has not handed on before
//! once 100 ms pass without a new one, just as Serf's `AgentMDNS` batches its joins, so real
//! Serf agents and hearsay agents find each other.
//!
//! The record logic is sans-io in [`records`] (on `simple-dns`'s wire format);
//! [`Discovery::start`] runs it on IPv4 multicast sockets in one task and gives the batches of
//! peers to join over a channel ([`Discovery::next_batch`]). Joining is the caller's: this
//! crate moves packets, the agent decides what a peer means.

pub mod records;

use crate::error::{Error, Result};
pub use records::{decode, encode, peers_in, query, service_name, Advertised, Peer};
use simple_dns::Name;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// How often Serf asks for its peers.
pub const POLL_INTERVAL: Duration = Duration::from_secs(60);
/// How long Serf waits after the last new peer before joining the batch.
pub const QUIET_INTERVAL: Duration = Duration::from_millis(100);
/// How long one query listens for answers (hashicorp/mdns's default timeout).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(1);
/// The mDNS group and port (RFC 6762).
pub const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
/// The mDNS port (RFC 6762).
pub const MDNS_PORT: u16 = 5353;
/// The largest datagram read (mDNS allows up to 9000 bytes; hashicorp/mdns reads 64 KiB).
const MAX_PACKET: usize = 65536;

/// The host name the SRV record points at, as an absolute DNS name (hashicorp/mdns appends
/// the root's dot to `os.Hostname()`); `localhost.` when the caller has no host name.
pub fn dns_host_name(host: Option<&str>) -> String {
    format!("{}.", host.unwrap_or("localhost"))
}

/// A network interface named by `-iface`: its index and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The interface's name (`eth0`).
    pub name: String,
    /// Its index, which the multicast socket options take.
    pub index: u32,
    /// Its addresses.
    pub addrs: Vec<IpAddr>,
}

impl Interface {
    /// Looks up `name`; an interface that does not exist, or has no address, is an
    /// [`Error::Interface`] worded as Serf words it.
    pub fn by_name(name: &str) -> Result<Self> {
        let all = if_addrs::get_if_addrs()
            .map_err(|e| Error::Interface(format!("Failed to get interface addresses: {e}")))?;
        let mine: Vec<_> = all.iter().filter(|i| i.name == name).collect();
        let plain = !name.is_empty() && !name.contains('/') && name != "." && name != "..";
        let index = mine.iter().find_map(|i| i.index).or_else(|| {
            // An interface without addresses is not in getifaddrs' IP list; sysfs knows it.
            plain
                .then(|| std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex")).ok())
                .flatten()
                .and_then(|s| s.trim().parse().ok())
        });
        let Some(index) = index else {
            return Err(Error::Interface(format!(
                "Invalid network interface: no such network interface: {name}"
            )));
        };
        let addrs: Vec<IpAddr> = mine.iter().map(|i| i.ip()).collect();
        if addrs.is_empty() {
            return Err(Error::Interface(format!(
                "Interface '{name}' has no addresses"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            index,
            addrs,
        })
    }

    /// The gossip bind address with `-iface`, as Serf's `setupAgent` settles it: a wildcard
    /// bind takes the interface's first address that is not link-local; a concrete bind must
    /// be one of the interface's addresses.
    pub fn bind_addr(&self, bind: SocketAddr) -> Result<SocketAddr> {
        if bind.ip().is_unspecified() {
            let usable = self.addrs.iter().find(|ip| match ip {
                IpAddr::V4(v4) => !v4.is_link_local(),
                IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            });
            return match usable {
                Some(ip) => Ok(SocketAddr::new(*ip, bind.port())),
                None => Err(Error::Interface(format!(
                    "Failed to find usable address for interface '{}'",
                    self.name
                ))),
            };
        }
        if self.addrs.contains(&bind.ip()) {
            Ok(bind)
        } else {
            Err(Error::Interface(format!(
                "Interface '{}' has no '{}' address",
                self.name,
                bind.ip()
            )))
        }
    }

    /// The interface's first IPv4 address (the multicast interface for queries).
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.addrs.iter().find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
    }
}

/// A running discovery: the responder and the poller in one task, stopped on drop. The caller
/// takes the batches of peers to join from [`Discovery::next_batch`] and reports the batches
/// it could not join with [`Discovery::join_failed`], so the next poll offers them again.
#[derive(Debug)]
pub struct Discovery {
    task: JoinHandle<()>,
    batches: mpsc::Receiver<Vec<Peer>>,
    failed: mpsc::UnboundedSender<Vec<SocketAddr>>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The socket that hears queries on the mDNS group: port 5353 shared with any other mDNS
/// responder on the host (SO_REUSEADDR, as Go's multicast listener sets it), the group joined
/// on `iface` or on the interface the routing table picks.
fn responder_socket(iface: Option<&Interface>) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, MDNS_PORT)).into())?;
    match iface {
        Some(i) => s.join_multicast_v4_n(&MDNS_GROUP, &InterfaceIndexOrAddress::Index(i.index))?,
        None => s.join_multicast_v4(&MDNS_GROUP, &Ipv4Addr::UNSPECIFIED)?,
    }
    s.set_multicast_loop_v4(true)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// One query's socket: any free port, multicast out of `iface` when given.
fn query_socket(iface: Option<Ipv4Addr>) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())?;
    if let Some(ip) = iface {
        s.set_multicast_if_v4(&ip)?;
    }
    s.set_multicast_loop_v4(true)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// Asks for `service` once and sends every peer the answers name to `found`, for
/// [`QUERY_TIMEOUT`]. Answers come to the asking socket, unicast, as hashicorp/mdns replies.
async fn poll_once(
    service: Name<'static>,
    packet: Vec<u8>,
    iface: Option<Ipv4Addr>,
    found: mpsc::Sender<Peer>,
) -> std::io::Result<()> {
    let socket = query_socket(iface)?;
    socket
        .send_to(&packet, SocketAddrV4::new(MDNS_GROUP, MDNS_PORT))
        .await?;
    let deadline = Instant::now() + QUERY_TIMEOUT;
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let (n, from) = match tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
            Err(_) => return Ok(()),
            Ok(r) => r?,
        };
        let msg = match decode(&buf[..n]) {
            Ok(m) => m,
            Err(e) => {
                debug!(%from, error = %e, "agent.mdns: ignoring a malformed mDNS packet");
                continue;
            }
        };
        for peer in peers_in(&msg, &service) {
            if found.send(peer).await.is_err() {
                return Ok(());
            }
        }
    }
}

impl Discovery {
    /// Starts advertising `node` of host `host` (the machine's host name, as the caller reads
    /// it) at `advertise` for `cluster` and polling for peers; must be called inside a tokio
    /// runtime. Fails when the cluster name makes no DNS name or the
    /// mDNS socket cannot be opened (port 5353 not shareable, no multicast route): the caller
    /// decides whether to run on without discovery. A node or host name DNS cannot carry
    /// only stops the answers (a warning says so); the polls go on, as in Serf.
    pub fn start(
        node: &str,
        cluster: &str,
        advertise: SocketAddr,
        iface: Option<&Interface>,
        host: Option<&str>,
    ) -> Result<Self> {
        let service = service_name(cluster)?;
        let responder = responder_socket(iface).map_err(Error::Mdns)?;
        let advertised = match Advertised::new(node, cluster, &dns_host_name(host), advertise) {
            Ok(a) => Some(a),
            Err(e) => {
                warn!(error = %e, "agent.mdns: the node name is too long for a DNS name; not answering");
                None
            }
        };
        info!(
            cluster,
            // Absolute names, with the root's dot, as Serf's logs write them.
            service = %format_args!("{service}."),
            instance = %format_args!("{node}.{service}."),
            addr = %advertise,
            "agent.mdns: advertising and polling for peers"
        );
        let (batch_tx, batches) = mpsc::channel(4);
        let (failed, failed_rx) = mpsc::unbounded_channel();
        let runner = Runner {
            service,
            advertise,
            me: advertised,
            responder,
            iface: iface.and_then(Interface::ipv4),
            batches: batch_tx,
            failed: failed_rx,
        };
        Ok(Self {
            task: tokio::spawn(runner.run()),
            batches,
            failed,
        })
    }

    /// The next batch of new peers to join (never empty); `None` once the task has ended.
    pub async fn next_batch(&mut self) -> Option<Vec<Peer>> {
        self.batches.recv().await
    }

    /// Reports that joining `peers` failed: they count as new again, so the next poll that
    /// finds them hands them on again.
    pub fn join_failed(&self, peers: &[Peer]) {
        let _ = self.failed.send(peers.iter().map(|p| p.addr).collect());
    }
}

/// The task's state: Serf's `AgentMDNS.run` plus hashicorp/mdns's responder.
struct Runner {
    service: Name<'static>,
    advertise: SocketAddr,
    /// `None` when this node's names are no DNS names: then it only polls.
    me: Option<Advertised>,
    responder: UdpSocket,
    iface: Option<Ipv4Addr>,
    batches: mpsc::Sender<Vec<Peer>>,
    failed: mpsc::UnboundedReceiver<Vec<SocketAddr>>,
}

impl Runner {
    /// Answers queries as they come, polls every [`POLL_INTERVAL`] (the first at once), and
    /// hands on the new peers after [`QUIET_INTERVAL`] of quiet. A handed-on peer counts as
    /// seen until the caller reports that its join failed.
    async fn run(mut self) {
        let (found_tx, mut found) = mpsc::channel::<Peer>(32);
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        let mut seen: HashSet<SocketAddr> = HashSet::new();
        let mut pending: Vec<Peer> = Vec::new();
        let mut quiet: Option<Instant> = None;
        let mut buf = vec![0u8; MAX_PACKET];
        let packet = match encode(&query(&self.service, 0)) {
            Ok(p) => p,
            Err(e) => {
                // Not expected: `service_name` checked the name.
                warn!(error = %e, "agent.mdns: cannot build the query; not polling");
                Vec::new()
            }
        };
        loop {
            let wake = quiet.unwrap_or_else(Instant::now);
            tokio::select! {
                _ = poll.tick(), if !packet.is_empty() => {
                    let mut packet = packet.clone();
                    // A fresh random ID per query, as Serf's.
                    packet[..2].copy_from_slice(&rand::random::<u16>().to_be_bytes());
                    let (service, tx, iface) = (self.service.clone(), found_tx.clone(), self.iface);
                    tokio::spawn(async move {
                        if let Err(e) = poll_once(service, packet, iface, tx).await {
                            warn!(error = %e, "agent.mdns: Failed to poll for new hosts");
                        }
                    });
                }
                Some(peer) = found.recv() => {
                    // Our own answer to our own query, or a peer already handed on or queued.
                    if peer.addr == self.advertise
                        || seen.contains(&peer.addr)
                        || pending.iter().any(|p| p.addr == peer.addr)
                    {
                        continue;
                    }
                    info!(peer = %peer.node, addr = %peer.addr, "agent.mdns: discovered a peer");
                    pending.push(peer);
                    quiet = Some(Instant::now() + QUIET_INTERVAL);
                }
                Some(addrs) = self.failed.recv() => {
                    for a in addrs {
                        seen.remove(&a);
                    }
                }
                _ = tokio::time::sleep_until(wake), if quiet.is_some() => {
                    quiet = None;
                    let batch = std::mem::take(&mut pending);
                    seen.extend(batch.iter().map(|p| p.addr));
                    if self.batches.send(batch).await.is_err() {
                        // Nobody takes the peers any more.
                        return;
                    }
                }
                r = self.responder.recv_from(&mut buf) => {
                    let (n, from) = match r {
                        Ok(x) => x,
                        Err(e) => {
                            // Not expected on a bound UDP socket; pause so a lasting error
                            // cannot spin.
                            debug!(error = %e, "agent.mdns: receive failed");
                            tokio::time::sleep(QUIET_INTERVAL).await;
                            continue;
                        }
                    };
                    let Some(me) = &self.me else { continue };
                    let Ok(msg) = decode(&buf[..n]) else {
                        debug!(%from, "agent.mdns: ignoring a malformed mDNS packet");
                        continue;
                    };
                    let Some(reply) = me.answer(&msg) else { continue };
                    let bytes = match encode(&reply) {
                        Ok(b) => b,
                        Err(e) => {
                            warn!(instance = %me.instance, error = %e, "agent.mdns: cannot encode an answer");
                            continue;
                        }
                    };
                    // To the asker's own address, as hashicorp/mdns answers (its querier
                    // listens on the port it asked from).
                    if let Err(e) = self.responder.send_to(&bytes, from).await {
                        debug!(%from, error = %e, "agent.mdns: cannot send an answer");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_bind_follows_serf() {
        let lo = Interface {
            name: "lo".into(),
            index: 1,
            addrs: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        };
        assert_eq!(
            lo.bind_addr("0.0.0.0:7946".parse().unwrap()).unwrap(),
            "127.0.0.1:7946".parse().unwrap()
        );
        assert_eq!(
            lo.bind_addr("127.0.0.1:1".parse().unwrap()).unwrap(),
            "127.0.0.1:1".parse().unwrap()
        );
        let e = lo
            .bind_addr("10.1.1.1:1".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "Interface 'lo' has no '10.1.1.1' address");
        let ll = Interface {
            name: "x".into(),
            index: 2,
            addrs: vec!["169.254.1.1".parse().unwrap()],
        };
        assert!(ll
            .bind_addr("0.0.0.0:1".parse().unwrap())
            .unwrap_err()
            .to_string()
            .contains("Failed to find usable address"));
        assert_eq!(lo.ipv4(), Some(Ipv4Addr::LOCALHOST));
        let e = Interface::by_name("no-such-if0").unwrap_err().to_string();
        assert!(e.contains("no such network interface"), "{e}");
        let lo = Interface::by_name("lo").unwrap();
        assert!(lo.addrs.contains(&"127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn host_name_is_absolute() {
        assert_eq!(dns_host_name(Some("vm")), "vm.");
        assert_eq!(dns_host_name(None), "localhost.");
    }
}
