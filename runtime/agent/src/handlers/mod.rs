//! [`Handlers`]: the agent's WebAssembly event handlers. It loads the configured handlers into
//! one [`hearsay_host::Host`], follows the [`Node`]'s events in a tokio task of its own,
//! and hands every member event, user event and query to each handler whose filter admits it.
//!
//! - Dispatch never blocks: the host queues the event (or drops it, counted, when the handler's
//!   queue is full) and runs it on its worker threads. The gossip driver only publishes events.
//! - Filters are Serf's (`member-join,user:deploy`, `query:load`, `*`), except that the agents'
//!   reserved names (`_serf_*`, `_hearsay_*`) reach only handlers that name them exactly.
//! - A query goes to every matching handler with one shared reply: the first handler to reply
//!   answers for this node, a later one gets `already-replied` (Serf answers once per node).
//! - [`Handlers::reload`] replaces the whole set at once or not at all: a handler whose module
//!   file, limits and grants are unchanged keeps its compiled instance, queue and counters
//!   (its filter may change); a changed or new one is compiled before anything is swapped; a
//!   failure leaves the old set running.
//! - [`Handlers::set_deployed`] replaces the deployed handlers (named `deploy/NAME`, see
//!   `crate::deploy`) beside the configured ones, each on its own: one that fails to load is
//!   reported and left out (an older version of it keeps running), the others go ahead. A
//!   reload from the config never touches them, and a configured handler may not take a
//!   `deploy/` name.
//! - [`Handlers::list`] gives each handler's filter, module and counters (`hearsay handlers`).

mod embedder;

pub use crate::config::{admits, is_reserved, HandlerConfig, RESERVED_PREFIXES};
pub use embedder::AGENT_CALL_TIMEOUT;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use hearsay_host::{
    Contract, Dispatch, Embedder, Handler, HandlerSpec, HandlerStats, Host, HostConfig, HostError,
    ModuleSource, SharedQuota,
};
use hearsay_serf::event::Event;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::config::tenant::TenantQuota;
use crate::conversions;
use crate::node::Node;
use embedder::{AgentLink, EventContext};

/// Why a handler set could not be loaded: the message names the handler, its module and the
/// cause, on one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A handler has no name.
    #[error("handler for {} has an empty name", module.display())]
    EmptyName {
        /// The handler's module.
        module: PathBuf,
    },
    /// Two handlers share a name.
    #[error("two handlers are named {0:?}; names must be unique")]
    DuplicateName(String),
    /// A configured handler took a name reserved for deployed handlers.
    #[error(
        "handler name {0:?}: names starting with {DEPLOYED_PREFIX:?} are for deployed handlers"
    )]
    ReservedName(String),
    /// The host could not read, compile or start a handler.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The blocking task that compiles handlers failed.
    #[error("loading handlers: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Shorthand for results of loading handlers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One loaded handler as `hearsay handlers` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerListing {
    /// The handler's name.
    pub name: String,
    /// Its filter, in Serf's syntax.
    pub filter: String,
    /// The module file it was loaded from.
    pub module: PathBuf,
    /// sha256 of the component, lower-case hex.
    pub sha256: String,
    /// Events waiting in its queue.
    pub queued: usize,
    /// Its counters and latencies.
    pub stats: HandlerStats,
    /// The tenant it belongs to (`tenant = "..."`); `None`: the operator's.
    pub tenant: Option<String>,
}

/// The agent's handlers. Clones share the same set; dropping the last clone stops dispatching
/// (the host's workers finish the events they are running).
#[derive(Clone)]
pub struct Handlers {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .current()
            .iter()
            .map(|a| a.config.name.clone())
            .collect();
        f.debug_struct("Handlers")
            .field("handlers", &names)
            .finish()
    }
}

struct Inner {
    /// Built with the first handler: an agent without handlers runs no engine, no epoch clock
    /// and no workers.
    host: std::sync::OnceLock<Host>,
    host_config: HostConfig,
    link: Arc<AgentLink>,
    set: RwLock<Arc<Vec<Active>>>,
    /// The tenants' names: a user event or query in one's namespace reaches only handlers that
    /// name it exactly.
    tenants: RwLock<Arc<[String]>>,
    /// Each tenant's shared capacity, made when one of its handlers loads; made anew when its
    /// quota changes (its handlers then load again with the new one).
    quotas: Mutex<BTreeMap<String, (TenantQuota, Arc<SharedQuota>)>>,
    /// Serialises reloads (SIGHUP and a deploy could race).
    reloading: tokio::sync::Mutex<()>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }
}

