//! Helpers shared by the QUIC scenario tests: endpoints on loopback, a deterministic body
//! pattern that is generated and checked while streaming, and bounded waits.
#![allow(dead_code)]

use hearsay_net::quic::{
    IncomingResponse, IncomingResponses, QuicAdvert, QuicConfig, QuicEndpoint, QuicError,
    ResponseHeader, Security,
};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::Duration;

/// Every wait in these tests gives up after this long.
pub const WAIT: Duration = Duration::from_secs(60);

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub fn config(name: &str) -> QuicConfig {
    QuicConfig::new(loopback(), Security::pinned(name).unwrap())
}

pub fn bind(name: &str) -> (QuicEndpoint, IncomingResponses) {
    QuicEndpoint::bind(config(name)).unwrap()
}

/// The byte at `offset` of responder `seed`'s body: differs per responder and per position,
/// so a reordered, duplicated or foreign chunk is caught.
pub fn pattern(seed: u8, offset: u64) -> u8 {
    (offset.wrapping_mul(31).wrapping_add(offset >> 13) as u8) ^ seed.wrapping_mul(97)
}

/// Writes `len` pattern bytes in `chunk`-sized writes (never the whole body at once),
/// returning the body's sha256.
pub async fn send_pattern(
    node: &QuicEndpoint,
    to: &QuicAdvert,
    header: ResponseHeader,
    seed: u8,
    len: u64,
    chunk: usize,
) -> Result<[u8; 32], QuicError> {
    let mut w = node.open_response(to, &header).await?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; chunk];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(chunk as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(seed, off + i as u64);
        }
        sha.update(&buf[..n]);
        w.write(&buf[..n]).await?;
        off += n as u64;
    }
    w.finish().await?;
    Ok(sha.finalize().into())
}

/// What reading one body showed.
#[derive(Debug)]
pub struct Received {
    pub bytes: u64,
    pub chunks: u64,
    pub largest_chunk: usize,
    pub sha256: [u8; 32],
    pub pattern_ok: bool,
}

/// Reads a body chunk by chunk, checking the pattern and hashing as it goes.
pub async fn read_pattern(resp: &mut IncomingResponse, seed: u8) -> Result<Received, QuicError> {
    let mut sha = Sha256::new();
    let mut r = Received {
        bytes: 0,
        chunks: 0,
        largest_chunk: 0,
        sha256: [0; 32],
        pattern_ok: true,
    };
    while let Some(chunk) = resp.body.chunk().await? {
        for (i, b) in chunk.iter().enumerate() {
            if *b != pattern(seed, r.bytes + i as u64) {
                r.pattern_ok = false;
            }
        }
        sha.update(&chunk);
        r.bytes += chunk.len() as u64;
        r.chunks += 1;
        r.largest_chunk = r.largest_chunk.max(chunk.len());
    }
    r.sha256 = sha.finalize().into();
    Ok(r)
}

/// The next incoming response, failing the test if none arrives within [`WAIT`].
pub async fn next(incoming: &mut IncomingResponses) -> IncomingResponse {
    tokio::time::timeout(WAIT, incoming.next())
        .await
        .expect("no response arrived in time")
        .expect("endpoint closed")
}

/// Whether any response arrives within `d` (used to show that nothing does).
pub async fn arrives_within(incoming: &mut IncomingResponses, d: Duration) -> bool {
    tokio::time::timeout(d, incoming.next()).await.is_ok()
}

pub fn header(from: &str, query_id: u32, total_len: Option<u64>) -> ResponseHeader {
    ResponseHeader {
        ltime: 7,
        query_id,
        from: from.to_owned(),
        total_len,
        relay: None,
    }
}

/// The seed a responder named `r<N>` uses.
pub fn seed_of(name: &str) -> u8 {
    name.trim_start_matches('r').parse().unwrap_or(0)
}
