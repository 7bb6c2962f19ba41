//! The signed record: a [`Spec`] (what to run, where, with which limits and grants) and the
//! [`Deployment`] that carries it with its signer and signature.
//!
//! A deployment keeps the exact bytes that were signed, so re-encoding never depends on how
//! serde would print the spec today: what was verified is what is forwarded. Those bytes are
//! `serde_json` of the spec; the signature covers them behind a domain-separation prefix so a
//! signature made for anything else with the same key can never pass for a deployment.

use crate::error::Error;
use crate::keys::{Digest, PublicKey, SigningKey};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// What every signature covers before the spec bytes.
pub const DOMAIN: &[u8] = b"hearsay-deploy-v1\0";
/// The longest handler name.
pub const MAX_NAME_LEN: usize = 64;
/// The largest signed spec, in bytes of JSON.
pub const MAX_SPEC_BYTES: usize = 64 * 1024;
/// The largest encoded deployment [`Deployment::decode`] reads.
pub const MAX_RECORD_BYTES: usize = 2 * MAX_SPEC_BYTES;
/// The longest event filter text.
pub const MAX_EVENTS_LEN: usize = 1024;
/// The most entries in `selector`, `limits`, `grants.dirs` or `grants.env`.
pub const MAX_ENTRIES: usize = 64;
/// The longest key or value in any of those.
pub const MAX_ENTRY_LEN: usize = 4096;

/// The WebAssembly module a deployment runs: named by content, fetched by the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleRef {
    /// The sha256 of the module's bytes.
    pub sha256: Digest,
    /// The module's size in bytes (at least 1), so a fetch can be bounded before it starts.
    pub size: u64,
}

/// What the handler may reach beyond its event. [`Default`] grants nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Host directories the handler may open (interpreted by the agent).
    pub dirs: Vec<String>,
    /// Environment variables the handler sees.
    pub env: BTreeMap<String, String>,
    /// Whether the handler may emit user events.
    pub emit: bool,
    /// Whether the handler sees real wall and monotonic clocks.
    #[serde(default)]
    pub clocks: bool,
    /// Host directories the handler may write (interpreted by the agent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write_dirs: Vec<String>,
    /// Origins and path prefixes the handler may send HTTP requests to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<String>,
    /// Names of commands the handler may run; each agent's own `deploy_grants.commands` says
    /// what a name runs there (a deployment never carries an argv).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// The quota of a key-value store, e.g. `16MiB`; none: no store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv: Option<String>,
    /// Patterns of this node's tag names the handler may set, e.g. `service:*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// What an operator deploys. Unknown fields are refused when decoding: a newer field might
/// restrict the handler, and silently dropping a restriction would widen it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The handler's name: 1 to 64 of `[a-z0-9._-]`, starting with a letter or digit.
    pub name: String,
    /// At least 1; a higher version of the same name replaces a lower one.
    pub version: u64,
    /// The module to run; `None` undeploys (a tombstone that keeps older versions out).
    pub module: Option<ModuleRef>,
    /// The handler's event filter, e.g. `query:greet` (interpreted by the agent).
    pub events: String,
    /// Tag name to regex: which nodes run it (Serf's `-tag` filter; interpreted by the agent).
    pub selector: BTreeMap<String, String>,
    /// Resource limits, e.g. `memory` to `32MiB` (interpreted by the agent).
    pub limits: BTreeMap<String, String>,
    /// What the handler may reach.
    pub grants: Grants,
    /// Unix seconds when it was signed; informational, never compared.
    pub signed_at: u64,
}

impl Spec {
    /// Checks the name, the version and every size limit.
    pub fn validate(&self) -> Result<(), Error> {
        validate_name(&self.name)?;
        if self.version == 0 {
            return Err(Error::VersionZero);
        }
        if self.module.as_ref().is_some_and(|m| m.size == 0) {
            return Err(Error::InvalidField {
                field: "module.size",
                reason: "a module has at least one byte".into(),
            });
        }
        check_len("events (bytes)", self.events.len(), MAX_EVENTS_LEN)?;
        check_map("selector (entries)", &self.selector)?;
        check_map("limits (entries)", &self.limits)?;
        check_map("grants.env (entries)", &self.grants.env)?;
        let g = &self.grants;
        for (field, list) in [
            ("grants.dirs", &g.dirs),
            ("grants.write_dirs", &g.write_dirs),
            ("grants.http", &g.http),
            ("grants.commands", &g.commands),
            ("grants.tags", &g.tags),
        ] {
            check_len(field, list.len(), MAX_ENTRIES)?;
            for entry in list {
                check_len(field, entry.len(), MAX_ENTRY_LEN)?;
                if entry.is_empty() {
                    return Err(Error::InvalidField {
                        field,
                        reason: "an entry is empty".into(),
                    });
                }
            }
        }
        if let Some(kv) = &g.kv {
            check_len("grants.kv", kv.len(), MAX_ENTRY_LEN)?;
        }
        Ok(())
    }
}

/// Checks a handler name: it becomes a file name and a log field, hence the narrow alphabet.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let bad = |reason| Error::InvalidName {
        name: name.chars().take(80).collect(),
        reason,
    };
    let first = name.bytes().next().ok_or_else(|| bad("it is empty"))?;
    if name.len() > MAX_NAME_LEN {
        return Err(bad("it is longer than 64 characters"));
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(bad("it must start with a lowercase letter or a digit"));
    }
    let allowed = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c);
    if !name.bytes().all(allowed) {
        return Err(bad("it may hold only a-z, 0-9, '.', '_' and '-'"));
    }
    Ok(())
}

