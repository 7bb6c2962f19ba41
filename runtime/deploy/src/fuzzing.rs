//! The entry points of the `deployment` and `set` cargo-fuzz targets in
//! `runtime/deploy/fuzz`: arbitrary bytes into [`Deployment::decode`] and
//! [`DeploySet::decode`], which must never panic. Only built with the `fuzzing` feature
//! (which the fuzz crate turns on) and in unit tests, where `tests.rs` runs them on
//! generated input.
//!
//! Beyond "no panic" they check that whatever decodes re-encodes into bytes that decode to
//! the same value, so a fuzzer finding a violation finds a real asymmetry between encoder and
//! decoder.

use crate::keys::{PublicKey, SigningKey};
use crate::record::Deployment;
use crate::set::DeploySet;

/// The seed of the key the set target trusts; inputs signed with it reach the merge logic.
pub const FUZZ_KEY_SEED: [u8; 32] = [7; 32];

/// The key the set target trusts.
pub fn fuzz_key() -> SigningKey {
    SigningKey::from_seed(FUZZ_KEY_SEED)
}

fn trusted() -> Vec<PublicKey> {
    vec![fuzz_key().public()]
}

/// Feeds `data` to [`Deployment::decode`]; panics only if a decoded record does not
/// survive re-encoding (a bug), never because of the input itself.
pub fn fuzz_deployment(data: &[u8]) {
    if let Ok(d) = Deployment::decode(data) {
        let again = Deployment::decode(&d.encode());
        assert_eq!(again.as_ref(), Ok(&d), "deployment did not round-trip");
        assert_eq!(again.map(|a| a.id()), Ok(d.id()), "id changed");
    }
}

/// Feeds `data` to [`DeploySet::decode`] (trusting [`fuzz_key`]) and to
/// [`crate::decode_records`] (the push and sync wire); panics only if what decoded does not
/// survive re-encoding.
pub fn fuzz_set(data: &[u8]) {
    if let Ok(list) = crate::decode_records(data) {
        let ok: Vec<Deployment> = list.into_iter().filter_map(Result::ok).collect();
        let again = crate::decode_records(&crate::encode_records(&ok))
            .map(|l| l.into_iter().collect::<Result<Vec<_>, _>>());
        assert_eq!(again, Ok(Ok(ok)), "record list did not round-trip");
    }
    if let Ok(set) = DeploySet::decode(data, trusted()) {
        let again = DeploySet::decode(&set.encode(), trusted());
        assert_eq!(again.as_ref(), Ok(&set), "set did not round-trip");
    }
}

#[cfg(test)]
mod tests;
