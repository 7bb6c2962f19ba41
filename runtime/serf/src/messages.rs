//! Serf's gossip messages (`serf/messages.go`): one Rust type per Go struct, a one-byte type tag
//! in front of a go-msgpack body, carried inside memberlist user messages. Also the tag
//! encoding Serf puts in memberlist's node metadata.

use crate::clock::LamportTime;
use crate::error::Result;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Serf's `messageType` (a uint8 `iota` list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    Leave = 0,
    Join = 1,
    PushPull = 2,
    UserEvent = 3,
    Query = 4,
    QueryResponse = 5,
    ConflictResponse = 6,
    KeyRequest = 7,
    KeyResponse = 8,
    Relay = 9,
}

/// `queryFlagAck`: every node that passes the filters acks.
pub const QUERY_FLAG_ACK: u32 = 1;
/// `queryFlagNoBroadcast`: do not re-broadcast the query.
pub const QUERY_FLAG_NO_BROADCAST: u32 = 2;

/// `messageJoin`: the join intent of `node` at `ltime`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Join {
    pub ltime: LamportTime,
    pub node: String,
}

/// `messageLeave`: the leave intent of `node` at `ltime`; `prune` removes it at once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Leave {
    pub ltime: LamportTime,
    pub node: String,
    pub prune: bool,
}

/// `userEvent`: one event inside a `userEvents` slot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserEventEntry {
    pub name: String,
    pub payload: Vec<u8>,
}

/// `userEvents`: the events seen at one Lamport time (a slot of Serf's event buffer).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserEvents {
    pub ltime: LamportTime,
    pub events: Vec<UserEventEntry>,
}

/// `messagePushPull`: Serf's state in memberlist's push/pull exchange.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushPull {
    pub ltime: LamportTime,
    pub status_ltimes: BTreeMap<String, LamportTime>,
    pub left_members: Vec<String>,
    pub event_ltime: LamportTime,
    pub events: Vec<UserEvents>,
    pub query_ltime: LamportTime,
}

/// `messageUserEvent`: a user event; `cc` = "can coalesce".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserEvent {
    pub ltime: LamportTime,
    pub name: String,
    pub payload: Vec<u8>,
    pub cc: bool,
}

/// A query filter (`filterNodeType` / `filterTagType`), each encoded as a type byte + msgpack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Only these node names.
    Nodes(Vec<String>),
    /// Only nodes whose tag `tag` matches the regular expression `expr`.
    Tag { tag: String, expr: String },
}

/// `messageQuery`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    pub ltime: LamportTime,
    pub id: u32,
    /// Where responses go (memberlist `Addr []byte` + `Port`).
    pub addr: Vec<u8>,
    pub port: u16,
    pub source_node: String,
    pub filters: Vec<Filter>,
    pub flags: u32,
    pub relay_factor: u8,
    /// Go's `time.Duration`: nanoseconds as int64.
    pub timeout: Duration,
    pub name: String,
    pub payload: Vec<u8>,
}

impl Query {
    /// The ack flag is set.
    pub fn ack(&self) -> bool {
        self.flags & QUERY_FLAG_ACK != 0
    }
    /// The no-broadcast flag is set.
    pub fn no_broadcast(&self) -> bool {
        self.flags & QUERY_FLAG_NO_BROADCAST != 0
    }
}

/// `messageQueryResponse`: an ack (flag set) or a response with a payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryResponse {
    pub ltime: LamportTime,
    pub id: u32,
    pub from: String,
    pub flags: u32,
    pub payload: Vec<u8>,
}

impl QueryResponse {
    /// This is an ack rather than a response.
    pub fn ack(&self) -> bool {
        self.flags & QUERY_FLAG_ACK != 0
    }
}

/// A decoded Serf message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Leave(Leave),
    Join(Join),
    PushPull(PushPull),
    UserEvent(UserEvent),
    Query(Query),
    QueryResponse(QueryResponse),
    /// `messageConflictResponse`: a serf `Member` answering `_serf_conflict`.
    ConflictResponse(ConflictMember),
    /// `messageRelayType`: forward `inner` (a whole encoded message) to `dest`.
    Relay {
        dest: SocketAddr,
        dest_name: String,
        inner: Vec<u8>,
    },
    /// Key request and response types: carried as query payloads, not as gossip messages.
    KeyRequest(Vec<u8>),
}

/// Serf's `Member` as carried in a conflict response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConflictMember {
    pub name: String,
    pub addr: Vec<u8>,
    pub port: u16,
    pub tags: BTreeMap<String, String>,
    pub status: i64,
    pub protocol_min: u8,
    pub protocol_max: u8,
    pub protocol_cur: u8,
    pub delegate_min: u8,
    pub delegate_max: u8,
    pub delegate_cur: u8,
}

/// Encodes a message as `[type byte][msgpack body]` the way Serf's `encodeMessage` does.
pub fn encode(msg: &Message) -> Vec<u8> {
    let _ = msg;
    unimplemented!("serf codec")
}

/// Decodes `[type byte][msgpack body]`.
pub fn decode(buf: &[u8]) -> Result<Message> {
    let _ = buf;
    unimplemented!("serf codec")
}

/// Encodes tags as Serf does for protocol >= 3: `0xff` then a msgpack map of strings.
pub fn encode_tags(tags: &BTreeMap<String, String>) -> Vec<u8> {
    let _ = tags;
    unimplemented!("serf codec")
}

/// Decodes node metadata into tags. Metadata without the `0xff` magic byte is the legacy
/// form: the whole metadata is the `role` tag.
pub fn decode_tags(meta: &[u8]) -> Result<BTreeMap<String, String>> {
    let _ = meta;
    unimplemented!("serf codec")
}
