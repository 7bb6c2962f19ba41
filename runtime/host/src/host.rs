//! The host: one engine, the loaded handlers, and the worker pool that runs their events.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::{self, CacheOutcome};
use crate::embedder::Embedder;
use crate::epoch::EpochClock;
use crate::error::HostError;
use crate::event::Event;
use crate::invoke::{self, HandlerPre, Invocation, Outcome, Prepared, Run, TrapKind};
use crate::spec::{Grants, HandlerSpec, Limits, ModuleSource};
use crate::stats::{HandlerStats, Recorder};

/// Process-wide settings of the host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Worker threads running handlers. A handler runs one event at a time, so this is also how
    /// many handlers can be busy at once.
    pub workers: usize,
    /// Where precompiled components are cached; `None` compiles in memory on every load.
    pub cache_dir: Option<PathBuf>,
    /// The epoch tick: the granularity of handler deadlines.
    pub epoch_tick: Duration,
    /// The largest linear memory any handler may have (pool slot size), in bytes.
    pub max_memory_bytes: usize,
    /// Instances that can be alive at once (pooling allocator slots); at least `workers`.
    pub max_instances: u32,
    /// Enables fuel metering, so [`Limits::fuel`] can be used (costs some speed for every handler).
    pub fuel: bool,
    /// The wasm stack limit per invocation, in bytes; unbounded recursion traps here.
    pub max_wasm_stack: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            workers: 4,
            cache_dir: None,
            epoch_tick: Duration::from_millis(10),
            max_memory_bytes: 256 << 20,
            max_instances: 64,
            fuel: false,
            max_wasm_stack: 512 << 10,
        }
    }
}

/// Runs WebAssembly handlers. Cheap to share by reference; dropping it stops the workers after the
/// events they are running (each bounded by its deadline).
pub struct Host {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    ticker: Option<JoinHandle<()>>,
}

struct Shared {
    engine: Engine,
    linker: Linker<Invocation>,
    config: HostConfig,
    /// The checked disk cache, if `config.cache_dir` names one.
    cache: Option<cache::Cache>,
    pool: Mutex<PoolState>,
    wake: Condvar,
    /// Fresh instances made ahead of their events, across all handlers.
    spares: Arc<AtomicUsize>,
    /// At most this many spares: the pool's instance slots not reserved for the workers.
    spare_limit: usize,
    /// Advances the engine's epoch while guest code runs.
    clock: EpochClock,
}

#[derive(Default)]
struct PoolState {
    /// Handlers with queued events and no worker on them, in arrival order (round robin).
    ready: VecDeque<Arc<Slot>>,
    shutdown: bool,
}

/// A loaded handler. Clones refer to the same handler; [`Host::reload`] swaps its module in place.
#[derive(Clone)]
pub struct Handler {
    slot: Arc<Slot>,
}

struct Slot {
    name: Arc<str>,
    module: RwLock<Arc<Loaded>>,
    queue: Mutex<SlotQueue>,
    stats: Mutex<Recorder>,
    /// The instance the handler's next event runs in, made by a worker after the previous event
    /// (or at load), so that an event does not wait for instantiation.
    spare: Mutex<SpareState>,
}

#[derive(Default)]
enum SpareState {
    #[default]
    Empty,
    /// A fresh instance of `module`, never used.
    Ready {
        module: Arc<Loaded>,
        prepared: Prepared,
        _count: SpareCount,
    },
    /// Making an instance of `module` ahead of time failed (e.g. its start function traps): each
    /// event makes its own, and reports the failure, rather than the worker failing twice.
    Failed(Arc<Loaded>),
}

impl SpareState {
    /// The ready instance, if it is of `current` (the handler's module now).
    fn take_ready(&mut self, current: &Arc<Loaded>) -> Option<Prepared> {
        if !matches!(self, SpareState::Ready { module, .. } if Arc::ptr_eq(module, current)) {
            return None;
        }
        match std::mem::take(self) {
            SpareState::Ready { prepared, .. } => Some(prepared),
            _ => None,
        }
    }
}

/// One spare counted in [`Shared::spares`]; dropping it releases the count.
struct SpareCount(Arc<AtomicUsize>);

