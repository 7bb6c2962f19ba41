//! `testing::Sim`: a deterministic simulator that runs many [`Swim`] nodes on a virtual clock
//! with latency, packet loss, crashes and partitions. Everything random comes from one seed, so
//! a failing scenario is replayed exactly by its seed. Only built with the `testing` feature.

use crate::config::Config;
use crate::core::{StreamId, StreamOutcome, Swim};
use crate::keyring::Keyring;
use crate::protocol::Protocol;
use crate::wire::NodeStateKind;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The address simulated node `i` gets: 127.x.y.z:7946, unique per index.
pub fn addr_of(i: usize) -> SocketAddr {
    let i = i + 1;
    let ip = Ipv4Addr::new(127, (i >> 16) as u8, (i >> 8) as u8, i as u8);
    SocketAddr::new(IpAddr::V4(ip), 7946)
}

/// What the simulated network delivers.
#[derive(Debug)]
enum Delivery {
    Packet {
        from: SocketAddr,
        to: usize,
        bytes: Vec<u8>,
    },
    /// An incoming stream at `to`, from `origin` (node index) with stream id `id`.
    StreamOpen {
        origin: usize,
        id: StreamId,
        to: usize,
        bytes: Vec<u8>,
        expect_reply: bool,
    },
    StreamReply {
        to: usize,
        id: StreamId,
        bytes: Vec<u8>,
    },
    StreamFailed {
        to: usize,
        id: StreamId,
        why: &'static str,
    },
}

struct Queued {
    at: Instant,
    seq: u64,
    what: Delivery,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// One simulated node: its core (None while crashed) and everything it reported.
pub struct SimNode<P: Protocol = Swim> {
    /// The node's address ([`addr_of`] its index).
    pub addr: SocketAddr,
    /// The core; `None` while the node is crashed ([`Sim::crash`]).
    pub swim: Option<P>,
    /// Every event the core reported, with the virtual time it was polled.
    pub events: Vec<(Instant, P::Event)>,
    group: u32,
}

/// Counters over a whole run.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimStats {
    /// UDP packets the nodes sent, lost ones included.
    pub packets_sent: u64,
    /// Packets dropped by [`Sim::loss`] or a partition.
    pub packets_lost: u64,
    /// Payload bytes of the packets sent.
    pub bytes_sent: u64,
    /// Streams the nodes asked to open.
    pub streams_opened: u64,
}

/// The simulator, over any [`Protocol`] core (the membership core by default).
pub struct Sim<P: Protocol = Swim> {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// The virtual time the simulation started at.
    pub start: Instant,
    now: Instant,
    rng: StdRng,
    /// The nodes, by index.
    pub nodes: Vec<SimNode<P>>,
    by_addr: HashMap<SocketAddr, usize>,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    /// One-way latency of every delivery, plus up to `jitter` extra (1 ms).
    pub latency: Duration,
    /// The most random extra latency of a packet (500 µs).
    pub jitter: Duration,
    /// Probability that a UDP packet is lost (streams are reliable, like TCP).
    pub loss: f64,
    /// Optional per-pair one-way latency override, by node index (for coordinate tests).
    pub latency_fn: Option<Box<dyn Fn(usize, usize) -> Duration>>,
    /// Counters since [`Sim::new`].
    pub stats: SimStats,
    /// Timeouts due per node (a cache of `poll_timeout`).
    timers: BTreeMap<(Instant, usize), ()>,
    timer_of: Vec<Option<Instant>>,
}

impl<P: Protocol> Sim<P> {
    /// An empty simulation whose every random choice derives from `seed`.
    pub fn new(seed: u64) -> Self {
        let start = Instant::now();
        Self {
            seed,
            start,
            now: start,
            rng: StdRng::seed_from_u64(seed),
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            latency: Duration::from_millis(1),
            jitter: Duration::from_micros(500),
            loss: 0.0,
            latency_fn: None,
            stats: SimStats::default(),
            timers: BTreeMap::new(),
            timer_of: Vec::new(),
        }
    }

    /// The virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Adds a node built by `make` from its address and a seed; returns its index.
    pub fn add_core(&mut self, make: impl FnOnce(SocketAddr, u64, Instant) -> P) -> usize {
        let idx = self.nodes.len();
        let addr = addr_of(idx);
        let seed = self.rng.gen();
        let core = make(addr, seed, self.now);
        self.nodes.push(SimNode {
            addr,
            swim: Some(core),
            events: Vec::new(),
            group: 0,
        });
        self.timer_of.push(None);
        self.by_addr.insert(addr, idx);
        self.drain(idx);
        idx
    }

    /// Replaces node `i`'s core (a restart) with one built by `make`.
    pub fn replace_core(&mut self, i: usize, make: impl FnOnce(SocketAddr, u64, Instant) -> P) {
        let seed = self.rng.gen();
        self.nodes[i].swim = Some(make(self.nodes[i].addr, seed, self.now));
        self.drain(i);
    }

