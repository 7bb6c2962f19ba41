//! Section 11's live part: deploying a handler module to a cluster of real `hearsay agent`
//! processes on loopback with the real CLI (`hearsay deploy`), and timing how long it takes
//! until every node runs the new version.
//!
//! The cluster: N agents, each with its own `-data-dir` under a scratch directory and the same
//! `-deploy-key` (made by `hearsay keygen -deploy`), on the `local` timing profile, joined into
//! one cluster; measuring starts once every agent lists N alive members over RPC. Each deploy
//! is a new version of one name, with bytes no node has held before: the `echo` component
//! with a custom section appended that names the version (small), or that plus a large
//! pseudo-random pad (large). A component with an extra custom section is still a valid
//! component, and its sha256 differs, so every node fetches and compiles every version.
//!
//! Per deploy, from just before `hearsay deploy -wait=60s` is spawned: the bench polls the
//! `deployments` RPC of the node deployed to (which asks every node for its state over QUIC)
//! until all N are `running` at that version; the CLI's own lines are timestamped as they
//! arrive ("Deployed NAME version V", then "NAME vV: K of N nodes running").

use crate::guests::Guests;
use crate::procs::{start_cluster, Impl, Node, NodeRole, Proc, Tools};
use anyhow::{bail, Context, Result};
use hearsay_rpc::{RpcClient, RpcDeployment};
use rand::{RngCore, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// The deployment's name (its handler is `deploy/greet` on every node).
const NAME: &str = "greet";
/// How often the bench asks the `deployments` RPC.
pub(crate) const POLL: Duration = Duration::from_millis(25);
/// The CLI's `-wait`, and the bench's own bound on one deploy (a little more).
const CLI_WAIT: &str = "60s";
const DEPLOY_BOUND: Duration = Duration::from_secs(70);
/// The pause between two deploys, so one's stragglers do not overlap the next.
pub(crate) const GAP: Duration = Duration::from_millis(500);

/// What the live part runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LivePlan {
    /// Agents in the cluster.
    pub n: usize,
    /// Timed deploys of the small module (after one first deploy, reported on its own).
    pub small_reps: usize,
    /// Timed deploys of the large module.
    pub large_reps: usize,
    /// Bytes of pad in the large module's custom section.
    pub large_pad: usize,
}

/// The samples of one size class of module.
#[derive(Debug, Default, Clone)]
pub(crate) struct ClassSamples {
    /// The module's size in bytes (the largest deployed in the class).
    pub bytes: u64,
    /// CLI spawned → every node `running` the version (the bench's poll).
    pub converged: Vec<f64>,
    /// CLI spawned → its "Deployed ..." line (the agent took record and bytes).
    pub taken: Vec<f64>,
    /// The "Deployed ..." line → every node running.
    pub spread: Vec<f64>,
    /// CLI spawned → the last agent logged that it learned the record (`deploy: learned a
    /// deployment`; the first agent: `took a new deployment from the operator`).
    pub log_learned: Vec<f64>,
    /// CLI spawned → the last agent logged `deploy: running a deployed handler` for the
    /// version's module (fetched, checked, compiled and swapped in): no poll lag.
    pub log_running: Vec<f64>,
    /// CLI spawned → its last progress line (the CLI's own view of convergence; it polls
    /// every second), when it exited 0.
    pub cli_done: Vec<f64>,
    /// K of the CLI's last "K of N nodes running" line, per deploy.
    pub cli_running: Vec<f64>,
    /// The CLI's last progress line, per deploy.
    pub cli_lines: Vec<String>,
    /// Deploys that did not converge or whose CLI failed, with why.
    pub failures: Vec<String>,
    /// Deploys that took over [`SLOW`].
    pub slow: Vec<Slow>,
}

/// A deploy that took over [`SLOW`], and when its record reached the agents (seconds from the
/// CLI's spawn).
#[derive(Debug, Clone)]
pub(crate) struct Slow {
    pub version: u64,
    /// Every node running it (the poll).
    pub converged: f64,
    /// Every agent logged the record learned.
    pub learned: Option<f64>,
    /// Every agent but the last had.
    pub learned_but_last: Option<f64>,
    /// Every agent logged it running.
    pub running: Option<f64>,
}

/// A deploy slower than this is listed in the notes with where its time went.
pub(crate) const SLOW: f64 = 1.0;

/// Everything the live part measured.
#[derive(Debug, Default)]
pub(crate) struct LiveSamples {
    pub n: usize,
    /// The first deploy into the fresh cluster (the small module).
    pub first: ClassSamples,
    pub small: ClassSamples,
    pub large: ClassSamples,
    /// How long one `deployments` RPC took (the poll's resolution is this plus [`POLL`]).
    pub poll_rtt: Vec<f64>,
    /// Cluster start → every agent logged every other's join.
    pub joined: f64,
    /// Cluster start → every agent's `members` RPC lists N alive members.
    pub formation: f64,
    /// The `echo` component's own size.
    pub echo_bytes: u64,
}

