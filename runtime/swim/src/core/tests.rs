//! Unit tests of the membership state machine, driven message by message.
//!
//! One [`Swim`] is driven by hand: packets are crafted with `encode_message` and a plain
//! [`Codec`], time is stepped with explicit `Instant`s, and whatever the core sends is opened
//! again with the codec. Each test checks one of memberlist's rules (`state.go`, `net.go`,
//! `suspicion.go`, `awareness.go`).

use super::*;
use crate::config::{retransmit_limit, suspicion_timeout};
use crate::suspicion::timeout_after;
use crate::wire::{
    encode_compound, encode_message, Ack, Dead, ErrResp, IndirectPing, Message, MessageType, Nack,
    Ping, PushNodeState, PushPull, StreamMessage, Suspect,
};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

mod junk;

const ME: &str = "me";
/// pmin, pmax, pcur, dmin, dmax, dcur of a Serf-like peer speaking protocol 5 at most.
const VSN: [u8; 6] = [1, 5, 2, 2, 5, 5];
/// Far enough in the future that a parked timer never fires during a test.
const FAR: Duration = Duration::from_secs(3600);
const SEC: Duration = Duration::from_secs(1);

fn addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), 7946)
}

fn alive(name: &str, i: u8, incarnation: u32) -> Alive {
    Alive {
        incarnation,
        node: name.into(),
        addr: vec![10, 0, 0, i],
        port: 7946,
        meta: Vec::new(),
        vsn: VSN.to_vec(),
    }
}

fn suspect(name: &str, incarnation: u32, from: &str) -> Message {
    Message::Suspect(Suspect {
        incarnation,
        node: name.into(),
        from: from.into(),
    })
}

fn dead(name: &str, incarnation: u32, from: &str) -> Message {
    Message::Dead(Dead {
        incarnation,
        node: name.into(),
        from: from.into(),
    })
}

fn push_state(name: &str, i: u8, incarnation: u32, state: NodeStateKind) -> PushNodeState {
    PushNodeState {
        name: name.into(),
        addr: vec![10, 0, 0, i],
        port: 7946,
        meta: Vec::new(),
        incarnation,
        state,
        vsn: VSN.to_vec(),
    }
}

/// One core under test plus a peer-side codec.
struct Harness {
    swim: Swim,
    t0: Instant,
    codec: Codec,
    rng: StdRng,
    /// What the last [`Harness::probe`] sent to its target.
    last_probe: Vec<Message>,
}

impl Harness {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::lan(ME, addr(1));
        tweak(&mut config);
        let codec = Codec::new(config.wire.clone(), None);
        let t0 = Instant::now();
        let swim = Swim::new(config, None, Vec::new(), 7, t0).expect("valid config");
        let mut h = Self {
            swim,
            t0,
            codec,
            rng: StdRng::seed_from_u64(1),
            last_probe: Vec::new(),
        };
        // Park the periodic timers: each test fires the ones it is about.
        h.swim.next_probe = t0 + FAR;
        h.swim.next_gossip = t0 + FAR;
        h.swim.next_push_pull = t0 + FAR;
        let evs = h.events();
        assert!(
            matches!(&evs[..], [Event::MemberJoined(m)] if m.name == ME),
            "we join ourselves once at start: {evs:?}"
        );
        h.settle();
        h
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Forgets every output and queued broadcast so far.
    fn settle(&mut self) {
        self.sent();
        self.events();
        self.streams();
        self.swim.broadcasts.clear();
        while self.swim.broadcasts.poll_finished().is_some() {}
    }

    fn send(&mut self, now: Instant, from: SocketAddr, msgs: Vec<Message>) {
        let encoded: Vec<Vec<u8>> = msgs.iter().map(encode_message).collect();
        let buf = if encoded.len() == 1 {
            encoded.into_iter().next().expect("one")
        } else {
            encode_compound(&encoded)
        };
        let pkt = self.codec.seal_packet(&buf, false, &mut self.rng);
        self.swim.handle_packet(now, from, &pkt);
    }

    /// Every datagram the core produced, opened; checks each fits memberlist's UDP budget.
    fn sent(&mut self) -> Vec<(SocketAddr, Vec<Message>)> {
        let budget = self.swim.config.udp_buffer_size;
        let mut out = Vec::new();
        while let Some(t) = self.swim.poll_transmit() {
            let opened = self
                .codec
                .open_packet(&t.payload)
                .expect("our packet opens");
            assert!(opened.errors.is_empty(), "{:?}", opened.errors);
            // The budget applies to the plaintext before compression.
            let parts: Vec<Vec<u8>> = opened.messages.iter().map(encode_message).collect();
            let plain = if parts.len() == 1 {
                parts[0].len()
            } else {
                encode_compound(&parts).len()
            };
            assert!(plain <= budget, "packet of {plain} bytes over {budget}");
            out.push((t.dst, opened.messages));
        }
        out
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.swim.poll_event()).collect()
    }

    fn streams(&mut self) -> Vec<StreamRequest> {
        std::iter::from_fn(|| self.swim.poll_stream()).collect()
    }

    fn add_peer_vsn(&mut self, name: &str, i: u8, vsn: [u8; 6]) {
        let mut a = alive(name, i, 1);
        a.vsn = vsn.to_vec();
        let now = self.t0;
        self.send(now, addr(i), vec![Message::Alive(a)]);
        assert_eq!(self.state(name), NodeStateKind::Alive);
        self.settle();
    }

    fn add_peer(&mut self, name: &str, i: u8) {
        self.add_peer_vsn(name, i, VSN);
    }

    fn state(&self, name: &str) -> NodeStateKind {
        self.swim.member(name).expect("known member").state
    }

    /// Runs one gossip tick at `now` and returns what it sent.
    pub(super) fn gossip(&mut self, now: Instant) -> Vec<(SocketAddr, Vec<Message>)> {
        self.swim.next_gossip = now;
        self.swim.handle_timeout(now);
        self.swim.next_gossip = now + FAR;
        self.sent()
    }

    /// Makes `name` the next node probed and starts the probe at `now`.
    fn probe(&mut self, now: Instant, name: &str) -> u32 {
        let id = self.swim.nodes.id(name).expect("known");
        let idx = self
            .swim
            .order
            .iter()
            .position(|&n| n == id)
            .expect("known");
        self.swim.probe_index = idx;
        self.swim.next_probe = now;
        self.swim.handle_timeout(now);
        let sent = self.sent();
        let target = self.swim.member(name).expect("known").addr;
        self.last_probe = sent
            .iter()
            .filter(|(dst, _)| *dst == target)
            .flat_map(|(_, m)| m.iter().cloned())
            .collect();
        let pings: Vec<u32> = self
            .last_probe
            .iter()
            .filter_map(|m| match m {
                Message::Ping(p) if p.node == name => Some(p.seq_no),
                _ => None,
            })
            .collect();
        assert_eq!(pings.len(), 1, "one ping to {name}: {sent:?}");
        pings[0]
    }
}

fn all_msgs(sent: &[(SocketAddr, Vec<Message>)]) -> Vec<Message> {
    sent.iter().flat_map(|(_, m)| m.iter().cloned()).collect()
}

fn alive_about(msgs: &[Message], name: &str) -> Vec<Alive> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Alive(a) if a.node == name => Some(a.clone()),
            _ => None,
        })
        .collect()
}

// ----- refutation ----------------------------------------------------------------------------

#[test]
fn suspect_about_us_is_refuted_with_a_higher_incarnation() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    let before = h.swim.local().incarnation;
    h.send(h.at(0), addr(2), vec![suspect(ME, before, "a")]);

    let me = h.swim.local().clone();
    assert!(me.incarnation > before);
    assert_eq!(me.state, NodeStateKind::Alive);
    assert_eq!(h.swim.health_score(), 1, "refuting costs one health point");
    assert!(h.events().is_empty(), "no event about ourselves");

    let out = h.gossip(h.at(100));
    let alives = alive_about(&all_msgs(&out), ME);
    assert_eq!(alives.len(), 1, "{out:?}");
    assert_eq!(alives[0].incarnation, me.incarnation);
    assert_eq!(alives[0].vsn, me.vsn.to_vec());
}

#[test]
fn refutation_outbids_a_higher_accused_incarnation() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    h.send(h.at(0), addr(2), vec![suspect(ME, 41, "a")]);
    assert_eq!(h.swim.local().incarnation, 42);
    // The next one goes on from there.
    h.send(h.at(1), addr(2), vec![suspect(ME, 42, "a")]);
    assert_eq!(h.swim.local().incarnation, 43);
    assert_eq!(h.swim.health_score(), 2);
}

