//! Member state transitions (memberlist's `aliveNode`, `suspectNode`, `deadNode`): what an
//! alive, suspect or dead message does to the table, suspicion timeouts, and refuting.

use super::{Event, NodeEntry, Swim, LEAVE_NOTIFY};
use crate::compact::Bytes;
use crate::config::suspicion_timeout;
use crate::loglimit::Source;
use crate::suspicion::Suspicion;
use crate::wire::{encode_message, socket_addr, Alive, Dead, Message, NodeStateKind, Suspect};
use rand::Rng;
use std::time::Instant;
use tracing::{debug, info, warn};

impl Swim {
    // ----- state transitions (memberlist's aliveNode / suspectNode / deadNode) ------------

    pub(super) fn alive_node(&mut self, now: Instant, a: Alive, bootstrap: bool) {
        let is_local = a.node == self.config.name;
        if self.leaving && is_local {
            return;
        }
        if a.vsn.len() >= 3 {
            let (pmin, pmax) = (a.vsn[0], a.vsn[1]);
            if pmin == 0 || pmax == 0 || pmin > pmax {
                if self.warn_allowed_from(now, Source::Any, "bad-alive-versions") {
                    warn!(node = %self.config.name, peer = %a.node, "memberlist: ignoring alive message with bad protocol versions");
                }
                return;
            }
        }
        let Some(addr) = socket_addr(&a.addr, a.port) else {
            if self.warn_allowed_from(now, Source::Any, "bad-alive-address") {
                warn!(node = %self.config.name, peer = %a.node, "memberlist: ignoring alive message with a bad address");
            }
            return;
        };
        // One name lookup per message: a push/pull merges N of these.
        let mut updates_node = false;
        let id = if let Some(id) = self.nodes.id(&a.node) {
            let e = self.nodes.at(id).expect("id checks");
            let old_addr = e.addr.socket_addr();
            if old_addr != addr {
                let can_reclaim = !self.config.dead_node_reclaim_time.is_zero()
                    && self.nodes.down_for(id, now) > self.config.dead_node_reclaim_time;
                if e.state == NodeStateKind::Left || (e.state == NodeStateKind::Dead && can_reclaim)
                {
                    info!(node = %self.config.name, peer = %a.node, old = %old_addr, new = %addr, "memberlist: updating address for left or failed node");
                    updates_node = true;
                } else {
                    warn!(node = %self.config.name, peer = %a.node, mine = %old_addr, theirs = %addr, "memberlist: conflicting address for node");
                    // memberlist's ConflictDelegate: the layer above may resolve it.
                    let existing = e.member(&a.node);
                    self.events.push_back(Event::NameConflict {
                        existing,
                        other: addr,
                    });
                    return;
                }
            }
            id
        } else {
            let entry = NodeEntry {
                addr: addr.into(),
                meta: Bytes::from(a.meta.as_slice()),
                incarnation: 0,
                state: NodeStateKind::Dead,
                vsn: [0; 6],
            };
            let id = self.nodes.insert(&a.node, entry);
            self.nodes.state_changed(id, now);
            // Insert at a random position so probing order stays random.
            let pos = self.rng.gen_range(0..=self.order.len());
            if self.order.len() == self.order.capacity() {
                // Grow by an eighth: the slack of doubling would be paid N times over.
                self.order.reserve_exact((self.order.len() / 8).max(8));
            }
            self.order.push(id);
            let last = self.order.len() - 1;
            self.order.swap(pos, last);
            id
        };
        let e = self.nodes.at(id).expect("inserted above");
        if a.incarnation <= e.incarnation && !is_local && !updates_node {
            return;
        }
        if a.incarnation < e.incarnation && is_local {
            return;
        }
        if !self.suspicions.is_empty() {
            self.suspicions.remove(&a.node);
        }
        let old_state = e.state;
        let old_meta = e.meta.clone();
        if !bootstrap && is_local {
            if a.incarnation == e.incarnation
                && *a.meta == *e.meta
                && a.vsn.as_slice() == e.vsn.as_slice()
            {
                return;
            }
            warn!(node = %self.config.name, "memberlist: refuting an alive message about us");
            self.refute(a.incarnation);
        } else {
            // Encoded from the message itself, then taken back: no copy of its fields.
            let msg = Message::Alive(a);
            let encoded = encode_message(&msg);
            let Message::Alive(a) = msg else {
                unreachable!("built above")
            };
            self.broadcasts.push(encoded, Some(a.node.clone()), None);
            let e = self.nodes.table.get_mut(id).expect("inserted above");
            if a.vsn.len() >= 6 {
                e.vsn.copy_from_slice(&a.vsn[..6]);
            }
            e.incarnation = a.incarnation;
            if *e.meta != *a.meta {
                e.meta = a.meta.into();
            }
            e.addr = addr.into();
            if e.state != NodeStateKind::Alive {
                e.state = NodeStateKind::Alive;
                self.nodes.state_changed(id, now);
            }
            if is_local {
                self.incarnation = self.incarnation.max(a.incarnation);
            }
        }
        let joined = matches!(old_state, NodeStateKind::Dead | NodeStateKind::Left);
        let meta_changed = old_meta != self.nodes.at(id).expect("inserted above").meta;
        if joined || meta_changed {
            let member = self.nodes.member(id).expect("inserted above");
            if joined {
                info!(node = %self.config.name, peer = %member.name, addr = %member.addr, "memberlist: member joined");
                self.events.push_back(Event::MemberJoined(member));
            } else {
                self.events.push_back(Event::MemberUpdated(member));
            }
        }
    }

