//! Scenarios only the in-memory network can stage: packet loss and partitions, with whole
//! membership nodes on top. Every wait is bounded; nothing asserts on speed.

use anyhow::{bail, ensure, Result};
use hearsay_net::{Config, Event, MemNetwork, Memberlist, Options, Transport};
use hearsay_swim::wire::NodeStateKind;
use std::time::Duration;
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(30);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
}

fn start(net: &MemNetwork, name: &str, seed: u64) -> Result<Memberlist> {
    let t = net.bind("10.0.0.1:0".parse()?)?;
    let mut c = Config::local(name, t.local_addr());
    c.probe_interval = Duration::from_millis(200);
    c.probe_timeout = Duration::from_millis(100);
    c.gossip_interval = Duration::from_millis(50);
    // Anti-entropy repairs any gossip a small cluster happens to miss, well inside WAIT.
    c.push_pull_interval = Duration::from_secs(2);
    Ok(Memberlist::start(Options::new(c).seed(seed), t)?)
}

async fn wait_event(
    rx: &mut broadcast::Receiver<Event>,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => bail!("timed out waiting for {what}"),
            Ok(Ok(ev)) if pred(&ev) => return Ok(()),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => bail!("event stream ended waiting for {what}: {e}"),
        }
    }
}

async fn alive_count(node: &Memberlist) -> Result<usize> {
    Ok(node
        .members()
        .await?
        .iter()
        .filter(|m| m.state == NodeStateKind::Alive)
        .count())
}

async fn converge(nodes: &[Memberlist]) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut done = true;
        for n in nodes {
            done &= alive_count(n).await? == nodes.len();
        }
        if done {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{} nodes did not converge", nodes.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_node_is_declared_failed() -> Result<()> {
    init_logs();
    let net = MemNetwork::new(1);
    let nodes: Vec<Memberlist> = (0..4)
        .map(|i| start(&net, &format!("n{i}"), i))
        .collect::<Result<_>>()?;
    for n in &nodes[1..] {
        ensure!(n.join(&[nodes[0].local_addr()]).await? == 1);
    }
    converge(&nodes).await?;
    let mut watchers: Vec<_> = nodes[..3].iter().map(|n| n.subscribe()).collect();
    net.isolate(nodes[3].local_addr());
    for w in &mut watchers {
        wait_event(
            w,
            "n3 to fail",
            |e| matches!(e, Event::MemberFailed(m) if m.name == "n3"),
        )
        .await?;
    }
    // The isolated node, hearing no one, declares the others failed in turn.
    converge(&nodes[..3]).await?;
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_network_still_converges() -> Result<()> {
    init_logs();
    let net = MemNetwork::new(2);
    net.set_loss(0.1);
    let nodes: Vec<Memberlist> = (0..5)
        .map(|i| start(&net, &format!("n{i}"), 100 + i))
        .collect::<Result<_>>()?;
    for n in &nodes[1..] {
        ensure!(n.join(&[nodes[0].local_addr()]).await? == 1);
    }
    converge(&nodes).await?;
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_a_taken_address_fails() -> Result<()> {
    let net = MemNetwork::new(3);
    let a = net.bind("10.0.0.1:7946".parse()?)?;
    ensure!(net.bind(a.local_addr()).is_err());
    drop(a);
    ensure!(
        net.bind("10.0.0.1:7946".parse()?).is_ok(),
        "drop did not free the address"
    );
    Ok(())
}
