//! Anti-entropy (memberlist's push/pull): the periodic exchange with one random peer, our
//! full state, merging a remote one, and the protocol version check.

use super::{Event, JoinId, StreamPurpose, Swim};
use crate::error::{Error, Result};
use crate::wire::{Alive, Dead, NodeStateKind, PushNodeRef, PushNodeState, PushPull, Suspect};
use std::net::SocketAddr;
use std::time::Instant;

impl Swim {
    pub(super) fn periodic_push_pull(&mut self, now: Instant) {
        let me = self.config.name.clone();
        let peers = self.k_random_nodes(1, |name, e, _| {
            name == me || e.state != NodeStateKind::Alive
        });
        if let Some(peer) = peers.into_iter().next() {
            self.start_push_pull(now, peer.addr, None);
        }
    }

    pub(super) fn start_push_pull(&mut self, now: Instant, dst: SocketAddr, join: Option<JoinId>) {
        let payload = self.local_state(join.is_some(), true);
        self.open_stream(
            now,
            dst,
            payload,
            true,
            StreamPurpose::PushPull { join, dst },
        );
    }

    /// Our side of a push/pull: every node we know, then the user state. `dialing` says
    /// whether we opened the connection (only that side writes the label header).
    pub(super) fn local_state(&mut self, join: bool, dialing: bool) -> Vec<u8> {
        // Encoded straight from the table: N members would otherwise be copied into owned
        // states (four heap blocks each) only to be written out and dropped.
        let names = &self.nodes.names;
        let mut nodes: Vec<PushNodeRef<'_>> = self
            .nodes
            .table
            .iter()
            .map(|(id, e)| PushNodeRef {
                name: names.resolve(id),
                addr: e.addr.ip_bytes(),
                port: e.addr.port(),
                meta: &e.meta,
                incarnation: e.incarnation,
                state: e.state,
                vsn: &e.vsn,
            })
            .collect();
        nodes.sort_unstable_by(|a, b| a.name.cmp(b.name));
        self.codec
            .seal_push_pull(join, &nodes, &self.user_state, dialing, &mut self.rng)
    }

    pub(super) fn merge_remote_state(&mut self, now: Instant, pp: PushPull) -> Result<()> {
        self.verify_protocol(&pp.nodes)?;
        for r in pp.nodes {
            match r.state {
                NodeStateKind::Alive => {
                    let a = Alive {
                        incarnation: r.incarnation,
                        node: r.name,
                        addr: r.addr,
                        port: r.port,
                        meta: r.meta,
                        vsn: r.vsn,
                    };
                    self.alive_node(now, a, false);
                }
                NodeStateKind::Left => {
                    let d = Dead {
                        incarnation: r.incarnation,
                        node: r.name.clone(),
                        from: r.name,
                    };
                    self.dead_node(now, d);
                }
                // Dead and suspect both become a local suspicion: we let our own probes decide.
                NodeStateKind::Dead | NodeStateKind::Suspect => {
                    let s = Suspect {
                        incarnation: r.incarnation,
                        node: r.name,
                        from: self.config.name.clone(),
                    };
                    self.suspect_node(now, s);
                }
            }
        }
        if !pp.user_state.is_empty() {
            self.events.push_back(Event::RemoteState {
                join: pp.join,
                state: pp.user_state,
            });
        }
        Ok(())
    }

    /// memberlist's `verifyProtocol`: the range everyone understands comes from the alive
    /// nodes only (theirs and ours); then every node's current protocol and delegate versions,
    /// whatever its state, must fall inside it. Entries without versions are skipped.
    fn verify_protocol(&self, remote: &[PushNodeState]) -> Result<()> {
        let remote_vsn = |r: &PushNodeState| {
            let mut v = [0u8; 6];
            if r.vsn.len() >= 6 {
                v.copy_from_slice(&r.vsn[..6]);
            }
            (r.state, v)
        };
        let vsns: Vec<(NodeStateKind, [u8; 6])> = remote
            .iter()
            .map(remote_vsn)
            .chain(self.nodes.iter().map(|(_, e)| (e.state, e.vsn)))
            .filter(|(_, v)| !(v[0] == 0 && v[1] == 0))
            .collect();
        let (mut maxpmin, mut minpmax, mut maxdmin, mut mindmax) = (0u8, u8::MAX, 0u8, u8::MAX);
        for (_, v) in vsns.iter().filter(|(s, _)| *s == NodeStateKind::Alive) {
            maxpmin = maxpmin.max(v[0]);
            minpmax = minpmax.min(v[1]);
            maxdmin = maxdmin.max(v[3]);
            mindmax = mindmax.min(v[4]);
        }
        for (_, v) in &vsns {
            if v[2] < maxpmin || v[2] > minpmax {
                return Err(Error::Remote(format!(
                    "node speaks protocol {} outside the cluster's range [{maxpmin}, {minpmax}]",
                    v[2]
                )));
            }
            if v[5] < maxdmin || v[5] > mindmax {
                return Err(Error::Remote(format!(
                    "node speaks delegate protocol {} outside the cluster's range [{maxdmin}, {mindmax}]",
                    v[5]
                )));
            }
        }
        Ok(())
    }
}
