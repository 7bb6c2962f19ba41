//! `hearsay-bench`: measures hearsay beside the real HashiCorp `serf` in the same run and
//! writes BENCHMARKS.md.
//!
//! ```text
//! cargo build --release -p hearsay-test-nodes -p hearsay
//! cargo run --release -p hearsay-bench -- --out BENCHMARKS.md        # the full run
//! cargo run --release -p hearsay-bench -- --quick --out /tmp/b.md    # < 2 min smoke run
//! ```
//!
//! Flags: `--quick` (fewer repetitions, smaller N), `--out PATH` (default: stdout),
//! `--node-bin PATH` (default: `hearsay-serf-node` beside this executable), `--serf-bin PATH`
//! (default: `serf` on PATH), `--wasm-dir PATH` (the built handler components; default: build
//! them with cargo for wasm32-wasip2), `--no-serf` (hearsay only), `--no-live` / `--no-sim` /
//! `--no-handlers` (skip the cluster, simulator, or handler-and-QUIC part; for development),
//! `--only KEY[,KEY...]` (only these sections: failure, events, queries, idle, handlers (5–8),
//! sim (9), isolation (10), deploy (11), languages (12), capabilities (13)), `--sim N[,N...]` (only the simulator, at these sizes; with `--sim-seeds S`,
//! `--sim-events E`, `--sim-crashes C`, and `--sim-bootstrap` to start each cluster converged
//! instead of by the join storm).
//! Progress goes to stderr.
//!
//! Sections: 1–4 live clusters (failure detection, user events, queries with small responses
//! beside serf and large ones over QUIC for hearsay alone, idle footprint), 5–7 handlers (cost
//! per event, a slow handler beside a fast one, memory with 10 handlers: serf's shell handlers
//! against hearsay-host), 8 QUIC large responses at the transport, 9 the simulator, 10 handler
//! isolation (hearsay alone: `echo`'s latency beside sleeping, spinning and log-flooding
//! handlers, hearsay-host's `probe` test guest), 11 handler deployment (hearsay alone: `hearsay
//! deploy` to a live cluster until every node runs the new version, and the deploy simulator at
//! N = 1000 and 10 000; `--no-live` / `--no-sim` skip its live / simulated part; `--quick` runs
//! one deploy to 3 agents and the simulator at N = 100), 12 handlers in every language (the
//! `echo` handler in Rust, C, Python and JavaScript at the handler host: size, first and cached
//! start, per-event time, CPU and RSS, beside serf's forked shell handler measured by section 5's
//! code; the components built by `scripts/build-handlers.sh` into `handlers-langs/` of the target
//! directory, or taken from `--wasm-dir` as `echo-c.wasm`, `echo-python.wasm`, `echo-js.wasm`),
//! 13 handlers that act (a file written into a granted writable directory, an HTTP GET to a
//! loopback server the bench runs, a granted `/bin/true` run, each by the bench's `act` guest,
//! beside serf's handler script doing the same job; section 5's code, agents and host level).
//! The query figures run the `echo` and `blob` components, so the live part builds them too.
//!
//! Live figures run real processes on 127.0.0.1 (free ports), one implementation at a time;
//! every child is killed by pid when its measurement ends. Scale figures come from the
//! in-process simulator (`Sim<Serf>`).

#![warn(unreachable_pub)]

mod alloc;
mod capabilities;
mod deploy;
mod deploy_report;
mod deploy_sim;
mod guests;
mod handlers;
mod inproc;
mod isolation;
mod languages;
mod live;
mod machine;
mod procs;
mod query;
mod quic;
mod report;
mod rpc;
mod sim;
mod stats;

use anyhow::{bail, Context, Result};
use guests::Guests;
use handlers::HandlerPlan;
use hearsay_swim::Profile;
use isolation::{IsolationPlan, Setup};
use live::{EventSamples, FailureSamples, IdleSamples};
use machine::Machine;
use procs::{Impl, Tools};
use query::{LargeSamples, SmallSamples};
use quic::QuicPlan;
use report::{Report, Row, Section};
use sim::{SimPlan, SimResult};
use stats::Unit;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

#[derive(Debug)]
struct Args {
    quick: bool,
    out: Option<PathBuf>,
    node_bin: Option<PathBuf>,
    agent_bin: Option<PathBuf>,
    serf_bin: Option<PathBuf>,
    no_serf: bool,
    no_live: bool,
    no_sim: bool,
    no_handlers: bool,
    wasm_dir: Option<PathBuf>,
    /// `--sim N[,N...]`: run only the simulator, at these sizes.
    sim_sizes: Vec<usize>,
    sim_seeds: Option<usize>,
    sim_events: Option<usize>,
    sim_crashes: Option<usize>,
    /// `--sim-bootstrap`: start the `--sim` clusters converged (no join storm).
    sim_bootstrap: bool,
    /// `--only KEY[,KEY...]`: run only these sections (see [`SECTION_KEYS`]); empty: all.
    only: Vec<String>,
    raw: Vec<String>,
}

/// The keys `--only` takes, in report order.
const SECTION_KEYS: &[&str] = &[
    "failure",
    "events",
    "queries",
    "idle",
    "handlers",
    "sim",
    "isolation",
    "deploy",
    "languages",
    "capabilities",
];

impl Args {
    /// Whether the section `key` runs (`--only` names it, or `--only` was not given).
    fn wants(&self, key: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|k| k == key)
    }
}

const USAGE: &str =
    "usage: hearsay-bench [--quick] [--out PATH] [--node-bin PATH] [--agent-bin PATH] \
[--serf-bin PATH] [--wasm-dir PATH] [--no-serf] [--no-live] [--no-sim] [--no-handlers] \
[--only failure,events,queries,idle,handlers,sim,isolation,deploy,languages,capabilities] \
[--sim N[,N...] [--sim-seeds S] [--sim-events E] [--sim-crashes C] [--sim-bootstrap]]";

fn parse_args() -> Result<Args> {
    parse(std::env::args().skip(1).collect())
}

/// The flags in `raw` (the command line without the program name).
fn parse(raw: Vec<String>) -> Result<Args> {
    let mut a = Args {
        quick: false,
        out: None,
        node_bin: None,
        agent_bin: None,
        serf_bin: None,
        no_serf: false,
        no_live: false,
        no_sim: false,
        no_handlers: false,
        wasm_dir: None,
        sim_sizes: Vec::new(),
        sim_seeds: None,
        sim_events: None,
        sim_crashes: None,
        sim_bootstrap: false,
        only: Vec::new(),
        raw: raw.clone(),
    };
    let mut it = raw.into_iter();
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match name.trim_start_matches('-') {
            "quick" => a.quick = true,
            "out" => a.out = Some(value()?.into()),
            "node-bin" => a.node_bin = Some(value()?.into()),
            "agent-bin" => a.agent_bin = Some(value()?.into()),
            "serf-bin" => a.serf_bin = Some(value()?.into()),
            "no-serf" => a.no_serf = true,
            "no-live" => a.no_live = true,
            "no-sim" => a.no_sim = true,
            "no-handlers" => a.no_handlers = true,
            "wasm-dir" => a.wasm_dir = Some(value()?.into()),
            "only" => {
                for key in value()?.split(',').map(str::trim) {
                    if !SECTION_KEYS.contains(&key) {
                        bail!("--only: unknown section {key:?}; one of {SECTION_KEYS:?}\n{USAGE}");
                    }
                    a.only.push(key.to_owned());
                }
            }
            "sim" => {
                a.sim_sizes = value()?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().context("--sim N[,N...]"))
                    .collect::<Result<_>>()?;
                if a.sim_sizes.iter().any(|&n| n < 2) {
                    bail!("--sim sizes must be at least 2");
                }
            }
            "sim-seeds" => a.sim_seeds = Some(value()?.parse().context("--sim-seeds S")?),
            "sim-events" => a.sim_events = Some(value()?.parse().context("--sim-events E")?),
            "sim-crashes" => a.sim_crashes = Some(value()?.parse().context("--sim-crashes C")?),
            "sim-bootstrap" => a.sim_bootstrap = true,
            "h" | "help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    Ok(a)
}

/// How much of everything to run.
struct Plan {
    /// (N, repetitions) per figure.
    failure: Vec<(usize, usize)>,
    /// (N, repetitions) of failure detection on the local profile.
    failure_local: Vec<(usize, usize)>,
    /// False alarms on the local profile with every CPU busy.
    false_alarms: live::AlarmWatch,
    /// (N, (fresh clusters, events per cluster)) per figure.
    events: Vec<(usize, (usize, usize))>,
    /// (N, (fresh clusters, queries per cluster)) per figure.
    query: Vec<(usize, (usize, usize))>,
    large_query: LargeQueryPlan,
    idle_clusters: usize,
    idle_for: Duration,
    settle: Duration,
    sims: Vec<SimPlan>,
    /// Try N = 10 000 in the simulator if N = 1000 suggests it fits in memory and time.
    try_10k: bool,
    handlers: HandlerPlan,
    quic: QuicPlan,
    isolation: IsolationPlan,
    deploy: deploy_report::DeployPlan,
    languages: languages::LangPlan,
    capabilities: capabilities::CapPlan,
}

