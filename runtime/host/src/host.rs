//! The host: one engine, the loaded handlers, and the worker pool that runs their events.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::{self, CacheOutcome};
use crate::embedder::Embedder;
use crate::error::HostError;
use crate::event::Event;
use crate::invoke::{self, HandlerPre, Invocation, Outcome, Run, TrapKind};
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
    ticker_stop: Arc<AtomicBool>,
}

struct Shared {
    engine: Engine,
    linker: Linker<Invocation>,
    config: HostConfig,
    engine_key: String,
    pool: Mutex<PoolState>,
    wake: Condvar,
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
        let shared = Arc::new(Shared {
            engine_key: cache::engine_key(&engine),
            engine,
            linker,
            config,
            pool: Mutex::new(PoolState::default()),
            wake: Condvar::new(),
        });
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, stop, tick) = (
                shared.engine.clone(),
                ticker_stop.clone(),
                shared.config.epoch_tick,
            );
            std::thread::Builder::new()
                .name("hearsay-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(HostError::Thread)?
        };
        let mut host = Host {
            shared,
            workers: Vec::new(),
            ticker: Some(ticker),
            ticker_stop,
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
        Ok(Handler {
            slot: Arc::new(Slot {
                name,
                module: RwLock::new(Arc::new(loaded)),
                queue: Mutex::new(SlotQueue::default()),
                stats: Mutex::new(Recorder::default()),
            }),
        })
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
        Ok(())
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
        let capacity = slot
            .module
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .limits
            .queue;
        let (done, rx) = mpsc::sync_channel(1);
        let mut queue = slot.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.jobs.len() >= capacity {
            drop(queue);
            slot.stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .counters
                .drops += 1;
            tracing::warn!(handler = %slot.name, event = %event.describe(), "handler queue full; event dropped");
            return Dispatch::Dropped;
        }
        queue.jobs.push_back(Job {
            event,
            embedder,
            done,
        });
        if !queue.active {
            let mut pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
            if pool.shutdown {
                queue.jobs.pop_back();
                drop(pool);
                drop(queue);
                slot.stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .counters
                    .drops += 1;
                return Dispatch::Dropped;
            }
            queue.active = true;
            pool.ready.push_back(slot.clone());
            self.shared.wake.notify_one();
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
        let Some(dir) = &self.shared.config.cache_dir else {
            return Ok((compile()?, CacheOutcome::Disabled));
        };
        let sha: [u8; 32] = Sha256::digest(bytes).into();
        let path = cache::entry_path(dir, &sha, &self.shared.engine_key);
        let outcome = match cache::load(engine, &path) {
            Ok(Some(component)) => return Ok((component, CacheOutcome::Hit)),
            Ok(None) => CacheOutcome::Miss,
            Err(()) => CacheOutcome::Corrupt,
        };
        let component = compile()?;
        cache::store(&component, &path);
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
        self.ticker_stop.store(true, Ordering::Relaxed);
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
        self.slot
            .module
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .info
            .clone()
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

fn engine(config: &HostConfig) -> Result<Engine, HostError> {
    let mut pool = PoolingAllocationConfig::new();
    let instances = config
        .max_instances
        .max(u32::try_from(config.workers).unwrap_or(u32::MAX));
    // A Rust wasip2 component holds a few core instances (its module plus adapter shims) and
    // tables; one memory per instance in practice.
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(8))
        .max_memory_size(config.max_memory_bytes);
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
        if let Some(job) = job {
            run(shared, &slot, job);
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

fn run(shared: &Shared, slot: &Slot, job: Job) {
    let loaded = slot
        .module
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let describe = job.event.describe();
    let started = Instant::now();
    let outcome = Run {
        engine: &shared.engine,
        pre: &loaded.pre,
        handler: slot.name.clone(),
        limits: &loaded.limits,
        grants: loaded.grants.clone(),
        ticks: loaded.ticks,
        fuel_enabled: shared.config.fuel,
    }
    .call(job.event, job.embedder);
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
}
