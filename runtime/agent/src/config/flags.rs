//! `hearsay agent`'s command line: Serf's agent flags (Go style, `-node=x`, `-node x`,
//! `--node=x`; see [`crate::conventions::flags`]), plus hearsay's `-dev`, `-log-json`, `-leave-on-terminate` and
//! `-skip-leave-on-interrupt`, turned into [`Sources`].

use super::file::{WHY_EVENT_HANDLERS, WHY_SYSLOG};
use super::{ConfigError, Sources};
use crate::conventions::{parse_go_duration, parse_tag, Flag, Flags};
use std::collections::BTreeMap;

/// Flags that stand alone (a value only as `-flag=false`).
const BOOL_FLAGS: &[&str] = &[
    "disable-quic",
    "h",
    "help",
    "dev",
    "replay",
    "rejoin",
    "disable-compression",
    "syslog",
    "log-json",
    "leave-on-terminate",
    "skip-leave-on-interrupt",
];

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `-h` / `-help`: print the flags and stop.
    Help,
    /// Run an agent from these sources.
    Run(Box<Sources>),
}

const ORIGIN: &str = "command line";

fn bad(flag: &Flag, message: impl Into<String>) -> ConfigError {
    ConfigError::BadValue {
        origin: ORIGIN.to_owned(),
        key: format!("-{}", flag.name),
        message: message.into(),
    }
}

fn unsupported(flag: &Flag, why: &'static str) -> ConfigError {
    ConfigError::Unsupported {
        origin: ORIGIN.to_owned(),
        key: format!("-{}", flag.name),
        why,
    }
}

fn int<T: std::str::FromStr>(flag: &Flag) -> Result<T, ConfigError> {
    flag.value
        .parse()
        .map_err(|_| bad(flag, format!("{:?} is not a whole number", flag.value)))
}

fn duration(flag: &Flag) -> Result<std::time::Duration, ConfigError> {
    parse_go_duration(&flag.value).map_err(|e| bad(flag, e))
}

/// A `-tag` value: `key=value` with a non-empty key, as Serf's `UnmarshalTags`.
fn tag(flag: &Flag) -> Result<(String, String), ConfigError> {
    parse_tag(&flag.value).map_err(|_| {
        bad(
            flag,
            format!("invalid tag {:?}; expected key=value", flag.value),
        )
    })
}

