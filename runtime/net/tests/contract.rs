//! The transport contract: one set of test bodies run against both [`UdpTcpTransport`] (real
//! sockets on 127.0.0.1) and [`MemTransport`] (the in-memory network). The first group checks
//! the transports alone; the second runs whole membership nodes on them.
//!
//! Every wait is bounded by a generous timeout; nothing asserts on how fast things happen.

use anyhow::{anyhow, bail, ensure, Context, Result};
use hearsay_net::{
    Config, Connector, Error, Event, MemNetwork, Member, Memberlist, Options, Transport,
    UdpTcpTransport,
};
use hearsay_swim::wire::NodeStateKind;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;
use tokio::time::timeout;

/// The bound on every wait for the cluster to reach a state (generous: CI machines are slow).
const WAIT: Duration = Duration::from_secs(30);
/// The bound on single I/O steps.
const IO_WAIT: Duration = Duration::from_secs(10);

/// A place to create endpoints: real loopback sockets or one in-memory network.
trait Net {
    type T: Transport;
    /// A fresh endpoint on 127.0.0.1 with a port picked for us.
    fn endpoint(&self) -> impl Future<Output = Self::T>;
}

struct UdpNet;

impl Net for UdpNet {
    type T = UdpTcpTransport;
    async fn endpoint(&self) -> UdpTcpTransport {
        UdpTcpTransport::bind("127.0.0.1:0".parse().unwrap())
            .await
            .expect("bind 127.0.0.1:0")
    }
}

struct MemNet(MemNetwork);

impl MemNet {
    fn new() -> Self {
        Self(MemNetwork::new(7))
    }
}

impl Net for MemNet {
    type T = hearsay_net::MemTransport;
    async fn endpoint(&self) -> hearsay_net::MemTransport {
        self.0
            .bind("127.0.0.1:0".parse().unwrap())
            .expect("bind in memory")
    }
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
}

// ----- transport contract ----------------------------------------------------------------

async fn datagrams_arrive_with_sender<N: Net>(net: N) -> Result<()> {
    let a = net.endpoint().await;
    let b = net.endpoint().await;
    ensure!(
        a.local_addr() != b.local_addr(),
        "two endpoints share an address"
    );
    ensure!(a.local_addr().port() != 0, "port 0 was not replaced");
    let mut buf = vec![0u8; 2048];
    // A datagram may be lost on a real network in theory; on loopback it is not. Retry a few
    // times anyway so the test checks delivery, not luck.
    for attempt in 0..5 {
        a.send_packet(b.local_addr(), b"hello").await?;
        if let Ok(r) = timeout(Duration::from_secs(2), b.recv_packet(&mut buf)).await {
            let (n, from) = r?;
            ensure!(&buf[..n] == b"hello", "payload changed: {:?}", &buf[..n]);
            ensure!(
                from == a.local_addr(),
                "sender {from} != {}",
                a.local_addr()
            );
            return Ok(());
        }
        eprintln!("attempt {attempt}: no datagram yet");
    }
    bail!("no datagram arrived")
}

async fn streams_carry_bytes_both_ways<N: Net>(net: N) -> Result<()> {
    let a = net.endpoint().await;
    let b = net.endpoint().await;
    let connector = a.connector();
    let dst = b.local_addr();
    let client = tokio::spawn(async move {
        let mut s = timeout(IO_WAIT, connector.connect(dst)).await??;
        s.write_all(b"ping").await?;
        let mut reply = vec![0u8; 4];
        s.read_exact(&mut reply).await?;
        anyhow::Ok(reply)
    });
    let (mut s, _from) = timeout(IO_WAIT, b.accept()).await??;
    let mut req = vec![0u8; 4];
    timeout(IO_WAIT, s.read_exact(&mut req)).await??;
    ensure!(req == b"ping");
    s.write_all(b"pong").await?;
    let reply = timeout(IO_WAIT, client).await???;
    ensure!(reply == b"pong");
    Ok(())
}

