//! The deploy settings ([`DeploySettings`]): which signers this agent trusts to deploy handler
//! modules (`deploy_keys` / `-deploy-key ed25519:BASE64`, repeatable), where deployments and
//! their modules are kept (`data_dir` / `-data-dir`), the largest module it will fetch
//! (`deploy_module_max_bytes` / `-deploy-module-max-bytes`, default 64 MiB) and the most a
//! deployed handler may be granted (`deploy_grants`, a ceiling; default: nothing beyond the
//! plain sandbox):
//!
//! ```toml
//! data_dir = "/var/lib/hearsay"
//! deploy_keys = ["ed25519:7cG3...="]
//! deploy_module_max_bytes = "16MiB"
//! deploy_grants = { dirs = ["/srv/data"], env = ["REGION"], clocks = true, emit = true,
//!                   write_dirs = ["/srv/out"], http = ["http://127.0.0.1:8500/v1/"],
//!                   commands = { reload = ["/usr/sbin/nginx", "-s", "reload"] },
//!                   kv = "16MiB", tags = ["service:*"] }
//! ```
//!
//! A deployment asking for more than `deploy_grants` allows (a directory outside the listed
//! ones, a variable not named, an HTTP origin or path not under a listed one, a command name
//! not listed, a store larger than `kv`, a tag pattern no listed pattern covers, clocks or
//! emit not allowed) is refused on this agent, with the reason in `hearsay deployments`. A
//! deployment names commands only; what a name runs is this agent's `commands` entry.

use super::de::{Strings, Table};
use super::handlers::Size;
use super::{invalid, ConfigError, Partial};
use hearsay_deploy::PublicKey;
use hearsay_host::Grants;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The default of `deploy_module_max_bytes`.
pub const DEFAULT_DEPLOY_MODULE_MAX: u64 = 64 << 20;

/// What deployed handlers may be granted at most on this agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployCeiling {
    /// Host directories (and everything under them) a deployed handler may be granted,
    /// read-only.
    pub dirs: Vec<PathBuf>,
    /// Environment variable names a deployed handler may set.
    pub env: Vec<String>,
    /// Whether a deployed handler may have real clocks.
    pub clocks: bool,
    /// Whether a deployed handler may emit user events.
    pub emit: bool,
    /// Host directories (and everything under them) a deployed handler may be granted to write.
    pub write_dirs: Vec<PathBuf>,
    /// HTTP origins and path prefixes a deployed handler's `grants.http` must fall under.
    pub http: Vec<String>,
    /// The commands a deployed handler may name, with what each runs on this agent.
    pub commands: BTreeMap<String, Vec<String>>,
    /// The largest key-value store a deployed handler may have; none: no store.
    pub kv: Option<u64>,
    /// Tag-name patterns that a deployed handler's `grants.tags` patterns must fall under.
    pub tags: Vec<String>,
}

impl DeployCeiling {
    /// Why `grants` ask for more than this ceiling allows, or `None` when they do not. `whose`
    /// names the ceiling in the reason (`this agent's deploy_grants`, `tenant "payments"'s
    /// grants`). Directories are judged on their real paths (symlinks resolved, so a link inside
    /// an allowed directory cannot lead out of it): both must exist. A command must run exactly
    /// the ceiling's argv.
    pub fn refusal(&self, grants: &Grants, whose: &str) -> Option<String> {
        for (key, asked, allowed) in [
            ("dirs", &grants.dirs, &self.dirs),
            ("write_dirs", &grants.write_dirs, &self.write_dirs),
        ] {
            if let Some(d) = asked.iter().find(|d| !within_dirs(&d.host, allowed)) {
                return Some(format!(
                    "grants.{key} {:?} is outside {whose}.{key} {allowed:?}",
                    d.host
                ));
            }
        }
        for (name, argv) in &grants.commands {
            if self.commands.get(name) != Some(argv) {
                return Some(format!(
                    "grants.commands {name:?} is not among {whose}.commands {:?}",
                    self.commands.keys().collect::<Vec<_>>()
                ));
            }
        }
        if let Some(kv) = &grants.kv {
            match self.kv {
                Some(max) if kv.quota > 0 && kv.quota <= max => {}
                Some(max) => {
                    return Some(format!(
                        "grants.kv ({} bytes) is not between 1 byte and {whose}.kv ({max} bytes)",
                        kv.quota
                    ))
                }
                None => return Some(format!("grants.kv is not allowed by {whose}")),
            }
        }
        // A pattern is covered when a ceiling pattern matches it as a name: each `*` of it is
        // then inside a `*` of the ceiling's, so every tag it matches, the ceiling's matches.
        if let Some(pattern) = grants.tags.iter().find(|p| {
            !self
                .tags
                .iter()
                .any(|c| hearsay_host::tag_pattern_matches(c, p))
        }) {
            return Some(format!(
                "grants.tags {pattern:?} is not covered by {whose}.tags {:?}",
                self.tags
            ));
        }
        if let Some(entry) = grants
            .http
            .iter()
            .find(|e| !self.http.iter().any(|c| http_within(e, c)))
        {
            return Some(format!(
                "grants.http \"{entry}\" is not under {whose}.http {:?}",
                self.http
            ));
        }
        if let Some((name, _)) = grants.env.iter().find(|(n, _)| !self.env.contains(n)) {
            return Some(format!(
                "grants.env {name:?} is not among {whose}.env {:?}",
                self.env
            ));
        }
        if grants.clocks && !self.clocks {
            return Some(format!("grants.clocks is not allowed by {whose}"));
        }
        if grants.emit && !self.emit {
            return Some(format!("grants.emit is not allowed by {whose}"));
        }
        None
    }
}

