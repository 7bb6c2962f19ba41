//! Runs every fuzz entry point (`wire::fuzzing`) over a few thousand generated inputs, so the
//! "never panics" property is checked on every `cargo test`, not only under cargo-fuzz (and
//! without the `fuzzing` feature).
//!
//! Inputs are valid encodings (packets, compounds, compressed messages, encrypted frames,
//! streams) made with the public API and then mutated: bytes flipped, cut, inserted or
//! spliced, which reaches deeper than uniformly random bytes would.

use super::{fuzz_codec, fuzz_compound, fuzz_compressed, fuzz_encrypted, fuzz_packet, fuzz_stream};
use crate::wire::{
    encode_compound, encode_compressed, encode_message, Ack, Alive, Message, NodeStateKind, Ping,
    PushNodeState, PushPull, StreamMessage,
};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u32>(), "[a-z]{0,8}", any::<u16>()).prop_map(|(seq_no, node, port)| {
            Message::Ping(Ping {
                seq_no,
                node,
                source_addr: vec![127, 0, 0, 1],
                source_port: port,
                source_node: "src".into(),
            })
        }),
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(seq_no, payload)| Message::Ack(Ack { seq_no, payload })),
        (
            any::<u32>(),
            "[a-z]{0,40}",
            proptest::collection::vec(any::<u8>(), 0..60)
        )
            .prop_map(|(incarnation, node, meta)| Message::Alive(Alive {
                incarnation,
                node,
                addr: vec![10, 0, 0, 2],
                port: 7946,
                meta,
                vsn: vec![1, 5, 2, 2, 5, 4],
            })),
        proptest::collection::vec(any::<u8>(), 0..100).prop_map(Message::User),
    ]
}

fn stream_message() -> impl Strategy<Value = StreamMessage> {
    prop_oneof![
        message().prop_map(|m| match m {
            Message::Ping(p) => StreamMessage::Ping(p),
            Message::Ack(a) => StreamMessage::Ack(a),
            Message::User(u) => StreamMessage::User(u),
            _ => StreamMessage::User(vec![1]),
        }),
        (
            any::<bool>(),
            proptest::collection::vec("[a-z]{1,10}", 0..4),
            proptest::collection::vec(any::<u8>(), 0..100)
        )
            .prop_map(
                |(join, names, user_state)| StreamMessage::PushPull(PushPull {
                    join,
                    nodes: names
                        .into_iter()
                        .map(|name| PushNodeState {
                            name,
                            addr: vec![10, 0, 0, 3],
                            port: 7946,
                            meta: vec![],
                            incarnation: 4,
                            state: NodeStateKind::Suspect,
                            vsn: vec![1, 5, 2, 2, 5, 4],
                        })
                        .collect(),
                    user_state,
                })
            ),
    ]
}

/// One edit applied to a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Cut(prop::sample::Index),
    Insert(prop::sample::Index, Vec<u8>),
    Set(prop::sample::Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<prop::sample::Index>().prop_map(Mutation::Cut),
        (
            any::<prop::sample::Index>(),
            proptest::collection::vec(any::<u8>(), 1..6)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (
            any::<prop::sample::Index>(),
            prop_oneof![
                Just(0u8),
                Just(0x7f),
                Just(0xc0),
                Just(0xda),
                Just(0xdb),
                Just(0xdf),
                Just(0xff)
            ]
        )
            .prop_map(|(i, b)| Mutation::Set(i, b)),
    ]
}

fn mutate(mut data: Vec<u8>, edits: &[Mutation]) -> Vec<u8> {
    for m in edits {
        if data.is_empty() {
            break;
        }
        match m {
            Mutation::Flip(i, x) => {
                let i = i.index(data.len());
                data[i] ^= x;
            }
            Mutation::Cut(i) => data.truncate(i.index(data.len())),
            Mutation::Insert(i, b) => {
                let i = i.index(data.len());
                data.splice(i..i, b.iter().copied());
            }
            Mutation::Set(i, b) => {
                let i = i.index(data.len());
                data[i] = *b;
            }
        }
    }
    data
}

fn edits() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 0..4)
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn packet(
        sel in any::<u8>(),
        ms in proptest::collection::vec(message(), 1..5),
        crc in any::<bool>(),
        e in edits(),
        random in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let parts: Vec<_> = ms.iter().map(encode_message).collect();
        let body = if parts.len() == 1 { parts[0].clone() } else { encode_compound(&parts) };
        let sealed = fuzz_codec(sel).seal_packet(&body, crc, &mut StdRng::seed_from_u64(1));
        let mut input = vec![sel];
        input.extend(mutate(sealed, &e));
        fuzz_packet(&input);
        fuzz_packet(&random);
    }

    #[test]
    fn compound(
        ms in proptest::collection::vec(message(), 0..6),
        e in edits(),
        random in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let parts: Vec<_> = ms.iter().map(encode_message).collect();
        let body = encode_compound(&parts);
        fuzz_compound(&mutate(body[1..].to_vec(), &e));
        fuzz_compound(&random);
    }

    #[test]
    fn compressed(
        m in message(),
        e in edits(),
        random in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let body = encode_compressed(&encode_message(&m));
        fuzz_compressed(&mutate(body[1..].to_vec(), &e));
        fuzz_compressed(&random);
    }

    #[test]
    fn encrypted(
        sel in any::<u8>(),
        m in message(),
        s in stream_message(),
        e in edits(),
    ) {
        let codec = fuzz_codec(sel | 2);
        let pkt = codec.seal_packet(&encode_message(&m), sel & 32 != 0, &mut StdRng::seed_from_u64(2));
        let mut input = vec![sel];
        input.extend(mutate(pkt, &e));
        fuzz_encrypted(&input);
        let stream = codec.seal_stream(&s, &mut StdRng::seed_from_u64(3));
        let mut input = vec![sel];
        input.extend(mutate(stream, &e));
        fuzz_encrypted(&input);
    }

    #[test]
    fn stream(
        sel in any::<u8>(),
        s in stream_message(),
        e in edits(),
        random in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let codec = fuzz_codec(sel);
        let sealed = if sel & 64 != 0 {
            codec.seal_stream_reply(&s, &mut StdRng::seed_from_u64(4))
        } else {
            codec.seal_stream(&s, &mut StdRng::seed_from_u64(4))
        };
        let mut input = vec![sel];
        input.extend(mutate(sealed, &e));
        fuzz_stream(&input);
        fuzz_stream(&random);
    }
}
