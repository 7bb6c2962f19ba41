//! The member table: compact entries by name id, the names in the registry shared with the
//! layer above, members forgotten while still named, and when gone members went.

use super::Member;
use crate::compact::{Addr, Bytes};
use crate::table::{IdTable, NameId, Names};
use crate::wire::NodeStateKind;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One member as the table stores it: compact fields, the name kept by [`Names`].
#[derive(Debug, Clone)]
pub(super) struct NodeEntry {
    pub(super) addr: Addr,
    pub(super) meta: Bytes,
    pub(super) incarnation: u32,
    pub(super) state: NodeStateKind,
    /// pmin, pmax, pcur, dmin, dmax, dcur
    pub(super) vsn: [u8; 6],
}

impl NodeEntry {
    pub(super) fn dead_or_left(&self) -> bool {
        matches!(self.state, NodeStateKind::Dead | NodeStateKind::Left)
    }

    pub(super) fn member(&self, name: &str) -> Member {
        Member {
            name: name.to_owned(),
            addr: self.addr.socket_addr(),
            meta: self.meta.to_vec(),
            incarnation: self.incarnation,
            state: self.state,
            vsn: self.vsn,
        }
    }
}

/// The member table: names in a shared [`Names`] registry, entries by name id. Entries the
/// core forgets while the layer above still holds their name (Serf keeps failed and left
/// members far longer than memberlist does) move to `retired`, where only
/// [`Swim::member_info`](super::Swim::member_info) sees them.
#[derive(Debug, Default)]
pub(super) struct Nodes {
    pub(super) names: Names,
    pub(super) table: IdTable<NodeEntry>,
    pub(super) retired: HashMap<NameId, NodeEntry>,
    /// When each dead or left node changed to that state (memberlist's `StateChange`, which
    /// is only ever read for those states): beside the table, since only the few gone nodes
    /// need it.
    pub(super) down_since: HashMap<NameId, Instant>,
}

impl Nodes {
    pub(super) fn id(&self, name: &str) -> Option<NameId> {
        self.names.find(name).filter(|&id| self.table.contains(id))
    }

    pub(super) fn get(&self, name: &str) -> Option<&NodeEntry> {
        self.table.get(self.names.find(name)?)
    }

    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut NodeEntry> {
        self.table.get_mut(self.names.find(name)?)
    }

    pub(super) fn at(&self, id: NameId) -> Option<&NodeEntry> {
        self.table.get(id)
    }

    pub(super) fn name(&self, id: NameId) -> &str {
        self.names.resolve(id)
    }

    pub(super) fn member(&self, id: NameId) -> Option<Member> {
        self.table.get(id).map(|e| e.member(self.names.resolve(id)))
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (NameId, &NodeEntry)> {
        self.table.iter()
    }

    pub(super) fn ids(&self) -> impl Iterator<Item = NameId> + '_ {
        self.table.ids()
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Adds an entry for a name not in the table.
    pub(super) fn insert(&mut self, name: &str, e: NodeEntry) -> NameId {
        let id = self.names.acquire(name);
        self.retired.remove(&id);
        let old = self.table.insert(id, e);
        debug_assert!(old.is_none(), "insert of a present node");
        id
    }

    /// Records a change of `id`'s state at `now`.
    pub(super) fn state_changed(&mut self, id: NameId, now: Instant) {
        if self.table.get(id).is_some_and(NodeEntry::dead_or_left) {
            self.down_since.insert(id, now);
        } else {
            self.down_since.remove(&id);
        }
    }

    /// How long a dead or left node has been so (zero for a live one).
    pub(super) fn down_for(&self, id: NameId, now: Instant) -> Duration {
        self.down_since
            .get(&id)
            .map_or(Duration::ZERO, |&t| now.saturating_duration_since(t))
    }

    pub(super) fn remove(&mut self, name: &str) {
        let Some(id) = self.id(name) else { return };
        self.down_since.remove(&id);
        let e = self.table.remove(id).expect("present");
        if self.names.holds(id) > 1 {
            self.retired.insert(id, e);
        }
        self.names.release(id);
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
            + crate::heap::hash_map(&self.retired)
            + crate::heap::hash_map(&self.down_since)
            + self
                .retired
                .values()
                .map(|e| e.meta.heap_bytes())
                .sum::<usize>()
    }
}