/// echo's events in the isolation figures come at most this often: 40 per second, under the
/// host's budget of 50 guest log lines per second per handler.
const ISOLATION_GAP: Duration = Duration::from_millis(25);

/// Large query responses between agents (hearsay alone).
#[derive(Debug, Clone)]
struct LargeQueryPlan {
    /// Responder counts, one cluster each (plus the originator).
    responders: Vec<usize>,
    /// Bytes each responder sends, each measured on every cluster.
    sizes: Vec<u64>,
    reps: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        let sim = |n, seeds, events, crashes| SimPlan {
            n,
            seeds,
            events_per_seed: events,
            crashes_per_seed: crashes,
            settle: Duration::from_secs(30),
            bootstrap: false,
        };
        if quick {
            Self {
                failure: vec![(3, 1)],
                failure_local: vec![(3, 1)],
                false_alarms: live::AlarmWatch {
                    n: 3,
                    clusters: 1,
                    window: Duration::from_secs(2),
                    tail: Duration::from_secs(1),
                },
                events: vec![(3, (2, 2))],
                query: vec![(3, (1, 3))],
                large_query: LargeQueryPlan {
                    responders: vec![3],
                    sizes: vec![1 << 20, 16 << 20],
                    reps: 2,
                },
                idle_clusters: 1,
                idle_for: Duration::from_secs(2),
                settle: Duration::from_millis(500),
                sims: vec![sim(100, 1, 3, 1)],
                try_10k: false,
                handlers: HandlerPlan {
                    rounds: 1,
                    events: 30,
                    slow_single: 5,
                    slow_stream: 10,
                    footprint_reps: 1,
                    cpu_events: 100,
                },
                quic: QuicPlan {
                    reps: 1,
                    single_bytes: 16 << 20,
                    responders: 4,
                    bytes_each: 4 << 20,
                },
                isolation: IsolationPlan {
                    rounds: 1,
                    events: 20,
                    gap: ISOLATION_GAP,
                },
                // One deploy to 3 agents; the simulator at N = 100.
                deploy: deploy_report::DeployPlan {
                    live: Some(deploy::LivePlan {
                        n: 3,
                        small_reps: 0,
                        large_reps: 0,
                        large_pad: 0,
                    }),
                    sims: vec![(100, 1)],
                    sim_budget: Duration::ZERO,
                },
                languages: languages::LangPlan::new(true),
                capabilities: capabilities::CapPlan::new(true),
            }
        } else {
            Self {
                failure: vec![(3, 5), (10, 5)],
                failure_local: vec![(10, 5)],
                false_alarms: live::AlarmWatch {
                    n: 10,
                    clusters: 2,
                    window: Duration::from_secs(60),
                    tail: Duration::from_secs(5),
                },
                events: vec![(3, (5, 5)), (10, (8, 5))],
                query: vec![(10, (8, 4))],
                large_query: LargeQueryPlan {
                    responders: vec![4, 10],
                    sizes: vec![1 << 20, 16 << 20],
                    reps: 5,
                },
                idle_clusters: 3,
                idle_for: Duration::from_secs(5),
                settle: Duration::from_secs(2),
                sims: vec![sim(100, 5, 10, 3), sim(1000, 2, 10, 3)],
                try_10k: true,
                handlers: HandlerPlan {
                    rounds: 5,
                    events: 100,
                    slow_single: 15,
                    slow_stream: 20,
                    footprint_reps: 3,
                    cpu_events: 500,
                },
                quic: QuicPlan {
                    reps: 5,
                    single_bytes: 128 << 20,
                    responders: 8,
                    bytes_each: 32 << 20,
                },
                isolation: IsolationPlan {
                    rounds: 5,
                    events: 100,
                    gap: ISOLATION_GAP,
                },
                deploy: deploy_report::DeployPlan {
                    live: Some(deploy::LivePlan {
                        n: 10,
                        small_reps: 10,
                        large_reps: 6,
                        large_pad: 8 << 20,
                    }),
                    sims: vec![(1000, 20), (10_000, 5)],
                    sim_budget: Duration::from_secs(120),
                },
                languages: languages::LangPlan::new(false),
                capabilities: capabilities::CapPlan::new(false),
            }
        }
    }
}

