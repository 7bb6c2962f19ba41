//! Scale through the sans-io simulator: `Sim<Serf>` runs N hearsay Serf nodes (LAN profile)
//! in this process on a virtual clock (1 ms one-way latency + up to 0.5 ms jitter, no loss).
//! Measures user-event dissemination, crash detection and per-node traffic, and reports the
//! models Serf documents for the same quantities. serf itself cannot run here: the anchors
//! are its published formulas.

use crate::alloc::Heap;
use hearsay_serf::event::{Event, MemberEventKind, MemberStatus};
use hearsay_serf::{messages, Serf, SerfConfig};
use hearsay_swim::config::suspicion_timeout;
use hearsay_swim::testing::{Sim, SimStats};
use hearsay_swim::wire::{ip_bytes, Codec, NodeStateKind, PushNodeState, PushPull, StreamMessage};
use hearsay_swim::{Config, Profile};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// What to run at one cluster size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SimPlan {
    pub n: usize,
    pub seeds: usize,
    pub events_per_seed: usize,
    pub crashes_per_seed: usize,
    /// Virtual time the converged cluster runs before measuring (the join storm's gossip
    /// drains).
    pub settle: Duration,
    /// Start from a bootstrapped cluster (every node fed one push/pull naming all N alive)
    /// instead of the join storm; see [`bootstrap`].
    pub bootstrap: bool,
}

