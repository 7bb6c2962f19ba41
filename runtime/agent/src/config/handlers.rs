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

use super::de::{Strings, Table, Whole, WholeVisitor};
use super::duration::GoDuration;
use super::ConfigError;
use super::HandlerConfig;
use crate::filter::{EventFilter, FilterError};
use hearsay_host::DirGrant;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Error, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The value of a `handler` / `handlers` key: a list of handler tables (one table alone is
/// taken as a list of one).
pub(super) struct Handlers(Vec<Entry>);

impl<'de> Deserialize<'de> for Handlers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<Entry>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of handler tables")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<Entry>, A::Error> {
                let tables = Vec::<Table<Entry>>::deserialize(SeqAccessDeserializer::new(seq))?;
                Ok(tables.into_iter().map(|t| t.0).collect())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<Entry>, A::Error> {
                Entry::deserialize(MapAccessDeserializer::new(map)).map(|e| vec![e])
            }
        }
        d.deserialize_any(V).map(Handlers)
    }
}

/// One handler table. As everywhere in a config file, a key left out or `null` is not set.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Option<String>,
    tenant: Option<String>,
    module: Option<String>,
    events: Option<Events>,
    limits: Option<Table<LimitsEntry>>,
    grants: Option<Table<GrantsEntry>>,
}

/// `events`: Serf's filter syntax.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Events(EventFilter);

impl TryFrom<String> for Events {
    type Error = FilterError;
    fn try_from(s: String) -> Result<Self, FilterError> {
        EventFilter::parse(&s).map(Events)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsEntry {
    memory: Option<Size>,
    timeout: Option<GoDuration>,
    fuel: Option<Whole<u64>>,
    queue: Option<Whole<usize>>,
    #[serde(default, deserialize_with = "concurrency")]
    concurrency: Option<usize>,
}

/// `limits.concurrency`: at least 1.
fn concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    match Option::<Whole<usize>>::deserialize(d)? {
        Some(Whole(0)) => Err(D::Error::custom(
            "must be between 1 and the host's instances",
        )),
        n => Ok(n.map(|n| n.0)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantsEntry {
    dirs: Option<Strings<Dir>>,
    write_dirs: Option<Strings<Dir>>,
    env: Option<BTreeMap<String, String>>,
    clocks: Option<bool>,
    emit: Option<bool>,
    commands: Option<BTreeMap<String, Strings<String>>>,
    kv: Option<Size>,
    tags: Option<Strings<String>>,
    http: Option<Strings<String>>,
}

/// Parses a `grants.http` entry: an origin and path prefix, `http://127.0.0.1:8500` or
/// `https://hooks.example.com/ci/`.
pub fn parse_http_grant(s: &str) -> Result<hearsay_host::HttpAllow, String> {
    s.parse()
        .map_err(|e: hearsay_host::HttpAllowError| e.to_string())
}

/// Checks a `grants.commands` entry: a name of `[A-Za-z0-9._-]` and an argv whose program is an
/// absolute path (commands run with an empty environment: there is no `PATH` to search).
pub fn check_command(name: &str, argv: &[String]) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if name.is_empty() || !name.chars().all(ok) {
        return Err(format!(
            "command name {name:?}: use letters, digits, '.', '_' and '-'"
        ));
    }
    match argv.first() {
        None => Err(format!(
            "command {name:?}: give its argv, e.g. [\"/usr/sbin/nginx\", \"-s\", \"reload\"]"
        )),
        Some(p) if !Path::new(p).is_absolute() => Err(format!(
            "command {name:?}: the program {p:?} must be an absolute path (commands run with an empty environment, no PATH)"
        )),
        Some(_) => Ok(()),
    }
}

/// Checks a `grants.tags` pattern: not empty.
pub fn check_tag_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("a tag pattern is empty; give e.g. \"service:*\"".into());
    }
    Ok(())
}

/// Where the key-value store of handler `name` lives under the agent's data directory:
/// `DATA_DIR/kv/NAME.redb`, with every byte outside `[A-Za-z0-9._-]` of the name escaped as
/// `%XX` (deployed handlers' `deploy/` prefix becomes `deploy%2F`).
pub fn kv_path(data_dir: &Path, name: &str) -> PathBuf {
    let mut file = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            file.push(b as char);
        } else {
            file.push_str(&format!("%{b:02X}"));
        }
    }
    data_dir.join("kv").join(format!("{file}.redb"))
}

