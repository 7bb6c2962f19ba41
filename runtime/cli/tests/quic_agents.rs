//! Large responses between real `hearsay agent` processes (QUIC on by default): four agents on
//! loopback; three run the ready-made `blob` WebAssembly handler on `query:blob` (its reply is
//! streamed chunk by chunk from the guest into QUIC); `hearsay query -output-dir blob 16777216`
//! against the fourth (the originator) writes one file per node.
//!
//! Shows: the agent advertises `_hearsay_quic` and prints its QUIC address; every node's
//! 16 MiB response arrives intact in its file (checked byte by byte against blob's pattern
//! i % 251); the originator process's peak memory (VmHWM, reset through
//! `/proc/<pid>/clear_refs` before the query) grows by far less than the 48 MiB that crossed
//! it. Every wait is bounded; nothing asserts on speed.

mod agent_support;

use agent_support::{free_port, scratch, BIN};
use hearsay_net::quic::QUIC_TAG;
use hearsay_rpc::{RpcClient, RpcMember};
use hearsay_testkit::wasm::guests;
use std::path::Path;
use std::process::{Child, Command};
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

/// Waits (at most [`WAIT`]) until `client`'s agent lists four alive members for which `also`
/// holds.
async fn wait_four_alive(
    client: &RpcClient,
    who: &str,
    dir: &Path,
    also: impl Fn(&RpcMember) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let members = client.members().await.unwrap();
        let ready = members
            .iter()
            .filter(|m| m.status == "alive" && also(m))
            .count();
        if ready == 4 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who} never saw all four; members: {members:?}\n{}",
            agent_logs(dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The agents' output, for a failure message.
fn agent_logs(dir: &Path) -> String {
    (0..4)
        .map(|i| {
            let text = std::fs::read_to_string(dir.join(format!("a{i}.out"))).unwrap_or_default();
            format!("-- a{i}:\n{text}")
        })
        .collect()
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_handlers_stream_16mib_responses_to_hearsay_query_with_bounded_memory() {
    let dir = scratch("quic-agents");
    let blob = &guests(Path::new(env!("CARGO_TARGET_TMPDIR"))).blob;
    let gossip = [free_port(), free_port(), free_port(), free_port()];
    let rpc = [free_port(), free_port(), free_port(), free_port()];
    // Every agent from a TOML file; the responders run `blob` with a deadline that leaves room
    // for a loaded machine (the reply streams while the guest runs).
    let start = |i: usize| {
        // The lan profile: its retransmit multiplier of 4 sends the query to all three others at
        // the originator's first gossip tick. The local profile's 2 sends it to two, and their two
        // rebroadcasts each miss the third node about 1 time in 9 (as Serf would).
        let mut toml = format!(
            "node_name = \"a{i}\"\nbind = \"127.0.0.1:{}\"\nrpc_addr = \"127.0.0.1:{}\"\n\
             profile = \"lan\"\n",
            gossip[i], rpc[i]
        );
        if i > 0 {
            toml += &format!(
                "start_join = [\"127.0.0.1:{}\"]\n\n[[handler]]\nmodule = {:?}\n\
                 events = \"query:blob\"\nlimits = {{ timeout = \"60s\" }}\n",
                gossip[0],
                blob.display().to_string()
            );
        }
        let config = dir.join(format!("a{i}.toml"));
        std::fs::write(&config, toml).unwrap();
        let out = std::fs::File::create(dir.join(format!("a{i}.out"))).unwrap();
        Killed(
            Command::new(BIN)
                .arg("agent")
                .arg(format!("-config-file={}", config.display()))
                .stderr(out.try_clone().unwrap())
                .stdout(out)
                .spawn()
                .unwrap(),
        )
    };
    // The originator first, so the others can join it.
    let log = dir.join("a0.out");
    let origin = start(0);
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
    let responders: Vec<Killed> = (1..4).map(start).collect();
    // Everyone alive with an advert, as a0 sees it.
    wait_four_alive(&client, "a0", &dir, |m| m.tags.contains_key(QUIC_TAG)).await;
    // And as every responder sees it: a query reaches a node from the originator's gossip or
    // from a rebroadcast, and a responder that has not yet heard of the newest member does not
    // rebroadcast to it (as in Serf), so a member that joined just before the query can miss it.
    for port in &rpc[1..] {
        let addr = format!("127.0.0.1:{port}");
        let peer = RpcClient::connect(&addr, None).await.unwrap();
        wait_four_alive(&peer, &addr, &dir, |_| true).await;
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
                    "blob".to_owned(),
                    SIZE.to_string(),
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
    assert!(cli.status.success(), "{stdout}{stderr}{}", agent_logs(&dir));
    for i in 1..4 {
        let path = out_dir.join(format!("a{i}"));
        let got = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}{}", agent_logs(&dir)));
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
    drop(responders);
    drop(origin);
    let _ = std::fs::remove_dir_all(&dir);
}
