//! The harness hearsay's interop tests share: a real `serf` agent ([`serf::Serf`]) and one of
//! our node binaries ([`process::NodeProcess`]), each a child process killed however the test
//! ends, with every wait bounded by [`WAIT`].
//!
//! A dev-dependency only: it is not published and no library or binary depends on it. It holds
//! what several test files need alike; what one test file alone needs stays in that file.

#![warn(missing_docs, unreachable_pub)]

pub mod process;
pub mod serf;
pub mod wasm;

use std::time::Duration;

/// The deadline of every wait on a child process: generous, because tests assert behaviour,
/// never speed.
pub const WAIT: Duration = Duration::from_secs(60);
