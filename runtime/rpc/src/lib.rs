//! `hearsay-rpc`: Serf's RPC protocol (IPC version 1), spoken exactly as the `serf` CLI 0.8
//! and Serf's Go client library speak it.
//!
//! - [`RpcClient`] drives any agent (hearsay's or Serf's): requests multiplexed over one
//!   connection by sequence number, streams as [`RecordStream`]s.
//! - [`RpcServer`] is the connection loop (handshake, auth, sequencing, streams, monitors,
//!   queries, Serf's error strings) over a [`Backend`] the agent implements. Each
//!   connection acts as an [`Identity`]: the operator, or a tenant ([`TenantKey`],
//!   [`ServerOptions::tenant`]) that may only read the members, use event and query names in
//!   its namespace, stream those, and list its own handlers.
//! - The records both sides exchange ([`RpcMember`], [`KeyResponse`], [`QueryRecord`], and
//!   hearsay's own [`RpcHandler`], [`RpcDeployment`]) carry Serf's field names (or, for
//!   hearsay's, names in Serf's style).
//! - [`codec`]: the msgpack framing (header, optional body) and typed access to decoded maps,
//!   for speaking the protocol by hand; [`errors`]: Serf's error strings.
//!
//! What it is not: no gossip logic and no agent (the backend answers members, joins, key
//! queries and the like); no flag parsing or printing (that is the `hearsay` CLI) and no
//! defaults such as Serf's RPC address (`hearsay_agent::conventions`). It builds
//! without the handler host and the QUIC transport, so the CLI's client verbs and these tests
//! do not compile them.

#![warn(missing_docs, unreachable_pub)]

mod backend;
mod client;
pub mod codec;
mod error;
pub mod fuzzing;
mod identity;
mod messages;
mod server;

pub use backend::{
    AgentStats, Backend, BackendError, QueryEvent, QueryTarget, StreamEvent, Subscription,
};
pub use client::{Coordinate, QueryParams, RecordStream, RpcClient};
pub use codec::Value;
pub use error::{Error, Result};
pub use identity::{digests_equal, in_namespace, token_digest, Identity, TenantKey};
pub use messages::{
    KeyOp, KeyResponse, LogLevel, QueryRecord, QueryRequest, RpcDeployNode, RpcDeployment,
    RpcDeployments, RpcHandler, RpcMember, RpcRefusal,
};
pub use server::{RpcServer, ServerOptions};

/// The IPC protocol version this implementation speaks (Serf's `MinIPCVersion` and
/// `MaxIPCVersion` are both 1).
pub const IPC_VERSION: i64 = 1;

/// Serf's error strings, sent in the response header's `Error`.
pub mod errors {
    /// The command is not one the server knows (Serf's `unsupportedCommand`).
    pub const UNSUPPORTED_COMMAND: &str = "Unsupported command";
    /// The `handshake` asked for an IPC version other than [`crate::IPC_VERSION`].
    pub const UNSUPPORTED_IPC_VERSION: &str = "Unsupported IPC version";
    /// A second `handshake` on the same connection.
    pub const DUPLICATE_HANDSHAKE: &str = "Handshake already performed";
    /// A command other than `handshake` before the handshake; the server then drops the
    /// connection.
    pub const HANDSHAKE_REQUIRED: &str = "Handshake required";
    /// A second `monitor` on the same connection.
    pub const MONITOR_EXISTS: &str = "Monitor already exists";
    /// A `stream` filter Serf's event-filter syntax does not accept.
    pub const INVALID_FILTER: &str = "Invalid event filter";
    /// A `stream` whose sequence number already names an open stream.
    pub const STREAM_EXISTS: &str = "Stream with given sequence exists";
    /// A `respond` whose `ID` names no query delivered on this connection, or one whose
    /// deadline has passed.
    pub const INVALID_QUERY_ID: &str = "No pending queries matching ID";
    /// A command before `auth` on a server that has an auth key.
    pub const AUTH_REQUIRED: &str = "Authentication required";
    /// An `auth` with the wrong key.
    pub const INVALID_AUTH_TOKEN: &str = "Invalid authentication token";
}

/// The 20 commands of IPC version 1.
pub const COMMANDS: [&str; 20] = [
    "handshake",
    "auth",
    "event",
    "force-leave",
    "join",
    "members",
    "members-filtered",
    "tags",
    "stream",
    "monitor",
    "stop",
    "leave",
    "query",
    "respond",
    "install-key",
    "use-key",
    "remove-key",
    "list-keys",
    "stats",
    "get-coordinate",
];

/// Commands hearsay's server answers beyond Serf's 20 (only `deploy` takes a body). A Serf
/// agent answers them with "Unsupported command" (and closes the connection, as it does for
/// any command it does not know).
///
/// - `handlers`: lists the agent's WebAssembly handlers. Response body: a map with
///   `Handlers`, an array of maps with `Name`, `Filter`, `Module`, `Sha256` (strings),
///   `Invocations`, `Ok`, `Errors`, `Traps`, `Timeouts`, `Drops`, `Queued` (unsigned
///   integers), `P50`, `P99` (latency in nanoseconds, nil before the first event), and
///   `Tenant` (string: the handler's tenant; nil for the operator's handlers); see
///   [`RpcHandler`]. A tenant's connection gets only its own handlers.
/// - `deploy`: deploys a signed WebAssembly handler module cluster-wide, or undeploys one.
///   Request body: a map with `Deployment` (bytes: the encoded, signed deployment record)
///   and `Module` (bytes: the module; empty for an undeploy, or when the agent already holds
///   it). Response body: a map with `Version` (unsigned integer: the version deployed; 0 on
///   error). A refusal is the header's `Error` (e.g. "deployment refused: untrusted signer
///   ed25519:..."), as is a body of the wrong shape ("invalid deploy request: ..."), after
///   which the connection stays usable. The body may be up to
///   [`codec::MAX_DEPLOY_BYTES`] once the client has completed the handshake and any `auth`;
///   before that, and for every other request, values are bounded by
///   [`codec::MAX_VALUE_BYTES`].
/// - `deployments`: lists the cluster's deployments with each node's convergence. Response
///   body: a map with `Deployments`, an array of maps with `Name`, `Sha256` (hex, empty for
///   an undeploy), `Events`, `Signer` (strings), `Version`, `Size` (unsigned integers),
///   `Removed` (bool), `Record` (bytes: the signed record), `History` (array of bytes: older
///   records, newest first) and `Nodes`, an array of maps with `Node`, `State`, `Reason`
///   (strings) and `Version` (unsigned integer); and `Refused`, an array of maps with `Node`,
///   `Name`, `Reason` (strings) and `Version` (unsigned integer), records nodes refused
///   lately; see [`RpcDeployments`].
pub const HEARSAY_COMMANDS: [&str; 3] = ["handlers", "deploy", "deployments"];

/// Whether a request with this command carries a body after its header (as Serf's client
/// sends them: `members`, `leave`, `list-keys` and `stats` have none; of hearsay's own
/// commands only `deploy` has one). An unknown command is answered at once without reading
/// further, as Serf does.
pub fn command_has_body(command: &str) -> bool {
    command == "deploy"
        || (COMMANDS.contains(&command)
            && !matches!(command, "members" | "leave" | "list-keys" | "stats"))
}
