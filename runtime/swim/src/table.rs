//! The member tables of the cores. [`Names`] gives every member name a small id, shared by
//! the membership core and the Serf layer of one node: the name's bytes are stored once, in
//! one arena (no heap block per name), and both layers keep their per-member state in an
//! [`IdTable`], a vector indexed by that id (no name and no hash index of their own). At N
//! members on every one of N nodes this is what bounds memory.

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

/// A name id: stable while anyone holds the name; reused after the last release.
pub type NameId = u32;

/// Where one name lives in the arena, and how many holders it has (0: the id is free).
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
    refs: u32,
}

/// Reference-counted name ids over one string arena, with a hash index from name to id.
#[derive(Debug, Clone)]
pub struct Names {
    arena: String,
    spans: Vec<Span>,
    free: Vec<NameId>,
    index: HashTable<NameId>,
    /// foldhash, randomly seeded per registry: several lookups per member entry merged make
    /// SipHash a tenth of a push/pull's cost at scale, and a seed still keeps crafted names
    /// from colliding on purpose.
    hasher: DefaultHashBuilder,
    /// Arena bytes of released names, reclaimed by compaction.
    garbage: usize,
}

impl Default for Names {
    fn default() -> Self {
        Self::new()
    }
}

impl Names {
    /// No names.
    pub fn new() -> Self {
        Self {
            arena: String::new(),
            spans: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            garbage: 0,
        }
    }

    fn text(arena: &str, s: Span) -> &str {
        &arena[s.start as usize..(s.start + s.len) as usize]
    }

    /// The id of `name`, if anyone holds it.
    pub fn find(&self, name: &str) -> Option<NameId> {
        let (arena, spans) = (&self.arena, &self.spans);
        self.index
            .find(self.hasher.hash_one(name), |&i| {
                Self::text(arena, spans[i as usize]) == name
            })
            .copied()
    }

    /// The name of a held id ("" for a free one).
    pub fn resolve(&self, id: NameId) -> &str {
        match self.spans.get(id as usize) {
            Some(s) if s.refs > 0 => Self::text(&self.arena, *s),
            _ => "",
        }
    }

    /// Takes one hold on `name`, adding it if nobody held it; returns its id.
    pub fn acquire(&mut self, name: &str) -> NameId {
        if let Some(id) = self.find(name) {
            self.spans[id as usize].refs += 1;
            return id;
        }
        if self.garbage > 4096 && self.garbage > self.arena.len() / 2 {
            self.compact();
        }
        let start = u32::try_from(self.arena.len()).expect("name arena under 4 GiB");
        let len = u32::try_from(name.len()).expect("name under 4 GiB");
        if self.arena.capacity() - self.arena.len() < name.len() {
            // Grow by an eighth: the slack of doubling would be paid N times over.
            let more = (self.arena.len() / 8).max(name.len()).max(64);
            self.arena.reserve_exact(more);
        }
        self.arena.push_str(name);
        let span = Span {
            start,
            len,
            refs: 1,
        };
        let id = match self.free.pop() {
            Some(i) => {
                self.spans[i as usize] = span;
                i
            }
            None => {
                if self.spans.len() == self.spans.capacity() {
                    let more = (self.spans.len() / 8).max(8);
                    self.spans.reserve_exact(more);
                }
                self.spans.push(span);
                (self.spans.len() - 1) as NameId
            }
        };
        let (arena, spans, hasher) = (&self.arena, &self.spans, &self.hasher);
        self.index.insert_unique(hasher.hash_one(name), id, |&i| {
            hasher.hash_one(Self::text(arena, spans[i as usize]))
        });
        id
    }

    /// Takes one more hold on a held id.
    pub fn retain(&mut self, id: NameId) {
        let s = &mut self.spans[id as usize];
        assert!(s.refs > 0, "retain of a free name id");
        s.refs += 1;
    }

    /// Gives back one hold; the last one frees the id (and its name).
    pub fn release(&mut self, id: NameId) {
        let s = self.spans[id as usize];
        assert!(s.refs > 0, "release of a free name id");
        if s.refs > 1 {
            self.spans[id as usize].refs -= 1;
            return;
        }
        let (arena, hasher) = (&self.arena, &self.hasher);
        if let Ok(entry) = self
            .index
            .find_entry(hasher.hash_one(Self::text(arena, s)), |&i| i == id)
        {
            entry.remove();
        }
        self.spans[id as usize] = Span::default();
        self.garbage += s.len as usize;
        self.free.push(id);
        if self.free.len() == self.spans.len() {
            *self = Self {
                hasher: std::mem::take(&mut self.hasher),
                ..Self::new()
            };
        }
    }

    /// How many holds `id` has (0: free).
    pub fn holds(&self, id: NameId) -> u32 {
        self.spans.get(id as usize).map_or(0, |s| s.refs)
    }

    /// Number of held names.
    pub fn len(&self) -> usize {
        self.spans.len() - self.free.len()
    }

    /// True when no name is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rewrites the arena without the released names (ids stay).
    fn compact(&mut self) {
        let mut arena = String::with_capacity(self.arena.len() - self.garbage + 64);
        for s in self.spans.iter_mut().filter(|s| s.refs > 0) {
            let start = arena.len() as u32;
            arena.push_str(Self::text(&self.arena, *s));
            s.start = start;
        }
        self.arena = arena;
        self.garbage = 0;
    }

    /// Heap bytes of the registry (arena, spans, free list, index).
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + crate::heap::vec(&self.spans)
            + crate::heap::vec(&self.free)
            + crate::heap::table::<NameId>(self.index.capacity())
    }
}

