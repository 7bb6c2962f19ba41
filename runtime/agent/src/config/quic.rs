//! The QUIC settings as the agent's configuration gives them ([`QuicSettings`]) and the
//! default QUIC address; `replies` turns them into a running endpoint.

use hearsay_net::quic::Limits;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The QUIC settings as the agent's configuration gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicSettings {
    /// `quic_bind` / `-quic-bind`; `None` = [`default_bind`].
    pub bind: Option<SocketAddr>,
    /// `quic_advertise` / `-quic-advertise`.
    pub advertise: Option<SocketAddr>,
    /// Pinned mode: where this node's certificate and key are kept (created on first start).
    pub identity_file: Option<PathBuf>,
    /// CA mode: `quic_ca_file`, `quic_cert_file`, `quic_key_file` (all three or none).
    pub ca_file: Option<PathBuf>,
    /// CA mode: this node's certificate (`quic_cert_file` / `-quic-cert-file`).
    pub cert_file: Option<PathBuf>,
    /// CA mode: this node's key (`quic_key_file` / `-quic-key-file`).
    pub key_file: Option<PathBuf>,
    /// `query_response_max_bytes`: the largest response this node accepts from one node.
    pub response_max_bytes: u64,
    /// `query_max_bytes`: the most all responses to one of this node's queries may bring.
    pub query_max_bytes: u64,
}

impl Default for QuicSettings {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            bind: None,
            advertise: None,
            identity_file: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            response_max_bytes: limits.max_response,
            query_max_bytes: limits.max_query_total,
        }
    }
}

/// The default QUIC address: the gossip bind IP with a port the OS chooses (memberlist owns
/// the gossip port's UDP socket, and a fixed neighbour such as gossip + 1 would take the port a
/// second agent on the host is told to gossip on, e.g. Serf's habit of 7946, 7947, ...). The
/// advert in gossip carries the chosen port; set `quic_bind` for a fixed one (firewalls).
pub fn default_bind(gossip: SocketAddr) -> SocketAddr {
    SocketAddr::new(gossip.ip(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_bind_is_an_os_chosen_port_on_the_gossip_ip() {
        let b = |s: &str| default_bind(s.parse().unwrap()).to_string();
        assert_eq!(b("0.0.0.0:7946"), "0.0.0.0:0");
        assert_eq!(b("10.0.0.5:7946"), "10.0.0.5:0");
        assert_eq!(b("127.0.0.1:0"), "127.0.0.1:0");
    }
}