/// A scratch directory (deploy key, modules, every agent's data directory), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        let d = std::env::temp_dir().join(format!("hearsay-bench-deploy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("data"))?;
        Ok(Self(d))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn runtime() -> Result<Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `hearsay keygen -deploy -out FILE`: writes the key, returns its public half.
fn keygen(cli: &Path, out: &Path) -> Result<String> {
    let o = Command::new(cli)
        .args(["keygen", "-deploy"])
        .arg(format!("-out={}", out.display()))
        .output()
        .context("running hearsay keygen -deploy")?;
    let text = String::from_utf8_lossy(&o.stdout);
    match text.lines().find(|l| l.starts_with("ed25519:")) {
        Some(k) if o.status.success() => Ok(k.trim().to_owned()),
        _ => bail!(
            "hearsay keygen -deploy failed: {}{}",
            text,
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

/// LEB128 of an unsigned length.
fn leb128(mut v: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `component` with a custom section (id 0) appended: its name, then `payload`.
pub(crate) fn with_custom_section(component: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(name.len() + payload.len() + 5);
    leb128(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = Vec::with_capacity(component.len() + body.len() + 6);
    out.extend_from_slice(component);
    out.push(0);
    leb128(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Version `version`'s module: echo plus a custom section naming the version, followed by
/// `pad` pseudo-random bytes (seeded by the version).
fn module_bytes(echo: &[u8], version: u64, pad: usize) -> Vec<u8> {
    let mut payload = format!("hearsay-bench deploy v{version}\n").into_bytes();
    let start = payload.len();
    payload.resize(start + pad, 0);
    rand::rngs::StdRng::seed_from_u64(version).fill_bytes(&mut payload[start..]);
    with_custom_section(echo, "hearsay-bench-pad", &payload)
}

/// The deploy cluster: agents, the scratch directory they use, and an RPC client of the
/// first (the node every deploy goes to).
struct Cluster {
    nodes: Vec<Node>,
    scratch: Scratch,
    key_file: PathBuf,
    client: RpcClient,
    cli: PathBuf,
}

impl Cluster {
    /// Starts the cluster; also returns the seconds until every agent logged every join and
    /// until every agent listed `n` alive.
    fn start(tools: &Tools, rt: &Runtime, n: usize) -> Result<(Self, f64, f64)> {
        let cli = tools
            .agent
            .clone()
            .context("the `hearsay` binary is not built")?;
        let scratch = Scratch::new()?;
        let key_file = scratch.0.join("deploy.key");
        let public = keygen(&cli, &key_file)?;
        let data = scratch.0.join("data");
        let role = NodeRole {
            profile: Some("local"),
            data_root: Some(&data),
            deploy_key: Some(&public),
            ..NodeRole::default()
        };
        let started = Instant::now();
        let nodes = start_cluster(tools, Impl::Hearsay, "d-", n, role, Duration::ZERO)?;
        let joined = started.elapsed().as_secs_f64();
        wait_all_alive(rt, &nodes, n)?;
        let formation = started.elapsed().as_secs_f64();
        let client = rt.block_on(RpcClient::connect(&rpc_addr(&nodes[0]), None))?;
        let cluster = Self {
            nodes,
            scratch,
            key_file,
            client,
            cli,
        };
        Ok((cluster, joined, formation))
    }
}

fn rpc_addr(node: &Node) -> String {
    format!("127.0.0.1:{}", node.rpc_port)
}

/// Waits (30 s at most) until every agent's `members` RPC lists `n` alive members.
fn wait_all_alive(rt: &Runtime, nodes: &[Node], n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in nodes {
        let client = rt.block_on(RpcClient::connect(&rpc_addr(node), None))?;
        loop {
            let members = rt.block_on(client.members())?;
            let alive = members.iter().filter(|m| m.status == "alive").count();
            if alive == n {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} lists {alive} of {n} members alive after 30 s",
                    node.proc.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// One deploy's timings (seconds from the CLI's spawn).
#[derive(Debug, Default)]
struct OneDeploy {
    converged: Option<f64>,
    taken: Option<f64>,
    /// When the last progress line arrived, if the CLI exited 0.
    done: Option<f64>,
    /// From the agents' logs: every node learned the record; every node runs it.
    log_learned: Option<f64>,
    /// When all agents but the last had logged the record learned.
    learned_but_last: Option<f64>,
    log_running: Option<f64>,
    /// The CLI's last "K of N nodes running" line.
    last_line: Option<String>,
    /// Why the CLI failed, if it did.
    cli_error: Option<String>,
}

/// Whether `d` is `version` and every one of `n` nodes runs it.
fn all_running(d: &RpcDeployment, version: u64, n: usize) -> bool {
    d.version == version
        && d.nodes.len() == n
        && d.nodes
            .iter()
            .all(|x| x.state == "running" && x.version == version)
}

/// Polls `deployments` until all `n` nodes run `version` or `deadline`; the moment the
/// answer that showed it arrived.
fn poll_converged(
    rt: &Runtime,
    client: &RpcClient,
    version: u64,
    n: usize,
    deadline: Instant,
    rtts: &mut Vec<f64>,
) -> Result<Option<Instant>> {
    while Instant::now() < deadline {
        let asked = Instant::now();
        let all = rt.block_on(client.deployments())?;
        let now = Instant::now();
        rtts.push((now - asked).as_secs_f64());
        if all
            .deployments
            .iter()
            .find(|d| d.name == NAME)
            .is_some_and(|d| all_running(d, version, n))
        {
            return Ok(Some(now));
        }
        std::thread::sleep(POLL);
    }
    Ok(None)
}

/// The CLI's "NAME vV: K of N nodes running" lines.
fn progress_line(line: &str) -> bool {
    line.starts_with(&format!("{NAME} v")) && line.contains(" nodes running")
}

/// Deploys `module` as `version` with the CLI and times it.
fn deploy_once(
    c: &Cluster,
    rt: &Runtime,
    module: &Module,
    n: usize,
    rtts: &mut Vec<f64>,
) -> Result<OneDeploy> {
    let version = module.version;
    let mut cmd = Command::new(&c.cli);
    cmd.arg("deploy")
        .arg(format!("-rpc-addr={}", rpc_addr(&c.nodes[0])))
        .arg(format!("-key={}", c.key_file.display()))
        .arg(format!("-name={NAME}"))
        .arg(format!("-events=query:{NAME}"))
        .arg(format!("-wait={CLI_WAIT}"))
        .arg(&module.path);
    let t0 = Instant::now();
    let mut proc = Proc::spawn_with_stderr(&format!("deploy-v{version}"), cmd)?;
    let deadline = t0 + DEPLOY_BOUND;
    let converged = poll_converged(rt, &c.client, version, n, deadline, rtts)?;
    let status = proc.wait_exit(deadline);
    let since = |t: Instant| t.saturating_duration_since(t0).as_secs_f64();
    let lines = proc.lines.all(|_| true);
    let deployed = format!("Deployed {NAME} version {version}:");
    let last = lines.iter().rev().find(|(_, l)| progress_line(l));
    let learned = node_logs(&c.nodes, t0, |l| learned_line(l, version));
    let mut out = OneDeploy {
        converged: converged.map(since),
        taken: lines
            .iter()
            .find(|(_, l)| l.starts_with(&deployed))
            .map(|(t, _)| since(*t)),
        last_line: last.map(|(_, l)| l.clone()),
        log_learned: learned.as_ref().and_then(|t| t.last().copied()),
        learned_but_last: learned.and_then(|t| t.iter().rev().nth(1).copied()),
        log_running: node_logs(&c.nodes, t0, |l| {
            l.contains("deploy: running a deployed handler") && l.contains(&module.sha256)
        })
        .and_then(|t| t.last().copied()),
        ..OneDeploy::default()
    };
    match status {
        Some(s) if s.success() => out.done = last.map(|(t, _)| since(*t)),
        Some(s) => out.cli_error = Some(format!("exit {s}: {}", proc.lines.tail(4))),
        None => out.cli_error = Some("still running after 70 s (killed)".to_owned()),
    }
    Ok(out)
}

/// Whether an agent's log line says it learned `version` of the deployment (from a peer, or
/// from the operator).
fn learned_line(line: &str, version: u64) -> bool {
    let version_field = format!("version={version}");
    (line.contains("deploy: learned a deployment")
        || line.contains("deploy: took a new deployment from the operator"))
        && line.split_whitespace().any(|w| w == version_field)
}

/// Seconds from `t0` until each of `nodes` logged a line for which `pred` holds (its first such
/// line after `t0`), sorted; `None` if some node has none.
fn node_logs(nodes: &[Node], t0: Instant, mut pred: impl FnMut(&str) -> bool) -> Option<Vec<f64>> {
    let mut times = nodes
        .iter()
        .map(|node| {
            node.proc
                .lines
                .all(|l| pred(l))
                .into_iter()
                .map(|(t, _)| t)
                .find(|t| *t >= t0)
                .map(|t| (t - t0).as_secs_f64())
        })
        .collect::<Option<Vec<f64>>>()?;
    times.sort_by(f64::total_cmp);
    Some(times)
}

/// One version's module, written to the scratch directory.
struct Module {
    version: u64,
    path: PathBuf,
    size: u64,
    /// Its sha256, hex (the agents name the module file by it).
    sha256: String,
}

/// Files `count` versions from `first` on, of one size class, into the scratch directory.
fn write_modules(
    c: &Cluster,
    echo: &[u8],
    first: u64,
    count: usize,
    pad: usize,
) -> Result<Vec<Module>> {
    (0..count as u64)
        .map(|i| {
            let version = first + i;
            let bytes = module_bytes(echo, version, pad);
            let path = c.scratch.0.join(format!("greet-v{version}.wasm"));
            std::fs::write(&path, &bytes)?;
            Ok(Module {
                version,
                path,
                size: bytes.len() as u64,
                sha256: hearsay_deploy::Digest::of(&bytes).to_string(),
            })
        })
        .collect()
}

/// Deploys each of `modules` in turn into `into`.
fn run_class(
    c: &Cluster,
    rt: &Runtime,
    n: usize,
    modules: &[Module],
    into: &mut ClassSamples,
    rtts: &mut Vec<f64>,
) -> Result<()> {
    for m in modules {
        into.bytes = into.bytes.max(m.size);
        let d = deploy_once(c, rt, m, n, rtts)?;
        record(into, m.version, &d);
        std::thread::sleep(GAP);
    }
    Ok(())
}

/// Adds one deploy's timings to `into`.
fn record(into: &mut ClassSamples, version: u64, d: &OneDeploy) {
    if let Some(line) = &d.last_line {
        let k = line
            .split(": ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|k| k.parse::<f64>().ok());
        into.cli_running.extend(k);
        into.cli_lines.push(line.clone());
    }
    into.log_learned.extend(d.log_learned);
    into.log_running.extend(d.log_running);
    match d.converged {
        Some(t) => {
            into.converged.push(t);
            if t > SLOW {
                into.slow.push(Slow {
                    version,
                    converged: t,
                    learned: d.log_learned,
                    learned_but_last: d.learned_but_last,
                    running: d.log_running,
                });
            }
            if let Some(taken) = d.taken {
                into.taken.push(taken);
                into.spread.push(t - taken);
            }
        }
        None => into
            .failures
            .push(format!("v{version}: not every node running within 70 s")),
    }
    match (&d.cli_error, d.done) {
        (Some(e), _) => into
            .failures
            .push(format!("v{version}: the CLI failed: {e}")),
        (None, Some(t)) => into.cli_done.push(t),
        (None, None) => {}
    }
}

/// The live measurement: one cluster of `plan.n` agents, a first deploy, `small_reps` small
/// and `large_reps` large ones.
pub(crate) fn measure(tools: &Tools, guests: &Guests, plan: LivePlan) -> Result<LiveSamples> {
    let echo = std::fs::read(&guests.echo)
        .with_context(|| format!("reading {}", guests.echo.display()))?;
    let rt = runtime()?;
    let (cluster, joined, formation) = Cluster::start(tools, &rt, plan.n)?;
    let mut out = LiveSamples {
        n: plan.n,
        joined,
        formation,
        echo_bytes: echo.len() as u64,
        ..LiveSamples::default()
    };
    let first = write_modules(&cluster, &echo, 1, 1, 0)?;
    run_class(
        &cluster,
        &rt,
        plan.n,
        &first,
        &mut out.first,
        &mut out.poll_rtt,
    )?;
    let small = write_modules(&cluster, &echo, 2, plan.small_reps, 0)?;
    run_class(
        &cluster,
        &rt,
        plan.n,
        &small,
        &mut out.small,
        &mut out.poll_rtt,
    )?;
    let next = 2 + plan.small_reps as u64;
    let large = write_modules(&cluster, &echo, next, plan.large_reps, plan.large_pad)?;
    run_class(
        &cluster,
        &rt,
        plan.n,
        &large,
        &mut out.large,
        &mut out.poll_rtt,
    )?;
    drop(cluster);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_section_framing() {
        let head = b"\0asm\x0d\0\x01\0".to_vec();
        let out = with_custom_section(&head, "ab", &[7; 200]);
        assert_eq!(&out[..8], &head[..]);
        // id 0, size 203 (LEB128 0xcb 0x01), name length 2, "ab", the payload.
        assert_eq!(&out[8..14], &[0, 0xcb, 0x01, 2, b'a', b'b']);
        assert_eq!(out.len(), 8 + 3 + 203);
    }

    #[test]
    fn versions_differ() {
        let echo = b"\0asm\x0d\0\x01\0";
        assert_ne!(module_bytes(echo, 1, 0), module_bytes(echo, 2, 0));
        assert_eq!(
            module_bytes(echo, 3, 1000).len(),
            module_bytes(echo, 4, 1000).len()
        );
    }
}
