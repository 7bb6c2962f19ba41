//! One invocation: the per-event store data, the WIT imports implemented on it, and running the
//! guest's `handle` export with its limits.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{
    FsPerms, HostMonotonicClock, HostWallClock, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView,
    WasiView,
};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use crate::budget::MemoryBudget;
use crate::command;
use crate::embedder::{Embedder, EmitError, ReplyError, ReplySink};
use crate::event::{self, Event};
use crate::guest_log::{self, EventLog, LogBudget};
use crate::http::{HttpAllow, OutboundHttp};
use crate::kv::{self, KvStore};
use crate::quota::SharedQuota;
use crate::spec::{tag_pattern_matches, Grants, Limits};

/// One version of the contract: its generated bindings, the conversions from the host's types
/// into its own, and its imports implemented on [`Invocation`] (each a thin conversion around
/// the one implementation they share). Versions differ only in what later ones add.
macro_rules! contract {
    ($module:ident, $path:literal) => {
        mod $module {
            wasmtime::component::bindgen!({
                world: "handler",
                path: $path,
                imports: { default: async | trappable },
                exports: { default: async },
                with: {
                    "hearsay:handler/reply.reply-stream": super::ReplyStream,
                },
            });

            use super::{event, GuestLevel, Invocation, ReplyStream};
            use crate::event::Event as HostEvent;
            use crate::embedder::{EmitError, ReplyError};
            use hearsay::handler::{cluster, emit, log, reply, types};
            use wasmtime::component::Resource;

            pub(super) fn member(m: event::Member) -> types::Member {
                types::Member {
                    name: m.name,
                    addr: m.addr.to_string(),
                    port: m.port,
                    tags: m.tags.into_iter().collect(),
                    status: match m.status {
                        event::MemberStatus::None => types::MemberStatus::None,
                        event::MemberStatus::Alive => types::MemberStatus::Alive,
                        event::MemberStatus::Leaving => types::MemberStatus::Leaving,
                        event::MemberStatus::Left => types::MemberStatus::Left,
                        event::MemberStatus::Failed => types::MemberStatus::Failed,
                    },
                    rtt_micros: m
                        .rtt
                        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                }
            }

            fn members(v: Vec<event::Member>) -> Vec<types::Member> {
                v.into_iter().map(member).collect()
            }

            /// The event in this version's types; `Err` gives back an event this version does
            /// not have.
            pub(super) fn common_event(e: HostEvent) -> Result<types::Event, HostEvent> {
                use HostEvent as Event;
                Ok(match e {
                    Event::MemberJoin(m) => types::Event::MemberJoin(members(m)),
                    Event::MemberLeave(m) => types::Event::MemberLeave(members(m)),
                    Event::MemberFailed(m) => types::Event::MemberFailed(members(m)),
                    Event::MemberUpdate(m) => types::Event::MemberUpdate(members(m)),
                    Event::MemberReap(m) => types::Event::MemberReap(members(m)),
                    Event::User(u) => types::Event::User(types::UserEvent {
                        name: u.name,
                        payload: u.payload,
                        ltime: u.ltime,
                        coalesce: u.coalesce,
                    }),
                    Event::Query(q) => types::Event::Query(types::Query {
                        id: q.id,
                        name: q.name,
                        payload: q.payload,
                        ltime: q.ltime,
                        source_node: q.source_node,
                    }),
                    other => return Err(other),
                })
            }

            fn reply_error(e: ReplyError) -> types::ReplyError {
                match e {
                    ReplyError::NotAQuery => types::ReplyError::NotAQuery,
                    ReplyError::AlreadyReplied => types::ReplyError::AlreadyReplied,
                    ReplyError::TooLarge(n) => types::ReplyError::TooLarge(n),
                    ReplyError::Closed(s) => types::ReplyError::Closed(s),
                }
            }

            fn emit_error(e: EmitError) -> types::EmitError {
                match e {
                    EmitError::NotGranted => types::EmitError::NotGranted,
                    EmitError::TooLarge(n) => types::EmitError::TooLarge(n),
                    EmitError::Rejected(s) => types::EmitError::Rejected(s),
                }
            }

            impl types::Host for Invocation {}

            impl cluster::Host for Invocation {
                async fn local_member(&mut self) -> wasmtime::Result<types::Member> {
                    Ok(member(self.embedder()?.local_member().await))
                }

                async fn members(&mut self) -> wasmtime::Result<Vec<types::Member>> {
                    Ok(members(self.embedder()?.members().await))
                }
            }

            impl reply::Host for Invocation {
                async fn respond(
                    &mut self,
                    payload: Vec<u8>,
                ) -> wasmtime::Result<Result<(), types::ReplyError>> {
                    Ok(self.respond(&payload).await.map_err(reply_error))
                }

                async fn open_stream(
                    &mut self,
                ) -> wasmtime::Result<Result<Resource<ReplyStream>, types::ReplyError>> {
                    Ok(self.open_stream()?.map_err(reply_error))
                }
            }

            impl reply::HostReplyStream for Invocation {
                async fn write(
                    &mut self,
                    stream: Resource<ReplyStream>,
                    chunk: Vec<u8>,
                ) -> wasmtime::Result<Result<(), types::ReplyError>> {
                    let stream = self.table.get_mut(&stream)?;
                    Ok(stream.sink.write(&chunk).await.map_err(reply_error))
                }

                async fn finish(
                    &mut self,
                    stream: Resource<ReplyStream>,
                ) -> wasmtime::Result<Result<(), types::ReplyError>> {
                    let stream = self.table.delete(stream)?;
                    Ok(stream.sink.finish().await.map_err(reply_error))
                }

                async fn drop(&mut self, stream: Resource<ReplyStream>) -> wasmtime::Result<()> {
                    // Dropping the sink unfinished tells the embedder the reply was abandoned.
                    self.table.delete(stream)?;
                    Ok(())
                }
            }

            impl emit::Host for Invocation {
                async fn emit(
                    &mut self,
                    name: String,
                    payload: Vec<u8>,
                    coalesce: bool,
                ) -> wasmtime::Result<Result<(), types::EmitError>> {
                    Ok(self.emit(&name, &payload, coalesce).await?.map_err(emit_error))
                }
            }

            impl log::Host for Invocation {
                async fn log(&mut self, level: types::Level, message: String) -> wasmtime::Result<()> {
                    self.guest_log(
                        match level {
                            types::Level::Trace => GuestLevel::Trace,
                            types::Level::Debug => GuestLevel::Debug,
                            types::Level::Info => GuestLevel::Info,
                            types::Level::Warn => GuestLevel::Warn,
                            types::Level::Error => GuestLevel::Error,
                        },
                        message,
                    );
                    Ok(())
                }
            }
        }
    };
}

