//! Serf's `host[:port]` addresses (`-bind`, `-advertise`, `-rpc-addr`, `-join`, the RPC
//! `join` command): an `IP:PORT`, a bare IP (`10.0.0.1`, `::1`, `[::1]`) or a host name, each
//! with an optional port that defaults to the setting's own (Serf's `AddrParts`), a host name
//! resolved to its first address.
//!
//! One parser, two ways to look a host name up: [`resolve`] blocks (config time), and
//! [`resolve_async`] runs on tokio (joins while the agent runs).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use thiserror::Error;

/// Why an address does not give a socket address; each variant names the address as given.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AddrError {
    /// The part after the last `:` is a number, but not a port (`host:99999`).
    #[error("invalid port {port:?} in {addr:?}")]
    BadPort {
        /// The address as given.
        addr: String,
        /// The part after the last `:`.
        port: String,
    },
    /// The host name could not be looked up.
    #[error("cannot resolve {addr:?}: {source}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The host name resolved to no address.
    #[error("{0:?} resolved to no address")]
    NoAddress(String),
}

/// What an address needs: nothing more, or a lookup of `host:port`.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Literal(SocketAddr),
    Lookup(String),
}

/// Parses `s`, giving it `default_port` when it has none.
fn target(s: &str, default_port: u16) -> Result<Target, AddrError> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(Target::Literal(a));
    }
    if let Ok(ip) = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(Target::Literal(SocketAddr::new(ip, default_port)));
    }
    let port = s.rsplit_once(':').map(|(_, port)| port);
    if let Some(port) = port {
        if !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_err()
        {
            return Err(AddrError::BadPort {
                addr: s.to_owned(),
                port: port.to_owned(),
            });
        }
    }
    Ok(Target::Lookup(
        if port.is_some_and(|p| p.parse::<u16>().is_ok()) {
            s.to_owned()
        } else {
            format!("{s}:{default_port}")
        },
    ))
}

fn first(
    s: &str,
    found: std::io::Result<impl Iterator<Item = SocketAddr>>,
) -> Result<SocketAddr, AddrError> {
    found
        .map_err(|source| AddrError::Resolve {
            addr: s.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| AddrError::NoAddress(s.to_owned()))
}

/// `host[:port]` to one address, the port defaulting to `default_port`; a host name is
/// looked up with the system's resolver, blocking.
pub fn resolve(s: &str, default_port: u16) -> Result<SocketAddr, AddrError> {
    match target(s, default_port)? {
        Target::Literal(a) => Ok(a),
        Target::Lookup(host_port) => first(s, host_port.to_socket_addrs()),
    }
}

/// [`resolve`] without blocking the async runtime.
pub async fn resolve_async(s: &str, default_port: u16) -> Result<SocketAddr, AddrError> {
    match target(s, default_port)? {
        Target::Literal(a) => Ok(a),
        Target::Lookup(host_port) => first(s, tokio::net::lookup_host(host_port).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn literal_addresses_with_and_without_a_port() {
        let r = |s| resolve(s, 7946).unwrap();
        assert_eq!(r("127.0.0.1:5"), addr("127.0.0.1:5"));
        assert_eq!(r("127.0.0.1"), addr("127.0.0.1:7946"));
        assert_eq!(r("[::1]:7946"), addr("[::1]:7946"));
        assert_eq!(r("[::1]:5"), addr("[::1]:5"));
        assert_eq!(r("[::1]"), addr("[::1]:7946"));
        assert_eq!(r("::1"), addr("[::1]:7946"));
        assert_eq!(r("0.0.0.0"), addr("0.0.0.0:7946"));
        assert_eq!(resolve("10.0.0.1", 7373).unwrap(), addr("10.0.0.1:7373"));
    }

    #[test]
    fn host_names_are_looked_up_with_the_default_port() {
        let port = |s| resolve(s, 7946).unwrap().port();
        assert_eq!(port("localhost"), 7946);
        assert_eq!(port("localhost:9"), 9);
        assert!(resolve("localhost", 7946).unwrap().ip().is_loopback());
    }

    #[test]
    fn a_number_that_is_not_a_port_is_refused() {
        let e = resolve("localhost:99999", 7946).unwrap_err();
        assert!(matches!(&e, AddrError::BadPort { port, .. } if port == "99999"));
        assert_eq!(
            e.to_string(),
            "invalid port \"99999\" in \"localhost:99999\""
        );
        assert!(matches!(
            resolve("127.0.0.1:70000", 1),
            Err(AddrError::BadPort { .. })
        ));
    }

    #[test]
    fn targets_before_any_lookup() {
        assert_eq!(
            target("h", 1).unwrap(),
            Target::Lookup("h:1".into()),
            "a missing port gets the default"
        );
        assert_eq!(target("h:2", 1).unwrap(), Target::Lookup("h:2".into()));
    }

    #[tokio::test]
    async fn the_async_lookup_agrees() {
        for s in [
            "127.0.0.1:5",
            "::1",
            "[::1]:7946",
            "localhost",
            "localhost:9",
        ] {
            assert_eq!(
                resolve_async(s, 7946).await.unwrap().port(),
                resolve(s, 7946).unwrap().port(),
                "{s}"
            );
        }
        assert!(resolve_async("h:99999", 7946).await.is_err());
    }
}