    /// Runs `f` on node `i`'s core (if it is up) and sends what it produced.
    pub fn with_node<R>(&mut self, i: usize, f: impl FnOnce(&mut P, Instant) -> R) -> Option<R> {
        let now = self.now;
        let r = self.nodes[i].swim.as_mut().map(|s| f(s, now));
        self.drain(i);
        r
    }

    /// Crashes node `i` (no leave): it stops answering and its state is gone.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].swim = None;
        self.set_timer(i, None);
    }

    /// Puts node `i` in partition group `g`; only nodes in the same group can talk.
    pub fn set_group(&mut self, i: usize, g: u32) {
        self.nodes[i].group = g;
    }

    /// Puts every node back in group 0.
    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.group = 0;
        }
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.nodes[a].group == self.nodes[b].group
    }

    fn delay(&mut self, from: usize, to: usize) -> Duration {
        let base = match &self.latency_fn {
            Some(f) => f(from, to),
            None => self.latency,
        };
        let jitter = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            self.jitter.mul_f64(self.rng.gen::<f64>())
        };
        base + jitter
    }

    fn schedule(&mut self, at: Instant, what: Delivery) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            what,
        }));
    }

    fn set_timer(&mut self, i: usize, t: Option<Instant>) {
        if let Some(old) = self.timer_of[i].take() {
            self.timers.remove(&(old, i));
        }
        if let Some(t) = t {
            self.timers.insert((t, i), ());
            self.timer_of[i] = Some(t);
        }
    }

    /// Moves node `i`'s outputs into the network and its event log.
    fn drain(&mut self, i: usize) {
        let now = self.now;
        let Some(swim) = self.nodes[i].swim.as_mut() else {
            return;
        };
        let mut transmits = Vec::new();
        while let Some(t) = swim.poll_transmit() {
            transmits.push(t);
        }
        let mut streams = Vec::new();
        while let Some(s) = swim.poll_stream() {
            streams.push(s);
        }
        let mut events = Vec::new();
        while let Some(e) = swim.poll_event() {
            events.push((now, e));
        }
        let timeout = swim.poll_timeout();
        self.nodes[i].events.extend(events);
        self.set_timer(i, timeout);
        let from = self.nodes[i].addr;
        for t in transmits {
            self.stats.packets_sent += 1;
            self.stats.bytes_sent += t.payload.len() as u64;
            let Some(&to) = self.by_addr.get(&t.dst) else {
                continue;
            };
            if !self.connected(i, to) || (self.loss > 0.0 && self.rng.gen::<f64>() < self.loss) {
                self.stats.packets_lost += 1;
                continue;
            }
            let at = now + self.delay(i, to);
            self.schedule(
                at,
                Delivery::Packet {
                    from,
                    to,
                    bytes: t.payload,
                },
            );
        }
        for s in streams {
            self.stats.streams_opened += 1;
            let target = self.by_addr.get(&s.dst).copied();
            match target {
                Some(to) if self.connected(i, to) => {
                    let at = now + self.delay(i, to);
                    self.schedule(
                        at,
                        Delivery::StreamOpen {
                            origin: i,
                            id: s.id,
                            to,
                            bytes: s.payload,
                            expect_reply: s.expect_reply,
                        },
                    );
                }
                // Unreachable: the connection attempt times out at the deadline.
                Some(_) => self.schedule(
                    s.deadline,
                    Delivery::StreamFailed {
                        to: i,
                        id: s.id,
                        why: "i/o timeout",
                    },
                ),
                None => {
                    let at = now + self.latency;
                    self.schedule(
                        at,
                        Delivery::StreamFailed {
                            to: i,
                            id: s.id,
                            why: "connection refused",
                        },
                    );
                }
            }
        }
    }

    fn deliver(&mut self, what: Delivery) {
        let now = self.now;
        match what {
            Delivery::Packet { from, to, bytes } => {
                if let Some(s) = self.nodes[to].swim.as_mut() {
                    s.handle_packet(now, from, &bytes);
                    self.drain(to);
                }
            }
            Delivery::StreamOpen {
                origin,
                id,
                to,
                bytes,
                expect_reply,
            } => {
                let from = self.nodes[origin].addr;
                let outcome = match self.nodes[to].swim.as_mut() {
                    Some(s) => s.handle_stream(now, from, &bytes),
                    None => {
                        let at = now + self.latency;
                        self.schedule(
                            at,
                            Delivery::StreamFailed {
                                to: origin,
                                id,
                                why: "connection refused",
                            },
                        );
                        return;
                    }
                };
                self.drain(to);
                match (outcome, expect_reply) {
                    (StreamOutcome::Reply(reply), true) => {
                        if self.connected(origin, to) {
                            let at = now + self.delay(to, origin);
                            self.schedule(
                                at,
                                Delivery::StreamReply {
                                    to: origin,
                                    id,
                                    bytes: reply,
                                },
                            );
                        }
                    }
                    (_, false) => {
                        if let Some(s) = self.nodes[origin].swim.as_mut() {
                            s.handle_stream_sent(id);
                        }
                    }
                    (StreamOutcome::NeedMore, true) => {
                        let at = now + self.latency;
                        self.schedule(
                            at,
                            Delivery::StreamFailed {
                                to: origin,
                                id,
                                why: "truncated stream",
                            },
                        );
                    }
                    (StreamOutcome::Done, true) => {
                        let at = now + self.latency;
                        self.schedule(
                            at,
                            Delivery::StreamFailed {
                                to: origin,
                                id,
                                why: "EOF",
                            },
                        );
                    }
                }
            }
            Delivery::StreamReply { to, id, bytes } => {
                if let Some(s) = self.nodes[to].swim.as_mut() {
                    if s.handle_stream_reply(now, id, &bytes) == StreamOutcome::NeedMore {
                        s.handle_stream_failed(now, id, "truncated reply");
                    }
                    self.drain(to);
                }
            }
            Delivery::StreamFailed { to, id, why } => {
                if let Some(s) = self.nodes[to].swim.as_mut() {
                    s.handle_stream_failed(now, id, why);
                    self.drain(to);
                }
            }
        }
    }

    /// Runs the simulation until virtual time `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next_delivery = self.queue.peek().map(|q| q.0.at);
            let next_timer = self.timers.keys().next().map(|(t, _)| *t);
            let next = match (next_delivery, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if next_delivery == Some(next) {
                let q = self.queue.pop().expect("peeked").0;
                self.deliver(q.what);
            } else {
                let (&(_, i), _) = self.timers.iter().next().expect("peeked");
                self.set_timer(i, None);
                let now = self.now;
                if let Some(s) = self.nodes[i].swim.as_mut() {
                    s.handle_timeout(now);
                }
                self.drain(i);
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` more virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs in steps of `step` until `pred` holds or `limit` of virtual time passed; returns
    /// whether it held.
    pub fn run_until_pred(
        &mut self,
        step: Duration,
        limit: Duration,
        mut pred: impl FnMut(&Sim<P>) -> bool,
    ) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if pred(self) {
                return true;
            }
            self.run_for(step);
        }
        pred(self)
    }

    /// Indices of nodes that are up.
    pub fn up(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].swim.is_some())
    }
}

/// Helpers for simulations of the membership core itself.
impl Sim<Swim> {
    /// Adds a node named `name` with `make_config` applied to a LAN config; returns its index.
    pub fn add_node(&mut self, name: &str, tweak: impl FnOnce(&mut Config)) -> usize {
        self.add_node_with(name, None, Vec::new(), tweak)
    }

    /// Adds a node with a keyring and metadata.
    pub fn add_node_with(
        &mut self,
        name: &str,
        keyring: Option<Keyring>,
        meta: Vec<u8>,
        tweak: impl FnOnce(&mut Config),
    ) -> usize {
        let idx = self.nodes.len();
        let addr = addr_of(idx);
        let mut config = Config::lan(name, addr);
        tweak(&mut config);
        let seed = self.rng.gen();
        let swim = Swim::new(config, keyring, meta, seed, self.now).expect("valid sim config");
        self.nodes.push(SimNode {
            addr,
            swim: Some(swim),
            events: Vec::new(),
            group: 0,
        });
        self.timer_of.push(None);
        self.by_addr.insert(addr, idx);
        self.drain(idx);
        idx
    }

    /// Node `i` joins node `j`.
    pub fn join(&mut self, i: usize, j: usize) {
        let addr = self.nodes[j].addr;
        self.with_node(i, |s, now| s.join(now, &[addr]));
    }

    /// Replaces node `i` by a fresh core (a restart that forgot everything).
    pub fn restart(&mut self, i: usize, name: &str, tweak: impl FnOnce(&mut Config)) {
        let mut config = Config::lan(name, self.nodes[i].addr);
        tweak(&mut config);
        let seed = self.rng.gen();
        self.nodes[i].swim =
            Some(Swim::new(config, None, Vec::new(), seed, self.now).expect("config"));
        self.drain(i);
    }

    /// The state node `observer` holds for `subject` (None if unknown or observer is down).
    pub fn state_of(&self, observer: usize, subject: &str) -> Option<NodeStateKind> {
        self.nodes[observer]
            .swim
            .as_ref()?
            .member(subject)
            .map(|m| m.state)
    }

    /// Number of members node `i` sees alive.
    pub fn alive_count(&self, i: usize) -> usize {
        self.nodes[i]
            .swim
            .as_ref()
            .map(|s| {
                s.members()
                    .filter(|m| m.state == NodeStateKind::Alive)
                    .count()
            })
            .unwrap_or(0)
    }
}
