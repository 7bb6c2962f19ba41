//! [`SerfAgent`]: one Serf node (the sans-io [`Serf`] layer over the membership core) driven by
//! `hearsay-net`'s [`NodeHandle`], with async methods for what the Serf agent offers: join,
//! leave, members, user events, queries and their answers, tags. Clones share the same node.

use crate::error::{Error, Result};
use crate::quic::{QuicOptions, QuicWire, RunningQuery, Shared, QUERY_CHANNEL};
use hearsay_net::quic::endpoint::Bytes;
use hearsay_net::quic::{QuicAdvert, QUIC_TAG};
use hearsay_net::{NodeHandle, Transport, DEFAULT_EVENT_CAPACITY};
use hearsay_serf::coordinate::Coordinate;
use hearsay_serf::event::{Event, Member, MemberStatus, QueryId};
use hearsay_serf::{LamportTime, QueryParams, Serf, SerfConfig};
use hearsay_swim::Keyring;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// Slack on top of Serf's own leave timeouts before [`SerfAgent::leave`] gives up waiting.
const LEAVE_SLACK: Duration = Duration::from_secs(5);

/// Everything needed to start a Serf node besides its transport.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Serf's configuration; `memberlist.advertise` is replaced by the transport's address.
    pub config: SerfConfig,
    /// Encryption keys; `None` sends and accepts plaintext.
    pub keyring: Option<Keyring>,
    /// Seed for the random choices and nonces; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Events buffered per subscriber (see [`SerfAgent::subscribe`]).
    pub event_capacity: usize,
}

impl AgentOptions {
    /// Options with no keyring and a random seed.
    pub fn new(config: SerfConfig) -> Self {
        Self {
            config,
            keyring: None,
            seed: None,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }

    /// Turns encryption on with `keyring`.
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Fixes the seed (reproducible choices; tests only).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

/// A handle to one running Serf node.
#[derive(Clone)]
pub struct SerfAgent {
    name: String,
    node: NodeHandle<Serf>,
    /// Serf's UDP response limit (`query_response_size_limit`), fixed at start.
    pub(crate) udp_limit: usize,
    /// The QUIC endpoint for large responses, when started with one.
    pub(crate) quic: Option<Arc<QuicWire>>,
}

impl std::fmt::Debug for SerfAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerfAgent")
            .field("name", &self.name)
            .field("node", &self.node)
            .field("quic", &self.quic_advert())
            .finish()
    }
}

impl SerfAgent {
    /// Starts a node on `transport`: builds the Serf layer (advertising the transport's address)
    /// and spawns its driver task on the current tokio runtime (it panics outside one).
    ///
    /// Events raised while starting are not delivered (nobody can have subscribed);
    /// [`SerfAgent::local_member`] gives the node itself.
    pub fn start<T: Transport>(options: AgentOptions, transport: T) -> Result<Self> {
        let AgentOptions {
            mut config,
            keyring,
            seed,
            event_capacity,
        } = options;
        config.memberlist.advertise = transport.local_addr();
        let name = config.memberlist.name.clone();
        let udp_limit = config.query_response_size_limit;
        let seed = seed.unwrap_or_else(rand::random);
        let serf = Serf::new(config, keyring, seed, Instant::now())?;
        let span = tracing::info_span!("serf", node = %name);
        let node = NodeHandle::start_with(serf, transport, event_capacity, span);
        Ok(Self {
            name,
            node,
            udp_limit,
            quic: None,
        })
    }

    /// Starts a node as [`SerfAgent::start`] does, with a QUIC endpoint for large query
    /// responses: binds it, advertises it in the `_hearsay_quic` tag, admits only client
    /// certificates that alive members advertise, and delivers large responses to this node's
    /// queries through [`QueryResults`]. Replies opened with [`SerfAgent::open_reply`] stream
    /// over it when they outgrow Serf's UDP limit.
    ///
    /// A wildcard QUIC bind (0.0.0.0 or ::) is advertised with the transport's address: with
    /// a fixed port, on that port; with port 0, the endpoint binds the transport's IP instead
    /// (the chosen port must be known to be advertised).
    pub fn start_with_quic<T: Transport>(
        mut options: AgentOptions,
        transport: T,
        mut quic: QuicOptions,
    ) -> Result<Self> {
        let name = options.config.memberlist.name.clone();
        if quic.advertise.is_none() && quic.bind.ip().is_unspecified() {
            let ip = transport.local_addr().ip();
            if quic.bind.port() == 0 {
                quic.bind.set_ip(ip);
            } else {
                quic.advertise = Some(SocketAddr::new(ip, quic.bind.port()));
            }
        }
        let (wire, incoming) = QuicWire::bind(quic, &name)?;
        let advert = wire.endpoint.advert();
        options
            .config
            .tags
            .insert(QUIC_TAG.to_owned(), advert.to_tag_value());
        let bare = Self::start(options, transport)?;
        wire.spawn_tasks(bare.clone(), incoming);
        tracing::info!("agent.quic: QUIC endpoint for large responses at {advert}");
        Ok(Self {
            quic: Some(Arc::new(wire)),
            ..bare
        })
    }