#[test]
fn refutation_rides_on_the_ack_to_a_ping() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    h.send(h.at(0), addr(2), vec![suspect(ME, 1, "a")]);
    let ping = Ping {
        seq_no: 9,
        node: ME.into(),
        ..Ping::default()
    };
    h.send(h.at(1), addr(2), vec![Message::Ping(ping)]);
    let out = h.sent();
    assert_eq!(out.len(), 1);
    let (dst, msgs) = &out[0];
    assert_eq!(*dst, addr(2));
    assert!(matches!(&msgs[0], Message::Ack(a) if a.seq_no == 9));
    let alives = alive_about(msgs, ME);
    assert_eq!(alives.len(), 1, "the refutation is piggybacked: {msgs:?}");
    assert_eq!(alives[0].incarnation, h.swim.local().incarnation);
}

#[test]
fn accusations_about_an_older_incarnation_of_us_are_ignored() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    h.send(h.at(0), addr(2), vec![suspect(ME, 5, "a")]);
    let inc = h.swim.local().incarnation;
    assert_eq!(inc, 6);
    h.settle();
    h.send(
        h.at(1),
        addr(2),
        vec![suspect(ME, 5, "a"), dead(ME, 5, "a")],
    );
    assert_eq!(h.swim.local().incarnation, inc);
    assert_eq!(
        h.swim.health_score(),
        1,
        "only the first accusation cost health"
    );
    assert!(h.gossip(h.at(10)).is_empty(), "nothing to refute");
}

#[test]
fn refuting_the_largest_incarnation_does_not_panic() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    // memberlist's atomic incarnation arithmetic wraps; network input must never panic.
    h.send(h.at(0), addr(2), vec![suspect(ME, u32::MAX, "a")]);
    assert_eq!(h.swim.local().state, NodeStateKind::Alive);
    let mut a = alive(ME, 1, u32::MAX);
    a.meta = b"other".to_vec();
    h.send(h.at(1), addr(2), vec![Message::Alive(a)]);
    assert_eq!(h.swim.local().state, NodeStateKind::Alive);
}

#[test]
fn dead_about_us_is_refuted_while_not_leaving() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    let before = h.swim.local().incarnation;
    h.send(h.at(0), addr(2), vec![dead(ME, before, "a")]);
    assert_eq!(h.swim.local().state, NodeStateKind::Alive);
    assert!(h.swim.local().incarnation > before);
    assert_eq!(h.swim.health_score(), 1);
    assert!(h.events().is_empty());
    let out = h.gossip(h.at(100));
    assert_eq!(alive_about(&all_msgs(&out), ME).len(), 1);
}

#[test]
fn alive_about_us_with_other_meta_is_refuted() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    let me = h.swim.local().clone();
    // Same incarnation and same content: nothing to do.
    let mut same = me.alive_msg();
    h.send(h.at(0), addr(2), vec![Message::Alive(same.clone())]);
    assert_eq!(h.swim.local().incarnation, me.incarnation);
    assert_eq!(h.swim.health_score(), 0);
    // Same incarnation, other metadata (a previous life of ours): refute.
    same.meta = b"stale".to_vec();
    h.send(h.at(1), addr(2), vec![Message::Alive(same)]);
    assert!(h.swim.local().incarnation > me.incarnation);
    assert_eq!(h.swim.local().meta, me.meta, "our metadata is kept");
    assert_eq!(h.swim.health_score(), 1);
}

#[test]
fn after_leave_a_dead_message_about_us_is_not_refuted() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    let inc = h.swim.local().incarnation;
    h.swim.leave(h.at(0));
    assert!(h.swim.has_left());
    assert_eq!(h.swim.local().state, NodeStateKind::Left);
    let evs = h.events();
    assert!(
        matches!(&evs[..], [Event::MemberLeft(m)] if m.name == ME),
        "{evs:?}"
    );

    h.send(h.at(10), addr(2), vec![dead(ME, inc, "a")]);
    h.send(h.at(11), addr(2), vec![suspect(ME, inc, "a")]);
    h.send(
        h.at(12),
        addr(2),
        vec![Message::Alive(alive(ME, 1, inc + 5))],
    );
    assert_eq!(h.swim.local().state, NodeStateKind::Left);
    assert_eq!(h.swim.local().incarnation, inc);
    assert_eq!(h.swim.health_score(), 0);

    // The leave goes out retransmit_limit times, then LeaveComplete.
    let limit = retransmit_limit(h.swim.config.retransmit_mult, h.swim.est_num_nodes());
    for i in 0..limit {
        assert!(h.events().is_empty(), "leave not complete after {i} sends");
        assert!(h.swim.has_left() && !h.swim.leave_finished());
        let out = h.gossip(h.at(100 + 200 * i as u64));
        let msgs = all_msgs(&out);
        assert!(alive_about(&msgs, ME).is_empty());
        assert!(
            msgs.iter()
                .any(|m| matches!(m, Message::Dead(d) if d.node == ME && d.from == ME)),
            "{msgs:?}"
        );
    }
    assert_eq!(h.events(), vec![Event::LeaveComplete]);
    assert!(h.swim.leave_finished());
}

#[test]
fn leave_with_nobody_to_tell_completes_at_once() {
    let mut h = Harness::new();
    assert!(!h.swim.leave_finished());
    h.swim.leave(h.at(0));
    assert!(h.swim.leave_finished());
    let evs = h.events();
    assert!(
        matches!(&evs[..], [Event::MemberLeft(_), Event::LeaveComplete]),
        "{evs:?}"
    );
    h.swim.leave(h.at(1));
    assert!(h.events().is_empty(), "leave is idempotent");
}

#[test]
fn a_left_node_keeps_its_own_entry_while_probing_goes_on() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    h.swim.leave(h.at(0));
    // Keep probing well past gossip_to_the_dead_time: the probe order wraps and reaps.
    let mut now = h.at(0);
    for _ in 0..80 {
        now += SEC;
        h.swim.next_probe = h.swim.next_probe.min(now);
        h.swim.handle_timeout(now);
        h.settle();
    }
    assert_eq!(h.swim.local().state, NodeStateKind::Left);
    assert_eq!(h.swim.local().name, ME);
}

#[test]
fn a_member_entry_stays_within_48_bytes() {
    // N members on each of N nodes: every byte here is paid N² times in the simulator.
    assert!(std::mem::size_of::<Option<NodeEntry>>() <= 48);
}

#[test]
fn a_held_name_keeps_the_fields_of_a_reaped_member_until_released() {
    let mut h = five_nodes();
    // The layer above (Serf) holds "a" and "b"; "c" only the core holds.
    let a = h.swim.hold_name("a");
    let b = h.swim.hold_name("b");
    assert_eq!(h.swim.name_id("a"), Some(a));
    assert_eq!(h.swim.name_of(b), "b");
    let mut meta = Alive {
        meta: b"role=web-tier".to_vec(),
        ..alive("a", 2, 2)
    };
    h.send(h.at(0), addr(2), vec![Message::Alive(meta.clone())]);
    for (name, inc) in [("a", 2), ("c", 1)] {
        h.send(h.at(1), addr(3), vec![dead(name, inc, "b")]);
    }
    assert_eq!(h.state("a"), NodeStateKind::Dead);
    // Probe well past gossip_to_the_dead_time: the core forgets the dead nodes.
    let mut now = h.at(1);
    for _ in 0..80 {
        now += SEC;
        h.swim.next_probe = h.swim.next_probe.min(now);
        h.swim.handle_timeout(now);
        h.settle();
    }
    assert!(h.swim.member("a").is_none() && h.swim.member("c").is_none());
    assert!(h.swim.members().all(|m| m.name != "a"));
    assert_eq!(h.swim.name_id("c"), None, "nobody holds c");
    // "a" is gone from the core but its fields stay readable by its held id.
    let info = h.swim.member_info(a).expect("held");
    assert_eq!(
        (info.name, info.addr, info.meta, info.state, info.vsn),
        (
            "a",
            addr(2),
            &b"role=web-tier"[..],
            NodeStateKind::Dead,
            VSN
        )
    );
    // Unanswered probes failed the other peers too; "b" is held, so it stays readable.
    assert!(h.swim.member_info(b).is_some());
    // It comes back: same id, fresh fields, announced as a join.
    meta.incarnation = 3;
    meta.meta = b"x".to_vec();
    h.send(now, addr(2), vec![Message::Alive(meta)]);
    assert_eq!(h.swim.name_id("a"), Some(a));
    assert!(matches!(&h.events()[..], [Event::MemberJoined(m)] if m.name == "a"));
    assert_eq!(h.swim.member_info(a).unwrap().meta, b"x");
    // Released while the core still has it: the core keeps it.
    h.swim.release_name(a);
    assert_eq!(h.swim.member("a").unwrap().meta, b"x");
    // Released after the core forgot it: the id and the fields are gone.
    assert!(h.swim.member("b").is_none());
    assert!(h.swim.member_info(b).is_some());
    h.swim.release_name(b);
    assert_eq!(h.swim.name_id("b"), None);
    assert!(h.swim.member_info(b).is_none());
    assert!(h.swim.nodes.retired.is_empty());
}

// ----- alive ---------------------------------------------------------------------------------

