//! `NamedTable`: the member tables of the cores. Entries live in one vector and are found by
//! the name they carry, so a member's name is stored once (no second copy as a map key, no
//! third in the probe order, which holds slot ids), and the vector grows by an eighth rather
//! than doubling. At N members on every one of N nodes this is what bounds memory.

use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};

/// An entry that knows its own name.
pub trait Named {
    fn name(&self) -> &str;
}

/// A slot id: stable while the entry stays; reused after [`NamedTable::remove`].
pub type SlotId = u32;

/// A table of named entries: a vector of slots and a hash index of slot ids.
#[derive(Debug, Clone)]
pub struct NamedTable<T> {
    slots: Vec<Option<T>>,
    free: Vec<SlotId>,
    index: HashTable<SlotId>,
    hasher: RandomState,
    len: usize,
}

impl<T: Named> Default for NamedTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Named> NamedTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: RandomState::new(),
            len: 0,
        }
    }

    fn find(&self, name: &str) -> Option<SlotId> {
        let slots = &self.slots;
        self.index
            .find(self.hasher.hash_one(name), |&i| {
                slots[i as usize].as_ref().is_some_and(|t| t.name() == name)
            })
            .copied()
    }

    /// The slot id of `name`.
    pub fn id(&self, name: &str) -> Option<SlotId> {
        self.find(name)
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.find(name)
            .and_then(|i| self.slots[i as usize].as_ref())
    }

    /// The entry named `name`, mutably. Its name must not change.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut T> {
        let i = self.find(name)?;
        self.slots[i as usize].as_mut()
    }

    /// Whether an entry is named `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// The entry in slot `id` (None if the slot is empty).
    pub fn at(&self, id: SlotId) -> Option<&T> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    /// Inserts `t`, replacing (and returning) an entry of the same name, which keeps its slot.
    pub fn insert(&mut self, t: T) -> (SlotId, Option<T>) {
        if let Some(i) = self.find(t.name()) {
            let old = self.slots[i as usize].replace(t);
            return (i, old);
        }
        let id = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(t);
                i
            }
            None => {
                if self.slots.len() == self.slots.capacity() {
                    // Grow by an eighth: the slack of doubling would be paid N times over.
                    let more = (self.slots.len() / 8).max(8);
                    self.slots.reserve_exact(more);
                }
                self.slots.push(Some(t));
                (self.slots.len() - 1) as SlotId
            }
        };
        let hash = self
            .hasher
            .hash_one(self.slots[id as usize].as_ref().expect("just set").name());
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, id, |&i| {
            hasher.hash_one(slots[i as usize].as_ref().expect("indexed slot").name())
        });
        self.len += 1;
        (id, None)
    }

    /// Removes and returns the entry named `name`.
    pub fn remove(&mut self, name: &str) -> Option<T> {
        let hash = self.hasher.hash_one(name);
        let slots = &self.slots;
        let entry = self
            .index
            .find_entry(hash, |&i| {
                slots[i as usize].as_ref().is_some_and(|t| t.name() == name)
            })
            .ok()?;
        let (i, _) = entry.remove();
        self.free.push(i);
        self.len -= 1;
        let t = self.slots[i as usize].take();
        if self.len == 0 {
            self.slots.clear();
            self.free.clear();
        }
        t
    }

    /// Keeps only the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let gone: Vec<String> = self
            .iter()
            .filter(|t| !keep(t))
            .map(|t| t.name().to_owned())
            .collect();
        for name in gone {
            self.remove(&name);
        }
    }

    /// Every entry, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }

    /// Every entry, mutably (names must not change).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().flatten()
    }

    /// Every occupied slot id, ascending.
    pub fn ids(&self) -> impl Iterator<Item = SlotId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as SlotId)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes of the table itself (slots, free list, index), not of what entries own.
    pub fn heap_bytes(&self) -> usize {
        crate::heap::vec(&self.slots)
            + crate::heap::vec(&self.free)
            + crate::heap::table::<SlotId>(self.index.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct E(String, u32);
    impl Named for E {
        fn name(&self) -> &str {
            &self.0
        }
    }

    #[test]
    fn insert_find_replace_remove_reuse() {
        let mut t = NamedTable::new();
        for i in 0..100 {
            let (id, old) = t.insert(E(format!("n{i}"), i));
            assert_eq!(id, i);
            assert!(old.is_none());
        }
        assert_eq!(t.len(), 100);
        assert_eq!(t.get("n42"), Some(&E("n42".into(), 42)));
        let (id, old) = t.insert(E("n42".into(), 7));
        assert_eq!((id, old), (42, Some(E("n42".into(), 42))));
        t.get_mut("n42").unwrap().1 = 9;
        assert_eq!(t.at(42), Some(&E("n42".into(), 9)));
        assert_eq!(t.remove("n42"), Some(E("n42".into(), 9)));
        assert!(t.get("n42").is_none() && t.at(42).is_none());
        assert_eq!(t.remove("n42"), None);
        assert_eq!(t.len(), 99);
        // The freed slot is reused and the new name is found there.
        assert_eq!(t.insert(E("x".into(), 1)).0, 42);
        assert_eq!(t.get("x"), Some(&E("x".into(), 1)));
        t.retain(|e| e.1 % 2 == 0);
        // 0..100 has 50 even values; n42 (even) is gone and x (odd) goes now.
        assert_eq!(t.len(), 49);
        assert!(t.iter().all(|e| e.1 % 2 == 0));
        assert!(t.ids().all(|i| t.at(i).is_some()));
        // Every survivor is still found by name.
        let names: Vec<String> = t.iter().map(|e| e.0.clone()).collect();
        for n in names {
            assert_eq!(t.get(&n).map(|e| e.0.as_str()), Some(n.as_str()));
        }
    }
}
