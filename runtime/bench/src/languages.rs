//! Section 12: the `echo` handler written in every language the SDKs cover (Rust, C, Python,
//! JavaScript), at the handler host, beside serf's forked shell handler.
//!
//! Per component ([`measure`]): its size; the first start (`Host::load` into a fresh host whose
//! disk cache is empty, so the component is compiled); the cached start (`Host::load` in a fresh
//! host reading that cache's entry) and from there to the first query's outcome; queries one at
//! a time, dispatch → outcome; the bench process's CPU per event over a burst; and the RSS the
//! handler added. serf's figures come from section 5's code ([`crate::handlers::agent_cost`],
//! [`crate::handlers::agent_cpu`]), run in the same section.

use crate::guests::{repo_root, target_dir};
use crate::handlers::{self, finish, load, p99, secs, send, CostSamples, CpuSamples, Scratch};
use crate::procs::{cpu_with_children_secs, minor_faults, rss_kib, Impl, Tools};
use crate::report::{Row, Section};
use crate::stats::{Summary, Unit};
use anyhow::{bail, Context, Result};
use hearsay_host::{
    CacheOutcome, Embedder, EmitError, Event, Host, HostConfig, Member, Query, ReplyError,
    ReplySink,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One language's `echo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lang {
    /// As printed: `Python`.
    pub label: &'static str,
    /// `scripts/build-handlers.sh -lang KEY`.
    pub key: &'static str,
    /// The handler's directory under `handlers/`, and its component's name (`NAME.wasm`).
    pub name: &'static str,
}

/// The languages measured, in report order.
pub(crate) const LANGS: &[Lang] = &[
    Lang {
        label: "Rust",
        key: "rust",
        name: "echo",
    },
    Lang {
        label: "C",
        key: "c",
        name: "echo-c",
    },
    Lang {
        label: "Python",
        key: "python",
        name: "echo-python",
    },
    Lang {
        label: "JavaScript",
        key: "js",
        name: "echo-js",
    },
];

impl Lang {
    /// Whether the section's goal (per-event and cached-start) is set for this language.
    fn has_goal(self) -> bool {
        matches!(self.key, "python" | "js")
    }

    /// `Python (echo-python)`, as rows name it.
    fn title(self) -> String {
        format!("{} `{}`", self.label, self.name)
    }
}

/// The goal this section reports against (the Python and JavaScript handlers).
pub(crate) const GOAL_P50: f64 = 0.25e-3;
pub(crate) const GOAL_P99: f64 = 1e-3;
/// hearsay at least this many times cheaper per event than serf's fork.
pub(crate) const GOAL_CHEAPER: f64 = 6.0;
pub(crate) const GOAL_CACHED_START: f64 = 0.5;

/// How much to measure per language.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LangPlan {
    /// First starts (empty cache each), and cached starts (fresh host each).
    pub first_starts: usize,
    pub cached_starts: usize,
    /// Untimed queries before the timed ones.
    pub warmup: usize,
    /// Rounds, each: `events` queries one at a time, then a burst of `events` for the CPU.
    pub rounds: usize,
    pub events: usize,
}

impl LangPlan {
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Self {
                first_starts: 1,
                cached_starts: 2,
                warmup: 5,
                rounds: 1,
                events: 50,
            }
        } else {
            Self {
                first_starts: 3,
                cached_starts: 5,
                warmup: 20,
                rounds: 5,
                events: 100,
            }
        }
    }
}

/// One component's figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct LangSamples {
    /// Component bytes.
    pub size: f64,
    /// `Host::load` with an empty cache directory (compiled, entry written), seconds.
    pub first_start: Vec<f64>,
    /// `Host::load` from the cache entry, in a fresh host, seconds.
    pub cached_start: Vec<f64>,
    /// From the same start to the first query's outcome, seconds.
    pub first_answer: Vec<f64>,
    /// Each query, dispatch → outcome, one at a time.
    pub per_event: Vec<f64>,
    /// Per round: the 99th percentile of its one-at-a-time times.
    pub p99: Vec<f64>,
    /// Each query, dispatch → outcome, [`SPACED_GAP`] after the previous outcome.
    pub spaced: Vec<f64>,
    /// Per round: the 99th percentile of its spaced times.
    pub spaced_p99: Vec<f64>,
    /// Per burst: the process's CPU time over the burst / its events, seconds.
    pub cpu: Vec<f64>,
    /// Per round: the process's CPU time over its spaced queries / their count, seconds.
    pub cpu_spaced: Vec<f64>,
    /// Per burst: the process's minor page faults over the burst / its events.
    pub faults: Vec<f64>,
    /// After each round: VmRSS − VmRSS before the load, KiB.
    pub rss_added: Vec<f64>,
}

