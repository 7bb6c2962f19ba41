//! The on-disk cache of precompiled components, so a restarted agent does not recompile its
//! handlers. An entry is keyed by the module's sha256 and the engine's compatibility hash (wasmtime
//! version and compiler settings) in its file name, `<module sha256 hex>-<engine key>.cwasm`; the
//! file holds wasmtime's serialized artifact followed by a 32-byte HMAC-SHA256 tag. A missing
//! entry is compiled and written; an unusable one (truncated, garbled, failing its tag, refused by
//! wasmtime, or not a regular file) is logged, deleted, recompiled and rewritten, never fatal.
//!
//! # Trust model
//! wasmtime runs a deserialized artifact as native code without validating it, so bytes reach
//! `Component::deserialize` only after their tag checks out. The tag is keyed by a secret: the
//! 32 random bytes of `<dir>/key`, made on first use, readable only by the agent's user, and
//! refused if anyone else could read or write it. It covers a domain label, the engine key, the
//! module's sha256 and the artifact, so an entry moved to another module's or engine's name, an
//! entry written by another agent (another key), or one planted by another user fails and is
//! recompiled.
//!
//! The directory is a [`PrivateDir`] (see there: created 0700, refused if a symlink, another
//! uid's or writable by others; files read with `O_NOFOLLOW` and written by an exclusive
//! temporary file renamed over the entry).

use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use rustix::fs::{AtFlags, Mode};
use rustix::io::Errno;

use crate::private_dir::{read_flags, PrivateDir};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::error::HostError;

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

pub(crate) use crate::private_dir::hex;

/// The secret key's file name in the cache directory.
const KEY_FILE: &str = "key";
/// Bytes of the secret key.
const KEY_LEN: usize = 32;
/// Bytes of an entry's tag (HMAC-SHA256).
const TAG_LEN: usize = 32;
/// Separates these tags from any other use of the key (and from a future entry format).
const LABEL: &[u8] = b"hearsay handler cache entry v1\0";

/// An opened, checked cache directory with its secret key.
pub(crate) struct Cache {
    dir: PrivateDir,
    key: [u8; KEY_LEN],
    /// The engine part of entry names and tags.
    engine_key: String,
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
fn engine_key(engine: &Engine) -> String {
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex(&h.0.finalize()[..8])
}

/// The keyed MAC over everything an entry vouches for. Each field but the last has a fixed or
/// prefixed length, so no two different inputs run together into the same message.
fn mac(
    key: &[u8; KEY_LEN],
    engine_key: &str,
    module_sha: &[u8; 32],
    artifact: &[u8],
) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(LABEL);
    m.update(&(engine_key.len() as u64).to_be_bytes());
    m.update(engine_key.as_bytes());
    m.update(module_sha);
    m.update(artifact);
    m
}

/// The artifact of an entry (artifact || tag) whose tag is right for this key, engine and module.
fn authenticate<'a>(
    key: &[u8; KEY_LEN],
    engine_key: &str,
    module_sha: &[u8; 32],
    entry: &'a [u8],
) -> Result<&'a [u8], &'static str> {
    let Some(split) = entry.len().checked_sub(TAG_LEN) else {
        return Err("truncated (shorter than its tag)");
    };
    let (artifact, tag) = entry.split_at(split);
    // verify_slice compares in constant time.
    mac(key, engine_key, module_sha, artifact)
        .verify_slice(tag)
        .map_err(|_| {
            "fails its authentication tag (corrupted, or not written by this cache's key)"
        })?;
    Ok(artifact)
}

impl Cache {
    /// Opens (creating with mode 0700 if missing) and checks the cache directory, and loads its
    /// secret key (creating it with mode 0600 on first use). Refuses a directory or key that
    /// someone else could have written; see the module docs.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<Cache, HostError> {
        let refuse = |reason: String| HostError::Cache {
            dir: dir.to_path_buf(),
            reason,
        };
        let dir = PrivateDir::open(dir).map_err(refuse)?;
        let key = load_or_make_key(&dir).map_err(refuse)?;
        Ok(Cache {
            dir,
            key,
            engine_key: engine_key(engine),
        })
    }

    /// The entry's file name in the directory.
    fn entry_name(&self, module_sha: &[u8; 32]) -> String {
        format!("{}-{}.cwasm", hex(module_sha), self.engine_key)
    }

    /// Loads a component from its cache entry: `Ok(None)` when there is none, `Err(())` when it
    /// is unusable (the reason is logged and the entry deleted, so it is rewritten).
    pub(crate) fn load(
        &self,
        engine: &Engine,
        module_sha: &[u8; 32],
    ) -> Result<Option<Component>, ()> {
        let name = self.entry_name(module_sha);
        let bytes = match self.dir.read(&name) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(reason) => {
                self.discard(&name, &reason);
                return Err(());
            }
        };
        let artifact = authenticate(&self.key, &self.engine_key, module_sha, &bytes)
            .map_err(|reason| self.discard(&name, reason))?;
        deserialize(engine, artifact)
            .map(Some)
            .map_err(|e| self.discard(&name, &format!("rejected by wasmtime: {e:#}")))
    }

    /// Logs why an entry is unusable and deletes it (a symlink is removed itself, not its target).
    fn discard(&self, name: &str, reason: &str) {
        let path = self.dir.path().join(name);
        tracing::warn!(path = %path.display(), reason, "handler cache entry unusable; recompiling");
        if let Err(e) = self.dir.remove(name) {
            tracing::warn!(path = %path.display(), error = %e, "could not delete unusable handler cache entry");
        }
    }

    /// Writes the component's entry atomically (an exclusive temporary file with a random name,
    /// then a rename over the entry). Failures are logged: the cache is an optimisation.
    pub(crate) fn store(&self, component: &Component, module_sha: &[u8; 32]) {
        let name = self.entry_name(module_sha);
        if let Err(e) = self.write_entry(component, module_sha, &name) {
            let path = self.dir.path().join(&name);
            tracing::warn!(path = %path.display(), error = %e, "could not write handler cache entry");
        }
    }

    fn write_entry(
        &self,
        component: &Component,
        module_sha: &[u8; 32],
        name: &str,
    ) -> std::io::Result<()> {
        let mut entry = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        let tag = mac(&self.key, &self.engine_key, module_sha, &entry)
            .finalize()
            .into_bytes();
        entry.extend_from_slice(&tag);
        self.dir.write(name, &entry)
    }
}

