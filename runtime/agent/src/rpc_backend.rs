//! [`AgentBackend`]: the agent behind Serf's RPC server ([`hearsay_rpc::RpcServer`]). The
//! protocol (framing, handshake, auth, streams, Serf's error strings) is `hearsay-rpc`'s; this
//! module answers its [`Backend`] calls with a [`Node`], the agent's [`Handlers`], its
//! [`LogHub`] and its tags file, and converts the agent's types to the protocol's records.

use crate::conventions;
use crate::conversions;
use crate::deploy::{ClusterDeployment, Deployer};
use crate::filter::EventFilter;
use crate::handlers::{HandlerListing, Handlers};
use crate::logs::{self, LogHub, LogSubscription};
use crate::node::{Node, QueryResult, QueryResults};
use crate::replies::{QueryReply, ReplyTarget};
use async_trait::async_trait;
use hearsay_rpc::{
    AgentStats, Backend, BackendError, Coordinate, KeyOp, KeyResponse, LogLevel, QueryEvent,
    QueryRequest, QueryTarget, RpcDeployNode, RpcDeployment, RpcDeployments, RpcHandler, RpcMember,
    RpcRefusal, StreamEvent, Subscription,
};
use hearsay_serf::event::{Event, Member};
use hearsay_serf::QueryParams;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// Static facts about the agent for the `stats` command (besides what the Serf layer knows).
#[derive(Debug, Clone, Default)]
pub struct AgentInfo {
    /// The agent's version, shown under `runtime` → `version`.
    pub version: String,
    /// Event handlers as Serf lists them: `filter` (`member-join:` / `user:deploy`) →
    /// handler.
    pub event_handlers: BTreeMap<String, String>,
}

/// What the RPC server needs from the agent process. Clones share the leave signal.
#[derive(Debug, Clone)]
pub struct AgentBackend {
    /// The node the commands act on.
    pub agent: Node,
    /// Where `monitor` reads log lines from; install [`LogHub::layer`] in the process's
    /// tracing subscriber so it sees them.
    pub logs: LogHub,
    /// When set, the `tags` command writes the new tags there (as Serf's `-tags-file`).
    pub tags_file: Option<PathBuf>,
    /// Static facts for `stats`.
    pub info: AgentInfo,
    /// The agent's WebAssembly handlers, listed by the hearsay-only `handlers` command.
    pub handlers: Option<Handlers>,
    /// The deploy service, for the hearsay-only `deploy` and `deployments` commands.
    pub deployer: Option<Deployer>,
    leave: watch::Sender<bool>,
}

impl AgentBackend {
    /// A backend for `agent` with a fresh log hub, no tags file, no handlers.
    pub fn new(agent: Node) -> Self {
        Self {
            agent,
            logs: LogHub::default(),
            tags_file: None,
            info: AgentInfo {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                event_handlers: BTreeMap::new(),
            },
            handlers: None,
            deployer: None,
            leave: watch::channel(false).0,
        }
    }

    /// Streams this hub's lines to `monitor` clients.
    pub fn logs(mut self, hub: LogHub) -> Self {
        self.logs = hub;
        self
    }

    /// Persists tags set over RPC to `path`.
    pub fn tags_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tags_file = Some(path.into());
        self
    }

    /// Sets the static facts `stats` reports.
    pub fn info(mut self, info: AgentInfo) -> Self {
        self.info = info;
        self
    }

    /// Takes `deploy` and answers `deployments` through `deployer`.
    pub fn deployer(mut self, deployer: Deployer) -> Self {
        self.deployer = Some(deployer);
        self
    }

    /// Lists `handlers` for the `handlers` command.
    pub fn handlers(mut self, handlers: Handlers) -> Self {
        self.handlers = Some(handlers);
        self
    }

    /// Becomes `true` once a client's `leave` has completed: the agent left gracefully and
    /// was shut down; the process should exit. Await it with `rx.wait_for(|l| *l)`.
    pub fn leave_requested(&self) -> watch::Receiver<bool> {
        self.leave.subscribe()
    }
}

