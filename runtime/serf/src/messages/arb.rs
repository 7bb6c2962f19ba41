//! Proptest strategies for every Serf message type, for the round-trip properties.

use super::*;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn name() -> impl Strategy<Value = String> {
    // Mostly short ASCII, sometimes long or non-ASCII, to cross the fixstr/0xda boundary.
    prop_oneof![
        4 => "[a-z0-9.-]{0,12}",
        1 => ".{0,40}",
    ]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => vec(any::<u8>(), 0..40),
        1 => vec(any::<u8>(), 0..300),
    ]
}

fn ltime() -> impl Strategy<Value = LamportTime> {
    prop_oneof![0..200u64, any::<u64>()]
}

pub(crate) fn join() -> impl Strategy<Value = Join> {
    (ltime(), name()).prop_map(|(ltime, node)| Join { ltime, node })
}

pub(crate) fn leave() -> impl Strategy<Value = Leave> {
    (ltime(), name(), any::<bool>()).prop_map(|(ltime, node, prune)| Leave { ltime, node, prune })
}

pub(crate) fn user_event() -> impl Strategy<Value = UserEvent> {
    (ltime(), name(), bytes(), any::<bool>()).prop_map(|(ltime, name, payload, cc)| UserEvent {
        ltime,
        name,
        payload,
        cc,
    })
}

fn user_events() -> impl Strategy<Value = UserEvents> {
    (
        ltime(),
        vec(
            (name(), bytes()).prop_map(|(name, payload)| UserEventEntry { name, payload }),
            0..4,
        ),
    )
        .prop_map(|(ltime, events)| UserEvents { ltime, events })
}

pub(crate) fn push_pull() -> impl Strategy<Value = PushPull> {
    (
        ltime(),
        btree_map(name(), ltime(), 0..20),
        vec(name(), 0..20),
        ltime(),
        vec(option::weighted(0.3, user_events()), 0..40),
        ltime(),
    )
        .prop_map(
            |(ltime, status_ltimes, left_members, event_ltime, events, query_ltime)| PushPull {
                ltime,
                status_ltimes,
                left_members,
                event_ltime,
                events,
                query_ltime,
            },
        )
}

pub(crate) fn filter() -> impl Strategy<Value = Filter> {
    prop_oneof![
        vec(name(), 0..20).prop_map(Filter::Nodes),
        (name(), name()).prop_map(|(tag, expr)| Filter::Tag { tag, expr }),
        // Only bytes that really do not decode stay `Undecodable` through a round trip:
        // an unknown filter type, or nothing at all.
        (2u8.., bytes()).prop_map(|(t, rest)| {
            let mut raw = vec![t];
            raw.extend(rest);
            Filter::Undecodable(raw)
        }),
        Just(Filter::Undecodable(Vec::new())),
    ]
}

pub(crate) fn query() -> impl Strategy<Value = Query> {
    (
        (ltime(), any::<u32>(), bytes(), any::<u16>(), name()),
        (
            vec(filter(), 0..4),
            any::<u32>(),
            any::<u8>(),
            0..=i64::MAX as u64,
            name(),
            bytes(),
        ),
    )
        .prop_map(
            |(
                (ltime, id, addr, port, source_node),
                (filters, flags, relay_factor, nanos, name, payload),
            )| Query {
                ltime,
                id,
                addr,
                port,
                source_node,
                filters,
                flags,
                relay_factor,
                timeout: Duration::from_nanos(nanos),
                name,
                payload,
            },
        )
}

pub(crate) fn query_response() -> impl Strategy<Value = QueryResponse> {
    (ltime(), any::<u32>(), name(), any::<u32>(), bytes()).prop_map(
        |(ltime, id, from, flags, payload)| QueryResponse {
            ltime,
            id,
            from,
            flags,
            payload,
        },
    )
}

pub(crate) fn member() -> impl Strategy<Value = ConflictMember> {
    (
        (
            name(),
            bytes(),
            any::<u16>(),
            btree_map(name(), name(), 0..6),
            any::<i64>(),
        ),
        any::<[u8; 6]>(),
    )
        .prop_map(|((name, addr, port, tags, status), p)| ConflictMember {
            name,
            addr,
            port,
            tags,
            status,
            protocol_min: p[0],
            protocol_max: p[1],
            protocol_cur: p[2],
            delegate_min: p[3],
            delegate_max: p[4],
            delegate_cur: p[5],
        })
}

pub(crate) fn key_response() -> impl Strategy<Value = KeyResponse> {
    (any::<bool>(), name(), vec(name(), 0..5), name()).prop_map(
        |(result, message, keys, primary_key)| KeyResponse {
            result,
            message,
            keys,
            primary_key,
        },
    )
}

pub(crate) fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        // Not v4-mapped: those come back as IPv4, as Go prints them.
        any::<[u8; 16]>()
            .prop_filter("not v4-mapped", |o| Ipv6Addr::from(*o)
                .to_ipv4_mapped()
                .is_none())
            .prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
    ];
    (ip, any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

/// Every message type.
pub(crate) fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        leave().prop_map(Message::Leave),
        join().prop_map(Message::Join),
        push_pull().prop_map(Message::PushPull),
        user_event().prop_map(Message::UserEvent),
        query().prop_map(Message::Query),
        query_response().prop_map(Message::QueryResponse),
        option::of(member()).prop_map(Message::ConflictResponse),
        (socket_addr(), name(), bytes()).prop_map(|(dest, dest_name, inner)| Message::Relay {
            dest,
            dest_name,
            inner
        }),
        bytes().prop_map(Message::KeyRequest),
        key_response().prop_map(Message::KeyResponse),
    ]
}
