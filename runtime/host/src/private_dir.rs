//! [`PrivateDir`]: a directory only the agent's user can write, for files the agent later runs
//! as code (the compiled-module cache, deployed modules). Opening it creates a missing one
//! (and its parents) with mode 0700 and refuses a symlink, a directory another uid owns, or one
//! group or others can write. Files in it are then reached relative to that opened directory,
//! never through a symlink: reads open with `O_NOFOLLOW` and take regular files only; writes go
//! to an exclusively created temporary file with a random name (mode 0600) renamed over the
//! target, so a planted symlink is replaced rather than written through.
//!
//! The directories above it are not checked: every later read, write and rename goes through
//! the open handle, so swapping a parent can at most point the agent at another private
//! directory of the same user. Root is trusted.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;
use rustix::fs::{AtFlags, Mode, OFlags, CWD};
use rustix::io::Errno;

/// An opened and checked private directory.
#[derive(Debug)]
pub struct PrivateDir {
    /// For messages only; files are reached through `handle`.
    path: PathBuf,
    /// The directory as checked, so a later swap of the path does not redirect reads and
    /// writes.
    handle: File,
}

impl PrivateDir {
    /// Opens `dir`, creating it (and its parents) with mode 0700 when missing; `Err` says why
    /// it is refused.
    pub fn open(dir: &Path) -> Result<PrivateDir, String> {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err("is a symbolic link; give the real directory".into())
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Another process may create it at the same moment; the checks below judge
                // whatever is there.
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| format!("cannot create it: {e}"))?;
            }
            Err(e) => return Err(format!("cannot inspect it: {e}")),
        }
        // Checked through the opened handle, so what is checked is what is used.
        let fd = rustix::fs::openat(
            CWD,
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::LOOP => "is a symbolic link; give the real directory".to_owned(),
            Errno::NOTDIR => "is not a directory".to_owned(),
            e => format!("cannot open it: {}", std::io::Error::from(e)),
        })?;
        let handle = File::from(fd);
        let meta = handle
            .metadata()
            .map_err(|e| format!("cannot inspect it: {e}"))?;
        let euid = rustix::process::geteuid().as_raw();
        if meta.uid() != euid {
            return Err(format!(
                "owned by uid {}, not by this process's uid {euid}; another user could plant \
                 code there",
                meta.uid()
            ));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(format!(
                "writable by group or others (mode {mode:04o}); make it private (chmod 700)"
            ));
        }
        Ok(PrivateDir {
            path: dir.to_path_buf(),
            handle,
        })
    }

    /// The directory's path as given (for messages, and for readers that need a path).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open directory, for operations this type does not offer.
    pub(crate) fn handle(&self) -> &File {
        &self.handle
    }

    /// The bytes of regular file `name`; `Ok(None)` when it does not exist. A symlink or
    /// anything but a regular file is an error.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let Some(mut file) = self.open_file(name)? else {
            return Ok(None);
        };
        let len = file.metadata().map_or(0, |m| m.len());
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut bytes)
            .map_err(|e| format!("unreadable: {e}"))?;
        Ok(Some(bytes))
    }

    /// Regular file `name`, opened for reading (never through a symlink); `Ok(None)` when it
    /// does not exist.
    pub fn open_file(&self, name: &str) -> Result<Option<File>, String> {
        let fd = match rustix::fs::openat(&self.handle, name, read_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err("is a symbolic link".into()),
            Err(e) => return Err(format!("unreadable: {}", std::io::Error::from(e))),
        };
        let file = File::from(fd);
        let meta = file.metadata().map_err(|e| format!("unreadable: {e}"))?;
        if !meta.file_type().is_file() {
            return Err("is not a regular file".into());
        }
        Ok(Some(file))
    }

    /// Replaces (or creates) `name` with `bytes` atomically: a temporary file with a random
    /// name, created exclusively with mode 0600, renamed over `name`.
    /// The file's bytes reach the disk before the rename and the rename before this returns,
    /// so a crash leaves the old file or the new one, never an empty one.
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.write_temp(bytes)?;
        rustix::fs::renameat(&self.handle, tmp.as_str(), &self.handle, name).map_err(|e| {
            let _ = rustix::fs::unlinkat(&self.handle, tmp.as_str(), AtFlags::empty());
            std::io::Error::from(e)
        })?;
        self.handle.sync_all()
    }

    /// Writes `bytes` in full to a new temporary file (mode 0600) and returns its name.
    pub(crate) fn write_temp(&self, bytes: &[u8]) -> std::io::Result<String> {
        let tmp = format!(".{}.tmp", random_name());
        let fd = rustix::fs::openat(
            &self.handle,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let mut file = File::from(fd);
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .inspect_err(|_| {
                let _ = rustix::fs::unlinkat(&self.handle, tmp.as_str(), AtFlags::empty());
            })?;
        Ok(tmp)
    }

    /// Removes `name` (a symlink is removed itself, not its target); a missing file is fine.
    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        match rustix::fs::unlinkat(&self.handle, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The names of the regular files and links in the directory (not `.` and `..`).
    pub fn names(&self) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            if let Some(name) = entry?.file_name().to_str() {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }
}

/// Hex of 16 random bytes: temporary names nobody can predict (and so plant a symlink at).
pub(crate) fn random_name() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex(&b)
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Flags for reading a file that must not be a symlink (and must not block, should it be a FIFO).
pub(crate) fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("hearsay-private-dir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn random_names_differ() {
        assert_ne!(random_name(), random_name());
        assert_eq!(random_name().len(), 32);
    }

    #[test]
    fn creates_a_private_dir_and_round_trips_files() {
        let d = scratch("rt");
        let p = PrivateDir::open(&d.join("a/b")).unwrap();
        let mode = std::fs::metadata(p.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(p.read("x").unwrap(), None);
        p.write("x", b"one").unwrap();
        p.write("x", b"two").unwrap();
        assert_eq!(p.read("x").unwrap().as_deref(), Some(&b"two"[..]));
        let fmode = std::fs::metadata(d.join("a/b/x"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(fmode, 0o600);
        assert_eq!(p.names().unwrap(), vec!["x".to_owned()]);
        p.remove("x").unwrap();
        p.remove("x").unwrap();
        assert_eq!(p.read("x").unwrap(), None);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn refuses_open_dirs_symlinks_and_planted_links() {
        let d = scratch("attack");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = PrivateDir::open(&d).unwrap_err();
        assert!(e.contains("writable by group or others"), "{e}");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = d.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&d, &link).unwrap();
        assert!(PrivateDir::open(&link)
            .unwrap_err()
            .contains("symbolic link"));
        // A symlink planted at a file's name: reading it fails, writing replaces the link
        // and leaves its target alone.
        let p = PrivateDir::open(&d).unwrap();
        let victim = d.with_extension("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, d.join("m")).unwrap();
        assert!(p.read("m").unwrap_err().contains("symbolic link"));
        p.write("m", b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(p.read("m").unwrap().as_deref(), Some(&b"new"[..]));
        for f in [&link, &victim] {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