/// Whether `host` is one of the `allowed` directories or under one, judged on the real
/// paths. Both must exist; relative paths are never allowed.
fn within_dirs(host: &Path, allowed: &[PathBuf]) -> bool {
    if !host.is_absolute() || host.components().any(|c| matches!(c, Component::ParentDir)) {
        return false;
    }
    let Ok(real) = host.canonicalize() else {
        return false;
    };
    allowed
        .iter()
        .filter(|a| a.is_absolute())
        .filter_map(|a| a.canonicalize().ok())
        .any(|a| real.starts_with(a))
}

/// Whether the HTTP grant `entry` is under the ceiling's `allowed`: the same origin, and a path
/// under the allowed path on a segment boundary.
fn http_within(entry: &hearsay_host::HttpAllow, allowed: &str) -> bool {
    let Ok(allowed) = super::handlers::parse_http_grant(allowed) else {
        return false;
    };
    let authority = format!("{}:{}", entry.host(), entry.port());
    allowed.allows(entry.scheme(), &authority, entry.path_prefix())
}

/// The deploy settings an agent runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploySettings {
    /// Signers whose deployments this agent accepts; empty: it accepts none.
    pub keys: Vec<PublicKey>,
    /// Where deployments and module bytes are kept (`<data_dir>/deploy`); `None`: in memory
    /// only, lost at restart.
    pub data_dir: Option<PathBuf>,
    /// The largest module this agent fetches or accepts.
    pub module_max_bytes: u64,
    /// The most a deployed handler may be granted here.
    pub ceiling: DeployCeiling,
}

/// `deploy_grants` in a config file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CeilingEntry {
    dirs: Option<Strings<String>>,
    env: Option<Strings<String>>,
    clocks: Option<bool>,
    emit: Option<bool>,
    write_dirs: Option<Strings<String>>,
    http: Option<Strings<String>>,
    commands: Option<BTreeMap<String, Strings<String>>>,
    kv: Option<Size>,
    tags: Option<Strings<String>>,
}

impl CeilingEntry {
    /// The ceiling; `Err` names an entry of `dirs` that is empty or relative (which would
    /// otherwise allow everything, or nothing, silently).
    pub(super) fn into_ceiling(self) -> Result<DeployCeiling, String> {
        let absolute = |key: &str, list: Option<Strings<String>>| {
            let dirs: Vec<PathBuf> =
                list.map_or_else(Vec::new, |d| d.0.into_iter().map(PathBuf::from).collect());
            match dirs.iter().find(|d| !d.is_absolute()) {
                Some(bad) => Err(format!(
                    "deploy_grants.{key} entry {bad:?}: give an absolute directory"
                )),
                None => Ok(dirs),
            }
        };
        let mut commands = BTreeMap::new();
        for (name, argv) in self.commands.unwrap_or_default() {
            super::handlers::check_command(&name, &argv.0)
                .map_err(|e| format!("deploy_grants.commands: {e}"))?;
            commands.insert(name, argv.0);
        }
        let tags = self.tags.map_or_else(Vec::new, |t| t.0);
        for t in &tags {
            super::handlers::check_tag_pattern(t)
                .map_err(|e| format!("deploy_grants.tags: {e}"))?;
        }
        Ok(DeployCeiling {
            dirs: absolute("dirs", self.dirs)?,
            env: self.env.map_or_else(Vec::new, |e| e.0),
            clocks: self.clocks.unwrap_or(false),
            emit: self.emit.unwrap_or(false),
            write_dirs: absolute("write_dirs", self.write_dirs)?,
            http: {
                let http = self.http.map_or_else(Vec::new, |h| h.0);
                for entry in &http {
                    super::handlers::parse_http_grant(entry)
                        .map_err(|e| format!("deploy_grants.http: {e}"))?;
                }
                http
            },
            commands,
            kv: self.kv.map(|s| s.0),
            tags,
        })
    }
}

/// `deploy_grants`' value: a table.
pub(super) type Ceiling = Table<CeilingEntry>;

/// The deploy settings from merged files and flags.
pub(super) fn resolve(p: &Partial) -> Result<DeploySettings, ConfigError> {
    let keys = p
        .deploy_keys
        .iter()
        .map(|k| {
            k.trim()
                .parse::<PublicKey>()
                .map_err(|e| invalid("deploy_keys", "deploy-key", format!("{k:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let module_max_bytes = p
        .deploy_module_max_bytes
        .unwrap_or(DEFAULT_DEPLOY_MODULE_MAX);
    if module_max_bytes == 0 {
        return Err(invalid(
            "deploy_module_max_bytes",
            "deploy-module-max-bytes",
            "must be above zero",
        ));
    }
    let data_dir = p.data_dir.clone().filter(|d| !d.as_os_str().is_empty());
    if !keys.is_empty() && data_dir.is_none() {
        return Err(invalid(
            "deploy_keys",
            "deploy-key",
            "deployments are kept in a data directory: give data_dir (-data-dir) too",
        ));
    }
    if !keys.is_empty() && p.disable_quic == Some(true) {
        return Err(invalid(
            "deploy_keys",
            "deploy-key",
            "deployments travel over QUIC, which disable_quic turns off",
        ));
    }
    Ok(DeploySettings {
        keys,
        data_dir,
        module_max_bytes,
        ceiling: p.deploy_grants.clone().unwrap_or_default(),
    })
}

/// `deploy_module_max_bytes`' value.
pub(super) type ModuleMax = Size;
