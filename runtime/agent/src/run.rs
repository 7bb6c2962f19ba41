//! The agent runtime `hearsay agent` runs, built from a [`Config`]: it binds the gossip
//! sockets, sets up the keyring, tags (or tags file) and snapshot, joins at start (`join`) and
//! in the background (`retry_join`), starts Serf's RPC server (`hearsay_rpc`, over
//! [`crate::AgentBackend`]) on `rpc_addr`, then waits for signals (or an RPC `leave`) as Serf's
//! agent does:
//!
//! - SIGHUP re-reads the config files: new log level, new tags (from the tags file when one
//!   is used), new signal settings;
//! - SIGINT leaves gracefully unless `skip_leave_on_interrupt`;
//! - SIGTERM leaves gracefully only with `leave_on_terminate`;
//! - a second signal during the leave exits at once (status 1).
//!
//! Also the agent's logging ([`Logging`]): `tracing` to stdout, readable or JSON, with a level
//! that SIGHUP can change.

use crate::config::{Config, LogLevel, Sources};
use crate::conventions::{self, DEFAULT_BIND_PORT};
use crate::deploy::Deployer;
use crate::error::{Error, Result};
use crate::handlers::Handlers;
use crate::logs::LogHub;
use crate::node::{Node, NodeOptions};
use crate::replies;
use crate::rpc_backend::{AgentBackend, AgentInfo};
use crate::{snapshot, tags_file};
use hearsay_net::discover::{Discovery, Interface};
use hearsay_net::{Transport, UdpTcpTransport};
use hearsay_rpc::{RpcServer, ServerOptions};
use hearsay_serf::event::Event;
use hearsay_serf::SerfConfig;
use hearsay_swim::Keyring;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, error, info, warn};
use tracing_subscriber::filter::{filter_fn, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, Layer, Registry};

/// A layer over the base subscriber, boxed.
pub type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The installed log output, the handle that changes its level, and the hub `monitor`
/// clients read every log line from.
#[derive(Debug, Clone)]
pub struct Logging {
    level: reload::Handle<LevelFilter, Registry>,
    hub: LogHub,
}

impl Logging {
    /// Installs the global subscriber: logs at `level` and above to stdout (as Serf's agent
    /// prints them), one JSON object per line with `json`, colours only on a terminal.
    /// The log hub and the `extra` layers see every event, whatever the level (Serf's
    /// `monitor` picks its own); the output and the hub take the libraries' events only from
    /// WARN up ([`ours_or_warnings`]). Fails if a global subscriber is already installed.
    pub fn init(level: LogLevel, json: bool, extra: Vec<BoxedLayer>) -> Result<Self> {
        use std::io::IsTerminal;
        let (filter, handle) = reload::Layer::new(LevelFilter::from_level(level.tracing_level()));
        let output: BoxedLayer = if json {
            fmt::layer()
                .json()
                .with_writer(std::io::stdout)
                .with_filter(filter)
                .boxed()
        } else {
            fmt::layer()
                .with_writer(std::io::stdout)
                .with_ansi(std::io::stdout().is_terminal())
                .with_target(false)
                .with_filter(filter)
                .boxed()
        };
        let output = output.with_filter(filter_fn(ours_or_warnings)).boxed();
        let hub = LogHub::default();
        let hub_layer = hub.layer().with_filter(filter_fn(ours_or_warnings)).boxed();
        let mut layers = vec![output, hub_layer];
        layers.extend(extra);
        tracing_subscriber::registry()
            .with(layers)
            .try_init()
            .map_err(Error::Logging)?;
        // The `log` bridge hands every record to the subscriber to be filtered; cutting the
        // libraries' debug and trace records in the `log` macros saves that call per record.
        log::set_max_level(log::LevelFilter::Warn);
        Ok(Self { level: handle, hub })
    }

    /// Where `monitor` reads the log lines from.
    pub fn hub(&self) -> &LogHub {
        &self.hub
    }

    /// Changes the level of the output (SIGHUP).
    pub fn set_level(&self, level: LogLevel) {
        let _ = self
            .level
            .reload(LevelFilter::from_level(level.tracing_level()));
    }
}

