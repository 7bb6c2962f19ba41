//! The agent's configuration, with Serf's names and defaults: flags (`-node=x` and
//! `--node=x`, see [`flags`]), Serf's JSON config files and hearsay's TOML files with the same
//! keys (see [`mod@file`]), merged as Serf merges them and resolved into one [`Config`].
//!
//! Order of precedence, lowest first: Serf's defaults, `-dev`'s defaults, config files in the
//! order given, flags. [`Sources`] keeps the files and flags so SIGHUP can read them again.

mod de;
mod deploy;
pub mod duration;
pub mod file;
pub mod flags;
mod handler;
pub mod handlers;
mod quic;
pub mod tenant;

pub use deploy::{DeployCeiling, DeploySettings, DEFAULT_DEPLOY_MODULE_MAX};
pub use handler::{
    admits, dedupe_names, is_reserved, name_from_module, HandlerConfig, RESERVED_PREFIXES,
};
pub use quic::{default_bind as default_quic_bind, QuicSettings};
pub use tenant::TenantConfig;

use crate::conventions::{
    self, AddrError, FlagError, DEFAULT_BIND_PORT, DEFAULT_RPC_ADDR, DEFAULT_RPC_PORT,
};
use hearsay_serf::serf::{PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN};
use hearsay_swim::Profile;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// The default of `handler_memory_total`: room for four handlers at the largest per-handler
/// memory limit the host allows (256 MiB), or sixteen at the default 64 MiB.
pub const DEFAULT_HANDLER_MEMORY_TOTAL: u64 = 1 << 30;
/// Serf clamps the retry interval and broadcast timeout to at least this.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Why the configuration could not be read or is not valid. Every variant names where the
/// bad input came from (a file's path, or "command line") and which key or flag.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A config file or directory could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A config file is not valid JSON / TOML, or its top level is not an object.
    #[error("{origin}: invalid {format}: {message}")]
    Syntax {
        /// The file's path.
        origin: String,
        /// `JSON`, `TOML`, or `config` when the top level is not an object.
        format: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A key no Serf or hearsay config has (a typo, most likely).
    #[error("{origin}: unknown key {key:?}")]
    UnknownKey {
        /// The file's path.
        origin: String,
        /// The key, with its path in the file (`handler[0].limits.cpu`).
        key: String,
    },
    /// A key whose value has the wrong type.
    #[error("{origin}: key {key:?} must be {expected}, found {found}")]
    WrongType {
        /// The file's path.
        origin: String,
        /// The key, with its path in the file.
        key: String,
        /// The type the key takes.
        expected: String,
        /// The type the file gave.
        found: String,
    },
    /// A value of the right type that does not parse or is out of range.
    #[error("{origin}: {key}: {message}")]
    BadValue {
        /// The file's path, or "command line".
        origin: String,
        /// The key, or the flag with its dash.
        key: String,
        /// What is wrong with the value.
        message: String,
    },
    /// A Serf feature hearsay does not implement was asked for.
    #[error("{origin}: {key}: {why}")]
    Unsupported {
        /// The file's path, or "command line".
        origin: String,
        /// The key, or the flag with its dash.
        key: String,
        /// Why hearsay leaves the feature out.
        why: &'static str,
    },
    /// A setting's merged value is not valid (named by its file key and its flag).
    #[error("{key} (-{flag}): {message}")]
    Invalid {
        /// The setting's file key.
        key: &'static str,
        /// The setting's flag, without its dash.
        flag: &'static str,
        /// What is wrong with the value.
        message: String,
    },
    /// A command-line flag is malformed (no value, not a flag, bad value).
    #[error(transparent)]
    Flag(#[from] FlagError),
    /// A configured address (a `-join` address) does not resolve.
    #[error(transparent)]
    Addr(#[from] AddrError),
    /// A flag `hearsay agent` does not have.
    #[error("flag provided but not defined: -{0} (see `hearsay agent -help`)")]
    UnknownFlag(String),
    /// Settings that contradict each other.
    #[error("{0}")]
    Conflict(String),
}

/// A bad merged setting: files and flags are merged by now, so the error names the setting
/// by its file key and its flag.
fn invalid(key: &'static str, flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        flag,
        message: message.into(),
    }
}

/// Log levels as Serf spells them (`-log-level=err`); case does not matter.
pub use crate::logs::LogLevel;

/// Settings as one file or the command line gave them: `None` / empty is "not set here".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Partial {
    /// `node_name` / `-node`.
    pub node_name: Option<String>,
    /// `role` / `-role` (deprecated by Serf: becomes the tag `role`).
    pub role: Option<String>,
    /// `disable_coordinates` (file only).
    pub disable_coordinates: Option<bool>,
    /// `tags` / `-tag key=value` (repeatable); merges key by key.
    pub tags: Option<BTreeMap<String, String>>,
    /// `tags_file` / `-tags-file`.
    pub tags_file: Option<PathBuf>,
    /// `bind` / `-bind`, `host[:port]` as given.
    pub bind: Option<String>,
    /// `advertise` / `-advertise`, `host[:port]` as given.
    pub advertise: Option<String>,
    /// `encrypt_key` / `-encrypt`, base64.
    pub encrypt_key: Option<String>,
    /// `keyring_file` / `-keyring-file`.
    pub keyring_file: Option<PathBuf>,
    /// `log_level` / `-log-level`, as given.
    pub log_level: Option<String>,
    /// hearsay: `log_json` / `-log-json`.
    pub log_json: Option<bool>,
    /// `rpc_addr` / `-rpc-addr`, `host[:port]` as given.
    pub rpc_addr: Option<String>,
    /// `rpc_auth` / `-rpc-auth`.
    pub rpc_auth: Option<String>,
    /// hearsay: `rpc_max_connections` / `-rpc-max-connections`.
    pub rpc_max_connections: Option<usize>,
    /// `protocol` / `-protocol`.
    pub protocol: Option<u32>,
    /// `replay_on_join` / `-replay`.
    pub replay_on_join: Option<bool>,
    /// `query_response_size_limit` (file only), bytes.
    pub query_response_size_limit: Option<usize>,
    /// `query_size_limit` (file only), bytes.
    pub query_size_limit: Option<usize>,
    /// `user_event_size_limit` (file only), bytes.
    pub user_event_size_limit: Option<usize>,
    /// `start_join` / `-join` (repeatable); appends.
    pub start_join: Vec<String>,
    /// `retry_join` / `-retry-join` (repeatable); appends.
    pub retry_join: Vec<String>,
    /// `retry_max_attempts` / `-retry-max`.
    pub retry_max_attempts: Option<u32>,
    /// `retry_interval` / `-retry-interval`.
    pub retry_interval: Option<Duration>,
    /// `profile` / `-profile`, as given.
    pub profile: Option<String>,
    /// `snapshot_path` / `-snapshot`.
    pub snapshot_path: Option<PathBuf>,
    /// `leave_on_terminate` / `-leave-on-terminate`.
    pub leave_on_terminate: Option<bool>,
    /// `skip_leave_on_interrupt` / `-skip-leave-on-interrupt`.
    pub skip_leave_on_interrupt: Option<bool>,
    /// `reconnect_interval` (file only).
    pub reconnect_interval: Option<Duration>,
    /// `reconnect_timeout` (file only).
    pub reconnect_timeout: Option<Duration>,
    /// `tombstone_timeout` (file only).
    pub tombstone_timeout: Option<Duration>,
    /// `disable_name_resolution` (file only).
    pub disable_name_resolution: Option<bool>,
    /// `rejoin_after_leave` / `-rejoin`.
    pub rejoin_after_leave: Option<bool>,
    /// `enable_compression` / `-disable-compression` (negated).
    pub enable_compression: Option<bool>,
    /// `broadcast_timeout` / `-broadcast-timeout`.
    pub broadcast_timeout: Option<Duration>,
    /// WebAssembly handlers (`-handler`, `[[handler]]`); later sources add to the list.
    pub handlers: Vec<HandlerConfig>,
    /// Tenants (`[[tenant]]`, config files only); later sources add to the list.
    pub tenants: Vec<TenantConfig>,
    /// hearsay: `handler_cache_dir` / `-handler-cache-dir`.
    pub handler_cache_dir: Option<PathBuf>,
    /// hearsay: `handler_memory_total` / `-handler-memory-total`, bytes.
    pub handler_memory_total: Option<u64>,
    /// hearsay: the QUIC endpoint for large query responses (see `crate::replies`).
    pub disable_quic: Option<bool>,
    /// hearsay: `quic_bind` / `-quic-bind`, `host[:port]` as given.
    pub quic_bind: Option<String>,
    /// hearsay: `quic_advertise` / `-quic-advertise`, `host[:port]` as given.
    pub quic_advertise: Option<String>,
    /// hearsay: `quic_identity_file` / `-quic-identity-file`.
    pub quic_identity_file: Option<PathBuf>,
    /// hearsay: `quic_ca_file` / `-quic-ca-file`.
    pub quic_ca_file: Option<PathBuf>,
    /// hearsay: `quic_cert_file` / `-quic-cert-file`.
    pub quic_cert_file: Option<PathBuf>,
    /// hearsay: `quic_key_file` / `-quic-key-file`.
    pub quic_key_file: Option<PathBuf>,
    /// hearsay: `query_response_max_bytes` / `-query-response-max-bytes`.
    pub query_response_max_bytes: Option<u64>,
    /// hearsay: `query_max_bytes` / `-query-max-bytes`.
    pub query_max_bytes: Option<u64>,
    /// Serf's mDNS discovery: the cluster name (`-discover`, `discover`).
    pub discover: Option<String>,
    /// Serf's `-iface` / `interface`: bind to this interface's address, multicast on it.
    pub interface: Option<String>,
    /// hearsay: `data_dir` / `-data-dir`.
    pub data_dir: Option<PathBuf>,
    /// hearsay: `deploy_keys` / `-deploy-key` (repeatable; lists append).
    pub deploy_keys: Vec<String>,
    /// hearsay: `deploy_module_max_bytes` / `-deploy-module-max-bytes`.
    pub deploy_module_max_bytes: Option<u64>,
    /// hearsay: `deploy_grants` (config files only).
    pub deploy_grants: Option<DeployCeiling>,
}

