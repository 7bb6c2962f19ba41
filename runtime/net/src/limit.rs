//! Warnings that remote peers can trigger once per connection (a connection flood past the
//! stream limit, refused QUIC handshakes) go through hearsay-swim's
//! [`LogLimiter`]: the first per source and kind in a [`hearsay_swim::loglimit::WINDOW`] is
//! logged in full, the rest are counted and summarised in one line. Unlike the sans-io
//! cores, this crate reads the clock itself, and the limiter sits behind a mutex so that
//! connection tasks can share it.

use hearsay_swim::loglimit::{LogLimiter, Source, Summary, Verdict};
use std::sync::Mutex;
use std::time::Instant;
use tracing::warn;

/// A shared [`LogLimiter`] whose summaries start with `prefix` (`driver:`, `QUIC:`).
#[derive(Debug)]
pub(crate) struct WarnLimit {
    prefix: &'static str,
    limiter: Mutex<LogLimiter>,
}

impl WarnLimit {
    /// A limiter with hearsay-swim's window and key bound.
    pub(crate) fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            limiter: Mutex::new(LogLimiter::new()),
        }
    }

    /// Whether to log a warning of `kind` caused by `source` now. Logs the summaries of
    /// the windows that are over first (this key's included).
    pub(crate) fn allow(&self, source: Source, kind: &'static str) -> bool {
        let now = Instant::now();
        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        for s in limiter.sweep(now) {
            self.summary(&s);
        }
        match limiter.check(now, source, kind) {
            Verdict::Suppress => false,
            Verdict::Log { summary } => {
                if let Some(s) = summary {
                    self.summary(&s);
                }
                true
            }
        }
    }

    /// Logs the summaries of the windows that are over (for a periodic timer, so that a
    /// burst's summary does not wait for the next warning).
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        for s in limiter.sweep(now) {
            self.summary(&s);
        }
    }

    fn summary(&self, s: &Summary) {
        warn!("{}: {s}", self.prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn the_first_warning_per_source_and_kind_is_allowed() {
        let w = WarnLimit::new("driver");
        let a = Source::Addr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let b = Source::Addr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert!(w.allow(a, "stream-limit"));
        assert!(!w.allow(a, "stream-limit"));
        assert!(w.allow(b, "stream-limit"));
        assert!(w.allow(a, "other"));
        w.sweep();
        assert!(!w.allow(a, "stream-limit"), "the window lasts 10 s");
    }
}
