//! Handler figures: what running a handler per event costs, whether a slow handler delays a fast
//! one, and what loaded handlers weigh.
//!
//! serf side: one real `serf agent` with `-event-handler user=SCRIPT` shell scripts (serf runs
//! `/bin/sh -c SCRIPT` per event and per handler, one after another on its event loop), fed user
//! events over its RPC port by [`crate::rpc::RpcClient`]; times come from the agent's log lines
//! (`agent: Received event: user-event: NAME` before the handlers run, and the
//! `agent: Event 'user' script output: ...` line each script's end produces).
//!
//! hearsay side, the same way: one real `hearsay agent` with `[[handler]]` blocks for user
//! events (the `echo` component, the bench's `slow` one), fed over RPC by the same client, timed
//! from the same `Received event` line to the guest's log line (`user event NAME ...` with
//! `handler="H"`). Each event runs in a fresh instance on the agent's worker pool.
//!
//! Besides, hearsay's handler alone ([`hearsay_cost`], host level): a [`Host`] in this process,
//! each event [`Host::dispatch`]ed and timed until its [`hearsay_host::Ticket`] yields the
//! outcome (hand-off to a worker, a fresh `Store` and instance, the guest's `handle`).

use crate::guests::Guests;
use crate::procs::{agent_command, cpu_with_children_secs, free_port, rss_kib, Impl, Proc, Tools};
use crate::rpc::RpcClient;
use anyhow::{bail, Context, Result};
use hearsay_host::{
    Dispatch, Embedder, EmitError, Event, Handler, HandlerSpec, Host, HostConfig, Member,
    MemberStatus, ModuleSource, Outcome, Query, ReplyError, ReplySink, Ticket, UserEvent,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Samples of the per-event handler cost.
#[derive(Debug, Default)]
pub(crate) struct CostSamples {
    /// One event at a time: each event's handler time.
    pub per_event: Vec<f64>,
    /// Per burst: the 99th percentile of the one-at-a-time times of that round.
    pub p99: Vec<f64>,
    /// Per burst of events fired at once: events handled per second.
    pub per_sec: Vec<f64>,
    /// Events timed, and how many of them to hearsay's log-budget summary line instead of the
    /// guest's own line (see [`HandlerAgent::handled`]).
    pub timed: usize,
    pub summarised: usize,
}

/// CPU per event of a lone agent fed bursts of user events, one sample per burst, in seconds.
#[derive(Debug, Default)]
pub(crate) struct CpuSamples {
    /// With one logging handler (serf: its forks included).
    pub with_handler: Vec<f64>,
    /// With no handler.
    pub without: Vec<f64>,
    /// `with_handler − without`, burst by burst: what the handler costs per event.
    pub handler: Vec<f64>,
    /// Events with the handler, and how many of them ended at hearsay's log-budget summary line.
    pub timed: usize,
    pub summarised: usize,
}

/// Samples of the fast handler's latency beside a slow one.
#[derive(Debug, Default)]
pub(crate) struct SlowFastSamples {
    /// One event at a time (each fired after the previous was handled by both).
    pub fast_single: Vec<f64>,
    /// A stream of events fired every 50 ms (faster than the slow handler keeps up).
    pub fast_stream: Vec<f64>,
    /// The slow handler's own latency, one event at a time (for reference).
    pub slow_single: Vec<f64>,
}

/// How much of the handler figures to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HandlerPlan {
    /// Rounds, each: `events` one at a time, then a burst of `events`.
    pub rounds: usize,
    pub events: usize,
    /// Slow beside fast: events one at a time, and the stream's length.
    pub slow_single: usize,
    pub slow_stream: usize,
    /// Processes measured per handler count for the footprint.
    pub footprint_reps: usize,
    /// Events per burst of the CPU figure (one burst per round).
    pub cpu_events: usize,
}

const STREAM_GAP: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------- serf

/// A scratch directory (for scripts, caches), removed on drop.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(tag: &str) -> Result<Self> {
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

