//! The SWIM + Lifeguard state machine (memberlist's `state.go` and the message handlers of
//! `net.go`), sans-io: `handle_*` feeds it time, packets, stream bytes and commands;
//! `poll_*` drains the packets to send, the streams to open, the events and the next timeout.

use crate::broadcast::{BroadcastQueue, NotifyId};
use crate::compact::{Addr, Bytes};
use crate::config::{push_pull_scale, retransmit_limit, suspicion_timeout, Config};
use crate::error::{Error, Result};
use crate::keyring::Keyring;
use crate::suspicion::Suspicion;
use crate::table::{IdTable, NameId, Names};
use crate::wire::{
    self, encode_compound, encode_compounds, encode_message, ip_bytes, socket_addr, Ack, Alive,
    Codec, Dead, ErrResp, IndirectPing, Message, Nack, NodeStateKind, Ping, PushNodeRef,
    PushNodeState, PushPull, StreamMessage, Suspect, COMPOUND_HEADER_OVERHEAD, COMPOUND_OVERHEAD,
    META_MAX_SIZE,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// memberlist's lowest and highest protocol versions understood.
pub const PROTOCOL_VERSION_MIN: u8 = 1;
/// See [`PROTOCOL_VERSION_MIN`].
pub const PROTOCOL_VERSION_MAX: u8 = 5;

/// One member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub addr: SocketAddr,
    pub meta: Vec<u8>,
    pub incarnation: u32,
    pub state: NodeStateKind,
    /// pmin, pmax, pcur, dmin, dmax, dcur
    pub vsn: [u8; 6],
}

impl Member {
    fn alive_msg(&self) -> Alive {
        Alive {
            incarnation: self.incarnation,
            node: self.name.clone(),
            addr: ip_bytes(self.addr.ip()),
            port: self.addr.port(),
            meta: self.meta.clone(),
            vsn: self.vsn.to_vec(),
        }
    }
}

/// One member as the table stores it: compact fields, the name kept by [`Names`].
#[derive(Debug, Clone)]
struct NodeEntry {
    addr: Addr,
    meta: Bytes,
    incarnation: u32,
    state: NodeStateKind,
    /// pmin, pmax, pcur, dmin, dmax, dcur
    vsn: [u8; 6],
}

impl NodeEntry {
    fn dead_or_left(&self) -> bool {
        matches!(self.state, NodeStateKind::Dead | NodeStateKind::Left)
    }

    fn member(&self, name: &str) -> Member {
        Member {
            name: name.to_owned(),
            addr: self.addr.socket_addr(),
            meta: self.meta.to_vec(),
            incarnation: self.incarnation,
            state: self.state,
            vsn: self.vsn,
        }
    }
}

/// A member's stored fields, borrowed: what the layer above reads instead of keeping its own
/// copy of the address, metadata and versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberInfo<'a> {
    pub name: &'a str,
    pub addr: SocketAddr,
    pub meta: &'a [u8],
    pub incarnation: u32,
    pub state: NodeStateKind,
    pub vsn: [u8; 6],
}

impl MemberInfo<'_> {
    /// As an owned [`Member`].
    pub fn to_member(&self) -> Member {
        Member {
            name: self.name.to_owned(),
            addr: self.addr,
            meta: self.meta.to_vec(),
            incarnation: self.incarnation,
            state: self.state,
            vsn: self.vsn,
        }
    }
}

/// The member table: names in a shared [`Names`] registry, entries by name id. Entries the
/// core forgets while the layer above still holds their name (Serf keeps failed and left
/// members far longer than memberlist does) move to `retired`, where only
/// [`Swim::member_info`] sees them.
#[derive(Debug, Default)]
struct Nodes {
    names: Names,
    table: IdTable<NodeEntry>,
    retired: HashMap<NameId, NodeEntry>,
    /// When each dead or left node changed to that state (memberlist's `StateChange`, which
    /// is only ever read for those states): beside the table, since only the few gone nodes
    /// need it.
    down_since: HashMap<NameId, Instant>,
}

impl Nodes {
    fn id(&self, name: &str) -> Option<NameId> {
        self.names.find(name).filter(|&id| self.table.contains(id))
    }

    fn get(&self, name: &str) -> Option<&NodeEntry> {
        self.table.get(self.names.find(name)?)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut NodeEntry> {
        self.table.get_mut(self.names.find(name)?)
    }

    fn at(&self, id: NameId) -> Option<&NodeEntry> {
        self.table.get(id)
    }

    fn name(&self, id: NameId) -> &str {
        self.names.resolve(id)
    }

    fn member(&self, id: NameId) -> Option<Member> {
        self.table.get(id).map(|e| e.member(self.names.resolve(id)))
    }

    fn iter(&self) -> impl Iterator<Item = (NameId, &NodeEntry)> {
        self.table.iter()
    }

    fn ids(&self) -> impl Iterator<Item = NameId> + '_ {
        self.table.ids()
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    /// Adds an entry for a name not in the table.
    fn insert(&mut self, name: &str, e: NodeEntry) -> NameId {
        let id = self.names.acquire(name);
        self.retired.remove(&id);
        let old = self.table.insert(id, e);
        debug_assert!(old.is_none(), "insert of a present node");
        id
    }

    /// Records a change of `id`'s state at `now`.
    fn state_changed(&mut self, id: NameId, now: Instant) {
        if self.table.get(id).is_some_and(NodeEntry::dead_or_left) {
            self.down_since.insert(id, now);
        } else {
            self.down_since.remove(&id);
        }
    }

    /// How long a dead or left node has been so (zero for a live one).
    fn down_for(&self, id: NameId, now: Instant) -> Duration {
        self.down_since
            .get(&id)
            .map_or(Duration::ZERO, |&t| now.saturating_duration_since(t))
    }

    fn remove(&mut self, name: &str) {
        let Some(id) = self.id(name) else { return };
        self.down_since.remove(&id);
        let e = self.table.remove(id).expect("present");
        if self.names.holds(id) > 1 {
            self.retired.insert(id, e);
        }
        self.names.release(id);
    }

    fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
            + crate::heap::hash_map(&self.retired)
            + crate::heap::hash_map(&self.down_since)
            + self
                .retired
                .values()
                .map(|e| e.meta.heap_bytes())
                .sum::<usize>()
    }
}

/// A UDP datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

/// Identifies an outgoing stream the core asked the driver to open.
pub type StreamId = u64;

/// "Open a TCP connection to `dst`, write `payload`, and (when `expect_reply`) feed what comes
/// back to [`Swim::handle_stream_reply`]; give up at `deadline`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    pub id: StreamId,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
    pub expect_reply: bool,
    pub deadline: Instant,
}

/// What the driver should do after feeding stream bytes to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOutcome {
    /// The bytes so far are an incomplete message: read more (until the TCP timeout).
    NeedMore,
    /// Write these bytes back, then close.
    Reply(Vec<u8>),
    /// Nothing to write back: close.
    Done,
}

/// Identifies one call to [`Swim::join`].
pub type JoinId = u64;

/// Something the layer above (Serf) or the operator needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A node joined (or came back from dead/left). Also emitted once for ourselves at start.
    MemberJoined(Member),
    /// A live node's metadata changed.
    MemberUpdated(Member),
    /// A node left gracefully.
    MemberLeft(Member),
    /// A node was declared dead.
    MemberFailed(Member),
    /// An opaque user message (Serf's messages) arrived by gossip or stream.
    UserMessage(Vec<u8>),
    /// Another node claims the name of `existing` from address `other` (memberlist's
    /// `NotifyConflict`); Serf resolves conflicts about its own name by a vote.
    NameConflict { existing: Member, other: SocketAddr },
    /// A broadcast queued with [`Swim::queue_user_broadcast_notify`] is done.
    UserBroadcastDone(NotifyId),
    /// The opaque user state from a push/pull exchange.
    RemoteState { join: bool, state: Vec<u8> },
    /// A direct probe was acknowledged; `payload` is the peer's ack payload (Serf's coordinate).
    PingComplete {
        node: String,
        rtt: Duration,
        payload: Vec<u8>,
    },
    /// Every address of one [`Swim::join`] call was tried.
    JoinFinished {
        id: JoinId,
        joined: usize,
        errors: Vec<(SocketAddr, String)>,
    },
    /// Our leave message has been disseminated (or there was nobody to tell).
    LeaveComplete,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for a direct ack until `probe_timeout`.
    Direct,
    /// Indirect probes and the TCP ping are out; the verdict comes at the deadline.
    Indirect {
        expected_nacks: usize,
        nacks: usize,
        tcp: Option<StreamId>,
        tcp_ok: bool,
    },
}