/// serf's forked shell handler, from section 5's code.
#[derive(Debug, Default)]
pub(crate) struct SerfSamples {
    pub cost: CostSamples,
    pub cpu: CpuSamples,
}

// ---------------------------------------------------------------- components

/// Where the section's components are built when `--wasm-dir` does not hold them.
fn build_dir() -> Result<PathBuf> {
    Ok(target_dir()?.join("handlers-langs"))
}

/// `DIR/NAME.wasm` if it is a file.
fn component_in(dir: &Path, lang: Lang) -> Option<PathBuf> {
    Some(dir.join(format!("{}.wasm", lang.name))).filter(|p| p.is_file())
}

/// The component of `lang`: `rust_echo` for Rust (the `echo` the bench builds), else
/// `--wasm-dir/NAME.wasm` when there, else built by `scripts/build-handlers.sh -lang KEY` into
/// the target directory (which installs the language's tools the first time; a component newer
/// than its sources is not rebuilt).
pub(crate) fn locate(lang: Lang, rust_echo: &Path, wasm_dir: Option<&Path>) -> Result<PathBuf> {
    if lang.key == "rust" {
        return Ok(rust_echo.to_path_buf());
    }
    if let Some(p) = wasm_dir.and_then(|d| component_in(d, lang)) {
        return Ok(p);
    }
    let root = repo_root();
    if !root.join("handlers").join(lang.name).is_dir() {
        bail!(
            "handlers/{} is not in this tree, and --wasm-dir holds no {}.wasm",
            lang.name,
            lang.name
        );
    }
    let out = build_dir()?;
    eprintln!(
        "[bench] building handlers/{} with scripts/build-handlers.sh -lang {} ...",
        lang.name, lang.key
    );
    // The script prints each component's path on stdout: keep it off the report (stdout).
    let stdout = {
        use std::os::fd::AsFd;
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating stderr")?
    };
    let status = Command::new(root.join("scripts/build-handlers.sh"))
        .args(["-lang", lang.key])
        .arg(&out)
        .stdout(Stdio::from(stdout))
        .status()
        .context("running scripts/build-handlers.sh")?;
    if !status.success() {
        bail!(
            "scripts/build-handlers.sh -lang {} failed ({status})",
            lang.key
        );
    }
    component_in(&out, lang).with_context(|| {
        format!(
            "{}.wasm missing in {} after the build",
            lang.name,
            out.display()
        )
    })
}

// ---------------------------------------------------------------- measuring

/// The query every event is: `echo`, payload [`PAYLOAD`].
const QUERY: &str = "echo";
const PAYLOAD: &[u8] = b"ping";

fn query(id: u32) -> Event {
    Event::Query(Query {
        id,
        name: QUERY.into(),
        payload: PAYLOAD.to_vec(),
        ltime: u64::from(id),
        source_node: "bench".into(),
    })
}

/// Replies counted by [`Answering`]: whole and equal to the payload, or not.
#[derive(Debug, Default)]
struct Replies {
    right: AtomicUsize,
    wrong: AtomicUsize,
    first_wrong: Mutex<Option<Vec<u8>>>,
}

/// A minimal embedder for a lone node that records each query's reply.
struct Answering(Arc<Replies>);

struct Sink {
    replies: Arc<Replies>,
    bytes: Vec<u8>,
}

#[hearsay_host::async_trait]
impl ReplySink for Sink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), ReplyError> {
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }
    async fn finish(self: Box<Self>) -> Result<(), ReplyError> {
        if self.bytes == PAYLOAD {
            self.replies.right.fetch_add(1, Ordering::Relaxed);
        } else {
            self.replies.wrong.fetch_add(1, Ordering::Relaxed);
            let mut first = self
                .replies
                .first_wrong
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            first.get_or_insert(self.bytes);
        }
        Ok(())
    }
}