impl Partial {
    /// Lays `later` over `self` as Serf's `MergeConfig` does: set values win, tags merge key
    /// by key, join lists append.
    pub fn merge(&mut self, later: Partial) {
        macro_rules! over {
            ($($f:ident),* $(,)?) => { $( if later.$f.is_some() { self.$f = later.$f; } )* };
        }
        over!(
            node_name,
            role,
            disable_coordinates,
            tags_file,
            bind,
            advertise,
            encrypt_key,
            keyring_file,
            log_level,
            log_json,
            rpc_addr,
            rpc_auth,
            rpc_max_connections,
            protocol,
            replay_on_join,
            query_response_size_limit,
            query_size_limit,
            user_event_size_limit,
            retry_max_attempts,
            retry_interval,
            profile,
            snapshot_path,
            leave_on_terminate,
            skip_leave_on_interrupt,
            reconnect_interval,
            reconnect_timeout,
            tombstone_timeout,
            disable_name_resolution,
            rejoin_after_leave,
            enable_compression,
            broadcast_timeout,
            handler_cache_dir,
            handler_memory_total,
            disable_quic,
            quic_bind,
            quic_advertise,
            quic_identity_file,
            quic_ca_file,
            quic_cert_file,
            quic_key_file,
            query_response_max_bytes,
            query_max_bytes,
            discover,
            interface,
            data_dir,
            deploy_module_max_bytes,
            deploy_grants,
        );
        self.handlers.extend(later.handlers);
        self.tenants.extend(later.tenants);
        self.deploy_keys.extend(later.deploy_keys);
        if let Some(tags) = later.tags {
            self.tags.get_or_insert_with(BTreeMap::new).extend(tags);
        }
        self.start_join.extend(later.start_join);
        self.retry_join.extend(later.retry_join);
    }
}

