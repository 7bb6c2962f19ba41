//! `hearsay-deploy`: the sans-io core of deploying handler modules cluster-wide.
//!
//! An operator signs a *deployment* (a handler's name, its WebAssembly module's sha256 and
//! size, its event filter, node selector, limits and grants) with an Ed25519 key. Agents
//! that trust the key accept it, and the set of deployments converges on every agent
//! through rumor pushes plus periodic anti-entropy syncs with random peers.
//!
//! What it is: the record and its signature ([`record`]), the keys and digests that name
//! things ([`keys`]), the converging set of records ([`set`]) and the schedule of pushes and
//! syncs ([`sync`]), as values and state machines with `handle_*` inputs and `poll_*`
//! outputs; time and randomness are passed in. With the `testing` feature, [`testing`]
//! runs thousands of nodes on a virtual clock.
//!
//! What it is not: it opens no sockets or files, reads no clock, spawns no tasks and runs
//! no modules. The agent carries out its actions over QUIC, stores the encoded set in its
//! data directory, fetches modules by digest and interprets events, selectors, limits and
//! grants; none of that lives here.
//!
//! - [`Deployment::sign`] and [`Deployment::decode`]: a [`Spec`] signed over
//!   `"hearsay-deploy-v1\0" || JSON(spec)`; decoding verifies the signature (strictly)
//!   before it parses the spec. Trust is the set's business.
//! - [`DeploySet::merge`]: per name the record with the highest version wins; equal versions
//!   are ordered by signature bytes, so concurrent deploys settle on one winner everywhere.
//!   An undeploy is a tombstone record, so an older version never comes back.
//! - [`Sync`]: pushes each newly learned record to `fanout` random peers once, syncs with a
//!   random peer every jittered interval, and syncs soon with newly seen peers.

#![warn(missing_docs, unreachable_pub)]

mod error;
pub mod keys;
pub mod record;
pub mod set;
pub mod sync;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::Error;
pub use keys::{Digest, PublicKey, SigningKey};
pub use record::{Deployment, Grants, ModuleRef, Spec};
pub use set::{decode_records, encode_records, DeploySet, Merge};
pub use sync::{Action, Sync, SyncConfig};
