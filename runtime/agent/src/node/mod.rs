//! [`Node`]: one Serf node (the sans-io [`Serf`] layer over the membership core) driven by
//! `hearsay-net`'s [`NodeHandle`], with async methods for what the Serf agent offers: join,
//! leave, members, user events, queries and their answers, tags, key operations. Clones share
//! the same node.
//!
//! The node knows nothing of QUIC. Large query responses travel on a [`SideChannel`] that the
//! layer above (`replies`) attaches with [`Node::with_side_channel`]: the node tells it when one
//! of its queries starts, keeps the tags it pins, and closes it on shutdown.

mod error;
mod keys;
mod query;

pub use error::Error;
pub(crate) use error::Result;
pub use keys::KeyOpOutcome;
pub(crate) use query::SideQuery;
pub use query::{QueryResult, QueryResults};

use hearsay_net::{NodeHandle, Transport, DEFAULT_EVENT_CAPACITY};
use hearsay_serf::coordinate::Coordinate;
use hearsay_serf::event::{Event, Member, MemberStatus, QueryId};
use hearsay_serf::{LamportTime, QueryParams, Serf, SerfConfig};
use hearsay_swim::Keyring;
use std::any::Any;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

/// Slack on top of Serf's own leave timeouts before [`Node::leave`] gives up waiting.
const LEAVE_SLACK: Duration = Duration::from_secs(5);

/// Everything needed to start a Serf node besides its transport.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Serf's configuration; `memberlist.advertise` is replaced by the transport's address.
    pub config: SerfConfig,
    /// Encryption keys; `None` sends and accepts plaintext.
    pub keyring: Option<Keyring>,
    /// Seed for the random choices and nonces; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Events buffered per subscriber (see [`Node::subscribe`]).
    pub event_capacity: usize,
}

impl NodeOptions {
    /// Options with no keyring and a random seed.
    pub fn new(config: SerfConfig) -> Self {
        Self {
            config,
            keyring: None,
            seed: None,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }

    /// Turns encryption on with `keyring`.
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Fixes the seed (reproducible choices; tests only).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

/// A path for query responses beside Serf's UDP one (the agent's QUIC wire, in `replies`).
///
/// The node calls it at the three points where such responses meet the Serf layer: when one
/// of its queries starts ([`SideChannel::query_started`], in the driver task, before anything
/// else runs, so no response can arrive for a query the channel does not know), when its tags
/// are replaced ([`SideChannel::pinned_tags`] are kept), and when it shuts down
/// ([`SideChannel::close`]). Everything else (accepting streams, counting them in the Serf
/// layer with `handle_external_response`) the channel does through the node's public API.
pub trait SideChannel: Send + Sync + 'static {
    /// Tags this node must carry whatever [`Node::set_tags`] is given (e.g. its advert).
    fn pinned_tags(&self) -> Vec<(String, String)>;
    /// This node started query `id`, ending at `deadline`; `serf` is the Serf layer at that
    /// moment. Returns where the channel delivers the query's results.
    fn query_started(&self, serf: &Serf, id: QueryId, deadline: Instant) -> SideQuery;
    /// The node is shutting down: stop accepting and close.
    fn close(&self);
    /// The channel itself, so the layer that attached it can reach its own type
    /// ([`Node::side_channel`]).
    fn as_any(&self) -> &dyn Any;
}

/// A handle to one running Serf node.
#[derive(Clone)]
pub struct Node {
    name: String,
    node: NodeHandle<Serf>,
    /// Serf's UDP response limit (`query_response_size_limit`), fixed at start.
    udp_limit: usize,
    /// Where large responses travel, when attached.
    side: Option<Arc<dyn SideChannel>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("node", &self.node)
            .field("side_channel", &self.side.is_some())
            .finish()
    }
}

impl Node {
    /// Starts a node on `transport`: builds the Serf layer (advertising the transport's address)
    /// and spawns its driver task on the current tokio runtime (it panics outside one).
    ///
    /// Events raised while starting are not delivered (nobody can have subscribed);
    /// [`Node::local_member`] gives the node itself.
    pub fn start<T: Transport>(options: NodeOptions, transport: T) -> Result<Self> {
        let NodeOptions {
            mut config,
            keyring,
            seed,
            event_capacity,
        } = options;
        config.memberlist.advertise = transport.local_addr();
        let name = config.memberlist.name.clone();
        let udp_limit = config.query_response_size_limit;
        let seed = seed.unwrap_or_else(rand::random);
        let serf = Serf::new(config, keyring, seed, Instant::now())?;
        let span = tracing::info_span!("serf", node = %name);
        let node = NodeHandle::start_with(serf, transport, event_capacity, span);
        Ok(Self {
            name,
            node,
            udp_limit,
            side: None,
        })
    }

    /// This handle with `side` attached: the node's queries take results from it, its tags
    /// keep the ones it pins, and shutting down closes it. Handles cloned before this call do
    /// not have it (the side channel's own tasks hold such a handle, so they do not keep it
    /// alive).
    pub fn with_side_channel(self, side: Arc<dyn SideChannel>) -> Self {
        Self {
            side: Some(side),
            ..self
        }
    }