impl SpareCount {
    fn reserve(spares: &Arc<AtomicUsize>, limit: usize) -> Option<SpareCount> {
        spares
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| SpareCount(spares.clone()))
    }
}

impl Drop for SpareCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Default)]
struct SlotQueue {
    jobs: VecDeque<Job>,
    /// In the ready list or being run by a worker: at most one worker per handler, so a handler
    /// sees its events in order and a stuck handler holds one worker only.
    active: bool,
}

struct Loaded {
    pre: HandlerPre<Invocation>,
    limits: Limits,
    grants: Arc<Grants>,
    ticks: u64,
    info: LoadInfo,
}

/// Facts about a handler's current module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadInfo {
    /// sha256 of the component, lower-case hex.
    pub sha256: String,
    /// Component size in bytes.
    pub size: usize,
    /// How the compiled code was obtained.
    pub cache: CacheOutcome,
}

struct Job {
    event: Event,
    embedder: Arc<dyn Embedder>,
    done: mpsc::SyncSender<Outcome>,
}

/// The result of [`Host::dispatch`].
#[must_use = "a dropped event should be noticed (it is also counted in the handler's stats)"]
pub enum Dispatch {
    /// Queued; the ticket yields the outcome.
    Queued(Ticket),
    /// The handler's queue was full (or the host is stopping): the event was dropped and counted.
    Dropped,
}

/// Waits for one event's outcome. Dropping it is fine: the event still runs.
pub struct Ticket {
    rx: mpsc::Receiver<Outcome>,
}

impl Ticket {
    /// Waits up to `timeout`; `None` if it has not finished by then (or was abandoned at shutdown).
    pub fn wait(&self, timeout: Duration) -> Option<Outcome> {
        self.rx.recv_timeout(timeout).ok()
    }
}

