//! The agent's side of the handler contract ([`hearsay_host::Embedder`]): member information,
//! query replies and emitted events, answered by the running [`SerfAgent`].
//!
//! The host calls these methods on its worker threads (never on a tokio thread), so they reach
//! the agent's async API through a tokio runtime [`Handle`] and wait, bounded by
//! [`AGENT_CALL_TIMEOUT`], for the driver's answer. The gossip driver never waits on a handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearsay_host::{Embedder, EmitError, Member, Query, ReplyError, ReplySink};
use hearsay_serf::event::QueryEvent;
use tokio::runtime::Handle;

use crate::conversions;
use crate::error::Error;
use crate::reply::QueryReply;
use crate::serf_agent::SerfAgent;

/// How long a handler's call into the agent (members, reply, emit) waits for the driver.
pub const AGENT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What every event's embedder shares: the agent, the runtime to reach it, and the last member
/// view (answered when the driver is too busy or gone, so a handler is never stuck on it).
pub(crate) struct AgentLink {
    pub(crate) agent: SerfAgent,
    pub(crate) runtime: Handle,
    last_view: Mutex<Option<(Member, Vec<Member>)>>,
}

impl AgentLink {
    pub(crate) fn new(agent: SerfAgent, runtime: Handle) -> Arc<Self> {
        Arc::new(AgentLink {
            agent,
            runtime,
            last_view: Mutex::new(None),
        })
    }

    /// Runs an agent call from a host worker thread, bounded by [`AGENT_CALL_TIMEOUT`].
    fn block_on<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, String> {
        self.runtime
            .block_on(async { tokio::time::timeout(AGENT_CALL_TIMEOUT, fut).await })
            .map_err(|_| format!("the agent did not answer within {AGENT_CALL_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())
    }

    /// This node and every member (this node included), with estimated RTTs from this node.
    fn view(&self) -> (Member, Vec<Member>) {
        let fresh = self.block_on(async {
            Ok(self
                .agent
                .handle()
                .call(|serf, _| {
                    let local = serf.coordinate().cloned();
                    let convert = |m: &hearsay_serf::event::Member| {
                        let rtt = conversions::rtt(local.as_ref(), serf.cached_coordinate(&m.name));
                        conversions::member(m, rtt)
                    };
                    let me = convert(&serf.local_member());
                    let all: Vec<Member> = serf.members().iter().map(convert).collect();
                    (me, all)
                })
                .await?)
        });
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

impl Embedder for EventContext {
    fn local_member(&self) -> Member {
        self.link.view().0
    }

    fn members(&self) -> Vec<Member> {
        self.link.view().1
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

    fn emit(&self, name: &str, payload: &[u8], coalesce: bool) -> Result<(), EmitError> {
        let agent = &self.link.agent;
        let r = self
            .link
            .runtime
            .block_on(async {
                tokio::time::timeout(
                    AGENT_CALL_TIMEOUT,
                    agent.user_event(name, payload, coalesce),
                )
                .await
            })
            .map_err(|_| {
                EmitError::Rejected(format!(
                    "the agent did not answer within {AGENT_CALL_TIMEOUT:?}"
                ))
            })?;
        match r {
            Ok(()) => Ok(()),
            Err(Error::Serf(hearsay_serf::Error::UserEventTooLarge { limit, .. })) => {
                Err(EmitError::TooLarge(limit as u64))
            }
            Err(e) => Err(EmitError::Rejected(e.to_string())),
        }
    }
}

/// One query reply: the only code that knows how a handler's reply travels. It is the agent's
/// [`QueryReply`]: buffered while it fits Serf's UDP response limit and sent as Serf's response
/// on `finish`; past that, streamed over QUIC to a hearsay originator, or refused with
/// [`ReplyError::TooLarge`] for a Serf originator (nothing is sent).
struct Reply {
    link: Arc<AgentLink>,
    reply: Option<QueryReply>,
    deadline: Instant,
}

impl Reply {
    fn open(link: Arc<AgentLink>, q: &QueryEvent) -> Reply {
        let reply = Some(link.agent.open_reply(q));
        Reply {
            link,
            reply,
            deadline: q.deadline,
        }
    }

    /// Waits for a reply operation; the agent bounds it by the query's deadline, this bounds
    /// it once more in case the agent is gone.
    fn block_on<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, ReplyError> {
        let bound = self.deadline.saturating_duration_since(Instant::now()) + AGENT_CALL_TIMEOUT;
        self.link
            .runtime
            .block_on(async { tokio::time::timeout(bound, fut).await })
            .map_err(|_| ReplyError::Closed(format!("the agent did not answer within {bound:?}")))?
            .map_err(reply_error)
    }
}

fn reply_error(e: Error) -> ReplyError {
    match e {
        Error::ReplyTooLarge { limit, .. } => ReplyError::TooLarge(limit as u64),
        Error::Serf(hearsay_serf::Error::ResponseTooLarge { limit, .. }) => {
            ReplyError::TooLarge(limit as u64)
        }
        Error::Serf(hearsay_serf::Error::AlreadyResponded) => ReplyError::AlreadyReplied,
        e => ReplyError::Closed(e.to_string()),
    }
}

impl ReplySink for Reply {
    fn write(&mut self, chunk: &[u8]) -> Result<(), ReplyError> {
        let Some(mut reply) = self.reply.take() else {
            return Err(ReplyError::Closed("the reply already failed".into()));
        };
        let r = self.block_on(reply.write(chunk));
        self.reply = Some(reply);
        r
    }

    fn finish(mut self: Box<Self>) -> Result<(), ReplyError> {
        let Some(reply) = self.reply.take() else {
            return Err(ReplyError::Closed("the reply already failed".into()));
        };
        self.block_on(reply.finish()).map(|_path| ())
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        // An unfinished reply is abandoned (a QUIC stream is reset); its teardown may need the
        // runtime, and this runs on a host worker thread.
        if let Some(reply) = self.reply.take() {
            let _in_runtime = self.link.runtime.enter();
            drop(reply);
        }
    }
}
