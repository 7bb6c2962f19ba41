//! Config files: decoding one file (Serf's JSON or hearsay's TOML, same keys) into a
//! [`Partial`], and reading `-config-file` / `-config-dir` paths in order, merged as Serf
//! merges them. Every unknown key, wrong type and bad value names the file and the key.

use super::value::Value;
use super::{ConfigError, Partial};
use crate::conventions::parse_go_duration;
use std::collections::BTreeMap;
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
    let value = match format {
        Format::Json => Value::from_json(text),
        Format::Toml => Value::from_toml(text),
    }
    .map_err(|message| ConfigError::Syntax {
        origin: origin.to_owned(),
        format: match format {
            Format::Json => "JSON",
            Format::Toml => "TOML",
        },
        message,
    })?;
    decode(value, origin)
}

/// A value the decoder is looking at, with where it came from, for error messages.
struct Field<'a> {
    origin: &'a str,
    key: &'a str,
    value: Value,
}

impl Field<'_> {
    fn wrong(&self, expected: &'static str) -> ConfigError {
        ConfigError::WrongType {
            origin: self.origin.to_owned(),
            key: self.key.to_owned(),
            expected,
            found: self.value.kind(),
        }
    }

    fn bad(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::BadValue {
            origin: self.origin.to_owned(),
            key: self.key.to_owned(),
            message: message.into(),
        }
    }

    /// `None` for null: Go's decoder leaves the field at its zero value, which Serf's merge
    /// treats as "not set".
    fn string(&self) -> Result<Option<String>, ConfigError> {
        match &self.value {
            Value::Null => Ok(None),
            Value::Str(s) => Ok(Some(s.clone())),
            _ => Err(self.wrong("a string")),
        }
    }

    fn boolean(&self) -> Result<Option<bool>, ConfigError> {
        match self.value {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(b)),
            _ => Err(self.wrong("a boolean (true or false)")),
        }
    }

    fn unsigned(&self) -> Result<Option<u64>, ConfigError> {
        match self.value {
            Value::Null => Ok(None),
            Value::Int(i) if i >= 0 => Ok(Some(i as u64)),
            // Go's decoder reads JSON numbers as floats and accepts whole ones for ints.
            Value::Float(f) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => {
                Ok(Some(f as u64))
            }
            Value::Int(_) | Value::Float(_) => Err(self.bad(format!(
                "{} is not a whole number of 0 or more",
                show(&self.value)
            ))),
            _ => Err(self.wrong("an integer")),
        }
    }

    /// Bytes, as a number or a string such as `"1GiB"`.
    fn size(&self) -> Result<Option<u64>, ConfigError> {
        match &self.value {
            Value::Str(s) => super::handlers::parse_size(s)
                .map(Some)
                .map_err(|e| self.bad(e)),
            _ => self.unsigned(),
        }
    }

    fn duration(&self) -> Result<Option<std::time::Duration>, ConfigError> {
        match self.string() {
            Ok(None) => Ok(None),
            Ok(Some(s)) => parse_go_duration(&s).map(Some).map_err(|e| self.bad(e)),
            Err(_) => Err(self.wrong("a duration string such as \"30s\"")),
        }
    }

    fn strings(&self) -> Result<Vec<String>, ConfigError> {
        match &self.value {
            Value::Null => Ok(Vec::new()),
            Value::List(items) => items
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.clone()),
                    _ => Err(self.wrong("a list of strings")),
                })
                .collect(),
            _ => Err(self.wrong("a list of strings")),
        }
    }

    fn string_map(&self) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
        match &self.value {
            Value::Null => Ok(None),
            Value::Map(pairs) => pairs
                .iter()
                .map(|(k, v)| match v {
                    Value::Str(s) => Ok((k.clone(), s.clone())),
                    _ => Err(ConfigError::WrongType {
                        origin: self.origin.to_owned(),
                        key: format!("{}.{k}", self.key),
                        expected: "a string",
                        found: v.kind(),
                    }),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            _ => Err(self.wrong("an object of string values")),
        }
    }

    /// For Serf keys hearsay does not implement: accepted only at their "off" value, so a
    /// Serf file that merely spells the default still loads, and one that asks for the
    /// feature fails loudly instead of being silently ignored.
    fn unsupported(&self, why: &'static str) -> Result<(), ConfigError> {
        let off = match &self.value {
            Value::Null | Value::Bool(false) => true,
            Value::Str(s) => s.is_empty(),
            Value::List(l) => l.is_empty(),
            _ => false,
        };
        if off {
            return Ok(());
        }
        Err(ConfigError::Unsupported {
            origin: self.origin.to_owned(),
            key: self.key.to_owned(),
            why,
        })
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        other => other.kind().to_owned(),
    }
}

fn to_u32(f: &Field<'_>, n: Option<u64>) -> Result<Option<u32>, ConfigError> {
    n.map(|n| u32::try_from(n).map_err(|_| f.bad(format!("{n} is too large"))))
        .transpose()
}

fn to_usize(f: &Field<'_>, n: Option<u64>) -> Result<Option<usize>, ConfigError> {
    n.map(|n| usize::try_from(n).map_err(|_| f.bad(format!("{n} is too large"))))
        .transpose()
}