/// Whether a log event is shown: every event of hearsay's own crates, and the libraries' under
/// it (wasmtime and Cranelift, quinn, rustls, ...) from WARN up. Their debug and trace events
/// come by the thousand (one per function Cranelift compiles, per QUIC packet): formatting each
/// for the monitor's ring made compiling a 12 MB component minutes slower, and they would bury
/// hearsay's own lines at `-log-level=debug`.
fn ours_or_warnings(meta: &tracing::Metadata<'_>) -> bool {
    meta.target().starts_with("hearsay") || *meta.level() <= tracing::Level::WARN
}

/// Prints a line of the agent's own output (what Serf prints with `==> `).
/// The task that joins what mDNS discovery finds; dropping it stops the joins, and with them
/// the discovery it owns (its sockets close).
#[derive(Debug)]
pub struct DiscoveryGuard(tokio::task::JoinHandle<()>);

impl Drop for DiscoveryGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn ui(line: &str) {
    println!("==> {line}");
}

/// Prints an indented detail line (Serf's `Ui.Info`).
fn ui_info(line: &str) {
    println!("    {line}");
}

/// The keyring `encrypt` or `keyring_file` describe (Serf allows only one of them, which the
/// config checked); `None` for plaintext.
pub fn keyring(config: &Config) -> Result<Option<Keyring>> {
    if let Some(path) = &config.keyring_file {
        let text = std::fs::read_to_string(path).map_err(|source| Error::KeyringFile {
            path: path.clone(),
            source,
        })?;
        let ring = crate::keyring_file::decode(&text).map_err(|source| Error::Keyring {
            what: format!("keyring file {}", path.display()),
            source,
        })?;
        return Ok(Some(ring));
    }
    let Some(key) = &config.encrypt_key else {
        return Ok(None);
    };
    Keyring::from_base64_keys(&[key.as_str()])
        .map(Some)
        .map_err(|source| Error::Keyring {
            what: "invalid encryption key (encrypt)".to_owned(),
            source,
        })
}

/// The tags to start with: the tags file's when one is configured (Serf does not allow both),
/// else the config's.
pub fn initial_tags(config: &Config) -> Result<BTreeMap<String, String>> {
    match &config.tags_file {
        Some(path) => {
            let tags = tags_file::read(path)?;
            if !tags.is_empty() {
                info!(count = tags.len(), file = %path.display(), "agent: restored tags from the tags file");
            }
            Ok(tags)
        }
        None => Ok(config.tags.clone()),
    }
}

/// The address this host is reached at from outside, for a wildcard bind without
/// `advertise` (see [`hearsay_net::transport::outward_ip`]); loopback when there is no route.
pub fn outward_ip() -> IpAddr {
    hearsay_net::transport::outward_ip().unwrap_or(crate::config::LOOPBACK)
}

/// Binds the gossip sockets (UDP and TCP on the same port). With `bind_fallback` (`-dev`
/// without `-bind`), a busy port is replaced by a free one.
pub async fn bind(config: &Config) -> Result<UdpTcpTransport> {
    let advertise = match config.advertise {
        Some(a) => Some(a),
        // Port 0: whatever port the bind gets.
        None if config.binds_wildcard() => Some(SocketAddr::new(outward_ip(), 0)),
        None => None,
    };
    match UdpTcpTransport::bind_with_advertise(config.bind, advertise).await {
        Err(hearsay_net::Error::Bind { addr, source })
            if config.bind_fallback && source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            let any = SocketAddr::new(config.bind.ip(), 0);
            let t = UdpTcpTransport::bind_with_advertise(any, advertise).await?;
            info!(busy = %addr, bound = %t.local_addr(), "agent: -dev: the default port is busy; using a free one");
            Ok(t)
        }
        other => Ok(other?),
    }
}

