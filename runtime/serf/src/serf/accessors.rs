//! Views of the Serf layer: the membership core underneath (mutable too, for the keyring and
//! test hooks), configuration, lifecycle state, members, queue depths, clocks, and the heap
//! accounting of the scale bench.

use super::{QueueDepths, Serf, SerfConfig, State};
use crate::clock::LamportTime;
use crate::event::{Member, MemberStatus};
use crate::messages;
use hearsay_swim::wire::NodeStateKind;
use hearsay_swim::Swim;
use std::time::Duration;

impl Serf {
    /// The membership core underneath (read-only).
    pub fn memberlist(&self) -> &Swim {
        &self.swim
    }

    /// Mutable access to the membership core (for keyring changes and tests).
    pub fn memberlist_mut(&mut self) -> &mut Swim {
        &mut self.swim
    }

    /// Where this node's heap goes, per table, the membership core's included (estimated
    /// from capacities; the scale bench divides by the member count).
    pub fn heap_breakdown(&self) -> Vec<hearsay_swim::heap::Line> {
        use hearsay_swim::heap;
        let mut out = self.swim.heap_breakdown();
        let intents: usize = self.recent_intents.keys().map(|k| k.capacity()).sum();
        let coords: usize = self
            .coord_cache
            .iter()
            .map(|(k, c)| k.capacity() + heap::vec(&c.vec))
            .sum();
        let events: usize = self
            .event_buffer
            .iter()
            .flatten()
            .map(|u| {
                heap::vec(&u.events)
                    + u.events
                        .iter()
                        .map(|e| e.name.capacity() + e.payload.capacity())
                        .sum::<usize>()
            })
            .sum();
        let queries: usize = self
            .query_buffer
            .iter()
            .flatten()
            .map(|(_, ids)| heap::vec(ids))
            .sum();
        out.extend([
            (
                "serf: member table (slots, leave times)",
                self.members.heap_bytes() + heap::hash_map(&self.leave_times),
            ),
            (
                "serf: recent intents",
                heap::hash_map(&self.recent_intents) + intents,
            ),
            (
                "serf: Vivaldi coordinate cache",
                heap::hash_map(&self.coord_cache) + coords,
            ),
            (
                "serf: Vivaldi latency filters",
                self.coord_client
                    .as_ref()
                    .map_or(0, |c| c.latency_filter_bytes()),
            ),
            (
                "serf: event and query buffers",
                heap::vec(&self.event_buffer) + events + heap::vec(&self.query_buffer) + queries,
            ),
            (
                "serf: pending events",
                heap::deque(&self.events) + heap::deque(&self.out),
            ),
        ]);
        out
    }

    /// This node's configuration.
    pub fn config(&self) -> &SerfConfig {
        &self.config
    }

    /// This node's lifecycle state.
    pub fn state(&self) -> State {
        self.state
    }

    /// All members Serf knows, including failed and left ones not yet reaped.
    pub fn members(&self) -> Vec<Member> {
        let mut v: Vec<Member> = self
            .members
            .iter()
            .map(|(id, ms)| self.member_at(id, ms))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Broadcasts waiting for gossip, counted as Serf's three queues: join and leave intents,
    /// user events, and queries. (Serf keeps three queues; here they share one and are told
    /// apart by their message type.)
    pub fn queue_depths(&self) -> QueueDepths {
        let mut d = QueueDepths::default();
        for msg in self.swim.queued_user_broadcasts() {
            use messages::MessageType;
            match msg.first().and_then(|&t| MessageType::from_u8(t)) {
                Some(MessageType::Join | MessageType::Leave) => d.intent += 1,
                Some(MessageType::UserEvent) => d.event += 1,
                Some(MessageType::Query) => d.query += 1,
                _ => {}
            }
        }
        d
    }

    /// How many members have `status` (without copying the member list).
    pub fn count_with_status(&self, status: MemberStatus) -> usize {
        self.members
            .iter()
            .filter(|(_, m)| m.status == status)
            .count()
    }

    /// This node as a member.
    pub fn local_member(&self) -> Member {
        self.member_named(&self.config.memberlist.name)
            .unwrap_or_else(|| self.member_from_swim(&self.swim.local()))
    }

    /// The current Lamport times: member clock, event clock, query clock.
    pub fn clocks(&self) -> (LamportTime, LamportTime, LamportTime) {
        (
            self.clock.time(),
            self.event_clock.time(),
            self.query_clock.time(),
        )
    }

    /// Serf's default query timeout: `GossipInterval * QueryTimeoutMult * ceil(log10(n+1))`.
    pub fn default_query_timeout(&self) -> Duration {
        let n = self.swim.num_alive();
        let scale = ((n as f64) + 1.0).log10().ceil().max(1.0) as u32;
        self.config.memberlist.gossip_interval * self.config.query_timeout_mult * scale
    }

    pub(super) fn name(&self) -> &str {
        &self.config.memberlist.name
    }

    /// The member's memberlist state, for tests and diagnostics.
    pub fn memberlist_state(&self, name: &str) -> Option<NodeStateKind> {
        self.swim.member(name).map(|m| m.state)
    }
}
