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
//! A list of records is `hearsay_deploy`'s record-list layout (`encode_records`).

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

/// The largest reply to SYNC, PUSH or STATUS a node accepts.
pub(super) const MAX_SMALL_REPLY: u64 = 16 << 20;

/// The records of a list from `peer` (an empty body is an empty list); records that do not
/// decode are left out, the others taken, and one line says how many were left out.
pub(super) fn decode_list(bytes: &[u8], peer: &str) -> Result<Vec<Deployment>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let list = hearsay_deploy::decode_records(bytes).map_err(|e| e.to_string())?;
    let (mut good, mut bad, mut first) = (Vec::with_capacity(list.len()), 0usize, None);
    for r in list {
        match r {
            Ok(d) => good.push(d),
            Err(e) => {
                bad += 1;
                first.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first {
        tracing::warn!(peer, refused = bad, first = %e, "deploy: records from a peer do not decode");
    }
    Ok(good)
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
        assert_eq!(decode_list(b"", "p").unwrap().len(), 0);
        assert_eq!(
            decode_list(&hearsay_deploy::encode_records([]), "p")
                .unwrap()
                .len(),
            0
        );
        for junk in [
            &b"{"[..],
            b"[]",
            b"[1]",
            b"[{}]",
            b"\xff\xfe",
            b"[\"x\"]",
            b"null",
        ] {
            assert!(decode_list(junk, "p").is_err(), "{junk:?}");
        }
        // A list with one bad record keeps the good ones.
        let key = hearsay_deploy::SigningKey::from_seed([1; 32]);
        let spec = hearsay_deploy::Spec {
            name: "a".into(),
            version: 1,
            module: None,
            events: "*".into(),
            selector: Default::default(),
            limits: Default::default(),
            grants: Default::default(),
            signed_at: 0,
        };
        let good = Deployment::sign(spec, &key).unwrap();
        let text = String::from_utf8(hearsay_deploy::encode_records([&good])).unwrap();
        let spoiled = text.replacen("\"records\":[", "\"records\":[{\"x\":1},", 1);
        assert_eq!(decode_list(spoiled.as_bytes(), "p").unwrap(), vec![good]);
        assert!(decode_states(b"[{]").is_err());
    }
}