    pub(super) fn suspect_node(&mut self, now: Instant, s: Suspect) {
        let Some(e) = self.nodes.get(&s.node) else {
            return;
        };
        if s.incarnation < e.incarnation {
            return;
        }
        if let Some(timer) = self.suspicions.get_mut(&s.node) {
            if timer.confirm(&s.from) {
                let subject = s.node.clone();
                self.broadcasts
                    .push(encode_message(&Message::Suspect(s)), Some(subject), None);
            }
            return;
        }
        if e.state != NodeStateKind::Alive {
            return;
        }
        if s.node == self.config.name {
            warn!(node = %self.config.name, from = %s.from, "memberlist: refuting a suspect message");
            self.refute(s.incarnation);
            return;
        }
        let subject = s.node.clone();
        self.broadcasts.push(
            encode_message(&Message::Suspect(s.clone())),
            Some(subject),
            None,
        );
        let n = self.est_num_nodes();
        let e = self.nodes.get_mut(&s.node).expect("checked above");
        e.incarnation = s.incarnation;
        e.state = NodeStateKind::Suspect;
        let id = self.nodes.id(&s.node).expect("checked above");
        self.nodes.state_changed(id, now);
        let mut k = self.config.suspicion_mult.saturating_sub(2);
        if (n as i64) - 2 < k as i64 {
            k = 0;
        }
        let min = suspicion_timeout(self.config.suspicion_mult, n, self.config.probe_interval);
        let max = min * self.config.suspicion_max_timeout_mult;
        debug!(node = %self.config.name, peer = %s.node, from = %s.from, "memberlist: suspecting node");
        self.suspicions
            .insert(s.node.clone(), Suspicion::new(now, &s.from, k, min, max));
    }

    pub(super) fn expire_suspicions(&mut self, now: Instant) {
        let mut due: Vec<String> = self
            .suspicions
            .iter()
            .filter(|(_, s)| s.deadline() <= now)
            .map(|(n, _)| n.clone())
            .collect();
        due.sort_unstable();
        for name in due {
            let s = self.suspicions.remove(&name).expect("listed above");
            let Some(e) = self.nodes.get(&name) else {
                continue;
            };
            if e.state != NodeStateKind::Suspect {
                continue;
            }
            info!(node = %self.config.name, peer = %name, confirmations = s.confirmations(), "memberlist: marking node as failed, suspect timeout reached");
            let d = Dead {
                incarnation: e.incarnation,
                node: name,
                from: self.config.name.clone(),
            };
            self.dead_node(now, d);
        }
    }

    pub(super) fn dead_node(&mut self, now: Instant, d: Dead) {
        let Some(e) = self.nodes.get(&d.node) else {
            return;
        };
        if d.incarnation < e.incarnation {
            return;
        }
        self.suspicions.remove(&d.node);
        if e.dead_or_left() {
            return;
        }
        let is_local = d.node == self.config.name;
        if is_local {
            if !self.leaving {
                warn!(node = %self.config.name, from = %d.from, "memberlist: refuting a dead message");
                self.refute(d.incarnation);
                return;
            }
            let subject = d.node.clone();
            self.broadcasts.push(
                encode_message(&Message::Dead(d.clone())),
                Some(subject),
                Some(LEAVE_NOTIFY),
            );
        } else {
            let subject = d.node.clone();
            self.broadcasts.push(
                encode_message(&Message::Dead(d.clone())),
                Some(subject),
                None,
            );
        }
        let e = self.nodes.get_mut(&d.node).expect("checked above");
        e.incarnation = d.incarnation;
        e.state = if d.node == d.from {
            NodeStateKind::Left
        } else {
            NodeStateKind::Dead
        };
        let member = e.member(&d.node);
        let id = self.nodes.id(&d.node).expect("checked above");
        self.nodes.state_changed(id, now);
        if member.state == NodeStateKind::Left {
            info!(node = %self.config.name, peer = %member.name, "memberlist: member left");
            self.events.push_back(Event::MemberLeft(member));
        } else {
            info!(node = %self.config.name, peer = %member.name, "memberlist: member failed");
            self.events.push_back(Event::MemberFailed(member));
        }
    }

    /// memberlist's `refute`: outbid the accusation with a higher incarnation.
    fn refute(&mut self, accused: u32) {
        let mut inc = self.next_incarnation();
        if accused >= inc {
            // memberlist's skipIncarnation is an atomic add, which wraps at u32::MAX; an
            // accusation at the largest incarnation must not panic.
            self.incarnation = accused.wrapping_add(1);
            inc = self.incarnation;
        }
        self.apply_awareness(1);
        let name = self.config.name.clone();
        let e = self.nodes.get_mut(&name).expect("local node present");
        e.incarnation = inc;
        let a = e.member(&name).alive_msg();
        self.broadcasts
            .push(encode_message(&Message::Alive(a)), Some(name), None);
    }
}