#[hearsay_host::async_trait]
impl Embedder for Answering {
    async fn local_member(&self) -> Member {
        handlers::bench_member()
    }
    async fn members(&self) -> Vec<Member> {
        vec![handlers::bench_member()]
    }
    fn open_reply(&self, _: &Query) -> Result<Box<dyn ReplySink>, ReplyError> {
        Ok(Box::new(Sink {
            replies: self.0.clone(),
            bytes: Vec::new(),
        }))
    }
    async fn emit(&self, _: &str, _: &[u8], _: bool) -> Result<(), EmitError> {
        Err(EmitError::NotGranted)
    }
}

/// A host of 2 threads (as section 5's) with its disk cache in `cache`.
fn cached_host(cache: &Path) -> Result<Host> {
    Ok(Host::new(HostConfig {
        workers: 2,
        cache_dir: Some(cache.to_path_buf()),
        ..HostConfig::default()
    })?)
}

fn expect_cache(h: &hearsay_host::Handler, want: CacheOutcome) -> Result<()> {
    let got = h.info().cache;
    if got != want {
        bail!("the host's cache said {got:?}, expected {want:?}");
    }
    Ok(())
}

/// Spaced queries come this long after the previous outcome, when the handler's next instance
/// has long been made.
pub(crate) const SPACED_GAP: Duration = Duration::from_millis(10);

/// Lets the work a dropped host or a finished event left in the background (making the next
/// instance) end before the next figure starts.
fn settle() {
    std::thread::sleep(Duration::from_millis(100));
}

/// Every figure of one component.
pub(crate) fn measure(lang: Lang, path: &Path, plan: LangPlan) -> Result<LangSamples> {
    let mut out = LangSamples {
        size: std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .len() as f64,
        ..LangSamples::default()
    };
    let scratch = Scratch::new(&format!("lang-{}", lang.name))?;
    let replies = Arc::new(Replies::default());
    let emb: Arc<dyn Embedder> = Arc::new(Answering(replies.clone()));
    let mut sent = 0usize;
    let mut next_id = || {
        sent += 1;
        u32::try_from(sent).unwrap_or(u32::MAX)
    };

    // First starts: each into its own empty cache directory; the last one's entry is kept.
    let mut cache = PathBuf::new();
    for i in 0..plan.first_starts.max(1) {
        if !cache.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&cache);
        }
        cache = scratch.0.join(format!("cache-{i}"));
        let host = cached_host(&cache)?;
        let t0 = Instant::now();
        let h = load(&host, lang.name, path, 1, false)?;
        out.first_start.push(secs(t0.elapsed()));
        expect_cache(&h, CacheOutcome::Miss)?;
        drop(host);
        settle();
    }

    // Cached starts: a fresh host reading that entry, then the first query.
    for _ in 0..plan.cached_starts {
        let host = cached_host(&cache)?;
        let t0 = Instant::now();
        let h = load(&host, lang.name, path, 1, false)?;
        out.cached_start.push(secs(t0.elapsed()));
        expect_cache(&h, CacheOutcome::Hit)?;
        let answered = finish(&send(&host, &h, query(next_id()), &emb)?)?;
        out.first_answer
            .push(secs(answered.saturating_duration_since(t0)));
        drop(host);
        settle();
    }

    // Events: a host that loaded from the cache.
    let pid = std::process::id();
    let host = cached_host(&cache)?;
    let before = rss_kib(pid)?;
    let h = load(&host, lang.name, path, plan.events + 1, false)?;
    for _ in 0..plan.warmup {
        finish(&send(&host, &h, query(next_id()), &emb)?)?;
    }
    for _ in 0..plan.rounds {
        let mut times = Vec::with_capacity(plan.events);
        for _ in 0..plan.events {
            let t0 = Instant::now();
            let t = send(&host, &h, query(next_id()), &emb)?;
            times.push(secs(finish(&t)?.saturating_duration_since(t0)));
        }
        out.p99.push(p99(&times));
        out.per_event.extend(times);
        settle();
        let mut times = Vec::with_capacity(plan.events);
        let cpu0 = cpu_with_children_secs(pid)?;
        for _ in 0..plan.events {
            std::thread::sleep(SPACED_GAP);
            let t0 = Instant::now();
            let t = send(&host, &h, query(next_id()), &emb)?;
            times.push(secs(finish(&t)?.saturating_duration_since(t0)));
        }
        settle();
        out.cpu_spaced
            .push((cpu_with_children_secs(pid)? - cpu0) / plan.events as f64);
        out.spaced_p99.push(p99(&times));
        out.spaced.extend(times);
        // The burst: every event dispatched at once; CPU from before the first (the previous
        // event's next instance made) to after the last one's next instance.
        let (cpu0, faults0) = (cpu_with_children_secs(pid)?, minor_faults(pid)?);
        let tickets = (0..plan.events)
            .map(|_| send(&host, &h, query(next_id()), &emb))
            .collect::<Result<Vec<_>>>()?;
        for t in &tickets {
            finish(t)?;
        }
        settle();
        let cpu = cpu_with_children_secs(pid)? - cpu0;
        out.cpu.push(cpu / plan.events as f64);
        out.faults
            .push((minor_faults(pid)? - faults0) / plan.events as f64);
        out.rss_added.push(rss_kib(pid)? - before);
    }
    drop(host);
    let (right, wrong) = (
        replies.right.load(Ordering::Relaxed),
        replies.wrong.load(Ordering::Relaxed),
    );
    if wrong > 0 || right != sent {
        let first = replies
            .first_wrong
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        bail!(
            "{sent} queries: {right} replies equal to the payload, {wrong} not (first: {first:?})"
        );
    }
    Ok(out)
}

