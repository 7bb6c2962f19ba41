//! The agent's QUIC wiring for large query responses: the endpoint started with a
//! [`SerfAgent`] (advertised in the `_hearsay_quic` tag), the peer filter that admits only
//! certificates advertised by current members, and the originator's side that matches incoming
//! response streams to running queries and streams their bodies to the query's consumer.
//!
//! The transport itself (`hearsay_net::quic`) knows nothing of Serf; this module is where a
//! response stream becomes "node X's answer to query (ltime, id)": it checks that the stream's
//! certificate is the one node X advertises, counts it as X's answer in the Serf layer
//! (`handle_external_response`), and bounds the body by the query's deadline. It is also where
//! a relay node forwards another responder's stream to the originator its relay header names
//! (relay factor), and where the originator refuses the copies of a response that came second
//! (`StopCode::Duplicate`).

use crate::serf_agent::{QueryResult, SerfAgent};
use hearsay_net::quic::endpoint::Bytes;
use hearsay_net::quic::{
    Fingerprint, IncomingResponse, IncomingResponses, Limits, QuicAdvert, QuicConfig, QuicEndpoint,
    QuicError, Security, StopCode, QUIC_TAG,
};
use hearsay_serf::event::{Event, Member, MemberStatus, QueryId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often the admitted-certificate set is refreshed from the member list even without a
/// member event (member events may be coalesced for seconds).
const MEMBER_REFRESH: Duration = Duration::from_secs(1);
/// Results (chunks) buffered per running query between the QUIC readers and the consumer:
/// with 64 KiB chunks, at most 1 MiB per query on top of QUIC's flow-control windows.
pub(crate) const QUERY_CHANNEL: usize = 16;
/// The most bytes one [`QueryResult::ResponseChunk`] carries. QUIC hands out packet-sized
/// pieces (~1.4 KB); whatever has already arrived is joined up to this size, so consumers
/// (and RPC clients) see few large chunks, never a piece that waits for more data.
pub const MAX_CHUNK: usize = 64 << 10;
/// How long a finished or failed response waits to hand its end record to a slow consumer
/// after the query's deadline.
const END_GRACE: Duration = Duration::from_secs(10);

/// What [`SerfAgent::start_with_quic`] needs to run the QUIC endpoint.
#[derive(Clone)]
pub struct QuicOptions {
    /// The UDP address to bind (port 0 lets the OS choose).
    pub bind: SocketAddr,
    /// The address peers should dial, when the bound one is not dialable (0.0.0.0) or is
    /// translated.
    pub advertise: Option<SocketAddr>,
    /// Pinned self-signed certificate (the default) or an operator CA.
    pub security: Security,
    /// Per-response and per-query byte limits on incoming responses.
    pub limits: Limits,
    /// When `bind`'s port is taken, bind a port the OS chooses instead (with a warning): set
    /// for the default address, which nobody asked for by name.
    pub fallback_any_port: bool,
}

impl std::fmt::Debug for QuicOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicOptions")
            .field("bind", &self.bind)
            .field("advertise", &self.advertise)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl QuicOptions {
    /// Pinned mode with a fresh self-signed certificate for `name`, default limits.
    pub fn pinned(bind: SocketAddr, name: &str) -> crate::Result<Self> {
        Ok(Self {
            bind,
            advertise: None,
            security: Security::pinned(name)?,
            limits: Limits::default(),
            fallback_any_port: false,
        })
    }

    /// Options from the agent's settings: the bind address (default: the gossip bind IP with
    /// a port the OS chooses, see [`default_bind`]), pinned mode (with the certificate kept in
    /// `identity_file` when given, so the fingerprint survives restarts) unless all three CA
    /// files are given, and the limits.
    pub fn from_settings(
        s: &QuicSettings,
        gossip_bind: SocketAddr,
        name: &str,
    ) -> crate::Result<Self> {
        let security = match (&s.ca_file, &s.cert_file, &s.key_file) {
            (Some(ca), Some(cert), Some(key)) => Security::ca_from_pem_files(ca, cert, key)?,
            (None, None, None) => match &s.identity_file {
                Some(path) => Security::pinned_persisted(path, name)?,
                None => Security::pinned(name)?,
            },
            _ => {
                return Err(QuicError::Config(
                    "quic_ca_file, quic_cert_file and quic_key_file must be given together".into(),
                )
                .into())
            }
        };
        let limits = Limits {
            max_response: s.response_max_bytes,
            max_query_total: s.query_max_bytes,
            ..Limits::default()
        };
        if limits.max_response == 0 || limits.max_query_total == 0 {
            return Err(QuicError::Config("QUIC byte limits must be above zero".into()).into());
        }
        Ok(Self {
            bind: s.bind.unwrap_or_else(|| default_bind(gossip_bind)),
            advertise: s.advertise,
            security,
            limits,
            fallback_any_port: s.bind.is_none() && s.advertise.is_none(),
        })
    }
}

/// The QUIC settings as the agent's configuration gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicSettings {
    /// `quic_bind` / `-quic-bind`; `None` = [`default_bind`].
    pub bind: Option<SocketAddr>,
    /// `quic_advertise` / `-quic-advertise`.
    pub advertise: Option<SocketAddr>,
    /// Pinned mode: where this node's certificate and key are kept (created on first start).
    pub identity_file: Option<std::path::PathBuf>,
    /// CA mode: `quic_ca_file`, `quic_cert_file`, `quic_key_file` (all three or none).
    pub ca_file: Option<std::path::PathBuf>,
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
    /// `query_response_max_bytes`: the largest response this node accepts from one node.
    pub response_max_bytes: u64,
    /// `query_max_bytes`: the most all responses to one of this node's queries may bring.
    pub query_max_bytes: u64,
}

