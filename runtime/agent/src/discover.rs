//! mDNS discovery as Serf's agent does it (`-discover=CLUSTER`, `-iface`): the agent
//! advertises itself as instance `<node>` of service `_serf_<CLUSTER>._tcp.local.` (PTR, SRV,
//! A/AAAA and TXT records, answered to whoever asks, as hashicorp/mdns answers), asks for that
//! service every 60 s, and joins every peer it has not joined before once 100 ms pass without
//! a new one, just as Serf's `AgentMDNS` does, so real Serf agents and hearsay agents find
//! each other.
//!
//! The record logic is sans-io ([`Advertised::answer`], [`peers_in`]); [`Discovery::start`]
//! runs it on IPv4 multicast sockets.

pub mod dns;

use crate::error::{Error, Result};
use crate::serf_agent::SerfAgent;
use dns::{Message, Name, Question, RData, Record};
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
pub const MDNS_PORT: u16 = 5353;
/// The TTL hashicorp/mdns puts on every record.
const TTL: u32 = 120;
/// The largest datagram read (mDNS allows up to 9000 bytes; hashicorp/mdns reads 64 KiB).
const MAX_PACKET: usize = 65536;

/// The service Serf registers and looks up for a cluster: `_serf_<cluster>._tcp.local.`.
pub fn service_name(cluster: &str) -> Name {
    Name::parse(&format!("_serf_{cluster}._tcp.local."))
}

/// What this agent advertises: hashicorp/mdns's `MDNSService` as Serf builds it (the node
/// name as the instance, this host's name as the SRV target, the advertise address).
#[derive(Debug, Clone)]
pub struct Advertised {
    pub service: Name,
    pub instance: Name,
    pub host: Name,
    pub addr: SocketAddr,
    pub txt: String,
}

impl Advertised {
    pub fn new(node: &str, cluster: &str, host: &str, addr: SocketAddr) -> Self {
        let service = service_name(cluster);
        let instance = Name::parse(&format!("{node}.{service}"));
        Self {
            service,
            instance,
            host: Name::parse(host),
            addr,
            txt: format!("Serf '{cluster}' cluster"),
        }
    }

    /// The response to `query`, as hashicorp/mdns's server gives it: every record that
    /// matches a question; `None` for a response, a non-standard query, or nothing to say.
    /// The ID is the query's only when a question asked for a unicast reply (RFC 6762 §18.1).
    pub fn answer(&self, query: &Message) -> Option<Message> {
        if query.is_response()
            || query.opcode() != 0
            || query.rcode() != 0
            || query.flags & dns::FLAG_TRUNCATED != 0
        {
            return None;
        }
        let mut answers = Vec::new();
        let mut unicast = false;
        for q in &query.questions {
            let records = self.records(q);
            if !records.is_empty() && q.qclass & dns::CLASS_UNICAST_RESPONSE != 0 {
                unicast = true;
            }
            answers.extend(records);
        }
        if answers.is_empty() {
            return None;
        }
        Some(Message {
            id: if unicast { query.id } else { 0 },
            flags: dns::FLAG_RESPONSE | dns::FLAG_AUTHORITATIVE,
            answers,
            ..Message::default()
        })
    }

    fn record(&self, name: &Name, data: RData) -> Record {
        Record {
            name: name.clone(),
            class: dns::CLASS_IN,
            ttl: TTL,
            data,
        }
    }

    /// The records for one question, in hashicorp/mdns's order.
    fn records(&self, q: &Question) -> Vec<Record> {
        let any = q.qtype == dns::TYPE_ANY;
        let enumeration = Name::parse("_services._dns-sd._udp.local.");
        if q.name == enumeration && (any || q.qtype == dns::TYPE_PTR) {
            return vec![self.record(&q.name, RData::Ptr(self.service.clone()))];
        }
        if q.name == self.service && (any || q.qtype == dns::TYPE_PTR) {
            let mut records = vec![self.record(&q.name, RData::Ptr(self.instance.clone()))];
            records.extend(self.instance_records(dns::TYPE_ANY));
            return records;
        }
        if q.name == self.instance {
            return self.instance_records(q.qtype);
        }
        if q.name == self.host && matches!(q.qtype, dns::TYPE_A | dns::TYPE_AAAA) {
            return self.instance_records(q.qtype);
        }
        Vec::new()
    }

