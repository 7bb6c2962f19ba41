//! Query round trips on live clusters of real agents, driven over RPC. Every query is sent by
//! this process with hearsay-rpc's client ([`RpcClient`], which speaks Serf's RPC
//! protocol to either agent) on a fresh connection to the first agent, and timed from the
//! `query` request to each ack and response record as the client reads it. Nothing forks a
//! CLI per query, so neither CLI's start-up nor its printing is counted, for either side.
//!
//! Small responses, serf beside hearsay: N `serf agent`s with the event handler
//! `query=echo pong` (serf forks `/bin/sh` per query), and N `hearsay agent`s running the
//! `echo` component on `query:ping` (it replies with the query's payload, `pong`).
//!
//! Large responses, hearsay alone (serf's responses are capped at one UDP packet): an
//! originator agent without handlers and N responder agents running the `blob` component
//! (payload: a decimal byte count; reply: that many bytes, streamed from the guest over
//! QUIC between agents). Timed to the last byte of every response; the originator's peak
//! memory growth is its VmHWM after the query over its VmRSS before (the peak is reset
//! through `/proc/PID/clear_refs` first).

use crate::guests::Guests;
use crate::procs::{
    start_cluster, start_node, wait_members, wait_ready, Impl, Node, NodeRole, Tools, GOSSIP_SPREAD,
};
use anyhow::{bail, Context, Result};
use hearsay_net::quic::QUIC_TAG;
use hearsay_rpc::{QueryParams, QueryRecord, RpcClient};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// How long a small query may take (its timeout, as `serf query -timeout=12s` had).
const SMALL_LIMIT: Duration = Duration::from_secs(12);
/// The large query's timeout, which also bounds each responder's `blob` run: room for a
/// loaded machine.
const LARGE_LIMIT: Duration = Duration::from_secs(60);

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The pause between two repetitions: 300 ms plus a random part spanning one 200 ms gossip
/// interval, so repetitions sample every phase of the gossip ticker.
fn gap() {
    let ms = 300 + rand::random::<u64>() % 200;
    std::thread::sleep(Duration::from_millis(ms));
}

fn runtime() -> Result<Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// A handler configuration file for `hearsay agent -config-file`, removed on drop.
struct ConfigFile(PathBuf);

