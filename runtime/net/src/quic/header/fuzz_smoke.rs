//! Runs the `quic_header` fuzz entry point (`quic::header::fuzz_header`) over a few thousand
//! inputs, so "never panics, and whatever decodes round-trips" is checked on every `cargo
//! test`, not only under cargo-fuzz (and without the `fuzzing` feature). Inputs are valid
//! headers built from a seeded RNG and then mutated (bytes flipped, cut, inserted, spliced),
//! plus some uniformly random inputs. Half of the valid headers carry the version 2 relay
//! section.

use super::{fuzz_header, Relay, ResponseHeader};
use crate::quic::{Fingerprint, QuicAdvert};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::{IpAddr, SocketAddr};

/// How many inputs each run feeds the target (bounded, so the test stays quick).
const INPUTS: usize = 4000;

fn valid(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.gen_range(0..40);
    let from: String = (0..len).map(|_| rng.gen_range('a'..='z')).collect();
    ResponseHeader {
        ltime: rng.gen(),
        query_id: rng.gen(),
        from,
        total_len: rng.gen_bool(0.5).then(|| rng.gen()),
        // Half of the headers are version 2 relay headers, so the relay section's decoder is
        // exercised as much as the rest.
        relay: rng.gen_bool(0.5).then(|| {
            let ip = if rng.gen_bool(0.5) {
                IpAddr::from(rng.gen::<[u8; 4]>())
            } else {
                IpAddr::from(rng.gen::<[u8; 16]>())
            };
            let len = rng.gen_range(0..20);
            Relay {
                origin: (0..len).map(|_| rng.gen_range('a'..='z')).collect(),
                origin_advert: QuicAdvert {
                    addr: SocketAddr::new(ip, rng.gen()),
                    fingerprint: Fingerprint(rng.gen()),
                },
                remaining_ms: rng.gen(),
            }
        }),
    }
    .encode()
    .unwrap()
}

fn mutate(rng: &mut StdRng, mut data: Vec<u8>, other: &[u8]) -> Vec<u8> {
    for _ in 0..rng.gen_range(1..4) {
        match rng.gen_range(0..4) {
            0 if !data.is_empty() => {
                let i = rng.gen_range(0..data.len());
                data[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if !data.is_empty() => data.truncate(rng.gen_range(0..data.len())),
            2 => {
                let i = rng.gen_range(0..=data.len());
                data.insert(i, rng.gen());
            }
            _ => {
                let cut = rng.gen_range(0..=data.len());
                data.truncate(cut);
                data.extend_from_slice(&other[rng.gen_range(0..=other.len())..]);
            }
        }
    }
    data
}

#[test]
fn header_decoder_survives_mutated_and_random_inputs() {
    let mut rng = StdRng::seed_from_u64(0x5155_4943);
    let mut decoded = 0;
    for i in 0..INPUTS {
        let input = if i % 10 == 0 {
            let len = rng.gen_range(0..160);
            (0..len).map(|_| rng.gen()).collect()
        } else {
            let base = valid(&mut rng);
            if i % 5 == 1 {
                base
            } else {
                let other = valid(&mut rng);
                mutate(&mut rng, base, &other)
            }
        };
        fuzz_header(&input);
        if ResponseHeader::decode(&input, usize::MAX).is_ok() {
            decoded += 1;
        }
    }
    // The unmutated fifth of the inputs always decodes, so the target really was exercised
    // on both paths.
    assert!(decoded >= INPUTS / 5, "only {decoded} inputs decoded");
    assert!(
        decoded < INPUTS,
        "every input decoded: the mutations did nothing"
    );
}