/// Parses `hearsay agent`'s arguments (without the verb).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, ConfigError> {
    let mut s = Sources::default();
    let p = &mut s.flags;
    let mut tags = BTreeMap::new();
    let mut flags = Flags::new(args, BOOL_FLAGS);
    for flag in &mut flags {
        let flag = flag?;
        let v = || Some(flag.value.clone());
        match flag.name.as_str() {
            "h" | "help" => return Ok(Command::Help),
            "dev" => s.dev = flag.bool()?,
            "config-file" | "config-dir" => s.config_paths.push(flag.value.clone().into()),
            "node" => p.node_name = v(),
            "bind" => p.bind = v(),
            "advertise" => p.advertise = v(),
            "rpc-addr" => p.rpc_addr = v(),
            "rpc-auth" => p.rpc_auth = v(),
            "rpc-max-connections" => p.rpc_max_connections = Some(int(&flag)?),
            "encrypt" => p.encrypt_key = v(),
            "keyring-file" => p.keyring_file = Some(flag.value.clone().into()),
            "join" => p.start_join.push(flag.value.clone()),
            "retry-join" => p.retry_join.push(flag.value.clone()),
            "retry-max" => p.retry_max_attempts = Some(int(&flag)?),
            "retry-interval" => p.retry_interval = Some(duration(&flag)?),
            "replay" => p.replay_on_join = Some(flag.bool()?),
            "tag" => {
                let (k, v) = tag(&flag)?;
                tags.insert(k, v);
            }
            "tags-file" => p.tags_file = Some(flag.value.clone().into()),
            "role" => p.role = v(),
            "profile" => p.profile = v(),
            "snapshot" => p.snapshot_path = Some(flag.value.clone().into()),
            "rejoin" => p.rejoin_after_leave = Some(flag.bool()?),
            "protocol" => p.protocol = Some(int(&flag)?),
            "log-level" => p.log_level = v(),
            "log-json" => p.log_json = Some(flag.bool()?),
            "leave-on-terminate" => p.leave_on_terminate = Some(flag.bool()?),
            "skip-leave-on-interrupt" => p.skip_leave_on_interrupt = Some(flag.bool()?),
            // Serf merges this flag unconditionally (so a file's `enable_compression: false`
            // is lost); here only an explicit flag overrides the files.
            "disable-compression" => p.enable_compression = Some(!flag.bool()?),
            "broadcast-timeout" => p.broadcast_timeout = Some(duration(&flag)?),
            "disable-quic" => p.disable_quic = Some(flag.bool()?),
            "quic-bind" => p.quic_bind = v(),
            "quic-advertise" => p.quic_advertise = v(),
            "quic-identity-file" => p.quic_identity_file = Some(flag.value.clone().into()),
            "quic-ca-file" => p.quic_ca_file = Some(flag.value.clone().into()),
            "quic-cert-file" => p.quic_cert_file = Some(flag.value.clone().into()),
            "quic-key-file" => p.quic_key_file = Some(flag.value.clone().into()),
            "query-response-max-bytes" => p.query_response_max_bytes = Some(int(&flag)?),
            "query-max-bytes" => p.query_max_bytes = Some(int(&flag)?),
            "discover" => p.discover = v(),
            "iface" => p.interface = v(),
            "syslog" if flag.bool()? => return Err(unsupported(&flag, WHY_SYSLOG)),
            "event-handler" => return Err(unsupported(&flag, WHY_EVENT_HANDLERS)),
            "handler" => p
                .handlers
                .push(super::handlers::from_flag(&flag.value).map_err(|e| bad(&flag, e))?),
            "handler-cache-dir" => p.handler_cache_dir = Some(flag.value.clone().into()),
            "handler-memory-total" => {
                p.handler_memory_total =
                    Some(super::handlers::parse_size(&flag.value).map_err(|e| bad(&flag, e))?)
            }
            "data-dir" => p.data_dir = Some(flag.value.clone().into()),
            "deploy-key" => p.deploy_keys.push(flag.value.clone()),
            "deploy-module-max-bytes" => {
                p.deploy_module_max_bytes =
                    Some(super::handlers::parse_size(&flag.value).map_err(|e| bad(&flag, e))?)
            }
            "syslog" => {}
            other => return Err(ConfigError::UnknownFlag(other.to_owned())),
        }
    }
    flags.finish()?;
    if !tags.is_empty() {
        p.tags = Some(tags);
    }
    Ok(Command::Run(Box::new(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run(v: &[&str]) -> Result<Sources, ConfigError> {
        match parse(v.iter().map(|s| s.to_string()))? {
            Command::Run(s) => Ok(*s),
            Command::Help => panic!("help"),
        }
    }

    #[test]
    fn serf_flags_in_both_styles() {
        let s = run(&[
            "-node=a",
            "--bind",
            "127.0.0.1:0",
            "-join=x",
            "--join",
            "y",
            "-retry-join=z",
            "-retry-max=3",
            "--retry-interval=2s",
            "-replay",
            "-tag",
            "role=web",
            "--tag=dc=east",
            "-config-file=a.json",
            "--config-dir",
            "conf.d",
            "-rpc-addr=127.0.0.1:0",
            "-rpc-max-connections=32",
            "-protocol=4",
            "-disable-compression",
            "-broadcast-timeout=3s",
            "-log-level=debug",
            "-log-json",
            "-dev",
            "-discover=c1",
            "--iface",
            "eth0",
        ])
        .unwrap();
        let p = &s.flags;
        assert!(s.dev);
        assert_eq!(s.config_paths.len(), 2);
        assert_eq!(p.node_name.as_deref(), Some("a"));
        assert_eq!(p.start_join, ["x", "y"]);
        assert_eq!(p.retry_join, ["z"]);
        assert_eq!(p.retry_max_attempts, Some(3));
        assert_eq!(p.retry_interval, Some(Duration::from_secs(2)));
        assert_eq!(p.replay_on_join, Some(true));
        assert_eq!(p.tags.as_ref().unwrap().len(), 2);
        assert_eq!(p.protocol, Some(4));
        assert_eq!(p.rpc_max_connections, Some(32));
        assert_eq!(p.enable_compression, Some(false));
        assert_eq!(p.log_json, Some(true));
        assert_eq!(p.discover.as_deref(), Some("c1"));
        assert_eq!(p.interface.as_deref(), Some("eth0"));
        assert_eq!(parse(["-help".to_string()]).unwrap(), Command::Help);
        assert_eq!(run(&[]).unwrap(), Sources::default());
    }

    #[test]
    fn bad_flags_say_which() {
        let e = |v: &[&str]| run(v).unwrap_err().to_string();
        assert_eq!(
            e(&["-nodes=a"]),
            "flag provided but not defined: -nodes (see `hearsay agent -help`)"
        );
        assert!(e(&["-retry-max=lots"]).contains("-retry-max"));
        assert!(e(&["-rpc-max-connections=-1"]).contains("-rpc-max-connections"));
        assert!(e(&["-retry-interval=5"]).contains("-retry-interval"));
        assert!(e(&["-tag=novalue"]).contains("invalid tag"));
        assert!(e(&["-node"]).contains("-node needs a value"));
        assert!(e(&["-event-handler=x.sh"]).contains("shell-script"));
        assert!(e(&["-discover"]).contains("-discover needs a value"));
        assert!(e(&["stray"]).contains("stray"));
        assert!(e(&["-node=a", "stray", "-bind=x"]).contains("stray"));
        assert!(e(&["-dev", "--", "x"]).contains("\"x\""));
        assert!(e(&["-replay=yes"]).contains("-replay"));
        assert!(
            run(&["-tag", "-x=1"]).is_ok(),
            "a value may begin with a dash"
        );
        assert!(run(&["-syslog=false"]).is_ok());
    }
}
