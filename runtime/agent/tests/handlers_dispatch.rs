//! The agent's WebAssembly handlers ([`Handlers`]) on three in-process Serf nodes with real
//! components in real wasmtime: queries answered by a handler on every node (first reply per
//! node wins), user events, filters and reserved names, the member view handlers see, emitting,
//! a hostile handler beside a healthy one, reload (atomic, unchanged handlers kept), the host
//! built only with the first handler, and load errors. Every wait is bounded; nothing asserts
//! speed.

mod common;
use anyhow::{bail, ensure, Context, Result};
use common::init_logs;
use hearsay_agent::filter::EventFilter;
use hearsay_agent::handlers::{HandlerConfig, HandlerListing, Handlers};
use hearsay_agent::{Node, NodeOptions, QueryResult};
use hearsay_host::{DirGrant, HostConfig, Limits};
use hearsay_net::{Config, MemNetwork, Transport};
use hearsay_serf::event::{Event, MemberStatus};
use hearsay_serf::{QueryParams, SerfConfig};
use hearsay_testkit::wasm::{guests, Guests};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(120);

fn wasm() -> &'static Guests {
    guests(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

fn host_config() -> HostConfig {
    static CACHE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    // Left for the host to create (mode 0700): it refuses a group-writable cache directory, which
    // create_dir_all would make under a umask of 002.
    let cache = CACHE
        .get_or_init(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("handlers-dispatch-cache"));
    HostConfig {
        workers: 2,
        cache_dir: Some(cache.clone()),
        max_instances: 16,
        ..HostConfig::default()
    }
}

fn handler(name: &str, filter: &str, module: &Path) -> HandlerConfig {
    let mut h = HandlerConfig::new(EventFilter::parse(filter).unwrap(), module);
    h.name = name.into();
    h
}

fn start(net: &MemNetwork, name: &str, seed: u64) -> Result<Node> {
    let t = net.bind("10.0.0.1:0".parse()?)?;
    let mut c = Config::local(name, t.local_addr());
    c.probe_interval = Duration::from_millis(200);
    c.probe_timeout = Duration::from_millis(100);
    c.gossip_interval = Duration::from_millis(50);
    let config = SerfConfig::new(c);
    Ok(Node::start(NodeOptions::new(config).seed(seed), t)?)
}

async fn three(net: &MemNetwork) -> Result<[Node; 3]> {
    let a = start(net, "a", 1)?;
    let b = start(net, "b", 2)?;
    let c = start(net, "c", 3)?;
    ensure!(b.join(&[a.local_addr()], true).await? == 1);
    ensure!(c.join(&[a.local_addr()], true).await? == 1);
    let deadline = tokio::time::Instant::now() + WAIT;
    for n in [&a, &b, &c] {
        while n
            .members()
            .await?
            .iter()
            .filter(|m| m.status == MemberStatus::Alive)
            .count()
            < 3
        {
            ensure!(tokio::time::Instant::now() < deadline, "no convergence");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok([a, b, c])
}

/// Runs a query from `from` and collects the responses (as text) until it is done.
async fn ask(from: &Node, name: &str, payload: &[u8]) -> Result<BTreeMap<String, String>> {
    Ok(ask_bytes(from, name, payload)
        .await?
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect())
}

/// Runs a query from `from` and collects the responses until it is done: every member
/// answered, or 10 s passed (room for a handler's first instance on a loaded machine; a query
/// nobody answers takes all of it).
async fn ask_bytes(from: &Node, name: &str, payload: &[u8]) -> Result<BTreeMap<String, Vec<u8>>> {
    let params = QueryParams {
        timeout: Duration::from_secs(10),
        finish_early: true,
        ..QueryParams::default()
    };
    let mut results = from.query(name, payload, params).await?;
    let mut out = BTreeMap::new();
    tokio::time::timeout(WAIT, async {
        while let Some(r) = results.next().await {
            match r {
                QueryResult::Response { from, payload } => {
                    out.insert(from, payload);
                }
                QueryResult::ResponseChunk { from, chunk } => {
                    out.entry(from).or_default().extend_from_slice(&chunk);
                }
                QueryResult::ResponseEnd { .. } => {}
                QueryResult::Done => break,
                QueryResult::Ack { .. } => {}
            }
        }
    })
    .await
    .context("query did not finish")?;
    Ok(out)
}

fn listing<'a>(list: &'a [HandlerListing], name: &str) -> &'a HandlerListing {
    list.iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("no handler {name} in {list:?}"))
}

