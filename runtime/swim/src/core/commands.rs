//! Commands from the layer above: leave, metadata updates, user broadcasts and user
//! messages, the opaque push/pull state and ack payload. ([`Swim::join`] is in `join.rs`.)

use super::{Event, StreamPurpose, Swim};
use crate::broadcast::NotifyId;
use crate::error::{Error, Result};
use crate::wire::{self, Dead, StreamMessage, META_MAX_SIZE};
use std::net::SocketAddr;
use std::time::Instant;

impl Swim {
    /// Broadcasts our graceful leave; [`Event::LeaveComplete`] follows once it went out.
    pub fn leave(&mut self, now: Instant) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        let me = self.local();
        let anyone = self
            .nodes
            .iter()
            .any(|(id, e)| self.nodes.name(id) != me.name && !e.dead_or_left());
        self.dead_node(
            now,
            Dead {
                incarnation: me.incarnation,
                node: me.name.clone(),
                from: me.name.clone(),
            },
        );
        if !anyone {
            self.broadcasts.clear();
            while self.broadcasts.poll_finished().is_some() {}
            self.left = true;
            self.events.push_back(Event::LeaveComplete);
        }
    }

    /// True once [`Swim::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.leaving
    }

    /// True once the graceful leave went out ([`Event::LeaveComplete`] was raised).
    pub fn leave_finished(&self) -> bool {
        self.left
    }

    /// Replaces our metadata and announces it with a new incarnation (memberlist's `UpdateNode`).
    pub fn set_meta(&mut self, now: Instant, meta: Vec<u8>) -> Result<()> {
        if meta.len() > META_MAX_SIZE {
            return Err(Error::MetaTooLarge(meta.len()));
        }
        let mut alive = self.local().alive_msg();
        alive.incarnation = self.next_incarnation();
        alive.meta = meta;
        self.alive_node(now, alive, true);
        Ok(())
    }

    /// Queues an opaque user broadcast to piggyback on gossip, retransmitted like memberlist's
    /// own broadcasts. `subject` lets a newer message replace an older one still queued.
    pub fn queue_user_broadcast(&mut self, msg: Vec<u8>, subject: Option<String>) {
        self.queue_user_broadcast_inner(msg, subject, None);
    }

    /// Like [`Swim::queue_user_broadcast`], and [`Event::UserBroadcastDone`] with the returned
    /// id follows once the broadcast was sent its last time or superseded (Serf waits on this
    /// for its leave intent).
    pub fn queue_user_broadcast_notify(
        &mut self,
        msg: Vec<u8>,
        subject: Option<String>,
    ) -> NotifyId {
        let id = self.next_notify;
        self.next_notify += 1;
        self.queue_user_broadcast_inner(msg, subject, Some(id));
        id
    }

    /// The user broadcasts still queued for gossip, as given to
    /// [`Swim::queue_user_broadcast`] (without the framing byte), in no particular order.
    pub fn queued_user_broadcasts(&self) -> impl Iterator<Item = &[u8]> {
        self.user_broadcasts.messages().map(|m| &m[1..])
    }

    fn queue_user_broadcast_inner(
        &mut self,
        msg: Vec<u8>,
        subject: Option<String>,
        notify: Option<NotifyId>,
    ) {
        // memberlist's getBroadcasts frames each delegate broadcast with the userMsg type
        // byte (counting userMsgOverhead against the budget); framing it here does both.
        let mut framed = Vec::with_capacity(msg.len() + 1);
        framed.push(wire::MessageType::User as u8);
        framed.extend_from_slice(&msg);
        self.user_broadcasts.push(framed, subject, notify);
    }

    /// Sends an opaque user message in one UDP packet (memberlist's `SendToAddress`).
    pub fn send_user_packet(&mut self, dst: SocketAddr, msg: &[u8]) {
        let mut buf = Vec::with_capacity(msg.len() + 1);
        buf.push(wire::MessageType::User as u8);
        buf.extend_from_slice(msg);
        self.send_raw(dst, None, buf);
    }

    /// Sends an opaque user message over a stream (memberlist's `SendReliable`).
    pub fn send_user_stream(&mut self, now: Instant, dst: SocketAddr, msg: Vec<u8>) {
        let payload = self
            .codec
            .seal_stream(&StreamMessage::User(msg), &mut self.rng);
        self.open_stream(now, dst, payload, false, StreamPurpose::Fire);
    }

    /// Sets the opaque state sent in push/pull exchanges (Serf's `LocalState`).
    pub fn set_user_state(&mut self, state: Vec<u8>) {
        self.user_state = state;
    }

    /// Sets the payload we attach to acks (Serf's Vivaldi coordinate).
    pub fn set_ack_payload(&mut self, payload: Vec<u8>) {
        self.ack_payload = payload;
    }
}
