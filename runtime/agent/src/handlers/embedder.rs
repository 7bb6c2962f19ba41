//! The agent's side of the handler contract ([`hearsay_host::Embedder`]): member information,
//! query replies and emitted events, answered by the running [`Node`].
//!
//! The host awaits these methods inside a guest's call, on the host's own runtime: they talk to
//! the agent's driver over its channels and wait, bounded by [`AGENT_CALL_TIMEOUT`] (and by the
//! event's deadline, which drops them where they wait), for its answer. The gossip driver never
//! waits on a handler.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearsay_host::{async_trait, Embedder, EmitError, Member, Query, ReplyError, ReplySink};
use hearsay_serf::event::QueryEvent;

use crate::conversions;
use crate::node::{self, Node};
use crate::replies::{self, QueryReply, ReplyTarget};

/// How long a handler's call into the agent (members, reply, emit) waits for the driver.
pub const AGENT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What every event's embedder shares: the agent and the last member view (answered when the
/// driver is too busy or gone, so a handler is never stuck on it).
pub(crate) struct AgentLink {
    pub(crate) agent: Node,
    last_view: Mutex<Option<(Member, Vec<Member>)>>,
    /// The agent's `-tags-file`, rewritten when a handler changes a tag.
    pub(crate) tags_file: Mutex<Option<std::path::PathBuf>>,
}

impl AgentLink {
    pub(crate) fn new(agent: Node) -> Arc<Self> {
        Arc::new(AgentLink {
            agent,
            last_view: Mutex::new(None),
            tags_file: Mutex::new(None),
        })
    }

