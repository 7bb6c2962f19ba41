//! Handler isolation (hearsay alone): what hostile handlers do to a well-behaved neighbour.
//!
//! One lone `hearsay agent` per setup (see [`Setup`]) runs the `echo` component on `user`
//! events (handler `h`) beside hearsay-host's hostile test guest `probe`
//! (`runtime/host/tests/guests/probe`) as further handlers, each on one query name, which is
//! the probe's mode: `query:sleep` (payload seconds; sleeps in WASI's monotonic clock, a host
//! call), `query:loop` (spins in wasm until its deadline) and `query:log` (payload `N TEXT`:
//! logs TEXT N times). The probes are set off by queries over RPC
//! ([`hearsay_agent::rpc::RpcClient`]) and given a 1 h timeout (the flood 30 s, re-fired), so
//! they are at it throughout; echo never sees a query, nor the probes a user event. In the
//! tenant setup the hostile handlers are all tenant `a`'s (`query:a/loop`, ...), held to its
//! quota of 1 event at once and 32 MiB, and echo is the operator's.
//!
//! echo is fed user events one at a time over the bench's own RPC client, at most one per
//! [`IsolationPlan::gap`] (under the host's budget of 50 guest log lines per second per
//! handler, so every event is timed to echo's own line), each timed from the agent's `Received
//! event` line to echo's guest log line, as in section 5. Before and after each round the
//! `handlers` RPC (`hearsay handlers`) lists what runs, so a setup whose probes were not running
//! (or whose flood was not suppressed) shows in the figures instead of passing for isolation.

use crate::guests::Guests;
use crate::handlers::{HandlerAgent, Kind};
use crate::procs::{cpu_with_children_secs, Impl, Tools};
use anyhow::{bail, Context, Result};
use hearsay_rpc::RpcClient;
use hearsay_rpc::{QueryParams, RpcHandler};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// How much of the isolation figures to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IsolationPlan {
    /// Rounds per setup, each `events` echo events one at a time.
    pub rounds: usize,
    pub events: usize,
    /// At least this long from one echo event's request to the next.
    pub gap: Duration,
}

/// What runs beside echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setup {
    /// Nothing.
    Alone,
    /// Four handlers each asleep in a host call (probe `sleep 3600`).
    Sleepers,
    /// One handler spinning in wasm (probe `loop`).
    Loop,
    /// Two handlers spinning: as many as the host has threads.
    Loops,
    /// One handler logging as fast as it can, re-fired (probe `log`).
    Flood,
    /// Tenant `a`'s handlers, all set off: 2 spinning (first, so that one holds its quota's one
    /// slot, spinning on a host thread), then 4 asleep, a memory bomb and a log flood, which wait
    /// behind it; its quota is 1 event at once and 32 MiB (echo is the operator's). Without the
    /// quota, its spinners alone would hold both host threads (as in `Loops`).
    Tenant,
}

/// Lines one flood event tries to log: enough to last several times [`FLOOD_EVERY`], so the
/// flood's queue (2) stays full and one of its events runs at every check (the surplus queries
/// are dropped, counted in the handler's drops).
pub(crate) const FLOOD_LINES: u64 = 1_000_000;
/// How often the flood query is fired.
pub(crate) const FLOOD_EVERY: Duration = Duration::from_millis(50);

const SLEEPER: Kind = Kind::Probe {
    query: "sleep",
    limits: "queue = 4, timeout = \"1h\"",
    tenant: None,
};
const SPINNER: Kind = Kind::Probe {
    query: "loop",
    limits: "queue = 4, timeout = \"1h\"",
    tenant: None,
};
const FLOODER: Kind = Kind::Probe {
    query: "log",
    limits: "queue = 2, timeout = \"30s\"",
    tenant: None,
};

/// Tenant `a` of [`Setup::Tenant`] and its quota: 1 event at once (of the host's 2 threads),
/// 32 MiB together.
const TENANT_A: Option<(&str, &str)> = Some(("a", "concurrency = 1, memory = \"32MiB\""));
/// [`TENANT_A`]'s quota on events at once: the hostile events that run at every check.
const TENANT_A_CONCURRENCY: usize = 1;

/// A hostile handler of tenant `a`, in `mode`.
const fn tenant_a(query: &'static str) -> Kind {
    Kind::Probe {
        query,
        limits: "queue = 4, timeout = \"1h\"",
        tenant: TENANT_A,
    }
}

impl Setup {
    pub(crate) const ALL: [Setup; 6] = [
        Setup::Alone,
        Setup::Sleepers,
        Setup::Loop,
        Setup::Loops,
        Setup::Flood,
        Setup::Tenant,
    ];

