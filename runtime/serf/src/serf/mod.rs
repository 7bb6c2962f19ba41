//! The Serf state machine (`serf/serf.go`, `delegate.go`, `query.go`, `internal_query.go`),
//! sans-io on top of [`Swim`]: it owns the membership core, reads Serf's messages out of
//! memberlist user messages, keeps the Lamport clocks, intents, event and query buffers, and
//! reports member events, user events, queries and query results.
//!
//! [`Serf`] documents the call contract: what a driver calls when, and what it gets back.
//!
//! # Inside
//!
//! Every input that can produce something ends in `pump`: it takes each event the
//! membership core raised (member changes, Serf messages carried as user messages, remote
//! push/pull state, ping acks with coordinates, finished joins and broadcasts) through the
//! Serf layer, then routes the resulting events through the coalescers into the queue
//! `poll_event` drains. Serf's push/pull state is re-encoded only when it changed, just
//! before the core can send it (a due push/pull, an incoming stream, a join). Work done on
//! [`Serf::memberlist_mut`] directly surfaces at the next input.
//!
//! # Layout
//!
//! This file has the configuration and public types, the [`Serf`] state, its constructor
//! and the `handle_*`/`poll_*` driving API. The rest of `impl Serf` is split by concern:
//! `dispatch` (pump, routing, Serf messages), `members`, `intents` (join, leave,
//! force-leave), `user_events`, `query`, `internal_query` (conflict vote, key queries),
//! `state` (tags and the push/pull state), `coordinates`, and `accessors`.

