//! The compiled-module disk cache under attack: entries swapped, forged or copied from another
//! cache, unsafe directories and key files, and symlinks planted where the cache writes. Each
//! attack must end in a refusal (a recompiled handler that behaves as its real module, or a
//! `HostError::Cache`), never in running the planted bytes or writing through a link.

mod support;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use hearsay_host::{CacheOutcome, Handler, Host, HostConfig, HostError, Outcome};
use sha2::{Digest, Sha256};
use support::{guests, query, run, scratch_dir, spec, TestEmbedder};

fn config(dir: &Path) -> HostConfig {
    HostConfig {
        workers: 1,
        cache_dir: Some(dir.to_path_buf()),
        ..HostConfig::default()
    }
}

fn host(dir: &Path) -> Host {
    Host::new(config(dir)).unwrap()
}

fn load(host: &Host, name: &str, path: &Path) -> (Handler, CacheOutcome) {
    let h = host.load(spec(name, path)).unwrap();
    let cache = h.info().cache;
    (h, cache)
}

/// Asserts that `echo` is the real echo module: it replies with the payload.
fn assert_echoes(host: &Host, echo: &Handler) {
    let emb = TestEmbedder::new();
    assert_eq!(
        run(host, echo, query("q", b"the real echo"), emb.clone()),
        Outcome::Ok
    );
    assert_eq!(emb.reply_text(), "the real echo");
}

/// The cache entries (`*.cwasm`) in `dir`, sorted.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    v.sort();
    v
}

/// The file name of the echo guest's entry (the same in every cache directory of this engine).
fn echo_entry_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let dir = cache_dir("cache-name");
        load(&host(&dir), "echo", &guests().echo);
        let e = entries(&dir);
        assert_eq!(e.len(), 1, "{e:?}");
        e[0].file_name().unwrap().to_str().unwrap().to_owned()
    })
    .clone()
}