impl ConfigFile {
    /// One `[[handler]]` block running `module` on `events`, with the handler `timeout`.
    fn handler(tag: &str, module: &Path, events: &str, timeout: Duration) -> Result<Self> {
        let path =
            std::env::temp_dir().join(format!("hearsay-bench-{tag}-{}.toml", std::process::id()));
        let toml = format!(
            "[[handler]]\nname = \"{tag}\"\nmodule = {:?}\nevents = \"{events}\"\n\
             limits = {{ timeout = \"{}s\" }}\n",
            module.display().to_string(),
            timeout.as_secs()
        );
        std::fs::write(&path, toml).with_context(|| format!("writing {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Samples of small-response query round trips.
#[derive(Debug, Default)]
pub(crate) struct SmallSamples {
    /// `query` request → the last of the `n` acks.
    pub acks: Vec<f64>,
    /// `query` request → the last of the `n` responses.
    pub responses: Vec<f64>,
    /// Queries that did not get all `n` acks and responses in time.
    pub incomplete: usize,
}

/// When one query's acks and responses arrived, from the request.
#[derive(Debug, Default)]
struct Arrivals {
    acks: Vec<Duration>,
    responses: Vec<Duration>,
}

/// `ping` (payload `pong`, acks requested) over a fresh RPC connection to `node`, read until
/// `n` acks and `n` responses arrived or the query's timeout passed. The connection is then
/// dropped: the agents would otherwise stream nothing more until the timeout ends the query.
fn ping(rt: &Runtime, node: &Node, n: usize) -> Result<Arrivals> {
    rt.block_on(async {
        let client = RpcClient::connect(&format!("127.0.0.1:{}", node.rpc_port), None)
            .await
            .context("connecting to the first agent's RPC")?;
        let params = QueryParams {
            name: "ping".into(),
            payload: b"pong".to_vec(),
            request_ack: true,
            timeout: SMALL_LIMIT,
            ..QueryParams::default()
        };
        let start = Instant::now();
        let deadline = tokio::time::Instant::from_std(start + SMALL_LIMIT + Duration::from_secs(2));
        let mut stream = client.query(&params).await.context("query ping")?;
        let mut out = Arrivals::default();
        while out.acks.len() < n || out.responses.len() < n {
            match tokio::time::timeout_at(deadline, stream.next_query_record()).await {
                Ok(Some(QueryRecord::Ack(_))) => out.acks.push(start.elapsed()),
                Ok(Some(QueryRecord::Response(..) | QueryRecord::Piece { last: true, .. })) => {
                    out.responses.push(start.elapsed())
                }
                Ok(Some(QueryRecord::Piece { .. })) => {}
                Ok(None) | Err(_) => break,
            }
        }
        Ok(out)
    })
}

/// `per_cluster` queries `ping` at the first agent of each of `clusters` fresh `n`-agent
/// clusters where every agent answers (serf: `query=echo pong`; hearsay: the `echo` component
/// on `query:ping`), each cluster's timed queries after one untimed one (the first touches cold
/// code and pages on every agent). Fresh clusters, as for user events: one cluster keeps one
/// layout of gossip ticker phases, and a query spreads by gossip.
pub(crate) fn small(
    tools: &Tools,
    guests: Option<&Guests>,
    imp: Impl,
    n: usize,
    (clusters, per_cluster): (usize, usize),
    settle: Duration,
) -> Result<SmallSamples> {
    let config = match imp {
        Impl::Serf => None,
        Impl::Hearsay => {
            if !tools.hearsay_agent() {
                bail!("needs the `hearsay` binary (hearsay agent) beside hearsay-serf-node");
            }
            let echo = &guests.context("needs the echo component")?.echo;
            Some(ConfigFile::handler(
                "qping",
                echo,
                "query:ping",
                Duration::from_secs(10),
            )?)
        }
    };
    let role = NodeRole {
        answer_ping: imp == Impl::Serf,
        config_file: config.as_ref().map(|c| c.0.as_path()),
        ..NodeRole::default()
    };
    let rt = runtime()?;
    let mut out = SmallSamples::default();
    for c in 0..clusters {
        let nodes = start_cluster(tools, imp, &format!("q{n}c{c}-"), n, role, GOSSIP_SPREAD)?;
        std::thread::sleep(settle);
        ping(&rt, &nodes[0], n)?;
        gap();
        for _ in 0..per_cluster {
            let a = ping(&rt, &nodes[0], n)?;
            if a.acks.len() < n || a.responses.len() < n {
                out.incomplete += 1;
            } else {
                out.acks.push(secs(*a.acks.iter().max().expect("n > 0")));
                out.responses
                    .push(secs(*a.responses.iter().max().expect("n > 0")));
            }
            gap();
        }
    }
    Ok(out)
}

/// Samples of one large-response configuration (responders × bytes each).
#[derive(Debug, Default)]
pub(crate) struct LargeSamples {
    /// Bytes each responder sends.
    pub bytes: u64,
    /// `query` request → the last byte of every response read by the client.
    pub secs: Vec<f64>,
    /// Bytes of all responses / `secs`, in MiB/s.
    pub mib_per_sec: Vec<f64>,
    /// The originator's VmHWM after the query over its VmRSS before, KiB.
    pub rss_growth_kib: Vec<f64>,
    /// Queries where some response did not arrive whole in time.
    pub incomplete: usize,
    /// Why the first incomplete query was incomplete.
    pub first_failure: Option<String>,
}

/// A value in KiB from `/proc/PID/status` (`VmHWM:`, `VmRSS:`).
fn status_kib(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Resets the process's peak RSS (VmHWM) to its current RSS.
fn reset_peak(pid: u32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("resetting VmHWM of pid {pid} through /proc/{pid}/clear_refs"))
}

/// What one large query delivered.
struct Delivery {
    elapsed: Duration,
    /// Bytes per responder, and whether its response ended without error.
    got: HashMap<String, (u64, bool)>,
    error: Option<String>,
}

/// `blob BYTES` (no acks) over a fresh RPC connection to `node`, every piece's bytes counted
/// (and dropped) as it arrives, until `responders` responses ended or the timeout passed.
fn blob(rt: &Runtime, node: &Node, responders: usize, bytes: u64) -> Result<Delivery> {
    rt.block_on(async {
        let client = RpcClient::connect(&format!("127.0.0.1:{}", node.rpc_port), None)
            .await
            .context("connecting to the originator's RPC")?;
        let params = QueryParams {
            name: "blob".into(),
            payload: bytes.to_string().into_bytes(),
            request_ack: false,
            timeout: LARGE_LIMIT,
            ..QueryParams::default()
        };
        let start = Instant::now();
        let deadline = tokio::time::Instant::from_std(start + LARGE_LIMIT + Duration::from_secs(5));
        let mut stream = client.query(&params).await.context("query blob")?;
        let mut got: HashMap<String, (u64, bool)> = HashMap::new();
        let mut ended = 0;
        let mut error = None;
        while ended < responders {
            match tokio::time::timeout_at(deadline, stream.next_query_record()).await {
                Ok(Some(QueryRecord::Ack(_))) => {}
                Ok(Some(QueryRecord::Response(from, payload))) => {
                    let e = got.entry(from).or_default();
                    *e = (e.0 + payload.len() as u64, true);
                    ended += 1;
                }
                Ok(Some(QueryRecord::Piece {
                    from,
                    payload,
                    last,
                    error: failed,
                })) => {
                    let e = got.entry(from.clone()).or_default();
                    e.0 += payload.len() as u64;
                    if last {
                        e.1 = failed.is_none();
                        ended += 1;
                        if let Some(why) = failed {
                            error.get_or_insert(format!("{from}: {why}"));
                        }
                    }
                }
                Ok(None) => {
                    error.get_or_insert("the query ended early".into());
                    break;
                }
                Err(_) => {
                    error.get_or_insert("timed out".into());
                    break;
                }
            }
        }
        Ok(Delivery {
            elapsed: start.elapsed(),
            got,
            error,
        })
    })
}

/// Starts the originator (no handlers) and `responders` agents running `blob` on
/// `query:blob`, and waits until the originator sees every responder alive with a QUIC
/// advert.
fn blob_cluster(tools: &Tools, blob: &Path, responders: usize) -> Result<(Vec<Node>, ConfigFile)> {
    let config = ConfigFile::handler(
        &format!("qblob{responders}"),
        blob,
        "query:blob",
        LARGE_LIMIT,
    )?;
    let prefix = format!("qb{responders}-");
    let names: Vec<String> = (0..=responders).map(|i| format!("{prefix}{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(60 + 3 * responders as u64);
    let imp = Impl::Hearsay;
    let origin = start_node(tools, imp, &names[0], None, NodeRole::default())?;
    wait_ready(imp, &origin, deadline)?;
    let role = NodeRole {
        config_file: Some(&config.0),
        ..NodeRole::default()
    };
    let seed = origin.gossip_port;
    let mut nodes = vec![origin];
    for name in &names[1..] {
        nodes.push(start_node(tools, imp, name, Some(seed), role)?);
    }
    for (node, name) in nodes.iter().zip(&names) {
        wait_members(imp, name, &node.proc.lines, &names, deadline)?;
    }
    // A responder's large reply needs the originator's QUIC address, from its advert tag.
    let rt = runtime()?;
    rt.block_on(async {
        let client = RpcClient::connect(&format!("127.0.0.1:{}", nodes[0].rpc_port), None).await?;
        loop {
            let members = client.members().await?;
            let ready = members
                .iter()
                .filter(|m| m.status == "alive" && m.tags.contains_key(QUIC_TAG))
                .count();
            if ready == names.len() {
                return anyhow::Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "only {ready} of {} members alive with a QUIC advert",
                    names.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })?;
    Ok((nodes, config))
}

/// For each size in `sizes`: `reps` queries `blob SIZE` at the originator of a cluster with
/// `responders` blob agents (one cluster for all sizes), after one untimed query of the
/// smallest size.
pub(crate) fn large(
    tools: &Tools,
    guests: Option<&Guests>,
    responders: usize,
    sizes: &[u64],
    reps: usize,
    settle: Duration,
) -> Result<Vec<LargeSamples>> {
    if !tools.hearsay_agent() {
        bail!("needs the `hearsay` binary (hearsay agent) beside hearsay-serf-node");
    }
    let blob_wasm = &guests.context("needs the blob component")?.blob;
    let (nodes, _config) = blob_cluster(tools, blob_wasm, responders)?;
    std::thread::sleep(settle);
    let rt = runtime()?;
    let origin = &nodes[0];
    let pid = origin.proc.pid();
    if let Some(&first) = sizes.first() {
        blob(&rt, origin, responders, first)?;
        gap();
    }
    let mut out = Vec::new();
    for &bytes in sizes {
        let mut s = LargeSamples {
            bytes,
            ..LargeSamples::default()
        };
        for _ in 0..reps {
            reset_peak(pid)?;
            let before = status_kib(pid, "VmRSS:")?;
            let d = blob(&rt, origin, responders, bytes)?;
            let peak = status_kib(pid, "VmHWM:")?;
            let whole = d.got.len() == responders
                && d.got.values().all(|&(b, ok)| ok && b == bytes)
                && d.error.is_none();
            if whole {
                let total = bytes as f64 * responders as f64;
                s.secs.push(secs(d.elapsed));
                s.mib_per_sec
                    .push(total / (1024.0 * 1024.0) / secs(d.elapsed).max(1e-9));
                s.rss_growth_kib.push((peak - before).max(0.0));
            } else {
                s.incomplete += 1;
                s.first_failure.get_or_insert_with(|| {
                    let mut sizes: Vec<String> = d
                        .got
                        .iter()
                        .map(|(k, (b, ok))| {
                            format!("{k} {b} B{}", if *ok { "" } else { " (failed)" })
                        })
                        .collect();
                    sizes.sort();
                    format!(
                        "{} of {responders} responses ({}){}",
                        d.got.len(),
                        sizes.join(", "),
                        d.error.map(|e| format!("; {e}")).unwrap_or_default()
                    )
                });
            }
            gap();
        }
        out.push(s);
    }
    Ok(out)
}