// The current contract, `wit/handler.wit`.
contract!(v2, "../../wit");
// Components built against 0.1.0 (`wit/v0.1.0`) keep running: no tick, commands, kv or tags.
contract!(v1, "../../wit/v0.1.0");

/// Guest stdout/stderr kept per event (panic messages land on stderr).
const OUTPUT_CAPTURE: usize = 8 << 10;
/// Longest guest log line kept (escaped text).
const MAX_LOG_LINE: usize = 4 << 10;

/// A guest's open reply stream (the `reply-stream` resource's host state).
#[allow(
    unreachable_pub,
    reason = "bindgen!'s `with` re-exports it with `pub use`, which needs `pub`; it is not \
              reachable from outside the crate"
)]
pub struct ReplyStream {
    sink: Box<dyn ReplySink>,
}

/// The store data of one invocation.
pub(crate) struct Invocation {
    wasi: WasiCtx,
    table: ResourceTable,
    handler: Arc<str>,
    event: String,
    query: Option<event::Query>,
    replied: bool,
    /// The event's embedder; `None` while the instance is being made (before its event).
    embedder: Option<Arc<dyn Embedder>>,
    grants: Arc<Grants>,
    /// The handler's store, with `grants.kv`.
    kv: Option<Arc<KvStore>>,
    memory_limit: usize,
    /// Why memory growth was refused (this instance's limit or the agent-wide cap).
    memory_hit: Option<String>,
    /// The agent-wide cap, and what this instance's memories are charged against it.
    memory: Arc<MemoryBudget>,
    charged: usize,
    /// The handler's shared quota, charged with the same bytes as `memory`.
    quota: Option<Arc<SharedQuota>>,
    /// When the event ends: guest code traps at the first epoch tick past it.
    deadline: Instant,
    log: Arc<LogBudget>,
    event_log: Arc<Mutex<EventLog>>,
    /// `wasi:http`: requests go only where `grants.http` allows.
    http: OutboundHttp,
}

