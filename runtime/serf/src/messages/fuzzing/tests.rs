//! Runs the `message` fuzz entry point (`messages::fuzz_message`) over a few thousand inputs,
//! so "never panics, and whatever decodes round-trips" is checked on every `cargo test`, not
//! only under cargo-fuzz (and without the `fuzzing` feature).
//!
//! Inputs are valid encodings of every message type, tags and filters, built from a seeded
//! RNG and then mutated (bytes flipped, cut, inserted, spliced), which reaches deeper than
//! uniformly random bytes would; some uniformly random inputs are mixed in too.

use super::fuzz_message;
use crate::messages::{
    encode, encode_filter, encode_key_request, encode_key_response, encode_relay, encode_tags,
    ConflictMember, Filter, Join, KeyResponse, Leave, Message, PushPull, Query, QueryResponse,
    UserEvent, UserEventEntry, UserEvents,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::Duration;

/// How many inputs each run feeds the target (bounded, so the test stays quick).
const INPUTS: usize = 4000;

fn word(rng: &mut StdRng) -> String {
    let len = if rng.gen_bool(0.1) {
        rng.gen_range(30..70)
    } else {
        rng.gen_range(0..10)
    };
    (0..len)
        .map(|_| rng.gen_range(b'a'..=b'z') as char)
        .collect()
}

fn bytes(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.gen_range(0..40);
    (0..len).map(|_| rng.gen()).collect()
}

fn ltime(rng: &mut StdRng) -> u64 {
    if rng.gen_bool(0.5) {
        rng.gen_range(0..300)
    } else {
        rng.gen()
    }
}

fn words(rng: &mut StdRng, max: usize) -> Vec<String> {
    let n = rng.gen_range(0..max);
    (0..n).map(|_| word(rng)).collect()
}

fn filter(rng: &mut StdRng) -> Filter {
    match rng.gen_range(0..3) {
        0 => Filter::Nodes(words(rng, 4)),
        1 => Filter::Tag {
            tag: word(rng),
            expr: word(rng),
        },
        _ => {
            let mut raw = vec![rng.gen_range(2..=255)];
            raw.extend(bytes(rng));
            Filter::Undecodable(raw)
        }
    }
}

fn message(rng: &mut StdRng) -> Message {
    match rng.gen_range(0..10) {
        0 => Message::Leave(Leave {
            ltime: ltime(rng),
            node: word(rng),
            prune: rng.gen(),
        }),
        1 => Message::Join(Join {
            ltime: ltime(rng),
            node: word(rng),
        }),
        2 => Message::PushPull(PushPull {
            ltime: ltime(rng),
            status_ltimes: words(rng, 5).into_iter().map(|w| (w, 3)).collect(),
            left_members: words(rng, 3),
            event_ltime: ltime(rng),
            events: (0..rng.gen_range(0..6))
                .map(|_| {
                    rng.gen_bool(0.5).then(|| UserEvents {
                        ltime: ltime(rng),
                        events: vec![UserEventEntry {
                            name: word(rng),
                            payload: bytes(rng),
                        }],
                    })
                })
                .collect(),
            query_ltime: ltime(rng),
        }),
        3 => Message::UserEvent(UserEvent {
            ltime: ltime(rng),
            name: word(rng),
            payload: bytes(rng),
            cc: rng.gen(),
        }),
        4 => Message::Query(Query {
            ltime: ltime(rng),
            id: rng.gen(),
            addr: vec![127, 0, 0, 1],
            port: rng.gen(),
            source_node: word(rng),
            filters: (0..rng.gen_range(0..3)).map(|_| filter(rng)).collect(),
            flags: rng.gen_range(0..4),
            relay_factor: rng.gen(),
            timeout: Duration::from_millis(rng.gen_range(0..100_000)),
            name: word(rng),
            payload: bytes(rng),
        }),
        5 => Message::QueryResponse(QueryResponse {
            ltime: ltime(rng),
            id: rng.gen(),
            from: word(rng),
            flags: rng.gen_range(0..2),
            payload: bytes(rng),
        }),
        6 => Message::ConflictResponse(rng.gen_bool(0.8).then(|| ConflictMember {
            name: word(rng),
            addr: vec![10, 0, 0, rng.gen()],
            port: rng.gen(),
            tags: BTreeMap::from([("role".into(), word(rng))]),
            status: rng.gen_range(0..5),
            protocol_min: 1,
            protocol_max: 5,
            protocol_cur: 2,
            delegate_min: 2,
            delegate_max: 5,
            delegate_cur: 4,
        })),
        7 => {
            let inner = encode(&Message::Join(Join {
                ltime: 1,
                node: word(rng),
            }));
            let dest = ([127, 0, 0, 1], rng.gen::<u16>()).into();
            decode_back(encode_relay(dest, &word(rng), &inner))
        }
        8 => Message::KeyRequest(bytes(rng)),
        _ => Message::KeyResponse(KeyResponse {
            result: rng.gen(),
            message: word(rng),
            keys: words(rng, 3),
            primary_key: word(rng),
        }),
    }
}

/// A message from its encoding (only used for relays, built with `encode_relay`).
fn decode_back(b: Vec<u8>) -> Message {
    crate::messages::decode(&b).expect("our own relay decodes")
}

/// A valid encoding: a message, tags, a filter or a key payload.
fn valid_input(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..10) {
        0 => {
            let tags: BTreeMap<String, String> =
                words(rng, 4).into_iter().map(|w| (w, "v".into())).collect();
            encode_tags(&tags)
        }
        1 => encode_filter(&filter(rng)),
        2 => encode_key_request(&bytes(rng)),
        3 => encode_key_response(&KeyResponse {
            result: true,
            keys: words(rng, 3),
            ..Default::default()
        }),
        _ => encode(&message(rng)),
    }
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
                // Interesting msgpack headers: huge lengths, nil, deep containers.
                let v = [0xc0, 0xdd, 0xdf, 0xdb, 0xff, 0x91, 0x81, 0xcf, 0xd3, 0xc4]
                    [rng.gen_range(0..10)];
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
    for _ in 0..INPUTS / 4 {
        fuzz_message(&valid_input(&mut rng));
    }
}

#[test]
fn mutated_inputs_never_panic() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut prev = Vec::new();
    for _ in 0..INPUTS {
        let input = valid_input(&mut rng);
        let mutated = mutate(&mut rng, input.clone(), &prev);
        fuzz_message(&mutated);
        prev = input;
    }
}

#[test]
fn random_inputs_never_panic() {
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..INPUTS {
        let len = rng.gen_range(0..64);
        let mut b: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        // Start with a plausible type byte most of the time.
        if let Some(first) = b.first_mut() {
            if rng.gen_bool(0.8) {
                *first = rng.gen_range(0..10);
            }
        }
        fuzz_message(&b);
    }
}
