//! What the Serf node's interop tests share beyond `hearsay-testkit`: the key they encrypt
//! with and the `hearsay-serf-node` binary they run (built with this package, so
//! `CARGO_BIN_EXE_hearsay-serf-node` names it).
#![allow(dead_code, unused_imports)]

pub use hearsay_testkit::process::NodeProcess;
pub use hearsay_testkit::serf::{require_serf, Serf};
pub use hearsay_testkit::WAIT;

pub const KEY: &str = "kZyFABeAmc64UMTrm9XuKA==";

/// Starts `hearsay-serf-node` with `args`.
pub fn spawn_node(args: &[String]) -> NodeProcess {
    NodeProcess::start(env!("CARGO_BIN_EXE_hearsay-serf-node"), args)
}