/// A member as the RPC protocol lists it.
pub(crate) fn rpc_member(m: &Member) -> RpcMember {
    let addr = match m.addr.ip() {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    RpcMember {
        name: m.name.clone(),
        addr,
        port: m.addr.port(),
        tags: m.tags.clone(),
        status: m.status.as_str().to_owned(),
        vsn: m.vsn,
    }
}

impl From<&HandlerListing> for RpcHandler {
    fn from(h: &HandlerListing) -> Self {
        Self {
            name: h.name.clone(),
            filter: h.filter.clone(),
            module: h.module.display().to_string(),
            sha256: h.sha256.clone(),
            invocations: h.stats.invocations,
            ok: h.stats.ok,
            errors: h.stats.errors,
            traps: h.stats.traps,
            timeouts: h.stats.timeouts,
            drops: h.stats.drops,
            queued: h.queued as u64,
            p50: h.stats.p50,
            p99: h.stats.p99,
            running: h.stats.running,
            oldest_running: h.stats.oldest_running,
            log_suppressed: h.stats.log_suppressed,
            tenant: h.tenant.clone(),
        }
    }
}

#[async_trait]
impl Backend for AgentBackend {
    async fn members(&self) -> Result<Vec<RpcMember>, BackendError> {
        Ok(self.agent.members().await?.iter().map(rpc_member).collect())
    }

    async fn join(&self, existing: &[String], replay: bool) -> Result<usize, BackendError> {
        let mut addrs = Vec::new();
        let mut errors = Vec::new();
        for a in existing {
            match conventions::resolve_async(a, conventions::DEFAULT_BIND_PORT).await {
                Ok(addr) => addrs.push(addr),
                Err(e) => errors.push(format!("{a}: {e}")),
            }
        }
        if addrs.is_empty() {
            let why = if errors.is_empty() {
                "no addresses to join".to_owned()
            } else {
                errors.join("; ")
            };
            return Err(format!("join failed: {why}").into());
        }
        tracing::info!("agent: joining: {existing:?} replay: {replay}");
        Ok(self.agent.join(&addrs, !replay).await?)
    }

    async fn leave(&self) -> Result<(), BackendError> {
        Ok(self.agent.leave().await?)
    }

    async fn left(&self) {
        self.agent.shutdown().await;
        let _ = self.leave.send(true);
    }

    async fn force_leave(&self, node: &str, prune: bool) -> Result<(), BackendError> {
        Ok(self.agent.force_leave(node, prune).await?)
    }

    async fn user_event(
        &self,
        name: &str,
        payload: &[u8],
        coalesce: bool,
    ) -> Result<(), BackendError> {
        Ok(self.agent.user_event(name, payload, coalesce).await?)
    }

    async fn query(
        &self,
        q: QueryRequest,
    ) -> Result<Box<dyn Subscription<QueryEvent>>, BackendError> {
        let params = QueryParams {
            filter_nodes: q.filter_nodes,
            filter_tags: q.filter_tags,
            request_ack: q.request_ack,
            relay_factor: q.relay_factor,
            timeout: Duration::from_nanos(q.timeout_ns.max(0) as u64),
            finish_early: false,
        };
        let results = self.agent.query(&q.name, &q.payload, params).await?;
        Ok(Box::new(QueryFeed(results)))
    }

    async fn respond(&self, to: QueryTarget, payload: &[u8]) -> Result<(), BackendError> {
        let target = ReplyTarget {
            ltime: to.ltime,
            id: to.id,
            origin: to.origin,
            name: to.name,
            deadline: to.deadline,
        };
        QueryReply::respond(&self.agent, target, payload).await?;
        Ok(())
    }

    async fn update_tags(
        &self,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<(), BackendError> {
        match crate::tags_update::update(&self.agent, self.tags_file.as_deref(), set, &delete).await
        {
            Ok(()) => Ok(()),
            Err(crate::tags_update::UpdateError::File(e)) => Err(e.into()),
            Err(crate::tags_update::UpdateError::Node(e)) => Err(e.into()),
        }
    }

    async fn key_op(
        &self,
        op: KeyOp,
        key: &str,
    ) -> Result<(KeyResponse, Option<String>), BackendError> {
        let o = self.agent.key_op(op.as_str(), key).await?;
        let resp = KeyResponse {
            messages: o.messages,
            keys: o.keys.into_iter().map(|(k, n)| (k, n as i64)).collect(),
            num_nodes: o.num_nodes as i64,
            num_err: o.num_err as i64,
            num_resp: o.num_resp as i64,
        };
        Ok((resp, o.error))
    }

    async fn stats(&self) -> AgentStats {
        AgentStats {
            name: self.agent.name().to_owned(),
            version: self.info.version.clone(),
            serf: self.agent.stats().await.unwrap_or_default(),
            tags: self
                .agent
                .local_member()
                .await
                .map(|m| m.tags)
                .unwrap_or_default(),
            event_handlers: self.info.event_handlers.clone(),
        }
    }

    async fn coordinate(&self, node: &str) -> Option<Coordinate> {
        self.agent.coordinate(node).await.ok().flatten()
    }

    fn subscribe_events(&self, filter: &str) -> Option<Box<dyn Subscription<StreamEvent>>> {
        let filter = EventFilter::parse(filter).ok()?;
        Some(Box::new(EventFeed {
            events: self.agent.subscribe(),
            filter,
        }))
    }

    fn subscribe_logs(&self, level: LogLevel) -> Box<dyn Subscription<String>> {
        let min = match level {
            LogLevel::Trace => logs::LogLevel::Trace,
            LogLevel::Debug => logs::LogLevel::Debug,
            LogLevel::Info => logs::LogLevel::Info,
            LogLevel::Warn => logs::LogLevel::Warn,
            LogLevel::Err => logs::LogLevel::Err,
        };
        Box::new(LogFeed(self.logs.subscribe(min)))
    }

    async fn handlers(&self) -> Vec<RpcHandler> {
        self.handlers
            .as_ref()
            .map(Handlers::list)
            .unwrap_or_default()
            .iter()
            .map(RpcHandler::from)
            .collect()
    }

    async fn deploy(&self, deployment: Vec<u8>, module: Vec<u8>) -> Result<u64, String> {
        let Some(d) = &self.deployer else {
            return Err("this agent runs no deploy service (it needs QUIC)".into());
        };
        d.deploy(deployment, module)
            .await
            .map_err(|e| e.to_string())
    }

    async fn deployments(&self) -> Result<RpcDeployments, String> {
        let Some(d) = &self.deployer else {
            return Err("this agent runs no deploy service (it needs QUIC)".into());
        };
        match d.deployments().await {
            Ok(view) => Ok(RpcDeployments {
                deployments: view.deployments.iter().map(rpc_deployment).collect(),
                refused: view
                    .refused
                    .into_iter()
                    .map(|(node, s)| RpcRefusal {
                        node,
                        name: s.name,
                        version: s.version,
                        reason: s.reason,
                    })
                    .collect(),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "deploy: cannot list deployments");
                Err(format!("cannot list deployments: {e}"))
            }
        }
    }
}

/// A deployment as the `deployments` command carries it.
fn rpc_deployment(c: &ClusterDeployment) -> RpcDeployment {
    let spec = c.record.spec();
    RpcDeployment {
        name: spec.name.clone(),
        version: spec.version,
        sha256: spec
            .module
            .as_ref()
            .map_or_else(String::new, |m| m.sha256.to_string()),
        size: spec.module.as_ref().map_or(0, |m| m.size),
        events: spec.events.clone(),
        signer: c.record.signer().to_string(),
        removed: spec.module.is_none(),
        record: c.record.encode(),
        history: c.history.iter().map(|h| h.encode()).collect(),
        nodes: c
            .nodes
            .iter()
            .map(|(node, s)| RpcDeployNode {
                node: node.clone(),
                state: s.state.as_str().to_owned(),
                version: s.version,
                reason: s.reason.clone(),
            })
            .collect(),
    }
}

/// A query's results as the protocol's events.
struct QueryFeed(QueryResults);

#[async_trait]
impl Subscription<QueryEvent> for QueryFeed {
    async fn next(&mut self) -> Option<QueryEvent> {
        Some(match self.0.next().await? {
            QueryResult::Ack { from } => QueryEvent::Ack { from },
            QueryResult::Response { from, payload } => QueryEvent::Response { from, payload },
            QueryResult::ResponseChunk { from, chunk } => QueryEvent::Piece {
                from,
                chunk: chunk.to_vec(),
            },
            QueryResult::ResponseEnd { from, result } => QueryEvent::End {
                from,
                result: result.map(drop),
            },
            QueryResult::Done => QueryEvent::Done,
        })
    }
}

/// The agent's events passing a `stream` filter, as the protocol's events.
struct EventFeed {
    events: broadcast::Receiver<Event>,
    filter: EventFilter,
}

#[async_trait]
impl Subscription<StreamEvent> for EventFeed {
    async fn next(&mut self) -> Option<StreamEvent> {
        loop {
            let ev = match self.events.recv().await {
                Ok(ev) => ev,
                Err(broadcast::error::RecvError::Lagged(n)) => return Some(StreamEvent::Lagged(n)),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if let Some(ev) = stream_event(&self.filter, ev) {
                return Some(ev);
            }
        }
    }
}

/// `ev` as a `stream` record, when it is one a stream can carry and `filter` admits it.
fn stream_event(filter: &EventFilter, ev: Event) -> Option<StreamEvent> {
    match conversions::kind(&ev) {
        Some((kind, name)) if filter.matches(kind, name) => {}
        _ => return None,
    }
    Some(match ev {
        Event::Member(me) => StreamEvent::Member {
            kind: me.kind.as_str().to_owned(),
            members: me.members.iter().map(rpc_member).collect(),
        },
        Event::User(ue) => StreamEvent::User {
            ltime: ue.ltime,
            name: ue.name,
            payload: ue.payload,
            coalesce: ue.coalesce,
        },
        Event::Query(q) => StreamEvent::Query {
            target: QueryTarget {
                ltime: q.ltime,
                id: q.id,
                origin: q.source_node,
                name: q.name,
                deadline: q.deadline,
            },
            payload: q.payload,
        },
        _ => return None,
    })
}

/// A `monitor`'s log lines.
struct LogFeed(LogSubscription);

#[async_trait]
impl Subscription<String> for LogFeed {
    async fn next(&mut self) -> Option<String> {
        self.0.next().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_filter_events_with_serf_syntax() {
        let f = EventFilter::parse("member-join,user:deploy").unwrap();
        let user = |name: &str| {
            Event::User(hearsay_serf::event::UserEvent {
                ltime: 1,
                name: name.into(),
                payload: vec![],
                coalesce: false,
            })
        };
        assert!(matches!(
            stream_event(&f, user("deploy")),
            Some(StreamEvent::User { name, .. }) if name == "deploy"
        ));
        assert!(stream_event(&f, user("other")).is_none());
        assert!(stream_event(&f, Event::LeaveComplete).is_none());
        assert!(EventFilter::parse("nope").is_err());
    }

    #[test]
    fn members_convert_with_their_address_bytes() {
        let m = Member {
            name: "a".into(),
            addr: "10.0.0.7:7946".parse().unwrap(),
            tags: BTreeMap::new(),
            status: hearsay_serf::event::MemberStatus::Alive,
            vsn: [2, 5, 4, 2, 5, 4],
        };
        let r = rpc_member(&m);
        assert_eq!((r.addr.as_slice(), r.port), (&[10, 0, 0, 7][..], 7946));
        assert_eq!(r.status, "alive");
        assert_eq!(r.ip(), Some(m.addr.ip()));
    }
}
