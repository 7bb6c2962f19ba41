//! Where deployments live on disk: `<data_dir>/deploy/`, a [`PrivateDir`] (0700, refused when
//! another user could write it) holding `deployments.json` (the set, current records and their
//! history) and one `<sha256>.wasm` per module. A module is checked against its digest every
//! time it is read, so a file changed on disk is refused, not run.

use hearsay_deploy::{DeploySet, Digest, PublicKey};
use hearsay_host::PrivateDir;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The file holding the deployment set.
const SET_FILE: &str = "deployments.json";

/// The module file name of a digest.
fn module_name(d: &Digest) -> String {
    format!("{d}.wasm")
}

/// The deploy directory, or nothing (an agent without `data_dir` keeps no deployments).
#[derive(Debug)]
pub(super) struct Store {
    dir: Option<PrivateDir>,
}

impl Store {
    /// Opens `<data_dir>/deploy`, creating it private.
    pub(super) fn open(data_dir: Option<&Path>) -> Result<Store, String> {
        let Some(data_dir) = data_dir else {
            return Ok(Store { dir: None });
        };
        let path = data_dir.join("deploy");
        let dir = PrivateDir::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Store { dir: Some(dir) })
    }

    /// The saved set; an empty one when there is none, or when it cannot be read (logged: the
    /// peers hand the set back at the next sync).
    pub(super) fn load_set(&self, trusted: Vec<PublicKey>) -> DeploySet {
        let Some(dir) = &self.dir else {
            return DeploySet::new(trusted);
        };
        let bytes = match dir.read(SET_FILE) {
            Ok(Some(b)) => b,
            Ok(None) => return DeploySet::new(trusted),
            Err(e) => {
                tracing::warn!(file = %dir.path().join(SET_FILE).display(), error = %e, "deploy: cannot read the saved deployments; starting without them");
                return DeploySet::new(trusted);
            }
        };
        DeploySet::decode(&bytes, trusted.clone()).unwrap_or_else(|e| {
            tracing::warn!(file = %dir.path().join(SET_FILE).display(), error = %e, "deploy: the saved deployments do not decode; starting without them");
            DeploySet::new(trusted)
        })
    }

    /// Saves the set (logged on failure: it is kept in memory and re-learned from peers).
    pub(super) fn save_set(&self, set: &DeploySet) {
        if let Some(dir) = &self.dir {
            if let Err(e) = dir.write(SET_FILE, &set.encode()) {
                tracing::warn!(dir = %dir.path().display(), error = %e, "deploy: cannot save the deployments");
            }
        }
    }

    /// The module's bytes, when held and still matching their digest.
    pub(super) fn read_module(&self, d: &Digest) -> Option<Vec<u8>> {
        let dir = self.dir.as_ref()?;
        match dir.read(&module_name(d)) {
            Ok(Some(bytes)) if Digest::of(&bytes) == *d => Some(bytes),
            Ok(Some(_)) => {
                tracing::warn!(module = %d, dir = %dir.path().display(), "deploy: a module file does not match its digest; removing it");
                let _ = dir.remove(&module_name(d));
                None
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(module = %d, error = %e, "deploy: cannot read a module file");
                None
            }
        }
    }

    /// The path of the module's file, when held and matching its digest.
    pub(super) fn module_path(&self, d: &Digest) -> Option<PathBuf> {
        self.read_module(d)?;
        self.path_of(d)
    }

    /// Where the module's file is (whether or not it exists).
    pub(super) fn path_of(&self, d: &Digest) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.path().join(module_name(d)))
    }

    /// Keeps a module whose bytes were checked against `d`.
    pub(super) fn write_module(&self, d: &Digest, bytes: &[u8]) -> Result<(), String> {
        let Some(dir) = &self.dir else {
            return Err("this agent has no data_dir (-data-dir) to keep modules in".into());
        };
        dir.write(&module_name(d), bytes).map_err(|e| {
            format!(
                "cannot write {}: {e}",
                dir.path().join(module_name(d)).display()
            )
        })
    }

    /// Removes module files no deployment in `keep` names.
    pub(super) fn collect_garbage(&self, keep: &HashSet<Digest>) {
        let Some(dir) = &self.dir else { return };
        let Ok(names) = dir.names() else { return };
        for name in names {
            let Some(hex) = name.strip_suffix(".wasm") else {
                continue;
            };
            if hex.parse::<Digest>().is_ok_and(|d| !keep.contains(&d)) {
                let _ = dir.remove(&name);
            }
        }
    }
}
