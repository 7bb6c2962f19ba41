//! The handler keys of the agent's configuration: `-handler FILTER=PATH.wasm` (repeatable) and
//! `[[handler]]` blocks in TOML (`"handlers": [...]` or `"handler": [...]` in JSON), each with
//! `name`, `module`, `events`, `limits` (`memory`, `timeout`, `fuel`, `queue`, `concurrency`) and `grants`
//! (`dirs`, `env`, `clocks`, `emit`):
//!
//! ```toml
//! [[handler]]
//! name = "facts"                    # default: the module's file stem
//! module = "/opt/hearsay/sysinfo.wasm"
//! events = "query:sysinfo"          # Serf's filter syntax; default "*"
//! limits = { memory = "64MiB", timeout = "2s", fuel = 100000000, queue = 64, concurrency = 1 }
//! grants = { dirs = ["/proc"], env = { REGION = "eu" }, clocks = true, emit = false }
//! ```
//!
//! `grants.dirs` entries are `HOST` (seen at the same path) or `HOST:GUEST`, always read-only.
//! `limits.memory` is bytes, or a string with a unit (`512KiB`, `64MiB`, `1GiB`; `KB`, `MB`,
//! `GB` are the same powers of 1024). Also `handler_cache_dir` (`-handler-cache-dir`): where
//! compiled modules are cached, private to the agent's user (default: [`default_cache_dir`]), and
//! `handler_memory_total` (`-handler-memory-total`): the linear memory of all live instances
//! together (default 1GiB).

use super::value::Value;
use super::ConfigError;
use crate::conventions::parse_go_duration;
use crate::filter::EventFilter;
use crate::handlers::HandlerConfig;
use hearsay_host::DirGrant;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Decodes the value of a `handler` / `handlers` key: a list of handler tables (one table alone
/// is taken as a list of one).
pub fn decode(value: Value, origin: &str, key: &str) -> Result<Vec<HandlerConfig>, ConfigError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::List(items) => items,
        m @ Value::Map(_) => vec![m],
        other => {
            return Err(ConfigError::WrongType {
                origin: origin.to_owned(),
                key: key.to_owned(),
                expected: "a list of handler tables",
                found: other.kind(),
            })
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| one(item, origin, &format!("{key}[{i}]")))
        .collect()
}

struct At<'a> {
    origin: &'a str,
    key: String,
}

impl At<'_> {
    fn wrong(&self, expected: &'static str, found: &Value) -> ConfigError {
        ConfigError::WrongType {
            origin: self.origin.to_owned(),
            key: self.key.clone(),
            expected,
            found: found.kind(),
        }
    }

    fn bad(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::BadValue {
            origin: self.origin.to_owned(),
            key: self.key.clone(),
            message: message.into(),
        }
    }

    fn unknown(&self) -> ConfigError {
        ConfigError::UnknownKey {
            origin: self.origin.to_owned(),
            key: self.key.clone(),
        }
    }

    fn string(&self, v: &Value) -> Result<String, ConfigError> {
        match v {
            Value::Str(s) => Ok(s.clone()),
            other => Err(self.wrong("a string", other)),
        }
    }

    fn boolean(&self, v: &Value) -> Result<bool, ConfigError> {
        match v {
            Value::Bool(b) => Ok(*b),
            other => Err(self.wrong("a boolean (true or false)", other)),
        }
    }

    fn unsigned(&self, v: &Value) -> Result<u64, ConfigError> {
        match v {
            Value::Int(i) if *i >= 0 => Ok(*i as u64),
            Value::Float(f) if *f >= 0.0 && f.fract() == 0.0 && *f < u64::MAX as f64 => {
                Ok(*f as u64)
            }
            Value::Int(_) | Value::Float(_) => Err(self.bad("must be a whole number of 0 or more")),
            other => Err(self.wrong("an integer", other)),
        }
    }

    fn map(&self, v: Value) -> Result<Vec<(String, Value)>, ConfigError> {
        match v {
            Value::Map(pairs) => Ok(pairs),
            other => Err(self.wrong("a table", &other)),
        }
    }

    fn child(&self, key: &str) -> Self {
        At {
            origin: self.origin,
            key: format!("{}.{key}", self.key),
        }
    }
}

