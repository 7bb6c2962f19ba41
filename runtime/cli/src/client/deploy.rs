//! Deploying handler modules cluster-wide (hearsay extensions; a Serf agent has none of them):
//!
//! - `hearsay keygen -deploy -out FILE`: a new Ed25519 deploy key (the file, mode 0600), its
//!   public half printed as `ed25519:BASE64` for the agents' `-deploy-key`.
//! - `hearsay deploy -key FILE -name NAME -events FILTER [-tag k=REGEX]... [-limits k=v,...]
//!   [-grant-dir DIR]... [-grant-env K=V]... [-grant-emit] [-grant-clocks]
//!   [-grant-write-dir DIR]... [-grant-http URL]... [-grant-command NAME]... [-grant-kv SIZE]
//!   [-grant-tag PATTERN]... [-wait D] MODULE`:
//!   signs a deployment of the next version (one above every version the agent knows of the
//!   name), hands it and the module to the agent, then shows convergence.
//! - `hearsay rollback -key FILE -name NAME`: signs the previous version's record again, one
//!   version up. `hearsay undeploy -key FILE -name NAME`: signs a removal.
//! - `hearsay deployments [-format=text|json]`: every deployment and each hearsay node's
//!   state.
//!
//! The deploy commands wait (`-wait`, default 30s) until every hearsay node runs the new
//! version, is not selected by it, or has said why it will not; they exit 1 naming the nodes
//! that did not converge.

use super::flags;
use super::output::{columnize, json};
use hearsay_deploy::{Deployment, Digest, Grants, ModuleRef, SigningKey, Spec};
use hearsay_rpc::{RpcClient, RpcDeployNode, RpcDeployment};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

type Outcome = Result<(), String>;

/// How often the deploy commands look at convergence (each look asks every hearsay node).
const POLL: Duration = Duration::from_secs(1);

/// `hearsay keygen -deploy -out FILE`.
pub(super) fn keygen(out: Option<&str>) -> Outcome {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let Some(path) = out.filter(|p| !p.is_empty()) else {
        return Err("keygen -deploy needs -out FILE: where to write the secret key".into());
    };
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("Error writing the deploy key to {path}: {e}"))?;
    file.write_all(key.to_file_text().as_bytes())
        .map_err(|e| format!("Error writing the deploy key to {path}: {e}"))?;
    println!("{}", key.public());
    Ok(())
}

fn unsupported(doing: &str, e: hearsay_rpc::Error) -> String {
    super::hearsay_only_error(doing, "deployments", "deploying is", e)
}

fn read_key(p: &flags::Parsed) -> Result<SigningKey, String> {
    let path = p
        .get("key")
        .filter(|k| !k.is_empty())
        .ok_or("-key FILE is required: the deploy key from `hearsay keygen -deploy`")?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("Error reading the deploy key {path}: {e}"))?;
    SigningKey::from_file_text(&text)
        .map_err(|e| format!("Error reading the deploy key {path}: {e}"))
}

fn name_of(p: &flags::Parsed) -> Result<String, String> {
    p.get("name")
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "-name NAME is required".to_owned())
}

fn wait_of(p: &flags::Parsed) -> Result<Duration, String> {
    match p.get("wait") {
        None => Ok(Duration::from_secs(30)),
        Some(w) => hearsay_agent::conventions::parse_go_duration(w)
            .map_err(|e| format!("invalid -wait {w:?}: {e}")),
    }
}

/// The deployment named `name` the agent knows, if any.
async fn current(client: &RpcClient, name: &str) -> Result<Option<RpcDeployment>, String> {
    let all = client
        .deployments()
        .await
        .map_err(|e| unsupported("listing deployments", e))?;
    Ok(all.deployments.into_iter().find(|d| d.name == name))
}

