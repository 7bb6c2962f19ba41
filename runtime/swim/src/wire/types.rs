//! The memberlist message structs, one Rust type per Go struct in memberlist's `net.go`.
//!
//! Field names match the Go field names because go-msgpack encodes structs as maps keyed by
//! field name; the codec in `wire::codec` relies on that correspondence.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// memberlist's one-byte message type tag (`messageType` in Go, an `iota` list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// `pingMsg`
    Ping = 0,
    /// `indirectPingMsg`
    IndirectPing = 1,
    /// `ackRespMsg`
    AckResp = 2,
    /// `suspectMsg`
    Suspect = 3,
    /// `aliveMsg`
    Alive = 4,
    /// `deadMsg`
    Dead = 5,
    /// `pushPullMsg` (streams only)
    PushPull = 6,
    /// `compoundMsg`
    Compound = 7,
    /// `userMsg`: an opaque message for the layer above (Serf)
    User = 8,
    /// `compressMsg`
    Compress = 9,
    /// `encryptMsg` (streams only; packets are encrypted without a type byte)
    Encrypt = 10,
    /// `nackRespMsg`
    NackResp = 11,
    /// `hasCrcMsg`: a CRC32 header in front of a packet (protocol 5)
    HasCrc = 12,
    /// `errMsg`
    Err = 13,
    /// `hasLabelMsg`: a cluster label in front of a packet or stream (newer memberlist)
    HasLabel = 244,
}

impl MessageType {
    /// The message type for a tag byte, if it is one memberlist defines.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Ping,
            1 => Self::IndirectPing,
            2 => Self::AckResp,
            3 => Self::Suspect,
            4 => Self::Alive,
            5 => Self::Dead,
            6 => Self::PushPull,
            7 => Self::Compound,
            8 => Self::User,
            9 => Self::Compress,
            10 => Self::Encrypt,
            11 => Self::NackResp,
            12 => Self::HasCrc,
            13 => Self::Err,
            244 => Self::HasLabel,
            _ => return None,
        })
    }
}

/// memberlist's `NodeStateType` as carried in push/pull (`StateAlive` = 0 ... `StateLeft` = 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeStateKind {
    /// `StateAlive`
    Alive = 0,
    /// `StateSuspect`
    Suspect = 1,
    /// `StateDead`
    Dead = 2,
    /// `StateLeft`
    Left = 3,
}

impl NodeStateKind {
    /// Decodes the integer form; unknown values are `None`.
    pub fn from_i64(v: i64) -> Option<Self> {
        Some(match v {
            0 => Self::Alive,
            1 => Self::Suspect,
            2 => Self::Dead,
            3 => Self::Left,
            _ => return None,
        })
    }
}

/// `ping`: a direct probe. `node` lets the target check it is the intended recipient.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ping {
    /// `SeqNo`: matches the ack to this ping.
    pub seq_no: u32,
    /// `Node`: the name of the node meant to answer (empty from old senders).
    pub node: String,
    /// `SourceAddr`/`SourcePort`/`SourceNode` are `omitempty` in Go.
    pub source_addr: Vec<u8>,
    /// `SourcePort`: the port of `source_addr`.
    pub source_port: u16,
    /// `SourceNode`: the sender's name.
    pub source_node: String,
}

/// `indirectPingReq`: ask a peer to probe `target` for us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndirectPing {
    /// `SeqNo`: the requester's sequence number, echoed in the ack or nack.
    pub seq_no: u32,
    /// `Target`: the IP of the node to probe (4 or 16 bytes).
    pub target: Vec<u8>,
    /// `Port`: the port of the node to probe.
    pub port: u16,
    /// `Node`: the name of the node to probe.
    pub node: String,
    /// `Nack`: whether the requester wants a nack if the target does not answer.
    pub nack: bool,
    /// `SourceAddr`: the requester's IP, to answer to (`omitempty`).
    pub source_addr: Vec<u8>,
    /// `SourcePort`: the requester's port.
    pub source_port: u16,
    /// `SourceNode`: the requester's name.
    pub source_node: String,
}

/// `ackResp`: the answer to a ping; `payload` carries Serf's Vivaldi coordinate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ack {
    /// `SeqNo` of the ping answered.
    pub seq_no: u32,
    /// `Payload`: the ack payload the delegate set (empty = none).
    pub payload: Vec<u8>,
}

/// `nackResp`: an indirect prober could not reach the target in time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nack {
    /// `SeqNo` of the indirect ping request answered.
    pub seq_no: u32,
}

/// `errResp`: a stream peer tells us what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrResp {
    /// `Error`: the peer's error text.
    pub error: String,
}

/// `suspect`: `from` suspects `node` at `incarnation`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Suspect {
    /// `Incarnation` of `node` that is suspected.
    pub incarnation: u32,
    /// `Node`: the name of the node suspected.
    pub node: String,
    /// `From`: the name of the node that says so.
    pub from: String,
}

