//! The on-disk cache of precompiled components, so a restarted agent does not recompile its
//! handlers. An entry is keyed by the module's sha256 and the engine's compatibility hash (wasmtime
//! version and compiler settings); its file holds wasmtime's serialized artifact followed by the
//! artifact's own sha256, checked before the artifact is trusted. A missing, truncated or garbled
//! entry is recompiled and rewritten, never fatal.
//!
//! Trust: wasmtime runs deserialized artifacts as native code, so the cache directory must be
//! writable only by the agent (like its data directory). The checksum catches corruption, not an
//! attacker who can write there.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// How a handler's compiled code was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No cache directory is configured: compiled in memory.
    Disabled,
    /// Loaded from a cache entry.
    Hit,
    /// Compiled and written to the cache.
    Miss,
    /// The cache entry was unusable: compiled and rewritten.
    Corrupt,
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds `Hash` output into sha256, so the key is stable across processes (unlike `DefaultHasher`
/// seeds, which are not promised to stay fixed across Rust versions).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The engine part of the cache key.
pub(crate) fn engine_key(engine: &Engine) -> String {
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex(&h.0.finalize()[..8])
}

/// The cache file for a module.
pub(crate) fn entry_path(dir: &Path, module_sha: &[u8; 32], engine_key: &str) -> PathBuf {
    dir.join(format!("{}-{engine_key}.cwasm", hex(module_sha)))
}

/// Loads a component from its cache entry; `None` when the entry is missing or unusable (the reason
/// is logged).
pub(crate) fn load(engine: &Engine, path: &Path) -> Result<Option<Component>, ()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "handler cache entry unreadable; recompiling");
            return Err(());
        }
    };
    if bytes.len() < 32 {
        tracing::warn!(path = %path.display(), "handler cache entry truncated; recompiling");
        return Err(());
    }
    let (artifact, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(artifact).as_slice() != sum {
        tracing::warn!(path = %path.display(), "handler cache entry fails its checksum; recompiling");
        return Err(());
    }
    match deserialize(engine, artifact) {
        Ok(c) => Ok(Some(c)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "handler cache entry rejected by wasmtime; recompiling");
            Err(())
        }
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: the artifact was produced by `Component::serialize` of an engine with the same
    // compatibility hash (it is part of the file name), its checksum matched, and wasmtime itself
    // checks the header and engine settings. See the module docs for the trust assumption.
    unsafe { Component::deserialize(engine, artifact) }
}

/// Writes a cache entry atomically (temporary file, then rename). Failures are logged: the cache is
/// an optimisation.
pub(crate) fn store(component: &Component, path: &Path) {
    let result = (|| -> std::io::Result<()> {
        let mut artifact = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let sum = Sha256::digest(&artifact);
        artifact.extend_from_slice(&sum);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Unique per process and call: two loads of one module may write the entry at once.
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}-{seq}", std::process::id()));
        std::fs::write(&tmp, &artifact)?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not write handler cache entry");
    }
}
