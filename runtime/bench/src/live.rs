//! The live measurements: real processes on 127.0.0.1, an all-serf cluster and an
//! all-hearsay cluster measured the same way one after the other. Failure detection, user
//! event propagation and idle footprint (query round trips: [`crate::query`]).

use crate::inproc::Origin;
use crate::procs::{
    cpu_secs, formation_secs, rss_kib, start_cluster, start_node, wait_members, wait_ready, Impl,
    Lines, Node, NodeRole, Tools, GOSSIP_SPREAD,
};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Gives the cluster time to finish its join gossip before a measurement.
fn settle(d: Duration) {
    std::thread::sleep(d);
}

/// The pause between two repetitions: 300 ms so they do not share gossip packets, plus a
/// random part spanning one 200 ms gossip interval, so repetitions sample every phase of the
/// gossip ticker instead of locking onto one.
fn gap() {
    let ms = 300 + rand::random::<u64>() % 200;
    std::thread::sleep(Duration::from_millis(ms));
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Samples of one failure-detection configuration.
#[derive(Debug, Default)]
pub(crate) struct FailureSamples {
    /// kill → the last survivor reports the member failed.
    pub all: Vec<f64>,
    /// kill → the first survivor reports it.
    pub first: Vec<f64>,
    /// Agents only (serf, `hearsay agent`): kill → the last survivor's agent hands
    /// `member-failed` to its handlers (after the agent's member-event coalescing).
    pub handler: Vec<f64>,
    /// Repetitions where some survivor never reported it within the bound.
    pub timeouts: usize,
    /// Start of the first agent → every agent saw every other join (the rest start together,
    /// each joining the first).
    pub formation: Vec<f64>,
}

/// `kill -9` one member of a fresh `n`-node cluster on timing profile `profile` (serf's
/// default `lan` when `None`), `reps` times.
pub(crate) fn failure_detection(
    tools: &Tools,
    imp: Impl,
    n: usize,
    reps: usize,
    settle_for: Duration,
    profile: Option<&str>,
) -> Result<FailureSamples> {
    let mut out = FailureSamples::default();
    let role = NodeRole {
        profile,
        ..NodeRole::default()
    };
    for rep in 0..reps {
        let started = Instant::now();
        let prefix = format!("f{}{n}r{rep}-", profile.unwrap_or(""));
        let mut nodes = start_cluster(tools, imp, &prefix, n, role, Duration::ZERO)?;
        out.formation.push(formation_secs(imp, &nodes, started));
        settle(settle_for);
        let mut victim = nodes.pop().context("empty cluster")?;
        let victim_name = victim.proc.name.clone();
        let killed = Instant::now();
        victim.proc.kill();
        // Lifeguard's longest suspicion at n ≤ 10 is 24 s; this bound leaves room for it.
        let deadline = killed + Duration::from_secs(60);
        let mut times = Vec::new();
        let mut handler_times = Vec::new();
        for node in &nodes {
            match node
                .proc
                .lines
                .wait_for(deadline, |l| imp.failed(l, &victim_name))
            {
                Some(t) => times.push(secs(t.saturating_duration_since(killed))),
                None => {
                    out.timeouts += 1;
                    break;
                }
            }
            if node.rpc_port != 0 {
                // An agent logs this after its coalescer (a 1 s quiescent period) lets it out.
                let t = node
                    .proc
                    .lines
                    .wait_for(deadline, |l| imp.failed_coalesced(l, &victim_name));
                if let Some(t) = t {
                    handler_times.push(secs(t.saturating_duration_since(killed)));
                }
            }
        }
        if times.len() == nodes.len() {
            out.all.push(times.iter().copied().fold(0.0, f64::max));
            out.first
                .push(times.iter().copied().fold(f64::INFINITY, f64::min));
        }
        if handler_times.len() == nodes.len() {
            out.handler
                .push(handler_times.iter().copied().fold(0.0, f64::max));
        }
    }
    Ok(out)
}

/// False alarms of one timing profile under CPU load.
#[derive(Debug, Default)]
pub(crate) struct FalseAlarmSamples {
    /// Per cluster: members marked failed while alive, per node per hour of load.
    pub failed_per_node_hour: Vec<f64>,
    /// Per cluster: probes that went unanswered and raised a suspicion, per node per hour.
    pub suspected_per_node_hour: Vec<f64>,
    /// Totals over every cluster: failed marks, suspicions, node-hours under load.
    pub failed: usize,
    pub suspected: usize,
    pub node_hours: f64,
}

/// Spins one thread per online CPU until dropped: "both cores busy" for whatever shares the
/// machine with it.
struct CpuLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CpuLoad {
    fn start() -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..cpus)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What [`false_alarms`] watches: `clusters` fresh `n`-node clusters, each loaded for `window`,
/// alarms counted until `tail` after it (a suspicion raised late in the window is decided after
/// it: Lifeguard's shortest suspicion for n ≤ 10 on the local profile is 3 s).
#[derive(Debug, Clone)]
pub(crate) struct AlarmWatch {
    pub n: usize,
    pub clusters: usize,
    pub window: Duration,
    pub tail: Duration,
}

/// Fresh clusters on timing profile `profile`, each settled, then left alone for the watch's
/// window with every CPU kept busy by the bench: every member any node marks failed is a
/// false alarm (nobody is killed), and every suspicion raised is one that the member had to
/// refute.
pub(crate) fn false_alarms(
    tools: &Tools,
    imp: Impl,
    watch: &AlarmWatch,
    settle_for: Duration,
    profile: Option<&str>,
) -> Result<FalseAlarmSamples> {
    let mut out = FalseAlarmSamples::default();
    let role = NodeRole {
        profile,
        ..NodeRole::default()
    };
    let n = watch.n;
    for c in 0..watch.clusters {
        let nodes = start_cluster(tools, imp, &format!("fa{n}c{c}-"), n, role, Duration::ZERO)?;
        settle(settle_for);
        let from = Instant::now();
        {
            let _load = CpuLoad::start();
            std::thread::sleep(watch.window);
        }
        std::thread::sleep(watch.tail);
        let hours = watch.window.as_secs_f64() / 3600.0 * n as f64;
        let (mut failed, mut suspected) = (0, 0);
        for node in &nodes {
            for (_, l) in node
                .proc
                .lines
                .all(|_| true)
                .iter()
                .filter(|(t, _)| *t >= from)
            {
                failed += imp.failed_names(l).len();
                suspected += usize::from(imp.suspected(l));
            }
        }
        out.failed_per_node_hour.push(failed as f64 / hours);
        out.suspected_per_node_hour.push(suspected as f64 / hours);
        out.failed += failed;
        out.suspected += suspected;
        out.node_hours += hours;
    }
    Ok(out)
}

/// A cluster for user events: the members' output lines (origin first) and whatever
/// must stay alive while it runs.
struct LiveCluster {
    members: Vec<(String, Lines)>,
    nodes: Vec<Node>,
    origin: Option<Origin>,
    /// The CLI that drives the first node over RPC (`serf` or `hearsay`).
    cli: Option<PathBuf>,
}

impl LiveCluster {
    /// `n` members. serf: `n` agents, the first driven by the `serf` CLI; hearsay likewise
    /// with `hearsay agent`s and the `hearsay` CLI when built, else `n - 1`
    /// `hearsay-serf-node`s plus the in-process origin.
    fn start(tools: &Tools, imp: Impl, prefix: &str, n: usize) -> Result<Self> {
        let role = NodeRole::default();
        let cli = match imp {
            Impl::Serf => tools.serf.clone(),
            Impl::Hearsay if tools.hearsay_agent() => tools.agent.clone(),
            Impl::Hearsay => None,
        };
        match cli {
            Some(cli) => {
                let nodes = start_cluster(tools, imp, prefix, n, role, GOSSIP_SPREAD)?;
                let members = nodes
                    .iter()
                    .map(|n| (n.proc.name.clone(), n.proc.lines.clone()))
                    .collect();
                Ok(Self {
                    members,
                    nodes,
                    origin: None,
                    cli: Some(cli),
                })
            }
            None if imp == Impl::Serf => bail!("serf is not installed"),
            None => {
                let origin_name = format!("{prefix}origin");
                let nodes = start_cluster(tools, imp, prefix, n - 1, role, GOSSIP_SPREAD)?;
                let origin = Origin::start(&origin_name, nodes[0].gossip_port)?;
                let mut members = vec![(origin.name.clone(), origin.lines.clone())];
                members.extend(
                    nodes
                        .iter()
                        .map(|n| (n.proc.name.clone(), n.proc.lines.clone())),
                );
                let names: Vec<String> = members.iter().map(|(n, _)| n.clone()).collect();
                let deadline = Instant::now() + Duration::from_secs(30);
                for (name, lines) in &members {
                    wait_members(imp, name, lines, &names, deadline)?;
                }
                Ok(Self {
                    members,
                    nodes,
                    origin: Some(origin),
                    cli: None,
                })
            }
        }
    }

    /// Fires user event `event` at the origin.
    fn fire(&self, event: &str) -> Result<()> {
        match (&self.origin, &self.cli) {
            (Some(o), _) => o.fire(event),
            (None, None) => bail!("no CLI to drive the cluster"),
            (None, Some(cli)) => {
                let args = ["event", "-coalesce=false", event, "x"];
                let out = rpc_cli(cli, &self.nodes[0], &args)?;
                if !out.status.success() {
                    bail!("{} event failed: {out:?}", cli.display());
                }
                Ok(())
            }
        }
    }

    fn stop(self) {
        if let Some(o) = self.origin {
            o.shutdown();
        }
        drop(self.nodes);
    }
}

/// Runs a `serf` or `hearsay` CLI command against `node`'s RPC address.
fn rpc_cli(cli: &Path, node: &Node, args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new(cli)
        .arg(args[0])
        .arg(format!("-rpc-addr=127.0.0.1:{}", node.rpc_port))
        .args(&args[1..])
        .output()?)
}

