//! Large responses in a mixed cluster: the REAL `serf` agent (answering every query with
//! `pong` from its event handler) beside two hearsay agents with QUIC, in-process on loopback,
//! each with hearsay's RPC server.
//!
//! Shows: the real `serf query` CLI through hearsay's RPC gets serf's UDP answer and a
//! hearsay node's 200 KiB answer (given through RPC `respond`, streamed over QUIC) as
//! several `response` records, which hearsay's RPC client reassembles byte for byte; and when
//! the serf agent originates a query, serf still answers, a hearsay node's small reply goes
//! over UDP, and its too-large reply is refused with a clear error (to the RPC client that
//! tried it, and in a warning log line) while nothing is sent.
//! Needs `serf` on the PATH; every wait is bounded; nothing asserts on speed.

mod common;
use common::{capture_logs, wait_log};
use hearsay_agent::AgentBackend;
use hearsay_agent::{Node, NodeOptions, QuicOptions};
use hearsay_net::{Config, Profile, UdpTcpTransport};
use hearsay_rpc::codec::Fields;
use hearsay_rpc::{
    QueryParams as RpcQueryParams, QueryRecord, RpcClient, RpcServer, ServerOptions,
};
use hearsay_serf::SerfConfig;
use hearsay_testkit::serf::{require_serf, Serf};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
const BIG: usize = 200 << 10;