fn one(item: Value, origin: &str, key: &str) -> Result<HandlerConfig, ConfigError> {
    let at = At {
        origin,
        key: key.to_owned(),
    };
    let pairs = at.map(item)?;
    let mut name = None;
    let mut module = None;
    let mut filter = EventFilter::parse("").expect("the empty filter parses");
    let mut limits = hearsay_host::Limits::default();
    let mut grants = hearsay_host::Grants::default();
    for (k, v) in pairs {
        let at = at.child(&k);
        match k.as_str() {
            "name" => name = Some(at.string(&v)?),
            "module" => module = Some(PathBuf::from(at.string(&v)?)),
            "events" => {
                filter = EventFilter::parse(&at.string(&v)?).map_err(|e| at.bad(e.to_string()))?
            }
            "limits" => {
                for (lk, lv) in at.map(v)? {
                    let at = at.child(&lk);
                    match lk.as_str() {
                        "memory" => limits.memory_bytes = size(&at, &lv)?,
                        "timeout" => {
                            limits.timeout =
                                parse_go_duration(&at.string(&lv)?).map_err(|e| at.bad(e))?
                        }
                        "fuel" => limits.fuel = Some(at.unsigned(&lv)?),
                        "queue" => {
                            limits.queue = usize::try_from(at.unsigned(&lv)?)
                                .map_err(|_| at.bad("too large"))?
                        }
                        "concurrency" => {
                            limits.concurrency = usize::try_from(at.unsigned(&lv)?)
                                .ok()
                                .filter(|&n| n >= 1)
                                .ok_or_else(|| {
                                    at.bad("must be between 1 and the host's instances")
                                })?
                        }
                        _ => return Err(at.unknown()),
                    }
                }
            }
            "grants" => {
                for (gk, gv) in at.map(v)? {
                    let at = at.child(&gk);
                    match gk.as_str() {
                        "dirs" => {
                            let Value::List(items) = gv else {
                                return Err(at.wrong("a list of strings", &gv));
                            };
                            for d in items {
                                grants.dirs.push(dir_grant(&at, &at.string(&d)?)?);
                            }
                        }
                        "env" => {
                            for (ek, ev) in at.map(gv)? {
                                let value = at.child(&ek).string(&ev)?;
                                grants.env.push((ek, value));
                            }
                        }
                        "clocks" => grants.clocks = at.boolean(&gv)?,
                        "emit" => grants.emit = at.boolean(&gv)?,
                        _ => return Err(at.unknown()),
                    }
                }
            }
            _ => return Err(at.unknown()),
        }
    }
    let Some(module) = module.filter(|m| !m.as_os_str().is_empty()) else {
        return Err(at
            .child("module")
            .bad("every handler needs a module (a .wasm file)"));
    };
    let mut h = HandlerConfig::new(filter, module);
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        h.name = n;
    }
    h.limits = limits;
    h.grants = grants;
    Ok(h)
}

/// `HOST` or `HOST:GUEST`.
fn dir_grant(at: &At<'_>, s: &str) -> Result<DirGrant, ConfigError> {
    let (host, guest) = match s.split_once(':') {
        Some((h, g)) => (h, g),
        None => (s, s),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(at.bad(format!(
            "{s:?}: expected a directory, or HOST:GUEST (e.g. \"/proc\" or \"/srv/data:/data\")"
        )));
    }
    Ok(DirGrant {
        host: host.into(),
        guest: guest.into(),
    })
}

fn size(at: &At<'_>, v: &Value) -> Result<usize, ConfigError> {
    let bytes = match v {
        Value::Str(s) => parse_size(s).map_err(|e| at.bad(e))?,
        other => at.unsigned(other)?,
    };
    usize::try_from(bytes).map_err(|_| at.bad("too large"))
}

/// Bytes from `1048576`, `512KiB`, `64MiB`, `1GiB` (`KB`/`MB`/`GB` and `K`/`M`/`G` mean the
/// same powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 64MiB or 1048576"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {s:?}: use KiB, MiB or GiB"
            ))
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// The `-handler FILTER=PATH.wasm` flag.
pub fn from_flag(value: &str) -> Result<HandlerConfig, String> {
    HandlerConfig::from_flag(value).map_err(|e| e.to_string())
}

/// The default `handler_cache_dir`: a directory of the agent's user, since the host refuses a
/// cache directory anyone else owns or can write (it holds native code the agent runs).
/// `$XDG_CACHE_HOME/hearsay/wasm-cache`, else `$HOME/.cache/hearsay/wasm-cache`, else
/// `/var/cache/hearsay/wasm-cache` for root, else `hearsay-wasm-cache-<uid>` in the temp dir.
pub fn default_cache_dir() -> PathBuf {
    let euid = rustix::process::geteuid();
    default_cache_dir_from(
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
        euid.as_raw(),
        &std::env::temp_dir(),
    )
}

