//! The hearsay origin node: a [`SerfAgent`] inside the benchmark process, on real UDP/TCP
//! sockets on loopback, that fires user events and queries where serf's origin is driven by
//! the `serf` CLI over RPC. Its events are logged as the same `EVENT ...` lines
//! `hearsay-serf-node` prints, so both kinds of node are read alike.

use crate::procs::{free_port, Lines};
use anyhow::{Context, Result};
use hearsay_agent::{AgentOptions, QueryResult, SerfAgent};
use hearsay_net::{Config, Profile, UdpTcpTransport};
use hearsay_serf::event::Event;
use hearsay_serf::{QueryParams, SerfConfig};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::broadcast::error::RecvError;

/// A hearsay node running in this process, answering `ping` queries with `pong`.
pub struct Origin {
    pub name: String,
    pub lines: Lines,
    agent: SerfAgent,
    rt: Runtime,
}

/// When the acks and responses of one query arrived, measured from the call.
#[derive(Debug, Default)]
pub struct QueryTimes {
    pub acks: Vec<Duration>,
    pub responses: Vec<Duration>,
}

impl Origin {
    /// Starts the node (LAN profile) and joins it to `join` (a gossip port on 127.0.0.1).
    pub fn start(name: &str, join: u16) -> Result<Self> {
        // One worker thread: the driver keeps running between our calls.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let bind = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let lines = Lines::default();
        let agent = rt.block_on(async {
            let transport = UdpTcpTransport::bind(bind).await?;
            let config = SerfConfig::new(Config::profile(Profile::Lan, name, bind));
            let agent = SerfAgent::start(AgentOptions::new(config), transport)?;
            anyhow::Ok(agent)
        })?;
        rt.spawn(log_and_answer(agent.clone(), lines.clone()));
        let seed = SocketAddr::from(([127, 0, 0, 1], join));
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), agent.join(&[seed], true)).await
        })
        .context("in-process hearsay node: join timed out")??;
        Ok(Self {
            name: name.to_owned(),
            lines,
            agent,
            rt,
        })
    }

    /// Fires a user event without coalescing.
    pub fn fire(&self, event: &str) -> Result<()> {
        self.rt
            .block_on(self.agent.user_event(event, b"x", false))
            .context("firing a user event")
    }

    /// Queries `ping` (with acks) and collects results until `expect` acks and responses
    /// arrived or `limit` passed.
    pub fn query_ping(&self, expect: usize, limit: Duration) -> Result<QueryTimes> {
        self.rt.block_on(async {
            let params = QueryParams {
                request_ack: true,
                ..QueryParams::default()
            };
            let start = Instant::now();
            let mut results = self.agent.query("ping", b"", params).await?;
            let mut times = QueryTimes::default();
            let deadline = tokio::time::Instant::from_std(start + limit);
            while times.acks.len() < expect || times.responses.len() < expect {
                match tokio::time::timeout_at(deadline, results.next()).await {
                    Ok(Some(QueryResult::Ack { .. })) => times.acks.push(start.elapsed()),
                    Ok(Some(QueryResult::Response { .. })) => times.responses.push(start.elapsed()),
                    Ok(Some(
                        QueryResult::ResponseChunk { .. } | QueryResult::ResponseEnd { .. },
                    )) => {}
                    Ok(Some(QueryResult::Done)) | Ok(None) | Err(_) => break,
                }
            }
            Ok(times)
        })
    }

    /// Stops the node without leaving.
    pub fn shutdown(self) {
        self.rt.block_on(self.agent.shutdown());
        self.rt.shutdown_timeout(Duration::from_secs(2));
    }
}

/// Logs events as `hearsay-serf-node` prints them and answers `ping` queries.
async fn log_and_answer(agent: SerfAgent, lines: Lines) {
    let mut events = agent.subscribe();
    loop {
        let ev = match events.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        match &ev {
            Event::Member(m) => {
                let names: Vec<&str> = m.members.iter().map(|m| m.name.as_str()).collect();
                lines.push(format!("EVENT {} {}", m.kind.as_str(), names.join(" ")));
            }
            Event::User(u) => lines.push(format!("EVENT user {} {} x", u.ltime, u.name)),
            Event::Query(q) => {
                lines.push(format!("EVENT query {} {}", q.ltime, q.name));
                if q.name == "ping" {
                    let _ = agent.respond(q.ltime, q.id, b"pong").await;
                }
            }
            _ => {}
        }
    }
}