impl Default for QuicSettings {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            bind: None,
            advertise: None,
            identity_file: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            response_max_bytes: limits.max_response,
            query_max_bytes: limits.max_query_total,
        }
    }
}

/// The default QUIC address: the gossip bind IP with a port the OS chooses (memberlist owns
/// the gossip port's UDP socket, and a fixed neighbour such as gossip + 1 would take the port a
/// second agent on the host is told to gossip on, e.g. Serf's habit of 7946, 7947, ...). The
/// advert in gossip carries the chosen port; set `quic_bind` for a fixed one (firewalls).
pub fn default_bind(gossip: SocketAddr) -> SocketAddr {
    SocketAddr::new(gossip.ip(), 0)
}

/// A query this node started, as the QUIC side sees it.
#[derive(Clone)]
pub(crate) struct RunningQuery {
    pub(crate) tx: mpsc::Sender<QueryResult>,
    pub(crate) deadline: Instant,
}

/// Counters of the QUIC response paths, as [`SerfAgent::quic_stats`] reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuicStats {
    /// Streams this node opened to relay nodes for its own large replies (relay factor).
    pub relay_legs_opened: u64,
    /// Responses of other nodes this node forwarded as a relay node (a stream to the
    /// originator was opened).
    pub relays_forwarded: u64,
    /// Of those, the ones the originator took whole.
    pub relays_delivered: u64,
    /// Responses to this node's queries that arrived through a relay node and were taken.
    pub relayed_accepted: u64,
    /// Streams to this node's queries refused because that node's response had already
    /// arrived on another path (a relayed copy, or the direct one after a relayed copy).
    pub duplicates_dropped: u64,
}

