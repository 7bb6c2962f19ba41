//! Tags and the push/pull state exchange: announcing new tags, encoding Serf's state for
//! memberlist's push/pull, and merging a remote one (Serf's `LocalState` / `MergeRemoteState`).

use super::Serf;
use crate::clock::LamportTime;
use crate::error::{Error, Result};
use crate::event::MemberStatus;
use crate::messages::{self, Join, Leave, Message};
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;
use tracing::warn;

impl Serf {
    /// Replaces this node's tags (announced with a new incarnation).
    pub fn set_tags(&mut self, now: Instant, tags: BTreeMap<String, String>) -> Result<()> {
        let meta = messages::encode_tags_for_protocol(&tags, self.config.protocol_version);
        if meta.len() > hearsay_swim::wire::META_MAX_SIZE {
            return Err(Error::TagsTooLarge(meta.len()));
        }
        self.swim.set_meta(now, meta)?;
        self.config.tags = tags;
        self.pump(now);
        Ok(())
    }

    /// Serf's push/pull state, re-encoded only when something in it changed.
    pub(super) fn refresh_state(&mut self) {
        if !self.state_dirty {
            return;
        }
        self.state_dirty = false;
        // Encoded from the member table (names in ascending order, as Serf's map would be
        // written by us): no map of N owned names, no copy of the event ring.
        let swim = &self.swim;
        let mut members: Vec<(&str, LamportTime, bool)> = self
            .members
            .iter()
            .map(|(id, m)| {
                (
                    swim.name_of(id),
                    m.status_ltime,
                    m.status == MemberStatus::Left,
                )
            })
            .collect();
        members.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let left: Vec<&str> = members.iter().filter(|m| m.2).map(|m| m.0).collect();
        let mut state = messages::encode_push_pull(
            self.clock.time(),
            members.iter().map(|m| (m.0, m.1)),
            &left,
            self.event_clock.time(),
            // Like Serf: the whole ring, empty slots included.
            &self.event_buffer,
            self.query_clock.time(),
        );
        // Kept until the next change: no growth slack on N names' worth of bytes.
        state.shrink_to_fit();
        self.swim.set_user_state(state);
    }

    pub(super) fn merge_remote_state(&mut self, now: Instant, buf: &[u8], join: bool) {
        let pp = match messages::decode(buf) {
            Ok(Message::PushPull(pp)) => pp,
            Ok(_) => {
                if self.warn_allowed(now, "remote-state") {
                    warn!(node = %self.name(), "serf: remote state has a bad type prefix");
                }
                return;
            }
            Err(e) => {
                if self.warn_allowed(now, "remote-state") {
                    warn!(node = %self.name(), error = %e, "serf: failed to decode remote state");
                }
                return;
            }
        };
        if pp.ltime > 0 {
            self.clock.witness(pp.ltime - 1);
        }
        if pp.event_ltime > 0 {
            self.event_clock.witness(pp.event_ltime - 1);
        }
        if pp.query_ltime > 0 {
            self.query_clock.witness(pp.query_ltime - 1);
        }
        let left: HashSet<&String> = pp.left_members.iter().collect();
        for name in &pp.left_members {
            let ltime = pp.status_ltimes.get(name).copied().unwrap_or(0) + 1;
            self.handle_leave_intent(
                now,
                &Leave {
                    ltime,
                    node: name.clone(),
                    prune: false,
                },
            );
        }
        for (name, ltime) in &pp.status_ltimes {
            if left.contains(name) {
                continue;
            }
            self.handle_join_intent(
                now,
                &Join {
                    ltime: *ltime,
                    node: name.clone(),
                },
            );
        }
        if join && self.ignore_old_joins > 0 && pp.event_ltime > self.event_min_time {
            self.event_min_time = pp.event_ltime;
        }
        for slot in pp.events.iter().flatten() {
            for e in &slot.events {
                let msg = messages::UserEvent {
                    ltime: slot.ltime,
                    name: e.name.clone(),
                    payload: e.payload.clone(),
                    cc: false,
                };
                self.handle_user_event(now, &msg);
            }
        }
        self.state_dirty = true;
    }
}
