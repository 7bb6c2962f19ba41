//! What `hearsay-memberlist-node` and `hearsay-serf-node` share: the flags both take
//! ([`NodeArgs`], parsed with [`parse_flags`] on `hearsay_agent::conventions`), the keyring
//! and join addresses those flags describe, the signals both answer ([`Signals`]), their logs
//! and their runtime ([`run_main`]).
//!
//! What it is not: a library for anything but these two test binaries (it is not published);
//! their flags, defaults and output lines are the interface the interop tests and
//! `hearsay-bench` read.

#![warn(missing_docs, unreachable_pub)]

use anyhow::{bail, Context, Result};
use hearsay_agent::conventions::{self, parse_tag, Flag, FlagError, Flags, DEFAULT_BIND_PORT};
use hearsay_agent::keyring_file;
use hearsay_net::{Keyring, Profile};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// The flags both nodes take.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeArgs {
    /// `-name` (or `-node`): the host name by default, as Serf's.
    pub name: String,
    /// `-bind`: an `IP:PORT` (port 0 picks one); 127.0.0.1:7946 by default.
    pub bind: SocketAddr,
    /// `-advertise`: an `IP:PORT`.
    pub advertise: Option<SocketAddr>,
    /// `-join` (repeatable): `host[:port]`, the port 7946 by default.
    pub join: Vec<String>,
    /// `-encrypt`: a base64 key.
    pub encrypt: Option<String>,
    /// `-keyring-file`: Serf's JSON list of base64 keys.
    pub keyring_file: Option<String>,
    /// `-tag k=v` (repeatable, or `k=v,k=v`).
    pub tags: BTreeMap<String, String>,
    /// `-profile`: `lan`, `wan` or `local`.
    pub profile: Profile,
}

impl Default for NodeArgs {
    fn default() -> Self {
        Self {
            name: conventions::default_node_name(),
            bind: SocketAddr::from(([127, 0, 0, 1], DEFAULT_BIND_PORT)),
            advertise: None,
            join: Vec::new(),
            encrypt: None,
            keyring_file: None,
            tags: BTreeMap::new(),
            profile: Profile::Lan,
        }
    }
}

impl NodeArgs {
    /// Takes `flag` if it is one of the flags every node has; hands any other back.
    pub fn accept(&mut self, flag: Flag) -> Result<Option<Flag>> {
        match flag.name.as_str() {
            "name" | "node" => self.name = flag.value,
            "bind" => self.bind = addr(&flag)?,
            "advertise" => self.advertise = Some(addr(&flag)?),
            "join" => self.join.push(flag.value),
            "encrypt" => self.encrypt = Some(flag.value),
            "keyring-file" => self.keyring_file = Some(flag.value),
            "tag" => self.tags.extend(tags(&flag)?),
            "profile" => self.profile = flag.value.parse()?,
            _ => return Ok(Some(flag)),
        }
        Ok(None)
    }

    /// The keyring `-encrypt` and `-keyring-file` describe: the file's keys, with the
    /// `-encrypt` key added and made primary, like Serf (whose agent takes only one of the
    /// two; these nodes take both, so a test can rotate keys). `None` for plaintext.
    pub fn keyring(&self) -> Result<Option<Keyring>> {
        let from_file = match &self.keyring_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("-keyring-file: cannot read {path}"))?;
                Some(keyring_file::decode(&text).context("-keyring-file")?)
            }
            None => None,
        };
        let Some(key) = &self.encrypt else {
            return Ok(from_file);
        };
        let primary = Keyring::from_base64_keys(&[key]).context("-encrypt")?;
        Ok(Some(match from_file {
            Some(mut ring) => {
                let key = primary.primary().to_vec();
                ring.add_key(&key)?;
                ring.use_key(&key)?;
                ring
            }
            None => primary,
        }))
    }

    /// The `-join` addresses, resolved.
    pub async fn join_addrs(&self) -> Result<Vec<SocketAddr>> {
        let mut addrs = Vec::with_capacity(self.join.len());
        for a in &self.join {
            addrs.push(conventions::resolve_async(a, DEFAULT_BIND_PORT).await?);
        }
        Ok(addrs)
    }
}

