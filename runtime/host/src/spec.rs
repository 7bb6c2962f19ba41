//! What the embedder says about a handler: its module, limits and grants.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::http::HttpAllow;
use crate::quota::SharedQuota;

/// Where a handler's component comes from.
#[derive(Debug, Clone)]
pub enum ModuleSource {
    /// The component's bytes (e.g. fetched from the module store).
    Bytes(Vec<u8>),
    /// A `.wasm` component file.
    Path(PathBuf),
}

/// A handler to load.
#[derive(Debug, Clone)]
pub struct HandlerSpec {
    /// The handler's name, used in logs and stats.
    pub name: String,
    /// The component.
    pub module: ModuleSource,
    /// Resource limits per event.
    pub limits: Limits,
    /// Capabilities beyond the contract's imports. Default: none.
    pub grants: Grants,
    /// A capacity it shares with other handlers (its tenant's), on top of its own limits.
    pub quota: Option<Arc<SharedQuota>>,
}

impl HandlerSpec {
    /// A spec with default limits and no grants.
    pub fn new(name: impl Into<String>, module: ModuleSource) -> Self {
        HandlerSpec {
            name: name.into(),
            module,
            limits: Limits::default(),
            grants: Grants::default(),
            quota: None,
        }
    }
}

/// Limits applied to every invocation of a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory the instance may grow to, in bytes. Capped by [`crate::HostConfig::max_memory_bytes`].
    pub memory_bytes: usize,
    /// Wall-clock deadline per event, over everything it does: guest code (stopped at the next
    /// epoch tick), host calls, sleeps and reply writes.
    pub timeout: Duration,
    /// Fuel (roughly: wasm instructions) per event; needs [`crate::HostConfig::fuel`].
    pub fuel: Option<u64>,
    /// Events waiting for this handler; one more is dropped and counted.
    pub queue: usize,
    /// Events of this handler that run at once (each in its own instance).
    pub concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            timeout: Duration::from_secs(10),
            fuel: None,
            queue: 64,
            concurrency: 1,
        }
    }
}

/// A host directory mapped at a guest path: read-only in [`Grants::dirs`], read-write in
/// [`Grants::write_dirs`]. The guest sees nothing outside it (no `..`, no symlink out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The host directory, e.g. `/proc`.
    pub host: PathBuf,
    /// Where the guest sees it, e.g. `/proc`.
    pub guest: String,
}

/// A per-handler key-value store (`grants.kv`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvGrant {
    /// The store's file (created with its directory, private to the agent's user). Handlers
    /// granted the same file share one store.
    pub path: PathBuf,
    /// The most bytes of keys and values the store may hold.
    pub quota: u64,
}

/// Capabilities a handler gets beyond the contract. Everything not listed is denied: no files,
/// network, environment, commands, state, tags, emitting, or real clocks (the guest sees a clock
/// frozen at the epoch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// May broadcast user events (`emit`).
    pub emit: bool,
    /// With `emit`: only names that begin with this (a tenant's namespace, `payments/`); an
    /// event named otherwise is rejected with the reason. `None`: any name.
    pub emit_prefix: Option<String>,
    /// Read-only directories.
    pub dirs: Vec<DirGrant>,
    /// Read-write directories.
    pub write_dirs: Vec<DirGrant>,
    /// Environment variables the guest sees.
    pub env: Vec<(String, String)>,
    /// Real wall and monotonic clocks.
    pub clocks: bool,
    /// Commands the guest may run by name (`commands.run`), each with its whole argv fixed by
    /// the operator: the program (an absolute path) and its arguments.
    pub commands: BTreeMap<String, Vec<String>>,
    /// A persistent key-value store (`kv`).
    pub kv: Option<KvGrant>,
    /// Patterns of this node's tag names the guest may set and delete (`tags`): `*` matches any
    /// run of characters, e.g. `service:*`.
    pub tags: Vec<String>,
    /// Origins and path prefixes the handler may send HTTP requests to (`wasi:http`); empty:
    /// none.
    pub http: Vec<HttpAllow>,
}

/// Whether the tag-name `pattern` (`*` matches any run of characters) matches `name`.
pub fn tag_pattern_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole name.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::tag_pattern_matches as m;

    #[test]
    fn tag_patterns() {
        assert!(m("service:*", "service:web"));
        assert!(m("service:*", "service:"));
        assert!(!m("service:*", "services:web"));
        assert!(!m("service:*", "role"));
        assert!(m("role", "role"));
        assert!(!m("role", "role2"));
        assert!(m("*", "anything"));
        assert!(m("a*b*c", "a-x-b-y-c"));
        assert!(!m("a*b*c", "a-x-c-y-b"));
        assert!(m("*:web", "service:web"));
        assert!(!m("ab*ba", "aba"));
    }
}