async fn connecting_to_a_closed_endpoint_fails<N: Net>(net: N) -> Result<()> {
    let a = net.endpoint().await;
    let gone = net.endpoint().await;
    let dst = gone.local_addr();
    drop(gone);
    let r = timeout(IO_WAIT, a.connector().connect(dst)).await?;
    ensure!(r.is_err(), "connected to a closed endpoint");
    // Datagrams to it vanish without an error surfacing as a panic or hang.
    let _ = timeout(IO_WAIT, a.send_packet(dst, b"x")).await?;
    Ok(())
}

// ----- membership contract -------------------------------------------------------------

static SEED: AtomicU64 = AtomicU64::new(1);

/// memberlist's local profile, probing faster so failures are found sooner.
fn fast_config(name: &str, addr: SocketAddr) -> Config {
    let mut c = Config::local(name, addr);
    c.probe_interval = Duration::from_millis(200);
    c.probe_timeout = Duration::from_millis(100);
    c.gossip_interval = Duration::from_millis(50);
    // In a cluster this small, the local profile retransmits each broadcast twice and a node
    // can miss one; anti-entropy repairs that, well inside WAIT.
    c.push_pull_interval = Duration::from_secs(2);
    c.suspicion_mult = 3;
    c
}

async fn start<N: Net>(net: &N, name: &str) -> Result<Memberlist> {
    let t = net.endpoint().await;
    let config = fast_config(name, t.local_addr());
    let seed = SEED.fetch_add(1, Ordering::Relaxed);
    Ok(Memberlist::start(Options::new(config).seed(seed), t)?)
}

/// Polls `check` every 50 ms until it holds, at most [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {WAIT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads events until one satisfies `pred`, at most [`WAIT`].
async fn wait_event(
    rx: &mut broadcast::Receiver<Event>,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Result<Event> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => bail!("timed out after {WAIT:?} waiting for {what}"),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => bail!("event stream ended waiting for {what}: {e}"),
            Ok(Ok(ev)) if pred(&ev) => return Ok(ev),
            Ok(Ok(_)) => continue,
        }
    }
}

fn state_of(members: &[Member], name: &str) -> Option<NodeStateKind> {
    members.iter().find(|m| m.name == name).map(|m| m.state)
}