#[test]
fn alive_for_a_new_node_joins_it_once() {
    let mut h = Harness::new();
    h.send(h.at(0), addr(2), vec![Message::Alive(alive("a", 2, 1))]);
    let evs = h.events();
    assert!(
        matches!(&evs[..], [Event::MemberJoined(m)] if m.name == "a" && m.addr == addr(2) && m.vsn == VSN),
        "{evs:?}"
    );
    h.send(h.at(1), addr(2), vec![Message::Alive(alive("a", 2, 1))]);
    h.send(h.at(2), addr(2), vec![Message::Alive(alive("a", 2, 2))]);
    assert!(h.events().is_empty(), "joined once");
    assert_eq!(h.swim.num_alive(), 2);
    // The news is gossiped on.
    h.add_peer("b", 3);
    h.send(h.at(3), addr(2), vec![Message::Alive(alive("c", 4, 1))]);
    let out = h.gossip(h.at(10));
    for (dst, msgs) in &out {
        assert_eq!(alive_about(msgs, "c").len(), 1, "to {dst}: {msgs:?}");
    }
    assert!(!out.is_empty());
}

#[test]
fn alive_with_an_old_or_equal_incarnation_is_ignored_and_a_newer_one_updates() {
    let mut h = Harness::new();
    let mut a = alive("a", 2, 5);
    a.meta = b"x".to_vec();
    h.send(h.at(0), addr(2), vec![Message::Alive(a.clone())]);
    h.settle();

    for inc in [4, 5] {
        let mut stale = alive("a", 2, inc);
        stale.meta = b"y".to_vec();
        h.send(h.at(1), addr(2), vec![Message::Alive(stale)]);
        assert_eq!(h.swim.member("a").unwrap().meta, b"x");
        assert_eq!(h.swim.member("a").unwrap().incarnation, 5);
        assert!(h.events().is_empty());
    }

    let mut newer = alive("a", 2, 6);
    newer.meta = b"y".to_vec();
    h.send(h.at(2), addr(2), vec![Message::Alive(newer)]);
    let evs = h.events();
    assert!(
        matches!(&evs[..], [Event::MemberUpdated(m)] if m.meta == b"y" && m.incarnation == 6),
        "{evs:?}"
    );

    // A newer incarnation with the same metadata is no update.
    let mut same = alive("a", 2, 7);
    same.meta = b"y".to_vec();
    h.send(h.at(3), addr(2), vec![Message::Alive(same)]);
    assert!(h.events().is_empty());
    assert_eq!(h.swim.member("a").unwrap().incarnation, 7);
}

#[test]
fn alive_with_bad_protocol_versions_is_ignored() {
    let mut h = Harness::new();
    for vsn in [[0, 5, 2, 2, 5, 5], [3, 2, 2, 2, 5, 5], [1, 0, 1, 2, 5, 5]] {
        let mut a = alive("a", 2, 1);
        a.vsn = vsn.to_vec();
        h.send(h.at(0), addr(2), vec![Message::Alive(a)]);
        assert!(h.swim.member("a").is_none(), "{vsn:?}");
    }
}

#[test]
fn alive_with_a_conflicting_address_for_a_live_node_is_ignored() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    h.add_peer("b", 3);
    h.send(h.at(0), addr(3), vec![Message::Alive(alive("a", 3, 9))]);
    let a = h.swim.member("a").unwrap();
    assert_eq!((a.addr, a.incarnation), (addr(2), 1));
    // The conflict is reported for the layer above (memberlist's ConflictDelegate).
    let evs = h.events();
    assert!(
        matches!(&evs[..], [Event::NameConflict { existing, other }]
            if existing.name == "a" && existing.addr == addr(2) && *other == addr(3)),
        "{evs:?}"
    );

    // Also while suspect, and while dead without a reclaim time.
    h.send(h.at(1), addr(3), vec![suspect("a", 1, "b")]);
    h.send(h.at(2), addr(3), vec![Message::Alive(alive("a", 3, 9))]);
    assert_eq!(h.swim.member("a").unwrap().addr, addr(2));
    assert_eq!(h.state("a"), NodeStateKind::Suspect);
    h.send(h.at(3), addr(3), vec![dead("a", 1, "b")]);
    h.send(
        h.at(100_000),
        addr(3),
        vec![Message::Alive(alive("a", 3, 9))],
    );
    assert_eq!(h.swim.member("a").unwrap().addr, addr(2));
    assert_eq!(h.state("a"), NodeStateKind::Dead);
}

#[test]
fn a_left_node_may_come_back_at_a_new_address() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    h.send(h.at(0), addr(2), vec![dead("a", 1, "a")]);
    assert_eq!(h.state("a"), NodeStateKind::Left);
    h.events();
    // memberlist accepts the new address even at the same incarnation (updatesNode).
    h.send(h.at(1), addr(5), vec![Message::Alive(alive("a", 5, 1))]);
    let a = h.swim.member("a").unwrap();
    assert_eq!((a.addr, a.state), (addr(5), NodeStateKind::Alive));
    let evs = h.events();
    assert!(
        matches!(&evs[..], [Event::MemberJoined(m)] if m.addr == addr(5)),
        "{evs:?}"
    );
}

#[test]
fn a_dead_node_may_be_reclaimed_after_dead_node_reclaim_time() {
    let mut h = Harness::with(|c| c.dead_node_reclaim_time = Duration::from_secs(10));
    h.add_peer("a", 2);
    h.add_peer("b", 3);
    h.send(h.at(0), addr(3), vec![dead("a", 1, "b")]);
    assert_eq!(h.state("a"), NodeStateKind::Dead);
    h.events();
    h.send(h.at(9_000), addr(5), vec![Message::Alive(alive("a", 5, 1))]);
    assert_eq!(h.swim.member("a").unwrap().addr, addr(2), "too early");
    assert!(matches!(&h.events()[..], [Event::NameConflict { .. }]));
    h.send(
        h.at(10_001),
        addr(5),
        vec![Message::Alive(alive("a", 5, 1))],
    );
    let a = h.swim.member("a").unwrap();
    assert_eq!((a.addr, a.state), (addr(5), NodeStateKind::Alive));
    assert!(matches!(&h.events()[..], [Event::MemberJoined(_)]));
}

#[test]
fn a_dead_node_comes_back_with_a_newer_incarnation() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    h.add_peer("b", 3);
    h.send(h.at(0), addr(3), vec![dead("a", 1, "b")]);
    h.events();
    h.send(h.at(1), addr(2), vec![Message::Alive(alive("a", 2, 1))]);
    assert_eq!(
        h.state("a"),
        NodeStateKind::Dead,
        "same incarnation is old news"
    );
    h.send(h.at(2), addr(2), vec![Message::Alive(alive("a", 2, 2))]);
    assert_eq!(h.state("a"), NodeStateKind::Alive);
    assert!(matches!(&h.events()[..], [Event::MemberJoined(m)] if m.name == "a"));
}

// ----- suspicion -----------------------------------------------------------------------------

/// Us plus a, b, c, d: with suspicion_mult 4, k = 2 confirmations are expected.
fn five_nodes() -> Harness {
    let mut h = Harness::new();
    for (n, i) in [("a", 2), ("b", 3), ("c", 4), ("d", 5)] {
        h.add_peer(n, i);
    }
    h
}

#[test]
fn confirmations_from_distinct_nodes_shorten_the_suspicion_per_the_formula() {
    let mut h = five_nodes();
    let min = suspicion_timeout(4, 5, SEC);
    let max = min * 6;
    let t = h.at(1_000);
    h.send(t, addr(3), vec![suspect("a", 1, "b")]);
    assert_eq!(h.state("a"), NodeStateKind::Suspect);
    assert_eq!(
        h.swim.poll_timeout(),
        Some(t + timeout_after(0, 2, min, max))
    );
    assert_eq!(h.swim.poll_timeout(), Some(t + max));
    let out = h.gossip(h.at(1_100));
    assert!(
        all_msgs(&out).contains(&suspect("a", 1, "b")),
        "suspicion gossiped on"
    );

    h.send(h.at(3_000), addr(4), vec![suspect("a", 1, "c")]);
    let after_one = t + timeout_after(1, 2, min, max);
    assert_eq!(h.swim.poll_timeout(), Some(after_one));
    let out = h.gossip(h.at(3_100));
    assert!(
        all_msgs(&out).contains(&suspect("a", 1, "c")),
        "new confirmation gossiped"
    );

    // Repeats and the original accuser do not count, and are not re-gossiped.
    h.send(h.at(3_200), addr(4), vec![suspect("a", 1, "c")]);
    h.send(h.at(3_300), addr(3), vec![suspect("a", 1, "b")]);
    assert_eq!(h.swim.poll_timeout(), Some(after_one));

    h.send(h.at(4_000), addr(5), vec![suspect("a", 1, "d")]);
    assert_eq!(h.swim.poll_timeout(), Some(t + min));
    assert!(h.events().is_empty());

    h.swim.handle_timeout(t + min - Duration::from_millis(1));
    assert_eq!(h.state("a"), NodeStateKind::Suspect);
    assert!(h.events().is_empty());

    h.swim.handle_timeout(t + min);
    assert_eq!(h.state("a"), NodeStateKind::Dead);
    let evs = h.events();
    assert!(
        matches!(&evs[..], [Event::MemberFailed(m)] if m.name == "a"),
        "{evs:?}"
    );
    let out = h.gossip(t + min + Duration::from_millis(10));
    assert!(all_msgs(&out).contains(&dead("a", 1, ME)), "{out:?}");
}