    fn instance_records(&self, qtype: u16) -> Vec<Record> {
        match qtype {
            dns::TYPE_ANY => {
                let mut r = self.instance_records(dns::TYPE_SRV);
                r.extend(self.instance_records(dns::TYPE_TXT));
                r
            }
            dns::TYPE_SRV => {
                let srv = RData::Srv {
                    priority: 10,
                    weight: 1,
                    port: self.addr.port(),
                    target: self.host.clone(),
                };
                let mut r = vec![self.record(&self.instance, srv)];
                r.extend(self.instance_records(dns::TYPE_A));
                r.extend(self.instance_records(dns::TYPE_AAAA));
                r
            }
            dns::TYPE_TXT => {
                let txt = RData::Txt(vec![self.txt.as_bytes().to_vec()]);
                vec![self.record(&self.instance, txt)]
            }
            dns::TYPE_A => match self.addr.ip() {
                IpAddr::V4(ip) => vec![self.record(&self.host, RData::A(ip))],
                IpAddr::V6(_) => Vec::new(),
            },
            dns::TYPE_AAAA => match self.addr.ip() {
                IpAddr::V6(ip) => vec![self.record(&self.host, RData::Aaaa(ip))],
                IpAddr::V4(_) => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

/// The PTR query Serf's poll sends for `service` (multicast reply wanted, no recursion).
pub fn query(service: &Name, id: u16) -> Message {
    Message {
        id,
        questions: vec![Question {
            name: service.clone(),
            qtype: dns::TYPE_PTR,
            qclass: dns::CLASS_IN,
        }],
        ..Message::default()
    }
}

/// A peer found by a query: its instance (node) name and the address to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node: String,
    pub addr: SocketAddr,
}

/// The peers of `service` a response names: each SRV record of an instance of the service
/// with a port, and an A (else AAAA) record for its target in the same message.
pub fn peers_in(response: &Message, service: &Name) -> Vec<Peer> {
    if !response.is_response() {
        return Vec::new();
    }
    let records: Vec<&Record> = response
        .answers
        .iter()
        .chain(&response.additional)
        .collect();
    let address = |host: &Name| {
        let v4 = records.iter().find_map(|r| match r.data {
            RData::A(ip) if r.name == *host => Some(IpAddr::V4(ip)),
            _ => None,
        });
        v4.or_else(|| {
            records.iter().find_map(|r| match r.data {
                RData::Aaaa(ip) if r.name == *host => Some(IpAddr::V6(ip)),
                _ => None,
            })
        })
    };
    let mut peers: Vec<Peer> = Vec::new();
    for r in &records {
        let RData::Srv { port, target, .. } = &r.data else {
            continue;
        };
        if *port == 0 || !r.name.is_below(service) {
            continue;
        }
        let Some(ip) = address(target) else {
            continue;
        };
        let node_labels = &r.name.0[..r.name.0.len() - service.0.len()];
        let node = node_labels
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect::<Vec<_>>()
            .join(".");
        let peer = Peer {
            node,
            addr: SocketAddr::new(ip, *port),
        };
        if !peers.contains(&peer) {
            peers.push(peer);
        }
    }
    peers
}

/// This host's name as a DNS name, as Serf takes it from `os.Hostname()`.
pub fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{name}.")
}

/// A network interface named by `-iface`: its index and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub addrs: Vec<IpAddr>,
}

impl Interface {
    /// Looks up `name`; an interface that does not exist, or has no address, is an error
    /// worded as Serf words it.
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

/// A running discovery: the responder and the poller in one task, stopped on drop.
#[derive(Debug)]
pub struct Discovery {
    task: JoinHandle<()>,
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
/// [`QUERY_TIMEOUT`].
async fn poll_once(
    service: Name,
    iface: Option<Ipv4Addr>,
    found: mpsc::Sender<Peer>,
) -> std::io::Result<()> {
    let socket = query_socket(iface)?;
    let packet = query(&service, rand::random())
        .encode()
        .expect("a service name fits in DNS");
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
        let msg = match Message::decode(&buf[..n]) {
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
    /// Starts advertising `node` at `advertise` for `cluster` and polling for peers, which
    /// are joined through `serf` (`replay`: Serf's `-replay`). Fails only when the mDNS
    /// socket cannot be opened (port 5353 not shareable, no multicast route): the caller
    /// logs it and runs on without discovery.
    pub fn start(
        serf: SerfAgent,
        node: &str,
        cluster: &str,
        advertise: SocketAddr,
        iface: Option<Interface>,
        replay: bool,
    ) -> std::io::Result<Self> {
        let responder = responder_socket(iface.as_ref())?;
        let advertised = Advertised::new(node, cluster, &host_name(), advertise);
        info!(
            cluster,
            service = %advertised.service,
            instance = %advertised.instance,
            addr = %advertise,
            "agent.mdns: advertising and polling for peers"
        );
        let task = tokio::spawn(run(
            serf,
            advertised,
            responder,
            iface.and_then(|i| i.ipv4()),
            replay,
        ));
        Ok(Self { task })
    }
}

/// Serf's `AgentMDNS.run`, plus the responder: answers queries as they come, polls every
/// [`POLL_INTERVAL`] (the first at once), joins new peers after [`QUIET_INTERVAL`] of quiet.
/// A batch that fails to join is forgotten, so the next poll tries it again.
async fn run(
    serf: SerfAgent,
    me: Advertised,
    responder: UdpSocket,
    iface: Option<Ipv4Addr>,
    replay: bool,
) {
    let (found_tx, mut found) = mpsc::channel::<Peer>(32);
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    let mut seen: HashSet<SocketAddr> = HashSet::new();
    let mut pending: Vec<Peer> = Vec::new();
    let mut quiet: Option<Instant> = None;
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let wake = quiet.unwrap_or_else(Instant::now);
        tokio::select! {
            _ = poll.tick() => {
                let (service, tx) = (me.service.clone(), found_tx.clone());
                tokio::spawn(async move {
                    if let Err(e) = poll_once(service, iface, tx).await {
                        warn!(error = %e, "agent.mdns: Failed to poll for new hosts");
                    }
                });
            }
            Some(peer) = found.recv() => {
                // Our own answer to our own query, or a peer already joined or queued.
                if peer.addr == me.addr
                    || seen.contains(&peer.addr)
                    || pending.iter().any(|p| p.addr == peer.addr)
                {
                    continue;
                }
                info!(peer = %peer.node, addr = %peer.addr, "agent.mdns: discovered a peer");
                pending.push(peer);
                quiet = Some(Instant::now() + QUIET_INTERVAL);
            }
            _ = tokio::time::sleep_until(wake), if quiet.is_some() => {
                quiet = None;
                let batch = std::mem::take(&mut pending);
                let addrs: Vec<SocketAddr> = batch.iter().map(|p| p.addr).collect();
                match serf.join(&addrs, !replay).await {
                    Ok(n) => {
                        let names: Vec<&str> = batch.iter().map(|p| p.node.as_str()).collect();
                        info!(peers = ?names, addrs = ?addrs, "agent.mdns: Joined {n} hosts");
                        seen.extend(addrs);
                    }
                    Err(e) => warn!(addrs = ?addrs, error = %e, "agent.mdns: Failed to join"),
                }
            }
            r = responder.recv_from(&mut buf) => {
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
                let Ok(msg) = Message::decode(&buf[..n]) else {
                    debug!(%from, "agent.mdns: ignoring a malformed mDNS packet");
                    continue;
                };
                let Some(reply) = me.answer(&msg) else { continue };
                let Some(bytes) = reply.encode() else {
                    warn!(instance = %me.instance, "agent.mdns: the node name is too long for a DNS name; not answering");
                    continue;
                };
                // To the asker's own address, as hashicorp/mdns answers (its querier listens
                // on the port it asked from).
                if let Err(e) = responder.send_to(&bytes, from).await {
                    debug!(%from, error = %e, "agent.mdns: cannot send an answer");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Advertised {
        Advertised::new("h1", "c1", "vm.", "127.0.0.3:7946".parse().unwrap())
    }

    #[test]
    fn answers_the_service_query_as_hashicorp_mdns_does() {
        let q = query(&service_name("c1"), 0x1234);
        let bytes = q.encode().unwrap();
        // The same bytes serf 0.8.2 sends (but for its random ID).
        assert_eq!(
            &bytes[2..],
            &[
                0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 8, b'_', b's', b'e', b'r', b'f', b'_', b'c', b'1', 4,
                b'_', b't', b'c', b'p', 5, b'l', b'o', b'c', b'a', b'l', 0, 0, 12, 0, 1
            ][..]
        );
        let reply = me().answer(&Message::decode(&bytes).unwrap()).unwrap();
        assert_eq!(reply.id, 0, "a multicast answer has ID 0");
        assert!(reply.is_response());
        let kinds: Vec<u16> = reply
            .answers
            .iter()
            .map(|r| match r.data {
                RData::Ptr(_) => dns::TYPE_PTR,
                RData::Srv { .. } => dns::TYPE_SRV,
                RData::A(_) => dns::TYPE_A,
                RData::Txt(_) => dns::TYPE_TXT,
                _ => 0,
            })
            .collect();
        assert_eq!(
            kinds,
            [dns::TYPE_PTR, dns::TYPE_SRV, dns::TYPE_A, dns::TYPE_TXT]
        );
        assert_eq!(
            reply.answers[0].data,
            RData::Ptr(Name::parse("h1._serf_c1._tcp.local."))
        );
        assert_eq!(
            reply.answers[3].data,
            RData::Txt(vec![b"Serf 'c1' cluster".to_vec()])
        );
        // What we answer, we read back as the peer it describes.
        let wire = Message::decode(&reply.encode().unwrap()).unwrap();
        assert_eq!(
            peers_in(&wire, &service_name("c1")),
            [Peer {
                node: "h1".into(),
                addr: "127.0.0.3:7946".parse().unwrap()
            }]
        );
        assert!(peers_in(&wire, &service_name("c2")).is_empty());
    }

    #[test]
    fn reads_serfs_own_answer() {
        // serf 0.8.2's answer for node s1 at 127.0.0.2:7946 (see dns.rs's tests).
        let hex = "000084000000000400000000085f736572665f6331045f746370056c6f63616c00000c0001\
                   000000780005027331c00cc02b0021000100000078000a000a00011f0a02766d00c0420001\
                   00010000007800047f000002c02b001000010000007800121153657266202763312720636c\
                   7573746572";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(
            peers_in(&m, &service_name("c1")),
            [Peer {
                node: "s1".into(),
                addr: "127.0.0.2:7946".parse().unwrap()
            }]
        );
    }

    #[test]
    fn answers_only_what_is_asked() {
        let ask = |name: &str, qtype: u16, qclass: u16| Message {
            id: 9,
            questions: vec![Question {
                name: Name::parse(name),
                qtype,
                qclass,
            }],
            ..Message::default()
        };
        let m = me();
        assert!(m
            .answer(&ask("_serf_c2._tcp.local.", dns::TYPE_PTR, 1))
            .is_none());
        assert!(m
            .answer(&ask("_serf_c1._tcp.local.", dns::TYPE_A, 1))
            .is_none());
        let srv = m
            .answer(&ask("h1._serf_c1._tcp.local.", dns::TYPE_SRV, 1))
            .unwrap();
        assert_eq!(srv.answers.len(), 2, "SRV and its A");
        let txt = m
            .answer(&ask(
                "H1._serf_c1._tcp.local.",
                dns::TYPE_TXT,
                1 | dns::CLASS_UNICAST_RESPONSE,
            ))
            .unwrap();
        assert_eq!(txt.id, 9, "a unicast answer keeps the query's ID");
        assert_eq!(txt.answers.len(), 1);
        let a = m.answer(&ask("vm.", dns::TYPE_A, 1)).unwrap();
        assert_eq!(a.answers[0].data, RData::A(Ipv4Addr::new(127, 0, 0, 3)));
        let e = m
            .answer(&ask("_services._dns-sd._udp.local", dns::TYPE_PTR, 1))
            .unwrap();
        assert_eq!(e.answers[0].data, RData::Ptr(service_name("c1")));
        // Responses and other opcodes get no answer.
        let mut r = ask("_serf_c1._tcp.local.", dns::TYPE_PTR, 1);
        r.flags = dns::FLAG_RESPONSE;
        assert!(m.answer(&r).is_none());
        r.flags = 1 << 11;
        assert!(m.answer(&r).is_none());
        // A query is not a response: it names no peers.
        assert!(peers_in(&r, &service_name("c1")).is_empty());
    }

    #[test]
    fn ipv6_advertise_answers_aaaa() {
        let m = Advertised::new("n", "c", "h.", "[::1]:7946".parse().unwrap());
        let reply = m.answer(&query(&service_name("c"), 1)).unwrap();
        assert!(reply
            .answers
            .iter()
            .any(|r| r.data == RData::Aaaa(std::net::Ipv6Addr::LOCALHOST)));
        assert_eq!(
            peers_in(&reply, &service_name("c"))[0].addr,
            "[::1]:7946".parse().unwrap()
        );
    }

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
}
