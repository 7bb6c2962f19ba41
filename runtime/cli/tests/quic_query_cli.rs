//! `hearsay query` with large responses: three hearsay agents with QUIC run in-process on
//! loopback; two answer `blob N` through the agent's reply API (N pattern bytes in 64 KiB
//! writes, streamed over QUIC), one of them abandoning its reply halfway; the CLI binary runs
//! against the originator's RPC server.
//!
//! Shows: with `-output-dir` each node's response lands in its own file, complete ones byte
//! for byte, the abandoned one as `<node>.partial` with the failure on stderr; without it the
//! pieces stream to stdout under `==> node <==`; on a terminal (a pty from `script`) stderr
//! shows progress. Every wait is bounded; nothing asserts on speed.

use hearsay_agent::AgentBackend;
use hearsay_agent::{Node, NodeOptions, QuicOptions};
use hearsay_net::{Config, Profile, UdpTcpTransport};
use hearsay_rpc::{RpcServer, ServerOptions};
use hearsay_serf::event::{Event, MemberStatus};
use hearsay_serf::SerfConfig;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
const SIZE: usize = 1 << 20;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

async fn start(name: &str) -> Node {
    let transport = UdpTcpTransport::bind(loopback()).await.unwrap();
    let addr = hearsay_net::Transport::local_addr(&transport);
    let config = SerfConfig::new(Config::profile(Profile::Local, name.to_owned(), addr));
    let quic = QuicOptions::pinned(loopback(), name).unwrap();
    hearsay_agent::replies::start_with_quic(NodeOptions::new(config), transport, quic).unwrap()
}

/// Answers `blob N` with N pattern bytes; with `abandon`, drops the reply once the CLI has
/// written some of it to `abandon`'s file (so the abandonment is surely mid-stream).
fn answer(agent: Node, abandon: Option<std::path::PathBuf>) {
    let mut events = agent.subscribe();
    tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            let Event::Query(q) = ev else { continue };
            let agent = agent.clone();
            let abandon = abandon.clone();
            tokio::spawn(async move {
                let n: usize = String::from_utf8_lossy(&q.payload).parse().unwrap_or(0);
                let mut reply = hearsay_agent::QueryReply::open(&agent, (&q).into());
                let mut off = 0;
                while off < n {
                    let seen = abandon
                        .as_ref()
                        .and_then(|f| std::fs::metadata(f).ok())
                        .is_some_and(|m| m.len() > 0);
                    if seen {
                        return; // dropped: the originator sees this response fail
                    }
                    if abandon.is_some() && off >= n / 2 {
                        if Instant::now() > q.deadline {
                            return;
                        }
                        // Hold the stream open until the CLI shows it received a piece.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    let len = (64 << 10).min(n - off);
                    let chunk: Vec<u8> = (off..off + len).map(pattern).collect();
                    if reply.write(&chunk).await.is_err() {
                        return;
                    }
                    off += len;
                }
                let _ = reply.finish().await;
            });
        }
    });
}

async fn hearsay(rpc: &RpcServer, args: &[&str]) -> Output {
    let mut all = vec![
        args[0].to_owned(),
        format!("-rpc-addr={}", rpc.local_addr()),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearsay_query_streams_large_responses_to_files_and_stdout() {
    let origin = start("origin").await;
    let good = start("good").await;
    let quitter = start("quitter").await;
    for a in [&good, &quitter] {
        a.join(&[origin.local_addr()], true).await.unwrap();
    }
    let deadline = Instant::now() + WAIT;
    while origin
        .members()
        .await
        .unwrap()
        .iter()
        .filter(|m| m.status == MemberStatus::Alive)
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "cluster never formed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = std::env::temp_dir().join(format!("hearsay-query-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    answer(good.clone(), None);
    answer(quitter.clone(), Some(dir.join("quitter")));
    let rpc = RpcServer::bind(
        loopback(),
        AgentBackend::new(origin.clone()),
        ServerOptions::default(),
    )
    .await
    .unwrap();

    let size = SIZE.to_string();
    let dir_arg = format!("-output-dir={}", dir.display());
    let out = hearsay(&rpc, &["query", &dir_arg, "-timeout=10s", "blob", &size]).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    let got = std::fs::read(dir.join("good")).unwrap();
    assert_eq!(got.len(), SIZE);
    assert!(got.iter().enumerate().all(|(i, b)| *b == pattern(i)));
    let partial = std::fs::read(dir.join("quitter.partial"))
        .unwrap_or_else(|e| panic!("quitter.partial: {e}\n{stdout}{stderr}"));
    assert!(partial.len() < SIZE);
    assert!(partial.iter().enumerate().all(|(i, b)| *b == pattern(i)));
    assert!(!dir.join("quitter").exists());
    assert!(
        stdout.contains(&format!(
            "Response from 'good': {SIZE} bytes written to {}",
            dir.join("good").display()
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("Response from 'quitter' failed after"),
        "{stderr}"
    );
    assert!(stdout.contains("Total Responses: 2"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();

    // On a terminal (a pty from `script`), stderr shows progress; the final line counts
    // every node and byte.
    let dir2 = std::env::temp_dir().join(format!("hearsay-query-tty-{}", std::process::id()));
    let cmd = format!(
        "{} query -rpc-addr={} -output-dir={} -node=good -timeout=10s blob 300000",
        env!("CARGO_BIN_EXE_hearsay"),
        rpc.local_addr(),
        dir2.display()
    );
    let tty = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args(["60", "script", "-qec", &cmd, "/dev/null"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{shown}");
    assert!(
        shown.contains("acked 1 · responded 1 (0 streaming) · 293.0 KiB received"),
        "{shown}"
    );
    assert_eq!(std::fs::read(dir2.join("good")).unwrap().len(), 300000);
    std::fs::remove_dir_all(&dir2).unwrap();

    // To stdout: the bytes follow a `==> good <==` line.
    let out = hearsay(
        &rpc,
        &[
            "query",
            "-node=good",
            "-timeout=10s",
            "-no-ack",
            "blob",
            "100000",
        ],
    )
    .await;
    assert!(out.status.success());
    let stdout = out.stdout;
    let marker = b"==> good <==\n";
    let at = stdout
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("no ==> good <== line");
    let body = &stdout[at + marker.len()..];
    assert!(body.len() > 100000);
    assert!(body[..100000]
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern(i)));
    let tail = String::from_utf8_lossy(&body[100000..]);
    assert!(
        tail.starts_with("\nResponse from 'good' complete: 100000 bytes\nTotal Responses: 1"),
        "{tail}"
    );
}