#[test]
fn without_confirmations_the_suspect_fails_at_the_max_timeout() {
    let mut h = five_nodes();
    let min = suspicion_timeout(4, 5, SEC);
    let t = h.at(0);
    h.send(t, addr(3), vec![suspect("a", 1, "b")]);
    h.swim
        .handle_timeout(t + min * 6 - Duration::from_millis(1));
    assert_eq!(h.state("a"), NodeStateKind::Suspect);
    h.swim.handle_timeout(t + min * 6);
    assert_eq!(h.state("a"), NodeStateKind::Dead);
    assert!(matches!(&h.events()[..], [Event::MemberFailed(_)]));
}

#[test]
fn in_a_small_cluster_the_suspicion_uses_the_min_timeout() {
    // Us, a and b: n - 2 = 1 < suspicion_mult - 2, so k = 0 and no confirmations are awaited.
    let mut h = Harness::new();
    h.add_peer("a", 2);
    h.add_peer("b", 3);
    let t = h.at(0);
    h.send(t, addr(3), vec![suspect("a", 1, "b")]);
    assert_eq!(
        h.swim.poll_timeout(),
        Some(t + suspicion_timeout(4, 3, SEC))
    );
}

#[test]
fn alive_with_a_higher_incarnation_cancels_the_suspicion() {
    let mut h = five_nodes();
    let t = h.at(0);
    h.send(t, addr(3), vec![suspect("a", 1, "b")]);
    // A suspicion with an older incarnation than we know is ignored; equal is kept.
    h.send(t, addr(2), vec![Message::Alive(alive("a", 2, 1))]);
    assert_eq!(h.state("a"), NodeStateKind::Suspect);
    h.send(t, addr(2), vec![Message::Alive(alive("a", 2, 2))]);
    assert_eq!(h.state("a"), NodeStateKind::Alive);
    assert_eq!(h.swim.poll_timeout(), Some(t + FAR));
    h.swim
        .handle_timeout(t + suspicion_timeout(4, 5, SEC) * 6 + SEC);
    assert_eq!(h.state("a"), NodeStateKind::Alive);
    assert!(h.events().is_empty(), "no failure, no join: it never left");
    // A late suspicion about the old incarnation changes nothing.
    h.send(t, addr(4), vec![suspect("a", 1, "c")]);
    assert_eq!(h.state("a"), NodeStateKind::Alive);
}

#[test]
fn suspicion_of_an_unknown_or_dead_node_is_ignored() {
    let mut h = five_nodes();
    h.send(h.at(0), addr(3), vec![suspect("nobody", 1, "b")]);
    assert!(h.swim.member("nobody").is_none());
    h.send(h.at(0), addr(3), vec![dead("a", 1, "b")]);
    h.send(h.at(0), addr(3), vec![suspect("a", 1, "c")]);
    assert_eq!(h.state("a"), NodeStateKind::Dead);
    assert_eq!(h.swim.poll_timeout(), Some(h.t0 + FAR));
}

// ----- dead ----------------------------------------------------------------------------------

#[test]
fn dead_from_the_node_itself_is_a_leave_not_a_failure() {
    let mut h = five_nodes();
    h.send(h.at(0), addr(2), vec![dead("a", 1, "a")]);
    assert_eq!(h.state("a"), NodeStateKind::Left);
    let evs = h.events();
    assert!(
        matches!(&evs[..], [Event::MemberLeft(m)] if m.name == "a"),
        "{evs:?}"
    );
    // Already gone: a dead message from someone else changes nothing.
    h.send(h.at(1), addr(3), vec![dead("a", 1, "b")]);
    assert_eq!(h.state("a"), NodeStateKind::Left);
    assert!(h.events().is_empty());
    let out = h.gossip(h.at(10));
    assert!(all_msgs(&out).contains(&dead("a", 1, "a")));

    h.send(h.at(20), addr(3), vec![dead("c", 0, "b")]);
    assert_eq!(
        h.state("c"),
        NodeStateKind::Alive,
        "older incarnation ignored"
    );
    h.send(h.at(21), addr(3), vec![dead("c", 1, "b")]);
    assert_eq!(h.state("c"), NodeStateKind::Dead);
    assert!(matches!(&h.events()[..], [Event::MemberFailed(m)] if m.name == "c"));
}

// ----- ping / ack ----------------------------------------------------------------------------

#[test]
fn ping_for_us_is_acked_with_our_payload_at_the_source_address() {
    let mut h = Harness::new();
    h.swim.set_ack_payload(b"coord".to_vec());
    let ping = Ping {
        seq_no: 42,
        node: ME.into(),
        source_addr: vec![10, 0, 0, 9],
        source_port: 8000,
        source_node: "x".into(),
    };
    h.send(h.at(0), addr(2), vec![Message::Ping(ping)]);
    let out = h.sent();
    let want = Message::Ack(Ack {
        seq_no: 42,
        payload: b"coord".to_vec(),
    });
    assert_eq!(
        out,
        vec![("10.0.0.9:8000".parse().unwrap(), vec![want.clone()])]
    );

    // No source: answer the sender. An empty node name is for whoever receives it.
    let ping = Ping {
        seq_no: 43,
        ..Ping::default()
    };
    h.send(h.at(1), addr(2), vec![Message::Ping(ping)]);
    let out = h.sent();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(2));
    assert!(matches!(&out[0].1[0], Message::Ack(a) if a.seq_no == 43 && a.payload == b"coord"));
}

#[test]
fn ping_for_another_node_is_not_acked() {
    let mut h = Harness::new();
    let ping = Ping {
        seq_no: 1,
        node: "someone-else".into(),
        ..Ping::default()
    };
    h.send(h.at(0), addr(2), vec![Message::Ping(ping)]);
    assert!(h.sent().is_empty());
}

#[test]
fn indirect_ping_is_relayed_and_the_ack_forwarded_with_the_original_seq() {
    let mut h = Harness::new();
    let ind = IndirectPing {
        seq_no: 77,
        target: vec![10, 0, 0, 6],
        port: 7946,
        node: "t".into(),
        nack: true,
        source_addr: vec![10, 0, 0, 5],
        source_port: 7946,
        source_node: "r".into(),
    };
    h.send(h.at(0), addr(9), vec![Message::IndirectPing(ind)]);
    let out = h.sent();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(6));
    let Message::Ping(p) = &out[0].1[0] else {
        panic!("{out:?}")
    };
    assert_eq!(p.node, "t");
    assert_eq!(p.source_node, ME);
    assert_eq!(
        (p.source_addr.as_slice(), p.source_port),
        (&[10, 0, 0, 1][..], 7946)
    );
    let relay_seq = p.seq_no;

    // An ack with another seq is not ours to forward.
    h.send(
        h.at(10),
        addr(6),
        vec![Message::Ack(Ack {
            seq_no: 76,
            payload: vec![],
        })],
    );
    assert!(h.sent().is_empty());

    h.send(
        h.at(20),
        addr(6),
        vec![Message::Ack(Ack {
            seq_no: relay_seq,
            payload: b"p".to_vec(),
        })],
    );
    let out = h.sent();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(5));
    assert!(
        matches!(&out[0].1[0], Message::Ack(a) if a.seq_no == 77),
        "{out:?}"
    );

    // Acked: no nack follows.
    h.swim.handle_timeout(h.at(1_000));
    assert!(h.sent().is_empty());
}

#[test]
fn indirect_ping_without_an_ack_sends_a_nack_at_the_probe_timeout() {
    let mut h = Harness::new();
    let ind = IndirectPing {
        seq_no: 77,
        target: vec![10, 0, 0, 6],
        port: 7946,
        node: "t".into(),
        nack: true,
        ..IndirectPing::default()
    };
    h.send(h.at(0), addr(9), vec![Message::IndirectPing(ind.clone())]);
    let relay_seq = match &h.sent()[0].1[0] {
        Message::Ping(p) => p.seq_no,
        other => panic!("{other:?}"),
    };
    assert_ne!(relay_seq, 77, "the relay uses its own sequence number");
    let timeout = h.swim.config.probe_timeout;
    assert_eq!(h.swim.poll_timeout(), Some(h.t0 + timeout));
    h.swim
        .handle_timeout(h.t0 + timeout - Duration::from_millis(1));
    assert!(h.sent().is_empty());
    h.swim.handle_timeout(h.t0 + timeout);
    let out = h.sent();
    assert_eq!(
        out,
        vec![(addr(9), vec![Message::Nack(Nack { seq_no: 77 })])],
        "no source address: the nack goes to the sender"
    );
    // A late ack is not forwarded.
    h.send(
        h.at(600),
        addr(6),
        vec![Message::Ack(Ack {
            seq_no: relay_seq,
            payload: vec![],
        })],
    );
    assert!(h.sent().is_empty());

    // Without Nack set, silence.
    let mut quiet = ind;
    quiet.nack = false;
    let t = h.at(1_000);
    h.send(t, addr(9), vec![Message::IndirectPing(quiet)]);
    h.sent();
    h.swim.handle_timeout(t + timeout);
    assert!(h.sent().is_empty());
}