/// The live counters behind [`QuicStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) relay_legs_opened: AtomicU64,
    relays_forwarded: AtomicU64,
    relays_delivered: AtomicU64,
    relayed_accepted: AtomicU64,
    duplicates_dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> QuicStats {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        QuicStats {
            relay_legs_opened: v(&self.relay_legs_opened),
            relays_forwarded: v(&self.relays_forwarded),
            relays_delivered: v(&self.relays_delivered),
            relayed_accepted: v(&self.relayed_accepted),
            duplicates_dropped: v(&self.duplicates_dropped),
        }
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// State the QUIC tasks share with the agent handles.
#[derive(Default)]
pub(crate) struct Shared {
    /// How the response paths were used.
    pub(crate) stats: Counters,
    /// Fingerprints advertised by alive (or leaving) members, with the member's name.
    pub(crate) admitted: RwLock<HashMap<Fingerprint, String>>,
    /// Running queries by (ltime, id).
    pub(crate) queries: Mutex<HashMap<(u64, u32), RunningQuery>>,
    /// Poked when the filter refuses a certificate, so a member that just joined is admitted
    /// on the responder's retry rather than after the next periodic refresh.
    refresh_now: tokio::sync::Notify,
}

impl Shared {
    pub(crate) fn unregister(&self, key: (u64, u32)) {
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }

    fn running(&self, key: (u64, u32)) -> Option<RunningQuery> {
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    /// Admits exactly the certificates alive (or leaving) members advertise.
    pub(crate) fn refresh(&self, members: &[Member]) {
        let admitted: HashMap<Fingerprint, String> = members
            .iter()
            .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Leaving))
            .filter_map(|m| Some((advert_of(m)?.fingerprint, m.name.clone())))
            .collect();
        *self.admitted.write().unwrap_or_else(|e| e.into_inner()) = admitted;
    }
}

/// A member's QUIC advert, if it carries a valid `_hearsay_quic` tag.
pub fn advert_of(member: &Member) -> Option<QuicAdvert> {
    QuicAdvert::parse(member.tags.get(QUIC_TAG)?).ok()
}

/// The QUIC endpoint of one agent and the tasks serving it. Dropped with the last agent
/// handle: the tasks are aborted and the endpoint closes.
pub(crate) struct QuicWire {
    pub(crate) endpoint: QuicEndpoint,
    pub(crate) shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for QuicWire {
    fn drop(&mut self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
        self.endpoint.close();
    }
}

impl QuicWire {
    /// Binds the endpoint with a peer filter over `shared`'s admitted set. The caller puts the
    /// advert in the node's tags and then calls [`QuicWire::spawn_tasks`].
    pub(crate) fn bind(
        options: QuicOptions,
        name: &str,
    ) -> crate::Result<(Self, IncomingResponses)> {
        let shared = Arc::new(Shared::default());
        let filter_shared = shared.clone();
        let mut config = QuicConfig::new(options.bind, options.security);
        config.advertise = options.advertise;
        config.limits = options.limits;
        config.peer_filter = Some(Arc::new(move |fp: &Fingerprint| {
            let known = filter_shared
                .admitted
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(fp);
            if !known {
                filter_shared.refresh_now.notify_one();
            }
            known
        }));
        let (endpoint, incoming) = match QuicEndpoint::bind(config.clone()) {
            Err(QuicError::Bind { addr, source }) if options.fallback_any_port => {
                tracing::warn!(
                    "agent.quic: cannot bind the default QUIC address {addr} ({source}); using a port the OS chooses"
                );
                config.bind.set_port(0);
                // A wildcard bind was to be advertised on its port: bind the advertised IP
                // instead, so the advert carries the port the OS chose.
                if let Some(adv) = config.advertise.take() {
                    if config.bind.ip().is_unspecified() {
                        config.bind.set_ip(adv.ip());
                    }
                }
                QuicEndpoint::bind(config)?
            }
            other => other?,
        };
        // This node may answer its own queries over QUIC.
        shared
            .admitted
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(endpoint.fingerprint(), name.to_owned());
        Ok((
            Self {
                endpoint,
                shared,
                tasks: Mutex::new(Vec::new()),
            },
            incoming,
        ))
    }

    /// Starts the member watcher and the incoming-response loop. `agent` must be a handle
    /// without this wire (so the tasks do not keep it alive).
    pub(crate) fn spawn_tasks(&self, agent: SerfAgent, incoming: IncomingResponses) {
        let watcher = tokio::spawn(watch_members(agent.clone(), self.shared.clone()));
        let receiver = tokio::spawn(receive(
            agent,
            self.shared.clone(),
            self.endpoint.clone(),
            incoming,
        ));
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([watcher, receiver]);
    }
}

/// Keeps the admitted-certificate set in step with the member list: on every member event and
/// every [`MEMBER_REFRESH`].
async fn watch_members(agent: SerfAgent, shared: Arc<Shared>) {
    let mut events = agent.subscribe();
    let mut tick = tokio::time::interval(MEMBER_REFRESH);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(Event::Member(_)) | Err(RecvError::Lagged(_)) => {}
                Ok(_) => continue,
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {}
            _ = shared.refresh_now.notified() => {}
        }
        match agent.members().await {
            Ok(members) => shared.refresh(&members),
            Err(_) => return,
        }
    }
}