/// Results at one cluster size, over all seeds.
#[derive(Debug, Default)]
pub(crate) struct SimResult {
    pub n: usize,
    /// The cluster was bootstrapped (no join storm; `converge` is empty).
    pub bootstrapped: bool,
    pub seeds: usize,
    /// Per event: time to reach 50 %, 99 %, 99.99 % and 100 % of nodes (origin included).
    pub p50: Vec<f64>,
    pub p99: Vec<f64>,
    pub p9999: Vec<f64>,
    pub p100: Vec<f64>,
    /// Per crash: time until the first and until every live node marked it failed.
    pub detect_first: Vec<f64>,
    pub detect_all: Vec<f64>,
    /// Steady cluster, per node per second: UDP packets sent, their bytes, TCP streams opened.
    pub steady_msgs: Vec<f64>,
    pub steady_bytes: Vec<f64>,
    pub steady_streams: Vec<f64>,
    /// While one event disseminates (fire → every node has it), per node per second.
    pub event_msgs: Vec<f64>,
    pub event_bytes: Vec<f64>,
    /// Virtual time from the first join to a fully converged cluster.
    pub converge: Vec<f64>,
    /// Wall-clock time of the whole size, and this process's peak RSS growth while it ran.
    pub wall: Duration,
    pub rss_growth_kib: f64,
    /// Per seed: this process's RSS growth from before the first build to the converged
    /// cluster, divided by N (the member tables dominate: every node holds every member).
    pub node_kib: Vec<f64>,
    /// Per seed: live heap growth (counting allocator, with malloc's per-block overhead)
    /// from before the build to the converged cluster, per member entry (N² entries).
    pub entry_bytes: Vec<f64>,
    /// The last seed's per-table breakdown at convergence (estimated from capacities),
    /// bytes per member entry.
    pub breakdown: Vec<(&'static str, f64)>,
    /// Wall time of the last seed's build.
    pub build_wall: Duration,
    /// Events or crashes that did not complete within their bound.
    pub timeouts: usize,
}

fn name(i: usize) -> String {
    format!("node-{i}")
}

fn add(sim: &mut Sim<Serf>, i: usize) {
    sim.add_core(|addr, seed, now| {
        let cfg = SerfConfig::new(Config::lan(name(i), addr));
        Serf::new(cfg, None, seed, now).expect("valid config")
    });
}

/// Takes every node's recorded events, handing each to `f` (keeps memory flat at scale).
fn drain_events(sim: &mut Sim<Serf>, mut f: impl FnMut(usize, Instant, &Event)) {
    for i in 0..sim.nodes.len() {
        let events = std::mem::take(&mut sim.nodes[i].events);
        for (t, e) in &events {
            f(i, *t, e);
        }
    }
}

fn converged(sim: &Sim<Serf>, n: usize) -> bool {
    sim.nodes.iter().all(|node| {
        node.swim
            .as_ref()
            .is_some_and(|s| s.count_with_status(MemberStatus::Alive) == n)
    })
}

/// `n` nodes, node i joining a random earlier one; runs until every node sees all `n` alive.
fn build(seed: u64, n: usize) -> Option<(Sim<Serf>, f64)> {
    let mut sim: Sim<Serf> = Sim::new(seed);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    for i in 0..n {
        add(&mut sim, i);
        if i > 0 {
            let j = rng.gen_range(0..i);
            let addr = sim.nodes[j].addr;
            sim.with_node(i, |s, now| s.join(now, &[addr], true).expect("join"));
        }
        sim.run_for(Duration::from_millis(5));
        if i % 64 == 0 {
            drain_events(&mut sim, |_, _, _| {});
        }
    }
    let limit = sim.elapsed() + Duration::from_secs(600);
    while !converged(&sim, n) {
        if sim.elapsed() > limit {
            return None;
        }
        sim.run_for(Duration::from_millis(500));
        drain_events(&mut sim, |_, _, _| {});
    }
    let t = sim.elapsed().as_secs_f64();
    Some((sim, t))
}

/// `n` nodes that already know each other as alive members, without a join storm: every
/// node's core is fed, through its public `handle_stream`, one push/pull carrying all `n`
/// nodes as alive (each node's own announcement: name, address, meta, incarnation and
/// versions, read from its `local()`) and a Serf state with a join intent at Lamport time 1
/// for each; exactly what a push/pull from a node that already knows everyone delivers. The
/// alive broadcasts each core queues while merging are then dropped (every node already knows
/// what they say), so the cluster starts quiet, as if long converged. Takes no virtual time.
fn bootstrap(seed: u64, n: usize) -> Option<(Sim<Serf>, f64)> {
    let mut sim: Sim<Serf> = Sim::new(seed);
    for i in 0..n {
        add(&mut sim, i);
    }
    drain_events(&mut sim, |_, _, _| {});
    let nodes: Vec<PushNodeState> = sim
        .nodes
        .iter()
        .map(|node| {
            let m = node.swim.as_ref().expect("just added").memberlist().local();
            PushNodeState {
                name: m.name.clone(),
                addr: ip_bytes(m.addr.ip()),
                port: m.addr.port(),
                meta: m.meta.clone(),
                incarnation: m.incarnation,
                state: NodeStateKind::Alive,
                vsn: m.vsn.to_vec(),
            }
        })
        .collect();
    let serf_state = messages::PushPull {
        ltime: 2,
        status_ltimes: nodes.iter().map(|p| (p.name.clone(), 1)).collect(),
        left_members: Vec::new(),
        event_ltime: 1,
        events: Vec::new(),
        query_ltime: 1,
    };
    let msg = StreamMessage::PushPull(PushPull {
        join: false,
        nodes,
        user_state: messages::encode(&messages::Message::PushPull(serf_state)),
    });
    let wire = sim.nodes[0]
        .swim
        .as_ref()?
        .memberlist()
        .config()
        .wire
        .clone();
    let codec = Codec::try_new(wire, None).ok()?;
    let bytes = codec.seal_stream(&msg, &mut StdRng::seed_from_u64(seed));
    drop(msg);
    let started = Instant::now();
    progress(n, "bootstrap: nodes created", started);
    for i in 0..n {
        if i > 0 && i % (n / 10).max(1) == 0 {
            progress(n, &format!("bootstrap: {i} of {n} nodes merged"), started);
        }
        let from = sim.nodes[(i + 1) % n].addr;
        sim.with_node(i, |s, now| {
            // The reply (this node's state) would go back to the sender; nobody waits for it.
            let _ = s.handle_stream(now, from, &bytes);
            s.memberlist_mut().clear_broadcasts();
        });
        // The n member-join events this node just raised.
        sim.nodes[i].events = Vec::new();
    }
    converged(&sim, n).then_some((sim, 0.0))
}

/// One progress line on stderr: what just finished, with wall time since `started`, RSS
/// and the live heap (an N = 10 000 run takes the better part of an hour; this says where
/// it is and whether memory still fits).
fn progress(n: usize, what: &str, started: Instant) {
    let rss = crate::procs::rss_kib(std::process::id()).unwrap_or(0.0);
    eprintln!(
        "[bench] sim N={n}: {what} at {:.1} s wall, RSS {:.0} MiB, live heap {:.0} MiB",
        started.elapsed().as_secs_f64(),
        rss / 1024.0,
        Heap::now().chunk_bytes as f64 / (1024.0 * 1024.0)
    );
}

/// Runs for `d` of virtual time, discarding events as it goes.
fn idle(sim: &mut Sim<Serf>, d: Duration) {
    let end = sim.now() + d;
    while sim.now() < end {
        let step = (end - sim.now()).min(Duration::from_secs(1));
        sim.run_for(step);
        drain_events(sim, |_, _, _| {});
    }
}

fn per_node_per_sec(a: SimStats, b: SimStats, n: usize, d: Duration) -> (f64, f64, f64) {
    let k = 1.0 / (n as f64 * d.as_secs_f64());
    (
        (b.packets_sent - a.packets_sent) as f64 * k,
        (b.bytes_sent - a.bytes_sent) as f64 * k,
        (b.streams_opened - a.streams_opened) as f64 * k,
    )
}

/// Runs the plan; `None` results are reported as "did not converge".
pub(crate) fn run(plan: SimPlan, base_seed: u64) -> SimResult {
    let started = Instant::now();
    let rss0 = crate::procs::rss_kib(std::process::id()).unwrap_or(0.0);
    let mut peak = rss0;
    let mut out = SimResult {
        n: plan.n,
        seeds: plan.seeds,
        bootstrapped: plan.bootstrap,
        ..SimResult::default()
    };
    for s in 0..plan.seeds {
        let seed = base_seed + s as u64;
        let heap0 = Heap::now();
        let build_started = Instant::now();
        let built = if plan.bootstrap {
            bootstrap(seed, plan.n)
        } else {
            build(seed, plan.n)
        };
        let Some((mut sim, t)) = built else {
            out.timeouts += 1;
            continue;
        };
        out.build_wall = build_started.elapsed();
        if !plan.bootstrap {
            out.converge.push(t);
        }
        let built = crate::procs::rss_kib(std::process::id()).unwrap_or(0.0);
        out.node_kib.push((built - rss0).max(0.0) / plan.n as f64);
        let entries = (plan.n * plan.n) as f64;
        out.entry_bytes
            .push(Heap::now().since(heap0).chunk_bytes as f64 / entries);
        out.breakdown = breakdown(&sim, entries);
        eprintln!(
            "[bench] simulator N={} built in {:.1} s wall: {:.0} bytes per member entry \
(live heap incl. malloc overhead), RSS {:.0} MiB",
            plan.n,
            out.build_wall.as_secs_f64(),
            out.entry_bytes.last().copied().unwrap_or(0.0),
            built / 1024.0
        );
        for (what, b) in &out.breakdown {
            eprintln!("[bench]   {b:>8.1} B/entry  {what}");
        }
        idle(&mut sim, plan.settle);
        progress(plan.n, "settled", started);
        peak = peak.max(crate::procs::rss_kib(std::process::id()).unwrap_or(0.0));
        let mut rng = StdRng::seed_from_u64(seed ^ 0xe7e7);

        // Steady-state traffic.
        // At least one full push/pull interval, so every node's periodic push/pull (which
        // come about once per interval, staggered) falls in the window exactly once.
        let window = Duration::from_secs_f64(push_pull_interval(plan.n).max(30.0));
        let a = sim.stats;
        // In 30 s pieces (the same 1 s steps as one call), with a progress line after each.
        let mut left = window;
        while !left.is_zero() {
            let piece = left.min(Duration::from_secs(30));
            idle(&mut sim, piece);
            left -= piece;
            let done = (window - left).as_secs();
            progress(
                plan.n,
                &format!("steady window {done} s of {} s", window.as_secs()),
                started,
            );
        }
        let (m, b, st) = per_node_per_sec(a, sim.stats, plan.n, window);
        out.steady_msgs.push(m);
        out.steady_bytes.push(b);
        out.steady_streams.push(st);

        for e in 0..plan.events_per_seed {
            measure_event(&mut sim, &mut rng, &format!("ev-{e}"), &mut out);
            idle(&mut sim, Duration::from_secs(5));
            progress(plan.n, &format!("event {}", e + 1), started);
        }
        for c in 0..plan.crashes_per_seed {
            measure_crash(&mut sim, &mut rng, &mut out);
            idle(&mut sim, Duration::from_secs(5));
            progress(plan.n, &format!("crash {}", c + 1), started);
        }
        peak = peak.max(crate::procs::rss_kib(std::process::id()).unwrap_or(0.0));
    }
    out.wall = started.elapsed();
    out.rss_growth_kib = peak - rss0;
    out
}

/// Every node's heap breakdown summed, per member entry.
fn breakdown(sim: &Sim<Serf>, entries: f64) -> Vec<(&'static str, f64)> {
    let mut sum: Vec<(&'static str, usize)> = Vec::new();
    for node in &sim.nodes {
        let Some(core) = node.swim.as_ref() else {
            continue;
        };
        for (i, (what, b)) in core.heap_breakdown().into_iter().enumerate() {
            if i == sum.len() {
                sum.push((what, 0));
            }
            sum[i].1 += b;
        }
    }
    sum.into_iter()
        .map(|(w, b)| (w, b as f64 / entries))
        .collect()
}

/// The memory N = `target` nodes would need, in KiB, from the per-node memory measured at
/// `n`: each node holds every member, so per-node memory grows linearly with N and the whole
/// cluster's as N².
pub(crate) fn extrapolate_kib(node_kib: f64, n: usize, target: usize) -> f64 {
    node_kib * (target as f64 / n as f64) * target as f64
}

/// The `k`-th smallest (1-based) of sorted delays.
fn kth(sorted: &[f64], k: usize) -> f64 {
    sorted[k.clamp(1, sorted.len()) - 1]
}

fn measure_event(sim: &mut Sim<Serf>, rng: &mut StdRng, event: &str, out: &mut SimResult) {
    let up: Vec<usize> = sim.up().collect();
    let origin = up[rng.gen_range(0..up.len())];
    let fired = sim.now();
    let before = sim.stats;
    sim.with_node(origin, |s, now| {
        s.user_event(now, event, b"bench", false)
            .expect("user event")
    });
    let mut got: Vec<Option<Instant>> = vec![None; sim.nodes.len()];
    let mut missing = up.len();
    let limit = fired + Duration::from_secs(60);
    loop {
        drain_events(sim, |i, t, e| {
            if let Event::User(u) = e {
                if u.name == event && got[i].is_none() {
                    got[i] = Some(t);
                    missing -= 1;
                }
            }
        });
        if missing == 0 || sim.now() >= limit {
            break;
        }
        sim.run_for(Duration::from_millis(50));
    }
    if missing > 0 {
        out.timeouts += 1;
        return;
    }
    let spread = sim.now() - fired;
    let (m, b, _) = per_node_per_sec(
        before,
        sim.stats,
        up.len(),
        spread.max(Duration::from_millis(1)),
    );
    out.event_msgs.push(m);
    out.event_bytes.push(b);
    let mut d: Vec<f64> = up
        .iter()
        .filter_map(|&i| got[i])
        .map(|t| (t - fired).as_secs_f64())
        .collect();
    d.sort_by(f64::total_cmp);
    let n = d.len();
    out.p50.push(kth(&d, (n as f64 * 0.5).ceil() as usize));
    out.p99.push(kth(&d, (n as f64 * 0.99).ceil() as usize));
    out.p9999.push(kth(&d, (n as f64 * 0.9999).ceil() as usize));
    out.p100.push(d[n - 1]);
}

fn measure_crash(sim: &mut Sim<Serf>, rng: &mut StdRng, out: &mut SimResult) {
    let up: Vec<usize> = sim.up().collect();
    let victim = up[rng.gen_range(0..up.len())];
    let victim_name = name(victim);
    let crashed = sim.now();
    sim.crash(victim);
    let survivors: Vec<usize> = up.into_iter().filter(|&i| i != victim).collect();
    let mut got: Vec<Option<Instant>> = vec![None; sim.nodes.len()];
    let mut missing = survivors.len();
    let limit = crashed + Duration::from_secs(300);
    loop {
        drain_events(sim, |i, t, e| {
            if let Event::Member(m) = e {
                if m.kind == MemberEventKind::Failed
                    && m.members.iter().any(|m| m.name == victim_name)
                    && got[i].is_none()
                    && i != victim
                {
                    got[i] = Some(t);
                    missing -= 1;
                }
            }
        });
        if missing == 0 || sim.now() >= limit {
            break;
        }
        sim.run_for(Duration::from_millis(100));
    }
    if missing > 0 {
        out.timeouts += 1;
        return;
    }
    let d: Vec<f64> = survivors
        .iter()
        .filter_map(|&i| got[i])
        .map(|t| (t - crashed).as_secs_f64())
        .collect();
    out.detect_first
        .push(d.iter().copied().fold(f64::INFINITY, f64::min));
    out.detect_all.push(d.iter().copied().fold(0.0, f64::max));
}

/// The Serf convergence simulator's model (`_simulator.js`): seconds until a fraction `f`
/// of `n` nodes has an update, at 200 ms gossip interval, fanout 3, no loss or failures.
pub(crate) fn serf_convergence_model(n: usize, f: f64) -> f64 {
    let rounds = ((n as f64 + 1.0) * f / (1.0 - f)).ln() / (0.5 * 3.0);
    rounds * 0.2
}

/// memberlist's suspicion timeout bounds at `n` members on `profile` (LAN: SuspicionMult 4,
/// 1 s probe interval, max = 6 × min): `(min, max)` in seconds, from the membership core's own
/// formula and profile settings.
pub(crate) fn suspicion_bounds(profile: Profile, n: usize) -> (f64, f64) {
    let c = Config::profile(profile, "", std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    let min = suspicion_timeout(c.suspicion_mult, n, c.probe_interval).as_secs_f64();
    (min, min * f64::from(c.suspicion_max_timeout_mult))
}

/// memberlist's scaled push/pull interval at `n` members (30 s base; `util.go`
/// `pushPullScale`), in seconds.
pub(crate) fn push_pull_interval(n: usize) -> f64 {
    if n <= 32 {
        return 30.0;
    }
    let mult = ((n as f64).log2() - 32f64.log2()).ceil() + 1.0;
    30.0 * mult
}

/// The anchors' Monte Carlo of the memberlist code: mean time until all nodes know of a crash.
pub(crate) fn detection_model_all(n: usize) -> Option<f64> {
    match n {
        3 => Some(5.72),
        10 => Some(6.09),
        100 => Some(10.50),
        1000 => Some(14.81),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_match_the_anchors() {
        let m = |n| (serf_convergence_model(n, 0.9999) * 100.0).round() / 100.0;
        assert_eq!(m(100), 1.84);
        assert_eq!(m(1000), 2.15);
        assert_eq!(m(10_000), 2.46);
        assert_eq!(suspicion_bounds(Profile::Lan, 10), (4.0, 24.0));
        assert_eq!(suspicion_bounds(Profile::Local, 10), (3.0, 18.0));
        assert_eq!(push_pull_interval(100), 90.0);
        assert_eq!(push_pull_interval(1000), 180.0);
        assert_eq!(suspicion_bounds(Profile::Lan, 1000), (12.0, 72.0));
        // 1 MiB per node at N = 1000 → 10 MiB per node at N = 10 000, 100 GB in all.
        assert_eq!(extrapolate_kib(1024.0, 1000, 10_000), 1024.0 * 100_000.0);
    }
}