/// serf's shell handler, by section 5's code (the same plan): handler time per event and per
/// round's p99, then its CPU per event.
pub(crate) fn serf(
    tools: &Tools,
    plan: handlers::HandlerPlan,
    notes: &mut Vec<String>,
) -> SerfSamples {
    let what = "languages: serf's forked shell handler";
    let cost = crate::attempt(&format!("{what}, time"), "serf", notes, || {
        handlers::agent_cost(tools, None, Impl::Serf, plan)
    });
    let cpu = crate::attempt(&format!("{what}, CPU"), "serf", notes, || {
        handlers::agent_cpu(tools, None, Impl::Serf, plan)
    });
    SerfSamples {
        cost: cost.unwrap_or_default(),
        cpu: cpu.unwrap_or_default(),
    }
}

// ---------------------------------------------------------------- the section

fn median(samples: &[f64]) -> Option<f64> {
    Summary::of(samples).map(|s| s.median)
}

/// `met` / `missed` for a measured median against a bound (lower is better), or `not measured`.
fn verdict(measured: Option<f64>, bound: f64) -> &'static str {
    match measured {
        Some(m) if m <= bound => "met",
        Some(_) => "missed",
        None => "not measured",
    }
}

/// `serf's fork is 12× this` from two medians, or empty.
fn times_cheaper(serf: Option<f64>, hearsay: Option<f64>) -> Option<f64> {
    match (serf, hearsay) {
        (Some(s), Some(h)) if h > 0.0 => Some(s / h),
        _ => None,
    }
}

/// The anchor of a per-event p50 row.
fn p50_anchor(lang: Lang, serf: Option<f64>, hearsay: Option<f64>) -> String {
    let cheaper = times_cheaper(serf, hearsay);
    let measured = match cheaper {
        Some(x) => format!("serf's fork is {x:.1}× this"),
        None => "no ratio (serf or hearsay not measured)".to_owned(),
    };
    if !lang.has_goal() {
        return format!("host level; {measured}");
    }
    let cheap_enough = match cheaper {
        Some(x) if x >= GOAL_CHEAPER => "met",
        Some(_) => "missed",
        None => "not measured",
    };
    format!(
        "goal: p50 ≤ {} ({}), ≥ {GOAL_CHEAPER:.0}× cheaper than serf's fork ({cheap_enough}); \
host level; {measured}",
        Unit::Secs.fmt(GOAL_P50),
        verdict(hearsay, GOAL_P50)
    )
}