/// The resolved configuration an agent runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `node_name` / `-node`; default: the host name.
    pub node_name: String,
    /// Where the gossip sockets (UDP and TCP) listen.
    pub bind: SocketAddr,
    /// `-dev` without an explicit bind: a busy 7946 falls back to a free port.
    pub bind_fallback: bool,
    /// What peers are told to reach us at; `None`: the bind address, or when that is a
    /// wildcard, this host's outward address (see [`crate::run`]).
    pub advertise: Option<SocketAddr>,
    /// `rpc_addr` / `-rpc-addr`; default `127.0.0.1:7373`.
    pub rpc_addr: SocketAddr,
    /// `rpc_auth` / `-rpc-auth`: the token RPC clients must give; `None`: none.
    pub rpc_auth: Option<String>,
    /// hearsay: `rpc_max_connections` / `-rpc-max-connections`: the most RPC connections
    /// open at once, 0 for no cap (Serf has none); default
    /// [`hearsay_rpc::ServerOptions::DEFAULT_MAX_CONNECTIONS`] (256).
    pub rpc_max_connections: usize,
    /// `encrypt_key` / `-encrypt`: the base64 gossip key; `None`: no encryption.
    pub encrypt_key: Option<String>,
    /// `keyring_file` / `-keyring-file`: the keyring (JSON list of base64 keys).
    pub keyring_file: Option<PathBuf>,
    /// `start_join` / `-join`: addresses to join at start; reaching none stops the agent.
    pub start_join: Vec<String>,
    /// `retry_join` / `-retry-join`: addresses to join at start, retried until one
    /// succeeds.
    pub retry_join: Vec<String>,
    /// 0: retry forever.
    pub retry_max_attempts: u32,
    /// `retry_interval` / `-retry-interval`; default 30 s, at least 1 s.
    pub retry_interval: Duration,
    /// `replay_on_join` / `-replay`: replay past user events on join; default false.
    pub replay_on_join: bool,
    /// `tags` / `-tag`, with a deprecated `role` as the tag `role`.
    pub tags: BTreeMap<String, String>,
    /// `tags_file` / `-tags-file`: where tags persist (excludes `tags`).
    pub tags_file: Option<PathBuf>,
    /// `profile` / `-profile` (`lan`, `wan`, `local`); default `lan`.
    pub profile: Profile,
    /// `snapshot_path` / `-snapshot`; `None`: no snapshot.
    pub snapshot_path: Option<PathBuf>,
    /// `rejoin_after_leave` / `-rejoin`: rejoin from the snapshot after a leave;
    /// default false.
    pub rejoin_after_leave: bool,
    /// `protocol` / `-protocol`: Serf's protocol version; default the highest supported.
    pub protocol: u8,
    /// `log_level` / `-log-level`; default `info`.
    pub log_level: LogLevel,
    /// hearsay: `log_json` / `-log-json`: one JSON object per log line; default false.
    pub log_json: bool,
    /// `leave_on_terminate` / `-leave-on-terminate`: leave on SIGTERM; default
    /// false.
    pub leave_on_terminate: bool,
    /// `skip_leave_on_interrupt` / `-skip-leave-on-interrupt`: stop without
    /// leaving on SIGINT; default false.
    pub skip_leave_on_interrupt: bool,
    /// `enable_compression` (`-disable-compression` clears it); default true.
    pub enable_compression: bool,
    /// `broadcast_timeout` / `-broadcast-timeout`: how long a leave waits for
    /// its broadcast; default 5 s, at least 1 s.
    pub broadcast_timeout: Duration,
    /// `query_response_size_limit`: the largest query response over UDP,
    /// bytes; default 1024.
    pub query_response_size_limit: usize,
    /// `query_size_limit`: the largest query, bytes; default 1024.
    pub query_size_limit: usize,
    /// `user_event_size_limit`: the largest user event, bytes; default 512.
    pub user_event_size_limit: usize,
    /// `disable_coordinates`: no network coordinates; default false.
    pub disable_coordinates: bool,
    /// `disable_name_resolution`: no name-conflict resolution; default false.
    pub disable_name_resolution: bool,
    /// `reconnect_interval`; `None`: Serf's default.
    pub reconnect_interval: Option<Duration>,
    /// `reconnect_timeout`; `None`: Serf's default.
    pub reconnect_timeout: Option<Duration>,
    /// `tombstone_timeout`; `None`: Serf's default.
    pub tombstone_timeout: Option<Duration>,
    /// WebAssembly handlers, names made unique (a repeated name gets `-2`, `-3`, ...).
    pub handlers: Vec<HandlerConfig>,
    /// Tenants (`[[tenant]]`), each handler of one checked against it.
    pub tenants: Vec<TenantConfig>,
    /// Where compiled handler modules are cached (default: [`handlers::default_cache_dir`], per
    /// user). Entries are keyed by module hash and engine, so agents of one user may share it;
    /// the host refuses a directory another user owns or can write.
    pub handler_cache_dir: PathBuf,
    /// The linear memory of all live handler instances together, in bytes (default 1 GiB):
    /// growth past it traps the instance that asked, naming this setting.
    pub handler_memory_total: usize,
    /// hearsay: the QUIC endpoint for large query responses; `None` with `disable_quic`.
    pub quic: Option<QuicSettings>,
    /// hearsay: deploying handlers by event (trusted signers, data dir, limits, ceiling).
    pub deploy: DeploySettings,
    /// mDNS discovery's cluster name (see `hearsay_net::discover`); `None`: no discovery.
    pub discover: Option<String>,
    /// The network interface to bind to and to multicast on (`-iface`); the agent checks it
    /// at start, as Serf does.
    pub interface: Option<String>,
    /// Things Serf would warn about at start (values clamped, deprecated keys).
    pub warnings: Vec<String>,
}

/// Where a configuration comes from: the files named by `-config-file` / `-config-dir` and
/// the flags, kept so that a reload (SIGHUP) reads the files again under the same flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources {
    /// `-config-file` and `-config-dir`, in command-line order.
    pub config_paths: Vec<PathBuf>,
    /// The other flags.
    pub flags: Partial,
    /// `-dev`: loopback, the `local` profile, debug logs.
    pub dev: bool,
}

impl Sources {
    /// Reads the files and resolves them with the flags over them.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut given = file::read_paths(&self.config_paths)?;
        given.merge(self.flags.clone());
        let bind_fallback = self.dev && given.bind.is_none();
        let mut merged = if self.dev {
            dev_defaults()
        } else {
            Partial::default()
        };
        merged.merge(given);
        let mut config = Config::resolve(merged)?;
        config.bind_fallback = bind_fallback;
        Ok(config)
    }
}

/// What `-dev` changes: everything on loopback, the fast `local` profile, debug logs.
fn dev_defaults() -> Partial {
    Partial {
        bind: Some(format!("127.0.0.1:{DEFAULT_BIND_PORT}")),
        log_level: Some("debug".into()),
        profile: Some("local".into()),
        ..Partial::default()
    }
}

