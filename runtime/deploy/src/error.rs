//! The one error type of `hearsay-deploy`: why a key, a digest, a spec or an encoded record or
//! set was refused. Errors never quote secret key material. It is the bottom layer of the
//! crate (it names no other module), so a signer appears here as its `ed25519:` text.

use thiserror::Error;

/// Why a key, digest, spec, deployment or deployment set was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A secret key file that is not one line of `ed25519-secret:BASE64(32-byte seed)`.
    #[error("not an Ed25519 secret key file: {reason}")]
    KeyFile {
        /// What was wrong with it (never the key text itself).
        reason: String,
    },
    /// A public key that is not `ed25519:BASE64(32 bytes)` naming a valid Ed25519 point.
    #[error("invalid public key: {reason}")]
    PublicKey {
        /// What was wrong with it.
        reason: String,
    },
    /// A sha256 digest that is not 64 hexadecimal characters.
    #[error("invalid sha256 digest: {reason}")]
    Digest {
        /// What was wrong with it.
        reason: String,
    },
    /// A handler name outside `[a-z0-9][a-z0-9._-]{0,63}`.
    #[error("invalid deployment name {name:?}: {reason}")]
    InvalidName {
        /// The name as given (truncated to 80 characters).
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// A spec with version 0 (versions start at 1, so "no record" always loses).
    #[error("deployment version must be at least 1")]
    VersionZero,
    /// A field, a spec or an encoded record over its size or entry-count limit.
    #[error("{what} is {size}, over the limit of {limit}")]
    TooLarge {
        /// Which field or encoding, and in what unit.
        what: &'static str,
        /// Its size or count.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A spec field whose content breaks a rule other than size.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field, e.g. `grants.env`.
        field: &'static str,
        /// Which rule it broke.
        reason: String,
    },
    /// Bytes that are not the JSON, base64 or layout the encoding calls for.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which encoding, e.g. `deployment` or `deployment set`.
        what: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// A signature that does not verify (strictly) against the named signer for the spec bytes.
    #[error("signature does not verify for signer {signer}")]
    BadSignature {
        /// The key the record claims signed it, as `PublicKey`'s text (`ed25519:BASE64`).
        signer: String,
    },
}