/// `alive`: `node` is alive at `incarnation`; also how a node announces itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Alive {
    /// `Incarnation`: higher refutes older suspect and dead messages.
    pub incarnation: u32,
    /// `Node`: the node's name.
    pub node: String,
    /// `Addr`: its IP (4 or 16 bytes).
    pub addr: Vec<u8>,
    /// `Port`.
    pub port: u16,
    /// `Meta`: its metadata (at most 512 bytes).
    pub meta: Vec<u8>,
    /// `Vsn`: pmin, pmax, pcur, dmin, dmax, dcur.
    pub vsn: Vec<u8>,
}

/// `dead`: `from` declares `node` dead; `from == node` is a graceful leave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dead {
    /// `Incarnation` of `node` that is declared dead.
    pub incarnation: u32,
    /// `Node`: the name of the node declared dead.
    pub node: String,
    /// `From`: the name of the node that says so.
    pub from: String,
}

/// `pushNodeState`: one member as carried in a push/pull exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushNodeState {
    /// `Name`.
    pub name: String,
    /// `Addr`: the IP (4 or 16 bytes).
    pub addr: Vec<u8>,
    /// `Port`.
    pub port: u16,
    /// `Meta`: the node's metadata.
    pub meta: Vec<u8>,
    /// `Incarnation`.
    pub incarnation: u32,
    /// `State`: alive, suspect, dead or left.
    pub state: NodeStateKind,
    /// `Vsn`: pmin, pmax, pcur, dmin, dmax, dcur.
    pub vsn: Vec<u8>,
}

/// A [`PushNodeState`] borrowed from where its fields live, for encoding a push/pull straight
/// from a member table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushNodeRef<'a> {
    /// `Name`.
    pub name: &'a str,
    /// `Addr`: the IP (4 or 16 bytes).
    pub addr: &'a [u8],
    /// `Port`.
    pub port: u16,
    /// `Meta`: the node's metadata.
    pub meta: &'a [u8],
    /// `Incarnation`.
    pub incarnation: u32,
    /// `State`: alive, suspect, dead or left.
    pub state: NodeStateKind,
    /// `Vsn`: pmin, pmax, pcur, dmin, dmax, dcur.
    pub vsn: &'a [u8],
}

impl<'a> From<&'a PushNodeState> for PushNodeRef<'a> {
    fn from(n: &'a PushNodeState) -> Self {
        PushNodeRef {
            name: &n.name,
            addr: &n.addr,
            port: n.port,
            meta: &n.meta,
            incarnation: n.incarnation,
            state: n.state,
            vsn: &n.vsn,
        }
    }
}

/// A whole push/pull exchange: `pushPullHeader`, the node states, then the opaque user state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushPull {
    /// `pushPullHeader.Join`: whether the sender is joining.
    pub join: bool,
    /// Every member the sender knows (`pushPullHeader.Nodes` of them).
    pub nodes: Vec<PushNodeState>,
    /// The delegate's `LocalState` (`pushPullHeader.UserStateLen` bytes; Serf's).
    pub user_state: Vec<u8>,
}

/// A message that travels in a UDP packet (after envelopes are removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `pingMsg`.
    Ping(Ping),
    /// `indirectPingMsg`.
    IndirectPing(IndirectPing),
    /// `ackRespMsg`.
    Ack(Ack),
    /// `nackRespMsg`.
    Nack(Nack),
    /// `suspectMsg`.
    Suspect(Suspect),
    /// `aliveMsg`.
    Alive(Alive),
    /// `deadMsg`.
    Dead(Dead),
    /// An opaque message for the layer above, without its type byte.
    User(Vec<u8>),
    /// `errMsg`.
    Err(ErrResp),
}

/// A message that travels on a TCP stream (after envelopes are removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    /// The TCP fallback ping (protocol 3+).
    Ping(Ping),
    /// The reply to a TCP ping.
    Ack(Ack),
    /// `pushPullMsg`: a state exchange (join or periodic).
    PushPull(PushPull),
    /// `userMsg` over a stream: `userMsgHeader` then the raw bytes.
    User(Vec<u8>),
    /// `errMsg`: the peer refused the stream.
    Err(ErrResp),
}

/// Turns memberlist's `Addr []byte` + `Port` into a socket address; `None` if the byte
/// slice is neither 4 nor 16 bytes long.
pub fn socket_addr(addr: &[u8], port: u16) -> Option<SocketAddr> {
    let ip = match addr.len() {
        4 => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(addr);
            let v6 = Ipv6Addr::from(b);
            // Go's net.IP keeps IPv4 in the 16-byte form; unwrap it so addresses compare equal.
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The `Addr []byte` form of an IP address (4 bytes for IPv4, 16 for IPv6).
pub fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}
