//! Loopback throughput figures for `runtime/bench`: a bare quinn stream (the transport's
//! ceiling, same TLS and flow-control settings as [`QuicEndpoint`]) and N concurrent large
//! responses through this module's API. Measures only; asserts nothing.

use super::{
    tls, Identity, QuicAdvert, QuicConfig, QuicEndpoint, QuicError, ResponseHeader, Security,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One measurement.
#[derive(Clone, Copy, Debug)]
pub struct Figures {
    /// How many streams ran at once.
    pub streams: usize,
    /// Body bytes delivered, all streams together.
    pub bytes: u64,
    /// From the first byte written to the last byte read.
    pub elapsed: Duration,
}

impl Figures {
    /// Delivered MiB per second.
    pub fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64().max(1e-9)
    }
}

const CHUNK: usize = 64 << 10;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn io_err(e: impl std::fmt::Display) -> QuicError {
    QuicError::Send {
        addr: loopback(),
        reason: e.to_string(),
    }
}

/// One quinn stream of `bytes` bytes between two endpoints on loopback, without this
/// module's header, limits or connection cache.
pub async fn quinn_single_stream(bytes: u64) -> Result<Figures, QuicError> {
    let server_id = Identity::generate("server")?;
    let client_id = Identity::generate("client")?;
    let transport = QuicConfig::new(loopback(), Security::Pinned(server_id.clone())).transport()?;
    let server_cfg = tls::server_config(&server_id, None, None, transport.clone())?;
    let server =
        quinn::Endpoint::server(server_cfg, loopback()).map_err(|source| QuicError::Bind {
            addr: loopback(),
            source,
        })?;
    let server_addr = server.local_addr().map_err(io_err)?;
    let client = quinn::Endpoint::client(loopback()).map_err(|source| QuicError::Bind {
        addr: loopback(),
        source,
    })?;
    let client_cfg =
        tls::client_config(Some(&client_id), server_id.fingerprint(), None, transport)?;
    let reader = tokio::spawn(async move {
        let conn = server
            .accept()
            .await
            .ok_or_else(|| io_err("no connection"))?;
        let conn = conn.await.map_err(io_err)?;
        // Bidirectional like the response streams (the transport allows no uni streams).
        let (_send, mut recv) = conn.accept_bi().await.map_err(io_err)?;
        let mut total = 0u64;
        while let Some(chunk) = recv.read_chunk(CHUNK, true).await.map_err(io_err)? {
            total += chunk.bytes.len() as u64;
        }
        Ok::<_, QuicError>((total, Instant::now()))
    });
    let conn = client
        .connect_with(client_cfg, server_addr, tls::SERVER_NAME)
        .map_err(io_err)?
        .await
        .map_err(io_err)?;
    let block = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let (mut send, _recv) = conn.open_bi().await.map_err(io_err)?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        send.write_all(&block[..n]).await.map_err(io_err)?;
        left -= n as u64;
    }
    send.finish().map_err(io_err)?;
    let (total, end) = reader.await.map_err(io_err)??;
    Ok(Figures {
        streams: 1,
        bytes: total,
        elapsed: end - start,
    })
}

/// `responders` endpoints each stream a `bytes_each` response to one originator at once,
/// through [`QuicEndpoint::open_response`] and [`super::BodyReader`].
pub async fn concurrent_responses(
    responders: usize,
    bytes_each: u64,
) -> Result<Figures, QuicError> {
    let mut cfg = QuicConfig::new(loopback(), Security::pinned("originator")?);
    cfg.limits.max_response = bytes_each.max(1);
    cfg.limits.max_query_total = bytes_each.saturating_mul(responders as u64).max(1);
    let (origin, mut incoming) = QuicEndpoint::bind(cfg)?;
    let target: QuicAdvert = origin.advert();
    let mut nodes = Vec::new();
    for i in 0..responders {
        let name = format!("responder-{i}");
        let cfg = QuicConfig::new(loopback(), Security::pinned(&name)?);
        nodes.push((name, QuicEndpoint::bind(cfg)?.0));
    }
    let start = Instant::now();
    let mut senders = Vec::new();
    for (name, node) in nodes {
        senders.push(tokio::spawn(async move {
            let header = ResponseHeader {
                ltime: 1,
                query_id: 1,
                from: name,
                total_len: Some(bytes_each),
                relay: None,
            };
            let mut w = node.open_response(&target, &header).await?;
            let block = vec![0xa5u8; CHUNK];
            let mut left = bytes_each;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                w.write(&block[..n]).await?;
                left -= n as u64;
            }
            w.finish().await
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..responders {
        let mut resp = incoming
            .next()
            .await
            .ok_or_else(|| io_err("endpoint closed"))?;
        readers.push(tokio::spawn(async move {
            let mut total = 0u64;
            while let Some(chunk) = resp.body.chunk().await? {
                total += chunk.len() as u64;
            }
            Ok::<_, QuicError>(total)
        }));
    }
    let mut total = 0;
    for r in readers {
        total += r.await.map_err(io_err)??;
    }
    let elapsed = start.elapsed();
    for s in senders {
        s.await.map_err(io_err)??;
    }
    Ok(Figures {
        streams: responders,
        bytes: total,
        elapsed,
    })
}