async fn all_alive(nodes: &[Memberlist], n: usize) -> Result<bool> {
    for node in nodes {
        let members = node.members().await?;
        let alive = members
            .iter()
            .filter(|m| m.state == NodeStateKind::Alive)
            .count();
        if alive != n {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Three nodes started and joined through the first.
async fn three<N: Net>(net: &N) -> Result<[Memberlist; 3]> {
    let a = start(net, "a").await?;
    let b = start(net, "b").await?;
    let c = start(net, "c").await?;
    ensure!(b.join(&[a.local_addr()]).await? == 1);
    ensure!(c.join(&[a.local_addr()]).await? == 1);
    let all = [a.clone(), b.clone(), c.clone()];
    eventually("3 alive members everywhere", || all_alive(&all, 3)).await?;
    Ok([a, b, c])
}

async fn three_nodes_converge<N: Net>(net: N) -> Result<()> {
    init_logs();
    let [a, b, c] = three(&net).await?;
    for node in [&a, &b, &c] {
        let members = node.members().await?;
        let mut names: Vec<_> = members.iter().map(|m| m.name.clone()).collect();
        names.sort();
        ensure!(names == ["a", "b", "c"], "{} sees {names:?}", node.name());
        for m in &members {
            let owner = [&a, &b, &c]
                .into_iter()
                .find(|n| n.name() == m.name)
                .unwrap();
            ensure!(
                m.addr == owner.local_addr(),
                "{} has {} at {}",
                node.name(),
                m.name,
                m.addr
            );
        }
        ensure!(node.num_alive().await? == 3);
        ensure!(node.local().await?.name == node.name());
    }
    for n in [a, b, c] {
        n.shutdown().await;
    }
    Ok(())
}

async fn crash_is_detected_as_failed<N: Net>(net: N) -> Result<()> {
    init_logs();
    let [a, b, c] = three(&net).await?;
    let mut ea = a.subscribe();
    let mut eb = b.subscribe();
    c.shutdown().await;
    ensure!(
        c.is_stopped(),
        "shutdown returned while the task still runs"
    );
    ensure!(matches!(c.members().await, Err(Error::Stopped)));
    // Its sockets are closed: nothing accepts connections there any more.
    let probe = net.endpoint().await;
    let r = timeout(IO_WAIT, probe.connector().connect(c.local_addr())).await?;
    ensure!(r.is_err(), "a stopped node still accepts connections");
    let failed_c = |e: &Event| matches!(e, Event::MemberFailed(m) if m.name == "c");
    wait_event(&mut ea, "a to see c fail", failed_c).await?;
    wait_event(&mut eb, "b to see c fail", failed_c).await?;
    ensure!(state_of(&a.members().await?, "c") == Some(NodeStateKind::Dead));
    ensure!(state_of(&a.members().await?, "b") == Some(NodeStateKind::Alive));
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}

async fn leave_is_seen_as_left<N: Net>(net: N) -> Result<()> {
    init_logs();
    let [a, b, c] = three(&net).await?;
    let mut ea = a.subscribe();
    let mut eb = b.subscribe();
    c.leave(WAIT).await.context("leave")?;
    let left_c = |e: &Event| matches!(e, Event::MemberLeft(m) if m.name == "c");
    wait_event(&mut ea, "a to see c leave", left_c).await?;
    wait_event(&mut eb, "b to see c leave", left_c).await?;
    // Leaving again is immediate.
    c.leave(IO_WAIT).await?;
    c.shutdown().await;
    // After the departure, no one later reports c as failed instead.
    ensure!(state_of(&a.members().await?, "c") == Some(NodeStateKind::Left));
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}

async fn join_to_nothing_names_the_address<N: Net>(net: N) -> Result<()> {
    init_logs();
    let a = start(&net, "a").await?;
    let dead = net.endpoint().await.local_addr(); // dropped at once: nothing listens
    let err = a
        .join(&[dead])
        .await
        .err()
        .ok_or_else(|| anyhow!("join to {dead} succeeded"))?;
    match &err {
        Error::JoinFailed { errors } => {
            ensure!(errors.len() == 1 && errors[0].0 == dead, "{errors:?}");
        }
        other => bail!("unexpected error {other:?}"),
    }
    ensure!(err.to_string().contains(&dead.to_string()), "{err}");
    // One live address among dead ones is enough.
    let b = start(&net, "b").await?;
    ensure!(a.join(&[dead, b.local_addr()]).await? == 1);
    let both = [a.clone(), b.clone()];
    eventually("a and b to see each other", || all_alive(&both, 2)).await?;
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}

/// Reads from `s` until the peer closes it (EOF or reset), at most [`WAIT`].
async fn closed_by_peer<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Result<()> {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => bail!("the node never closed the connection"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(_)) => continue,
        }
    }
}

async fn garbage_does_not_break_the_node<N: Net>(net: N) -> Result<()> {
    init_logs();
    let a = start(&net, "a").await?;
    let dst = a.local_addr();
    let rogue = net.endpoint().await;

    // Datagrams: empty, every type byte alone, truncated and random bodies.
    rogue.send_packet(dst, b"").await?;
    for t in 0..=255u8 {
        rogue.send_packet(dst, &[t]).await?;
        rogue.send_packet(dst, &[t, 0x85, 0xa1, b'x', 0xff]).await?;
    }
    let mut x = 0x9e37_79b9_u32;
    for len in [3usize, 64, 700, 1400, 9000] {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        rogue.send_packet(dst, &junk).await?;
    }

    // A stream client that sends garbage gets an answer (or nothing) and is closed.
    let connector = rogue.connector();
    let mut junk = timeout(IO_WAIT, connector.connect(dst)).await??;
    junk.write_all(&[0xff; 300]).await?;
    closed_by_peer(&mut junk).await.context("garbage stream")?;

    // Stalled clients: one sends nothing, one the start of a push/pull and then nothing.
    let mut silent = timeout(IO_WAIT, connector.connect(dst)).await??;
    let mut partial = timeout(IO_WAIT, connector.connect(dst)).await??;
    partial.write_all(&[6, 0x83]).await?;

    // While they stall, the node keeps working: two nodes join through it.
    let b = start(&net, "b").await?;
    let c = start(&net, "c").await?;
    ensure!(b.join(&[dst]).await? == 1);
    ensure!(c.join(&[dst]).await? == 1);
    let all = [a.clone(), b.clone(), c.clone()];
    eventually("3 alive members everywhere", || all_alive(&all, 3)).await?;

    // And the stalled connections are dropped after the TCP timeout.
    closed_by_peer(&mut silent).await.context("silent stream")?;
    closed_by_peer(&mut partial)
        .await
        .context("partial stream")?;

    for n in [a, b, c] {
        n.shutdown().await;
    }
    Ok(())
}

async fn user_messages_arrive<N: Net>(net: N) -> Result<()> {
    init_logs();
    let [a, b, c] = three(&net).await?;
    let mut eb = b.subscribe();
    let mut ec = c.subscribe();
    let user =
        |want: &'static [u8]| move |e: &Event| matches!(e, Event::UserMessage(m) if m == want);

    a.send_user_stream(b.local_addr(), b"by stream".to_vec())
        .await?;
    wait_event(&mut eb, "the stream message", user(b"by stream")).await?;

    // Datagrams may be lost; resend until one arrives (bounded).
    let mut got = false;
    for _ in 0..20 {
        a.send_user_packet(c.local_addr(), b"by packet".to_vec())
            .await?;
        let r = timeout(Duration::from_millis(500), async {
            loop {
                match ec.recv().await {
                    Ok(Event::UserMessage(m)) if m == b"by packet" => return true,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return false,
                }
            }
        })
        .await;
        if r == Ok(true) {
            got = true;
            break;
        }
    }
    ensure!(got, "no user packet arrived");

    // Metadata changes reach the others as updates.
    let mut ea = a.subscribe();
    c.set_meta(b"role=db".to_vec()).await?;
    wait_event(
        &mut ea,
        "c's new metadata",
        |e| matches!(e, Event::MemberUpdated(m) if m.name == "c" && m.meta == b"role=db"),
    )
    .await?;
    ensure!(matches!(
        c.set_meta(vec![0; 600]).await,
        Err(Error::Swim(hearsay_swim::Error::MetaTooLarge(600)))
    ));
    for n in [a, b, c] {
        n.shutdown().await;
    }
    Ok(())
}

async fn user_broadcasts_reach_everyone<N: Net>(net: N) -> Result<()> {
    init_logs();
    let [a, b, c] = three(&net).await?;
    let mut eb = b.subscribe();
    let mut ec = c.subscribe();
    let user =
        |want: &'static [u8]| move |e: &Event| matches!(e, Event::UserMessage(m) if m == want);
    a.queue_user_broadcast(b"to all".to_vec(), None).await?;
    wait_event(&mut eb, "the broadcast at b", user(b"to all")).await?;
    wait_event(&mut ec, "the broadcast at c", user(b"to all")).await?;
    for n in [a, b, c] {
        n.shutdown().await;
    }
    Ok(())
}

macro_rules! contract {
    ($($(#[$attr:meta])* $test:ident),* $(,)?) => {
        mod udp_tcp {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    super::$test(super::UdpNet).await
                }
            )*
        }
        mod mem {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    super::$test(super::MemNet::new()).await
                }
            )*
        }
    };
}

contract!(
    datagrams_arrive_with_sender,
    streams_carry_bytes_both_ways,
    connecting_to_a_closed_endpoint_fails,
    three_nodes_converge,
    crash_is_detected_as_failed,
    leave_is_seen_as_left,
    join_to_nothing_names_the_address,
    garbage_does_not_break_the_node,
    user_messages_arrive,
    user_broadcasts_reach_everyone,
);
