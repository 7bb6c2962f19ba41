//! Config files: Serf's JSON or hearsay's TOML, same keys, decoded by serde into `FileConfig`
//! and turned into a [`Partial`]; and reading `-config-file` / `-config-dir` paths in order,
//! merged as Serf merges them. Every unknown key, wrong type and bad value names the file and
//! the key (serde_path_to_error gives the key's path, e.g. `handler[0].limits.memory`).

use super::de::{Strings, Table, Whole};
use super::duration::GoDuration;
use super::handlers::{self, Handlers, Size};
use super::{ConfigError, Partial};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which syntax a config file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON, as Serf reads it (`.json`).
    Json,
    /// TOML (`.toml`), hearsay's addition.
    Toml,
}

impl Format {
    /// `*.toml` is TOML; anything else given by name is JSON, as Serf reads it.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Self::Toml,
            _ => Self::Json,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::Toml => "TOML",
        }
    }
}

/// Reads `paths` in order (files, or directories whose `*.json` and `*.toml` files are read in
/// lexical order, not recursively) and merges them: later values win, tags merge, join lists
/// append.
pub fn read_paths(paths: &[PathBuf]) -> Result<Partial, ConfigError> {
    let mut merged = Partial::default();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        if !meta.is_dir() {
            merged.merge(read_file(path)?);
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let p = entry.path();
            let wanted = matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("json" | "toml")
            );
            if wanted && !p.is_dir() {
                files.push(p);
            }
        }
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        for f in files {
            merged.merge(read_file(&f)?);
        }
    }
    Ok(merged)
}

/// Reads and decodes one config file.
pub fn read_file(path: &Path) -> Result<Partial, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    decode_text(&text, Format::of(path), &path.display().to_string())
}

/// Decodes a config file's text; `origin` (the file's name) goes into every error.
pub fn decode_text(text: &str, format: Format, origin: &str) -> Result<Partial, ConfigError> {
    let syntax = |message: String| ConfigError::Syntax {
        origin: origin.to_owned(),
        format: format.name(),
        message,
    };
    let file: Table<FileConfig> = match format {
        // Through serde_json's `Value`, so that a repeated key is taken as Go's decoder takes
        // it (the last one wins) where a struct would refuse it.
        Format::Json => {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?;
            deserialize(value, origin, |e| e.to_string())?
        }
        Format::Toml => {
            let table: toml::Table = text.parse().map_err(|e| syntax(toml_syntax(text, &e)))?;
            deserialize(table, origin, |e| e.message().to_owned())?
        }
    };
    file.0.into_partial(origin)
}

/// A TOML syntax error on one line (toml's own message spans several, with a source excerpt).
fn toml_syntax(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {msg}")
        }
        None => msg.to_owned(),
    }
}

/// Deserializes `d`; `message` is an error's text without any context its format adds (toml
/// appends the key, which the path already gives).
fn deserialize<'de, T, D>(
    d: D,
    origin: &str,
    message: impl Fn(&D::Error) -> String,
) -> Result<T, ConfigError>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    serde_path_to_error::deserialize(d)
        .map_err(|e| decode_error(origin, e.path(), &message(e.inner())))
}

/// The config's error for serde's `message` at `path`. serde words an unknown key and a wrong
/// type the same way in both formats (`unknown field ...`, `invalid type: string "3", expected
/// an integer`); anything else (a bad duration, a number out of range) is a bad value, told in
/// the message of the type that refused it.
fn decode_error(origin: &str, path: &serde_path_to_error::Path, message: &str) -> ConfigError {
    let origin = origin.to_owned();
    let wrong_type = message
        .strip_prefix("invalid type: ")
        .and_then(|m| m.rsplit_once(", expected "));
    if let Some((found, expected)) = wrong_type {
        let found = kind(found);
        if path.iter().next().is_none() {
            return ConfigError::Syntax {
                origin,
                format: "config",
                message: format!("the top level must be an object, found {found}"),
            };
        }
        return ConfigError::WrongType {
            origin,
            key: path.to_string(),
            expected: expected.to_owned(),
            found: found.to_owned(),
        };
    }
    if message.starts_with("unknown field `") {
        return ConfigError::UnknownKey {
            origin,
            key: path.to_string(),
        };
    }
    ConfigError::BadValue {
        origin,
        key: path.to_string(),
        message: message.to_owned(),
    }
}