    /// This node's QUIC advert (address and certificate fingerprint), when it runs QUIC.
    pub fn quic_advert(&self) -> Option<QuicAdvert> {
        self.quic.as_ref().map(|w| w.endpoint.advert())
    }

    /// How this node's QUIC response paths were used (relays opened, forwarded and taken,
    /// duplicates refused), when it runs QUIC.
    pub fn quic_stats(&self) -> Option<crate::quic::QuicStats> {
        self.quic.as_ref().map(|w| w.shared.stats.snapshot())
    }

    /// The largest reply Serf sends as one UDP response (`query_response_size_limit`,
    /// counting the encoded message).
    pub fn udp_response_limit(&self) -> usize {
        self.udp_limit
    }

    /// The QUIC advert of the member named `node`: `Ok(None)` when it is unknown or carries
    /// no valid `_hearsay_quic` tag (a Serf node).
    pub async fn member_quic_advert(&self, node: &str) -> Result<Option<QuicAdvert>> {
        let node = node.to_owned();
        let member = self
            .node
            .call(move |serf, _| serf.members().into_iter().find(|m| m.name == node))
            .await?;
        Ok(member.as_ref().and_then(crate::quic::advert_of))
    }

    /// The generic handle underneath, for running any [`Serf`] method in the driver task.
    pub fn handle(&self) -> &NodeHandle<Serf> {
        &self.node
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address peers reach this node at.
    pub fn local_addr(&self) -> SocketAddr {
        self.node.local_addr()
    }

    /// A receiver of every event from now on. A subscriber that falls more than
    /// `event_capacity` events behind gets `RecvError::Lagged` and misses the oldest ones.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.node.subscribe()
    }

    /// Joins the cluster through `addrs`. With `ignore_old`, user events from before the join
    /// are not delivered (Serf's default; `-replay` turns it off). Returns how many addresses
    /// answered; fails, naming every address and its error, when none did.
    pub async fn join(&self, addrs: &[SocketAddr], ignore_old: bool) -> Result<usize> {
        let addrs = addrs.to_vec();
        // Subscribed before the join starts, so its `JoinFinished` cannot slip past.
        let mut events = self.node.subscribe();
        let id = self
            .node
            .call(move |serf, now| serf.join(now, &addrs, ignore_old))
            .await??;
        loop {
            match events.recv().await {
                Ok(Event::JoinFinished {
                    id: done,
                    joined,
                    errors,
                }) if done == id => {
                    if joined == 0 {
                        return Err(Error::JoinFailed { errors });
                    }
                    return Ok(joined);
                }
                Ok(_) => {}
                // A lagging receiver loses the oldest events; `JoinFinished` comes after the
                // member events of the join, so it is among the newest kept.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Err(hearsay_net::Error::Stopped.into()),
            }
        }
    }