/// The QUIC settings: on unless `disable_quic`; `quic_bind` defaults to the gossip bind's IP
/// with a port the OS chooses; the CA files go together; limits above zero.
fn resolve_quic(p: &Partial, bind: SocketAddr) -> Result<Option<QuicSettings>, ConfigError> {
    if p.disable_quic.unwrap_or(false) {
        return Ok(None);
    }
    let default = quic::default_bind(bind);
    let addr = |text: &Option<String>, key, flag| {
        text.as_deref()
            .filter(|a| !a.is_empty())
            .map(|a| parse_addr(a, default.port()).map_err(|e| invalid(key, flag, e)))
            .transpose()
    };
    let file = |f: &Option<PathBuf>| f.clone().filter(|s| !s.as_os_str().is_empty());
    let mut s = QuicSettings {
        bind: addr(&p.quic_bind, "quic_bind", "quic-bind")?,
        advertise: addr(&p.quic_advertise, "quic_advertise", "quic-advertise")?,
        identity_file: file(&p.quic_identity_file),
        ca_file: file(&p.quic_ca_file),
        cert_file: file(&p.quic_cert_file),
        key_file: file(&p.quic_key_file),
        ..QuicSettings::default()
    };
    let given = [&s.ca_file, &s.cert_file, &s.key_file]
        .iter()
        .filter(|f| f.is_some())
        .count();
    if given != 0 && given != 3 {
        return Err(ConfigError::Conflict(
            "quic_ca_file, quic_cert_file and quic_key_file (-quic-ca-file, -quic-cert-file, \
             -quic-key-file) must be given together"
                .into(),
        ));
    }
    if let Some(n) = p.query_response_max_bytes {
        if n == 0 {
            return Err(invalid(
                "query_response_max_bytes",
                "query-response-max-bytes",
                "must be above zero",
            ));
        }
        s.response_max_bytes = n;
    }
    if let Some(n) = p.query_max_bytes {
        if n == 0 {
            return Err(invalid(
                "query_max_bytes",
                "query-max-bytes",
                "must be above zero",
            ));
        }
        s.query_max_bytes = n;
    }
    Ok(Some(s))
}

/// `host[:port]` to one address, the port defaulting to `default_port`
/// ([`conventions::resolve`]); the error as a setting's message.
fn parse_addr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    conventions::resolve(s, default_port).map_err(|e| e.to_string())
}

