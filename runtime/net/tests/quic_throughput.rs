//! The throughput helpers for `runtime/bench` run end to end and deliver every byte (their
//! speed is measured in the bench, never asserted here).

use hearsay_net::quic::throughput;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_helpers_deliver_every_byte() {
    let single = throughput::quinn_single_stream(4 << 20).await.unwrap();
    assert_eq!((single.streams, single.bytes), (1, 4 << 20));
    let many = throughput::concurrent_responses(3, 2 << 20).await.unwrap();
    assert_eq!((many.streams, many.bytes), (3, 6 << 20));
    assert!(many.mib_per_sec() > 0.0);
}