/// Serf's configuration for `config`: the profile's timings and the agent's settings
/// (Serf's agent also coalesces member events for 3 s and user events for 1 s of quiet).
pub fn serf_config(config: &Config, tags: BTreeMap<String, String>) -> SerfConfig {
    let mut memberlist =
        hearsay_swim::Config::profile(config.profile, config.node_name.clone(), config.bind);
    memberlist.wire.compression = config.enable_compression;
    let mut c = SerfConfig::new(memberlist);
    c.tags = tags;
    c.protocol_version = config.protocol;
    c.broadcast_timeout = config.broadcast_timeout;
    c.query_response_size_limit = config.query_response_size_limit;
    c.query_size_limit = config.query_size_limit;
    c.user_event_size_limit = config.user_event_size_limit;
    c.disable_coordinates = config.disable_coordinates;
    c.coalesce_period = Duration::from_secs(3);
    c.quiescent_period = Duration::from_secs(1);
    c.user_coalesce_period = Duration::from_secs(3);
    c.user_quiescent_period = Duration::from_secs(1);
    if let Some(d) = config.reconnect_interval {
        c.reconnect_interval = d;
    }
    if let Some(d) = config.reconnect_timeout {
        c.reconnect_timeout = d;
    }
    if let Some(d) = config.tombstone_timeout {
        c.tombstone_timeout = d;
    }
    c
}

/// The handler host for `config`: its module cache dir, and fuel metering when a handler
/// asks for a fuel limit at start (metering cannot be turned on later; a reload that adds a
/// fuel limit to an agent started without one is refused).
pub fn host_config(config: &Config) -> hearsay_host::HostConfig {
    hearsay_host::HostConfig {
        cache_dir: Some(config.handler_cache_dir.clone()),
        memory_total: config.handler_memory_total,
        fuel: config.handlers.iter().any(|h| h.limits.fuel.is_some()),
        ..hearsay_host::HostConfig::default()
    }
}

/// Opens the snapshot file at `path`, restores what it remembers into the freshly started
/// `node` (clocks, then a rejoin of the nodes it knew; nothing after a leave unless
/// `rejoin_after_leave`), and keeps it up to date from then on. Returns how many nodes the
/// rejoin reached.
pub async fn open_snapshot(
    node: &Node,
    path: &std::path::Path,
    rejoin_after_leave: bool,
) -> Result<usize> {
    let (file, replay) = snapshot::SnapshotFile::open(path, rejoin_after_leave)?;
    let n = snapshot::restore(node, &replay).await?;
    if n > 0 {
        info!(
            joined = n,
            "agent: re-joined previously known nodes from the snapshot"
        );
    }
    snapshot::spawn(node.clone(), file);
    Ok(n)
}

/// A running agent: the Serf node and what it was started with.
#[derive(Debug)]
pub struct Agent {
    /// The configuration the agent started with.
    pub config: Config,
    /// The Serf node.
    pub node: Node,
    /// The address the gossip sockets are bound to (differs from `config.bind` after a
    /// `-dev` fallback or a port-0 bind).
    pub bound: SocketAddr,
    /// Whether gossip is encrypted (`-encrypt` or `-keyring-file` gave a keyring).
    pub encrypted: bool,
    /// The WebAssembly handlers (`-handler`, `[[handler]]`); SIGHUP replaces the set. The
    /// agent's event loop dispatches to them after logging each event.
    pub handlers: Handlers,
    /// The deploy service (`None` without QUIC): deployed handlers run before the node joins.
    pub deployer: Option<Deployer>,
    /// The node's events since it started, for the event loop (taken by the first loop).
    pub events: Option<tokio::sync::broadcast::Receiver<Event>>,
}