use crate::clock::{LamportClock, LamportTime};
use crate::coalesce::{coalescing_enabled, MemberCoalescer, UserCoalescer};
use crate::coordinate::{self, Client as CoordinateClient, Coordinate, CoordinateConfig};
use crate::error::{Error, Result};
use crate::event::{Event, MemberStatus, QueryId};
use crate::messages::{self, UserEvents};
use hearsay_swim::table::{IdTable, NameId};
use hearsay_swim::{
    Config as SwimConfig, JoinId, Keyring, NotifyId, StreamId, StreamOutcome, StreamRequest, Swim,
    Transmit,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod accessors;
mod coordinates;
mod dispatch;
mod intents;
mod internal_query;
mod members;
mod query;
mod state;
mod user_events;
mod warnings;

/// Serf's oldest and newest protocol versions.
pub const PROTOCOL_VERSION_MIN: u8 = 2;
/// See [`PROTOCOL_VERSION_MIN`].
pub const PROTOCOL_VERSION_MAX: u8 = 5;
/// Serf's hard cap on a user event (`UserEventSizeLimit`).
pub const USER_EVENT_SIZE_HARD_LIMIT: usize = 9 * 1024;
/// Queries whose name starts with this are Serf's own and never reach handlers.
pub const INTERNAL_QUERY_PREFIX: &str = "_serf_";

/// Serf's configuration (`serf.DefaultConfig` plus the agent's choices where noted). Field
/// names follow Serf's `Config`; the defaults are those of [`SerfConfig::new`].
/// [`Serf::new`] refuses a configuration that is out of range with [`Error::Config`].
#[derive(Debug, Clone)]
pub struct SerfConfig {
    /// The membership core's configuration (Serf's `MemberlistConfig`).
    pub memberlist: SwimConfig,
    /// The node's tags, sent as memberlist node metadata (`Tags`; at most 512 bytes encoded,
    /// else [`Error::TagsTooLarge`]). Default: none.
    pub tags: BTreeMap<String, String>,
    /// Serf's protocol version, [`PROTOCOL_VERSION_MIN`] to [`PROTOCOL_VERSION_MAX`]
    /// (`ProtocolVersion`; the agent's default is 5).
    pub protocol_version: u8,
    /// How long a leave waits for its intent to be broadcast, and then for memberlist's leave,
    /// before going on anyway (`BroadcastTimeout`). Default: 5 s.
    pub broadcast_timeout: Duration,
    /// How long a leave keeps gossiping after memberlist's leave, so the news spreads, before
    /// [`Event::LeaveComplete`] (`LeavePropagateDelay`). Default: 1 s.
    pub leave_propagate_delay: Duration,
    /// User-event Lamport times remembered, to drop duplicates and to send in push/pull; older
    /// events are ignored (`EventBuffer`, at least 1). Default: 512.
    pub event_buffer: usize,
    /// Query Lamport times remembered, to drop duplicates; older queries are ignored
    /// (`QueryBuffer`, at least 1). Default: 512.
    pub query_buffer: usize,
    /// How often failed and left members are checked against `reconnect_timeout` and
    /// `tombstone_timeout`, and stale intents dropped (`ReapInterval`). Default: 15 s.
    pub reap_interval: Duration,
    /// How long a join or leave intent for a member not yet known is kept, to apply when the
    /// member shows up (`RecentIntentTimeout`). Default: 5 min.
    pub recent_intent_timeout: Duration,
    /// How often to try rejoining a random failed member (`ReconnectInterval`). Default: 30 s.
    pub reconnect_interval: Duration,
    /// How long a failed member is kept (and reconnection tried) before it is reaped
    /// (`ReconnectTimeout`). Default: 24 h.
    pub reconnect_timeout: Duration,
    /// How long a left member is kept before it is reaped (`TombstoneTimeout`). Default: 24 h.
    pub tombstone_timeout: Duration,
    /// The default query timeout is the memberlist gossip interval × this × ⌈log10(N+1)⌉ for
    /// N alive members (`QueryTimeoutMult`). Default: 16.
    pub query_timeout_mult: u32,
    /// The largest encoded query response, in bytes, sent or relayed over UDP
    /// (`QueryResponseSizeLimit`; larger is [`Error::ResponseTooLarge`]). Default: 1024.
    pub query_response_size_limit: usize,
    /// The largest encoded query, in bytes (`QuerySizeLimit`; larger is
    /// [`Error::QueryTooLarge`]). Default: 1024.
    pub query_size_limit: usize,
    /// The largest user event, in bytes: name plus payload, and the encoded message
    /// (`UserEventSizeLimit`; larger is [`Error::UserEventTooLarge`]). At most
    /// [`USER_EVENT_SIZE_HARD_LIMIT`]. Default: 512.
    pub user_event_size_limit: usize,
    /// Keeps no Vivaldi coordinate and sends none in ping acks (`DisableCoordinates`).
    /// Default: false.
    pub disable_coordinates: bool,
    /// Member events are merged per node over this period (`CoalescePeriod`; zero with
    /// `quiescent_period` zero = off, the library default; the agent uses 3 s / 1 s).
    pub coalesce_period: Duration,
    /// Merged member events are released early once no new one came for this long
    /// (`QuiescentPeriod`). Default: zero.
    pub quiescent_period: Duration,
    /// User events flagged coalesce keep only the newest per name over this period
    /// (`UserCoalescePeriod`; zero with `user_quiescent_period` zero = off).
    pub user_coalesce_period: Duration,
    /// Coalesced user events are released early once no new one came for this long
    /// (`UserQuiescentPeriod`). Default: zero.
    pub user_quiescent_period: Duration,
}

impl SerfConfig {
    /// Serf's defaults over the given memberlist configuration.
    pub fn new(memberlist: SwimConfig) -> Self {
        Self {
            memberlist,
            tags: BTreeMap::new(),
            protocol_version: 5,
            broadcast_timeout: Duration::from_secs(5),
            leave_propagate_delay: Duration::from_secs(1),
            event_buffer: 512,
            query_buffer: 512,
            reap_interval: Duration::from_secs(15),
            recent_intent_timeout: Duration::from_secs(5 * 60),
            reconnect_interval: Duration::from_secs(30),
            reconnect_timeout: Duration::from_secs(24 * 3600),
            tombstone_timeout: Duration::from_secs(24 * 3600),
            query_timeout_mult: 16,
            query_response_size_limit: 1024,
            query_size_limit: 1024,
            user_event_size_limit: 512,
            disable_coordinates: false,
            coalesce_period: Duration::ZERO,
            quiescent_period: Duration::ZERO,
            user_coalesce_period: Duration::ZERO,
            user_quiescent_period: Duration::ZERO,
        }
    }

    fn validate(&self) -> Result<()> {
        if !(PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION_MAX).contains(&self.protocol_version) {
            return Err(Error::Config(format!(
                "protocol version {} outside Serf's {PROTOCOL_VERSION_MIN}..={PROTOCOL_VERSION_MAX}",
                self.protocol_version
            )));
        }
        if self.user_event_size_limit > USER_EVENT_SIZE_HARD_LIMIT {
            return Err(Error::Config(format!(
                "user event size limit {} is over Serf's hard cap of {USER_EVENT_SIZE_HARD_LIMIT}",
                self.user_event_size_limit
            )));
        }
        if self.event_buffer == 0 || self.query_buffer == 0 {
            return Err(Error::Config(
                "event and query buffers must not be empty".into(),
            ));
        }
        Ok(())
    }
}

/// Parameters of a query this node starts (`QueryParam`).
#[derive(Debug, Clone, Default)]
pub struct QueryParams {
    /// Only these nodes process the query (`FilterNodes`); empty means every node.
    pub filter_nodes: Vec<String>,
    /// Tag name → regular expression (Go RE2 syntax, unanchored like `regexp.MatchString`).
    pub filter_tags: BTreeMap<String, String>,
    /// Asks every node that processes the query for an ack, reported as
    /// [`Event::QueryAck`] (`RequestAck`).
    pub request_ack: bool,
    /// Through how many other members each responder also relays its response, besides
    /// sending it directly (`RelayFactor`).
    pub relay_factor: u8,
    /// How long responses are collected (`Timeout`); zero = Serf's default,
    /// [`Serf::default_query_timeout`].
    pub timeout: Duration,
    /// hearsay extension: finish as soon as every member that passes the filters answered.
    pub finish_early: bool,
}

/// Lifecycle of this node (`SerfState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `SerfAlive`: a member of the cluster.
    Alive,
    /// `SerfLeaving`: [`Serf::leave`] is under way; [`Serf::join`] and a second leave are
    /// refused with [`Error::NotAllowed`].
    Leaving,
    /// `SerfLeft`: the leave completed ([`Event::LeaveComplete`]); [`Serf::join`] is refused.
    Left,
}