/// Parses a node's command line: `-h` / `-help` print `usage` and exit; every other flag
/// goes to `handle`, which says whether it knows it (`bools` are its flags that take no
/// value). The node takes no operands.
pub fn parse_flags(
    raw: impl IntoIterator<Item = String>,
    bools: &[&str],
    usage: &str,
    mut handle: impl FnMut(Flag) -> Result<bool>,
) -> Result<()> {
    let mut all = vec!["h", "help"];
    all.extend_from_slice(bools);
    let mut flags = Flags::new(raw, &all);
    for flag in &mut flags {
        let flag = flag.with_context(|| usage.to_owned())?;
        if matches!(flag.name.as_str(), "h" | "help") {
            println!("{usage}");
            std::process::exit(0);
        }
        let name = flag.name.clone();
        if !handle(flag)? {
            bail!("unknown flag -{name}\n{usage}");
        }
    }
    flags.finish().with_context(|| usage.to_owned())
}

/// A literal `IP:PORT` (`-bind`, `-advertise`).
pub fn addr(flag: &Flag) -> Result<SocketAddr, FlagError> {
    flag.value
        .parse()
        .map_err(|_| flag.bad("an IP:PORT address"))
}

/// Seconds: `2`, `0.5` or `2s`.
pub fn secs(flag: &Flag) -> Result<Duration, FlagError> {
    flag.value
        .trim_end_matches('s')
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| flag.bad("a number of seconds"))
}

/// Serf tags, comma-separated (`k=v,k=v`; empty items skipped).
pub fn tags(flag: &Flag) -> Result<Vec<(String, String)>, FlagError> {
    flag.value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|kv| parse_tag(kv).map_err(|_| flag.bad("key=value[,key=value]")))
        .collect()
}

/// `MEMBERS name=status,...`, as both nodes print it.
pub fn members_line<'a>(members: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let list: Vec<String> = members
        .into_iter()
        .map(|(name, status)| format!("{name}={status}"))
        .collect();
    format!("MEMBERS {}", list.join(","))
}

/// What a signal asks of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM: leave gracefully and stop.
    Leave,
    /// SIGUSR1: print the members.
    PrintMembers,
    /// SIGHUP (only with [`Signals::with_reload`]): read the files again.
    Reload,
}

/// The signals a node answers.
#[derive(Debug)]
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// SIGINT, SIGTERM and SIGUSR1 (SIGHUP keeps its default: it ends the process).
    pub fn new() -> Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            usr1: signal(SignalKind::user_defined1())?,
            hup: None,
        })
    }

    /// Also SIGHUP, as [`Signal::Reload`].
    pub fn with_reload() -> Result<Self> {
        Ok(Self {
            hup: Some(signal(SignalKind::hangup())?),
            ..Self::new()?
        })
    }

    /// The next signal (cancel-safe, for `select!`).
    pub async fn recv(&mut self) -> Signal {
        let hup = async {
            match &mut self.hup {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.int.recv() => Signal::Leave,
            _ = self.term.recv() => Signal::Leave,
            _ = self.usr1.recv() => Signal::PrintMembers,
            _ = hup => Signal::Reload,
        }
    }
}