// ----- probing -------------------------------------------------------------------------------

#[test]
fn a_direct_ack_completes_the_probe() {
    let mut h = five_nodes();
    h.swim.set_ack_payload(Vec::new());
    h.swim.awareness = 3;
    let t = h.at(1_000);
    let seq = h.probe(t, "a");
    h.send(
        t + Duration::from_millis(20),
        addr(2),
        vec![Message::Ack(Ack {
            seq_no: seq,
            payload: b"xy".to_vec(),
        })],
    );
    let evs = h.events();
    assert_eq!(
        evs,
        vec![Event::PingComplete {
            node: "a".into(),
            rtt: Duration::from_millis(20),
            payload: b"xy".to_vec(),
        }]
    );
    assert_eq!(h.swim.health_score(), 2, "a good probe heals by one");
    h.swim.handle_timeout(t + Duration::from_millis(500));
    assert!(h.sent().is_empty(), "no indirect probes after an ack");
    assert!(h.streams().is_empty());
}

#[test]
fn a_failed_probe_goes_indirect_then_suspects_and_scales_the_next_probe() {
    let mut h = Harness::new();
    // Target t speaks up to 5 (TCP ping); peers p4, p5 understand nacks, p3 does not.
    h.add_peer_vsn("t", 2, [1, 5, 2, 2, 5, 5]);
    h.add_peer_vsn("p5", 3, [1, 5, 2, 2, 5, 5]);
    h.add_peer_vsn("p4", 4, [1, 4, 2, 2, 5, 5]);
    h.add_peer_vsn("p3", 5, [1, 3, 2, 2, 5, 5]);
    let t = h.at(1_000);
    let seq = h.probe(t, "t");
    assert!(h.streams().is_empty());

    // Before the probe timeout nothing more happens.
    h.swim.handle_timeout(t + Duration::from_millis(499));
    assert!(h.sent().is_empty());

    h.swim.handle_timeout(t + Duration::from_millis(500));
    let out = h.sent();
    let mut expected_nacks = 0;
    let mut asked = Vec::new();
    for (dst, msgs) in &out {
        let Message::IndirectPing(ind) = &msgs[0] else {
            panic!("{msgs:?}")
        };
        let peer = h.swim.members().find(|m| m.addr == *dst).unwrap().clone();
        assert!(["p5", "p4", "p3"].contains(&peer.name.as_str()), "{dst}");
        assert_eq!(ind.seq_no, seq);
        assert_eq!(ind.node, "t");
        assert_eq!(
            (ind.target.as_slice(), ind.port),
            (&[10, 0, 0, 2][..], 7946)
        );
        assert_eq!(ind.source_node, ME);
        assert_eq!(ind.nack, peer.vsn[1] >= 4, "{}", peer.name);
        expected_nacks += usize::from(ind.nack);
        asked.push(peer.name);
    }
    asked.sort();
    asked.dedup();
    assert_eq!(asked.len(), out.len(), "each peer asked once");
    assert!(!asked.is_empty() && asked.len() <= 3);

    let streams = h.streams();
    assert_eq!(streams.len(), 1, "TCP fallback ping");
    let s = &streams[0];
    assert_eq!(s.dst, addr(2));
    assert!(s.expect_reply);
    assert_eq!(s.deadline, t + SEC);
    let Some((StreamMessage::Ping(p), _)) = h.codec.open_stream(&s.payload).unwrap() else {
        panic!("not a ping")
    };
    assert_eq!((p.seq_no, p.node.as_str()), (seq, "t"));

    // Nobody answers.
    h.swim.handle_timeout(t + SEC - Duration::from_millis(1));
    assert_eq!(h.state("t"), NodeStateKind::Alive);
    h.swim.handle_timeout(t + SEC);
    assert_eq!(h.state("t"), NodeStateKind::Suspect);
    let score = expected_nacks as u32;
    assert_eq!(
        h.swim.health_score(),
        score,
        "missed nacks count against us"
    );
    // The next probe started at once and is scaled by (score + 1).
    assert_eq!(h.swim.next_probe, t + SEC + SEC * (score + 1));
    let out = h.sent();
    // Its indirect phase, if any, waits the scaled interval too.
    if let Some(p) = &h.swim.probe {
        assert_eq!(p.deadline, t + SEC + SEC * (score + 1));
        assert_eq!(p.timeout_at, t + SEC + h.swim.config.probe_timeout);
    }
    assert!(!out.is_empty());
}

/// Us, target t and two nack-capable peers; the probe of t is in its indirect phase.
fn indirect_phase(awareness: u32) -> (Harness, Instant, u32) {
    let mut h = Harness::new();
    h.add_peer("t", 2);
    h.add_peer("p", 3);
    h.add_peer("q", 4);
    h.swim.awareness = awareness;
    let t = h.at(1_000);
    let interval = SEC * (awareness + 1);
    let seq = h.probe(t, "t");
    h.swim.handle_timeout(t + Duration::from_millis(500));
    let out = h.sent();
    let mut dsts: Vec<SocketAddr> = out.iter().map(|(d, _)| *d).collect();
    dsts.sort();
    assert_eq!(dsts, vec![addr(3), addr(4)], "both peers asked");
    assert!(out
        .iter()
        .all(|(_, m)| matches!(&m[0], Message::IndirectPing(i) if i.nack && i.seq_no == seq)));
    assert_eq!(h.swim.probe.as_ref().unwrap().deadline, t + interval);
    (h, t + interval, seq)
}

#[test]
fn nacks_reduce_the_awareness_penalty() {
    let (mut h, deadline, seq) = indirect_phase(3);
    h.streams();
    h.send(
        deadline - SEC / 4,
        addr(3),
        vec![Message::Nack(Nack { seq_no: seq })],
    );
    // A nack for another probe does not count.
    h.send(
        deadline - SEC / 4,
        addr(4),
        vec![Message::Nack(Nack { seq_no: seq + 100 })],
    );
    h.swim.handle_timeout(deadline);
    assert_eq!(h.state("t"), NodeStateKind::Suspect);
    assert_eq!(h.swim.health_score(), 3 + (2 - 1));

    let (mut h, deadline, seq) = indirect_phase(3);
    for i in [3, 4] {
        h.send(
            deadline - SEC / 4,
            addr(i),
            vec![Message::Nack(Nack { seq_no: seq })],
        );
    }
    h.swim.handle_timeout(deadline);
    assert_eq!(h.state("t"), NodeStateKind::Suspect);
    assert_eq!(
        h.swim.health_score(),
        3,
        "all nacks in: the fault is not ours"
    );
}

#[test]
fn awareness_is_capped_at_max_multiplier_minus_one() {
    let (mut h, deadline, _) = indirect_phase(6);
    h.swim.handle_timeout(deadline);
    assert_eq!(h.swim.health_score(), 7, "8 - 1, not 6 + 2");
    assert_eq!(h.swim.next_probe, deadline + SEC * 8);
}

#[test]
fn without_nack_capable_peers_a_failed_probe_costs_one_point() {
    let mut h = Harness::new();
    h.add_peer_vsn("t", 2, [1, 2, 2, 2, 5, 5]);
    h.add_peer_vsn("p", 3, [1, 3, 2, 2, 5, 5]);
    let t = h.at(1_000);
    h.probe(t, "t");
    h.swim.handle_timeout(t + Duration::from_millis(500));
    let out = h.sent();
    assert!(
        matches!(&out[..], [(d, m)] if *d == addr(3) && matches!(&m[0], Message::IndirectPing(i) if !i.nack))
    );
    assert!(
        h.streams().is_empty(),
        "t speaks protocol 2 at most: no TCP ping"
    );
    h.swim.handle_timeout(t + SEC);
    assert_eq!(h.state("t"), NodeStateKind::Suspect);
    assert_eq!(h.swim.health_score(), 1);
}

#[test]
fn disabled_tcp_pings_send_no_stream() {
    let mut h = Harness::with(|c| c.disable_tcp_pings = true);
    h.add_peer("t", 2);
    let t = h.at(1_000);
    h.probe(t, "t");
    h.swim.handle_timeout(t + Duration::from_millis(500));
    assert!(h.streams().is_empty());
}

#[test]
fn an_ack_relayed_by_a_peer_avoids_suspicion() {
    let (mut h, deadline, seq) = indirect_phase(2);
    h.send(
        deadline - SEC / 2,
        addr(3),
        vec![Message::Ack(Ack {
            seq_no: seq,
            payload: vec![],
        })],
    );
    assert!(
        h.events().is_empty(),
        "no ping-complete for an indirect ack"
    );
    h.swim.handle_timeout(deadline);
    assert_eq!(h.state("t"), NodeStateKind::Alive);
    assert_eq!(h.swim.health_score(), 1);
}

