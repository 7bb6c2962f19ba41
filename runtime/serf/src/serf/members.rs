//! Serf's member table on top of the membership core's: member events from memberlist,
//! Serf's view of each member, pruning, reaping gone members and reconnecting to failed ones.

use super::{IntentKind, MemberState, Serf};
use crate::event::{Event, Member, MemberEvent, MemberEventKind, MemberStatus};
use crate::messages;
use hearsay_swim::table::NameId;
use rand::Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;
use tracing::{debug, info, warn};

impl Serf {
    /// The id of a member in Serf's table.
    pub(super) fn member_id(&self, name: &str) -> Option<NameId> {
        self.swim
            .name_id(name)
            .filter(|&id| self.members.contains(id))
    }

    pub(super) fn state_mut(&mut self, name: &str) -> Option<&mut MemberState> {
        let id = self.member_id(name)?;
        self.members.get_mut(id)
    }

    /// Serf's view of a member: its own status, the rest from the membership core.
    pub(super) fn member_at(&self, id: NameId, ms: &MemberState) -> Member {
        let Some(info) = self.swim.member_info(id) else {
            // Unreachable while Serf holds the name (the core keeps what it forgets); an
            // entry without fields still reports its name and status.
            return Member {
                name: self.swim.name_of(id).to_owned(),
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                tags: BTreeMap::new(),
                status: ms.status,
                vsn: [0; 6],
            };
        };
        Member {
            name: info.name.to_owned(),
            addr: info.addr,
            // Undecodable tags were reported when the member joined or changed.
            tags: messages::decode_tags(info.meta).unwrap_or_default(),
            status: ms.status,
            vsn: info.vsn,
        }
    }

    /// Serf's view of the member named `name`.
    pub(super) fn member_named(&self, name: &str) -> Option<Member> {
        let id = self.member_id(name)?;
        Some(self.member_at(id, self.members.get(id)?))
    }

    /// Drops a member from Serf's table (and its hold on the name); returns it as it was.
    fn remove_member(&mut self, name: &str) -> Option<Member> {
        let id = self.member_id(name)?;
        let member = self.member_named(name);
        self.members.remove(id);
        self.leave_times.remove(&id);
        self.swim.release_name(id);
        member
    }

    pub(super) fn member_from_swim(&self, m: &hearsay_swim::Member) -> Member {
        let tags = messages::decode_tags(&m.meta).unwrap_or_else(|e| {
            warn!(node = %self.name(), peer = %m.name, error = %e, "serf: undecodable tags");
            BTreeMap::new()
        });
        Member {
            name: m.name.clone(),
            addr: m.addr,
            tags,
            status: MemberStatus::Alive,
            vsn: m.vsn,
        }
    }

    pub(super) fn emit_member(&mut self, kind: MemberEventKind, member: Member) {
        self.events.push_back(Event::Member(MemberEvent {
            kind,
            members: vec![member],
        }));
    }

    pub(super) fn handle_node_join(&mut self, _now: Instant, n: &hearsay_swim::Member) {
        let mut member = self.member_from_swim(n);
        match self.state_mut(&n.name) {
            None => {
                let mut ms = MemberState {
                    status: MemberStatus::Alive,
                    status_ltime: 0,
                };
                if let Some(i) = self.recent_intents.get(&n.name) {
                    match i.kind {
                        IntentKind::Join => ms.status_ltime = i.ltime,
                        IntentKind::Leave => {
                            ms.status = MemberStatus::Leaving;
                            ms.status_ltime = i.ltime;
                        }
                    }
                }
                member.status = ms.status;
                let id = self.swim.hold_name(&n.name);
                self.members.insert(id, ms);
            }
            Some(ms) => {
                ms.status = MemberStatus::Alive;
                if let Some(id) = self.member_id(&n.name) {
                    self.leave_times.remove(&id);
                }
            }
        }
        self.state_dirty = true;
        info!(node = %self.name(), peer = %member.name, addr = %member.addr, "serf: EventMemberJoin");
        self.emit_member(MemberEventKind::Join, member);
    }

