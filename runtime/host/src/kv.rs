//! The per-handler key-value store (`grants.kv`): one redb database file per grant, with a quota
//! on the bytes of keys and values, shared by every handler granted the same file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// The one table of a store: key text to value bytes.
const TABLE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("kv");

/// The longest key, in bytes.
pub(crate) const MAX_KEY: usize = 1024;

/// Why a store operation failed (the WIT `kv-error` without `not-granted`, which the caller
/// decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KvError {
    /// The write would take the store past its quota (bytes).
    QuotaExceeded(u64),
    /// The key is empty or longer than [`MAX_KEY`] (its length).
    BadKey(u64),
    /// The store failed.
    Store(String),
}

/// An open store.
pub(crate) struct KvStore {
    db: redb::Database,
    quota: u64,
    /// Bytes of keys and values held now; guarded with the write so two writers cannot both
    /// pass the quota check.
    used: Mutex<u64>,
}

fn store_err(e: impl std::fmt::Display) -> KvError {
    KvError::Store(e.to_string())
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(KvError::BadKey(key.len() as u64));
    }
    Ok(())
}

impl KvStore {
    /// Opens (creating) the store at `path`, its directory private to this user.
    pub(crate) fn open(path: &Path, quota: u64) -> Result<KvStore, String> {
        if let Some(dir) = path.parent() {
            crate::private_dir::PrivateDir::open(dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let db = redb::Database::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let used = {
            let txn = db.begin_write().map_err(|e| e.to_string())?;
            let mut used = 0u64;
            {
                let table = txn.open_table(TABLE).map_err(|e| e.to_string())?;
                for entry in table.iter().map_err(|e| e.to_string())? {
                    let (k, v) = entry.map_err(|e| e.to_string())?;
                    used += (k.value().len() + v.value().len()) as u64;
                }
            }
            txn.commit().map_err(|e| e.to_string())?;
            used
        };
        Ok(KvStore {
            db,
            quota,
            used: Mutex::new(used),
        })
    }

    /// Bytes of keys and values held now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        *self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        let txn = self.db.begin_read().map_err(store_err)?;
        let table = txn.open_table(TABLE).map_err(store_err)?;
        let value = table
            .get(key)
            .map_err(store_err)?
            .map(|v| v.value().to_vec());
        Ok(value)
    }

    pub(crate) fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_key(key)?;
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let txn = self.db.begin_write().map_err(store_err)?;
        let after = {
            let mut table = txn.open_table(TABLE).map_err(store_err)?;
            let old = table
                .get(key)
                .map_err(store_err)?
                .map_or(0, |v| (key.len() + v.value().len()) as u64);
            let after = *used - old + (key.len() + value.len()) as u64;
            if after > self.quota {
                return Err(KvError::QuotaExceeded(self.quota));
            }
            table.insert(key, value).map_err(store_err)?;
            after
        };
        txn.commit().map_err(store_err)?;
        *used = after;
        Ok(())
    }

    pub(crate) fn delete(&self, key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let txn = self.db.begin_write().map_err(store_err)?;
        let freed = {
            let mut table = txn.open_table(TABLE).map_err(store_err)?;
            let removed = table.remove(key).map_err(store_err)?;
            removed.map(|v| (key.len() + v.value().len()) as u64)
        };
        txn.commit().map_err(store_err)?;
        if let Some(freed) = freed {
            *used -= freed;
        }
        Ok(freed.is_some())
    }

    pub(crate) fn keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let txn = self.db.begin_read().map_err(store_err)?;
        let table = txn.open_table(TABLE).map_err(store_err)?;
        let mut out = Vec::new();
        for entry in table.range(prefix..).map_err(store_err)? {
            let (k, _) = entry.map_err(store_err)?;
            let k = k.value();
            if !k.starts_with(prefix) {
                break;
            }
            out.push(k.to_owned());
        }
        Ok(out)
    }
}

/// The stores open in this host, by file: a reloaded handler (or two handlers granted one file)
/// gets the store already open, since a redb file is opened once per process.
#[derive(Default)]
pub(crate) struct KvStores {
    open: Mutex<HashMap<PathBuf, Weak<KvStore>>>,
}

impl KvStores {
    /// The store at `path`, opened now or shared; `quota` applies to a store opened now.
    pub(crate) fn get(&self, path: &Path, quota: u64) -> Result<Arc<KvStore>, String> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, w| w.strong_count() > 0);
        if let Some(store) = open.get(path).and_then(Weak::upgrade) {
            return Ok(store);
        }
        let store = Arc::new(KvStore::open(path, quota)?);
        open.insert(path.to_owned(), Arc::downgrade(&store));
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hearsay-kv-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn values_survive_reopening_and_the_quota_holds() {
        let d = dir("reopen");
        let path = d.join("kv/h.redb");
        {
            let kv = KvStore::open(&path, 100).unwrap();
            kv.set("a", b"0123456789").unwrap();
            kv.set("b/1", b"x").unwrap();
            kv.set("b/2", b"y").unwrap();
            assert_eq!(kv.used(), 11 + 4 + 4);
            // Over the quota: refused, nothing written.
            assert_eq!(kv.set("c", &[0; 90]), Err(KvError::QuotaExceeded(100)));
            assert_eq!(kv.get("c").unwrap(), None);
            // Replacing a value counts only the difference.
            kv.set("a", &[1; 80]).unwrap();
            assert_eq!(kv.used(), 81 + 8);
            assert_eq!(kv.keys("b/").unwrap(), vec!["b/1", "b/2"]);
            assert!(kv.delete("b/1").unwrap());
            assert!(!kv.delete("b/1").unwrap());
            assert_eq!(kv.set("", b"x"), Err(KvError::BadKey(0)));
            assert_eq!(kv.get(&"k".repeat(MAX_KEY + 1)), Err(KvError::BadKey(1025)));
        }
        let kv = KvStore::open(&path, 100).unwrap();
        assert_eq!(kv.used(), 81 + 4);
        assert_eq!(kv.get("a").unwrap(), Some(vec![1; 80]));
        assert_eq!(kv.keys("").unwrap(), vec!["a", "b/2"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn one_file_is_one_store() {
        let d = dir("shared");
        let stores = KvStores::default();
        let a = stores.get(&d.join("s.redb"), 10).unwrap();
        let b = stores.get(&d.join("s.redb"), 10).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        // Closed when its last user went: opened again, not refused as "already open".
        stores.get(&d.join("s.redb"), 10).unwrap();
        let _ = std::fs::remove_dir_all(&d);
    }
}
