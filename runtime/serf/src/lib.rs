//! `hearsay-serf`: the Serf layer on top of the membership core. Lamport clocks, join and leave
//! intents, user events, queries, tags, coalescing, snapshots and Vivaldi coordinates, all
//! speaking Serf's messages so hearsay and Serf nodes share one cluster.
//!
//! What it is: sans-io state machines and codecs, like `hearsay-swim`. What it is not: it opens
//! no sockets or files and reads no clock; `hearsay-net` and the agent drive it.
//!
//! - [`Serf`], configured by [`SerfConfig`]: the state machine of one node. Its docs hold the
//!   call contract. The [`serf`] module's items are all here at the root; its path is kept for
//!   the code that names it.
//! - [`event`]: what [`Serf`] reports (member events, user events, queries and their results).
//! - [`messages`]: Serf's gossip messages, tags and query payloads, byte for byte as Go Serf.
//! - [`snapshot`]: Serf's snapshot file: its replay, and a sans-io writer.
//! - [`coordinate`]: Vivaldi network coordinates and the ping-ack payload that carries them.

#![warn(missing_docs, unreachable_pub)]

mod clock;
mod coalesce;
pub mod coordinate;
mod error;
pub mod event;
pub mod messages;
pub mod serf;
pub mod snapshot;

pub use crate::serf::{
    QueryParams, QueueDepths, Serf, SerfConfig, State, INTERNAL_QUERY_PREFIX, PROTOCOL_VERSION_MAX,
    PROTOCOL_VERSION_MIN, USER_EVENT_SIZE_HARD_LIMIT,
};
pub use clock::LamportTime;
pub use error::{Error, Result};
