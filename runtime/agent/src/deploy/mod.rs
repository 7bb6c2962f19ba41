//! Deploying handler modules cluster-wide ([`Deployer`]). An operator signs a deployment
//! (name, version, module sha256 and size, events, selector, limits, grants) with an Ed25519
//! key (`hearsay deploy`); an agent that trusts the key (`-deploy-key`) takes it over RPC with
//! the module's bytes, and from there the record travels among hearsay agents only:
//!
//! - **Rumor and anti-entropy** (`hearsay_deploy::Sync`): a record new to a node is pushed to a
//!   few random hearsay peers, which do the same; every node also compares its set's digest
//!   with a random peer now and then, and with every peer it sees for the first time (a
//!   restarted or late-joining node catches up at once). Concurrent versions of one name
//!   resolve the same way everywhere (`Deployment::supersedes`).
//! - **Content-addressed modules**: a node that selects a deployment fetches the module by
//!   sha256 from any hearsay peer holding it (the one that told it of the record first), checks
//!   digest and size, and keeps it under `<data_dir>/deploy`.
//! - **Bounded authority** (`apply`): selector, limits and grants are checked on each node;
//!   grants beyond the agent's `deploy_grants` are refused there with the reason.
//! - **Running** goes through `Handlers::set_deployed`: deployed handlers are named
//!   `deploy/NAME` beside the configured ones, each loaded on its own.
//!
//! All of it rides the agent's QUIC endpoint (`wire`): Serf members see no deploy traffic,
//! events or queries. The set and the modules persist, so a restarted agent runs its deployed
//! handlers before it rejoins.

mod apply;
mod store;
mod wire;

use crate::config::{DeploySettings, HandlerConfig};
use crate::handlers::{Handlers, DEPLOYED_PREFIX};
use crate::node::Node;
use crate::replies::{self, advert_of};
use hearsay_deploy::{Action, DeploySet, Deployment, Digest, Merge, ModuleRef, Sync, SyncConfig};
use hearsay_net::quic::{IncomingRequest, IncomingRequests, QuicAdvert, QuicEndpoint};
use hearsay_serf::event::{Event, MemberStatus};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::Store;
use tokio::sync::{mpsc, oneshot};

/// How long one peer may take to send a module.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one peer may take to answer a push, a sync or a status request.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// How many refused records a node remembers for `hearsay deployments`.
const REFUSALS_KEPT: usize = 32;
/// The anti-entropy period: a digest exchange with one random peer.
const SYNC_INTERVAL: Duration = Duration::from_secs(10);
/// Peers a new record is pushed to by each node that learns it.
const FANOUT: usize = 3;
/// Modules this node sends to peers at once; a peer asking beyond that is told to ask
/// another peer.
const SERVING: usize = 4;
/// How long a peer may take to read a reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// The first wait before a failed module fetch is tried again; it doubles up to
/// [`FETCH_BACKOFF_MAX`].
const FETCH_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between fetch attempts.
const FETCH_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Where one deployment stands on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// The handler runs this version.
    Running,
    /// Not yet: the module is being fetched, or the node has not learned of this version.
    Pending,
    /// The node will not run it: a limit, grant, events filter or module that does not load.
    Failed,
    /// The node refused the record itself (an untrusted signer).
    Refused,
    /// The selector does not pick this node.
    NotSelected,
    /// An undeploy: nothing runs.
    Removed,
    /// The node did not answer the status request.
    Unreachable,
    /// The node trusts no deploy key: it takes no deployment (and does not count against
    /// convergence).
    Disabled,
}

impl State {
    /// The state as `hearsay deployments` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Pending => "pending",
            State::Failed => "failed",
            State::Refused => "refused",
            State::NotSelected => "not-selected",
            State::Removed => "removed",
            State::Unreachable => "unreachable",
            State::Disabled => "disabled",
        }
    }
}

/// One node's view of one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// The deployment's name.
    pub name: String,
    /// The version this state is about.
    pub version: u64,
    /// Where it stands.
    pub state: State,
    /// Why (for pending, failed, refused, unreachable); empty otherwise.
    pub reason: String,
}

/// One deployment as `hearsay deployments` shows it: the record, its history, and each
/// hearsay node's state.
#[derive(Debug, Clone)]
pub struct ClusterDeployment {
    /// The current record.
    pub record: Deployment,
    /// Older records of the same name, newest first.
    pub history: Vec<Deployment>,
    /// Each hearsay node (this one included) and its state for the current version.
    pub nodes: Vec<(String, NodeState)>,
}

/// The cluster's deployments and the records nodes refused lately, as `hearsay
/// deployments` shows them.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Every deployment with each node's state.
    pub deployments: Vec<ClusterDeployment>,
    /// (node, refusal): records a node refused, newest first per node.
    pub refused: Vec<(String, NodeState)>,
}

