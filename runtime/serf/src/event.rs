//! What the Serf layer reports to its user: member events (join, leave, failed, update, reap),
//! user events and queries, with Serf's member view (name, address, tags, status).

use crate::clock::LamportTime;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

/// Serf's `MemberStatus` (`StatusNone` = 0 ... `StatusFailed` = 4), as the RPC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberStatus {
    /// `StatusNone`: not known to be in any state (Serf's zero value).
    None = 0,
    /// `StatusAlive`: a member in good standing.
    Alive = 1,
    /// `StatusLeaving`: a leave intent was seen; the node is on its way out.
    Leaving = 2,
    /// `StatusLeft`: the node left gracefully.
    Left = 3,
    /// `StatusFailed`: the node stopped answering probes without leaving.
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
    /// The node's name, unique in the cluster.
    pub name: String,
    /// The node's gossip address (memberlist's `Addr` and `Port`).
    pub addr: SocketAddr,
    /// The node's tags, decoded from its memberlist metadata.
    pub tags: BTreeMap<String, String>,
    /// The member's status in Serf's view.
    pub status: MemberStatus,
    /// memberlist pmin, pmax, pcur, then Serf dmin, dmax, dcur.
    pub vsn: [u8; 6],
}

/// The kinds of member event, named as in Serf's handler filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberEventKind {
    /// `member-join`: a node joined, or came back after failing or leaving.
    Join,
    /// `member-leave`: a node left gracefully.
    Leave,
    /// `member-failed`: a node stopped answering and was declared dead.
    Failed,
    /// `member-update`: a node's tags or address changed.
    Update,
    /// `member-reap`: a failed or left node was removed for good (reconnect or tombstone
    /// timeout passed).
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
    /// What happened to the members.
    pub kind: MemberEventKind,
    /// The members it happened to (several when coalesced).
    pub members: Vec<Member>,
}

/// A user event delivered to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEvent {
    /// The event's Lamport time on the user-event clock.
    pub ltime: LamportTime,
    /// The event's name, which handlers filter on (`user:NAME`).
    pub name: String,
    /// The event's payload.
    pub payload: Vec<u8>,
    /// Whether the sender allowed coalescing it with other events of the same name.
    pub coalesce: bool,
}

/// A query delivered to this node; answer it with `Serf::respond(id, ltime, ..)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryEvent {
    /// The query's Lamport time on the query clock.
    pub ltime: LamportTime,
    /// The originator's random id for the query; with `ltime` it names the query in
    /// `Serf::respond`.
    pub id: u32,
    /// The query's name, which handlers filter on (`query:NAME`).
    pub name: String,
    /// The query's payload.
    pub payload: Vec<u8>,
    /// The originator, when it said (Serf 0.9+).
    pub source_node: String,
    /// After this the originator ignores responses.
    pub deadline: Instant,
}

/// Identifies a query this node started: its Lamport time and random id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId {
    /// The query's Lamport time on the query clock.
    pub ltime: LamportTime,
    /// The random id this node chose for it.
    pub id: u32,
}

/// Everything the Serf layer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Members joined, left, failed, changed or were reaped.
    Member(MemberEvent),
    /// A user event reached this node.
    User(UserEvent),
    /// A query reached this node and passed its filters; answer it with `Serf::respond`.
    Query(QueryEvent),
    /// A node acknowledged a query we started.
    QueryAck {
        /// The query, as [`crate::Serf::query`] returned it.
        query: QueryId,
        /// The acknowledging node's name.
        from: String,
    },
    /// A node answered a query we started.
    QueryResponse {
        /// The query, as [`crate::Serf::query`] returned it.
        query: QueryId,
        /// The responding node's name.
        from: String,
        /// The response.
        payload: Vec<u8>,
    },
    /// A query we started reached its deadline, or every node that passed its filters has
    /// answered (and acked, when acks were asked for): no more results will come.
    QueryDone {
        /// The query, as [`crate::Serf::query`] returned it.
        query: QueryId,
    },
    /// A join finished: how many addresses answered, and why the others did not.
    JoinFinished {
        /// The id [`crate::Serf::join`] returned.
        id: u64,
        /// How many of the given addresses were contacted and exchanged state.
        joined: usize,
        /// Each address that failed, with the reason.
        errors: Vec<(SocketAddr, String)>,
    },
    /// Another node claimed our name; the cluster voted (Serf's `_serf_conflict`). When we lost
    /// (`matching < responses / 2 + 1`), Serf shuts the node down, and so should the agent.
    NameConflict {
        /// Whether a majority of the responses named our address (`matching > responses / 2`).
        won: bool,
        /// Responses that named our address for the name.
        matching: usize,
        /// Responses received (a node that does not know the name still counts).
        responses: usize,
    },
    /// A graceful leave finished (the intent and the memberlist leave went out).
    LeaveComplete,
    /// The leave broadcast of a [`crate::Serf::force_leave`] went out (it was sent as often
    /// as gossip retransmits a broadcast, or replaced by a newer one about the same member).
    ForceLeaveSent {
        /// The id `force_leave` returned.
        id: u64,
    },
}
