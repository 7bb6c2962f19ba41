//! Membership configuration with memberlist's three profiles (`DefaultLANConfig`,
//! `DefaultWANConfig`, `DefaultLocalConfig`) and the formulas derived from them.

use crate::error::{Error, Result};
use crate::wire::WireConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// Everything the membership core needs to know about itself and its timings.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's unique name.
    pub name: String,
    /// The address peers reach us at (memberlist's advertise address and port).
    pub advertise: SocketAddr,
    /// Protocol version we speak (memberlist: 1..=5, Serf uses 2) and the range we accept.
    pub protocol_version: u8,
    /// Delegate (Serf) protocol versions: min, max, current.
    pub delegate_versions: [u8; 3],
    /// memberlist's `TCPTimeout`: how long a stream (push/pull, TCP fallback ping) may take
    /// before it is given up (LAN 10 s, WAN 30 s, local 1 s).
    pub tcp_timeout: Duration,
    /// memberlist's `IndirectChecks`: how many other nodes are asked to probe a node that
    /// missed its direct ack (LAN 3, local 1).
    pub indirect_checks: usize,
    /// memberlist's `RetransmitMult`: a broadcast is sent `retransmit_mult * ceil(log10(n + 1))`
    /// times (LAN 4, local 2).
    pub retransmit_mult: usize,
    /// memberlist's `SuspicionMult`: the shortest suspicion timeout is
    /// `suspicion_mult * max(1, log10(n)) * probe_interval` (LAN 4, WAN 6, local 3).
    pub suspicion_mult: u32,
    /// memberlist's `SuspicionMaxTimeoutMult`: a suspicion starts at this multiple of the
    /// shortest timeout and shrinks towards it as other nodes confirm it (6).
    pub suspicion_max_timeout_mult: u32,
    /// memberlist's `PushPullInterval`: how often full state is exchanged with a random node,
    /// scaled up past 32 nodes (LAN 30 s, WAN 60 s, local 15 s).
    pub push_pull_interval: Duration,
    /// memberlist's `ProbeTimeout`: how long to wait for a direct ack before probing
    /// indirectly; at most `probe_interval` (LAN 500 ms, WAN 3 s, local 200 ms).
    pub probe_timeout: Duration,
    /// memberlist's `ProbeInterval`: the time between failure-detection probes, stretched by
    /// the health score (LAN 1 s, WAN 5 s, local 1 s).
    pub probe_interval: Duration,
    /// memberlist's `DisableTcpPings`: skip the TCP ping sent beside indirect probes (false).
    pub disable_tcp_pings: bool,
    /// memberlist's `AwarenessMaxMultiplier`: the health score ranges over
    /// `0..awareness_max_multiplier`, and the probe interval is multiplied by score + 1 (8).
    pub awareness_max_multiplier: u32,
    /// memberlist's `GossipNodes`: how many random nodes each gossip round sends to (LAN 3,
    /// WAN 4).
    pub gossip_nodes: usize,
    /// memberlist's `GossipInterval`: the time between gossip rounds (LAN 200 ms, WAN 500 ms,
    /// local 100 ms).
    pub gossip_interval: Duration,
    /// memberlist's `GossipToTheDeadTime`: how long a dead node still receives gossip, and
    /// how long it is kept before it is reaped (LAN 30 s, WAN 60 s, local 15 s).
    pub gossip_to_the_dead_time: Duration,
    /// How long a dead node's name stays reserved before another address may claim it
    /// (memberlist's `DeadNodeReclaimTime`; zero = never reclaim).
    pub dead_node_reclaim_time: Duration,
    /// Budget for one UDP packet.
    pub udp_buffer_size: usize,
    /// Envelope settings (compression, encryption policy, label).
    pub wire: WireConfig,
}

/// The named timing profiles memberlist and Serf offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `DefaultLANConfig`: a local network ([`Config::lan`]).
    Lan,
    /// `DefaultWANConfig`: higher latency, more loss ([`Config::wan`]).
    Wan,
    /// `DefaultLocalConfig`: one host or a fast, reliable network ([`Config::local`]).
    Local,
}

impl std::str::FromStr for Profile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "lan" => Ok(Self::Lan),
            "wan" => Ok(Self::Wan),
            "local" => Ok(Self::Local),
            other => Err(Error::Config(format!(
                "unknown profile {other:?}: expected lan, wan or local"
            ))),
        }
    }
}

impl Config {
    /// memberlist's `DefaultLANConfig` for a node called `name` reachable at `advertise`.
    pub fn lan(name: impl Into<String>, advertise: SocketAddr) -> Self {
        Self {
            name: name.into(),
            advertise,
            protocol_version: 2,
            // Serf 0.9/0.10 advertise delegate versions min 2, max 5, current 4/5.
            delegate_versions: [2, 5, 5],
            tcp_timeout: Duration::from_secs(10),
            indirect_checks: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            push_pull_interval: Duration::from_secs(30),
            probe_timeout: Duration::from_millis(500),
            probe_interval: Duration::from_secs(1),
            disable_tcp_pings: false,
            awareness_max_multiplier: 8,
            gossip_nodes: 3,
            gossip_interval: Duration::from_millis(200),
            gossip_to_the_dead_time: Duration::from_secs(30),
            dead_node_reclaim_time: Duration::ZERO,
            udp_buffer_size: crate::wire::UDP_BUFFER_SIZE,
            wire: WireConfig::default(),
        }
    }