impl Host {
    /// Builds the engine (pooling allocator, epoch interruption) and starts the epoch ticker and
    /// the workers.
    pub fn new(config: HostConfig) -> Result<Host, HostError> {
        if config.workers == 0 {
            return Err(HostError::Engine("workers must be at least 1".into()));
        }
        let engine = engine(&config)?;
        let linker = invoke::linker(&engine).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let cache = config
            .cache_dir
            .as_deref()
            .map(|d| cache::Cache::open(d, &engine))
            .transpose()?;
        let shared = Arc::new(Shared {
            cache,
            engine,
            linker,
            spare_limit: usize::try_from(instance_slots(&config))
                .unwrap_or(usize::MAX)
                .saturating_sub(config.workers),
            config,
            pool: Mutex::new(PoolState::default()),
            wake: Condvar::new(),
            spares: Arc::new(AtomicUsize::new(0)),
            clock: EpochClock::default(),
        });
        let ticker = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("hearsay-epoch".into())
                .spawn(move || {
                    let tick = shared.config.epoch_tick;
                    shared.clock.run(tick, || shared.engine.increment_epoch());
                })
                .map_err(HostError::Thread)?
        };
        let mut host = Host {
            shared,
            workers: Vec::new(),
            ticker: Some(ticker),
        };
        for i in 0..host.shared.config.workers {
            let shared = host.shared.clone();
            let worker = std::thread::Builder::new()
                .name(format!("hearsay-handler-{i}"))
                .spawn(move || worker(&shared))
                .map_err(HostError::Thread)?;
            host.workers.push(worker);
        }
        Ok(host)
    }

    /// Compiles (or loads from the cache) and pre-instantiates a handler.
    pub fn load(&self, spec: HandlerSpec) -> Result<Handler, HostError> {
        let name: Arc<str> = spec.name.as_str().into();
        let loaded = self.prepare(spec)?;
        tracing::info!(handler = %name, sha256 = %loaded.info.sha256, cache = ?loaded.info.cache, "handler loaded");
        let slot = Arc::new(Slot {
            name,
            module: RwLock::new(Arc::new(loaded)),
            queue: Mutex::new(SlotQueue::default()),
            stats: Mutex::new(Recorder::default()),
            spare: Mutex::new(SpareState::Empty),
        });
        // A worker makes the first event's instance now.
        self.activate(
            &slot,
            &mut slot.queue.lock().unwrap_or_else(|e| e.into_inner()),
        );
        Ok(Handler { slot })
    }

    /// Replaces `handler`'s module, limits and grants atomically: events already running finish on
    /// the old module, queued and later events run on the new one. Queue and stats are kept. On
    /// error the old module stays in place. The spec's name is ignored (the handler keeps its own).
    pub fn reload(&self, handler: &Handler, spec: HandlerSpec) -> Result<(), HostError> {
        let spec = HandlerSpec {
            name: handler.name().to_string(),
            ..spec
        };
        let loaded = self.prepare(spec)?;
        tracing::info!(handler = %handler.slot.name, sha256 = %loaded.info.sha256, cache = ?loaded.info.cache, "handler reloaded");
        *handler
            .slot
            .module
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        // The spare is of the old module: a worker replaces it (now, or after its current event).
        let slot = &handler.slot;
        self.activate(
            slot,
            &mut slot.queue.lock().unwrap_or_else(|e| e.into_inner()),
        );
        Ok(())
    }

    /// Puts `slot` on the ready list for a worker, unless a worker has it already. False when the
    /// host is stopping.
    fn activate(&self, slot: &Arc<Slot>, queue: &mut SlotQueue) -> bool {
        if queue.active {
            return true;
        }
        let mut pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.shutdown {
            return false;
        }
        queue.active = true;
        pool.ready.push_back(slot.clone());
        self.shared.wake.notify_one();
        true
    }

    /// Queues `event` for `handler`. Never blocks and never runs the handler on the caller's
    /// thread: a full queue drops the event (counted in [`Handler::stats`]).
    pub fn dispatch(
        &self,
        handler: &Handler,
        event: Event,
        embedder: Arc<dyn Embedder>,
    ) -> Dispatch {
        let slot = &handler.slot;
        let capacity = slot.current().limits.queue;
        let (done, rx) = mpsc::sync_channel(1);
        let mut queue = slot.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.jobs.len() >= capacity {
            drop(queue);
            slot.count_drop();
            tracing::warn!(handler = %slot.name, event = %event.describe(), "handler queue full; event dropped");
            return Dispatch::Dropped;
        }
        queue.jobs.push_back(Job {
            event,
            embedder,
            done,
        });
        if !self.activate(slot, &mut queue) {
            queue.jobs.pop_back();
            drop(queue);
            slot.count_drop();
            return Dispatch::Dropped;
        }
        Dispatch::Queued(Ticket { rx })
    }

    fn prepare(&self, spec: HandlerSpec) -> Result<Loaded, HostError> {
        let name = spec.name;
        let bytes = match spec.module {
            ModuleSource::Bytes(b) => b,
            ModuleSource::Path(path) => {
                std::fs::read(&path).map_err(|source| HostError::ReadModule {
                    name: name.clone(),
                    path,
                    source,
                })?
            }
        };
        check_limits(&name, &spec.limits, &self.shared.config)?;
        for d in &spec.grants.dirs {
            if !d.host.is_dir() {
                return Err(HostError::Grant {
                    name: name.clone(),
                    path: d.host.clone(),
                    reason: "not a directory".into(),
                });
            }
        }
        let (component, cache) = self.compile(&name, &bytes)?;
        let instance_pre = self
            .shared
            .linker
            .instantiate_pre(&component)
            .map_err(|e| HostError::Link {
                name: name.clone(),
                reason: format!("{e:#}"),
            })?;
        let pre = HandlerPre::new(instance_pre).map_err(|e| HostError::Link {
            name: name.clone(),
            reason: format!("{e:#}"),
        })?;
        let tick = self.shared.config.epoch_tick.as_nanos().max(1);
        let ticks = u64::try_from(spec.limits.timeout.as_nanos().div_ceil(tick))
            .unwrap_or(u64::MAX)
            .max(1);
        Ok(Loaded {
            pre,
            ticks,
            limits: spec.limits,
            grants: Arc::new(spec.grants),
            info: LoadInfo {
                sha256: cache::hex(&Sha256::digest(&bytes)),
                size: bytes.len(),
                cache,
            },
        })
    }

    fn compile(&self, name: &str, bytes: &[u8]) -> Result<(Component, CacheOutcome), HostError> {
        if !bytes.starts_with(b"\0asm") || bytes.len() < 8 {
            return Err(HostError::NotWasm { name: name.into() });
        }
        // Bytes 4..8 are the version and layer: layer 0 is a core module, 1 a component.
        if bytes[6..8] == [0, 0] {
            return Err(HostError::CoreModule { name: name.into() });
        }
        let engine = &self.shared.engine;
        let compile = || {
            Component::new(engine, bytes).map_err(|e| HostError::Compile {
                name: name.into(),
                reason: format!("{e:#}"),
            })
        };
        let Some(cache) = &self.shared.cache else {
            return Ok((compile()?, CacheOutcome::Disabled));
        };
        let sha: [u8; 32] = Sha256::digest(bytes).into();
        let outcome = match cache.load(engine, &sha) {
            Ok(Some(component)) => return Ok((component, CacheOutcome::Hit)),
            Ok(None) => CacheOutcome::Miss,
            Err(()) => CacheOutcome::Corrupt,
        };
        let component = compile()?;
        cache.store(&component, &sha);
        Ok((component, outcome))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        {
            let mut pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.shutdown = true;
            pool.ready.clear();
        }
        self.shared.wake.notify_all();
        // The ticker keeps running until the workers are gone, so running guests still meet
        // their deadlines.
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        self.shared.clock.stop();
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

impl Handler {
    /// The handler's name.
    pub fn name(&self) -> &str {
        &self.slot.name
    }

    /// A snapshot of the handler's counters and latencies.
    pub fn stats(&self) -> HandlerStats {
        self.slot
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot()
    }

    /// Facts about the current module (hash, size, cache use).
    pub fn info(&self) -> LoadInfo {
        self.slot.current().info.clone()
    }

    /// Events waiting in the handler's queue.
    pub fn queued(&self) -> usize {
        self.slot
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .jobs
            .len()
    }
}

fn check_limits(name: &str, limits: &Limits, config: &HostConfig) -> Result<(), HostError> {
    let bad = |reason: String| {
        Err(HostError::Limits {
            name: name.into(),
            reason,
        })
    };
    if limits.memory_bytes > config.max_memory_bytes {
        return bad(format!(
            "memory {} exceeds the host's maximum {}",
            limits.memory_bytes, config.max_memory_bytes
        ));
    }
    if limits.fuel.is_some() && !config.fuel {
        return bad("fuel limit set but the host runs without fuel metering".into());
    }
    if limits.queue == 0 {
        return bad("queue must hold at least one event".into());
    }
    if limits.timeout.is_zero() {
        return bad("timeout must be positive".into());
    }
    Ok(())
}

/// Linear memory kept resident between instances of a pool slot when the kernel can say which
/// pages an instance wrote: covers a Rust guest's 1 MiB stack, its data and a small heap.
const KEEP_RESIDENT: usize = 2 << 20;

/// Instance slots of the pool: at least one per worker.
fn instance_slots(config: &HostConfig) -> u32 {
    config
        .max_instances
        .max(u32::try_from(config.workers).unwrap_or(u32::MAX))
}

/// The engine, resetting pool slots with Linux's `PAGEMAP_SCAN` (6.7+) where the kernel has it:
/// then only the pages an instance dirtied are restored, and they stay resident, so the next
/// instance neither pays `madvise` nor page faults. Elsewhere slots are reset by `madvise`.
fn engine(config: &HostConfig) -> Result<Engine, HostError> {
    build_engine(config, true).or_else(|e| {
        tracing::debug!(error = %e, "PAGEMAP_SCAN not available; handler memory is reset by madvise");
        build_engine(config, false)
    })
}

fn build_engine(config: &HostConfig, pagemap_scan: bool) -> Result<Engine, HostError> {
    let mut pool = PoolingAllocationConfig::new();
    let instances = instance_slots(config);
    // A Rust wasip2 component holds a few core instances (its module plus adapter shims) and
    // tables; one memory per instance in practice.
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(8))
        .max_memory_size(config.max_memory_bytes);
    if pagemap_scan {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
    }
    let mut c = Config::new();
    c.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(config.fuel)
        .max_wasm_stack(config.max_wasm_stack)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&c).map_err(|e| HostError::Engine(format!("{e:#}")))
}

