//! Warnings that gossip from other members can trigger once per message (undecodable
//! messages, old events and queries, bad filters, bad remote state): logged through
//! hearsay-swim's [`LogLimiter`] (one full line per kind every
//! [`hearsay_swim::loglimit::WINDOW`], then a summary), and counted for the agent's stats.
//! Gossip is relayed by any member, so these keys have no source address
//! ([`Source::Any`]).

use super::Serf;
use hearsay_swim::loglimit::{LogLimiter, Source, Verdict};
use std::time::Instant;
use tracing::warn;

/// Serf's own share of what the network sent that was refused.
#[derive(Debug, Default)]
pub(super) struct Warnings {
    limiter: LogLimiter,
    /// Serf messages in memberlist user messages that could not be decoded.
    undecodable: u64,
}

impl Serf {
    /// Whether to log a warning of `kind` triggered by gossip; logs the summary of the
    /// kind's previous window first.
    pub(super) fn warn_allowed(&mut self, now: Instant, kind: &'static str) -> bool {
        match self.warnings.limiter.check(now, Source::Any, kind) {
            Verdict::Suppress => false,
            Verdict::Log { summary } => {
                if let Some(s) = summary {
                    warn!(node = %self.name(), "serf: {s}");
                }
                true
            }
        }
    }

    /// Counts a Serf message that could not be decoded.
    pub(super) fn count_undecodable(&mut self) {
        self.warnings.undecodable += 1;
    }

    /// Logs the summaries of the warning windows that are over.
    pub(super) fn sweep_warnings(&mut self, now: Instant) {
        for s in self.warnings.limiter.sweep(now) {
            warn!(node = %self.name(), "serf: {s}");
        }
    }

    /// When the next warning window ends.
    pub(super) fn warnings_deadline(&self) -> Option<Instant> {
        self.warnings.limiter.next_deadline()
    }

    /// What was refused from the network, as stats keys: the membership core's
    /// ([`hearsay_swim::DropStats::entries`]), `dropped_user_messages` (undecodable Serf
    /// messages), and `suppressed_warnings` covering both layers.
    pub fn drop_stats(&self) -> Vec<(&'static str, u64)> {
        let mut out = self.swim.drop_stats().entries();
        for (key, value) in &mut out {
            if *key == "suppressed_warnings" {
                *value += self.warnings.limiter.suppressed_total();
            }
        }
        out.push(("dropped_user_messages", self.warnings.undecodable));
        out
    }
}
