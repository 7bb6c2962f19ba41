//! The agent's QUIC endpoint for large query responses ([`QuicWire`]): bound with a peer
//! filter that admits only certificates advertised by current members, advertised in the
//! `_hearsay_quic` tag, and attached to its [`Node`] as the node's [`SideChannel`] (a query
//! the node starts is registered here before any response can arrive).

use super::receive;
use super::ReplyError;
use crate::config::{default_quic_bind, QuicSettings};
use crate::node::{Node, QueryResult, SideChannel, SideQuery};
use hearsay_net::quic::{
    Fingerprint, IncomingRequests, IncomingResponses, Limits, QuicAdvert, QuicConfig, QuicEndpoint,
    QuicError, Security, QUIC_TAG,
};
use hearsay_serf::event::{Member, MemberStatus, QueryId};
use hearsay_serf::Serf;
use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Results (chunks) buffered per running query between the QUIC readers and the consumer:
/// with 64 KiB chunks, at most 1 MiB per query on top of QUIC's flow-control windows.
const QUERY_CHANNEL: usize = 16;
/// What [`super::start_with_quic`] needs to run the QUIC endpoint.
#[derive(Clone)]
pub struct QuicOptions {
    /// The UDP address to bind (port 0 lets the OS choose).
    pub bind: SocketAddr,
    /// The address peers should dial, when the bound one is not dialable (0.0.0.0) or is
    /// translated.
    pub advertise: Option<SocketAddr>,
    /// Pinned self-signed certificate (the default) or an operator CA.
    pub security: Security,
    /// Per-response and per-query byte limits on incoming responses.
    pub limits: Limits,
    /// When `bind`'s port is taken, bind a port the OS chooses instead (with a warning): set
    /// for the default address, which nobody asked for by name.
    pub fallback_any_port: bool,
}

impl std::fmt::Debug for QuicOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicOptions")
            .field("bind", &self.bind)
            .field("advertise", &self.advertise)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl QuicOptions {
    /// Pinned mode with a fresh self-signed certificate for `name`, default limits.
    pub fn pinned(bind: SocketAddr, name: &str) -> Result<Self, ReplyError> {
        Ok(Self {
            bind,
            advertise: None,
            security: Security::pinned(name)?,
            limits: Limits::default(),
            fallback_any_port: false,
        })
    }

    /// Options from the agent's settings: the bind address (default: the gossip bind IP with
    /// a port the OS chooses, see [`default_quic_bind`]), pinned mode (with the certificate kept in
    /// `identity_file` when given, so the fingerprint survives restarts) unless all three CA
    /// files are given, and the limits.
    pub fn from_settings(
        s: &QuicSettings,
        gossip_bind: SocketAddr,
        name: &str,
    ) -> Result<Self, ReplyError> {
        let security = match (&s.ca_file, &s.cert_file, &s.key_file) {
            (Some(ca), Some(cert), Some(key)) => Security::ca_from_pem_files(ca, cert, key)?,
            (None, None, None) => match &s.identity_file {
                Some(path) => Security::pinned_persisted(path, name)?,
                None => Security::pinned(name)?,
            },
            _ => {
                return Err(QuicError::Config(
                    "quic_ca_file, quic_cert_file and quic_key_file must be given together".into(),
                )
                .into())
            }
        };
        let limits = Limits {
            max_response: s.response_max_bytes,
            max_query_total: s.query_max_bytes,
            ..Limits::default()
        };
        if limits.max_response == 0 || limits.max_query_total == 0 {
            return Err(QuicError::Config("QUIC byte limits must be above zero".into()).into());
        }
        Ok(Self {
            bind: s.bind.unwrap_or_else(|| default_quic_bind(gossip_bind)),
            advertise: s.advertise,
            security,
            limits,
            fallback_any_port: s.bind.is_none() && s.advertise.is_none(),
        })
    }
}

/// A query this node started, as the QUIC side sees it.
#[derive(Clone)]
pub(super) struct RunningQuery {
    pub(super) tx: mpsc::Sender<QueryResult>,
    pub(super) deadline: Instant,
}

/// Counters of the QUIC response paths, as [`super::quic_stats`] reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuicStats {
    /// Streams this node opened to relay nodes for its own large replies (relay factor).
    pub relay_legs_opened: u64,
    /// Responses of other nodes this node forwarded as a relay node (a stream to the
    /// originator was opened).
    pub relays_forwarded: u64,
    /// Of those, the ones the originator took whole.
    pub relays_delivered: u64,
    /// Responses to this node's queries that arrived through a relay node and were taken.
    pub relayed_accepted: u64,
    /// Streams to this node's queries refused because that node's response had already
    /// arrived on another path (a relayed copy, or the direct one after a relayed copy).
    pub duplicates_dropped: u64,
}