fn find_tools(args: &Args) -> Result<Tools> {
    let node = match &args.node_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("executable has no directory")?
            .join("hearsay-serf-node"),
    };
    if !node.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p hearsay-test-nodes --bin hearsay-serf-node` or pass --node-bin",
            node.display()
        );
    }
    // `hearsay` (the agent and CLI), when built: optional, the old path stays without it.
    let agent = find_agent(args, &node);
    if agent.is_none() {
        eprintln!("[bench] no `hearsay` binary beside hearsay-serf-node: hearsay's live nodes run as hearsay-serf-node");
    }
    Ok(Tools {
        serf: find_serf(args),
        node,
        agent,
    })
}

/// `--agent-bin`, else `hearsay` beside `sibling` when it is there.
fn find_agent(args: &Args, sibling: &Path) -> Option<PathBuf> {
    match &args.agent_bin {
        Some(p) => Some(p.clone()),
        None => Some(sibling.with_file_name("hearsay")).filter(|p| p.is_file()),
    }
}

/// The `serf` executable, unless `--no-serf` or it does not run.
fn find_serf(args: &Args) -> Option<PathBuf> {
    if args.no_serf {
        return None;
    }
    let s = args.serf_bin.clone().unwrap_or_else(|| "serf".into());
    let ok = std::process::Command::new(&s)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(s)
    } else {
        eprintln!(
            "warning: {} does not run; measuring hearsay alone",
            s.display()
        );
        None
    }
}

/// The implementations to measure, serf first.
fn impls(tools: &Tools) -> Vec<Impl> {
    let mut v = Vec::new();
    if tools.serf.is_some() {
        v.push(Impl::Serf);
    }
    v.push(Impl::Hearsay);
    v
}

pub(crate) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// Runs `f` for each implementation (retrying once), logging progress and keeping errors as
/// notes.
fn each<T>(
    tools: &Tools,
    what: &str,
    notes: &mut Vec<String>,
    mut f: impl FnMut(Impl) -> Result<T>,
) -> (Option<T>, Option<T>) {
    let (mut s, mut h) = (None, None);
    for imp in impls(tools) {
        let v = attempt(what, imp.label(), notes, || f(imp));
        match imp {
            Impl::Serf => s = v,
            Impl::Hearsay => h = v,
        }
    }
    (s, h)
}

/// Runs `f` for `what` measured on `label` (retrying once), logging progress and keeping errors
/// as notes.
pub(crate) fn attempt<T>(
    what: &str,
    label: &str,
    notes: &mut Vec<String>,
    mut f: impl FnMut() -> Result<T>,
) -> Option<T> {
    let t = Instant::now();
    eprintln!("[bench] {what}: {label} ...");
    // One retry: a failed cluster start is reported, and the figure still measured.
    let result = f().or_else(|e| {
        eprintln!("[bench] {what}: {label} failed, retrying once: {e:#}");
        notes.push(format!(
            "{what}, {label}: the first attempt failed and was retried: {}",
            first_line(&format!("{e:#}"))
        ));
        f()
    });
    let v = match result {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("[bench] {what}: {label} failed: {e:#}");
            notes.push(format!(
                "{what}, {label}: failed: {}",
                first_line(&format!("{e:#}"))
            ));
            None
        }
    };
    eprintln!(
        "[bench] {what}: {label} took {:.1} s",
        t.elapsed().as_secs_f64()
    );
    v
}

fn failure_section(tools: &Tools, plan: &Plan) -> Section {
    let mut sec = Section {
        title: "1. Failure detection".into(),
        intro: if tools.agent.is_some() {
            "A fresh cluster of N agents, all `serf agent` or all `hearsay agent` (LAN profile, \
serf's default), settles; then one member is killed with SIGKILL. Measured from the kill until \
each survivor's Serf layer reports the member failed: serf's `serf: EventMemberFailed` log line, \
hearsay's `serf: member left or failed ... event=member-failed` line (both before the agent's \
coalescing); and until each agent hands `member-failed` to its handlers (`agent: Received \
event: member-failed`, after the agents' 1 s coalescing quiescence). Each repetition is a new \
cluster; how long that cluster took to form is reported too."
        } else {
            "A fresh cluster of N agents, all serf or all `hearsay-serf-node` (LAN profile, \
serf's default), settles; then one member is killed with SIGKILL. Measured from the kill until \
each survivor reports the member failed: for serf the `serf: EventMemberFailed` log line (the \
Serf library's event, before the agent's coalescing), for hearsay the `EVENT member-failed` \
line. Each repetition is a new cluster; how long that cluster took to form is reported too."
        }
        .to_owned()
            + &format!(
                " The faster profile both offer, `local` (memberlist's `DefaultLocalConfig`: 1 s \
probe, 200 ms probe timeout, SuspicionMult 3, 100 ms gossip; `-profile=local` on both agents), is \
measured the same way; then its false alarms: {} fresh {}-node cluster(s) on the local profile \
settle, then the bench spins one busy thread per CPU for {:.0} s while nobody is killed, and \
every member a node marks failed (from the window's start to {:.0} s after it) is a false \
alarm; suspicions raised (memberlist's `suspect ... no acks received` line) are counted beside \
them.",
                plan.false_alarms.clusters,
                plan.false_alarms.n,
                plan.false_alarms.window.as_secs_f64(),
                plan.false_alarms.tail.as_secs_f64()
            ),
        ..Section::default()
    };
    for &(n, reps) in &plan.failure {
        let what = format!("failure detection N={n}");
        let (s, h) = each(tools, &what, &mut sec.notes, |imp| {
            live::failure_detection(tools, imp, n, reps, plan.settle, None)
        });
        let (s, h) = (s.unwrap_or_default(), h.unwrap_or_default());
        let model = sim::detection_model_all(n)
            .map(|m| format!("memberlist Monte Carlo, all know: mean {m:.2} s; "))
            .unwrap_or_default();
        let (min, max) = sim::suspicion_bounds(Profile::Lan, n);
        sec.rows.push(
            Row::new("kill -9 → every survivor marks it failed", n, Unit::Secs)
                .serf(&s.all)
                .hearsay(&h.all)
                .reference(format!(
                    "{model}suspicion {min:.0}–{max:.0} s; measured serf n=3 handler 6.5–7.5 s"
                ))
                .headline(),
        );
        sec.rows.push(
            Row::new("kill -9 → first survivor marks it failed", n, Unit::Secs)
                .serf(&s.first)
                .hearsay(&h.first),
        );
        sec.rows.push(
            Row::new(
                "kill -9 → agent hands member-failed to handlers (after 1 s coalescing quiescence)",
                n,
                Unit::Secs,
            )
            .serf(&s.handler)
            .hearsay(&h.handler)
            .reference(if tools.agent.is_some() {
                "both agents coalesce member events (serf: 1 s quiescence; hearsay agent: the same settings)"
            } else {
                "hearsay-serf-node reports events uncoalesced: no hearsay figure without `hearsay agent`"
            }),
        );
        sec.rows.push(
            Row::new(
                "cluster formation: N agents join one seed → every agent sees all",
                n,
                Unit::Secs,
            )
            .serf(&s.formation)
            .hearsay(&h.formation)
            .reference("first agent alone, the others started together joining it"),
        );
        note_timeouts(&mut sec.notes, &what, &s, &h);
    }
    local_profile_rows(tools, plan, &mut sec);
    sec
}

/// The faster profile both offer, `local` (memberlist's `DefaultLocalConfig`: 1 s probe,
/// 200 ms probe timeout, SuspicionMult 3, 100 ms gossip): how fast it detects a kill, and how
/// often it raises a false alarm with every CPU busy.
fn local_profile_rows(tools: &Tools, plan: &Plan, sec: &mut Section) {
    const LOCAL: Option<&str> = Some("local");
    for &(n, reps) in &plan.failure_local {
        let what = format!("failure detection N={n}, local profile");
        let (s, h) = each(tools, &what, &mut sec.notes, |imp| {
            live::failure_detection(tools, imp, n, reps, plan.settle, LOCAL)
        });
        let (s, h) = (s.unwrap_or_default(), h.unwrap_or_default());
        let (min, max) = sim::suspicion_bounds(Profile::Local, n);
        sec.rows.push(
            Row::new(
                "kill -9 → every survivor marks it failed, local profile",
                n,
                Unit::Secs,
            )
            .serf(&s.all)
            .hearsay(&h.all)
            .reference(format!(
                "suspicion {min:.0}–{max:.0} s (SuspicionMult 3, 1 s probe)"
            ))
            .headline(),
        );
        note_timeouts(&mut sec.notes, &what, &s, &h);
    }
    let fa = &plan.false_alarms;
    let what = format!("false alarms N={}, local profile, CPUs busy", fa.n);
    let (s, h) = each(tools, &what, &mut sec.notes, |imp| {
        live::false_alarms(tools, imp, fa, plan.settle, LOCAL)
    });
    let (s, h) = (s.unwrap_or_default(), h.unwrap_or_default());
    let minutes = |a: &live::FalseAlarmSamples| a.node_hours * 60.0;
    let rows = [
        (
            "members marked failed while alive, local profile, every CPU busy (per node-hour)",
            "nobody killed",
            (&s.failed_per_node_hour, s.failed),
            (&h.failed_per_node_hour, h.failed),
        ),
        (
            "suspicions raised (probe unanswered), local profile, every CPU busy (per node-hour)",
            "each refuted or confirmed",
            (&s.suspected_per_node_hour, s.suspected),
            (&h.suspected_per_node_hour, h.suspected),
        ),
    ];
    for (i, (figure, why, (sv, sk), (hv, hk))) in rows.into_iter().enumerate() {
        let row = Row::new(figure, fa.n, Unit::Count(""))
            .serf(sv)
            .hearsay(hv)
            .reference(format!(
                "{why}; serf {sk} in {:.0} node-minutes, hearsay {hk} in {:.0}",
                minutes(&s),
                minutes(&h)
            ));
        sec.rows.push(if i == 0 { row.headline() } else { row });
    }
}

fn note_timeouts(notes: &mut Vec<String>, what: &str, s: &FailureSamples, h: &FailureSamples) {
    for (label, t) in [("serf", s.timeouts), ("hearsay", h.timeouts)] {
        if t > 0 {
            notes.push(format!(
                "{what}, {label}: {t} repetition(s) where a survivor did not report the failure within 60 s (left out)"
            ));
        }
    }
}

/// How the gossip figures' clusters start (sections 2 and 3).
const SPREAD_NOTE: &str = "In each cluster the first agent starts alone and the others each \
start at a random moment within one gossip interval (200 ms) after it is ready: memberlist's \
gossip ticker takes its phase from the moment the agent starts, so agents started together \
gossip in near lockstep and their start order, not the implementation, would decide how long \
every relay waits (hearsay picks a random phase itself).";

/// `N=3: 5 clusters × 5 events; ...` for (N, (clusters, per cluster)) shapes.
fn shapes(plan: &[(usize, (usize, usize))], what: &str) -> String {
    plan.iter()
        .map(|(n, (c, k))| format!("N={n}: {c} clusters × {k} {what}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn events_section(tools: &Tools, plan: &Plan) -> Section {
    let mut sec = Section {
        title: "2. User event propagation".into(),
        intro: format!(
            "Fresh N-member clusters ({}) each fire user events one at a time (300–500 ms \
apart, at random, so they sample every phase of the 200 ms gossip ticker) from one origin \
without coalescing. {} serf: N agents, the event sent with `serf event -coalesce=false` to the \
first agent's RPC; each agent's `agent: Received event: user-event` log line is its delivery. {} \
Times run from the origin's own delivery, so neither CLI start-up nor RPC is counted.",
            shapes(&plan.events, "events"),
            SPREAD_NOTE,
            if tools.agent.is_some() {
                "hearsay, measured the same way: N `hearsay agent`s, the event sent with \
`hearsay event -coalesce=false` to the first agent's RPC; each agent's `agent: Received event: \
user-event` line is its delivery."
            } else {
                "hearsay: N−1 `hearsay-serf-node`s plus an in-process hearsay agent as origin \
(no `hearsay` binary built); each node's `EVENT user` line is its delivery."
            }
        ),
        ..Section::default()
    };
    for &(n, shape) in &plan.events {
        let what = format!("user events N={n}");
        let (s, h): (Option<EventSamples>, _) = each(tools, &what, &mut sec.notes, |imp| {
            live::event_propagation(tools, imp, n, shape, plan.settle)
        });
        let (s, h) = (s.unwrap_or_default(), h.unwrap_or_default());
        sec.rows.push(
            Row::new("user event: origin → every node", n, Unit::Secs)
                .serf(&s.all)
                .hearsay(&h.all)
                .reference("serf handler on another node, n=3: median 0.13 s (0.05–0.22)")
                .headline(),
        );
        sec.rows.push(
            Row::new("user event: origin → median node", n, Unit::Secs)
                .serf(&s.median_node)
                .hearsay(&h.median_node),
        );
        for (label, t) in [("serf", s.timeouts), ("hearsay", h.timeouts)] {
            if t > 0 {
                sec.notes.push(format!(
                    "{what}, {label}: {t} event(s) did not reach every node within 30 s (left out)"
                ));
            }
        }
    }
    sec
}

fn query_section(tools: &Tools, guests: Result<&Guests, &anyhow::Error>, plan: &Plan) -> Section {
    let lq = &plan.large_query;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let sizes: Vec<String> = lq
        .sizes
        .iter()
        .map(|&b| format!("{:.0} MiB", mib(b)))
        .collect();
    let counts: Vec<String> = lq.responders.iter().map(usize::to_string).collect();
    let mut sec = Section {
        title: "3. Query round trip".into(),
        intro: format!(
            "Both implementations are queried the same way: the bench sends every query over \
RPC to the first agent with hearsay's RPC client (`hearsay_rpc::RpcClient`, which speaks \
Serf's RPC protocol to either agent), on a fresh connection per query, and times each ack and \
response record from the `query` request as the client reads it; no CLI is forked per query, \
for either side. Small responses, serf beside hearsay: N agents, every one answering the query \
`ping` (payload `pong`, acks requested, timeout 12 s); the origin waits for N acks and N \
responses, then drops the connection (the agents would stream nothing more until the timeout). \
serf: N `serf agent`s with the event handler `query=echo pong` (serf forks `/bin/sh` per query). \
hearsay: N `hearsay agent`s, each with a `[[handler]]` block running the `echo` component on \
`query:ping` (a fresh instance per query on the agent's worker pool; it replies with the \
payload, `pong`). Fresh clusters ({}), started as in section 2 (the other agents at random \
moments within one gossip interval after the first), each with one untimed query first, then \
queries 300–500 ms apart, at random. Large \
responses, hearsay alone (serf's responses are capped at 1 KiB, one UDP packet): an originator \
`hearsay agent` without handlers and N responder agents (N = {}), each running the `blob` \
component on `query:blob` (payload: a decimal byte count; reply: that many bytes, streamed from \
the guest over QUIC to the originator; QUIC on by default, pinned self-signed certificates \
exchanged through the `_hearsay_quic` tag), queried `blob BYTES` without acks for {} per \
responder, {} time(s) each after one untimed query. Timed from the `query` request to the \
last byte of every response read by the client (each response's byte count is checked); \
aggregate MiB/s is N × bytes over that time; the originator's peak RSS growth is its VmHWM after \
the query over its VmRSS before it (the peak reset through `/proc/PID/clear_refs` first). The \
transport alone, without agents, is in section 8.",
            shapes(&plan.query, "queries"),
            counts.join(" and "),
            sizes.join(" and "),
            lq.reps
        ),
        ..Section::default()
    };
    let guests = match guests {
        Ok(g) => Some(g),
        Err(e) => {
            sec.notes.push(format!(
                "hearsay's query figures need the echo and blob components, which are unavailable: {}",
                first_line(&format!("{e:#}"))
            ));
            None
        }
    };
    for &(n, shape) in &plan.query {
        let what = format!("queries N={n}");
        let (s, h): (Option<SmallSamples>, _) = each(tools, &what, &mut sec.notes, |imp| {
            query::small(tools, guests, imp, n, shape, plan.settle)
        });
        let (s, h) = (s.unwrap_or_default(), h.unwrap_or_default());
        sec.rows.push(
            Row::new("query: all N acks", n, Unit::Secs)
                .serf(&s.acks)
                .hearsay(&h.acks)
                .reference("acks are sent on receipt: gossip only"),
        );
        sec.rows.push(
            Row::new("query: all N responses", n, Unit::Secs)
                .serf(&s.responses)
                .hearsay(&h.responses)
                .reference("serf: + one `sh -c` per node; hearsay: + one `echo` instance per node")
                .headline(),
        );
        for (label, t) in [("serf", s.incomplete), ("hearsay", h.incomplete)] {
            if t > 0 {
                sec.notes.push(format!(
                    "{what}, {label}: {t} query(ies) without all N acks and responses in 12 s (left out)"
                ));
            }
        }
    }
    let last = lq.responders.last().copied();
    for &r in &lq.responders {
        let what = format!("large query responses N={r}");
        let t = Instant::now();
        eprintln!("[bench] {what}: hearsay ...");
        let result = query::large(tools, guests, r, &lq.sizes, lq.reps, plan.settle).or_else(|e| {
            eprintln!("[bench] {what}: failed, retrying once: {e:#}");
            sec.notes.push(format!(
                "{what}: the first attempt failed and was retried: {}",
                first_line(&format!("{e:#}"))
            ));
            query::large(tools, guests, r, &lq.sizes, lq.reps, plan.settle)
        });
        eprintln!("[bench] {what}: took {:.1} s", t.elapsed().as_secs_f64());
        let samples = match result {
            Ok(v) => v,
            Err(e) => {
                sec.notes
                    .push(format!("{what}: failed: {}", first_line(&format!("{e:#}"))));
                lq.sizes
                    .iter()
                    .map(|&bytes| LargeSamples {
                        bytes,
                        ..LargeSamples::default()
                    })
                    .collect()
            }
        };
        let biggest = lq.sizes.iter().copied().max();
        for s in samples {
            let size = format!("{:.0} MiB", mib(s.bytes));
            let total = format!("{:.0} MiB in all", mib(s.bytes * r as u64));
            sec.rows.push(
                Row::new(
                    &format!("query, {size} per responder over QUIC: every response read whole"),
                    r,
                    Unit::Secs,
                )
                .hearsay(&s.secs)
                .reference(format!("serf cannot (1 KiB cap); {total}")),
            );
            let mut aggregate = Row::new(
                &format!("query, {size} per responder over QUIC: aggregate"),
                r,
                Unit::Count(" MiB/s"),
            )
            .hearsay(&s.mib_per_sec)
            .reference("N × bytes / time to the last byte");
            if Some(r) == last && Some(s.bytes) == biggest {
                aggregate = aggregate.headline();
            }
            sec.rows.push(aggregate);
            sec.rows.push(
                Row::new(
                    &format!("query, {size} per responder over QUIC: originator's peak RSS growth"),
                    r,
                    Unit::KiB,
                )
                .hearsay(&s.rss_growth_kib)
                .reference(format!("VmHWM after − VmRSS before; {total} crossed it")),
            );
            if s.incomplete > 0 {
                sec.notes.push(format!(
                    "{what}, {size} each: {} query(ies) without every response whole (left out); first: {}",
                    s.incomplete,
                    s.first_failure.unwrap_or_default()
                ));
            }
        }
    }
    sec
}

fn idle_section(tools: &Tools, plan: &Plan) -> Section {
    let mut sec = Section {
        title: "4. Idle footprint".into(),
        intro: format!(
            "{} fresh 3-node cluster(s) per implementation, measured after {} s without traffic: \
VmRSS from `/proc/PID/status` and CPU time (utime+stime from `/proc/PID/stat`) over that \
window, per agent process ({}).",
            plan.idle_clusters,
            plan.idle_for.as_secs(),
            if tools.agent.is_some() {
                "`serf agent` and `hearsay agent`, each with its RPC server"
            } else {
                "`serf agent` and `hearsay-serf-node`"
            }
        ),
        ..Section::default()
    };
    let (s, h): (Option<IdleSamples>, _) = each(tools, "idle footprint", &mut sec.notes, |imp| {
        live::idle_footprint(tools, imp, plan.idle_clusters, plan.idle_for)
    });
    let (s, h) = (s.unwrap_or_default(), h.unwrap_or_default());
    sec.rows.push(
        Row::new("idle RSS per agent", 3, Unit::KiB)
            .serf(&s.rss_kib)
            .hearsay(&h.rss_kib)
            .headline(),
    );
    sec.rows.push(
        Row::new("idle CPU per agent", 3, Unit::Count(" % of a core"))
            .serf(&s.cpu_pct)
            .hearsay(&h.cpu_pct)
            .reference(format!(
                "100 Hz tick accounting: {:.1} % resolution over {} s",
                100.0 / (100.0 * plan.idle_for.as_secs_f64()),
                plan.idle_for.as_secs()
            )),
    );
    sec
}

fn pct_of(samples: &[f64]) -> f64 {
    stats::Summary::of(samples).map_or(f64::NAN, |s| s.median)
}

fn handler_cost_section(tools: &Tools, guests: &Guests, plan: &Plan) -> Section {
    let hp = plan.handlers;
    let mut sec = Section {
        title: "5. Handler cost per event".into(),
        intro: format!(
            "One agent fed user events over its RPC port by the bench's own RPC client (no CLI \
fork per event), each event handled by one handler that logs it. serf: a lone `serf agent` with \
`-event-handler user=h.sh`, a one-line script (`echo \"h $SERF_USER_EVENT\"`; serf runs \
`/bin/sh -c` per event). hearsay: a lone `hearsay agent` with a `[[handler]]` block running the \
`echo` component for `user` events (each event an async task, in a fresh instance, on the \
handler host's own tokio runtime, 2 threads; the host makes each handler's next instance after \
an event, so instantiation is not on the next event's path, but every event still runs in an \
instance no event ran in). For \
both, a handler's time runs from the agent's `Received event: user-event` log line to the \
handler's output line, both read from the agent's stdout by the bench (both agents log that \
line, then hand the event to the handlers); hearsay's host lets a handler log 50 lines per \
second, so an event past that budget is timed to the line the host writes in its place at the \
event's end (`suppressed 1 guest log lines ...`, naming the handler and event; counts in the \
notes). {} round(s) of {} \
events one at a time (median over all events; p99 per round), then a burst of {} events fired \
at once (events/s from the first event's `Received` line to the last one's output; both agents \
run one handler's events one after another). CPU: the same agent, then one with no handler, each \
fed {} burst(s) of {} events; CPU per event from `/proc` (the agent's threads' `schedstat`, plus \
serf's reaped handler processes' `cutime`+`cstime`) from the first request to the last output \
line; the handler's share is the difference, burst by burst. Last row: hearsay's handler alone, \
in the bench process (`hearsay-host`, 2 threads, `Host::dispatch` to the outcome on its \
ticket), no agent, no log pipe.",
            hp.rounds, hp.events, hp.events, hp.rounds, hp.cpu_events
        ),
        ..Section::default()
    };
    let (s, h) = each(tools, "handler cost", &mut sec.notes, |imp| {
        handlers::agent_cost(tools, Some(guests), imp, hp)
    });
    let (s, h) = (s.unwrap_or_default(), h.unwrap_or_default());
    if h.timed > 0 {
        sec.notes.push(format!(
            "hearsay, time and throughput: {} of {} events (warm-up included) went past echo's \
log budget and were timed to the host's summary line instead of echo's own.",
            h.summarised, h.timed
        ));
    }
    let speedup = pct_of(&s.per_event) / pct_of(&h.per_event);
    sec.rows.push(
        Row::new("handler time per event (median)", 1, Unit::Secs)
            .serf(&s.per_event)
            .hearsay(&h.per_event)
            .reference(format!(
                "target: hearsay ≥ 100× cheaper; measured: hearsay {speedup:.0}× cheaper (agents)"
            ))
            .headline(),
    );
    sec.rows.push(
        Row::new("handler time per event (p99 of a round)", 1, Unit::Secs)
            .serf(&s.p99)
            .hearsay(&h.p99)
            .reference("agents"),
    );
    sec.rows.push(
        Row::new(
            "handler throughput, burst (events/s)",
            1,
            Unit::Count(" ev/s"),
        )
        .serf(&s.per_sec)
        .hearsay(&h.per_sec)
        .reference("above 1.00× hearsay handles more per second; agents")
        .headline(),
    );
    let serf_median = pct_of(&s.per_event);
    let (s, h) = each(tools, "handler CPU", &mut sec.notes, |imp| {
        handlers::agent_cpu(tools, Some(guests), imp, hp)
    });
    let (s, h) = (s.unwrap_or_default(), h.unwrap_or_default());
    if h.timed > 0 {
        sec.notes.push(format!(
            "hearsay, CPU: {} of {} events with the handler went past echo's log budget (the \
host wrote its one summary line for each instead of echo's line).",
            h.summarised, h.timed
        ));
    }
    let cheaper = pct_of(&s.handler) / pct_of(&h.handler);
    sec.rows.push(
        Row::new("CPU per event spent on the handler (median)", 1, Unit::Secs)
            .serf(&s.handler)
            .hearsay(&h.handler)
            .reference(format!(
                "target: hearsay ≥ 100× cheaper; measured: hearsay {cheaper:.0}× cheaper \
(agent CPU with the handler − without, per burst)"
            ))
            .headline(),
    );
    sec.rows.push(
        Row::new("agent CPU per event, with the handler", 1, Unit::Secs)
            .serf(&s.with_handler)
            .hearsay(&h.with_handler)
            .reference("serf: its handler processes included"),
    );
    sec.rows.push(
        Row::new("agent CPU per event, no handler", 1, Unit::Secs)
            .serf(&s.without)
            .hearsay(&h.without)
            .reference("RPC, Lamport clock, event buffer, gossip queue, log line"),
    );
    match handlers::hearsay_cost(guests, hp) {
        Ok(host) => {
            let alone = serf_median / pct_of(&host.per_event);
            sec.rows.push(
                Row::new("hearsay handler alone per event (median)", 1, Unit::Secs)
                    .hearsay(&host.per_event)
                    .reference(format!(
                        "host level, no agent: serf's agent median is {alone:.0}× this"
                    )),
            );
        }
        Err(e) => sec
            .notes
            .push(format!("hearsay host-level cost failed: {e:#}")),
    }
    sec
}