impl Config {
    /// Serf's defaults under `p`, checked. The origin of a bad value is not known any more
    /// here (files and flags are merged), so errors name the setting by its file key.
    pub fn resolve(p: Partial) -> Result<Self, ConfigError> {
        let deploy = deploy::resolve(&p)?;
        let mut warnings = Vec::new();
        let node_name = match p.node_name.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => conventions::default_node_name(),
        };
        let mut tags = p.tags.unwrap_or_default();
        if let Some(role) = p.role.filter(|r| !r.is_empty()) {
            warnings.push("'role' is deprecated; use the tag role=... instead".into());
            tags.insert("role".into(), role);
        }
        // The QUIC keys, resolved once the gossip bind is known.
        let quic_keys = Partial {
            disable_quic: p.disable_quic,
            quic_bind: p.quic_bind.clone(),
            quic_advertise: p.quic_advertise.clone(),
            quic_identity_file: p.quic_identity_file.clone(),
            quic_ca_file: p.quic_ca_file.clone(),
            quic_cert_file: p.quic_cert_file.clone(),
            quic_key_file: p.quic_key_file.clone(),
            query_response_max_bytes: p.query_response_max_bytes,
            query_max_bytes: p.query_max_bytes,
            ..Partial::default()
        };
        let bind_text = p.bind.unwrap_or_else(|| "0.0.0.0".into());
        let bind =
            parse_addr(&bind_text, DEFAULT_BIND_PORT).map_err(|e| invalid("bind", "bind", e))?;
        let quic = resolve_quic(&quic_keys, bind)?;
        let advertise = p
            .advertise
            .filter(|a| !a.is_empty())
            .map(|a| parse_addr(&a, bind.port()).map_err(|e| invalid("advertise", "advertise", e)))
            .transpose()?;
        let rpc_text = p.rpc_addr.unwrap_or_else(|| DEFAULT_RPC_ADDR.into());
        let rpc_addr = parse_addr(&rpc_text, DEFAULT_RPC_PORT)
            .map_err(|e| invalid("rpc_addr", "rpc-addr", e))?;
        let profile = match p.profile.as_deref().unwrap_or("lan") {
            "lan" => Profile::Lan,
            "wan" => Profile::Wan,
            "local" => Profile::Local,
            other => {
                return Err(invalid(
                    "profile",
                    "profile",
                    format!("unknown profile {other:?}; expected lan, wan or local"),
                ))
            }
        };
        let protocol = p.protocol.unwrap_or(PROTOCOL_VERSION_MAX as u32);
        if !(PROTOCOL_VERSION_MIN as u32..=PROTOCOL_VERSION_MAX as u32).contains(&protocol) {
            return Err(invalid(
                "protocol",
                "protocol",
                format!(
                    "protocol version {protocol} is not supported; use \
                     {PROTOCOL_VERSION_MIN} to {PROTOCOL_VERSION_MAX}"
                ),
            ));
        }
        let log_level = p
            .log_level
            .as_deref()
            .unwrap_or("info")
            .parse::<LogLevel>()
            .map_err(|e| invalid("log_level", "log-level", e))?;
        let mut retry_interval = p.retry_interval.unwrap_or(Duration::from_secs(30));
        if retry_interval < MIN_INTERVAL {
            retry_interval = MIN_INTERVAL;
            warnings.push("'retry_interval' is too low; setting it to 1s".into());
        }
        let mut broadcast_timeout = p.broadcast_timeout.unwrap_or(Duration::from_secs(5));
        if broadcast_timeout < MIN_INTERVAL {
            broadcast_timeout = MIN_INTERVAL;
            warnings.push("'broadcast_timeout' is too low; setting it to 1s".into());
        }
        let rejoin_after_leave = p.rejoin_after_leave.unwrap_or(false);
        let snapshot_path = p.snapshot_path.filter(|s| !s.as_os_str().is_empty());
        if rejoin_after_leave && snapshot_path.is_none() {
            warnings.push("'rejoin_after_leave' enabled without a snapshot file".into());
        }
        let tags_file = p.tags_file.filter(|s| !s.as_os_str().is_empty());
        if tags_file.is_some() && !tags.is_empty() {
            return Err(ConfigError::Conflict(
                "tags (tag / tags / role) are not allowed while using a tags file \
                 (tags_file); put them in the tags file"
                    .into(),
            ));
        }
        let encrypt_key = p.encrypt_key.filter(|k| !k.is_empty());
        let keyring_file = p.keyring_file.filter(|s| !s.as_os_str().is_empty());
        if encrypt_key.is_some() && keyring_file.is_some() {
            return Err(ConfigError::Conflict(
                "an encryption key (encrypt) is not allowed while using a keyring file \
                 (keyring_file); add the key to the keyring file"
                    .into(),
            ));
        }
        let mut handlers = p.handlers;
        dedupe_names(&mut handlers);
        let data_dir = p.data_dir.clone().filter(|d| !d.as_os_str().is_empty());
        for h in &mut handlers {
            if let Some(kv) = &mut h.grants.kv {
                let Some(dir) = &data_dir else {
                    return Err(invalid(
                        "handler.grants.kv",
                        "handler",
                        format!(
                            "handler {:?}: a key-value store lives in the agent's data directory: give data_dir (-data-dir) too",
                            h.name
                        ),
                    ));
                };
                kv.path = handlers::kv_path(dir, &h.name);
            }
        }
        tenant::check(&p.tenants, &mut handlers)?;
        let handler_cache_dir = p
            .handler_cache_dir
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(handlers::default_cache_dir);
        Ok(Self {
            node_name,
            bind,
            bind_fallback: false,
            advertise,
            rpc_addr,
            rpc_auth: p.rpc_auth.filter(|k| !k.is_empty()),
            rpc_max_connections: p
                .rpc_max_connections
                .unwrap_or(hearsay_rpc::ServerOptions::DEFAULT_MAX_CONNECTIONS),
            encrypt_key,
            keyring_file,
            start_join: p.start_join,
            retry_join: p.retry_join,
            retry_max_attempts: p.retry_max_attempts.unwrap_or(0),
            retry_interval,
            replay_on_join: p.replay_on_join.unwrap_or(false),
            tags,
            tags_file,
            profile,
            snapshot_path,
            rejoin_after_leave,
            protocol: protocol as u8,
            log_level,
            log_json: p.log_json.unwrap_or(false),
            leave_on_terminate: p.leave_on_terminate.unwrap_or(false),
            skip_leave_on_interrupt: p.skip_leave_on_interrupt.unwrap_or(false),
            enable_compression: p.enable_compression.unwrap_or(true),
            broadcast_timeout,
            query_response_size_limit: p.query_response_size_limit.unwrap_or(1024),
            query_size_limit: p.query_size_limit.unwrap_or(1024),
            user_event_size_limit: p.user_event_size_limit.unwrap_or(512),
            disable_coordinates: p.disable_coordinates.unwrap_or(false),
            disable_name_resolution: p.disable_name_resolution.unwrap_or(false),
            reconnect_interval: p.reconnect_interval,
            reconnect_timeout: p.reconnect_timeout,
            tombstone_timeout: p.tombstone_timeout,
            handlers,
            tenants: p.tenants,
            handler_cache_dir,
            handler_memory_total: usize::try_from(
                p.handler_memory_total
                    .unwrap_or(DEFAULT_HANDLER_MEMORY_TOTAL),
            )
            .unwrap_or(usize::MAX),
            quic,
            deploy,
            discover: p.discover.filter(|d| !d.is_empty()),
            interface: p.interface.filter(|i| !i.is_empty()),
            warnings,
        })
    }

    /// The profile's name as Serf prints it.
    pub fn profile_name(&self) -> &'static str {
        match self.profile {
            Profile::Lan => "lan",
            Profile::Wan => "wan",
            Profile::Local => "local",
        }
    }

    /// True when the bind address is a wildcard (`0.0.0.0` / `::`), so the address to
    /// advertise has to be found.
    pub fn binds_wildcard(&self) -> bool {
        self.bind.ip().is_unspecified()
    }
}

/// Loopback, for an advertise address when nothing better is found.
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[cfg(test)]
mod tests {
    use super::file::{decode_text, Format};
    use super::*;

    fn json(text: &str) -> Result<Partial, ConfigError> {
        decode_text(text, Format::Json, "a.json")
    }

    fn toml(text: &str) -> Result<Partial, ConfigError> {
        decode_text(text, Format::Toml, "b.toml")
    }

    #[test]
    fn a_store_needs_the_data_dir_and_lives_in_it() {
        let block =
            "[[handler]]\nname = \"lb\"\nmodule = \"x.wasm\"\ngrants = { kv = \"64KiB\" }\n";
        let e = Config::resolve(toml(block).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("data_dir") && e.contains("\"lb\""), "{e}");
        let c =
            Config::resolve(toml(&format!("data_dir = \"/var/lib/h\"\n{block}")).unwrap()).unwrap();
        let kv = c.handlers[0].grants.kv.clone().unwrap();
        assert_eq!(kv.path, PathBuf::from("/var/lib/h/kv/lb.redb"));
        assert_eq!(kv.quota, 64 << 10);
    }

