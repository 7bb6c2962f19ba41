//! [`Memberlist`]: the handle the outside world uses to run one membership node. Starting one
//! spawns the driver task; the handle sends it commands and subscribes to its events. Clones
//! share the same node.

use crate::driver::{Command, Driver};
use crate::error::{Error, Result};
use crate::transport::Transport;
use hearsay_swim::{Config, Event, Keyring, Member, Swim};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::Instrument;

/// Commands waiting for the driver; callers wait when it is full.
const COMMAND_QUEUE: usize = 256;
/// Events buffered per subscriber before the slowest one starts missing them.
const DEFAULT_EVENT_CAPACITY: usize = 4096;

/// Everything needed to start a node besides its transport.
#[derive(Debug, Clone)]
pub struct Options {
    /// Timings and identity. `advertise` is replaced by the transport's address.
    pub config: Config,
    /// Encryption keys; `None` sends and accepts plaintext.
    pub keyring: Option<Keyring>,
    /// This node's metadata (Serf's encoded tags), at most 512 bytes.
    pub meta: Vec<u8>,
    /// Seed for the core's random choices and nonces; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Events buffered per subscriber (see [`Memberlist::subscribe`]).
    pub event_capacity: usize,
}

impl Options {
    /// Options with no keyring, no metadata and a random seed.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            keyring: None,
            meta: Vec::new(),
            seed: None,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }

    /// Turns encryption on with `keyring`.
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Sets the initial metadata.
    pub fn meta(mut self, meta: Vec<u8>) -> Self {
        self.meta = meta;
        self
    }

    /// Fixes the seed (reproducible choices; tests only).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

/// A handle to one running membership node.
#[derive(Debug, Clone)]
pub struct Memberlist {
    name: String,
    addr: SocketAddr,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Event>,
}

impl Memberlist {
    /// Starts a node on `transport`: builds the core (advertising the transport's address) and
    /// spawns its driver task on the current tokio runtime (like `tokio::spawn`, it panics
    /// when called outside one).
    ///
    /// Events raised while starting (the node's own [`Event::MemberJoined`]) are never
    /// delivered, as nobody can have subscribed; [`Memberlist::local`] gives the node itself.
    pub fn start<T: Transport>(options: Options, transport: T) -> Result<Self> {
        let Options {
            mut config,
            keyring,
            meta,
            seed,
            event_capacity,
        } = options;
        config.advertise = transport.local_addr();
        let name = config.name.clone();
        let addr = config.advertise;
        let seed = seed.unwrap_or_else(rand::random);
        let mut swim = Swim::new(config, keyring, meta, seed, Instant::now())?;
        // Nobody can have subscribed yet: drop the start-up events here, so whether a quick
        // subscriber sees them does not depend on when the driver task first runs.
        while let Some(ev) = swim.poll_event() {
            tracing::debug!(node = %name, ?ev, "memberlist: start-up event");
        }
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (events, _) = broadcast::channel(event_capacity.max(1));
        let driver = Driver {
            swim,
            transport,
            commands: command_rx,
            events: events.clone(),
        };
        let span = tracing::info_span!("memberlist", node = %name);
        tokio::spawn(driver.run().instrument(span));
        Ok(Self {
            name,
            addr,
            commands,
            events,
        })
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address peers reach this node at.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A receiver of every event from now on. A subscriber that falls more than
    /// `event_capacity` events behind gets `RecvError::Lagged` and misses the oldest ones.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    async fn call<R>(&self, make: impl FnOnce(oneshot::Sender<R>) -> Command) -> Result<R> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    async fn tell(&self, cmd: Command) -> Result<()> {
        self.commands.send(cmd).await.map_err(|_| Error::Stopped)
    }

    /// Joins the cluster through `addrs` (a push/pull with each). Returns how many answered;
    /// fails, naming every address and its error, when none did.
    pub async fn join(&self, addrs: &[SocketAddr]) -> Result<usize> {
        let addrs = addrs.to_vec();
        let (joined, errors) = self.call(|reply| Command::Join { addrs, reply }).await?;
        if joined == 0 {
            return Err(Error::JoinFailed { errors });
        }
        Ok(joined)
    }

    /// Leaves gracefully: broadcasts our departure and waits until it has been disseminated,
    /// at most `timeout`. The node keeps running (to answer peers) until [`Memberlist::shutdown`].
    pub async fn leave(&self, timeout: Duration) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tell(Command::Leave { reply: tx }).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::LeaveTimeout(timeout)),
        }
    }

    /// Every known member, including failed and left ones not yet forgotten.
    pub async fn members(&self) -> Result<Vec<Member>> {
        self.call(|reply| Command::Members { reply }).await
    }

    /// This node as the cluster sees it.
    pub async fn local(&self) -> Result<Member> {
        self.call(|reply| Command::Local { reply }).await
    }

    /// How many members are alive or suspect (this node included).
    pub async fn num_alive(&self) -> Result<usize> {
        self.call(|reply| Command::NumAlive { reply }).await
    }

    /// Replaces this node's metadata and announces it.
    pub async fn set_meta(&self, meta: Vec<u8>) -> Result<()> {
        self.call(|reply| Command::SetMeta { meta, reply }).await?
    }

    /// Sends an opaque message to `dst` in one datagram (unreliable).
    pub async fn send_user_packet(&self, dst: SocketAddr, msg: Vec<u8>) -> Result<()> {
        self.tell(Command::SendUserPacket { dst, msg }).await
    }

    /// Sends an opaque message to `dst` over a stream (reliable, not acknowledged).
    pub async fn send_user_stream(&self, dst: SocketAddr, msg: Vec<u8>) -> Result<()> {
        self.tell(Command::SendUserStream { dst, msg }).await
    }

    /// Queues an opaque message to gossip to everyone; a newer message with the same
    /// `subject` replaces an older one still queued.
    pub async fn queue_user_broadcast(&self, msg: Vec<u8>, subject: Option<String>) -> Result<()> {
        self.tell(Command::QueueUserBroadcast { msg, subject })
            .await
    }

    /// Sets the opaque state exchanged in push/pull (Serf's local state).
    pub async fn set_user_state(&self, state: Vec<u8>) -> Result<()> {
        self.tell(Command::SetUserState(state)).await
    }

    /// Sets the payload attached to our acks (Serf's Vivaldi coordinate).
    pub async fn set_ack_payload(&self, payload: Vec<u8>) -> Result<()> {
        self.tell(Command::SetAckPayload(payload)).await
    }

    /// Stops the node without leaving (peers will see it fail, as after a crash): ends the
    /// driver task, aborts its streams and closes its sockets before returning. Stopping a
    /// stopped node is a no-op.
    pub async fn shutdown(&self) {
        let _ = self.call(|reply| Command::Shutdown { reply }).await;
    }

    /// True once the driver task has ended.
    pub fn is_stopped(&self) -> bool {
        self.commands.is_closed()
    }
}