impl Agent {
    /// Binds, starts the Serf node, loads the handlers (so they see the rejoin's events; a
    /// module that does not load stops the start with one error line), and restores the
    /// snapshot (clocks, then a rejoin of the nodes it remembers), as Serf's `Create` does
    /// before anything else runs.
    pub async fn start(mut config: Config) -> Result<Self> {
        if let Some(name) = &config.interface {
            // Serf's `-iface`: the interface must exist, and gives the bind address.
            let iface = Interface::by_name(name).map_err(Error::Interface)?;
            let bind = iface.bind_addr(config.bind).map_err(Error::Interface)?;
            if bind != config.bind {
                ui(&format!("Using interface '{name}' address '{}'", bind.ip()));
                config.bind = bind;
            }
        }
        let keyring = keyring(&config)?;
        let encrypted = keyring.is_some();
        let tags = initial_tags(&config)?;
        let transport = bind(&config).await?;
        let bound = transport.bound_addr();
        let mut options = NodeOptions::new(serf_config(&config, tags));
        if let Some(ring) = keyring {
            options = options.keyring(ring);
        }
        let node = match &config.quic {
            Some(settings) => {
                let quic = replies::QuicOptions::from_settings(settings, bound, &config.node_name)?;
                replies::start_with_quic(options, transport, quic)?
            }
            None => Node::start(options, transport)?,
        };
        // Subscribed at once, so the handlers see the events of the rejoin below too.
        let events = Some(node.subscribe());
        let handlers =
            match Handlers::load(node.clone(), host_config(&config), config.handlers.clone()).await
            {
                Ok(h) => h,
                Err(e) => {
                    node.shutdown().await;
                    return Err(e.into());
                }
            };
        handlers.set_tags_file(config.tags_file.clone());
        handlers.set_tenants(config.tenants.iter().map(|t| t.name.clone()).collect());
        if !config.handlers.is_empty() {
            let names: Vec<&str> = config.handlers.iter().map(|h| h.name.as_str()).collect();
            info!(handlers = ?names, cache = %config.handler_cache_dir.display(), "agent: handlers loaded");
        }
        let deployer =
            match Deployer::start(node.clone(), handlers.clone(), config.deploy.clone()).await {
                Ok(d) => d,
                Err(e) => {
                    node.shutdown().await;
                    return Err(Error::Deploy(e));
                }
            };
        let agent = Self {
            config,
            node,
            bound,
            encrypted,
            handlers,
            deployer,
            events,
        };
        if let Err(e) = agent.restore_snapshot().await {
            agent.node.shutdown().await;
            return Err(e);
        }
        Ok(agent)
    }

    async fn restore_snapshot(&self) -> Result<()> {
        if let Some(path) = &self.config.snapshot_path {
            open_snapshot(&self.node, path, self.config.rejoin_after_leave).await?;
        }
        Ok(())
    }

    /// Joins `addrs` (each `host[:port]`, port 7946 by default).
    pub async fn join(&self, addrs: &[String]) -> Result<usize> {
        let mut resolved = Vec::with_capacity(addrs.len());
        for a in addrs {
            resolved.push(conventions::resolve_async(a, DEFAULT_BIND_PORT).await?);
        }
        Ok(self
            .node
            .join(&resolved, !self.config.replay_on_join)
            .await?)
    }

    /// The start-up `join`: every address is tried; failing to reach any ends the agent.
    pub async fn startup_join(&self) -> Result<Option<usize>> {
        if self.config.start_join.is_empty() {
            return Ok(None);
        }
        ui(&format!(
            "Joining cluster...(replay: {})",
            self.config.replay_on_join
        ));
        let n = self.join(&self.config.start_join).await?;
        ui_info(&format!("Join completed. Synced with {n} initial agents"));
        Ok(Some(n))
    }

    /// The background `retry_join`: tries every `retry_interval` until a join succeeds, or
    /// gives up after `retry_max_attempts` retries (0: never gives up).
    pub async fn retry_join(&self) -> Result<usize> {
        let c = &self.config;
        let mut failures = 0u32;
        loop {
            info!(
                replay = c.replay_on_join,
                "agent: Joining cluster (retry_join)"
            );
            match self.join(&c.retry_join).await {
                Ok(n) => {
                    info!("agent: Join completed. Synced with {n} initial agents (retry_join)");
                    return Ok(n);
                }
                Err(e) => {
                    failures += 1;
                    if c.retry_max_attempts > 0 && failures > c.retry_max_attempts {
                        error!("agent: maximum retry join attempts made, exiting");
                        return Err(Error::RetryJoinExhausted {
                            attempts: failures,
                            last: Box::new(e),
                        });
                    }
                    warn!(error = %e, "agent: Join failed, retrying in {:?}", c.retry_interval);
                    tokio::time::sleep(c.retry_interval).await;
                }
            }
        }
    }