/// Why a deployment was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The record or its module was refused; the text says why.
    #[error("deployment refused: {0}")]
    Refused(String),
    /// The agent is shutting down.
    #[error("the agent is shutting down")]
    Stopped,
    /// The node could not list members.
    #[error(transparent)]
    Node(#[from] crate::node::Error),
}

enum Command {
    Submit {
        record: Vec<u8>,
        module: Vec<u8>,
        reply: oneshot::Sender<Result<u64, DeployError>>,
    },
    Snapshot {
        reply: oneshot::Sender<Snapshot>,
    },
}

/// The set and this node's states at one moment.
struct Snapshot {
    records: Vec<(Deployment, Vec<Deployment>)>,
    states: Vec<NodeState>,
}

/// What the service's own tasks report back.
enum Internal {
    /// Records a peer pushed or sent in reply to a sync.
    Records {
        from: String,
        records: Vec<Deployment>,
        /// A sync reply: push back what this node has newer.
        sync_reply: bool,
    },
    /// A module fetch ended.
    Fetched {
        digest: Digest,
        result: Result<(), String>,
    },
    /// The handlers took a new set of deployed handlers; these did not load.
    Applied {
        configs: Vec<HandlerConfig>,
        failures: HashMap<String, String>,
    },
}

/// The deploy service's handle: takes deployments (RPC `deploy`) and reports them with
/// every node's state (RPC `deployments`). Clones share the service, which stops with the
/// last clone.
#[derive(Clone)]
pub struct Deployer {
    tx: mpsc::Sender<Command>,
    node: Node,
    endpoint: QuicEndpoint,
}

impl std::fmt::Debug for Deployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployer").finish_non_exhaustive()
    }
}

impl Deployer {
    /// Opens the deploy directory, runs the deployed handlers it holds (before the node
    /// joins anyone), and starts the service. `None` when the node runs no QUIC endpoint
    /// (deployments travel over it).
    pub async fn start(
        node: Node,
        handlers: Handlers,
        settings: DeploySettings,
    ) -> Result<Option<Deployer>, String> {
        let (Some(endpoint), Some(requests)) =
            (replies::quic_endpoint(&node), replies::take_requests(&node))
        else {
            return Ok(None);
        };
        let store = Store::open(settings.data_dir.as_deref())?;
        if settings.keys.is_empty() {
            tracing::info!(
                "deploy: no trusted deploy key (-deploy-key); this agent accepts no deployments"
            );
        }
        let set = store.load_set(settings.keys.clone());
        let (tx, commands) = mpsc::channel(64);
        let (internal_tx, mut internal) = mpsc::channel(256);
        let seed = rand::random();
        let mut service = Service {
            node: node.clone(),
            handlers,
            endpoint: endpoint.clone(),
            settings,
            store: Arc::new(store),
            set,
            sync: Sync::new(
                SyncConfig {
                    fanout: FANOUT,
                    interval: SYNC_INTERVAL,
                    seed,
                },
                Instant::now(),
            ),
            peers: BTreeMap::new(),
            states: BTreeMap::new(),
            refusals: VecDeque::new(),
            fetching: HashSet::new(),
            fetch_errors: HashMap::new(),
            fetch_next: HashMap::new(),
            verified: HashSet::new(),
            serving: Arc::new(tokio::sync::Semaphore::new(SERVING)),
            applying: false,
            sources: HashMap::new(),
            applied: Vec::new(),
            load_failures: HashMap::new(),
            internal_tx,
        };
        // The deployed handlers this node holds run before it joins anyone.
        service.reconcile().await;
        while service.applying {
            match internal.recv().await {
                Some(msg) => service.handle_internal(msg).await,
                None => break,
            }
        }
        let events = node.subscribe();
        tokio::spawn(service.run(commands, requests, internal, events));
        Ok(Some(Deployer { tx, node, endpoint }))
    }