fn slow_fast_section(tools: &Tools, guests: &Guests, plan: &Plan) -> Section {
    let hp = plan.handlers;
    let mut sec = Section {
        title: "6. A slow handler beside a fast one".into(),
        intro: format!(
            "Two handlers for every user event on a lone agent, the slow one (100 ms per event) \
registered first. serf: `-event-handler user=slow.sh -event-handler user=fast.sh` (`sleep 0.1; \
echo ...` and `echo ...`), which serf runs one after the other on its event loop. hearsay: two \
`[[handler]]` blocks, the bench's `slow` component (sleeps 100 ms through the WASI monotonic \
clock, clocks granted, then logs) and `echo` as the fast one, each with its own queue, their \
events async tasks on the handler host's runtime. Times from the RPC request being written to the handler's output line. \
{} events one at a time, then a stream of {} events 50 ms apart (faster than the slow handler \
can keep up).",
            hp.slow_single, hp.slow_stream
        ),
        ..Section::default()
    };
    let (s, h) = each(tools, "slow beside fast", &mut sec.notes, |imp| {
        handlers::agent_slow_fast(tools, Some(guests), imp, hp)
    });
    let (s, h) = (s.unwrap_or_default(), h.unwrap_or_default());
    sec.rows.push(
        Row::new(
            "fast handler latency beside a 100 ms one, one event at a time",
            1,
            Unit::Secs,
        )
        .serf(&s.fast_single)
        .hearsay(&h.fast_single)
        .reference("serf: the fast handler waits for the slow one")
        .headline(),
    );
    sec.rows.push(
        Row::new(
            "fast handler latency beside a 100 ms one, events every 50 ms",
            1,
            Unit::Secs,
        )
        .serf(&s.fast_stream)
        .hearsay(&h.fast_stream)
        .reference("serf: the wait grows with the backlog"),
    );
    sec.rows.push(
        Row::new(
            "slow handler latency (100 ms sleep), one event at a time",
            1,
            Unit::Secs,
        )
        .serf(&s.slow_single)
        .hearsay(&h.slow_single)
        .reference("the cost of a 100 ms handler itself"),
    );
    sec
}