/// One above every version of `name` the agent knows of, its own or one a node reports
/// (an agent that lags behind the cluster must not make the operator sign a version the
/// others would drop as stale).
fn next_version(known: Option<&RpcDeployment>) -> Result<u64, String> {
    let Some(d) = known else { return Ok(1) };
    let highest = d
        .nodes
        .iter()
        .map(|n| n.version)
        .chain([d.version])
        .max()
        .unwrap_or(0);
    highest
        .checked_add(1)
        .ok_or_else(|| format!("Error: {} is at the highest version there is", d.name))
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `k=v,k=v` (the `-limits` flag).
fn pairs(text: &str, flag: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| format!("invalid -{flag} entry {kv:?}; expected key=value"))
        })
        .collect()
}

/// `hearsay deploy`.
pub(super) async fn deploy(client: &RpcClient, p: &flags::Parsed) -> Outcome {
    let key = read_key(p)?;
    let name = name_of(p)?;
    let wait = wait_of(p)?;
    let [module_path] = p.args.as_slice() else {
        return Err("give one module file (a .wasm component) after the flags".into());
    };
    let events = p
        .get("events")
        .filter(|e| !e.is_empty())
        .ok_or("-events FILTER is required: which events the handler gets (e.g. query:greet)")?
        .to_owned();
    let selector = hearsay_agent::conventions::parse_tags(p.all("tag"))
        .map_err(|e| format!("invalid -tag: {e}"))?;
    let limits = pairs(p.get("limits").unwrap_or(""), "limits")?;
    let env = p
        .all("grant-env")
        .iter()
        .map(|kv| pairs(kv, "grant-env"))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let grants = Grants {
        dirs: p.all("grant-dir").to_vec(),
        env,
        emit: p.bool("grant-emit", false)?,
        clocks: p.bool("grant-clocks", false)?,
        write_dirs: p.all("grant-write-dir").to_vec(),
        http: p.all("grant-http").to_vec(),
        commands: p.all("grant-command").to_vec(),
        kv: p
            .get("grant-kv")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        tags: p.all("grant-tag").to_vec(),
    };
    let bytes = std::fs::read(module_path)
        .map_err(|e| format!("Error reading the module {module_path}: {e}"))?;
    let known = current(client, &name).await?;
    let spec = Spec {
        name: name.clone(),
        version: next_version(known.as_ref())?,
        module: Some(ModuleRef {
            sha256: Digest::of(&bytes),
            size: bytes.len() as u64,
        }),
        events,
        selector,
        limits,
        grants,
        signed_at: now_unix(),
    };
    submit(client, &key, spec, &bytes, wait).await
}

/// What `rollback` and `undeploy` start from: the key, the name, `-wait`, and the
/// deployment of that name the agent knows (an error if none).
async fn existing(
    client: &RpcClient,
    p: &flags::Parsed,
) -> Result<(SigningKey, String, Duration, RpcDeployment), String> {
    let key = read_key(p)?;
    let name = name_of(p)?;
    let wait = wait_of(p)?;
    match current(client, &name).await? {
        Some(known) => Ok((key, name, wait, known)),
        None => Err(format!(
            "Error: the agent knows no deployment named {name:?}"
        )),
    }
}

/// `hearsay rollback`: the previous version's record, signed again one version up.
pub(super) async fn rollback(client: &RpcClient, p: &flags::Parsed) -> Outcome {
    let (key, name, wait, known) = existing(client, p).await?;
    let now = Deployment::decode(&known.record).map_err(|e| format!("Error: {e}"))?;
    let previous = known
        .history
        .iter()
        .filter_map(|r| Deployment::decode(r).ok())
        .find(|r| r.spec().module.is_some() && r.spec().module != now.spec().module)
        .ok_or_else(|| format!("Error: {name:?} has no earlier version to roll back to"))?;
    let mut spec = previous.spec().clone();
    println!(
        "Rolling {name} back to the module of version {} (sha256 {})",
        spec.version,
        spec.module
            .as_ref()
            .map(|m| m.sha256.to_string())
            .unwrap_or_default()
    );
    spec.version = next_version(Some(&known))?;
    spec.signed_at = now_unix();
    submit(client, &key, spec, &[], wait).await
}

