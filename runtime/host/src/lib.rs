//! hearsay-host: runs hearsay's event handlers as sandboxed WebAssembly components.
//!
//! This is the only crate that touches wasmtime. It knows the WIT contract (`wit/handler.wit`),
//! not SWIM or Serf: the embedder (the agent) converts its events into [`Event`] and answers the
//! host's questions through [`Embedder`].
//!
//! # How it works
//! - One [`Host`] per process: one wasmtime `Engine` (pooling allocator, epoch interruption; an
//!   epoch ticker thread advances time every [`HostConfig::epoch_tick`] while guests run, and
//!   sleeps once none has run for 100 ticks).
//! - [`Host::load`] compiles a component once (or takes it from the disk cache in
//!   [`HostConfig::cache_dir`], keyed by module sha256 and the engine and authenticated with the
//!   directory's private key; [`Host::new`] refuses a directory another user owns or can write,
//!   and an entry that fails its tag is recompiled) and pre-instantiates it against the WASI p2
//!   and hearsay imports.
//! - [`Host::dispatch`] queues an event on the handler's own bounded queue and returns at once;
//!   a full queue drops the event and counts it. Events run as tasks on the host's own tokio
//!   runtime ([`HostConfig::workers`] threads, never the caller's), at most
//!   [`Limits::concurrency`] per handler, each in a fresh `Store` with a memory limit, optional
//!   fuel, and only the authority its [`Grants`] list. wasmtime runs guests on fibers that yield
//!   at every epoch tick, and WASI and the [`Embedder`] are async, so a guest that sleeps or
//!   waits holds no thread.
//! - One wall-clock deadline ([`Limits::timeout`]) bounds the whole event: guest code traps at
//!   the first tick past it, and the event's task is dropped wherever else it waits (a host call,
//!   a WASI sleep, a reply to a stalled asker). The outcome is a [`TrapKind::Deadline`] trap,
//!   counted in `timeouts`.
//! - Outbound HTTP (`wasi:http`) reaches only the origins and path prefixes in [`Grants::http`]
//!   ([`HttpAllow`]); anything else fails with `http-request-denied` before a socket is opened.
//!   HTTPS is verified against the system's root certificates, and response bodies are capped.
//! - The linear memory of all live instances together is capped ([`HostConfig::memory_total`]);
//!   guest log lines are escaped (one guest line is one agent line), cut at 4 KiB, and budgeted
//!   per handler ([`HostConfig::log_lines_per_second`], [`HostConfig::log_lines_per_event`]).
//! - Dropping the [`Host`] abandons running guests at once: stopping never waits on a guest.
//! - Instantiation is kept off an event's path: after each event (and at load or reload) the
//!   host makes the handler's next instance, which waits unused until the next event and runs
//!   only that one. Pool slots are reset between instances; where Linux has `PAGEMAP_SCAN` (6.7+) only
//!   the pages an instance dirtied are restored and stay resident, so the next instance takes no
//!   page faults for them.
//! - Traps and guest errors are logged (tracing, with handler name and event) and counted in
//!   [`Handler::stats`] (invocations, ok, errors, traps, timeouts, drops, p50/p99, and the
//!   events running now with the age of the oldest).
//! - [`Host::reload`] swaps a handler's module atomically.
//!
//! # Wiring it into an agent
//! ```no_run
//! use std::sync::Arc;
//! use hearsay_host::*;
//! # fn embedder() -> Arc<dyn Embedder> { unimplemented!() }
//! # fn main() -> Result<(), HostError> {
//! let host = Host::new(HostConfig { cache_dir: Some("/var/lib/hearsay/wasm-cache".into()), ..HostConfig::default() })?;
//! let mut spec = HandlerSpec::new("facts", ModuleSource::Path("sysinfo.wasm".into()));
//! spec.grants.dirs.push(DirGrant { host: "/proc".into(), guest: "/proc".into() });
//! let handler = host.load(spec)?;
//! // For every event matching the handler's filter (agent side, e.g. `query:sysinfo`):
//! # let event = Event::MemberJoin(vec![]);
//! match host.dispatch(&handler, event, embedder()) {
//!     Dispatch::Queued(_ticket) => {}   // the outcome is logged and counted; the ticket may be dropped
//!     Dispatch::Dropped => {}           // queue full: counted in handler.stats().drops
//! }
//! # Ok(()) }
//! ```
//! The embedder passed with each event answers `members()`/`local_member()`, opens the query's
//! [`ReplySink`] (streamed chunk by chunk) and broadcasts emitted events. Its async methods are
//! awaited inside the guest's call on the host's runtime, and dropped where they wait when the
//! event's deadline passes, so they must be cancel-safe.
//!
//! On reload (SIGHUP, a deploy event), call [`Host::reload`] with the handler's new spec: the
//! [`Handler`] value, its queue and its stats stay; loading a new handler name is [`Host::load`],
//! and removing one is dropping every clone of its [`Handler`] (queued events still run, each
//! within its deadline).
//!
//! A bound above the handlers (a tenant's share) would sit where [`Host::dispatch`] starts an
//! event's task: today a task starts when its handler has a free slot of its concurrency.
//!
//! A `hearsay handlers` listing reads [`Handler::name`], [`Handler::info`] (sha256, size, cache use),
//! [`Handler::queued`] and [`Handler::stats`].
//!
//! What this crate is not: it does not filter events (the agent matches `member-join,user:deploy`
//! filters), does not know protocol types, and keeps no state for guests between events.

#![warn(missing_docs, unreachable_pub)]

mod budget;
mod cache;
mod command;
mod embedder;
mod epoch;
mod error;
mod event;
mod guest_log;
mod host;
mod http;
mod invoke;
mod kv;
mod private_dir;
mod quota;
mod spec;
mod stats;

pub use async_trait::async_trait;
pub use cache::CacheOutcome;
pub use embedder::{Embedder, EmitError, ReplyError, ReplySink};
pub use error::HostError;
pub use event::{Event, Member, MemberStatus, Query, Tick, UserEvent};
pub use host::{Dispatch, Handler, Host, HostConfig, LoadInfo, Ticket};
pub use http::{HttpAllow, HttpAllowError};
pub use invoke::{Contract, Outcome, TrapKind};
pub use private_dir::PrivateDir;
pub use quota::{QuotaUse, SharedQuota};
pub use spec::{tag_pattern_matches, DirGrant, Grants, HandlerSpec, KvGrant, Limits, ModuleSource};
pub use stats::HandlerStats;
