//! The event a handler receives and the member information it can ask for: plain Rust mirrors of
//! the WIT types in `wit/handler.wit`, so embedders never see generated bindings.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::guest_log::sanitize;

/// Longest event name shown in logs (escaped text); Serf's own limits keep real names shorter.
const MAX_NAME: usize = 256;

/// A member's state (Serf's MemberStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    /// Not known.
    None,
    /// Alive and reachable.
    Alive,
    /// Announced that it is leaving.
    Leaving,
    /// Left gracefully.
    Left,
    /// Declared dead by the failure detector.
    Failed,
}

/// One cluster member as a handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The node name.
    pub name: String,
    /// The gossip address.
    pub addr: IpAddr,
    /// The gossip port.
    pub port: u16,
    /// The member's tags.
    pub tags: BTreeMap<String, String>,
    /// The member's state.
    pub status: MemberStatus,
    /// Estimated round-trip time from this node (network coordinates), when known.
    pub rtt: Option<Duration>,
}

/// A user event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEvent {
    /// The event name.
    pub name: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// The event's Lamport time.
    pub ltime: u64,
    /// Whether coalescing was allowed.
    pub coalesce: bool,
}

/// A query. The embedder identifies where the reply goes by `id`, `ltime` and `source_node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The query id.
    pub id: u32,
    /// The query name.
    pub name: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// The query's Lamport time.
    pub ltime: u64,
    /// The node that asked.
    pub source_node: String,
}

/// A periodic event of a handler whose filter has `every:DURATION` (contract 0.2.0 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// The timer's period.
    pub period: Duration,
    /// How many times the timer has fired since the handler was loaded, from 1.
    pub count: u64,
}

/// What happened: one invocation of a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Members joined.
    MemberJoin(Vec<Member>),
    /// Members left gracefully.
    MemberLeave(Vec<Member>),
    /// Members failed.
    MemberFailed(Vec<Member>),
    /// Members changed tags.
    MemberUpdate(Vec<Member>),
    /// Members were reaped.
    MemberReap(Vec<Member>),
    /// A user event.
    User(UserEvent),
    /// A query.
    Query(Query),
    /// A timer fired.
    Tick(Tick),
}

impl Event {
    /// The event in Serf's filter syntax, for logs: `member-join`, `user:deploy`, `query:load`.
    /// Names come from the network, so they are escaped and cut as guest log lines are: a peer
    /// cannot forge a log line with an event named `x\n...`.
    pub fn describe(&self) -> String {
        match self {
            Event::MemberJoin(_) => "member-join".into(),
            Event::MemberLeave(_) => "member-leave".into(),
            Event::MemberFailed(_) => "member-failed".into(),
            Event::MemberUpdate(_) => "member-update".into(),
            Event::MemberReap(_) => "member-reap".into(),
            Event::User(e) => format!("user:{}", sanitize(&e.name, MAX_NAME)),
            Event::Query(q) => format!("query:{}", sanitize(&q.name, MAX_NAME)),
            Event::Tick(_) => "tick".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_names_are_one_escaped_line() {
        let e = Event::User(UserEvent {
            name: "deploy\n2026-12-07 INFO agent: forged".into(),
            payload: Vec::new(),
            ltime: 1,
            coalesce: false,
        });
        assert_eq!(e.describe(), "user:deploy\\n2026-12-07 INFO agent: forged");
        let q = Event::Query(Query {
            id: 1,
            name: "x".repeat(10_000),
            payload: Vec::new(),
            ltime: 1,
            source_node: "n".into(),
        });
        assert!(q.describe().len() < 300, "{}", q.describe().len());
    }
}
