//! Large responses into a real `hearsay agent` process (QUIC on by default): the originator
//! is the agent binary on loopback; three responders join it (in-process agents with QUIC,
//! answering through the agent's reply API with 16 MiB each in 64 KiB writes; RPC `respond`
//! cannot carry that much, its requests are capped at 4 MiB); `hearsay query -output-dir`
//! against the originator's RPC writes one file per node.
//!
//! Shows: the agent advertises `_hearsay_quic` and prints its QUIC address; every response
//! arrives intact in its file; the originator process's peak memory (VmHWM, reset through
//! `/proc/<pid>/clear_refs` before the query) grows by far less than the 48 MiB that crossed
//! it. Every wait is bounded; nothing asserts on speed.

mod agent_support;

use agent_support::{free_port, scratch, BIN};
use hearsay_agent::rpc::RpcClient;
use hearsay_agent::{AgentOptions, QuicOptions, SerfAgent};
use hearsay_net::quic::QUIC_TAG;
use hearsay_net::{Config, Profile, UdpTcpTransport};
use hearsay_serf::event::Event;
use hearsay_serf::SerfConfig;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
const SIZE: usize = 16 << 20;

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"))
}

/// A responder: an in-process agent with QUIC that answers every query with [`SIZE`]
/// pattern bytes through the reply API.
async fn responder(name: &str, join: SocketAddr) -> SerfAgent {
    let lo = SocketAddr::from(([127, 0, 0, 1], 0));
    let transport = UdpTcpTransport::bind(lo).await.unwrap();
    let addr = hearsay_net::Transport::local_addr(&transport);
    let config = SerfConfig::new(Config::profile(Profile::Local, name, addr));
    let quic = QuicOptions::pinned(lo, name).unwrap();
    let agent = SerfAgent::start_with_quic(AgentOptions::new(config), transport, quic).unwrap();
    agent.join(&[join], true).await.unwrap();
    let mut events = agent.subscribe();
    let me = agent.clone();
    tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            let Event::Query(q) = ev else { continue };
            let mut reply = me.open_reply(&q);
            tokio::spawn(async move {
                let mut off = 0;
                while off < SIZE {
                    let len = (64 << 10).min(SIZE - off);
                    let chunk: Vec<u8> = (off..off + len).map(pattern).collect();
                    if let Err(e) = reply.write(&chunk).await {
                        eprintln!("reply failed: {e}");
                        return;
                    }
                    off += len;
                }
                if let Err(e) = reply.finish().await {
                    eprintln!("reply failed: {e}");
                }
            });
        }
    });
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_stream_16mib_responses_to_hearsay_query_with_bounded_memory() {
    let dir = scratch("quic-agents");
    let gossip = [free_port()];
    let rpc = [free_port()];
    let args = |i: usize| {
        let a = vec![
            format!("-node=a{i}"),
            format!("-bind=127.0.0.1:{}", gossip[i]),
            format!("-rpc-addr=127.0.0.1:{}", rpc[i]),
            "-profile=local".to_owned(),
        ];
        a
    };
    // The originator is started here so its pid is known.
    let log = dir.join("a0.out");
    let origin = Killed(
        Command::new(BIN)
            .arg("agent")
            .args(args(0))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = origin.0.id();
    let rpc0 = format!("127.0.0.1:{}", rpc[0]);
    let deadline = Instant::now() + WAIT;
    let client = loop {
        match RpcClient::connect(&rpc0, None).await {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "a0 never started: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let join = SocketAddr::from(([127, 0, 0, 1], gossip[0]));
    let mut responders = Vec::new();
    for i in 1..4 {
        responders.push(responder(&format!("a{i}"), join).await);
    }
    // Everyone alive with an advert, as a0 sees it.
    let deadline = Instant::now() + WAIT;
    loop {
        let members = client.members().await.unwrap();
        let ready = members
            .iter()
            .filter(|m| m.status == "alive" && m.tags.contains_key(QUIC_TAG))
            .count();
        if ready == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "members: {members:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let banner = std::fs::read_to_string(&log).unwrap();
    assert!(banner.contains("QUIC addr: '127.0.0.1:"), "{banner}");

    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let rss_before = vm_kib(pid, "VmRSS:");
    let out_dir = dir.join("out");
    let cli = tokio::task::spawn_blocking({
        let out_dir = out_dir.clone();
        move || {
            Command::new("timeout")
                .arg("120")
                .arg(BIN)
                .args([
                    "query".to_owned(),
                    format!("-rpc-addr={rpc0}"),
                    format!("-output-dir={}", out_dir.display()),
                    "-timeout=60s".to_owned(),
                    "-no-ack".to_owned(),
                    "big".to_owned(),
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let peak = vm_kib(pid, "VmHWM:");
    let stdout = String::from_utf8_lossy(&cli.stdout);
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(cli.status.success(), "{stdout}{stderr}");
    for i in 1..4 {
        let path = out_dir.join(format!("a{i}"));
        let got = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
        assert_eq!(got.len(), SIZE, "a{i}");
        assert!(
            got.iter().enumerate().all(|(j, b)| *b == pattern(j)),
            "a{i}'s response is corrupt"
        );
        assert!(
            stdout.contains(&format!(
                "Response from 'a{i}': {SIZE} bytes written to {}",
                path.display()
            )),
            "{stdout}"
        );
    }
    assert!(stdout.contains("Total Responses: 3"), "{stdout}");
    let growth = peak.saturating_sub(rss_before);
    println!("originator agent: RSS before {rss_before} KiB, peak {peak} KiB (+{growth} KiB) while 3 x 16 MiB crossed it");
    assert!(
        growth < 16 * 1024,
        "the originator's peak grew by {growth} KiB"
    );
    for r in responders {
        r.shutdown().await;
    }
    drop(origin);
    let _ = std::fs::remove_dir_all(&dir);
}
