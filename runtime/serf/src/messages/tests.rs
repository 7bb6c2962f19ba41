//! Golden vectors built by hand from go-msgpack's rules, alternative encodings Go may send,
//! round-trip properties and truncation safety.

use super::arb;
use super::codec::MAX_CONTAINER_ITEMS;
use super::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// A fixstr.
fn fs(s: &str) -> Vec<u8> {
    assert!(s.len() < 32);
    let mut v = vec![0xa0 | s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

const V4_MAPPED_127_0_0_1: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1];

#[test]
fn golden_join() {
    let m = Message::Join(Join {
        ltime: 5,
        node: "a".into(),
    });
    let want = cat(&[&[1, 0x82], &fs("LTime"), &[0x05], &fs("Node"), &fs("a")]);
    assert_eq!(
        want,
        [
            1, 0x82, 0xa5, b'L', b'T', b'i', b'm', b'e', 5, 0xa4, b'N', b'o', b'd', b'e', 0xa1,
            b'a'
        ]
    );
    assert_eq!(encode(&m), want);
    assert_eq!(decode(&want), Ok(m));
}

#[test]
fn golden_leave() {
    let m = Message::Leave(Leave {
        ltime: 300,
        node: "n".into(),
        prune: true,
    });
    let want = cat(&[
        &[0, 0x83],
        &fs("LTime"),
        &[0xcd, 0x01, 0x2c],
        &fs("Node"),
        &fs("n"),
        &fs("Prune"),
        &[0xc3],
    ]);
    assert_eq!(encode(&m), want);
    assert_eq!(decode(&want), Ok(m));
}

#[test]
fn golden_user_event() {
    let m = Message::UserEvent(UserEvent {
        ltime: 7,
        name: "deploy".into(),
        payload: b"v1".to_vec(),
        cc: true,
    });
    let want = cat(&[
        &[3, 0x84],
        &fs("CC"),
        &[0xc3],
        &fs("LTime"),
        &[7],
        &fs("Name"),
        &fs("deploy"),
        &fs("Payload"),
        &fs("v1"),
    ]);
    assert_eq!(encode(&m), want);
    assert_eq!(decode(&want), Ok(m));

    // No payload: Go's nil []byte is msgpack nil.
    let m = Message::UserEvent(UserEvent {
        ltime: 1,
        name: "e".into(),
        ..Default::default()
    });
    let want = cat(&[
        &[3, 0x84],
        &fs("CC"),
        &[0xc2],
        &fs("LTime"),
        &[1],
        &fs("Name"),
        &fs("e"),
        &fs("Payload"),
        &[0xc0],
    ]);
    assert_eq!(encode(&m), want);
    assert_eq!(decode(&want), Ok(m));
}

proptest! {
    /// The borrowed encoder a node uses for its own state writes the owned message's bytes.
    #[test]
    fn push_pull_from_parts_matches_owned(p in arb::push_pull()) {
        let left: Vec<&str> = p.left_members.iter().map(String::as_str).collect();
        let parts = encode_push_pull(
            p.ltime,
            p.status_ltimes.iter().map(|(k, v)| (k.as_str(), *v)),
            &left,
            p.event_ltime,
            &p.events,
            p.query_ltime,
        );
        prop_assert_eq!(parts, encode(&Message::PushPull(p)));
    }
}

#[test]
fn golden_push_pull() {
    let m = Message::PushPull(PushPull {
        ltime: 9,
        status_ltimes: BTreeMap::from([("a".into(), 2), ("b".into(), 3)]),
        left_members: vec!["b".into()],
        event_ltime: 4,
        events: vec![
            None,
            Some(UserEvents {
                ltime: 3,
                events: vec![UserEventEntry {
                    name: "e".into(),
                    payload: vec![],
                }],
            }),
        ],
        query_ltime: 1,
    });
    let want = cat(&[
        &[2, 0x86],
        &fs("EventLTime"),
        &[4],
        &fs("Events"),
        &[0x92, 0xc0, 0x82],
        &fs("Events"),
        &[0x91, 0x82],
        &fs("Name"),
        &fs("e"),
        &fs("Payload"),
        &[0xc0],
        &fs("LTime"),
        &[3],
        &fs("LTime"),
        &[9],
        &fs("LeftMembers"),
        &[0x91],
        &fs("b"),
        &fs("QueryLTime"),
        &[1],
        &fs("StatusLTimes"),
        &[0x82],
        &fs("a"),
        &[2],
        &fs("b"),
        &[3],
    ]);
    assert_eq!(encode(&m), want);
    assert_eq!(decode(&want), Ok(m));

    // Go's empty state: allocated (not nil) map and slices.
    let empty = encode(&Message::PushPull(PushPull::default()));
    let want = cat(&[
        &[2, 0x86],
        &fs("EventLTime"),
        &[0],
        &fs("Events"),
        &[0x90],
        &fs("LTime"),
        &[0],
        &fs("LeftMembers"),
        &[0x90],
        &fs("QueryLTime"),
        &[0],
        &fs("StatusLTimes"),
        &[0x80],
    ]);
    assert_eq!(empty, want);
}

#[test]
fn golden_query() {
    let m = Message::Query(Query {
        ltime: 2,
        id: 0xdead_beef,
        addr: V4_MAPPED_127_0_0_1.to_vec(),
        port: 7946,
        source_node: "ref".into(),
        filters: vec![
            Filter::Nodes(vec!["a".into()]),
            Filter::Tag {
                tag: "role".into(),
                expr: "^w".into(),
            },
        ],
        flags: QUERY_FLAG_ACK,
        relay_factor: 0,
        timeout: Duration::from_secs(15),
        name: "q".into(),
        payload: vec![],
    });
    let node_filter = cat(&[&[0, 0x91], &fs("a")]);
    let tag_filter = cat(&[&[1, 0x82], &fs("Expr"), &fs("^w"), &fs("Tag"), &fs("role")]);
    let want = cat(&[
        &[4, 0x8b],
        &fs("Addr"),
        &[0xb0],
        &V4_MAPPED_127_0_0_1,
        &fs("Filters"),
        &[0x92, 0xa0 | node_filter.len() as u8],
        &node_filter,
        &[0xa0 | tag_filter.len() as u8],
        &tag_filter,
        &fs("Flags"),
        &[1],
        &fs("ID"),
        &[0xce, 0xde, 0xad, 0xbe, 0xef],
        &fs("LTime"),
        &[2],
        &fs("Name"),
        &fs("q"),
        &fs("Payload"),
        &[0xc0],
        &fs("Port"),
        &[0xcd, 0x1f, 0x0a],
        &fs("RelayFactor"),
        &[0],
        &fs("SourceNode"),
        &fs("ref"),
        &fs("Timeout"),
        // 15 s = 15_000_000_000 ns > u32::MAX: uint64.
        &[0xcf],
        &15_000_000_000u64.to_be_bytes(),
    ]);
    assert_eq!(encode(&m), want);
    assert_eq!(decode(&want), Ok(m));
    let Message::Query(q) = decode(&want).unwrap() else {
        unreachable!()
    };
    assert!(q.ack() && !q.no_broadcast());

    // No filters: Go's nil [][]byte.
    let bare = encode(&Message::Query(Query::default()));
    let at = bare.windows(8).position(|w| w == fs("Filters")).unwrap();
    assert_eq!(bare[at + 8], 0xc0);
}

#[test]
fn golden_query_response() {
    let ack = Message::QueryResponse(QueryResponse {
        ltime: 2,
        id: 7,
        from: "h1".into(),
        flags: QUERY_FLAG_ACK,
        payload: vec![],
    });
    let want = cat(&[
        &[5, 0x85],
        &fs("Flags"),
        &[1],
        &fs("From"),
        &fs("h1"),
        &fs("ID"),
        &[7],
        &fs("LTime"),
        &[2],
        &fs("Payload"),
        &[0xc0],
    ]);
    assert_eq!(encode(&ack), want);
    assert_eq!(decode(&want), Ok(ack));
}

#[test]
fn golden_conflict_response() {
    assert_eq!(encode(&Message::ConflictResponse(None)), [6, 0xc0]);
    assert_eq!(decode(&[6, 0xc0]), Ok(Message::ConflictResponse(None)));
    let m = ConflictMember {
        name: "n".into(),
        addr: vec![127, 0, 0, 1],
        port: 7946,
        tags: BTreeMap::from([("role".into(), "w".into())]),
        status: 1,
        protocol_min: 1,
        protocol_max: 5,
        protocol_cur: 2,
        delegate_min: 2,
        delegate_max: 5,
        delegate_cur: 4,
    };
    let want = cat(&[
        &[6, 0x8b],
        &fs("Addr"),
        &[0xa4, 127, 0, 0, 1],
        &fs("DelegateCur"),
        &[4],
        &fs("DelegateMax"),
        &[5],
        &fs("DelegateMin"),
        &[2],
        &fs("Name"),
        &fs("n"),
        &fs("Port"),
        &[0xcd, 0x1f, 0x0a],
        &fs("ProtocolCur"),
        &[2],
        &fs("ProtocolMax"),
        &[5],
        &fs("ProtocolMin"),
        &[1],
        &fs("Status"),
        &[1],
        &fs("Tags"),
        &[0x81],
        &fs("role"),
        &fs("w"),
    ]);
    assert_eq!(encode_conflict_response(Some(&m)), want);
    assert_eq!(decode_conflict_response(&want), Ok(Some(m)));
}

#[test]
fn golden_relay() {
    let inner = encode(&Message::QueryResponse(QueryResponse {
        from: "x".into(),
        ..Default::default()
    }));
    let dest: SocketAddr = "127.0.0.1:7946".parse().unwrap();
    let want = cat(&[
        &[9, 0x82],
        &fs("DestAddr"),
        &[0x83],
        &fs("IP"),
        &[0xa4, 127, 0, 0, 1],
        &fs("Port"),
        &[0xcd, 0x1f, 0x0a],
        &fs("Zone"),
        &[0xa0],
        &fs("DestName"),
        &fs("h1"),
        &inner,
    ]);
    assert_eq!(encode_relay(dest, "h1", &inner), want);
    let m = Message::Relay {
        dest,
        dest_name: "h1".into(),
        inner: inner.clone(),
    };
    assert_eq!(encode(&m), want);
    assert_eq!(decode(&want), Ok(m));

    // A 16-byte v4-mapped IP reads as IPv4 (Go prints it so); a zone; IPv6.
    let mapped = cat(&[
        &[9, 0x81],
        &fs("DestAddr"),
        &[0x82],
        &fs("IP"),
        &[0xb0],
        &V4_MAPPED_127_0_0_1,
        &fs("Port"),
        &[0x05],
    ]);
    let Ok(Message::Relay { dest, .. }) = decode(&mapped) else {
        panic!("v4-mapped relay did not decode")
    };
    assert_eq!(dest, "127.0.0.1:5".parse::<SocketAddr>().unwrap());
    let alt = cat(&[
        &[9, 0x82],
        &fs("DestName"),
        &fs("h"),
        &fs("DestAddr"),
        &[0x83],
        &fs("Zone"),
        &fs("eth0"),
        &fs("Port"),
        &[0x05],
        &fs("IP"),
        &[0xc4, 4, 10, 0, 0, 1],
        &[5, 0xc0],
    ]);
    assert_eq!(
        decode(&alt),
        Ok(Message::Relay {
            dest: "10.0.0.1:5".parse().unwrap(),
            dest_name: "h".into(),
            inner: vec![5, 0xc0],
        })
    );
    let v6: SocketAddr = "[fe80::1]:80".parse().unwrap();
    let Ok(Message::Relay { dest, .. }) = decode(&encode_relay(v6, "x", &[])) else {
        panic!("relay to IPv6 did not decode")
    };
    assert_eq!(dest, v6);
    // A destination with no usable IP or port is refused.
    let bad_ip = cat(&[
        &[9, 0x81],
        &fs("DestAddr"),
        &[0x81],
        &fs("IP"),
        &[0xa3, 1, 2, 3],
    ]);
    assert!(matches!(decode(&bad_ip), Err(Error::Malformed(_))));
    let bad_port = cat(&[
        &[9, 0x81],
        &fs("DestAddr"),
        &[0x82],
        &fs("IP"),
        &[0xa4, 1, 2, 3, 4],
        &fs("Port"),
        &[0xce, 0, 1, 0, 0],
    ]);
    assert!(matches!(decode(&bad_port), Err(Error::Malformed(_))));
}

#[test]
fn golden_key_payloads() {
    let key = [7u8; 16];
    let want = cat(&[&[7, 0x81], &fs("Key"), &[0xb0], &key]);
    assert_eq!(encode_key_request(&key), want);
    assert_eq!(decode_key_request(&want), Ok(key.to_vec()));
    // The list query sends an empty, non-nil key.
    let list = cat(&[&[7, 0x81], &fs("Key"), &[0xa0]]);
    assert_eq!(encode_key_request(&[]), list);
    assert_eq!(decode_key_request(&list), Ok(vec![]));
    assert_eq!(decode_key_request(&[7, 0xc0]), Ok(vec![]));

    let resp = KeyResponse {
        result: true,
        ..Default::default()
    };
    let want = cat(&[
        &[8, 0x84],
        &fs("Keys"),
        &[0xc0],
        &fs("Message"),
        &[0xa0],
        &fs("PrimaryKey"),
        &[0xa0],
        &fs("Result"),
        &[0xc3],
    ]);
    assert_eq!(encode_key_response(&resp), want);
    assert_eq!(decode_key_response(&want), Ok(resp));

    let list = KeyResponse {
        result: true,
        message: String::new(),
        keys: vec!["aGk=".into()],
        primary_key: "aGk=".into(),
    };
    let want = cat(&[
        &[8, 0x84],
        &fs("Keys"),
        &[0x91],
        &fs("aGk="),
        &fs("Message"),
        &[0xa0],
        &fs("PrimaryKey"),
        &fs("aGk="),
        &fs("Result"),
        &[0xc3],
    ]);
    assert_eq!(encode_key_response(&list), want);
    assert_eq!(decode_key_response(&want), Ok(list));
    // A response without PrimaryKey (older serf) still decodes.
    let old = cat(&[&[8, 0x82], &fs("Message"), &fs("x"), &fs("Result"), &[0xc2]]);
    assert_eq!(
        decode_key_response(&old),
        Ok(KeyResponse {
            message: "x".into(),
            ..Default::default()
        })
    );
    // Payload of the wrong kind.
    assert!(matches!(
        decode_key_request(&encode_key_response(&KeyResponse::default())),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn golden_filters() {
    let nodes = Filter::Nodes(vec!["a".into(), "b".into()]);
    let want = cat(&[&[0, 0x92], &fs("a"), &fs("b")]);
    assert_eq!(encode_filter(&nodes), want);
    assert_eq!(decode_filter(&want), Ok(nodes));
    let tag = Filter::Tag {
        tag: "role".into(),
        expr: ".*".into(),
    };
    let want = cat(&[&[1, 0x82], &fs("Expr"), &fs(".*"), &fs("Tag"), &fs("role")]);
    assert_eq!(encode_filter(&tag), want);
    assert_eq!(decode_filter(&want), Ok(tag));
    // Liberal: nil node list, filterTag as an array.
    assert_eq!(decode_filter(&[0, 0xc0]), Ok(Filter::Nodes(vec![])));
    assert_eq!(
        decode_filter(&cat(&[&[1, 0x92], &fs("t"), &fs("e")])),
        Ok(Filter::Tag {
            tag: "t".into(),
            expr: "e".into()
        })
    );
    assert!(decode_filter(&[]).is_err());
    assert!(decode_filter(&[2, 0xc0]).is_err());
    assert!(decode_filter(&[0, 0x05]).is_err());

    // Inside a query a bad filter is kept verbatim instead of failing the query.
    let q = Query {
        filters: vec![Filter::Undecodable(vec![9, 9]), Filter::Undecodable(vec![])],
        ..Default::default()
    };
    assert_eq!(
        decode(&encode(&Message::Query(q.clone()))),
        Ok(Message::Query(q))
    );
}

#[test]
fn golden_tags() {
    let tags = BTreeMap::from([
        ("role".to_string(), "web".to_string()),
        ("dc".to_string(), "x".to_string()),
    ]);
    let want = cat(&[&[0xff, 0x82], &fs("dc"), &fs("x"), &fs("role"), &fs("web")]);
    assert_eq!(encode_tags(&tags), want);
    assert_eq!(encode_tags_for_protocol(&tags, 5), want);
    assert_eq!(decode_tags(&want), Ok(tags.clone()));
    // Go's encoder writes an empty (never nil) map for no tags.
    assert_eq!(encode_tags(&BTreeMap::new()), [0xff, 0x80]);
    assert_eq!(decode_tags(&[0xff, 0x80]), Ok(BTreeMap::new()));
    assert_eq!(decode_tags(&[0xff, 0xc0]), Ok(BTreeMap::new()));
    // Legacy: the metadata is the role; empty metadata is an empty role, as in Go.
    assert_eq!(encode_tags_for_protocol(&tags, 2), b"web");
    assert_eq!(
        decode_tags(b"web"),
        Ok(BTreeMap::from([("role".into(), "web".into())]))
    );
    assert_eq!(
        decode_tags(b""),
        Ok(BTreeMap::from([("role".into(), String::new())]))
    );
    assert!(decode_tags(&[0xff]).is_err());
    assert!(decode_tags(&[0xff, 0x81, 0xa1, b'k']).is_err());
}

#[test]
fn decodes_alternative_encodings() {
    let join = Message::Join(Join {
        ltime: 5,
        node: "a".into(),
    });
    // Struct as array (declaration order), wide ints, str8/bin/str16 strings, keys in any
    // order, unknown keys skipped, surplus array elements skipped.
    let forms: Vec<Vec<u8>> = vec![
        vec![1, 0x92, 0x05, 0xa1, b'a'],
        vec![1, 0x93, 0xcf, 0, 0, 0, 0, 0, 0, 0, 5, 0xd9, 1, b'a', 0xc0],
        cat(&[
            &[1, 0x82],
            &fs("Node"),
            &[0xc4, 1, b'a'],
            &fs("LTime"),
            &[0xd0, 5],
        ]),
        cat(&[
            &[1, 0x83],
            &[0xd9, 5],
            b"LTime",
            &[0xcd, 0, 5],
            &fs("Extra"),
            &[0x92, 0x81, 0xa0, 0xc0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0],
            &fs("Node"),
            &[0xda, 0, 1, b'a'],
        ]),
        cat(&[&[1, 0xde, 0, 2], &fs("LTime"), &[5], &fs("Node"), &fs("a")]),
    ];
    for f in &forms {
        assert_eq!(decode(f), Ok(join.clone()), "{f:02x?}");
    }
    // Nil is the zero value everywhere; trailing bytes are ignored.
    assert_eq!(
        decode(&[0, 0xc0, 0xff, 0xff]),
        Ok(Message::Leave(Leave::default()))
    );
    assert_eq!(
        decode(&cat(&[
            &[0, 0x83],
            &fs("LTime"),
            &[0xc0],
            &fs("Node"),
            &[0xc0],
            &fs("Prune"),
            &[1]
        ])),
        Ok(Message::Leave(Leave {
            prune: true,
            ..Default::default()
        }))
    );
    // Keys match case-sensitively, as go-msgpack matches them.
    assert_eq!(
        decode(&cat(&[&[1, 0x81], &fs("ltime"), &[5]])),
        Ok(Message::Join(Join::default()))
    );
    // Array-encoded payload bytes and maps/arrays with 16/32-bit headers.
    let ev = cat(&[
        &[3, 0x82],
        &fs("Payload"),
        &[0x92, 1, 2],
        &fs("Name"),
        &fs("n"),
    ]);
    assert_eq!(
        decode(&ev),
        Ok(Message::UserEvent(UserEvent {
            name: "n".into(),
            payload: vec![1, 2],
            ..Default::default()
        }))
    );
    let pp = cat(&[
        &[2, 0x83],
        &fs("LeftMembers"),
        &[0xdd, 0, 0, 0, 1],
        &fs("x"),
        &fs("StatusLTimes"),
        &[0xdf, 0, 0, 0, 1],
        &fs("x"),
        &[0xcc, 200],
        &fs("Events"),
        &[0xdc, 0, 1, 0x92, 7, 0xc0],
    ]);
    assert_eq!(
        decode(&pp),
        Ok(Message::PushPull(PushPull {
            left_members: vec!["x".into()],
            status_ltimes: BTreeMap::from([("x".into(), 200)]),
            events: vec![Some(UserEvents {
                ltime: 7,
                events: vec![]
            })],
            ..Default::default()
        }))
    );
    // A negative Go duration reads as zero.
    let q = cat(&[&[4, 0x81], &fs("Timeout"), &[0xff]]);
    let Ok(Message::Query(q)) = decode(&q) else {
        panic!()
    };
    assert_eq!(q.timeout, Duration::ZERO);
}

#[test]
fn rejects_bad_input() {
    assert_eq!(decode(&[10]), Err(Error::UnknownMessageType(10)));
    assert_eq!(decode(&[0xff, 0x80]), Err(Error::UnknownMessageType(0xff)));
    assert!(matches!(decode(&[]), Err(Error::Malformed(_))));
    // Wrong types and overflow.
    assert!(decode(&cat(&[&[1, 0x81], &fs("LTime"), &fs("x")])).is_err());
    assert!(decode(&cat(&[&[1, 0x81], &fs("LTime"), &[0xff]])).is_err());
    assert!(decode(&cat(&[&[4, 0x81], &fs("Port"), &[0xce, 0, 1, 0, 0]])).is_err());
    assert!(decode(&cat(&[&[4, 0x81], &fs("RelayFactor"), &[0xcd, 1, 0]])).is_err());
    assert!(decode(&cat(&[&[2, 0x81], &fs("Events"), &[0x91, 0x05]])).is_err());
    assert!(decode(&cat(&[&[2, 0x81], &fs("LeftMembers"), &fs("x")])).is_err());
    assert!(decode(&[1, 0x05]).is_err());
    // Huge declared containers with nothing behind them: truncated, not allocated.
    for body in [
        // (1 << 20 elements: the most we accept.)
        cat(&[&[2, 0x81], &fs("Events"), &[0xdd, 0, 0x10, 0, 0]]),
        cat(&[&[2, 0x81], &fs("StatusLTimes"), &[0xdf, 0, 0x10, 0, 0]]),
        cat(&[&[4, 0x81], &fs("Filters"), &[0xdd, 0, 0x10, 0, 0]]),
        vec![1, 0xdf, 0xff, 0xff, 0xff, 0xff],
        cat(&[&[1, 0x81], &fs("Node"), &[0xdb, 0xff, 0xff, 0xff, 0xff]]),
    ] {
        assert!(
            matches!(
                decode(&body),
                Err(Error::Swim(hearsay_swim::Error::Truncated { .. }))
            ),
            "{body:02x?}: {:?}",
            decode(&body)
        );
    }
    // More elements than we accept, even with the bytes present.
    let mut many = cat(&[&[2, 0x81], &fs("Events"), &[0xdd]]);
    many.extend_from_slice(&(MAX_CONTAINER_ITEMS as u32 + 1).to_be_bytes());
    many.resize(many.len() + MAX_CONTAINER_ITEMS + 1, 0xc0);
    assert!(matches!(
        decode(&many),
        Err(Error::Swim(hearsay_swim::Error::TooLarge { .. }))
    ));
    // Deep nesting in an unknown field is bounded.
    let mut deep = cat(&[&[1, 0x81], &fs("X")]);
    deep.extend(std::iter::repeat_n(0x91, 10_000));
    assert!(decode(&deep).is_err());
}

fn samples() -> Vec<Message> {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strat = arb::message();
    (0..300)
        .map(|_| strat.new_tree(&mut runner).unwrap().current())
        .collect()
}

#[test]
fn every_prefix_is_an_error() {
    for m in samples() {
        let full = encode(&m);
        let cut_off = match &m {
            // A relay's inner message is opaque: only the header must be complete.
            Message::Relay { inner, .. } => full.len() - inner.len(),
            _ => full.len(),
        };
        for n in 0..cut_off {
            assert!(decode(&full[..n]).is_err(), "{m:?} prefix {n} decoded");
        }
    }
}

proptest! {
    #[test]
    fn round_trip(m in arb::message()) {
        let bytes = encode(&m);
        let back = decode(&bytes);
        prop_assert_eq!(back.as_ref(), Ok(&m));
        // Canonical: re-encoding gives the same bytes.
        prop_assert_eq!(encode(&back.unwrap()), bytes);
    }

    #[test]
    fn filters_round_trip(f in arb::filter()) {
        match &f {
            Filter::Undecodable(raw) => {
                prop_assert_eq!(encode_filter(&f), raw.clone());
                prop_assert!(decode_filter(raw).is_err());
            }
            _ => prop_assert_eq!(decode_filter(&encode_filter(&f)), Ok(f)),
        }
    }

    #[test]
    fn tags_round_trip(tags in proptest::collection::btree_map(".{0,10}", ".{0,40}", 0..10)) {
        prop_assert_eq!(decode_tags(&encode_tags(&tags)), Ok(tags));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        fuzz_message(&data);
    }

    #[test]
    fn mutated_messages_never_panic(
        m in arb::message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&m);
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        fuzz_message(&bytes);
    }
}