/// The section's rows: one block per figure, a row per language (components that could not be
/// measured have empty cells); serf's samples beside the per-event and CPU rows.
pub(crate) fn rows(results: &[(Lang, Option<LangSamples>)], serf: &SerfSamples) -> Vec<Row> {
    let empty = LangSamples::default();
    let each = |f: &dyn Fn(Lang, &LangSamples) -> Row| -> Vec<Row> {
        results
            .iter()
            .map(|(lang, s)| f(*lang, s.as_ref().unwrap_or(&empty)))
            .collect()
    };
    let serf_p50 = median(&serf.cost.per_event);
    let serf_cpu = median(&serf.cpu.handler);
    let mut rows = Vec::new();
    rows.extend(each(&|lang, s| {
        let size = if s.size > 0.0 { vec![s.size] } else { vec![] };
        let mut row =
            Row::new(&format!("component size, {}", lang.title()), 1, Unit::Bytes).hearsay(&size);
        if s.size > 0.0 {
            row = row.reference(format!("{:.0} bytes", s.size));
        }
        row
    }));
    rows.extend(each(&|lang, s| {
        Row::new(
            &format!("first start: load with an empty cache, {}", lang.title()),
            1,
            Unit::Secs,
        )
        .hearsay(&s.first_start)
        .reference("`Host::load`: read, compile (Cranelift), write the cache entry")
    }));
    rows.extend(each(&|lang, s| {
        let reference = if lang.has_goal() {
            format!(
                "goal: < {} ({}); a fresh host, `Host::load` from its disk cache",
                Unit::Secs.fmt(GOAL_CACHED_START),
                verdict(median(&s.cached_start), GOAL_CACHED_START)
            )
        } else {
            "a fresh host, `Host::load` from its disk cache".to_owned()
        };
        Row::new(
            &format!("cached start: load from the disk cache, {}", lang.title()),
            1,
            Unit::Secs,
        )
        .hearsay(&s.cached_start)
        .reference(reference)
    }));
    rows.extend(each(&|lang, s| {
        Row::new(
            &format!("cached start → first query answered, {}", lang.title()),
            1,
            Unit::Secs,
        )
        .hearsay(&s.first_answer)
        .reference("load, then the first query's outcome (its instance made after the load)")
    }));
    rows.extend(each(&|lang, s| {
        let mut row = Row::new(
            &format!("query per event, back to back (p50), {}", lang.title()),
            1,
            Unit::Secs,
        )
        .serf(&serf.cost.per_event)
        .hearsay(&s.per_event)
        .reference(p50_anchor(lang, serf_p50, median(&s.per_event)));
        if lang.has_goal() {
            row = row.headline();
        }
        row
    }));
    rows.extend(each(&|lang, s| {
        let reference = if lang.has_goal() {
            format!(
                "goal: p99 ≤ {} ({}); serf: p99 of a round too",
                Unit::Secs.fmt(GOAL_P99),
                verdict(median(&s.p99), GOAL_P99)
            )
        } else {
            "serf: p99 of a round too".to_owned()
        };
        Row::new(
            &format!(
                "query per event, back to back (p99 of a round), {}",
                lang.title()
            ),
            1,
            Unit::Secs,
        )
        .serf(&serf.cost.p99)
        .hearsay(&s.p99)
        .reference(reference)
    }));
    rows.extend(each(&|lang, s| {
        Row::new(
            &format!("query per event, 10 ms apart (p50), {}", lang.title()),
            1,
            Unit::Secs,
        )
        .serf(&serf.cost.per_event)
        .hearsay(&s.spaced)
        .reference(p50_anchor(lang, serf_p50, median(&s.spaced)))
    }));
    rows.extend(each(&|lang, s| {
        let reference = if lang.has_goal() {
            format!(
                "goal: p99 ≤ {} ({}); serf: p99 of a round of its events",
                Unit::Secs.fmt(GOAL_P99),
                verdict(median(&s.spaced_p99), GOAL_P99)
            )
        } else {
            "serf: p99 of a round of its events".to_owned()
        };
        Row::new(
            &format!(
                "query per event, 10 ms apart (p99 of a round), {}",
                lang.title()
            ),
            1,
            Unit::Secs,
        )
        .serf(&serf.cost.p99)
        .hearsay(&s.spaced_p99)
        .reference(reference)
    }));
    rows.extend(each(&|lang, s| {
        let cheaper = times_cheaper(serf_cpu, median(&s.cpu))
            .map(|x| format!("; serf's is {x:.1}× this"))
            .unwrap_or_default();
        Row::new(
            &format!("CPU per event, burst, {}", lang.title()),
            1,
            Unit::Secs,
        )
        .serf(&serf.cpu.handler)
        .hearsay(&s.cpu)
        .reference(format!(
            "hearsay: the bench process, making each event's instance included; serf: the \
agent's CPU with the handler − without{cheaper}"
        ))
    }));
    rows.extend(each(&|lang, s| {
        Row::new(
            &format!("CPU per event, 10 ms apart, {}", lang.title()),
            1,
            Unit::Secs,
        )
        .hearsay(&s.cpu_spaced)
        .reference("the bench process over the queries 10 ms apart (its threads parked and woken for each)")
    }));
    rows.extend(each(&|lang, s| {
        Row::new(
            &format!("minor page faults per event, burst, {}", lang.title()),
            1,
            Unit::Count(""),
        )
        .hearsay(&s.faults)
        .reference("the bench process's `minflt` over the burst / its events")
    }));
    rows.extend(each(&|lang, s| {
        Row::new(
            &format!("RSS added: loaded, after events, {}", lang.title()),
            1,
            Unit::KiB,
        )
        .hearsay(&s.rss_added)
        .reference("the bench's VmRSS after each round − before the load")
    }));
    rows
}