/// Serf's own state of one member. The name, address, tags (as node metadata) and versions
/// are the membership core's, read through the name id this entry is stored under (Serf's
/// copy of them equals memberlist's after every member event, so it keeps none).
#[derive(Debug, Clone)]
struct MemberState {
    status: MemberStatus,
    /// Lamport time of the last intent that changed the status.
    status_ltime: LamportTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntentKind {
    Join,
    Leave,
}

#[derive(Debug, Clone, Copy)]
struct Intent {
    kind: IntentKind,
    ltime: LamportTime,
    at: Instant,
}

#[derive(Debug)]
struct Outgoing {
    params_finish_early: bool,
    request_ack: bool,
    deadline: Instant,
    expected: Option<HashSet<String>>,
    acks: HashSet<String>,
    responses: HashSet<String>,
    /// Nodes whose response is still arriving outside the UDP path (hearsay's QUIC).
    external: HashSet<String>,
}

#[derive(Debug, Clone)]
struct Incoming {
    addr: SocketAddr,
    source_node: String,
    relay_factor: u8,
    deadline: Instant,
    responded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeavePhase {
    /// Waiting for the leave intent broadcast (or the broadcast timeout).
    Intent {
        notify: Option<NotifyId>,
        until: Instant,
    },
    /// Waiting for memberlist's leave (or the broadcast timeout).
    Memberlist { until: Instant },
    /// Letting the leave propagate.
    Propagate { until: Instant },
}

/// Broadcasts queued for gossip, by Serf's queue (its `Stats()` `intent_queue`, `event_queue`
/// and `query_queue`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Join and leave intents.
    pub intent: usize,
    /// User events.
    pub event: usize,
    /// Queries.
    pub query: usize,
}

/// The Serf state machine of one node, on top of its membership core ([`Swim`]).
///
/// # Call contract
///
/// The contract of [`Swim`] (read it there), through methods of the same names: both
/// implement [`hearsay_swim::Protocol`], so one driver runs either. Time, the stream
/// reports, the draining of the outputs and the guarantees are the same; what differs:
///
/// **Start.** [`Serf::new`]: its seed drives every random choice, the core's included.
/// When restarting from a snapshot, call [`Serf::restore_clocks`] before any input, so
/// that user events and queries already seen are not delivered again. The local member's
/// join is already queued as a member event (held by the member coalescer when coalescing
/// is on).
///
/// **Inputs.** [`Serf::handle_timeout`], [`Serf::handle_packet`], [`Serf::handle_stream`],
/// [`Serf::handle_stream_reply`], [`Serf::handle_stream_sent`] and
/// [`Serf::handle_stream_failed`] mean what they mean on [`Swim`]. The commands are
/// [`Serf::join`], [`Serf::leave`], [`Serf::force_leave`], [`Serf::set_tags`],
/// [`Serf::user_event`], [`Serf::query`] and [`Serf::respond`], and for responses that
/// travel outside Serf's UDP path (hearsay's extension) [`Serf::claim_response`],
/// [`Serf::handle_external_response`] and [`Serf::handle_external_response_done`].
/// [`Serf::memberlist_mut`] is for the keyring and test hooks: what the core raises after
/// work done through it goes through the Serf layer only at the next input to `Serf`.
///
/// **Outputs.** [`Serf::poll_transmit`] and [`Serf::poll_stream`] are the core's queues,
/// passed through. [`Serf::poll_event`] gives Serf's [`Event`]s, after coalescing.
/// [`Serf::poll_timeout`] is the earliest of the core's timers, reaping, reconnecting,
/// query deadlines, coalescer flushes and the leave phases. What the events ask of the
/// driver:
/// - [`Event::Query`]: answer it, if at all, once and before its `deadline`, with
///   [`Serf::respond`] (or [`Serf::claim_response`] for an answer sent out of band);
///   a second answer or a late one is refused with an error.
/// - [`Event::QueryAck`] and [`Event::QueryResponse`] arrive for a query we started until
///   [`Event::QueryDone`]; [`Event::JoinFinished`] ends a [`Serf::join`].
/// - [`Event::LeaveComplete`] ends a [`Serf::leave`]; it comes only after the leave
///   propagation delay, so keep calling [`Serf::handle_timeout`] until then.
/// - [`Event::NameConflict`] with `won: false`: the cluster gave our name to another node;
///   stop this one, as Serf does.
#[derive(Debug)]
pub struct Serf {
    swim: Swim,
    config: SerfConfig,
    rng: StdRng,
    clock: LamportClock,
    event_clock: LamportClock,
    query_clock: LamportClock,
    /// By the membership core's name ids; each entry holds its name there.
    members: IdTable<MemberState>,
    /// When each failed or left member went (for reaping): beside the table, since only
    /// the few gone members need it.
    leave_times: HashMap<NameId, Instant>,
    recent_intents: HashMap<String, Intent>,
    event_buffer: Vec<Option<UserEvents>>,
    event_min_time: LamportTime,
    query_buffer: Vec<Option<(LamportTime, Vec<u32>)>>,
    query_min_time: LamportTime,
    outgoing: HashMap<LamportTime, (u32, Outgoing)>,
    incoming: HashMap<(LamportTime, u32), Incoming>,
    state: State,
    leave: Option<LeavePhase>,
    /// Joins in flight, and whether they ignore old events (`-replay` off).
    joins: HashMap<JoinId, bool>,
    /// Leave broadcasts of `force_leave` not yet sent, by their notify id.
    force_leaves: Vec<NotifyId>,
    ignore_old_joins: usize,
    next_reap: Instant,
    next_reconnect: Instant,
    state_dirty: bool,
    events: VecDeque<Event>,
    /// Our Vivaldi client (None with `disable_coordinates`) and the last coordinate each peer
    /// sent us in a ping ack (Serf's coordinate cache).
    coord_client: Option<CoordinateClient>,
    coord_cache: HashMap<String, Coordinate>,
    member_coalescer: Option<MemberCoalescer>,
    user_coalescer: Option<UserCoalescer>,
    /// Events ready for `poll_event` (after coalescing).
    out: VecDeque<Event>,
    /// The `_serf_conflict` vote we started: its id, responses, and how many matched us.
    conflict_vote: Option<(QueryId, usize, usize)>,
    /// Rate limit and counters of warnings about what gossip brought.
    warnings: warnings::Warnings,
}

impl Serf {
    /// A Serf node that knows only itself.
    pub fn new(
        config: SerfConfig,
        keyring: Option<Keyring>,
        seed: u64,
        now: Instant,
    ) -> Result<Self> {
        config.validate()?;
        let meta = messages::encode_tags_for_protocol(&config.tags, config.protocol_version);
        if meta.len() > hearsay_swim::wire::META_MAX_SIZE {
            return Err(Error::TagsTooLarge(meta.len()));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut ml = config.memberlist.clone();
        ml.delegate_versions = [
            PROTOCOL_VERSION_MIN,
            PROTOCOL_VERSION_MAX,
            config.protocol_version,
        ];
        let swim = Swim::new(ml, keyring, meta, rng.gen(), now)?;
        let mut serf = Self {
            swim,
            rng,
            clock: LamportClock::new(),
            event_clock: LamportClock::new(),
            query_clock: LamportClock::new(),
            members: IdTable::new(),
            leave_times: HashMap::new(),
            recent_intents: HashMap::new(),
            event_buffer: vec![None; config.event_buffer],
            event_min_time: 0,
            query_buffer: vec![None; config.query_buffer],
            query_min_time: 0,
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
            state: State::Alive,
            leave: None,
            joins: HashMap::new(),
            force_leaves: Vec::new(),
            ignore_old_joins: 0,
            next_reap: now + config.reap_interval,
            next_reconnect: now + config.reconnect_interval,
            state_dirty: true,
            events: VecDeque::new(),
            coord_client: None,
            coord_cache: HashMap::new(),
            member_coalescer: coalescing_enabled(config.coalesce_period, config.quiescent_period)
                .then(|| MemberCoalescer::new(config.coalesce_period, config.quiescent_period)),
            user_coalescer: coalescing_enabled(
                config.user_coalesce_period,
                config.user_quiescent_period,
            )
            .then(|| UserCoalescer::new(config.user_coalesce_period, config.user_quiescent_period)),
            out: VecDeque::new(),
            conflict_vote: None,
            warnings: warnings::Warnings::default(),
            config,
        };
        if !serf.config.disable_coordinates {
            let client = CoordinateClient::new(CoordinateConfig::default(), serf.rng.gen())?;
            serf.swim
                .set_ack_payload(coordinate::encode_ping_payload(client.coordinate()));
            serf.coord_client = Some(client);
        }
        // Serf increments every clock once at start so that 0 is never a valid time.
        serf.clock.increment();
        serf.event_clock.increment();
        serf.query_clock.increment();
        serf.pump(now);
        Ok(serf)
    }

    /// Restores clocks from a snapshot: events and queries up to these times are not
    /// delivered again (Serf sets `eventMinTime = lastEventClock + 1`).
    pub fn restore_clocks(&mut self, clock: LamportTime, event: LamportTime, query: LamportTime) {
        self.clock.witness(clock);
        self.event_clock.witness(event);
        self.query_clock.witness(query);
        self.event_min_time = event + 1;
        self.query_min_time = query + 1;
        self.state_dirty = true;
    }

    // ----- driving (the same contract as `Swim`) ---------------------------------------------

    /// The next UDP datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.swim.poll_transmit()
    }