/// Samples of user-event propagation.
#[derive(Debug, Default)]
pub(crate) struct EventSamples {
    /// origin's own delivery → the last member's delivery.
    pub all: Vec<f64>,
    /// origin's own delivery → the median member's delivery.
    pub median_node: Vec<f64>,
    pub timeouts: usize,
}

/// Fires `per_cluster` user events (no coalescing) at the origin of each of `clusters` fresh
/// `n`-member clusters and times their delivery everywhere. A cluster's gossip tickers keep
/// one phase layout for its life, and that layout alone can move every event's time by a
/// gossip interval; fresh clusters sample the layouts as the repetitions sample the phases.
pub(crate) fn event_propagation(
    tools: &Tools,
    imp: Impl,
    n: usize,
    (clusters, per_cluster): (usize, usize),
    settle_for: Duration,
) -> Result<EventSamples> {
    let mut out = EventSamples::default();
    for c in 0..clusters {
        let cluster = LiveCluster::start(tools, imp, &format!("e{n}c{c}-"), n)?;
        settle(settle_for);
        for rep in 0..per_cluster {
            let event = format!("bench-{c}-{rep}");
            cluster.fire(&event)?;
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut times = Vec::new();
            for (_, lines) in &cluster.members {
                match lines.wait_for(deadline, |l| imp.user_event(l, &event)) {
                    Some(t) => times.push(t),
                    None => break,
                }
            }
            if times.len() < cluster.members.len() {
                out.timeouts += 1;
                continue;
            }
            let t0 = times[0];
            let mut d: Vec<f64> = times[1..]
                .iter()
                .map(|t| secs(t.saturating_duration_since(t0)))
                .collect();
            d.sort_by(f64::total_cmp);
            out.all.push(*d.last().unwrap_or(&0.0));
            out.median_node.push(crate::stats::percentile(&d, 0.5));
            gap();
        }
        cluster.stop();
    }
    Ok(out)
}

