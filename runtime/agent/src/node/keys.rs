//! Serf's key operations over the cluster ([`Node::key_op`]), as its KeyManager runs them.

use super::{Node, QueryResult, Result};
use hearsay_serf::QueryParams;
use std::collections::BTreeMap;

impl Node {
    /// Runs one of Serf's key operations over the cluster as its KeyManager does: sends the
    /// `_serf_<op>` internal query (`op` is `install-key`, `use-key`, `remove-key` or
    /// `list-keys`; `key` is base64, ignored for `list-keys`), gathers every node's answer
    /// until all alive members answered or the query times out, and counts keys, errors and
    /// messages. The outcome carries Serf's error text when some node failed or did not
    /// answer.
    pub async fn key_op(&self, op: &str, key: &str) -> Result<KeyOpOutcome> {
        use base64::Engine as _;
        let mut out = KeyOpOutcome::default();
        let raw = if op == "list-keys" {
            Vec::new()
        } else {
            match base64::engine::general_purpose::STANDARD.decode(key) {
                Ok(k) => k,
                Err(e) => {
                    out.error = Some(format!("illegal base64 data: {e}"));
                    return Ok(out);
                }
            }
        };
        let payload = hearsay_serf::messages::encode_key_request(&raw);
        let name = format!("{}{op}", hearsay_serf::serf::INTERNAL_QUERY_PREFIX);
        let (num_nodes, timeout) = self
            .node
            .call(|serf, _| (serf.memberlist().num_alive(), serf.default_query_timeout()))
            .await?;
        out.num_nodes = num_nodes;
        let params = QueryParams {
            timeout,
            ..QueryParams::default()
        };
        let mut results = match self.query(&name, &payload, params).await {
            Ok(r) => r,
            Err(e) => {
                out.error = Some(e.to_string());
                return Ok(out);
            }
        };
        while out.num_resp < out.num_nodes {
            let (from, payload) = match results.next().await {
                Some(QueryResult::Response { from, payload }) => (from, payload),
                Some(QueryResult::Done) | None => break,
                // Acks, and large responses (key answers are small and never take QUIC).
                Some(_) => continue,
            };
            out.num_resp += 1;
            match hearsay_serf::messages::decode_key_response(&payload) {
                Err(_) => {
                    out.messages.insert(
                        from,
                        format!("Failed to decode key query response: {payload:?}"),
                    );
                    out.num_err += 1;
                }
                Ok(r) => {
                    if !r.result {
                        out.messages.insert(from.clone(), r.message.clone());
                        out.num_err += 1;
                    } else if !r.message.is_empty() {
                        out.messages.insert(from.clone(), r.message.clone());
                    }
                    for k in r.keys {
                        *out.keys.entry(k).or_insert(0) += 1;
                    }
                }
            }
        }
        if out.num_err != 0 {
            out.error = Some(format!(
                "{}/{} nodes reported failure",
                out.num_err, out.num_nodes
            ));
        } else if out.num_resp != out.num_nodes {
            out.error = Some(format!(
                "{}/{} nodes reported success",
                out.num_resp, out.num_nodes
            ));
        }
        Ok(out)
    }
}

/// The aggregate of one key operation over the cluster (Serf's `KeyResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyOpOutcome {
    /// Node name → error or warning text.
    pub messages: BTreeMap<String, String>,
    /// Base64 key → how many nodes have it installed (`list-keys`).
    pub keys: BTreeMap<String, usize>,
    /// Alive members when the query started.
    pub num_nodes: usize,
    /// How many nodes responded.
    pub num_resp: usize,
    /// How many of the responses were errors.
    pub num_err: usize,
    /// Serf's error text when the operation did not succeed everywhere.
    pub error: Option<String>,
}
