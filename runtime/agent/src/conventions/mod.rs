//! Serf's and Go's conventions, in one place for every crate that talks to people the way
//! `serf` does (`hearsay agent`, the client verbs of the `hearsay` binary, the test node
//! binaries): Go's flag syntax and `strconv.ParseBool` ([`flags`]), Serf's `-tag key=value`
//! ([`flags::parse_tag`]), Go's durations ([`duration`]), Serf's `host[:port]` addresses with
//! their default ports ([`addr`]), Go's `encoding/json` output ([`json`]), and the host name
//! Serf names a node after ([`hostname`]).
//!
//! What it is not: no protocol logic and no I/O beyond reading the host name and resolving a
//! host name. The defaults here are Serf's; the settings that use them live in
//! [`crate::config`].

pub mod addr;
pub mod duration;
pub mod flags;
pub mod json;

pub use addr::{resolve, resolve_async, AddrError};
pub use duration::parse_go_duration;
pub use flags::{parse_bool, parse_tag, parse_tags, Flag, FlagError, Flags, TagError};

/// Serf's gossip port (memberlist's default): `-bind`'s and a join address's default port.
pub const DEFAULT_BIND_PORT: u16 = 7946;
/// Serf's RPC port.
pub const DEFAULT_RPC_PORT: u16 = 7373;
/// Serf's default RPC address (`-rpc-addr`), where the agent listens and the client verbs
/// connect.
pub const DEFAULT_RPC_ADDR: &str = "127.0.0.1:7373";

/// The node name when there is no host name to use.
const FALLBACK_NODE_NAME: &str = "hearsay";

/// This machine's host name, as Go's `os.Hostname` gives it on Linux: the kernel's
/// (`/proc/sys/kernel/hostname`, the `uname` node name), without the trailing newline.
/// `None` when it cannot be read or is empty.
pub fn hostname() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = text.strip_suffix('\n').unwrap_or(&text);
    (!name.is_empty()).then(|| name.to_owned())
}

/// Serf's default node name: the host name, or `"hearsay"` when there is none.
pub fn default_node_name() -> String {
    hostname().unwrap_or_else(|| FALLBACK_NODE_NAME.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_is_the_kernels_without_the_newline() {
        let name = hostname().expect("Linux has /proc/sys/kernel/hostname");
        assert!(!name.is_empty() && !name.ends_with('\n'), "{name:?}");
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(raw.trim_end(), name);
        assert_eq!(default_node_name(), name);
    }

    #[test]
    fn default_addresses_are_serfs() {
        assert_eq!(DEFAULT_BIND_PORT, 7946);
        let rpc: std::net::SocketAddr = DEFAULT_RPC_ADDR.parse().unwrap();
        assert_eq!(
            rpc,
            std::net::SocketAddr::from(([127, 0, 0, 1], DEFAULT_RPC_PORT))
        );
    }
}