fn worker(shared: &Shared) {
    loop {
        let slot = {
            let mut pool = shared.pool.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if pool.shutdown {
                    return;
                }
                if let Some(slot) = pool.ready.pop_front() {
                    break slot;
                }
                pool = shared.wake.wait(pool).unwrap_or_else(|e| e.into_inner());
            }
        };
        let job = slot
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .jobs
            .pop_front();
        {
            // Both run guest code: the event's instance and, unless one is ready, the next.
            let _running = shared.clock.running();
            if let Some(job) = job {
                run(shared, &slot, job);
            }
            refill(shared, &slot);
        }
        let mut queue = slot.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.jobs.is_empty() {
            queue.active = false;
        } else {
            // Back of the line: other handlers' events get a worker first.
            let mut pool = shared.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.ready.push_back(slot.clone());
            shared.wake.notify_one();
        }
    }
}

impl Slot {
    fn current(&self) -> Arc<Loaded> {
        self.module
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn count_drop(&self) {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counters
            .drops += 1;
    }

    fn spare(&self) -> std::sync::MutexGuard<'_, SpareState> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Loaded {
    fn run<'a>(&'a self, shared: &'a Shared, name: &Arc<str>) -> Run<'a> {
        Run {
            engine: &shared.engine,
            pre: &self.pre,
            handler: name.clone(),
            limits: &self.limits,
            grants: self.grants.clone(),
            ticks: self.ticks,
            fuel_enabled: shared.config.fuel,
        }
    }
}

/// Makes the instance of `slot`'s next event unless it has one of its current module (or making
/// one failed for that module), within the pool's spare slots.
fn refill(shared: &Shared, slot: &Slot) {
    let loaded = slot.current();
    let mut spare = slot.spare();
    match &*spare {
        SpareState::Ready { module, .. } | SpareState::Failed(module)
            if Arc::ptr_eq(module, &loaded) =>
        {
            return
        }
        _ => *spare = SpareState::Empty,
    }
    let Some(count) = SpareCount::reserve(&shared.spares, shared.spare_limit) else {
        return;
    };
    *spare = match loaded.run(shared, &slot.name).prepare() {
        Ok(prepared) => SpareState::Ready {
            module: loaded,
            prepared,
            _count: count,
        },
        Err(outcome) => {
            tracing::debug!(handler = %slot.name, ?outcome, "could not make an instance ahead of its event");
            SpareState::Failed(loaded)
        }
    };
}

fn run(shared: &Shared, slot: &Slot, job: Job) {
    let loaded = slot.current();
    let describe = job.event.describe();
    let started = Instant::now();
    let run = loaded.run(shared, &slot.name);
    let spare = slot.spare().take_ready(&loaded);
    let prepared = match spare {
        Some(p) => Ok(p),
        None => run.prepare().inspect(|_| {
            // It works again (e.g. a granted directory is back): let the worker make spares.
            let mut state = slot.spare();
            if matches!(*state, SpareState::Failed(_)) {
                *state = SpareState::Empty;
            }
        }),
    };
    let (outcome, spent) = match prepared {
        Ok(mut p) => (run.call(&mut p, job.event, job.embedder), Some(p)),
        Err(outcome) => (outcome, None),
    };
    let elapsed = started.elapsed();
    {
        let mut stats = slot.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.record_latency(elapsed);
        let c = &mut stats.counters;
        c.invocations += 1;
        match &outcome {
            Outcome::Ok => c.ok += 1,
            Outcome::GuestError(_) => c.errors += 1,
            Outcome::Trap { kind, .. } => {
                c.traps += 1;
                if *kind == TrapKind::Deadline {
                    c.timeouts += 1;
                }
            }
        }
    }
    match &outcome {
        Outcome::Ok => {
            tracing::debug!(handler = %slot.name, event = %describe, ?elapsed, "handler ok")
        }
        Outcome::GuestError(msg) => {
            tracing::warn!(handler = %slot.name, event = %describe, error = %msg, "handler returned an error")
        }
        Outcome::Trap { kind, message } => {
            tracing::warn!(handler = %slot.name, event = %describe, ?kind, error = %message, "handler trapped")
        }
    }
    let _ = job.done.try_send(outcome);
    // The instance is torn down after its outcome is out.
    drop(spent);
}
