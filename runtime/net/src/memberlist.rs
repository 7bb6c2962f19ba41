//! [`Memberlist`]: the handle the outside world uses to run one membership node. It is the
//! generic [`NodeHandle`] over the membership core ([`Swim`]) with typed methods; clones share
//! the same node.

use crate::driver::{NodeHandle, DEFAULT_EVENT_CAPACITY};
use crate::error::{Error, Result};
use crate::transport::Transport;
use hearsay_swim::{Config, Event, Keyring, Member, Swim};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

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
    node: NodeHandle<Swim>,
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
        let seed = seed.unwrap_or_else(rand::random);
        let swim = Swim::new(config, keyring, meta, seed, Instant::now())?;
        let span = tracing::info_span!("memberlist", node = %name);
        let node = NodeHandle::start_with(swim, transport, event_capacity, span);
        Ok(Self { name, node })
    }

    /// The generic handle underneath, for running any [`Swim`] method in the driver task.
    pub fn handle(&self) -> &NodeHandle<Swim> {
        &self.node
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address peers reach this node at.
    pub fn local_addr(&self) -> SocketAddr {
        self.node.local_addr()
    }

    /// A receiver of every event from now on. A subscriber that falls more than
    /// `event_capacity` events behind gets `RecvError::Lagged` and misses the oldest ones.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.node.subscribe()
    }

    /// Joins the cluster through `addrs` (a push/pull with each). Returns how many answered;
    /// fails, naming every address and its error, when none did.
    pub async fn join(&self, addrs: &[SocketAddr]) -> Result<usize> {
        let addrs = addrs.to_vec();
        // Subscribed before the join starts, so its `JoinFinished` cannot slip past.
        let mut events = self.node.subscribe();
        let id = self
            .node
            .call(move |swim, now| swim.join(now, &addrs))
            .await?;
        loop {
            match events.recv().await {
                Ok(Event::JoinFinished {
                    id: done,
                    joined,
                    errors,
                }) if done == id => {
                    if joined == 0 {
                        return Err(Error::JoinFailed { errors });
                    }
                    return Ok(joined);
                }
                Ok(_) => {}
                // A lagging receiver loses the oldest events; `JoinFinished` is raised after
                // the member events of the join, so it is among the newest kept.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Err(Error::Stopped),
            }
        }
    }

    /// Leaves gracefully: broadcasts our departure and waits until it has been disseminated,
    /// at most `timeout`. The node keeps running (to answer peers) until [`Memberlist::shutdown`].
    pub async fn leave(&self, timeout: Duration) -> Result<()> {
        let mut events = self.node.subscribe();
        let finished = self
            .node
            .call(|swim, now| {
                swim.leave(now);
                swim.leave_finished()
            })
            .await?;
        if finished {
            return Ok(());
        }
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(Event::LeaveComplete) => return Ok(()),
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        if self.node.call(|swim, _| swim.leave_finished()).await? {
                            return Ok(());
                        }
                    }
                    Err(RecvError::Closed) => return Err(Error::Stopped),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| Error::LeaveTimeout(timeout))?
    }

    /// Every known member, including failed and left ones not yet forgotten.
    pub async fn members(&self) -> Result<Vec<Member>> {
        self.node.call(|swim, _| swim.members().collect()).await
    }

    /// This node as the cluster sees it.
    pub async fn local(&self) -> Result<Member> {
        self.node.call(|swim, _| swim.local()).await
    }

    /// How many members are alive or suspect (this node included).
    pub async fn num_alive(&self) -> Result<usize> {
        self.node.call(|swim, _| swim.num_alive()).await
    }

    /// Replaces this node's metadata and announces it.
    pub async fn set_meta(&self, meta: Vec<u8>) -> Result<()> {
        self.node
            .call(move |swim, now| swim.set_meta(now, meta))
            .await?
            .map_err(Error::from)
    }

    /// Sends an opaque message to `dst` in one datagram (unreliable).
    pub async fn send_user_packet(&self, dst: SocketAddr, msg: Vec<u8>) -> Result<()> {
        self.node
            .tell(move |swim, _| swim.send_user_packet(dst, &msg))
            .await
    }

    /// Sends an opaque message to `dst` over a stream (reliable, not acknowledged).
    pub async fn send_user_stream(&self, dst: SocketAddr, msg: Vec<u8>) -> Result<()> {
        self.node
            .tell(move |swim, now| swim.send_user_stream(now, dst, msg))
            .await
    }

    /// Queues an opaque message to gossip to everyone; a newer message with the same
    /// `subject` replaces an older one still queued.
    pub async fn queue_user_broadcast(&self, msg: Vec<u8>, subject: Option<String>) -> Result<()> {
        self.node
            .tell(move |swim, _| swim.queue_user_broadcast(msg, subject))
            .await
    }

    /// Sets the opaque state exchanged in push/pull (Serf's local state).
    pub async fn set_user_state(&self, state: Vec<u8>) -> Result<()> {
        self.node
            .tell(move |swim, _| swim.set_user_state(state))
            .await
    }

    /// Sets the payload attached to our acks (Serf's Vivaldi coordinate).
    pub async fn set_ack_payload(&self, payload: Vec<u8>) -> Result<()> {
        self.node
            .tell(move |swim, _| swim.set_ack_payload(payload))
            .await
    }

    /// Stops the node without leaving (peers will see it fail, as after a crash): ends the
    /// driver task, aborts its streams and closes its sockets before returning. Stopping a
    /// stopped node is a no-op.
    pub async fn shutdown(&self) {
        self.node.shutdown().await;
    }

    /// True once the driver task has ended.
    pub fn is_stopped(&self) -> bool {
        self.node.is_stopped()
    }
}