/// Every incoming stream: a relay header naming another originator is forwarded
/// ([`relay`]); anything else is a response to one of this node's queries
/// ([`accept_response`]). Each is handled in its own task, so a slow member-list lookup or
/// a relay's dial never holds up the next stream.
async fn receive(
    agent: SerfAgent,
    shared: Arc<Shared>,
    endpoint: QuicEndpoint,
    mut incoming: IncomingResponses,
) {
    while let Some(resp) = incoming.next().await {
        let for_other = resp
            .header
            .relay
            .as_ref()
            .is_some_and(|r| r.origin != agent.name());
        if for_other {
            tokio::spawn(relay(agent.clone(), shared.clone(), endpoint.clone(), resp));
        } else {
            tokio::spawn(accept_response(agent.clone(), shared.clone(), resp));
        }
    }
}

/// The originator's side: a response is matched to a running query, checked against the
/// advert of the node it claims to be from (or, relayed, against the member list: the relay
/// node vouches for the responder, as a Serf relay does), counted by the Serf layer (the first
/// stream per node wins; later ones are refused as duplicates), and its body streamed to the
/// query's consumer.
async fn accept_response(agent: SerfAgent, shared: Arc<Shared>, resp: IncomingResponse) {
    let h = &resp.header;
    let (ltime, id, from) = (h.ltime, h.query_id, h.from.clone());
    let relayed_by = h.relay.as_ref().map(|_| {
        shared
            .admitted
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&resp.peer)
            .cloned()
    });
    let via = match &relayed_by {
        None => String::from("directly"),
        Some(Some(node)) => format!("relayed by {node:?}"),
        Some(None) => format!("relayed by an unknown certificate {}", resp.peer),
    };
    let Some(query) = shared.running((ltime, id)) else {
        if relayed_by.is_some() {
            // A relayed copy often trails the direct one past the query's end.
            tracing::debug!(
                "agent.quic: dropping a response from {from:?} ({via}) to an unknown or finished query (ltime {ltime}, id {id})"
            );
        } else {
            tracing::warn!(
                "agent.quic: dropping a response from {from:?} ({}) to an unknown or finished query (ltime {ltime}, id {id})",
                resp.remote
            );
        }
        return;
    };
    match &relayed_by {
        None => {
            let Ok(members) = agent.members().await else {
                return;
            };
            let advertised = members
                .iter()
                .find(|m| m.name == from)
                .and_then(advert_of)
                .map(|a| a.fingerprint);
            if advertised != Some(resp.peer) {
                let want = advertised.map_or_else(|| "no advert".to_owned(), |f| f.to_string());
                tracing::warn!(
                    "agent.quic: refusing a response claiming to be from {from:?} ({}): its certificate {} is not the one {from:?} advertises ({want})",
                    resp.remote,
                    resp.peer
                );
                return;
            }
        }
        Some(None) => {
            // The peer filter admits only members' certificates, so this is a member that
            // left between its handshake and now.
            tracing::warn!(
                "agent.quic: refusing a response from {from:?} {via} ({}): the relay is not a member",
                resp.remote
            );
            return;
        }
        Some(Some(_)) => {}
    }
    let counted = {
        let from = from.clone();
        agent
            .handle()
            .call(move |serf, _| serf.handle_external_response(ltime, id, &from))
            .await
    };
    let qid = match counted {
        Ok(Ok(qid)) => qid,
        Ok(Err(hearsay_serf::Error::AlreadyResponded)) => {
            bump(&shared.stats.duplicates_dropped);
            tracing::debug!(
                "agent.quic: dropped a duplicate response from {from:?} ({via}) to query (ltime {ltime}, id {id}): its response already arrived"
            );
            resp.body.refuse(StopCode::Duplicate);
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(
                "agent.quic: dropping the response from {from:?} ({via}) to query (ltime {ltime}, id {id}): {e}"
            );
            return;
        }
        Err(_) => return,
    };
    if relayed_by.is_some() {
        bump(&shared.stats.relayed_accepted);
        tracing::debug!(
            "agent.quic: taking the response from {from:?} ({via}) to query (ltime {ltime}, id {id})"
        );
    }
    stream_body(agent, resp, query, qid).await;
}

