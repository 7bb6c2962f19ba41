//! What the Serf layer reports to its user: member events (join, leave, failed, update, reap),
//! user events and queries, with Serf's member view (name, address, tags, status).

use crate::clock::LamportTime;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

/// Serf's `MemberStatus` (`StatusNone` = 0 ... `StatusFailed` = 4), as the RPC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberStatus {
    None = 0,
    Alive = 1,
    Leaving = 2,
    Left = 3,
    Failed = 4,
}

impl MemberStatus {
    /// Serf's spelling: "none", "alive", "leaving", "left", "failed".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Alive => "alive",
            Self::Leaving => "leaving",
            Self::Left => "left",
            Self::Failed => "failed",
        }
    }
}

/// A member as Serf sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub addr: SocketAddr,
    pub tags: BTreeMap<String, String>,
    pub status: MemberStatus,
    /// memberlist pmin, pmax, pcur, then Serf dmin, dmax, dcur.
    pub vsn: [u8; 6],
}

/// The kinds of member event, named as in Serf's handler filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberEventKind {
    Join,
    Leave,
    Failed,
    Update,
    Reap,
}

impl MemberEventKind {
    /// Serf's filter name: "member-join", "member-leave", ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Join => "member-join",
            Self::Leave => "member-leave",
            Self::Failed => "member-failed",
            Self::Update => "member-update",
            Self::Reap => "member-reap",
        }
    }
}

/// One or more members that joined, left, failed, changed or were reaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEvent {
    pub kind: MemberEventKind,
    pub members: Vec<Member>,
}

/// A user event delivered to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEvent {
    pub ltime: LamportTime,
    pub name: String,
    pub payload: Vec<u8>,
    pub coalesce: bool,
}

/// A query delivered to this node; answer it with `Serf::respond(id, ltime, ..)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryEvent {
    pub ltime: LamportTime,
    pub id: u32,
    pub name: String,
    pub payload: Vec<u8>,
    /// The originator, when it said (Serf 0.9+).
    pub source_node: String,
    /// After this the originator ignores responses.
    pub deadline: Instant,
}

/// Identifies a query this node started: its Lamport time and random id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId {
    pub ltime: LamportTime,
    pub id: u32,
}

/// Everything the Serf layer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Member(MemberEvent),
    User(UserEvent),
    Query(QueryEvent),
    /// A node acknowledged a query we started.
    QueryAck {
        query: QueryId,
        from: String,
    },
    /// A node answered a query we started.
    QueryResponse {
        query: QueryId,
        from: String,
        payload: Vec<u8>,
    },
    /// A query we started reached its deadline, or every node that passed its filters has
    /// answered (and acked, when acks were asked for): no more results will come.
    QueryDone {
        query: QueryId,
    },
    /// A join finished: how many addresses answered, and why the others did not.
    JoinFinished {
        id: u64,
        joined: usize,
        errors: Vec<(SocketAddr, String)>,
    },
    /// Another node claimed our name; the cluster voted (Serf's `_serf_conflict`). When we lost
    /// (`matching < responses / 2 + 1`), Serf shuts the node down, and so should the agent.
    NameConflict {
        won: bool,
        matching: usize,
        responses: usize,
    },
    /// A graceful leave finished (the intent and the memberlist leave went out).
    LeaveComplete,
}
