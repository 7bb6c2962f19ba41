//! Relayed large query responses (Serf's relay factor) over real QUIC on loopback, with real
//! agents in this process.
//!
//! A query with relay factor R makes every responder whose reply outgrows the UDP limit stream
//! it to the originator directly and through up to R other hearsay members, which forward it;
//! the originator takes the first stream per node and refuses the rest as duplicates.
//!
//! Shows: with relay factor 2 across four agents, every node's 3 MiB response reaches the
//! query's results exactly once and intact (sha256), while relay nodes really forwarded copies
//! and the originator refused duplicates (the agents' `quic_stats` counters); and when the
//! responder-to-originator QUIC path is blocked at the network layer, that responder's
//! response still arrives, through a relay. Every wait is bounded; nothing asserts on speed.

mod common;
use common::{capture_logs, log_text, wait_quic_members};
use hearsay_agent::{Node, NodeOptions, QueryResult, QuicOptions, QuicStats};
use hearsay_net::{Config, Profile, UdpTcpTransport};
use hearsay_serf::event::{Event, QueryEvent};
use hearsay_serf::{QueryParams, SerfConfig};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
const CHUNK: usize = 64 << 10;
const WAIT: Duration = Duration::from_secs(60);
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// The byte at `offset` of `node`'s reply: a different sequence per node, so a body
/// delivered under the wrong name is caught too.
fn pattern(node: &str, offset: u64) -> u8 {
    let seed = node.bytes().fold(0u64, |a, b| a * 31 + u64::from(b));
    ((offset.wrapping_mul(7) + seed) % 251) as u8
}

fn expected_digest(node: &str, size: usize) -> Vec<u8> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0;
    while offset < size {
        let n = CHUNK.min(size - offset);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(node, (offset + i) as u64);
        }
        h.update(&buf[..n]);
        offset += n;
    }
    h.finalize().to_vec()
}

/// Starts an agent whose gossip binds `gossip_ip` and QUIC endpoint binds `quic_ip` (ports
/// chosen by the OS).
async fn start_agent(name: &str, gossip_ip: IpAddr, quic_ip: IpAddr) -> Node {
    let transport = UdpTcpTransport::bind(SocketAddr::new(gossip_ip, 0))
        .await
        .unwrap();
    let addr = hearsay_net::Transport::local_addr(&transport);
    let mut config = SerfConfig::new(Config::profile(Profile::Local, name.to_owned(), addr));
    // The local profile's retransmit multiplier (2, as memberlist's local config) sends a
    // broadcast only twice in a four-node cluster: the originator's query reaches two nodes
    // and their rebroadcasts miss the third about one time in nine. Four sends reach every
    // node from the originator directly, so the query (not the relays) is never what fails.
    config.memberlist.retransmit_mult = 4;
    let quic = QuicOptions::pinned(SocketAddr::new(quic_ip, 0), name).unwrap();
    hearsay_agent::replies::start_with_quic(NodeOptions::new(config), transport, quic).unwrap()
}

/// Answers every `blob N` query with N pattern bytes written 64 KiB at a time through the
/// reply API, reporting how each reply ended on `done`. Subscribes before it returns, so no
/// query started afterwards is missed.
fn answer_queries(
    agent: Node,
    done: tokio::sync::mpsc::UnboundedSender<(String, Result<String, String>)>,
) -> tokio::task::JoinHandle<()> {
    let mut events = agent.subscribe();
    tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            if let Event::Query(q) = ev {
                tokio::spawn(answer(agent.clone(), q, done.clone()));
            }
        }
    })
}

async fn answer(
    agent: Node,
    q: QueryEvent,
    done: tokio::sync::mpsc::UnboundedSender<(String, Result<String, String>)>,
) {
    let size: usize = String::from_utf8_lossy(&q.payload).parse().unwrap_or(0);
    let me = agent.name().to_owned();
    let mut reply = hearsay_agent::QueryReply::open(&agent, (&q).into());
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0usize;
    while offset < size {
        let n = CHUNK.min(size - offset);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(&me, (offset + i) as u64);
        }
        if let Err(e) = reply.write(&buf[..n]).await {
            let _ = done.send((me, Err(e.to_string())));
            return;
        }
        offset += n;
    }
    let outcome = reply
        .finish()
        .await
        .map(|p| format!("{p:?}"))
        .map_err(|e| e.to_string());
    let _ = done.send((me, outcome));
}