#[test]
fn a_tcp_ping_ack_avoids_suspicion() {
    let (mut h, deadline, seq) = indirect_phase(2);
    let streams = h.streams();
    assert_eq!(streams.len(), 1);
    let ack = StreamMessage::Ack(Ack {
        seq_no: seq,
        payload: vec![],
    });
    let reply = h.codec.seal_stream_reply(&ack, &mut h.rng);
    // Fed in two pieces, the way a socket might deliver it.
    assert_eq!(
        h.swim
            .handle_stream_reply(deadline - SEC, streams[0].id, &reply[..1]),
        StreamOutcome::NeedMore
    );
    assert_eq!(
        h.swim
            .handle_stream_reply(deadline - SEC, streams[0].id, &reply),
        StreamOutcome::Done
    );
    h.swim.handle_timeout(deadline);
    assert_eq!(h.state("t"), NodeStateKind::Alive);
    assert_eq!(h.swim.health_score(), 1, "the probe counts as a success");
}

#[test]
fn a_tcp_ping_ack_with_the_wrong_seq_does_not_count() {
    let (mut h, deadline, seq) = indirect_phase(0);
    let streams = h.streams();
    let ack = StreamMessage::Ack(Ack {
        seq_no: seq + 1,
        payload: vec![],
    });
    let reply = h.codec.seal_stream_reply(&ack, &mut h.rng);
    h.swim
        .handle_stream_reply(deadline - SEC / 2, streams[0].id, &reply);
    h.swim.handle_timeout(deadline);
    assert_eq!(h.state("t"), NodeStateKind::Suspect);
}

#[test]
fn a_failed_tcp_ping_leaves_the_verdict_to_the_deadline() {
    let (mut h, deadline, _) = indirect_phase(0);
    let streams = h.streams();
    h.swim
        .handle_stream_failed(deadline - SEC / 2, streams[0].id, "connection refused");
    assert_eq!(h.state("t"), NodeStateKind::Alive);
    h.swim.handle_timeout(deadline);
    assert_eq!(h.state("t"), NodeStateKind::Suspect);
    assert_eq!(h.swim.health_score(), 2);
}

#[test]
fn a_compound_packet_is_handled_part_by_part() {
    let mut h = five_nodes();
    h.send(
        h.at(0),
        addr(3),
        vec![
            suspect("a", 1, "b"),
            Message::Alive(alive("a", 2, 2)),
            dead("c", 1, "c"),
            Message::User(b"u".to_vec()),
        ],
    );
    assert_eq!(h.state("a"), NodeStateKind::Alive);
    assert_eq!(h.state("c"), NodeStateKind::Left);
    let evs = h.events();
    assert!(
        matches!(&evs[0], Event::MemberLeft(m) if m.name == "c"),
        "{evs:?}"
    );
    assert_eq!(evs[1], Event::UserMessage(b"u".to_vec()));
    assert_eq!(evs.len(), 2);
}

#[test]
fn probing_a_suspect_node_tacks_on_the_suspicion() {
    let mut h = five_nodes();
    h.send(h.at(0), addr(3), vec![suspect("a", 1, "b")]);
    h.settle();
    let t = h.at(1_000);
    h.probe(t, "a");
    let sent = &h.last_probe;
    assert!(
        matches!(&sent[..], [Message::Ping(p), s] if p.node == "a" && *s == suspect("a", 1, ME)),
        "ping and suspicion in one packet: {sent:?}"
    );
}

#[test]
fn probing_skips_ourselves_and_dead_nodes() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    h.add_peer("b", 3);
    h.send(h.at(0), addr(3), vec![dead("b", 1, "a")]);
    h.settle();
    let mut probed = Vec::new();
    let mut now = h.at(0);
    for _ in 0..6 {
        now += SEC;
        h.swim.next_probe = now;
        h.swim.handle_timeout(now);
        for (dst, msgs) in h.sent() {
            for m in msgs {
                if let Message::Ping(p) = m {
                    probed.push((dst, p.node));
                }
            }
        }
        // Ack whatever is in flight so every round starts clean.
        if let Some(p) = &h.swim.probe {
            let seq = p.seq;
            h.send(
                now,
                addr(2),
                vec![Message::Ack(Ack {
                    seq_no: seq,
                    payload: vec![],
                })],
            );
        }
        h.settle();
    }
    // memberlist's probe gives up a round when it runs into `len(nodes)` skips across a
    // wrap-around, so not every tick probes; every probe that happens goes to `a`.
    assert!(probed.len() >= 3, "{probed:?}");
    assert!(
        probed.iter().all(|(d, n)| *d == addr(2) && n == "a"),
        "{probed:?}"
    );
}

// ----- push/pull -----------------------------------------------------------------------------

fn pushpull(join: bool, nodes: Vec<PushNodeState>, user_state: &[u8]) -> StreamMessage {
    StreamMessage::PushPull(PushPull {
        join,
        nodes,
        user_state: user_state.to_vec(),
    })
}

#[test]
fn incoming_push_pull_is_answered_with_our_state_and_merged() {
    let mut h = Harness::new();
    h.add_peer("b", 3);
    h.add_peer("c", 4);
    h.add_peer("d", 5);
    h.swim.set_user_state(b"our state".to_vec());
    let remote = pushpull(
        false,
        vec![
            push_state("a", 2, 1, NodeStateKind::Alive),
            push_state("b", 3, 1, NodeStateKind::Left),
            push_state("c", 4, 1, NodeStateKind::Dead),
            push_state("d", 5, 1, NodeStateKind::Suspect),
        ],
        b"their state",
    );
    let buf = h.codec.seal_stream(&remote, &mut h.rng);
    let outcome = h
        .swim
        .handle_stream(h.at(0), addr(2), &buf[..buf.len() - 1]);
    assert_eq!(outcome, StreamOutcome::NeedMore);
    let StreamOutcome::Reply(reply) = h.swim.handle_stream(h.at(0), addr(2), &buf) else {
        panic!("a push/pull is answered")
    };
    let Some((StreamMessage::PushPull(ours), _)) = h.codec.open_stream_reply(&reply).unwrap()
    else {
        panic!("reply is a push/pull")
    };
    assert!(!ours.join);
    assert_eq!(ours.user_state, b"our state");
    let names: Vec<&str> = ours.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["b", "c", "d", ME], "our view before the merge");
    let me = ours.nodes.iter().find(|n| n.name == ME).unwrap();
    assert_eq!(me.vsn, h.swim.local().vsn.to_vec());
    assert_eq!(me.incarnation, h.swim.local().incarnation);

    assert_eq!(h.state("a"), NodeStateKind::Alive);
    assert_eq!(h.state("b"), NodeStateKind::Left);
    assert_eq!(
        h.state("c"),
        NodeStateKind::Suspect,
        "dead becomes a suspicion"
    );
    assert_eq!(h.state("d"), NodeStateKind::Suspect);
    let evs = h.events();
    assert_eq!(evs.len(), 3, "{evs:?}");
    assert!(matches!(&evs[0], Event::MemberJoined(m) if m.name == "a"));
    assert!(matches!(&evs[1], Event::MemberLeft(m) if m.name == "b"));
    assert_eq!(
        evs[2],
        Event::RemoteState {
            join: false,
            state: b"their state".to_vec()
        }
    );
}

#[test]
fn push_pull_without_user_state_emits_no_remote_state() {
    let mut h = Harness::new();
    let remote = pushpull(true, vec![push_state("a", 2, 1, NodeStateKind::Alive)], b"");
    let buf = h.codec.seal_stream(&remote, &mut h.rng);
    let StreamOutcome::Reply(reply) = h.swim.handle_stream(h.at(0), addr(2), &buf) else {
        panic!()
    };
    let Some((StreamMessage::PushPull(ours), _)) = h.codec.open_stream_reply(&reply).unwrap()
    else {
        panic!()
    };
    assert!(ours.join, "the answer echoes the join flag");
    let evs = h.events();
    assert!(
        matches!(&evs[..], [Event::MemberJoined(m)] if m.name == "a"),
        "{evs:?}"
    );
}

#[test]
fn push_pull_with_an_incompatible_protocol_version_is_refused() {
    let mut h = Harness::new();
    // x understands 3..=5 and speaks 3: we speak 2, outside the common range.
    let mut x = push_state("x", 2, 1, NodeStateKind::Alive);
    x.vsn = vec![3, 5, 3, 2, 5, 5];
    let remote = pushpull(
        false,
        vec![x, push_state("y", 3, 1, NodeStateKind::Alive)],
        b"s",
    );
    let buf = h.codec.seal_stream(&remote, &mut h.rng);
    let outcome = h.swim.handle_stream(h.at(0), addr(2), &buf);
    assert!(
        matches!(outcome, StreamOutcome::Reply(_)),
        "memberlist answers, then refuses"
    );
    assert!(h.swim.member("x").is_none());
    assert!(h.swim.member("y").is_none(), "nothing is merged");
    assert!(h.events().is_empty(), "no remote state either");

    // Same for the delegate version.
    let mut z = push_state("z", 2, 1, NodeStateKind::Alive);
    z.vsn = vec![1, 5, 2, 2, 5, 1];
    let buf = h
        .codec
        .seal_stream(&pushpull(false, vec![z], b""), &mut h.rng);
    h.swim.handle_stream(h.at(0), addr(2), &buf);
    assert!(h.swim.member("z").is_none());
}