impl Drop for Invocation {
    fn drop(&mut self) {
        // The store (and with it the instance's memories) goes with its data.
        self.memory.release(self.charged);
        if let Some(q) = &self.quota {
            q.release(self.charged);
        }
    }
}

impl WasiView for Invocation {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Invocation {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.http.view(&mut self.table, self.deadline)
    }
}

impl ResourceLimiter for Invocation {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            let why = format!("memory limit of {} bytes exceeded", self.memory_limit);
            self.memory_hit = Some(why.clone());
            return Err(wasmtime::Error::msg(why));
        }
        let more = desired.saturating_sub(current);
        if !self.memory.charge(more) {
            let why = format!(
                "the agent-wide handler memory cap of {} bytes (handler_memory_total) is in use by other instances",
                self.memory.cap()
            );
            self.memory_hit = Some(why.clone());
            return Err(wasmtime::Error::msg(why));
        }
        if let Some(Err(why)) = self.quota.as_ref().map(|q| q.charge(more)) {
            self.memory.release(more);
            self.memory_hit = Some(why.clone());
            return Err(wasmtime::Error::msg(why));
        }
        self.charged += more;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a handler needing more than this is broken.
        Ok(desired <= 100_000)
    }
}

/// A clock frozen at the Unix epoch, for handlers without the clocks grant.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Builds the linker every handler is pre-instantiated with: WASI p2 (authority comes only from
/// each event's `WasiCtx`), wasi:http (requests pass only where `grants.http` allows) and the
/// hearsay imports.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<Invocation>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    // wasi:http's outgoing-handler and types only (no incoming-handler: handlers serve nothing).
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    v2::Handler::add_to_linker::<Invocation, HasSelf<Invocation>>(&mut linker, |s| s)?;
    v1::Handler::add_to_linker::<Invocation, HasSelf<Invocation>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// The contract version a component was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Contract {
    /// `hearsay:handler@0.1.0`: no tick events, commands, kv or tags.
    V0_1,
    /// `hearsay:handler@0.2.0`, the current one.
    V0_2,
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        })
    }
}

/// A handler pre-instantiated against its contract version.
pub(crate) enum HandlerPre {
    V2(v2::HandlerPre<Invocation>),
    V1(v1::HandlerPre<Invocation>),
}

impl HandlerPre {
    /// The component's exports checked against the current contract, then the older one; `Err`
    /// gives the current contract's complaint.
    pub(crate) fn new(
        pre: wasmtime::component::InstancePre<Invocation>,
    ) -> wasmtime::Result<HandlerPre> {
        match v2::HandlerPre::new(pre.clone()) {
            Ok(p) => Ok(HandlerPre::V2(p)),
            Err(current) => v1::HandlerPre::new(pre)
                .map(HandlerPre::V1)
                .map_err(|_| current),
        }
    }

    pub(crate) fn contract(&self) -> Contract {
        match self {
            HandlerPre::V2(_) => Contract::V0_2,
            HandlerPre::V1(_) => Contract::V0_1,
        }
    }
}

/// An instance of either contract version.
enum Guest {
    V2(v2::Handler),
    V1(v1::Handler),
}

/// Why an invocation did not return `ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `handle` returned `ok`.
    Ok,
    /// `handle` returned the guest's `error` message.
    GuestError(String),
    /// The guest trapped.
    Trap {
        /// What kind of trap.
        kind: TrapKind,
        /// wasmtime's message and the tail of the guest's stderr (e.g. a panic message).
        message: String,
    },
}