    /// Takes a signed deployment (and its module's bytes, unless this node holds them):
    /// checks the signer, the version and the bytes, keeps them, and spreads the record.
    /// Returns the version taken.
    pub async fn deploy(&self, record: Vec<u8>, module: Vec<u8>) -> Result<u64, DeployError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Submit {
                record,
                module,
                reply,
            })
            .await
            .map_err(|_| DeployError::Stopped)?;
        rx.await.map_err(|_| DeployError::Stopped)?
    }

    /// Every deployment with the state of every alive hearsay node (asked over QUIC, a few
    /// seconds at most; a node that does not answer is `unreachable`), and what the nodes
    /// refused lately.
    pub async fn deployments(&self) -> Result<ClusterView, DeployError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Snapshot { reply })
            .await
            .map_err(|_| DeployError::Stopped)?;
        let snapshot = rx.await.map_err(|_| DeployError::Stopped)?;
        let me = self.node.name().to_owned();
        let mut views: Vec<(String, Result<Vec<NodeState>, String>)> =
            vec![(me.clone(), Ok(snapshot.states))];
        let mut asks = tokio::task::JoinSet::new();
        for m in self.node.members().await? {
            let Some(advert) = advert_of(&m) else {
                continue;
            };
            if m.name == me || m.status != MemberStatus::Alive {
                continue;
            }
            let endpoint = self.endpoint.clone();
            asks.spawn(async move {
                let asked = ask(
                    &endpoint,
                    &advert,
                    wire::STATUS,
                    &[],
                    wire::MAX_SMALL_REPLY,
                    ASK_TIMEOUT,
                )
                .await;
                (m.name, asked.and_then(|bytes| wire::decode_states(&bytes)))
            });
        }
        while let Some(done) = asks.join_next().await {
            if let Ok(view) = done {
                views.push(view);
            }
        }
        views.sort_by(|a, b| a.0.cmp(&b.0));
        let refused = views
            .iter()
            .filter_map(|(node, view)| Some((node, view.as_ref().ok()?)))
            .flat_map(|(node, states)| {
                states
                    .iter()
                    .filter(|s| s.state == State::Refused)
                    .map(move |s| (node.clone(), s.clone()))
            })
            .collect();
        let deployments = snapshot
            .records
            .into_iter()
            .map(|(record, history)| {
                let spec = record.spec();
                let nodes = views
                    .iter()
                    .map(|(node, view)| {
                        let state = match view {
                            Ok(states) => node_view(states, &spec.name, spec.version),
                            Err(why) => NodeState {
                                name: spec.name.clone(),
                                version: 0,
                                state: State::Unreachable,
                                reason: why.clone(),
                            },
                        };
                        (node.clone(), state)
                    })
                    .collect();
                ClusterDeployment {
                    record,
                    history,
                    nodes,
                }
            })
            .collect();
        Ok(ClusterView {
            deployments,
            refused,
        })
    }
}

/// What a node's states say about version `version` of `name`.
fn node_view(states: &[NodeState], name: &str, version: u64) -> NodeState {
    if let Some(s) = states.iter().find(|s| s.state == State::Disabled) {
        return NodeState {
            name: name.to_owned(),
            ..s.clone()
        };
    }
    if let Some(s) = states
        .iter()
        .find(|s| s.name == name && s.version == version)
    {
        return s.clone();
    }
    let (held, reason) = match states
        .iter()
        .find(|s| s.name == name && s.state != State::Refused)
    {
        Some(s) => (s.version, format!("holds version {}", s.version)),
        None => (0, "has not learned of it yet".to_owned()),
    };
    NodeState {
        name: name.to_owned(),
        version: held,
        state: State::Pending,
        reason,
    }
}

/// The service task's state.
struct Service {
    node: Node,
    handlers: Handlers,
    endpoint: QuicEndpoint,
    settings: DeploySettings,
    store: Arc<Store>,
    set: DeploySet,
    sync: Sync<String>,
    /// Alive hearsay members other than this node, with their QUIC endpoints.
    peers: BTreeMap<String, QuicAdvert>,
    /// This node's state per deployment name.
    states: BTreeMap<String, NodeState>,
    /// Records this node refused lately, newest last.
    refusals: VecDeque<NodeState>,
    /// Modules being fetched.
    fetching: HashSet<Digest>,
    /// Why the last fetch of a module failed.
    fetch_errors: HashMap<Digest, String>,
    /// When a module whose fetch failed may be fetched again, and the wait after that.
    fetch_next: HashMap<Digest, (Instant, Duration)>,
    /// Modules whose file was checked against its digest since this agent started.
    verified: HashSet<Digest>,
    /// Permits for serving modules to peers.
    serving: Arc<tokio::sync::Semaphore>,
    /// A `Handlers::set_deployed` runs (in a task of its own).
    applying: bool,
    /// The peer that told this node of a module's record first: asked for it first.
    sources: HashMap<Digest, String>,
    /// The deployed handlers last handed to `Handlers::set_deployed`.
    applied: Vec<HandlerConfig>,
    /// Why a deployed handler of `applied` did not load (by handler name).
    load_failures: HashMap<String, String>,
    internal_tx: mpsc::Sender<Internal>,
}

