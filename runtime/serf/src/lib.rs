//! `hearsay-serf`: the Serf layer on top of the membership core. Lamport clocks, join and leave
//! intents, user events, queries, tags, coalescing, snapshots and Vivaldi coordinates, all
//! speaking Serf's messages so hearsay and Serf nodes share one cluster.
//!
//! What it is: sans-io state machines and codecs, like `hearsay-swim`. What it is not: it opens
//! no sockets or files and reads no clock; `hearsay-net` and the agent drive it.

pub mod clock;
pub mod coalesce;
pub mod coordinate;
pub mod error;
pub mod event;
pub mod messages;
pub mod serf;
pub mod snapshot;

pub use crate::serf::{QueryParams, QueueDepths, Serf, SerfConfig, State};
pub use clock::{LamportClock, LamportTime};
pub use error::{Error, Result};
