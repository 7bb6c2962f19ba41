//! The host: one engine, the loaded handlers, and the async runtime their events run on.
//!
//! Every event is a task on the host's own tokio runtime (never the embedder's): wasmtime runs
//! the guest on a fiber that yields at every epoch tick, and WASI and the embedder's calls are
//! async, so a guest that sleeps or waits on a slow asker holds no thread. One wall-clock
//! deadline bounds the whole event: guest code traps at the first tick past it, and the task's
//! timeout drops the event (and its instance) wherever it waits.
//!
//! Each handler has its own queue and its own concurrency limit: at most `concurrency` tasks
//! drain its queue, so a stuck handler holds only its own tasks, and the runtime shares its
//! threads between the handlers that have work.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::runtime::Runtime;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::budget::MemoryBudget;
use crate::cache::{self, CacheOutcome};
use crate::embedder::Embedder;
use crate::epoch::EpochClock;
use crate::error::HostError;
use crate::event::Event;
use crate::guest_log::LogBudget;
use crate::http::HttpAllow;
use crate::invoke::{self, Contract, HandlerPre, Invocation, Outcome, Prepared, Run, TrapKind};
use crate::kv::{KvStore, KvStores};
use crate::quota::SharedQuota;
use crate::spec::{Grants, HandlerSpec, Limits, ModuleSource};
use crate::stats::{HandlerStats, Recorder};

/// Process-wide settings of the host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Threads of the host's runtime, shared by all handlers' events. A guest running wasm holds
    /// one for at most an epoch tick at a time; a guest waiting (sleeping, replying to a slow
    /// asker) holds none.
    pub workers: usize,
    /// Where precompiled components are cached; `None` compiles in memory on every load.
    pub cache_dir: Option<PathBuf>,
    /// The epoch tick: the granularity of handler deadlines and how long guest code runs before
    /// it yields its thread to other events.
    pub epoch_tick: Duration,
    /// The largest linear memory any handler may have (pool slot size), in bytes.
    pub max_memory_bytes: usize,
    /// The linear memory of all live instances together, in bytes (`handler_memory_total`):
    /// growth past it traps the instance that asked, naming this cap.
    pub memory_total: usize,
    /// Instances that can be alive at once (pooling allocator slots).
    pub max_instances: u32,
    /// Enables fuel metering, so [`Limits::fuel`] can be used (costs some speed for every handler).
    pub fuel: bool,
    /// The wasm stack limit per invocation, in bytes; unbounded recursion traps here.
    pub max_wasm_stack: usize,
    /// Guest log lines a handler may write per second, across its events.
    pub log_lines_per_second: u32,
    /// Guest log lines one event may write.
    pub log_lines_per_event: u32,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            workers: 2,
            cache_dir: None,
            epoch_tick: Duration::from_millis(10),
            max_memory_bytes: 256 << 20,
            memory_total: 1 << 30,
            max_instances: 64,
            fuel: false,
            max_wasm_stack: 512 << 10,
            log_lines_per_second: 50,
            log_lines_per_event: 200,
        }
    }
}

/// Runs WebAssembly handlers. Cheap to share by reference; dropping it abandons the events still
/// running or queued (their instances are torn down without waiting for them).
pub struct Host {
    shared: Arc<Shared>,
    runtime: Option<Runtime>,
    ticker: Option<JoinHandle<()>>,
}

struct Shared {
    engine: Engine,
    linker: Linker<Invocation>,
    config: HostConfig,
    /// The checked disk cache, if `config.cache_dir` names one.
    cache: Option<cache::Cache>,
    runtime: tokio::runtime::Handle,
    stopping: AtomicBool,
    /// Fresh instances made ahead of their events, across all handlers.
    spares: Arc<AtomicUsize>,
    /// At most this many spares: half the pool's instance slots, the rest kept for events.
    spare_limit: usize,
    /// Advances the engine's epoch while guest code runs.
    clock: Arc<EpochClock>,
    memory: Arc<MemoryBudget>,
    /// The key-value stores handlers hold open.
    kv: KvStores,
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
    /// The instance the handler's next event runs in, made after the previous event (or at
    /// load), so that an event does not wait for instantiation.
    spare: Mutex<SpareState>,
    /// Events running now, by sequence number, with their start.
    running: Mutex<BTreeMap<u64, Instant>>,
    next_seq: AtomicU64,
    log: Arc<LogBudget>,
}

