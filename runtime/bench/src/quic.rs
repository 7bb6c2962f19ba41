//! Large query responses over QUIC on loopback: N responders each stream one large response to
//! one originator at once through hearsay-net's QUIC module (pinned certificates, response
//! header, limits), beside one bare quinn stream with the same TLS and flow-control settings
//! (the transport's ceiling on this machine). serf has no equivalent: its responses are capped
//! at 1 KiB, one UDP packet.
//!
//! Measures only; asserts nothing about speed.

use anyhow::{Context, Result};
use hearsay_net::quic::{
    tls, Identity, QuicAdvert, QuicConfig, QuicEndpoint, ResponseHeader, Security,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One measurement.
#[derive(Clone, Copy, Debug)]
struct Figures {
    /// Body bytes delivered, all streams together.
    bytes: u64,
    /// From the first byte written to the last byte read.
    elapsed: Duration,
}

impl Figures {
    /// Delivered MiB per second.
    fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64().max(1e-9)
    }
}

const CHUNK: usize = 64 << 10;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// One quinn stream of `bytes` bytes between two endpoints on loopback, with the QUIC module's
/// TLS ([`tls::server_config`], [`tls::client_config`]) and transport settings
/// ([`QuicConfig::transport`]), without its header, limits or connection cache.
async fn quinn_single_stream(bytes: u64) -> Result<Figures> {
    let server_id = Identity::generate("server")?;
    let client_id = Identity::generate("client")?;
    let transport = QuicConfig::new(loopback(), Security::Pinned(server_id.clone())).transport()?;
    let server_cfg = tls::server_config(&server_id, None, None, transport.clone())?;
    let server = quinn::Endpoint::server(server_cfg, loopback()).context("bind the server")?;
    let server_addr = server.local_addr()?;
    let client = quinn::Endpoint::client(loopback()).context("bind the client")?;
    let client_cfg =
        tls::client_config(Some(&client_id), server_id.fingerprint(), None, transport)?;
    let reader = tokio::spawn(async move {
        let conn = server.accept().await.context("no connection")?;
        let conn = conn.await?;
        // Bidirectional like the response streams (the transport allows no uni streams).
        let (_send, mut recv) = conn.accept_bi().await?;
        let mut total = 0u64;
        while let Some(chunk) = recv.read_chunk(CHUNK, true).await? {
            total += chunk.bytes.len() as u64;
        }
        anyhow::Ok((total, Instant::now()))
    });
    let conn = client
        .connect_with(client_cfg, server_addr, tls::SERVER_NAME)?
        .await?;
    let block = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let (mut send, _recv) = conn.open_bi().await?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        send.write_all(&block[..n]).await?;
        left -= n as u64;
    }
    send.finish()?;
    let (total, end) = reader.await??;
    Ok(Figures {
        bytes: total,
        elapsed: end - start,
    })
}

/// `responders` endpoints each stream a `bytes_each` response to one originator at once,
/// through [`QuicEndpoint::open_response`] and [`hearsay_net::quic::BodyReader`].
async fn concurrent_responses(responders: usize, bytes_each: u64) -> Result<Figures> {
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
        let mut resp = incoming.next().await.context("endpoint closed")?;
        readers.push(tokio::spawn(async move {
            let mut total = 0u64;
            while let Some(chunk) = resp.body.chunk().await? {
                total += chunk.len() as u64;
            }
            anyhow::Ok(total)
        }));
    }
    let mut total = 0;
    for r in readers {
        total += r.await??;
    }
    let elapsed = start.elapsed();
    for s in senders {
        s.await??;
    }
    Ok(Figures {
        bytes: total,
        elapsed,
    })
}

/// What to send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuicPlan {
    pub reps: usize,
    /// Bytes of the bare quinn stream.
    pub single_bytes: u64,
    /// Concurrent responders and the bytes each sends.
    pub responders: usize,
    pub bytes_each: u64,
}

/// MiB/s per repetition: (quinn single stream, N concurrent responses).
#[derive(Debug, Default)]
pub(crate) struct QuicSamples {
    pub quinn: Vec<f64>,
    pub concurrent: Vec<f64>,
    /// Seconds until every concurrent response was read whole.
    pub concurrent_secs: Vec<f64>,
}

pub(crate) fn run(plan: QuicPlan) -> Result<QuicSamples> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut out = QuicSamples::default();
    rt.block_on(async {
        for _ in 0..plan.reps {
            out.quinn
                .push(quinn_single_stream(plan.single_bytes).await?.mib_per_sec());
            let c = concurrent_responses(plan.responders, plan.bytes_each).await?;
            anyhow::ensure!(
                c.bytes == plan.bytes_each * plan.responders as u64,
                "concurrent responses delivered {} of {} bytes",
                c.bytes,
                plan.bytes_each * plan.responders as u64
            );
            out.concurrent.push(c.mib_per_sec());
            out.concurrent_secs.push(c.elapsed.as_secs_f64());
        }
        anyhow::Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both measurements run end to end and deliver every byte (their speed is measured by the
    /// bench, never asserted here).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn measurements_deliver_every_byte() {
        let single = quinn_single_stream(4 << 20).await.unwrap();
        assert_eq!(single.bytes, 4 << 20);
        let many = concurrent_responses(3, 2 << 20).await.unwrap();
        assert_eq!(many.bytes, 6 << 20);
        assert!(many.mib_per_sec() > 0.0);
    }
}
