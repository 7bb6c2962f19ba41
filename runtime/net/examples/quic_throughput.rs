//! Prints loopback QUIC throughput: one bare quinn stream, then N concurrent large responses
//! through `hearsay_net::quic`. Usage: `cargo run --release -p hearsay-net --example
//! quic_throughput [MiB per stream] [responders]`.

use hearsay_net::quic::throughput;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(4);
    let single = throughput::quinn_single_stream(mib << 20).await?;
    println!(
        "quinn single stream: {} MiB in {:?} = {:.1} MiB/s",
        single.bytes >> 20,
        single.elapsed,
        single.mib_per_sec()
    );
    let many = throughput::concurrent_responses(n, mib << 20).await?;
    println!(
        "{} concurrent responses: {} MiB in {:?} = {:.1} MiB/s aggregate",
        many.streams,
        many.bytes >> 20,
        many.elapsed,
        many.mib_per_sec()
    );
    Ok(())
}