fn big_payload() -> Vec<u8> {
    (0..BIG).map(|i| b'a' + (i % 26) as u8).collect()
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

struct Served {
    agent: Node,
    rpc: RpcServer,
}

async fn start_node(name: &str) -> Served {
    let transport = UdpTcpTransport::bind(loopback()).await.unwrap();
    let addr = hearsay_net::Transport::local_addr(&transport);
    let config = SerfConfig::new(Config::profile(Profile::Local, name.to_owned(), addr));
    let quic = QuicOptions::pinned(loopback(), name).unwrap();
    let agent =
        hearsay_agent::replies::start_with_quic(NodeOptions::new(config), transport, quic).unwrap();
    let rpc = RpcServer::bind(
        loopback(),
        AgentBackend::new(agent.clone()),
        ServerOptions::default(),
    )
    .await
    .unwrap();
    Served { agent, rpc }
}

/// Answers every query on `node` through its own RPC server (`stream` + `respond`), as a Serf
/// RPC client library would: `big` gets [`BIG`] bytes, anything else a short text. Each
/// `respond` outcome is reported on the channel.
async fn answer_over_rpc(
    node: &Served,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::UnboundedReceiver<(String, Result<(), String>)>,
) {
    let client = RpcClient::connect(&node.rpc.local_addr().to_string(), None)
        .await
        .unwrap();
    let mut stream = client.stream("query").await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let name = node.agent.name().to_owned();
    let task = tokio::spawn(async move {
        while let Some(rec) = stream.next().await {
            let f = Fields::of(&rec, "query").unwrap();
            let (id, query) = (f.uint("ID").unwrap(), f.str("Name").unwrap());
            let payload = if query == "big" {
                big_payload()
            } else {
                format!("small from {name}").into_bytes()
            };
            let r = client
                .respond(id, &payload)
                .await
                .map_err(|e| e.to_string());
            let _ = tx.send((query, r));
        }
    });
    (task, rx)
}

async fn serf_cli(args: Vec<String>) -> String {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("60")
            .arg("serf")
            .args(&args)
            .output()
            .expect("run serf")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "serf {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serf_nodes_keep_answering_and_serf_originators_get_clear_refusals() {
    require_serf();
    capture_logs("info");
    let s1 = Serf::start("quic-mixed", &["-event-handler=query=echo pong"]);
    let h1 = start_node("h1").await;
    let h2 = start_node("h2").await;
    for h in [&h1, &h2] {
        h.agent.join(&[s1.addr()], true).await.unwrap();
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let alive = h1
            .agent
            .members()
            .await
            .unwrap()
            .iter()
            .filter(|m| m.status == hearsay_serf::event::MemberStatus::Alive)
            .count();
        if alive == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "cluster never formed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_answer_task, mut outcomes) = answer_over_rpc(&h2).await;

    // 1. The real `serf query` through hearsay's RPC: serf's UDP answer, h2's large answer in
    //    pieces, and h1's own (none: nobody answers on h1).
    let out = serf_cli(vec![
        "query".into(),
        format!("-rpc-addr={}", h1.rpc.local_addr()),
        "-timeout=10s".into(),
        "big".into(),
    ])
    .await;
    assert!(out.contains("Response from 's1': pong"), "{out}");
    let pieces = out.matches("Response from 'h2': ").count();
    assert!(
        pieces >= 2,
        "h2's answer should come in several records:\n{}",
        &out[..out.len().min(2000)]
    );
    let (q, r) = tokio::time::timeout(WAIT, outcomes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((q.as_str(), r), ("big", Ok(())));

    // 2. hearsay's RPC client reassembles the pieces exactly.
    let client = RpcClient::connect(&h1.rpc.local_addr().to_string(), None)
        .await
        .unwrap();
    let params = RpcQueryParams {
        name: "big".into(),
        timeout: Duration::from_secs(10),
        ..RpcQueryParams::default()
    };
    let mut stream = client.query(&params).await.unwrap();
    let mut h2_bytes = Vec::new();
    let (mut h2_last, mut serf_answer) = (false, None);
    tokio::time::timeout(WAIT, async {
        while let Some(rec) = stream.next_query_record().await {
            match rec {
                QueryRecord::Piece {
                    from,
                    payload,
                    last,
                    error,
                } => {
                    assert_eq!(from, "h2");
                    assert_eq!(error, None);
                    assert!(payload.len() <= 64 << 10);
                    h2_bytes.extend_from_slice(&payload);
                    h2_last |= last;
                }
                QueryRecord::Response(from, payload) => {
                    assert_eq!(from, "s1");
                    serf_answer = Some(payload);
                }
                QueryRecord::Ack(_) => {}
            }
        }
    })
    .await
    .unwrap();
    assert!(h2_last);
    assert!(
        h2_bytes == big_payload(),
        "h2's answer was not reassembled exactly ({} bytes)",
        h2_bytes.len()
    );
    assert_eq!(serf_answer.as_deref(), Some(&b"pong\n"[..]));
    let _ = tokio::time::timeout(WAIT, outcomes.recv())
        .await
        .unwrap()
        .unwrap();

    // 3. serf originates: serf still answers itself; h2's large reply is refused clearly and
    //    nothing is sent; a small reply from h2 goes over UDP.
    let out = serf_cli(vec![
        "query".into(),
        s1.rpc_arg(),
        "-timeout=5s".into(),
        "big".into(),
    ])
    .await;
    assert!(out.contains("Response from 's1': pong"), "{out}");
    assert!(!out.contains("Response from 'h2'"), "{out}");
    let (q, r) = tokio::time::timeout(WAIT, outcomes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q, "big");
    let err = r.expect_err("a large reply to a serf originator must be refused");
    assert!(
        err.contains("too large for a Serf originator's UDP limit of 1024 bytes"),
        "{err}"
    );
    let line = wait_log("advertises no QUIC endpoint (a Serf node); nothing was sent").await;
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("\"s1\""), "{line}");

    let out = serf_cli(vec![
        "query".into(),
        s1.rpc_arg(),
        "-timeout=5s".into(),
        "small".into(),
    ])
    .await;
    assert!(out.contains("Response from 's1': pong"), "{out}");
    assert!(out.contains("Response from 'h2': small from h2"), "{out}");
    let (q, r) = tokio::time::timeout(WAIT, outcomes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((q.as_str(), r), ("small", Ok(())));
}