/// What the originator's results showed of one node.
#[derive(Debug, Default)]
struct Seen {
    bytes: u64,
    digest: Sha256,
    ends: Vec<Result<u64, String>>,
    udp: usize,
}

/// Runs `blob size` with relay factor 2 (to `only` these nodes, when not empty) and
/// collects every result.
async fn run_query(origin: &Node, size: usize, only: &[&str]) -> BTreeMap<String, Seen> {
    let params = QueryParams {
        timeout: QUERY_TIMEOUT,
        relay_factor: 2,
        finish_early: true,
        filter_nodes: only.iter().map(|n| n.to_string()).collect(),
        ..QueryParams::default()
    };
    let mut results = origin
        .query("blob", size.to_string().as_bytes(), params)
        .await
        .unwrap();
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    tokio::time::timeout(QUERY_TIMEOUT + WAIT, async {
        while let Some(r) = results.next().await {
            match r {
                QueryResult::ResponseChunk { from, chunk } => {
                    let s = seen.entry(from).or_default();
                    assert!(s.ends.is_empty(), "a chunk after the end: {s:?}");
                    s.bytes += chunk.len() as u64;
                    s.digest.update(&chunk);
                }
                QueryResult::ResponseEnd { from, result } => {
                    seen.entry(from).or_default().ends.push(result);
                }
                QueryResult::Response { from, .. } => seen.entry(from).or_default().udp += 1,
                QueryResult::Ack { .. } | QueryResult::Done => {}
            }
        }
    })
    .await
    .expect("the query's results never ended");
    seen
}

fn assert_once_and_intact(seen: &BTreeMap<String, Seen>, names: &[&str], size: usize) {
    assert_eq!(
        seen.keys().map(String::as_str).collect::<Vec<_>>(),
        names,
        "responses from exactly these nodes"
    );
    for n in names {
        let s = &seen[*n];
        assert_eq!(s.ends, [Ok(size as u64)], "{n}: exactly one whole response");
        assert_eq!(s.bytes, size as u64, "{n}");
        assert_eq!(s.udp, 0, "{n}: no UDP response");
        assert_eq!(
            s.digest.clone().finalize().to_vec(),
            expected_digest(n, size),
            "{n}: body differs"
        );
    }
}