fn handler_memory_section(tools: &Tools, guests: &Guests, plan: &Plan) -> Section {
    let reps = plan.handlers.footprint_reps;
    let mut sec = Section {
        title: "7. Memory with 10 handlers".into(),
        intro: format!(
            "A lone agent with ten user-event handlers, after one user event ran all ten, idle \
1 s; and the same agent with one handler. serf: ten `-event-handler` scripts (`echo ...`). \
hearsay: ten `[[handler]]` blocks loading the `echo` component ten times under ten names (each \
compiled or taken from the disk cache, pre-instantiated, with its own queue and stats), the \
host's runtime of 2 threads. VmRSS from `/proc/PID/status`, {reps} agent(s) each."
        ),
        ..Section::default()
    };
    let (s, h) = each(tools, "handler memory", &mut sec.notes, |imp| {
        let one = handlers::agent_footprint(tools, Some(guests), imp, 1, reps)?;
        let ten = handlers::agent_footprint(tools, Some(guests), imp, 10, reps)?;
        Ok((one, ten))
    });
    let ((s1, s10), (h1, h10)) = (s.unwrap_or_default(), h.unwrap_or_default());
    let per = |one: &[f64], ten: &[f64]| -> Vec<f64> {
        one.iter().zip(ten).map(|(o, t)| (t - o) / 9.0).collect()
    };
    sec.rows.push(
        Row::new("RSS with 10 handlers loaded", 1, Unit::KiB)
            .serf(&s10)
            .hearsay(&h10)
            .reference("agents, after each handler ran once")
            .headline(),
    );
    sec.rows.push(
        Row::new("RSS with 1 handler loaded", 1, Unit::KiB)
            .serf(&s1)
            .hearsay(&h1)
            .reference("agents"),
    );
    sec.rows.push(
        Row::new("RSS added per further handler", 1, Unit::KiB)
            .serf(&per(&s1, &s10))
            .hearsay(&per(&h1, &h10))
            .reference("(10 handlers − 1) / 9; serf reads a script per event and holds none"),
    );
    sec
}

