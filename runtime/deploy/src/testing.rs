//! `testing::simulate`: a deterministic simulator of deployment dissemination over many
//! nodes, each a [`Sync<u32>`] and a [`DeploySet`], on a virtual clock with random message
//! latency, crashes, restarts and late joiners. Everything random comes from one seed, so a
//! run is replayed exactly by its seed. Only built with the `testing` feature.
//!
//! The scenario, on a virtual clock (D is the deploy, one second in):
//!
//! - at 0: `nodes` nodes start, each holding version 1 of `greet` and knowing every other
//!   node as a peer;
//! - at D: `crashed` random nodes go down, and node 0 deploys version 2 of `greet` (with
//!   `concurrent`, node 1 deploys a different version 2 under a second key at the same time);
//! - at D + 5 s: the failure detector catches up: every node's peers are the nodes up;
//! - at D + 20 s: `joiners` new nodes, with empty sets, join;
//! - at D + 40 s: the crashed nodes restart with the set they had (version 1);
//! - the run ends when every node up holds the winning record, or at D + 300 s.
//!
//! A sync is modelled as the agent will run it: the initiator sends its digest, the peer
//! answers with its current records if its digest differs, the initiator merges them and
//! pushes back what the peer lacks. Messages are counted from the deploy on.

use crate::keys::{Digest, PublicKey, SigningKey};
use crate::record::{Deployment, Grants, ModuleRef, Spec};
use crate::set::DeploySet;
use crate::sync::{Action, Sync, SyncConfig};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

/// The name every simulated deployment uses.
const NAME: &str = "greet";
/// When the deploy happens, after the cluster started.
const DEPLOY_AT: Duration = Duration::from_secs(1);
/// From the deploy: when crashed nodes leave everyone's peer list.
const DETECT_AFTER: Duration = Duration::from_secs(5);
/// From the deploy: when the late joiners start.
const JOIN_AFTER: Duration = Duration::from_secs(20);
/// From the deploy: when the crashed nodes restart.
const RESTART_AFTER: Duration = Duration::from_secs(40);
/// From the deploy: when the run gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

/// A simulated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Nodes up from the start.
    pub nodes: usize,
    /// Seeds every random choice of the run.
    pub seed: u64,
    /// [`SyncConfig::fanout`] of every node.
    pub fanout: usize,
    /// [`SyncConfig::interval`] of every node.
    pub interval: Duration,
    /// Nodes down from the deploy until they restart, 40 s later.
    pub crashed: usize,
    /// Nodes that join 20 s after the deploy.
    pub joiners: usize,
    /// Whether two nodes deploy the same name and version (different content and keys) at
    /// the same moment.
    pub concurrent: bool,
    /// The least and the most a message takes (uniform in between).
    pub latency: (Duration, Duration),
}

impl Default for SimConfig {
    /// 1000 nodes, 5% crashed, 50 joiners, fanout 3, a 10 s interval, 1-50 ms latency.
    fn default() -> Self {
        SimConfig {
            nodes: 1000,
            seed: 1,
            fanout: 3,
            interval: Duration::from_secs(10),
            crashed: 50,
            joiners: 50,
            concurrent: false,
            latency: (Duration::from_millis(1), Duration::from_millis(50)),
        }
    }
}

/// What a run measured. Durations are virtual time; `None` means "did not happen before the
/// run gave up" (a group with no nodes converges at once: `Some(ZERO)`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// From the deploy until every node that stayed up held the winner.
    pub converged: Option<Duration>,
    /// From the joiners' start until every joiner held it.
    pub joiners_converged: Option<Duration>,
    /// From the restart until every restarted node held it.
    pub restarted_converged: Option<Duration>,
    /// Whether every node up at the end had the same set digest.
    pub all_agree: bool,
    /// The id of the winning record.
    pub winner: Digest,
    /// Virtual time from the deploy to the end of the run.
    pub elapsed: Duration,
    /// Every message sent after the deploy.
    pub messages: u64,
    /// Rumor pushes ([`Action::Push`]), one per message.
    pub pushes: u64,
    /// Pushes back to a sync peer that lacked records.
    pub pushbacks: u64,
    /// Sync requests (digests) sent.
    pub sync_requests: u64,
    /// Sync replies (record lists) sent.
    pub sync_replies: u64,
    /// The most messages one node sent.
    pub max_sent: u64,
    /// The most messages one node received.
    pub max_received: u64,
    /// Records that became current at a node through a rumor push.
    pub learned_by_push: u64,
    /// Records that became current through a sync reply or a push back.
    pub learned_by_sync: u64,
}