/// The cause of a trap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapKind {
    /// The wall-clock deadline passed.
    Deadline,
    /// Fuel ran out.
    OutOfFuel,
    /// The memory limit was hit.
    Memory,
    /// The wasm stack was exhausted (unbounded recursion in the engine's stack).
    StackOverflow,
    /// An out-of-bounds memory access. For Rust and C guests this is also how unbounded recursion
    /// ends: their shadow stack lives in linear memory and runs off its bottom.
    MemoryFault,
    /// The guest aborted (a Rust panic is `unreachable`).
    Abort,
    /// The store could not be set up (e.g. a granted directory vanished) or another host failure.
    Host,
    /// Any other trap.
    Other,
}

/// Everything a task needs to make a fresh instance of a handler and run one event in it.
pub(crate) struct Run<'a> {
    pub engine: &'a Engine,
    pub pre: &'a HandlerPre,
    pub handler: Arc<str>,
    pub limits: &'a Limits,
    pub grants: Arc<Grants>,
    /// `grants.http`, made once at load.
    pub http: Arc<[HttpAllow]>,
    /// The capacity the handler shares with others, if any: its memory is charged there too.
    pub quota: Option<Arc<SharedQuota>>,
    /// The handler's store, with `grants.kv`.
    pub kv: Option<Arc<KvStore>>,
    pub fuel_enabled: bool,
    /// The agent-wide memory cap every instance's linear memory is charged against.
    pub memory: Arc<MemoryBudget>,
    /// The handler's guest-log budget, shared by all its events.
    pub log: Arc<LogBudget>,
}

/// A fresh instance of a handler, made before its event arrives so that instantiation is not on
/// the event's path. It runs exactly one event ([`Run::call`]) and is then dropped: no state
/// survives between events.
pub(crate) struct Prepared {
    store: Store<Invocation>,
    instance: Guest,
    output: MemoryOutputPipe,
}

impl Prepared {
    /// Where the event run in this instance counts its log lines.
    pub(crate) fn set_event_log(&mut self, log: Arc<Mutex<EventLog>>) {
        self.store.data_mut().event_log = log;
    }
}