/// [`default_cache_dir`] for the given environment, effective uid and temp dir.
fn default_cache_dir_from(
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
    euid: u32,
    temp: &Path,
) -> PathBuf {
    // The XDG spec says to ignore a relative XDG_CACHE_HOME; a relative HOME is as meaningless
    // for a daemon (it would depend on the working directory).
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(xdg) = absolute(xdg_cache_home) {
        xdg.join("hearsay/wasm-cache")
    } else if let Some(home) = absolute(home) {
        home.join(".cache/hearsay/wasm-cache")
    } else if euid == 0 {
        PathBuf::from("/var/cache/hearsay/wasm-cache")
    } else {
        // Still checked by the host: if another user made this name first, the agent refuses it
        // rather than using it.
        temp.join(format!("hearsay-wasm-cache-{euid}"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::file::{decode_text, Format};
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_default_cache_dir_is_per_user() {
        let tmp = Path::new("/tmp");
        let some = |s: &str| Some(OsString::from(s));
        assert_eq!(
            default_cache_dir_from(some("/x/cache"), some("/home/a"), 1000, tmp),
            Path::new("/x/cache/hearsay/wasm-cache")
        );
        // A relative or empty XDG_CACHE_HOME is ignored.
        for xdg in [some("rel/cache"), some(""), None] {
            assert_eq!(
                default_cache_dir_from(xdg, some("/home/a"), 1000, tmp),
                Path::new("/home/a/.cache/hearsay/wasm-cache")
            );
        }
        assert_eq!(
            default_cache_dir_from(None, None, 0, tmp),
            Path::new("/var/cache/hearsay/wasm-cache")
        );
        assert_eq!(
            default_cache_dir_from(None, some(""), 1000, tmp),
            Path::new("/tmp/hearsay-wasm-cache-1000")
        );
        // Root with a HOME uses it, like any user.
        assert_eq!(
            default_cache_dir_from(None, some("/root"), 0, tmp),
            Path::new("/root/.cache/hearsay/wasm-cache")
        );
        assert!(default_cache_dir().is_absolute());
    }

    #[test]
    fn toml_blocks_and_json_lists_decode_alike() {
        let toml = r#"
[[handler]]
name = "facts"
module = "/opt/sysinfo.wasm"
events = "query:sysinfo"
limits = { memory = "64MiB", timeout = "2s", fuel = 1000, queue = 8, concurrency = 3 }
grants = { dirs = ["/proc", "/srv/data:/data"], env = { REGION = "eu" }, clocks = true, emit = true }

[[handler]]
module = "echo.wasm"
events = "member-join,user:deploy"
"#;
        let p = decode_text(toml, Format::Toml, "h.toml").unwrap();
        assert_eq!(p.handlers.len(), 2);
        let facts = &p.handlers[0];
        assert_eq!(facts.name, "facts");
        assert_eq!(facts.filter.to_string(), "query:sysinfo");
        assert_eq!(facts.limits.memory_bytes, 64 << 20);
        assert_eq!(facts.limits.timeout, Duration::from_secs(2));
        assert_eq!((facts.limits.fuel, facts.limits.queue), (Some(1000), 8));
        assert_eq!(facts.limits.concurrency, 3);
        assert_eq!(facts.grants.dirs[0].host, PathBuf::from("/proc"));
        assert_eq!(facts.grants.dirs[0].guest, "/proc");
        assert_eq!(facts.grants.dirs[1].host, PathBuf::from("/srv/data"));
        assert_eq!(facts.grants.dirs[1].guest, "/data");
        assert_eq!(
            facts.grants.env,
            vec![("REGION".to_owned(), "eu".to_owned())]
        );
        assert!(facts.grants.clocks && facts.grants.emit);
        let echo = &p.handlers[1];
        assert_eq!(echo.name, "echo");
        assert_eq!(echo.limits, hearsay_host::Limits::default());
        assert_eq!(echo.grants, hearsay_host::Grants::default());

        let json = r#"{"handlers": [{"name": "facts", "module": "/opt/sysinfo.wasm",
            "events": "query:sysinfo",
            "limits": {"memory": 67108864, "timeout": "2s", "fuel": 1000, "queue": 8,
                       "concurrency": 3},
            "grants": {"dirs": ["/proc", "/srv/data:/data"], "env": {"REGION": "eu"},
                       "clocks": true, "emit": true}}]}"#;
        let j = decode_text(json, Format::Json, "h.json").unwrap();
        assert_eq!(j.handlers[0], p.handlers[0]);
    }

    #[test]
    fn bad_handler_entries_name_file_and_key() {
        let err = |text: &str| {
            decode_text(text, Format::Toml, "h.toml")
                .unwrap_err()
                .to_string()
        };
        let e = err("[[handler]]\nmodule = \"x.wasm\"\nevents = \"member-joined\"\n");
        assert!(
            e.contains("h.toml") && e.contains("handler[0].events"),
            "{e}"
        );
        assert!(e.contains("member-joined"), "{e}");
        let e = err("[[handler]]\nevents = \"*\"\n");
        assert!(e.contains("handler[0].module"), "{e}");
        let e = err("[[handler]]\nmodule = \"x.wasm\"\nlimits = { memory = \"12XB\" }\n");
        assert!(
            e.contains("handler[0].limits.memory") && e.contains("XB"),
            "{e}"
        );
        let e = err("[[handler]]\nmodule = \"x.wasm\"\nlimits = { timeout = \"soon\" }\n");
        assert!(e.contains("handler[0].limits.timeout"), "{e}");
        let e = err("[[handler]]\nmodule = \"x.wasm\"\nlimits = { concurrency = 0 }\n");
        assert!(e.contains("handler[0].limits.concurrency"), "{e}");
        let e = err("[[handler]]\nmodule = \"x.wasm\"\ngrants = { net = true }\n");
        assert!(e.contains("handler[0].grants.net"), "{e}");
        let e = err("[[handler]]\nmodule = \"x.wasm\"\ngrants = { dirs = [\":x\"] }\n");
        assert!(e.contains("handler[0].grants.dirs"), "{e}");
        let e = err("handler = \"x.wasm\"\n");
        assert!(e.contains("a list of handler tables"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("64MB"), Ok(64 << 20));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }
}