    /// Leaves gracefully, as Serf does: broadcasts the leave intent, then memberlist's leave,
    /// then waits for it to propagate. Returns once done (at once when already left). The node
    /// keeps running (to answer peers) until [`SerfAgent::shutdown`].
    pub async fn leave(&self) -> Result<()> {
        let mut events = self.node.subscribe();
        let (left, limit) = self
            .node
            .call(|serf, now| -> Result<(bool, Duration)> {
                serf.leave(now)?;
                let c = serf.config();
                let limit = c.broadcast_timeout * 2 + c.leave_propagate_delay + LEAVE_SLACK;
                Ok((serf.state() == hearsay_serf::State::Left, limit))
            })
            .await??;
        if left {
            return Ok(());
        }
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(Event::LeaveComplete) => return Ok(()),
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        let state = self.node.call(|serf, _| serf.state()).await?;
                        if state == hearsay_serf::State::Left {
                            return Ok(());
                        }
                    }
                    Err(RecvError::Closed) => return Err(hearsay_net::Error::Stopped.into()),
                }
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| Error::LeaveTimeout(limit))?
    }

    /// Every member Serf knows (sorted by name), including failed and left ones not yet reaped.
    pub async fn members(&self) -> Result<Vec<Member>> {
        Ok(self.node.call(|serf, _| serf.members()).await?)
    }

    /// This node as a member.
    pub async fn local_member(&self) -> Result<Member> {
        Ok(self.node.call(|serf, _| serf.local_member()).await?)
    }

    /// The Lamport clocks' current values: member clock, event clock, query clock.
    pub async fn clocks(&self) -> Result<(LamportTime, LamportTime, LamportTime)> {
        Ok(self.node.call(|serf, _| serf.clocks()).await?)
    }

    /// Fires a user event to the whole cluster; with `coalesce`, receivers may merge events of
    /// the same name that arrive close together.
    pub async fn user_event(&self, name: &str, payload: &[u8], coalesce: bool) -> Result<()> {
        let (name, payload) = (name.to_owned(), payload.to_vec());
        Ok(self
            .node
            .call(move |serf, now| serf.user_event(now, &name, &payload, coalesce))
            .await??)
    }

    /// Starts a query and returns its acks and responses as they arrive, ending when Serf
    /// says the query is done (deadline reached, or everyone answered with `finish_early`).
    pub async fn query(
        &self,
        name: &str,
        payload: &[u8],
        params: QueryParams,
    ) -> Result<QueryResults> {
        let (name, payload) = (name.to_owned(), payload.to_vec());
        // Subscribed first: a query to a lone node can finish within the call.
        let events = self.node.subscribe();
        let shared = self.quic.as_ref().map(|w| w.shared.clone());
        let (tx, rx) = mpsc::channel(QUERY_CHANNEL);
        let registry = shared.clone();
        let id = self
            .node
            .call(move |serf, now| {
                let timeout = if params.timeout.is_zero() {
                    serf.default_query_timeout()
                } else {
                    params.timeout
                };
                let id = serf.query(now, &name, &payload, params)?;
                // Registered before the driver runs anything else, so no large response (not
                // even this node's own) can arrive before its query is known.
                if let Some(shared) = registry {
                    // Admit every member known now: the periodic refresh may lag (member
                    // events can be coalesced for seconds), and a refused handshake only
                    // shows on the responder after it has started writing.
                    shared.refresh(&serf.members());
                    let q = RunningQuery {
                        tx,
                        deadline: now + timeout,
                    };
                    shared
                        .queries
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert((id.ltime, id.id), q);
                }
                Ok::<_, hearsay_serf::Error>(id)
            })
            .await??;
        Ok(QueryResults {
            id,
            events,
            done: false,
            missed: 0,
            external: shared.is_some().then_some(rx),
            registration: shared.map(|shared| Registration {
                shared,
                key: (id.ltime, id.id),
            }),
            serf_done: false,
        })
    }

    /// Answers a query delivered as [`Event::Query`] (once per query, before its deadline).
    pub async fn respond(&self, ltime: LamportTime, id: u32, payload: &[u8]) -> Result<()> {
        let payload = payload.to_vec();
        Ok(self
            .node
            .call(move |serf, now| serf.respond(now, ltime, id, &payload))
            .await??)
    }

    /// Replaces this node's tags and announces them. With QUIC on, the `_hearsay_quic` tag is
    /// kept (set to this node's advert) whatever `tags` says, since peers need it.
    pub async fn set_tags(&self, mut tags: BTreeMap<String, String>) -> Result<()> {
        if let Some(advert) = self.quic_advert() {
            tags.insert(QUIC_TAG.to_owned(), advert.to_tag_value());
        }
        Ok(self
            .node
            .call(move |serf, now| serf.set_tags(now, tags))
            .await??)
    }

    /// Forces a failed member into the left state (Serf's `RemoveFailedNode`); with `prune`
    /// it is also removed from the member list at once.
    pub async fn force_leave(&self, node: &str, prune: bool) -> Result<()> {
        let node = node.to_owned();
        Ok(self
            .node
            .call(move |serf, now| serf.force_leave(now, &node, prune))
            .await??)
    }

    /// The last network coordinate `node` sent (this node's own for its name); `None` when
    /// unknown or coordinates are disabled.
    pub async fn coordinate(&self, node: &str) -> Result<Option<Coordinate>> {
        let node = node.to_owned();
        Ok(self
            .node
            .call(move |serf, _| serf.cached_coordinate(&node).cloned())
            .await?)
    }

    /// Serf's `Stats()`: member counts, clocks, health score, broadcast queue depths, whether
    /// encryption is on, and coordinate resets.
    pub async fn stats(&self) -> Result<BTreeMap<String, String>> {
        Ok(self
            .node
            .call(|serf, _| {
                let mut out = BTreeMap::new();
                let (clock, event, query) = serf.clocks();
                let count = |s| serf.count_with_status(s).to_string();
                let swim = serf.memberlist();
                out.insert("members".into(), serf.members().len().to_string());
                out.insert("failed".into(), count(MemberStatus::Failed));
                out.insert("left".into(), count(MemberStatus::Left));
                out.insert("health_score".into(), swim.health_score().to_string());
                out.insert("member_time".into(), clock.to_string());
                out.insert("event_time".into(), event.to_string());
                out.insert("query_time".into(), query.to_string());
                let queues = serf.queue_depths();
                out.insert("intent_queue".into(), queues.intent.to_string());
                out.insert("event_queue".into(), queues.event.to_string());
                out.insert("query_queue".into(), queues.query.to_string());
                out.insert("encrypted".into(), swim.keyring().is_some().to_string());
                if let Some(resets) = serf.coordinate_resets() {
                    out.insert("coordinate_resets".into(), resets.to_string());
                }
                out
            })
            .await?)
    }

    /// Runs one of Serf's key operations over the cluster as its KeyManager does: sends the
    /// `_serf_<op>` internal query (`op` is `install-key`, `use-key`, `remove-key` or
    /// `list-keys`; `key` is base64, ignored for `list-keys`), gathers every node's answer
    /// until all alive members answered or the query times out, and counts keys, errors and
    /// messages. The outcome carries Serf's error text when some node failed or did not
    /// answer.
    pub async fn key_op(&self, op: &str, key: &str) -> Result<KeyOpOutcome> {
        use base64::Engine as _;
        let mut out = KeyOpOutcome::default();
        let raw = if op == "list-keys" {
            Vec::new()
        } else {
            match base64::engine::general_purpose::STANDARD.decode(key) {
                Ok(k) => k,
                Err(e) => {
                    out.error = Some(format!("illegal base64 data: {e}"));
                    return Ok(out);
                }
            }
        };
        let payload = hearsay_serf::messages::encode_key_request(&raw);
        let name = format!("{}{op}", hearsay_serf::serf::INTERNAL_QUERY_PREFIX);
        let (num_nodes, timeout) = self
            .node
            .call(|serf, _| (serf.memberlist().num_alive(), serf.default_query_timeout()))
            .await?;
        out.num_nodes = num_nodes;
        let params = QueryParams {
            timeout,
            ..QueryParams::default()
        };
        let mut results = match self.query(&name, &payload, params).await {
            Ok(r) => r,
            Err(e) => {
                out.error = Some(e.to_string());
                return Ok(out);
            }
        };
        while out.num_resp < out.num_nodes {
            let (from, payload) = match results.next().await {
                Some(QueryResult::Response { from, payload }) => (from, payload),
                Some(QueryResult::Done) | None => break,
                // Acks, and large responses (key answers are small and never take QUIC).
                Some(_) => continue,
            };
            out.num_resp += 1;
            match hearsay_serf::messages::decode_key_response(&payload) {
                Err(_) => {
                    out.messages.insert(
                        from,
                        format!("Failed to decode key query response: {payload:?}"),
                    );
                    out.num_err += 1;
                }
                Ok(r) => {
                    if !r.result {
                        out.messages.insert(from.clone(), r.message.clone());
                        out.num_err += 1;
                    } else if !r.message.is_empty() {
                        out.messages.insert(from.clone(), r.message.clone());
                    }
                    for k in r.keys {
                        *out.keys.entry(k).or_insert(0) += 1;
                    }
                }
            }
        }
        if out.num_err != 0 {
            out.error = Some(format!(
                "{}/{} nodes reported failure",
                out.num_err, out.num_nodes
            ));
        } else if out.num_resp != out.num_nodes {
            out.error = Some(format!(
                "{}/{} nodes reported success",
                out.num_resp, out.num_nodes
            ));
        }
        Ok(out)
    }

    /// Stops the node without leaving (peers will see it fail): ends the driver task and
    /// closes its sockets before returning. Stopping a stopped node is a no-op.
    pub async fn shutdown(&self) {
        if let Some(w) = &self.quic {
            w.endpoint.close();
        }
        self.node.shutdown().await;
    }

    /// True once the driver task has ended.
    pub fn is_stopped(&self) -> bool {
        self.node.is_stopped()
    }
}

