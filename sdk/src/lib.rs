//! hearsay-sdk: write a hearsay event handler in a few lines of Rust.
//!
//! A handler is a WebAssembly component built for `wasm32-wasip2` that implements the
//! `hearsay:handler` world (`wit/handler.wit`). This crate generates the bindings and wraps them:
//!
//! ```ignore
//! use hearsay_sdk::{Event, Handler};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn handle(event: Event) -> Result<(), String> {
//!         match event {
//!             Event::Query(q) => hearsay_sdk::reply(&q.payload).map_err(|e| e.to_string()),
//!             Event::User(u) => {
//!                 hearsay_sdk::info(&format!("user event {} ({} bytes)", u.name, u.payload.len()));
//!                 Ok(())
//!             }
//!             _ => Ok(()),
//!         }
//!     }
//! }
//!
//! hearsay_sdk::export!(Echo);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate-type `cdylib`) and give the
//! `.wasm` to the agent. `sdk/template/` is a crate to copy. Each event runs in a fresh instance:
//! nothing survives between events except what the handler keeps in its store ([`kv`]).
//!
//! Everything beyond the event needs a grant from the operator, named in the handler's
//! `[[handler]]` block; without one the call fails with a `NotGranted` error and nothing happens:
//! files (`std::fs` in granted directories, read-only or writable), environment, real clocks,
//! [`emit`], [`commands::run`] (operator-approved commands), [`kv`] (a persistent store),
//! [`tags`] (this node's tags) and timers (`events = "every:10s"` delivers [`Event::Tick`]).
//! [`http`] sends HTTP requests (`http::get(url)`, `http::Request`) to the origins and path
//! prefixes the handler's `http` grants list; anything else is refused by the agent. Plain sockets
//! are never granted.

/// The generated bindings (for what the wrappers do not cover).
pub mod bindings {
    wit_bindgen::generate!({
        world: "handler",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_handler",
        default_bindings_module: "hearsay_sdk::bindings",
    });
}

pub mod http;

use bindings::hearsay::handler::{cluster, emit as emit_api, log as log_api, reply};

pub use bindings::hearsay::handler::reply::ReplyStream;
pub use bindings::hearsay::handler::types::{
    EmitError, Event, Level, Member, MemberStatus, Query, ReplyError, Tick, UserEvent,
};

/// Running the commands the operator approved (`grants.commands = { reload = [...] }`).
///
/// ```ignore
/// let out = hearsay_sdk::commands::run("reload", None)?;
/// if !out.success() { hearsay_sdk::warn(&out.stderr_text()); }
/// ```
pub mod commands {
    use crate::bindings::hearsay::handler::commands as api;
    pub use api::{CommandError, Output};

    /// Runs the granted command `name` (its argv is the operator's), with `stdin` on its
    /// standard input, and waits for it; it is killed at the event's deadline.
    pub fn run(name: &str, stdin: Option<&[u8]>) -> Result<Output, CommandError> {
        api::run(name, stdin)
    }

    impl Output {
        /// Whether it exited with status 0.
        pub fn success(&self) -> bool {
            self.status == Some(0)
        }

        /// stdout as text (invalid UTF-8 replaced).
        pub fn stdout_text(&self) -> String {
            String::from_utf8_lossy(&self.stdout).into_owned()
        }

        /// stderr as text (invalid UTF-8 replaced).
        pub fn stderr_text(&self) -> String {
            String::from_utf8_lossy(&self.stderr).into_owned()
        }
    }
}

/// The handler's persistent key-value store (`grants.kv = "16MiB"`): survives events and agent
/// restarts; the quota counts key and value bytes.
pub mod kv {
    use crate::bindings::hearsay::handler::kv as api;
    pub use api::KvError;

    /// The value of `key`, if set.
    pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
        api::get(key)
    }

    /// The value of `key` as text, if set (invalid UTF-8 replaced).
    pub fn get_string(key: &str) -> Result<Option<String>, KvError> {
        Ok(api::get(key)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Sets `key` to `value`, durably.
    pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), KvError> {
        api::set(key, value.as_ref())
    }

    /// Removes `key`; whether it was set.
    pub fn delete(key: &str) -> Result<bool, KvError> {
        api::delete(key)
    }

    /// The keys beginning with `prefix`, in order.
    pub fn keys(prefix: &str) -> Result<Vec<String>, KvError> {
        api::keys(prefix)
    }
}

/// This node's own tags (`grants.tags = ["service:*"]`): gossip carries changes to every member.
pub mod tags {
    use crate::bindings::hearsay::handler::tags as api;
    pub use api::TagError;

    /// Sets this node's tag `name` to `value`.
    pub fn set(name: &str, value: &str) -> Result<(), TagError> {
        api::set(name, value)
    }

    /// Removes this node's tag `name` (ok if it was not set).
    pub fn delete(name: &str) -> Result<(), TagError> {
        api::delete(name)
    }

    /// This node's tag `name`, as the cluster last saw it.
    pub fn get(name: &str) -> Option<String> {
        crate::local_member().tag(name).map(str::to_owned)
    }
}

/// What a handler implements: called once per event, in a fresh instance.
pub trait Handler {
    /// Handles one event. An `Err` is logged by the agent and counted as a handler error.
    fn handle(event: Event) -> Result<(), String>;
}

/// Exports `$ty` (a type implementing [`Handler`]) as the component's `handle` function. Use once
/// per crate.
#[macro_export]
macro_rules! export {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __HearsayExport;

        impl $crate::bindings::Guest for __HearsayExport {
            fn handle(event: $crate::Event) -> ::core::result::Result<(), ::std::string::String> {
                <$ty as $crate::Handler>::handle(event)
            }
        }

        $crate::bindings::__export_handler!(__HearsayExport with_types_in $crate::bindings);
    };
}

/// Answers the query being handled with `payload` in one piece.
pub fn reply(payload: &[u8]) -> Result<(), ReplyError> {
    reply::respond(payload)
}

/// Starts a streamed answer to the query being handled: `write` chunks, then
/// `ReplyStream::finish(stream)`. Use it for large replies, so the whole reply never sits in memory.
pub fn reply_stream() -> Result<ReplyStream, ReplyError> {
    reply::open_stream()
}

/// This node.
pub fn local_member() -> Member {
    cluster::local_member()
}

/// Every member this node knows, including itself.
pub fn members() -> Vec<Member> {
    cluster::members()
}

/// Broadcasts a user event; needs the emit grant.
pub fn emit(name: &str, payload: &[u8], coalesce: bool) -> Result<(), EmitError> {
    emit_api::emit(name, payload, coalesce)
}

/// Logs `message` into the agent's log at `level`, tagged with the handler and event.
pub fn log(level: Level, message: &str) {
    log_api::log(level, message)
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

/// Logs at info level.
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// Logs at error level.
pub fn error(message: &str) {
    log(Level::Error, message)
}

impl Member {
    /// The value of tag `key`, if the member has it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Event {
    /// The event in Serf's filter syntax: `member-join`, `user:deploy`, `query:load`.
    pub fn describe(&self) -> String {
        match self {
            Event::MemberJoin(_) => "member-join".into(),
            Event::MemberLeave(_) => "member-leave".into(),
            Event::MemberFailed(_) => "member-failed".into(),
            Event::MemberUpdate(_) => "member-update".into(),
            Event::MemberReap(_) => "member-reap".into(),
            Event::User(u) => format!("user:{}", u.name),
            Event::Query(q) => format!("query:{}", q.name),
            Event::Tick(_) => "tick".into(),
        }
    }
}