    #[test]
    fn tenants_decode_from_toml_and_json_and_check_their_handlers() {
        let hash = format!("sha256:{}", "ab".repeat(32));
        let t = toml(&format!(
            "[[tenant]]\nname = \"payments\"\nrpc_tokens = [\"{hash}\"]\nquota = {{ handlers = 2, concurrency = 3, memory = \"32MiB\" }}\n\
             grants = {{ emit = true }}\n\
             [[handler]]\ntenant = \"payments\"\nmodule = \"refund.wasm\"\n\
             events = \"query:payments/refund\"\ngrants = {{ emit = true }}\n"
        ))
        .unwrap();
        let j = json(&format!(
            r#"{{"tenants":[{{"name":"payments","rpc_tokens":["{hash}"],"quota":{{"handlers":2,"concurrency":3,"memory":"32MiB"}},"grants":{{"emit":true}}}}],
               "handlers":[{{"tenant":"payments","module":"refund.wasm","events":"query:payments/refund","grants":{{"emit":true}}}}]}}"#
        ))
        .unwrap();
        for p in [t, j] {
            let c = Config::resolve(p).unwrap();
            assert_eq!(c.tenants.len(), 1);
            let tenant = &c.tenants[0];
            assert_eq!(
                (
                    tenant.name.as_str(),
                    tenant.quota.handlers,
                    tenant.rpc_tokens[0][0]
                ),
                ("payments", Some(2), 0xab)
            );
            assert!(tenant.grants.emit);
            assert_eq!(
                (tenant.quota.concurrency, tenant.quota.memory),
                (Some(3), Some(32 << 20))
            );
            let h = &c.handlers[0];
            assert_eq!(h.tenant_quota, Some(tenant.quota));
            assert_eq!(h.tenant.as_deref(), Some("payments"));
            assert_eq!(h.grants.emit_prefix.as_deref(), Some("payments/"));
        }
        for (bad, why) in [
            ("[[tenant]]\nname = \"Pay\"\n", "tenant[0].name"),
            (
                "[[tenant]]\nname = \"p\"\nrpc_tokens = [\"abc\"]\n",
                "tenant[0].rpc_tokens",
            ),
            (
                "[[tenant]]\nname = \"p\"\nquota = { cpu = 1 }\n",
                "tenant[0].quota.cpu",
            ),
            (
                "[[tenant]]\nname = \"p\"\ngrants = { dirs = [\"rel\"] }\n",
                "tenant[0].grants",
            ),
            (
                "[[tenant]]\nname = \"p\"\nquota = { concurrency = 0 }\n",
                "above zero",
            ),
        ] {
            let e = toml(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let outside = "[[tenant]]\nname = \"p\"\n[[handler]]\ntenant = \"p\"\nmodule = \"x.wasm\"\nevents = \"user\"\n";
        let e = Config::resolve(toml(outside).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("namespace"), "{e}");
    }

    #[test]
    fn capability_ceilings_decode() {
        let t = toml(
            "deploy_grants = { write_dirs = [\"/srv/out\"], commands = { reload = [\"/bin/true\"] }, kv = \"1MiB\", tags = [\"service:*\"], http = [\"http://127.0.0.1:8500/\"] }",
        )
        .unwrap();
        let c = Config::resolve(t).unwrap().deploy.ceiling;
        assert_eq!(c.write_dirs, [PathBuf::from("/srv/out")]);
        assert_eq!(c.commands["reload"], ["/bin/true"]);
        assert_eq!(c.kv, Some(1 << 20));
        assert_eq!(c.tags, ["service:*"]);
        assert_eq!(c.http, ["http://127.0.0.1:8500/"]);
        for bad in [
            "deploy_grants = { write_dirs = [\"rel\"] }",
            "deploy_grants = { commands = { x = [\"true\"] } }",
        ] {
            assert!(toml(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deploy_keys_from_files_and_flags() {
        const KEY: &str = "ed25519:1XgSEuELsFKjrY0LkmAG8Fh07pTMGH132l4Sji1qQJU=";
        let c = Config::resolve(Partial::default()).unwrap();
        assert!(c.deploy.keys.is_empty(), "no signer is trusted by default");
        assert_eq!(c.deploy.ceiling, DeployCeiling::default());
        assert_eq!(c.deploy.module_max_bytes, DEFAULT_DEPLOY_MODULE_MAX);
        let t = toml(&format!(
            "data_dir = \"/var/lib/h\"\ndeploy_keys = [\"{KEY}\"]\n\
             deploy_module_max_bytes = \"16MiB\"\n\
             deploy_grants = {{ dirs = [\"/srv\"], env = [\"REGION\"], emit = true }}\n"
        ))
        .unwrap();
        let d = Config::resolve(t).unwrap().deploy;
        assert_eq!(d.keys.len(), 1);
        assert_eq!(d.keys[0].to_string(), KEY);
        assert_eq!(d.data_dir, Some(PathBuf::from("/var/lib/h")));
        assert_eq!(d.module_max_bytes, 16 << 20);
        assert_eq!(d.ceiling.dirs, vec![PathBuf::from("/srv")]);
        assert!(d.ceiling.emit && !d.ceiling.clocks);
        let run = |args: &[&str]| match flags::parse(args.iter().map(|a| a.to_string())).unwrap() {
            flags::Command::Run(s) => Config::resolve(s.flags),
            flags::Command::Help => unreachable!(),
        };
        let k = format!("-deploy-key={KEY}");
        let d = run(&["-data-dir=/d", &k, &k]).unwrap().deploy;
        assert_eq!(d.keys.len(), 2, "repeatable");
        // A key without a data dir, with QUIC off, or that is not a key: one clear error.
        let e = run(&[&k]).unwrap_err().to_string();
        assert!(e.contains("data_dir (-data-dir)"), "{e}");
        let e = run(&["-data-dir=/d", &k, "-disable-quic"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("QUIC"), "{e}");
        let e = run(&["-data-dir=/d", "-deploy-key=ed25519:nope"])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("deploy_keys (-deploy-key): \"ed25519:nope\""),
            "{e}"
        );
        let e = run(&["-deploy-module-max-bytes=0"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("above zero"), "{e}");
        let e = toml("deploy_grants = { net = true }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("net"), "{e}");
        for bad in ["", "srv"] {
            let e = toml(&format!("deploy_grants = {{ dirs = [\"{bad}\"] }}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("give an absolute directory"), "{e}");
        }
    }

    #[test]
    fn quic_keys_from_files_and_flags() {
        let c = Config::resolve(Partial::default()).unwrap();
        let q = c.quic.expect("QUIC is on by default");
        assert_eq!(q.bind, None);
        assert_eq!(q, QuicSettings::default());
        let j = json(
            r#"{"quic_bind": "127.0.0.1:9000", "quic_identity_file": "/tmp/id.pem",
                "query_response_max_bytes": 1000, "query_max_bytes": 5000}"#,
        )
        .unwrap();
        let q = Config::resolve(j).unwrap().quic.unwrap();
        assert_eq!(q.bind, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(q.identity_file, Some(PathBuf::from("/tmp/id.pem")));
        assert_eq!((q.response_max_bytes, q.query_max_bytes), (1000, 5000));
        let t = toml("quic_bind = \"10.0.0.1\"\nbind = \"10.0.0.1:8000\"").unwrap();
        let q = Config::resolve(t).unwrap().quic.unwrap();
        assert_eq!(
            q.bind,
            Some("10.0.0.1:0".parse().unwrap()),
            "port: the OS chooses"
        );
        let f = match flags::parse(["-disable-quic".to_owned()]).unwrap() {
            flags::Command::Run(s) => s.flags,
            flags::Command::Help => unreachable!(),
        };
        assert_eq!(Config::resolve(f).unwrap().quic, None);
        let f =
            match flags::parse(["-quic-ca-file=ca.pem", "-query-max-bytes=7"].map(str::to_owned))
                .unwrap()
            {
                flags::Command::Run(s) => s.flags,
                flags::Command::Help => unreachable!(),
            };
        let e = Config::resolve(f).unwrap_err().to_string();
        assert!(e.contains("must be given together"), "{e}");
        let e = Config::resolve(json(r#"{"query_max_bytes": 0}"#).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("query_max_bytes (-query-max-bytes): must be above zero"),
            "{e}"
        );
    }

    #[test]
    fn defaults_are_serfs() {
        let c = Config::resolve(Partial::default()).unwrap();
        assert_eq!(c.bind, "0.0.0.0:7946".parse().unwrap());
        assert_eq!(c.rpc_addr, "127.0.0.1:7373".parse().unwrap());
        assert_eq!(c.profile, Profile::Lan);
        assert_eq!(c.protocol, 5);
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.retry_interval, Duration::from_secs(30));
        assert_eq!(c.retry_max_attempts, 0);
        assert_eq!(c.broadcast_timeout, Duration::from_secs(5));
        assert_eq!(
            (
                c.query_response_size_limit,
                c.query_size_limit,
                c.user_event_size_limit
            ),
            (1024, 1024, 512)
        );
        assert!(c.enable_compression && !c.replay_on_join && !c.leave_on_terminate);
        assert!(!c.node_name.is_empty());
    }

    #[test]
    fn rpc_max_connections_defaults_to_the_servers_cap() {
        let c = Config::resolve(Partial::default()).unwrap();
        assert_eq!(c.rpc_max_connections, 256);
        let c = Config::resolve(toml("rpc_max_connections = 0\n").unwrap()).unwrap();
        assert_eq!(c.rpc_max_connections, 0, "0 turns the cap off");
        let c = Config::resolve(json(r#"{"rpc_max_connections": 16}"#).unwrap()).unwrap();
        assert_eq!(c.rpc_max_connections, 16);
        let e = json(r#"{"rpc_max_connections": -1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rpc_max_connections"), "{e}");
    }

    #[test]
    fn json_and_toml_decode_the_same_keys() {
        let j = json(
            r#"{"node_name":"a","bind":"127.0.0.1:8000","tags":{"role":"web"},
                "start_join":["127.0.0.1:1"],"retry_interval":"5s","retry_max_attempts":3,
                "protocol":4,"enable_compression":false,"event_handlers":[],
                "enable_syslog":false,"syslog_facility":"LOCAL0","discover":""}"#,
        )
        .unwrap();
        let t = toml(
            "node_name = \"a\"\nbind = \"127.0.0.1:8000\"\nstart_join = [\"127.0.0.1:1\"]\n\
             retry_interval = \"5s\"\nretry_max_attempts = 3\nprotocol = 4\n\
             enable_compression = false\nevent_handlers = []\nenable_syslog = false\n\
             syslog_facility = \"LOCAL0\"\ndiscover = \"\"\n[tags]\nrole = \"web\"\n",
        )
        .unwrap();
        assert_eq!(j, t);
        let c = Config::resolve(j).unwrap();
        assert_eq!(c.node_name, "a");
        assert_eq!(c.retry_interval, Duration::from_secs(5));
        assert_eq!(c.protocol, 4);
        assert!(!c.enable_compression);
        assert_eq!(c.tags["role"], "web");
    }

    #[test]
    fn discover_and_interface_from_files_and_flags() {
        let c = Config::resolve(Partial::default()).unwrap();
        assert_eq!((c.discover, c.interface), (None, None));
        let j = json(r#"{"discover":"c1","interface":"eth0"}"#).unwrap();
        let t = toml("discover = \"c1\"\ninterface = \"eth0\"\n").unwrap();
        assert_eq!(j, t);
        let c = Config::resolve(j.clone()).unwrap();
        assert_eq!(c.discover.as_deref(), Some("c1"));
        assert_eq!(c.interface.as_deref(), Some("eth0"));
        // A later file or the flags win, as for every other key; empty is "off".
        let mut merged = j;
        merged.merge(json(r#"{"discover":"c2"}"#).unwrap());
        let flags = match flags::parse(["-iface=lo".to_owned()]).unwrap() {
            flags::Command::Run(s) => s.flags,
            flags::Command::Help => unreachable!(),
        };
        merged.merge(flags);
        let c = Config::resolve(merged).unwrap();
        assert_eq!(c.discover.as_deref(), Some("c2"));
        assert_eq!(c.interface.as_deref(), Some("lo"));
        let c = Config::resolve(json(r#"{"discover":""}"#).unwrap()).unwrap();
        assert_eq!(c.discover, None);
    }

    #[test]
    fn handler_memory_total_from_files_and_flags() {
        let c = Config::resolve(Partial::default()).unwrap();
        assert_eq!(c.handler_memory_total as u64, DEFAULT_HANDLER_MEMORY_TOTAL);
        let j = json(r#"{"handler_memory_total":"512MiB"}"#).unwrap();
        let t = toml("handler_memory_total = 536870912\n").unwrap();
        assert_eq!(j, t);
        assert_eq!(Config::resolve(j).unwrap().handler_memory_total, 512 << 20);
        let flags = match flags::parse(["-handler-memory-total=2GiB".to_owned()]).unwrap() {
            flags::Command::Run(s) => s.flags,
            flags::Command::Help => unreachable!(),
        };
        assert_eq!(
            Config::resolve(flags).unwrap().handler_memory_total,
            2 << 30
        );
        let e = json(r#"{"handler_memory_total":"lots"}"#).unwrap_err();
        assert!(e.to_string().contains("handler_memory_total"), "{e}");
        assert!(flags::parse(["-handler-memory-total=1XB".to_owned()]).is_err());
    }

    #[test]
    fn errors_name_file_key_and_type() {
        let e = json(r#"{"node_nme":"a"}"#).unwrap_err().to_string();
        assert_eq!(e, "a.json: unknown key \"node_nme\"");
        let e = json(r#"{"retry_max_attempts":"3"}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "a.json: key \"retry_max_attempts\" must be an integer, found a string"
        );
        let e = toml("tags = { role = 1 }").unwrap_err().to_string();
        assert_eq!(
            e,
            "b.toml: key \"tags.role\" must be a string, found an integer"
        );
        let e = json(r#"{"retry_interval":"soon"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("a.json: retry_interval: invalid duration"),
            "{e}"
        );
        let e = json(r#"{"start_join":"x"}"#).unwrap_err().to_string();
        assert!(e.contains("must be a list of strings"), "{e}");
        let e = json(r#"{"event_handlers":["x.sh"]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("a.json: event_handlers: hearsay does not"),
            "{e}"
        );
        let e = json(r#"{"discover":1}"#).unwrap_err().to_string();
        assert_eq!(
            e,
            "a.json: key \"discover\" must be a string, found an integer"
        );
        let e = json("{\"a\":").unwrap_err().to_string();
        assert!(e.starts_with("a.json: invalid JSON:"), "{e}");
        let e = json("[1]").unwrap_err().to_string();
        assert!(e.contains("top level must be an object"), "{e}");
        let e = json(r#"{"protocol":-1}"#).unwrap_err().to_string();
        assert!(e.contains("protocol"), "{e}");
    }

    #[test]
    fn merge_as_serf() {
        let mut a = json(
            r#"{"node_name":"a","tags":{"x":"1","y":"1"},"start_join":["j1"],
                "retry_join":["r1"],"log_level":"debug"}"#,
        )
        .unwrap();
        let b =
            json(r#"{"node_name":"b","tags":{"y":"2"},"start_join":["j2"],"retry_join":["r2"]}"#)
                .unwrap();
        a.merge(b);
        assert_eq!(a.node_name.as_deref(), Some("b"));
        assert_eq!(a.log_level.as_deref(), Some("debug"));
        let tags = a.tags.clone().unwrap();
        assert_eq!((tags["x"].as_str(), tags["y"].as_str()), ("1", "2"));
        assert_eq!(a.start_join, ["j1", "j2"]);
        assert_eq!(a.retry_join, ["r1", "r2"]);
    }

    #[test]
    fn checks_and_clamps() {
        let c = Config::resolve(Partial {
            retry_interval: Some(Duration::from_millis(10)),
            role: Some("db".into()),
            ..Partial::default()
        })
        .unwrap();
        assert_eq!(c.retry_interval, Duration::from_secs(1));
        assert_eq!(c.tags["role"], "db");
        assert_eq!(c.warnings.len(), 2);
        let e = |p: Partial| Config::resolve(p).unwrap_err().to_string();
        assert!(e(Partial {
            profile: Some("moon".into()),
            ..Partial::default()
        })
        .contains("unknown profile \"moon\""));
        assert!(e(Partial {
            protocol: Some(9),
            ..Partial::default()
        })
        .contains("protocol version 9"));
        assert!(e(Partial {
            log_level: Some("loud".into()),
            ..Partial::default()
        })
        .contains("invalid log level"));
        assert!(e(Partial {
            tags: Some([("a".to_owned(), "b".to_owned())].into()),
            tags_file: Some("t.json".into()),
            ..Partial::default()
        })
        .contains("tags file"));
        assert!(e(Partial {
            encrypt_key: Some("k".into()),
            keyring_file: Some("k.json".into()),
            ..Partial::default()
        })
        .contains("keyring file"));
        assert!(e(Partial {
            bind: Some("1.2.3.4:notaport".into()),
            ..Partial::default()
        })
        .starts_with("bind (-bind): "));
        assert_eq!(
            e(Partial {
                rpc_addr: Some("127.0.0.1:99999".into()),
                ..Partial::default()
            }),
            "rpc_addr (-rpc-addr): invalid port \"99999\" in \"127.0.0.1:99999\""
        );
        for level in ["trace", "DEBUG", "Info", "warn", "err", "ERROR"] {
            assert!(level.parse::<LogLevel>().is_ok(), "{level}");
        }
    }

    #[test]
    fn config_dir_reads_json_and_toml_in_lexical_order() {
        let dir = std::env::temp_dir().join(format!("hearsay-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub.json")).unwrap();
        std::fs::write(dir.join("b.toml"), "node_name = \"b\"\n[tags]\nk = \"b\"\n").unwrap();
        std::fs::write(
            dir.join("a.json"),
            r#"{"node_name":"a","start_join":["x"]}"#,
        )
        .unwrap();
        std::fs::write(dir.join("c.json"), r#"{"start_join":["y"]}"#).unwrap();
        std::fs::write(dir.join("ignored.txt"), "not a config").unwrap();
        let p = file::read_paths(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(p.node_name.as_deref(), Some("b"));
        assert_eq!(p.start_join, ["x", "y"]);
        std::fs::write(dir.join("d.json"), r#"{"bogus":1}"#).unwrap();
        let e = file::read_paths(std::slice::from_ref(&dir))
            .unwrap_err()
            .to_string();
        assert!(e.contains("d.json") && e.contains("\"bogus\""), "{e}");
        let e = file::read_paths(&[dir.join("missing.json")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dev_defaults_and_flags_over_files() {
        let s = Sources {
            dev: true,
            ..Sources::default()
        };
        let c = s.load().unwrap();
        assert_eq!(c.bind, "127.0.0.1:7946".parse().unwrap());
        assert!(c.bind_fallback);
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.profile, Profile::Local);
        let path = std::env::temp_dir().join(format!("hearsay-over-{}.json", std::process::id()));
        std::fs::write(&path, r#"{"node_name":"file","bind":"127.0.0.1:9"}"#).unwrap();
        let s = Sources {
            config_paths: vec![path.clone()],
            flags: Partial {
                node_name: Some("flag".into()),
                ..Partial::default()
            },
            dev: true,
        };
        let c = s.load().unwrap();
        assert_eq!(c.node_name, "flag");
        assert_eq!(c.bind.port(), 9);
        assert!(!c.bind_fallback);
        std::fs::remove_file(&path).unwrap();
    }
}
