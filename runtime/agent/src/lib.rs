//! `hearsay-agent`: composition. It runs the sans-io Serf layer ([`hearsay_serf::Serf`]) on the
//! network driver of `hearsay-net` and gives it an async API ([`SerfAgent`]).
//!
//! What it is not: no protocol logic (that is `hearsay-serf` and `hearsay-swim`) and no sockets
//! (that is `hearsay-net`). Config, handler dispatch, the RPC server, the module store and
//! tenants will live here too.

pub mod config;
pub mod conversions;
pub mod discover;
pub mod error;
pub mod filter;
pub mod handlers;
pub mod logs;
pub mod quic;
pub mod reply;
pub mod rpc;
pub mod run;
pub mod serf_agent;
pub mod snapshot;
pub mod tags_file;

pub use error::{Error, Result};
pub use quic::{QuicOptions, QuicSettings, QuicStats};
pub use reply::{QueryReply, ReplyPath, ReplyTarget};
pub use serf_agent::{AgentOptions, KeyOpOutcome, QueryResult, QueryResults, SerfAgent};