impl Inner {
    /// The host, built on first use (blocking: call it off the async runtime).
    fn host(&self) -> std::result::Result<&Host, HostError> {
        if let Some(host) = self.host.get() {
            return Ok(host);
        }
        let host = Host::new(self.host_config.clone())?;
        // Loads are serialised, so no other host can have been built meanwhile; if one had,
        // this one would simply be dropped.
        Ok(self.host.get_or_init(|| host))
    }
}

/// The name prefix of deployed handlers (`deploy/greet`).
pub const DEPLOYED_PREFIX: &str = "deploy/";

#[derive(Clone)]
struct Active {
    config: HandlerConfig,
    handler: Handler,
    /// Put there by [`Handlers::set_deployed`], not by the configuration.
    deployed: bool,
    /// The handler's `every:` timers, stopped when the last clone of this entry goes (the
    /// handler left the set, or a new entry of it took over).
    _timers: Arc<Timers>,
}

/// Tasks that tick a handler; aborted on drop.
struct Timers(Vec<JoinHandle<()>>);

impl Drop for Timers {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Starts a task per `every:` period of `config`: each period it gives the handler a `tick`
/// event, unless the handler is still busy (that tick is skipped, counted all the same).
fn start_timers(inner: &Arc<Inner>, config: &HandlerConfig, handler: &Handler) -> Timers {
    let tasks = config
        .filter
        .periods()
        .into_iter()
        .map(|period| {
            let (inner, handler) = (Arc::downgrade(inner), handler.clone());
            tokio::spawn(async move {
                let start = tokio::time::Instant::now() + period;
                let mut every = tokio::time::interval_at(start, period);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                for count in 1u64.. {
                    every.tick().await;
                    let Some(inner) = inner.upgrade() else { return };
                    if handler.busy() {
                        tracing::debug!(handler = %handler.name(), count, "handler still busy; tick skipped");
                        continue;
                    }
                    let Some(host) = inner.host.get() else { return };
                    let tick = hearsay_host::Event::Tick(hearsay_host::Tick { period, count });
                    let context: Arc<dyn Embedder> = EventContext::new(inner.link.clone(), None);
                    // A full queue is logged and counted by the host.
                    let _ = host.dispatch(&handler, tick, context);
                }
            })
        })
        .collect();
    Timers(tasks)
}

impl Handlers {
    /// Starts the host, loads `configs` (all or nothing: the first failure is returned, naming
    /// the handler and the cause) and starts dispatching `agent`'s events from a task of its own.
    /// Call it inside the agent's tokio runtime.
    pub async fn start(
        agent: Node,
        host_config: HostConfig,
        configs: Vec<HandlerConfig>,
    ) -> Result<Handlers> {
        // Subscribed before loading, so no event after `start` is missed.
        let events = agent.subscribe();
        let handlers = Handlers::load(agent, host_config, configs).await?;
        let task = tokio::spawn(dispatch_loop(Arc::downgrade(&handlers.inner), events));
        *handlers
            .inner
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(handlers)
    }

    /// Like [`Handlers::start`] but without a dispatch task: the caller hands every event to
    /// [`Handlers::dispatch`] itself, in order with its own processing of the event (the agent
    /// logs `Received event` first, as Serf does before running its handlers).
    pub async fn load(
        agent: Node,
        host_config: HostConfig,
        configs: Vec<HandlerConfig>,
    ) -> Result<Handlers> {
        check_names(&configs, &[])?;
        let link = AgentLink::new(agent);
        let inner = Arc::new(Inner {
            host: std::sync::OnceLock::new(),
            host_config,
            link,
            set: RwLock::new(Arc::new(Vec::new())),
            tenants: RwLock::new(Arc::from(Vec::new())),
            quotas: Mutex::new(BTreeMap::new()),
            reloading: tokio::sync::Mutex::new(()),
            task: Mutex::new(None),
        });
        let set = load_set(&inner, &[], configs).await?;
        *inner.set.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        Ok(Handlers { inner })
    }

    /// Replaces the handler set with `configs`, atomically: on error (a module that does not
    /// load, a duplicate name) nothing changes and the old handlers keep running.
    /// The deployed handlers stay as they are.
    pub async fn reload(&self, configs: Vec<HandlerConfig>) -> Result<()> {
        let _one_at_a_time = self.inner.reloading.lock().await;
        let old = self.current();
        let deployed: Vec<Active> = old.iter().filter(|a| a.deployed).cloned().collect();
        check_names(&configs, &deployed)?;
        let mut set = load_set(&self.inner, &old, configs).await?;
        let names: Vec<&str> = set.iter().map(|a| a.config.name.as_str()).collect();
        tracing::info!(handlers = ?names, "handlers: reloaded");
        set.extend(deployed);
        *self.inner.set.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        Ok(())
    }

