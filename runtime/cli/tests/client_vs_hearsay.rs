//! The `hearsay` client verbs against hearsay's own RPC server: two agents run in-process on
//! loopback, the CLI binary is run against the first. The second answers queries through its
//! own RPC event stream. Every wait is bounded; nothing asserts on speed.

use hearsay_agent::AgentBackend;
use hearsay_agent::{Node, NodeOptions};
use hearsay_net::{Config, Profile, UdpTcpTransport};
use hearsay_rpc::codec::Fields;
use hearsay_rpc::{RpcClient, RpcServer, ServerOptions};
use hearsay_serf::SerfConfig;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

struct Served {
    agent: Node,
    rpc: RpcServer,
    ctx: AgentBackend,
}

async fn start(name: &str) -> Served {
    let transport = UdpTcpTransport::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = hearsay_net::Transport::local_addr(&transport);
    let config = SerfConfig::new(Config::profile(Profile::Local, name.to_owned(), addr));
    let agent = Node::start(NodeOptions::new(config), transport).unwrap();
    let ctx = AgentBackend::new(agent.clone());
    let rpc = RpcServer::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ctx.clone(),
        ServerOptions::default(),
    )
    .await
    .unwrap();
    Served { agent, rpc, ctx }
}

async fn hearsay(node: &Served, args: &[&str]) -> Output {
    let mut all = vec![
        args[0].to_owned(),
        format!("--rpc-addr={}", node.rpc.local_addr()),
    ];
    all.extend(args[1..].iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("60")
            .arg(env!("CARGO_BIN_EXE_hearsay"))
            .args(&all)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

async fn ok(node: &Served, args: &[&str]) -> String {
    let o = hearsay(node, args).await;
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "hearsay {args:?}: {text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    text
}

async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearsay_verbs_drive_a_hearsay_agent() {
    let a1 = start("a1").await;
    let a2 = start("a2").await;

    let out = ok(&a1, &["join", &a2.agent.local_addr().to_string()]).await;
    assert_eq!(
        out.trim(),
        "Successfully joined cluster by contacting 1 nodes."
    );
    wait_for("two alive members", || async {
        ok(&a1, &["members", "-status=alive"]).await.lines().count() == 2
    })
    .await;
    let out = ok(&a1, &["members", "-format=json", "-name=a2"]).await;
    assert!(
        out.contains("\"name\": \"a2\"") && out.contains("\"version\": 5"),
        "{out}"
    );

    // a2 answers queries over its own RPC stream
    let client = RpcClient::connect(&a2.rpc.local_addr().to_string(), None)
        .await
        .unwrap();
    let mut queries = client.stream("query:ping").await.unwrap();
    let responder = tokio::spawn(async move {
        while let Some(rec) = queries.next().await {
            let id = Fields::of(&rec, "q").unwrap().uint("ID").unwrap();
            client.respond(id, b"pong").await.unwrap();
        }
    });
    let out = ok(&a1, &["query", "-timeout=2s", "ping"]).await;
    assert!(
        out.contains("Response from 'a2': pong") && out.contains("Total Acks: 2"),
        "{out}"
    );

    let out = ok(&a1, &["event", "hello", "world"]).await;
    assert!(
        out.contains("Event 'hello' dispatched! Coalescing enabled: true"),
        "{out}"
    );
    ok(&a1, &["tags", "-set", "role=db"]).await;
    wait_for("a2 to see the tag", || async {
        ok(&a2, &["members", "-tag", "role=db"])
            .await
            .contains("a1")
    })
    .await;
    let out = ok(&a1, &["info"]).await;
    assert!(
        out.contains("\tname = a1") && out.contains("\trole = db"),
        "{out}"
    );
    let out = ok(&a1, &["reachability"]).await;
    assert!(
        out.contains("Successfully contacted all live nodes"),
        "{out}"
    );
    wait_for("an rtt estimate", || async {
        let o = hearsay(&a1, &["rtt", "a1", "a2"]).await;
        o.status.success()
            && String::from_utf8_lossy(&o.stdout).contains("Estimated a1 <-> a2 rtt:")
    })
    .await;

    // leave: a2 leaves and stops; a1 sees it leave
    let mut left = a2.ctx.leave_requested();
    let out = ok(&a2, &["leave"]).await;
    assert_eq!(out.trim(), "Graceful leave complete");
    tokio::time::timeout(WAIT, left.wait_for(|l| *l))
        .await
        .unwrap()
        .unwrap();
    responder.abort();
    wait_for("a1 to see a2 leave", || async {
        ok(&a1, &["members", "-name=a2"]).await.contains("left")
    })
    .await;
    let o = hearsay(&a2, &["members"]).await;
    assert!(!o.status.success());
    a1.rpc.shutdown().await;
    a1.agent.shutdown().await;
}