/// The section's prose.
pub(crate) fn intro(plan: LangPlan, hp: handlers::HandlerPlan) -> String {
    format!(
        "The `echo` handler written in each language hearsay's SDKs cover, measured at the \
handler host (`hearsay-host` in the bench process, 2 threads, no agent, like section 5's last \
row), beside serf's forked shell handler. The components: Rust `handlers/echo` (the `echo` of \
sections 3–7, cargo for wasm32-wasip2), C `handlers/echo-c` (clang, wasi-libc, wit-bindgen), \
Python `handlers/echo-python` (componentize-py: CPython and its standard library, snapshotted \
after the handler's module ran) and JavaScript `handlers/echo-js` (componentize-js: the \
StarlingMonkey engine, snapshotted by Wizer), built by `scripts/build-handlers.sh` or taken \
from `--wasm-dir`; each answers a query with its payload. Per component: its size. First \
start: `Host::load` into a fresh host whose disk cache (`HostConfig::cache_dir`) is empty, so \
it compiles the component and writes the cache entry ({} time(s), each into an empty \
directory). Cached start: `Host::load` of the same component in a fresh host reading that \
entry ({} time(s); the handler's `LoadInfo` is checked: a miss, then hits), and from the same \
start to the first query's outcome (the load returns before the handler's first instance is \
made, in the background); `Host::new` (engine, instance pool) is in neither. Per event, on a \
host that loaded from the cache, after {} untimed queries, {} round(s) of: {} queries `echo` \
(payload `ping`) back to back, each timed from `Host::dispatch` to the outcome on its ticket and \
the next dispatched as soon as that outcome is out; the same number {} ms apart (each \
dispatched 10 ms after the previous outcome); then a burst of {} dispatched at once. The \
bench's embedder records each reply, and every reply is checked to be the payload. Every event \
runs in a fresh instance: after each event the host tears the used instance down and makes the \
handler's next one, on the same task, before it takes the next event, so an event dispatched \
back to back waits for that too, while one 10 ms later finds its instance made but the threads \
parked (the machine's other work ran meanwhile: read those rows as what a lone event meets on a \
shared machine). CPU per event: the bench process's CPU time (every thread's `schedstat`) over \
the burst, from before it to after its last event's next instance was made, and over the \
queries 10 ms apart, each over its events: the guest's call, dispatch and reply, making each \
fresh instance and tearing the used one down, and, 10 ms apart, parking and waking threads. \
Page faults: the process's minor faults over the burst per event (the pages each fresh instance \
touches are mapped or copied anew). RSS added: the bench's VmRSS after each round − before the \
load (the pool's slots are reserved at `Host::new`; the compiled code, the instances' memory and \
the host's state are in it). serf: a lone `serf agent` with section 5's one-line shell handler, \
measured in this run by section 5's code ({} round(s) of {} events one at a time; {} burst(s) \
of {} for the CPU): its handler time runs from the agent's `Received event` line to the \
script's output line (a fork and exec of `/bin/sh` per event), and its CPU per event is the \
agent's with the handler − without (its reaped `sh` processes included). Caveat: hearsay's \
figures here are host level (no agent, no RPC, no log pipe) and serf's agent level, as in \
section 5's last row; section 5 times hearsay's agent the way it times serf's. The goal in the \
anchor column: the Python and JavaScript handlers at p50 ≤ {} and p99 ≤ {} per event (≥ {:.0}× \
cheaper than serf's fork), and a cached module's first start under {}.",
        plan.first_starts.max(1),
        plan.cached_starts,
        plan.warmup,
        plan.rounds,
        plan.events,
        SPACED_GAP.as_millis(),
        plan.events,
        hp.rounds,
        hp.events,
        hp.rounds,
        hp.cpu_events,
        Unit::Secs.fmt(GOAL_P50),
        Unit::Secs.fmt(GOAL_P99),
        GOAL_CHEAPER,
        Unit::Secs.fmt(GOAL_CACHED_START),
    )
}