/// Polls `cond` over the agents' stats until it holds (bounded).
async fn wait_stats(agents: &[Node], what: &str, cond: impl Fn(&[QuicStats]) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats: Vec<QuicStats> = agents
            .iter()
            .map(|a| hearsay_agent::replies::quic_stats(a).unwrap())
            .collect();
        if cond(&stats) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {stats:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Relay factor 2 across four agents: each responder streams its 3 MiB reply to the
/// originator and to both other non-originators (the originator, answering its own query,
/// to two of the other three). Every response reaches the results once and intact; relay
/// nodes forwarded copies; the originator refused the copies that came second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_factor_2_delivers_every_large_response_exactly_once() {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let names = ["n0", "n1", "n2", "n3"];
    let mut agents = Vec::new();
    for n in names {
        agents.push(start_agent(n, lo, lo).await);
    }
    for a in &agents[1..] {
        a.join(&[agents[0].local_addr()], true).await.unwrap();
    }
    for a in &agents {
        wait_quic_members(a, &names).await;
    }
    let (tx, mut replies) = tokio::sync::mpsc::unbounded_channel();
    let answerers: Vec<_> = agents
        .iter()
        .map(|a| answer_queries(a.clone(), tx.clone()))
        .collect();

    let size = 3 * MIB;
    let seen = run_query(&agents[0], size, &[]).await;
    assert_once_and_intact(&seen, &names, size);

    // Every responder's reply succeeded (at least one of its streams was taken whole).
    let mut outcomes = BTreeMap::new();
    tokio::time::timeout(WAIT, async {
        while outcomes.len() < names.len() {
            let (node, outcome) = replies.recv().await.unwrap();
            outcomes.insert(node, outcome);
        }
    })
    .await
    .expect("not every responder finished its reply");
    for (node, outcome) in &outcomes {
        assert_eq!(
            outcome.as_deref(),
            Ok(format!("Quic {{ bytes: {size} }}").as_str()),
            "{node}"
        );
    }

    // The relay path was used: each responder opened two relay streams, relay nodes forwarded
    // copies to the originator, and the originator refused the copies that came second.
    wait_stats(&agents, "relay legs, forwards and duplicates", |s| {
        s.iter().all(|x| x.relay_legs_opened == 2)
            && s.iter().map(|x| x.relays_forwarded).sum::<u64>() >= 1
            && s[0].duplicates_dropped >= 1
    })
    .await;
    let stats: Vec<QuicStats> = agents
        .iter()
        .map(|a| hearsay_agent::replies::quic_stats(a).unwrap())
        .collect();
    println!("stats: {stats:#?}");
    // Only the originator receives responses; the others only relay.
    for s in &stats[1..] {
        assert_eq!((s.relayed_accepted, s.duplicates_dropped), (0, 0), "{s:?}");
    }
    assert_eq!(stats[0].relays_forwarded, 0, "nobody relays to itself");
    for a in answerers {
        a.abort();
    }
}

/// Runs `ip` with `args`, failing the test with its stderr.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Policy-routing rules that make every packet between two loopback addresses unroutable
/// ("prohibit": the sender's `sendto` fails with EACCES), in the private network namespace
/// of the child process. Removed on drop (the namespace also vanishes with the process).
struct Block {
    a: IpAddr,
    b: IpAddr,
}

/// `ip rule` preference of the blocking rules; the `local` table lookup (normally at
/// preference 0, before any rule could act on loopback traffic) moves to `LOCAL_PREF`.
const BLOCK_PREF: &str = "10";
const LOCAL_PREF: &str = "100";

impl Block {
    fn install(a: IpAddr, b: IpAddr) -> Self {
        let (sa, sb) = (a.to_string(), b.to_string());
        ip(&["rule", "add", "pref", LOCAL_PREF, "lookup", "local"]);
        ip(&["rule", "del", "pref", "0"]);
        let guard = Self { a, b };
        for (from, to) in [(&sa, &sb), (&sb, &sa)] {
            ip(&[
                "rule", "add", "pref", BLOCK_PREF, "from", from, "to", to, "prohibit",
            ]);
        }
        guard
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let (sa, sb) = (self.a.to_string(), self.b.to_string());
        for (from, to) in [(&sa, &sb), (&sb, &sa)] {
            let _ = Command::new("ip")
                .args(["rule", "del", "pref", BLOCK_PREF, "from", from, "to", to])
                .status();
        }
        let _ = Command::new("ip")
            .args(["rule", "add", "pref", "0", "lookup", "local"])
            .status();
        let _ = Command::new("ip")
            .args(["rule", "del", "pref", LOCAL_PREF, "lookup", "local"])
            .status();
    }
}

/// The responder-to-originator QUIC path is blocked; the response still arrives, relayed.
///
/// How the block works: this test re-runs the test binary (the ignored
/// `blocked_direct_path_child`) under `unshare --net`, so the child has a private network
/// namespace with only its own loopback interface (the host's network is never touched;
/// needs root, as the test machines run). In there every agent gossips on 127.0.0.1, but each
/// QUIC endpoint binds its own loopback address: the originator 127.0.0.2, the blocked
/// responder 127.0.0.3, the two others 127.0.0.4 and 127.0.0.5. Two policy-routing rules
/// (`ip rule ... from 127.0.0.3 to 127.0.0.2 prohibit` and the reverse, placed before the
/// `local` table lookup) make every packet between the responder's and the originator's QUIC
/// endpoints unroutable, and nothing else: gossip and every other QUIC pair are untouched.
/// The child checks the block with raw UDP sends before the query. The rules are removed by a
/// Drop guard; the namespace disappears with the child process.
#[test]
fn a_blocked_direct_path_delivers_through_a_relay() {
    let mut child = Command::new("unshare")
        .args(["--net", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "blocked_direct_path_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("QUIC_RELAY_NETNS_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running unshare (util-linux)");
    // Bounded: the child's own waits end well within this; kill it if it hangs.
    let deadline = Instant::now() + QUERY_TIMEOUT + 3 * WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the netns child did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        status.success() && stdout.contains("CHILD-PASSED"),
        "the netns child failed ({status}):\n{stdout}\n{stderr}"
    );
}

/// Not a test on its own: the body of `a_blocked_direct_path_delivers_through_a_relay`, run
/// in a private network namespace (does nothing unless `QUIC_RELAY_NETNS_CHILD` is set).
#[test]
#[ignore = "run in a network namespace by a_blocked_direct_path_delivers_through_a_relay"]
fn blocked_direct_path_child() {
    if std::env::var_os("QUIC_RELAY_NETNS_CHILD").is_none() {
        return;
    }
    capture_logs("info,hearsay_agent::replies=debug");
    ip(&["link", "set", "lo", "up"]);
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let quic_ip = |n: u8| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n));
    let (origin_ip, blocked_ip) = (quic_ip(2), quic_ip(3));
    let _block = Block::install(origin_ip, blocked_ip);

    // The block is real: from the blocked responder's address nothing reaches the
    // originator's, while another member's address does.
    let target = std::net::UdpSocket::bind((origin_ip, 0)).unwrap();
    let to = target.local_addr().unwrap();
    let from_blocked = std::net::UdpSocket::bind((blocked_ip, 0)).unwrap();
    let err = from_blocked.send_to(b"x", to).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    let from_other = std::net::UdpSocket::bind((quic_ip(4), 0)).unwrap();
    from_other.send_to(b"x", to).unwrap();
    drop((target, from_blocked, from_other));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let names = ["origin", "blocked", "r4", "r5"];
        let ips = [origin_ip, blocked_ip, quic_ip(4), quic_ip(5)];
        let mut agents = Vec::new();
        for (n, q) in names.iter().zip(ips) {
            agents.push(start_agent(n, lo, q).await);
        }
        for a in &agents[1..] {
            a.join(&[agents[0].local_addr()], true).await.unwrap();
        }
        for a in &agents {
            wait_quic_members(a, &names).await;
        }
        // Only "blocked" is asked (the others still relay: that needs no query).
        let (tx, mut replies) = tokio::sync::mpsc::unbounded_channel();
        let answerer = answer_queries(agents[1].clone(), tx);
        let size = 2 * MIB;
        let seen = run_query(&agents[0], size, &["blocked"]).await;
        assert_once_and_intact(&seen, &["blocked"], size);
        let (node, outcome) = tokio::time::timeout(WAIT, replies.recv())
            .await
            .expect("the responder never finished")
            .unwrap();
        assert_eq!(node, "blocked");
        assert_eq!(
            outcome.as_deref(),
            Ok(format!("Quic {{ bytes: {size} }}").as_str())
        );
        // It came through a relay node, and the direct stream never opened.
        let text = log_text();
        let taken = text
            .lines()
            .find(|l| l.contains("taking the response from \"blocked\""))
            .unwrap_or_else(|| panic!("no line about taking the response:\n{text}"));
        assert!(taken.contains("relayed by \"r"), "{taken}");
        let direct = text
            .lines()
            .find(|l| l.contains("dropping the direct stream"))
            .unwrap_or_else(|| panic!("the direct stream should have failed:\n{text}"));
        // Duplicates are refused quietly: no warning or error from the agent about them.
        let noisy: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.contains("hearsay_agent") && (l.contains(" WARN ") || l.contains(" ERROR "))
            })
            .collect();
        assert!(noisy.is_empty(), "unexpected warnings: {noisy:#?}");
        let origin_stats = hearsay_agent::replies::quic_stats(&agents[0]).unwrap();
        assert_eq!(origin_stats.relayed_accepted, 1, "{origin_stats:?}");
        let blocked_stats = hearsay_agent::replies::quic_stats(&agents[1]).unwrap();
        assert_eq!(blocked_stats.relay_legs_opened, 2, "{blocked_stats:?}");
        answerer.abort();
        println!("{taken}\n{direct}");
    });
    println!("CHILD-PASSED");
}
