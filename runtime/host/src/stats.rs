//! Per-handler counters and latency percentiles, for `hearsay handlers`.

use std::collections::VecDeque;
use std::time::Duration;

/// How many recent latencies the percentiles are computed over.
const WINDOW: usize = 1024;

/// A snapshot of one handler's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlerStats {
    /// Events the handler ran (any outcome).
    pub invocations: u64,
    /// Invocations that returned `ok`.
    pub ok: u64,
    /// Invocations that returned the guest's `error`.
    pub errors: u64,
    /// Invocations that trapped (limit hit, panic, host failure), including `timeouts`.
    pub traps: u64,
    /// Invocations stopped by the wall-clock deadline (in guest code or waiting in a host call).
    pub timeouts: u64,
    /// Events dropped because the handler's queue was full.
    pub drops: u64,
    /// Median run time over the recent window: from a worker taking the event to the guest's
    /// return (instantiation included only when no instance was made ahead of the event).
    pub p50: Option<Duration>,
    /// 99th-percentile run time over the recent window.
    pub p99: Option<Duration>,
    /// Events running now.
    pub running: u64,
    /// How long the oldest event running now has been running.
    pub oldest_running: Option<Duration>,
    /// Guest log lines dropped by the log budget, over the handler's life.
    pub log_suppressed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) counters: HandlerStats,
    recent: VecDeque<Duration>,
}

impl Recorder {
    pub(crate) fn record_latency(&mut self, d: Duration) {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(d);
    }

    pub(crate) fn snapshot(&self) -> HandlerStats {
        let mut s = self.counters.clone();
        let mut sorted: Vec<Duration> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        s.p50 = percentile(&sorted, 50);
        s.p99 = percentile(&sorted, 99);
        s
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut r = Recorder::default();
        assert_eq!(r.snapshot().p50, None);
        for ms in 1..=100 {
            r.record_latency(Duration::from_millis(ms));
        }
        let s = r.snapshot();
        assert_eq!(s.p50, Some(Duration::from_millis(50)));
        assert_eq!(s.p99, Some(Duration::from_millis(99)));
    }

    #[test]
    fn window_keeps_the_most_recent() {
        let mut r = Recorder::default();
        for _ in 0..WINDOW {
            r.record_latency(Duration::from_secs(10));
        }
        for _ in 0..WINDOW {
            r.record_latency(Duration::from_millis(1));
        }
        assert_eq!(r.snapshot().p99, Some(Duration::from_millis(1)));
    }
}
