//! Go-style command-line flags for the node binaries (`-name=x`, `-name x`, `--name=x` and
//! `--name x` all work; boolean flags stand alone or take `=true`/`=false`), plus the value
//! parsers they share and Serf's `host[:port]` resolution. No protocol logic: this only turns
//! strings into addresses, durations and pairs.

use crate::error::{Error, Result};
use hearsay_swim::Keyring;
use std::net::SocketAddr;
use std::time::Duration;

/// memberlist's and Serf's default port.
pub const DEFAULT_PORT: u16 = 7946;

/// One flag: its name without dashes and its value (`"true"` for a bare boolean flag).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Flag {
    pub name: String,
    pub value: String,
}

/// Splits arguments into [`Flag`]s; the caller matches names and parses values. A flag listed
/// in `bools` takes no separate value argument.
#[derive(Debug)]
pub struct Flags<I> {
    args: I,
    bools: &'static [&'static str],
}

impl<I: Iterator<Item = String>> Flags<I> {
    /// Flags from `args` (without the program name); `bools` are the boolean flag names.
    pub fn new(args: impl IntoIterator<IntoIter = I>, bools: &'static [&'static str]) -> Self {
        Self {
            args: args.into_iter(),
            bools,
        }
    }
}

impl<I: Iterator<Item = String>> Iterator for Flags<I> {
    type Item = Result<Flag>;

    fn next(&mut self) -> Option<Result<Flag>> {
        let arg = self.args.next()?;
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Some(Err(Error::NotAFlag(arg)));
        };
        if let Some((name, value)) = flag.split_once('=') {
            return Some(Ok(Flag {
                name: name.to_owned(),
                value: value.to_owned(),
            }));
        }
        let name = flag.to_owned();
        if self.bools.contains(&flag) {
            return Some(Ok(Flag {
                name,
                value: "true".to_owned(),
            }));
        }
        Some(match self.args.next() {
            Some(value) => Ok(Flag { name, value }),
            None => Err(Error::FlagNeedsValue(name)),
        })
    }
}

impl Flag {
    fn bad(&self, expected: &'static str) -> Error {
        Error::BadFlagValue {
            flag: self.name.clone(),
            value: self.value.clone(),
            expected,
        }
    }

    /// The value as a boolean, spelled as Go's `strconv.ParseBool` accepts.
    pub fn bool(&self) -> Result<bool> {
        match self.value.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            _ => Err(self.bad("true or false")),
        }
    }

    /// The value as an `IP:PORT` address.
    pub fn addr(&self) -> Result<SocketAddr> {
        self.value
            .parse()
            .map_err(|_| self.bad("an IP:PORT address"))
    }

    /// The value as seconds (`2`, `0.5`, `2s`).
    pub fn secs(&self) -> Result<Duration> {
        self.value
            .trim_end_matches('s')
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| self.bad("a number of seconds"))
    }

    /// The value as `key=value`.
    pub fn key_value(&self) -> Result<(String, String)> {
        split_key_value(&self.value).ok_or_else(|| self.bad("key=value"))
    }

    /// The value as comma-separated `key=value` pairs (empty items skipped).
    pub fn key_values(&self) -> Result<Vec<(String, String)>> {
        self.value
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|kv| split_key_value(kv).ok_or_else(|| self.bad("key=value[,key=value]")))
            .collect()
    }
}

fn split_key_value(s: &str) -> Option<(String, String)> {
    let (k, v) = s.split_once('=')?;
    Some((k.to_owned(), v.to_owned()))
}

/// The machine's host name (Serf's default node name), or "hearsay" when it has none.
pub fn default_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "hearsay".to_owned())
}

/// The keyring Serf's `-encrypt` and `-keyring-file` flags describe: the file's keys (Serf's
/// JSON list of base64 keys), with the `-encrypt` key added and made primary, like Serf.
/// `None` when neither is given (plaintext).
pub fn keyring(encrypt: Option<&str>, keyring_file: Option<&str>) -> Result<Option<Keyring>> {
    let from_file = match keyring_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
                path: path.to_owned(),
                source,
            })?;
            Some(Keyring::from_key_file(&text)?)
        }
        None => None,
    };
    let Some(key) = encrypt else {
        return Ok(from_file);
    };
    let primary = Keyring::from_base64_keys(&[key])?;
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

/// Resolves `host[:port]`, defaulting the port to 7946 like Serf.
pub async fn resolve(addr: &str) -> Result<SocketAddr> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    let has_port = addr
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    let with_port = if has_port {
        addr.to_owned()
    } else {
        format!("{addr}:{DEFAULT_PORT}")
    };
    let mut found = tokio::net::lookup_host(with_port.as_str())
        .await
        .map_err(|source| Error::Resolve {
            addr: addr.to_owned(),
            source,
        })?;
    found
        .next()
        .ok_or_else(|| Error::ResolvedToNothing(addr.to_owned()))
}

/// Sets up the node binaries' logs: `tracing` to stderr, colours only on a terminal, the level
/// from `RUST_LOG` (default `info`).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(v: &[&str], bools: &'static [&'static str]) -> Result<Vec<Flag>> {
        Flags::new(v.iter().map(|s| s.to_string()), bools).collect()
    }

    fn pairs(f: &[Flag]) -> Vec<(&str, &str)> {
        f.iter()
            .map(|f| (f.name.as_str(), f.value.as_str()))
            .collect()
    }

    #[test]
    fn both_styles_and_bare_booleans() {
        let f = flags(
            &[
                "-a=1",
                "--b",
                "2",
                "-replay",
                "--c=x=y",
                "-d",
                "-e",
                "--replay=false",
            ],
            &["replay"],
        )
        .unwrap();
        assert_eq!(
            pairs(&f),
            [
                ("a", "1"),
                ("b", "2"),
                ("replay", "true"),
                ("c", "x=y"),
                ("d", "-e"),
                ("replay", "false")
            ]
        );
        assert!(!f[5].bool().unwrap());
        assert!(matches!(flags(&["-name"], &[]), Err(Error::FlagNeedsValue(n)) if n == "name"));
        assert!(matches!(flags(&["stray"], &[]), Err(Error::NotAFlag(_))));
    }

    #[test]
    fn values() {
        let f = |v: &str| Flag {
            name: "x".into(),
            value: v.into(),
        };
        assert_eq!(f("1.5s").secs().unwrap(), Duration::from_millis(1500));
        assert!(f("soon").secs().is_err());
        assert!(f("-1").secs().is_err());
        assert_eq!(f("127.0.0.1:1").addr().unwrap().port(), 1);
        assert!(f("localhost").addr().is_err());
        assert_eq!(f("k=v=w").key_value().unwrap(), ("k".into(), "v=w".into()));
        assert!(f("k").key_value().is_err());
        assert_eq!(f("a=1,,b=2").key_values().unwrap().len(), 2);
        let e = f("yes").bool().unwrap_err().to_string();
        assert!(e.contains("-x") && e.contains("yes"), "{e}");
    }

    #[tokio::test]
    async fn resolves_with_the_default_port() {
        assert_eq!(resolve("127.0.0.1:5").await.unwrap().port(), 5);
        assert_eq!(resolve("localhost").await.unwrap().port(), DEFAULT_PORT);
        assert_eq!(resolve("localhost:9").await.unwrap().port(), 9);
    }
}