    /// Starts mDNS discovery when `discover` is set: advertises the node at its advertise
    /// address and joins the peers it finds (`replay`: Serf's `-replay`), in a task that stops
    /// when the returned guard is dropped. A batch that fails to join is handed back, so the
    /// next poll tries it again. A failure to start is logged and the agent runs on without it.
    pub fn start_discovery(&self) -> Option<DiscoveryGuard> {
        let c = &self.config;
        let cluster = c.discover.as_deref()?;
        let iface = match c.interface.as_deref().map(Interface::by_name) {
            None => None,
            Some(Ok(i)) => Some(i),
            Some(Err(e)) => {
                warn!(error = %e, "agent.mdns: cannot start mDNS discovery; running without it");
                return None;
            }
        };
        let mut discovery = match Discovery::start(
            &c.node_name,
            cluster,
            self.node.local_addr(),
            iface.as_ref(),
            conventions::hostname().as_deref(),
        ) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, cluster, "agent.mdns: cannot start mDNS discovery; running without it");
                return None;
            }
        };
        let (serf, replay) = (self.node.clone(), c.replay_on_join);
        let task = tokio::spawn(async move {
            while let Some(batch) = discovery.next_batch().await {
                let addrs: Vec<SocketAddr> = batch.iter().map(|p| p.addr).collect();
                match serf.join(&addrs, !replay).await {
                    Ok(n) => {
                        let names: Vec<&str> = batch.iter().map(|p| p.node.as_str()).collect();
                        info!(peers = ?names, addrs = ?addrs, "agent.mdns: Joined {n} hosts");
                    }
                    Err(e) => {
                        warn!(addrs = ?addrs, error = %e, "agent.mdns: Failed to join");
                        discovery.join_failed(&batch);
                    }
                }
            }
        });
        Some(DiscoveryGuard(task))
    }

    /// The lines Serf prints once its agent runs (`rpc`: the address the RPC server got).
    pub fn banner(&self, rpc: SocketAddr) -> Vec<String> {
        let c = &self.config;
        let mut lines = vec![
            format!("                  Node name: '{}'", c.node_name),
            format!("                  Bind addr: '{}'", self.bound),
        ];
        let advertise = self.node.local_addr();
        if advertise != self.bound {
            lines.push(format!("             Advertise addr: '{advertise}'"));
        }
        lines.extend([
            format!("                   RPC addr: '{rpc}'"),
            format!("                  Encrypted: {}", self.encrypted),
            format!("                   Snapshot: {}", c.snapshot_path.is_some()),
            format!("                    Profile: {}", c.profile_name()),
            format!("Message Compression Enabled: {}", c.enable_compression),
        ]);
        if let Some(advert) = replies::quic_advert(&self.node) {
            lines.push(format!("                  QUIC addr: '{}'", advert.addr));
        }
        if let Some(cluster) = &c.discover {
            lines.push(format!("               mDNS cluster: {cluster}"));
        }
        lines
    }

    /// SIGHUP: the new log level and tags (the tags file's when one is used). A bad file
    /// keeps the current settings, as Serf's reload does.
    async fn reload(&mut self, sources: &Sources, logging: &Logging) {
        ui("Reloading configuration...");
        let mut new = match sources.load() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("==> Failed to reload configs: {e}");
                return;
            }
        };
        logging.set_level(new.log_level);
        // Visible only when the new level lets debug through: proof the reload took.
        debug!("agent: log level is now {}", new.log_level.as_str());
        // A reload cannot move the sockets or change the tags file's path mid-run.
        new.tags_file = self.config.tags_file.clone();
        match initial_tags(&new) {
            Ok(tags) => match self.node.set_tags(tags.clone()).await {
                Ok(()) => info!(?tags, "agent: tags reloaded"),
                Err(e) => eprintln!("==> Failed to update tags: {e}"),
            },
            Err(e) => eprintln!("==> Failed to update tags: {e}"),
        }
        // The handler set is replaced whole or not at all; the cache dir and fuel metering
        // stay as started.
        new.handler_cache_dir = self.config.handler_cache_dir.clone();
        new.handler_memory_total = self.config.handler_memory_total;
        match self.handlers.reload(new.handlers.clone()).await {
            Ok(()) => {
                self.handlers
                    .set_tenants(new.tenants.iter().map(|t| t.name.clone()).collect());
                let names: Vec<&str> = new.handlers.iter().map(|h| h.name.as_str()).collect();
                info!(handlers = ?names, "agent: handlers reloaded");
            }
            Err(e) => {
                eprintln!(
                    "==> Failed to reload handlers (the previous handlers keep running): {e}"
                );
                error!("agent: failed to reload handlers, keeping the previous ones: {e}");
                new.handlers = self.config.handlers.clone();
                new.tenants = self.config.tenants.clone();
            }
        }
        // The deploy service keeps the keys, data dir and ceiling it started with: say so
        // rather than seem to apply a revoked key.
        if new.deploy != self.config.deploy {
            warn!(
                "agent: deploy_keys, data_dir, deploy_module_max_bytes and deploy_grants \
                 changed in the config; they take effect when the agent restarts"
            );
            eprintln!(
                "==> Deploy settings changed; restart the agent to apply them (the running \
                 ones are kept)"
            );
            new.deploy = self.config.deploy.clone();
        }
        self.config = new;
    }
}

