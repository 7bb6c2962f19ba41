//! [`DeploySet`]: the deployments one node holds, the merge rule that makes every node's set
//! converge, and the set's file and sync encoding.
//!
//! Merging is a join: a record replaces the current one of its name only if it
//! [supersedes](Deployment::supersedes) it, so the outcome does not depend on the order in
//! which records arrive, and equal sets have equal [digests](DeploySet::digest). Tombstones
//! (undeploys) are records like any other, so an older version can never come back.

use crate::error::Error;
use crate::keys::{Digest, PublicKey};
use crate::record::{Deployment, Wire};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// How many superseded records a set keeps per name (newest first), for `hearsay deploy
/// history` and rollbacks.
pub const HISTORY_LEN: usize = 8;
/// The largest encoded set or record list [`DeploySet::decode`] and [`decode_records`] read.
pub const MAX_SET_BYTES: usize = 64 * 1024 * 1024;
/// The format tag at the top of an encoded set, so a future layout can be told apart.
const SET_FORMAT: &str = "hearsay-deploy-set-v1";

/// What [`DeploySet::merge`] did with a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Merge {
    /// The first record of its name: now current.
    Added,
    /// It superseded the current record, which moved to the history.
    Replaced {
        /// The version it replaced.
        old_version: u64,
    },
    /// This exact record is already current.
    Known,
    /// The current record of its name supersedes it: dropped.
    Stale {
        /// The current version.
        have: u64,
    },
    /// Its signer is not a trusted key: dropped.
    Untrusted {
        /// Who signed it.
        signer: PublicKey,
    },
}

impl Merge {
    /// Whether the record became current (so the node has news to spread).
    pub fn is_new(&self) -> bool {
        matches!(self, Merge::Added | Merge::Replaced { .. })
    }
}

/// The current deployment per name, plus the last [`HISTORY_LEN`] superseded ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploySet {
    trusted: BTreeSet<PublicKey>,
    current: BTreeMap<String, Deployment>,
    history: BTreeMap<String, Vec<Deployment>>,
    /// [`digest`](Self::digest), kept up to date because every sync compares it.
    digest: Digest,
}

impl DeploySet {
    /// An empty set accepting records signed by any of `trusted` (none: nothing is accepted).
    pub fn new(trusted: Vec<PublicKey>) -> Self {
        let mut set = DeploySet {
            trusted: trusted.into_iter().collect(),
            current: BTreeMap::new(),
            history: BTreeMap::new(),
            digest: Digest::default(),
        };
        set.digest = set.compute_digest();
        set
    }

    /// The keys whose records this set accepts.
    pub fn trusted(&self) -> impl Iterator<Item = &PublicKey> {
        self.trusted.iter()
    }

    /// Merges one record; see [`Merge`] for the outcomes.
    pub fn merge(&mut self, d: Deployment) -> Merge {
        if !self.trusted.contains(&d.signer()) {
            return Merge::Untrusted { signer: d.signer() };
        }
        let Some(cur) = self.current.get(d.name()) else {
            self.current.insert(d.name().to_string(), d);
            self.digest = self.compute_digest();
            return Merge::Added;
        };
        if cur.id() == d.id() {
            return Merge::Known;
        }
        if !d.supersedes(cur) {
            return Merge::Stale {
                have: cur.version(),
            };
        }
        let name = d.name().to_string();
        let old = self.current.insert(name.clone(), d);
        let old = old.expect("a current record was just found under this name");
        let old_version = old.version();
        let past = self.history.entry(name).or_default();
        past.insert(0, old);
        past.truncate(HISTORY_LEN);
        self.digest = self.compute_digest();
        Merge::Replaced { old_version }
    }

    /// The current records in name order, tombstones included.
    pub fn current(&self) -> impl Iterator<Item = &Deployment> {
        self.current.values()
    }

    /// The current record of `name`.
    pub fn get(&self, name: &str) -> Option<&Deployment> {
        self.current.get(name)
    }