/// One result of a query this node started.
///
/// A node answers either with one [`QueryResult::Response`] (Serf's UDP path, at most
/// [`SerfAgent::udp_response_limit`] bytes) or, for a large reply from a hearsay node, with
/// [`QueryResult::ResponseChunk`]s in order followed by one [`QueryResult::ResponseEnd`]
/// (chunks of different nodes interleave). Nothing holds a whole large response: each chunk
/// is at most 64 KiB and the consumer's pace throttles the responders (QUIC flow control).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryResult {
    /// A node acknowledged receiving the query (only when acks were requested).
    Ack { from: String },
    /// A node answered (over UDP, whole).
    Response { from: String, payload: Vec<u8> },
    /// The next piece of a node's large response (streamed over QUIC).
    ResponseChunk { from: String, chunk: Bytes },
    /// A node's large response ended: `Ok(total bytes)` when complete, or why it failed (the
    /// responder died or aborted, a limit was exceeded, the deadline passed). The chunks
    /// delivered before a failure are an incomplete response.
    ResponseEnd {
        from: String,
        result: std::result::Result<u64, String>,
    },
    /// No more results will come.
    Done,
}

/// Removes a query from the QUIC side's registry when its results end or are dropped.
struct Registration {
    shared: Arc<Shared>,
    key: (u64, u32),
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.unregister(self.key);
    }
}

