//! User events (Serf's `UserEvent` / `handleUserEvent`): firing one, and the Lamport-timed
//! ring buffer that delivers each received event once.

use super::Serf;
use crate::clock::LamportTime;
use crate::error::{Error, Result};
use crate::event::{Event, UserEvent};
use crate::messages::{self, Message, UserEventEntry, UserEvents};
use std::time::Instant;
use tracing::warn;

impl Serf {
    /// Fires a user event to the whole cluster (Serf's `UserEvent`).
    pub fn user_event(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        coalesce: bool,
    ) -> Result<()> {
        let raw_size = name.len() + payload.len();
        let limit = self.config.user_event_size_limit;
        if raw_size > limit {
            return Err(Error::UserEventTooLarge {
                size: raw_size,
                limit,
            });
        }
        let msg = messages::UserEvent {
            ltime: self.event_clock.time(),
            name: name.to_owned(),
            payload: payload.to_vec(),
            cc: coalesce,
        };
        let raw = messages::encode(&Message::UserEvent(msg.clone()));
        if raw.len() > limit {
            return Err(Error::UserEventTooLarge {
                size: raw.len(),
                limit,
            });
        }
        self.event_clock.increment();
        self.handle_user_event(now, &msg);
        self.swim.queue_user_broadcast(raw, None);
        self.state_dirty = true;
        self.pump(now);
        Ok(())
    }

    pub(super) fn handle_user_event(&mut self, now: Instant, msg: &messages::UserEvent) -> bool {
        self.event_clock.witness(msg.ltime);
        if msg.ltime < self.event_min_time {
            return false;
        }
        let cur = self.event_clock.time();
        let len = self.event_buffer.len() as LamportTime;
        if cur > len && msg.ltime < cur - len {
            if self.warn_allowed(now, "old-event") {
                warn!(node = %self.name(), event = %msg.name, ltime = msg.ltime, current = cur, "serf: received old event");
            }
            return false;
        }
        let idx = (msg.ltime % len) as usize;
        let entry = UserEventEntry {
            name: msg.name.clone(),
            payload: msg.payload.clone(),
        };
        match &mut self.event_buffer[idx] {
            Some(slot) if slot.ltime == msg.ltime => {
                if slot.events.contains(&entry) {
                    return false;
                }
                slot.events.push(entry);
            }
            slot => {
                *slot = Some(UserEvents {
                    ltime: msg.ltime,
                    events: vec![entry],
                })
            }
        }
        self.state_dirty = true;
        self.events.push_back(Event::User(UserEvent {
            ltime: msg.ltime,
            name: msg.name.clone(),
            payload: msg.payload.clone(),
            coalesce: msg.cc,
        }));
        true
    }
}