    /// The attached side channel, if it is a `T`.
    pub fn side_channel<T: SideChannel>(&self) -> Option<&T> {
        self.side.as_deref()?.as_any().downcast_ref()
    }

    /// The largest reply Serf sends as one UDP response (`query_response_size_limit`,
    /// counting the encoded message).
    pub fn udp_response_limit(&self) -> usize {
        self.udp_limit
    }

    /// The member named `node`, if known.
    pub async fn member(&self, node: &str) -> Result<Option<Member>> {
        let node = node.to_owned();
        Ok(self
            .node
            .call(move |serf, _| serf.members().into_iter().find(|m| m.name == node))
            .await?)
    }

    /// The generic handle underneath, for running any [`Serf`] method in the driver task.
    pub fn handle(&self) -> &NodeHandle<Serf> {
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

    /// Joins the cluster through `addrs`. With `ignore_old`, user events from before the join
    /// are not delivered (Serf's default; `-replay` turns it off). Returns how many addresses
    /// answered; fails, naming every address and its error, when none did.
    pub async fn join(&self, addrs: &[SocketAddr], ignore_old: bool) -> Result<usize> {
        let addrs = addrs.to_vec();
        // Subscribed before the join starts, so its `JoinFinished` cannot slip past.
        let mut events = self.node.subscribe();
        let id = self
            .node
            .call(move |serf, now| serf.join(now, &addrs, ignore_old))
            .await??;
        loop {
            match events.recv().await {
                Ok(Event::JoinFinished {
                    id: done,
                    joined,
                    errors,
                }) if done == id => {
                    if joined == 0 {
                        return Err(hearsay_net::Error::JoinFailed { errors }.into());
                    }
                    return Ok(joined);
                }
                Ok(_) => {}
                // A lagging receiver loses the oldest events; `JoinFinished` comes after the
                // member events of the join, so it is among the newest kept.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Err(hearsay_net::Error::Stopped.into()),
            }
        }
    }

    /// Leaves gracefully, as Serf does: broadcasts the leave intent, then memberlist's leave,
    /// then waits for it to propagate. Returns once done (at once when already left). The node
    /// keeps running (to answer peers) until [`Node::shutdown`].
    pub async fn leave(&self) -> Result<()> {
        let events = self.node.subscribe();
        let (left, limit) = self
            .node
            .call(|serf, now| -> Result<(bool, Duration)> {
                serf.leave(now)?;
                let c = serf.config();
                let limit = c.broadcast_timeout * 2 + c.leave_propagate_delay + LEAVE_SLACK;
                Ok((serf.state() == hearsay_serf::State::Left, limit))
            })
            .await??;
        if left {
            return Ok(());
        }
        let wait = self.wait_for(
            events,
            |ev| matches!(ev, Event::LeaveComplete),
            |serf| serf.state() == hearsay_serf::State::Left,
        );
        tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| Error::LeaveTimeout(limit))?
    }

