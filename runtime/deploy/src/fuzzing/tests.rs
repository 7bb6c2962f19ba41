//! Runs the fuzz entry points (`fuzzing::fuzz_deployment`, `fuzzing::fuzz_set`) over a few
//! thousand inputs, so "never panics, and whatever decodes round-trips" is checked on every
//! `cargo test`, not only under cargo-fuzz.
//!
//! Inputs are valid records and sets signed with the fuzz key, then mutated (bytes flipped,
//! cut, inserted, spliced), which reaches past the signature check more often than random
//! bytes would; some uniformly random inputs are mixed in too.

use super::*;
use crate::keys::Digest;
use crate::record::{Grants, ModuleRef, Spec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// How many inputs each test feeds the targets (bounded, so the tests stay quick).
const INPUTS: usize = 2000;

fn word(rng: &mut StdRng) -> String {
    let len = rng.gen_range(1..12);
    (0..len)
        .map(|_| rng.gen_range(b'a'..=b'z') as char)
        .collect()
}

fn spec(rng: &mut StdRng) -> Spec {
    Spec {
        name: word(rng),
        version: rng.gen_range(1..5),
        module: rng.gen_bool(0.8).then(|| ModuleRef {
            sha256: Digest(rng.gen()),
            size: rng.gen_range(1..1 << 20),
        }),
        events: format!("query:{}", word(rng)),
        selector: BTreeMap::from([(word(rng), word(rng))]),
        limits: BTreeMap::from([("memory".into(), "32MiB".into())]),
        grants: Grants {
            dirs: vec![format!("/{}", word(rng))],
            env: BTreeMap::new(),
            emit: rng.gen(),
            clocks: rng.gen(),
            ..Grants::default()
        },
        signed_at: rng.gen(),
    }
}

fn record(rng: &mut StdRng) -> Deployment {
    Deployment::sign(spec(rng), &fuzz_key()).unwrap()
}

fn valid_set(rng: &mut StdRng) -> Vec<u8> {
    let mut set = DeploySet::new(trusted());
    for _ in 0..rng.gen_range(0..5) {
        set.merge(record(rng));
    }
    set.encode()
}

fn mutate(rng: &mut StdRng, mut b: Vec<u8>, other: &[u8]) -> Vec<u8> {
    for _ in 0..rng.gen_range(1..4) {
        match rng.gen_range(0..5) {
            0 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
            }
            1 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                b.truncate(i);
            }
            2 => {
                let i = rng.gen_range(0..=b.len());
                // JSON and base64 structure characters.
                let v = b"{}[]\",:=+/A0"[rng.gen_range(0..12)];
                b.insert(i, v);
            }
            3 if !other.is_empty() => {
                let i = rng.gen_range(0..=b.len());
                let j = rng.gen_range(0..other.len());
                b.splice(i..i, other[j..].iter().copied());
            }
            _ if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                b[i] ^= 1 << rng.gen_range(0..8);
            }
            _ => b.push(rng.gen()),
        }
    }
    b
}

#[test]
fn valid_inputs_round_trip() {
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..INPUTS / 20 {
        let d = record(&mut rng);
        fuzz_deployment(&d.encode());
        assert!(Deployment::decode(&d.encode()).is_ok());
        let s = valid_set(&mut rng);
        fuzz_set(&s);
        assert!(DeploySet::decode(&s, trusted()).is_ok());
    }
}

#[test]
fn mutated_inputs_never_panic() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut prev = Vec::new();
    for i in 0..INPUTS {
        let input = if i % 2 == 0 {
            record(&mut rng).encode()
        } else {
            valid_set(&mut rng)
        };
        let mutated = mutate(&mut rng, input.clone(), &prev);
        fuzz_deployment(&mutated);
        fuzz_set(&mutated);
        prev = input;
    }
}

#[test]
fn random_inputs_never_panic() {
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..INPUTS {
        let len = rng.gen_range(0..96);
        let b: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        fuzz_deployment(&b);
        fuzz_set(&b);
    }
}
