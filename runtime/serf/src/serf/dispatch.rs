//! Dispatch: moving what the membership core produced through the Serf layer (memberlist
//! events, Serf messages read out of user messages), and routing events through coalescing.

use super::{LeavePhase, Serf};
use crate::event::Event;
use crate::messages::{self, Message};
use hearsay_swim::Event as SwimEvent;
use std::time::Instant;
use tracing::{debug, warn};

impl Serf {
    /// Moves everything the membership core produced through the Serf layer.
    pub(super) fn pump(&mut self, now: Instant) {
        while let Some(ev) = self.swim.poll_event() {
            match ev {
                SwimEvent::MemberJoined(m) => self.handle_node_join(now, &m),
                SwimEvent::MemberUpdated(m) => self.handle_node_update(&m),
                SwimEvent::MemberLeft(m) | SwimEvent::MemberFailed(m) => {
                    self.handle_node_leave(now, &m)
                }
                SwimEvent::UserMessage(buf) => self.handle_message(now, &buf),
                SwimEvent::RemoteState { join, state } => {
                    self.merge_remote_state(now, &state, join)
                }
                SwimEvent::NameConflict { existing, other } => {
                    self.handle_name_conflict(now, &existing, other)
                }
                SwimEvent::PingComplete { node, rtt, payload } => {
                    self.handle_ping_complete(&node, rtt, &payload)
                }
                SwimEvent::JoinFinished { id, joined, errors } => {
                    if let Some(ignore) = self.joins.remove(&id) {
                        if ignore {
                            self.ignore_old_joins = self.ignore_old_joins.saturating_sub(1);
                        }
                        if joined > 0 {
                            self.broadcast_join(now);
                        }
                        self.events
                            .push_back(Event::JoinFinished { id, joined, errors });
                    }
                    // Reconnect joins are fire-and-forget.
                }
                SwimEvent::UserBroadcastDone(id) => {
                    if let Some(at) = self.force_leaves.iter().position(|n| *n == id) {
                        self.force_leaves.swap_remove(at);
                        self.events.push_back(Event::ForceLeaveSent { id });
                    }
                    if let Some(LeavePhase::Intent {
                        notify: Some(n), ..
                    }) = self.leave
                    {
                        if n == id {
                            self.advance_leave(now, true);
                        }
                    }
                }
                SwimEvent::LeaveComplete => {
                    if let Some(LeavePhase::Memberlist { .. }) = self.leave {
                        self.advance_leave(now, true);
                    }
                }
            }
        }
        self.route(now);
    }

    /// Moves events to `out`, through the coalescers when coalescing is on; flushes what the
    /// coalescers hold once their periods are over.
    fn route(&mut self, now: Instant) {
        if let Some(c) = self.member_coalescer.as_mut() {
            self.out
                .extend(c.handle_timeout(now).into_iter().map(Event::Member));
        }
        if let Some(c) = self.user_coalescer.as_mut() {
            self.out
                .extend(c.handle_timeout(now).into_iter().map(Event::User));
        }
        while let Some(ev) = self.events.pop_front() {
            match (
                ev,
                self.member_coalescer.as_mut(),
                self.user_coalescer.as_mut(),
            ) {
                (Event::Member(m), Some(c), _) => c.handle_event(now, m),
                (Event::User(u), _, Some(c)) => {
                    if let Some(passed) = c.handle_event(now, u) {
                        self.out.push_back(Event::User(passed));
                    }
                }
                (ev, _, _) => self.out.push_back(ev),
            }
        }
        hearsay_swim::heap::release_idle(&mut self.events);
    }

    fn handle_message(&mut self, now: Instant, buf: &[u8]) {
        let msg = match messages::decode(buf) {
            Ok(m) => m,
            Err(e) => {
                self.count_undecodable();
                if self.warn_allowed(now, "undecodable") {
                    warn!(node = %self.name(), error = %e, "serf: dropping undecodable message");
                }
                return;
            }
        };
        let rebroadcast = match msg {
            Message::Leave(l) => self.handle_leave_intent(now, &l),
            Message::Join(j) => self.handle_join_intent(now, &j),
            Message::UserEvent(e) => self.handle_user_event(now, &e),
            Message::Query(q) => self.handle_query(now, q),
            Message::QueryResponse(r) => {
                self.handle_query_response(now, r);
                false
            }
            Message::Relay { dest, inner, .. } => {
                debug!(node = %self.name(), %dest, "serf: relaying response");
                self.swim.send_user_packet(dest, &inner);
                false
            }
            Message::PushPull(_)
            | Message::ConflictResponse(_)
            | Message::KeyRequest(_)
            | Message::KeyResponse(_) => {
                debug!(node = %self.name(), "serf: ignoring a message type not valid in gossip");
                false
            }
        };
        if rebroadcast {
            self.swim.queue_user_broadcast(buf.to_vec(), None);
        }
    }
}