impl Service {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut requests: IncomingRequests,
        mut internal: mpsc::Receiver<Internal>,
        mut events: tokio::sync::broadcast::Receiver<Event>,
    ) {
        self.refresh_peers().await;
        self.drain_actions();
        let (mut requests_open, mut events_open) = (true, true);
        loop {
            let wake = self.sync.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.handle_command(cmd).await,
                    None => return,
                },
                req = requests.next(), if requests_open => match req {
                    Some(req) => self.handle_request(req).await,
                    None => requests_open = false,
                },
                Some(msg) = internal.recv() => self.handle_internal(msg).await,
                ev = events.recv(), if events_open => events_open = self.handle_event(ev).await,
                _ = sleep_until(wake) => {
                    self.sync.handle_timeout(Instant::now());
                    self.refresh_peers().await;
                    if self.states.values().any(|s| s.state == State::Pending) {
                        self.reconcile().await;
                    }
                }
            }
            self.drain_actions();
        }
    }

    async fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::Submit {
                record,
                module,
                reply,
            } => {
                let taken = match Deployment::decode(&record) {
                    Err(e) => Err(DeployError::Refused(format!("not a valid deployment: {e}"))),
                    Ok(d) => {
                        let (name, version) = (d.spec().name.clone(), d.spec().version);
                        let taken = self.submit(d, &module).await;
                        if let Err(DeployError::Refused(why)) = &taken {
                            self.refuse(&name, version, why.clone());
                        }
                        taken
                    }
                };
                let _ = reply.send(taken);
            }
            Command::Snapshot { reply } => {
                let records = self
                    .set
                    .current()
                    .map(|d| (d.clone(), self.set.history(&d.spec().name).to_vec()))
                    .collect();
                let _ = reply.send(Snapshot {
                    records,
                    states: self.local_states(),
                });
            }
        }
    }

    /// This node's states, then the records it refused.
    fn local_states(&self) -> Vec<NodeState> {
        if self.settings.keys.is_empty() {
            return vec![NodeState {
                name: String::new(),
                version: 0,
                state: State::Disabled,
                reason: "this agent trusts no deploy key".into(),
            }];
        }
        self.states
            .values()
            .chain(self.refusals.iter().rev())
            .cloned()
            .collect()
    }

    /// A deployment from the operator (RPC): checked fully before anything is kept.
    async fn submit(&mut self, d: Deployment, module: &[u8]) -> Result<u64, DeployError> {
        let refused = DeployError::Refused;
        let spec = d.spec().clone();
        if !self.settings.keys.contains(&d.signer()) {
            return Err(refused(format!(
                "{} version {} is signed by {}, which this agent does not trust (-deploy-key)",
                spec.name,
                spec.version,
                d.signer()
            )));
        }
        if let Some(current) = self.set.get(&spec.name) {
            if current.id() == d.id() {
                return Ok(spec.version);
            }
            // From the operator, only a higher version: an equal one would win or lose by
            // its signature bytes (the rule for deploys that raced), not by intent.
            if spec.version <= current.spec().version {
                return Err(refused(format!(
                    "{} version {} is not newer than version {} this agent has",
                    spec.name,
                    spec.version,
                    current.spec().version
                )));
            }
        }
        if let Some(m) = &spec.module {
            self.take_module(m, module).await?;
            self.verified.insert(m.sha256);
        }
        match self.set.merge(d) {
            Merge::Added | Merge::Replaced { .. } => {
                tracing::info!(deployment = %spec.name, version = spec.version, "deploy: took a new deployment from the operator");
                self.learned(&spec.name).await;
                Ok(spec.version)
            }
            Merge::Known => Ok(spec.version),
            other => Err(refused(format!("{other:?}"))),
        }
    }

    /// Keeps the operator's module bytes after checking them against the signed digest, or
    /// checks this node already holds them.
    /// Hashing and writing run off the service's task.
    async fn take_module(&self, m: &ModuleRef, bytes: &[u8]) -> Result<(), DeployError> {
        let refused = DeployError::Refused;
        if let Some(why) = self.too_large(m) {
            return Err(refused(why));
        }
        let (store, m, bytes) = (self.store.clone(), m.clone(), bytes.to_vec());
        let kept = tokio::task::spawn_blocking(move || {
            if bytes.is_empty() {
                return match store.read_module(&m.sha256) {
                    Some(_) => Ok(()),
                    None => Err(format!(
                        "this agent does not hold module {}; send its bytes",
                        m.sha256
                    )),
                };
            }
            let got = Digest::of(&bytes);
            if bytes.len() as u64 != m.size || got != m.sha256 {
                return Err(format!(
                    "the module's bytes ({} bytes, sha256 {got}) are not the signed ones ({} \
                     bytes, sha256 {})",
                    bytes.len(),
                    m.size,
                    m.sha256
                ));
            }
            store.write_module(&m.sha256, &bytes)
        })
        .await;
        match kept {
            Ok(r) => r.map_err(refused),
            Err(e) => Err(refused(format!("keeping the module: {e}"))),
        }
    }

    /// Why a module is too large for this agent, if it is.
    fn too_large(&self, m: &ModuleRef) -> Option<String> {
        (m.size > self.settings.module_max_bytes).then(|| {
            format!(
                "the module is {} bytes; this agent takes at most {} (deploy_module_max_bytes)",
                m.size, self.settings.module_max_bytes
            )
        })
    }

    /// A record new to this node: spread it, save the set, run what changed.
    async fn learned(&mut self, name: &str) {
        self.sync.handle_learned(Instant::now(), name);
        self.store.save_set(&self.set);
        self.reconcile().await;
    }

    async fn handle_request(&mut self, req: IncomingRequest) {
        match req.service {
            wire::PUSH => {
                // Decoding and checking signatures is the costly part: off the service task.
                let (from, tx) = (self.peer_name(&req), self.internal_tx.clone());
                tokio::spawn(async move {
                    let body = req.body.clone();
                    let peer = from.clone();
                    let decoded =
                        tokio::task::spawn_blocking(move || wire::decode_list(&body, &peer))
                            .await
                            .unwrap_or_else(|e| Err(e.to_string()));
                    match decoded {
                        Ok(records) => {
                            answer(req, Ok(Vec::new()));
                            let _ = tx
                                .send(Internal::Records {
                                    from,
                                    records,
                                    sync_reply: false,
                                })
                                .await;
                        }
                        Err(e) => {
                            tracing::warn!(peer = %from, error = %e, "deploy: refused a push");
                            answer(req, Err(e));
                        }
                    }
                });
            }
            wire::SYNC => {
                let theirs = String::from_utf8_lossy(&req.body).into_owned();
                // A keyless agent takes no records: "same" spares the asker from pushing
                // its whole set back at every sync.
                let reply =
                    if self.settings.keys.is_empty() || theirs == self.set.digest().to_string() {
                        Vec::new()
                    } else {
                        hearsay_deploy::encode_records(self.set.current())
                    };
                answer(req, Ok(reply));
            }
            wire::FETCH => {
                let Ok(permit) = self.serving.clone().try_acquire_owned() else {
                    answer(
                        req,
                        Err("busy sending this module to other peers; ask another peer".into()),
                    );
                    return;
                };
                let store = self.store.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let wanted = String::from_utf8_lossy(&req.body).parse::<Digest>();
                    let bytes = match wanted {
                        Ok(d) => tokio::task::spawn_blocking(move || store.read_module(&d))
                            .await
                            .ok()
                            .flatten()
                            .ok_or_else(|| format!("this node does not hold module {d}")),
                        Err(e) => Err(format!("not a module digest: {e}")),
                    };
                    reply_within(req, bytes).await;
                });
            }
            wire::STATUS => {
                answer(req, Ok(wire::encode_states(&self.local_states())));
            }
            other => {
                answer(req, Err(format!("unknown deploy service {other}")));
            }
        }
    }

    /// The member name of a request's sender (by its certificate), or its address.
    fn peer_name(&self, req: &IncomingRequest) -> String {
        self.peers
            .iter()
            .find(|(_, a)| a.fingerprint == req.peer)
            .map_or_else(|| req.remote.to_string(), |(n, _)| n.clone())
    }

    async fn handle_internal(&mut self, msg: Internal) {
        match msg {
            Internal::Records {
                from,
                records,
                sync_reply,
            } => {
                if sync_reply {
                    let newer = self.set.newer_than(&records);
                    if !newer.is_empty() {
                        self.push(&from, newer);
                    }
                }
                self.merge_from(&from, records).await;
            }
            Internal::Fetched { digest, result } => {
                self.fetching.remove(&digest);
                match result {
                    Ok(()) => {
                        self.fetch_errors.remove(&digest);
                        self.fetch_next.remove(&digest);
                        self.verified.insert(digest);
                    }
                    Err(why) => self.fetch_failed(digest, why),
                }
                self.reconcile().await;
            }
            Internal::Applied { configs, failures } => {
                self.applying = false;
                for c in &configs {
                    match failures.get(&c.name) {
                        Some(e) => {
                            tracing::warn!(handler = %c.name, error = %e, "deploy: a deployed handler did not load")
                        }
                        None if !self.applied.contains(c) => {
                            tracing::info!(handler = %c.name, module = %c.module.display(), "deploy: running a deployed handler")
                        }
                        None => {}
                    }
                }
                self.applied = configs;
                self.load_failures = failures;
                self.reconcile().await;
            }
        }
    }

    /// Notes a failed fetch: tried again after a wait that doubles each time; logged when
    /// the reason changes.
    fn fetch_failed(&mut self, digest: Digest, why: String) {
        let wait = self
            .fetch_next
            .get(&digest)
            .map_or(FETCH_BACKOFF, |(_, w)| (*w * 2).min(FETCH_BACKOFF_MAX));
        self.fetch_next
            .insert(digest, (Instant::now() + wait, wait));
        if self.fetch_errors.get(&digest) != Some(&why) {
            tracing::warn!(module = %digest, error = %why, retry_in = ?wait, "deploy: cannot fetch a module");
        } else {
            tracing::debug!(module = %digest, error = %why, retry_in = ?wait, "deploy: cannot fetch a module");
        }
        self.fetch_errors.insert(digest, why);
    }

    /// Merges records a peer sent; spreads the new ones and notes refusals.
    async fn merge_from(&mut self, from: &str, records: Vec<Deployment>) {
        if self.settings.keys.is_empty() {
            // Disabled: records are neither taken nor refused one by one.
            return;
        }
        let mut changed = Vec::new();
        let mut untrusted = Vec::new();
        for d in records {
            let (name, version, signer) = (d.spec().name.clone(), d.spec().version, d.signer());
            let module = d.spec().module.as_ref().map(|m| m.sha256);
            match self.set.merge(d) {
                Merge::Added | Merge::Replaced { .. } => {
                    tracing::info!(deployment = %name, version, peer = %from, "deploy: learned a deployment");
                    if let Some(sha) = module {
                        self.sources.entry(sha).or_insert_with(|| from.to_owned());
                    }
                    self.sync.handle_learned(Instant::now(), &name);
                    changed.push(name);
                }
                Merge::Untrusted { .. } => untrusted.push((name, version, signer)),
                Merge::Known | Merge::Stale { .. } => {}
            }
        }
        if let Some((name, version, signer)) = untrusted.first() {
            tracing::warn!(peer = %from, refused = untrusted.len(), first = %format!("{name} v{version} by {signer}"), "deploy: refused records signed by keys this agent does not trust");
        }
        for (name, version, signer) in untrusted {
            let why = format!("signed by {signer}, which this agent does not trust");
            self.note_refusal(&name, version, why);
        }
        if !changed.is_empty() {
            self.store.save_set(&self.set);
            self.reconcile().await;
        }
    }

    /// Notes (once) and logs that this node refused a record.
    fn refuse(&mut self, name: &str, version: u64, reason: String) {
        tracing::warn!(deployment = %name, version, reason = %reason, "deploy: refused a deployment");
        self.note_refusal(name, version, reason);
    }

    /// Notes (once) that this node refused a record, for `hearsay deployments`.
    fn note_refusal(&mut self, name: &str, version: u64, reason: String) {
        if self
            .refusals
            .iter()
            .any(|r| r.name == name && r.version == version && r.reason == reason)
        {
            return;
        }
        if self.refusals.len() == REFUSALS_KEPT {
            self.refusals.pop_front();
        }
        self.refusals.push_back(NodeState {
            name: name.to_owned(),
            version,
            state: State::Refused,
            reason,
        });
    }

    /// Follows the node's member events; false once the node has stopped.
    async fn handle_event(
        &mut self,
        ev: Result<Event, tokio::sync::broadcast::error::RecvError>,
    ) -> bool {
        let me = self.node.name().to_owned();
        let reconcile = match ev {
            Ok(Event::Member(m)) => {
                self.refresh_peers().await;
                m.members.iter().any(|x| x.name == me)
            }
            Ok(_) => false,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                self.refresh_peers().await;
                true
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
        };
        if reconcile {
            // This node's tags may have changed: its selectors may pick it or not now.
            self.reconcile().await;
        }
        true
    }

    /// The alive hearsay members (those with a QUIC endpoint), for the rumor and the syncs.
    async fn refresh_peers(&mut self) {
        let Ok(members) = self.node.members().await else {
            return;
        };
        let me = self.node.name();
        self.peers = members
            .iter()
            .filter(|m| m.name != me && m.status == MemberStatus::Alive)
            .filter_map(|m| Some((m.name.clone(), advert_of(m)?)))
            .collect();
        self.sync
            .handle_peers(Instant::now(), self.peers.keys().cloned());
    }

    /// Carries out what the dissemination core asks for.
    fn drain_actions(&mut self) {
        while let Some(action) = self.sync.poll_action() {
            match action {
                Action::Push { peer, records } => {
                    let records: Vec<Deployment> = records
                        .iter()
                        .filter_map(|n| self.set.get(n).cloned())
                        .collect();
                    self.push(&peer, records);
                }
                Action::Sync { peer } => self.ask_sync(&peer),
            }
        }
    }

    fn push(&self, peer: &str, records: Vec<Deployment>) {
        let Some(advert) = self.peers.get(peer).copied() else {
            return;
        };
        let endpoint = self.endpoint.clone();
        let (peer, body) = (peer.to_owned(), hearsay_deploy::encode_records(&records));
        tokio::spawn(async move {
            let sent = ask(
                &endpoint,
                &advert,
                wire::PUSH,
                &body,
                wire::MAX_SMALL_REPLY,
                ASK_TIMEOUT,
            )
            .await;
            if let Err(e) = sent {
                tracing::debug!(peer = %peer, error = %e, "deploy: a push failed");
            }
        });
    }

    fn ask_sync(&self, peer: &str) {
        let Some(advert) = self.peers.get(peer).copied() else {
            return;
        };
        let endpoint = self.endpoint.clone();
        let tx = self.internal_tx.clone();
        let (from, digest) = (peer.to_owned(), self.set.digest().to_string());
        tokio::spawn(async move {
            let asked = ask(
                &endpoint,
                &advert,
                wire::SYNC,
                digest.as_bytes(),
                wire::MAX_SMALL_REPLY,
                ASK_TIMEOUT,
            )
            .await;
            let bytes = match asked {
                Ok(bytes) if bytes.is_empty() => return,
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::debug!(peer = %from, error = %e, "deploy: a sync failed");
                    return;
                }
            };
            let peer = from.clone();
            let decoded = tokio::task::spawn_blocking(move || wire::decode_list(&bytes, &peer))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            let records = match decoded {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(peer = %from, error = %e, "deploy: a bad sync reply");
                    return;
                }
            };
            let _ = tx
                .send(Internal::Records {
                    from,
                    records,
                    sync_reply: true,
                })
                .await;
        });
    }

    /// Brings what runs in line with the set: picks the deployments this node selects,
    /// fetches missing modules, checks limits and grants, hands the result to the handlers.
    async fn reconcile(&mut self) {
        let tags = match self.node.local_member().await {
            Ok(m) => m.tags,
            Err(_) => return,
        };
        let mut configs = Vec::new();
        let mut states = BTreeMap::new();
        let mut keep = HashSet::new();
        let current: Vec<Deployment> = self.set.current().cloned().collect();
        for d in &current {
            let spec = d.spec();
            for h in std::iter::once(d).chain(self.set.history(&spec.name)) {
                if let Some(m) = &h.spec().module {
                    keep.insert(m.sha256);
                }
            }
            let (state, reason) = self.plan(d, &tags, &mut configs);
            states.insert(
                spec.name.clone(),
                NodeState {
                    name: spec.name.clone(),
                    version: spec.version,
                    state,
                    reason,
                },
            );
        }
        if configs != self.applied && !self.applying {
            self.apply(configs.clone());
        }
        // Until the handlers took it, a handler to run is still loading.
        for c in configs.iter().filter(|c| !self.applied.contains(c)) {
            if let Some(s) = c
                .name
                .strip_prefix(DEPLOYED_PREFIX)
                .and_then(|n| states.get_mut(n))
            {
                s.state = State::Pending;
                s.reason = "loading the handler".into();
            }
        }
        for (handler, why) in &self.load_failures {
            if let Some(s) = handler
                .strip_prefix(DEPLOYED_PREFIX)
                .and_then(|n| states.get_mut(n))
            {
                s.state = State::Failed;
                s.reason = why.clone();
            }
        }
        self.states = states;
        self.verified.retain(|d| keep.contains(d));
        self.store.collect_garbage(&keep);
    }

    /// Hands `configs` to the handlers in a task of its own (compiling may take a while);
    /// `Internal::Applied` reports back.
    fn apply(&mut self, configs: Vec<HandlerConfig>) {
        self.applying = true;
        let (handlers, tx) = (self.handlers.clone(), self.internal_tx.clone());
        tokio::spawn(async move {
            let failures = handlers
                .set_deployed(configs.clone())
                .await
                .into_iter()
                .map(|(name, e)| (name, e.to_string()))
                .collect();
            let _ = tx.send(Internal::Applied { configs, failures }).await;
        });
    }

    /// What this node does with one deployment; a handler to run goes into `configs`.
    fn plan(
        &mut self,
        d: &Deployment,
        tags: &BTreeMap<String, String>,
        configs: &mut Vec<HandlerConfig>,
    ) -> (State, String) {
        let spec = d.spec();
        let Some(module) = &spec.module else {
            return (State::Removed, String::new());
        };
        if !apply::selects(&spec.selector, tags) {
            return (State::NotSelected, String::new());
        }
        if let Some(why) = self.too_large(module) {
            return (State::Failed, why);
        }
        let Some(path) = self.module_path(&module.sha256) else {
            self.fetch(module);
            let reason = match self.fetch_errors.get(&module.sha256) {
                Some(e) => format!("fetching the module: {e}"),
                None => "fetching the module".to_owned(),
            };
            return (State::Pending, reason);
        };
        match apply::handler_config(
            spec,
            path,
            &self.settings.ceiling,
            self.settings.data_dir.as_deref(),
        ) {
            Ok(c) => {
                configs.push(c);
                (State::Running, String::new())
            }
            Err(why) => (State::Failed, why),
        }
    }

    /// The module's file, when held and matching its digest (checked once per run of the
    /// agent; the directory is the agent's own).
    fn module_path(&mut self, d: &Digest) -> Option<std::path::PathBuf> {
        if self.verified.contains(d) {
            return self.store.path_of(d);
        }
        let path = self.store.module_path(d)?;
        self.verified.insert(*d);
        Some(path)
    }

    /// Fetches a module from the hearsay peers (the one that told us of it first, then the
    /// others in random order), unless a fetch of it runs already or a failed one is waiting
    /// for its next attempt.
    fn fetch(&mut self, module: &ModuleRef) {
        let waiting = self
            .fetch_next
            .get(&module.sha256)
            .is_some_and(|(at, _)| Instant::now() < *at);
        if self.settings.data_dir.is_none() || waiting || !self.fetching.insert(module.sha256) {
            return;
        }
        let mut peers: Vec<(String, QuicAdvert)> =
            self.peers.iter().map(|(n, a)| (n.clone(), *a)).collect();
        {
            use rand::seq::SliceRandom;
            peers.shuffle(&mut rand::thread_rng());
        }
        if let Some(first) = self.sources.get(&module.sha256) {
            peers.sort_by_key(|(n, _)| n != first);
        }
        let (endpoint, store, tx) = (
            self.endpoint.clone(),
            self.store.clone(),
            self.internal_tx.clone(),
        );
        let module = module.clone();
        tokio::spawn(async move {
            let result = fetch_from(&endpoint, &store, &module, &peers).await;
            let _ = tx
                .send(Internal::Fetched {
                    digest: module.sha256,
                    result,
                })
                .await;
        });
    }
}

