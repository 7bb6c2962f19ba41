//! [`Backend`]: what the RPC server asks of the agent it serves. The server owns the
//! protocol (handshake, auth, sequence numbers, which streams a client has open, which
//! queries it may still answer, Serf's error strings); the backend owns the node (members,
//! joins, events, queries, tags, keys). Errors a backend returns are sent to the client as
//! their `Display` text, in the response header's `Error`, so they should read as Serf's do.

use crate::client::Coordinate;
use crate::messages::{
    KeyOp, KeyResponse, LogLevel, QueryRequest, RpcDeployments, RpcHandler, RpcMember,
};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Instant;

/// A backend's failure, sent to the client as its text (the server needs nothing else of it).
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// A source of items the server forwards to a client until it ends (`None`).
#[async_trait]
pub trait Subscription<T: Send>: Send {
    /// The next item; `None` when the source is gone.
    async fn next(&mut self) -> Option<T>;
}

/// The node behind an [`crate::RpcServer`]. One value serves every client at once.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Every member the node knows (`members`, and `members-filtered` before its filters).
    async fn members(&self) -> Result<Vec<RpcMember>, BackendError>;

    /// Joins the nodes at `existing` (`host:port`, names resolved by the backend); returns
    /// how many it reached. `replay` replays old user events, as Serf's `-replay`.
    async fn join(&self, existing: &[String], replay: bool) -> Result<usize, BackendError>;

    /// Leaves the cluster gracefully (`leave`). The server answers the client, then calls
    /// [`Backend::left`].
    async fn leave(&self) -> Result<(), BackendError>;

    /// Called once the answer to `leave` is queued: stop the node and let the process exit.
    /// The connection that asked reads no further requests.
    async fn left(&self);

    /// Forces a failed node into the left state (with `prune`, removes it at once).
    async fn force_leave(&self, node: &str, prune: bool) -> Result<(), BackendError>;

    /// Fires a user event.
    async fn user_event(
        &self,
        name: &str,
        payload: &[u8],
        coalesce: bool,
    ) -> Result<(), BackendError>;

    /// Starts a query; its results feed the client's `query` stream until
    /// [`QueryEvent::Done`].
    async fn query(
        &self,
        query: QueryRequest,
    ) -> Result<Box<dyn Subscription<QueryEvent>>, BackendError>;

    /// Answers a query this node received (delivered to the client on an event stream).
    async fn respond(&self, to: QueryTarget, payload: &[u8]) -> Result<(), BackendError>;

    /// Sets and deletes the node's tags (`tags`).
    async fn update_tags(
        &self,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<(), BackendError>;

    /// Runs a key command over the cluster: the aggregate, and Serf's error text when some
    /// node failed. The server clears `keys` for commands other than `list-keys`.
    async fn key_op(
        &self,
        op: KeyOp,
        key: &str,
    ) -> Result<(KeyResponse, Option<String>), BackendError>;

    /// The facts `stats` reports besides the process's own (OS, architecture, CPUs).
    async fn stats(&self) -> AgentStats;

    /// The coordinate the node has for `node`, if any (`get-coordinate`).
    async fn coordinate(&self, node: &str) -> Option<Coordinate>;

    /// Subscribes to the node's events passing `filter` (Serf's syntax: `*`,
    /// `member-join,user:deploy`); `None` when the filter is not valid. Called before the
    /// server answers `stream`, so no event after the answer is missed.
    fn subscribe_events(&self, filter: &str) -> Option<Box<dyn Subscription<StreamEvent>>>;

    /// Subscribes to the agent's log lines at `level` and above (`monitor`).
    fn subscribe_logs(&self, level: LogLevel) -> Box<dyn Subscription<String>>;

    /// hearsay extension: the agent's WebAssembly handlers (`handlers`).
    async fn handlers(&self) -> Vec<RpcHandler>;

    /// hearsay extension: deploys a signed handler module cluster-wide, or undeploys one
    /// (`deploy`). `deployment` is the encoded, signed deployment record (never empty; its
    /// signature is the backend's to check); `module` the module's bytes, empty for an
    /// undeploy or when the agent already holds them. Returns the version deployed; an
    /// `Err` is sent to the client as it is, e.g. "deployment refused: untrusted signer
    /// ed25519:...".
    async fn deploy(&self, deployment: Vec<u8>, module: Vec<u8>) -> Result<u64, String>;

    /// hearsay extension: every deployment with each node's convergence (`deployments`).
    /// `Err` is sent as the response's error (e.g. the agent runs no deploy service).
    async fn deployments(&self) -> Result<RpcDeployments, String>;
}

/// An event for a client's `stream`, already filtered by the backend.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A member event (record fields `Event`, `Members`).
    Member {
        /// The event as Serf names it: `member-join`, `member-leave`, `member-failed`,
        /// `member-update` or `member-reap`.
        kind: String,
        /// The members the event is about.
        members: Vec<RpcMember>,
    },
    /// A user event (record `Event: "user"`).
    User {
        /// The event's Lamport time (`LTime`).
        ltime: u64,
        /// The event's name (`Name`).
        name: String,
        /// The event's payload (`Payload`).
        payload: Vec<u8>,
        /// Whether the sender allowed coalescing (`Coalesce`).
        coalesce: bool,
    },
    /// A query this node received (record `Event: "query"`); the client may answer it with
    /// `respond` until `target.deadline`.
    Query {
        /// The query, as the server keeps it to route the client's `respond`.
        target: QueryTarget,
        /// The query's payload (`Payload`).
        payload: Vec<u8>,
    },
    /// The subscriber fell behind and this many events were lost (logged, not sent).
    Lagged(u64),
}

/// A query delivered to a client, as the server keeps it for `respond`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTarget {
    /// The query's Lamport time (`LTime`); with `id`, it identifies the query to its
    /// originator.
    pub ltime: u64,
    /// The query's id as its originator chose it (Serf's `messageQuery.ID`). Clients see a
    /// per-server number in the record's `ID` instead, which the server maps back to this.
    pub id: u32,
    /// The originating node.
    pub origin: String,
    /// The query's name (`Name`).
    pub name: String,
    /// After this, `respond` is refused (Serf's "No pending queries matching ID").
    pub deadline: Instant,
}

/// One result of a query started by [`Backend::query`], in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryEvent {
    /// A node acknowledged the query (only when acks were requested).
    Ack {
        /// The acknowledging node's name.
        from: String,
    },
    /// A node's whole response.
    Response {
        /// The responding node's name.
        from: String,
        /// The response, as the node sent it.
        payload: Vec<u8>,
    },
    /// The next piece of a node's large response.
    Piece {
        /// The responding node's name.
        from: String,
        /// The piece's bytes (at most 64 KiB), in order.
        chunk: Vec<u8>,
    },
    /// A node's large response ended.
    End {
        /// The responding node's name.
        from: String,
        /// `Ok` when the pieces before are the whole response; else why it failed after them.
        result: Result<(), String>,
    },
    /// No more results will come.
    Done,
}

/// What `stats` shows of the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// The node's name (`agent` → `name`).
    pub name: String,
    /// The agent's version (`runtime` → `version`).
    pub version: String,
    /// The Serf layer's counters (`serf`).
    pub serf: BTreeMap<String, String>,
    /// The node's tags (`tags`).
    pub tags: BTreeMap<String, String>,
    /// Event handlers as Serf lists them: filter (`member-join:`, `user:deploy`) → handler.
    pub event_handlers: BTreeMap<String, String>,
}