    /// The next stream to open.
    pub fn poll_stream(&mut self) -> Option<StreamRequest> {
        self.swim.poll_stream()
    }

    /// The next Serf event.
    pub fn poll_event(&mut self) -> Option<Event> {
        let next = self.out.pop_front();
        if next.is_none() {
            hearsay_swim::heap::release_idle(&mut self.out);
        }
        next
    }

    /// When [`Serf::handle_timeout`] should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_reap.min(self.next_reconnect);
        if let Some(s) = self.swim.poll_timeout() {
            t = t.min(s);
        }
        for (_, q) in self.outgoing.values() {
            t = t.min(q.deadline);
        }
        for q in self.incoming.values() {
            t = t.min(q.deadline);
        }
        for c in [
            self.member_coalescer
                .as_ref()
                .and_then(|c| c.poll_timeout()),
            self.user_coalescer.as_ref().and_then(|c| c.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        {
            t = t.min(c);
        }
        match self.leave {
            Some(LeavePhase::Intent { until, .. })
            | Some(LeavePhase::Memberlist { until })
            | Some(LeavePhase::Propagate { until }) => t = t.min(until),
            None => {}
        }
        if let Some(w) = self.warnings_deadline() {
            t = t.min(w);
        }
        Some(t)
    }

    /// Runs due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.swim.push_pull_due(now) {
            self.refresh_state();
        }
        self.swim.handle_timeout(now);
        if now >= self.next_reap {
            self.next_reap = now + self.config.reap_interval;
            self.reap(now);
        }
        if now >= self.next_reconnect {
            self.next_reconnect = now + self.config.reconnect_interval;
            self.reconnect(now);
        }
        self.expire_queries(now);
        self.advance_leave(now, false);
        self.sweep_warnings(now);
        self.pump(now);
    }

