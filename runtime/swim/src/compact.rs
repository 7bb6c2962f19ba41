//! Compact forms of what every member entry stores, so N² entries stay small: an address in
//! 20 bytes instead of `SocketAddr`'s 32, and node metadata that holds up to 7 bytes inline
//! (Serf's encoding of no tags is 2) in 16 bytes instead of a `Vec` and a heap block.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An IPv4 or IPv6 address and a port (what the wire carries; no IPv6 flow or scope id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Addr {
    ip: [u8; 16],
    port: u16,
    v6: bool,
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Self {
        let mut ip = [0u8; 16];
        let v6 = match a.ip() {
            IpAddr::V4(v4) => {
                ip[..4].copy_from_slice(&v4.octets());
                false
            }
            IpAddr::V6(v6) => {
                ip = v6.octets();
                true
            }
        };
        Self {
            ip,
            port: a.port(),
            v6,
        }
    }
}

impl From<Addr> for SocketAddr {
    fn from(a: Addr) -> Self {
        a.socket_addr()
    }
}

impl Addr {
    /// As a `SocketAddr`.
    pub(crate) fn socket_addr(self) -> SocketAddr {
        let ip = if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.ip))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                self.ip[0], self.ip[1], self.ip[2], self.ip[3],
            ))
        };
        SocketAddr::new(ip, self.port)
    }

    /// The address bytes as the wire carries them (4 or 16).
    pub(crate) fn ip_bytes(&self) -> &[u8] {
        if self.v6 {
            &self.ip
        } else {
            &self.ip[..4]
        }
    }

    /// The port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

const INLINE: usize = 7;

/// Immutable bytes: up to 7 inline, longer ones in one boxed slice. 16 bytes either way (the
/// inline form sits beside the box's non-null pointer, which tells the two apart).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Bytes {
    #[doc(hidden)]
    Inline { len: u8, buf: [u8; INLINE] },
    #[doc(hidden)]
    Heap(Box<[u8]>),
}

impl Default for Bytes {
    fn default() -> Self {
        Self::Inline {
            len: 0,
            buf: [0; INLINE],
        }
    }
}

impl From<&[u8]> for Bytes {
    fn from(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            Self::Inline {
                len: b.len() as u8,
                buf,
            }
        } else {
            Self::Heap(b.into())
        }
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(b: Vec<u8>) -> Self {
        if b.len() <= INLINE {
            Self::from(b.as_slice())
        } else {
            Self::Heap(b.into_boxed_slice())
        }
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Inline { len, buf } => &buf[..*len as usize],
            Self::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Bytes {
    /// Heap bytes held (0 when inline).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Self::Inline { .. } => 0,
            Self::Heap(b) => b.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_round_trips_v4_and_v6() {
        for s in [
            "10.1.2.3:7946",
            "[2001:db8::1]:8301",
            "[::ffff:1.2.3.4]:1",
            "0.0.0.0:0",
        ] {
            let sa: SocketAddr = s.parse().unwrap();
            let a = Addr::from(sa);
            assert_eq!(a.socket_addr(), sa, "{s}");
            assert_eq!(a.port(), sa.port());
            let want = match sa.ip() {
                IpAddr::V4(v) => v.octets().to_vec(),
                IpAddr::V6(v) => v.octets().to_vec(),
            };
            assert_eq!(a.ip_bytes(), want.as_slice());
        }
        assert!(std::mem::size_of::<Addr>() <= 20);
    }

    #[test]
    fn bytes_inline_and_heap() {
        assert_eq!(std::mem::size_of::<Bytes>(), 16);
        for len in [0usize, 1, 2, 7, 8, 300] {
            let v: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let b = Bytes::from(v.clone());
            assert_eq!(&*b, v.as_slice());
            assert_eq!(Bytes::from(v.as_slice()), b);
            assert_eq!(b.heap_bytes(), if len <= 7 { 0 } else { len });
        }
        assert_eq!(&*Bytes::default(), b"");
        assert_ne!(Bytes::from(&b"ab"[..]), Bytes::from(&b"abc"[..]));
    }
}