    /// Replaces the deployed handlers with `configs` (each named `deploy/NAME`), loading each
    /// on its own: a handler that fails to load is left out, or keeps its running version
    /// when it had one, and comes back in the returned list with the reason. The configured
    /// handlers stay as they are.
    pub async fn set_deployed(&self, configs: Vec<HandlerConfig>) -> Vec<(String, Error)> {
        let _one_at_a_time = self.inner.reloading.lock().await;
        let old = self.current();
        let mut set: Vec<Active> = old.iter().filter(|a| !a.deployed).cloned().collect();
        let mut failed = Vec::new();
        for config in configs {
            let name = config.name.clone();
            if !name.starts_with(DEPLOYED_PREFIX) || set.iter().any(|a| a.config.name == name) {
                failed.push((name.clone(), Error::DuplicateName(name)));
                continue;
            }
            match load_one(&self.inner, &old, config).await {
                Ok(mut a) => {
                    a.deployed = true;
                    set.push(a);
                }
                Err(e) => {
                    if let Some(running) = old.iter().find(|a| a.deployed && a.config.name == name)
                    {
                        set.push(running.clone());
                    }
                    failed.push((name, e));
                }
            }
        }
        *self.inner.set.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        failed
    }

    /// The loaded handlers, in configuration order.
    pub fn list(&self) -> Vec<HandlerListing> {
        self.current()
            .iter()
            .map(|a| {
                let info = a.handler.info();
                HandlerListing {
                    name: a.config.name.clone(),
                    filter: a.config.filter.to_string(),
                    module: a.config.module.clone(),
                    sha256: info.sha256,
                    queued: a.handler.queued(),
                    stats: a.handler.stats(),
                    tenant: a.config.tenant.clone(),
                }
            })
            .collect()
    }

    /// The tenants' names (`[[tenant]]`): the user events and queries of their namespaces
    /// (`NAME/...`) reach only handlers whose filter names them exactly.
    pub fn set_tenants(&self, names: Vec<String>) {
        *self
            .inner
            .tenants
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::from(names);
    }

    /// Where handlers' tag changes are saved (the agent's `-tags-file`), as RPC's are.
    pub fn set_tags_file(&self, path: Option<PathBuf>) {
        *self
            .inner
            .link
            .tags_file
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = path;
    }

    /// The configurations of the loaded handlers, in order.
    pub fn configs(&self) -> Vec<HandlerConfig> {
        self.current().iter().map(|a| a.config.clone()).collect()
    }

    /// Hands one event to every handler whose filter admits it; returns how many handlers
    /// queued it (dropped ones are counted in their stats). The dispatch task of
    /// [`Handlers::start`], or the caller of [`Handlers::load`], calls this for every event of
    /// the agent; tests and embedders can inject events with it.
    pub async fn dispatch(&self, event: &Event) -> usize {
        dispatch(&self.inner, event).await
    }