#[derive(Default)]
enum SpareState {
    #[default]
    Empty,
    /// An instance of `module` is being made.
    Making(Arc<Loaded>),
    /// A fresh instance of `module`, never used.
    Ready {
        module: Arc<Loaded>,
        prepared: Box<Prepared>,
        _count: SpareCount,
    },
    /// Making an instance of `module` ahead of time failed (e.g. its start function traps): each
    /// event makes its own, and reports the failure, rather than failing twice.
    Failed(Arc<Loaded>),
}

impl SpareState {
    /// The ready instance, if it is of `current` (the handler's module now).
    fn take_ready(&mut self, current: &Arc<Loaded>) -> Option<Prepared> {
        if !matches!(self, SpareState::Ready { module, .. } if Arc::ptr_eq(module, current)) {
            return None;
        }
        match std::mem::take(self) {
            SpareState::Ready { prepared, .. } => Some(*prepared),
            _ => None,
        }
    }

    /// The module this state is about, unless it is empty.
    fn module(&self) -> Option<&Arc<Loaded>> {
        match self {
            SpareState::Empty => None,
            SpareState::Making(m) | SpareState::Failed(m) | SpareState::Ready { module: m, .. } => {
                Some(m)
            }
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
    /// Tasks draining the queue: at most the handler's concurrency.
    tasks: usize,
    /// Of those, the tasks running an event now (the others are about to take one or end).
    busy: usize,
}

struct Loaded {
    pre: HandlerPre,
    limits: Limits,
    grants: Arc<Grants>,
    /// `grants.http`, shared by every instance's outbound HTTP policy.
    http: Arc<[HttpAllow]>,
    /// The capacity it shares with other handlers, if any.
    quota: Option<Arc<SharedQuota>>,
    kv: Option<Arc<KvStore>>,
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
    /// The contract version the component was built against.
    pub contract: Contract,
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
    /// Waits up to `timeout` (blocking the calling thread); `None` if it has not finished by then
    /// (or was abandoned at shutdown).
    pub fn wait(&self, timeout: Duration) -> Option<Outcome> {
        self.rx.recv_timeout(timeout).ok()
    }
}

impl Host {
    /// Builds the engine (pooling allocator, epoch interruption), the runtime guests run on and
    /// the epoch ticker.
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.workers)
            .thread_name("hearsay-handler")
            // WASI file I/O of guests runs here; bounded so guests cannot spawn threads at will.
            .max_blocking_threads(16)
            .enable_all()
            .build()
            .map_err(HostError::Thread)?;
        let shared = Arc::new(Shared {
            cache,
            engine,
            linker,
            runtime: runtime.handle().clone(),
            stopping: AtomicBool::new(false),
            spare_limit: usize::try_from(instance_slots(&config) / 2).unwrap_or(usize::MAX),
            memory: Arc::new(MemoryBudget::new(config.memory_total)),
            config,
            spares: Arc::new(AtomicUsize::new(0)),
            clock: Arc::new(EpochClock::default()),
            kv: KvStores::default(),
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
        Ok(Host {
            shared,
            runtime: Some(runtime),
            ticker: Some(ticker),
        })
    }

    /// Compiles (or loads from the cache) and pre-instantiates a handler. Blocking: call it off
    /// an async runtime's threads.
    pub fn load(&self, spec: HandlerSpec) -> Result<Handler, HostError> {
        let name: Arc<str> = spec.name.as_str().into();
        let loaded = self.prepare(spec)?;
        tracing::info!(handler = %name, sha256 = %loaded.info.sha256, cache = ?loaded.info.cache, "handler loaded");
        let config = &self.shared.config;
        let slot = Arc::new(Slot {
            name,
            module: RwLock::new(Arc::new(loaded)),
            queue: Mutex::new(SlotQueue::default()),
            stats: Mutex::new(Recorder::default()),
            spare: Mutex::new(SpareState::Empty),
            running: Mutex::new(BTreeMap::new()),
            next_seq: AtomicU64::new(0),
            log: Arc::new(LogBudget::new(
                config.log_lines_per_second,
                config.log_lines_per_event,
            )),
        });
        self.make_spare(&slot);
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
        // The spare is of the old module: make one of the new.
        self.make_spare(&handler.slot);
        // A raised concurrency lets queued events start now.
        self.start_tasks(&handler.slot, &mut handler.slot.queue());
        Ok(())
    }

    /// Makes `slot`'s next instance in the background.
    fn make_spare(&self, slot: &Arc<Slot>) {
        if self.shared.stopping.load(Ordering::Acquire) {
            return;
        }
        let (shared, slot) = (self.shared.clone(), slot.clone());
        self.shared
            .runtime
            .spawn(async move { refill(&shared, &slot).await });
    }

    /// Starts tasks for queued events up to the handler's concurrency.
    fn start_tasks(&self, slot: &Arc<Slot>, queue: &mut SlotQueue) {
        let concurrency = slot.current().limits.concurrency;
        // A task not running an event takes the next one: start tasks only for events no idle
        // task will take.
        while queue.tasks < concurrency && queue.tasks - queue.busy < queue.jobs.len() {
            queue.tasks += 1;
            let (shared, slot) = (self.shared.clone(), slot.clone());
            self.shared
                .runtime
                .spawn(async move { drain(&shared, &slot).await });
        }
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
        let mut queue = slot.queue();
        if self.shared.stopping.load(Ordering::Acquire) || queue.jobs.len() >= capacity {
            drop(queue);
            if let Some(dropped) = slot.count_drop() {
                tracing::warn!(handler = %slot.name, event = %event.describe(), dropped, capacity, "handler queue full; events dropped (warned at most once a second)");
            }
            return Dispatch::Dropped;
        }
        queue.jobs.push_back(Job {
            event,
            embedder,
            done,
        });
        self.start_tasks(slot, &mut queue);
        Dispatch::Queued(Ticket { rx })
    }

    /// Linear memory of all live instances now, in bytes (charged against
    /// [`HostConfig::memory_total`]).
    pub fn memory_in_use(&self) -> usize {
        self.shared.memory.used()
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
        for d in spec.grants.dirs.iter().chain(&spec.grants.write_dirs) {
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
        let contract = pre.contract();
        let grants = &spec.grants;
        let needs_v2 =
            !grants.commands.is_empty() || grants.kv.is_some() || !grants.tags.is_empty();
        if contract < Contract::V0_2 && needs_v2 {
            return Err(HostError::Capability {
                name,
                reason: format!(
                    "grants.commands, grants.kv and grants.tags need a component built against contract 0.2.0; this one is {contract}"
                ),
            });
        }
        let kv =
            match &grants.kv {
                None => None,
                Some(g) => Some(self.shared.kv.get(&g.path, g.quota).map_err(|e| {
                    HostError::Capability {
                        name: name.clone(),
                        reason: format!("grants.kv: {e}"),
                    }
                })?),
            };
        Ok(Loaded {
            pre,
            limits: spec.limits,
            http: Arc::from(spec.grants.http.as_slice()),
            quota: spec.quota,
            grants: Arc::new(spec.grants),
            kv,
            info: LoadInfo {
                sha256: cache::hex(&Sha256::digest(&bytes)),
                size: bytes.len(),
                cache,
                contract,
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
        self.shared.stopping.store(true, Ordering::Release);
        // Abandon what runs: tasks are dropped where they wait, each at its next yield (guest
        // code yields every epoch tick), and nothing waits for them.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
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

    /// A snapshot of the handler's counters and latencies, and of the events running now.
    pub fn stats(&self) -> HandlerStats {
        let mut stats = self
            .slot
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot();
        let running = self.slot.running.lock().unwrap_or_else(|e| e.into_inner());
        stats.running = running.len() as u64;
        stats.oldest_running = running.values().min().map(|t| t.elapsed());
        stats.log_suppressed = self.slot.log.suppressed();
        stats
    }

    /// Facts about the current module (hash, size, cache use).
    pub fn info(&self) -> LoadInfo {
        self.slot.current().info.clone()
    }

    /// Events waiting in the handler's queue.
    pub fn queued(&self) -> usize {
        self.slot.queue().jobs.len()
    }

    /// Whether an event of this handler is waiting or running.
    pub fn busy(&self) -> bool {
        let queue = self.slot.queue();
        !queue.jobs.is_empty() || queue.busy > 0
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
    if limits.concurrency == 0 {
        return bad("concurrency must be at least 1".into());
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
/// pages an instance wrote (only those are reset, by copying): covers a Rust guest's 1 MiB stack,
/// its data and heap, and the part of a Python or JavaScript guest's 10-18 MB heap image an event
/// writes to. In one measurement (events 5 ms apart) a Python echo's event took 1.8 ms at 2 MiB
/// and 0.9 ms at 16 MiB (p50, host level); the benchmark has not confirmed it (BENCHMARKS.md §12).
const KEEP_RESIDENT: usize = 16 << 20;

/// Instance slots of the pool.
fn instance_slots(config: &HostConfig) -> u32 {
    config.max_instances.max(2)
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
        // One fiber stack per instance being made or running an event.
        .total_stacks(instances)
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

/// A task of `slot`: runs its queued events one after another until the queue is empty (or the
/// handler's concurrency was lowered below the tasks running).
async fn drain(shared: &Arc<Shared>, slot: &Arc<Slot>) {
    let mut ran = false;
    loop {
        let job = {
            let mut queue = slot.queue();
            if ran {
                queue.busy -= 1;
            }
            let concurrency = slot.current().limits.concurrency;
            let next = if queue.tasks > concurrency {
                None
            } else {
                queue.jobs.pop_front()
            };
            let Some(job) = next else {
                queue.tasks -= 1;
                return;
            };
            queue.busy += 1;
            job
        };
        ran = true;
        run(shared, slot, job).await;
        refill(shared, slot).await;
    }
}

impl Slot {
    fn current(&self) -> Arc<Loaded> {
        self.module
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn queue(&self) -> MutexGuard<'_, SlotQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a dropped event; how many drops a warning should name now, if one is due.
    fn count_drop(&self) -> Option<u64> {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record_drop(Instant::now())
    }

    fn spare(&self) -> MutexGuard<'_, SpareState> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks an event running (for `hearsay handlers`) until the guard is dropped.
    fn enter(&self, started: Instant) -> RunningEvent<'_> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(seq, started);
        RunningEvent { slot: self, seq }
    }
}

/// One event listed as running; dropping it (the event ended or was abandoned) unlists it.
struct RunningEvent<'a> {
    slot: &'a Slot,
    seq: u64,
}

impl Drop for RunningEvent<'_> {
    fn drop(&mut self) {
        self.slot
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.seq);
    }
}

impl Loaded {
    fn run<'a>(&'a self, shared: &'a Shared, slot: &Slot) -> Run<'a> {
        Run {
            engine: &shared.engine,
            pre: &self.pre,
            handler: slot.name.clone(),
            limits: &self.limits,
            grants: self.grants.clone(),
            http: self.http.clone(),
            quota: self.quota.clone(),
            kv: self.kv.clone(),
            fuel_enabled: shared.config.fuel,
            memory: shared.memory.clone(),
            log: slot.log.clone(),
        }
    }
}

/// Makes the instance of `slot`'s next event unless it has one of its current module (or one is
/// being made, or making one failed for that module), within the pool's spare slots. Bounded by
/// the handler's timeout, like an event.
async fn refill(shared: &Shared, slot: &Slot) {
    let loaded = slot.current();
    {
        let mut spare = slot.spare();
        if spare.module().is_some_and(|m| Arc::ptr_eq(m, &loaded)) {
            return;
        }
        *spare = SpareState::Making(loaded.clone());
    }
    let made = match SpareCount::reserve(&shared.spares, shared.spare_limit) {
        None => SpareState::Empty,
        Some(count) => {
            let _running = shared.clock.running();
            let deadline = Instant::now() + loaded.limits.timeout;
            let run = loaded.run(shared, slot);
            match tokio::time::timeout_at(deadline.into(), run.prepare(deadline)).await {
                Ok(Ok(prepared)) => SpareState::Ready {
                    module: loaded.clone(),
                    prepared: Box::new(prepared),
                    _count: count,
                },
                Ok(Err(outcome)) => {
                    tracing::debug!(handler = %slot.name, ?outcome, "could not make an instance ahead of its event");
                    SpareState::Failed(loaded.clone())
                }
                Err(_) => {
                    tracing::debug!(handler = %slot.name, "making an instance ahead of its event passed the deadline");
                    SpareState::Failed(loaded.clone())
                }
            }
        }
    };
    let mut spare = slot.spare();
    // Unless a reload came in between, this is the handler's spare now.
    if matches!(&*spare, SpareState::Making(m) if Arc::ptr_eq(m, &loaded)) {
        *spare = made;
    }
}

/// Runs one event: in the spare instance or a fresh one, bounded as a whole by the handler's
/// timeout; records and logs the outcome, and hands it to the ticket.
async fn run(shared: &Shared, slot: &Slot, job: Job) {
    let loaded = slot.current();
    let describe = job.event.describe();
    // A shared quota's instance first: the event's deadline counts from when it may run. While
    // it waits, the handler's later events queue, and past its queue are dropped and counted.
    let _instance = match &loaded.quota {
        Some(q) => q.instance().await,
        None => None,
    };
    let started = Instant::now();
    let timeout = loaded.limits.timeout;
    let deadline = started + timeout;
    let listed = slot.enter(started);
    let run = loaded.run(shared, slot);
    let spare = slot.spare().take_ready(&loaded);
    let event_log = Arc::new(Mutex::new(Default::default()));
    let work = {
        let (run, event_log) = (&run, event_log.clone());
        async move {
            let _running = shared.clock.running();
            let mut prepared = match spare {
                Some(p) => p,
                None => {
                    let p = run.prepare(deadline).await?;
                    // It works again (e.g. a granted directory is back): make spares again.
                    let mut state = slot.spare();
                    if matches!(*state, SpareState::Failed(_)) {
                        *state = SpareState::Empty;
                    }
                    p
                }
            };
            prepared.set_event_log(event_log);
            let outcome = run
                .call(&mut prepared, job.event, job.embedder, deadline)
                .await;
            Ok::<_, Outcome>((outcome, prepared))
        }
    };
    let (outcome, spent) = match tokio::time::timeout_at(deadline.into(), work).await {
        Ok(Ok((outcome, prepared))) => (outcome, Some(prepared)),
        Ok(Err(outcome)) => (outcome, None),
        // Dropped where it waited: in a host call, a sleep, or a write to a slow asker.
        Err(_) => (
            Outcome::Trap {
                kind: TrapKind::Deadline,
                message: format!(
                    "deadline of {timeout:?} passed while the guest waited outside wasm (a host call, a sleep or a reply)"
                ),
            },
            None,
        ),
    };
    let elapsed = started.elapsed();
    drop(listed);
    record(slot, &outcome, elapsed);
    log_outcome(slot, &describe, &outcome, elapsed);
    if let Some(summary) = event_log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .summary(&slot.log)
    {
        tracing::warn!(handler = %slot.name, event = %describe, "{summary}");
    }
    let _ = job.done.try_send(outcome);
    // The instance is torn down after its outcome is out.
    drop(spent);
}

fn record(slot: &Slot, outcome: &Outcome, elapsed: Duration) {
    let mut stats = slot.stats.lock().unwrap_or_else(|e| e.into_inner());
    stats.record_latency(elapsed);
    let c = &mut stats.counters;
    c.invocations += 1;
    match outcome {
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

fn log_outcome(slot: &Slot, describe: &str, outcome: &Outcome, elapsed: Duration) {
    match outcome {
        Outcome::Ok => {
            tracing::debug!(handler = %slot.name, event = %describe, ?elapsed, "handler ok")
        }
        Outcome::GuestError(msg) => {
            let msg = crate::guest_log::sanitize(msg, 4 << 10);
            tracing::warn!(handler = %slot.name, event = %describe, error = %msg, "handler returned an error")
        }
        Outcome::Trap {
            kind: TrapKind::Deadline,
            message,
        } => {
            tracing::warn!(handler = %slot.name, event = %describe, ?elapsed, error = %message, "handler timed out")
        }
        Outcome::Trap { kind, message } => {
            tracing::warn!(handler = %slot.name, event = %describe, ?kind, error = %message, "handler trapped")
        }
    }
}
