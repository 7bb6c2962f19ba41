//! What the agent's interop tests share beyond `hearsay-testkit`: the keys they encrypt with
//! and the `hearsay-serf-node` binary they run.
#![allow(dead_code, unused_imports)]

pub use hearsay_testkit::process::NodeProcess;
pub use hearsay_testkit::serf::{require_serf, Serf};
pub use hearsay_testkit::WAIT;

pub const KEY: &str = "kZyFABeAmc64UMTrm9XuKA==";
pub const OTHER_KEY: &str = "5K9OtfP7efFrNKe5WCQvXvnaXJ5cWP0SvXiwe0kkjM4=";

/// Starts `hearsay-serf-node` with `args`.
pub fn spawn_node(args: &[String]) -> NodeProcess {
    NodeProcess::start(env!("CARGO_BIN_EXE_hearsay-serf-node"), args)
}
