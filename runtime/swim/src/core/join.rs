//! Joining: [`Swim::join`] starts one push/pull per address and [`Event::JoinFinished`]
//! reports once every one of them succeeded or failed.

use super::{Event, JoinId, JoinState, Swim};
use std::net::SocketAddr;
use std::time::Instant;

impl Swim {
    /// Contacts each address with a push/pull join; [`Event::JoinFinished`] reports the result.
    pub fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> JoinId {
        let id = self.next_join;
        self.next_join += 1;
        self.joins.insert(
            id,
            JoinState {
                pending: addrs.len(),
                joined: 0,
                errors: Vec::new(),
            },
        );
        for &dst in addrs {
            self.start_push_pull(now, dst, Some(id));
        }
        self.maybe_finish_join(id);
        id
    }

    pub(super) fn join_result(
        &mut self,
        id: JoinId,
        dst: SocketAddr,
        result: std::result::Result<(), String>,
    ) {
        if let Some(j) = self.joins.get_mut(&id) {
            j.pending = j.pending.saturating_sub(1);
            match result {
                Ok(()) => j.joined += 1,
                Err(e) => j.errors.push((dst, e)),
            }
        }
        self.maybe_finish_join(id);
    }

    fn maybe_finish_join(&mut self, id: JoinId) {
        if self.joins.get(&id).is_some_and(|j| j.pending == 0) {
            let j = self.joins.remove(&id).expect("present");
            self.events.push_back(Event::JoinFinished {
                id,
                joined: j.joined,
                errors: j.errors,
            });
        }
    }
}
