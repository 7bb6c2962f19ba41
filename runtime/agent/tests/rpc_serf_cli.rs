//! The REAL `serf` CLI drives hearsay agents through hearsay's RPC server: agents run
//! in-process on loopback, each with an `RpcServer`, and every `serf` command is run as a
//! child process with `-rpc-addr`. Covers members (text, json, filters), join, event, query
//! (acks and a response streamed from a second node that answers over its own RPC stream),
//! monitor, tags, keys on an encrypted cluster, info, rtt, reachability, force-leave, leave,
//! `-rpc-auth`, and clients that send garbage or stop reading.
//! Needs `serf` on the PATH; every wait is bounded; nothing asserts on speed.

mod common;

use common::{require_serf, KEY, OTHER_KEY, WAIT};
use hearsay_agent::logs::LogHub;
use hearsay_agent::AgentBackend;
use hearsay_agent::{Node, NodeOptions};
use hearsay_net::{Config, Keyring, Profile, UdpTcpTransport};
use hearsay_rpc::codec::{self, Value};
use hearsay_rpc::{RpcClient, RpcServer, ServerOptions};
use hearsay_serf::SerfConfig;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing_subscriber::layer::SubscriberExt;

/// One log hub for the test process: the global tracing subscriber feeds it.
fn hub() -> LogHub {
    static HUB: OnceLock<LogHub> = OnceLock::new();
    HUB.get_or_init(|| {
        let hub = LogHub::new(4096);
        let subscriber = tracing_subscriber::registry().with(hub.layer());
        let _ = tracing::subscriber::set_global_default(subscriber);
        hub
    })
    .clone()
}

struct Served {
    agent: Node,
    rpc: RpcServer,
    ctx: AgentBackend,
}

impl Served {
    fn rpc_arg(&self) -> String {
        format!("-rpc-addr={}", self.rpc.local_addr())
    }
}

async fn start_node(name: &str, keyring: Option<Keyring>, auth: &str) -> Served {
    start_node_with(name, keyring, auth, None).await
}

async fn start_node_with(
    name: &str,
    keyring: Option<Keyring>,
    auth: &str,
    tags_file: Option<&std::path::Path>,
) -> Served {
    let transport = UdpTcpTransport::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = hearsay_net::Transport::local_addr(&transport);
    let config = SerfConfig::new(Config::profile(Profile::Local, name.to_owned(), addr));
    let mut options = NodeOptions::new(config);
    if let Some(k) = keyring {
        options = options.keyring(k);
    }
    let agent = Node::start(options, transport).unwrap();
    let mut ctx = AgentBackend::new(agent.clone()).logs(hub());
    if let Some(path) = tags_file {
        ctx = ctx.tags_file(path);
    }
    let options = ServerOptions::default().auth_key(auth);
    let rpc = RpcServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), ctx.clone(), options)
        .await
        .unwrap();
    Served { agent, rpc, ctx }
}

