//! The SWIM + Lifeguard state machine (memberlist's `state.go` and the message handlers of
//! `net.go`), sans-io: `handle_*` feeds it time, packets, stream bytes and commands;
//! `poll_*` drains the packets to send, the streams to open, the events and the next timeout.
//!
//! [`Swim`] documents the call contract: what a driver calls when, and what it gets back.
//!
//! # Layout
//!
//! This file has the public types, the [`Swim`] state, its constructor, the outputs and the
//! timer and packet inputs. The rest of `impl Swim` is split by concern: `stream` (the stream
//! inputs), `packet` (UDP message handling and ack handlers), `probe` (failure detection),
//! `gossip`, `push_pull`, `join`, `state` (alive/suspect/dead transitions), `send`,
//! `commands`, `accessors`, and `nodes` (the member table).

use crate::broadcast::{BroadcastQueue, NotifyId};
use crate::config::{push_pull_scale, Config};
use crate::drops::{DropKind, DropStats};
use crate::error::{Error, Result};
use crate::keyring::Keyring;
use crate::loglimit::{LogLimiter, Source, Verdict};
use crate::suspicion::Suspicion;
use crate::table::NameId;
use crate::wire::{ip_bytes, Alive, Codec, NodeStateKind, META_MAX_SIZE};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::warn;

mod accessors;
mod commands;
mod gossip;
mod join;
mod nodes;
mod packet;
mod probe;
mod push_pull;
mod send;
mod state;
mod stream;

use self::nodes::{NodeEntry, Nodes};

/// memberlist's lowest and highest protocol versions understood.
pub(crate) const PROTOCOL_VERSION_MIN: u8 = 1;
/// See [`PROTOCOL_VERSION_MIN`].
pub(crate) const PROTOCOL_VERSION_MAX: u8 = 5;

/// One member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The node's unique name (memberlist's `Node.Name`).
    pub name: String,
    /// Where it is reached (`Node.Addr` and `Node.Port`).
    pub addr: SocketAddr,
    /// Its metadata, at most 512 bytes (`Node.Meta`; Serf's encoded tags).
    pub meta: Vec<u8>,
    /// The highest incarnation number heard for it (memberlist's `nodeState.Incarnation`).
    pub incarnation: u32,
    /// Alive, suspect, dead or left (`Node.State`).
    pub state: NodeStateKind,
    /// Protocol versions: memberlist's `PMin`, `PMax`, `PCur` and the delegate's (Serf's)
    /// `DMin`, `DMax`, `DCur`.
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

/// A member's stored fields, borrowed: what the layer above reads instead of keeping its own
/// copy of the address, metadata and versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberInfo<'a> {
    /// The node's unique name (memberlist's `Node.Name`).
    pub name: &'a str,
    /// Where it is reached (`Node.Addr` and `Node.Port`).
    pub addr: SocketAddr,
    /// Its metadata, at most 512 bytes (`Node.Meta`; Serf's encoded tags).
    pub meta: &'a [u8],
    /// The highest incarnation number heard for it (memberlist's `nodeState.Incarnation`).
    pub incarnation: u32,
    /// Alive, suspect, dead or left (`Node.State`).
    pub state: NodeStateKind,
    /// Protocol versions, as [`Member::vsn`].
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

/// A UDP datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The destination address.
    pub dst: SocketAddr,
    /// The sealed datagram (label, encryption, CRC, compression as configured).
    pub payload: Vec<u8>,
}

/// Identifies an outgoing stream the core asked the driver to open.
pub type StreamId = u64;