/// `hearsay undeploy`: a signed removal, one version up.
pub(super) async fn undeploy(client: &RpcClient, p: &flags::Parsed) -> Outcome {
    let (key, name, wait, known) = existing(client, p).await?;
    if known.removed {
        println!("{name} is already undeployed (version {})", known.version);
        return Ok(());
    }
    let spec = Spec {
        name,
        version: next_version(Some(&known))?,
        module: None,
        events: known.events.clone(),
        selector: BTreeMap::new(),
        limits: BTreeMap::new(),
        grants: Grants::default(),
        signed_at: now_unix(),
    };
    submit(client, &key, spec, &[], wait).await
}

/// Signs `spec`, hands it to the agent, and waits for convergence.
async fn submit(
    client: &RpcClient,
    key: &SigningKey,
    spec: Spec,
    module: &[u8],
    wait: Duration,
) -> Outcome {
    let name = spec.name.clone();
    let what = match &spec.module {
        Some(m) => format!("module sha256 {} ({} bytes)", m.sha256, m.size),
        None => "a removal".to_owned(),
    };
    let record = Deployment::sign(spec, key).map_err(|e| format!("Error signing: {e}"))?;
    let taken = client
        .deploy(&record.encode(), module)
        .await
        .map_err(|e| unsupported("deploying", e))?;
    println!("Deployed {name} version {taken}: {what}");
    converge(client, &record, wait).await
}

/// Where the nodes stand on one version: (done, not done) with the reasons.
fn tally(nodes: &[RpcDeployNode], removal: bool) -> (usize, usize, Vec<String>) {
    let goal = if removal { "removed" } else { "running" };
    let selected: Vec<&RpcDeployNode> = nodes
        .iter()
        .filter(|n| !matches!(n.state.as_str(), "not-selected" | "disabled"))
        .collect();
    let done = selected.iter().filter(|n| n.state == goal).count();
    let behind = selected
        .iter()
        .filter(|n| n.state != goal)
        .map(|n| {
            if n.reason.is_empty() {
                format!("{}: {}", n.node, n.state)
            } else {
                format!("{}: {} ({})", n.node, n.state, n.reason)
            }
        })
        .collect();
    (done, selected.len(), behind)
}

