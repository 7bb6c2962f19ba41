//! Views of the core: its configuration, the members, the names shared with the layer above
//! (and the holds it takes on them), the health score, the keyring (mutable, for key
//! rotation), the heap accounting of the scale bench, and a testing hook that drops queued
//! broadcasts.

use super::{Member, MemberInfo, Swim};
use crate::config::Config;
use crate::keyring::Keyring;
use crate::table::NameId;
use std::time::Instant;

impl Swim {
    /// Where this core's heap goes, per table (estimated from capacities; the scale bench
    /// divides by the member count for the cost of one member entry).
    pub fn heap_breakdown(&self) -> Vec<crate::heap::Line> {
        use crate::heap;
        let meta: usize = self.nodes.iter().map(|(_, e)| e.meta.heap_bytes()).sum();
        let susp: usize = self.suspicions.keys().map(|k| k.capacity()).sum();
        vec![
            ("swim: member table (slots)", self.nodes.heap_bytes()),
            (
                "swim+serf: member names (shared registry)",
                self.nodes.names.heap_bytes(),
            ),
            ("swim: member meta beyond 7 bytes (Serf tags)", meta),
            ("swim: probe order (slot ids)", heap::vec(&self.order)),
            ("swim: suspicions", heap::hash_map(&self.suspicions) + susp),
            (
                "swim: broadcast queues",
                self.broadcasts.heap_bytes() + self.user_broadcasts.heap_bytes(),
            ),
            (
                "swim: pending outputs",
                heap::deque(&self.events) + heap::deque(&self.transmits),
            ),
        ]
    }

    /// Drops every queued membership broadcast (alive, suspect and dead messages; user
    /// broadcasts stay). For simulations that start from a converged cluster: after a
    /// bootstrap push/pull every node would otherwise re-gossip all N members it just learned
    /// (memberlist does after a real join), although every node already knows them.
    #[cfg(feature = "testing")]
    pub fn clear_broadcasts(&mut self) {
        self.broadcasts.clear();
        while self.broadcasts.poll_finished().is_some() {}
    }

    /// This node's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This node as the cluster sees it.
    pub fn local(&self) -> Member {
        self.member(&self.config.name)
            .expect("the local node is never removed")
    }

    /// Every known member, including dead and left ones not yet reaped (built on demand:
    /// the table stores members compactly).
    pub fn members(&self) -> impl Iterator<Item = Member> + '_ {
        self.nodes
            .iter()
            .map(|(id, e)| e.member(self.nodes.name(id)))
    }

    /// A member by name.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.nodes.member(self.nodes.id(name)?)
    }

    /// Members that are alive or suspect (memberlist's `NumMembers` counts these).
    pub fn num_alive(&self) -> usize {
        self.nodes.iter().filter(|(_, e)| !e.dead_or_left()).count()
    }

    // ----- names shared with the layer above -------------------------------------------

    /// The id of a name the table or the layer above holds.
    pub fn name_id(&self, name: &str) -> Option<NameId> {
        self.nodes.names.find(name)
    }

    /// The name of a held id.
    pub fn name_of(&self, id: NameId) -> &str {
        self.nodes.names.resolve(id)
    }

    /// Takes a hold on `name` for the layer above, which keeps per-member state by this id
    /// (Serf's member table); while held, the id stays and [`Swim::member_info`] keeps the
    /// member's last fields even after this core forgets the member.
    pub fn hold_name(&mut self, name: &str) -> NameId {
        self.nodes.names.acquire(name)
    }

    /// Gives back a hold taken with [`Swim::hold_name`].
    pub fn release_name(&mut self, id: NameId) {
        self.nodes.names.release(id);
        if self.nodes.names.holds(id) == 0 {
            self.nodes.retired.remove(&id);
        }
    }

    /// The fields of member `id`: as the table has them, or, for a member this core has
    /// forgotten while the layer above holds its name, as they were when it was forgotten.
    pub fn member_info(&self, id: NameId) -> Option<MemberInfo<'_>> {
        let e = self
            .nodes
            .table
            .get(id)
            .or_else(|| self.nodes.retired.get(&id))?;
        Some(MemberInfo {
            name: self.nodes.names.resolve(id),
            addr: e.addr.socket_addr(),
            meta: &e.meta,
            incarnation: e.incarnation,
            state: e.state,
            vsn: e.vsn,
        })
    }

    /// True when the next `handle_timeout(now)` starts a periodic push/pull (so a layer above
    /// knows to refresh its user state first, instead of re-encoding it on every tick).
    pub fn push_pull_due(&self, now: Instant) -> bool {
        self.push_pull_staggered && now >= self.next_push_pull
    }

    /// memberlist's health score (0 = healthy, up to `awareness_max_multiplier - 1`).
    pub fn health_score(&self) -> u32 {
        self.awareness
    }

    /// The keyring, if encryption is on.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.codec.keyring.as_ref()
    }

    /// Mutable access to the keyring, for key rotation.
    pub fn keyring_mut(&mut self) -> Option<&mut Keyring> {
        self.codec.keyring.as_mut()
    }

    /// memberlist's `estNumNodes`: the node count used by the scaling formulas.
    pub(super) fn est_num_nodes(&self) -> usize {
        self.nodes.len()
    }
}