/// "Open a TCP connection to `dst`, write `payload`, and (when `expect_reply`) feed what comes
/// back to [`Swim::handle_stream_reply`]; give up at `deadline`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// Names this stream in [`Swim::handle_stream_reply`], [`Swim::handle_stream_sent`] and
    /// [`Swim::handle_stream_failed`].
    pub id: StreamId,
    /// The address to connect to.
    pub dst: SocketAddr,
    /// The sealed stream message to write.
    pub payload: Vec<u8>,
    /// Whether to read a reply; otherwise report [`Swim::handle_stream_sent`] once written.
    pub expect_reply: bool,
    /// When to give up and report [`Swim::handle_stream_failed`] (now + [`Config::tcp_timeout`]).
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
    NameConflict {
        /// The member we know under that name.
        existing: Member,
        /// The address of the other node claiming it.
        other: SocketAddr,
    },
    /// A broadcast queued with [`Swim::queue_user_broadcast_notify`] is done.
    UserBroadcastDone(NotifyId),
    /// The opaque user state from a push/pull exchange.
    RemoteState {
        /// Whether the exchange was part of a join.
        join: bool,
        /// The peer's user state (Serf's `MergeRemoteState` payload).
        state: Vec<u8>,
    },
    /// A direct probe was acknowledged; `payload` is the peer's ack payload (Serf's coordinate).
    PingComplete {
        /// The probed node.
        node: String,
        /// The time from sending the ping to receiving the ack.
        rtt: Duration,
        /// The ack's payload.
        payload: Vec<u8>,
    },
    /// Every address of one [`Swim::join`] call was tried.
    JoinFinished {
        /// What [`Swim::join`] returned.
        id: JoinId,
        /// How many addresses answered the push/pull.
        joined: usize,
        /// The addresses that failed, each with why.
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
///
/// # Call contract
///
/// `Swim` owns no socket, clock or task. A driver (the tokio one in `hearsay-net`, the
/// simulator behind the `testing` feature, the Serf layer wrapping it) feeds it inputs and
/// carries out its outputs; [`crate::Protocol`] is the same contract for a generic driver.
///
/// **Time.** Every `now` is the current time of a monotonic clock, never earlier than the
/// `now` of a previous call.
///
/// **Start.** [`Swim::new`] returns a node that has already announced itself: an alive
/// broadcast is queued and [`Event::MemberJoined`] for the local node waits in
/// [`Swim::poll_event`]. Drain the outputs (below) before waiting for the first input.
///
/// **Inputs.**
/// - [`Swim::handle_timeout`] once `now` has reached [`Swim::poll_timeout`]. It runs
///   whatever is due at `now` (ack expiry, the probe round and its indirect phase,
///   suspicion timeouts, gossip, push/pull) and nothing else, so an early or late call is
///   safe.
/// - [`Swim::handle_packet`] for each UDP datagram received, whatever it holds: bad input
///   is dropped, counted in [`Swim::drop_stats`] and logged at most once per source and
///   kind every [`crate::loglimit::WINDOW`] (then summarised: see [`crate::loglimit`]).
/// - [`Swim::handle_stream`] for an accepted TCP connection, with every byte read so far,
///   again after each read. [`StreamOutcome::NeedMore`]: read on. [`StreamOutcome::Reply`]:
///   write it, then close. [`StreamOutcome::Done`]: close. The core keeps nothing per
///   incoming connection: the driver bounds it by [`Config::tcp_timeout`] and reports
///   nothing when it gives up.
/// - For each [`StreamRequest`]: connect to `dst`, write `payload`, then report exactly
///   one ending. With `expect_reply`, [`Swim::handle_stream_reply`] with every reply byte
///   read so far, again after each read, until it returns something other than `NeedMore`
///   (then close). Without, [`Swim::handle_stream_sent`] once written. On a failure to
///   connect, write or read, or once `deadline` has passed, [`Swim::handle_stream_failed`].
///   The core does not time these streams out itself: one never reported stays pending,
///   and a join waiting on it never raises [`Event::JoinFinished`]. Reports about a stream
///   that already ended are ignored.
/// - Commands from the layer above, at any time: [`Swim::join`], [`Swim::leave`],
///   [`Swim::set_meta`], [`Swim::queue_user_broadcast`],
///   [`Swim::queue_user_broadcast_notify`], [`Swim::send_user_packet`],
///   [`Swim::send_user_stream`], [`Swim::set_user_state`], [`Swim::set_ack_payload`].
///
/// **Outputs.** After every input, commands included, drain each queue until it gives
/// `None`:
/// - [`Swim::poll_transmit`]: a datagram for `dst`, to send in queue order. UDP is best
///   effort: a failed send is not reported.
/// - [`Swim::poll_stream`]: a stream to open, handled as above.
/// - [`Swim::poll_event`]: what happened, in the order it happened (see [`Event`]).
///
/// Polling only hands the item over (and frees the queue's idle capacity once it is
/// empty), so the queues are independent and their draining order does not matter;
/// `hearsay-net` drains transmits, then streams, then events. Then read
/// [`Swim::poll_timeout`] afresh (any input can move it earlier; it is always `Some`) and
/// wait for it or the next input, whichever comes first.
///
/// **Guarantees.** No input panics on what the network sent. Outputs stay queued until
/// polled (the queues are unbounded). Every random choice comes from the seed given to
/// [`Swim::new`]: the same seed and the same inputs at the same `now`s give the same
/// outputs, which the simulator relies on (in production, seed from the OS's entropy).
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
    /// What was refused from the network ([`Swim::drop_stats`]).
    drops: DropStats,
    /// Which warnings about remote input get logged (`warn_allowed`).
    warnings: LogLimiter,
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
            drops: DropStats::default(),
            warnings: LogLimiter::new(),
            config,
        };
        // memberlist's setAlive: announce ourselves with the next incarnation.
        let mut alive = me.alive_msg();
        alive.incarnation = swim.next_incarnation();
        swim.alive_node(now, alive, true);
        Ok(swim)
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
        if let Some(w) = self.warnings.next_deadline() {
            t = t.min(w);
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
        self.sweep_warnings(now);
    }

    /// A UDP datagram arrived from `from`. Bad input is counted ([`Swim::drop_stats`]) and
    /// logged at most once per source and kind every [`crate::loglimit::WINDOW`].
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) {
        let opened = match self.codec.open_packet(buf) {
            Ok(o) => o,
            Err(e) => {
                let kind = DropKind::of(&e);
                self.drops.count_packet(kind);
                if self.warn_allowed(now, from, kind.as_str()) {
                    warn!(node = %self.config.name, %from, error = %e, "memberlist: dropping packet");
                }
                return;
            }
        };
        for e in &opened.errors {
            self.drops.count_message();
            if self.warn_allowed(now, from, "compound-part") {
                warn!(node = %self.config.name, %from, error = %e, "memberlist: dropping part of a packet");
            }
        }
        for msg in opened.messages {
            self.handle_message(now, from, msg);
        }
        self.collect_finished();
    }

    /// What the core refused from the network since it started.
    pub fn drop_stats(&self) -> DropStats {
        let mut s = self.drops.clone();
        s.set_suppressed(self.warnings.suppressed_total());
        s
    }

    /// Whether to log a warning of `kind` caused by input from `from` (see
    /// [`crate::loglimit`]); logs the summary of the key's previous window first.
    pub(super) fn warn_allowed(
        &mut self,
        now: Instant,
        from: SocketAddr,
        kind: &'static str,
    ) -> bool {
        self.warn_allowed_from(now, Source::Addr(from.ip()), kind)
    }

    /// [`Swim::warn_allowed`] for input whose sender is `source`.
    pub(super) fn warn_allowed_from(
        &mut self,
        now: Instant,
        source: Source,
        kind: &'static str,
    ) -> bool {
        match self.warnings.check(now, source, kind) {
            Verdict::Suppress => false,
            Verdict::Log { summary } => {
                if let Some(s) = summary {
                    warn!(node = %self.config.name, "memberlist: {s}");
                }
                true
            }
        }
    }

    /// Logs the summaries of the warning windows that are over.
    fn sweep_warnings(&mut self, now: Instant) {
        for s in self.warnings.sweep(now) {
            warn!(node = %self.config.name, "memberlist: {s}");
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
mod tests;