fn quic_section(plan: &Plan) -> Section {
    let q = plan.quic;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut sec = Section {
        title: "8. Large responses over QUIC".into(),
        intro: format!(
            "hearsay alone: serf's query responses are capped at 1 KiB (one UDP packet). On \
loopback, {} responder endpoints each stream a {:.0} MiB response at once to one originator \
through `hearsay_net::quic` (`QuicEndpoint::open_response` → `BodyReader`: pinned self-signed \
certificates, response header, limits); aggregate MiB/s from the first write to the last byte \
read. Beside it, one bare bidirectional quinn stream of {:.0} MiB between two endpoints with \
the module's TLS (pinned certificates) and transport settings, without its header or limits: \
the transport's ceiling on this machine. Both are measured in `runtime/bench/src/quic.rs`. {} \
repetition(s). Large responses inside a live query, between `hearsay agent`s running the `blob` \
handler, are in section 3.",
            q.responders,
            mib(q.bytes_each),
            mib(q.single_bytes),
            q.reps
        ),
        hearsay_only: true,
        measured_col: "hearsay",
        ..Section::default()
    };
    eprintln!("[bench] QUIC throughput ...");
    match quic::run(q) {
        Ok(r) => {
            let rel: Vec<f64> = r
                .concurrent
                .iter()
                .zip(&r.quinn)
                .map(|(c, b)| c / b)
                .collect();
            sec.rows.push(
                Row::new(
                    &format!(
                        "QUIC: {} concurrent {:.0} MiB responses, aggregate",
                        q.responders,
                        mib(q.bytes_each)
                    ),
                    q.responders,
                    Unit::Count(" MiB/s"),
                )
                .hearsay(&r.concurrent)
                .reference(format!(
                    "{:.2}× quinn's single stream (median of per-run ratios)",
                    pct_of(&rel)
                ))
                .headline(),
            );
            sec.rows.push(
                Row::new(
                    &format!("QUIC: all {} responses read whole", q.responders),
                    q.responders,
                    Unit::Secs,
                )
                .hearsay(&r.concurrent_secs)
                .reference(format!(
                    "{:.0} MiB in all",
                    mib(q.bytes_each * q.responders as u64)
                )),
            );
            sec.rows.push(
                Row::new(
                    &format!("quinn: one bare stream of {:.0} MiB", mib(q.single_bytes)),
                    1,
                    Unit::Count(" MiB/s"),
                )
                .hearsay(&r.quinn)
                .reference("the transport's ceiling on this machine"),
            );
        }
        Err(e) => sec.notes.push(format!("QUIC figures failed: {e:#}")),
    }
    sec
}

fn sim_rows(r: &SimResult) -> Vec<Row> {
    let n = r.n;
    let model = |f: f64| sim::serf_convergence_model(n, f);
    let vs = |samples: &[f64], m: f64| match stats::Summary::of(samples) {
        Some(s) => format!("{:.2} s (hearsay/model {:.2}×)", m, s.median / m),
        None => format!("{m:.2} s"),
    };
    let (smin, smax) = sim::suspicion_bounds(Profile::Lan, n);
    let mc = sim::detection_model_all(n)
        .map(|m| format!("; memberlist Monte Carlo, all know: mean {m:.2} s"))
        .unwrap_or_default();
    let mut rows = Vec::new();
    if r.bootstrapped {
        rows.push(
            Row::new("sim: bootstrap wall time (no join storm)", n, Unit::Secs)
                .hearsay(&[r.build_wall.as_secs_f64()])
                .reference(
                    "BOOTSTRAPPED: each node fed one push/pull naming all N alive; \
no joins → converged figure at this N",
                ),
        );
    } else {
        rows.push(
            Row::new(
                "sim: joins → every node sees all alive (virtual)",
                n,
                Unit::Secs,
            )
            .hearsay(&r.converge)
            .reference("node i joins a random earlier node, 5 ms apart"),
        );
    }
    rows.extend([
        Row::new("sim: user event → 50 % of nodes", n, Unit::Secs)
            .hearsay(&r.p50)
            .reference(format!("Serf model {}", vs(&r.p50, model(0.5)))),
        Row::new("sim: user event → 99 % of nodes", n, Unit::Secs)
            .hearsay(&r.p99)
            .reference(format!("Serf model {}", vs(&r.p99, model(0.99)))),
        Row::new("sim: user event → 99.99 % of nodes", n, Unit::Secs)
            .hearsay(&r.p9999)
            .reference(format!("Serf model {}", vs(&r.p9999, model(0.9999)))),
        Row::new("sim: user event → 100 % of nodes", n, Unit::Secs)
            .hearsay(&r.p100)
            .reference("—"),
        Row::new("sim: crash → first node marks it failed", n, Unit::Secs)
            .hearsay(&r.detect_first)
            .reference(format!("suspicion min {smin:.0} s, max {smax:.0} s")),
        Row::new("sim: crash → every node marks it failed", n, Unit::Secs)
            .hearsay(&r.detect_all)
            .reference(format!("suspicion min {smin:.0} s + probe ≈1.6 s{mc}")),
        Row::new(
            "sim: steady UDP packets per node per s",
            n,
            Unit::Count(" pkt/s"),
        )
        .hearsay(&r.steady_msgs)
        .reference("probe 1/s: ping + ack"),
        Row::new(
            "sim: steady UDP bytes per node per s",
            n,
            Unit::Count(" B/s"),
        )
        .hearsay(&r.steady_bytes)
        .reference("Serf simulator max 42 000 B/s (1400 B × 3 × 5/s × 2)"),
        Row::new(
            "sim: push/pull streams per node per s",
            n,
            Unit::Count(" /s"),
        )
        .hearsay(&r.steady_streams)
        .reference(format!(
            "memberlist push/pull every {:.0} s at this n = {:.4} /s (TCP bytes not counted)",
            sim::push_pull_interval(n),
            1.0 / sim::push_pull_interval(n)
        )),
        Row::new(
            "sim: UDP packets per node per s while an event spreads",
            n,
            Unit::Count(" pkt/s"),
        )
        .hearsay(&r.event_msgs)
        .reference("gossip 3 nodes / 200 ms = 15 pkt/s + probes"),
        Row::new(
            "sim: UDP bytes per node per s while an event spreads",
            n,
            Unit::Count(" B/s"),
        )
        .hearsay(&r.event_bytes)
        .reference("Serf simulator max 42 000 B/s"),
    ]);
    rows.push(
        Row::new("sim: memory per simulated node, converged", n, Unit::KiB)
            .hearsay(&r.node_kib)
            .reference("bench process RSS growth / N; each node holds all N members (grows as N)"),
    );
    rows.push(
        Row::new(
            "sim: live heap per member entry, converged",
            n,
            Unit::Count(" B"),
        )
        .hearsay(&r.entry_bytes)
        .reference("counting allocator (with malloc's block overhead) / N² entries"),
    );
    let need: Vec<f64> = r
        .node_kib
        .iter()
        .map(|&k| sim::extrapolate_kib(k, n, 10_000))
        .collect();
    rows.push(
        Row::new(
            "sim: memory N = 10 000 needs, extrapolated from this N",
            n,
            Unit::KiB,
        )
        .hearsay(&need)
        .reference("per-node memory × (10 000 / N) × 10 000 (N² in all)"),
    );
    let mut wall = Row::new("sim: wall time for this N (all seeds)", n, Unit::Secs)
        .hearsay(&[r.wall.as_secs_f64()]);
    wall.reference = format!(
        "{} seed(s); peak RSS growth {:.0} MiB",
        r.seeds,
        r.rss_growth_kib / 1024.0
    );
    rows.push(wall);
    rows
}

