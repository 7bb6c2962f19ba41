//! The agent-wide cap on handler memory: the linear memories of every live instance (running
//! events and instances made ahead of their events) together, so that many handlers at their
//! limits at once cannot grow the agent without bound.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of linear memory charged against a cap.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    cap: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    pub(crate) fn new(cap: usize) -> MemoryBudget {
        MemoryBudget {
            cap,
            used: AtomicUsize::new(0),
        }
    }

    /// The cap in bytes.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Bytes charged now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Charges `bytes` if they fit under the cap; false (and nothing charged) otherwise.
    pub(crate) fn charge(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&n| n <= self.cap)
            })
            .is_ok()
    }

    /// Returns `bytes` charged earlier.
    pub(crate) fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_cap_and_no_further() {
        let b = MemoryBudget::new(100);
        assert!(b.charge(60));
        assert!(!b.charge(41), "over the cap");
        assert_eq!(b.used(), 60, "a refused charge takes nothing");
        assert!(b.charge(40));
        b.release(60);
        assert_eq!(b.used(), 40);
        assert!(!b.charge(usize::MAX), "overflow is refused, not wrapped");
    }
}