/// A fresh, private directory for a cache (private whatever the umask).
fn cache_dir(name: &str) -> PathBuf {
    let dir = scratch_dir(name);
    chmod(&dir, 0o700);
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `Host::new` refuses the cache directory with a `HostError::Cache` naming it; returns the reason.
fn refused(dir: &Path) -> String {
    match Host::new(config(dir)) {
        Err(HostError::Cache { dir: named, reason }) => {
            assert_eq!(named, dir);
            let shown = HostError::Cache {
                dir: named,
                reason: reason.clone(),
            }
            .to_string();
            assert!(shown.contains(&dir.display().to_string()), "{shown}");
            reason
        }
        Err(other) => panic!("expected a cache error, got {other}"),
        Ok(_) => panic!("cache directory {} accepted", dir.display()),
    }
}

#[test]
fn the_disk_cache_is_used_on_the_next_load_and_survives_corruption() {
    let dir = cache_dir("cache");
    {
        let host = host(&dir);
        assert_eq!(load(&host, "echo", &guests().echo).1, CacheOutcome::Miss);
        assert_eq!(load(&host, "echo", &guests().echo).1, CacheOutcome::Hit);
    }
    let entries = entries(&dir);
    assert_eq!(entries.len(), 1, "{entries:?}");
    // A new host (as after a restart) uses the entry, and the handler works.
    let host = host(&dir);
    let (echo, outcome) = load(&host, "echo", &guests().echo);
    assert_eq!(outcome, CacheOutcome::Hit);
    assert_echoes(&host, &echo);
    // Garble the entry: it is recompiled, rewritten and the handler still works.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&entries[0], &bytes).unwrap();
    let (echo, outcome) = load(&host, "echo", &guests().echo);
    assert_eq!(outcome, CacheOutcome::Corrupt);
    assert_echoes(&host, &echo);
    std::fs::write(&entries[0], b"garbage").unwrap();
    assert_eq!(load(&host, "echo", &guests().echo).1, CacheOutcome::Corrupt);
    assert_eq!(load(&host, "echo", &guests().echo).1, CacheOutcome::Hit);
}

/// (a) Another module's genuine entry, put at echo's name, is refused: the handler is recompiled
/// from the real module and echoes.
#[test]
fn another_modules_entry_at_the_entry_name_is_refused() {
    let dir = cache_dir("cache-swap");
    let echo_name = echo_entry_name();
    {
        let host = host(&dir);
        assert_eq!(load(&host, "echo", &guests().echo).1, CacheOutcome::Miss);
        assert_eq!(load(&host, "probe", &guests().probe).1, CacheOutcome::Miss);
    }
    let all = entries(&dir);
    assert_eq!(all.len(), 2, "{all:?}");
    let probe_entry = all
        .iter()
        .find(|p| !p.ends_with(&echo_name))
        .unwrap()
        .clone();
    std::fs::copy(&probe_entry, dir.join(&echo_name)).unwrap();

    let host = host(&dir);
    let (echo, outcome) = load(&host, "echo", &guests().echo);
    assert_eq!(outcome, CacheOutcome::Corrupt);
    assert_echoes(&host, &echo);
    // Rewritten with the real module.
    let (echo, outcome) = load(&host, "echo", &guests().echo);
    assert_eq!(outcome, CacheOutcome::Hit);
    assert_echoes(&host, &echo);
}

/// (a) An entry for the right module written under another cache's key (another agent, another
/// user's copy) is refused.
#[test]
fn an_entry_tagged_under_another_key_is_refused() {
    let ours = cache_dir("cache-ours");
    let theirs = cache_dir("cache-theirs");
    let name = echo_entry_name();
    assert_eq!(
        load(&host(&theirs), "echo", &guests().echo).1,
        CacheOutcome::Miss
    );
    let host = host(&ours);
    assert_ne!(
        std::fs::read(ours.join("key")).unwrap(),
        std::fs::read(theirs.join("key")).unwrap(),
        "each directory has its own key"
    );
    std::fs::copy(theirs.join(&name), ours.join(&name)).unwrap();
    let (echo, outcome) = load(&host, "echo", &guests().echo);
    assert_eq!(outcome, CacheOutcome::Corrupt);
    assert_echoes(&host, &echo);
}

/// (b) The old entry format (artifact followed by its plain sha256), whether the artifact is
/// genuine or garbage, is refused: a checksum anyone can compute proves nothing.
#[test]
fn an_entry_with_a_plain_checksum_is_refused() {
    let dir = cache_dir("cache-oldformat");
    let name = echo_entry_name();
    let path = dir.join(&name);
    let host = host(&dir);
    assert_eq!(load(&host, "echo", &guests().echo).1, CacheOutcome::Miss);
    let entry = std::fs::read(&path).unwrap();
    let artifact = &entry[..entry.len() - 32];

    let mut old = artifact.to_vec();
    old.extend_from_slice(&Sha256::digest(artifact));
    std::fs::write(&path, &old).unwrap();
    let (echo, outcome) = load(&host, "echo", &guests().echo);
    assert_eq!(outcome, CacheOutcome::Corrupt);
    assert_echoes(&host, &echo);

    let garbage = vec![0xc3u8; 4096];
    let mut forged = garbage.clone();
    forged.extend_from_slice(&Sha256::digest(&garbage));
    std::fs::write(&path, &forged).unwrap();
    let (echo, outcome) = load(&host, "echo", &guests().echo);
    assert_eq!(outcome, CacheOutcome::Corrupt);
    assert_echoes(&host, &echo);
}

/// (c) A cache directory that is a symlink (even to a good directory) is refused, as is a path
/// that is not a directory.
#[test]
fn a_symlinked_or_non_directory_cache_dir_is_refused() {
    let base = scratch_dir("cache-link");
    let real = base.join("real");
    std::fs::create_dir(&real).unwrap();
    chmod(&real, 0o700);
    let link = base.join("link");
    symlink(&real, &link).unwrap();
    let reason = refused(&link);
    assert!(reason.contains("symbolic link"), "{reason}");
    assert!(
        std::fs::read_dir(&real).unwrap().next().is_none(),
        "nothing written through the link"
    );

    let file = base.join("file");
    std::fs::write(&file, b"").unwrap();
    let reason = refused(&file);
    assert!(reason.contains("not a directory"), "{reason}");
}

/// (d) A cache directory writable by others or by its group is refused.
#[test]
fn a_group_or_world_writable_cache_dir_is_refused() {
    for m in [0o777, 0o1777, 0o770, 0o720, 0o702] {
        let dir = scratch_dir("cache-mode");
        chmod(&dir, m);
        let reason = refused(&dir);
        assert!(reason.contains("writable by group or others"), "{reason}");
        assert!(!dir.join("key").exists(), "no key made in a refused dir");
    }
    // Readable by others is fine: entries are tagged, not secret.
    let dir = scratch_dir("cache-mode");
    chmod(&dir, 0o755);
    Host::new(config(&dir)).unwrap();
}

/// (e) A cache directory owned by another user is refused. Only root can make one.
#[test]
fn a_cache_dir_owned_by_another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to give a directory to another user");
        return;
    }
    let dir = cache_dir("cache-owner");
    std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
    let reason = refused(&dir);
    assert!(reason.contains("owned by uid 65534"), "{reason}");

    // And a key file owned by another user, in a directory of ours.
    let dir = cache_dir("cache-keyowner");
    Host::new(config(&dir)).unwrap();
    std::os::unix::fs::chown(dir.join("key"), Some(65534), None).unwrap();
    let reason = refused(&dir);
    assert!(reason.contains("owned by uid 65534"), "{reason}");
}

