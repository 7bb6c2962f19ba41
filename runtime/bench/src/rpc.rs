//! A minimal client of Serf's RPC protocol (msgpack over TCP: `handshake`, then `event`), so the
//! handler benchmarks can feed a serf agent a burst of user events without forking the `serf`
//! CLI for each one (which would measure the CLI, not the handler). Requests may be pipelined;
//! responses are read in order.

use anyhow::{bail, Context, Result};
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// msgpack as Serf's go-msgpack (the old spec) reads it: fixmap, raw strings, uints, bools.
mod mp {
    pub(super) fn map(out: &mut Vec<u8>, len: u8) {
        debug_assert!(len < 16);
        out.push(0x80 | len);
    }

    pub(super) fn raw(out: &mut Vec<u8>, b: &[u8]) {
        if b.len() < 32 {
            out.push(0xa0 | b.len() as u8);
        } else if let Ok(n) = u16::try_from(b.len()) {
            out.push(0xda);
            out.extend_from_slice(&n.to_be_bytes());
        } else {
            out.push(0xdb);
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        }
        out.extend_from_slice(b);
    }

    pub(super) fn uint(out: &mut Vec<u8>, v: u64) {
        if v < 128 {
            out.push(v as u8);
        } else {
            out.push(0xcf);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }

    pub(super) fn boolean(out: &mut Vec<u8>, v: bool) {
        out.push(if v { 0xc3 } else { 0xc2 });
    }
}

/// A value of a response header.
#[derive(Debug, PartialEq)]
enum Value {
    Uint(u64),
    Str(String),
    Nil,
}

/// A connected, handshaken RPC client.
pub(crate) struct RpcClient {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    seq: u64,
    /// Requests written whose responses were not read yet.
    pending: usize,
}

impl RpcClient {
    /// Connects to `127.0.0.1:port` and performs the handshake (version 1).
    pub(crate) fn connect(port: u16) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("connecting to serf RPC on port {port}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut c = Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            seq: 0,
            pending: 0,
        };
        let mut body = Vec::new();
        mp::map(&mut body, 1);
        mp::raw(&mut body, b"Version");
        mp::uint(&mut body, 1);
        c.send("handshake", &body)?;
        c.wait_all()?;
        Ok(c)
    }

    fn send(&mut self, command: &str, body: &[u8]) -> Result<()> {
        let mut buf = Vec::with_capacity(64 + body.len());
        mp::map(&mut buf, 2);
        mp::raw(&mut buf, b"Command");
        mp::raw(&mut buf, command.as_bytes());
        mp::raw(&mut buf, b"Seq");
        mp::uint(&mut buf, self.seq);
        buf.extend_from_slice(body);
        self.writer.write_all(&buf)?;
        self.seq += 1;
        self.pending += 1;
        Ok(())
    }

    /// Writes a user event request (no coalescing) without waiting for its response.
    pub(crate) fn event(&mut self, name: &str, payload: &[u8]) -> Result<()> {
        let mut body = Vec::new();
        mp::map(&mut body, 3);
        mp::raw(&mut body, b"Name");
        mp::raw(&mut body, name.as_bytes());
        mp::raw(&mut body, b"Payload");
        mp::raw(&mut body, payload);
        mp::raw(&mut body, b"Coalesce");
        mp::boolean(&mut body, false);
        self.send("event", &body)
    }

    /// Reads every outstanding response; fails on the first one carrying an error.
    pub(crate) fn wait_all(&mut self) -> Result<()> {
        while self.pending > 0 {
            let header = read_map(&mut self.reader)?;
            self.pending -= 1;
            if let Some((_, Value::Str(e))) = header.iter().find(|(k, _)| k == "Error") {
                if !e.is_empty() {
                    bail!("serf RPC error: {e}");
                }
            }
        }
        Ok(())
    }
}

fn byte(r: &mut impl Read) -> Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

fn be(r: &mut impl Read, n: usize) -> Result<u64> {
    let mut v = 0u64;
    for _ in 0..n {
        v = (v << 8) | u64::from(byte(r)?);
    }
    Ok(v)
}

fn read_str(r: &mut impl Read, len: usize) -> Result<String> {
    let mut b = vec![0u8; len];
    r.read_exact(&mut b)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

fn read_value(r: &mut impl Read) -> Result<Value> {
    let t = byte(r)?;
    Ok(match t {
        0x00..=0x7f => Value::Uint(u64::from(t)),
        0xcc => Value::Uint(be(r, 1)?),
        0xcd => Value::Uint(be(r, 2)?),
        0xce => Value::Uint(be(r, 4)?),
        0xcf => Value::Uint(be(r, 8)?),
        0xa0..=0xbf => Value::Str(read_str(r, usize::from(t & 0x1f))?),
        0xd9 | 0xc4 => {
            let n = be(r, 1)? as usize;
            Value::Str(read_str(r, n)?)
        }
        0xda | 0xc5 => {
            let n = be(r, 2)? as usize;
            Value::Str(read_str(r, n)?)
        }
        0xdb | 0xc6 => {
            let n = be(r, 4)? as usize;
            Value::Str(read_str(r, n)?)
        }
        0xc0 => Value::Nil,
        other => bail!("unexpected msgpack type 0x{other:02x} in an RPC response header"),
    })
}

/// A response header: a map of string keys to uints or strings.
fn read_map(r: &mut impl Read) -> Result<Vec<(String, Value)>> {
    let t = byte(r)?;
    let len = match t {
        0x80..=0x8f => usize::from(t & 0x0f),
        0xde => be(r, 2)? as usize,
        other => bail!("RPC response is not a map (type 0x{other:02x})"),
    };
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        let Value::Str(k) = read_value(r)? else {
            bail!("RPC response header has a non-string key");
        };
        out.push((k, read_value(r)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_reads_headers() {
        let mut b = Vec::new();
        mp::map(&mut b, 2);
        mp::raw(&mut b, b"Seq");
        mp::uint(&mut b, 300);
        mp::raw(&mut b, b"Error");
        mp::raw(&mut b, &[b'x'; 40]);
        let m = read_map(&mut &b[..]).unwrap();
        assert_eq!(m[0], ("Seq".into(), Value::Uint(300)));
        assert_eq!(m[1], ("Error".into(), Value::Str("x".repeat(40))));
        assert!(read_map(&mut &[0xc3u8][..]).is_err());
        assert!(read_map(&mut &[0x81u8, 0xa1][..]).is_err());
    }
}