impl Run<'_> {
    /// A fresh store with the handler's limits and grants, and the component instantiated in it.
    /// Instantiation runs any start function of the component, bounded by `deadline` (and fuel)
    /// like an event; with no event bound yet, the cluster and emit imports trap there.
    pub(crate) async fn prepare(&self, deadline: Instant) -> Result<Prepared, Outcome> {
        let output = MemoryOutputPipe::new(OUTPUT_CAPTURE);
        let wasi = wasi_ctx(&self.grants, &output).map_err(|message| Outcome::Trap {
            kind: TrapKind::Host,
            message,
        })?;
        let data = Invocation {
            wasi,
            table: ResourceTable::new(),
            handler: self.handler.clone(),
            event: String::new(),
            query: None,
            replied: false,
            embedder: None,
            grants: self.grants.clone(),
            kv: self.kv.clone(),
            memory_limit: self.limits.memory_bytes,
            memory_hit: None,
            memory: self.memory.clone(),
            charged: 0,
            quota: self.quota.clone(),
            deadline,
            log: self.log.clone(),
            event_log: Arc::default(),
            http: OutboundHttp::new(self.handler.clone(), self.http.clone(), deadline),
        };
        let mut store = Store::new(self.engine, data);
        store.limiter(|s| s);
        // Guest code yields to the runtime every epoch tick, so a looping guest shares its
        // thread with other handlers' events, and traps once its deadline has passed.
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        self.arm(&mut store)?;
        let made = match self.pre {
            HandlerPre::V2(pre) => pre.instantiate_async(&mut store).await.map(Guest::V2),
            HandlerPre::V1(pre) => pre.instantiate_async(&mut store).await.map(Guest::V1),
        };
        match made {
            Ok(instance) => Ok(Prepared {
                store,
                instance,
                output,
            }),
            Err(e) => Err(match self.failure(&e, &store, &output) {
                // An exit, even with status 0, leaves no instance to run the event in.
                Outcome::Ok => Outcome::GuestError("exited while being instantiated".into()),
                other => other,
            }),
        }
    }

    /// Runs `event` in the fresh instance `p` until `deadline` (with full fuel). The caller
    /// bounds the returned future by the same deadline: this one only stops guest code.
    pub(crate) async fn call(
        &self,
        p: &mut Prepared,
        event: Event,
        embedder: Arc<dyn Embedder>,
        deadline: Instant,
    ) -> Outcome {
        let data = p.store.data_mut();
        data.event = event.describe();
        data.query = match &event {
            Event::Query(q) => Some(q.clone()),
            _ => None,
        };
        data.embedder = Some(embedder);
        data.deadline = deadline;
        if let Err(outcome) = self.arm(&mut p.store) {
            return outcome;
        }
        let result = match &p.instance {
            Guest::V2(g) => {
                let event = v2::common_event(event).unwrap_or_else(|e| match e {
                    Event::Tick(t) => v2::hearsay::handler::types::Event::Tick(
                        v2::hearsay::handler::types::Tick {
                            period_ms: u64::try_from(t.period.as_millis()).unwrap_or(u64::MAX),
                            count: t.count,
                        },
                    ),
                    _ => unreachable!("the current contract has every event"),
                });
                g.call_handle(&mut p.store, &event).await
            }
            Guest::V1(g) => match v1::common_event(event) {
                Ok(event) => g.call_handle(&mut p.store, &event).await,
                Err(e) => {
                    return Outcome::GuestError(format!(
                        "a handler built against contract 0.1.0 cannot take {} events",
                        e.describe()
                    ))
                }
            },
        };
        match result {
            Ok(Ok(())) => Outcome::Ok,
            Ok(Err(msg)) => Outcome::GuestError(msg),
            Err(e) => self.failure(&e, &p.store, &p.output),
        }
    }

    /// Sets the next epoch check (one tick from now) and the fuel for what runs next in `store`.
    fn arm(&self, store: &mut Store<Invocation>) -> Result<(), Outcome> {
        store.set_epoch_deadline(1);
        if self.fuel_enabled {
            let fuel = self.limits.fuel.unwrap_or(u64::MAX);
            store.set_fuel(fuel).map_err(|e| Outcome::Trap {
                kind: TrapKind::Host,
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// The outcome of an instantiation or call that failed with `e`.
    fn failure(
        &self,
        e: &wasmtime::Error,
        store: &Store<Invocation>,
        output: &MemoryOutputPipe,
    ) -> Outcome {
        // `std::process::exit` in a guest: status 0 is success, others a guest error.
        if let Some(I32Exit(status)) = e.downcast_ref::<I32Exit>() {
            return match status {
                0 => Outcome::Ok,
                _ => Outcome::GuestError(format!("exited with status {status}")),
            };
        }
        let kind = classify(e, store.data().memory_hit.is_some());
        // The root cause names the trap; the wasm backtrace goes to the debug log only.
        tracing::debug!(handler = %self.handler, error = ?e, "handler trap details");
        let mut message = match &store.data().memory_hit {
            Some(why) => why.clone(),
            None => e.root_cause().to_string(),
        };
        let out = output.contents();
        if !out.is_empty() {
            // One line, escaped, so the log line stays one line.
            let out = String::from_utf8_lossy(&out);
            let lines: Vec<&str> = out
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            message.push_str("; guest output: ");
            message.push_str(&guest_log::sanitize(&lines.join(" / "), OUTPUT_CAPTURE));
        }
        Outcome::Trap { kind, message }
    }
}

fn classify(e: &wasmtime::Error, memory_hit: bool) -> TrapKind {
    if memory_hit {
        return TrapKind::Memory;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => TrapKind::Deadline,
        Some(Trap::OutOfFuel) => TrapKind::OutOfFuel,
        Some(Trap::StackOverflow) => TrapKind::StackOverflow,
        Some(Trap::MemoryOutOfBounds) => TrapKind::MemoryFault,
        Some(Trap::UnreachableCodeReached) => TrapKind::Abort,
        Some(_) => TrapKind::Other,
        None => TrapKind::Host,
    }
}

fn wasi_ctx(grants: &Grants, output: &MemoryOutputPipe) -> Result<WasiCtx, String> {
    let mut b = WasiCtxBuilder::new();
    // File I/O goes to the runtime's blocking pool, never blocks a thread running guests.
    b.allow_blocking_current_thread(false);
    b.stdout(output.clone());
    b.stderr(output.clone());
    // Network: no address passes the default check and name lookup is off; say so explicitly.
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    for (k, v) in &grants.env {
        b.env(k, v);
    }
    let dirs = grants.dirs.iter().map(|d| (d, FsPerms::ReadOnly));
    let write_dirs = grants.write_dirs.iter().map(|d| (d, FsPerms::ReadWrite));
    for (d, perms) in dirs.chain(write_dirs) {
        b.preopened_dir(&d.host, &d.guest, perms)
            .map_err(|e| format!("opening granted directory {}: {e}", d.host.display()))?;
    }
    if !grants.clocks {
        b.wall_clock(FrozenClock);
        b.monotonic_clock(FrozenClock);
    }
    Ok(b.build())
}

/// A guest log line's level, whichever contract version it came through.
#[derive(Clone, Copy)]
enum GuestLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Invocation {
    /// Claims the one reply of this query and opens it with the embedder.
    fn open_reply(&mut self) -> Result<Box<dyn ReplySink>, ReplyError> {
        let query = self.query.as_ref().ok_or(ReplyError::NotAQuery)?;
        if self.replied {
            return Err(ReplyError::AlreadyReplied);
        }
        self.replied = true;
        match &self.embedder {
            Some(e) => e.open_reply(query),
            None => Err(ReplyError::NotAQuery),
        }
    }

    /// The embedder of the event being handled; imports called while the instance is being made
    /// (from a start function) trap.
    fn embedder(&self) -> wasmtime::Result<&Arc<dyn Embedder>> {
        self.embedder.as_ref().ok_or_else(|| {
            wasmtime::Error::msg("cluster imports are available only during an event")
        })
    }

    /// `reply.respond`: the whole answer in one piece.
    async fn respond(&mut self, payload: &[u8]) -> Result<(), ReplyError> {
        let mut sink = self.open_reply()?;
        sink.write(payload).await?;
        sink.finish().await
    }

    /// `reply.open-stream`.
    fn open_stream(&mut self) -> wasmtime::Result<Result<Resource<ReplyStream>, ReplyError>> {
        match self.open_reply() {
            Ok(sink) => Ok(Ok(self.table.push(ReplyStream { sink })?)),
            Err(e) => Ok(Err(e)),
        }
    }

    /// `emit.emit`, refused without the grant.
    async fn emit(
        &mut self,
        name: &str,
        payload: &[u8],
        coalesce: bool,
    ) -> wasmtime::Result<Result<(), EmitError>> {
        if !self.grants.emit {
            return Ok(Err(EmitError::NotGranted));
        }
        if let Some(prefix) = &self.grants.emit_prefix {
            if !name.starts_with(prefix.as_str()) || name.len() == prefix.len() {
                return Ok(Err(EmitError::Rejected(format!(
                    "{name:?} is outside this handler's namespace: name it {prefix}NAME"
                ))));
            }
        }
        if let Some(Err(why)) = self.quota.as_ref().map(|q| q.emit()) {
            return Ok(Err(EmitError::Rejected(why)));
        }
        Ok(self.embedder()?.emit(name, payload, coalesce).await)
    }

    /// `log.log`: budgeted, escaped and cut before anything else copies it, so one guest line is
    /// one agent line.
    fn guest_log(&mut self, level: GuestLevel, message: String) {
        let admitted = {
            let mut event_log = self.event_log.lock().unwrap_or_else(|e| e.into_inner());
            self.log.admit(Instant::now(), &mut event_log)
        };
        if !admitted {
            return;
        }
        let message = guest_log::sanitize(&message, MAX_LOG_LINE);
        let (handler, event) = (&*self.handler, self.event.as_str());
        match level {
            GuestLevel::Trace => tracing::trace!(handler, event, "guest: {message}"),
            GuestLevel::Debug => tracing::debug!(handler, event, "guest: {message}"),
            GuestLevel::Info => tracing::info!(handler, event, "guest: {message}"),
            GuestLevel::Warn => tracing::warn!(handler, event, "guest: {message}"),
            GuestLevel::Error => tracing::error!(handler, event, "guest: {message}"),
        }
    }
}

impl v2::hearsay::handler::commands::Host for Invocation {
    async fn run(
        &mut self,
        name: String,
        stdin: Option<Vec<u8>>,
    ) -> wasmtime::Result<
        Result<
            v2::hearsay::handler::commands::Output,
            v2::hearsay::handler::commands::CommandError,
        >,
    > {
        use v2::hearsay::handler::commands::{CommandError, Output};
        let Some(argv) = self.grants.commands.get(&name) else {
            return Ok(Err(CommandError::NotGranted));
        };
        let shown = guest_log::sanitize(&name, 64);
        match command::run(argv, stdin).await {
            Ok(f) => {
                tracing::info!(handler = %self.handler, event = %self.event, command = %shown, status = ?f.status, signal = ?f.signal, "ran a granted command");
                Ok(Ok(Output {
                    status: f.status,
                    signal: f.signal,
                    stdout: f.stdout,
                    stderr: f.stderr,
                    truncated: f.truncated,
                }))
            }
            Err(why) => {
                tracing::warn!(handler = %self.handler, event = %self.event, command = %shown, "granted command did not start: {why}");
                Ok(Err(CommandError::Failed(why)))
            }
        }
    }
}

/// Runs `op` on a handler's store off the runtime's threads; `not-granted` without one.
async fn kv_op<T: Send + 'static>(
    store: Option<Arc<KvStore>>,
    op: impl FnOnce(&KvStore) -> Result<T, kv::KvError> + Send + 'static,
) -> Result<T, v2::hearsay::handler::kv::KvError> {
    use v2::hearsay::handler::kv::KvError as E;
    let Some(store) = store else {
        return Err(E::NotGranted);
    };
    let done = tokio::task::spawn_blocking(move || op(&store))
        .await
        .unwrap_or_else(|e| Err(kv::KvError::Store(format!("the store task failed: {e}"))));
    done.map_err(|e| match e {
        kv::KvError::QuotaExceeded(n) => E::QuotaExceeded(n),
        kv::KvError::BadKey(n) => E::BadKey(n),
        kv::KvError::Store(s) => E::Store(s),
    })
}

impl v2::hearsay::handler::kv::Host for Invocation {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, v2::hearsay::handler::kv::KvError>> {
        Ok(kv_op(self.kv.clone(), move |s| s.get(&key)).await)
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v2::hearsay::handler::kv::KvError>> {
        Ok(kv_op(self.kv.clone(), move |s| s.set(&key, &value)).await)
    }

    async fn delete(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<bool, v2::hearsay::handler::kv::KvError>> {
        Ok(kv_op(self.kv.clone(), move |s| s.delete(&key)).await)
    }

    async fn keys(
        &mut self,
        prefix: String,
    ) -> wasmtime::Result<Result<Vec<String>, v2::hearsay::handler::kv::KvError>> {
        Ok(kv_op(self.kv.clone(), move |s| s.keys(&prefix)).await)
    }
}

impl Invocation {
    /// Sets (`Some`) or removes this node's tag `name`, if a granted pattern matches it.
    async fn change_tag(
        &mut self,
        name: &str,
        value: Option<&str>,
    ) -> wasmtime::Result<Result<(), v2::hearsay::handler::tags::TagError>> {
        use v2::hearsay::handler::tags::TagError;
        if !self
            .grants
            .tags
            .iter()
            .any(|p| tag_pattern_matches(p, name))
        {
            return Ok(Err(TagError::NotGranted));
        }
        let result = self.embedder()?.set_tag(name, value).await;
        if result.is_ok() {
            tracing::info!(handler = %self.handler, event = %self.event, tag = %guest_log::sanitize(name, 128), set = value.is_some(), "handler changed a tag of this node");
        }
        Ok(result.map_err(TagError::Rejected))
    }
}

impl v2::hearsay::handler::tags::Host for Invocation {
    async fn set(
        &mut self,
        name: String,
        value: String,
    ) -> wasmtime::Result<Result<(), v2::hearsay::handler::tags::TagError>> {
        self.change_tag(&name, Some(&value)).await
    }

    async fn delete(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<(), v2::hearsay::handler::tags::TagError>> {
        self.change_tag(&name, None).await
    }
}