    /// memberlist's `DefaultWANConfig`.
    pub fn wan(name: impl Into<String>, advertise: SocketAddr) -> Self {
        Self {
            tcp_timeout: Duration::from_secs(30),
            suspicion_mult: 6,
            push_pull_interval: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(3),
            probe_interval: Duration::from_secs(5),
            gossip_nodes: 4,
            gossip_interval: Duration::from_millis(500),
            gossip_to_the_dead_time: Duration::from_secs(60),
            ..Self::lan(name, advertise)
        }
    }

    /// memberlist's `DefaultLocalConfig`.
    pub fn local(name: impl Into<String>, advertise: SocketAddr) -> Self {
        Self {
            tcp_timeout: Duration::from_secs(1),
            indirect_checks: 1,
            retransmit_mult: 2,
            suspicion_mult: 3,
            push_pull_interval: Duration::from_secs(15),
            probe_timeout: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            gossip_interval: Duration::from_millis(100),
            gossip_to_the_dead_time: Duration::from_secs(15),
            ..Self::lan(name, advertise)
        }
    }

    /// The profile by name.
    pub fn profile(profile: Profile, name: impl Into<String>, advertise: SocketAddr) -> Self {
        match profile {
            Profile::Lan => Self::lan(name, advertise),
            Profile::Wan => Self::wan(name, advertise),
            Profile::Local => Self::local(name, advertise),
        }
    }

    /// Checks ranges that would otherwise misbehave at run time.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::Config("node name must not be empty".into()));
        }
        if !(1..=5).contains(&self.protocol_version) {
            return Err(Error::Config(format!(
                "protocol version {} outside memberlist's 1..=5",
                self.protocol_version
            )));
        }
        if self.probe_interval.is_zero() || self.gossip_interval.is_zero() {
            return Err(Error::Config(
                "probe and gossip intervals must be positive".into(),
            ));
        }
        if self.probe_timeout > self.probe_interval {
            return Err(Error::Config(
                "probe timeout must not exceed the probe interval".into(),
            ));
        }
        if self.udp_buffer_size < 64 {
            return Err(Error::Config("udp buffer size below 64 bytes".into()));
        }
        Ok(())
    }
}

/// memberlist's `retransmitLimit`: `mult * ceil(log10(n + 1))`.
pub(crate) fn retransmit_limit(mult: usize, n: usize) -> usize {
    let scale = ((n as f64) + 1.0).log10().ceil() as usize;
    mult * scale
}

/// memberlist's `suspicionTimeout`: `mult * max(1, log10(max(1, n))) * interval`.
pub fn suspicion_timeout(mult: u32, n: usize, interval: Duration) -> Duration {
    let node_scale = (n.max(1) as f64).log10().max(1.0);
    // Like memberlist: keep three decimals of the scale, then integer nanosecond arithmetic.
    let milli_scale = (node_scale * 1000.0) as u128;
    let nanos = mult as u128 * milli_scale * interval.as_nanos() / 1000;
    Duration::from_nanos(nanos.min(u64::MAX as u128) as u64)
}

/// memberlist's `pushPullScale`: the interval doubles for every doubling above 32 nodes.
pub(crate) fn push_pull_scale(interval: Duration, n: usize) -> Duration {
    const THRESHOLD: usize = 32;
    if n <= THRESHOLD {
        return interval;
    }
    let multiplier = ((n as f64).log2() - (THRESHOLD as f64).log2()).ceil() as u32 + 1;
    interval * multiplier
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmit_limit_matches_memberlist() {
        assert_eq!(retransmit_limit(4, 0), 0);
        assert_eq!(retransmit_limit(4, 1), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 99), 8);
        assert_eq!(retransmit_limit(4, 100), 12);
    }

    #[test]
    fn suspicion_timeout_matches_memberlist_table() {
        let s = Duration::from_secs(1);
        assert_eq!(suspicion_timeout(4, 10, s), Duration::from_secs(4));
        assert_eq!(suspicion_timeout(4, 100, s), Duration::from_secs(8));
        assert_eq!(suspicion_timeout(4, 1000, s), Duration::from_secs(12));
        assert_eq!(suspicion_timeout(4, 1, s), Duration::from_secs(4));
    }

    #[test]
    fn push_pull_scale_doubles_past_32() {
        let i = Duration::from_secs(30);
        assert_eq!(push_pull_scale(i, 32), i);
        assert_eq!(push_pull_scale(i, 33), i * 2);
        assert_eq!(push_pull_scale(i, 64), i * 2);
        assert_eq!(push_pull_scale(i, 65), i * 3);
    }
}