/// How the agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Left the cluster gracefully (status 0).
    Left,
    /// Stopped without leaving: a signal that does not leave, a second signal during the
    /// leave, or a failed leave (status 1, as Serf).
    Stopped,
}

impl Exit {
    /// The process exit status Serf uses for this ending.
    pub fn code(self) -> u8 {
        match self {
            Self::Left => 0,
            Self::Stopped => 1,
        }
    }
}

struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    Int,
    Term,
    Hup,
}

impl Sig {
    /// The signal as Go's `os.Signal` prints it (Serf's "Caught signal: terminated").
    fn name(self) -> &'static str {
        match self {
            Sig::Int => "interrupt",
            Sig::Term => "terminated",
            Sig::Hup => "hangup",
        }
    }
}

impl Signals {
    fn new() -> Result<Self> {
        let s = |k| signal(k).map_err(Error::Signals);
        Ok(Self {
            int: s(SignalKind::interrupt())?,
            term: s(SignalKind::terminate())?,
            hup: s(SignalKind::hangup())?,
        })
    }

    /// The next SIGINT or SIGTERM; a SIGHUP meanwhile is logged and otherwise ignored.
    async fn stop(&mut self) -> Sig {
        loop {
            match self.next().await {
                Sig::Hup => info!("agent: SIGHUP while starting: nothing to reload yet"),
                sig => return sig,
            }
        }
    }

    async fn next(&mut self) -> Sig {
        tokio::select! {
            _ = self.int.recv() => Sig::Int,
            _ = self.term.recv() => Sig::Term,
            _ = self.hup.recv() => Sig::Hup,
        }
    }
}

/// Runs `hearsay agent` from loaded `config` until it leaves or is stopped: starts the
/// agent, prints Serf's banner, joins, then handles signals. `sources` are re-read on SIGHUP.
pub async fn run(config: Config, sources: Sources, logging: Logging) -> Result<Exit> {
    for w in &config.warnings {
        ui(&format!("Warning: {w}"));
    }
    // Installed before anything runs, so no signal falls back to the default (killing us).
    let mut signals = Signals::new()?;
    ui("Starting hearsay agent...");
    // Compiling a large handler takes seconds at start: SIGINT or SIGTERM stops the start.
    let mut agent = tokio::select! {
        started = Agent::start(config) => started?,
        sig = signals.stop() => {
            ui(&format!("Caught signal: {} while starting; stopping", sig.name()));
            return Ok(Exit::Stopped);
        }
    };
    let result = serve(&mut agent, &mut signals, &sources, &logging).await;
    agent.node.shutdown().await;
    result
}

async fn serve(
    agent: &mut Agent,
    signals: &mut Signals,
    sources: &Sources,
    logging: &Logging,
) -> Result<Exit> {
    let rpc = start_rpc(agent, logging).await?;
    let mut leave_requested = rpc.leave_requested;
    let server = rpc.server;
    ui("hearsay agent running!");
    for line in agent.banner(server.local_addr()) {
        ui_info(&line);
    }
    let result = serve_rpc_started(agent, signals, sources, logging, &mut leave_requested).await;
    server.shutdown().await;
    result
}