    /// How the setup is named in figures.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Setup::Alone => "alone",
            Setup::Sleepers => "beside 4 handlers asleep in a host call",
            Setup::Loop => "beside a handler spinning in wasm",
            Setup::Loops => "beside 2 handlers spinning in wasm (both host threads)",
            Setup::Flood => "beside a handler flooding the log",
            Setup::Tenant => "beside a tenant's spinners, sleepers, bomb and flood at its quota",
        }
    }

    /// The hostile handlers, by name.
    fn hostile(self) -> Vec<(&'static str, Kind)> {
        match self {
            Setup::Alone => vec![],
            Setup::Sleepers => vec![
                ("sleep1", SLEEPER),
                ("sleep2", SLEEPER),
                ("sleep3", SLEEPER),
                ("sleep4", SLEEPER),
            ],
            Setup::Loop => vec![("spin1", SPINNER)],
            Setup::Loops => vec![("spin1", SPINNER), ("spin2", SPINNER)],
            Setup::Flood => vec![("flood", FLOODER)],
            Setup::Tenant => vec![
                ("a-spin1", tenant_a("loop")),
                ("a-spin2", tenant_a("loop")),
                ("a-sleep1", tenant_a("sleep")),
                ("a-sleep2", tenant_a("sleep")),
                ("a-sleep3", tenant_a("sleep")),
                ("a-sleep4", tenant_a("sleep")),
                ("a-bomb", tenant_a("hog")),
                ("a-flood", tenant_a("log")),
            ],
        }
    }

    /// Hostile events that should be running at every check.
    pub(crate) fn expected_running(self) -> usize {
        match self {
            Setup::Tenant => TENANT_A_CONCURRENCY,
            _ => self.hostile().len(),
        }
    }
}

/// What one setup measured.
#[derive(Debug, Default)]
pub(crate) struct IsolationSamples {
    /// echo, one event at a time: each event's handler time (Received line → echo's line).
    pub per_event: Vec<f64>,
    /// The 99th percentile of each round's events.
    pub p99: Vec<f64>,
    /// Per round: the agent's CPU time over the round's wall time (cores busy).
    pub cores: Vec<f64>,
    /// Before and after each round: hostile events running (the `handlers` listing).
    pub running: Vec<f64>,
    /// Hostile events that finished during the measurement (0 for the sleepers and spinners:
    /// the same events ran throughout).
    pub hostile_finished: u64,
    /// Per round: guest log lines the flood had suppressed per second.
    pub suppressed_per_sec: Vec<f64>,
    /// Per round: log lines the flood put in the agent's log per second (its guest lines and
    /// the host's summaries).
    pub flood_lines_per_sec: Vec<f64>,
    /// Flood queries fired.
    pub floods_fired: u64,
    /// echo's trouble, if any: timeouts, drops, suppressed log lines, events timed to the
    /// budget summary.
    pub echo_trouble: Option<String>,
}

