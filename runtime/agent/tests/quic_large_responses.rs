//! Large query responses over real QUIC on loopback, with responders as real processes.
//!
//! The responders are this test binary re-run as child processes (the ignored
//! `responder_child` test, configured by environment variables): each starts a `Node`
//! with its QUIC endpoint, joins the originator and answers queries through the reply API
//! (`QueryReply::open`, 64 KiB writes of the pattern `offset % 251`). The originator
//! runs in the test process, so its peak memory (VmHWM, reset through `/proc/self/clear_refs`
//! before the query) measures only what receiving costs.
//!
//! Shows: three 16 MiB responses arrive intact (every byte checked while streaming) with the
//! originator's peak memory bounded; small replies still take Serf's UDP path; a responder
//! killed (SIGKILL) mid-stream fails only its own response; a certificate that no member
//! advertises is refused in the handshake and logged; a member whose certificate is not the
//! one the named node advertises is refused and logged; a response to an unknown query is
//! dropped and logged. Every wait is bounded; nothing asserts on speed.

mod common;
use common::{capture_logs, wait_log, wait_quic_members};
use hearsay_agent::{Node, NodeOptions, QueryResult, QuicOptions};
use hearsay_net::quic::{QuicAdvert, QuicConfig, QuicEndpoint, ResponseHeader, Security, QUIC_TAG};
use hearsay_net::{Config, Profile, UdpTcpTransport};
use hearsay_serf::event::{Event, QueryEvent};
use hearsay_serf::{QueryParams, SerfConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
const CHUNK: usize = 64 << 10;
const WAIT: Duration = Duration::from_secs(60);

/// The tests run one at a time: the memory measurement covers this whole process, and the
/// responder processes share two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn start_agent(name: &str, tags: BTreeMap<String, String>, quic: bool) -> Node {
    let transport = UdpTcpTransport::bind(loopback()).await.unwrap();
    let addr = hearsay_net::Transport::local_addr(&transport);
    let mut config = SerfConfig::new(Config::profile(Profile::Local, name.to_owned(), addr));
    // Four nodes: with the local profile's retransmit multiplier (2) a query is sent only
    // twice, and the rebroadcasts miss the third responder about one time in nine (as in
    // Serf). Four sends reach every responder from the originator directly.
    config.memberlist.retransmit_mult = 4;
    config.tags = tags;
    let options = NodeOptions::new(config);
    if quic {
        let q = QuicOptions::pinned(loopback(), name).unwrap();
        hearsay_agent::replies::start_with_quic(options, transport, q).unwrap()
    } else {
        Node::start(options, transport).unwrap()
    }
}

/// The byte at `offset` of every blob.
fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// Answers one query: `blob N` / `slowblob N` stream N pattern bytes (slowblob pausing 20 ms
/// between chunks), anything else gets a short UDP-sized reply.
async fn answer(agent: Node, q: QueryEvent) {
    let size: usize = String::from_utf8_lossy(&q.payload).parse().unwrap_or(0);
    let slow = q.name == "slowblob";
    let mut reply = hearsay_agent::QueryReply::open(&agent, (&q).into());
    if q.name == "blob" || slow {
        let mut buf = vec![0u8; CHUNK];
        let mut offset = 0usize;
        while offset < size {
            let n = CHUNK.min(size - offset);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern((offset + i) as u64);
            }
            if let Err(e) = reply.write(&buf[..n]).await {
                println!("REPLY-FAILED {} {e}", q.name);
                return;
            }
            offset += n;
            if slow {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    } else {
        let text = format!("hello from {}", agent.name());
        reply.write(text.as_bytes()).await.unwrap();
    }
    match reply.finish().await {
        Ok(path) => println!("REPLIED {} {path:?}", q.name),
        Err(e) => println!("REPLY-FAILED {} {e}", q.name),
    }
}

async fn answer_queries(agent: Node) {
    let mut events = agent.subscribe();
    while let Ok(ev) = events.recv().await {
        if let Event::Query(q) = ev {
            tokio::spawn(answer(agent.clone(), q));
        }
    }
}

/// Not a test on its own: the responder process the other tests start (it does nothing
/// unless `QUIC_CHILD_JOIN` is set). Exits by itself after two minutes at the latest.
#[test]
#[ignore = "run as a child process by the other tests"]
fn responder_child() {
    let Ok(join) = std::env::var("QUIC_CHILD_JOIN") else {
        return;
    };
    let name = std::env::var("QUIC_CHILD_NAME").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let agent = start_agent(&name, BTreeMap::new(), true).await;
        agent.join(&[join.parse().unwrap()], true).await.unwrap();
        println!("READY {name}");
        std::io::stdout().flush().unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(120), answer_queries(agent)).await;
    });
}

