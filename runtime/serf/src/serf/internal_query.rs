//! Serf's internal queries (`internal_query.go`): `_serf_ping`, the `_serf_conflict` vote
//! about our name, and the key queries that change the keyring.

use super::{QueryParams, Serf, INTERNAL_QUERY_PREFIX};
use crate::messages::{self, Query, QueryResponse};
use hearsay_swim::wire::{ip_bytes, socket_addr};
use std::net::SocketAddr;
use std::time::Instant;
use tracing::warn;

impl Serf {
    /// Serf's `handleNodeConflict`: conflicts about other nodes are only logged; one about us
    /// starts a `_serf_conflict` vote (unless one is running).
    pub(super) fn handle_name_conflict(
        &mut self,
        now: Instant,
        existing: &hearsay_swim::Member,
        other: SocketAddr,
    ) {
        if existing.name != self.config.memberlist.name {
            warn!(node = %self.name(), peer = %existing.name, ours = %existing.addr, theirs = %other, "serf: name conflict: both addresses claim the node");
            return;
        }
        warn!(node = %self.name(), theirs = %other, "serf: another node claims our name; starting conflict resolution");
        if self.conflict_vote.is_some() {
            return;
        }
        let name = self.name().to_owned();
        let query = format!("{INTERNAL_QUERY_PREFIX}conflict");
        match self.query(now, &query, name.as_bytes(), QueryParams::default()) {
            Ok(id) => self.conflict_vote = Some((id, 0, 0)),
            Err(e) => {
                warn!(node = %self.name(), error = %e, "serf: failed to start conflict resolution")
            }
        }
    }

    /// Counts one `_serf_conflict` answer: does the responder know our name at our address?
    pub(super) fn count_conflict_vote(&mut self, payload: &[u8]) {
        let local = self.swim.local().addr;
        let Some((_, responses, matching)) = self.conflict_vote.as_mut() else {
            return;
        };
        match messages::decode_conflict_response(payload) {
            Ok(member) => {
                *responses += 1;
                if member.is_some_and(|m| socket_addr(&m.addr, m.port) == Some(local)) {
                    *matching += 1;
                }
            }
            Err(e) => {
                warn!(node = %self.config.memberlist.name, error = %e, "serf: invalid conflict query response")
            }
        }
    }

    /// Serf's internal queries (`internal_query.go`): `_serf_ping` needs only the ack;
    /// `_serf_conflict` answers with our view of the node; key queries change the keyring.
    pub(super) fn handle_internal_query(&mut self, now: Instant, q: &Query) {
        let op = &q.name[INTERNAL_QUERY_PREFIX.len()..];
        let reply = match op {
            "ping" => return,
            "conflict" => {
                let node = String::from_utf8_lossy(&q.payload).into_owned();
                if node == self.name() {
                    return;
                }
                let Some(m) = self.member_named(&node) else {
                    return;
                };
                let cm = messages::ConflictMember {
                    addr: ip_bytes(m.addr.ip()),
                    port: m.addr.port(),
                    name: m.name,
                    tags: m.tags,
                    status: m.status as i64,
                    protocol_min: m.vsn[0],
                    protocol_max: m.vsn[1],
                    protocol_cur: m.vsn[2],
                    delegate_min: m.vsn[3],
                    delegate_max: m.vsn[4],
                    delegate_cur: m.vsn[5],
                };
                messages::encode_conflict_response(Some(&cm))
            }
            "install-key" | "use-key" | "remove-key" | "list-keys" => {
                self.key_query(op, &q.payload)
            }
            other => {
                if self.warn_allowed(now, "internal-query") {
                    warn!(node = %self.name(), query = other, "serf: unhandled internal query");
                }
                return;
            }
        };
        let resp = QueryResponse {
            ltime: q.ltime,
            id: q.id,
            from: self.name().to_owned(),
            flags: 0,
            payload: reply,
        };
        if let Err(e) = self.send_response(now, resp) {
            warn!(node = %self.name(), query = %q.name, error = %e, "serf: failed to answer internal query");
        }
    }

    fn key_query(&mut self, op: &str, payload: &[u8]) -> Vec<u8> {
        let mut resp = messages::KeyResponse::default();
        let result: std::result::Result<(), String> = (|| {
            if op == "list-keys" {
                let kr = self
                    .swim
                    .keyring()
                    .ok_or("Keyring is empty (encryption not enabled)")?;
                resp.keys = kr
                    .keys()
                    .iter()
                    .map(|k| hearsay_swim::keyring::encode_base64_key(k))
                    .collect();
                resp.primary_key = hearsay_swim::keyring::encode_base64_key(kr.primary());
                return Ok(());
            }
            let key = messages::decode_key_request(payload)
                .map_err(|e| format!("Failed to decode key request: {e}"))?;
            let kr = self
                .swim
                .keyring_mut()
                .ok_or("No keyring to modify (encryption not enabled)")?;
            match op {
                "install-key" => kr.add_key(&key),
                "use-key" => kr.use_key(&key),
                _ => kr.remove_key(&key),
            }
            .map_err(|e| keyring_error_text(&e))
        })();
        match result {
            Ok(()) => resp.result = true,
            Err(e) => {
                warn!(node = %self.name(), op, error = %e, "serf: key query failed");
                resp.message = e;
            }
        }
        messages::encode_key_response(&resp)
    }
}

/// A keyring error in memberlist's words: a key query's answer carries it, and `serf keys`
/// shows it per node beside the Go nodes' own.
fn keyring_error_text(e: &hearsay_swim::Error) -> String {
    match e {
        hearsay_swim::Error::BadKeyLength(_) => "key size must be 16, 24 or 32 bytes".to_owned(),
        hearsay_swim::Error::KeyNotInstalled => "Requested key is not in the keyring".to_owned(),
        hearsay_swim::Error::RemovePrimaryKey => {
            "Removing the primary key is not allowed".to_owned()
        }
        other => other.to_string(),
    }
}
