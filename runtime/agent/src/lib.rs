//! `hearsay-agent`: composition. It runs the sans-io Serf layer ([`hearsay_serf::Serf`]) on the
//! network driver of `hearsay-net` as a [`Node`], and builds the agent around it.
//!
//! Its modules form layers; each uses only those listed before it:
//!
//! 1. [`conventions`], [`config`], [`filter`], [`logs`], [`tags_file`]: leaves.
//!    `conventions` is the one home of Serf's and Go's conventions (flag syntax, booleans,
//!    tags, durations, addresses and their default ports, Go-style JSON, the host name) for
//!    the agent, the `hearsay` binary and the test node binaries; `config` owns every
//!    settings type (the agent's [`config::Config`], [`config::HandlerConfig`],
//!    [`QuicSettings`]).
//! 2. `node`: one Serf node with an async API ([`Node`]); knows nothing of QUIC. Large
//!    responses reach it through a side channel (`node::SideChannel`) the layer above
//!    attaches. `tags_update`: changing the node's tags at run time (tags file kept in step).
//! 3. [`replies`]: answering queries ([`QueryReply`], UDP or QUIC, relayed) and the QUIC side
//!    channel ([`replies::start_with_quic`]).
//! 4. [`handlers`]: the WebAssembly handlers, fed the node's events, replying through
//!    `replies`. `snapshot`: the snapshot file.
//! 5. [`deploy`]: handler modules deployed cluster-wide by signed records, spread among
//!    hearsay members over QUIC, run through `handlers`.
//! 6. The backend of Serf's RPC server ([`AgentBackend`]; the protocol itself, client and
//!    server loop, is `hearsay-rpc`).
//! 7. [`run`]: the agent `hearsay agent` runs: binds, starts everything above, joins (also the
//!    peers mDNS discovery finds, `hearsay_net::discover`), handles signals.
//!
//! Public by path are the modules other crates name (`conventions`, `config`, `filter`,
//! `logs`, `tags_file`, `keyring_file`, `replies`, `handlers`, `deploy`, `run`); `node` and `snapshot`
//! are private, their public types re-exported here.
//!
//! What it is not: no protocol logic (that is `hearsay-serf`, `hearsay-swim` and
//! `hearsay-rpc`) and no sockets (that is `hearsay-net`).

#![warn(missing_docs, unreachable_pub)]

pub mod config;
pub mod conventions;
mod conversions;
pub mod deploy;
mod error;
pub mod filter;
pub mod handlers;
pub mod keyring_file;
pub mod logs;
mod node;
pub mod replies;
mod rpc_backend;
pub mod run;
mod snapshot;
pub mod tags_file;
mod tags_update;

pub use config::QuicSettings;
pub use error::{Error, Result};
pub use node::{Error as NodeError, KeyOpOutcome, Node, NodeOptions, QueryResult, QueryResults};
pub use replies::{QueryReply, QuicOptions, QuicStats, ReplyPath, ReplyTarget};
pub use rpc_backend::{AgentBackend, AgentInfo};
pub use snapshot::SnapshotError;