/// Sets up the node's logs: `tracing` to stderr, colours only on a terminal, the level from
/// `RUST_LOG` (default `info`).
pub fn init_logging() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// A node's `main`: logs, its arguments parsed by `parse`, then `run` on a single-threaded
/// tokio runtime.
pub fn run_main<A, F: Future<Output = Result<()>>>(
    parse: impl FnOnce(Vec<String>) -> Result<A>,
    run: impl FnOnce(A) -> F,
) -> Result<()> {
    init_logging();
    let args = parse(std::env::args().skip(1).collect())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<(NodeArgs, Vec<(String, String)>)> {
        let mut args = NodeArgs::default();
        let mut other = Vec::new();
        parse_flags(v.iter().map(|s| s.to_string()), &["x"], "usage", |flag| {
            match args.accept(flag)? {
                None => {}
                Some(f) if f.name == "x" || f.name == "y" => other.push((f.name, f.value)),
                Some(_) => return Ok(false),
            }
            Ok(true)
        })?;
        Ok((args, other))
    }

    #[test]
    fn common_flags_in_both_styles() {
        let (a, other) = parse(&[
            "-name=a",
            "--bind",
            "127.0.0.1:0",
            "-advertise=10.0.0.1:7946",
            "-join=127.0.0.1:7946",
            "--join",
            "h2",
            "-tag",
            "role=web",
            "--tag=dc=x,rack=1",
            "-profile=local",
            "-encrypt=k",
            "-x",
            "-y",
            "-z",
        ])
        .unwrap();
        assert_eq!(a.name, "a");
        assert_eq!(a.bind, "127.0.0.1:0".parse().unwrap());
        assert_eq!(a.advertise, Some("10.0.0.1:7946".parse().unwrap()));
        assert_eq!(a.join, ["127.0.0.1:7946", "h2"]);
        assert_eq!(a.tags.len(), 3);
        assert_eq!(a.profile, Profile::Local);
        assert_eq!(a.encrypt.as_deref(), Some("k"));
        assert_eq!(
            other,
            [("x".into(), "true".into()), ("y".into(), "-z".into())]
        );
        let d = NodeArgs::default();
        assert_eq!(d.name, conventions::default_node_name());
        assert_eq!(d.bind.port(), 7946);
    }

    #[test]
    fn bad_command_lines_are_errors() {
        for bad in [
            &["-bogus=1"][..],
            &["-name"],
            &["stray"],
            &["-name=a", "stray"],
            &["-bind=localhost"],
            &["-tag=novalue"],
            &["-tag==v"],
            &["-profile=space"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values() {
        let f = |v: &str| Flag {
            name: "x".into(),
            value: v.into(),
        };
        assert_eq!(secs(&f("1.5s")).unwrap(), Duration::from_millis(1500));
        assert_eq!(secs(&f("2")).unwrap(), Duration::from_secs(2));
        assert!(secs(&f("soon")).is_err());
        assert!(secs(&f("-1")).is_err());
        assert_eq!(addr(&f("127.0.0.1:1")).unwrap().port(), 1);
        assert!(addr(&f("localhost")).is_err());
        assert_eq!(tags(&f("a=1,,b=2=3")).unwrap().len(), 2);
        assert!(tags(&f("a")).is_err());
        assert_eq!(
            members_line([("a", "alive"), ("b", "failed")]),
            "MEMBERS a=alive,b=failed"
        );
    }

    #[test]
    fn keyring_from_encrypt_and_file() {
        const KEY: &str = "kZyFABeAmc64UMTrm9XuKA==";
        const OTHER: &str = "5K9OtfP7efFrNKe5WCQvXvnaXJ5cWP0SvXiwe0kkjM4=";
        let mut a = NodeArgs::default();
        assert!(a.keyring().unwrap().is_none());
        a.encrypt = Some(KEY.into());
        assert_eq!(a.keyring().unwrap().unwrap().keys().len(), 1);
        let path = std::env::temp_dir().join(format!("hearsay-nodes-ring-{}", std::process::id()));
        std::fs::write(&path, format!("[\"{OTHER}\"]")).unwrap();
        a.keyring_file = Some(path.display().to_string());
        let ring = a.keyring().unwrap().unwrap();
        assert_eq!(ring.keys().len(), 2);
        assert_eq!(
            ring.primary(),
            Keyring::from_base64_keys(&[KEY]).unwrap().primary()
        );
        let _ = std::fs::remove_file(&path);
        assert!(a.keyring().is_err(), "the file is gone");
    }
}