/// Waits until `pred` holds for `handlers`' listing.
async fn wait_listing(
    handlers: &Handlers,
    what: &str,
    pred: impl Fn(&[HandlerListing]) -> bool,
) -> Result<Vec<HandlerListing>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = handlers.list();
        if pred(&list) {
            return Ok(list);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}: {list:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_user_event(rx: &mut broadcast::Receiver<Event>, name: &str) -> Result<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => bail!("timed out waiting for user event {name}"),
            Ok(Ok(Event::User(u))) if u.name == name => return Ok(u.payload),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => bail!("event stream ended: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_answer_queries_take_events_and_reload() -> Result<()> {
    init_logs();
    let g = wasm();
    let net = MemNetwork::new(11);
    let nodes = three(&net).await?;
    let mut all = Vec::new();
    for n in &nodes {
        let mut probe = handler("probe", "*,query:_hearsay_members", &g.probe);
        probe.grants.emit = true;
        probe.limits = Limits {
            timeout: Duration::from_millis(500),
            ..Limits::default()
        };
        let set = vec![
            handler("echo", "query:echo,user:deploy", &g.echo),
            // Also takes `echo`: its reply comes second on the node and is refused.
            handler("echo-too", "query:echo", &g.echo),
            probe,
        ];
        all.push(Handlers::start(n.clone(), host_config(), set).await?);
    }
    let [a, b, c] = &nodes;

    // Every node answers once, with the payload.
    let replies = ask(a, "echo", b"hello").await?;
    let want: BTreeMap<String, String> = ["a", "b", "c"]
        .iter()
        .map(|n| (n.to_string(), "hello".to_string()))
        .collect();
    ensure!(replies == want, "echo replies {replies:?}");
    for h in &all {
        // Both echo handlers ran; exactly one reply per node succeeded, the other was refused
        // (the guest turns already-replied into its error).
        let list = wait_listing(h, "both echo handlers to finish", |l| {
            listing(l, "echo").stats.invocations == 1
                && listing(l, "echo-too").stats.invocations == 1
        })
        .await?;
        let (e1, e2) = (
            &listing(&list, "echo").stats,
            &listing(&list, "echo-too").stats,
        );
        ensure!(e1.ok + e2.ok == 1 && e1.errors + e2.errors == 1, "{list:?}");
        ensure!(listing(&list, "echo").filter == "query:echo,user:deploy");
    }

    // A user event reaches the filtered handler on every node.
    b.user_event("deploy", b"v2", false).await?;
    for h in &all {
        wait_listing(h, "deploy on echo", |l| {
            listing(l, "echo").stats.invocations == 2
        })
        .await?;
    }
    // The probe answers `members` (a query name it is given through `*`) from the embedder's
    // member view: every node, alive.
    let members = ask(a, "members", b"").await?;
    ensure!(members.len() == 3, "{members:?}");
    for (from, text) in &members {
        for n in ["a", "b", "c"] {
            ensure!(text.contains(&format!("{n} 10.0.0.1:")), "{from}: {text}");
        }
        ensure!(
            text.starts_with(&format!("{from} ")),
            "local member first: {text}"
        );
        ensure!(text.lines().all(|l| l.ends_with("Alive")), "{text}");
    }

    // A hostile handler: `loop` spins until its deadline on every node; echo still answers
    // meanwhile (the host runs handlers on their own workers, one at a time each).
    let looping = {
        let a = a.clone();
        tokio::spawn(async move { ask(&a, "loop", b"").await })
    };
    let replies = ask(a, "echo", b"still here").await?;
    ensure!(
        replies.len() == 3,
        "echo beside a looping handler: {replies:?}"
    );
    ensure!(
        looping.await??.is_empty(),
        "a looping handler answers nothing"
    );
    for h in &all {
        wait_listing(h, "the loop to hit its deadline", |l| {
            listing(l, "probe").stats.timeouts >= 1
        })
        .await?;
    }

    // Emitting (granted): the probe on every node emits `probe-emitted`; c hears it.
    let mut ec = c.subscribe();
    let emitted = ask(a, "emit", b"from-probe").await?;
    ensure!(emitted.values().all(|v| v == "ok"), "{emitted:?}");
    ensure!(wait_user_event(&mut ec, "probe-emitted").await? == b"from-probe");

    // Reserved names reach only a filter naming them: `*` does not take `_hearsay_internal`,
    // the probe's `query:_hearsay_members` takes that query. (`dispatch` says how many
    // handlers queued an event.)
    let user = |name: &str| {
        Event::User(hearsay_serf::event::UserEvent {
            ltime: 1,
            name: name.into(),
            payload: Vec::new(),
            coalesce: false,
        })
    };
    let query = |name: &str| {
        Event::Query(hearsay_serf::event::QueryEvent {
            ltime: 1,
            id: 1,
            name: name.into(),
            payload: Vec::new(),
            source_node: "nobody".into(),
            deadline: std::time::Instant::now(),
        })
    };
    ensure!(all[0].dispatch(&user("_hearsay_internal")).await == 0);
    ensure!(all[0].dispatch(&query("_serf_ping")).await == 0);
    ensure!(
        all[0].dispatch(&user("ordinary")).await == 1,
        "the probe takes it"
    );
    ensure!(
        all[0].dispatch(&user("deploy")).await == 2,
        "echo and the probe"
    );
    ensure!(all[0].dispatch(&query("_hearsay_members")).await == 1);
    ensure!(all[0].dispatch(&query("echo")).await == 3);

    // Reload: drop echo-too, change echo's filter (same module: compiled instance and counters
    // kept), add blob. Atomic: a set with a missing module changes nothing.
    let before = listing(&all[0].list(), "echo").clone();
    let bad = vec![
        handler("echo", "query:echo", &g.echo),
        handler("gone", "query:gone", Path::new("/nonexistent/gone.wasm")),
    ];
    let err = all[0].reload(bad).await.unwrap_err().to_string();
    ensure!(
        err.contains("/nonexistent/gone.wasm") && err.contains("gone"),
        "{err}"
    );
    ensure!(all[0].list().len() == 3, "a failed reload changed nothing");

    for h in &all {
        h.reload(vec![
            handler("echo", "query:echo2", &g.echo),
            handler("blob", "query:blob", &g.blob),
        ])
        .await?;
    }
    let after = all[0].list();
    ensure!(after.len() == 2, "{after:?}");
    let echo_after = listing(&after, "echo");
    ensure!(echo_after.sha256 == before.sha256);
    ensure!(
        echo_after.stats.invocations >= before.stats.invocations
            && echo_after.stats.invocations > 0,
        "an unchanged handler keeps its counters: {before:?} {echo_after:?}"
    );
    ensure!(
        ask(a, "echo", b"x").await?.is_empty(),
        "nobody takes echo any more"
    );
    ensure!(ask(a, "echo2", b"y").await?.len() == 3);
    let blob = ask_bytes(a, "blob", b"600").await?;
    let want: Vec<u8> = (0..600u32).map(|i| (i % 251) as u8).collect();
    ensure!(
        blob.len() == 3 && blob.values().all(|v| *v == want),
        "{blob:?}"
    );
    // Over Serf's UDP limit: the guest gets too-large and no node answers.
    ensure!(ask(a, "blob", b"5000").await?.is_empty());
    wait_listing(&all[0], "blob's refused reply counted", |l| {
        listing(l, "blob").stats.errors >= 1
    })
    .await?;

    drop(all);
    for n in &nodes {
        n.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysinfo_reads_the_granted_proc() -> Result<()> {
    init_logs();
    let g = wasm();
    let net = MemNetwork::new(12);
    let a = start(&net, "solo", 5)?;
    let mut sys = handler("sysinfo", "query:sysinfo", &g.sysinfo);
    sys.grants.dirs.push(DirGrant {
        host: "/proc".into(),
        guest: "/proc".into(),
    });
    let bare = handler("bare", "query:bare", &g.sysinfo);
    let h = Handlers::start(a.clone(), host_config(), vec![sys, bare]).await?;
    let replies = ask(&a, "sysinfo", b"").await?;
    let text = replies.get("solo").context("solo answers sysinfo")?;
    ensure!(
        text.contains("uptime_seconds=") && text.contains("load1="),
        "{text}"
    );
    // Without the grant it cannot read /proc: an error, no reply.
    ensure!(ask(&a, "bare", b"").await?.is_empty());
    wait_listing(&h, "bare's error", |l| listing(l, "bare").stats.errors == 1).await?;
    drop(h);
    a.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_errors_name_the_handler_and_cause() -> Result<()> {
    init_logs();
    let g = wasm();
    let net = MemNetwork::new(13);
    let a = start(&net, "solo", 6)?;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("handlers-load-errors");
    std::fs::create_dir_all(&dir)?;
    let text = dir.join("notwasm.wasm");
    std::fs::write(&text, "#!/bin/sh\necho hi\n")?;

    let cases: Vec<(Vec<HandlerConfig>, &[&str])> = vec![
        (
            vec![handler("missing", "*", Path::new("/nonexistent/x.wasm"))],
            &["missing", "/nonexistent/x.wasm"],
        ),
        (
            vec![handler("text", "*", &text)],
            &["text", "not a WebAssembly component"],
        ),
        (
            vec![
                handler("twice", "*", &g.echo),
                handler("twice", "user", &g.echo),
            ],
            &["twice", "unique"],
        ),
    ];
    for (set, words) in cases {
        let e = Handlers::start(a.clone(), host_config(), set)
            .await
            .expect_err("must not load")
            .to_string();
        ensure!(!e.contains('\n'), "one line: {e}");
        for w in words {
            ensure!(e.contains(w), "{e:?} should mention {w:?}");
        }
    }
    a.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_is_built_with_the_first_handler() -> Result<()> {
    init_logs();
    let g = wasm();
    let net = MemNetwork::new(14);
    let a = start(&net, "solo", 7)?;

    // No handlers: no host is built, so even a host config it would refuse is accepted...
    let refused = HostConfig {
        workers: 0,
        ..host_config()
    };
    let h = Handlers::start(a.clone(), refused, Vec::new()).await?;
    ensure!(h.list().is_empty());
    // ...until a handler needs it: the host's own error, and nothing changes.
    let e = h
        .reload(vec![handler("echo", "query:echo", &g.echo)])
        .await
        .expect_err("a host with no workers must not be built")
        .to_string();
    ensure!(e.contains("workers"), "{e}");
    ensure!(h.list().is_empty());
    drop(h);

    // Started empty, then given a handler by reload: it answers.
    let h = Handlers::start(a.clone(), host_config(), Vec::new()).await?;
    ensure!(
        ask(&a, "echo", b"hi").await?.is_empty(),
        "nobody answers yet"
    );
    h.reload(vec![handler("echo", "query:echo", &g.echo)])
        .await?;
    let replies = ask(&a, "echo", b"hi").await?;
    ensure!(
        replies.get("solo").map(String::as_str) == Some("hi"),
        "{replies:?}"
    );
    drop(h);
    a.shutdown().await;
    Ok(())
}