/// The results of one query, in arrival order: acks and responses, then [`QueryResult::Done`]
/// (which waits for large responses in flight to end, bounded by the query's deadline).
pub struct QueryResults {
    id: QueryId,
    events: broadcast::Receiver<Event>,
    done: bool,
    missed: u64,
    /// Large responses' chunks and ends, from the QUIC side.
    external: Option<mpsc::Receiver<QueryResult>>,
    registration: Option<Registration>,
    /// Serf said the query is done; what remains is draining `external`.
    serf_done: bool,
}

impl std::fmt::Debug for QueryResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryResults")
            .field("id", &self.id)
            .field("done", &self.done)
            .field("missed", &self.missed)
            .finish_non_exhaustive()
    }
}

impl QueryResults {
    /// Which query these are the results of.
    pub fn id(&self) -> QueryId {
        self.id
    }

    /// Events skipped because this receiver fell behind; some results may be among them.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The next result; `None` after [`QueryResult::Done`], or when the node stopped first.
    pub async fn next(&mut self) -> Option<QueryResult> {
        if self.done {
            return None;
        }
        loop {
            if self.serf_done {
                // Serf is done; large responses still streaming end by the deadline.
                let next = match self.external.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => None,
                };
                if next.is_none() {
                    self.done = true;
                    return Some(QueryResult::Done);
                }
                return next;
            }
            let received = match self.external.as_mut() {
                Some(rx) => tokio::select! {
                    ev = self.events.recv() => ev,
                    Some(r) = rx.recv() => return Some(r),
                },
                None => self.events.recv().await,
            };
            let ev = match received {
                Ok(ev) => ev,
                Err(RecvError::Lagged(n)) => {
                    self.missed += n;
                    continue;
                }
                Err(RecvError::Closed) => {
                    self.done = true;
                    return None;
                }
            };
            match ev {
                Event::QueryAck { query, from } if query == self.id => {
                    return Some(QueryResult::Ack { from })
                }
                Event::QueryResponse {
                    query,
                    from,
                    payload,
                } if query == self.id => return Some(QueryResult::Response { from, payload }),
                Event::QueryDone { query } if query == self.id => {
                    // No new large response is accepted from now on.
                    self.registration = None;
                    self.serf_done = true;
                }
                _ => {}
            }
        }
    }
}

/// The aggregate of one key operation over the cluster (Serf's `KeyResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyOpOutcome {
    /// Node name → error or warning text.
    pub messages: BTreeMap<String, String>,
    /// Base64 key → how many nodes have it installed (`list-keys`).
    pub keys: BTreeMap<String, usize>,
    /// Alive members when the query started.
    pub num_nodes: usize,
    pub num_resp: usize,
    pub num_err: usize,
    /// Serf's error text when the operation did not succeed everywhere.
    pub error: Option<String>,
}
