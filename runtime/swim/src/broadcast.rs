//! memberlist's `TransmitLimitedQueue`: broadcasts waiting to be piggybacked on packets, each sent
//! at most `RetransmitMult * ceil(log10(n+1))` times, least-sent first, newer before older, and
//! a newer broadcast about the same subject (node name) invalidating the older one.

use hashbrown::HashMap;
use std::cmp::Reverse;
use std::collections::BTreeMap;

/// Identifies a broadcast whose completion someone waits for (e.g. the leave message).
pub type NotifyId = u64;

#[derive(Debug)]
struct Item {
    msg: Vec<u8>,
    subject: Option<String>,
    notify: Option<NotifyId>,
}

/// Ordering key: fewest transmits first; among equals, the newest (highest id) first.
type Key = (u32, Reverse<u64>);

/// A retransmit-limited broadcast queue.
#[derive(Debug, Default)]
pub(crate) struct BroadcastQueue {
    items: BTreeMap<Key, Item>,
    /// hashbrown's seeded foldhash: a join queues one alive broadcast per member merged.
    by_subject: HashMap<String, Key>,
    next_id: u64,
    /// Notifications of broadcasts that finished (sent `limit` times or invalidated).
    finished: Vec<NotifyId>,
}

impl BroadcastQueue {
    /// An empty queue.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Queues `msg`. A queued broadcast with the same `subject` is dropped: the new one
    /// supersedes it (memberlist's `Invalidates`).
    pub(crate) fn push(&mut self, msg: Vec<u8>, subject: Option<String>, notify: Option<NotifyId>) {
        if let Some(s) = &subject {
            if let Some(old) = self.by_subject.remove(s) {
                if let Some(item) = self.items.remove(&old) {
                    self.finished.extend(item.notify);
                }
            }
        }
        let key = (0, Reverse(self.next_id));
        self.next_id += 1;
        if let Some(s) = &subject {
            self.by_subject.insert(s.clone(), key);
        }
        self.items.insert(
            key,
            Item {
                msg,
                subject,
                notify,
            },
        );
    }

    /// Number of queued broadcasts.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// The queued messages, in no particular order.
    pub(crate) fn messages(&self) -> impl Iterator<Item = &[u8]> {
        self.items.values().map(|i| i.msg.as_slice())
    }

    /// True when nothing is queued.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Takes broadcasts that fit in `limit` bytes, counting `overhead` per message, and counts
    /// one transmission for each; those sent `retransmit_limit` times are retired.
    pub(crate) fn take(
        &mut self,
        overhead: usize,
        limit: usize,
        retransmit_limit: usize,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut used = 0usize;
        let mut picked: Vec<Key> = Vec::new();
        // A long queue of messages that no longer fit would make every packet scan all of
        // it; after this many misses in a row the packet counts as full.
        const MAX_MISSES: usize = 32;
        let mut misses = 0;
        for (key, item) in &self.items {
            // Every message costs at least `overhead + 1`; stop scanning when nothing can fit.
            if used + overhead >= limit || misses >= MAX_MISSES {
                break;
            }
            if used + overhead + item.msg.len() > limit {
                misses += 1;
                continue;
            }
            misses = 0;
            used += overhead + item.msg.len();
            picked.push(*key);
        }
        let retired = !picked.is_empty();
        for key in picked {
            let item = self.items.remove(&key).expect("picked key present");
            out.push(item.msg.clone());
            let transmits = key.0 + 1;
            if transmits as usize >= retransmit_limit.max(1) {
                if let Some(s) = &item.subject {
                    self.by_subject.remove(s);
                }
                self.finished.extend(item.notify);
            } else {
                let new_key = (transmits, key.1);
                if let Some(s) = &item.subject {
                    self.by_subject.insert(s.clone(), new_key);
                }
                self.items.insert(new_key, item);
            }
        }
        // A burst of broadcasts (N alive messages after a join) leaves the subject index at
        // its peak size; give the space back once most of it has drained.
        if retired
            && self.by_subject.capacity() > 64
            && self.by_subject.len() * 4 < self.by_subject.capacity()
        {
            self.by_subject.shrink_to(self.by_subject.len() * 2);
        }
        out
    }

    /// Drops every queued broadcast (their notifications fire).
    pub(crate) fn clear(&mut self) {
        for (_, item) in std::mem::take(&mut self.items) {
            self.finished.extend(item.notify);
        }
        // Not `clear()`: that would keep the index's peak capacity.
        self.by_subject = HashMap::new();
    }

    /// Heap bytes held (estimate from capacities; see [`crate::heap`]).
    pub(crate) fn heap_bytes(&self) -> usize {
        let items: usize = self
            .items
            .values()
            .map(|i| i.msg.capacity() + i.subject.as_ref().map_or(0, |s| s.capacity()))
            .sum();
        let keys: usize = self.by_subject.keys().map(|k| k.capacity()).sum();
        crate::heap::btree_map(&self.items)
            + items
            + crate::heap::table::<(String, Key)>(self.by_subject.capacity())
            + keys
    }

    /// The next notification of a finished broadcast.
    pub(crate) fn poll_finished(&mut self) -> Option<NotifyId> {
        self.finished.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retires_after_limit() {
        let mut q = BroadcastQueue::new();
        q.push(vec![1; 10], None, Some(7));
        for _ in 0..3 {
            assert_eq!(q.take(2, 100, 3).len(), 1);
        }
        assert!(q.is_empty());
        assert_eq!(q.poll_finished(), Some(7));
    }

    #[test]
    fn newer_subject_invalidates_older() {
        let mut q = BroadcastQueue::new();
        q.push(vec![1], Some("a".into()), Some(1));
        q.push(vec![2], Some("a".into()), None);
        q.push(vec![3], Some("b".into()), None);
        assert_eq!(q.len(), 2);
        assert_eq!(q.poll_finished(), Some(1));
        let got = q.take(2, 100, 10);
        assert_eq!(got, vec![vec![3], vec![2]]);
    }

    #[test]
    fn least_transmitted_first_and_respects_budget() {
        let mut q = BroadcastQueue::new();
        q.push(vec![0; 50], None, None);
        assert_eq!(q.take(2, 100, 10).len(), 1);
        q.push(vec![1; 50], None, None);
        // Only one 50-byte message fits in 60 bytes; the fresh one goes first.
        assert_eq!(q.take(2, 60, 10), vec![vec![1; 50]]);
        // A message larger than the budget is skipped, smaller ones still go.
        q.push(vec![2; 500], None, None);
        q.push(vec![3; 5], None, None);
        let got = q.take(2, 100, 10);
        assert!(got.contains(&vec![3; 5]));
        assert!(!got.contains(&vec![2; 500]));
    }
}