/// Samples of an idle cluster's footprint.
#[derive(Debug, Default)]
pub(crate) struct IdleSamples {
    /// VmRSS per agent, KiB.
    pub rss_kib: Vec<f64>,
    /// CPU used per agent over the idle window, percent of one core.
    pub cpu_pct: Vec<f64>,
}

/// `clusters` fresh 3-node clusters, each measured after `idle` without traffic.
pub(crate) fn idle_footprint(
    tools: &Tools,
    imp: Impl,
    clusters: usize,
    idle: Duration,
) -> Result<IdleSamples> {
    let mut out = IdleSamples::default();
    for c in 0..clusters {
        let nodes = start_cluster(
            tools,
            imp,
            &format!("m{c}-"),
            3,
            NodeRole::default(),
            Duration::ZERO,
        )?;
        let before: Vec<f64> = nodes
            .iter()
            .map(|n| cpu_secs(n.proc.pid()))
            .collect::<Result<_>>()?;
        let t = Instant::now();
        std::thread::sleep(idle);
        let wall = t.elapsed().as_secs_f64();
        for (node, b) in nodes.iter().zip(before) {
            out.rss_kib.push(rss_kib(node.proc.pid())?);
            out.cpu_pct
                .push((cpu_secs(node.proc.pid())? - b) / wall * 100.0);
        }
    }
    Ok(out)
}

/// Starts and stops one node of each kind to check both executables work.
pub(crate) fn preflight(tools: &Tools, imp: Impl) -> Result<()> {
    let node = start_node(tools, imp, "preflight", None, NodeRole::default())?;
    wait_ready(imp, &node, Instant::now() + Duration::from_secs(20))
}
