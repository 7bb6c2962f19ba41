//! Rate limiting of warnings that the network can trigger, one per packet or message.
//!
//! A node that logs every bad datagram lets anyone who can reach its gossip port fill its
//! log. [`LogLimiter`] decides, per key (a [`Source`] and a short static *kind* such as
//! `"decode"` or `"decrypt"`), which warnings are written and which are only counted:
//!
//! - the first warning for a key in a [`WINDOW`] is logged in full ([`Verdict::Log`]);
//! - the further ones in that window are counted, not logged ([`Verdict::Suppress`]);
//! - the window of a key ends [`WINDOW`] after its first warning. The count is reported once
//!   as a [`Summary`] ("suppressed N similar warnings from SOURCE (KIND) in the last 10s"):
//!   with the key's next warning (which opens a new window), or by [`LogLimiter::sweep`],
//!   which a periodic timer calls.
//!
//! At most [`MAX_KEYS`] sources are tracked one by one; once that many keys are held, new
//! sources share one [`Source::Other`] key per kind, so spoofed source addresses cannot grow
//! memory without bound. Expired keys are dropped by [`LogLimiter::sweep`].
//!
//! The limiter reads no clock: every call takes the caller's `now`, so it is deterministic
//! and runs on a virtual clock in tests. It logs nothing itself; callers write the lines,
//! with their own prefix (`memberlist:`, `serf:`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a key's window lasts: one full warning per key per window, then a summary.
pub const WINDOW: Duration = Duration::from_secs(10);

/// How many keys are tracked one by one before new sources fold into [`Source::Other`].
pub const MAX_KEYS: usize = 1024;

/// Where the warnings of a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// One remote address.
    Addr(IpAddr),
    /// Every source that arrived while the limiter was full.
    Other,
    /// Input whose sender is not known (gossip relayed by any member).
    Any,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Addr(ip) => ip.fmt(f),
            Source::Other => f.write_str("other sources"),
            Source::Any => f.write_str("any source"),
        }
    }
}

/// How many warnings of one key were suppressed in its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The key's source.
    pub source: Source,
    /// The key's kind.
    pub kind: &'static str,
    /// How many warnings were counted but not logged.
    pub suppressed: u64,
    /// The window they fell in.
    pub window: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "suppressed {} similar warnings from {} ({}) in the last ",
            self.suppressed, self.source, self.kind
        )?;
        if self.window.subsec_nanos() == 0 {
            write!(f, "{}s", self.window.as_secs())
        } else {
            write!(f, "{}ms", self.window.as_millis())
        }
    }
}

/// What to do with one warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Log it in full; first log `summary`, the count of the window that just ended.
    Log {
        /// The previous window's suppressed warnings, when there were any.
        summary: Option<Summary>,
    },
    /// Do not log it: it was counted.
    Suppress,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When the key's current window opened.
    start: Instant,
    /// Warnings counted, not logged, in the current window.
    suppressed: u64,
}

