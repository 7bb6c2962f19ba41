//! Gossip: the periodic fan-out of queued broadcasts, the choice of what fits in a packet,
//! and the completion of broadcasts someone waits on (leave, notified user broadcasts).

use super::{Event, Swim, LEAVE_NOTIFY};
use crate::config::retransmit_limit;
use crate::wire::{NodeStateKind, COMPOUND_HEADER_OVERHEAD, COMPOUND_OVERHEAD};
use std::time::Instant;

impl Swim {
    // ----- gossip and anti-entropy ---------------------------------------------------------

    pub(super) fn gossip(&mut self, now: Instant) {
        let me = self.config.name.clone();
        let dead_time = self.config.gossip_to_the_dead_time;
        let peers = self.k_random_nodes(self.config.gossip_nodes, |name, e, down| {
            if name == me {
                return true;
            }
            match e.state {
                NodeStateKind::Alive | NodeStateKind::Suspect => false,
                NodeStateKind::Dead => {
                    down.is_some_and(|t| now.saturating_duration_since(t) > dead_time)
                }
                NodeStateKind::Left => true,
            }
        });
        let avail =
            self.config.udp_buffer_size - COMPOUND_HEADER_OVERHEAD - self.encrypt_overhead();
        for peer in peers {
            let msgs = self.take_broadcasts(COMPOUND_OVERHEAD, avail);
            if msgs.is_empty() {
                return;
            }
            self.send_parts(peer.addr, Some(&peer.name), msgs);
        }
    }

    pub(super) fn take_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let n = self.est_num_nodes();
        let rl = retransmit_limit(self.config.retransmit_mult, n);
        let mut msgs = self.broadcasts.take(overhead, limit, rl);
        let used: usize = msgs.iter().map(|m| m.len() + overhead).sum();
        if limit > used {
            msgs.extend(self.user_broadcasts.take(overhead, limit - used, rl));
        }
        msgs
    }

    pub(super) fn collect_finished(&mut self) {
        while let Some(id) = self.broadcasts.poll_finished() {
            if id == LEAVE_NOTIFY {
                self.left = true;
                self.events.push_back(Event::LeaveComplete);
            }
        }
        while let Some(id) = self.user_broadcasts.poll_finished() {
            self.events.push_back(Event::UserBroadcastDone(id));
        }
    }
}
