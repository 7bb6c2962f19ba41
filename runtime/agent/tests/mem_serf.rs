//! Serf nodes on the in-memory network, each a [`Node`] on `hearsay-net`'s driver: they
//! join, see each other with tags, deliver user events and answer queries, see tag changes
//! and a graceful leave. Every wait is bounded; nothing asserts on speed.

mod common;
use anyhow::{bail, ensure, Context, Result};
use common::init_logs;
use hearsay_agent::{Node, NodeOptions, QueryResult};
use hearsay_net::{Config, MemNetwork, Transport};
use hearsay_serf::event::{Event, MemberEventKind, MemberStatus};
use hearsay_serf::{QueryParams, SerfConfig};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(30);

fn start(net: &MemNetwork, name: &str, seed: u64) -> Result<Node> {
    let t = net.bind("10.0.0.1:0".parse()?)?;
    let mut c = Config::local(name, t.local_addr());
    c.probe_interval = Duration::from_millis(200);
    c.probe_timeout = Duration::from_millis(100);
    c.gossip_interval = Duration::from_millis(50);
    c.push_pull_interval = Duration::from_secs(2);
    let mut config = SerfConfig::new(c);
    config.tags.insert("role".into(), format!("role-{name}"));
    config.broadcast_timeout = Duration::from_secs(2);
    config.leave_propagate_delay = Duration::from_millis(200);
    Ok(Node::start(NodeOptions::new(config).seed(seed), t)?)
}

async fn wait_event(
    rx: &mut broadcast::Receiver<Event>,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Result<Event> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => bail!("timed out waiting for {what}"),
            Ok(Ok(ev)) if pred(&ev) => return Ok(ev),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => bail!("event stream ended waiting for {what}: {e}"),
        }
    }
}

/// Waits until every node lists every other as alive.
async fn converge(nodes: &[Node]) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    for n in nodes {
        loop {
            let alive = n
                .members()
                .await?
                .iter()
                .filter(|m| m.status == MemberStatus::Alive)
                .count();
            if alive == nodes.len() {
                break;
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "{} sees {alive} of {} alive",
                n.name(),
                nodes.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

async fn three(net: &MemNetwork) -> Result<[Node; 3]> {
    let a = start(net, "a", 1)?;
    let b = start(net, "b", 2)?;
    let c = start(net, "c", 3)?;
    ensure!(b.join(&[a.local_addr()], true).await? == 1);
    ensure!(c.join(&[a.local_addr()], true).await? == 1);
    converge(&[a.clone(), b.clone(), c.clone()]).await?;
    Ok([a, b, c])
}

#[tokio::test]
async fn members_with_tags_and_user_events() -> Result<()> {
    init_logs();
    let net = MemNetwork::new(7);
    let [a, b, c] = three(&net).await?;
    let members = c.members().await?;
    let b_seen = members
        .iter()
        .find(|m| m.name == "b")
        .context("c knows b")?;
    ensure!(b_seen.tags.get("role").map(String::as_str) == Some("role-b"));

    let (mut eb, mut ec) = (b.subscribe(), c.subscribe());
    a.user_event("deploy", b"v1", false).await?;
    for (rx, who) in [(&mut eb, "b"), (&mut ec, "c")] {
        let ev = wait_event(
            rx,
            &format!("{who} to get deploy"),
            |e| matches!(e, Event::User(u) if u.name == "deploy"),
        )
        .await?;
        let Event::User(u) = ev else { unreachable!() };
        ensure!(u.payload == b"v1" && !u.coalesce, "{u:?}");
    }

    // A tag change reaches the others as a member-update.
    let mut tags = BTreeMap::new();
    tags.insert("role".to_owned(), "db".to_owned());
    a.set_tags(tags).await?;
    wait_event(&mut eb, "b to see a's new tags", |e| {
        matches!(e, Event::Member(m) if m.kind == MemberEventKind::Update
            && m.members.iter().any(|m| m.name == "a" && m.tags["role"] == "db"))
    })
    .await?;
    for n in [&a, &b, &c] {
        n.shutdown().await;
    }
    Ok(())
}

#[tokio::test]
async fn queries_are_acked_and_answered() -> Result<()> {
    init_logs();
    let net = MemNetwork::new(8);
    let [a, b, c] = three(&net).await?;
    // b and c answer "uptime" with their names; a does not answer.
    let mut answerers = Vec::new();
    for n in [&b, &c] {
        let (n, mut rx) = (n.clone(), n.subscribe());
        answerers.push(tokio::spawn(async move {
            while let Ok(ev) = rx.recv().await {
                if let Event::Query(q) = ev {
                    if q.name == "uptime" {
                        let reply = format!("up {}", n.name());
                        n.respond(q.ltime, q.id, reply.as_bytes()).await.unwrap();
                    }
                }
            }
        }));
    }
    let params = QueryParams {
        request_ack: true,
        timeout: Duration::from_secs(3),
        ..QueryParams::default()
    };
    let mut results = a.query("uptime", b"", params).await?;
    let (mut acks, mut responses) = (Vec::new(), Vec::new());
    let done = tokio::time::timeout(WAIT, async {
        while let Some(r) = results.next().await {
            match r {
                QueryResult::Ack { from } => acks.push(from),
                QueryResult::Response { from, payload } => {
                    responses.push((from, String::from_utf8(payload).unwrap()))
                }
                QueryResult::Done => return true,
                QueryResult::ResponseChunk { .. } | QueryResult::ResponseEnd { .. } => {}
            }
        }
        false
    })
    .await?;
    ensure!(done, "the query ended without Done");
    ensure!(results.next().await.is_none(), "nothing after Done");
    acks.sort();
    responses.sort();
    ensure!(acks == ["a", "b", "c"], "acks {acks:?}");
    ensure!(
        responses
            == [
                ("b".to_owned(), "up b".to_owned()),
                ("c".to_owned(), "up c".to_owned())
            ],
        "responses {responses:?}"
    );
    for n in [&a, &b, &c] {
        n.shutdown().await;
    }
    for t in answerers {
        t.await?;
    }
    Ok(())
}

#[tokio::test]
async fn leave_is_seen_as_leave() -> Result<()> {
    init_logs();
    let net = MemNetwork::new(9);
    let [a, b, c] = three(&net).await?;
    let mut ea = a.subscribe();
    c.leave().await.context("leave")?;
    wait_event(&mut ea, "a to see c leave", |e| {
        matches!(e, Event::Member(m) if m.kind == MemberEventKind::Leave
            && m.members.iter().any(|m| m.name == "c"))
    })
    .await?;
    // Leaving again is immediate; joining after leaving is refused.
    c.leave().await?;
    ensure!(c.join(&[a.local_addr()], true).await.is_err());
    c.shutdown().await;
    let status = a
        .members()
        .await?
        .into_iter()
        .find(|m| m.name == "c")
        .map(|m| m.status);
    ensure!(status == Some(MemberStatus::Left), "{status:?}");
    a.shutdown().await;
    b.shutdown().await;
    ensure!(matches!(a.members().await, Err(e) if e.is_stopped()));
    Ok(())
}

#[tokio::test]
async fn join_to_nothing_names_the_address() -> Result<()> {
    init_logs();
    let net = MemNetwork::new(10);
    let a = start(&net, "a", 1)?;
    let nowhere = "10.9.9.9:7946".parse()?;
    let err = a.join(&[nowhere], true).await.unwrap_err();
    ensure!(err.to_string().contains("10.9.9.9:7946"), "{err}");
    a.shutdown().await;
    Ok(())
}