/// Section 12: builds or finds each component, measures serf's fork and every component, and
/// renders the rows.
pub(crate) fn section(
    tools: &Tools,
    wasm_dir: Option<&Path>,
    plan: LangPlan,
    hp: handlers::HandlerPlan,
) -> Section {
    let mut sec = Section {
        title: "12. Handlers in every language".into(),
        intro: intro(plan, hp),
        ..Section::default()
    };
    let rust_echo = crate::guests::locate(wasm_dir).map(|g| g.echo);
    let serf = if tools.serf.is_some() {
        serf(tools, hp, &mut sec.notes)
    } else {
        sec.notes
            .push("serf was not measured (not installed or --no-serf).".to_owned());
        SerfSamples::default()
    };
    let mut results = Vec::new();
    for &lang in LANGS {
        let path = match &rust_echo {
            Ok(echo) => locate(lang, echo, wasm_dir),
            Err(e) => Err(anyhow::anyhow!(
                "the bench's components are unavailable: {}",
                crate::first_line(&format!("{e:#}"))
            )),
        };
        let samples = match path {
            Ok(path) => crate::attempt("languages", &lang.title(), &mut sec.notes, || {
                measure(lang, &path, plan)
            }),
            Err(e) => {
                sec.notes.push(format!(
                    "{}: not measured: {}",
                    lang.title(),
                    crate::first_line(&format!("{e:#}"))
                ));
                None
            }
        };
        results.push((lang, samples));
    }
    sec.rows = rows(&results, &serf);
    sec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(p50: f64, p99s: f64, cached: f64) -> LangSamples {
        LangSamples {
            size: 12_345_678.0,
            first_start: vec![20.0],
            cached_start: vec![cached; 3],
            first_answer: vec![cached + 0.01; 3],
            per_event: vec![p50; 5],
            p99: vec![p99s; 2],
            cpu: vec![p50 / 2.0; 2],
            cpu_spaced: vec![p50; 2],
            faults: vec![300.0; 2],
            spaced: vec![p50 * 2.0; 5],
            spaced_p99: vec![p99s * 2.0; 2],
            rss_added: vec![40_000.0],
        }
    }

    #[test]
    fn rows_carry_goals_ratios_and_headlines() {
        let serf = SerfSamples {
            cost: CostSamples {
                per_event: vec![1.5e-3; 3],
                p99: vec![3e-3],
                ..CostSamples::default()
            },
            cpu: CpuSamples {
                handler: vec![1.6e-3; 2],
                ..CpuSamples::default()
            },
        };
        let results = vec![
            (LANGS[0], Some(samples(20e-6, 50e-6, 0.004))),
            (LANGS[1], None),
            (LANGS[2], Some(samples(0.5e-3, 2e-3, 0.3))),
            (LANGS[3], Some(samples(0.2e-3, 0.8e-3, 0.7))),
        ];
        let rows = rows(&results, &serf);
        // 12 figures × 4 languages.
        assert_eq!(rows.len(), 48);
        let find = |prefix: &str, lang: Lang| {
            rows.iter()
                .find(|r| r.figure.starts_with(prefix) && r.figure.ends_with(&lang.title()))
                .unwrap_or_else(|| panic!("no row {prefix} for {}", lang.label))
        };
        let heads: Vec<&str> = Row::headlines(&rows).map(|r| r.figure.as_str()).collect();
        assert_eq!(
            heads,
            [
                "query per event, back to back (p50), Python `echo-python`",
                "query per event, back to back (p50), JavaScript `echo-js`"
            ]
        );
        let py = find("query per event, back to back (p50)", LANGS[2]);
        assert!(
            py.reference.contains("p50 ≤ 250 µs (missed)"),
            "{}",
            py.reference
        );
        assert!(py.reference.contains("cheaper than serf's fork (missed)"));
        assert!(py.reference.contains("serf's fork is 3.0× this"));
        let js = find("query per event, back to back (p50)", LANGS[3]);
        assert!(
            js.reference.contains("p50 ≤ 250 µs (met)"),
            "{}",
            js.reference
        );
        // 1.5 ms / 0.2 ms = 7.5× ≥ 6×.
        assert!(js.reference.contains("cheaper than serf's fork (met)"));
        let rust = find("query per event, back to back (p50)", LANGS[0]);
        assert!(!rust.reference.contains("goal"));
        assert!(rust.reference.contains("serf's fork is 75.0× this"));
        assert_eq!(rust.serf.unwrap().median, 1.5e-3);
        let p99 = find("query per event, back to back (p99", LANGS[3]);
        assert!(
            p99.reference.contains("p99 ≤ 1.0 ms (met)"),
            "{}",
            p99.reference
        );
        let cached = find("cached start: load", LANGS[3]);
        assert!(
            cached.reference.contains("< 500.0 ms (missed)"),
            "{}",
            cached.reference
        );
        let cached = find("cached start: load", LANGS[2]);
        assert!(cached.reference.contains("(met)"));
        // A language not measured: empty cells, and a verdict saying so.
        let c = find("query per event, back to back (p50)", LANGS[1]);
        assert!(c.hearsay.is_none() && c.serf.is_some());
        let size = find("component size", LANGS[1]);
        assert!(size.hearsay.is_none() && size.reference.is_empty());
        let size = find("component size", LANGS[2]);
        assert_eq!(Unit::Bytes.fmt(size.hearsay.unwrap().median), "12.35 MB");
        assert_eq!(size.reference, "12345678 bytes");
        let cpu = find("CPU per event", LANGS[0]);
        assert!(
            cpu.reference.ends_with("serf's is 160.0× this"),
            "{}",
            cpu.reference
        );
    }

    #[test]
    fn spaced_rows_name_the_gap() {
        // The rows and the prose say "10 ms apart".
        assert_eq!(SPACED_GAP, Duration::from_millis(10));
        let text = intro(LangPlan::new(true), crate::Plan::new(true).handlers);
        assert!(text.contains("the same number 10 ms apart"), "{text}");
        assert!(text.contains("1 round(s) of: 50 queries"), "{text}");
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(Some(0.25e-3), GOAL_P50), "met");
        assert_eq!(verdict(Some(0.26e-3), GOAL_P50), "missed");
        assert_eq!(verdict(None, GOAL_P50), "not measured");
        assert_eq!(times_cheaper(Some(3.0), Some(0.5)), Some(6.0));
        assert_eq!(times_cheaper(None, Some(0.5)), None);
        let a = p50_anchor(LANGS[2], None, Some(0.1e-3));
        assert!(a.contains("(met)") && a.contains("(not measured)"), "{a}");
    }

    #[test]
    fn components_are_found_by_name() {
        let dir = Scratch::new("lang-test").unwrap();
        assert_eq!(component_in(&dir.0, LANGS[2]), None);
        std::fs::write(dir.0.join("echo-python.wasm"), b"\0asm").unwrap();
        assert_eq!(
            component_in(&dir.0, LANGS[2]),
            Some(dir.0.join("echo-python.wasm"))
        );
        let rust = Path::new("/x/hearsay_handler_echo.wasm");
        assert_eq!(
            locate(LANGS[0], rust, Some(&dir.0)).unwrap(),
            rust.to_path_buf()
        );
        assert_eq!(
            locate(LANGS[2], rust, Some(&dir.0)).unwrap(),
            dir.0.join("echo-python.wasm")
        );
    }
}