/// (f) A symlink planted at the entry's name (and at the temporary names the old cache used)
/// pointing at a victim file: the miss neither reads nor writes through it, and the handler loads.
#[test]
fn a_symlink_planted_at_an_entry_is_not_written_through() {
    let base = scratch_dir("cache-plant");
    let dir = base.join("cache");
    let victim = base.join("victim");
    std::fs::write(&victim, b"root-only contents").unwrap();
    let name = echo_entry_name();
    let host = host(&dir);
    let entry = dir.join(&name);
    symlink(&victim, &entry).unwrap();
    for seq in 0..4 {
        symlink(
            &victim,
            entry.with_extension(format!("tmp{}-{seq}", std::process::id())),
        )
        .unwrap();
    }

    let (echo, outcome) = load(&host, "echo", &guests().echo);
    assert_eq!(outcome, CacheOutcome::Corrupt, "a symlink is no entry");
    assert_echoes(&host, &echo);
    assert_eq!(std::fs::read(&victim).unwrap(), b"root-only contents");
    let meta = std::fs::symlink_metadata(&entry).unwrap();
    assert!(meta.file_type().is_file(), "the link was replaced");
    assert_eq!(mode(&entry), 0o600);
    assert_eq!(load(&host, "echo", &guests().echo).1, CacheOutcome::Hit);
    assert_eq!(std::fs::read(&victim).unwrap(), b"root-only contents");
}

/// (g) A key file others can read (or write) is refused, as is a symlinked, non-regular or
/// wrong-sized one.
#[test]
fn an_unsafe_key_file_is_refused() {
    let dir = cache_dir("cache-key");
    Host::new(config(&dir)).unwrap();
    let key = dir.join("key");
    for m in [0o644, 0o640, 0o604, 0o606] {
        chmod(&key, m);
        let reason = refused(&dir);
        assert!(
            reason.contains("key file is open to group or others"),
            "{reason}"
        );
    }
    chmod(&key, 0o600);
    Host::new(config(&dir)).unwrap();

    std::fs::write(&key, [1u8; 31]).unwrap();
    assert!(refused(&dir).contains("holds 31 bytes"));
    std::fs::write(&key, [1u8; 33]).unwrap();
    assert!(refused(&dir).contains("holds 32+ bytes"));

    std::fs::remove_file(&key).unwrap();
    let elsewhere = scratch_dir("cache-key-elsewhere").join("key");
    std::fs::write(&elsewhere, [1u8; 32]).unwrap();
    chmod(&elsewhere, 0o600);
    symlink(&elsewhere, &key).unwrap();
    assert!(refused(&dir).contains("symbolic link"));

    std::fs::remove_file(&key).unwrap();
    std::fs::create_dir(&key).unwrap();
    assert!(refused(&dir).contains("not a regular file"));
}

/// (h) A missing cache directory is made (with its parents) private to the agent, with a private
/// 32-byte key, which the next host reuses.
#[test]
fn a_fresh_cache_dir_is_private_with_a_private_key() {
    let dir = scratch_dir("cache-fresh").join("a/b/wasm-cache");
    let host = host(&dir);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    let key_path = dir.join("key");
    assert_eq!(mode(&key_path), 0o600);
    let key = std::fs::read(&key_path).unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(load(&host, "echo", &guests().echo).1, CacheOutcome::Miss);
    let entry = entries(&dir);
    assert_eq!(entry.len(), 1);
    assert_eq!(mode(&entry[0]), 0o600);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "the key and one entry, no temporary files: {names:?}"
    );
    drop(host);

    let host = self::host(&dir);
    assert_eq!(std::fs::read(&key_path).unwrap(), key, "the key is kept");
    assert_eq!(load(&host, "echo", &guests().echo).1, CacheOutcome::Hit);
}
