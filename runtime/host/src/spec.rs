//! What the embedder says about a handler: its module, limits and grants.

use std::path::PathBuf;
use std::time::Duration;

use crate::http::HttpAllow;

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
}

impl HandlerSpec {
    /// A spec with default limits and no grants.
    pub fn new(name: impl Into<String>, module: ModuleSource) -> Self {
        HandlerSpec {
            name: name.into(),
            module,
            limits: Limits::default(),
            grants: Grants::default(),
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

/// A host directory the handler may read, mapped at a guest path. Always read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The host directory, e.g. `/proc`.
    pub host: PathBuf,
    /// Where the guest sees it, e.g. `/proc`.
    pub guest: String,
}

/// Capabilities a handler gets beyond the contract. Everything not listed is denied: no files,
/// network, environment, emitting, or real clocks (the guest sees a clock frozen at the epoch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// May broadcast user events (`emit`).
    pub emit: bool,
    /// Read-only directories.
    pub dirs: Vec<DirGrant>,
    /// Environment variables the guest sees.
    pub env: Vec<(String, String)>,
    /// Real wall and monotonic clocks.
    pub clocks: bool,
    /// Origins and path prefixes the handler may send HTTP requests to (`wasi:http`); empty:
    /// none.
    pub http: Vec<HttpAllow>,
}
