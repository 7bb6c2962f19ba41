//! What hearsay agents ask each other about deployments, as requests on their QUIC endpoints
//! (the pinned, member-only connections large query replies use; Serf members never see
//! them). Each request names a service:
//!
//! - [`PUSH`]: body, a list of records; the peer merges them (a rumor of new deployments).
//!   Reply: empty.
//! - [`SYNC`]: body, the asker's set digest (hex); reply: empty when the peer's set has the
//!   same digest, else the peer's current records (anti-entropy).
//! - [`FETCH`]: body, a module's sha256 (hex); reply: the module's bytes, or an error when the
//!   peer does not hold it.
//! - [`STATUS`]: no body; reply: the peer's [`NodeState`] per deployment, JSON.
//!
//! A list of records is a JSON array of the records' own encodings.

use super::NodeState;
use hearsay_deploy::Deployment;

/// Service: merge these records.
pub(super) const PUSH: u8 = 1;
/// Service: here is my digest; your records if yours differs.
pub(super) const SYNC: u8 = 2;
/// Service: the bytes of this module.
pub(super) const FETCH: u8 = 3;
/// Service: your deployments' states.
pub(super) const STATUS: u8 = 4;

/// The most records one list may carry (a set is one record per deployment name).
const MAX_RECORDS: usize = 4096;
/// The largest reply to SYNC, PUSH or STATUS a node accepts.
pub(super) const MAX_SMALL_REPLY: u64 = 16 << 20;

/// A list of records.
pub(super) fn encode_list<'a>(records: impl IntoIterator<Item = &'a Deployment>) -> Vec<u8> {
    let mut out = b"[".to_vec();
    for (i, r) in records.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&r.encode());
    }
    out.push(b']');
    out
}

/// The records of a list; a record that does not decode is an error naming its place.
pub(super) fn decode_list(bytes: &[u8]) -> Result<Vec<Deployment>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a list of records: {e}"))?;
    if values.len() > MAX_RECORDS {
        return Err(format!(
            "{} records; at most {MAX_RECORDS} are taken",
            values.len()
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let raw = serde_json::to_vec(v).map_err(|e| e.to_string())?;
            Deployment::decode(&raw).map_err(|e| format!("record {i}: {e}"))
        })
        .collect()
}

/// A node's states, as a STATUS reply carries them.
pub(super) fn encode_states(states: &[NodeState]) -> Vec<u8> {
    serde_json::to_vec(states).unwrap_or_default()
}

/// A STATUS reply.
pub(super) fn decode_states(bytes: &[u8]) -> Result<Vec<NodeState>, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("a bad status reply: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_lists_are_errors_not_panics() {
        assert_eq!(decode_list(b"").unwrap().len(), 0);
        assert_eq!(decode_list(b"[]").unwrap().len(), 0);
        for junk in [&b"{"[..], b"[1]", b"[{}]", b"\xff\xfe", b"[\"x\"]", b"null"] {
            assert!(decode_list(junk).is_err(), "{junk:?}");
        }
        assert!(decode_states(b"[{]").is_err());
    }
}
