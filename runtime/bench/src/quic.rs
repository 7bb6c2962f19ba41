//! Large query responses over QUIC on loopback: N responders each stream one large response to
//! one originator at once through hearsay-net's QUIC module (pinned certificates, response
//! header, limits), beside one bare quinn stream with the same TLS and flow-control settings
//! (the transport's ceiling on this machine). serf has no equivalent: its responses are capped
//! at 1 KiB, one UDP packet.
//!
//! The bare stream is measured here rather than with `throughput::quinn_single_stream`: that
//! helper opens a unidirectional stream, which the module's transport settings (responses are
//! bidirectional streams; `max_concurrent_uni_streams` 0) never grant, so it waits until the
//! idle timeout. This one opens a bidirectional stream under the same settings.

use anyhow::{Context, Result};
use hearsay_net::quic::{throughput, tls, Identity, QuicConfig, Security};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

const CHUNK: usize = 64 << 10;

/// The transport settings `QuicEndpoint` builds from a default [`QuicConfig`].
fn transport(cfg: &QuicConfig) -> Result<Arc<quinn::TransportConfig>> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(quinn::IdleTimeout::try_from(cfg.idle_timeout)?))
        .stream_receive_window(quinn::VarInt::from_u32(cfg.stream_window))
        .receive_window(quinn::VarInt::from_u32(
            cfg.stream_window.saturating_mul(8).max(cfg.stream_window),
        ))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(cfg.max_streams_per_peer))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    Ok(Arc::new(t))
}

/// One bidirectional quinn stream of `bytes` between two endpoints on loopback (pinned
/// certificates, the module's TLS and transport settings, none of its header or limits):
/// MiB/s from the first byte written to the last byte read.
async fn quinn_single_stream(bytes: u64) -> Result<f64> {
    let lo = SocketAddr::from(([127, 0, 0, 1], 0));
    let server_id = Identity::generate("server")?;
    let client_id = Identity::generate("client")?;
    let t = transport(&QuicConfig::new(lo, Security::Pinned(server_id.clone())))?;
    let server =
        quinn::Endpoint::server(tls::server_config(&server_id, None, None, t.clone())?, lo)?;
    let server_addr = server.local_addr()?;
    let client = quinn::Endpoint::client(lo)?;
    let client_cfg = tls::client_config(Some(&client_id), server_id.fingerprint(), None, t)?;
    let reader = tokio::spawn(async move {
        let conn = server.accept().await.context("no connection")?.await?;
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
    anyhow::ensure!(
        total == bytes,
        "bare stream delivered {total} of {bytes} bytes"
    );
    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    Ok(total as f64 / (1024.0 * 1024.0) / (end - start).as_secs_f64().max(1e-9))
}

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct QuicPlan {
    pub reps: usize,
    /// Bytes of the bare quinn stream.
    pub single_bytes: u64,
    /// Concurrent responders and the bytes each sends.
    pub responders: usize,
    pub bytes_each: u64,
}

/// MiB/s per repetition: (quinn single stream, N concurrent responses).
#[derive(Debug, Default)]
pub struct QuicSamples {
    pub quinn: Vec<f64>,
    pub concurrent: Vec<f64>,
    /// Seconds until every concurrent response was read whole.
    pub concurrent_secs: Vec<f64>,
}

pub fn run(plan: QuicPlan) -> Result<QuicSamples> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut out = QuicSamples::default();
    rt.block_on(async {
        for _ in 0..plan.reps {
            out.quinn
                .push(quinn_single_stream(plan.single_bytes).await?);
            let c = throughput::concurrent_responses(plan.responders, plan.bytes_each).await?;
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
