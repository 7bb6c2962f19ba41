//! The agent's side of the handler contract ([`hearsay_host::Embedder`]): member information,
//! query replies and emitted events, answered by the running [`SerfAgent`].
//!
//! The host calls these methods on its worker threads (never on a tokio thread), so they reach
//! the agent's async API through a tokio runtime [`Handle`] and wait, bounded by
//! [`AGENT_CALL_TIMEOUT`], for the driver's answer. The gossip driver never waits on a handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearsay_host::{Embedder, EmitError, Member, Query, ReplyError, ReplySink};
use hearsay_serf::event::QueryEvent;
use tokio::runtime::Handle;

use crate::conversions;
use crate::error::Error;
use crate::serf_agent::SerfAgent;

/// How long a handler's call into the agent (members, reply, emit) waits for the driver.
pub const AGENT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What every event's embedder shares: the agent, the runtime to reach it, and the last member
/// view (answered when the driver is too busy or gone, so a handler is never stuck on it).
pub(crate) struct AgentLink {
    pub(crate) agent: SerfAgent,
    pub(crate) runtime: Handle,
    /// Serf's UDP response limit (`query_response_size_limit`).
    udp_limit: usize,
    last_view: Mutex<Option<(Member, Vec<Member>)>>,
}

impl AgentLink {
    pub(crate) fn new(agent: SerfAgent, runtime: Handle, udp_limit: usize) -> Arc<Self> {
        Arc::new(AgentLink {
            agent,
            runtime,
            udp_limit,
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

/// One query reply: the only code that knows how a handler's reply travels. Buffered up to
/// Serf's UDP response limit and sent with [`SerfAgent::respond`] when finished; a longer
/// reply is refused with [`ReplyError::TooLarge`].
struct Reply {
    link: Arc<AgentLink>,
    ltime: u64,
    id: u32,
    buf: Vec<u8>,
    limit: usize,
}

impl Reply {
    fn open(link: Arc<AgentLink>, q: &QueryEvent) -> Reply {
        let limit = link.udp_limit;
        Reply {
            link,
            ltime: q.ltime,
            id: q.id,
            buf: Vec::new(),
            limit,
        }
    }
}

impl ReplySink for Reply {
    fn write(&mut self, chunk: &[u8]) -> Result<(), ReplyError> {
        if self.buf.len() + chunk.len() > self.limit {
            return Err(ReplyError::TooLarge(self.limit as u64));
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), ReplyError> {
        let agent = &self.link.agent;
        let r = self
            .link
            .runtime
            .block_on(async {
                tokio::time::timeout(
                    AGENT_CALL_TIMEOUT,
                    agent.respond(self.ltime, self.id, &self.buf),
                )
                .await
            })
            .map_err(|_| {
                ReplyError::Closed(format!(
                    "the agent did not answer within {AGENT_CALL_TIMEOUT:?}"
                ))
            })?;
        match r {
            Ok(()) => Ok(()),
            Err(Error::Serf(hearsay_serf::Error::ResponseTooLarge { limit, .. })) => {
                Err(ReplyError::TooLarge(limit as u64))
            }
            Err(Error::Serf(hearsay_serf::Error::AlreadyResponded)) => {
                Err(ReplyError::AlreadyReplied)
            }
            Err(e) => Err(ReplyError::Closed(e.to_string())),
        }
    }
}