#[derive(Debug)]
struct Probe {
    seq: u32,
    target: String,
    sent: Instant,
    timeout_at: Instant,
    deadline: Instant,
    phase: Phase,
}

#[derive(Debug)]
enum AckKind {
    /// The ack for our current probe (direct or through a relay).
    Probe,
    /// We relay an indirect ping: forward the ack, or send a nack when it expires.
    Relay {
        seq: u32,
        reply_to: SocketAddr,
        reply_node: String,
        nack: bool,
    },
}

#[derive(Debug)]
struct AckHandler {
    kind: AckKind,
    expires: Instant,
}

#[derive(Debug)]
enum StreamPurpose {
    PushPull {
        join: Option<JoinId>,
        dst: SocketAddr,
    },
    TcpPing {
        seq: u32,
    },
    Fire,
}

#[derive(Debug)]
struct JoinState {
    pending: usize,
    joined: usize,
    errors: Vec<(SocketAddr, String)>,
}

const LEAVE_NOTIFY: NotifyId = 1;

/// The membership state machine of one node.
#[derive(Debug)]
pub struct Swim {
    config: Config,
    codec: Codec,
    rng: StdRng,
    nodes: Nodes,
    /// Probe order: memberlist's shuffled node list (name ids in `nodes`).
    order: Vec<NameId>,
    probe_index: usize,
    probe: Option<Probe>,
    acks: HashMap<u32, AckHandler>,
    suspicions: HashMap<String, Suspicion>,
    seq: u32,
    incarnation: u32,
    awareness: u32,
    broadcasts: BroadcastQueue,
    user_broadcasts: BroadcastQueue,
    user_state: Vec<u8>,
    ack_payload: Vec<u8>,
    next_probe: Instant,
    next_gossip: Instant,
    next_push_pull: Instant,
    /// False until the start-up stagger of the push/pull timer has passed.
    push_pull_staggered: bool,
    streams: HashMap<StreamId, StreamPurpose>,
    next_stream: StreamId,
    joins: HashMap<JoinId, JoinState>,
    next_join: JoinId,
    leaving: bool,
    /// The leave went out ([`Event::LeaveComplete`] was raised).
    left: bool,
    next_notify: NotifyId,
    transmits: VecDeque<Transmit>,
    stream_requests: VecDeque<StreamRequest>,
    events: VecDeque<Event>,
}

impl Swim {
    /// A node that knows only itself. `seed` drives every random choice (and nonces: in
    /// production pass a seed from the OS's entropy).
    pub fn new(
        config: Config,
        keyring: Option<Keyring>,
        meta: Vec<u8>,
        seed: u64,
        now: Instant,
    ) -> Result<Self> {
        config.validate()?;
        if meta.len() > META_MAX_SIZE {
            return Err(Error::MetaTooLarge(meta.len()));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let codec = Codec::try_new(config.wire.clone(), keyring)?;
        let me = Member {
            name: config.name.clone(),
            addr: config.advertise,
            meta,
            incarnation: 0,
            state: NodeStateKind::Alive,
            vsn: [
                PROTOCOL_VERSION_MIN,
                PROTOCOL_VERSION_MAX,
                config.protocol_version,
                config.delegate_versions[0],
                config.delegate_versions[1],
                config.delegate_versions[2],
            ],
        };
        // Stagger the first ticks like memberlist does, so nodes started together drift apart.
        let stagger = |rng: &mut StdRng, d: Duration| d.mul_f64(rng.gen::<f64>());
        let next_probe = now + stagger(&mut rng, config.probe_interval);
        let next_gossip = now + stagger(&mut rng, config.gossip_interval);
        // memberlist waits a random stagger, then a full interval scaled by the cluster size
        // at that moment (see `push_pull_staggered`).
        let next_push_pull = now + stagger(&mut rng, config.push_pull_interval);
        let mut swim = Self {
            codec,
            rng,
            nodes: Nodes::default(),
            order: Vec::new(),
            probe_index: 0,
            probe: None,
            acks: HashMap::new(),
            suspicions: HashMap::new(),
            seq: 0,
            incarnation: 0,
            awareness: 0,
            broadcasts: BroadcastQueue::new(),
            user_broadcasts: BroadcastQueue::new(),
            user_state: Vec::new(),
            ack_payload: Vec::new(),
            next_probe,
            next_gossip,
            next_push_pull,
            push_pull_staggered: false,
            streams: HashMap::new(),
            next_stream: 1,
            joins: HashMap::new(),
            next_join: 1,
            leaving: false,
            left: false,
            next_notify: 1,
            transmits: VecDeque::new(),
            stream_requests: VecDeque::new(),
            events: VecDeque::new(),
            config,
        };
        // memberlist's setAlive: announce ourselves with the next incarnation.
        let mut alive = me.alive_msg();
        alive.incarnation = swim.next_incarnation();
        swim.alive_node(now, alive, true);
        Ok(swim)
    }

    // ----- accessors -------------------------------------------------------------------

    /// Where this core's heap goes, per table (estimated from capacities; the scale bench
    /// divides by the member count for the cost of one member entry).
    pub fn heap_breakdown(&self) -> Vec<crate::heap::Line> {
        use crate::heap;
        let meta: usize = self.nodes.iter().map(|(_, e)| e.meta.heap_bytes()).sum();
        let susp: usize = self.suspicions.keys().map(|k| k.capacity()).sum();
        vec![
            ("swim: member table (slots)", self.nodes.heap_bytes()),
            (
                "swim+serf: member names (shared registry)",
                self.nodes.names.heap_bytes(),
            ),
            ("swim: member meta beyond 7 bytes (Serf tags)", meta),
            ("swim: probe order (slot ids)", heap::vec(&self.order)),
            ("swim: suspicions", heap::hash_map(&self.suspicions) + susp),
            (
                "swim: broadcast queues",
                self.broadcasts.heap_bytes() + self.user_broadcasts.heap_bytes(),
            ),
            (
                "swim: pending outputs",
                heap::deque(&self.events) + heap::deque(&self.transmits),
            ),
        ]
    }

    /// Drops every queued membership broadcast (alive, suspect and dead messages; user
    /// broadcasts stay). For simulations that start from a converged cluster: after a
    /// bootstrap push/pull every node would otherwise re-gossip all N members it just learned
    /// (memberlist does after a real join), although every node already knows them.
    #[cfg(feature = "testing")]
    pub fn clear_broadcasts(&mut self) {
        self.broadcasts.clear();
        while self.broadcasts.poll_finished().is_some() {}
    }

    /// This node's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This node as the cluster sees it.
    pub fn local(&self) -> Member {
        self.member(&self.config.name)
            .expect("the local node is never removed")
    }

    /// Every known member, including dead and left ones not yet reaped (built on demand:
    /// the table stores members compactly).
    pub fn members(&self) -> impl Iterator<Item = Member> + '_ {
        self.nodes
            .iter()
            .map(|(id, e)| e.member(self.nodes.name(id)))
    }

