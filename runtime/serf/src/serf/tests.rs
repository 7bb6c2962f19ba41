//! Unit tests of the Serf layer on a single node.

use super::*;
use crate::messages::{Message, Query, QUERY_FLAG_ACK};
use hearsay_swim::wire::ip_bytes;

fn serf(tweak: impl FnOnce(&mut SerfConfig)) -> Serf {
    let mut cfg = SerfConfig::new(SwimConfig::lan("n1", "127.0.0.1:7946".parse().unwrap()));
    tweak(&mut cfg);
    Serf::new(cfg, None, 1, Instant::now()).unwrap()
}

/// Serf's `handleQuery` acks with `SendToAddress` on receipt (query.go), while the
/// query itself is only queued for gossip (`queryBroadcasts.QueueBroadcast`): the ack
/// leaves within the same packet handling, the rebroadcast waits for a gossip tick.
#[test]
fn a_received_query_is_acked_at_once_and_queued_for_the_gossip_tick() {
    use hearsay_swim::wire::{encode_message, Codec, Message as WireMessage, WireConfig};
    let mut s = serf(|_| {});
    let now = Instant::now();
    while s.poll_transmit().is_some() {}
    let origin: SocketAddr = "127.0.0.2:7946".parse().unwrap();
    let q = Query {
        ltime: 3,
        id: 77,
        addr: ip_bytes(origin.ip()),
        port: origin.port(),
        source_node: "origin".into(),
        filters: Vec::new(),
        flags: QUERY_FLAG_ACK,
        relay_factor: 0,
        timeout: Duration::from_secs(5),
        name: "ping".into(),
        payload: Vec::new(),
    };
    let raw = messages::encode(&Message::Query(q));
    let codec = Codec::new(WireConfig::default(), None);
    let mut rng = StdRng::seed_from_u64(3);
    let pkt = codec.seal_packet(
        &encode_message(&WireMessage::User(raw.clone())),
        false,
        &mut rng,
    );
    s.handle_packet(now, origin, &pkt);
    let sent: Vec<Transmit> = std::iter::from_fn(|| s.poll_transmit()).collect();
    assert_eq!(sent.len(), 1, "only the ack goes out now: {sent:?}");
    assert_eq!(sent[0].dst, origin);
    let opened = codec.open_packet(&sent[0].payload).unwrap();
    let [WireMessage::User(body)] = &opened.messages[..] else {
        panic!("{:?}", opened.messages)
    };
    let Message::QueryResponse(ack) = messages::decode(body).unwrap() else {
        panic!("not a query response")
    };
    assert_eq!((ack.ltime, ack.id, ack.flags), (3, 77, QUERY_FLAG_ACK));
    assert_eq!(ack.from, "n1");
    assert!(
        s.memberlist()
            .queued_user_broadcasts()
            .any(|m| m == &raw[..]),
        "the query is queued for gossip"
    );
}

#[test]
fn tags_follow_the_protocol_version() {
    let mut tags = BTreeMap::new();
    tags.insert("role".to_owned(), "web".to_owned());
    tags.insert("dc".to_owned(), "east".to_owned());
    let old = serf(|c| {
        c.protocol_version = 2;
        c.tags = tags.clone();
    });
    // Below protocol 3 only the role travels, as raw bytes.
    assert_eq!(old.memberlist().local().meta, b"web");
    let new = serf(|c| c.tags = tags.clone());
    assert_eq!(new.memberlist().local().meta[0], 0xff);
    assert_eq!(
        messages::decode_tags(&new.memberlist().local().meta).unwrap(),
        tags
    );
}

#[test]
fn limits_and_bad_input_are_refused_with_their_cause() {
    let now = Instant::now();
    let mut s = serf(|_| {});
    let big = vec![0u8; 600];
    assert!(matches!(
        s.user_event(now, "e", &big, false),
        Err(Error::UserEventTooLarge { limit: 512, .. })
    ));
    let mut params = QueryParams::default();
    params.filter_tags.insert("role".into(), "(".into());
    assert!(matches!(
        s.query(now, "q", b"", params),
        Err(Error::BadRegex { .. })
    ));
    assert!(matches!(
        s.query(now, "q", &vec![0u8; 2000], QueryParams::default()),
        Err(Error::QueryTooLarge { limit: 1024, .. })
    ));
    assert!(matches!(
        s.respond(now, 1, 2, b"x"),
        Err(Error::PastDeadline)
    ));
    let too_big = SerfConfig {
        user_event_size_limit: 10 * 1024,
        ..s.config().clone()
    };
    assert!(Serf::new(too_big, None, 1, now).is_err());
}

#[test]
fn queue_depths_count_each_kind_of_broadcast() {
    let now = Instant::now();
    let mut s = serf(|_| {});
    // A lone node gossips to no one, so what it queues stays queued.
    let start = s.queue_depths();
    s.user_event(now, "a", b"1", false).unwrap();
    s.user_event(now, "b", b"2", false).unwrap();
    s.query(now, "q", b"", QueryParams::default()).unwrap();
    let d = s.queue_depths();
    assert_eq!(d.event, start.event + 2, "{d:?}");
    assert_eq!(d.query, start.query + 1, "{d:?}");
    assert_eq!(d.intent, start.intent, "{d:?}");
    assert_eq!(s.coordinate_resets(), Some(0));
    assert_eq!(
        serf(|c| c.disable_coordinates = true).coordinate_resets(),
        None
    );
}

#[test]
fn default_query_timeout_follows_serfs_formula() {
    let s = serf(|_| {});
    // One member: 200 ms * 16 * ceil(log10(2)) = 3.2 s.
    assert_eq!(s.default_query_timeout(), Duration::from_millis(3200));
}