#[test]
fn push_pull_range_is_set_by_alive_nodes_only() {
    // memberlist's verifyProtocol: only alive nodes narrow the range; a long-dead node that
    // spoke protocol 1 only must not make the cluster refuse everyone speaking 2.
    let mut h = Harness::new();
    let mut old = push_state("old", 3, 1, NodeStateKind::Dead);
    old.vsn = vec![1, 1, 1, 2, 5, 5];
    let remote = pushpull(
        false,
        vec![push_state("a", 2, 1, NodeStateKind::Alive), old],
        b"",
    );
    let buf = h.codec.seal_stream(&remote, &mut h.rng);
    h.swim.handle_stream(h.at(0), addr(2), &buf);
    assert_eq!(h.state("a"), NodeStateKind::Alive);
}

#[test]
fn join_reports_joined_count_and_per_address_errors() {
    let mut h = Harness::new();
    h.swim.set_user_state(b"mine".to_vec());
    let id = h.swim.join(h.at(0), &[addr(2), addr(3), addr(4)]);
    let streams = h.streams();
    assert_eq!(streams.len(), 3);
    for (s, i) in streams.iter().zip([2, 3, 4]) {
        assert_eq!(s.dst, addr(i));
        assert!(s.expect_reply);
        assert_eq!(s.deadline, h.at(0) + h.swim.config.tcp_timeout);
        let Some((StreamMessage::PushPull(pp), _)) = h.codec.open_stream(&s.payload).unwrap()
        else {
            panic!()
        };
        assert!(pp.join);
        assert_eq!(pp.user_state, b"mine");
        assert!(pp.nodes.iter().any(|n| n.name == ME));
    }

    let reply = pushpull(
        true,
        vec![push_state("a", 2, 1, NodeStateKind::Alive)],
        b"theirs",
    );
    let buf = h.codec.seal_stream_reply(&reply, &mut h.rng);
    assert_eq!(
        h.swim.handle_stream_reply(h.at(10), streams[0].id, &buf),
        StreamOutcome::Done
    );
    h.swim
        .handle_stream_failed(h.at(20), streams[1].id, "connection refused");
    let err = StreamMessage::Err(ErrResp {
        error: "go away".into(),
    });
    let buf = h.codec.seal_stream_reply(&err, &mut h.rng);
    h.swim.handle_stream_reply(h.at(30), streams[2].id, &buf);

    let evs = h.events();
    assert!(matches!(&evs[0], Event::MemberJoined(m) if m.name == "a"));
    assert_eq!(
        evs[1],
        Event::RemoteState {
            join: true,
            state: b"theirs".to_vec()
        }
    );
    let Event::JoinFinished {
        id: got,
        joined,
        errors,
    } = &evs[2]
    else {
        panic!("{evs:?}")
    };
    assert_eq!((*got, *joined), (id, 1));
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0], (addr(3), "connection refused".to_string()));
    assert_eq!(errors[1].0, addr(4));
    assert!(errors[1].1.contains("go away"), "{}", errors[1].1);
    assert_eq!(evs.len(), 3);
}

#[test]
fn join_refused_by_verify_protocol_is_an_error() {
    let mut h = Harness::new();
    let id = h.swim.join(h.at(0), &[addr(2)]);
    let s = h.streams().remove(0);
    let mut x = push_state("x", 2, 1, NodeStateKind::Alive);
    x.vsn = vec![3, 5, 3, 2, 5, 5];
    let buf = h
        .codec
        .seal_stream_reply(&pushpull(true, vec![x], b""), &mut h.rng);
    h.swim.handle_stream_reply(h.at(1), s.id, &buf);
    let evs = h.events();
    assert!(
        matches!(&evs[..], [Event::JoinFinished { id: i, joined: 0, errors }] if *i == id && errors.len() == 1 && errors[0].0 == addr(2)),
        "{evs:?}"
    );
    assert!(h.swim.member("x").is_none());
}

#[test]
fn join_with_no_address_finishes_at_once() {
    let mut h = Harness::new();
    let id = h.swim.join(h.at(0), &[]);
    assert_eq!(
        h.events(),
        vec![Event::JoinFinished {
            id,
            joined: 0,
            errors: vec![]
        }]
    );
}

#[test]
fn periodic_push_pull_goes_to_a_live_peer() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    h.add_peer("b", 3);
    h.send(h.at(0), addr(3), vec![suspect("b", 1, "a")]);
    h.settle();
    // The first deadline only ends the start-up stagger (memberlist then waits a scaled
    // interval); the one after it pushes and pulls.
    let t = h.at(1_000);
    h.swim.next_push_pull = t;
    h.swim.handle_timeout(t);
    assert!(
        h.streams().is_empty(),
        "the stagger ends without a push/pull"
    );
    assert!(h.swim.next_push_pull >= t + h.swim.config.push_pull_interval);
    let t = h.swim.next_push_pull;
    h.swim.handle_timeout(t);
    let streams = h.streams();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].dst, addr(2), "only alive nodes are picked");
    let Some((StreamMessage::PushPull(pp), _)) = h.codec.open_stream(&streams[0].payload).unwrap()
    else {
        panic!()
    };
    assert!(!pp.join);
    assert_eq!(h.swim.next_push_pull, t + h.swim.config.push_pull_interval);
}

// ----- gossip --------------------------------------------------------------------------------

#[test]
fn gossip_fits_the_udp_budget_and_retransmits_each_broadcast_a_limited_number_of_times() {
    let mut h = Harness::new();
    let n = 60u8;
    for i in 0..n {
        h.send(
            h.at(0),
            addr(10 + i),
            vec![Message::Alive(alive(&format!("node-{i}"), 10 + i, 1))],
        );
    }
    h.events();
    let limit = retransmit_limit(h.swim.config.retransmit_mult, h.swim.est_num_nodes());
    assert_eq!(limit, 8);
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut packets = 0;
    for tick in 0..200 {
        let out = h.gossip(h.at(200 * tick));
        if out.is_empty() {
            break;
        }
        assert!(out.len() <= h.swim.config.gossip_nodes);
        for (dst, msgs) in out {
            packets += 1;
            assert_ne!(dst, addr(1), "never gossip to ourselves");
            for m in msgs {
                let Message::Alive(a) = m else {
                    panic!("{m:?}")
                };
                *counts.entry(a.node).or_default() += 1;
            }
        }
    }
    assert_eq!(counts.len(), n as usize);
    assert!(counts.values().all(|&c| c == limit), "{counts:?}");
    assert!(packets > 1, "60 alive messages do not fit one packet");
    assert!(h.gossip(h.at(100_000)).is_empty(), "the queue drained");
}

#[test]
fn user_broadcasts_are_framed_as_user_messages() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    h.swim.queue_user_broadcast(b"\x01serf".to_vec(), None);
    let out = h.gossip(h.at(10));
    assert_eq!(
        out,
        vec![(addr(2), vec![Message::User(b"\x01serf".to_vec())])]
    );
    // And they ride on acks after memberlist's own broadcasts.
    h.send(h.at(20), addr(2), vec![Message::Alive(alive("b", 3, 1))]);
    h.swim.queue_user_broadcast(b"more".to_vec(), None);
    let ping = Ping {
        seq_no: 3,
        node: ME.into(),
        ..Ping::default()
    };
    h.send(h.at(30), addr(2), vec![Message::Ping(ping)]);
    let msgs = all_msgs(&h.sent());
    assert!(matches!(&msgs[0], Message::Ack(_)), "{msgs:?}");
    assert!(
        matches!(&msgs[1], Message::Alive(a) if a.node == "b"),
        "{msgs:?}"
    );
    assert!(msgs.contains(&Message::User(b"more".to_vec())), "{msgs:?}");
}

#[test]
fn a_queued_user_broadcast_rides_on_the_next_probe_ping() {
    // memberlist's probeNode sends the ping with sendMsg, which piggybacks queued broadcasts
    // (net.go sendMsg/getBroadcasts): a broadcast does not have to wait for the gossip tick.
    let mut h = Harness::new();
    h.add_peer("a", 2);
    h.swim.queue_user_broadcast(b"event".to_vec(), None);
    h.probe(h.at(10), "a");
    assert!(
        h.last_probe.contains(&Message::User(b"event".to_vec())),
        "{:?}",
        h.last_probe
    );
}

