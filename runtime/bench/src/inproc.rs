//! The hearsay origin node: a [`Node`] inside the benchmark process, on real UDP/TCP
//! sockets on loopback, that fires user events where serf's origin is driven by the `serf`
//! CLI over RPC; used only when the `hearsay` binary is not built (otherwise the bench drives
//! `hearsay agent`s with the `hearsay` CLI). Its events are logged as the same `EVENT ...`
//! lines `hearsay-serf-node` prints, so both kinds of node are read alike.

use crate::procs::{free_port, Lines};
use anyhow::{Context, Result};
use hearsay_agent::{Node, NodeOptions};
use hearsay_net::{Config, Profile, UdpTcpTransport};
use hearsay_serf::event::Event;
use hearsay_serf::SerfConfig;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::broadcast::error::RecvError;

/// A hearsay node running in this process.
pub(crate) struct Origin {
    pub name: String,
    pub lines: Lines,
    agent: Node,
    rt: Runtime,
}

impl Origin {
    /// Starts the node (LAN profile) and joins it to `join` (a gossip port on 127.0.0.1).
    pub(crate) fn start(name: &str, join: u16) -> Result<Self> {
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
            let agent = Node::start(NodeOptions::new(config), transport)?;
            anyhow::Ok(agent)
        })?;
        rt.spawn(log_events(agent.clone(), lines.clone()));
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
    pub(crate) fn fire(&self, event: &str) -> Result<()> {
        self.rt
            .block_on(self.agent.user_event(event, b"x", false))
            .context("firing a user event")
    }

    /// Stops the node without leaving.
    pub(crate) fn shutdown(self) {
        self.rt.block_on(self.agent.shutdown());
        self.rt.shutdown_timeout(Duration::from_secs(2));
    }
}

/// Logs events as `hearsay-serf-node` prints them.
async fn log_events(agent: Node, lines: Lines) {
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
            Event::Query(q) => lines.push(format!("EVENT query {} {}", q.ltime, q.name)),
            _ => {}
        }
    }
}