fn sim_section(plan: &Plan) -> Section {
    let mut sec = Section {
        title: "9. Scale (simulator)".into(),
        intro: "hearsay's Serf layer in the deterministic simulator (`Sim<Serf>`, LAN profile: \
1 s probe, 200 ms gossip to 3 nodes): N nodes on a virtual clock, 1 ms one-way latency plus up \
to 0.5 ms jitter, no loss. Each seed builds a cluster, lets it run 30 s after convergence (the \
join storm's gossip drains), measures steady traffic over one scaled push/pull interval (at least 30 s), fires user events from random \
nodes (each measured until it reached every node, then 5 s apart), then crashes random nodes \
(each measured until every live node marked it failed). Times are virtual seconds. serf cannot \
run in the simulator, so the right column gives Serf's own models: the convergence formula of \
Serf's simulator (`_simulator.js`: 200 ms, fanout 3) and memberlist's suspicion timeout \
(`4 × max(1, log10 n)` s, up to 6×). Sizes marked BOOTSTRAPPED skip the join storm: every \
node's core is fed, through its public `handle_stream`, one push/pull naming all N nodes alive \
(what a push/pull from a node that knows everyone carries), and the alive broadcasts that merge \
queues are dropped, so the cluster starts quiet as if long converged; they have no joins → \
converged figure. Memory: `live heap per member entry` is the counting allocator's growth (with \
malloc's block overhead) from before the build to convergence, over N² entries."
            .into(),
        hearsay_only: true,
        ..Section::default()
    };
    let mut thousand: Option<f64> = None;
    for (k, p) in plan.sims.iter().enumerate() {
        eprintln!("[bench] simulator N={} ({} seed(s)) ...", p.n, p.seeds);
        let r = sim::run(*p, 1000 + k as u64 * 100);
        eprintln!(
            "[bench] simulator N={} took {:.1} s",
            p.n,
            r.wall.as_secs_f64()
        );
        if r.timeouts > 0 {
            sec.notes.push(format!(
                "N={}: {} build/event/crash measurement(s) did not complete within their bound (left out)",
                p.n, r.timeouts
            ));
        }
        if p.n == 1000 {
            thousand = Some(pct_of(&r.entry_bytes));
        }
        sec.rows.extend(sim_rows(&r));
    }
    if plan.try_10k {
        try_ten_thousand(&mut sec, thousand);
    }
    sec
}

/// N = 10 000 needs every node to hold 10 000 members: 10⁸ member entries. The cluster is
/// bootstrapped (no join storm, see `sim::bootstrap`); the run goes ahead when the bytes per
/// member entry measured at N = 1000 (counting allocator) say it fits in ~14 GiB and in 80 %
/// of the memory available now. Otherwise the largest N that fits runs instead (at least
/// 2000), and a note says why 10 000 did not.
fn try_ten_thousand(sec: &mut Section, thousand: Option<f64>) {
    let Some(entry_bytes) = thousand else {
        return;
    };
    let avail = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib * 1024.0);
    let gib = |b: f64| b / f64::from(1u32 << 30);
    let budget = (14.0 * f64::from(1u32 << 30)).min(avail * 0.8);
    // Allocator slack and the per-node fixed state on top of the entries: 25 %.
    let need = |n: usize| (n * n) as f64 * entry_bytes * 1.25;
    let mut n = 10_000;
    while n > 2000 && need(n) > budget {
        n -= 500;
    }
    if need(n) > budget {
        sec.notes.push(format!(
            "N=10 000 not run: {entry_bytes:.0} bytes per member entry measured at N=1000 → \
≈{:.0} GiB for 10⁸ entries; budget {:.1} GiB.",
            gib(need(10_000)),
            gib(budget)
        ));
        return;
    }
    if n < 10_000 {
        sec.notes.push(format!(
            "N=10 000 not run: {entry_bytes:.0} bytes per member entry measured at N=1000 → \
≈{:.0} GiB for 10⁸ entries (with 25 % slack); budget {:.1} GiB ({:.1} GiB available). \
N={n} (bootstrapped) is the largest size that fits.",
            gib(need(10_000)),
            gib(budget),
            gib(avail)
        ));
    }
    let p = SimPlan {
        n,
        seeds: 1,
        events_per_seed: 3,
        crashes_per_seed: 1,
        settle: Duration::from_secs(30),
        bootstrap: true,
    };
    eprintln!("[bench] simulator N={n} (bootstrapped) ...");
    let r = sim::run(p, 9000);
    sec.rows.extend(sim_rows(&r));
}

fn not_measured() -> Vec<(String, String)> {
    [
        (
            "Mixed clusters (hearsay and serf nodes together) as a benchmark",
            "covered for correctness by the interop tests; not timed here",
        ),
        (
            "A handler's key-value store and tag calls per event",
            "serf's handlers have no counterpart to compare with (section 13 times a file \
write, an HTTP GET and a command)",
        ),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect()
}

/// Sections 5–8: handlers (beside serf's shell handlers) and QUIC.
fn handler_sections(args: &Args, tools: &Tools, plan: &Plan, sections: &mut Vec<Section>) {
    match guests::locate(args.wasm_dir.as_deref()) {
        Ok(g) => {
            sections.push(handler_cost_section(tools, &g, plan));
            sections.push(slow_fast_section(tools, &g, plan));
            sections.push(handler_memory_section(tools, &g, plan));
        }
        Err(e) => {
            eprintln!("[bench] handler figures skipped: {e:#}");
            for title in [
                "5. Handler cost per event",
                "6. A slow handler beside a fast one",
                "7. Memory with 10 handlers",
            ] {
                sections.push(Section {
                    title: title.into(),
                    notes: vec![format!(
                        "not measured: the wasm components are unavailable: {e:#}"
                    )],
                    ..Section::default()
                });
            }
        }
    }
    sections.push(quic_section(plan));
}

fn isolation_section(args: &Args, tools: &Tools, plan: &Plan) -> Section {
    let ip = plan.isolation;
    let mut sec = Section {
        title: "10. Handler isolation".into(),
        intro: format!(
            "hearsay alone: what hostile handlers do to a well-behaved neighbour on the same \
agent. A lone `hearsay agent` per setup runs the `echo` component for `user` events, as in \
section 5, beside hearsay-host's hostile test guest `probe` (`runtime/host/tests/guests/probe`) \
as further `[[handler]]` blocks, each on the query whose name is the probe's mode, set off by \
queries over RPC (so echo never sees a query, nor a probe a user event): 4 handlers on \
`query:sleep` (payload `3600`: each asleep in WASI's monotonic clock, a host call; timeout 1 h); \
1, then 2 handlers on `query:loop` (spinning in wasm; timeout 1 h; 2 is as many as the host has \
threads); 1 handler on `query:log` (payload `{} TEXT`: logs TEXT {} times; timeout 30 s, queue \
2), the query fired every {} ms throughout. Per setup, {} round(s) of {} echo events one at a \
time, at most one per {} ms (under the host's budget of 50 guest log lines per second per \
handler, so every event is timed to echo's own line), each timed as in section 5 from the \
agent's `Received event: user-event` line to echo's guest log line; p99 per round. Unlike \
section 5's events, which come back to back, these come tens of milliseconds apart, so an \
event usually finds the threads it needs parked (the agent's, the host's, the bench's reader) \
and echo alone takes longer here than there: each setup is compared with echo alone measured \
the same way. Checks, so \
that a setup cannot measure nothing: before and after each round the `handlers` RPC (what \
`hearsay handlers` lists: RUNNING, finished events, suppressed log lines) counts the probes' \
events running, and the agent's CPU time over the round (`/proc` schedstat) shows what the \
probes burnt. serf has no equivalent: it runs an event's handlers one after another, so a \
handler asleep blocks every later one (section 6); its column is empty, and the ratio column \
compares each setup with echo alone.",
            isolation::FLOOD_LINES,
            isolation::FLOOD_LINES,
            isolation::FLOOD_EVERY.as_millis(),
            ip.rounds,
            ip.events,
            ip.gap.as_millis(),
        ),
        ..Section::default()
    };
    let guests = match guests::locate(args.wasm_dir.as_deref()) {
        Ok(g) => g,
        Err(e) => {
            sec.notes.push(format!(
                "not measured: the wasm components are unavailable: {e:#}"
            ));
            return sec;
        }
    };
    if tools.agent.is_none() {
        sec.notes
            .push("not measured: the `hearsay` binary is not built".to_owned());
        return sec;
    }
    let mut alone: Option<isolation::IsolationSamples> = None;
    for setup in Setup::ALL {
        let t = Instant::now();
        eprintln!("[bench] isolation: echo {} ...", setup.label());
        let result = isolation::measure(tools, &guests, setup, ip).or_else(|e| {
            eprintln!(
                "[bench] isolation: {} failed, retrying once: {e:#}",
                setup.label()
            );
            sec.notes.push(format!(
                "echo {}: the first attempt failed and was retried: {}",
                setup.label(),
                first_line(&format!("{e:#}"))
            ));
            isolation::measure(tools, &guests, setup, ip)
        });
        eprintln!(
            "[bench] isolation: {} took {:.1} s",
            setup.label(),
            t.elapsed().as_secs_f64()
        );
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                sec.notes.push(format!(
                    "echo {}: failed: {}",
                    setup.label(),
                    first_line(&format!("{e:#}"))
                ));
                continue;
            }
        };
        if let Some(t) = &r.echo_trouble {
            sec.notes.push(t.clone());
        }
        let base = alone.as_ref();
        let vs = |pick: fn(&isolation::IsolationSamples) -> &Vec<f64>| {
            base.map(|b| pick(b).clone()).unwrap_or_default()
        };
        let anchor = if setup == Setup::Alone {
            "serf: no equivalent (one handler at a time); ratio: against echo alone (itself)"
        } else {
            "serf: no equivalent (one handler at a time); ratio: against echo alone"
        };
        let mut median = Row::new(
            &format!("echo per event {} (median)", setup.label()),
            1,
            Unit::Secs,
        )
        .hearsay(&r.per_event)
        .versus(&if setup == Setup::Alone {
            r.per_event.clone()
        } else {
            vs(|b| &b.per_event)
        })
        .reference(anchor);
        if setup == Setup::Sleepers {
            median = median.headline();
        }
        sec.rows.push(median);
        sec.rows.push(
            Row::new(
                &format!("echo per event {} (p99 of a round)", setup.label()),
                1,
                Unit::Secs,
            )
            .hearsay(&r.p99)
            .versus(&if setup == Setup::Alone {
                r.p99.clone()
            } else {
                vs(|b| &b.p99)
            })
            .reference(anchor),
        );
        sec.rows.push(
            Row::new(
                &format!("agent CPU while echo ran, {} (cores)", setup.label()),
                1,
                Unit::Count(" cores"),
            )
            .hearsay(&r.cores)
            .reference("CPU time of the agent's threads over each round's wall time"),
        );
        let expected = setup.expected_running();
        if expected > 0 {
            let finished = if setup == Setup::Flood {
                format!("{} flood queries fired", r.floods_fired)
            } else {
                format!(
                    "probe events finished meanwhile: {} (the same events ran throughout)",
                    r.hostile_finished
                )
            };
            sec.rows.push(
                Row::new(
                    &format!("check: probe events running, {}", setup.label()),
                    1,
                    Unit::Count(""),
                )
                .hearsay(&r.running)
                .reference(format!(
                    "want {expected} at every check (`handlers` RPC before and after each \
round); {finished}"
                )),
            );
        }
        if setup == Setup::Flood {
            sec.rows.push(
                Row::new(
                    "check: flood's guest log lines suppressed per second",
                    1,
                    Unit::Count(" /s"),
                )
                .hearsay(&r.suppressed_per_sec)
                .reference("`log_suppressed` of the `handlers` RPC over each round"),
            );
            sec.rows.push(
                Row::new(
                    "check: flood's lines in the agent's log per second",
                    1,
                    Unit::Count(" /s"),
                )
                .hearsay(&r.flood_lines_per_sec)
                .reference(
                    "its guest lines, the host's summaries and the agent's `handler queue full; \
events dropped` warnings for surplus floods (at most one a second), read by the bench; budget \
50 guest lines per second per handler",
                ),
            );
        }
        if setup == Setup::Alone {
            alone = Some(r);
        }
    }
    sec
}