fn runtime() -> Result<Runtime> {
    // One worker of its own, so the client's reader keeps draining while the bench waits on
    // log lines.
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

fn query(name: &str, payload: &[u8], timeout: Duration) -> QueryParams {
    QueryParams {
        name: name.into(),
        payload: payload.to_vec(),
        timeout,
        ..QueryParams::default()
    }
}

/// The listing of the hostile handlers of `setup` and of echo.
struct Listing {
    running: u64,
    finished: u64,
    suppressed: u64,
    echo: RpcHandler,
}

fn listing(rt: &Runtime, client: &RpcClient, setup: Setup) -> Result<Listing> {
    let all = rt.block_on(client.handlers()).context("the handlers RPC")?;
    let hostile: Vec<&str> = setup.hostile().iter().map(|(n, _)| *n).collect();
    let mut l = Listing {
        running: 0,
        finished: 0,
        suppressed: 0,
        echo: all
            .iter()
            .find(|h| h.name == "h")
            .cloned()
            .context("echo is not listed")?,
    };
    for h in all.iter().filter(|h| hostile.contains(&h.name.as_str())) {
        l.running += h.running;
        l.finished += h.invocations;
        l.suppressed += h.log_suppressed;
    }
    Ok(l)
}

/// Waits (at most 10 s) until `setup`'s hostile events run as they should at every check;
/// `what` names them if they do not.
fn wait_running(rt: &Runtime, client: &RpcClient, setup: Setup, what: &str) -> Result<()> {
    let want = setup.expected_running() as u64;
    let until = Instant::now() + Duration::from_secs(10);
    while listing(rt, client, setup)?.running < want {
        if Instant::now() > until {
            bail!("{}: {what} did not start", setup.label());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Fires the flood query (`name`: the probe's `log`) every [`FLOOD_EVERY`] until dropped.
struct Flood {
    stop: Arc<AtomicBool>,
    fired: Arc<AtomicU64>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Flood {
    fn start(rt: &Runtime, port: u16, name: &'static str) -> Result<Self> {
        let client = rt.block_on(RpcClient::connect(&format!("127.0.0.1:{port}"), None))?;
        let (stop, fired) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, f) = (stop.clone(), fired.clone());
        let payload = format!("{FLOOD_LINES} flood line from the probe").into_bytes();
        let task = rt.spawn(async move {
            while !s.load(Ordering::Relaxed) {
                // Its records are not read: the stream is dropped, the query runs on.
                if client
                    .query(&query(name, &payload, Duration::from_secs(30)))
                    .await
                    .is_err()
                {
                    break;
                }
                f.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(FLOOD_EVERY).await;
            }
        });
        Ok(Self {
            stop,
            fired,
            task: Some(task),
        })
    }

    fn stop(&mut self, rt: &Runtime) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            let _ = rt.block_on(t);
        }
        self.fired.load(Ordering::Relaxed)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// echo's latency on a lone agent in `setup`.
pub(crate) fn measure(
    tools: &Tools,
    guests: &Guests,
    setup: Setup,
    plan: IsolationPlan,
) -> Result<IsolationSamples> {
    if guests.probe.is_none() {
        bail!("the probe test guest is not built (runtime/host/tests/guests)");
    }
    let mut handlers = vec![("h", Kind::Echo)];
    handlers.extend(setup.hostile());
    let mut agent = HandlerAgent::start(tools, Some(guests), Impl::Hearsay, "hiso", &handlers)?;
    let rt = runtime()?;
    let client = rt.block_on(RpcClient::connect(
        &format!("127.0.0.1:{}", agent.rpc_port),
        None,
    ))?;
    // One untimed event: the first instantiation touches fresh memory.
    agent.fire("warm")?;
    agent.handled("h", "warm")?;
    // Set the probes off; the sleepers' and spinners' queries stay open (1 h) with `client`.
    let hour = Duration::from_secs(3600);
    let mut _open = Vec::new();
    let mut flood = None;
    match setup {
        Setup::Alone => {}
        Setup::Sleepers => _open.push(rt.block_on(client.query(&query("sleep", b"3600", hour)))?),
        Setup::Loop | Setup::Loops => {
            _open.push(rt.block_on(client.query(&query("loop", b"", hour)))?)
        }
        Setup::Flood => flood = Some(Flood::start(&rt, agent.rpc_port, "log")?),
        Setup::Tenant => {
            // The spinners first, so that one holds the quota's slot (a host thread busy) and
            // the rest of the tenant's work waits behind it.
            _open.push(rt.block_on(client.query(&query("a/loop", b"", hour)))?);
            wait_running(&rt, &client, setup, "the spinners")?;
            for (name, payload) in [("a/sleep", &b"3600"[..]), ("a/hog", b"")] {
                _open.push(rt.block_on(client.query(&query(name, payload, hour)))?);
            }
            flood = Some(Flood::start(&rt, agent.rpc_port, "a/log")?);
        }
    }
    wait_running(&rt, &client, setup, "the hostile handlers")?;
    let mut out = IsolationSamples::default();
    let first = listing(&rt, &client, setup)?;
    let flood_line = |l: &str| l.contains("handler=\"flood\"") || l.contains("handler=flood ");
    for round in 0..plan.rounds {
        let before = listing(&rt, &client, setup)?;
        out.running.push(before.running as f64);
        let (cpu0, t0) = (cpu_with_children_secs(agent.proc.pid())?, Instant::now());
        let mut times = Vec::with_capacity(plan.events);
        for i in 0..plan.events {
            let fired = Instant::now();
            let ev = format!("i{round}-{i}");
            agent.fire(&ev)?;
            let r = agent.received(&ev)?;
            let h = agent.handled("h", &ev)?;
            times.push(h.saturating_duration_since(r).as_secs_f64());
            std::thread::sleep(plan.gap.saturating_sub(fired.elapsed()));
        }
        let wall = t0.elapsed().as_secs_f64();
        out.cores
            .push((cpu_with_children_secs(agent.proc.pid())? - cpu0) / wall);
        let after = listing(&rt, &client, setup)?;
        out.running.push(after.running as f64);
        if setup == Setup::Flood {
            out.suppressed_per_sec
                .push((after.suppressed - before.suppressed) as f64 / wall);
            let end = t0 + Duration::from_secs_f64(wall);
            let lines = agent
                .proc
                .lines
                .all(|l| flood_line(l))
                .into_iter()
                .filter(|(t, _)| *t >= t0 && *t <= end)
                .count();
            out.flood_lines_per_sec.push(lines as f64 / wall);
        }
        out.p99.push(crate::handlers::p99(&times));
        out.per_event.extend(times);
    }
    if let Some(f) = flood.as_mut() {
        out.floods_fired = f.stop(&rt);
    }
    let last = listing(&rt, &client, setup)?;
    out.hostile_finished = last.finished - first.finished;
    let e = &last.echo;
    let summarised = agent.summarised.get();
    if e.timeouts + e.drops + e.errors + e.traps + e.log_suppressed > 0 || summarised > 0 {
        out.echo_trouble = Some(format!(
            "echo {}: {} timeout(s), {} drop(s), {} error(s), {} trap(s), {} log line(s) \
suppressed, {summarised} event(s) timed to the budget summary",
            setup.label(),
            e.timeouts,
            e.drops,
            e.errors,
            e.traps,
            e.log_suppressed
        ));
    }
    drop(flood);
    drop(client);
    agent.proc.kill();
    Ok(out)
}
