//! proptest strategies for the wire types, shared by the codec's property tests.

use super::types::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// Names as Go would send them: mostly short ASCII, sometimes long or non-ASCII UTF-8 so the
/// 16-bit raw length form is exercised.
pub(crate) fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9.-]{0,12}",
        1 => "\\PC{0,40}",
        1 => "[a-z]{30,40}",
    ]
}

pub(crate) fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

pub(crate) fn addr() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(vec![]), vec(any::<u8>(), 4), vec(any::<u8>(), 16)]
}

pub(crate) fn ping() -> impl Strategy<Value = Ping> {
    (any::<u32>(), name(), addr(), any::<u16>(), name()).prop_map(
        |(seq_no, node, source_addr, source_port, source_node)| Ping {
            seq_no,
            node,
            source_addr,
            source_port,
            source_node,
        },
    )
}

pub(crate) fn ack() -> impl Strategy<Value = Ack> {
    (any::<u32>(), bytes(64)).prop_map(|(seq_no, payload)| Ack { seq_no, payload })
}

pub(crate) fn err_resp() -> impl Strategy<Value = ErrResp> {
    name().prop_map(|error| ErrResp { error })
}

pub(crate) fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        ping().prop_map(Message::Ping),
        (
            any::<u32>(),
            addr(),
            any::<u16>(),
            name(),
            any::<bool>(),
            (addr(), any::<u16>(), name())
        )
            .prop_map(|(seq_no, target, port, node, nack, (sa, sp, sn))| {
                Message::IndirectPing(IndirectPing {
                    seq_no,
                    target,
                    port,
                    node,
                    nack,
                    source_addr: sa,
                    source_port: sp,
                    source_node: sn,
                })
            }),
        ack().prop_map(Message::Ack),
        any::<u32>().prop_map(|seq_no| Message::Nack(Nack { seq_no })),
        (any::<u32>(), name(), name()).prop_map(|(incarnation, node, from)| {
            Message::Suspect(Suspect {
                incarnation,
                node,
                from,
            })
        }),
        (
            any::<u32>(),
            name(),
            addr(),
            any::<u16>(),
            bytes(80),
            bytes(7)
        )
            .prop_map(|(incarnation, node, addr, port, meta, vsn)| {
                Message::Alive(Alive {
                    incarnation,
                    node,
                    addr,
                    port,
                    meta,
                    vsn,
                })
            }),
        (any::<u32>(), name(), name()).prop_map(|(incarnation, node, from)| {
            Message::Dead(Dead {
                incarnation,
                node,
                from,
            })
        }),
        bytes(200).prop_map(Message::User),
        err_resp().prop_map(Message::Err),
    ]
}

pub(crate) fn node_state() -> impl Strategy<Value = PushNodeState> {
    (
        name(),
        addr(),
        any::<u16>(),
        bytes(40),
        any::<u32>(),
        0i64..4,
        bytes(7),
    )
        .prop_map(
            |(name, addr, port, meta, incarnation, s, vsn)| PushNodeState {
                name,
                addr,
                port,
                meta,
                incarnation,
                state: NodeStateKind::from_i64(s).unwrap(),
                vsn,
            },
        )
}

/// Stream messages; `user_max` bounds user state and stream user messages.
pub(crate) fn stream_message(user_max: usize) -> impl Strategy<Value = StreamMessage> {
    prop_oneof![
        ping().prop_map(StreamMessage::Ping),
        ack().prop_map(StreamMessage::Ack),
        err_resp().prop_map(StreamMessage::Err),
        bytes(user_max).prop_map(StreamMessage::User),
        (any::<bool>(), vec(node_state(), 0..6), bytes(user_max)).prop_map(
            |(join, nodes, user_state)| StreamMessage::PushPull(PushPull {
                join,
                nodes,
                user_state
            })
        ),
    ]
}
