//! Heap bytes held by the cores' tables, estimated from their capacities: the scale bench's
//! per-layer breakdown of what one member entry costs (the bench checks the sum against a
//! counting allocator).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::mem::size_of;

/// Bytes of a hash table's own allocation (buckets plus control bytes), not of what its
/// entries point to.
pub fn hash_map<K, V, S>(m: &HashMap<K, V, S>) -> usize {
    table::<(K, V)>(m.capacity())
}

/// Same for a table of `cap` capacity holding `T` (hashbrown: 7/8 load, power-of-two
/// buckets, one control byte per bucket plus one group).
pub fn table<T>(cap: usize) -> usize {
    if cap == 0 {
        return 0;
    }
    let buckets = if cap < 8 { cap + 1 } else { cap * 8 / 7 };
    buckets * size_of::<T>() + buckets + 16
}

/// Bytes of a B-tree's nodes (11 slots per node; about 2/3 full after random inserts).
pub fn btree_map<K, V>(m: &BTreeMap<K, V>) -> usize {
    if m.is_empty() {
        return 0;
    }
    let nodes = m.len().div_ceil(7);
    nodes * (16 + 11 * (size_of::<K>() + size_of::<V>()))
}

/// Bytes of a vector's buffer.
pub fn vec<T>(v: &Vec<T>) -> usize {
    v.capacity() * size_of::<T>()
}

/// Bytes of a ring buffer's buffer.
pub fn deque<T>(v: &VecDeque<T>) -> usize {
    v.capacity() * size_of::<T>()
}

/// One line of a breakdown: what, and its heap bytes.
pub type Line = (&'static str, usize);

/// Gives back a drained queue's buffer beyond a small one: a burst (a join storm, a push/pull
/// of N members) would otherwise leave its peak capacity behind in every one of N nodes.
pub fn release_idle<T>(q: &mut VecDeque<T>) {
    const KEEP: usize = 32;
    if q.is_empty() && q.capacity() > KEEP {
        q.shrink_to(KEEP);
    }
}
