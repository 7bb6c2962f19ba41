//! Serf's RPC protocol (IPC version 1), spoken exactly as the `serf` CLI 0.8 and Serf's Go
//! client library speak it: [`server::RpcServer`] serves a running [`crate::SerfAgent`] on a
//! TCP address, [`client::RpcClient`] drives any agent (ours or Serf's). Both share the
//! msgpack framing of [`codec`].
//!
//! What it is not: no gossip logic (the Serf layer answers key queries and the like); no
//! flag parsing or printing (that is the `hearsay` CLI).

pub mod client;
pub mod codec;
pub mod server;

pub use client::RpcClient;
pub use server::{AgentInfo, RpcContext, RpcServer};

/// The IPC protocol version this implementation speaks (Serf's `MinIPCVersion` and
/// `MaxIPCVersion` are both 1).
pub const IPC_VERSION: i64 = 1;

/// Serf's default RPC address.
pub const DEFAULT_RPC_ADDR: &str = "127.0.0.1:7373";

/// Serf's error strings, sent in the response header's `Error`.
pub mod errors {
    pub const UNSUPPORTED_COMMAND: &str = "Unsupported command";
    pub const UNSUPPORTED_IPC_VERSION: &str = "Unsupported IPC version";
    pub const DUPLICATE_HANDSHAKE: &str = "Handshake already performed";
    pub const HANDSHAKE_REQUIRED: &str = "Handshake required";
    pub const MONITOR_EXISTS: &str = "Monitor already exists";
    pub const INVALID_FILTER: &str = "Invalid event filter";
    pub const STREAM_EXISTS: &str = "Stream with given sequence exists";
    pub const INVALID_QUERY_ID: &str = "No pending queries matching ID";
    pub const AUTH_REQUIRED: &str = "Authentication required";
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

/// Whether a request with this command carries a body after its header (as Serf's client
/// sends them: `members`, `leave`, `list-keys` and `stats` have none). An unknown command is
/// answered at once without reading further, as Serf does.
pub fn command_has_body(command: &str) -> bool {
    COMMANDS.contains(&command) && !matches!(command, "members" | "leave" | "list-keys" | "stats")
}