fn check_len(what: &'static str, size: usize, limit: usize) -> Result<(), Error> {
    if size > limit {
        return Err(Error::TooLarge { what, size, limit });
    }
    Ok(())
}

fn check_map(what: &'static str, map: &BTreeMap<String, String>) -> Result<(), Error> {
    check_len(what, map.len(), MAX_ENTRIES)?;
    for (k, v) in map {
        check_len("a key (bytes)", k.len(), MAX_ENTRY_LEN)?;
        check_len("a value (bytes)", v.len(), MAX_ENTRY_LEN)?;
    }
    Ok(())
}

/// A signed [`Spec`]: built by [`sign`](Self::sign) or [`decode`](Self::decode), so its
/// signature always verified and its spec always validated. Trust is the set's business.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    spec: Spec,
    /// The exact bytes the signature covers (after [`DOMAIN`]).
    spec_bytes: Vec<u8>,
    signer: PublicKey,
    signature: [u8; 64],
    /// sha256 of [`encode`](Self::encode), kept because sets compare ids on every sync.
    id: Digest,
}

/// The wire and file form of a deployment.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Wire {
    spec: String,
    signer: String,
    signature: String,
}

impl Deployment {
    /// Validates `spec` and signs its JSON bytes with `key`.
    pub fn sign(spec: Spec, key: &SigningKey) -> Result<Self, Error> {
        spec.validate()?;
        let spec_bytes = serde_json::to_vec(&spec).map_err(|e| Error::Malformed {
            what: "spec",
            reason: e.to_string(),
        })?;
        check_len("the spec (bytes)", spec_bytes.len(), MAX_SPEC_BYTES)?;
        let signature = key.sign(&signed_message(&spec_bytes));
        Ok(Self::assemble(spec, spec_bytes, key.public(), signature))
    }

    fn assemble(spec: Spec, spec_bytes: Vec<u8>, signer: PublicKey, signature: [u8; 64]) -> Self {
        let mut d = Deployment {
            spec,
            spec_bytes,
            signer,
            signature,
            id: Digest::default(),
        };
        d.id = Digest::of(&d.encode());
        d
    }

    /// The signed spec.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The handler name (the spec's).
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The version (the spec's).
    pub fn version(&self) -> u64 {
        self.spec.version
    }

    /// Whether this record undeploys its name.
    pub fn is_tombstone(&self) -> bool {
        self.spec.module.is_none()
    }

    /// Who signed it.
    pub fn signer(&self) -> PublicKey {
        self.signer
    }

    /// The 64 signature bytes.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// sha256 of [`encode`](Self::encode): names this exact record.
    pub fn id(&self) -> Digest {
        self.id
    }

    /// The wire and file form: JSON `{"spec": base64, "signer": "ed25519:..", "signature":
    /// base64}`, where `spec` is the exact signed bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_wire()).expect("three strings always serialize")
    }

    pub(crate) fn to_wire(&self) -> Wire {
        Wire {
            spec: STANDARD.encode(&self.spec_bytes),
            signer: self.signer.to_string(),
            signature: STANDARD.encode(self.signature),
        }
    }

    /// Parses [`encode`](Self::encode)'s form, verifies the signature against the named
    /// signer, then decodes and validates the spec. Never panics; does not check trust.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        check_len(
            "an encoded deployment (bytes)",
            bytes.len(),
            MAX_RECORD_BYTES,
        )?;
        let wire: Wire = serde_json::from_slice(bytes).map_err(malformed("deployment"))?;
        Self::from_wire(wire)
    }

    pub(crate) fn from_wire(wire: Wire) -> Result<Self, Error> {
        // Cheap bounds before decoding: base64 is 4 characters per 3 bytes.
        check_len(
            "a deployment's base64 spec (characters)",
            wire.spec.len(),
            MAX_SPEC_BYTES.div_ceil(3) * 4,
        )?;
        let spec_bytes = STANDARD
            .decode(&wire.spec)
            .map_err(malformed("deployment spec base64"))?;
        let signer: PublicKey = wire.signer.parse()?;
        let signature: [u8; 64] = STANDARD
            .decode(&wire.signature)
            .map_err(malformed("deployment signature base64"))?
            .try_into()
            .map_err(|b: Vec<u8>| Error::Malformed {
                what: "deployment signature",
                reason: format!("{} bytes, not 64", b.len()),
            })?;
        // Verify before parsing: unauthenticated JSON never reaches the spec decoder.
        if !signer.verify(&signed_message(&spec_bytes), &signature) {
            return Err(Error::BadSignature {
                signer: signer.to_string(),
            });
        }
        let spec: Spec = serde_json::from_slice(&spec_bytes).map_err(malformed("spec"))?;
        spec.validate()?;
        Ok(Self::assemble(spec, spec_bytes, signer, signature))
    }

    /// Whether this record replaces `other`: same name, and a higher version, or at equal
    /// versions the greater signature bytes (then the greater id). Every node orders records
    /// the same way, so concurrent deploys of one version settle on one winner everywhere.
    pub fn supersedes(&self, other: &Deployment) -> bool {
        self.spec.name == other.spec.name && self.order(other) == Ordering::Greater
    }

    fn order(&self, other: &Deployment) -> Ordering {
        self.spec
            .version
            .cmp(&other.spec.version)
            .then_with(|| self.signature.cmp(&other.signature))
            .then_with(|| self.id.cmp(&other.id))
    }
}

fn signed_message(spec_bytes: &[u8]) -> Vec<u8> {
    [DOMAIN, spec_bytes].concat()
}

fn malformed<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Malformed {
        what,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests;