    pub(super) fn handle_node_leave(&mut self, now: Instant, n: &hearsay_swim::Member) {
        let Some(id) = self.member_id(&n.name) else {
            return;
        };
        let ms = self.members.get_mut(id).expect("member_id checks");
        let kind = match ms.status {
            MemberStatus::Leaving => {
                ms.status = MemberStatus::Left;
                MemberEventKind::Leave
            }
            MemberStatus::Alive => {
                ms.status = MemberStatus::Failed;
                MemberEventKind::Failed
            }
            other => {
                warn!(node = %self.config.memberlist.name, peer = %n.name, status = other.as_str(), "serf: bad state when leave");
                return;
            }
        };
        self.leave_times.insert(id, now);
        let member = self.member_named(&n.name).expect("checked above");
        self.state_dirty = true;
        info!(node = %self.name(), peer = %member.name, addr = %member.addr, event = kind.as_str(), "serf: member left or failed");
        self.emit_member(kind, member);
    }

    pub(super) fn handle_node_update(&mut self, n: &hearsay_swim::Member) {
        let mut member = self.member_from_swim(n);
        let Some(ms) = self.state_mut(&n.name) else {
            return;
        };
        member.status = ms.status;
        info!(node = %self.name(), peer = %member.name, "serf: EventMemberUpdate");
        self.emit_member(MemberEventKind::Update, member);
    }

    pub(super) fn prune(&mut self, node: &str) {
        if let Some(member) = self.remove_member(node) {
            self.forget_coordinate(node);
            info!(node = %self.name(), peer = %node, "serf: EventMemberReap (forced)");
            self.state_dirty = true;
            self.emit_member(MemberEventKind::Reap, member);
        }
    }

    pub(super) fn has_alive_members(&self) -> bool {
        self.members.iter().any(|(id, m)| {
            m.status == MemberStatus::Alive && self.swim.name_of(id) != self.config.memberlist.name
        })
    }

    pub(super) fn reap(&mut self, now: Instant) {
        let mut reaped = Vec::new();
        for (id, ms) in self.members.iter() {
            let name = self.swim.name_of(id);
            let timeout = match ms.status {
                MemberStatus::Failed => self.config.reconnect_timeout,
                MemberStatus::Left => self.config.tombstone_timeout,
                _ => continue,
            };
            if self
                .leave_times
                .get(&id)
                .is_some_and(|&t| now.saturating_duration_since(t) > timeout)
            {
                reaped.push(name.to_owned());
            }
        }
        reaped.sort();
        for name in reaped {
            if let Some(member) = self.remove_member(&name) {
                self.forget_coordinate(&name);
                info!(node = %self.name(), peer = %name, "serf: EventMemberReap");
                self.emit_member(MemberEventKind::Reap, member);
                self.state_dirty = true;
            }
        }
        let limit = self.config.recent_intent_timeout;
        self.recent_intents
            .retain(|_, i| now.saturating_duration_since(i.at) <= limit);
    }

    /// Serf's reconnect: with probability failed/alive, join a random failed member.
    pub(super) fn reconnect(&mut self, now: Instant) {
        let mut failed: Vec<SocketAddr> = self
            .members
            .iter()
            .filter(|(_, m)| m.status == MemberStatus::Failed)
            .filter_map(|(id, _)| self.swim.member_info(id))
            .map(|m| m.addr)
            .collect();
        if failed.is_empty() {
            return;
        }
        failed.sort();
        let left = self
            .members
            .iter()
            .filter(|(_, m)| m.status == MemberStatus::Left)
            .count();
        let alive = (self.members.len() - failed.len() - left).max(1);
        let prob = failed.len() as f64 / alive as f64;
        if self.rng.gen::<f64>() > prob {
            debug!(node = %self.name(), "serf: forgoing reconnect for random throttling");
            return;
        }
        let addr = failed[self.rng.gen_range(0..failed.len())];
        info!(node = %self.name(), %addr, "serf: attempting reconnect");
        self.refresh_state();
        self.swim.join(now, &[addr]);
    }
}