/// Per-member state indexed by [`NameId`]: a vector of optional entries, no names.
#[derive(Debug, Clone)]
pub struct IdTable<T> {
    slots: Vec<Option<T>>,
    len: usize,
}

impl<T> Default for IdTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> IdTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            slots: Vec::new(),
            len: 0,
        }
    }

    /// The entry of `id`.
    pub fn get(&self, id: NameId) -> Option<&T> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    /// The entry of `id`, mutably.
    pub fn get_mut(&mut self, id: NameId) -> Option<&mut T> {
        self.slots.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// Whether `id` has an entry.
    pub fn contains(&self, id: NameId) -> bool {
        self.get(id).is_some()
    }

    /// Sets the entry of `id`, returning the one it replaces.
    pub fn insert(&mut self, id: NameId, t: T) -> Option<T> {
        let i = id as usize;
        if i >= self.slots.len() {
            if i >= self.slots.capacity() {
                // Grow by an eighth: the slack of doubling would be paid N times over.
                let need = i + 1 - self.slots.len();
                let more = need.max(self.slots.len() / 8).max(8);
                self.slots.reserve_exact(more);
            }
            self.slots.resize_with(i + 1, || None);
        }
        let old = self.slots[i].replace(t);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes and returns the entry of `id`.
    pub fn remove(&mut self, id: NameId) -> Option<T> {
        let old = self.slots.get_mut(id as usize).and_then(Option::take);
        if old.is_some() {
            self.len -= 1;
            if self.len == 0 {
                self.slots = Vec::new();
            } else {
                while matches!(self.slots.last(), Some(None)) {
                    self.slots.pop();
                }
            }
        }
        old
    }

    /// Every entry with its id, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (NameId, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|t| (i as NameId, t)))
    }

    /// Every entry with its id, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (NameId, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.as_mut().map(|t| (i as NameId, t)))
    }

    /// Every id with an entry, ascending.
    pub fn ids(&self) -> impl Iterator<Item = NameId> + '_ {
        self.iter().map(|(i, _)| i)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes of the table itself, not of what entries own.
    pub fn heap_bytes(&self) -> usize {
        crate::heap::vec(&self.slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shared_counted_and_reused() {
        let mut n = Names::new();
        let a = n.acquire("alpha");
        let b = n.acquire("beta");
        assert_ne!(a, b);
        // A second holder of the same name gets the same id.
        assert_eq!(n.acquire("alpha"), a);
        assert_eq!(n.holds(a), 2);
        assert_eq!((n.resolve(a), n.resolve(b)), ("alpha", "beta"));
        assert_eq!(n.find("beta"), Some(b));
        assert_eq!(n.find("gamma"), None);
        n.release(a);
        assert_eq!(n.find("alpha"), Some(a), "one hold left");
        n.release(a);
        assert_eq!(n.find("alpha"), None);
        assert_eq!(n.resolve(a), "");
        assert_eq!(n.len(), 1);
        // The freed id is reused for the next new name.
        let c = n.acquire("gamma");
        assert_eq!(c, a);
        assert_eq!(n.resolve(c), "gamma");
        assert_eq!(n.resolve(b), "beta");
        n.retain(b);
        n.release(b);
        assert_eq!(n.find("beta"), Some(b));
    }

    #[test]
    fn compaction_keeps_every_held_name() {
        let mut n = Names::new();
        let ids: Vec<NameId> = (0..5000).map(|i| n.acquire(&format!("node-{i}"))).collect();
        // Free three names in four: well over 4 KiB and half the arena of garbage, so the
        // next new name compacts.
        for (i, &id) in ids.iter().enumerate() {
            if i % 4 != 0 {
                n.release(id);
            }
        }
        let before = n.arena.len();
        let extra = n.acquire("a-new-name");
        assert!(n.arena.len() < before, "compacted");
        for (i, &id) in ids.iter().enumerate() {
            if i % 4 == 0 {
                let name = format!("node-{i}");
                assert_eq!(n.resolve(id), name);
                assert_eq!(n.find(&name), Some(id));
            } else {
                assert_eq!(n.find(&format!("node-{i}")), None);
            }
        }
        assert_eq!(n.resolve(extra), "a-new-name");
        assert_eq!(n.len(), 1251);
        // Releasing everything empties the registry.
        for (i, &id) in ids.iter().enumerate() {
            if i % 4 == 0 {
                n.release(id);
            }
        }
        n.release(extra);
        assert!(n.is_empty());
        assert_eq!(n.heap_bytes(), 0);
        assert_eq!(n.acquire("x"), 0);
    }

    #[test]
    fn id_table_sets_gets_and_removes() {
        let mut t: IdTable<u32> = IdTable::new();
        assert_eq!(t.insert(5, 50), None);
        assert_eq!(t.insert(2, 20), None);
        assert_eq!(t.insert(5, 55), Some(50));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(5), Some(&55));
        assert_eq!(t.get(3), None);
        assert_eq!(t.get(99), None);
        *t.get_mut(2).unwrap() += 1;
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![(2, &21), (5, &55)]);
        assert_eq!(t.remove(5), Some(55));
        assert_eq!(t.remove(5), None);
        assert_eq!(t.ids().collect::<Vec<_>>(), vec![2]);
        assert!(t.contains(2) && !t.contains(5));
        assert_eq!(t.remove(2), Some(21));
        assert!(t.is_empty());
        assert_eq!(t.heap_bytes(), 0);
    }
}