/// Runs the scenario in `config`; see the [module docs](self).
pub fn simulate(config: &SimConfig) -> SimReport {
    Sim::new(config).run()
}

#[derive(Debug)]
enum Msg {
    Push(Vec<Deployment>),
    PushBack(Vec<Deployment>),
    SyncRequest(Digest),
    SyncReply(Vec<Deployment>),
}

#[derive(Debug)]
enum Event {
    Deliver { from: u32, to: u32, msg: Msg },
    Timer { node: u32 },
    Deploy,
    Detect,
    Join,
    Restart,
}

struct Queued {
    at: Instant,
    seq: u64,
    event: Event,
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

/// Which convergence clock a node counts towards.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Steady = 0,
    Crashed = 1,
    Joiner = 2,
}

struct Node {
    set: DeploySet,
    sync: Sync<u32>,
    up: bool,
    group: Group,
    /// The timer event that is current (older queued ones are stale).
    timer: Option<Instant>,
    has_winner: bool,
    sent: u64,
    received: u64,
}

struct Sim {
    config: SimConfig,
    rng: StdRng,
    start: Instant,
    deploy_at: Instant,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    nodes: Vec<Node>,
    keys: [SigningKey; 2],
    winner: Digest,
    /// Nodes per group (by [`Group::index`]) still without the winner.
    missing: [usize; 3],
    /// Whether the deploy happened (before it, nobody is missing anything).
    deployed: bool,
    converged: [Option<Duration>; 3],
    /// Join and restart phases still to come (the run cannot end before them).
    pending_phases: usize,
    counting: bool,
    report: SimReport,
}

impl Group {
    fn index(self) -> usize {
        self as usize
    }
}

fn spec(version: u64, variant: &str) -> Spec {
    Spec {
        name: NAME.into(),
        version,
        module: Some(ModuleRef {
            sha256: Digest::of(format!("{NAME}-{version}-{variant}").as_bytes()),
            size: 4096,
        }),
        events: format!("query:{NAME}"),
        selector: BTreeMap::new(),
        limits: BTreeMap::new(),
        grants: Grants::default(),
        signed_at: 0,
    }
}

impl Sim {
    fn new(config: &SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let keys = [
            SigningKey::from_seed(rng.gen()),
            SigningKey::from_seed(rng.gen()),
        ];
        let start = Instant::now();
        let mut sim = Sim {
            config: config.clone(),
            rng,
            start,
            deploy_at: start + DEPLOY_AT,
            queue: BinaryHeap::new(),
            seq: 0,
            nodes: Vec::new(),
            keys,
            winner: Digest::default(),
            missing: [0; 3],
            deployed: false,
            converged: [None; 3],
            pending_phases: 0,
            counting: false,
            report: SimReport::default(),
        };
        sim.populate();
        sim
    }

    fn trusted(&self) -> Vec<PublicKey> {
        self.keys.iter().map(SigningKey::public).collect()
    }

    fn sync_config(&self, node: usize, incarnation: u64) -> SyncConfig {
        SyncConfig {
            fanout: self.config.fanout,
            interval: self.config.interval,
            seed: self.config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (node as u64)
                ^ (incarnation << 48),
        }
    }

    /// All nodes exist from the start (joiners down until they join); the first `nodes`
    /// hold version 1 and know each other.
    fn populate(&mut self) {
        let old = Deployment::sign(spec(1, "old"), &self.keys[0]).expect("valid spec");
        let total = self.config.nodes + self.config.joiners;
        for i in 0..total {
            let mut set = DeploySet::new(self.trusted());
            let joiner = i >= self.config.nodes;
            if !joiner {
                set.merge(old.clone());
            }
            let group = if joiner { Group::Joiner } else { Group::Steady };
            self.nodes.push(Node {
                set,
                sync: Sync::new(self.sync_config(i, 0), self.start),
                up: !joiner,
                group,
                timer: None,
                has_winner: false,
                sent: 0,
                received: 0,
            });
        }
        self.update_peers(self.start);
        self.schedule(self.deploy_at, Event::Deploy);
        self.schedule(self.deploy_at + DETECT_AFTER, Event::Detect);
        // Phases with nobody in them are skipped, so the run can end as soon as it converged.
        if self.config.joiners > 0 {
            self.pending_phases += 1;
            self.schedule(self.deploy_at + JOIN_AFTER, Event::Join);
        }
        if self.config.crashed > 0 {
            self.pending_phases += 1;
            self.schedule(self.deploy_at + RESTART_AFTER, Event::Restart);
        }
    }