/// What serde's description of a value (`string "3"`, `integer `1``, `sequence`) is, in the
/// words the config's errors use whatever the file's format.
fn kind(found: &str) -> &str {
    const KINDS: [(&str, &str); 9] = [
        ("string ", "a string"),
        ("character ", "a string"),
        ("boolean ", "a boolean"),
        ("integer ", "an integer"),
        ("floating point ", "a number"),
        ("sequence", "a list"),
        ("map", "an object"),
        ("null", "null"),
        ("unit value", "null"),
    ];
    KINDS
        .iter()
        .find(|(serde, _)| found.starts_with(serde))
        .map_or(found, |(_, ours)| ours)
}

/// Why each Serf feature hearsay leaves out is left out (shown in the error).
pub(super) const WHY_EVENT_HANDLERS: &str =
    "hearsay does not run shell-script event handlers; it runs WebAssembly handlers \
     (-handler FILTER=PATH.wasm, or [[handler]] in a config file)";
pub(super) const WHY_SYSLOG: &str = "syslog output is not supported; logs go to stdout";
pub(super) const WHY_METRICS: &str = "statsite/statsd metrics sinks are not supported";

/// One config file's keys: Serf's, and hearsay's own. A key left out, or `null` in JSON, is
/// not set by this file (Go's decoder leaves such a field at its zero value, which Serf's merge
/// takes as "not set").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node_name: Option<String>,
    role: Option<String>,
    disable_coordinates: Option<bool>,
    tags: Option<BTreeMap<String, String>>,
    tags_file: Option<String>,
    bind: Option<String>,
    advertise: Option<String>,
    encrypt_key: Option<String>,
    keyring_file: Option<String>,
    log_level: Option<String>,
    log_json: Option<bool>,
    rpc_addr: Option<String>,
    rpc_auth: Option<String>,
    rpc_max_connections: Option<Whole<usize>>,
    protocol: Option<Whole<u32>>,
    replay_on_join: Option<bool>,
    query_response_size_limit: Option<Whole<usize>>,
    query_size_limit: Option<Whole<usize>>,
    user_event_size_limit: Option<Whole<usize>>,
    start_join: Option<Strings>,
    retry_join: Option<Strings>,
    retry_max_attempts: Option<Whole<u32>>,
    retry_interval: Option<GoDuration>,
    profile: Option<String>,
    snapshot_path: Option<String>,
    leave_on_terminate: Option<bool>,
    skip_leave_on_interrupt: Option<bool>,
    reconnect_interval: Option<GoDuration>,
    reconnect_timeout: Option<GoDuration>,
    tombstone_timeout: Option<GoDuration>,
    disable_name_resolution: Option<bool>,
    rejoin_after_leave: Option<bool>,
    enable_compression: Option<bool>,
    broadcast_timeout: Option<GoDuration>,
    /// `[[handler]]` in TOML; JSON may say `handler` or `handlers`.
    handler: Option<Handlers>,
    handlers: Option<Handlers>,
    handler_cache_dir: Option<String>,
    handler_memory_total: Option<Size>,
    /// `[[tenant]]` in TOML; JSON may say `tenant` or `tenants`.
    tenant: Option<super::tenant::Tenants>,
    tenants: Option<super::tenant::Tenants>,
    disable_quic: Option<bool>,
    quic_bind: Option<String>,
    quic_advertise: Option<String>,
    quic_identity_file: Option<String>,
    quic_ca_file: Option<String>,
    quic_cert_file: Option<String>,
    quic_key_file: Option<String>,
    query_response_max_bytes: Option<Whole<u64>>,
    query_max_bytes: Option<Whole<u64>>,
    discover: Option<String>,
    interface: Option<String>,
    data_dir: Option<String>,
    deploy_keys: Option<Strings>,
    deploy_module_max_bytes: Option<super::deploy::ModuleMax>,
    deploy_grants: Option<super::deploy::Ceiling>,
    // Serf's keys for features hearsay leaves out: accepted only at their "off" value, so a
    // Serf file that merely spells the default still loads, and one that asks for the feature
    // fails loudly instead of being silently ignored.
    event_handlers: Option<Strings>,
    enable_syslog: Option<bool>,
    /// Only meaningful with syslog on, which is refused.
    #[serde(rename = "syslog_facility")]
    _syslog_facility: Option<String>,
    statsite_addr: Option<String>,
    statsd_addr: Option<String>,
}

