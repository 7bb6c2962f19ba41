//! Large query responses over QUIC on loopback: N responders each stream one large response to
//! one originator at once through hearsay-net's QUIC module (pinned certificates, response
//! header, limits), beside one bare quinn stream with the same TLS and flow-control settings
//! (the transport's ceiling on this machine). serf has no equivalent: its responses are capped
//! at 1 KiB, one UDP packet.
//!
//! Both come from `hearsay_net::quic::throughput`.

use anyhow::Result;
use hearsay_net::quic::throughput;

/// One bare quinn stream of `bytes` (the module's TLS and transport settings, none of its
/// header or limits): MiB/s from the first byte written to the last byte read.
async fn quinn_single_stream(bytes: u64) -> Result<f64> {
    Ok(throughput::quinn_single_stream(bytes).await?.mib_per_sec())
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