/// One handler of a lone agent: serf runs a script, hearsay a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Logs the event at once: serf `echo "NAME $SERF_USER_EVENT"`; hearsay the `echo` component.
    Echo,
    /// Sleeps 100 ms, then logs: serf `sleep 0.1; echo ...`; hearsay the bench's `slow` component.
    Slow,
    /// hearsay only: the `probe` test guest on `query:QUERY` (its mode), with `limits`
    /// (a TOML inline table's contents) and clocks granted; see [`crate::isolation`]. With a
    /// `tenant` (its name, and its `quota` as a TOML inline table's contents) the handler is
    /// that tenant's, on `query:TENANT/QUERY`.
    Probe {
        query: &'static str,
        limits: &'static str,
        tenant: Option<(&'static str, &'static str)>,
    },
    /// Does a job, then logs: serf `JOB && echo "NAME $SERF_USER_EVENT"` (the line only if the
    /// job succeeded); hearsay the bench's `act` component with `grants` (a TOML inline table's
    /// contents: the capability and the `env` that picks the job); see [`crate::capabilities`].
    Act { serf: String, grants: String },
}

/// A lone agent (serf or hearsay) running user-event `handlers`, named as given, one after
/// another in that order, and an RPC client feeding it events.
pub(crate) struct HandlerAgent {
    imp: Impl,
    pub(crate) proc: Proc,
    rpc: RpcClient,
    /// The agent's RPC port (for further clients).
    pub(crate) rpc_port: u16,
    /// Events whose end [`Self::handled`] took from hearsay's `suppressed N guest log lines`
    /// summary (the guest's own line was over the handler's log budget).
    pub(crate) summarised: std::cell::Cell<usize>,
    _dir: Scratch,
}

