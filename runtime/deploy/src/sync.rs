//! [`Sync`]: whom to tell about deployments, and when. Sans-io: the agent feeds it the
//! current peers, the names of records it newly learned, and timeouts; it answers with
//! [`Action`]s the agent carries out over QUIC.
//!
//! Two mechanisms, as in epidemic dissemination:
//!
//! - Rumor mongering: a record new to this node is pushed once to `fanout` random peers
//!   (each node forwards what it newly learned, once). Quick, and bounded: at most `fanout`
//!   pushes per node per record. A few percent of nodes miss a rumor, by design.
//! - Anti-entropy: every `interval` (jittered, so nodes do not sync in lockstep) the node
//!   syncs with one random peer: it sends its set digest, the peer answers with its records
//!   if the digests differ, and the node pushes back what the peer lacks
//!   ([`DeploySet::newer_than`](crate::DeploySet::newer_than)). This catches everything the
//!   rumor missed, and nodes that were down or partitioned.
//!
//! Newly seen peers are synced soon, so a joiner learns the set at once: a node's first
//! peer list triggers one sync with a random peer, and a peer that appears later is synced
//! by each existing node with probability `fanout / peers`, so a joiner gets about `fanout`
//! syncs in all rather than one from every node in the cluster.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How [`Sync`] spreads deployments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    /// How many random peers a newly learned record is pushed to (and the expected number
    /// of existing nodes that sync with a newly seen peer).
    pub fanout: usize,
    /// The mean time between anti-entropy syncs (each is jittered by ±50%).
    pub interval: Duration,
    /// Seeds the peer choices and jitter (distinct per node, or nodes choose alike).
    pub seed: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            fanout: 3,
            interval: Duration::from_secs(10),
            seed: 0,
        }
    }
}

/// What the agent should send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<P> {
    /// Send these current records (by name) to `peer`.
    Push {
        /// Whom to send to.
        peer: P,
        /// Names of current records; a name whose record is gone since is skipped.
        records: Vec<String>,
    },
    /// Send my set digest to `peer`; it answers with its records if its digest differs,
    /// and I push back what it lacks.
    Sync {
        /// Whom to sync with.
        peer: P,
    },
}

/// The dissemination state machine of one node, generic over the peer id `P` (the agent
/// uses node names). Calls: [`handle_peers`](Self::handle_peers) whenever membership
/// changes, [`handle_learned`](Self::handle_learned) after every merge that
/// [is new](crate::Merge::is_new), [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout); drain [`poll_action`](Self::poll_action) after each.
#[derive(Debug)]
pub struct Sync<P> {
    config: SyncConfig,
    rng: StdRng,
    /// The current peers, sorted and deduplicated, so random choices are reproducible.
    peers: Vec<P>,
    /// Whether a non-empty peer list was seen yet (the first one triggers a sync).
    started: bool,
    next_sync: Instant,
    actions: VecDeque<Action<P>>,
}

impl<P: Clone + Ord + std::hash::Hash> Sync<P> {
    /// A node with no peers yet; its first anti-entropy sync falls at a random point within
    /// the first `interval`, which spreads a cluster started at once.
    pub fn new(config: SyncConfig, now: Instant) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let first = config.interval.mul_f64(rng.gen::<f64>());
        Sync {
            config,
            rng,
            peers: Vec::new(),
            started: false,
            next_sync: now + first,
            actions: VecDeque::new(),
        }
    }

    /// The current peers (alive, not this node), replacing the previous list.
    pub fn handle_peers(&mut self, now: Instant, peers: impl IntoIterator<Item = P>) {
        let mut next: Vec<P> = peers.into_iter().collect();
        next.sort();
        next.dedup();
        if next.is_empty() {
            self.peers = next;
            return;
        }
        if self.peers.is_empty() && self.next_sync < now {
            // Peers after a spell without any: the overdue sync waits a fresh interval.
            self.next_sync = now + self.jittered();
        }
        if !self.started {
            self.started = true;
            let i = self.rng.gen_range(0..next.len());
            self.queue_sync(next[i].clone());
        } else {
            self.sync_some_new(&next);
        }
        self.peers = next;
    }

    /// Each peer in `next` that is not in the current list is synced with probability
    /// `fanout / peers`: about `fanout` syncs reach a joiner across the whole cluster.
    fn sync_some_new(&mut self, next: &[P]) {
        let p = (self.config.fanout as f64 / next.len() as f64).min(1.0);
        for peer in next {
            if self.peers.binary_search(peer).is_err() && self.rng.gen_bool(p) {
                self.queue_sync(peer.clone());
            }
        }
    }

    /// A record named `name` is new to this node (deployed here, or merged from a peer as
    /// [`Merge::Added`](crate::Merge::Added) or [`Merge::Replaced`](crate::Merge::Replaced)):
    /// push it to `fanout` random peers, once. `now` is unused today; every input takes it.
    pub fn handle_learned(&mut self, now: Instant, name: &str) {
        let _ = now;
        let k = self.config.fanout.min(self.peers.len());
        let chosen = rand::seq::index::sample(&mut self.rng, self.peers.len(), k);
        for i in chosen {
            let peer = self.peers[i].clone();
            self.queue_push(peer, name);
        }
    }

    /// Runs the anti-entropy timer: when due, one sync with a random peer.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_sync {
            return;
        }
        self.next_sync = now + self.jittered();
        if self.peers.is_empty() {
            return;
        }
        let i = self.rng.gen_range(0..self.peers.len());
        self.queue_sync(self.peers[i].clone());
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next; `None` while there are
    /// no peers (there is nobody to sync with until [`handle_peers`](Self::handle_peers)).
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.peers.is_empty()).then_some(self.next_sync)
    }

    /// The next thing to send, oldest first.
    pub fn poll_action(&mut self) -> Option<Action<P>> {
        self.actions.pop_front()
    }

    /// The current peers, sorted.
    pub fn peers(&self) -> &[P] {
        &self.peers
    }

    /// `interval` scaled by a random factor in [0.5, 1.5).
    fn jittered(&mut self) -> Duration {
        self.config.interval.mul_f64(self.rng.gen_range(0.5..1.5))
    }

    /// Queues a sync unless one to the same peer is already waiting.
    fn queue_sync(&mut self, peer: P) {
        let waiting = self
            .actions
            .iter()
            .any(|a| matches!(a, Action::Sync { peer: p } if *p == peer));
        if !waiting {
            self.actions.push_back(Action::Sync { peer });
        }
    }

    /// Adds `name` to a push already waiting for `peer`, or queues a new one: records
    /// learned together travel together.
    fn queue_push(&mut self, peer: P, name: &str) {
        for action in &mut self.actions {
            if let Action::Push { peer: p, records } = action {
                if *p == peer {
                    if !records.iter().any(|r| r == name) {
                        records.push(name.to_string());
                    }
                    return;
                }
            }
        }
        self.actions.push_back(Action::Push {
            peer,
            records: vec![name.to_string()],
        });
    }
}

#[cfg(test)]
mod tests;
