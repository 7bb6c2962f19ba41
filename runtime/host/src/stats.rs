//! Per-handler counters and latency percentiles, for `hearsay handlers`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How many recent latencies the percentiles are computed over.
const WINDOW: usize = 1024;
/// At most one "queue full" warning per handler this often: a flood of events at a full queue
/// must not flood the log.
const DROP_WARNING_EVERY: Duration = Duration::from_secs(1);

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
    /// Drops not yet named in a warning, and when the last warning went out.
    unreported_drops: u64,
    last_drop_warning: Option<Instant>,
}

impl Recorder {
    /// Counts a dropped event; the number of drops to name in a warning now, if one is due.
    pub(crate) fn record_drop(&mut self, now: Instant) -> Option<u64> {
        self.counters.drops += 1;
        self.unreported_drops += 1;
        if self
            .last_drop_warning
            .is_some_and(|last| now.saturating_duration_since(last) < DROP_WARNING_EVERY)
        {
            return None;
        }
        self.last_drop_warning = Some(now);
        Some(std::mem::take(&mut self.unreported_drops))
    }

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
    fn drop_warnings_come_once_a_second_with_the_count() {
        let mut r = Recorder::default();
        let t = Instant::now();
        assert_eq!(
            r.record_drop(t),
            Some(1),
            "the first drop is reported at once"
        );
        for i in 1..1000 {
            assert_eq!(r.record_drop(t + Duration::from_micros(i)), None);
        }
        assert_eq!(r.record_drop(t + Duration::from_secs(1)), Some(1000));
        assert_eq!(r.snapshot().drops, 1001);
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