    fn schedule(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            event,
        }));
    }

    fn run(mut self) -> SimReport {
        let give_up = self.deploy_at + GIVE_UP_AFTER;
        let mut now = self.start;
        while let Some(Reverse(q)) = self.queue.pop() {
            if q.at > give_up {
                break;
            }
            now = q.at;
            self.handle(now, q.event);
            if self.deployed && self.pending_phases == 0 && self.missing.iter().all(|m| *m == 0) {
                break;
            }
        }
        self.finish(now)
    }

    fn handle(&mut self, now: Instant, event: Event) {
        match event {
            Event::Deliver { from, to, msg } => self.deliver(now, from, to, msg),
            Event::Timer { node } => self.timer(now, node),
            Event::Deploy => self.deploy(now),
            Event::Detect => self.update_peers(now),
            Event::Join => self.join(now),
            Event::Restart => self.restart(now),
        }
    }

    /// Crashes `crashed` random nodes (never a deployer) and deploys.
    fn deploy(&mut self, now: Instant) {
        let deployers = if self.config.concurrent { 2 } else { 1 };
        let mut candidates: Vec<usize> = (deployers..self.config.nodes).collect();
        candidates.shuffle(&mut self.rng);
        for &i in candidates.iter().take(self.config.crashed) {
            let node = &mut self.nodes[i];
            node.up = false;
            node.group = Group::Crashed;
            node.timer = None;
        }
        let records: Vec<Deployment> = (0..deployers)
            .map(|k| {
                Deployment::sign(spec(2, &format!("from-{k}")), &self.keys[k]).expect("valid spec")
            })
            .collect();
        let winner = records
            .iter()
            .find(|d| records.iter().all(|o| o.id() == d.id() || d.supersedes(o)))
            .expect("one record supersedes the others");
        self.winner = winner.id();
        self.count_missing();
        for (k, d) in records.into_iter().enumerate() {
            self.merge(now, k as u32, d, false);
        }
        // Counting starts with the deployers' first pushes, not their own merges.
        self.counting = true;
        for k in 0..deployers {
            self.flush(now, k as u32);
        }
    }

    fn count_missing(&mut self) {
        self.deployed = true;
        for node in &self.nodes {
            self.missing[node.group.index()] += 1;
        }
        for (g, m) in self.missing.iter().enumerate() {
            if *m == 0 {
                self.converged[g] = Some(Duration::ZERO);
            }
        }
    }

    /// Every node up learns the nodes up (but itself) as its peers.
    fn update_peers(&mut self, now: Instant) {
        let up: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|&i| self.nodes[i as usize].up)
            .collect();
        for &i in &up {
            let peers = up.iter().copied().filter(|&p| p != i);
            self.nodes[i as usize].sync.handle_peers(now, peers);
            self.flush(now, i);
        }
    }

    fn join(&mut self, now: Instant) {
        for node in self.nodes.iter_mut().filter(|n| n.group == Group::Joiner) {
            node.up = true;
        }
        self.pending_phases -= 1;
        self.update_peers(now);
    }

    /// The crashed nodes come back with the set they had and a fresh [`Sync`].
    fn restart(&mut self, now: Instant) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].group == Group::Crashed {
                let config = self.sync_config(i, 1);
                let node = &mut self.nodes[i];
                node.up = true;
                node.timer = None;
                node.sync = Sync::new(config, now);
            }
        }
        self.pending_phases -= 1;
        self.update_peers(now);
    }

    fn timer(&mut self, now: Instant, node: u32) {
        let n = &mut self.nodes[node as usize];
        if !n.up || n.timer != Some(now) {
            return;
        }
        n.timer = None;
        n.sync.handle_timeout(now);
        self.flush(now, node);
    }

    fn deliver(&mut self, now: Instant, from: u32, to: u32, msg: Msg) {
        if !self.nodes[to as usize].up {
            return;
        }
        if self.counting {
            self.nodes[to as usize].received += 1;
        }
        match msg {
            Msg::Push(records) => self.merge_all(now, to, records, false),
            Msg::PushBack(records) => self.merge_all(now, to, records, true),
            Msg::SyncRequest(digest) => {
                let set = &self.nodes[to as usize].set;
                if set.digest() != digest {
                    let records: Vec<Deployment> = set.current().cloned().collect();
                    self.report.sync_replies += u64::from(self.counting);
                    self.send(now, to, from, Msg::SyncReply(records));
                }
            }
            Msg::SyncReply(records) => {
                self.merge_all(now, to, records.clone(), true);
                let back = self.nodes[to as usize].set.newer_than(&records);
                if !back.is_empty() {
                    self.report.pushbacks += u64::from(self.counting);
                    self.send(now, to, from, Msg::PushBack(back));
                }
            }
        }
        self.flush(now, to);
    }

    fn merge_all(&mut self, now: Instant, node: u32, records: Vec<Deployment>, by_sync: bool) {
        for d in records {
            self.merge(now, node, d, by_sync);
        }
    }

    /// Merges one record at `node`; news is handed to its [`Sync`] and counted.
    fn merge(&mut self, now: Instant, node: u32, d: Deployment, by_sync: bool) {
        let id = d.id();
        let n = &mut self.nodes[node as usize];
        if !n.set.merge(d).is_new() {
            return;
        }
        n.sync.handle_learned(now, NAME);
        if self.counting {
            if by_sync {
                self.report.learned_by_sync += 1;
            } else {
                self.report.learned_by_push += 1;
            }
        }
        if id == self.winner && !n.has_winner {
            n.has_winner = true;
            let g = n.group;
            self.missing[g.index()] -= 1;
            if self.missing[g.index()] == 0 {
                self.converged[g.index()] = Some(now - self.phase_start(g));
            }
        }
    }

    /// When a group's convergence clock starts.
    fn phase_start(&self, g: Group) -> Instant {
        match g {
            Group::Steady => self.deploy_at,
            Group::Crashed => self.deploy_at + RESTART_AFTER,
            Group::Joiner => self.deploy_at + JOIN_AFTER,
        }
    }

    /// Carries out `node`'s actions and re-arms its timer.
    fn flush(&mut self, now: Instant, node: u32) {
        while let Some(action) = self.nodes[node as usize].sync.poll_action() {
            match action {
                Action::Push { peer, records } => {
                    let set = &self.nodes[node as usize].set;
                    let records: Vec<Deployment> =
                        records.iter().filter_map(|r| set.get(r).cloned()).collect();
                    self.report.pushes += u64::from(self.counting);
                    self.send(now, node, peer, Msg::Push(records));
                }
                Action::Sync { peer } => {
                    let digest = self.nodes[node as usize].set.digest();
                    self.report.sync_requests += u64::from(self.counting);
                    self.send(now, node, peer, Msg::SyncRequest(digest));
                }
            }
        }
        let n = &mut self.nodes[node as usize];
        if let Some(due) = n.sync.poll_timeout() {
            if n.timer != Some(due) {
                n.timer = Some(due);
                self.schedule(due, Event::Timer { node });
            }
        }
    }

    fn send(&mut self, now: Instant, from: u32, to: u32, msg: Msg) {
        if self.counting {
            self.report.messages += 1;
            self.nodes[from as usize].sent += 1;
        }
        let (lo, hi) = self.config.latency;
        let latency = self.rng.gen_range(lo..=hi);
        self.schedule(now + latency, Event::Deliver { from, to, msg });
    }

    fn finish(mut self, now: Instant) -> SimReport {
        let up: Vec<&Node> = self.nodes.iter().filter(|n| n.up).collect();
        let digest = up.first().map(|n| n.set.digest());
        self.report.all_agree = up.iter().all(|n| Some(n.set.digest()) == digest);
        self.report.converged = self.converged[Group::Steady.index()];
        self.report.restarted_converged = self.converged[Group::Crashed.index()];
        self.report.joiners_converged = self.converged[Group::Joiner.index()];
        self.report.winner = self.winner;
        self.report.elapsed = now.saturating_duration_since(self.deploy_at);
        self.report.max_sent = self.nodes.iter().map(|n| n.sent).max().unwrap_or(0);
        self.report.max_received = self.nodes.iter().map(|n| n.received).max().unwrap_or(0);
        self.report
    }
}