/// Section 11: `hearsay deploy` live (unless `--no-live`) and the deploy simulator (unless
/// `--no-sim`).
fn deploy_section(args: &Args, tools: &Tools, plan: &Plan) -> Section {
    let mut dp = plan.deploy.clone();
    if args.no_live {
        dp.live = None;
    }
    if args.no_sim {
        dp.sims.clear();
    }
    let guests = if dp.live.is_some() {
        guests::locate(args.wasm_dir.as_deref())
    } else {
        Err(anyhow::anyhow!("not needed"))
    };
    deploy_report::section(tools, guests.as_ref(), &dp)
}

fn main() -> Result<()> {
    let started = Instant::now();
    let mut args = parse_args()?;
    let mut plan = Plan::new(args.quick);
    if !args.sim_sizes.is_empty() {
        // Only the simulator, at the sizes asked for.
        args.no_live = true;
        args.no_handlers = true;
        args.no_sim = false;
        plan.try_10k = false;
        plan.sims = args
            .sim_sizes
            .iter()
            .map(|&n| SimPlan {
                n,
                seeds: args.sim_seeds.unwrap_or(1),
                events_per_seed: args.sim_events.unwrap_or(3),
                crashes_per_seed: args.sim_crashes.unwrap_or(1),
                settle: Duration::from_secs(30),
                bootstrap: args.sim_bootstrap,
            })
            .collect();
    }
    let live = ["failure", "events", "queries", "idle"];
    let tools = if args.no_live || !live.iter().any(|k| args.wants(k)) {
        // The handler figures still run lone agents.
        Tools {
            serf: find_serf(&args),
            node: PathBuf::new(),
            agent: find_agent(&args, &std::env::current_exe()?),
        }
    } else {
        find_tools(&args)?
    };
    let machine = Machine::probe(tools.serf.as_deref());
    let mut run_notes = Vec::new();
    let mut sections = Vec::new();
    if args.no_live {
        run_notes.push("Live sections skipped (--no-live).".to_owned());
    } else if live.iter().any(|k| args.wants(k)) {
        for imp in impls(&tools) {
            live::preflight(&tools, imp)
                .with_context(|| format!("{} does not start", imp.label()))?;
        }
        if tools.serf.is_none() {
            run_notes.push("serf was not measured (not installed or --no-serf).".to_owned());
        }
        if args.wants("failure") {
            sections.push(failure_section(&tools, &plan));
        }
        if args.wants("events") {
            sections.push(events_section(&tools, &plan));
        }
        if args.wants("queries") {
            let guests = guests::locate(args.wasm_dir.as_deref());
            sections.push(query_section(&tools, guests.as_ref(), &plan));
        }
        if args.wants("idle") {
            sections.push(idle_section(&tools, &plan));
        }
    }
    if args.no_handlers {
        run_notes.push("Handler and QUIC sections skipped (--no-handlers).".to_owned());
    } else if args.wants("handlers") {
        handler_sections(&args, &tools, &plan, &mut sections);
    }
    if args.no_sim {
        run_notes.push("Simulator section skipped (--no-sim).".to_owned());
    } else if args.wants("sim") {
        sections.push(sim_section(&plan));
    }
    if args.no_handlers {
        if args.wants("isolation") {
            run_notes.push("Handler isolation section skipped (--no-handlers).".to_owned());
        }
    } else if args.wants("isolation") {
        sections.push(isolation_section(&args, &tools, &plan));
    }
    // `--sim N` is the membership simulator alone.
    if args.wants("deploy") && args.sim_sizes.is_empty() {
        sections.push(deploy_section(&args, &tools, &plan));
    }
    if args.no_handlers {
        if args.wants("languages") {
            run_notes.push("Handlers in every language skipped (--no-handlers).".to_owned());
        }
    } else if args.wants("languages") && args.sim_sizes.is_empty() {
        sections.push(languages::section(
            &tools,
            args.wasm_dir.as_deref(),
            plan.languages,
            plan.handlers,
        ));
    }
    if args.no_handlers {
        if args.wants("capabilities") {
            run_notes.push("Handlers that act skipped (--no-handlers).".to_owned());
        }
    } else if args.wants("capabilities") && args.sim_sizes.is_empty() {
        sections.push(capabilities::section(
            &tools,
            args.wasm_dir.as_deref(),
            plan.capabilities,
        ));
    }
    if !args.only.is_empty() {
        run_notes.push(format!(
            "Only these sections ran (--only): {}.",
            args.only.join(", ")
        ));
    }
    let mut command = "cargo run --release -p hearsay-bench --".to_owned();
    for a in &args.raw {
        command.push(' ');
        command.push_str(a);
    }
    let report = Report {
        mode: if args.quick {
            "quick (smoke: fewer repetitions, smaller N)"
        } else {
            "full"
        },
        command,
        machine,
        load_at_end: Machine::load_now(),
        wall: started.elapsed(),
        sections,
        not_measured: not_measured(),
        run_notes,
    };
    let text = report.render();
    match &args.out {
        Some(p) => std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{text}"),
    }
    eprintln!("[bench] done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Args> {
        parse(line.split_whitespace().map(str::to_owned).collect())
    }

    #[test]
    fn only_takes_section_keys() {
        let a = args("--quick --only languages").unwrap();
        assert!(a.quick && a.wants("languages") && !a.wants("handlers"));
        let a = args("--only=handlers,languages").unwrap();
        assert!(a.wants("handlers") && a.wants("languages") && !a.wants("deploy"));
        assert!(args("").unwrap().wants("languages"));
        let e = args("--only language").err().unwrap().to_string();
        assert!(e.contains("unknown section \"language\""), "{e}");
        assert!(SECTION_KEYS.iter().all(|k| USAGE.contains(k)));
    }
}