    /// A member by name.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.nodes.member(self.nodes.id(name)?)
    }

    /// Members that are alive or suspect (memberlist's `NumMembers` counts these).
    pub fn num_alive(&self) -> usize {
        self.nodes.iter().filter(|(_, e)| !e.dead_or_left()).count()
    }

    // ----- names shared with the layer above -------------------------------------------

    /// The id of a name the table or the layer above holds.
    pub fn name_id(&self, name: &str) -> Option<NameId> {
        self.nodes.names.find(name)
    }

    /// The name of a held id.
    pub fn name_of(&self, id: NameId) -> &str {
        self.nodes.names.resolve(id)
    }

    /// Takes a hold on `name` for the layer above, which keeps per-member state by this id
    /// (Serf's member table); while held, the id stays and [`Swim::member_info`] keeps the
    /// member's last fields even after this core forgets the member.
    pub fn hold_name(&mut self, name: &str) -> NameId {
        self.nodes.names.acquire(name)
    }

    /// Gives back a hold taken with [`Swim::hold_name`].
    pub fn release_name(&mut self, id: NameId) {
        self.nodes.names.release(id);
        if self.nodes.names.holds(id) == 0 {
            self.nodes.retired.remove(&id);
        }
    }

    /// The fields of member `id`: as the table has them, or, for a member this core has
    /// forgotten while the layer above holds its name, as they were when it was forgotten.
    pub fn member_info(&self, id: NameId) -> Option<MemberInfo<'_>> {
        let e = self
            .nodes
            .table
            .get(id)
            .or_else(|| self.nodes.retired.get(&id))?;
        Some(MemberInfo {
            name: self.nodes.names.resolve(id),
            addr: e.addr.socket_addr(),
            meta: &e.meta,
            incarnation: e.incarnation,
            state: e.state,
            vsn: e.vsn,
        })
    }

    /// True when the next `handle_timeout(now)` starts a periodic push/pull (so a layer above
    /// knows to refresh its user state first, instead of re-encoding it on every tick).
    pub fn push_pull_due(&self, now: Instant) -> bool {
        self.push_pull_staggered && now >= self.next_push_pull
    }

    /// memberlist's health score (0 = healthy, up to `awareness_max_multiplier - 1`).
    pub fn health_score(&self) -> u32 {
        self.awareness
    }

    /// The keyring, if encryption is on.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.codec.keyring.as_ref()
    }

    /// Mutable access to the keyring, for key rotation.
    pub fn keyring_mut(&mut self) -> Option<&mut Keyring> {
        self.codec.keyring.as_mut()
    }

    /// memberlist's `estNumNodes`: the node count used by the scaling formulas.
    fn est_num_nodes(&self) -> usize {
        self.nodes.len()
    }

    // ----- commands --------------------------------------------------------------------

    /// Contacts each address with a push/pull join; [`Event::JoinFinished`] reports the result.
    pub fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> JoinId {
        let id = self.next_join;
        self.next_join += 1;
        self.joins.insert(
            id,
            JoinState {
                pending: addrs.len(),
                joined: 0,
                errors: Vec::new(),
            },
        );
        for &dst in addrs {
            self.start_push_pull(now, dst, Some(id));
        }
        self.maybe_finish_join(id);
        id
    }

    /// Broadcasts our graceful leave; [`Event::LeaveComplete`] follows once it went out.
    pub fn leave(&mut self, now: Instant) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        let me = self.local();
        let anyone = self
            .nodes
            .iter()
            .any(|(id, e)| self.nodes.name(id) != me.name && !e.dead_or_left());
        self.dead_node(
            now,
            Dead {
                incarnation: me.incarnation,
                node: me.name.clone(),
                from: me.name.clone(),
            },
        );
        if !anyone {
            self.broadcasts.clear();
            while self.broadcasts.poll_finished().is_some() {}
            self.left = true;
            self.events.push_back(Event::LeaveComplete);
        }
    }

    /// True once [`Swim::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.leaving
    }

    /// True once the graceful leave went out ([`Event::LeaveComplete`] was raised).
    pub fn leave_finished(&self) -> bool {
        self.left
    }

    /// Replaces our metadata and announces it with a new incarnation (memberlist's `UpdateNode`).
    pub fn set_meta(&mut self, now: Instant, meta: Vec<u8>) -> Result<()> {
        if meta.len() > META_MAX_SIZE {
            return Err(Error::MetaTooLarge(meta.len()));
        }
        let mut alive = self.local().alive_msg();
        alive.incarnation = self.next_incarnation();
        alive.meta = meta;
        self.alive_node(now, alive, true);
        Ok(())
    }

    /// Queues an opaque user broadcast to piggyback on gossip, retransmitted like memberlist's
    /// own broadcasts. `subject` lets a newer message replace an older one still queued.
    pub fn queue_user_broadcast(&mut self, msg: Vec<u8>, subject: Option<String>) {
        self.queue_user_broadcast_inner(msg, subject, None);
    }

    /// Like [`Swim::queue_user_broadcast`], and [`Event::UserBroadcastDone`] with the returned
    /// id follows once the broadcast was sent its last time or superseded (Serf waits on this
    /// for its leave intent).
    pub fn queue_user_broadcast_notify(
        &mut self,
        msg: Vec<u8>,
        subject: Option<String>,
    ) -> NotifyId {
        let id = self.next_notify;
        self.next_notify += 1;
        self.queue_user_broadcast_inner(msg, subject, Some(id));
        id
    }

    /// The user broadcasts still queued for gossip, as given to
    /// [`Swim::queue_user_broadcast`] (without the framing byte), in no particular order.
    pub fn queued_user_broadcasts(&self) -> impl Iterator<Item = &[u8]> {
        self.user_broadcasts.messages().map(|m| &m[1..])
    }

    fn queue_user_broadcast_inner(
        &mut self,
        msg: Vec<u8>,
        subject: Option<String>,
        notify: Option<NotifyId>,
    ) {
        // memberlist's getBroadcasts frames each delegate broadcast with the userMsg type
        // byte (counting userMsgOverhead against the budget); framing it here does both.
        let mut framed = Vec::with_capacity(msg.len() + 1);
        framed.push(wire::MessageType::User as u8);
        framed.extend_from_slice(&msg);
        self.user_broadcasts.push(framed, subject, notify);
    }

    /// Sends an opaque user message in one UDP packet (memberlist's `SendToAddress`).
    pub fn send_user_packet(&mut self, dst: SocketAddr, msg: &[u8]) {
        let mut buf = Vec::with_capacity(msg.len() + 1);
        buf.push(wire::MessageType::User as u8);
        buf.extend_from_slice(msg);
        self.send_raw(dst, None, buf);
    }

    /// Sends an opaque user message over a stream (memberlist's `SendReliable`).
    pub fn send_user_stream(&mut self, now: Instant, dst: SocketAddr, msg: Vec<u8>) {
        let payload = self
            .codec
            .seal_stream(&StreamMessage::User(msg), &mut self.rng);
        self.open_stream(now, dst, payload, false, StreamPurpose::Fire);
    }

    /// Sets the opaque state sent in push/pull exchanges (Serf's `LocalState`).
    pub fn set_user_state(&mut self, state: Vec<u8>) {
        self.user_state = state;
    }

    /// Sets the payload we attach to acks (Serf's Vivaldi coordinate).
    pub fn set_ack_payload(&mut self, payload: Vec<u8>) {
        self.ack_payload = payload;
    }

    // ----- outputs ---------------------------------------------------------------------

    /// The next UDP datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let next = self.transmits.pop_front();
        if next.is_none() {
            crate::heap::release_idle(&mut self.transmits);
        }
        next
    }

    /// The next stream to open.
    pub fn poll_stream(&mut self) -> Option<StreamRequest> {
        let next = self.stream_requests.pop_front();
        if next.is_none() {
            crate::heap::release_idle(&mut self.stream_requests);
        }
        next
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        let next = self.events.pop_front();
        if next.is_none() {
            crate::heap::release_idle(&mut self.events);
        }
        next
    }

    /// When [`Swim::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self
            .next_gossip
            .min(self.next_probe)
            .min(self.next_push_pull);
        if let Some(p) = &self.probe {
            t = t.min(match p.phase {
                Phase::Direct => p.timeout_at,
                Phase::Indirect { .. } => p.deadline,
            });
        }
        for h in self.acks.values() {
            t = t.min(h.expires);
        }
        for s in self.suspicions.values() {
            t = t.min(s.deadline());
        }
        Some(t)
    }

    // ----- inputs ----------------------------------------------------------------------

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_acks(now);
        self.advance_probe(now);
        self.expire_suspicions(now);
        if now >= self.next_probe && self.probe.is_none() {
            self.start_probe(now);
        }
        if now >= self.next_gossip {
            self.next_gossip = next_tick(self.next_gossip, now, self.config.gossip_interval);
            self.gossip(now);
        }
        if now >= self.next_push_pull {
            let n = self.est_num_nodes();
            self.next_push_pull = now + push_pull_scale(self.config.push_pull_interval, n);
            if self.push_pull_staggered {
                self.periodic_push_pull(now);
            }
            self.push_pull_staggered = true;
        }
        self.collect_finished();
    }

    /// A UDP datagram arrived from `from`.
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) {
        let opened = match self.codec.open_packet(buf) {
            Ok(o) => o,
            Err(e) => {
                warn!(node = %self.config.name, %from, error = %e, "memberlist: dropping packet");
                return;
            }
        };
        for e in &opened.errors {
            warn!(node = %self.config.name, %from, error = %e, "memberlist: dropping part of a packet");
        }
        for msg in opened.messages {
            self.handle_message(now, from, msg);
        }
        self.collect_finished();
    }

    /// Bytes arrived on an incoming TCP connection from `from`: `buf` holds everything read
    /// so far. Returns what to do with the connection.
    pub fn handle_stream(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) -> StreamOutcome {
        let msg = match self.codec.open_stream(buf) {
            Ok(None) => return StreamOutcome::NeedMore,
            Ok(Some((msg, _))) => msg,
            Err(e) => {
                warn!(node = %self.config.name, %from, error = %e, "memberlist: failed to receive stream");
                let reply = StreamMessage::Err(ErrResp {
                    error: e.to_string(),
                });
                return StreamOutcome::Reply(self.codec.seal_stream_reply(&reply, &mut self.rng));
            }
        };
        let outcome = match msg {
            StreamMessage::Ping(p) => {
                if !p.node.is_empty() && p.node != self.config.name {
                    // memberlist's handleConn logs and closes the connection without a reply.
                    warn!(node = %self.config.name, %from, target = %p.node, "memberlist: got stream ping for another node");
                    StreamOutcome::Done
                } else {
                    let ack = StreamMessage::Ack(Ack {
                        seq_no: p.seq_no,
                        payload: Vec::new(),
                    });
                    StreamOutcome::Reply(self.codec.seal_stream_reply(&ack, &mut self.rng))
                }
            }
            StreamMessage::PushPull(pp) => {
                let join = pp.join;
                let reply = self.local_state(join, false);
                if let Err(e) = self.merge_remote_state(now, pp) {
                    warn!(node = %self.config.name, %from, error = %e, "memberlist: push/pull merge failed");
                }
                StreamOutcome::Reply(reply)
            }
            StreamMessage::User(m) => {
                self.events.push_back(Event::UserMessage(m));
                StreamOutcome::Done
            }
            StreamMessage::Ack(_) => {
                warn!(node = %self.config.name, %from, "memberlist: unexpected ack on an incoming stream");
                StreamOutcome::Done
            }
            StreamMessage::Err(e) => {
                warn!(node = %self.config.name, %from, error = %e.error, "memberlist: remote error on stream");
                StreamOutcome::Done
            }
        };
        self.collect_finished();
        outcome
    }

    /// Bytes arrived in reply on a stream we opened. `buf` holds everything read so far.
    /// Returns [`StreamOutcome::NeedMore`] until the reply is complete.
    pub fn handle_stream_reply(&mut self, now: Instant, id: StreamId, buf: &[u8]) -> StreamOutcome {
        if !self.streams.contains_key(&id) {
            return StreamOutcome::Done;
        }
        // A reply carries no label header: memberlist writes it from the dialing side only.
        let msg = match self.codec.open_stream_reply(buf) {
            Ok(None) => return StreamOutcome::NeedMore,
            Ok(Some((msg, _))) => msg,
            Err(e) => {
                self.handle_stream_failed(now, id, &e.to_string());
                return StreamOutcome::Done;
            }
        };
        let purpose = self.streams.remove(&id).expect("checked above");
        match (purpose, msg) {
            (StreamPurpose::PushPull { join, dst }, StreamMessage::PushPull(pp)) => {
                let result = self.merge_remote_state(now, pp);
                if let Err(e) = &result {
                    warn!(node = %self.config.name, %dst, error = %e, "memberlist: push/pull failed");
                }
                if let Some(j) = join {
                    self.join_result(j, dst, result.map_err(|e| e.to_string()));
                }
            }
            (StreamPurpose::TcpPing { seq }, StreamMessage::Ack(ack)) => {
                if ack.seq_no == seq {
                    if let Some(p) = &mut self.probe {
                        if let Phase::Indirect { tcp, tcp_ok, .. } = &mut p.phase {
                            if *tcp == Some(id) {
                                *tcp_ok = true;
                            }
                        }
                    }
                } else {
                    warn!(node = %self.config.name, want = seq, got = ack.seq_no, "memberlist: TCP ping ack with wrong sequence number");
                }
            }
            (purpose, StreamMessage::Err(e)) => {
                self.fail_stream(id, purpose, &format!("remote error: {}", e.error))
            }
            (purpose, other) => {
                let what = format!("unexpected reply {:?}", std::mem::discriminant(&other));
                self.fail_stream(id, purpose, &what)
            }
        }
        self.collect_finished();
        StreamOutcome::Done
    }

    /// A stream we opened could not be connected, written or read (or timed out).
    pub fn handle_stream_failed(&mut self, _now: Instant, id: StreamId, error: &str) {
        if let Some(purpose) = self.streams.remove(&id) {
            self.fail_stream(id, purpose, error);
        }
        self.collect_finished();
    }

    /// A stream we opened without expecting a reply was written successfully.
    pub fn handle_stream_sent(&mut self, id: StreamId) {
        self.streams.remove(&id);
    }

    fn fail_stream(&mut self, _id: StreamId, purpose: StreamPurpose, error: &str) {
        match purpose {
            StreamPurpose::PushPull { join: Some(j), dst } => {
                warn!(node = %self.config.name, %dst, error, "memberlist: failed to join");
                self.join_result(j, dst, Err(error.to_owned()));
            }
            StreamPurpose::PushPull { join: None, dst } => {
                warn!(node = %self.config.name, %dst, error, "memberlist: push/pull failed");
            }
            StreamPurpose::TcpPing { .. } => {
                debug!(node = %self.config.name, error, "memberlist: failed fallback ping");
            }
            StreamPurpose::Fire => {
                warn!(node = %self.config.name, error, "memberlist: failed to send stream message");
            }
        }
    }

    // ----- message handling ------------------------------------------------------------

    fn handle_message(&mut self, now: Instant, from: SocketAddr, msg: Message) {
        match msg {
            Message::Ping(p) => self.handle_ping(from, p),
            Message::IndirectPing(ind) => self.handle_indirect_ping(now, from, ind),
            Message::Ack(ack) => self.handle_ack(now, ack),
            Message::Nack(nack) => self.handle_nack(nack),
            Message::Suspect(s) => self.suspect_node(now, s),
            Message::Alive(a) => self.alive_node(now, a, false),
            Message::Dead(d) => self.dead_node(now, d),
            Message::User(m) => self.events.push_back(Event::UserMessage(m)),
            Message::Err(e) => {
                warn!(node = %self.config.name, %from, error = %e.error, "memberlist: remote error")
            }
        }
    }

    fn reply_addr(from: SocketAddr, addr: &[u8], port: u16) -> SocketAddr {
        if port > 0 {
            if let Some(a) = socket_addr(addr, port) {
                return a;
            }
        }
        from
    }

    fn handle_ping(&mut self, from: SocketAddr, p: Ping) {
        if !p.node.is_empty() && p.node != self.config.name {
            warn!(node = %self.config.name, %from, target = %p.node, "memberlist: got ping for unexpected node");
            return;
        }
        let ack = Ack {
            seq_no: p.seq_no,
            payload: self.ack_payload.clone(),
        };
        let dst = Self::reply_addr(from, &p.source_addr, p.source_port);
        let name = (!p.source_node.is_empty()).then_some(p.source_node);
        self.send_msg(dst, name, encode_message(&Message::Ack(ack)));
    }

    fn handle_indirect_ping(&mut self, now: Instant, from: SocketAddr, ind: IndirectPing) {
        let Some(target) = socket_addr(&ind.target, ind.port) else {
            warn!(node = %self.config.name, %from, "memberlist: indirect ping with a bad target address");
            return;
        };
        let seq = self.next_seq();
        let ping = self.ping_msg(seq, &ind.node);
        let reply_to = Self::reply_addr(from, &ind.source_addr, ind.source_port);
        self.acks.insert(
            seq,
            AckHandler {
                kind: AckKind::Relay {
                    seq: ind.seq_no,
                    reply_to,
                    reply_node: ind.source_node.clone(),
                    nack: ind.nack,
                },
                expires: now + self.config.probe_timeout,
            },
        );
        self.send_msg(target, Some(ind.node), encode_message(&Message::Ping(ping)));
    }

    fn handle_ack(&mut self, now: Instant, ack: Ack) {
        let Some(handler) = self.acks.remove(&ack.seq_no) else {
            return;
        };
        match handler.kind {
            AckKind::Probe => self.probe_acked(now, ack),
            AckKind::Relay {
                seq,
                reply_to,
                reply_node,
                ..
            } => {
                let fwd = Ack {
                    seq_no: seq,
                    payload: Vec::new(),
                };
                let name = (!reply_node.is_empty()).then_some(reply_node);
                self.send_msg(reply_to, name, encode_message(&Message::Ack(fwd)));
            }
        }
    }

    fn handle_nack(&mut self, nack: Nack) {
        if let Some(p) = &mut self.probe {
            if p.seq == nack.seq_no {
                if let Phase::Indirect { nacks, .. } = &mut p.phase {
                    *nacks += 1;
                }
            }
        }
    }

    fn expire_acks(&mut self, now: Instant) {
        let mut expired: Vec<u32> = self
            .acks
            .iter()
            .filter(|(_, h)| h.expires <= now)
            .map(|(s, _)| *s)
            .collect();
        // Sorted so a seeded run is reproducible whatever the hash map's order.
        expired.sort_unstable();
        for seq in expired {
            let h = self.acks.remove(&seq).expect("listed above");
            if let AckKind::Relay {
                seq,
                reply_to,
                reply_node,
                nack: true,
            } = h.kind
            {
                let name = (!reply_node.is_empty()).then_some(reply_node);
                self.send_msg(
                    reply_to,
                    name,
                    encode_message(&Message::Nack(Nack { seq_no: seq })),
                );
            }
        }
    }

    // ----- probing ---------------------------------------------------------------------

    fn scaled_probe_interval(&self) -> Duration {
        self.config.probe_interval * (self.awareness + 1)
    }

    fn apply_awareness(&mut self, delta: i64) {
        let max = self.config.awareness_max_multiplier.saturating_sub(1) as i64;
        let before = self.awareness;
        self.awareness = (self.awareness as i64 + delta).clamp(0, max) as u32;
        if self.awareness != before {
            debug!(node = %self.config.name, score = self.awareness, "memberlist: health score changed");
        }
    }

    /// memberlist's `probe`: pick the next node in the shuffled order that is not us and not
    /// dead or left; reshuffle and reap when the order wraps.
    fn start_probe(&mut self, now: Instant) {
        let interval = self.scaled_probe_interval();
        self.next_probe = now + interval;
        let mut checked = 0;
        let target = loop {
            if checked >= self.order.len() {
                return;
            }
            if self.probe_index >= self.order.len() {
                self.reset_nodes(now);
                self.probe_index = 0;
                checked += 1;
                continue;
            }
            let id = self.order[self.probe_index];
            self.probe_index += 1;
            let skip = match self.nodes.at(id) {
                Some(e) => self.nodes.name(id) == self.config.name || e.dead_or_left(),
                None => true,
            };
            if skip {
                checked += 1;
                continue;
            }
            break id;
        };
        let entry = self.nodes.at(target).expect("picked above");
        let addr = entry.addr.socket_addr();
        let state = entry.state;
        let incarnation = entry.incarnation;
        let target = self.nodes.name(target).to_owned();
        let seq = self.next_seq();
        let ping = encode_message(&Message::Ping(self.ping_msg(seq, &target)));
        self.acks.insert(
            seq,
            AckHandler {
                kind: AckKind::Probe,
                expires: now + interval,
            },
        );
        self.probe = Some(Probe {
            seq,
            target: target.clone(),
            sent: now,
            timeout_at: now + self.config.probe_timeout,
            deadline: now + interval,
            phase: Phase::Direct,
        });
        if state == NodeStateKind::Alive {
            self.send_msg(addr, Some(target), ping);
        } else {
            // Tack on the suspicion so the node gets a chance to refute it at once.
            let s = Suspect {
                incarnation,
                node: target.clone(),
                from: self.config.name.clone(),
            };
            let compound = encode_compound(&[ping, encode_message(&Message::Suspect(s))]);
            self.send_raw(addr, Some(&target), compound);
        }
    }

    fn probe_acked(&mut self, now: Instant, ack: Ack) {
        let Some(p) = self.probe.take() else { return };
        if matches!(p.phase, Phase::Direct) {
            self.events.push_back(Event::PingComplete {
                node: p.target.clone(),
                rtt: now.saturating_duration_since(p.sent),
                payload: ack.payload,
            });
        }
        self.apply_awareness(-1);
    }

    fn advance_probe(&mut self, now: Instant) {
        let Some(p) = &self.probe else { return };
        match p.phase {
            Phase::Direct if now >= p.timeout_at => self.start_indirect(),
            Phase::Indirect { .. } if now >= p.deadline => self.finish_failed_probe(now),
            _ => {}
        }
    }

    fn start_indirect(&mut self) {
        let p = self.probe.as_ref().expect("probe in progress");
        let (seq, target_name, deadline) = (p.seq, p.target.clone(), p.deadline);
        debug!(node = %self.config.name, target = %target_name, "memberlist: failed ping (timeout reached)");
        let Some(target) = self
            .nodes
            .id(&target_name)
            .and_then(|id| self.nodes.member(id))
        else {
            self.probe = None;
            return;
        };
        let me = self.config.name.clone();
        let peers = self.k_random_nodes(self.config.indirect_checks, |name, e, _| {
            name == me || name == target_name || e.state != NodeStateKind::Alive
        });
        let mut expected_nacks = 0;
        let adv = self.config.advertise;
        for peer in peers {
            let nack = peer.vsn[1] >= 4;
            if nack {
                expected_nacks += 1;
            }
            let ind = IndirectPing {
                seq_no: seq,
                target: ip_bytes(target.addr.ip()),
                port: target.addr.port(),
                node: target.name.clone(),
                nack,
                source_addr: ip_bytes(adv.ip()),
                source_port: adv.port(),
                source_node: me.clone(),
            };
            self.send_msg(
                peer.addr,
                Some(peer.name),
                encode_message(&Message::IndirectPing(ind)),
            );
        }
        let mut tcp = None;
        if !self.config.disable_tcp_pings && target.vsn[1] >= 3 {
            let ping = StreamMessage::Ping(self.ping_msg(seq, &target.name));
            let payload = self.codec.seal_stream(&ping, &mut self.rng);
            let id = self.next_stream;
            self.next_stream += 1;
            self.streams.insert(id, StreamPurpose::TcpPing { seq });
            self.stream_requests.push_back(StreamRequest {
                id,
                dst: target.addr,
                payload,
                expect_reply: true,
                deadline,
            });
            tcp = Some(id);
        }
        if let Some(p) = &mut self.probe {
            p.phase = Phase::Indirect {
                expected_nacks,
                nacks: 0,
                tcp,
                tcp_ok: false,
            };
        }
    }

    fn finish_failed_probe(&mut self, now: Instant) {
        let Some(p) = self.probe.take() else { return };
        self.acks.remove(&p.seq);
        let Phase::Indirect {
            expected_nacks,
            nacks,
            tcp,
            tcp_ok,
        } = p.phase
        else {
            return;
        };
        if let Some(id) = tcp {
            self.streams.remove(&id);
        }
        if tcp_ok {
            warn!(node = %self.config.name, target = %p.target, "memberlist: was able to connect over TCP but not UDP, network may be misconfigured");
            self.apply_awareness(-1);
            return;
        }
        let delta = if expected_nacks > 0 {
            expected_nacks.saturating_sub(nacks) as i64
        } else {
            1
        };
        self.apply_awareness(delta);
        let Some(entry) = self.nodes.get(&p.target) else {
            return;
        };
        info!(node = %self.config.name, target = %p.target, "memberlist: suspect has failed, no acks received");
        let s = Suspect {
            incarnation: entry.incarnation,
            node: p.target,
            from: self.config.name.clone(),
        };
        self.suspect_node(now, s);
    }

    /// memberlist's `resetNodes`: forget nodes dead or left for longer than
    /// `gossip_to_the_dead_time`, then reshuffle the probe order.
    fn reset_nodes(&mut self, now: Instant) {
        let limit = self.config.gossip_to_the_dead_time;
        let reaped: Vec<String> = self
            .nodes
            .iter()
            .filter(|(id, e)| {
                // memberlist would reap its own entry too once it has left, after which its
                // LocalNode dereferences nil; we keep it so `local()` stays valid.
                self.nodes.name(*id) != self.config.name
                    && e.dead_or_left()
                    && self.nodes.down_for(*id, now) > limit
            })
            .map(|(id, _)| self.nodes.name(id).to_owned())
            .collect();
        for name in reaped {
            debug!(node = %self.config.name, reaped = %name, "memberlist: forgetting dead node");
            self.nodes.remove(&name);
            self.suspicions.remove(&name);
        }
        // Sized exactly: collecting a filtered iterator would double its way up.
        let mut order: Vec<NameId> = Vec::with_capacity(self.nodes.len());
        order.extend(self.nodes.ids());
        let nodes = &self.nodes;
        order.sort_by(|&a, &b| nodes.name(a).cmp(nodes.name(b)));
        order.shuffle(&mut self.rng);
        self.order = order;
    }

    fn k_random_nodes(
        &mut self,
        k: usize,
        exclude: impl Fn(&str, &NodeEntry, Option<Instant>) -> bool,
    ) -> Vec<Member> {
        let n = self.order.len();
        let mut out: Vec<Member> = Vec::with_capacity(k);
        let mut tries = 0;
        while tries < 3 * n && out.len() < k {
            tries += 1;
            let id = self.order[self.rng.gen_range(0..n)];
            let Some(e) = self.nodes.at(id) else {
                continue;
            };
            let name = self.nodes.name(id);
            let down = self.nodes.down_since.get(&id).copied();
            if exclude(name, e, down) || out.iter().any(|m| m.name == name) {
                continue;
            }
            out.push(e.member(name));
        }
        out
    }

    // ----- gossip and anti-entropy ---------------------------------------------------------

    fn gossip(&mut self, now: Instant) {
        let me = self.config.name.clone();
        let dead_time = self.config.gossip_to_the_dead_time;
        let peers = self.k_random_nodes(self.config.gossip_nodes, |name, e, down| {
            if name == me {
                return true;
            }
            match e.state {
                NodeStateKind::Alive | NodeStateKind::Suspect => false,
                NodeStateKind::Dead => {
                    down.is_some_and(|t| now.saturating_duration_since(t) > dead_time)
                }
                NodeStateKind::Left => true,
            }
        });
        let avail =
            self.config.udp_buffer_size - COMPOUND_HEADER_OVERHEAD - self.encrypt_overhead();
        for peer in peers {
            let msgs = self.take_broadcasts(COMPOUND_OVERHEAD, avail);
            if msgs.is_empty() {
                return;
            }
            self.send_parts(peer.addr, Some(&peer.name), msgs);
        }
    }

    fn periodic_push_pull(&mut self, now: Instant) {
        let me = self.config.name.clone();
        let peers = self.k_random_nodes(1, |name, e, _| {
            name == me || e.state != NodeStateKind::Alive
        });
        if let Some(peer) = peers.into_iter().next() {
            self.start_push_pull(now, peer.addr, None);
        }
    }

    fn start_push_pull(&mut self, now: Instant, dst: SocketAddr, join: Option<JoinId>) {
        let payload = self.local_state(join.is_some(), true);
        self.open_stream(
            now,
            dst,
            payload,
            true,
            StreamPurpose::PushPull { join, dst },
        );
    }

    fn open_stream(
        &mut self,
        now: Instant,
        dst: SocketAddr,
        payload: Vec<u8>,
        expect_reply: bool,
        purpose: StreamPurpose,
    ) -> StreamId {
        let id = self.next_stream;
        self.next_stream += 1;
        self.streams.insert(id, purpose);
        self.stream_requests.push_back(StreamRequest {
            id,
            dst,
            payload,
            expect_reply,
            deadline: now + self.config.tcp_timeout,
        });
        id
    }

    /// Our side of a push/pull: every node we know, then the user state. `dialing` says
    /// whether we opened the connection (only that side writes the label header).
    fn local_state(&mut self, join: bool, dialing: bool) -> Vec<u8> {
        // Encoded straight from the table: N members would otherwise be copied into owned
        // states (four heap blocks each) only to be written out and dropped.
        let names = &self.nodes.names;
        let mut nodes: Vec<PushNodeRef<'_>> = self
            .nodes
            .table
            .iter()
            .map(|(id, e)| PushNodeRef {
                name: names.resolve(id),
                addr: e.addr.ip_bytes(),
                port: e.addr.port(),
                meta: &e.meta,
                incarnation: e.incarnation,
                state: e.state,
                vsn: &e.vsn,
            })
            .collect();
        nodes.sort_unstable_by(|a, b| a.name.cmp(b.name));
        self.codec
            .seal_push_pull(join, &nodes, &self.user_state, dialing, &mut self.rng)
    }

    fn merge_remote_state(&mut self, now: Instant, pp: PushPull) -> Result<()> {
        self.verify_protocol(&pp.nodes)?;
        for r in pp.nodes {
            match r.state {
                NodeStateKind::Alive => {
                    let a = Alive {
                        incarnation: r.incarnation,
                        node: r.name,
                        addr: r.addr,
                        port: r.port,
                        meta: r.meta,
                        vsn: r.vsn,
                    };
                    self.alive_node(now, a, false);
                }
                NodeStateKind::Left => {
                    let d = Dead {
                        incarnation: r.incarnation,
                        node: r.name.clone(),
                        from: r.name,
                    };
                    self.dead_node(now, d);
                }
                // Dead and suspect both become a local suspicion: we let our own probes decide.
                NodeStateKind::Dead | NodeStateKind::Suspect => {
                    let s = Suspect {
                        incarnation: r.incarnation,
                        node: r.name,
                        from: self.config.name.clone(),
                    };
                    self.suspect_node(now, s);
                }
            }
        }
        if !pp.user_state.is_empty() {
            self.events.push_back(Event::RemoteState {
                join: pp.join,
                state: pp.user_state,
            });
        }
        Ok(())
    }

    /// memberlist's `verifyProtocol`: the range everyone understands comes from the alive
    /// nodes only (theirs and ours); then every node's current protocol and delegate versions,
    /// whatever its state, must fall inside it. Entries without versions are skipped.
    fn verify_protocol(&self, remote: &[PushNodeState]) -> Result<()> {
        let remote_vsn = |r: &PushNodeState| {
            let mut v = [0u8; 6];
            if r.vsn.len() >= 6 {
                v.copy_from_slice(&r.vsn[..6]);
            }
            (r.state, v)
        };
        let vsns: Vec<(NodeStateKind, [u8; 6])> = remote
            .iter()
            .map(remote_vsn)
            .chain(self.nodes.iter().map(|(_, e)| (e.state, e.vsn)))
            .filter(|(_, v)| !(v[0] == 0 && v[1] == 0))
            .collect();
        let (mut maxpmin, mut minpmax, mut maxdmin, mut mindmax) = (0u8, u8::MAX, 0u8, u8::MAX);
        for (_, v) in vsns.iter().filter(|(s, _)| *s == NodeStateKind::Alive) {
            maxpmin = maxpmin.max(v[0]);
            minpmax = minpmax.min(v[1]);
            maxdmin = maxdmin.max(v[3]);
            mindmax = mindmax.min(v[4]);
        }
        for (_, v) in &vsns {
            if v[2] < maxpmin || v[2] > minpmax {
                return Err(Error::Remote(format!(
                    "node speaks protocol {} outside the cluster's range [{maxpmin}, {minpmax}]",
                    v[2]
                )));
            }
            if v[5] < maxdmin || v[5] > mindmax {
                return Err(Error::Remote(format!(
                    "node speaks delegate protocol {} outside the cluster's range [{maxdmin}, {mindmax}]",
                    v[5]
                )));
            }
        }
        Ok(())
    }

    fn join_result(
        &mut self,
        id: JoinId,
        dst: SocketAddr,
        result: std::result::Result<(), String>,
    ) {
        if let Some(j) = self.joins.get_mut(&id) {
            j.pending = j.pending.saturating_sub(1);
            match result {
                Ok(()) => j.joined += 1,
                Err(e) => j.errors.push((dst, e)),
            }
        }
        self.maybe_finish_join(id);
    }

    fn maybe_finish_join(&mut self, id: JoinId) {
        if self.joins.get(&id).is_some_and(|j| j.pending == 0) {
            let j = self.joins.remove(&id).expect("present");
            self.events.push_back(Event::JoinFinished {
                id,
                joined: j.joined,
                errors: j.errors,
            });
        }
    }

    // ----- state transitions (memberlist's aliveNode / suspectNode / deadNode) ------------

    fn alive_node(&mut self, now: Instant, a: Alive, bootstrap: bool) {
        let is_local = a.node == self.config.name;
        if self.leaving && is_local {
            return;
        }
        if a.vsn.len() >= 3 {
            let (pmin, pmax) = (a.vsn[0], a.vsn[1]);
            if pmin == 0 || pmax == 0 || pmin > pmax {
                warn!(node = %self.config.name, peer = %a.node, "memberlist: ignoring alive message with bad protocol versions");
                return;
            }
        }
        let Some(addr) = socket_addr(&a.addr, a.port) else {
            warn!(node = %self.config.name, peer = %a.node, "memberlist: ignoring alive message with a bad address");
            return;
        };
        // One name lookup per message: a push/pull merges N of these.
        let mut updates_node = false;
        let id = if let Some(id) = self.nodes.id(&a.node) {
            let e = self.nodes.at(id).expect("id checks");
            let old_addr = e.addr.socket_addr();
            if old_addr != addr {
                let can_reclaim = !self.config.dead_node_reclaim_time.is_zero()
                    && self.nodes.down_for(id, now) > self.config.dead_node_reclaim_time;
                if e.state == NodeStateKind::Left || (e.state == NodeStateKind::Dead && can_reclaim)
                {
                    info!(node = %self.config.name, peer = %a.node, old = %old_addr, new = %addr, "memberlist: updating address for left or failed node");
                    updates_node = true;
                } else {
                    warn!(node = %self.config.name, peer = %a.node, mine = %old_addr, theirs = %addr, "memberlist: conflicting address for node");
                    // memberlist's ConflictDelegate: the layer above may resolve it.
                    let existing = e.member(&a.node);
                    self.events.push_back(Event::NameConflict {
                        existing,
                        other: addr,
                    });
                    return;
                }
            }
            id
        } else {
            let entry = NodeEntry {
                addr: addr.into(),
                meta: Bytes::from(a.meta.as_slice()),
                incarnation: 0,
                state: NodeStateKind::Dead,
                vsn: [0; 6],
            };
            let id = self.nodes.insert(&a.node, entry);
            self.nodes.state_changed(id, now);
            // Insert at a random position so probing order stays random.
            let pos = self.rng.gen_range(0..=self.order.len());
            if self.order.len() == self.order.capacity() {
                // Grow by an eighth: the slack of doubling would be paid N times over.
                self.order.reserve_exact((self.order.len() / 8).max(8));
            }
            self.order.push(id);
            let last = self.order.len() - 1;
            self.order.swap(pos, last);
            id
        };
        let e = self.nodes.at(id).expect("inserted above");
        if a.incarnation <= e.incarnation && !is_local && !updates_node {
            return;
        }
        if a.incarnation < e.incarnation && is_local {
            return;
        }
        if !self.suspicions.is_empty() {
            self.suspicions.remove(&a.node);
        }
        let old_state = e.state;
        let old_meta = e.meta.clone();
        if !bootstrap && is_local {
            if a.incarnation == e.incarnation
                && *a.meta == *e.meta
                && a.vsn.as_slice() == e.vsn.as_slice()
            {
                return;
            }
            warn!(node = %self.config.name, "memberlist: refuting an alive message about us");
            self.refute(a.incarnation);
        } else {
            // Encoded from the message itself, then taken back: no copy of its fields.
            let msg = Message::Alive(a);
            let encoded = encode_message(&msg);
            let Message::Alive(a) = msg else {
                unreachable!("built above")
            };
            self.broadcasts.push(encoded, Some(a.node.clone()), None);
            let e = self.nodes.table.get_mut(id).expect("inserted above");
            if a.vsn.len() >= 6 {
                e.vsn.copy_from_slice(&a.vsn[..6]);
            }
            e.incarnation = a.incarnation;
            if *e.meta != *a.meta {
                e.meta = a.meta.into();
            }
            e.addr = addr.into();
            if e.state != NodeStateKind::Alive {
                e.state = NodeStateKind::Alive;
                self.nodes.state_changed(id, now);
            }
            if is_local {
                self.incarnation = self.incarnation.max(a.incarnation);
            }
        }
        let joined = matches!(old_state, NodeStateKind::Dead | NodeStateKind::Left);
        let meta_changed = old_meta != self.nodes.at(id).expect("inserted above").meta;
        if joined || meta_changed {
            let member = self.nodes.member(id).expect("inserted above");
            if joined {
                info!(node = %self.config.name, peer = %member.name, addr = %member.addr, "memberlist: member joined");
                self.events.push_back(Event::MemberJoined(member));
            } else {
                self.events.push_back(Event::MemberUpdated(member));
            }
        }
    }

    fn suspect_node(&mut self, now: Instant, s: Suspect) {
        let Some(e) = self.nodes.get(&s.node) else {
            return;
        };
        if s.incarnation < e.incarnation {
            return;
        }
        if let Some(timer) = self.suspicions.get_mut(&s.node) {
            if timer.confirm(&s.from) {
                let subject = s.node.clone();
                self.broadcasts
                    .push(encode_message(&Message::Suspect(s)), Some(subject), None);
            }
            return;
        }
        if e.state != NodeStateKind::Alive {
            return;
        }
        if s.node == self.config.name {
            warn!(node = %self.config.name, from = %s.from, "memberlist: refuting a suspect message");
            self.refute(s.incarnation);
            return;
        }
        let subject = s.node.clone();
        self.broadcasts.push(
            encode_message(&Message::Suspect(s.clone())),
            Some(subject),
            None,
        );
        let n = self.est_num_nodes();
        let e = self.nodes.get_mut(&s.node).expect("checked above");
        e.incarnation = s.incarnation;
        e.state = NodeStateKind::Suspect;
        let id = self.nodes.id(&s.node).expect("checked above");
        self.nodes.state_changed(id, now);
        let mut k = self.config.suspicion_mult.saturating_sub(2);
        if (n as i64) - 2 < k as i64 {
            k = 0;
        }
        let min = suspicion_timeout(self.config.suspicion_mult, n, self.config.probe_interval);
        let max = min * self.config.suspicion_max_timeout_mult;
        debug!(node = %self.config.name, peer = %s.node, from = %s.from, "memberlist: suspecting node");
        self.suspicions
            .insert(s.node.clone(), Suspicion::new(now, &s.from, k, min, max));
    }

    fn expire_suspicions(&mut self, now: Instant) {
        let mut due: Vec<String> = self
            .suspicions
            .iter()
            .filter(|(_, s)| s.deadline() <= now)
            .map(|(n, _)| n.clone())
            .collect();
        due.sort_unstable();
        for name in due {
            let s = self.suspicions.remove(&name).expect("listed above");
            let Some(e) = self.nodes.get(&name) else {
                continue;
            };
            if e.state != NodeStateKind::Suspect {
                continue;
            }
            info!(node = %self.config.name, peer = %name, confirmations = s.confirmations(), "memberlist: marking node as failed, suspect timeout reached");
            let d = Dead {
                incarnation: e.incarnation,
                node: name,
                from: self.config.name.clone(),
            };
            self.dead_node(now, d);
        }
    }

    fn dead_node(&mut self, now: Instant, d: Dead) {
        let Some(e) = self.nodes.get(&d.node) else {
            return;
        };
        if d.incarnation < e.incarnation {
            return;
        }
        self.suspicions.remove(&d.node);
        if e.dead_or_left() {
            return;
        }
        let is_local = d.node == self.config.name;
        if is_local {
            if !self.leaving {
                warn!(node = %self.config.name, from = %d.from, "memberlist: refuting a dead message");
                self.refute(d.incarnation);
                return;
            }
            let subject = d.node.clone();
            self.broadcasts.push(
                encode_message(&Message::Dead(d.clone())),
                Some(subject),
                Some(LEAVE_NOTIFY),
            );
        } else {
            let subject = d.node.clone();
            self.broadcasts.push(
                encode_message(&Message::Dead(d.clone())),
                Some(subject),
                None,
            );
        }
        let e = self.nodes.get_mut(&d.node).expect("checked above");
        e.incarnation = d.incarnation;
        e.state = if d.node == d.from {
            NodeStateKind::Left
        } else {
            NodeStateKind::Dead
        };
        let member = e.member(&d.node);
        let id = self.nodes.id(&d.node).expect("checked above");
        self.nodes.state_changed(id, now);
        if member.state == NodeStateKind::Left {
            info!(node = %self.config.name, peer = %member.name, "memberlist: member left");
            self.events.push_back(Event::MemberLeft(member));
        } else {
            info!(node = %self.config.name, peer = %member.name, "memberlist: member failed");
            self.events.push_back(Event::MemberFailed(member));
        }
    }

    /// memberlist's `refute`: outbid the accusation with a higher incarnation.
    fn refute(&mut self, accused: u32) {
        let mut inc = self.next_incarnation();
        if accused >= inc {
            // memberlist's skipIncarnation is an atomic add, which wraps at u32::MAX; an
            // accusation at the largest incarnation must not panic.
            self.incarnation = accused.wrapping_add(1);
            inc = self.incarnation;
        }
        self.apply_awareness(1);
        let name = self.config.name.clone();
        let e = self.nodes.get_mut(&name).expect("local node present");
        e.incarnation = inc;
        let a = e.member(&name).alive_msg();
        self.broadcasts
            .push(encode_message(&Message::Alive(a)), Some(name), None);
    }

    // ----- sending -----------------------------------------------------------------------

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn next_incarnation(&mut self) -> u32 {
        // Wraps like memberlist's atomic.AddUint32.
        self.incarnation = self.incarnation.wrapping_add(1);
        self.incarnation
    }

    fn ping_msg(&self, seq: u32, node: &str) -> Ping {
        let adv = self.config.advertise;
        Ping {
            seq_no: seq,
            node: node.to_owned(),
            source_addr: ip_bytes(adv.ip()),
            source_port: adv.port(),
            source_node: self.config.name.clone(),
        }
    }

    fn encrypt_overhead(&self) -> usize {
        match (&self.codec.keyring, self.config.wire.verify_outgoing) {
            (Some(_), true) => {
                crate::keyring::encrypt_overhead(self.config.wire.encryption_version)
            }
            _ => 0,
        }
    }

    fn take_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let n = self.est_num_nodes();
        let rl = retransmit_limit(self.config.retransmit_mult, n);
        let mut msgs = self.broadcasts.take(overhead, limit, rl);
        let used: usize = msgs.iter().map(|m| m.len() + overhead).sum();
        if limit > used {
            msgs.extend(self.user_broadcasts.take(overhead, limit - used, rl));
        }
        msgs
    }

    /// memberlist's `sendMsg`: piggyback queued broadcasts on `msg` when there is room.
    fn send_msg(&mut self, dst: SocketAddr, node: Option<String>, msg: Vec<u8>) {
        let avail = self
            .config
            .udp_buffer_size
            .saturating_sub(msg.len() + COMPOUND_HEADER_OVERHEAD + self.encrypt_overhead());
        let extra = self.take_broadcasts(COMPOUND_OVERHEAD, avail);
        let mut all = Vec::with_capacity(extra.len() + 1);
        all.push(msg);
        all.extend(extra);
        self.send_parts(dst, node.as_deref(), all);
    }

    /// Sends one message as is, or several as compounds. Many tiny user broadcasts can fit
    /// the byte budget yet exceed the 255 parts a compound can count (memberlist's
    /// makeCompoundMessage would silently wrap the count byte): split them like
    /// makeCompoundMessages into several packets instead.
    fn send_parts(&mut self, dst: SocketAddr, node: Option<&str>, mut parts: Vec<Vec<u8>>) {
        if parts.len() == 1 {
            let msg = parts.pop().expect("one part");
            self.send_raw(dst, node, msg);
            return;
        }
        for buf in encode_compounds(&parts) {
            self.send_raw(dst, node, buf);
        }
    }

    /// memberlist's `rawSendMsgPacket`: CRC when the peer speaks protocol 5, then seal.
    fn send_raw(&mut self, dst: SocketAddr, node: Option<&str>, msg: Vec<u8>) {
        let pmax = node
            .and_then(|n| self.nodes.get(n))
            .or_else(|| {
                let dst = Addr::from(dst);
                self.nodes.iter().map(|(_, e)| e).find(|e| e.addr == dst)
            })
            .map(|e| e.vsn[1])
            .unwrap_or(0);
        let payload = self.codec.seal_packet(&msg, pmax >= 5, &mut self.rng);
        self.transmits.push_back(Transmit { dst, payload });
    }

    fn collect_finished(&mut self) {
        while let Some(id) = self.broadcasts.poll_finished() {
            if id == LEAVE_NOTIFY {
                self.left = true;
                self.events.push_back(Event::LeaveComplete);
            }
        }
        while let Some(id) = self.user_broadcasts.poll_finished() {
            self.events.push_back(Event::UserBroadcastDone(id));
        }
    }
}

/// The first tick of a fixed-rate ticker due after `now`, the last one having been due at
/// `due`. memberlist gossips on a Go `time.Ticker` (state.go `schedule`): ticks stay on the
/// grid of the interval however late one is handled, and ticks missed while busy are dropped
/// rather than bunched. Scheduling from the handling time instead would stretch every period
/// by the wake-up lateness, so a loaded node would gossip less often than its peers.
fn next_tick(due: Instant, now: Instant, interval: Duration) -> Instant {
    let next = due + interval;
    if next > now || interval.is_zero() {
        return next.max(now);
    }
    // Later than a whole interval: the next grid point after `now`.
    let period = interval.as_nanos();
    let into = now.saturating_duration_since(due).as_nanos() % period;
    now + Duration::from_nanos((period - into) as u64)
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
