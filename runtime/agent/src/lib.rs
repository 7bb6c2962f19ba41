//! `hearsay-agent`: composition. It runs the sans-io Serf layer ([`hearsay_serf::Serf`]) on the
//! network driver of `hearsay-net` and gives it an async API ([`SerfAgent`]).
//!
//! Around it: the agent's config and run loop ([`config`], [`run`]), its WebAssembly handlers
//! ([`handlers`]), the backend of Serf's RPC server ([`rpc_backend`]; the protocol itself,
//! client and server loop, is `hearsay-rpc`), and the joins of the peers mDNS discovery finds
//! ([`run::Agent::start_discovery`]; the discovery itself is `hearsay_net::discover`).
//! [`conventions`] is the one home of Serf's and Go's conventions (flag syntax, booleans, tags,
//! durations, addresses and their default ports, Go-style JSON, the host name) for the agent,
//! the `hearsay` binary and the test node binaries.
//!
//! What it is not: no protocol logic (that is `hearsay-serf`, `hearsay-swim` and
//! `hearsay-rpc`) and no sockets (that is `hearsay-net`).

pub mod config;
pub mod conventions;
pub mod conversions;
pub mod error;
pub mod filter;
pub mod handlers;
pub mod keyring_file;
pub mod logs;
pub mod quic;
pub mod reply;
pub mod rpc_backend;
pub mod run;
pub mod serf_agent;
pub mod snapshot;
pub mod tags_file;

pub use error::{Error, Result};
pub use quic::{QuicOptions, QuicSettings, QuicStats};
pub use reply::{QueryReply, ReplyPath, ReplyTarget};
pub use rpc_backend::{AgentBackend, AgentInfo};
pub use serf_agent::{AgentOptions, KeyOpOutcome, QueryResult, QueryResults, SerfAgent};