impl HandlerAgent {
    /// serf: `-event-handler user=SCRIPT` per handler. hearsay: `hearsay agent -config-file`
    /// with one `[[handler]]` block per handler (`events = "user"`; the slow one granted clocks
    /// for its sleep); components compiled at load or taken from the agent's disk cache.
    pub(crate) fn start(
        tools: &Tools,
        guests: Option<&Guests>,
        imp: Impl,
        name: &str,
        handlers: &[(&str, Kind)],
    ) -> Result<Self> {
        let dir = Scratch::new(name)?;
        let (gossip, rpc_port) = (free_port()?, free_port()?);
        let bin = match imp {
            Impl::Serf => tools.serf.as_deref().context("serf is not installed")?,
            Impl::Hearsay => tools
                .agent
                .as_deref()
                .context("the hearsay binary is not built")?,
        };
        let mut cmd = agent_command(bin, name, gossip, rpc_port);
        match imp {
            Impl::Serf => {
                cmd.arg("-log-level=debug");
                for (h, kind) in handlers {
                    let body = match kind {
                        Kind::Echo => format!("echo \"{h} $SERF_USER_EVENT\""),
                        Kind::Slow => format!("sleep 0.1\necho \"{h} $SERF_USER_EVENT\""),
                        Kind::Act { serf, .. } => {
                            format!("{serf} && echo \"{h} $SERF_USER_EVENT\"")
                        }
                        Kind::Probe { .. } => bail!("serf has no equivalent of the probe guest"),
                    };
                    let script = dir.script(&format!("{h}.sh"), &body)?;
                    cmd.arg(format!("-event-handler=user={}", script.display()));
                }
            }
            Impl::Hearsay => {
                let guests = guests.context("no WebAssembly guests")?;
                let mut toml = String::new();
                let mut tenants: Vec<(&str, &str)> = Vec::new();
                for (_, kind) in handlers {
                    if let Kind::Probe {
                        tenant: Some(t), ..
                    } = kind
                    {
                        if !tenants.contains(t) {
                            tenants.push(*t);
                            toml.push_str(&format!(
                                "[[tenant]]\nname = \"{}\"\nquota = {{ {} }}\ngrants = {{ clocks = true }}\n\n",
                                t.0, t.1
                            ));
                        }
                    }
                }
                for (h, kind) in handlers {
                    let (module, grants, events, limits) = match kind {
                        Kind::Echo => (
                            &guests.echo,
                            "clocks = false".into(),
                            "user".into(),
                            "queue = 1024",
                        ),
                        Kind::Slow => (
                            &guests.slow,
                            "clocks = true".into(),
                            "user".into(),
                            "queue = 1024",
                        ),
                        Kind::Probe {
                            query,
                            limits,
                            tenant,
                        } => (
                            guests
                                .probe
                                .as_ref()
                                .context("the probe test guest is not built")?,
                            "clocks = true".into(),
                            match tenant {
                                Some((t, _)) => format!("query:{t}/{query}"),
                                None => format!("query:{query}"),
                            },
                            *limits,
                        ),
                        Kind::Act { grants, .. } => (
                            guests
                                .act
                                .as_ref()
                                .context("the bench's act guest is not built")?,
                            grants.clone(),
                            "user".into(),
                            "queue = 1024",
                        ),
                    };
                    let tenant = match kind {
                        Kind::Probe {
                            tenant: Some((t, _)),
                            ..
                        } => format!("tenant = \"{t}\"\n"),
                        _ => String::new(),
                    };
                    toml.push_str(&format!(
                        "[[handler]]\nname = \"{h}\"\n{tenant}module = \"{}\"\nevents = \"{events}\"\n\
                         limits = {{ {limits} }}\ngrants = {{ {grants} }}\n\n",
                        module.display()
                    ));
                }
                let config = dir.0.join("handlers.toml");
                std::fs::write(&config, toml)?;
                cmd.arg(format!("-config-file={}", config.display()));
            }
        }
        let proc = Proc::spawn(name, cmd)?;
        let running = match imp {
            Impl::Serf => "Serf agent running!",
            Impl::Hearsay => "hearsay agent running!",
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        if proc
            .lines
            .wait_for(deadline, |l| l.contains(running))
            .is_none()
        {
            bail!("{imp:?} agent did not start: {}", proc.lines.tail(10));
        }
        let rpc = RpcClient::connect(rpc_port)?;
        Ok(Self {
            imp,
            proc,
            rpc,
            rpc_port,
            summarised: std::cell::Cell::new(0),
            _dir: dir,
        })
    }

    /// Fires user event `event` over RPC and waits for the agent's acknowledgement.
    pub(crate) fn fire(&mut self, event: &str) -> Result<()> {
        self.rpc.event(event, b"x")?;
        self.rpc.wait_all()
    }

    /// Fires `events` at once (every request written before any acknowledgement is read) and
    /// waits for the agent's acknowledgements.
    fn fire_all(&mut self, events: &[String]) -> Result<()> {
        for ev in events {
            self.rpc.event(ev, b"x")?;
        }
        self.rpc.wait_all()
    }

    /// When the agent logged `Received event: user-event: EVENT` (both agents log this line
    /// before running any handler).
    pub(crate) fn received(&self, event: &str) -> Result<Instant> {
        let mark = format!("agent: Received event: user-event: {event}");
        // Both lines carry a timestamp and level before the message; hearsay's has fields after.
        self.wait(&format!("received line of {event}"), |l| {
            l.find(&mark)
                .map(|i| &l[i + mark.len()..])
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
        })
    }

    /// When handler `handler` logged that it ran for `event`: serf's `script output` line of
    /// the script echoing `HANDLER EVENT`; hearsay's guest log line (`user event EVENT ...`,
    /// with the field `handler="HANDLER"`), or, when that line was over the handler's log budget
    /// (50 lines per second), the host's summary at the event's end (`suppressed N guest log
    /// lines ...` with `handler=HANDLER event=user:EVENT`; counted in [`Self::summarised`]).
    pub(crate) fn handled(&self, handler: &str, event: &str) -> Result<Instant> {
        let what = format!("{handler}'s output for {event}");
        match self.imp {
            Impl::Serf => {
                let mark = format!("agent: Event 'user' script output: {handler} {event}");
                self.wait(&what, |l| l.ends_with(&mark))
            }
            Impl::Hearsay => {
                let (text, field) = (
                    format!("user event {event} "),
                    format!("handler=\"{handler}\""),
                );
                let (bare, ev) = (format!("handler={handler} "), format!("event=user:{event}"));
                let mut summary = false;
                let t = self.wait(&what, |l| {
                    if l.contains(&text) && l.contains(&field) {
                        summary = false;
                        return true;
                    }
                    let is_summary = l.contains("suppressed ")
                        && l.contains(&bare)
                        && l.find(&ev).is_some_and(|i| {
                            l[i + ev.len()..].is_empty() || l[i + ev.len()..].starts_with(' ')
                        });
                    summary = is_summary;
                    is_summary
                })?;
                if summary {
                    self.summarised.set(self.summarised.get() + 1);
                }
                Ok(t)
            }
        }
    }

    fn wait(&self, what: &str, pred: impl FnMut(&str) -> bool) -> Result<Instant> {
        let lines = &self.proc.lines;
        lines
            .wait_for(Instant::now() + Duration::from_secs(30), pred)
            .with_context(|| {
                format!(
                    "{:?}: no {what} within 30 s; last output:\n{}",
                    self.imp,
                    lines.tail(8)
                )
            })
    }
}

/// Per-event cost of one logging handler on a lone agent, from the agent's `Received event`
/// line to the handler's output line: rounds of events one at a time, then a burst.
pub(crate) fn agent_cost(
    tools: &Tools,
    guests: Option<&Guests>,
    imp: Impl,
    plan: HandlerPlan,
) -> Result<CostSamples> {
    agent_cost_of(tools, guests, imp, plan, Kind::Echo)
}

/// [`agent_cost`] of the handler `kind` (named `h`).
pub(crate) fn agent_cost_of(
    tools: &Tools,
    guests: Option<&Guests>,
    imp: Impl,
    plan: HandlerPlan,
    kind: Kind,
) -> Result<CostSamples> {
    let mut agent = HandlerAgent::start(tools, guests, imp, "hcost", &[("h", kind)])?;
    // One untimed event: the first instantiation touches fresh memory, the first fork warms
    // the page cache.
    agent.fire("warm")?;
    agent.handled("h", "warm")?;
    let mut out = CostSamples::default();
    for round in 0..plan.rounds {
        let mut times = Vec::new();
        for i in 0..plan.events {
            let ev = format!("c{round}-{i}");
            agent.fire(&ev)?;
            let t0 = agent.received(&ev)?;
            let t1 = agent.handled("h", &ev)?;
            times.push(secs(t1.saturating_duration_since(t0)));
        }
        out.p99.push(p99(&times));
        out.per_event.extend(times);
        // A burst: every request written at once; each agent runs the handler's events in turn.
        let names: Vec<String> = (0..plan.events).map(|i| format!("b{round}-{i}")).collect();
        agent.fire_all(&names)?;
        let first = agent.received(&names[0])?;
        let mut last = first;
        for ev in &names {
            last = last.max(agent.handled("h", ev)?);
        }
        out.per_sec
            .push(plan.events as f64 / secs(last.saturating_duration_since(first)).max(1e-9));
    }
    out.timed = 1 + 2 * plan.rounds * plan.events;
    out.summarised = agent.summarised.get();
    agent.proc.kill();
    Ok(out)
}

/// CPU per event: a lone agent with the logging handler, then one with none, each fed
/// `plan.rounds` bursts of `plan.cpu_events` user events; per burst, the CPU the agent (and, for
/// serf, its reaped handler processes) used from the first request to the last event's output
/// line (`Received` line without a handler), divided by the events.
pub(crate) fn agent_cpu(
    tools: &Tools,
    guests: Option<&Guests>,
    imp: Impl,
    plan: HandlerPlan,
) -> Result<CpuSamples> {
    let with = agent_cpu_of(tools, guests, imp, plan, Some(Kind::Echo))?;
    let without = agent_cpu_of(tools, guests, imp, plan, None)?;
    Ok(CpuSamples {
        handler: with
            .per_event
            .iter()
            .zip(&without.per_event)
            .map(|(w, wo)| w - wo)
            .collect(),
        with_handler: with.per_event,
        without: without.per_event,
        timed: with.timed,
        summarised: with.summarised,
    })
}

/// CPU per event of one lone agent, one sample per burst, in seconds.
#[derive(Debug, Default)]
pub(crate) struct AgentCpu {
    pub per_event: Vec<f64>,
    /// Events with the handler (none without one), and how many of them ended at hearsay's
    /// log-budget summary line.
    pub timed: usize,
    pub summarised: usize,
}

/// [`agent_cpu`]'s measurement of one agent: with the handler `kind` (named `h`), or with none;
/// `plan.rounds` bursts of `plan.cpu_events` user events.
pub(crate) fn agent_cpu_of(
    tools: &Tools,
    guests: Option<&Guests>,
    imp: Impl,
    plan: HandlerPlan,
    kind: Option<Kind>,
) -> Result<AgentCpu> {
    let with = kind.is_some();
    let handlers: Vec<(&str, Kind)> = kind.into_iter().map(|k| ("h", k)).collect();
    let mut agent = HandlerAgent::start(tools, guests, imp, "hcpu", &handlers)?;
    agent.fire("warm")?;
    agent.received("warm")?;
    if with {
        agent.handled("h", "warm")?;
    }
    let mut out = AgentCpu::default();
    for round in 0..plan.rounds {
        let names: Vec<String> = (0..plan.cpu_events)
            .map(|i| format!("u{round}-{i}"))
            .collect();
        let before = cpu_with_children_secs(agent.proc.pid())?;
        agent.fire_all(&names)?;
        for ev in &names {
            agent.received(ev)?;
            if with {
                agent.handled("h", ev)?;
            }
        }
        out.per_event
            .push((cpu_with_children_secs(agent.proc.pid())? - before) / plan.cpu_events as f64);
    }
    if with {
        out.timed = 1 + plan.rounds * plan.cpu_events;
        out.summarised = agent.summarised.get();
    }
    agent.proc.kill();
    Ok(out)
}

/// A slow handler registered before a fast one on a lone agent; the fast one's latency from
/// firing (the RPC request written) to its output line.
pub(crate) fn agent_slow_fast(
    tools: &Tools,
    guests: Option<&Guests>,
    imp: Impl,
    plan: HandlerPlan,
) -> Result<SlowFastSamples> {
    let handlers = [("slow", Kind::Slow), ("fast", Kind::Echo)];
    let mut agent = HandlerAgent::start(tools, guests, imp, "hslow", &handlers)?;
    agent.fire("warm")?;
    agent.handled("slow", "warm")?;
    let mut out = SlowFastSamples::default();
    for i in 0..plan.slow_single {
        let ev = format!("s{i}");
        let fired = Instant::now();
        agent.fire(&ev)?;
        let s = agent.handled("slow", &ev)?;
        let f = agent.handled("fast", &ev)?;
        out.slow_single
            .push(secs(s.saturating_duration_since(fired)));
        out.fast_single
            .push(secs(f.saturating_duration_since(fired)));
    }
    let mut fired = Vec::new();
    for i in 0..plan.slow_stream {
        let ev = format!("t{i}");
        fired.push((ev.clone(), Instant::now()));
        agent.fire(&ev)?;
        std::thread::sleep(
            STREAM_GAP.saturating_sub(fired.last().map_or(Duration::ZERO, |(_, t)| t.elapsed())),
        );
    }
    for (ev, t) in &fired {
        let f = agent.handled("fast", ev)?;
        out.fast_stream.push(secs(f.saturating_duration_since(*t)));
    }
    agent.proc.kill();
    Ok(out)
}

/// VmRSS of lone agents with `count` logging handlers configured, after one user event ran
/// all of them and the agent sat idle for a second, `reps` agents.
pub(crate) fn agent_footprint(
    tools: &Tools,
    guests: Option<&Guests>,
    imp: Impl,
    count: usize,
    reps: usize,
) -> Result<Vec<f64>> {
    let names: Vec<String> = (0..count).map(|i| format!("h{i}")).collect();
    let handlers: Vec<(&str, Kind)> = names.iter().map(|n| (n.as_str(), Kind::Echo)).collect();
    let mut out = Vec::new();
    for r in 0..reps {
        let mut agent = HandlerAgent::start(tools, guests, imp, &format!("hfoot{r}"), &handlers)?;
        agent.fire("hello")?;
        for h in &names {
            agent.handled(h, "hello")?;
        }
        std::thread::sleep(Duration::from_secs(1));
        out.push(rss_kib(agent.proc.pid())?);
        agent.proc.kill();
    }
    Ok(out)
}

// ---------------------------------------------------------------- hearsay

/// An embedder for a lone node: no peers, no replies, no emitting.
pub(crate) struct Lone;

/// The lone node's own member entry.
pub(crate) fn bench_member() -> Member {
    Member {
        name: "bench".into(),
        addr: [127, 0, 0, 1].into(),
        port: 7946,
        tags: BTreeMap::new(),
        status: MemberStatus::Alive,
        rtt: None,
    }
}

#[hearsay_host::async_trait]
impl Embedder for Lone {
    async fn local_member(&self) -> Member {
        bench_member()
    }
    async fn members(&self) -> Vec<Member> {
        vec![self.local_member().await]
    }
    fn open_reply(&self, _: &Query) -> Result<Box<dyn ReplySink>, ReplyError> {
        Err(ReplyError::NotAQuery)
    }
    async fn emit(&self, _: &str, _: &[u8], _: bool) -> Result<(), EmitError> {
        Err(EmitError::NotGranted)
    }
}

pub(crate) fn user(name: &str, ltime: u64) -> Event {
    Event::User(UserEvent {
        name: name.into(),
        payload: b"x".to_vec(),
        ltime,
        coalesce: false,
    })
}

pub(crate) fn host(workers: usize) -> Result<Host> {
    Ok(Host::new(HostConfig {
        workers,
        ..HostConfig::default()
    })?)
}

pub(crate) fn load(
    host: &Host,
    name: &str,
    path: &Path,
    queue: usize,
    clocks: bool,
) -> Result<Handler> {
    let mut spec = HandlerSpec::new(name, ModuleSource::Path(path.to_path_buf()));
    spec.limits.queue = queue.max(1);
    spec.grants.clocks = clocks;
    host.load(spec)
        .with_context(|| format!("loading {}", path.display()))
}

pub(crate) fn send(host: &Host, h: &Handler, ev: Event, emb: &Arc<dyn Embedder>) -> Result<Ticket> {
    match host.dispatch(h, ev, emb.clone()) {
        Dispatch::Queued(t) => Ok(t),
        Dispatch::Dropped => bail!("handler {} dropped an event (queue full)", h.name()),
    }
}

pub(crate) fn finish(t: &Ticket) -> Result<Instant> {
    match t.wait(Duration::from_secs(30)) {
        Some(Outcome::Ok) => Ok(Instant::now()),
        Some(other) => bail!("handler did not return ok: {other:?}"),
        None => bail!("handler did not finish within 30 s"),
    }
}

/// hearsay's handler alone (host level): per-event cost of the `echo` component, dispatch →
/// outcome.
pub(crate) fn hearsay_cost(guests: &Guests, plan: HandlerPlan) -> Result<CostSamples> {
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

/// The 99th percentile of unsorted samples.
pub(crate) fn p99(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    crate::stats::percentile(&s, 0.99)
}