/// Runs `serf <verb> <args>` (bounded by `timeout(1)`), off the async threads.
async fn serf(args: &[String]) -> Output {
    let args = args.to_vec();
    tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("60")
            .arg("serf")
            .args(&args)
            .output()
            .expect("run serf")
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `serf verb -rpc-addr=.. args..`, which must succeed; returns stdout+stderr.
async fn ok(node: &Served, verb: &str, args: &[&str]) -> String {
    let mut all = vec![verb.to_owned(), node.rpc_arg()];
    all.extend(args.iter().map(|s| s.to_string()));
    let out = serf(&all).await;
    let t = text(&out);
    assert!(out.status.success(), "serf {all:?} failed:\n{t}");
    t
}

async fn fails(node: &Served, verb: &str, args: &[&str]) -> String {
    let mut all = vec![verb.to_owned(), node.rpc_arg()];
    all.extend(args.iter().map(|s| s.to_string()));
    let out = serf(&all).await;
    assert!(
        !out.status.success(),
        "serf {all:?} should fail:\n{}",
        text(&out)
    );
    text(&out)
}

async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Answers every query on `node` with `reply`, through `node`'s own RPC server: `stream`
/// then `respond`, as a Serf RPC client library would.
async fn answer_queries(node: &Served, reply: &'static [u8]) -> tokio::task::JoinHandle<()> {
    let client = RpcClient::connect(&node.rpc.local_addr().to_string(), None)
        .await
        .unwrap();
    let mut stream = client.stream("query").await.unwrap();
    tokio::spawn(async move {
        while let Some(rec) = stream.next().await {
            let f = hearsay_rpc::codec::Fields::of(&rec, "query").unwrap();
            let id = f.uint("ID").unwrap();
            client.respond(id, reply).await.unwrap();
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serf_cli_drives_a_hearsay_agent() {
    require_serf();
    let tags_path =
        std::env::temp_dir().join(format!("hearsay-rpc-tags-{}.json", std::process::id()));
    let h1 = start_node_with("h1", None, "", Some(&tags_path)).await;
    let h2 = start_node("h2", None, "").await;
    let h3 = start_node("h3", None, "").await;

    // join (h2 through serf join -replay, h3 through plain join)
    let out = ok(
        &h1,
        "join",
        &["-replay", &h2.agent.local_addr().to_string()],
    )
    .await;
    assert!(
        out.contains("Successfully joined cluster by contacting 1 nodes."),
        "{out}"
    );
    let out = ok(&h1, "join", &[&h3.agent.local_addr().to_string()]).await;
    assert!(out.contains("contacting 1 nodes"), "{out}");
    wait_for("three alive members", || async {
        ok(&h1, "members", &["-status=alive"]).await.lines().count() == 3
    })
    .await;

    // members: text, detailed, filters, json
    let out = ok(&h1, "members", &[]).await;
    let line = out.lines().find(|l| l.starts_with("h2 ")).unwrap();
    assert!(
        line.contains(&h2.agent.local_addr().to_string()) && line.contains("alive"),
        "{out}"
    );
    let out = ok(&h1, "members", &["-detailed"]).await;
    assert!(out.contains("Protocol Version: 5"), "{out}");
    let out = ok(&h1, "members", &["--name=h[12]"]).await;
    assert_eq!(out.lines().count(), 2, "{out}");
    let out = ok(&h1, "members", &["-format=json"]).await;
    assert!(
        out.contains("\"name\": \"h3\"") && out.contains("\"status\": \"alive\""),
        "{out}"
    );

    // tags -set / -delete: persisted to the tags file and visible to the cluster
    let out = ok(&h1, "tags", &["-set", "role=web", "-set", "dc=x"]).await;
    assert!(out.contains("Successfully updated agent tags"), "{out}");
    ok(&h1, "tags", &["-delete", "dc"]).await;
    let saved = hearsay_agent::tags_file::read(&tags_path).unwrap();
    let _ = std::fs::remove_file(&tags_path);
    assert_eq!(
        saved.into_iter().collect::<Vec<_>>(),
        [("role".to_owned(), "web".to_owned())]
    );
    wait_for("h2 to see h1's tags", || async {
        let out = ok(&h2, "members", &["-tag", "role=web"]).await;
        out.lines().count() == 1 && out.contains("h1") && !out.contains("dc=x")
    })
    .await;

    // event, seen by an event stream on h2
    let watcher = RpcClient::connect(&h2.rpc.local_addr().to_string(), None)
        .await
        .unwrap();
    let mut events = watcher.stream("user:deploy").await.unwrap();
    let out = ok(&h1, "event", &["-coalesce=false", "deploy", "v1"]).await;
    assert!(
        out.contains("Event 'deploy' dispatched! Coalescing enabled: false"),
        "{out}"
    );
    let rec = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap();
    let f = hearsay_rpc::codec::Fields::of(&rec, "event").unwrap();
    assert_eq!(
        (f.str("Name").unwrap(), f.bytes("Payload").unwrap()),
        ("deploy".into(), b"v1".to_vec())
    );

    // query: acks from all three, a response from h2 (answering over its own RPC stream)
    let _answerer = answer_queries(&h2, b"pong").await;
    let out = ok(&h1, "query", &["-timeout=3s", "ping", "x"]).await;
    assert!(out.contains("Query 'ping' dispatched"), "{out}");
    for n in ["h1", "h2", "h3"] {
        assert!(out.contains(&format!("Ack from '{n}'")), "{out}");
    }
    assert!(out.contains("Response from 'h2': pong"), "{out}");
    assert!(
        out.contains("Total Acks: 3") && out.contains("Total Responses: 1"),
        "{out}"
    );
    let out = ok(
        &h1,
        "query",
        &["-format=json", "-node=h2", "-no-ack", "-timeout=2s", "ping"],
    )
    .await;
    assert!(
        out.contains("\"Responses\"") && out.contains("\"h2\": \"pong\""),
        "{out}"
    );

    // info (text and json)
    let out = ok(&h1, "info", &[]).await;
    assert!(
        out.contains("agent:") && out.contains("\tname = h1") && out.contains("members = 3"),
        "{out}"
    );
    let out = ok(&h1, "info", &["-format=json"]).await;
    assert!(
        out.contains("\"serf\"") && out.contains("\"role\": \"web\""),
        "{out}"
    );

    // rtt, once h1 has h2's coordinate from a ping ack
    wait_for("an rtt estimate", || async {
        let all = vec!["rtt".to_owned(), h1.rpc_arg(), "h2".to_owned()];
        let o = serf(&all).await;
        let t = text(&o);
        if !o.status.success() {
            eprintln!("rtt: {t}");
        }
        o.status.success() && t.contains("Estimated h2 <-> h1 rtt:")
    })
    .await;

    // reachability
    let out = ok(&h1, "reachability", &["-verbose"]).await;
    assert!(
        out.contains("Successfully contacted all live nodes"),
        "{out}"
    );

    // monitor: a log line and an event arrive, then the monitor is killed by pid
    let mut monitor = std::process::Command::new("serf")
        .args(["monitor", &h1.rpc_arg(), "-log-level=debug"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = monitor.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !(seen.iter().any(|l: &String| l.contains("rpc-test-marker"))
        && seen.iter().any(|l| l.contains("Event Info:")))
    {
        assert!(Instant::now() < deadline, "monitor showed {seen:?}");
        tracing::info!("rpc-test-marker");
        h1.agent.user_event("tick", b"", false).await.unwrap();
        if let Ok(Some(l)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            seen.push(l);
        }
        while let Ok(l) = rx.try_recv() {
            seen.push(l);
        }
    }
    let pid = monitor.id().to_string();
    Command::new("kill").arg(&pid).status().unwrap();
    let _ = monitor.wait();
    assert!(
        seen.iter()
            .any(|l| l.contains("[INFO]") && l.contains("rpc-test-marker")),
        "{seen:?}"
    );

    // force-leave: h3 stops without leaving, fails, and is forced out
    h3.rpc.shutdown().await;
    h3.agent.shutdown().await;
    wait_for("h3 to fail", || async {
        ok(&h1, "members", &["-name=h3", "-status=failed"])
            .await
            .contains("h3")
    })
    .await;
    ok(&h1, "force-leave", &["h3"]).await;
    wait_for("h3 to be left", || async {
        ok(&h1, "members", &["-name=h3"]).await.contains("left")
    })
    .await;
    ok(&h1, "force-leave", &["-prune", "h3"]).await;

    // unknown query id and bad filters are refused in serf's words
    let c = RpcClient::connect(&h1.rpc.local_addr().to_string(), None)
        .await
        .unwrap();
    let e = c.respond(99, b"x").await.unwrap_err().to_string();
    assert_eq!(e, "No pending queries matching ID");
    let e = c.stream("bogus").await.unwrap_err().to_string();
    assert_eq!(e, "Invalid event filter");
    let e = c.monitor("loud").await.unwrap_err().to_string();
    assert_eq!(e, "Unknown log level: LOUD");

    // leave: graceful, then the agent stops and the run loop is told
    let mut left = h2.ctx.leave_requested();
    let out = ok(&h2, "leave", &[]).await;
    assert!(out.contains("Graceful leave complete"), "{out}");
    tokio::time::timeout(WAIT, left.wait_for(|l| *l))
        .await
        .unwrap()
        .unwrap();
    assert!(h2.agent.is_stopped());
    wait_for("h1 to see h2 leave", || async {
        ok(&h1, "members", &["-name=h2"]).await.contains("left")
    })
    .await;
    h1.rpc.shutdown().await;
    h2.rpc.shutdown().await;
    h1.agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_auth_is_enforced_with_serf_errors() {
    require_serf();
    let h = start_node("auth1", None, "s3cret").await;
    let out = ok(&h, "members", &["-rpc-auth=s3cret"]).await;
    assert!(out.contains("auth1"), "{out}");
    let out = fails(&h, "members", &[]).await;
    assert!(out.contains("Authentication required"), "{out}");
    let out = fails(&h, "members", &["-rpc-auth=wrong"]).await;
    assert!(out.contains("Invalid authentication token"), "{out}");
    let out = fails(&h, "event", &["-rpc-auth=wrong", "x"]).await;
    assert!(out.contains("Invalid authentication token"), "{out}");
    h.rpc.shutdown().await;
    h.agent.shutdown().await;
}

/// The `serf info` line `\tKEY = VALUE`'s value.
fn info_value<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key} = ");
    out.lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
}

/// A lone node gossips to no one, so the broadcasts it makes stay queued: `serf info` shows the
/// same queue depths for a hearsay agent as for a real serf agent after the same commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_counts_queued_broadcasts_as_serf_does() {
    require_serf();
    let dir = std::env::temp_dir().join(format!("hearsay-info-queues-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let real = hearsay_testkit::serf::Serf::launch(dir.clone(), "lone-serf", &[], WAIT);
    let h = start_node("lone", None, "").await;
    for args in [
        &["event", "-coalesce=false", "a", "1"][..],
        &["event", "-coalesce=false", "b", "2"],
        &["query", "-timeout=1s", "q"],
    ] {
        real.cli(args);
        ok(&h, args[0], &args[1..]).await;
    }
    let theirs = real.cli(&["info"]);
    let ours = ok(&h, "info", &[]).await;
    for key in [
        "event_queue",
        "query_queue",
        "intent_queue",
        "coordinate_resets",
    ] {
        assert_eq!(
            info_value(&ours, key),
            info_value(&theirs, key),
            "{key}\nhearsay:\n{ours}\nserf:\n{theirs}"
        );
    }
    assert_eq!(info_value(&ours, "event_queue"), Some("2"), "{ours}");
    assert_eq!(info_value(&ours, "query_queue"), Some("1"), "{ours}");
    // serf's runtime section, goroutines included (hearsay: its live async tasks).
    for key in ["os", "arch", "cpu_count", "max_procs", "goroutines"] {
        assert!(
            info_value(&theirs, key).is_some(),
            "serf lacks {key}:\n{theirs}"
        );
        let n = info_value(&ours, key);
        assert!(n.is_some_and(|v| !v.is_empty()), "{key}\nhearsay:\n{ours}");
    }
    let tasks: u64 = info_value(&ours, "goroutines").unwrap().parse().unwrap();
    assert!(tasks > 0, "{ours}");
    h.rpc.shutdown().await;
    h.agent.shutdown().await;
    drop(real);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `[n/m]` count `serf keys -list` prints beside `key` (columnized, so spacing varies).
fn key_count<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serf_keys_on_an_encrypted_hearsay_cluster() {
    require_serf();
    let ring = || Keyring::from_base64_keys(&[KEY]).unwrap();
    let h1 = start_node("k1", Some(ring()), "").await;
    let h2 = start_node("k2", Some(ring()), "").await;
    h1.agent.join(&[h2.agent.local_addr()], true).await.unwrap();
    wait_for("two members", || async {
        ok(&h1, "members", &["-status=alive"]).await.lines().count() == 2
    })
    .await;
    let out = ok(&h1, "keys", &["-list"]).await;
    assert!(key_count(&out, KEY) == "[2/2]", "{out}");
    let out = ok(&h1, "keys", &["-install", OTHER_KEY]).await;
    assert!(out.contains("Successfully installed key!"), "{out}");
    let out = ok(&h1, "keys", &["-use", OTHER_KEY]).await;
    assert!(out.contains("Successfully changed primary key!"), "{out}");
    let out = ok(&h1, "keys", &["-remove", KEY]).await;
    assert!(out.contains("Successfully removed key!"), "{out}");
    let out = ok(&h2, "keys", &["-list"]).await;
    assert!(
        key_count(&out, OTHER_KEY) == "[2/2]" && !out.contains(KEY),
        "{out}"
    );
    // Removing the primary key fails on every node, reported per node.
    let out = fails(&h1, "keys", &["-remove", OTHER_KEY]).await;
    assert!(
        out.contains("Removing the primary key is not allowed")
            && out.contains("2/2 nodes reported failure"),
        "{out}"
    );
    for n in [&h1, &h2] {
        n.rpc.shutdown().await;
        n.agent.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_stalled_clients_do_not_stop_the_others() {
    require_serf();
    let hub = hub();
    let h = start_node("g1", None, "").await;
    let addr = h.rpc.local_addr();

    // Many clients at once, each with a stream open while it asks for members.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let a = addr.to_string();
        tasks.push(tokio::spawn(async move {
            let c = RpcClient::connect(&a, None).await.unwrap();
            let _events = c.stream("*").await.unwrap();
            c.members().await.unwrap().len()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 1);
    }

    // Protocol errors are answered in serf's words, then the connection is closed.
    for (requests, want) in [
        (vec![("members", 1, None)], "Handshake required"),
        (
            vec![
                ("handshake", 1, Some(("Version", Value::Uint(1)))),
                ("bogus", 2, None),
            ],
            "Unsupported command",
        ),
        (
            vec![("handshake", 1, Some(("Version", Value::Uint(2))))],
            "Unsupported IPC version",
        ),
    ] {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut bytes = Vec::new();
        for (cmd, seq, body) in requests {
            let h = codec::RequestHeader {
                command: cmd.into(),
                seq,
            };
            let b = body.map(|f| codec::map(vec![f]));
            bytes.extend(codec::frame(&h.to_value(), b.as_ref()));
        }
        conn.write_all(&bytes).await.unwrap();
        let mut got = Vec::new();
        let _ = tokio::time::timeout(WAIT, async {
            let mut chunk = [0u8; 256];
            loop {
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
                if String::from_utf8_lossy(&got).contains(want) && want == "Unsupported IPC version"
                {
                    return; // a refused handshake keeps the connection, as in Serf
                }
            }
        })
        .await;
        assert!(
            String::from_utf8_lossy(&got).contains(want),
            "{want}: {got:?}"
        );
    }

    // Garbage: the server drops the connection.
    let mut garbage = tokio::net::TcpStream::connect(addr).await.unwrap();
    garbage.write_all(&[0xc1, 0xff, 0x00, 0x13]).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, garbage.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "garbage client was answered: {n:?}"
    );

    // A half-sent request that never completes holds only its own connection.
    let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
    half.write_all(&[0x82, 0xa7]).await.unwrap();
    assert!(ok(&h, "members", &[]).await.contains("g1"));

    // A client that starts a monitor and never reads while the log floods: dropped.
    let mut logs = hub.subscribe(hearsay_agent::logs::LogLevel::Warn);
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = Vec::new();
    for (cmd, seq, body) in [
        (
            "handshake",
            1u64,
            ("Version", hearsay_rpc::codec::Value::Uint(1)),
        ),
        ("monitor", 2, ("LogLevel", hearsay_rpc::codec::s("INFO"))),
    ] {
        let h = hearsay_rpc::codec::RequestHeader {
            command: cmd.into(),
            seq,
        };
        let b = hearsay_rpc::codec::map(vec![body]);
        req.extend(hearsay_rpc::codec::frame(&h.to_value(), Some(&b)));
    }
    stalled.write_all(&req).await.unwrap();
    let filler = "x".repeat(2000);
    let deadline = Instant::now() + WAIT;
    let mut dropped = false;
    while !dropped {
        assert!(
            Instant::now() < deadline,
            "the stalled client was never dropped"
        );
        for _ in 0..200 {
            tracing::info!("flood {filler}");
        }
        tokio::task::yield_now().await;
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_millis(10), logs.next()).await
        {
            if line.contains("not reading") {
                dropped = true;
            }
        }
    }
    // Other clients are unaffected, and the stalled one finds its connection closed.
    assert!(ok(&h, "members", &[]).await.contains("g1"));
    let mut sink = vec![0u8; 1 << 16];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match stalled.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the stalled client's connection stayed open"
    );
    drop(half);
    h.rpc.shutdown().await;
    h.agent.shutdown().await;
}
