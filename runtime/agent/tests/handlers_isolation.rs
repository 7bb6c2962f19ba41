//! A stalled asker against a handler's deadline, over real QUIC on loopback: the originator asks
//! for a 256 MiB reply and never reads it, so the responder's handler waits on QUIC flow control
//! inside its reply writes. The handler's 2 s deadline, not the query's 90 s one, ends its event
//! (`timeout`, nothing left running), and its next event is answered. Every wait is bounded and
//! far below the query's deadline; nothing asserts speed.

mod common;
use common::wait_quic_members;
use hearsay_agent::filter::EventFilter;
use hearsay_agent::handlers::{HandlerConfig, Handlers};
use hearsay_agent::{Node, NodeOptions, QueryResult, QuicOptions};
use hearsay_host::HostConfig;
use hearsay_net::{Config, Profile, UdpTcpTransport};
use hearsay_serf::{QueryParams, SerfConfig};
use hearsay_testkit::wasm::guests;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

async fn start_agent(name: &str) -> Node {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let transport = UdpTcpTransport::bind(loopback).await.unwrap();
    let addr = hearsay_net::Transport::local_addr(&transport);
    let config = SerfConfig::new(Config::profile(Profile::Local, name.to_owned(), addr));
    let q = QuicOptions::pinned(loopback, name).unwrap();
    hearsay_agent::replies::start_with_quic(NodeOptions::new(config), transport, q).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_asker_does_not_hold_a_handler_past_its_deadline() {
    common::init_logs();
    let wasm = guests(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let asker = start_agent("asker").await;
    let responder = start_agent("responder").await;
    responder.join(&[asker.local_addr()], true).await.unwrap();
    wait_quic_members(&asker, &["asker", "responder"]).await;
    wait_quic_members(&responder, &["asker", "responder"]).await;

    let mut blob = HandlerConfig::new(EventFilter::parse("query:blob").unwrap(), &wasm.blob);
    blob.name = "blob".into();
    blob.limits.timeout = Duration::from_secs(2);
    let host = HostConfig {
        cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("handlers-isolation-cache")),
        ..HostConfig::default()
    };
    let handlers = Handlers::start(responder.clone(), host, vec![blob])
        .await
        .unwrap();

    // The asker's results are never read: its QUIC receive window fills and stays full.
    let params = QueryParams {
        timeout: Duration::from_secs(90),
        ..QueryParams::default()
    };
    let unread = asker
        .query("blob", (256u64 << 20).to_string().as_bytes(), params)
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + WAIT;
    let stats = loop {
        let stats = handlers.list()[0].stats.clone();
        if stats.timeouts == 1 && stats.running == 0 {
            break stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the handler is still held by the stalled asker: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((stats.invocations, stats.ok), (1, 0), "{stats:?}");
    drop(unread);

    // The handler's next event runs and its reply arrives whole.
    let params = QueryParams {
        timeout: Duration::from_secs(30),
        filter_nodes: vec!["responder".into()],
        finish_early: true,
        ..QueryParams::default()
    };
    let mut results = asker.query("blob", b"100", params).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(r) = results.next().await {
            match r {
                QueryResult::Response { from, payload } if from == "responder" => {
                    got.extend_from_slice(&payload)
                }
                QueryResult::Done => break,
                _ => {}
            }
        }
    })
    .await
    .expect("the query ends");
    let want: Vec<u8> = (0..100u64).map(|i| (i % 251) as u8).collect();
    assert_eq!(got, want);
    // The reply reaches the asker before the host records how the event ended.
    let deadline = tokio::time::Instant::now() + WAIT;
    while handlers.list()[0].stats.ok != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second event did not end ok: {:?}",
            handlers.list()[0].stats
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
