//! UDP message handling: dispatch of each decoded message, answering pings, relaying
//! indirect pings, and the ack handlers that route acks, nacks and their expiry.

use super::{AckHandler, AckKind, Event, Phase, Swim};
use crate::wire::{encode_message, socket_addr, Ack, IndirectPing, Message, Nack, Ping};
use std::net::SocketAddr;
use std::time::Instant;
use tracing::warn;

impl Swim {
    // ----- message handling ------------------------------------------------------------

    pub(super) fn handle_message(&mut self, now: Instant, from: SocketAddr, msg: Message) {
        match msg {
            Message::Ping(p) => self.handle_ping(now, from, p),
            Message::IndirectPing(ind) => self.handle_indirect_ping(now, from, ind),
            Message::Ack(ack) => self.handle_ack(now, ack),
            Message::Nack(nack) => self.handle_nack(nack),
            Message::Suspect(s) => self.suspect_node(now, s),
            Message::Alive(a) => self.alive_node(now, a, false),
            Message::Dead(d) => self.dead_node(now, d),
            Message::User(m) => self.events.push_back(Event::UserMessage(m)),
            Message::Err(e) => {
                if self.warn_allowed(now, from, "remote-error") {
                    warn!(node = %self.config.name, %from, error = %e.error, "memberlist: remote error")
                }
            }
        }
    }

    fn reply_addr(from: SocketAddr, addr: &[u8], port: u16) -> SocketAddr {
        if port > 0 {
            if let Some(a) = socket_addr(addr, port) {
                return a;
            }
        }
        from
    }

    fn handle_ping(&mut self, now: Instant, from: SocketAddr, p: Ping) {
        if !p.node.is_empty() && p.node != self.config.name {
            if self.warn_allowed(now, from, "wrong-node") {
                warn!(node = %self.config.name, %from, target = %p.node, "memberlist: got ping for unexpected node");
            }
            return;
        }
        let ack = Ack {
            seq_no: p.seq_no,
            payload: self.ack_payload.clone(),
        };
        let dst = Self::reply_addr(from, &p.source_addr, p.source_port);
        let name = (!p.source_node.is_empty()).then_some(p.source_node);
        self.send_msg(dst, name, encode_message(&Message::Ack(ack)));
    }

    fn handle_indirect_ping(&mut self, now: Instant, from: SocketAddr, ind: IndirectPing) {
        let Some(target) = socket_addr(&ind.target, ind.port) else {
            if self.warn_allowed(now, from, "bad-target") {
                warn!(node = %self.config.name, %from, "memberlist: indirect ping with a bad target address");
            }
            return;
        };
        let seq = self.next_seq();
        let ping = self.ping_msg(seq, &ind.node);
        let reply_to = Self::reply_addr(from, &ind.source_addr, ind.source_port);
        self.acks.insert(
            seq,
            AckHandler {
                kind: AckKind::Relay {
                    seq: ind.seq_no,
                    reply_to,
                    reply_node: ind.source_node.clone(),
                    nack: ind.nack,
                },
                expires: now + self.config.probe_timeout,
            },
        );
        self.send_msg(target, Some(ind.node), encode_message(&Message::Ping(ping)));
    }

    fn handle_ack(&mut self, now: Instant, ack: Ack) {
        let Some(handler) = self.acks.remove(&ack.seq_no) else {
            return;
        };
        match handler.kind {
            AckKind::Probe => self.probe_acked(now, ack),
            AckKind::Relay {
                seq,
                reply_to,
                reply_node,
                ..
            } => {
                let fwd = Ack {
                    seq_no: seq,
                    payload: Vec::new(),
                };
                let name = (!reply_node.is_empty()).then_some(reply_node);
                self.send_msg(reply_to, name, encode_message(&Message::Ack(fwd)));
            }
        }
    }

    fn handle_nack(&mut self, nack: Nack) {
        if let Some(p) = &mut self.probe {
            if p.seq == nack.seq_no {
                if let Phase::Indirect { nacks, .. } = &mut p.phase {
                    *nacks += 1;
                }
            }
        }
    }

    pub(super) fn expire_acks(&mut self, now: Instant) {
        let mut expired: Vec<u32> = self
            .acks
            .iter()
            .filter(|(_, h)| h.expires <= now)
            .map(|(s, _)| *s)
            .collect();
        // Sorted so a seeded run is reproducible whatever the hash map's order.
        expired.sort_unstable();
        for seq in expired {
            let h = self.acks.remove(&seq).expect("listed above");
            if let AckKind::Relay {
                seq,
                reply_to,
                reply_node,
                nack: true,
            } = h.kind
            {
                let name = (!reply_node.is_empty()).then_some(reply_node);
                self.send_msg(
                    reply_to,
                    name,
                    encode_message(&Message::Nack(Nack { seq_no: seq })),
                );
            }
        }
    }
}