    /// An agent call, bounded by [`AGENT_CALL_TIMEOUT`].
    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, node::Error>>,
    ) -> Result<T, String> {
        tokio::time::timeout(AGENT_CALL_TIMEOUT, fut)
            .await
            .map_err(|_| format!("the agent did not answer within {AGENT_CALL_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())
    }

    /// This node and every member (this node included), with estimated RTTs from this node.
    async fn view(&self) -> (Member, Vec<Member>) {
        let fresh = self
            .bounded(async {
                Ok(self
                    .agent
                    .handle()
                    .call(|serf, _| {
                        let local = serf.coordinate().cloned();
                        let convert = |m: &hearsay_serf::event::Member| {
                            let rtt =
                                conversions::rtt(local.as_ref(), serf.cached_coordinate(&m.name));
                            conversions::member(m, rtt)
                        };
                        let me = convert(&serf.local_member());
                        let all: Vec<Member> = serf.members().iter().map(convert).collect();
                        (me, all)
                    })
                    .await?)
            })
            .await;
        let mut last = self.last_view.lock().unwrap_or_else(|e| e.into_inner());
        match fresh {
            Ok(view) => {
                *last = Some(view.clone());
                view
            }
            Err(why) => {
                tracing::warn!(error = %why, "handlers: member view unavailable; answering the last one");
                last.clone().unwrap_or_else(|| {
                    let addr = self.agent.local_addr();
                    let me = Member {
                        name: self.agent.name().to_owned(),
                        addr: addr.ip(),
                        port: addr.port(),
                        tags: Default::default(),
                        status: hearsay_host::MemberStatus::Alive,
                        rtt: None,
                    };
                    (me.clone(), vec![me])
                })
            }
        }
    }
}

/// The embedder given with one event: every handler the event goes to shares it, so only the
/// first reply to a query is sent (Serf answers a query once per node).
pub(crate) struct EventContext {
    link: Arc<AgentLink>,
    query: Option<QueryEvent>,
    replied: AtomicBool,
}

impl EventContext {
    pub(crate) fn new(link: Arc<AgentLink>, query: Option<QueryEvent>) -> Arc<Self> {
        Arc::new(EventContext {
            link,
            query,
            replied: AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl Embedder for EventContext {
    async fn local_member(&self) -> Member {
        self.link.view().await.0
    }

    async fn members(&self) -> Vec<Member> {
        self.link.view().await.1
    }

    fn open_reply(&self, query: &Query) -> Result<Box<dyn ReplySink>, ReplyError> {
        let Some(q) = &self.query else {
            return Err(ReplyError::NotAQuery);
        };
        if q.id != query.id || q.ltime != query.ltime {
            return Err(ReplyError::NotAQuery);
        }
        if self.replied.swap(true, Ordering::SeqCst) {
            return Err(ReplyError::AlreadyReplied);
        }
        Ok(Box::new(Reply::open(self.link.clone(), q)))
    }

    async fn emit(&self, name: &str, payload: &[u8], coalesce: bool) -> Result<(), EmitError> {
        let agent = &self.link.agent;
        let r = tokio::time::timeout(
            AGENT_CALL_TIMEOUT,
            agent.user_event(name, payload, coalesce),
        )
        .await
        .map_err(|_| {
            EmitError::Rejected(format!(
                "the agent did not answer within {AGENT_CALL_TIMEOUT:?}"
            ))
        })?;
        match r {
            Ok(()) => Ok(()),
            Err(node::Error::Serf(hearsay_serf::Error::UserEventTooLarge { limit, .. })) => {
                Err(EmitError::TooLarge(limit as u64))
            }
            Err(e) => Err(EmitError::Rejected(e.to_string())),
        }
    }

    async fn set_tag(&self, name: &str, value: Option<&str>) -> Result<(), String> {
        if crate::config::is_reserved(name) {
            return Err(format!(
                "tags starting with {} are the agents' own",
                crate::config::RESERVED_PREFIXES.join(" or ")
            ));
        }
        let file = self
            .link
            .tags_file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (set, delete) = match value {
            Some(v) => (
                BTreeMap::from([(name.to_owned(), v.to_owned())]),
                Vec::new(),
            ),
            None => (BTreeMap::new(), vec![name.to_owned()]),
        };
        let update = crate::tags_update::update(&self.link.agent, file.as_deref(), set, &delete);
        match tokio::time::timeout(AGENT_CALL_TIMEOUT, update).await {
            Err(_) => Err(format!(
                "the agent did not answer within {AGENT_CALL_TIMEOUT:?}"
            )),
            Ok(Ok(())) => Ok(()),
            Ok(Err(crate::tags_update::UpdateError::File(e))) => Err(e),
            Ok(Err(crate::tags_update::UpdateError::Node(e))) => Err(e.to_string()),
        }
    }
}

/// One query reply: the only code that knows how a handler's reply travels. It is the agent's
/// [`QueryReply`]: buffered while it fits Serf's UDP response limit and sent as Serf's response
/// on `finish`; past that, streamed over QUIC to a hearsay originator, or refused with
/// [`ReplyError::TooLarge`] for a Serf originator (nothing is sent).
struct Reply {
    reply: Option<QueryReply>,
    deadline: Instant,
}

impl Reply {
    fn open(link: Arc<AgentLink>, q: &QueryEvent) -> Reply {
        Reply {
            reply: Some(QueryReply::open(&link.agent, ReplyTarget::from(q))),
            deadline: q.deadline,
        }
    }
}

/// Waits for a reply operation; the agent bounds it by the query's deadline, this bounds it once
/// more in case the agent is gone (and the handler's own deadline bounds it again).
async fn bounded<T>(
    deadline: Instant,
    fut: impl std::future::Future<Output = Result<T, replies::ReplyError>>,
) -> Result<T, ReplyError> {
    let bound = deadline.saturating_duration_since(Instant::now()) + AGENT_CALL_TIMEOUT;
    tokio::time::timeout(bound, fut)
        .await
        .map_err(|_| ReplyError::Closed(format!("the agent did not answer within {bound:?}")))?
        .map_err(reply_error)
}

fn reply_error(e: replies::ReplyError) -> ReplyError {
    use hearsay_serf::Error as SerfError;
    match e {
        replies::ReplyError::TooLarge { limit, .. } => ReplyError::TooLarge(limit as u64),
        replies::ReplyError::Node(node::Error::Serf(SerfError::ResponseTooLarge {
            limit, ..
        })) => ReplyError::TooLarge(limit as u64),
        replies::ReplyError::Node(node::Error::Serf(SerfError::AlreadyResponded)) => {
            ReplyError::AlreadyReplied
        }
        e => ReplyError::Closed(e.to_string()),
    }
}

#[async_trait]
impl ReplySink for Reply {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), ReplyError> {
        let Some(reply) = self.reply.as_mut() else {
            return Err(ReplyError::Closed("the reply already failed".into()));
        };
        // Dropped mid-write (the handler's deadline), the reply is dropped with the sink: an
        // unfinished QUIC stream is reset, and the asker sees this node's answer fail.
        bounded(self.deadline, reply.write(chunk)).await
    }

    async fn finish(mut self: Box<Self>) -> Result<(), ReplyError> {
        let Some(reply) = self.reply.take() else {
            return Err(ReplyError::Closed("the reply already failed".into()));
        };
        bounded(self.deadline, reply.finish()).await.map(|_path| ())
    }
}
