//! Failure detection (memberlist's `probe`): the probe round, direct then indirect and TCP
//! pings, Lifeguard's awareness (health score), reaping and reshuffling the probe order,
//! and the random peer choice shared with gossip.

use super::{
    AckHandler, AckKind, Event, Member, NodeEntry, Phase, Probe, StreamPurpose, StreamRequest, Swim,
};
use crate::table::NameId;
use crate::wire::{
    encode_compound, encode_message, ip_bytes, Ack, IndirectPing, Message, NodeStateKind,
    StreamMessage, Suspect,
};
use rand::seq::SliceRandom;
use rand::Rng;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

impl Swim {
    // ----- probing ---------------------------------------------------------------------

    fn scaled_probe_interval(&self) -> Duration {
        self.config.probe_interval * (self.awareness + 1)
    }

    pub(super) fn apply_awareness(&mut self, delta: i64) {
        let max = self.config.awareness_max_multiplier.saturating_sub(1) as i64;
        let before = self.awareness;
        self.awareness = (self.awareness as i64 + delta).clamp(0, max) as u32;
        if self.awareness != before {
            debug!(node = %self.config.name, score = self.awareness, "memberlist: health score changed");
        }
    }

    /// memberlist's `probe`: pick the next node in the shuffled order that is not us and not
    /// dead or left; reshuffle and reap when the order wraps.
    pub(super) fn start_probe(&mut self, now: Instant) {
        let interval = self.scaled_probe_interval();
        self.next_probe = now + interval;
        let mut checked = 0;
        let target = loop {
            if checked >= self.order.len() {
                return;
            }
            if self.probe_index >= self.order.len() {
                self.reset_nodes(now);
                self.probe_index = 0;
                checked += 1;
                continue;
            }
            let id = self.order[self.probe_index];
            self.probe_index += 1;
            let skip = match self.nodes.at(id) {
                Some(e) => self.nodes.name(id) == self.config.name || e.dead_or_left(),
                None => true,
            };
            if skip {
                checked += 1;
                continue;
            }
            break id;
        };
        let entry = self.nodes.at(target).expect("picked above");
        let addr = entry.addr.socket_addr();
        let state = entry.state;
        let incarnation = entry.incarnation;
        let target = self.nodes.name(target).to_owned();
        let seq = self.next_seq();
        let ping = encode_message(&Message::Ping(self.ping_msg(seq, &target)));
        self.acks.insert(
            seq,
            AckHandler {
                kind: AckKind::Probe,
                expires: now + interval,
            },
        );
        self.probe = Some(Probe {
            seq,
            target: target.clone(),
            sent: now,
            timeout_at: now + self.config.probe_timeout,
            deadline: now + interval,
            phase: Phase::Direct,
        });
        if state == NodeStateKind::Alive {
            self.send_msg(addr, Some(target), ping);
        } else {
            // Tack on the suspicion so the node gets a chance to refute it at once.
            let s = Suspect {
                incarnation,
                node: target.clone(),
                from: self.config.name.clone(),
            };
            let compound = encode_compound(&[ping, encode_message(&Message::Suspect(s))]);
            self.send_raw(addr, Some(&target), compound);
        }
    }

    pub(super) fn probe_acked(&mut self, now: Instant, ack: Ack) {
        let Some(p) = self.probe.take() else { return };
        if matches!(p.phase, Phase::Direct) {
            self.events.push_back(Event::PingComplete {
                node: p.target.clone(),
                rtt: now.saturating_duration_since(p.sent),
                payload: ack.payload,
            });
        }
        self.apply_awareness(-1);
    }

    pub(super) fn advance_probe(&mut self, now: Instant) {
        let Some(p) = &self.probe else { return };
        match p.phase {
            Phase::Direct if now >= p.timeout_at => self.start_indirect(),
            Phase::Indirect { .. } if now >= p.deadline => self.finish_failed_probe(now),
            _ => {}
        }
    }

