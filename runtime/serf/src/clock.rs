//! Serf's Lamport clock: a counter every node advances on send and fast-forwards on receipt,
//! so events, intents and queries can be ordered and deduplicated without synchronised clocks.

/// A Lamport timestamp (`LamportTime` in Serf, a uint64).
pub type LamportTime = u64;

/// A Lamport clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LamportClock {
    counter: LamportTime,
}

impl LamportClock {
    /// A clock at zero.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The current time.
    pub(crate) fn time(&self) -> LamportTime {
        self.counter
    }

    /// Advances the clock and returns the new time (Serf's `Increment`).
    pub(crate) fn increment(&mut self) -> LamportTime {
        self.counter += 1;
        self.counter
    }

    /// Fast-forwards past a time seen from another node (Serf's `Witness`: the clock becomes
    /// `max(now, v + 1)`).
    pub(crate) fn witness(&mut self, v: LamportTime) {
        if v >= self.counter {
            self.counter = v.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_moves_past_newer_times_only() {
        let mut c = LamportClock::new();
        assert_eq!(c.increment(), 1);
        c.witness(41);
        assert_eq!(c.time(), 42);
        c.witness(10);
        assert_eq!(c.time(), 42);
        assert_eq!(c.increment(), 43);
    }
}
