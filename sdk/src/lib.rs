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
//! nothing survives between events. Files, environment, real clocks and emitting need a grant from
//! the operator; without one the call fails with an error (for `emit`: `EmitError::NotGranted`).
//!
//! [`http`] sends HTTP requests (`http::get(url)`, `http::Request`) to the origins and paths the
//! operator's `http` grants list for the handler; anything else is refused by the agent.
//!
//! What is not here: other networking (no grant gives sockets) and state between events.

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
    EmitError, Event, Level, Member, MemberStatus, Query, ReplyError, UserEvent,
};

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
        }
    }
}
