//! `hearsay-swim`: a sans-io SWIM + Lifeguard membership core that speaks HashiCorp
//! memberlist's wire protocol (versions 2-5), so hearsay nodes and Serf agents share one cluster.
//!
//! What it is: state machines and codecs. Inputs arrive through `handle_*` calls with the
//! current time; outputs (packets, stream requests, events, the next timeout) are drained with
//! `poll_*`. What it is not: it opens no sockets, reads no clock and spawns nothing; the
//! `hearsay-net` crate drives it over real UDP and TCP.

#![warn(missing_docs, unreachable_pub)]

mod broadcast;
mod compact;
pub mod config;
mod core;
pub mod drops;
mod error;
pub mod heap;
pub mod keyring;
pub mod loglimit;
mod protocol;
mod suspicion;
pub mod table;
pub mod wire;

pub use crate::broadcast::NotifyId;
pub use crate::core::{
    Event, JoinId, Member, MemberInfo, StreamId, StreamOutcome, StreamRequest, Swim, Transmit,
};
pub use crate::protocol::Protocol;
pub use config::{Config, Profile};
pub use drops::{DropKind, DropStats};
pub use error::{Error, Result};
pub use keyring::Keyring;

#[cfg(feature = "testing")]
pub mod testing;