    /// A UDP datagram arrived.
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) {
        self.swim.handle_packet(now, from, buf);
        self.pump(now);
    }

    /// Bytes arrived on an incoming stream (see [`Swim::handle_stream`]).
    pub fn handle_stream(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) -> StreamOutcome {
        self.refresh_state();
        let out = self.swim.handle_stream(now, from, buf);
        self.pump(now);
        out
    }

    /// Bytes arrived in reply on a stream we opened.
    pub fn handle_stream_reply(&mut self, now: Instant, id: StreamId, buf: &[u8]) -> StreamOutcome {
        let out = self.swim.handle_stream_reply(now, id, buf);
        self.pump(now);
        out
    }

    /// A stream we opened failed.
    pub fn handle_stream_failed(&mut self, now: Instant, id: StreamId, error: &str) {
        self.swim.handle_stream_failed(now, id, error);
        self.pump(now);
    }

    /// A stream we opened without expecting a reply was written.
    pub fn handle_stream_sent(&mut self, id: StreamId) {
        self.swim.handle_stream_sent(id);
    }
}

impl hearsay_swim::Protocol for Serf {
    type Event = Event;

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
    fn poll_event(&mut self) -> Option<Event> {
        Self::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Self::poll_timeout(self)
    }
    fn tcp_timeout(&self) -> Duration {
        self.config.memberlist.tcp_timeout
    }
}

#[cfg(test)]
mod tests;