/// One request to a peer, bounded by `limit`; `Err` says why, in words for the logs and
/// `hearsay deployments`.
async fn ask(
    endpoint: &QuicEndpoint,
    peer: &QuicAdvert,
    service: u8,
    body: &[u8],
    max_reply: u64,
    limit: Duration,
) -> Result<Vec<u8>, String> {
    match tokio::time::timeout(limit, endpoint.request(peer, service, body, max_reply)).await {
        Ok(reply) => reply.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// Asks `peers` in turn for the module until one sends the right bytes, and keeps them.
async fn fetch_from(
    endpoint: &QuicEndpoint,
    store: &Arc<Store>,
    module: &ModuleRef,
    peers: &[(String, QuicAdvert)],
) -> Result<(), String> {
    let wanted = module.sha256.to_string();
    let mut last = "no hearsay peer to fetch it from".to_owned();
    for (name, advert) in peers {
        let bytes = match ask(
            endpoint,
            advert,
            wire::FETCH,
            wanted.as_bytes(),
            module.size,
            FETCH_TIMEOUT,
        )
        .await
        {
            Ok(b) => b,
            Err(e) => {
                last = format!("{name}: {e}");
                continue;
            }
        };
        if bytes.len() as u64 != module.size || Digest::of(&bytes) != module.sha256 {
            last = format!("{name} sent bytes that are not the signed module");
            continue;
        }
        let (store, sha) = (store.clone(), module.sha256);
        return tokio::task::spawn_blocking(move || store.write_module(&sha, &bytes))
            .await
            .map_err(|e| e.to_string())?;
    }
    Err(last)
}

/// Answers a request from a task of its own (the peer's reading must not hold the service).
fn answer(req: IncomingRequest, reply: Result<Vec<u8>, String>) {
    tokio::spawn(reply_within(req, reply));
}

/// Answers a request, giving up (the stream is reset) when the peer does not read the reply
/// within [`REPLY_TIMEOUT`].
async fn reply_within(req: IncomingRequest, reply: Result<Vec<u8>, String>) {
    let remote = req.remote;
    let sent = tokio::time::timeout(REPLY_TIMEOUT, async {
        match reply {
            Ok(body) => req.reply(&body).await,
            Err(why) => req.fail(&why).await,
        }
    })
    .await;
    match sent {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(peer = %remote, error = %e, "deploy: a reply failed"),
        Err(_) => tracing::debug!(peer = %remote, "deploy: a peer did not read its reply in time"),
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