/// Shows progress until every selected node runs `ours`, or `wait` passed. Fails when the
/// cluster settled on another record (a racing deploy of the same name won).
async fn converge(client: &RpcClient, ours: &Deployment, wait: Duration) -> Outcome {
    let (name, version) = (&ours.spec().name, ours.spec().version);
    let deadline = Instant::now() + wait;
    let mut last = String::new();
    loop {
        let now = current(client, name).await?;
        let Some(d) = now else {
            return Err(format!("Error: the agent no longer lists {name}"));
        };
        if d.record != ours.encode() {
            return if d.history.iter().any(|h| *h == ours.encode()) {
                println!("{name} moved on to version {} meanwhile", d.version);
                Ok(())
            } else {
                Err(format!(
                    "Error: {name} version {} (signed by {}) won over this deploy (version \
                     {version}): deploy again",
                    d.version, d.signer
                ))
            };
        }
        let (done, of, behind) = tally(&d.nodes, d.removed);
        let verb = if d.removed { "removed" } else { "running" };
        let line = format!("{name} v{version}: {done} of {of} nodes {verb}");
        if line != last {
            println!("{line}");
            last = line;
        }
        if behind.is_empty() {
            return Ok(());
        }
        // Nothing left pending: the rest said why they will not run it.
        let settled = d
            .nodes
            .iter()
            .all(|n| !matches!(n.state.as_str(), "pending" | "unreachable"));
        if settled || Instant::now() >= deadline {
            let why = if settled {
                "will not"
            } else {
                "did not within -wait"
            };
            return Err(format!(
                "Error: {} of {of} nodes {why} converge on {name} v{version}:\n  {}",
                behind.len(),
                behind.join("\n  ")
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `hearsay deployments`.
pub(super) async fn list(client: &RpcClient, p: &flags::Parsed) -> Outcome {
    let format = super::format_of(p)?;
    let listed = client
        .deployments()
        .await
        .map_err(|e| unsupported("listing deployments", e))?;
    let all = &listed.deployments;
    if format == "json" {
        let out = ListJson {
            deployments: all.iter().map(DeploymentJson::of).collect(),
            refused: listed.refused.iter().map(RefusalJson::of).collect(),
        };
        println!("{}", json(&out)?);
        return Ok(());
    }
    if all.is_empty() {
        println!("No deployments.");
    }
    if !all.is_empty() {
        print_table(all);
    }
    if !listed.refused.is_empty() {
        println!("Refused lately:");
        for r in &listed.refused {
            println!("  {}: {} v{}: {}", r.node, r.name, r.version, r.reason);
        }
    }
    Ok(())
}

/// The deployments as a table, then the nodes that do not run them.
fn print_table(all: &[RpcDeployment]) {
    let mut lines = vec!["NAME|VERSION|NODES|SHA256|SIZE|EVENTS|SIGNER".to_owned()];
    let mut notes = Vec::new();
    for d in all {
        let (done, of, behind) = tally(&d.nodes, d.removed);
        let verb = if d.removed { "removed" } else { "running" };
        let sha: String = d.sha256.chars().take(12).collect();
        lines.push(format!(
            "{}|{}|{done}/{of} {verb}|{}|{}|{}|{}",
            d.name,
            d.version,
            if sha.is_empty() { "-".into() } else { sha },
            d.size,
            d.events,
            d.signer
        ));
        notes.extend(
            behind
                .into_iter()
                .map(|b| format!("  {} v{}: {b}", d.name, d.version)),
        );
    }
    println!("{}", columnize(&lines));
    for n in notes {
        println!("{n}");
    }
}

/// `deployments -format=json`.
#[derive(Serialize)]
struct ListJson<'a> {
    deployments: Vec<DeploymentJson<'a>>,
    refused: Vec<RefusalJson<'a>>,
}

/// One refused record in `deployments -format=json`.
#[derive(Serialize)]
struct RefusalJson<'a> {
    node: &'a str,
    name: &'a str,
    version: u64,
    reason: &'a str,
}

impl<'a> RefusalJson<'a> {
    fn of(r: &'a hearsay_rpc::RpcRefusal) -> Self {
        RefusalJson {
            node: &r.node,
            name: &r.name,
            version: r.version,
            reason: &r.reason,
        }
    }
}

/// One deployment in `deployments -format=json`.
#[derive(Serialize)]
struct DeploymentJson<'a> {
    name: &'a str,
    version: u64,
    sha256: &'a str,
    size: u64,
    events: &'a str,
    signer: &'a str,
    removed: bool,
    previous_versions: Vec<u64>,
    nodes: Vec<NodeJson<'a>>,
}

#[derive(Serialize)]
struct NodeJson<'a> {
    node: &'a str,
    state: &'a str,
    version: u64,
    reason: &'a str,
}

impl<'a> DeploymentJson<'a> {
    fn of(d: &'a RpcDeployment) -> Self {
        DeploymentJson {
            name: &d.name,
            version: d.version,
            sha256: &d.sha256,
            size: d.size,
            events: &d.events,
            signer: &d.signer,
            removed: d.removed,
            previous_versions: d
                .history
                .iter()
                .filter_map(|r| Deployment::decode(r).ok())
                .map(|r| r.spec().version)
                .collect(),
            nodes: d
                .nodes
                .iter()
                .map(|n| NodeJson {
                    node: &n.node,
                    state: &n.state,
                    version: n.version,
                    reason: &n.reason,
                })
                .collect(),
        }
    }
}