/// The RPC server and its "a client asked us to leave" signal.
struct Rpc {
    server: RpcServer,
    leave_requested: tokio::sync::watch::Receiver<bool>,
}

/// The one place the Serf RPC server starts: on `rpc_addr`, with `rpc_auth`, the tenants'
/// `rpc_tokens` and `rpc_max_connections` (and the server's 10 s handshake bound), the agent's
/// log hub for `monitor`, its tags file for `tags`, and the static facts for `stats`.
async fn start_rpc(agent: &Agent, logging: &Logging) -> Result<Rpc> {
    let c = &agent.config;
    let mut backend = AgentBackend::new(agent.node.clone())
        .handlers(agent.handlers.clone())
        .logs(logging.hub().clone())
        .info(AgentInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            event_handlers: BTreeMap::new(),
        });
    let mut options = ServerOptions::default().max_connections(c.rpc_max_connections);
    if let Some(key) = &c.rpc_auth {
        options = options.auth_key(key.clone());
    }
    for t in &c.tenants {
        options = options.tenant(t.name.clone(), t.rpc_tokens.clone());
    }
    if c.rpc_auth.is_none() && c.tenants.iter().any(|t| !t.rpc_tokens.is_empty()) {
        warn!(
            "agent: tenants' RPC tokens protect nothing while rpc_auth is unset: \
             unauthenticated clients have full rights; set rpc_auth"
        );
    }
    if let Some(path) = &c.tags_file {
        backend = backend.tags_file(path.clone());
    }
    if let Some(d) = &agent.deployer {
        backend = backend.deployer(d.clone());
    }
    let leave_requested = backend.leave_requested();
    let server = RpcServer::bind(c.rpc_addr, backend, options).await?;
    Ok(Rpc {
        server,
        leave_requested,
    })
}