/// A `grants.dirs` entry: `HOST` or `HOST:GUEST`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Dir(DirGrant);

impl TryFrom<String> for Dir {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_dir_grant(&s).map(Dir)
    }
}

/// A directory grant, `HOST` (seen at the same path) or `HOST:GUEST`, for configured and
/// deployed handlers alike.
pub fn parse_dir_grant(s: &str) -> Result<DirGrant, String> {
    let (host, guest) = s.split_once(':').unwrap_or((s, s));
    if host.is_empty() || guest.is_empty() {
        return Err(format!(
            "{s:?}: expected a directory, or HOST:GUEST (e.g. \"/proc\" or \"/srv/data:/data\")"
        ));
    }
    Ok(DirGrant {
        host: host.into(),
        guest: guest.into(),
    })
}

/// The handlers a `handler` / `handlers` key gives; `key` names them in errors.
pub(super) fn configs(
    list: Option<Handlers>,
    origin: &str,
    key: &str,
) -> Result<Vec<HandlerConfig>, ConfigError> {
    let entries = list.map_or_else(Vec::new, |h| h.0);
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| e.into_config(origin, &format!("{key}[{i}]")))
        .collect()
}

impl Entry {
    fn into_config(self, origin: &str, key: &str) -> Result<HandlerConfig, ConfigError> {
        let Some(module) = self.module.filter(|m| !m.is_empty()) else {
            return Err(ConfigError::BadValue {
                origin: origin.to_owned(),
                key: format!("{key}.module"),
                message: "every handler needs a module (a .wasm file)".into(),
            });
        };
        let filter = match self.events {
            Some(e) => e.0,
            None => EventFilter::parse("").expect("the empty filter parses"),
        };
        let mut h = HandlerConfig::new(filter, module);
        h.tenant = self.tenant.filter(|t| !t.is_empty());
        if let Some(n) = self.name.filter(|n| !n.is_empty()) {
            h.name = n;
        }
        if let Some(Table(l)) = self.limits {
            let limits = &mut h.limits;
            if let Some(m) = l.memory {
                limits.memory_bytes = usize::try_from(m.0).unwrap_or(usize::MAX);
            }
            if let Some(t) = l.timeout {
                limits.timeout = t.0;
            }
            if let Some(f) = l.fuel {
                limits.fuel = Some(f.0);
            }
            if let Some(q) = l.queue {
                limits.queue = q.0;
            }
            if let Some(c) = l.concurrency {
                limits.concurrency = c;
            }
        }
        if let Some(Table(g)) = self.grants {
            let grants = &mut h.grants;
            grants.dirs = g
                .dirs
                .map_or_else(Vec::new, |d| d.0.into_iter().map(|d| d.0).collect());
            grants.write_dirs = g
                .write_dirs
                .map_or_else(Vec::new, |d| d.0.into_iter().map(|d| d.0).collect());
            grants.env = g.env.unwrap_or_default().into_iter().collect();
            grants.clocks = g.clocks.unwrap_or(false);
            grants.emit = g.emit.unwrap_or(false);
            let bad = |what: &str, message: String| ConfigError::BadValue {
                origin: origin.to_owned(),
                key: format!("{key}.grants.{what}"),
                message,
            };
            for (name, argv) in g.commands.unwrap_or_default() {
                check_command(&name, &argv.0).map_err(|m| bad("commands", m))?;
                grants.commands.insert(name, argv.0);
            }
            if let Some(Size(quota)) = g.kv {
                if quota == 0 {
                    return Err(bad(
                        "kv",
                        "the quota must be above zero, e.g. \"16MiB\"".into(),
                    ));
                }
                // The file is placed under the agent's data_dir once the whole config is known.
                grants.kv = Some(hearsay_host::KvGrant {
                    path: PathBuf::new(),
                    quota,
                });
            }
            let tags = g.tags.map_or_else(Vec::new, |t| t.0);
            for t in &tags {
                check_tag_pattern(t).map_err(|m| bad("tags", m))?;
            }
            grants.tags = tags;
            for entry in g.http.map_or_else(Vec::new, |h| h.0) {
                grants
                    .http
                    .push(parse_http_grant(&entry).map_err(|m| bad("http", m))?);
            }
        }
        Ok(h)
    }
}

