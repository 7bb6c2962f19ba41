//! Handler figures: what running a handler per event costs, whether a slow handler delays a fast
//! one, and what loaded handlers weigh.
//!
//! serf side: one real `serf agent` with `-event-handler user=SCRIPT` shell scripts (serf runs
//! `/bin/sh -c SCRIPT` per event and per handler, one after another on its event loop), fed user
//! events over its RPC port by [`crate::rpc::RpcClient`]; times come from the agent's log lines
//! (`agent: Received event: user-event: NAME` before the handlers run, and the
//! `agent: Event 'user' script output: ...` line each script's end produces).
//!
//! hearsay side (host level: no hearsay agent with `-handler` yet): a [`Host`] in this process
//! with the components loaded; each event is [`Host::dispatch`]ed and timed from the call to its
//! [`hearsay_host::Ticket`] yielding the outcome: queue hand-off to a worker thread, a fresh
//! `Store` and instance from the pre-instantiated component, the guest's `handle`, the outcome.

use crate::guests::Guests;
use crate::procs::{free_port, rss_kib, Lines, Proc};
use crate::rpc::RpcClient;
use anyhow::{bail, Context, Result};
use hearsay_host::{
    Dispatch, Embedder, EmitError, Event, Handler, HandlerSpec, Host, HostConfig, Member,
    MemberStatus, ModuleSource, Outcome, Query, ReplyError, ReplySink, Ticket, UserEvent,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Samples of the per-event handler cost.
#[derive(Debug, Default)]
pub struct CostSamples {
    /// One event at a time: each event's handler time.
    pub per_event: Vec<f64>,
    /// Per burst: the 99th percentile of the one-at-a-time times of that round.
    pub p99: Vec<f64>,
    /// Per burst of events fired at once: events handled per second.
    pub per_sec: Vec<f64>,
}

/// Samples of the fast handler's latency beside a slow one.
#[derive(Debug, Default)]
pub struct SlowFastSamples {
    /// One event at a time (each fired after the previous was handled by both).
    pub fast_single: Vec<f64>,
    /// A stream of events fired every 50 ms (faster than the slow handler keeps up).
    pub fast_stream: Vec<f64>,
    /// The slow handler's own latency, one event at a time (for reference).
    pub slow_single: Vec<f64>,
}

/// How much of the handler figures to run.
#[derive(Debug, Clone, Copy)]
pub struct HandlerPlan {
    /// Rounds, each: `events` one at a time, then a burst of `events`.
    pub rounds: usize,
    pub events: usize,
    /// Slow beside fast: events one at a time, and the stream's length.
    pub slow_single: usize,
    pub slow_stream: usize,
    /// Processes measured per handler count for the footprint.
    pub footprint_reps: usize,
}

const STREAM_GAP: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------- serf

/// A scratch directory for the scripts, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Result<Self> {
        let d = std::env::temp_dir().join(format!("hearsay-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d)?;
        Ok(Self(d))
    }

    /// Writes an executable `/bin/sh` script.
    fn script(&self, name: &str, body: &str) -> Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let p = self.0.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n"))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        Ok(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A lone serf agent (debug logs) running `handlers` for user events, and an RPC client.
struct SerfHandlerAgent {
    proc: Proc,
    rpc: RpcClient,
}

impl SerfHandlerAgent {
    fn start(serf: &Path, name: &str, handlers: &[PathBuf]) -> Result<Self> {
        let (gossip, rpc_port) = (free_port()?, free_port()?);
        let mut cmd = Command::new(serf);
        cmd.arg("agent")
            .arg(format!("-node={name}"))
            .arg(format!("-bind=127.0.0.1:{gossip}"))
            .arg(format!("-rpc-addr=127.0.0.1:{rpc_port}"))
            .arg("-log-level=debug");
        for h in handlers {
            cmd.arg(format!("-event-handler=user={}", h.display()));
        }
        let proc = Proc::spawn(name, cmd)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        if proc
            .lines
            .wait_for(deadline, |l| l.contains("Serf agent running!"))
            .is_none()
        {
            bail!("serf agent did not start: {}", proc.lines.tail(10));
        }
        let rpc = RpcClient::connect(rpc_port)?;
        Ok(Self { proc, rpc })
    }

    fn lines(&self) -> &Lines {
        &self.proc.lines
    }
}

fn received(line: &str, event: &str) -> bool {
    line.strip_suffix(event)
        .is_some_and(|l| l.ends_with("agent: Received event: user-event: "))
}

/// The script output line of the script that echoed `text`.
fn output(line: &str, text: &str) -> bool {
    line.strip_suffix(text)
        .is_some_and(|l| l.ends_with("agent: Event 'user' script output: "))
}

fn wait(lines: &Lines, what: &str, pred: impl FnMut(&str) -> bool) -> Result<Instant> {
    lines
        .wait_for(Instant::now() + Duration::from_secs(30), pred)
        .with_context(|| {
            format!(
                "serf: no {what} within 30 s; last output:\n{}",
                lines.tail(8)
            )
        })
}

/// serf: per-event cost of a one-line shell handler (`echo "$SERF_USER_EVENT"`), from the
/// agent's "Received event" line to the script's output line.
pub fn serf_cost(serf: &Path, plan: HandlerPlan) -> Result<CostSamples> {
    let dir = Scratch::new("cost")?;
    let script = dir.script("handler.sh", "echo \"$SERF_USER_EVENT\"")?;
    let mut agent = SerfHandlerAgent::start(serf, "hcost", &[script])?;
    let mut out = CostSamples::default();
    for round in 0..plan.rounds {
        let mut times = Vec::new();
        for i in 0..plan.events {
            let ev = format!("c{round}-{i}");
            agent.rpc.event(&ev, b"x")?;
            agent.rpc.wait_all()?;
            let t0 = wait(agent.lines(), "received line", |l| received(l, &ev))?;
            let t1 = wait(agent.lines(), "script output", |l| output(l, &ev))?;
            times.push(secs(t1.saturating_duration_since(t0)));
        }
        out.p99.push(p99(&times));
        out.per_event.extend(times);
        // A burst: every request written at once; the agent's event loop runs them in turn.
        let names: Vec<String> = (0..plan.events).map(|i| format!("b{round}-{i}")).collect();
        for ev in &names {
            agent.rpc.event(ev, b"x")?;
        }
        agent.rpc.wait_all()?;
        let first = wait(agent.lines(), "received line", |l| received(l, &names[0]))?;
        let mut last = first;
        for ev in &names {
            last = last.max(wait(agent.lines(), "script output", |l| output(l, ev))?);
        }
        out.per_sec
            .push(plan.events as f64 / secs(last.saturating_duration_since(first)).max(1e-9));
    }
    agent.proc.kill();
    Ok(out)
}

/// serf: a `sleep 0.1` handler registered before a fast one; the fast one's latency from firing
/// (the RPC request written) to its output line.
pub fn serf_slow_fast(serf: &Path, plan: HandlerPlan) -> Result<SlowFastSamples> {
    let dir = Scratch::new("slowfast")?;
    let slow = dir.script("slow.sh", "sleep 0.1\necho \"slow $SERF_USER_EVENT\"")?;
    let fast = dir.script("fast.sh", "echo \"fast $SERF_USER_EVENT\"")?;
    let mut agent = SerfHandlerAgent::start(serf, "hslow", &[slow, fast])?;
    let mut out = SlowFastSamples::default();
    for i in 0..plan.slow_single {
        let ev = format!("s{i}");
        let fired = Instant::now();
        agent.rpc.event(&ev, b"x")?;
        agent.rpc.wait_all()?;
        let s = wait(agent.lines(), "slow output", |l| {
            output(l, &format!("slow {ev}"))
        })?;
        let f = wait(agent.lines(), "fast output", |l| {
            output(l, &format!("fast {ev}"))
        })?;
        out.slow_single
            .push(secs(s.saturating_duration_since(fired)));
        out.fast_single
            .push(secs(f.saturating_duration_since(fired)));
    }
    let mut fired = Vec::new();
    for i in 0..plan.slow_stream {
        let ev = format!("t{i}");
        fired.push((ev.clone(), Instant::now()));
        agent.rpc.event(&ev, b"x")?;
        agent.rpc.wait_all()?;
        std::thread::sleep(
            STREAM_GAP.saturating_sub(fired.last().map_or(Duration::ZERO, |(_, t)| t.elapsed())),
        );
    }
    for (ev, t) in &fired {
        let f = wait(agent.lines(), "fast output", |l| {
            output(l, &format!("fast {ev}"))
        })?;
        out.fast_stream.push(secs(f.saturating_duration_since(*t)));
    }
    agent.proc.kill();
    Ok(out)
}

// ---------------------------------------------------------------- hearsay

/// An embedder for a lone node: no peers, no replies, no emitting.
struct Lone;

impl Embedder for Lone {
    fn local_member(&self) -> Member {
        Member {
            name: "bench".into(),
            addr: [127, 0, 0, 1].into(),
            port: 7946,
            tags: BTreeMap::new(),
            status: MemberStatus::Alive,
            rtt: None,
        }
    }
    fn members(&self) -> Vec<Member> {
        vec![self.local_member()]
    }
    fn open_reply(&self, _: &Query) -> Result<Box<dyn ReplySink>, ReplyError> {
        Err(ReplyError::NotAQuery)
    }
    fn emit(&self, _: &str, _: &[u8], _: bool) -> Result<(), EmitError> {
        Err(EmitError::NotGranted)
    }
}

fn user(name: &str, ltime: u64) -> Event {
    Event::User(UserEvent {
        name: name.into(),
        payload: b"x".to_vec(),
        ltime,
        coalesce: false,
    })
}

fn host(workers: usize) -> Result<Host> {
    Ok(Host::new(HostConfig {
        workers,
        ..HostConfig::default()
    })?)
}

fn load(host: &Host, name: &str, path: &Path, queue: usize, clocks: bool) -> Result<Handler> {
    let mut spec = HandlerSpec::new(name, ModuleSource::Path(path.to_path_buf()));
    spec.limits.queue = queue.max(1);
    spec.grants.clocks = clocks;
    host.load(spec)
        .with_context(|| format!("loading {}", path.display()))
}

fn send(host: &Host, h: &Handler, ev: Event, emb: &Arc<dyn Embedder>) -> Result<Ticket> {
    match host.dispatch(h, ev, emb.clone()) {
        Dispatch::Queued(t) => Ok(t),
        Dispatch::Dropped => bail!("handler {} dropped an event (queue full)", h.name()),
    }
}

fn finish(t: &Ticket) -> Result<Instant> {
    match t.wait(Duration::from_secs(30)) {
        Some(Outcome::Ok) => Ok(Instant::now()),
        Some(other) => bail!("handler did not return ok: {other:?}"),
        None => bail!("handler did not finish within 30 s"),
    }
}

/// hearsay: per-event cost of the `echo` component (logs the user event), dispatch → outcome.
pub fn hearsay_cost(guests: &Guests, plan: HandlerPlan) -> Result<CostSamples> {
    let host = host(2)?;
    let echo = load(&host, "echo", &guests.echo, plan.events + 1, false)?;
    let emb: Arc<dyn Embedder> = Arc::new(Lone);
    let mut ltime = 0;
    let mut out = CostSamples::default();
    // One untimed event: the first instantiation touches the pool's memory.
    finish(&send(&host, &echo, user("warm", 0), &emb)?)?;
    for _ in 0..plan.rounds {
        let mut times = Vec::new();
        for _ in 0..plan.events {
            ltime += 1;
            let t0 = Instant::now();
            let t = send(&host, &echo, user("c", ltime), &emb)?;
            times.push(secs(finish(&t)?.saturating_duration_since(t0)));
        }
        out.p99.push(p99(&times));
        out.per_event.extend(times);
        let t0 = Instant::now();
        let mut tickets = Vec::new();
        for _ in 0..plan.events {
            ltime += 1;
            tickets.push(send(&host, &echo, user("b", ltime), &emb)?);
        }
        let mut last = t0;
        for t in &tickets {
            last = last.max(finish(t)?);
        }
        out.per_sec
            .push(plan.events as f64 / secs(last.saturating_duration_since(t0)).max(1e-9));
    }
    Ok(out)
}

/// hearsay: the `slow` component (sleeps 100 ms) and `echo` as the fast one, each event
/// dispatched to slow first; the fast one's latency from dispatch to its outcome.
pub fn hearsay_slow_fast(guests: &Guests, plan: HandlerPlan) -> Result<SlowFastSamples> {
    let host = host(2)?;
    let n = plan.slow_single.max(plan.slow_stream) + 1;
    let slow = load(&host, "slow", &guests.slow, n, true)?;
    let fast = load(&host, "fast", &guests.echo, n, false)?;
    let emb: Arc<dyn Embedder> = Arc::new(Lone);
    finish(&send(&host, &fast, user("warm", 0), &emb)?)?;
    let mut out = SlowFastSamples::default();
    let mut ltime = 0;
    for _ in 0..plan.slow_single {
        ltime += 1;
        let fired = Instant::now();
        let s = send(&host, &slow, user("s", ltime), &emb)?;
        let f = send(&host, &fast, user("s", ltime), &emb)?;
        out.fast_single
            .push(secs(finish(&f)?.saturating_duration_since(fired)));
        out.slow_single
            .push(secs(finish(&s)?.saturating_duration_since(fired)));
    }
    let mut pending = Vec::new();
    for _ in 0..plan.slow_stream {
        ltime += 1;
        let fired = Instant::now();
        let s = send(&host, &slow, user("t", ltime), &emb)?;
        let f = send(&host, &fast, user("t", ltime), &emb)?;
        // The fast one's outcome is read as soon as it is there, not after the whole stream.
        let done = finish(&f)?;
        out.fast_stream
            .push(secs(done.saturating_duration_since(fired)));
        pending.push(s);
        std::thread::sleep(STREAM_GAP.saturating_sub(fired.elapsed()));
    }
    for s in &pending {
        finish(s)?;
    }
    Ok(out)
}

// ---------------------------------------------------------------- footprint

/// The child side of [`footprint`]: a host with `count` handlers (cycling through the given
/// components), each run once; prints `READY` and waits to be killed.
pub fn footprint_child(count: usize, wasm: &[PathBuf]) -> Result<()> {
    let host = host(4)?;
    let emb: Arc<dyn Embedder> = Arc::new(Lone);
    let mut handlers = Vec::new();
    for i in 0..count {
        let path = &wasm[i % wasm.len()];
        let h = load(&host, &format!("h{i}"), path, 4, true)?;
        // Every handler has run once (the slow one takes its 100 ms), as in a live agent.
        let t = send(&host, &h, user("hello", 1), &emb)?;
        t.wait(Duration::from_secs(30))
            .context("handler did not finish")?;
        handlers.push(h);
    }
    println!("READY {}", handlers.len());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// VmRSS of child processes holding a host with 0 and with 10 loaded handlers, `reps` each.
pub fn footprint(guests: &Guests, reps: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let exe = std::env::current_exe()?;
    let wasm_dir = guests.echo.parent().context("wasm dir")?;
    let (mut zero, mut ten) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        for (count, out) in [(0, &mut zero), (10, &mut ten)] {
            let mut cmd = Command::new(&exe);
            cmd.arg("--footprint-child")
                .arg(count.to_string())
                .arg("--wasm-dir")
                .arg(wasm_dir);
            let mut p = Proc::spawn("footprint", cmd)?;
            let deadline = Instant::now() + Duration::from_secs(120);
            if p.lines
                .wait_for(deadline, |l| l.starts_with("READY"))
                .is_none()
            {
                bail!("footprint child did not get ready: {}", p.lines.tail(5));
            }
            // Idle for a moment, as the agents' idle figure is taken after a quiet period.
            std::thread::sleep(Duration::from_secs(1));
            out.push(rss_kib(p.pid())?);
            p.kill();
        }
    }
    Ok((zero, ten))
}

/// The 99th percentile of unsorted samples.
fn p99(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    crate::stats::percentile(&s, 0.99)
}

/// serf: VmRSS of a lone agent with ten `-event-handler` scripts configured, after it ran each
/// once and sat idle for a second, `reps` agents.
pub fn serf_footprint(serf: &Path, reps: usize) -> Result<Vec<f64>> {
    let dir = Scratch::new("footprint")?;
    let scripts: Vec<PathBuf> = (0..10)
        .map(|i| {
            dir.script(
                &format!("h{i}.sh"),
                &format!("echo \"h{i} $SERF_USER_EVENT\""),
            )
        })
        .collect::<Result<_>>()?;
    let mut out = Vec::new();
    for r in 0..reps {
        let mut agent = SerfHandlerAgent::start(serf, &format!("hfoot{r}"), &scripts)?;
        agent.rpc.event("hello", b"x")?;
        agent.rpc.wait_all()?;
        wait(agent.lines(), "last script output", |l| {
            output(l, "h9 hello")
        })?;
        std::thread::sleep(Duration::from_secs(1));
        out.push(rss_kib(agent.proc.pid())?);
        agent.proc.kill();
    }
    Ok(out)
}
