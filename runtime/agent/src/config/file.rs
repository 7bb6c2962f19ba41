//! Config files: Serf's JSON or hearsay's TOML, same keys, decoded by serde into `FileConfig`
//! and turned into a [`Partial`]; and reading `-config-file` / `-config-dir` paths in order,
//! merged as Serf merges them. Every unknown key, wrong type and bad value names the file and
//! the key (serde_path_to_error gives the key's path, e.g. `handler[0].limits.memory`).

use super::duration::GoDuration;
use super::handlers::{self, Handlers, Size};
use super::{ConfigError, Partial};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Error, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// Which syntax a config file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
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

/// A whole number of 0 or more. Go's decoder reads JSON numbers as floats and takes a whole one
/// (`3.0`) for an integer, so this does too.
pub(super) struct Whole<T>(pub T);

impl<'de, T: TryFrom<u64>> Deserialize<'de> for Whole<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = d.deserialize_any(WholeVisitor)?;
        T::try_from(n)
            .map(Whole)
            .map_err(|_| D::Error::custom(format!("{n} is too large")))
    }
}

/// A whole number of 0 or more as a `u64` (for [`Whole`], and [`Size`]'s numbers).
pub(super) struct WholeVisitor;

impl Visitor<'_> for WholeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_u64<E: Error>(self, n: u64) -> Result<u64, E> {
        Ok(n)
    }

    fn visit_i64<E: Error>(self, n: i64) -> Result<u64, E> {
        u64::try_from(n).map_err(|_| E::custom(format!("{n} is not a whole number of 0 or more")))
    }

    fn visit_f64<E: Error>(self, f: f64) -> Result<u64, E> {
        if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 {
            Ok(f as u64)
        } else {
            Err(E::custom(format!("{f} is not a whole number of 0 or more")))
        }
    }
}

/// A list of strings, each read as a `T`. (A type of its own for the error's words: "must be a
/// list of strings", not serde's "a sequence".)
pub(super) struct Strings<T = String>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Strings<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<T>, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq))
            }
        }
        d.deserialize_seq(V(PhantomData)).map(Strings)
    }
}

/// A struct read from a table (a JSON object) only: serde's derive would also take a list of
/// the fields' values in order, which no config file means.
pub(super) struct Table<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(PhantomData)).map(Table)
    }
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
        })
    }
}