/// Bytes: a number, or a string with a unit (`"64MiB"`, see [`parse_size`]).
pub(super) struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 1048576 or \"64MiB\"")
            }
            fn visit_str<E: Error>(self, s: &str) -> Result<u64, E> {
                parse_size(s).map_err(E::custom)
            }
            fn visit_u64<E: Error>(self, n: u64) -> Result<u64, E> {
                Ok(n)
            }
            fn visit_i64<E: Error>(self, n: i64) -> Result<u64, E> {
                WholeVisitor.visit_i64(n)
            }
            fn visit_f64<E: Error>(self, n: f64) -> Result<u64, E> {
                WholeVisitor.visit_f64(n)
            }
        }
        d.deserialize_any(V).map(Size)
    }
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
    fn capability_grants_decode_and_bad_ones_are_named() {
        let toml = r#"
[[handler]]
name = "lb"
module = "upstreams.wasm"
events = "member-join,every:30s"
grants = { write_dirs = ["/srv/lb:/out"], commands = { reload = ["/usr/sbin/nginx", "-s", "reload"] }, kv = "1MiB", tags = ["service:*"], http = ["http://127.0.0.1:8500/v1/"] }
"#;
        let p = decode_text(toml, Format::Toml, "h.toml").unwrap();
        let g = &p.handlers[0].grants;
        assert_eq!(g.write_dirs[0].host, PathBuf::from("/srv/lb"));
        assert_eq!(g.write_dirs[0].guest, "/out");
        assert_eq!(g.commands["reload"], ["/usr/sbin/nginx", "-s", "reload"]);
        assert_eq!(g.kv.as_ref().map(|k| k.quota), Some(1 << 20));
        assert_eq!(g.tags, ["service:*"]);
        assert_eq!(p.handlers[0].filter.periods(), [Duration::from_secs(30)]);
        assert_eq!(
            kv_path(Path::new("/var/lib/h"), "deploy/web cache"),
            Path::new("/var/lib/h/kv/deploy%2Fweb%20cache.redb")
        );

        let err = |grants: &str| {
            decode_text(
                &format!("[[handler]]\nmodule = \"x.wasm\"\ngrants = {grants}\n"),
                Format::Toml,
                "h.toml",
            )
            .unwrap_err()
            .to_string()
        };
        for (grants, key, why) in [
            (
                "{ commands = { reload = [\"nginx\", \"-s\"] } }",
                "grants.commands",
                "absolute path",
            ),
            ("{ commands = { reload = [] } }", "grants.commands", "argv"),
            (
                "{ commands = { \"re load\" = [\"/bin/true\"] } }",
                "grants.commands",
                "letters",
            ),
            ("{ kv = 0 }", "grants.kv", "above zero"),
            ("{ kv = \"lots\" }", "grants.kv", "size"),
            ("{ tags = [\"\"] }", "grants.tags", "empty"),
            (
                "{ write_dirs = [\":x\"] }",
                "grants.write_dirs",
                "HOST:GUEST",
            ),
        ] {
            let e = err(grants);
            assert!(e.contains(key) && e.contains(why), "{grants}: {e}");
        }
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