async fn serve_rpc_started(
    agent: &mut Agent,
    signals: &mut Signals,
    sources: &Sources,
    logging: &Logging,
    leave_requested: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<Exit> {
    // Held until the agent stops: dropping it stops answering and polling.
    let _discovery = agent.start_discovery();
    agent.startup_join().await?;
    ui_info("");
    ui("Log data will now stream in as it occurs:\n");

    let retry = {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if !agent.config.retry_join.is_empty() {
            let a = Agent {
                config: agent.config.clone(),
                node: agent.node.clone(),
                bound: agent.bound,
                encrypted: agent.encrypted,
                handlers: agent.handlers.clone(),
                deployer: agent.deployer.clone(),
                events: None,
            };
            tokio::spawn(async move {
                let _ = tx.send(a.retry_join().await);
            });
        }
        rx
    };
    tokio::pin!(retry);
    let mut retry_done = agent.config.retry_join.is_empty();
    let mut events = match agent.events.take() {
        Some(events) => events,
        None => agent.node.subscribe(),
    };
    // A second receiver of the same flag, for after the node stopped (the loop's is borrowed).
    let mut stopped_flag = leave_requested.clone();
    loop {
        tokio::select! {
            sig = signals.next() => {
                ui(&format!("Caught signal: {}", sig.name()));
                let graceful = match sig {
                    Sig::Hup => {
                        agent.reload(sources, logging).await;
                        continue;
                    }
                    Sig::Int => !agent.config.skip_leave_on_interrupt,
                    Sig::Term => agent.config.leave_on_terminate,
                };
                if !graceful {
                    return Ok(Exit::Stopped);
                }
                return Ok(leave(agent, signals).await);
            }
            // A client's `leave` finished: the agent left and was shut down.
            Ok(_) = leave_requested.wait_for(|left| *left) => return Ok(Exit::Left),
            done = &mut retry, if !retry_done => {
                retry_done = true;
                if let Ok(Err(e)) = done {
                    return Err(e);
                }
            }
            ev = events.recv() => match ev {
                Ok(ev) => {
                    handle_event(agent, &ev)?;
                    agent.handlers.dispatch(&ev).await;
                }
                Err(RecvError::Lagged(n)) => warn!(missed = n, "agent: fell behind the event stream"),
                // The node stopped. An RPC `leave` stops it just before it raises its flag,
                // so give the flag a moment before calling this a stop without a leave.
                Err(RecvError::Closed) => {
                    let flag = stopped_flag.wait_for(|left| *left);
                    return Ok(match tokio::time::timeout(Duration::from_secs(2), flag).await {
                        Ok(Ok(_)) => Exit::Left,
                        _ => Exit::Stopped,
                    });
                }
            },
        }
    }
}

/// Logs what the node delivers (Serf's `Received event:` lines) and acts on a lost name
/// conflict.
fn handle_event(agent: &Agent, ev: &Event) -> Result<()> {
    match ev {
        Event::Member(m) => {
            let names: Vec<&str> = m.members.iter().map(|m| m.name.as_str()).collect();
            info!(members = ?names, "agent: Received event: {}", m.kind.as_str());
        }
        // Names come from peers: escaped (`\n` shown as such), so none can forge a log line.
        Event::User(u) => info!(
            ltime = u.ltime,
            "agent: Received event: user-event: {}",
            u.name.escape_debug()
        ),
        Event::Query(q) => info!(
            ltime = q.ltime,
            "agent: Received event: query: {}",
            q.name.escape_debug()
        ),
        Event::NameConflict {
            won: false,
            matching,
            responses,
        } if !agent.config.disable_name_resolution => {
            return Err(Error::NameConflict {
                name: agent.config.node_name.clone(),
                matching: *matching,
                responses: *responses,
            });
        }
        _ => {}
    }
    Ok(())
}

/// A graceful leave; a second signal meanwhile stops at once.
async fn leave(agent: &Agent, signals: &mut Signals) -> Exit {
    ui("Gracefully shutting down agent...");
    tokio::select! {
        r = agent.node.leave() => match r {
            Ok(()) => Exit::Left,
            Err(e) => {
                eprintln!("==> Error: {e}");
                Exit::Stopped
            }
        },
        _ = signals.next() => Exit::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Partial;

    fn config(p: Partial) -> Config {
        Config::resolve(p).unwrap()
    }

    #[test]
    fn serf_config_carries_the_agent_settings() {
        let c = config(Partial {
            node_name: Some("n".into()),
            bind: Some("127.0.0.1:0".into()),
            protocol: Some(4),
            enable_compression: Some(false),
            user_event_size_limit: Some(100),
            broadcast_timeout: Some(Duration::from_secs(7)),
            ..Partial::default()
        });
        let s = serf_config(&c, BTreeMap::new());
        assert_eq!(s.protocol_version, 4);
        assert!(!s.memberlist.wire.compression);
        assert_eq!(s.user_event_size_limit, 100);
        assert_eq!(s.broadcast_timeout, Duration::from_secs(7));
        assert_eq!(s.memberlist.name, "n");
    }

    #[test]
    fn keyrings() {
        assert!(keyring(&config(Partial::default())).unwrap().is_none());
        let key = "cg8StVXbQJ0gPvMd9o7yrg==";
        let c = config(Partial {
            encrypt_key: Some(key.into()),
            ..Partial::default()
        });
        assert!(keyring(&c).unwrap().is_some());
        let c = config(Partial {
            encrypt_key: Some("not base64!".into()),
            ..Partial::default()
        });
        let e = keyring(&c).unwrap_err().to_string();
        assert!(e.contains("invalid encryption key"), "{e}");
        let c = config(Partial {
            keyring_file: Some("/nonexistent/keyring".into()),
            ..Partial::default()
        });
        let e = keyring(&c).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/keyring"), "{e}");
    }

    #[test]
    fn a_wildcard_bind_advertises_a_concrete_address() {
        assert!(!outward_ip().is_unspecified());
    }

    #[tokio::test]
    async fn dev_bind_falls_back_to_a_free_port() {
        let busy = UdpTcpTransport::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut c = config(Partial {
            bind: Some(busy.bound_addr().to_string()),
            ..Partial::default()
        });
        let e = bind(&c).await.unwrap_err().to_string();
        assert!(e.contains(&busy.bound_addr().to_string()), "{e}");
        c.bind_fallback = true;
        let t = bind(&c).await.unwrap();
        assert_ne!(t.bound_addr().port(), busy.bound_addr().port());
    }
}