#[test]
fn a_queued_user_broadcast_goes_out_at_the_next_gossip_tick_to_gossip_nodes_peers() {
    let mut h = Harness::new();
    for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        h.add_peer(name, 2 + i as u8);
    }
    h.swim.next_gossip = h.at(200);
    h.swim.queue_user_broadcast(b"event".to_vec(), None);
    // Queuing sends nothing by itself (serf's QueueBroadcast only fills the queue) ...
    assert!(h.sent().is_empty());
    h.swim.handle_timeout(h.at(199));
    assert!(h.sent().is_empty(), "no gossip before the tick");
    // ... the tick sends it to gossip_nodes distinct peers at once.
    h.swim.handle_timeout(h.at(200));
    let out = h.sent();
    let dsts: HashSet<SocketAddr> = out.iter().map(|(d, _)| *d).collect();
    assert_eq!(out.len(), h.swim.config.gossip_nodes, "{out:?}");
    assert_eq!(dsts.len(), h.swim.config.gossip_nodes, "{out:?}");
    for (_, msgs) in &out {
        assert_eq!(msgs, &vec![Message::User(b"event".to_vec())]);
    }
}

#[test]
fn gossip_ticks_stay_on_the_interval_grid_when_handled_late() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    h.swim.next_gossip = h.at(200);
    // Handled 30 ms late: the next tick is still due 200 ms after the last one was due.
    h.swim.handle_timeout(h.at(230));
    assert_eq!(h.swim.next_gossip, h.at(400));
    // Handled more than two intervals late: the missed ticks are dropped, not bunched (one
    // gossip round now, the next on the grid).
    h.swim.queue_user_broadcast(b"x".to_vec(), None);
    h.swim.handle_timeout(h.at(950));
    assert_eq!(h.sent().len(), 1, "one round for the missed ticks");
    assert_eq!(h.swim.next_gossip, h.at(1000));
    h.swim.handle_timeout(h.at(999));
    assert!(h.sent().is_empty());
}

#[test]
fn next_tick_follows_a_fixed_rate_grid() {
    let t = Instant::now();
    let ms = Duration::from_millis;
    let i = ms(200);
    assert_eq!(next_tick(t, t, i), t + i);
    assert_eq!(next_tick(t, t + ms(199), i), t + i);
    assert_eq!(next_tick(t, t + ms(200), i), t + ms(400));
    assert_eq!(next_tick(t, t + ms(510), i), t + ms(600));
}

#[test]
fn many_tiny_broadcasts_do_not_overflow_a_compound() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    for i in 0..400u32 {
        h.swim.queue_user_broadcast(vec![i as u8], None);
    }
    // 400 three-byte parts fit the 1400-byte budget but not one 255-part compound.
    let out = h.gossip(h.at(10));
    let users = all_msgs(&out)
        .into_iter()
        .filter(|m| matches!(m, Message::User(_)))
        .count();
    assert!(users > 255, "{users}");
    assert!(out.len() >= 2, "split into several packets");
}

#[test]
fn gossip_goes_to_recently_dead_nodes_but_not_to_left_ones() {
    let mut h = Harness::with(|c| c.gossip_nodes = 10);
    h.add_peer("a", 2);
    h.add_peer("b", 3);
    h.add_peer("c", 4);
    h.send(h.at(0), addr(2), vec![dead("b", 1, "a")]);
    h.send(h.at(0), addr(2), vec![dead("c", 1, "c")]);
    h.events();
    let out = h.gossip(h.at(100));
    let mut dsts: Vec<SocketAddr> = out.iter().map(|(d, _)| *d).collect();
    dsts.sort();
    assert_eq!(dsts, vec![addr(2), addr(3)]);
    // Past gossip_to_the_dead_time the dead node is left alone too.
    h.send(h.at(200), addr(2), vec![Message::Alive(alive("z", 9, 1))]);
    let out = h.gossip(h.at(31_000));
    let dsts: Vec<SocketAddr> = out.iter().map(|(d, _)| *d).collect();
    assert!(
        !dsts.contains(&addr(3)) && !dsts.contains(&addr(4)),
        "{dsts:?}"
    );
}

// ----- commands and streams ------------------------------------------------------------------

#[test]
fn set_meta_over_512_bytes_is_refused() {
    let mut h = Harness::new();
    h.add_peer("a", 2);
    let inc = h.swim.local().incarnation;
    assert_eq!(
        h.swim.set_meta(h.at(0), vec![0; 513]),
        Err(Error::MetaTooLarge(513))
    );
    assert_eq!(h.swim.local().incarnation, inc);
    assert!(h.swim.local().meta.is_empty());

    h.swim
        .set_meta(h.at(0), vec![7; 512])
        .expect("512 bytes is fine");
    assert_eq!(h.swim.local().meta, vec![7; 512]);
    assert_eq!(h.swim.local().incarnation, inc + 1);
    let out = h.gossip(h.at(10));
    let alives = alive_about(&all_msgs(&out), ME);
    assert_eq!(alives.len(), 1);
    assert_eq!(alives[0].meta, vec![7; 512]);
    assert_eq!(alives[0].incarnation, inc + 1);
}

#[test]
fn garbage_on_an_incoming_stream_gets_an_error_reply() {
    let mut h = Harness::new();
    for garbage in [
        &[0xffu8, 1, 2, 3][..],
        &[MessageType::PushPull as u8, 0xc1, 0xc1][..],
        &[MessageType::Compound as u8, 1, 0, 4][..],
    ] {
        let outcome = h.swim.handle_stream(h.at(0), addr(2), garbage);
        let StreamOutcome::Reply(reply) = outcome else {
            panic!("{garbage:?}: {outcome:?}")
        };
        let msg = h.codec.open_stream_reply(&reply).unwrap();
        assert!(matches!(msg, Some((StreamMessage::Err(_), _))), "{msg:?}");
    }
    assert_eq!(
        h.swim.handle_stream(h.at(0), addr(2), &[]),
        StreamOutcome::NeedMore
    );
}

#[test]
fn a_stream_ping_is_answered_with_an_ack() {
    let mut h = Harness::new();
    let ping = StreamMessage::Ping(Ping {
        seq_no: 5,
        node: ME.into(),
        ..Ping::default()
    });
    let buf = h.codec.seal_stream(&ping, &mut h.rng);
    let StreamOutcome::Reply(reply) = h.swim.handle_stream(h.at(0), addr(2), &buf) else {
        panic!()
    };
    let msg = h.codec.open_stream_reply(&reply).unwrap();
    assert!(
        matches!(msg, Some((StreamMessage::Ack(Ack { seq_no: 5, .. }), _))),
        "{msg:?}"
    );

    // memberlist's handleConn just closes the connection on a ping for another node.
    let ping = StreamMessage::Ping(Ping {
        seq_no: 6,
        node: "other".into(),
        ..Ping::default()
    });
    let buf = h.codec.seal_stream(&ping, &mut h.rng);
    assert_eq!(
        h.swim.handle_stream(h.at(0), addr(2), &buf),
        StreamOutcome::Done
    );
}

#[test]
fn a_user_message_on_a_stream_or_packet_is_delivered() {
    let mut h = Harness::new();
    let buf = h
        .codec
        .seal_stream(&StreamMessage::User(b"hello".to_vec()), &mut h.rng);
    assert_eq!(
        h.swim.handle_stream(h.at(0), addr(2), &buf),
        StreamOutcome::Done
    );
    h.send(h.at(0), addr(2), vec![Message::User(b"world".to_vec())]);
    assert_eq!(
        h.events(),
        vec![
            Event::UserMessage(b"hello".to_vec()),
            Event::UserMessage(b"world".to_vec())
        ]
    );
}

#[test]
fn stream_replies_carry_no_label_header() {
    // memberlist writes the label header once per connection, from the dialing side only.
    let mut h = Harness::with(|c| c.wire.label = "prod".into());
    let ping = StreamMessage::Ping(Ping {
        seq_no: 5,
        node: ME.into(),
        ..Ping::default()
    });
    let buf = h.codec.seal_stream(&ping, &mut h.rng);
    assert_eq!(buf[0], MessageType::HasLabel as u8);
    let StreamOutcome::Reply(reply) = h.swim.handle_stream(h.at(0), addr(2), &buf) else {
        panic!()
    };
    assert_ne!(reply[0], MessageType::HasLabel as u8);
    assert!(matches!(
        h.codec.open_stream_reply(&reply).unwrap(),
        Some((StreamMessage::Ack(_), _))
    ));

    // And the answer to our own push/pull is read without one.
    let id = h.swim.join(h.at(0), &[addr(2)]);
    let s = h.streams().remove(0);
    assert_eq!(s.payload[0], MessageType::HasLabel as u8);
    let reply = h.codec.seal_stream_reply(
        &pushpull(true, vec![push_state("a", 2, 1, NodeStateKind::Alive)], b""),
        &mut h.rng,
    );
    h.swim.handle_stream_reply(h.at(1), s.id, &reply);
    let evs = h.events();
    assert!(
        evs.contains(&Event::JoinFinished {
            id,
            joined: 1,
            errors: vec![]
        }),
        "{evs:?}"
    );
}
