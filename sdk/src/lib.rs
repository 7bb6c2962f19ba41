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
//!
//! [`services`] holds the tag convention by which members offer services (`service:NAME=PORT`),
//! shared by the ready-made `resolve`, `upstreams` and `health` handlers.

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

/// The service tag convention (`handlers/README.md`): a member offers service NAME with the tag
/// `service:NAME`, whose value is a port on the member's gossip address (`service:api=8080`) or a
/// full `ip:port` when the service listens elsewhere (`service:api=10.0.0.9:8080`).
///
/// ```ignore
/// for e in hearsay_sdk::services::endpoints("api", &hearsay_sdk::members()) {
///     hearsay_sdk::info(&format!("{} offers api at {}", e.node, e.addr));
/// }
/// ```
pub mod services {
    use crate::{Member, MemberStatus};

    /// The tag by which a member offers `service`: `service:NAME`.
    pub fn tag(service: &str) -> String {
        format!("service:{service}")
    }

    /// The `ip:port` a service tag's `value` names for a member whose gossip address is `addr`:
    /// a port on `addr` (IPv6 as `[ip]:port`), or the full socket address the value holds; none
    /// when the value is neither.
    pub fn endpoint(addr: &str, value: &str) -> Option<String> {
        let value = value.trim();
        if let Ok(port) = value.parse::<u16>() {
            return Some(if addr.contains(':') {
                format!("[{addr}]:{port}")
            } else {
                format!("{addr}:{port}")
            });
        }
        value
            .parse::<std::net::SocketAddr>()
            .ok()
            .map(|a| a.to_string())
    }

    /// One member offering a service.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Endpoint {
        /// The member's node name.
        pub node: String,
        /// Where the service listens: `ip:port` (`[ip]:port` for IPv6).
        pub addr: String,
    }

    /// The alive members of `members` offering `service`, sorted by address (as text), each
    /// address once (the first node by name when several give the same one). Members that are
    /// not alive and tag values that are neither form are left out.
    pub fn endpoints(service: &str, members: &[Member]) -> Vec<Endpoint> {
        let key = tag(service);
        let mut out: Vec<Endpoint> = members
            .iter()
            .filter(|m| m.status == MemberStatus::Alive)
            .filter_map(|m| {
                let addr = endpoint(&m.addr, m.tag(&key)?)?;
                Some(Endpoint {
                    node: m.name.clone(),
                    addr,
                })
            })
            .collect();
        out.sort_by(|a, b| a.addr.cmp(&b.addr).then_with(|| a.node.cmp(&b.node)));
        out.dedup_by(|later, first| later.addr == first.addr);
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn member(name: &str, addr: &str, status: MemberStatus, tags: &[(&str, &str)]) -> Member {
            Member {
                name: name.into(),
                addr: addr.into(),
                port: 7946,
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                status,
                rtt_micros: None,
            }
        }

        #[test]
        fn endpoint_forms() {
            assert_eq!(
                endpoint("10.0.0.5", "8080").as_deref(),
                Some("10.0.0.5:8080")
            );
            assert_eq!(
                endpoint("10.0.0.5", " 8080 ").as_deref(),
                Some("10.0.0.5:8080")
            );
            assert_eq!(
                endpoint("fd00::5", "8080").as_deref(),
                Some("[fd00::5]:8080")
            );
            assert_eq!(
                endpoint("10.0.0.5", "10.0.0.9:8443").as_deref(),
                Some("10.0.0.9:8443")
            );
            assert_eq!(
                endpoint("10.0.0.5", "[::1]:80").as_deref(),
                Some("[::1]:80")
            );
            assert_eq!(endpoint("10.0.0.5", ""), None);
            assert_eq!(endpoint("10.0.0.5", "99999"), None);
            assert_eq!(endpoint("10.0.0.5", "web.local:80"), None);
            assert_eq!(endpoint("10.0.0.5", "10.0.0.9"), None);
        }

        #[test]
        fn endpoints_alive_sorted_once() {
            use MemberStatus::*;
            let members = [
                member("c", "10.0.0.3", Alive, &[("service:web", "80")]),
                member("a", "10.0.0.1", Alive, &[("service:web", "80")]),
                member("f", "10.0.0.6", Failed, &[("service:web", "80")]),
                member("l", "10.0.0.7", Left, &[("service:web", "80")]),
                member("x", "10.0.0.8", Alive, &[("service:web", "nope")]),
                member("o", "10.0.0.9", Alive, &[("service:api", "80")]),
                member("b", "10.0.0.2", Alive, &[("service:web", "10.0.0.1:80")]),
            ];
            let got: Vec<(String, String)> = endpoints("web", &members)
                .into_iter()
                .map(|e| (e.node, e.addr))
                .collect();
            assert_eq!(
                got,
                [
                    ("a".to_string(), "10.0.0.1:80".to_string()),
                    ("c".to_string(), "10.0.0.3:80".to_string()),
                ]
            );
            assert!(endpoints("db", &members).is_empty());
        }
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