/// Decides which warnings to log; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct LogLimiter {
    window: Duration,
    max_keys: usize,
    entries: BTreeMap<(Source, &'static str), Entry>,
    /// No window ends before `earliest + window` (a lower bound; [`LogLimiter::sweep`]
    /// recomputes it).
    earliest: Option<Instant>,
    suppressed_total: u64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl LogLimiter {
    /// A limiter with [`WINDOW`] and [`MAX_KEYS`].
    pub fn new() -> Self {
        Self::with_limits(WINDOW, MAX_KEYS)
    }

    /// A limiter with its own window and key bound.
    pub fn with_limits(window: Duration, max_keys: usize) -> Self {
        Self {
            window,
            max_keys,
            entries: BTreeMap::new(),
            earliest: None,
            suppressed_total: 0,
        }
    }

    /// One warning of `kind` from `source` at `now`: log it, or count it.
    pub fn check(&mut self, now: Instant, source: Source, kind: &'static str) -> Verdict {
        let key = self.key_for(source, kind);
        let window = self.window;
        match self.entries.get_mut(&key) {
            Some(e) if now < e.start + window => {
                e.suppressed += 1;
                self.suppressed_total += 1;
                Verdict::Suppress
            }
            Some(e) => {
                let summary = (e.suppressed > 0).then_some(Summary {
                    source: key.0,
                    kind,
                    suppressed: e.suppressed,
                    window,
                });
                *e = Entry {
                    start: now,
                    suppressed: 0,
                };
                Verdict::Log { summary }
            }
            None => {
                self.entries.insert(
                    key,
                    Entry {
                        start: now,
                        suppressed: 0,
                    },
                );
                self.earliest = Some(self.earliest.map_or(now, |t| t.min(now)));
                Verdict::Log { summary: None }
            }
        }
    }

    /// Ends every window that is over at `now`: forgets its key and returns the summaries of
    /// those that suppressed warnings, in key order.
    pub fn sweep(&mut self, now: Instant) -> Vec<Summary> {
        match self.next_deadline() {
            Some(t) if now >= t => {}
            _ => return Vec::new(),
        }
        let window = self.window;
        let mut out = Vec::new();
        self.entries.retain(|&(source, kind), e| {
            let open = now < e.start + window;
            if !open && e.suppressed > 0 {
                out.push(Summary {
                    source,
                    kind,
                    suppressed: e.suppressed,
                    window,
                });
            }
            open
        });
        self.earliest = self.entries.values().map(|e| e.start).min();
        out
    }

    /// When [`LogLimiter::sweep`] has something to do next (`None`: nothing tracked).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.earliest.map(|t| t + self.window)
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many warnings were suppressed since the limiter was made.
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed_total
    }

    /// The key a warning counts under: its own, unless the limiter is full and does not
    /// track it yet.
    fn key_for(&self, source: Source, kind: &'static str) -> (Source, &'static str) {
        let key = (source, kind);
        if self.entries.len() < self.max_keys || self.entries.contains_key(&key) {
            key
        } else {
            (Source::Other, kind)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u32) -> Source {
        Source::Addr(IpAddr::V4(Ipv4Addr::from(n)))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    const LOG: Verdict = Verdict::Log { summary: None };

    #[test]
    fn first_is_logged_then_counted() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new();
        assert_eq!(l.check(t0, ip(1), "decode"), LOG);
        for i in 1..100 {
            let now = t0 + Duration::from_millis(i * 10);
            assert_eq!(l.check(now, ip(1), "decode"), Verdict::Suppress);
        }
        assert_eq!(l.suppressed_total(), 99);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn next_warning_after_the_window_carries_the_summary() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new();
        l.check(t0, ip(1), "decode");
        l.check(t0 + secs(1), ip(1), "decode");
        l.check(t0 + secs(9), ip(1), "decode");
        let v = l.check(t0 + WINDOW, ip(1), "decode");
        let Verdict::Log { summary: Some(s) } = v else {
            panic!("expected a summary, got {v:?}");
        };
        assert_eq!(s.suppressed, 2);
        assert_eq!(
            s.to_string(),
            "suppressed 2 similar warnings from 0.0.0.1 (decode) in the last 10s"
        );
        // A new window opened: counted again, no summary at its end when nothing was hidden.
        assert_eq!(l.check(t0 + secs(11), ip(1), "decode"), Verdict::Suppress);
        assert!(l.sweep(t0 + secs(19)).is_empty());
        assert_eq!(l.sweep(t0 + secs(20)).len(), 1);
        assert!(l.is_empty());
    }

    #[test]
    fn a_quiet_window_ends_without_a_summary() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new();
        l.check(t0, ip(1), "decode");
        assert_eq!(l.check(t0 + secs(30), ip(1), "decode"), LOG);
        assert!(l.sweep(t0 + secs(60)).is_empty());
        assert!(l.is_empty());
        assert_eq!(l.next_deadline(), None);
    }

    #[test]
    fn sweep_reports_ended_windows_in_key_order() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new();
        for _ in 0..3 {
            l.check(t0, ip(2), "decrypt");
            l.check(t0, ip(1), "decode");
        }
        l.check(t0 + secs(5), ip(3), "decode");
        l.check(t0 + secs(5), ip(3), "decode");
        assert_eq!(l.next_deadline(), Some(t0 + WINDOW));
        assert!(l.sweep(t0 + secs(9)).is_empty());
        let done = l.sweep(t0 + WINDOW);
        let got: Vec<_> = done
            .iter()
            .map(|s| (s.source, s.kind, s.suppressed))
            .collect();
        assert_eq!(got, [(ip(1), "decode", 2), (ip(2), "decrypt", 2)]);
        assert_eq!(l.len(), 1);
        assert_eq!(l.next_deadline(), Some(t0 + secs(15)));
        assert_eq!(l.sweep(t0 + secs(15)).len(), 1);
    }

    #[test]
    fn keys_are_independent() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new();
        assert_eq!(l.check(t0, ip(1), "decode"), LOG);
        assert_eq!(l.check(t0, ip(1), "decrypt"), LOG);
        assert_eq!(l.check(t0, ip(2), "decode"), LOG);
        assert_eq!(l.check(t0, Source::Any, "decode"), LOG);
        assert_eq!(l.check(t0, ip(1), "decode"), Verdict::Suppress);
        assert_eq!(l.check(t0, ip(2), "decrypt"), LOG);
        assert_eq!(l.len(), 5);
    }

    #[test]
    fn spoofed_sources_fold_into_other_sources() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new();
        let mut logged = 0;
        for n in 0..10_000 {
            if l.check(t0, ip(n), "decode") != Verdict::Suppress {
                logged += 1;
            }
        }
        // One line per tracked source, one for all the rest.
        assert_eq!(logged, MAX_KEYS + 1);
        assert_eq!(l.len(), MAX_KEYS + 1);
        assert_eq!(l.suppressed_total(), (10_000 - MAX_KEYS - 1) as u64);
        // A tracked source keeps its own key; another kind folds too.
        assert_eq!(l.check(t0, ip(0), "decode"), Verdict::Suppress);
        assert_eq!(l.check(t0, ip(5000), "crc"), LOG);
        assert_eq!(l.len(), MAX_KEYS + 2);
        let done = l.sweep(t0 + WINDOW);
        assert!(l.is_empty());
        let other: Vec<_> = done.iter().filter(|s| s.source == Source::Other).collect();
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].suppressed, (10_000 - MAX_KEYS - 1) as u64);
        assert_eq!(
            other[0].to_string(),
            format!(
                "suppressed {} similar warnings from other sources (decode) in the last 10s",
                10_000 - MAX_KEYS - 1
            )
        );
    }

    #[test]
    fn short_windows_print_in_milliseconds() {
        let s = Summary {
            source: Source::Any,
            kind: "old-query",
            suppressed: 3,
            window: Duration::from_millis(1500),
        };
        assert_eq!(
            s.to_string(),
            "suppressed 3 similar warnings from any source (old-query) in the last 1500ms"
        );
    }
}