    fn current(&self) -> Arc<Vec<Active>> {
        self.inner
            .set
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Configured handlers need unique names that are not a deployed handler's.
fn check_names(configs: &[HandlerConfig], deployed: &[Active]) -> Result<()> {
    let mut seen: std::collections::HashSet<&str> =
        deployed.iter().map(|a| a.config.name.as_str()).collect();
    for c in configs {
        if c.name.is_empty() {
            return Err(Error::EmptyName {
                module: c.module.clone(),
            });
        }
        if c.name.starts_with(DEPLOYED_PREFIX) {
            return Err(Error::ReservedName(c.name.clone()));
        }
        if !seen.insert(c.name.as_str()) {
            return Err(Error::DuplicateName(c.name.clone()));
        }
    }
    Ok(())
}

/// Loads a new set, keeping the handlers of `old` whose module bytes, limits and grants are
/// unchanged. Compiling runs on the blocking pool, never on the runtime's workers.
impl Inner {
    /// Tenant `name`'s shared capacity for `quota`: the one its other handlers hold, unless the
    /// quota changed.
    fn shared_quota(&self, name: &str, quota: TenantQuota) -> Arc<SharedQuota> {
        let mut quotas = self.quotas.lock().unwrap_or_else(|e| e.into_inner());
        match quotas.get(name) {
            Some((q, shared)) if *q == quota => shared.clone(),
            _ => {
                let memory = quota
                    .memory
                    .map(|m| usize::try_from(m).unwrap_or(usize::MAX));
                let mut shared = SharedQuota::new(name, quota.concurrency, memory);
                if let Some(rate) = quota.events_per_second {
                    shared = shared.with_emit_rate(rate);
                }
                let shared = Arc::new(shared);
                quotas.insert(name.to_owned(), (quota, shared.clone()));
                shared
            }
        }
    }
}

async fn load_set(
    inner: &Arc<Inner>,
    old: &[Active],
    configs: Vec<HandlerConfig>,
) -> Result<Vec<Active>> {
    let mut set = Vec::with_capacity(configs.len());
    for config in configs {
        set.push(load_one(inner, old, config).await?);
    }
    Ok(set)
}

/// Loads one handler, or keeps the one of `old` with the same name whose module bytes,
/// limits and grants are unchanged.
async fn load_one(inner: &Arc<Inner>, old: &[Active], config: HandlerConfig) -> Result<Active> {
    {
        let path = config.module.clone();
        let name = config.name.clone();
        let bytes = blocking(move || {
            std::fs::read(&path).map_err(|source| HostError::ReadModule { name, path, source })
        })
        .await?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let kept = old.iter().find(|a| {
            a.config.name == config.name
                && a.config.limits == config.limits
                && a.config.grants == config.grants
                && a.config.tenant == config.tenant
                && a.config.tenant_quota == config.tenant_quota
                && a.handler.info().sha256 == sha256
        });
        let handler = match kept {
            Some(a) => a.handler.clone(),
            None => {
                let spec = HandlerSpec {
                    name: config.name.clone(),
                    module: ModuleSource::Bytes(bytes),
                    limits: config.limits.clone(),
                    grants: config.grants.clone(),
                    quota: config
                        .tenant
                        .as_deref()
                        .map(|t| inner.shared_quota(t, config.tenant_quota.unwrap_or_default())),
                };
                let inner = inner.clone();
                blocking(move || inner.host()?.load(spec)).await?
            }
        };
        if !config.filter.periods().is_empty() && handler.info().contract < Contract::V0_2 {
            return Err(Error::Host(HostError::Capability {
                name: config.name.clone(),
                reason: format!(
                    "events {:?}: every: timers need a component built against contract 0.2.0; this one is {}",
                    config.filter.to_string(),
                    handler.info().contract
                ),
            }));
        }
        let timers = start_timers(inner, &config, &handler);
        Ok(Active {
            config,
            handler,
            deployed: false,
            _timers: Arc::new(timers),
        })
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, HostError> + Send + 'static,
) -> Result<T> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

async fn dispatch_loop(
    inner: std::sync::Weak<Inner>,
    mut events: tokio::sync::broadcast::Receiver<Event>,
) {
    loop {
        let event = match events.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "handlers: fell behind the agent's events; {n} events were not dispatched"
                );
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        dispatch(&inner, &event).await;
    }
}

async fn dispatch(inner: &Inner, event: &Event) -> usize {
    let Some((kind, name)) = conversions::kind(event) else {
        return 0;
    };
    let set = inner.set.read().unwrap_or_else(|e| e.into_inner()).clone();
    let tenants = inner
        .tenants
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let targets: Vec<&Active> = set
        .iter()
        .filter(|a| admits(&a.config.filter, kind, name, &tenants))
        .collect();
    if targets.is_empty() {
        return 0;
    }
    let rtts = member_rtts(&inner.link.agent, event).await;
    let rtt = |n: &str| rtts.iter().find(|(m, _)| m == n).and_then(|(_, d)| *d);
    let Some(converted) = conversions::event(event, rtt) else {
        return 0;
    };
    let query = match event {
        Event::Query(q) => Some(q.clone()),
        _ => None,
    };
    let context: Arc<dyn Embedder> = EventContext::new(inner.link.clone(), query);
    // Loaded handlers imply a host.
    let Some(host) = inner.host.get() else {
        return 0;
    };
    let mut queued = 0;
    for a in targets {
        match host.dispatch(&a.handler, converted.clone(), context.clone()) {
            Dispatch::Queued(_) => queued += 1,
            // The host logged and counted it.
            Dispatch::Dropped => {}
        }
    }
    queued
}

/// The estimated RTT from this node to each member a member event concerns (empty for other
/// events, or when the driver has stopped).
async fn member_rtts(agent: &Node, event: &Event) -> Vec<(String, Option<std::time::Duration>)> {
    let Event::Member(me) = event else {
        return Vec::new();
    };
    let names: Vec<String> = me.members.iter().map(|m| m.name.clone()).collect();
    agent
        .handle()
        .call(move |serf, _| {
            let local = serf.coordinate().cloned();
            names
                .into_iter()
                .map(|n| {
                    let d = conversions::rtt(local.as_ref(), serf.cached_coordinate(&n));
                    (n, d)
                })
                .collect()
        })
        .await
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