    fn start_indirect(&mut self) {
        let p = self.probe.as_ref().expect("probe in progress");
        let (seq, target_name, deadline) = (p.seq, p.target.clone(), p.deadline);
        debug!(node = %self.config.name, target = %target_name, "memberlist: failed ping (timeout reached)");
        let Some(target) = self
            .nodes
            .id(&target_name)
            .and_then(|id| self.nodes.member(id))
        else {
            self.probe = None;
            return;
        };
        let me = self.config.name.clone();
        let peers = self.k_random_nodes(self.config.indirect_checks, |name, e, _| {
            name == me || name == target_name || e.state != NodeStateKind::Alive
        });
        let mut expected_nacks = 0;
        let adv = self.config.advertise;
        for peer in peers {
            let nack = peer.vsn[1] >= 4;
            if nack {
                expected_nacks += 1;
            }
            let ind = IndirectPing {
                seq_no: seq,
                target: ip_bytes(target.addr.ip()),
                port: target.addr.port(),
                node: target.name.clone(),
                nack,
                source_addr: ip_bytes(adv.ip()),
                source_port: adv.port(),
                source_node: me.clone(),
            };
            self.send_msg(
                peer.addr,
                Some(peer.name),
                encode_message(&Message::IndirectPing(ind)),
            );
        }
        let mut tcp = None;
        if !self.config.disable_tcp_pings && target.vsn[1] >= 3 {
            let ping = StreamMessage::Ping(self.ping_msg(seq, &target.name));
            let payload = self.codec.seal_stream(&ping, &mut self.rng);
            let id = self.next_stream;
            self.next_stream += 1;
            self.streams.insert(id, StreamPurpose::TcpPing { seq });
            self.stream_requests.push_back(StreamRequest {
                id,
                dst: target.addr,
                payload,
                expect_reply: true,
                deadline,
            });
            tcp = Some(id);
        }
        if let Some(p) = &mut self.probe {
            p.phase = Phase::Indirect {
                expected_nacks,
                nacks: 0,
                tcp,
                tcp_ok: false,
            };
        }
    }

    fn finish_failed_probe(&mut self, now: Instant) {
        let Some(p) = self.probe.take() else { return };
        self.acks.remove(&p.seq);
        let Phase::Indirect {
            expected_nacks,
            nacks,
            tcp,
            tcp_ok,
        } = p.phase
        else {
            return;
        };
        if let Some(id) = tcp {
            self.streams.remove(&id);
        }
        if tcp_ok {
            warn!(node = %self.config.name, target = %p.target, "memberlist: was able to connect over TCP but not UDP, network may be misconfigured");
            self.apply_awareness(-1);
            return;
        }
        let delta = if expected_nacks > 0 {
            expected_nacks.saturating_sub(nacks) as i64
        } else {
            1
        };
        self.apply_awareness(delta);
        let Some(entry) = self.nodes.get(&p.target) else {
            return;
        };
        info!(node = %self.config.name, target = %p.target, "memberlist: suspect has failed, no acks received");
        let s = Suspect {
            incarnation: entry.incarnation,
            node: p.target,
            from: self.config.name.clone(),
        };
        self.suspect_node(now, s);
    }

    /// memberlist's `resetNodes`: forget nodes dead or left for longer than
    /// `gossip_to_the_dead_time`, then reshuffle the probe order.
    fn reset_nodes(&mut self, now: Instant) {
        let limit = self.config.gossip_to_the_dead_time;
        let reaped: Vec<String> = self
            .nodes
            .iter()
            .filter(|(id, e)| {
                // memberlist would reap its own entry too once it has left, after which its
                // LocalNode dereferences nil; we keep it so `local()` stays valid.
                self.nodes.name(*id) != self.config.name
                    && e.dead_or_left()
                    && self.nodes.down_for(*id, now) > limit
            })
            .map(|(id, _)| self.nodes.name(id).to_owned())
            .collect();
        for name in reaped {
            debug!(node = %self.config.name, reaped = %name, "memberlist: forgetting dead node");
            self.nodes.remove(&name);
            self.suspicions.remove(&name);
        }
        // Sized exactly: collecting a filtered iterator would double its way up.
        let mut order: Vec<NameId> = Vec::with_capacity(self.nodes.len());
        order.extend(self.nodes.ids());
        let nodes = &self.nodes;
        order.sort_by(|&a, &b| nodes.name(a).cmp(nodes.name(b)));
        order.shuffle(&mut self.rng);
        self.order = order;
    }

    pub(super) fn k_random_nodes(
        &mut self,
        k: usize,
        exclude: impl Fn(&str, &NodeEntry, Option<Instant>) -> bool,
    ) -> Vec<Member> {
        let n = self.order.len();
        let mut out: Vec<Member> = Vec::with_capacity(k);
        let mut tries = 0;
        while tries < 3 * n && out.len() < k {
            tries += 1;
            let id = self.order[self.rng.gen_range(0..n)];
            let Some(e) = self.nodes.at(id) else {
                continue;
            };
            let name = self.nodes.name(id);
            let down = self.nodes.down_since.get(&id).copied();
            if exclude(name, e, down) || out.iter().any(|m| m.name == name) {
                continue;
            }
            out.push(e.member(name));
        }
        out
    }
}