/// A responder process; killed however the test ends.
struct Responder {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Responder {
    fn start(name: &str, join: SocketAddr) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["responder_child", "--exact", "--ignored", "--nocapture"])
            .env("QUIC_CHILD_JOIN", join.to_string())
            .env("QUIC_CHILD_NAME", name)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let r = Self { child, lines };
        r.wait_line("READY");
        r
    }

    fn wait_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(e) => panic!("no line starting with {prefix:?}: {e}"),
            }
        }
    }

    /// SIGKILL: no QUIC close frame, the process just stops answering.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }
}

/// What the originator saw of one node's answer.
#[derive(Debug, Default)]
struct Received {
    bytes: u64,
    /// The first offset whose byte was not the pattern.
    corrupt_at: Option<u64>,
    end: Option<Result<u64, String>>,
    udp: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Outcome {
    nodes: BTreeMap<String, Received>,
    largest_chunk: usize,
    done: bool,
}

/// Runs a query and checks every chunk against the pattern as it arrives; `on_chunk` sees
/// each (node, bytes so far) so a test can act mid-stream.
async fn run_query(
    agent: &Node,
    name: &str,
    payload: &str,
    timeout: Duration,
    mut on_chunk: impl FnMut(&str, u64),
) -> Outcome {
    let params = QueryParams {
        timeout,
        finish_early: true,
        ..QueryParams::default()
    };
    let mut results = agent.query(name, payload.as_bytes(), params).await.unwrap();
    let mut out = Outcome::default();
    let limit = timeout + WAIT;
    tokio::time::timeout(limit, async {
        while let Some(r) = results.next().await {
            match r {
                QueryResult::ResponseChunk { from, chunk } => {
                    out.largest_chunk = out.largest_chunk.max(chunk.len());
                    let rec = out.nodes.entry(from.clone()).or_default();
                    if rec.corrupt_at.is_none() {
                        if let Some(i) = chunk
                            .iter()
                            .enumerate()
                            .position(|(i, b)| *b != pattern(rec.bytes + i as u64))
                        {
                            rec.corrupt_at = Some(rec.bytes + i as u64);
                        }
                    }
                    rec.bytes += chunk.len() as u64;
                    on_chunk(&from, rec.bytes);
                }
                QueryResult::ResponseEnd { from, result } => {
                    out.nodes.entry(from).or_default().end = Some(result);
                }
                QueryResult::Response { from, payload } => {
                    out.nodes.entry(from).or_default().udp = Some(payload);
                }
                QueryResult::Ack { .. } => {}
                QueryResult::Done => out.done = true,
            }
        }
    })
    .await
    .expect("the query's results never ended");
    out
}

fn vm_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/self/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_16mib_responses_arrive_intact_with_bounded_memory() {
    let _serial = SERIAL.lock().await;
    let origin = start_agent("origin", BTreeMap::new(), true).await;
    let names = ["r0", "r1", "r2"];
    let responders: Vec<Responder> = names
        .iter()
        .map(|n| Responder::start(n, origin.local_addr()))
        .collect();
    wait_quic_members(&origin, &names).await;

    // Small replies stay on Serf's UDP path.
    let small = run_query(&origin, "small", "", Duration::from_secs(10), |_, _| {}).await;
    for n in names {
        let rec = &small.nodes[n];
        assert_eq!(
            rec.udp.as_deref(),
            Some(format!("hello from {n}").as_bytes())
        );
        assert!(rec.end.is_none(), "{n} used QUIC for a small reply");
    }
    for r in &responders {
        assert!(r.wait_line("REPLIED small").contains("Udp"));
    }

    // Peak memory from here on: clear_refs "5" resets VmHWM to the current RSS.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let rss_before = vm_kib("VmRSS:");
    let size = 16 * MIB;
    let out = run_query(
        &origin,
        "blob",
        &size.to_string(),
        Duration::from_secs(60),
        |_, _| {},
    )
    .await;
    let peak = vm_kib("VmHWM:");
    assert!(out.done);
    for n in names {
        let rec = &out.nodes[n];
        assert_eq!(rec.end, Some(Ok(size as u64)), "{n}: {rec:?}");
        assert_eq!(rec.bytes, size as u64, "{n}");
        assert_eq!(rec.corrupt_at, None, "{n}: corrupt byte");
        assert!(rec.udp.is_none());
    }
    for r in &responders {
        assert!(r.wait_line("REPLIED blob").contains("Quic"));
    }
    assert!(
        out.largest_chunk <= CHUNK,
        "chunk of {} bytes",
        out.largest_chunk
    );
    let growth_kib = peak.saturating_sub(rss_before);
    println!(
        "originator: 3 x {} MiB received; RSS before {rss_before} KiB, peak {peak} KiB (+{growth_kib} KiB); largest chunk {} bytes",
        size / MIB,
        out.largest_chunk
    );
    // 48 MiB crossed this process; holding even one whole response would add 16 MiB.
    assert!(
        growth_kib < 12 * 1024,
        "originator's peak grew by {growth_kib} KiB while receiving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_responder_mid_stream_fails_only_its_response() {
    let _serial = SERIAL.lock().await;
    let origin = start_agent("origin", BTreeMap::new(), true).await;
    let names = ["k0", "k1", "k2"];
    let mut responders: Vec<Responder> = names
        .iter()
        .map(|n| Responder::start(n, origin.local_addr()))
        .collect();
    wait_quic_members(&origin, &names).await;
    let size = 4 * MIB;
    let victim = std::cell::RefCell::new(Some(responders.remove(0)));
    let out = run_query(
        &origin,
        "slowblob",
        &size.to_string(),
        Duration::from_secs(15),
        |from, bytes| {
            if from == "k0" && bytes >= MIB as u64 {
                if let Some(mut r) = victim.borrow_mut().take() {
                    r.kill9();
                }
            }
        },
    )
    .await;
    assert!(victim.borrow().is_none(), "k0 was never killed");
    assert!(out.done);
    let k0 = &out.nodes["k0"];
    assert!(
        matches!(&k0.end, Some(Err(_))),
        "k0's response should fail: {k0:?}"
    );
    assert!(k0.bytes < size as u64);
    assert_eq!(k0.corrupt_at, None);
    for n in &names[1..] {
        let rec = &out.nodes[*n];
        assert_eq!(rec.end, Some(Ok(size as u64)), "{n}: {rec:?}");
        assert_eq!(rec.corrupt_at, None);
    }
    println!("k0 failed with: {:?}", k0.end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_wrong_certificates_are_refused_and_logged() {
    let _serial = SERIAL.lock().await;
    capture_logs("info");
    let origin = start_agent("cert-origin", BTreeMap::new(), true).await;
    let honest = start_agent("honest", BTreeMap::new(), true).await;
    // "mallory" is a member whose advert names a certificate it holds, but it will claim to
    // be "honest" in its response header.
    let (mallory_ep, _in) = QuicEndpoint::bind(QuicConfig::new(
        loopback(),
        Security::pinned("mallory").unwrap(),
    ))
    .unwrap();
    let mut tags = BTreeMap::new();
    tags.insert(QUIC_TAG.to_owned(), mallory_ep.advert().to_tag_value());
    let mallory = start_agent("mallory", tags, false).await;
    for a in [&honest, &mallory] {
        a.join(&[origin.local_addr()], true).await.unwrap();
    }
    wait_quic_members(&origin, &["honest", "mallory"]).await;
    let origin_advert: QuicAdvert = hearsay_agent::replies::quic_advert(&origin).unwrap();

    // A query for the responses to answer; `honest` listens before it starts.
    let mut honest_events = honest.subscribe();
    let params = QueryParams {
        timeout: Duration::from_secs(20),
        ..QueryParams::default()
    };
    let mut results = origin.query("cert", b"", params).await.unwrap();
    let qid = results.id();

    // 1. A certificate no member advertises: refused in the handshake.
    let (stranger, _in2) = QuicEndpoint::bind(QuicConfig::new(
        loopback(),
        Security::pinned("stranger").unwrap(),
    ))
    .unwrap();
    let header = |from: &str| ResponseHeader {
        ltime: qid.ltime,
        query_id: qid.id,
        from: from.to_owned(),
        total_len: None,
        relay: None,
    };
    let refused = async {
        let mut w = stranger
            .open_response(&origin_advert, &header("honest"))
            .await?;
        w.write(&[1u8; 4096]).await?;
        w.finish().await
    }
    .await
    .expect_err("a stranger's certificate must be refused");
    assert!(
        refused
            .to_string()
            .contains("does not belong to a known member"),
        "{refused}"
    );
    wait_log("does not belong to a known member").await;

    // 2. A member's certificate used to answer in another member's name: dropped, logged.
    let mut w = mallory_ep
        .open_response(&origin_advert, &header("honest"))
        .await
        .unwrap();
    w.write(&[2u8; 4096]).await.unwrap();
    let err = w.finish().await.expect_err("impersonation must be refused");
    assert!(err.to_string().contains("dropped"), "{err}");
    let line = wait_log("refusing a response claiming to be from \"honest\"").await;
    assert!(
        line.contains(&mallory_ep.fingerprint().to_string()),
        "{line}"
    );

    // 3. A response to a query the originator never ran: dropped, logged.
    let mut bogus = header("mallory");
    bogus.query_id ^= 1;
    let mut w = mallory_ep
        .open_response(&origin_advert, &bogus)
        .await
        .unwrap();
    w.write(&[3u8; 4096]).await.unwrap();
    assert!(w.finish().await.is_err());
    wait_log("unknown or finished query").await;

    // 4. The honest member still gets through, under its own name.
    let honest_task = tokio::spawn({
        let honest = honest.clone();
        async move {
            let q = tokio::time::timeout(WAIT, async {
                loop {
                    if let Ok(Event::Query(q)) = honest_events.recv().await {
                        if q.id == qid.id {
                            return q;
                        }
                    }
                }
            })
            .await
            .expect("the query never reached honest");
            hearsay_agent::QueryReply::respond(&honest, (&q).into(), &[7u8; 5000]).await
        }
    });
    let mut got = 0u64;
    let mut ended = None;
    tokio::time::timeout(WAIT, async {
        while let Some(r) = results.next().await {
            match r {
                QueryResult::ResponseChunk { from, chunk } => {
                    assert_eq!(from, "honest");
                    assert!(chunk.iter().all(|b| *b == 7));
                    got += chunk.len() as u64;
                }
                QueryResult::ResponseEnd { from, result } => {
                    assert_eq!(from, "honest");
                    ended = Some(result);
                    break;
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ended, Some(Ok(5000)));
    assert_eq!(got, 5000);
    let path = honest_task.await.unwrap().unwrap();
    assert_eq!(path, hearsay_agent::ReplyPath::Quic { bytes: 5000 });
}