    /// The records `name` superseded, newest first (at most [`HISTORY_LEN`]).
    pub fn history(&self, name: &str) -> &[Deployment] {
        self.history.get(name).map_or(&[], Vec::as_slice)
    }

    /// How many names the set holds (tombstones included).
    pub fn len(&self) -> usize {
        self.current.len()
    }

    /// Whether the set holds no record at all.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    /// sha256 over the current records' ids in name order: two sets have equal digests
    /// exactly when they hold the same current records. History is not included, since it
    /// does not change what runs.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    fn compute_digest(&self) -> Digest {
        let mut h = Sha256::new();
        for d in self.current.values() {
            h.update(d.id().0);
        }
        Digest(h.finalize().into())
    }

    /// The set as bytes: every current and history record, oldest first per name, so
    /// [`decode`](Self::decode) rebuilds the same set by merging them in order.
    pub fn encode(&self) -> Vec<u8> {
        let mut records = Vec::new();
        for (name, d) in &self.current {
            records.extend(self.history(name).iter().rev());
            records.push(d);
        }
        encode_records(records)
    }

    /// Reads [`encode`](Self::encode)'s form and merges every record into a new set
    /// trusting `trusted`: records that do not verify, decode or are not trusted (any more)
    /// are dropped. Fails only if the outer layout is wrong.
    pub fn decode(bytes: &[u8], trusted: Vec<PublicKey>) -> Result<Self, Error> {
        let mut set = DeploySet::new(trusted);
        for d in decode_records(bytes)?.into_iter().flatten() {
            set.merge(d);
        }
        Ok(set)
    }

    /// Which of my current records `theirs` (a peer's records, from a sync reply) lacks or
    /// holds an older version of, in name order: what to push back so the peer catches up.
    pub fn newer_than(&self, theirs: &[Deployment]) -> Vec<Deployment> {
        let mut best: BTreeMap<&str, &Deployment> = BTreeMap::new();
        for d in theirs {
            match best.get(d.name()) {
                Some(b) if !d.supersedes(b) => {}
                _ => {
                    best.insert(d.name(), d);
                }
            }
        }
        self.current
            .values()
            .filter(|mine| best.get(mine.name()).is_none_or(|t| mine.supersedes(t)))
            .cloned()
            .collect()
    }
}

/// The layout of an encoded set or record list.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetWire<R> {
    format: String,
    records: Vec<R>,
}

/// Encodes a list of records (a sync reply or a push) in the set's layout.
pub fn encode_records<'a>(records: impl IntoIterator<Item = &'a Deployment>) -> Vec<u8> {
    let wire = SetWire {
        format: SET_FORMAT.to_string(),
        records: records.into_iter().map(Deployment::to_wire).collect(),
    };
    serde_json::to_vec(&wire).expect("strings and lists always serialize")
}

/// Decodes a list of records in the set's layout. The outer result fails if the layout is
/// wrong; each record has its own result, so one bad record does not hide the others and the
/// caller can log each refusal.
pub fn decode_records(bytes: &[u8]) -> Result<Vec<Result<Deployment, Error>>, Error> {
    if bytes.len() > MAX_SET_BYTES {
        return Err(Error::TooLarge {
            what: "an encoded deployment set (bytes)",
            size: bytes.len(),
            limit: MAX_SET_BYTES,
        });
    }
    let malformed = |reason: String| Error::Malformed {
        what: "deployment set",
        reason,
    };
    let wire: SetWire<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    if wire.format != SET_FORMAT {
        return Err(malformed(format!(
            "format {:.40?}, expected {SET_FORMAT:?}",
            wire.format
        )));
    }
    Ok(wire.records.into_iter().map(decode_value).collect())
}

fn decode_value(v: serde_json::Value) -> Result<Deployment, Error> {
    let wire: Wire = serde_json::from_value(v).map_err(|e| Error::Malformed {
        what: "deployment",
        reason: e.to_string(),
    })?;
    Deployment::from_wire(wire)
}

#[cfg(test)]
mod tests;
