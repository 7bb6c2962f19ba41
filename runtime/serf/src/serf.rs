//! The Serf state machine (`serf/serf.go`, `delegate.go`, `query.go`, `internal_query.go`),
//! sans-io on top of [`Swim`]: it owns the membership core, reads Serf's messages out of
//! memberlist user messages, keeps the Lamport clocks, intents, event and query buffers, and
//! reports member events, user events, queries and query results.

use crate::clock::{LamportClock, LamportTime};
use crate::coalesce::{coalescing_enabled, MemberCoalescer, UserCoalescer};
use crate::coordinate::{self, Client as CoordinateClient, Coordinate, CoordinateConfig};
use crate::error::{Error, Result};
use crate::event::{
    Event, Member, MemberEvent, MemberEventKind, MemberStatus, QueryEvent, QueryId, UserEvent,
};
use crate::messages::{
    self, Filter, Join, Leave, Message, Query, QueryResponse, UserEventEntry, UserEvents,
    QUERY_FLAG_ACK, QUERY_FLAG_NO_BROADCAST,
};
use hearsay_swim::table::{IdTable, NameId};
use hearsay_swim::wire::{ip_bytes, socket_addr, NodeStateKind};
use hearsay_swim::{
    Config as SwimConfig, Event as SwimEvent, JoinId, Keyring, NotifyId, StreamId, StreamOutcome,
    StreamRequest, Swim, Transmit,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Serf's oldest and newest protocol versions.
pub const PROTOCOL_VERSION_MIN: u8 = 2;
/// See [`PROTOCOL_VERSION_MIN`].
pub const PROTOCOL_VERSION_MAX: u8 = 5;
/// Serf's hard cap on a user event (`UserEventSizeLimit`).
pub const USER_EVENT_SIZE_HARD_LIMIT: usize = 9 * 1024;
/// Queries whose name starts with this are Serf's own and never reach handlers.
pub const INTERNAL_QUERY_PREFIX: &str = "_serf_";

/// Serf's configuration (`serf.DefaultConfig` plus the agent's choices where noted).
#[derive(Debug, Clone)]
pub struct SerfConfig {
    pub memberlist: SwimConfig,
    pub tags: BTreeMap<String, String>,
    /// Serf's protocol version (the agent's default is 5).
    pub protocol_version: u8,
    pub broadcast_timeout: Duration,
    pub leave_propagate_delay: Duration,
    pub event_buffer: usize,
    pub query_buffer: usize,
    pub reap_interval: Duration,
    pub recent_intent_timeout: Duration,
    pub reconnect_interval: Duration,
    pub reconnect_timeout: Duration,
    pub tombstone_timeout: Duration,
    pub query_timeout_mult: u32,
    pub query_response_size_limit: usize,
    pub query_size_limit: usize,
    pub user_event_size_limit: usize,
    pub disable_coordinates: bool,
    /// Member events are merged per node over this period (zero with `quiescent_period`
    /// zero = off, the library default; the agent uses 3 s / 1 s).
    pub coalesce_period: Duration,
    pub quiescent_period: Duration,
    /// User events flagged coalesce keep only the newest per name over this period.
    pub user_coalesce_period: Duration,
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
    pub filter_nodes: Vec<String>,
    /// Tag name → regular expression (Go RE2 syntax, unanchored like `regexp.MatchString`).
    pub filter_tags: BTreeMap<String, String>,
    pub request_ack: bool,
    pub relay_factor: u8,
    /// Zero = Serf's default formula.
    pub timeout: Duration,
    /// hearsay extension: finish as soon as every member that passes the filters answered.
    pub finish_early: bool,
}

/// Lifecycle of this node (`SerfState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Alive,
    Leaving,
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

/// The Serf state machine of one node.
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

    // ----- accessors -------------------------------------------------------------------

    /// The membership core underneath (read-only).
    pub fn memberlist(&self) -> &Swim {
        &self.swim
    }

    /// Mutable access to the membership core (for keyring changes and tests).
    pub fn memberlist_mut(&mut self) -> &mut Swim {
        &mut self.swim
    }

    /// Where this node's heap goes, per table, the membership core's included (estimated
    /// from capacities; the scale bench divides by the member count).
    pub fn heap_breakdown(&self) -> Vec<hearsay_swim::heap::Line> {
        use hearsay_swim::heap;
        let mut out = self.swim.heap_breakdown();
        let intents: usize = self.recent_intents.keys().map(|k| k.capacity()).sum();
        let coords: usize = self
            .coord_cache
            .iter()
            .map(|(k, c)| k.capacity() + heap::vec(&c.vec))
            .sum();
        let events: usize = self
            .event_buffer
            .iter()
            .flatten()
            .map(|u| {
                heap::vec(&u.events)
                    + u.events
                        .iter()
                        .map(|e| e.name.capacity() + e.payload.capacity())
                        .sum::<usize>()
            })
            .sum();
        let queries: usize = self
            .query_buffer
            .iter()
            .flatten()
            .map(|(_, ids)| heap::vec(ids))
            .sum();
        out.extend([
            (
                "serf: member table (slots, leave times)",
                self.members.heap_bytes() + heap::hash_map(&self.leave_times),
            ),
            (
                "serf: recent intents",
                heap::hash_map(&self.recent_intents) + intents,
            ),
            (
                "serf: Vivaldi coordinate cache",
                heap::hash_map(&self.coord_cache) + coords,
            ),
            (
                "serf: Vivaldi latency filters",
                self.coord_client
                    .as_ref()
                    .map_or(0, |c| c.latency_filter_bytes()),
            ),
            (
                "serf: event and query buffers",
                heap::vec(&self.event_buffer) + events + heap::vec(&self.query_buffer) + queries,
            ),
            (
                "serf: pending events",
                heap::deque(&self.events) + heap::deque(&self.out),
            ),
        ]);
        out
    }

    /// This node's configuration.
    pub fn config(&self) -> &SerfConfig {
        &self.config
    }

    /// This node's lifecycle state.
    pub fn state(&self) -> State {
        self.state
    }

    /// All members Serf knows, including failed and left ones not yet reaped.
    pub fn members(&self) -> Vec<Member> {
        let mut v: Vec<Member> = self
            .members
            .iter()
            .map(|(id, ms)| self.member_at(id, ms))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Our network coordinate (None when coordinates are disabled).
    pub fn coordinate(&self) -> Option<&Coordinate> {
        self.coord_client.as_ref().map(|c| c.coordinate())
    }

    /// How often our coordinate went invalid and was reset (None when coordinates are disabled).
    pub fn coordinate_resets(&self) -> Option<u64> {
        self.coord_client.as_ref().map(|c| c.stats().resets)
    }

    /// Broadcasts waiting for gossip, counted as Serf's three queues: join and leave intents,
    /// user events, and queries. (Serf keeps three queues; here they share one and are told
    /// apart by their message type.)
    pub fn queue_depths(&self) -> QueueDepths {
        let mut d = QueueDepths::default();
        for msg in self.swim.queued_user_broadcasts() {
            use messages::MessageType;
            match msg.first().and_then(|&t| MessageType::from_u8(t)) {
                Some(MessageType::Join | MessageType::Leave) => d.intent += 1,
                Some(MessageType::UserEvent) => d.event += 1,
                Some(MessageType::Query) => d.query += 1,
                _ => {}
            }
        }
        d
    }

    /// The last coordinate `node` sent us; our own for our name.
    pub fn cached_coordinate(&self, node: &str) -> Option<&Coordinate> {
        if node == self.name() {
            return self.coordinate();
        }
        self.coord_cache.get(node)
    }

    /// Estimated round-trip time between two members from their coordinates (`serf rtt`).
    pub fn estimated_rtt(&self, a: &str, b: &str) -> Option<Duration> {
        let (ca, cb) = (self.cached_coordinate(a)?, self.cached_coordinate(b)?);
        ca.is_compatible_with(cb).then(|| ca.distance_to(cb))
    }

    /// How many members have `status` (without copying the member list).
    pub fn count_with_status(&self, status: MemberStatus) -> usize {
        self.members
            .iter()
            .filter(|(_, m)| m.status == status)
            .count()
    }

    /// This node as a member.
    pub fn local_member(&self) -> Member {
        self.member_named(&self.config.memberlist.name)
            .unwrap_or_else(|| self.member_from_swim(&self.swim.local()))
    }

    /// The current Lamport times: member clock, event clock, query clock.
    pub fn clocks(&self) -> (LamportTime, LamportTime, LamportTime) {
        (
            self.clock.time(),
            self.event_clock.time(),
            self.query_clock.time(),
        )
    }

    /// Serf's default query timeout: `GossipInterval * QueryTimeoutMult * ceil(log10(n+1))`.
    pub fn default_query_timeout(&self) -> Duration {
        let n = self.swim.num_alive();
        let scale = ((n as f64) + 1.0).log10().ceil().max(1.0) as u32;
        self.config.memberlist.gossip_interval * self.config.query_timeout_mult * scale
    }

    // ----- commands --------------------------------------------------------------------

    /// Joins the cluster through `addrs`; [`Event::JoinFinished`] reports the outcome. With
    /// `ignore_old`, user events from before the join are not delivered (Serf's default,
    /// unlike `-replay`).
    pub fn join(&mut self, now: Instant, addrs: &[SocketAddr], ignore_old: bool) -> Result<JoinId> {
        if self.state != State::Alive {
            return Err(Error::NotAllowed("leaving or left"));
        }
        self.refresh_state();
        let id = self.swim.join(now, addrs);
        self.joins.insert(id, ignore_old);
        if ignore_old {
            self.ignore_old_joins += 1;
        }
        self.pump(now);
        Ok(id)
    }

    /// Starts a graceful leave; [`Event::LeaveComplete`] follows.
    pub fn leave(&mut self, now: Instant) -> Result<()> {
        match self.state {
            State::Left => return Ok(()),
            State::Leaving => return Err(Error::NotAllowed("already leaving")),
            State::Alive => {}
        }
        self.state = State::Leaving;
        let msg = Leave {
            ltime: self.clock.time(),
            node: self.name().to_owned(),
            prune: false,
        };
        self.clock.increment();
        self.handle_leave_intent(now, &msg);
        let until = now + self.config.broadcast_timeout;
        let notify = if self.has_alive_members() {
            let raw = messages::encode(&Message::Leave(msg));
            Some(self.swim.queue_user_broadcast_notify(raw, None))
        } else {
            None
        };
        self.leave = Some(LeavePhase::Intent { notify, until });
        if notify.is_none() {
            self.advance_leave(now, true);
        }
        self.pump(now);
        Ok(())
    }

    /// Replaces this node's tags (announced with a new incarnation).
    pub fn set_tags(&mut self, now: Instant, tags: BTreeMap<String, String>) -> Result<()> {
        let meta = messages::encode_tags_for_protocol(&tags, self.config.protocol_version);
        if meta.len() > hearsay_swim::wire::META_MAX_SIZE {
            return Err(Error::TagsTooLarge(meta.len()));
        }
        self.swim.set_meta(now, meta)?;
        self.config.tags = tags;
        self.pump(now);
        Ok(())
    }

    /// Fires a user event to the whole cluster (Serf's `UserEvent`).
    pub fn user_event(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        coalesce: bool,
    ) -> Result<()> {
        let raw_size = name.len() + payload.len();
        let limit = self.config.user_event_size_limit;
        if raw_size > limit {
            return Err(Error::UserEventTooLarge {
                size: raw_size,
                limit,
            });
        }
        let msg = messages::UserEvent {
            ltime: self.event_clock.time(),
            name: name.to_owned(),
            payload: payload.to_vec(),
            cc: coalesce,
        };
        let raw = messages::encode(&Message::UserEvent(msg.clone()));
        if raw.len() > limit {
            return Err(Error::UserEventTooLarge {
                size: raw.len(),
                limit,
            });
        }
        self.event_clock.increment();
        self.handle_user_event(&msg);
        self.swim.queue_user_broadcast(raw, None);
        self.state_dirty = true;
        self.pump(now);
        Ok(())
    }

    /// Starts a query; results arrive as [`Event::QueryAck`], [`Event::QueryResponse`] and
    /// finally [`Event::QueryDone`].
    pub fn query(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        params: QueryParams,
    ) -> Result<QueryId> {
        if self.config.protocol_version < 4 {
            return Err(Error::ProtocolTooOld("queries", 4));
        }
        let timeout = if params.timeout.is_zero() {
            self.default_query_timeout()
        } else {
            params.timeout
        };
        let mut filters = Vec::new();
        if !params.filter_nodes.is_empty() {
            filters.push(Filter::Nodes(params.filter_nodes.clone()));
        }
        for (tag, expr) in &params.filter_tags {
            regex::Regex::new(expr).map_err(|e| Error::BadRegex {
                expr: expr.clone(),
                reason: e.to_string(),
            })?;
            filters.push(Filter::Tag {
                tag: tag.clone(),
                expr: expr.clone(),
            });
        }
        let local = self.swim.local();
        let q = Query {
            ltime: self.query_clock.time(),
            id: self.rng.gen::<u32>() >> 1,
            addr: ip_bytes(local.addr.ip()),
            port: local.addr.port(),
            source_node: local.name.clone(),
            filters,
            flags: if params.request_ack {
                QUERY_FLAG_ACK
            } else {
                0
            },
            relay_factor: params.relay_factor,
            timeout,
            name: name.to_owned(),
            payload: payload.to_vec(),
        };
        let raw = messages::encode(&Message::Query(q.clone()));
        if raw.len() > self.config.query_size_limit {
            return Err(Error::QueryTooLarge {
                size: raw.len(),
                limit: self.config.query_size_limit,
            });
        }
        let expected = params
            .finish_early
            .then(|| self.matching_members(&q.filters));
        let qid = QueryId {
            ltime: q.ltime,
            id: q.id,
        };
        self.outgoing.insert(
            q.ltime,
            (
                q.id,
                Outgoing {
                    params_finish_early: params.finish_early,
                    request_ack: params.request_ack,
                    deadline: now + timeout,
                    expected,
                    acks: HashSet::new(),
                    responses: HashSet::new(),
                    external: HashSet::new(),
                },
            ),
        );
        self.query_clock.increment();
        self.handle_query(now, q);
        self.swim.queue_user_broadcast(raw, None);
        self.state_dirty = true;
        self.pump(now);
        Ok(qid)
    }

    /// Answers a query delivered as [`Event::Query`] (once per query, before its deadline).
    pub fn respond(
        &mut self,
        now: Instant,
        ltime: LamportTime,
        id: u32,
        payload: &[u8],
    ) -> Result<()> {
        let resp = QueryResponse {
            ltime,
            id,
            from: self.name().to_owned(),
            flags: 0,
            payload: payload.to_vec(),
        };
        let r = self.send_response(now, resp);
        self.pump(now);
        r
    }

    /// hearsay extension: claims this node's one answer to a query delivered as
    /// [`Event::Query`] for a response that travels outside Serf's UDP path (a large response
    /// streamed over QUIC). After this, [`Serf::respond`] for the same query fails with
    /// [`Error::AlreadyResponded`], as after a normal answer. Returns the query's relay
    /// factor, so the out-of-band response can be relayed as Serf relays a UDP one.
    pub fn claim_response(&mut self, now: Instant, ltime: LamportTime, id: u32) -> Result<u8> {
        let inq = self
            .incoming
            .get_mut(&(ltime, id))
            .filter(|i| i.deadline > now)
            .ok_or(Error::PastDeadline)?;
        if inq.responded {
            return Err(Error::AlreadyResponded);
        }
        inq.responded = true;
        Ok(inq.relay_factor)
    }

    /// hearsay extension, originator side: a response to our query `ltime`/`id` from `from`
    /// is arriving outside the UDP path. Counts it as that node's one response (a later UDP
    /// response from it is ignored, as a duplicate would be) and holds back finishing early
    /// until [`Serf::handle_external_response_done`]. Fails when the query is not running
    /// (unknown or past its deadline) or `from` has already answered.
    pub fn handle_external_response(
        &mut self,
        ltime: LamportTime,
        id: u32,
        from: &str,
    ) -> Result<QueryId> {
        let q = match self.outgoing.get_mut(&ltime) {
            Some((qid, q)) if *qid == id => q,
            _ => return Err(Error::PastDeadline),
        };
        if !q.responses.insert(from.to_owned()) {
            return Err(Error::AlreadyResponded);
        }
        q.external.insert(from.to_owned());
        Ok(QueryId { ltime, id })
    }

    /// hearsay extension, originator side: the out-of-band response from `from` ended (whole
    /// or failed); the query may now finish early.
    pub fn handle_external_response_done(&mut self, now: Instant, query: QueryId, from: &str) {
        if let Some((id, q)) = self.outgoing.get_mut(&query.ltime) {
            if *id == query.id {
                q.external.remove(from);
                self.finish_if_answered(query);
            }
        }
        self.pump(now);
    }

    /// Forces a failed member into the left state (Serf's `RemoveFailedNode`), optionally
    /// pruning it from the member list at once.
    pub fn force_leave(&mut self, now: Instant, node: &str, prune: bool) -> Result<()> {
        let msg = Leave {
            ltime: self.clock.time(),
            node: node.to_owned(),
            prune,
        };
        self.clock.increment();
        self.handle_leave_intent(now, &msg);
        if self.has_alive_members() {
            self.swim
                .queue_user_broadcast(messages::encode(&Message::Leave(msg)), None);
        }
        self.state_dirty = true;
        self.pump(now);
        Ok(())
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

    // ----- internals -------------------------------------------------------------------------

    fn name(&self) -> &str {
        &self.config.memberlist.name
    }

    /// Serf's push/pull state, re-encoded only when something in it changed.
    fn refresh_state(&mut self) {
        if !self.state_dirty {
            return;
        }
        self.state_dirty = false;
        // Encoded from the member table (names in ascending order, as Serf's map would be
        // written by us): no map of N owned names, no copy of the event ring.
        let swim = &self.swim;
        let mut members: Vec<(&str, LamportTime, bool)> = self
            .members
            .iter()
            .map(|(id, m)| {
                (
                    swim.name_of(id),
                    m.status_ltime,
                    m.status == MemberStatus::Left,
                )
            })
            .collect();
        members.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let left: Vec<&str> = members.iter().filter(|m| m.2).map(|m| m.0).collect();
        let mut state = messages::encode_push_pull(
            self.clock.time(),
            members.iter().map(|m| (m.0, m.1)),
            &left,
            self.event_clock.time(),
            // Like Serf: the whole ring, empty slots included.
            &self.event_buffer,
            self.query_clock.time(),
        );
        // Kept until the next change: no growth slack on N names' worth of bytes.
        state.shrink_to_fit();
        self.swim.set_user_state(state);
    }

    /// Moves events to `out`, through the coalescers when coalescing is on; flushes what the
    /// coalescers hold once their periods are over.
    fn route(&mut self, now: Instant) {
        if let Some(c) = self.member_coalescer.as_mut() {
            self.out
                .extend(c.handle_timeout(now).into_iter().map(Event::Member));
        }
        if let Some(c) = self.user_coalescer.as_mut() {
            self.out
                .extend(c.handle_timeout(now).into_iter().map(Event::User));
        }
        while let Some(ev) = self.events.pop_front() {
            match (
                ev,
                self.member_coalescer.as_mut(),
                self.user_coalescer.as_mut(),
            ) {
                (Event::Member(m), Some(c), _) => c.handle_event(now, m),
                (Event::User(u), _, Some(c)) => {
                    if let Some(passed) = c.handle_event(now, u) {
                        self.out.push_back(Event::User(passed));
                    }
                }
                (ev, _, _) => self.out.push_back(ev),
            }
        }
        hearsay_swim::heap::release_idle(&mut self.events);
    }

    /// Moves everything the membership core produced through the Serf layer.
    fn pump(&mut self, now: Instant) {
        while let Some(ev) = self.swim.poll_event() {
            match ev {
                SwimEvent::MemberJoined(m) => self.handle_node_join(now, &m),
                SwimEvent::MemberUpdated(m) => self.handle_node_update(&m),
                SwimEvent::MemberLeft(m) | SwimEvent::MemberFailed(m) => {
                    self.handle_node_leave(now, &m)
                }
                SwimEvent::UserMessage(buf) => self.handle_message(now, &buf),
                SwimEvent::RemoteState { join, state } => {
                    self.merge_remote_state(now, &state, join)
                }
                SwimEvent::NameConflict { existing, other } => {
                    self.handle_name_conflict(now, &existing, other)
                }
                SwimEvent::PingComplete { node, rtt, payload } => {
                    self.handle_ping_complete(&node, rtt, &payload)
                }
                SwimEvent::JoinFinished { id, joined, errors } => {
                    if let Some(ignore) = self.joins.remove(&id) {
                        if ignore {
                            self.ignore_old_joins = self.ignore_old_joins.saturating_sub(1);
                        }
                        if joined > 0 {
                            self.broadcast_join(now);
                        }
                        self.events
                            .push_back(Event::JoinFinished { id, joined, errors });
                    }
                    // Reconnect joins are fire-and-forget.
                }
                SwimEvent::UserBroadcastDone(id) => {
                    if let Some(LeavePhase::Intent {
                        notify: Some(n), ..
                    }) = self.leave
                    {
                        if n == id {
                            self.advance_leave(now, true);
                        }
                    }
                }
                SwimEvent::LeaveComplete => {
                    if let Some(LeavePhase::Memberlist { .. }) = self.leave {
                        self.advance_leave(now, true);
                    }
                }
            }
        }
        self.route(now);
    }

    /// Serf's `handleNodeConflict`: conflicts about other nodes are only logged; one about us
    /// starts a `_serf_conflict` vote (unless one is running).
    fn handle_name_conflict(
        &mut self,
        now: Instant,
        existing: &hearsay_swim::Member,
        other: SocketAddr,
    ) {
        if existing.name != self.config.memberlist.name {
            warn!(node = %self.name(), peer = %existing.name, ours = %existing.addr, theirs = %other, "serf: name conflict: both addresses claim the node");
            return;
        }
        warn!(node = %self.name(), theirs = %other, "serf: another node claims our name; starting conflict resolution");
        if self.conflict_vote.is_some() {
            return;
        }
        let name = self.name().to_owned();
        let query = format!("{INTERNAL_QUERY_PREFIX}conflict");
        match self.query(now, &query, name.as_bytes(), QueryParams::default()) {
            Ok(id) => self.conflict_vote = Some((id, 0, 0)),
            Err(e) => {
                warn!(node = %self.name(), error = %e, "serf: failed to start conflict resolution")
            }
        }
    }

    /// Counts one `_serf_conflict` answer: does the responder know our name at our address?
    fn count_conflict_vote(&mut self, payload: &[u8]) {
        let local = self.swim.local().addr;
        let Some((_, responses, matching)) = self.conflict_vote.as_mut() else {
            return;
        };
        match messages::decode_conflict_response(payload) {
            Ok(member) => {
                *responses += 1;
                if member.is_some_and(|m| socket_addr(&m.addr, m.port) == Some(local)) {
                    *matching += 1;
                }
            }
            Err(e) => {
                warn!(node = %self.config.memberlist.name, error = %e, "serf: invalid conflict query response")
            }
        }
    }

    /// Serf's ping delegate: a peer's ack carried its coordinate; update ours from the RTT.
    fn handle_ping_complete(&mut self, node: &str, rtt: Duration, payload: &[u8]) {
        let Some(client) = self.coord_client.as_mut() else {
            return;
        };
        if payload.is_empty() {
            // A peer with coordinates disabled.
            return;
        }
        let other = match coordinate::decode_ping_payload(payload) {
            Ok(c) => c,
            Err(e) => {
                warn!(node = %self.config.memberlist.name, peer = node, error = %e, "serf: bad coordinate in ping ack");
                return;
            }
        };
        match client.update(node, &other, rtt) {
            Ok(mine) => {
                self.swim
                    .set_ack_payload(coordinate::encode_ping_payload(&mine));
                self.coord_cache.insert(node.to_owned(), other);
            }
            Err(e) => {
                debug!(node = %self.config.memberlist.name, peer = node, error = %e, "serf: rejected coordinate");
            }
        }
    }

    fn advance_leave(&mut self, now: Instant, done: bool) {
        let Some(phase) = self.leave else { return };
        match phase {
            LeavePhase::Intent { until, .. } if done || now >= until => {
                if !done {
                    warn!(node = %self.name(), "serf: timeout while waiting for graceful leave");
                }
                self.leave = Some(LeavePhase::Memberlist {
                    until: now + self.config.broadcast_timeout,
                });
                self.swim.leave(now);
                // A lone node completes at once; pick that up now.
                self.pump(now);
            }
            LeavePhase::Memberlist { until } if done || now >= until => {
                if !done {
                    warn!(node = %self.name(), "serf: timeout waiting for the memberlist leave broadcast");
                }
                self.leave = Some(LeavePhase::Propagate {
                    until: now + self.config.leave_propagate_delay,
                });
            }
            LeavePhase::Propagate { until } if now >= until => {
                self.leave = None;
                self.state = State::Left;
                info!(node = %self.name(), "serf: left the cluster");
                self.events.push_back(Event::LeaveComplete);
            }
            _ => {}
        }
    }

    /// The id of a member in Serf's table.
    fn member_id(&self, name: &str) -> Option<NameId> {
        self.swim
            .name_id(name)
            .filter(|&id| self.members.contains(id))
    }

    fn state_mut(&mut self, name: &str) -> Option<&mut MemberState> {
        let id = self.member_id(name)?;
        self.members.get_mut(id)
    }

    /// Serf's view of a member: its own status, the rest from the membership core.
    fn member_at(&self, id: NameId, ms: &MemberState) -> Member {
        let Some(info) = self.swim.member_info(id) else {
            // Unreachable while Serf holds the name (the core keeps what it forgets); an
            // entry without fields still reports its name and status.
            return Member {
                name: self.swim.name_of(id).to_owned(),
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                tags: BTreeMap::new(),
                status: ms.status,
                vsn: [0; 6],
            };
        };
        Member {
            name: info.name.to_owned(),
            addr: info.addr,
            // Undecodable tags were reported when the member joined or changed.
            tags: messages::decode_tags(info.meta).unwrap_or_default(),
            status: ms.status,
            vsn: info.vsn,
        }
    }

    /// Serf's view of the member named `name`.
    fn member_named(&self, name: &str) -> Option<Member> {
        let id = self.member_id(name)?;
        Some(self.member_at(id, self.members.get(id)?))
    }

    /// Drops a member from Serf's table (and its hold on the name); returns it as it was.
    fn remove_member(&mut self, name: &str) -> Option<Member> {
        let id = self.member_id(name)?;
        let member = self.member_named(name);
        self.members.remove(id);
        self.leave_times.remove(&id);
        self.swim.release_name(id);
        member
    }

    fn member_from_swim(&self, m: &hearsay_swim::Member) -> Member {
        let tags = messages::decode_tags(&m.meta).unwrap_or_else(|e| {
            warn!(node = %self.name(), peer = %m.name, error = %e, "serf: undecodable tags");
            BTreeMap::new()
        });
        Member {
            name: m.name.clone(),
            addr: m.addr,
            tags,
            status: MemberStatus::Alive,
            vsn: m.vsn,
        }
    }

    fn emit_member(&mut self, kind: MemberEventKind, member: Member) {
        self.events.push_back(Event::Member(MemberEvent {
            kind,
            members: vec![member],
        }));
    }

    fn handle_node_join(&mut self, _now: Instant, n: &hearsay_swim::Member) {
        let mut member = self.member_from_swim(n);
        match self.state_mut(&n.name) {
            None => {
                let mut ms = MemberState {
                    status: MemberStatus::Alive,
                    status_ltime: 0,
                };
                if let Some(i) = self.recent_intents.get(&n.name) {
                    match i.kind {
                        IntentKind::Join => ms.status_ltime = i.ltime,
                        IntentKind::Leave => {
                            ms.status = MemberStatus::Leaving;
                            ms.status_ltime = i.ltime;
                        }
                    }
                }
                member.status = ms.status;
                let id = self.swim.hold_name(&n.name);
                self.members.insert(id, ms);
            }
            Some(ms) => {
                ms.status = MemberStatus::Alive;
                if let Some(id) = self.member_id(&n.name) {
                    self.leave_times.remove(&id);
                }
            }
        }
        self.state_dirty = true;
        info!(node = %self.name(), peer = %member.name, addr = %member.addr, "serf: EventMemberJoin");
        self.emit_member(MemberEventKind::Join, member);
    }

    fn handle_node_leave(&mut self, now: Instant, n: &hearsay_swim::Member) {
        let Some(id) = self.member_id(&n.name) else {
            return;
        };
        let ms = self.members.get_mut(id).expect("member_id checks");
        let kind = match ms.status {
            MemberStatus::Leaving => {
                ms.status = MemberStatus::Left;
                MemberEventKind::Leave
            }
            MemberStatus::Alive => {
                ms.status = MemberStatus::Failed;
                MemberEventKind::Failed
            }
            other => {
                warn!(node = %self.config.memberlist.name, peer = %n.name, status = other.as_str(), "serf: bad state when leave");
                return;
            }
        };
        self.leave_times.insert(id, now);
        let member = self.member_named(&n.name).expect("checked above");
        self.state_dirty = true;
        info!(node = %self.name(), peer = %member.name, addr = %member.addr, event = kind.as_str(), "serf: member left or failed");
        self.emit_member(kind, member);
    }

    fn handle_node_update(&mut self, n: &hearsay_swim::Member) {
        let mut member = self.member_from_swim(n);
        let Some(ms) = self.state_mut(&n.name) else {
            return;
        };
        member.status = ms.status;
        info!(node = %self.name(), peer = %member.name, "serf: EventMemberUpdate");
        self.emit_member(MemberEventKind::Update, member);
    }

    fn upsert_intent(
        &mut self,
        node: &str,
        kind: IntentKind,
        ltime: LamportTime,
        now: Instant,
    ) -> bool {
        match self.recent_intents.get(node) {
            Some(i) if ltime <= i.ltime => false,
            _ => {
                self.recent_intents.insert(
                    node.to_owned(),
                    Intent {
                        kind,
                        ltime,
                        at: now,
                    },
                );
                true
            }
        }
    }

    fn handle_leave_intent(&mut self, now: Instant, msg: &Leave) -> bool {
        self.clock.witness(msg.ltime);
        let Some(id) = self.member_id(&msg.node) else {
            return self.upsert_intent(&msg.node, IntentKind::Leave, msg.ltime, now);
        };
        let ms = self.members.get(id).expect("member_id checks");
        if msg.ltime <= ms.status_ltime {
            return false;
        }
        if msg.node == self.config.memberlist.name && self.state == State::Alive {
            debug!(node = %self.name(), "serf: refuting an older leave intent");
            self.broadcast_join(now);
            return false;
        }
        let ms = self.members.get_mut(id).expect("member_id checks");
        ms.status_ltime = msg.ltime;
        self.state_dirty = true;
        let rebroadcast = match ms.status {
            MemberStatus::Alive => {
                ms.status = MemberStatus::Leaving;
                true
            }
            MemberStatus::Failed => {
                ms.status = MemberStatus::Left;
                let member = self.member_named(&msg.node).expect("checked above");
                info!(node = %self.name(), peer = %member.name, "serf: EventMemberLeave (forced)");
                self.emit_member(MemberEventKind::Leave, member);
                true
            }
            MemberStatus::Leaving | MemberStatus::Left => true,
            MemberStatus::None => false,
        };
        if rebroadcast && msg.prune {
            self.prune(&msg.node);
        }
        rebroadcast
    }

    fn forget_coordinate(&mut self, node: &str) {
        self.coord_cache.remove(node);
        if let Some(c) = self.coord_client.as_mut() {
            c.forget_node(node);
        }
    }

    fn prune(&mut self, node: &str) {
        if let Some(member) = self.remove_member(node) {
            self.forget_coordinate(node);
            info!(node = %self.name(), peer = %node, "serf: EventMemberReap (forced)");
            self.state_dirty = true;
            self.emit_member(MemberEventKind::Reap, member);
        }
    }

    fn handle_join_intent(&mut self, now: Instant, msg: &Join) -> bool {
        self.clock.witness(msg.ltime);
        let Some(ms) = self.state_mut(&msg.node) else {
            return self.upsert_intent(&msg.node, IntentKind::Join, msg.ltime, now);
        };
        if msg.ltime <= ms.status_ltime {
            return false;
        }
        ms.status_ltime = msg.ltime;
        if ms.status == MemberStatus::Leaving {
            ms.status = MemberStatus::Alive;
        }
        self.state_dirty = true;
        true
    }

    fn broadcast_join(&mut self, now: Instant) {
        let msg = Join {
            ltime: self.clock.time(),
            node: self.name().to_owned(),
        };
        self.clock.witness(msg.ltime);
        self.handle_join_intent(now, &msg);
        self.swim
            .queue_user_broadcast(messages::encode(&Message::Join(msg)), None);
    }

    fn has_alive_members(&self) -> bool {
        self.members.iter().any(|(id, m)| {
            m.status == MemberStatus::Alive && self.swim.name_of(id) != self.config.memberlist.name
        })
    }

    fn handle_message(&mut self, now: Instant, buf: &[u8]) {
        let msg = match messages::decode(buf) {
            Ok(m) => m,
            Err(e) => {
                warn!(node = %self.name(), error = %e, "serf: dropping undecodable message");
                return;
            }
        };
        let rebroadcast = match msg {
            Message::Leave(l) => self.handle_leave_intent(now, &l),
            Message::Join(j) => self.handle_join_intent(now, &j),
            Message::UserEvent(e) => self.handle_user_event(&e),
            Message::Query(q) => self.handle_query(now, q),
            Message::QueryResponse(r) => {
                self.handle_query_response(r);
                false
            }
            Message::Relay { dest, inner, .. } => {
                debug!(node = %self.name(), %dest, "serf: relaying response");
                self.swim.send_user_packet(dest, &inner);
                false
            }
            Message::PushPull(_)
            | Message::ConflictResponse(_)
            | Message::KeyRequest(_)
            | Message::KeyResponse(_) => {
                debug!(node = %self.name(), "serf: ignoring a message type not valid in gossip");
                false
            }
        };
        if rebroadcast {
            self.swim.queue_user_broadcast(buf.to_vec(), None);
        }
    }

    fn handle_user_event(&mut self, msg: &messages::UserEvent) -> bool {
        self.event_clock.witness(msg.ltime);
        if msg.ltime < self.event_min_time {
            return false;
        }
        let cur = self.event_clock.time();
        let len = self.event_buffer.len() as LamportTime;
        if cur > len && msg.ltime < cur - len {
            warn!(node = %self.name(), event = %msg.name, ltime = msg.ltime, current = cur, "serf: received old event");
            return false;
        }
        let idx = (msg.ltime % len) as usize;
        let entry = UserEventEntry {
            name: msg.name.clone(),
            payload: msg.payload.clone(),
        };
        match &mut self.event_buffer[idx] {
            Some(slot) if slot.ltime == msg.ltime => {
                if slot.events.contains(&entry) {
                    return false;
                }
                slot.events.push(entry);
            }
            slot => {
                *slot = Some(UserEvents {
                    ltime: msg.ltime,
                    events: vec![entry],
                })
            }
        }
        self.state_dirty = true;
        self.events.push_back(Event::User(UserEvent {
            ltime: msg.ltime,
            name: msg.name.clone(),
            payload: msg.payload.clone(),
            coalesce: msg.cc,
        }));
        true
    }

    fn should_process(&self, filters: &[Filter]) -> bool {
        for f in filters {
            match f {
                Filter::Nodes(nodes) => {
                    if !nodes.iter().any(|n| n == self.name()) {
                        return false;
                    }
                }
                Filter::Tag { tag, expr } => {
                    let value = self.config.tags.get(tag).map(String::as_str).unwrap_or("");
                    match regex::Regex::new(expr) {
                        Ok(re) if re.is_match(value) => {}
                        Ok(_) => return false,
                        Err(e) => {
                            warn!(node = %self.name(), expr = %expr, error = %e, "serf: failed to compile filter regex");
                            return false;
                        }
                    }
                }
                Filter::Undecodable(_) => {
                    warn!(node = %self.name(), "serf: query has an undecodable filter");
                    return false;
                }
            }
        }
        true
    }

    /// Alive members that pass `filters`, as the originator sees their tags.
    fn matching_members(&self, filters: &[Filter]) -> HashSet<String> {
        let mut out = HashSet::new();
        'members: for (id, ms) in self.members.iter() {
            if ms.status != MemberStatus::Alive {
                continue;
            }
            let name = self.swim.name_of(id);
            let mut tags = None;
            for f in filters {
                let ok = match f {
                    Filter::Nodes(nodes) => nodes.iter().any(|n| n == name),
                    Filter::Tag { tag, expr } => {
                        let tags = tags.get_or_insert_with(|| self.member_at(id, ms).tags);
                        let value = tags.get(tag).map(String::as_str).unwrap_or("");
                        regex::Regex::new(expr)
                            .map(|re| re.is_match(value))
                            .unwrap_or(false)
                    }
                    Filter::Undecodable(_) => false,
                };
                if !ok {
                    continue 'members;
                }
            }
            out.insert(name.to_owned());
        }
        out
    }

    fn handle_query(&mut self, now: Instant, q: Query) -> bool {
        self.query_clock.witness(q.ltime);
        if q.ltime < self.query_min_time {
            return false;
        }
        let cur = self.query_clock.time();
        let len = self.query_buffer.len() as LamportTime;
        if cur > len && q.ltime < cur - len {
            warn!(node = %self.name(), query = %q.name, ltime = q.ltime, current = cur, "serf: received old query");
            return false;
        }
        let idx = (q.ltime % len) as usize;
        match &mut self.query_buffer[idx] {
            Some((lt, ids)) if *lt == q.ltime => {
                if ids.contains(&q.id) {
                    return false;
                }
                ids.push(q.id);
            }
            slot => *slot = Some((q.ltime, vec![q.id])),
        }
        self.state_dirty = true;
        let rebroadcast = q.flags & QUERY_FLAG_NO_BROADCAST == 0;
        if !self.should_process(&q.filters) {
            return rebroadcast;
        }
        let Some(addr) = socket_addr(&q.addr, q.port) else {
            warn!(node = %self.name(), query = %q.name, "serf: query with a bad reply address");
            return rebroadcast;
        };
        if q.ack() {
            let ack = QueryResponse {
                ltime: q.ltime,
                id: q.id,
                from: self.name().to_owned(),
                flags: QUERY_FLAG_ACK,
                payload: Vec::new(),
            };
            let raw = messages::encode(&Message::QueryResponse(ack.clone()));
            self.swim.send_user_packet(addr, &raw);
            self.relay_response(q.relay_factor, addr, &q.source_node, &ack);
        }
        let deadline = now + q.timeout;
        self.incoming.insert(
            (q.ltime, q.id),
            Incoming {
                addr,
                source_node: q.source_node.clone(),
                relay_factor: q.relay_factor,
                deadline,
                responded: false,
            },
        );
        if q.name.starts_with(INTERNAL_QUERY_PREFIX) {
            self.handle_internal_query(now, &q);
        } else {
            self.events.push_back(Event::Query(QueryEvent {
                ltime: q.ltime,
                id: q.id,
                name: q.name,
                payload: q.payload,
                source_node: q.source_node,
                deadline,
            }));
        }
        rebroadcast
    }

    /// Serf's internal queries (`internal_query.go`): `_serf_ping` needs only the ack;
    /// `_serf_conflict` answers with our view of the node; key queries change the keyring.
    fn handle_internal_query(&mut self, now: Instant, q: &Query) {
        let op = &q.name[INTERNAL_QUERY_PREFIX.len()..];
        let reply = match op {
            "ping" => return,
            "conflict" => {
                let node = String::from_utf8_lossy(&q.payload).into_owned();
                if node == self.name() {
                    return;
                }
                let Some(m) = self.member_named(&node) else {
                    return;
                };
                let cm = messages::ConflictMember {
                    addr: ip_bytes(m.addr.ip()),
                    port: m.addr.port(),
                    name: m.name,
                    tags: m.tags,
                    status: m.status as i64,
                    protocol_min: m.vsn[0],
                    protocol_max: m.vsn[1],
                    protocol_cur: m.vsn[2],
                    delegate_min: m.vsn[3],
                    delegate_max: m.vsn[4],
                    delegate_cur: m.vsn[5],
                };
                messages::encode_conflict_response(Some(&cm))
            }
            "install-key" | "use-key" | "remove-key" | "list-keys" => {
                self.key_query(op, &q.payload)
            }
            other => {
                warn!(node = %self.name(), query = other, "serf: unhandled internal query");
                return;
            }
        };
        let resp = QueryResponse {
            ltime: q.ltime,
            id: q.id,
            from: self.name().to_owned(),
            flags: 0,
            payload: reply,
        };
        if let Err(e) = self.send_response(now, resp) {
            warn!(node = %self.name(), query = %q.name, error = %e, "serf: failed to answer internal query");
        }
    }

    fn key_query(&mut self, op: &str, payload: &[u8]) -> Vec<u8> {
        let mut resp = messages::KeyResponse::default();
        let result: std::result::Result<(), String> = (|| {
            if op == "list-keys" {
                let kr = self
                    .swim
                    .keyring()
                    .ok_or("Keyring is empty (encryption not enabled)")?;
                resp.keys = kr
                    .keys()
                    .iter()
                    .map(|k| hearsay_swim::keyring::encode_base64_key(k))
                    .collect();
                resp.primary_key = hearsay_swim::keyring::encode_base64_key(kr.primary());
                return Ok(());
            }
            let key = messages::decode_key_request(payload)
                .map_err(|e| format!("Failed to decode key request: {e}"))?;
            let kr = self
                .swim
                .keyring_mut()
                .ok_or("No keyring to modify (encryption not enabled)")?;
            match op {
                "install-key" => kr.add_key(&key),
                "use-key" => kr.use_key(&key),
                _ => kr.remove_key(&key),
            }
            .map_err(|e| keyring_error_text(&e))
        })();
        match result {
            Ok(()) => resp.result = true,
            Err(e) => {
                warn!(node = %self.name(), op, error = %e, "serf: key query failed");
                resp.message = e;
            }
        }
        messages::encode_key_response(&resp)
    }

    fn send_response(&mut self, _now: Instant, resp: QueryResponse) -> Result<()> {
        let key = (resp.ltime, resp.id);
        let Some(inq) = self.incoming.get(&key).cloned() else {
            return Err(Error::PastDeadline);
        };
        if inq.responded {
            return Err(Error::AlreadyResponded);
        }
        let raw = messages::encode(&Message::QueryResponse(resp.clone()));
        if raw.len() > self.config.query_response_size_limit {
            return Err(Error::ResponseTooLarge {
                size: raw.len(),
                limit: self.config.query_response_size_limit,
            });
        }
        self.swim.send_user_packet(inq.addr, &raw);
        self.relay_response(inq.relay_factor, inq.addr, &inq.source_node, &resp);
        if let Some(i) = self.incoming.get_mut(&key) {
            i.responded = true;
        }
        Ok(())
    }

    fn relay_response(
        &mut self,
        factor: u8,
        dest: SocketAddr,
        dest_name: &str,
        resp: &QueryResponse,
    ) {
        if factor == 0 || self.members.len() < factor as usize + 1 {
            return;
        }
        let inner = messages::encode(&Message::QueryResponse(resp.clone()));
        let raw = messages::encode_relay(dest, dest_name, &inner);
        if raw.len() > self.config.query_response_size_limit {
            warn!(node = %self.name(), "serf: relayed response exceeds the size limit");
            return;
        }
        let me = self.name().to_owned();
        let mut candidates: Vec<SocketAddr> = self
            .members
            .iter()
            .filter(|(_, m)| m.status == MemberStatus::Alive)
            .filter_map(|(id, _)| self.swim.member_info(id))
            .filter(|m| m.vsn[1] >= 5 && m.name != me)
            .map(|m| m.addr)
            .collect();
        candidates.sort();
        for _ in 0..factor {
            if candidates.is_empty() {
                break;
            }
            let i = self.rng.gen_range(0..candidates.len());
            let to = candidates.swap_remove(i);
            self.swim.send_user_packet(to, &raw);
        }
    }

    fn handle_query_response(&mut self, r: QueryResponse) {
        let Some((id, q)) = self.outgoing.get_mut(&r.ltime) else {
            debug!(node = %self.config.memberlist.name, ltime = r.ltime, id = r.id, from = %r.from, "serf: reply for non-running query");
            return;
        };
        if *id != r.id {
            warn!(node = %self.config.memberlist.name, local = *id, response = r.id, "serf: query reply ID mismatch");
            return;
        }
        let query = QueryId {
            ltime: r.ltime,
            id: r.id,
        };
        if r.ack() {
            if q.acks.insert(r.from.clone()) {
                self.events.push_back(Event::QueryAck {
                    query,
                    from: r.from,
                });
            }
        } else if q.responses.insert(r.from.clone()) {
            if self.conflict_vote.is_some_and(|(id, _, _)| id == query) {
                self.count_conflict_vote(&r.payload);
                return;
            }
            self.events.push_back(Event::QueryResponse {
                query,
                from: r.from,
                payload: r.payload,
            });
        }
        self.finish_if_answered(query);
    }

    /// hearsay extension: finishes a `finish_early` query once every expected node answered
    /// (and acked, when acks were asked for) and no out-of-band response is still arriving.
    fn finish_if_answered(&mut self, query: QueryId) {
        let Some((_, q)) = self.outgoing.get(&query.ltime) else {
            return;
        };
        if let (true, Some(expected)) = (q.params_finish_early, &q.expected) {
            let answered = expected.iter().all(|n| q.responses.contains(n))
                && (!q.request_ack || expected.iter().all(|n| q.acks.contains(n)))
                && q.external.is_empty();
            if answered {
                self.outgoing.remove(&query.ltime);
                self.events.push_back(Event::QueryDone { query });
            }
        }
    }

    fn expire_queries(&mut self, now: Instant) {
        let mut done: Vec<(LamportTime, u32)> = self
            .outgoing
            .iter()
            .filter(|(_, (_, q))| q.deadline <= now)
            .map(|(lt, (id, _))| (*lt, *id))
            .collect();
        done.sort_unstable();
        for (ltime, id) in done {
            self.outgoing.remove(&ltime);
            let query = QueryId { ltime, id };
            match self.conflict_vote {
                Some((vote, responses, matching)) if vote == query => {
                    self.conflict_vote = None;
                    let won = matching > responses / 2;
                    if won {
                        info!(node = %self.name(), matching, responses, "serf: majority in name conflict resolution");
                    } else {
                        warn!(node = %self.name(), matching, responses, "serf: minority in name conflict resolution, quitting");
                    }
                    self.events.push_back(Event::NameConflict {
                        won,
                        matching,
                        responses,
                    });
                }
                _ => self.events.push_back(Event::QueryDone { query }),
            }
        }
        self.incoming.retain(|_, q| q.deadline > now);
    }

    fn merge_remote_state(&mut self, now: Instant, buf: &[u8], join: bool) {
        let pp = match messages::decode(buf) {
            Ok(Message::PushPull(pp)) => pp,
            Ok(_) => {
                warn!(node = %self.name(), "serf: remote state has a bad type prefix");
                return;
            }
            Err(e) => {
                warn!(node = %self.name(), error = %e, "serf: failed to decode remote state");
                return;
            }
        };
        if pp.ltime > 0 {
            self.clock.witness(pp.ltime - 1);
        }
        if pp.event_ltime > 0 {
            self.event_clock.witness(pp.event_ltime - 1);
        }
        if pp.query_ltime > 0 {
            self.query_clock.witness(pp.query_ltime - 1);
        }
        let left: HashSet<&String> = pp.left_members.iter().collect();
        for name in &pp.left_members {
            let ltime = pp.status_ltimes.get(name).copied().unwrap_or(0) + 1;
            self.handle_leave_intent(
                now,
                &Leave {
                    ltime,
                    node: name.clone(),
                    prune: false,
                },
            );
        }
        for (name, ltime) in &pp.status_ltimes {
            if left.contains(name) {
                continue;
            }
            self.handle_join_intent(
                now,
                &Join {
                    ltime: *ltime,
                    node: name.clone(),
                },
            );
        }
        if join && self.ignore_old_joins > 0 && pp.event_ltime > self.event_min_time {
            self.event_min_time = pp.event_ltime;
        }
        for slot in pp.events.iter().flatten() {
            for e in &slot.events {
                let msg = messages::UserEvent {
                    ltime: slot.ltime,
                    name: e.name.clone(),
                    payload: e.payload.clone(),
                    cc: false,
                };
                self.handle_user_event(&msg);
            }
        }
        self.state_dirty = true;
    }

    fn reap(&mut self, now: Instant) {
        let mut reaped = Vec::new();
        for (id, ms) in self.members.iter() {
            let name = self.swim.name_of(id);
            let timeout = match ms.status {
                MemberStatus::Failed => self.config.reconnect_timeout,
                MemberStatus::Left => self.config.tombstone_timeout,
                _ => continue,
            };
            if self
                .leave_times
                .get(&id)
                .is_some_and(|&t| now.saturating_duration_since(t) > timeout)
            {
                reaped.push(name.to_owned());
            }
        }
        reaped.sort();
        for name in reaped {
            if let Some(member) = self.remove_member(&name) {
                self.forget_coordinate(&name);
                info!(node = %self.name(), peer = %name, "serf: EventMemberReap");
                self.emit_member(MemberEventKind::Reap, member);
                self.state_dirty = true;
            }
        }
        let limit = self.config.recent_intent_timeout;
        self.recent_intents
            .retain(|_, i| now.saturating_duration_since(i.at) <= limit);
    }

    /// Serf's reconnect: with probability failed/alive, join a random failed member.
    fn reconnect(&mut self, now: Instant) {
        let mut failed: Vec<SocketAddr> = self
            .members
            .iter()
            .filter(|(_, m)| m.status == MemberStatus::Failed)
            .filter_map(|(id, _)| self.swim.member_info(id))
            .map(|m| m.addr)
            .collect();
        if failed.is_empty() {
            return;
        }
        failed.sort();
        let left = self
            .members
            .iter()
            .filter(|(_, m)| m.status == MemberStatus::Left)
            .count();
        let alive = (self.members.len() - failed.len() - left).max(1);
        let prob = failed.len() as f64 / alive as f64;
        if self.rng.gen::<f64>() > prob {
            debug!(node = %self.name(), "serf: forgoing reconnect for random throttling");
            return;
        }
        let addr = failed[self.rng.gen_range(0..failed.len())];
        info!(node = %self.name(), %addr, "serf: attempting reconnect");
        self.refresh_state();
        self.swim.join(now, &[addr]);
    }

    /// The member's memberlist state, for tests and diagnostics.
    pub fn memberlist_state(&self, name: &str) -> Option<NodeStateKind> {
        self.swim.member(name).map(|m| m.state)
    }
}

/// A keyring error in memberlist's words: a key query's answer carries it, and `serf keys`
/// shows it per node beside the Go nodes' own.
fn keyring_error_text(e: &hearsay_swim::Error) -> String {
    match e {
        hearsay_swim::Error::BadKeyLength(_) => "key size must be 16, 24 or 32 bytes".to_owned(),
        hearsay_swim::Error::KeyNotInstalled => "Requested key is not in the keyring".to_owned(),
        hearsay_swim::Error::RemovePrimaryKey => {
            "Removing the primary key is not allowed".to_owned()
        }
        other => other.to_string(),
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
mod tests {
    use super::*;

    fn serf(tweak: impl FnOnce(&mut SerfConfig)) -> Serf {
        let mut cfg = SerfConfig::new(SwimConfig::lan("n1", "127.0.0.1:7946".parse().unwrap()));
        tweak(&mut cfg);
        Serf::new(cfg, None, 1, Instant::now()).unwrap()
    }

    /// Serf's `handleQuery` acks with `SendToAddress` on receipt (query.go), while the
    /// query itself is only queued for gossip (`queryBroadcasts.QueueBroadcast`): the ack
    /// leaves within the same packet handling, the rebroadcast waits for a gossip tick.
    #[test]
    fn a_received_query_is_acked_at_once_and_queued_for_the_gossip_tick() {
        use hearsay_swim::wire::{encode_message, Codec, Message as WireMessage, WireConfig};
        let mut s = serf(|_| {});
        let now = Instant::now();
        while s.poll_transmit().is_some() {}
        let origin: SocketAddr = "127.0.0.2:7946".parse().unwrap();
        let q = Query {
            ltime: 3,
            id: 77,
            addr: ip_bytes(origin.ip()),
            port: origin.port(),
            source_node: "origin".into(),
            filters: Vec::new(),
            flags: QUERY_FLAG_ACK,
            relay_factor: 0,
            timeout: Duration::from_secs(5),
            name: "ping".into(),
            payload: Vec::new(),
        };
        let raw = messages::encode(&Message::Query(q));
        let codec = Codec::new(WireConfig::default(), None);
        let mut rng = StdRng::seed_from_u64(3);
        let pkt = codec.seal_packet(
            &encode_message(&WireMessage::User(raw.clone())),
            false,
            &mut rng,
        );
        s.handle_packet(now, origin, &pkt);
        let sent: Vec<Transmit> = std::iter::from_fn(|| s.poll_transmit()).collect();
        assert_eq!(sent.len(), 1, "only the ack goes out now: {sent:?}");
        assert_eq!(sent[0].dst, origin);
        let opened = codec.open_packet(&sent[0].payload).unwrap();
        let [WireMessage::User(body)] = &opened.messages[..] else {
            panic!("{:?}", opened.messages)
        };
        let Message::QueryResponse(ack) = messages::decode(body).unwrap() else {
            panic!("not a query response")
        };
        assert_eq!((ack.ltime, ack.id, ack.flags), (3, 77, QUERY_FLAG_ACK));
        assert_eq!(ack.from, "n1");
        assert!(
            s.memberlist()
                .queued_user_broadcasts()
                .any(|m| m == &raw[..]),
            "the query is queued for gossip"
        );
    }

    #[test]
    fn tags_follow_the_protocol_version() {
        let mut tags = BTreeMap::new();
        tags.insert("role".to_owned(), "web".to_owned());
        tags.insert("dc".to_owned(), "east".to_owned());
        let old = serf(|c| {
            c.protocol_version = 2;
            c.tags = tags.clone();
        });
        // Below protocol 3 only the role travels, as raw bytes.
        assert_eq!(old.memberlist().local().meta, b"web");
        let new = serf(|c| c.tags = tags.clone());
        assert_eq!(new.memberlist().local().meta[0], 0xff);
        assert_eq!(
            messages::decode_tags(&new.memberlist().local().meta).unwrap(),
            tags
        );
    }

    #[test]
    fn limits_and_bad_input_are_refused_with_their_cause() {
        let now = Instant::now();
        let mut s = serf(|_| {});
        let big = vec![0u8; 600];
        assert!(matches!(
            s.user_event(now, "e", &big, false),
            Err(Error::UserEventTooLarge { limit: 512, .. })
        ));
        let mut params = QueryParams::default();
        params.filter_tags.insert("role".into(), "(".into());
        assert!(matches!(
            s.query(now, "q", b"", params),
            Err(Error::BadRegex { .. })
        ));
        assert!(matches!(
            s.query(now, "q", &vec![0u8; 2000], QueryParams::default()),
            Err(Error::QueryTooLarge { limit: 1024, .. })
        ));
        assert!(matches!(
            s.respond(now, 1, 2, b"x"),
            Err(Error::PastDeadline)
        ));
        let too_big = SerfConfig {
            user_event_size_limit: 10 * 1024,
            ..s.config().clone()
        };
        assert!(Serf::new(too_big, None, 1, now).is_err());
    }

    #[test]
    fn queue_depths_count_each_kind_of_broadcast() {
        let now = Instant::now();
        let mut s = serf(|_| {});
        // A lone node gossips to no one, so what it queues stays queued.
        let start = s.queue_depths();
        s.user_event(now, "a", b"1", false).unwrap();
        s.user_event(now, "b", b"2", false).unwrap();
        s.query(now, "q", b"", QueryParams::default()).unwrap();
        let d = s.queue_depths();
        assert_eq!(d.event, start.event + 2, "{d:?}");
        assert_eq!(d.query, start.query + 1, "{d:?}");
        assert_eq!(d.intent, start.intent, "{d:?}");
        assert_eq!(s.coordinate_resets(), Some(0));
        assert_eq!(
            serf(|c| c.disable_coordinates = true).coordinate_resets(),
            None
        );
    }

    #[test]
    fn default_query_timeout_follows_serfs_formula() {
        let s = serf(|_| {});
        // One member: 200 ms * 16 * ceil(log10(2)) = 3.2 s.
        assert_eq!(s.default_query_timeout(), Duration::from_millis(3200));
    }
}
