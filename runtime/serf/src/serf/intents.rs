//! Join and leave intents (Serf's `handleNodeJoinIntent` / `handleNodeLeaveIntent`): joining,
//! the graceful leave and its phases, force-leave, and the Lamport-timed status they carry.

use super::{Intent, IntentKind, LeavePhase, Serf, State};
use crate::clock::LamportTime;
use crate::error::{Error, Result};
use crate::event::{Event, MemberEventKind, MemberStatus};
use crate::messages::{self, Join, Leave, Message};
use hearsay_swim::JoinId;
use std::net::SocketAddr;
use std::time::Instant;
use tracing::{debug, info, warn};

impl Serf {
    /// Joins the cluster through `addrs`; [`Event::JoinFinished`] reports the outcome. With
    /// `ignore_old`, user events from before the join are not delivered (Serf's default,
    /// unlike `-replay`).
    pub fn join(&mut self, now: Instant, addrs: &[SocketAddr], ignore_old: bool) -> Result<JoinId> {
        if self.state != State::Alive {
            return Err(Error::NotAllowed("leaving or left"));
        }
        self.refresh_state();
        let id = self.swim.join(now, addrs);
        self.joins.insert(id, ignore_old);
        if ignore_old {
            self.ignore_old_joins += 1;
        }
        self.pump(now);
        Ok(id)
    }

    /// Starts a graceful leave; [`Event::LeaveComplete`] follows.
    pub fn leave(&mut self, now: Instant) -> Result<()> {
        match self.state {
            State::Left => return Ok(()),
            State::Leaving => return Err(Error::NotAllowed("already leaving")),
            State::Alive => {}
        }
        self.state = State::Leaving;
        let msg = Leave {
            ltime: self.clock.time(),
            node: self.name().to_owned(),
            prune: false,
        };
        self.clock.increment();
        self.handle_leave_intent(now, &msg);
        let until = now + self.config.broadcast_timeout;
        let notify = if self.has_alive_members() {
            let raw = messages::encode(&Message::Leave(msg));
            Some(self.swim.queue_user_broadcast_notify(raw, None))
        } else {
            None
        };
        self.leave = Some(LeavePhase::Intent { notify, until });
        if notify.is_none() {
            self.advance_leave(now, true);
        }
        self.pump(now);
        Ok(())
    }

    /// Forces a failed member into the left state (Serf's `RemoveFailedNode`), optionally
    /// pruning it from the member list at once, and broadcasts the leave intent. Returns the
    /// broadcast's id when there is anyone to send it to: [`Event::ForceLeaveSent`] with that
    /// id follows once it went out (Serf's `RemoveFailedNode` waits for it, bounded by the
    /// broadcast timeout); `None` for a lone node.
    pub fn force_leave(&mut self, now: Instant, node: &str, prune: bool) -> Result<Option<u64>> {
        let msg = Leave {
            ltime: self.clock.time(),
            node: node.to_owned(),
            prune,
        };
        self.clock.increment();
        self.handle_leave_intent(now, &msg);
        let id = self.has_alive_members().then(|| {
            let id = self
                .swim
                .queue_user_broadcast_notify(messages::encode(&Message::Leave(msg)), None);
            self.force_leaves.push(id);
            id
        });
        self.state_dirty = true;
        self.pump(now);
        Ok(id)
    }

    /// True while the leave broadcast `id` of a [`Serf::force_leave`] has not gone out.
    pub fn force_leave_pending(&self, id: u64) -> bool {
        self.force_leaves.contains(&id)
    }

    pub(super) fn advance_leave(&mut self, now: Instant, done: bool) {
        let Some(phase) = self.leave else { return };
        match phase {
            LeavePhase::Intent { until, .. } if done || now >= until => {
                if !done {
                    warn!(node = %self.name(), "serf: timeout while waiting for graceful leave");
                }
                self.leave = Some(LeavePhase::Memberlist {
                    until: now + self.config.broadcast_timeout,
                });
                self.swim.leave(now);
                // A lone node completes at once; pick that up now.
                self.pump(now);
            }
            LeavePhase::Memberlist { until } if done || now >= until => {
                if !done {
                    warn!(node = %self.name(), "serf: timeout waiting for the memberlist leave broadcast");
                }
                self.leave = Some(LeavePhase::Propagate {
                    until: now + self.config.leave_propagate_delay,
                });
            }
            LeavePhase::Propagate { until } if now >= until => {
                self.leave = None;
                self.state = State::Left;
                info!(node = %self.name(), "serf: left the cluster");
                self.events.push_back(Event::LeaveComplete);
            }
            _ => {}
        }
    }

    fn upsert_intent(
        &mut self,
        node: &str,
        kind: IntentKind,
        ltime: LamportTime,
        now: Instant,
    ) -> bool {
        match self.recent_intents.get(node) {
            Some(i) if ltime <= i.ltime => false,
            _ => {
                self.recent_intents.insert(
                    node.to_owned(),
                    Intent {
                        kind,
                        ltime,
                        at: now,
                    },
                );
                true
            }
        }
    }

    pub(super) fn handle_leave_intent(&mut self, now: Instant, msg: &Leave) -> bool {
        self.clock.witness(msg.ltime);
        let Some(id) = self.member_id(&msg.node) else {
            return self.upsert_intent(&msg.node, IntentKind::Leave, msg.ltime, now);
        };
        let ms = self.members.get(id).expect("member_id checks");
        if msg.ltime <= ms.status_ltime {
            return false;
        }
        if msg.node == self.config.memberlist.name && self.state == State::Alive {
            debug!(node = %self.name(), "serf: refuting an older leave intent");
            self.broadcast_join(now);
            return false;
        }
        let ms = self.members.get_mut(id).expect("member_id checks");
        ms.status_ltime = msg.ltime;
        self.state_dirty = true;
        let rebroadcast = match ms.status {
            MemberStatus::Alive => {
                ms.status = MemberStatus::Leaving;
                true
            }
            MemberStatus::Failed => {
                ms.status = MemberStatus::Left;
                let member = self.member_named(&msg.node).expect("checked above");
                info!(node = %self.name(), peer = %member.name, "serf: EventMemberLeave (forced)");
                self.emit_member(MemberEventKind::Leave, member);
                true
            }
            MemberStatus::Leaving | MemberStatus::Left => true,
            MemberStatus::None => false,
        };
        if rebroadcast && msg.prune {
            self.prune(&msg.node);
        }
        rebroadcast
    }

    pub(super) fn handle_join_intent(&mut self, now: Instant, msg: &Join) -> bool {
        self.clock.witness(msg.ltime);
        let Some(ms) = self.state_mut(&msg.node) else {
            return self.upsert_intent(&msg.node, IntentKind::Join, msg.ltime, now);
        };
        if msg.ltime <= ms.status_ltime {
            return false;
        }
        ms.status_ltime = msg.ltime;
        if ms.status == MemberStatus::Leaving {
            ms.status = MemberStatus::Alive;
        }
        self.state_dirty = true;
        true
    }

    pub(super) fn broadcast_join(&mut self, now: Instant) {
        let msg = Join {
            ltime: self.clock.time(),
            node: self.name().to_owned(),
        };
        self.clock.witness(msg.ltime);
        self.handle_join_intent(now, &msg);
        self.swim
            .queue_user_broadcast(messages::encode(&Message::Join(msg)), None);
    }
}