/// Why each Serf feature hearsay leaves out is left out (shown in the error).
pub(super) const WHY_EVENT_HANDLERS: &str =
    "hearsay does not run shell-script event handlers; it runs WebAssembly handlers \
     (-handler FILTER=PATH.wasm, or [[handler]] in a config file)";
pub(super) const WHY_SYSLOG: &str = "syslog output is not supported; logs go to stdout";
pub(super) const WHY_METRICS: &str = "statsite/statsd metrics sinks are not supported";

/// Decodes a parsed file (an object at the top) into a [`Partial`].
pub fn decode(value: Value, origin: &str) -> Result<Partial, ConfigError> {
    let pairs = match value {
        Value::Map(pairs) => pairs,
        other => {
            return Err(ConfigError::Syntax {
                origin: origin.to_owned(),
                format: "config",
                message: format!("the top level must be an object, found {}", other.kind()),
            })
        }
    };
    let mut p = Partial::default();
    for (key, value) in pairs {
        let f = Field {
            origin,
            key: &key,
            value,
        };
        match key.as_str() {
            "node_name" => p.node_name = f.string()?,
            "role" => p.role = f.string()?,
            "disable_coordinates" => p.disable_coordinates = f.boolean()?,
            "tags" => p.tags = f.string_map()?,
            "tags_file" => p.tags_file = f.string()?.map(PathBuf::from),
            "bind" => p.bind = f.string()?,
            "advertise" => p.advertise = f.string()?,
            "encrypt_key" => p.encrypt_key = f.string()?,
            "keyring_file" => p.keyring_file = f.string()?.map(PathBuf::from),
            "log_level" => p.log_level = f.string()?,
            "log_json" => p.log_json = f.boolean()?,
            "rpc_addr" => p.rpc_addr = f.string()?,
            "rpc_auth" => p.rpc_auth = f.string()?,
            "protocol" => p.protocol = to_u32(&f, f.unsigned()?)?,
            "replay_on_join" => p.replay_on_join = f.boolean()?,
            "query_response_size_limit" => {
                p.query_response_size_limit = to_usize(&f, f.unsigned()?)?
            }
            "query_size_limit" => p.query_size_limit = to_usize(&f, f.unsigned()?)?,
            "user_event_size_limit" => p.user_event_size_limit = to_usize(&f, f.unsigned()?)?,
            "start_join" => p.start_join = f.strings()?,
            "retry_join" => p.retry_join = f.strings()?,
            "retry_max_attempts" => p.retry_max_attempts = to_u32(&f, f.unsigned()?)?,
            "retry_interval" => p.retry_interval = f.duration()?,
            "profile" => p.profile = f.string()?,
            "snapshot_path" => p.snapshot_path = f.string()?.map(PathBuf::from),
            "leave_on_terminate" => p.leave_on_terminate = f.boolean()?,
            "skip_leave_on_interrupt" => p.skip_leave_on_interrupt = f.boolean()?,
            "reconnect_interval" => p.reconnect_interval = f.duration()?,
            "reconnect_timeout" => p.reconnect_timeout = f.duration()?,
            "tombstone_timeout" => p.tombstone_timeout = f.duration()?,
            "disable_name_resolution" => p.disable_name_resolution = f.boolean()?,
            "rejoin_after_leave" => p.rejoin_after_leave = f.boolean()?,
            "enable_compression" => p.enable_compression = f.boolean()?,
            "broadcast_timeout" => p.broadcast_timeout = f.duration()?,
            "handler" | "handlers" => p
                .handlers
                .extend(super::handlers::decode(f.value, origin, &key)?),
            "handler_cache_dir" => p.handler_cache_dir = f.string()?.map(PathBuf::from),
            "handler_memory_total" => p.handler_memory_total = f.size()?,
            "disable_quic" => p.disable_quic = f.boolean()?,
            "quic_bind" => p.quic_bind = f.string()?,
            "quic_advertise" => p.quic_advertise = f.string()?,
            "quic_identity_file" => p.quic_identity_file = f.string()?.map(PathBuf::from),
            "quic_ca_file" => p.quic_ca_file = f.string()?.map(PathBuf::from),
            "quic_cert_file" => p.quic_cert_file = f.string()?.map(PathBuf::from),
            "quic_key_file" => p.quic_key_file = f.string()?.map(PathBuf::from),
            "query_response_max_bytes" => p.query_response_max_bytes = f.unsigned()?,
            "query_max_bytes" => p.query_max_bytes = f.unsigned()?,
            "event_handlers" => {
                f.strings()?;
                f.unsupported(WHY_EVENT_HANDLERS)?
            }
            "discover" => p.discover = f.string()?,
            "interface" => p.interface = f.string()?,
            "enable_syslog" => {
                f.boolean()?;
                f.unsupported(WHY_SYSLOG)?
            }
            // Only meaningful with syslog on, which is refused above.
            "syslog_facility" => {
                f.string()?;
            }
            "statsite_addr" | "statsd_addr" => {
                f.string()?;
                f.unsupported(WHY_METRICS)?
            }
            _ => {
                return Err(ConfigError::UnknownKey {
                    origin: origin.to_owned(),
                    key,
                })
            }
        }
    }
    Ok(p)
}
