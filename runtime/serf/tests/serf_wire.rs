//! Serf's messages against the real `serf` binary (`/usr/bin/serf`, Go serf 0.8.2-dev /
//! Debian 0.9.4 sources).
//!
//! - A user event we encode, sent in a plain memberlist user packet, reaches serf's event
//!   handler with its name, payload and Lamport time.
//! - A hearsay memberlist node joins a serf agent; every Serf message serf gossips or sends to
//!   it must decode, and the user events, queries, relayed acks, conflict responses and
//!   push/pull state serf produces must re-encode to the very bytes serf sent.
//! - Our query responses and acks show up in `serf query`'s output, our key-query responses in
//!   `serf keys`, and serf's conflict answers about us decode into the member it knows.
//!
//! The `serf` binary is required: the tests fail (they never skip) without it. Every wait has a
//! generous deadline; nothing asserts on speed.

use base64::Engine;
use hearsay_net::{Config, Event, Keyring, Memberlist, Options, Transport, UdpTcpTransport};
use hearsay_serf::messages::{
    decode, decode_conflict_response, decode_key_request, encode, encode_conflict_response,
    encode_key_request, encode_key_response, encode_relay, encode_tags, ConflictMember, Filter,
    KeyResponse, Message, Query, QueryResponse, UserEvent, QUERY_FLAG_ACK,
};
use hearsay_swim::wire::{encode_message, Codec, Message as SwimMessage, WireConfig};
use hearsay_testkit::serf::{require_serf, Serf};
use hearsay_testkit::WAIT;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Output;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const KEY: &str = "aGVhcnNheS1zZXJmLWtleQ==";
const NEW_KEY: &str = "bmV3LWtleS1mb3Itc2VyZg==";

