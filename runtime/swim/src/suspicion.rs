//! Lifeguard's dynamic suspicion timeout: a suspect is declared dead after a timeout that starts
//! at `max` and shrinks towards `min` as independent peers confirm the suspicion
//! (memberlist's `suspicion.go`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

/// One node under suspicion.
#[derive(Debug, Clone)]
pub(crate) struct Suspicion {
    /// Confirmations after the first suspector.
    confirmations: u32,
    /// Confirmations needed to reach the minimum timeout.
    k: u32,
    min: Duration,
    max: Duration,
    start: Instant,
    deadline: Instant,
    from: HashSet<String>,
}

impl Suspicion {
    /// Starts a suspicion raised by `from` at `now`. With `k == 0` the timeout is `min` at once.
    pub(crate) fn new(now: Instant, from: &str, k: u32, min: Duration, max: Duration) -> Self {
        let timeout = if k < 1 { min } else { max };
        let mut seen = HashSet::new();
        seen.insert(from.to_owned());
        Self {
            confirmations: 0,
            k,
            min,
            max,
            start: now,
            deadline: now + timeout,
            from: seen,
        }
    }

    /// Records an independent confirmation. Returns true if it was new (and so worth
    /// re-broadcasting), false for a repeat or once `k` confirmations are in.
    pub(crate) fn confirm(&mut self, from: &str) -> bool {
        if self.confirmations >= self.k || self.from.contains(from) {
            return false;
        }
        self.from.insert(from.to_owned());
        self.confirmations += 1;
        self.deadline = self.start + timeout_after(self.confirmations, self.k, self.min, self.max);
        true
    }

    /// When the suspect is to be declared dead.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Independent confirmations so far.
    pub(crate) fn confirmations(&self) -> u32 {
        self.confirmations
    }
}

/// memberlist's `remainingSuspicionTime` without the elapsed part: the total timeout after `n`
/// confirmations out of `k`, `max - log(n+1)/log(k+1) * (max - min)`, floored to milliseconds
/// and never below `min`.
pub(crate) fn timeout_after(n: u32, k: u32, min: Duration, max: Duration) -> Duration {
    if k == 0 {
        return min;
    }
    let frac = ((n as f64) + 1.0).ln() / ((k as f64) + 1.0).ln();
    let raw = max.as_secs_f64() - frac * (max.as_secs_f64() - min.as_secs_f64());
    let timeout = Duration::from_millis((1000.0 * raw).floor().max(0.0) as u64);
    timeout.max(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_shrinks_with_confirmations() {
        let min = Duration::from_secs(2);
        let max = Duration::from_secs(30);
        // Values from memberlist's suspicion_test.go table.
        assert_eq!(timeout_after(0, 3, min, max), max);
        assert_eq!(timeout_after(1, 3, min, max), Duration::from_secs(16));
        assert_eq!(timeout_after(2, 3, min, max), Duration::from_millis(7_810));
        assert_eq!(timeout_after(3, 3, min, max), min);
        assert_eq!(timeout_after(4, 3, min, max), min);
    }

    #[test]
    fn confirmations_are_counted_once_per_peer() {
        let now = Instant::now();
        let mut s = Suspicion::new(now, "a", 2, Duration::from_secs(2), Duration::from_secs(10));
        assert_eq!(s.deadline(), now + Duration::from_secs(10));
        assert!(!s.confirm("a"));
        assert!(s.confirm("b"));
        assert!(!s.confirm("b"));
        assert!(s.confirm("c"));
        assert_eq!(s.deadline(), now + Duration::from_secs(2));
        assert!(!s.confirm("d"), "no more confirmations past k");
    }

    #[test]
    fn k_zero_uses_min() {
        let now = Instant::now();
        let s = Suspicion::new(now, "a", 0, Duration::from_secs(2), Duration::from_secs(10));
        assert_eq!(s.deadline(), now + Duration::from_secs(2));
    }
}