    /// Waits until `events` brings one that `done` accepts. A receiver that lagged may have
    /// missed it, so then `finished` asks the Serf layer whether it happened already.
    async fn wait_for(
        &self,
        mut events: broadcast::Receiver<Event>,
        done: impl Fn(&Event) -> bool,
        finished: impl Fn(&Serf) -> bool + Clone + Send + 'static,
    ) -> Result<()> {
        loop {
            match events.recv().await {
                Ok(ev) if done(&ev) => return Ok(()),
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    let finished = finished.clone();
                    if self.node.call(move |serf, _| finished(serf)).await? {
                        return Ok(());
                    }
                }
                Err(RecvError::Closed) => return Err(hearsay_net::Error::Stopped.into()),
            }
        }
    }

    /// Every member Serf knows (sorted by name), including failed and left ones not yet reaped.
    pub async fn members(&self) -> Result<Vec<Member>> {
        Ok(self.node.call(|serf, _| serf.members()).await?)
    }

    /// This node as a member.
    pub async fn local_member(&self) -> Result<Member> {
        Ok(self.node.call(|serf, _| serf.local_member()).await?)
    }

    /// The Lamport clocks' current values: member clock, event clock, query clock.
    pub async fn clocks(&self) -> Result<(LamportTime, LamportTime, LamportTime)> {
        Ok(self.node.call(|serf, _| serf.clocks()).await?)
    }

    /// Fires a user event to the whole cluster; with `coalesce`, receivers may merge events of
    /// the same name that arrive close together.
    pub async fn user_event(&self, name: &str, payload: &[u8], coalesce: bool) -> Result<()> {
        let (name, payload) = (name.to_owned(), payload.to_vec());
        Ok(self
            .node
            .call(move |serf, now| serf.user_event(now, &name, &payload, coalesce))
            .await??)
    }

    /// Starts a query and returns its acks and responses as they arrive, ending when Serf
    /// says the query is done (deadline reached, or everyone answered with `finish_early`).
    pub async fn query(
        &self,
        name: &str,
        payload: &[u8],
        params: QueryParams,
    ) -> Result<QueryResults> {
        let (name, payload) = (name.to_owned(), payload.to_vec());
        // Subscribed first: a query to a lone node can finish within the call.
        let events = self.node.subscribe();
        let side = self.side.clone();
        let (id, side) = self
            .node
            .call(move |serf, now| {
                let timeout = if params.timeout.is_zero() {
                    serf.default_query_timeout()
                } else {
                    params.timeout
                };
                let id = serf.query(now, &name, &payload, params)?;
                // Told before the driver runs anything else, so no large response (not even
                // this node's own) can arrive before its query is known.
                let side = side.map(|s| s.query_started(serf, id, now + timeout));
                Ok::<_, hearsay_serf::Error>((id, side))
            })
            .await??;
        Ok(QueryResults::new(id, events, side))
    }

    /// Answers a query delivered as [`Event::Query`] (once per query, before its deadline).
    pub async fn respond(&self, ltime: LamportTime, id: u32, payload: &[u8]) -> Result<()> {
        let payload = payload.to_vec();
        Ok(self
            .node
            .call(move |serf, now| serf.respond(now, ltime, id, &payload))
            .await??)
    }

    /// Replaces this node's tags and announces them. The tags a side channel pins (QUIC's
    /// `_hearsay_quic` advert) are kept whatever `tags` says, since peers need them.
    pub async fn set_tags(&self, mut tags: BTreeMap<String, String>) -> Result<()> {
        if let Some(side) = &self.side {
            tags.extend(side.pinned_tags());
        }
        Ok(self
            .node
            .call(move |serf, now| serf.set_tags(now, tags))
            .await??)
    }

    /// Forces a failed member into the left state (Serf's `RemoveFailedNode`); with `prune`
    /// it is also removed from the member list at once. Returns once the leave broadcast went
    /// out, as Serf's does, or fails with [`Error::ForceLeaveTimeout`] after the broadcast
    /// timeout.
    pub async fn force_leave(&self, node: &str, prune: bool) -> Result<()> {
        let node = node.to_owned();
        // Subscribed first, so the broadcast's end cannot slip past.
        let events = self.node.subscribe();
        let (id, limit) = self
            .node
            .call(move |serf, now| {
                let id = serf.force_leave(now, &node, prune)?;
                Ok::<_, hearsay_serf::Error>((id, serf.config().broadcast_timeout))
            })
            .await??;
        let Some(id) = id else {
            return Ok(());
        };
        let wait = self.wait_for(
            events,
            |ev| matches!(ev, Event::ForceLeaveSent { id: sent } if *sent == id),
            move |serf| !serf.force_leave_pending(id),
        );
        tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| Error::ForceLeaveTimeout(limit))?
    }

    /// The last network coordinate `node` sent (this node's own for its name); `None` when
    /// unknown or coordinates are disabled.
    pub async fn coordinate(&self, node: &str) -> Result<Option<Coordinate>> {
        let node = node.to_owned();
        Ok(self
            .node
            .call(move |serf, _| serf.cached_coordinate(&node).cloned())
            .await?)
    }

    /// Serf's `Stats()`: member counts, clocks, health score, broadcast queue depths, whether
    /// encryption is on, and coordinate resets; then hearsay's counters of what the network
    /// sent that was refused ([`Serf::drop_stats`]: `dropped_packets` and the rest).
    pub async fn stats(&self) -> Result<BTreeMap<String, String>> {
        Ok(self
            .node
            .call(|serf, _| {
                let mut out = BTreeMap::new();
                let (clock, event, query) = serf.clocks();
                let count = |s| serf.count_with_status(s).to_string();
                let swim = serf.memberlist();
                out.insert("members".into(), serf.members().len().to_string());
                out.insert("failed".into(), count(MemberStatus::Failed));
                out.insert("left".into(), count(MemberStatus::Left));
                out.insert("health_score".into(), swim.health_score().to_string());
                out.insert("member_time".into(), clock.to_string());
                out.insert("event_time".into(), event.to_string());
                out.insert("query_time".into(), query.to_string());
                let queues = serf.queue_depths();
                out.insert("intent_queue".into(), queues.intent.to_string());
                out.insert("event_queue".into(), queues.event.to_string());
                out.insert("query_queue".into(), queues.query.to_string());
                out.insert("encrypted".into(), swim.keyring().is_some().to_string());
                if let Some(resets) = serf.coordinate_resets() {
                    out.insert("coordinate_resets".into(), resets.to_string());
                }
                for (key, value) in serf.drop_stats() {
                    out.insert(key.into(), value.to_string());
                }
                out
            })
            .await?)
    }

    /// Stops the node without leaving (peers will see it fail): ends the driver task and
    /// closes its sockets before returning. Stopping a stopped node is a no-op.
    pub async fn shutdown(&self) {
        if let Some(side) = &self.side {
            side.close();
        }
        self.node.shutdown().await;
    }

    /// True once the driver task has ended.
    pub fn is_stopped(&self) -> bool {
        self.node.is_stopped()
    }
}