impl FileConfig {
    fn into_partial(self, origin: &str) -> Result<Partial, ConfigError> {
        let unsupported = |key: &str, why| ConfigError::Unsupported {
            origin: origin.to_owned(),
            key: key.to_owned(),
            why,
        };
        if self.enable_syslog == Some(true) {
            return Err(unsupported("enable_syslog", WHY_SYSLOG));
        }
        if self.event_handlers.is_some_and(|h| !h.0.is_empty()) {
            return Err(unsupported("event_handlers", WHY_EVENT_HANDLERS));
        }
        for (key, addr) in [
            ("statsd_addr", &self.statsd_addr),
            ("statsite_addr", &self.statsite_addr),
        ] {
            if addr.as_deref().is_some_and(|a| !a.is_empty()) {
                return Err(unsupported(key, WHY_METRICS));
            }
        }
        let mut handlers = handlers::configs(self.handler, origin, "handler")?;
        handlers.extend(handlers::configs(self.handlers, origin, "handlers")?);
        let mut tenants = super::tenant::configs(self.tenant, origin, "tenant")?;
        tenants.extend(super::tenant::configs(self.tenants, origin, "tenants")?);
        let path = |p: Option<String>| p.map(PathBuf::from);
        Ok(Partial {
            node_name: self.node_name,
            role: self.role,
            disable_coordinates: self.disable_coordinates,
            tags: self.tags,
            tags_file: path(self.tags_file),
            bind: self.bind,
            advertise: self.advertise,
            encrypt_key: self.encrypt_key,
            keyring_file: path(self.keyring_file),
            log_level: self.log_level,
            log_json: self.log_json,
            rpc_addr: self.rpc_addr,
            rpc_auth: self.rpc_auth,
            rpc_max_connections: self.rpc_max_connections.map(|n| n.0),
            protocol: self.protocol.map(|n| n.0),
            replay_on_join: self.replay_on_join,
            query_response_size_limit: self.query_response_size_limit.map(|n| n.0),
            query_size_limit: self.query_size_limit.map(|n| n.0),
            user_event_size_limit: self.user_event_size_limit.map(|n| n.0),
            start_join: self.start_join.map(|s| s.0).unwrap_or_default(),
            retry_join: self.retry_join.map(|s| s.0).unwrap_or_default(),
            retry_max_attempts: self.retry_max_attempts.map(|n| n.0),
            retry_interval: self.retry_interval.map(|d| d.0),
            profile: self.profile,
            snapshot_path: path(self.snapshot_path),
            leave_on_terminate: self.leave_on_terminate,
            skip_leave_on_interrupt: self.skip_leave_on_interrupt,
            reconnect_interval: self.reconnect_interval.map(|d| d.0),
            reconnect_timeout: self.reconnect_timeout.map(|d| d.0),
            tombstone_timeout: self.tombstone_timeout.map(|d| d.0),
            disable_name_resolution: self.disable_name_resolution,
            rejoin_after_leave: self.rejoin_after_leave,
            enable_compression: self.enable_compression,
            broadcast_timeout: self.broadcast_timeout.map(|d| d.0),
            handlers,
            tenants,
            handler_cache_dir: path(self.handler_cache_dir),
            handler_memory_total: self.handler_memory_total.map(|s| s.0),
            disable_quic: self.disable_quic,
            quic_bind: self.quic_bind,
            quic_advertise: self.quic_advertise,
            quic_identity_file: path(self.quic_identity_file),
            quic_ca_file: path(self.quic_ca_file),
            quic_cert_file: path(self.quic_cert_file),
            quic_key_file: path(self.quic_key_file),
            query_response_max_bytes: self.query_response_max_bytes.map(|n| n.0),
            query_max_bytes: self.query_max_bytes.map(|n| n.0),
            discover: self.discover,
            interface: self.interface,
            data_dir: path(self.data_dir),
            deploy_keys: self.deploy_keys.map(|k| k.0).unwrap_or_default(),
            deploy_module_max_bytes: self.deploy_module_max_bytes.map(|s| s.0),
            deploy_grants: self
                .deploy_grants
                .map(|t| t.0.into_ceiling())
                .transpose()
                .map_err(|message| ConfigError::BadValue {
                    origin: origin.to_owned(),
                    key: "deploy_grants".into(),
                    message,
                })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn json(text: &str) -> Result<Partial, String> {
        decode_text(text, Format::Json, "a.json").map_err(|e| e.to_string())
    }

    fn toml(text: &str) -> Result<Partial, String> {
        decode_text(text, Format::Toml, "b.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_keys_are_errors_at_any_depth() {
        assert_eq!(
            json(r#"{"node_name":"a","bind_addr":"x"}"#),
            Err("a.json: unknown key \"bind_addr\"".into())
        );
        assert_eq!(
            toml("nodename = \"a\"\n"),
            Err("b.toml: unknown key \"nodename\"".into())
        );
        assert_eq!(
            toml("[[handler]]\nmodule = \"x.wasm\"\nlimits = { cpu = 1 }\n"),
            Err("b.toml: unknown key \"handler[0].limits.cpu\"".into())
        );
        assert_eq!(
            json(r#"{"handlers":[{"module":"x.wasm"},{"module":"y.wasm","grant":{}}]}"#),
            Err("a.json: unknown key \"handlers[1].grant\"".into())
        );
        // Serf's keys for features hearsay leaves out are known: refused only when turned on.
        assert!(json(r#"{"enable_syslog":false,"statsd_addr":"","event_handlers":null}"#).is_ok());
        assert_eq!(
            json(r#"{"statsite_addr":"127.0.0.1:8125"}"#),
            Err("a.json: statsite_addr: statsite/statsd metrics sinks are not supported".into())
        );
        assert!(json(r#"{"enable_syslog":true}"#)
            .unwrap_err()
            .starts_with("a.json: enable_syslog: syslog output is not supported"));
    }

    #[test]
    fn wrong_types_name_the_key_and_the_expected_type() {
        let cases = [
            (
                json(r#"{"log_json":"yes"}"#),
                "a.json: key \"log_json\" must be a boolean, found a string",
            ),
            (
                json(r#"{"tags":{"dc":"east","role":null}}"#),
                "a.json: key \"tags.role\" must be a string, found null",
            ),
            (
                json(r#"{"retry_join":["a",2]}"#),
                "a.json: key \"retry_join[1]\" must be a string, found an integer",
            ),
            (
                json(r#"{"retry_interval":30}"#),
                "a.json: key \"retry_interval\" must be a duration string such as \"30s\", \
                 found an integer",
            ),
            (
                toml("protocol = true\n"),
                "b.toml: key \"protocol\" must be an integer, found a boolean",
            ),
            (
                toml("[[handler]]\nmodule = \"x.wasm\"\ngrants = { clocks = \"yes\" }\n"),
                "b.toml: key \"handler[0].grants.clocks\" must be a boolean, found a string",
            ),
            // A table given as a list is refused, though serde's derive would take one.
            (
                toml("[[handler]]\nmodule = \"x.wasm\"\nlimits = [\"64MiB\"]\n"),
                "b.toml: key \"handler[0].limits\" must be a table, found a list",
            ),
            (
                json(r#"["node_name","a"]"#),
                "a.json: invalid config: the top level must be an object, found a list",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, Err(want.to_owned()));
        }
    }

    #[test]
    fn durations_are_go_duration_strings() {
        let j = json(
            r#"{"retry_interval":"1m30s","reconnect_interval":"500ms","reconnect_timeout":"72h",
                "tombstone_timeout":"1.5h","broadcast_timeout":"0",
                "handlers":[{"module":"x.wasm","limits":{"timeout":"2.5s"}}]}"#,
        )
        .unwrap();
        assert_eq!(j.retry_interval, Some(Duration::from_secs(90)));
        assert_eq!(j.reconnect_interval, Some(Duration::from_millis(500)));
        assert_eq!(j.reconnect_timeout, Some(Duration::from_secs(72 * 3600)));
        assert_eq!(j.tombstone_timeout, Some(Duration::from_secs(5400)));
        assert_eq!(j.broadcast_timeout, Some(Duration::ZERO));
        assert_eq!(j.handlers[0].limits.timeout, Duration::from_millis(2500));
        let t = toml("retry_interval = \"1m30s\"\nreconnect_timeout = \"72h\"\n").unwrap();
        assert_eq!(t.retry_interval, j.retry_interval);
        assert_eq!(t.reconnect_timeout, j.reconnect_timeout);
        for bad in ["5", "-1s", "5 s", "1d"] {
            let e = json(&format!(r#"{{"reconnect_timeout":"{bad}"}}"#)).unwrap_err();
            let want = format!("a.json: reconnect_timeout: invalid duration {bad:?}");
            assert!(e.starts_with(&want), "{e}");
        }
        let e =
            toml("[[handler]]\nmodule = \"x.wasm\"\nlimits = { timeout = \"2\" }\n").unwrap_err();
        assert!(
            e.starts_with("b.toml: handler[0].limits.timeout: invalid duration \"2\""),
            "{e}"
        );
    }

    #[test]
    fn numbers_are_read_as_go_reads_them() {
        // Go's decoder reads JSON numbers as floats and takes a whole one for an integer.
        assert_eq!(json(r#"{"protocol":4.0}"#).unwrap().protocol, Some(4));
        assert_eq!(
            json(r#"{"retry_max_attempts":1.5}"#),
            Err("a.json: retry_max_attempts: 1.5 is not a whole number of 0 or more".into())
        );
        assert_eq!(
            toml("query_size_limit = -1\n"),
            Err("b.toml: query_size_limit: -1 is not a whole number of 0 or more".into())
        );
        assert_eq!(
            json(r#"{"protocol":4294967296}"#),
            Err("a.json: protocol: 4294967296 is too large".into())
        );
    }

    #[test]
    fn null_is_not_set_and_a_repeated_json_key_keeps_the_last() {
        let p = json(r#"{"node_name":null,"tags":null,"start_join":null,"handlers":null}"#);
        assert_eq!(p, Ok(Partial::default()));
        let p = json(r#"{"node_name":"a","bind":"127.0.0.1:1","node_name":"b"}"#).unwrap();
        assert_eq!(p.node_name.as_deref(), Some("b"));
        assert!(toml("node_name = \"a\"\nnode_name = \"b\"\n")
            .unwrap_err()
            .starts_with("b.toml: invalid TOML: line 2:"));
    }

    #[test]
    fn files_merge_in_the_order_given() {
        let dir = std::env::temp_dir().join(format!("hearsay-merge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        let a = dir.join("a.json");
        std::fs::write(
            &a,
            r#"{"node_name":"a","log_level":"debug","tags":{"dc":"east","role":"web"},
                "start_join":["j1"],"retry_join":["r1"],"retry_interval":"5s",
                "handlers":[{"module":"a.wasm"}]}"#,
        )
        .unwrap();
        let b = dir.join("b.toml");
        std::fs::write(
            &b,
            "node_name = \"b\"\nstart_join = [\"j2\"]\nretry_join = [\"r2\", \"r3\"]\n\
             retry_interval = \"7s\"\n[tags]\nrole = \"db\"\n[[handler]]\nmodule = \"b.wasm\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("conf.d/c.json"),
            r#"{"node_name":"c","start_join":["j3"]}"#,
        )
        .unwrap();

        let ab = read_paths(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(ab.node_name.as_deref(), Some("b"), "a later file wins");
        assert_eq!(
            ab.log_level.as_deref(),
            Some("debug"),
            "one it leaves out stays"
        );
        assert_eq!(ab.retry_interval, Some(Duration::from_secs(7)));
        let tags = ab.tags.clone().unwrap();
        assert_eq!((tags["dc"].as_str(), tags["role"].as_str()), ("east", "db"));
        assert_eq!(ab.start_join, ["j1", "j2"], "join lists append");
        assert_eq!(ab.retry_join, ["r1", "r2", "r3"]);
        let modules: Vec<_> = ab.handlers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(modules, ["a", "b"], "handlers append");

        let ba = read_paths(&[b.clone(), a.clone()]).unwrap();
        assert_eq!(ba.node_name.as_deref(), Some("a"));
        assert_eq!(ba.retry_interval, Some(Duration::from_secs(5)));
        assert_eq!(ba.tags.unwrap()["role"], "web");
        assert_eq!(ba.start_join, ["j2", "j1"]);
        assert_eq!(ba.retry_join, ["r2", "r3", "r1"]);

        // A directory's files take the place of the directory in the order.
        let mixed = read_paths(&[a.clone(), dir.join("conf.d"), b.clone()]).unwrap();
        assert_eq!(mixed.node_name.as_deref(), Some("b"));
        assert_eq!(mixed.start_join, ["j1", "j3", "j2"]);
        let mixed = read_paths(&[a, b, dir.join("conf.d")]).unwrap();
        assert_eq!(mixed.node_name.as_deref(), Some("c"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
