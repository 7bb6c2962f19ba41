//! [`QuicAdvert`]: where a node's QUIC endpoint listens and which certificate it presents, in
//! the compact form carried in the `_hearsay_quic` Serf tag: `<fingerprint>@<addr>`, e.g.
//! `Jx3k…43 chars…@10.0.0.5:7947` (at most 43 + 1 + 47 bytes, well under Serf's tag budget).

use super::{Fingerprint, QuicError};
use std::fmt;
use std::net::SocketAddr;

/// The Serf tag that carries a node's advert.
pub const QUIC_TAG: &str = "_hearsay_quic";

/// How to reach a node's QUIC endpoint and which certificate to expect there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QuicAdvert {
    /// The endpoint's UDP address as peers should dial it.
    pub addr: SocketAddr,
    /// The fingerprint of the certificate the endpoint presents.
    pub fingerprint: Fingerprint,
}

impl QuicAdvert {
    /// The tag value: `<fingerprint>@<addr>`.
    pub fn to_tag_value(&self) -> String {
        format!("{}@{}", self.fingerprint, self.addr)
    }

    /// Parses a tag value, saying which part is wrong.
    pub fn parse(value: &str) -> Result<Self, QuicError> {
        let bad = |why: String| QuicError::BadAdvert {
            value: value.chars().take(120).collect(),
            why,
        };
        let (fp, addr) = value
            .split_once('@')
            .ok_or_else(|| bad("expected <fingerprint>@<ip:port>".into()))?;
        let fingerprint = fp
            .parse::<Fingerprint>()
            .map_err(|e| bad(format!("fingerprint: {e}")))?;
        let addr = addr
            .parse::<SocketAddr>()
            .map_err(|e| bad(format!("address {addr:?}: {e}")))?;
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(bad(format!("address {addr} cannot be dialled")));
        }
        Ok(Self { addr, fingerprint })
    }
}

impl fmt::Display for QuicAdvert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_tag_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_v4_and_v6_and_stays_short() {
        for addr in ["10.0.0.5:7947", "[fe80::1234:5678:9abc:def0]:65535"] {
            let a = QuicAdvert {
                addr: addr.parse().unwrap(),
                fingerprint: Fingerprint::of(addr.as_bytes()),
            };
            let v = a.to_tag_value();
            assert!(v.len() < 100, "{v}");
            assert_eq!(QuicAdvert::parse(&v).unwrap(), a);
        }
    }

    #[test]
    fn parse_errors_name_the_part() {
        let fp = Fingerprint::of(b"x").to_string();
        let cases = [
            ("nothing".to_owned(), "expected <fingerprint>@"),
            ("abc@127.0.0.1:1".to_owned(), "fingerprint"),
            (format!("{fp}@localhost:1"), "address \"localhost:1\""),
            (format!("{fp}@0.0.0.0:7947"), "cannot be dialled"),
            (format!("{fp}@127.0.0.1:0"), "cannot be dialled"),
        ];
        for (value, want) in cases {
            let e = QuicAdvert::parse(&value).unwrap_err().to_string();
            assert!(e.contains(want), "{value}: {e}");
        }
    }
}