/// Reads the directory's secret key, or makes one if there is none.
fn load_or_make_key(private: &PrivateDir) -> Result<[u8; KEY_LEN], String> {
    let dir = private.handle();
    if let Some(key) = read_key(dir)? {
        return Ok(key);
    }
    // Written in full under a random name, then linked to its real name, which fails if another
    // agent got there first: nobody ever reads a half-written key.
    let mut key = [0u8; KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let tmp = private
        .write_temp(&key)
        .map_err(|e| format!("cannot create its key file: {e}"))?;
    let linked = rustix::fs::linkat(dir, tmp.as_str(), dir, KEY_FILE, AtFlags::empty());
    let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
    match linked {
        Ok(()) => Ok(key),
        Err(Errno::EXIST) => read_key(dir)?.ok_or_else(|| "its key file vanished".into()),
        Err(e) => Err(format!(
            "cannot create its key file: {}",
            std::io::Error::from(e)
        )),
    }
}

/// The key from `<dir>/key`, `None` if the file does not exist; refuses a key file that is not a
/// private regular file of ours holding exactly [`KEY_LEN`] bytes.
fn read_key(dir: &File) -> Result<Option<[u8; KEY_LEN]>, String> {
    let fd = match rustix::fs::openat(dir, KEY_FILE, read_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => return Err("its key file is a symbolic link".into()),
        Err(e) => {
            return Err(format!(
                "cannot open its key file: {}",
                std::io::Error::from(e)
            ))
        }
    };
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect its key file: {e}"))?;
    if !meta.file_type().is_file() {
        return Err("its key file is not a regular file".into());
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(format!(
            "its key file is owned by uid {}, not by this process's uid {euid}",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "its key file is open to group or others (mode {mode:04o}); it must be 0600 \
             (or delete it to make a new one)"
        ));
    }
    // One byte more than a key, to tell a long file from a right one.
    let mut bytes = Vec::with_capacity(KEY_LEN + 1);
    file.take(KEY_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read its key file: {e}"))?;
    let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "its key file holds {}{} bytes, not {KEY_LEN} (delete it to make a new one)",
            bytes.len().min(KEY_LEN),
            if bytes.len() > KEY_LEN { "+" } else { "" }
        )
    })?;
    Ok(Some(key))
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: the artifact carries an HMAC tag under this cache's secret key (readable only by
    // this user) over the engine key and the module's sha256, so it was written by
    // `Component::serialize` in an agent of this user with a compatible engine; wasmtime itself
    // checks the header and engine settings. See the module docs for the trust model.
    unsafe { Component::deserialize(engine, artifact) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; KEY_LEN] = [7; KEY_LEN];
    const SHA: [u8; 32] = [1; 32];
    const ENGINE: &str = "0123456789abcdef";

    fn entry(key: &[u8; KEY_LEN], engine: &str, sha: &[u8; 32], artifact: &[u8]) -> Vec<u8> {
        let mut e = artifact.to_vec();
        e.extend_from_slice(&mac(key, engine, sha, artifact).finalize().into_bytes());
        e
    }

    #[test]
    fn a_tagged_entry_gives_back_its_artifact() {
        let e = entry(&KEY, ENGINE, &SHA, b"artifact bytes");
        assert_eq!(
            authenticate(&KEY, ENGINE, &SHA, &e),
            Ok(&b"artifact bytes"[..])
        );
        let empty = entry(&KEY, ENGINE, &SHA, b"");
        assert_eq!(authenticate(&KEY, ENGINE, &SHA, &empty), Ok(&b""[..]));
    }

    #[test]
    fn any_flipped_bit_in_artifact_or_tag_is_refused() {
        let e = entry(&KEY, ENGINE, &SHA, b"artifact bytes");
        for i in 0..e.len() {
            for bit in 0..8 {
                let mut bad = e.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    authenticate(&KEY, ENGINE, &SHA, &bad).is_err(),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn another_key_module_or_engine_is_refused() {
        let e = entry(&KEY, ENGINE, &SHA, b"artifact bytes");
        let mut other_key = KEY;
        other_key[0] ^= 1;
        assert!(authenticate(&other_key, ENGINE, &SHA, &e).is_err());
        let mut other_sha = SHA;
        other_sha[31] ^= 0x80;
        assert!(authenticate(&KEY, ENGINE, &other_sha, &e).is_err());
        assert!(authenticate(&KEY, "fedcba9876543210", &SHA, &e).is_err());
    }

    #[test]
    fn a_plain_checksum_or_a_short_entry_is_refused() {
        // The old format: the artifact followed by its own sha256.
        let mut old = b"artifact bytes".to_vec();
        old.extend_from_slice(&Sha256::digest(b"artifact bytes"));
        assert!(authenticate(&KEY, ENGINE, &SHA, &old).is_err());
        assert!(authenticate(&KEY, ENGINE, &SHA, &[0; TAG_LEN - 1]).is_err());
        assert!(authenticate(&KEY, ENGINE, &SHA, &[]).is_err());
    }
}