/// A relay node's side: checks that the stream comes from the node it names and that the
/// originator it names is the member gossip knows (same advert, so the originator's
/// certificate is pinned exactly as for a direct response), opens a stream to the originator
/// with the same header, and pipes the body through one chunk at a time (at most
/// [`MAX_CHUNK`] held here, QUIC flow control pacing both sides). The end passes through both
/// ways: the responder's end or failure goes on to the originator, and the originator's
/// verdict (taken whole, or refused with a reason such as a duplicate) comes back to the
/// responder. Nothing runs past the query's deadline as the responder gave it.
async fn relay(
    agent: SerfAgent,
    shared: Arc<Shared>,
    endpoint: QuicEndpoint,
    resp: IncomingResponse,
) {
    let IncomingResponse {
        header,
        peer,
        remote,
        mut body,
    } = resp;
    let Some(r) = header.relay.clone() else {
        return;
    };
    let (ltime, id, from) = (header.ltime, header.query_id, header.from.clone());
    let what = format!(
        "the response from {from:?} to {:?}'s query (ltime {ltime}, id {id})",
        r.origin
    );
    let deadline = Instant::now() + Duration::from_millis(u64::from(r.remaining_ms));
    let Ok(members) = agent.members().await else {
        return;
    };
    let advert_of_alive = |name: &str| {
        members
            .iter()
            .find(|m| m.name == name)
            .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Leaving))
            .and_then(advert_of)
    };
    if advert_of_alive(&from).map(|a| a.fingerprint) != Some(peer) {
        tracing::warn!(
            "agent.quic: refusing to relay {what} from {remote}: its certificate {peer} is not the one {from:?} advertises"
        );
        body.refuse(StopCode::RelayFailed);
        return;
    }
    let origin = match advert_of_alive(&r.origin) {
        Some(a) if a == r.origin_advert => a,
        other => {
            let known = other.map_or_else(
                || "no advert of an alive member".to_owned(),
                |a| a.to_string(),
            );
            tracing::warn!(
                "agent.quic: refusing to relay {what}: the header names the originator's endpoint {} but gossip says {known}",
                r.origin_advert
            );
            body.refuse(StopCode::RelayFailed);
            return;
        }
    };
    let mut onward = match crate::reply::open_stream(&endpoint, &origin, &header, deadline).await {
        Ok(w) => w,
        Err(e) => {
            tracing::info!("agent.quic: cannot relay {what}: {e}");
            body.refuse(StopCode::RelayFailed);
            return;
        }
    };
    bump(&shared.stats.relays_forwarded);
    tracing::debug!("agent.quic: relaying {what} to {origin}");
    body.hold_verdict();
    let deadline = tokio::time::Instant::from_std(deadline);
    let failed = |e: &QuicError| e.stop_code().unwrap_or(StopCode::RelayFailed);
    loop {
        match tokio::time::timeout_at(deadline, body.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                match tokio::time::timeout_at(deadline, onward.write(&chunk)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        log_relay_end(&what, &e);
                        body.refuse(failed(&e));
                        return;
                    }
                    Err(_) => {
                        tracing::info!(
                            "agent.quic: gave up relaying {what}: the query's deadline passed"
                        );
                        body.refuse(StopCode::RelayFailed);
                        return;
                    }
                }
            }
            Ok(Ok(None)) => {
                match tokio::time::timeout_at(deadline, onward.finish()).await {
                    Ok(Ok(())) => {
                        bump(&shared.stats.relays_delivered);
                        body.accept();
                    }
                    Ok(Err(e)) => {
                        log_relay_end(&what, &e);
                        body.refuse(failed(&e));
                    }
                    Err(_) => {
                        tracing::info!(
                            "agent.quic: gave up relaying {what}: the query's deadline passed"
                        );
                        body.refuse(StopCode::RelayFailed);
                    }
                }
                return;
            }
            Ok(Err(e)) => {
                // The responder's side failed: the originator sees this copy aborted.
                tracing::debug!("agent.quic: {what} failed on its way in: {e}");
                onward.abort();
                return;
            }
            Err(_) => {
                tracing::info!("agent.quic: gave up relaying {what}: the query's deadline passed");
                onward.abort();
                body.refuse(StopCode::RelayFailed);
                return;
            }
        }
    }
}