/// The live counters behind [`QuicStats`].
#[derive(Default)]
pub(super) struct Counters {
    pub(super) relay_legs_opened: AtomicU64,
    pub(super) relays_forwarded: AtomicU64,
    pub(super) relays_delivered: AtomicU64,
    pub(super) relayed_accepted: AtomicU64,
    pub(super) duplicates_dropped: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> QuicStats {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        QuicStats {
            relay_legs_opened: v(&self.relay_legs_opened),
            relays_forwarded: v(&self.relays_forwarded),
            relays_delivered: v(&self.relays_delivered),
            relayed_accepted: v(&self.relayed_accepted),
            duplicates_dropped: v(&self.duplicates_dropped),
        }
    }
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// State the QUIC tasks share with the agent handles.
#[derive(Default)]
pub(super) struct Shared {
    /// How the response paths were used.
    pub(super) stats: Counters,
    /// Fingerprints advertised by alive (or leaving) members, with the member's name.
    pub(super) admitted: RwLock<HashMap<Fingerprint, String>>,
    /// Running queries by (ltime, id).
    pub(super) queries: Mutex<HashMap<(u64, u32), RunningQuery>>,
    /// Poked when the filter refuses a certificate, so a member that just joined is admitted
    /// on the responder's retry rather than after the next periodic refresh.
    pub(super) refresh_now: tokio::sync::Notify,
}

impl Shared {
    pub(super) fn running(&self, key: (u64, u32)) -> Option<RunningQuery> {
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    /// Admits exactly the certificates alive (or leaving) members advertise.
    pub(super) fn refresh(&self, members: &[Member]) {
        let admitted: HashMap<Fingerprint, String> = members
            .iter()
            .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Leaving))
            .filter_map(|m| Some((advert_of(m)?.fingerprint, m.name.clone())))
            .collect();
        *self.admitted.write().unwrap_or_else(|e| e.into_inner()) = admitted;
    }
}

/// A member's QUIC advert, if it carries a valid `_hearsay_quic` tag.
pub fn advert_of(member: &Member) -> Option<QuicAdvert> {
    QuicAdvert::parse(member.tags.get(QUIC_TAG)?).ok()
}

/// The QUIC endpoint of one node and the tasks serving it. Dropped with the last node handle
/// that carries it: the tasks are aborted and the endpoint closes.
pub(super) struct QuicWire {
    pub(super) endpoint: QuicEndpoint,
    pub(super) shared: Arc<Shared>,
    /// Requests from peers (the deploy service's), until someone takes them.
    pub(super) requests: Mutex<Option<IncomingRequests>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for QuicWire {
    fn drop(&mut self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
        self.endpoint.close();
    }
}

impl QuicWire {
    /// Binds the endpoint with a peer filter over `shared`'s admitted set. The caller puts the
    /// advert in the node's tags and then calls [`QuicWire::spawn_tasks`].
    pub(super) fn bind(
        options: QuicOptions,
        name: &str,
    ) -> Result<(Self, IncomingResponses), QuicError> {
        let shared = Arc::new(Shared::default());
        let filter_shared = shared.clone();
        let mut config = QuicConfig::new(options.bind, options.security);
        config.advertise = options.advertise;
        config.limits = options.limits;
        config.peer_filter = Some(Arc::new(move |fp: &Fingerprint| {
            let known = filter_shared
                .admitted
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(fp);
            if !known {
                filter_shared.refresh_now.notify_one();
            }
            known
        }));
        let (endpoint, incoming, requests) = match QuicEndpoint::bind_with_requests(config.clone())
        {
            Err(QuicError::Bind { addr, source }) if options.fallback_any_port => {
                tracing::warn!(
                    "agent.quic: cannot bind the default QUIC address {addr} ({source}); using a port the OS chooses"
                );
                config.bind.set_port(0);
                // A wildcard bind was to be advertised on its port: bind the advertised IP
                // instead, so the advert carries the port the OS chose.
                if let Some(adv) = config.advertise.take() {
                    if config.bind.ip().is_unspecified() {
                        config.bind.set_ip(adv.ip());
                    }
                }
                QuicEndpoint::bind_with_requests(config)?
            }
            other => other?,
        };
        // This node may answer its own queries over QUIC.
        shared
            .admitted
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(endpoint.fingerprint(), name.to_owned());
        Ok((
            Self {
                endpoint,
                shared,
                requests: Mutex::new(Some(requests)),
                tasks: Mutex::new(Vec::new()),
            },
            incoming,
        ))
    }

    /// Starts the member watcher and the incoming-response loop. `node` must be a handle
    /// without this wire (so the tasks do not keep it alive).
    pub(super) fn spawn_tasks(&self, node: Node, incoming: IncomingResponses) {
        let watcher = tokio::spawn(receive::watch_members(node.clone(), self.shared.clone()));
        let receiver = tokio::spawn(receive::receive(
            node,
            self.shared.clone(),
            self.endpoint.clone(),
            incoming,
        ));
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([watcher, receiver]);
    }
}

impl SideChannel for QuicWire {
    fn pinned_tags(&self) -> Vec<(String, String)> {
        vec![(QUIC_TAG.to_owned(), self.endpoint.advert().to_tag_value())]
    }

