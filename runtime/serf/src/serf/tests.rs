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

/// Captures the WARN-or-worse lines logged on this thread while `f` runs.
fn warnings(f: impl FnOnce()) -> Vec<String> {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .with_max_level(tracing::Level::WARN)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = out.0.lock().unwrap();
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Wraps Serf message bytes in a memberlist user message, as a datagram.
fn user_packet(raw: &[u8]) -> Vec<u8> {
    use hearsay_swim::wire::{encode_message, Codec, Message as WireMessage, WireConfig};
    let codec = Codec::new(WireConfig::default(), None);
    let mut rng = StdRng::seed_from_u64(3);
    codec.seal_packet(
        &encode_message(&WireMessage::User(raw.to_vec())),
        false,
        &mut rng,
    )
}

fn stat(s: &Serf, key: &str) -> u64 {
    s.drop_stats()
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key}"))
}

#[test]
fn undecodable_serf_messages_are_counted_and_logged_once_per_window() {
    use hearsay_swim::loglimit::WINDOW;
    let t0 = Instant::now();
    let mut s = serf(|_| {});
    let peer: SocketAddr = "127.0.0.2:7946".parse().unwrap();
    let junk = user_packet(&[0xee, 1, 2, 3]);
    let lines = warnings(|| {
        for ms in 0..500 {
            s.handle_packet(t0 + Duration::from_millis(ms), peer, &junk);
        }
        // Garbage for memberlist too: counted by the core, logged once.
        for ms in 0..100 {
            s.handle_packet(t0 + Duration::from_millis(ms), peer, &[200, 1]);
        }
        s.handle_timeout(t0 + Duration::from_millis(500) + WINDOW);
    });
    let count = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
    assert_eq!(count("serf: dropping undecodable message"), 1, "{lines:#?}");
    assert_eq!(
        count(
            "serf: suppressed 499 similar warnings from any source (undecodable) in the last 10s"
        ),
        1,
        "{lines:#?}"
    );
    assert_eq!(count("memberlist: dropping packet"), 1, "{lines:#?}");
    assert_eq!(
        count("memberlist: suppressed 99 similar warnings from 127.0.0.2 (unknown-type) in the last 10s"),
        1,
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert_eq!(stat(&s, "dropped_user_messages"), 500);
    assert_eq!(stat(&s, "dropped_packets"), 100);
    assert_eq!(stat(&s, "dropped_packets_unknown_type"), 100);
    assert_eq!(stat(&s, "suppressed_warnings"), 499 + 99);
}

#[test]
fn old_queries_are_logged_once_per_window() {
    let t0 = Instant::now();
    let mut s = serf(|_| {});
    let peer: SocketAddr = "127.0.0.2:7946".parse().unwrap();
    let query = |ltime: LamportTime, id: u32| Query {
        ltime,
        id,
        addr: ip_bytes(peer.ip()),
        port: peer.port(),
        source_node: "origin".into(),
        filters: Vec::new(),
        flags: 0,
        relay_factor: 0,
        timeout: Duration::from_secs(5),
        name: "q".into(),
        payload: Vec::new(),
    };
    let lines = warnings(|| {
        let new = messages::encode(&Message::Query(query(100_000, 1)));
        s.handle_packet(t0, peer, &user_packet(&new));
        for ltime in 1..=50 {
            let old = messages::encode(&Message::Query(query(ltime, 2)));
            s.handle_packet(t0, peer, &user_packet(&old));
        }
    });
    let old = lines
        .iter()
        .filter(|l| l.contains("serf: received old query"))
        .count();
    assert_eq!(old, 1, "{lines:#?}");
    assert_eq!(stat(&s, "suppressed_warnings"), 49);
}