/// A relayed copy refused as a duplicate is the normal case (another path was first).
fn log_relay_end(what: &str, e: &QuicError) {
    if e.stop_code() == Some(StopCode::Duplicate) {
        tracing::debug!("agent.quic: the originator already had {what}; dropped this copy");
    } else {
        tracing::info!("agent.quic: relaying {what} failed: {e}");
    }
}

/// Forwards one response body chunk by chunk, bounded by the query's deadline, then reports
/// how it ended and releases the Serf layer's hold on finishing early.
async fn stream_body(agent: SerfAgent, resp: IncomingResponse, query: RunningQuery, qid: QueryId) {
    let IncomingResponse {
        header, mut body, ..
    } = resp;
    let from = header.from;
    let deadline = tokio::time::Instant::from_std(query.deadline);
    let mut pending: Option<Result<Option<Bytes>, QuicError>> = None;
    let result = loop {
        let received = body.received();
        let next = match pending.take() {
            Some(r) => Ok(r),
            None => tokio::time::timeout_at(deadline, body.chunk()).await,
        };
        match next {
            Err(_) => {
                break Err(format!(
                    "the query's deadline passed after {received} bytes"
                ))
            }
            Ok(Ok(None)) => break Ok(received),
            Ok(Err(e)) => break Err(e.to_string()),
            Ok(Ok(Some(first))) => {
                let mut joined: Option<Vec<u8>> = None;
                // Join what has already arrived (a zero timeout polls once), up to MAX_CHUNK.
                while joined.as_ref().map_or(first.len(), Vec::len) < MAX_CHUNK {
                    match tokio::time::timeout(Duration::ZERO, body.chunk()).await {
                        Err(_) => break,
                        Ok(Ok(Some(more)))
                            if joined.as_ref().map_or(first.len(), Vec::len) + more.len()
                                <= MAX_CHUNK =>
                        {
                            joined
                                .get_or_insert_with(|| {
                                    let mut v = Vec::with_capacity(MAX_CHUNK);
                                    v.extend_from_slice(&first);
                                    v
                                })
                                .extend_from_slice(&more);
                        }
                        // Too big to join, the end, or a failure: handled next round.
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                    }
                }
                let chunk = joined.map_or(first, Bytes::from);
                let rec = QueryResult::ResponseChunk {
                    from: from.clone(),
                    chunk,
                };
                match tokio::time::timeout_at(deadline, query.tx.send(rec)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break Err("nobody is reading the query's results".to_owned()),
                    Err(_) => {
                        break Err(format!(
                            "the query's deadline passed after {} bytes (its reader is slow)",
                            body.received()
                        ))
                    }
                }
            }
        }
    };
    // Dropping the body now refuses an unfinished response, so the responder stops at once.
    drop(body);
    if let Err(e) = &result {
        tracing::warn!(
            "agent.quic: response from {from:?} to query (ltime {}, id {}) failed: {e}",
            qid.ltime,
            qid.id
        );
    }
    let end = QueryResult::ResponseEnd {
        from: from.clone(),
        result,
    };
    let _ = tokio::time::timeout_at(deadline + END_GRACE, query.tx.send(end)).await;
    drop(query);
    let _ = agent
        .handle()
        .call(move |serf, now| serf.handle_external_response_done(now, qid, &from))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn member(name: &str, status: MemberStatus, tag: Option<String>) -> Member {
        let mut tags = BTreeMap::new();
        if let Some(t) = tag {
            tags.insert(QUIC_TAG.to_owned(), t);
        }
        Member {
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            tags,
            status,
            vsn: [1, 5, 2, 2, 5, 4],
        }
    }

    #[tokio::test]
    async fn a_wildcard_bind_is_advertised_with_the_gossip_ip() {
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let transport = hearsay_net::UdpTcpTransport::bind(lo).await.unwrap();
        let addr = hearsay_net::Transport::local_addr(&transport);
        let config = hearsay_serf::SerfConfig::new(hearsay_net::Config::profile(
            hearsay_net::Profile::Local,
            "wild",
            addr,
        ));
        let quic = QuicOptions::pinned("0.0.0.0:0".parse().unwrap(), "wild").unwrap();
        let options = crate::AgentOptions::new(config);
        let agent = SerfAgent::start_with_quic(options, transport, quic).unwrap();
        let advert = agent.quic_advert().unwrap();
        assert_eq!(advert.addr.ip(), addr.ip());
        assert_ne!(advert.addr.port(), 0);
        let me = agent.local_member().await.unwrap();
        assert_eq!(me.tags.get(QUIC_TAG), Some(&advert.to_tag_value()));
        // set_tags keeps the advert whatever it is given.
        agent.set_tags(BTreeMap::new()).await.unwrap();
        let me = agent.local_member().await.unwrap();
        assert_eq!(me.tags.get(QUIC_TAG), Some(&advert.to_tag_value()));
        agent.shutdown().await;
    }

    #[test]
    fn default_bind_is_an_os_chosen_port_on_the_gossip_ip() {
        let b = |s: &str| default_bind(s.parse().unwrap()).to_string();
        assert_eq!(b("0.0.0.0:7946"), "0.0.0.0:0");
        assert_eq!(b("10.0.0.5:7946"), "10.0.0.5:0");
        assert_eq!(b("127.0.0.1:0"), "127.0.0.1:0");
    }

    #[test]
    fn settings_choose_the_mode_and_limits() {
        let gossip = "127.0.0.1:7946".parse().unwrap();
        let s = QuicSettings {
            response_max_bytes: 10,
            query_max_bytes: 20,
            ..QuicSettings::default()
        };
        let o = QuicOptions::from_settings(&s, gossip, "n").unwrap();
        assert_eq!(o.bind, "127.0.0.1:0".parse().unwrap());
        assert!(matches!(o.security, Security::Pinned(_)));
        assert_eq!((o.limits.max_response, o.limits.max_query_total), (10, 20));
        let partial = QuicSettings {
            ca_file: Some("ca.pem".into()),
            ..QuicSettings::default()
        };
        let e = QuicOptions::from_settings(&partial, gossip, "n").unwrap_err();
        assert!(e.to_string().contains("must be given together"), "{e}");
        let zero = QuicSettings {
            query_max_bytes: 0,
            ..QuicSettings::default()
        };
        assert!(QuicOptions::from_settings(&zero, gossip, "n").is_err());
    }

    #[test]
    fn admits_only_alive_members_with_valid_adverts() {
        let fp = |s: &str| Fingerprint::of(s.as_bytes());
        let advert = |s: &str| format!("{}@127.0.0.1:7947", fp(s));
        let shared = Shared::default();
        shared.refresh(&[
            member("a", MemberStatus::Alive, Some(advert("a"))),
            member("b", MemberStatus::Failed, Some(advert("b"))),
            member("c", MemberStatus::Alive, Some("garbage".into())),
            member("d", MemberStatus::Alive, None),
            member("e", MemberStatus::Leaving, Some(advert("e"))),
        ]);
        let admitted = shared.admitted.read().unwrap();
        assert_eq!(admitted.get(&fp("a")).map(String::as_str), Some("a"));
        assert_eq!(admitted.get(&fp("e")).map(String::as_str), Some("e"));
        assert!(
            !admitted.contains_key(&fp("b")),
            "failed members are not admitted"
        );
        assert_eq!(admitted.len(), 2);
    }
}