/// A serf agent named `ref` with debug logs and `extra` flags, in a fresh directory.
fn start_agent(tag: &str, extra: &[String]) -> Serf {
    require_serf();
    let dir = std::env::temp_dir().join(format!("hearsay-serf-wire-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut args = vec!["-log-level=debug".to_owned()];
    args.extend_from_slice(extra);
    Serf::launch(dir, "ref", &args, WAIT)
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn serf_accepts_our_user_events() {
    let dir =
        std::env::temp_dir().join(format!("hearsay-serf-wire-handler-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("events");
    let _ = std::fs::remove_file(&out);
    let handler = format!(
        "-event-handler=user=printf '%s %s [' \"$SERF_USER_EVENT\" \"$SERF_USER_LTIME\" >> {0}; \
         cat >> {0}; echo ']' >> {0}",
        out.display()
    );
    let agent = start_agent("events", &[handler]);

    let codec = Codec::new(WireConfig::default(), None);
    let mut rng = StdRng::seed_from_u64(7);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let events = [
        UserEvent {
            ltime: 7,
            name: "from-hearsay".into(),
            payload: b"payload bytes".to_vec(),
            cc: false,
        },
        // Nil payload, coalescing allowed.
        UserEvent {
            ltime: 9,
            name: "bare".into(),
            payload: vec![],
            cc: true,
        },
    ];
    // serf's handler gets the payload on stdin, a newline added when it lacks one.
    let expected = ["from-hearsay 7 [payload bytes\n]", "bare 9 []"];
    for (ev, want) in events.iter().zip(expected) {
        let body = encode(&Message::UserEvent(ev.clone()));
        let pkt = codec.seal_packet(&encode_message(&SwimMessage::User(body)), false, &mut rng);
        // UDP may drop; serf deduplicates by (LTime, Name, Payload), so resending is harmless.
        wait_until(
            &format!("serf's handler to see {want:?}"),
            || {
                sock.send_to(&pkt, agent.addr()).unwrap();
                std::thread::sleep(Duration::from_millis(200));
                std::fs::read_to_string(&out)
                    .unwrap_or_default()
                    .contains(want)
            },
            || {
                format!(
                    "handler output: {:?}\nserf log:\n{}",
                    std::fs::read_to_string(&out),
                    agent.log()
                )
            },
        );
    }
    let log = agent.log();
    assert!(
        log.contains("Received event: user-event: from-hearsay"),
        "{log}"
    );
    assert!(
        !log.contains("[ERR]") && !log.contains("[WARN] serf"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A hearsay memberlist node joined to an agent, with every Serf message it received.
struct Node {
    ml: Memberlist,
    /// (raw bytes, decoded) of every user message.
    messages: mpsc::Receiver<(Vec<u8>, Message)>,
    /// Every push/pull state serf sent, decoded.
    states: mpsc::Receiver<(Vec<u8>, Message)>,
    seen: Vec<(Vec<u8>, Message)>,
    undecodable: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Node {
    async fn join(agent: &Serf, keyring: Option<Keyring>) -> Self {
        let t = UdpTcpTransport::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut config = Config::local("h1", t.local_addr());
        config.gossip_interval = Duration::from_millis(50);
        let tags = BTreeMap::from([("role".to_string(), "web".to_string())]);
        let mut options = Options::new(config).meta(encode_tags(&tags)).seed(1);
        if let Some(k) = keyring {
            options = options.keyring(k);
        }
        let ml = Memberlist::start(options, t).unwrap();
        let mut events = ml.subscribe();
        let (tx, messages) = mpsc::channel();
        let (state_tx, states) = mpsc::channel();
        let undecodable = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let bad = undecodable.clone();
        tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                let (raw, to) = match ev {
                    Event::UserMessage(raw) => (raw, &tx),
                    Event::RemoteState { state, .. } if !state.is_empty() => (state, &state_tx),
                    _ => continue,
                };
                match decode(&raw) {
                    Ok(m) => {
                        let _ = to.send((raw, m));
                    }
                    Err(e) => bad.lock().unwrap().push(format!("{e}: {raw:02x?}")),
                }
            }
        });
        ml.join(&[agent.addr()]).await.expect("join serf");
        Self {
            ml,
            messages,
            states,
            seen: Vec::new(),
            undecodable,
        }
    }

    /// Waits for the first message `pick` accepts, keeping every other one in `seen`.
    fn expect<T>(
        &mut self,
        what: &str,
        agent: &Serf,
        pick: impl Fn(&Message) -> Option<T>,
    ) -> (Vec<u8>, T) {
        self.within(WAIT, pick).unwrap_or_else(|| {
            panic!(
                "no {what} from serf within {WAIT:?}; got {:#?}\nserf log:\n{}",
                self.seen.iter().map(|(_, m)| m).collect::<Vec<_>>(),
                agent.log()
            )
        })
    }

    /// The first message `pick` accepts within `wait`, or `None`; every message stays in `seen`.
    fn within<T>(
        &mut self,
        wait: Duration,
        pick: impl Fn(&Message) -> Option<T>,
    ) -> Option<(Vec<u8>, T)> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(t) = self
                .seen
                .iter()
                .find_map(|(raw, m)| pick(m).map(|t| (raw.clone(), t)))
            {
                return Some(t);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .messages
                .recv_timeout(left.min(Duration::from_millis(500)))
            {
                Ok(m) => self.seen.push(m),
                Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {}
                Err(_) => return None,
            }
        }
    }

    fn assert_all_decoded(&self) {
        let bad = self.undecodable.lock().unwrap();
        assert!(
            bad.is_empty(),
            "messages from serf that did not decode: {bad:#?}"
        );
    }
}

/// Waits until `serf members` lists h1 alive with the tags we encoded.
fn wait_member(agent: &Serf) {
    wait_until(
        "serf to list h1 alive with role=web",
        || {
            let o = agent.cli_output(&["members"]);
            text(&o)
                .lines()
                .any(|l| l.starts_with("h1 ") && l.contains("alive") && l.contains("role=web"))
        },
        || format!("{}\n{}", text(&agent.cli_output(&["members"])), agent.log()),
    );
}

/// Checks every field serf put in the `ping-q` query, and that it re-encodes to serf's bytes.
fn check_query(q: &Query, raw: &[u8], agent: &Serf) {
    assert_eq!(q.payload, b"hello");
    assert_eq!(q.source_node, "ref");
    assert_eq!(q.port, agent.bind);
    assert_eq!(query_reply_addr(q), agent.addr());
    assert_eq!(q.timeout, Duration::from_secs(4));
    assert_eq!(q.relay_factor, 1);
    assert!(q.ack() && !q.no_broadcast(), "flags {}", q.flags);
    assert_eq!(
        q.filters,
        [
            Filter::Nodes(vec!["ref".into(), "h1".into()]),
            Filter::Tag {
                tag: "role".into(),
                expr: ".*".into()
            }
        ]
    );
    assert_eq!(
        encode(&Message::Query(q.clone())),
        raw,
        "re-encoded query differs"
    );
}

/// Sends h1's ack and its response `pong from hearsay` to the query's originator.
fn answer_query(rt: &tokio::runtime::Runtime, node: &Node, q: &Query) {
    let ack = QueryResponse {
        ltime: q.ltime,
        id: q.id,
        from: "h1".into(),
        flags: QUERY_FLAG_ACK,
        payload: vec![],
    };
    let resp = QueryResponse {
        flags: 0,
        payload: b"pong from hearsay".to_vec(),
        ..ack.clone()
    };
    rt.block_on(async {
        for r in [&ack, &resp] {
            let msg = encode(&Message::QueryResponse(r.clone()));
            node.ml
                .send_user_packet(query_reply_addr(q), msg)
                .await
                .unwrap();
        }
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn query_reply_addr(q: &Query) -> SocketAddr {
    let ip = match q.addr.len() {
        4 => IpAddr::V4(Ipv4Addr::new(q.addr[0], q.addr[1], q.addr[2], q.addr[3])),
        16 => IpAddr::from(<[u8; 16]>::try_from(q.addr.as_slice()).unwrap()).to_canonical(),
        n => panic!("query Addr of {n} bytes"),
    };
    SocketAddr::new(ip, q.port)
}

#[test]
fn capture_and_answer_real_serf_messages() {
    let agent = start_agent("capture", &[]);
    let rt = runtime();
    let mut node = rt.block_on(Node::join(&agent, None));
    wait_member(&agent);

    // ---- user events: decode, and re-encode to serf's exact bytes ----
    let o = agent.cli_output(&["event", "deploy", "v1.2"]);
    assert!(o.status.success(), "{}", text(&o));
    let (raw, ev) = node.expect("user event 'deploy'", &agent, |m| match m {
        Message::UserEvent(e) if e.name == "deploy" => Some(e.clone()),
        _ => None,
    });
    assert_eq!(ev.payload, b"v1.2");
    assert!(ev.cc, "serf event coalesces by default");
    assert!(ev.ltime >= 1);
    assert_eq!(
        encode(&Message::UserEvent(ev.clone())),
        raw,
        "re-encoded user event differs"
    );

    let o = agent.cli_output(&["event", "-coalesce=false", "bare"]);
    assert!(o.status.success(), "{}", text(&o));
    let (raw2, ev2) = node.expect("user event 'bare'", &agent, |m| match m {
        Message::UserEvent(e) if e.name == "bare" => Some(e.clone()),
        _ => None,
    });
    assert!(
        !ev2.cc && ev2.payload.is_empty() && ev2.ltime > ev.ltime,
        "{ev2:?}"
    );
    assert_eq!(
        encode(&Message::UserEvent(ev2)),
        raw2,
        "re-encoded empty-payload event differs"
    );

    // ---- a query with filters and a relay factor; we ack and respond ----
    // serf relays its own ack through `relay_factor` random alive members other than itself
    // (kRandomMembers in serf/query.go). It draws at most 3 × len(members) times, here 6 draws
    // between `ref` and `h1`, so 1 query in 64 relays nothing. A query without a relay is asked
    // again, at most four times.
    let mut asked = Vec::new();
    let mut relayed = None;
    let mut q = None;
    for _attempt in 0..4 {
        let query_cli = agent.spawn_cli(&[
            "query",
            "-timeout=4s",
            "-relay-factor=1",
            "-node=ref",
            "-node=h1",
            "-tag",
            "role=.*",
            "ping-q",
            "hello",
        ]);
        let (raw, this) = node.expect("query 'ping-q'", &agent, |m| match m {
            Message::Query(q) if q.name == "ping-q" && !asked.contains(&q.id) => Some(q.clone()),
            _ => None,
        });
        asked.push(this.id);
        check_query(&this, &raw, &agent);
        answer_query(&rt, &node, &this);
        let id = this.id;
        relayed = node.within(Duration::from_secs(5), |m| match m {
            Message::Relay {
                dest,
                dest_name,
                inner,
            } => match decode(inner) {
                Ok(Message::QueryResponse(r)) if r.id == id => {
                    Some((*dest, dest_name.clone(), inner.clone(), r))
                }
                _ => None,
            },
            _ => None,
        });

        let out = query_cli.wait_with_output().unwrap();
        let out = text(&out);
        assert!(out.contains("Ack from 'h1'"), "{out}\n{}", agent.log());
        assert!(
            out.contains("Response from 'h1': pong from hearsay"),
            "{out}\n{}",
            agent.log()
        );
        assert!(out.contains("Ack from 'ref'"), "{out}");
        q = Some(this);
        if relayed.is_some() {
            break;
        }
    }
    let q = q.expect("at least one query");
    // serf's own ack, relayed through us (the only other member): a real relay message.
    let (raw, (dest, dest_name, inner, relayed)) = relayed.unwrap_or_else(|| {
        panic!(
            "serf relayed none of {} queries' acks through h1\nserf log:\n{}",
            asked.len(),
            agent.log()
        )
    });
    assert_eq!(dest, agent.addr());
    assert_eq!(dest_name, "ref");
    assert!(relayed.ack() && relayed.from == "ref", "{relayed:?}");
    assert_eq!(
        encode_relay(dest, &dest_name, &inner),
        raw,
        "re-encoded relay differs"
    );

    // ---- _serf_conflict: serf answers with the Member it holds for us, or nil ----
    let ours = rt.block_on(node.ml.local()).unwrap().addr;
    let mut ask = |id: u32, about: &str| -> Vec<u8> {
        let q = Query {
            ltime: q.ltime + u64::from(id),
            id,
            addr: vec![127, 0, 0, 1],
            port: ours.port(),
            source_node: "h1".into(),
            filters: vec![],
            flags: 0,
            relay_factor: 0,
            timeout: Duration::from_secs(5),
            name: "_serf_conflict".into(),
            payload: about.as_bytes().to_vec(),
        };
        let msg = encode(&Message::Query(q));
        rt.block_on(node.ml.send_user_packet(agent.addr(), msg))
            .unwrap();
        let (_, r) = node.expect("conflict response", &agent, |m| match m {
            Message::QueryResponse(r) if r.id == id => Some(r.clone()),
            _ => None,
        });
        assert_eq!(r.from, "ref");
        r.payload
    };
    let payload = ask(0x0c0f_f11c, "h1");
    let member = decode_conflict_response(&payload)
        .unwrap()
        .expect("serf knows h1");
    let ip = match ours.ip() {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => panic!("unexpected IPv6 {v6}"),
    };
    assert!(
        member.addr == ip.octets() || member.addr == ip.to_ipv6_mapped().octets(),
        "{member:?}"
    );
    assert_eq!(
        member,
        ConflictMember {
            name: "h1".into(),
            addr: member.addr.clone(),
            port: ours.port(),
            tags: BTreeMap::from([("role".into(), "web".into())]),
            status: 1,
            ..member.clone()
        }
    );
    assert_eq!(
        (
            member.protocol_min,
            member.protocol_max,
            member.delegate_min,
            member.delegate_max
        ),
        (1, 5, 2, 5),
        "{member:?}"
    );
    assert_eq!(
        encode_conflict_response(Some(&member)),
        payload,
        "re-encoded Member differs"
    );
    let payload = ask(0x0c0f_f11d, "nobody");
    assert_eq!(payload, [6, 0xc0], "nil *Member");
    assert_eq!(decode_conflict_response(&payload), Ok(None));

    // ---- serf's push/pull state ----
    let (raw, pp) = node
        .states
        .recv_timeout(WAIT)
        .expect("serf's push/pull state on join");
    let Message::PushPull(pp) = pp else {
        panic!("remote state is not a push/pull: {pp:?}")
    };
    // Go sends its whole event ring, nil slots included.
    assert!(
        pp.events.len() >= 64 && pp.events.iter().any(Option::is_none),
        "{} slots",
        pp.events.len()
    );
    assert!(pp.status_ltimes.contains_key("ref"), "{pp:?}");
    let again = encode(&Message::PushPull(pp.clone()));
    // Go iterates StatusLTimes in random order; everything else is byte-exact.
    assert_eq!(again.len(), raw.len());
    if pp.status_ltimes.len() <= 1 {
        assert_eq!(again, raw);
    }

    node.assert_all_decoded();
    let log = agent.log();
    assert!(
        !log.contains("Failed to decode") && !log.contains("Error decoding"),
        "{log}"
    );
    rt.block_on(node.ml.shutdown());
}

#[test]
fn key_queries_with_real_serf() {
    let agent = start_agent("keys", &[format!("-encrypt={KEY}")]);
    let rt = runtime();
    let keyring = Keyring::from_base64_keys(&[KEY]).unwrap();
    let mut node = rt.block_on(Node::join(&agent, Some(keyring)));
    wait_member(&agent);

    // `serf keys -install`: the query payload is keyRequest{Key} with the raw key.
    let cli = agent.spawn_cli(&["keys", "-install", NEW_KEY]);
    let (_, q) = node.expect("install-key query", &agent, |m| match m {
        Message::Query(q) if q.name == "_serf_install-key" => Some(q.clone()),
        _ => None,
    });
    let raw_key = base64::engine::general_purpose::STANDARD
        .decode(NEW_KEY)
        .unwrap();
    assert_eq!(decode_key_request(&q.payload), Ok(raw_key.clone()));
    assert_eq!(encode_key_request(&raw_key), q.payload);
    let ml = node.ml.clone();
    let answer = |q: &Query, resp: &KeyResponse| {
        let msg = encode(&Message::QueryResponse(QueryResponse {
            ltime: q.ltime,
            id: q.id,
            from: "h1".into(),
            flags: 0,
            payload: encode_key_response(resp),
        }));
        rt.block_on(ml.send_user_packet(query_reply_addr(q), msg))
            .unwrap();
    };
    answer(
        &q,
        &KeyResponse {
            result: true,
            ..Default::default()
        },
    );
    let out = cli.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out), agent.log());
    assert!(
        text(&out).contains("Successfully installed key"),
        "{}",
        text(&out)
    );

    // `serf keys -list`: serf tallies the keys and primary key from our response.
    let cli = agent.spawn_cli(&["keys", "-list"]);
    let (_, q) = node.expect("list-keys query", &agent, |m| match m {
        Message::Query(q) if q.name == "_serf_list-keys" => Some(q.clone()),
        _ => None,
    });
    // An empty (not nil) key: byte-exact.
    assert_eq!(decode_key_request(&q.payload), Ok(vec![]));
    assert_eq!(encode_key_request(&[]), q.payload);
    answer(
        &q,
        &KeyResponse {
            result: true,
            message: String::new(),
            keys: vec![KEY.into(), NEW_KEY.into()],
            primary_key: KEY.into(),
        },
    );
    let out = cli.wait_with_output().unwrap();
    let listing = text(&out);
    assert!(out.status.success(), "{listing}\n{}", agent.log());
    // Both nodes hold both keys: each is counted twice.
    for key in [KEY, NEW_KEY] {
        assert!(
            listing
                .lines()
                .any(|l| l.split_whitespace().eq([key, "[2/2]"])),
            "{key} not held by 2/2 nodes:\n{listing}"
        );
    }

    // A failing node: serf reports our message.
    let cli = agent.spawn_cli(&["keys", "-remove", NEW_KEY]);
    let (_, q) = node.expect("remove-key query", &agent, |m| match m {
        Message::Query(q) if q.name == "_serf_remove-key" => Some(q.clone()),
        _ => None,
    });
    answer(
        &q,
        &KeyResponse {
            result: false,
            message: "hearsay says no".into(),
            ..Default::default()
        },
    );
    let out = cli.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("hearsay says no"), "{}", text(&out));

    node.assert_all_decoded();
    rt.block_on(node.ml.shutdown());
}