    fn query_started(&self, serf: &Serf, id: QueryId, deadline: Instant) -> SideQuery {
        // Admit every member known now: the periodic refresh may lag (member events can be
        // coalesced for seconds), and a refused handshake only shows on the responder after
        // it has started writing.
        self.shared.refresh(&serf.members());
        let (tx, results) = mpsc::channel(QUERY_CHANNEL);
        let key = (id.ltime, id.id);
        self.shared
            .queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, RunningQuery { tx, deadline });
        SideQuery {
            results,
            registration: Box::new(Registration {
                shared: self.shared.clone(),
                key,
            }),
        }
    }

    fn close(&self) {
        self.endpoint.close();
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Removes a query from the running set when its results end or are dropped: no new response
/// to it is accepted from then on.
struct Registration {
    shared: Arc<Shared>,
    key: (u64, u32),
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared
            .queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn member(name: &str, status: MemberStatus, tag: Option<String>) -> Member {
        let mut tags = BTreeMap::new();
        if let Some(t) = tag {
            tags.insert(QUIC_TAG.to_owned(), t);
        }
        Member {
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            tags,
            status,
            vsn: [1, 5, 2, 2, 5, 4],
        }
    }

    #[tokio::test]
    async fn a_wildcard_bind_is_advertised_with_the_gossip_ip() {
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let transport = hearsay_net::UdpTcpTransport::bind(lo).await.unwrap();
        let addr = hearsay_net::Transport::local_addr(&transport);
        let config = hearsay_serf::SerfConfig::new(hearsay_net::Config::profile(
            hearsay_net::Profile::Local,
            "wild",
            addr,
        ));
        let quic = QuicOptions::pinned("0.0.0.0:0".parse().unwrap(), "wild").unwrap();
        let options = crate::NodeOptions::new(config);
        let agent = super::super::start_with_quic(options, transport, quic).unwrap();
        let advert = super::super::quic_advert(&agent).unwrap();
        assert_eq!(advert.addr.ip(), addr.ip());
        assert_ne!(advert.addr.port(), 0);
        let me = agent.local_member().await.unwrap();
        assert_eq!(me.tags.get(QUIC_TAG), Some(&advert.to_tag_value()));
        // set_tags keeps the advert whatever it is given.
        agent.set_tags(BTreeMap::new()).await.unwrap();
        let me = agent.local_member().await.unwrap();
        assert_eq!(me.tags.get(QUIC_TAG), Some(&advert.to_tag_value()));
        agent.shutdown().await;
    }

    #[test]
    fn settings_choose_the_mode_and_limits() {
        let gossip = "127.0.0.1:7946".parse().unwrap();
        let s = QuicSettings {
            response_max_bytes: 10,
            query_max_bytes: 20,
            ..QuicSettings::default()
        };
        let o = QuicOptions::from_settings(&s, gossip, "n").unwrap();
        assert_eq!(o.bind, "127.0.0.1:0".parse().unwrap());
        assert!(matches!(o.security, Security::Pinned(_)));
        assert_eq!((o.limits.max_response, o.limits.max_query_total), (10, 20));
        let partial = QuicSettings {
            ca_file: Some("ca.pem".into()),
            ..QuicSettings::default()
        };
        let e = QuicOptions::from_settings(&partial, gossip, "n").unwrap_err();
        assert!(e.to_string().contains("must be given together"), "{e}");
        let zero = QuicSettings {
            query_max_bytes: 0,
            ..QuicSettings::default()
        };
        assert!(QuicOptions::from_settings(&zero, gossip, "n").is_err());
    }

    #[test]
    fn admits_only_alive_members_with_valid_adverts() {
        let fp = |s: &str| Fingerprint::of(s.as_bytes());
        let advert = |s: &str| format!("{}@127.0.0.1:7947", fp(s));
        let shared = Shared::default();
        shared.refresh(&[
            member("a", MemberStatus::Alive, Some(advert("a"))),
            member("b", MemberStatus::Failed, Some(advert("b"))),
            member("c", MemberStatus::Alive, Some("garbage".into())),
            member("d", MemberStatus::Alive, None),
            member("e", MemberStatus::Leaving, Some(advert("e"))),
        ]);
        let admitted = shared.admitted.read().unwrap();
        assert_eq!(admitted.get(&fp("a")).map(String::as_str), Some("a"));
        assert_eq!(admitted.get(&fp("e")).map(String::as_str), Some("e"));
        assert!(
            !admitted.contains_key(&fp("b")),
            "failed members are not admitted"
        );
        assert_eq!(admitted.len(), 2);
    }
}
