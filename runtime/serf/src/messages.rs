//! Serf's gossip messages (`serf/messages.go`): one Rust type per Go struct, a one-byte type tag
//! in front of a go-msgpack body, carried inside memberlist user messages. Also the tag
//! encoding Serf puts in memberlist's node metadata, query filters, the relay wrapper and the
//! key-management query payloads.
//!
//! Encoding matches Go serf byte for byte (go-msgpack with a default `MsgpackHandle{}`:
//! structs as maps with name-sorted keys, strings and byte slices as old-spec raw, nil slices
//! as `0xc0`); the only freedom Go has is the iteration order of its maps, which we fix by
//! sorting. Decoding is liberal the way go-msgpack is (any integer width, str8/bin, nil for
//! zero values, unknown keys skipped, structs as arrays) and safe: no panics, no allocation
//! ahead of the bytes that justify it, bounded nesting.

#[cfg(test)]
mod arb;
mod codec;
#[cfg(any(test, feature = "fuzzing"))]
mod fuzzing;
#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "fuzzing"))]
pub use fuzzing::fuzz_message;

use crate::clock::LamportTime;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Serf's `messageType` (a uint8 `iota` list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// `messageLeaveType`: [`Leave`].
    Leave = 0,
    /// `messageJoinType`: [`Join`].
    Join = 1,
    /// `messagePushPullType`: [`PushPull`].
    PushPull = 2,
    /// `messageUserEventType`: [`UserEvent`].
    UserEvent = 3,
    /// `messageQueryType`: [`Query`].
    Query = 4,
    /// `messageQueryResponseType`: [`QueryResponse`].
    QueryResponse = 5,
    /// `messageConflictResponseType`: [`Message::ConflictResponse`].
    ConflictResponse = 6,
    /// `messageKeyRequestType`: [`Message::KeyRequest`].
    KeyRequest = 7,
    /// `messageKeyResponseType`: [`KeyResponse`].
    KeyResponse = 8,
    /// `messageRelayType`: [`Message::Relay`].
    Relay = 9,
}

impl MessageType {
    /// The type for a type byte, if Serf defines one.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Leave,
            1 => Self::Join,
            2 => Self::PushPull,
            3 => Self::UserEvent,
            4 => Self::Query,
            5 => Self::QueryResponse,
            6 => Self::ConflictResponse,
            7 => Self::KeyRequest,
            8 => Self::KeyResponse,
            9 => Self::Relay,
            _ => return None,
        })
    }
}

/// `queryFlagAck`: every node that passes the filters acks.
pub const QUERY_FLAG_ACK: u32 = 1;
/// `queryFlagNoBroadcast`: do not re-broadcast the query.
pub const QUERY_FLAG_NO_BROADCAST: u32 = 2;

/// `tagMagicByte`: metadata starting with it holds msgpack tags (protocol >= 3).
pub(crate) const TAG_MAGIC_BYTE: u8 = 0xff;

/// `filterNodeType`: the type byte of [`Filter::Nodes`].
pub(crate) const FILTER_NODE_TYPE: u8 = 0;
/// `filterTagType`: the type byte of [`Filter::Tag`].
pub(crate) const FILTER_TAG_TYPE: u8 = 1;

/// `messageJoin`: the join intent of `node` at `ltime`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Join {
    /// The intent's Lamport time (`LTime`).
    pub ltime: LamportTime,
    /// The joining node's name (`Node`).
    pub node: String,
}

/// `messageLeave`: the leave intent of `node` at `ltime`; `prune` removes it at once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Leave {
    /// The intent's Lamport time (`LTime`).
    pub ltime: LamportTime,
    /// The leaving node's name (`Node`).
    pub node: String,
    /// Remove the node from the member list at once instead of keeping it as left (`Prune`,
    /// Serf's `force-leave -prune`).
    pub prune: bool,
}

/// `userEvent`: one event inside a `userEvents` slot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserEventEntry {
    /// The event's name (`Name`).
    pub name: String,
    /// The event's payload (`Payload`).
    pub payload: Vec<u8>,
}

/// `userEvents`: the events seen at one Lamport time (a slot of Serf's event buffer).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserEvents {
    /// The slot's Lamport time (`LTime`).
    pub ltime: LamportTime,
    /// The events seen at that time (`Events`).
    pub events: Vec<UserEventEntry>,
}

/// `messagePushPull`: Serf's state in memberlist's push/pull exchange.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushPull {
    /// The sender's member clock (`LTime`).
    pub ltime: LamportTime,
    /// The Lamport time of the latest intent the sender has for each member
    /// (`StatusLTimes`, member name → time).
    pub status_ltimes: BTreeMap<String, LamportTime>,
    /// Members the sender holds as left (`LeftMembers`).
    pub left_members: Vec<String>,
    /// The sender's user-event clock (`EventLTime`).
    pub event_ltime: LamportTime,
    /// Go sends its whole event ring buffer (`[]*userEvents`, `EventBuffer` slots, 512 by
    /// default): slots never filled are nil pointers, written as msgpack nil. `None` is such
    /// a slot, so the array's length and layout survive a round trip.
    pub events: Vec<Option<UserEvents>>,
    /// The sender's query clock (`QueryLTime`).
    pub query_ltime: LamportTime,
}

/// `messageUserEvent`: a user event; `cc` = "can coalesce".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserEvent {
    /// The event's Lamport time (`LTime`).
    pub ltime: LamportTime,
    /// The event's name (`Name`).
    pub name: String,
    /// The event's payload (`Payload`).
    pub payload: Vec<u8>,
    /// Whether receivers may coalesce it with other events of the same name (`CC`).
    pub cc: bool,
}

/// A query filter (`filterNodeType` / `filterTagType`), each encoded as a type byte + msgpack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Only these node names.
    Nodes(Vec<String>),
    /// Only nodes whose tag `tag` matches the regular expression `expr`.
    Tag {
        /// The tag's name (`Tag`).
        tag: String,
        /// The regular expression the tag's value must match (`Expr`; unanchored, as Go's
        /// `regexp.MatchString`; a missing tag is the empty string).
        expr: String,
    },
    /// A filter that did not decode (unknown filter type, bad body, empty), kept verbatim.
    /// Go still decodes and relays such a query but never processes it
    /// (`shouldProcessQuery` returns false), so this filter matches no node.
    ///
    /// An *empty* filter is worse: Go's `shouldProcessQuery` reads `filter[0]` and panics,
    /// killing the agent (verified against the real serf with one unauthenticated UDP
    /// packet). Never send or rebroadcast a query holding one to Go nodes.
    Undecodable(Vec<u8>),
}

/// `messageQuery`: a query on its way through the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    /// The query's Lamport time (`LTime`).
    pub ltime: LamportTime,
    /// A random id the originator chose; with `ltime` it identifies the query (`ID`).
    pub id: u32,
    /// Where responses go (memberlist `Addr []byte`: 4 or 16 bytes).
    pub addr: Vec<u8>,
    /// Where responses go (`Port`).
    pub port: u16,
    /// The originator's name (`SourceNode`; empty from Serf before 0.9).
    pub source_node: String,
    /// Only nodes passing every filter process the query (`Filters`).
    pub filters: Vec<Filter>,
    /// [`QUERY_FLAG_ACK`] and [`QUERY_FLAG_NO_BROADCAST`] (`Flags`).
    pub flags: u32,
    /// Through how many other members each responder also relays its response, besides
    /// sending it directly (`RelayFactor`).
    pub relay_factor: u8,
    /// Go's `time.Duration`: nanoseconds as int64. A negative value on the wire reads as
    /// zero; a duration over `i64::MAX` nanoseconds is written as `i64::MAX`.
    pub timeout: Duration,
    /// The query's name (`Name`).
    pub name: String,
    /// The query's payload (`Payload`).
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
    /// The query's Lamport time (`LTime`).
    pub ltime: LamportTime,
    /// The query's id (`ID`).
    pub id: u32,
    /// The responding node's name (`From`).
    pub from: String,
    /// [`QUERY_FLAG_ACK`] for an ack (`Flags`).
    pub flags: u32,
    /// The response (`Payload`; empty for an ack).
    pub payload: Vec<u8>,
}

impl QueryResponse {
    /// This is an ack rather than a response.
    pub fn ack(&self) -> bool {
        self.flags & QUERY_FLAG_ACK != 0
    }
}

/// `nodeKeyResponse`: one node's answer to a `_serf_*-key` query, carried as
/// `[KeyResponse type][msgpack]` in the query response payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyResponse {
    /// True when the operation succeeded on that node.
    pub result: bool,
    /// Error text or other information.
    pub message: String,
    /// Installed keys, base64 (list queries only).
    pub keys: Vec<String>,
    /// The primary key, base64 (list queries only).
    pub primary_key: String,
}

/// A decoded Serf message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `messageLeave`: a leave intent.
    Leave(Leave),
    /// `messageJoin`: a join intent.
    Join(Join),
    /// `messagePushPull`: Serf's state in a push/pull exchange.
    PushPull(PushPull),
    /// `messageUserEvent`: a user event.
    UserEvent(UserEvent),
    /// `messageQuery`: a query.
    Query(Query),
    /// `messageQueryResponse`: an ack or a response to a query.
    QueryResponse(QueryResponse),
    /// `messageConflictResponse`: the serf `Member` answering `_serf_conflict`, carried as a
    /// query response payload. `None` is Go's nil `*Member` (the responder does not know the
    /// node), which Go still counts as a (non-matching) vote.
    ConflictResponse(Option<ConflictMember>),
    /// `messageRelayType`: forward `inner` (a whole encoded message) to `dest`.
    Relay {
        /// The node to forward to (`DestAddr`).
        dest: SocketAddr,
        /// That node's name (`DestName`).
        dest_name: String,
        /// The message to forward, `[type][body]`.
        inner: Vec<u8>,
    },
    /// `keyRequest{Key}`: the raw key of an install/use/remove-key query (a query payload,
    /// not a gossip message).
    KeyRequest(Vec<u8>),
    /// `nodeKeyResponse`: a key query's response payload.
    KeyResponse(KeyResponse),
}

impl Message {
    /// The type byte this message is encoded with.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Leave(_) => MessageType::Leave,
            Message::Join(_) => MessageType::Join,
            Message::PushPull(_) => MessageType::PushPull,
            Message::UserEvent(_) => MessageType::UserEvent,
            Message::Query(_) => MessageType::Query,
            Message::QueryResponse(_) => MessageType::QueryResponse,
            Message::ConflictResponse(_) => MessageType::ConflictResponse,
            Message::Relay { .. } => MessageType::Relay,
            Message::KeyRequest(_) => MessageType::KeyRequest,
            Message::KeyResponse(_) => MessageType::KeyResponse,
        }
    }
}

/// Serf's `Member` as carried in a conflict response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConflictMember {
    /// The node's name (`Name`).
    pub name: String,
    /// `Addr`, a `net.IP`: 4 or 16 bytes as the member's memberlist address was given.
    pub addr: Vec<u8>,
    /// The node's memberlist port (`Port`).
    pub port: u16,
    /// The node's tags (`Tags`).
    pub tags: BTreeMap<String, String>,
    /// `Status`, a `MemberStatus` (a Go int): 0 none, 1 alive, 2 leaving, 3 left, 4 failed.
    pub status: i64,
    /// The oldest memberlist protocol the node speaks (`ProtocolMin`).
    pub protocol_min: u8,
    /// The newest memberlist protocol the node speaks (`ProtocolMax`).
    pub protocol_max: u8,
    /// The memberlist protocol the node speaks now (`ProtocolCur`).
    pub protocol_cur: u8,
    /// The oldest Serf protocol the node speaks (`DelegateMin`).
    pub delegate_min: u8,
    /// The newest Serf protocol the node speaks (`DelegateMax`).
    pub delegate_max: u8,
    /// The Serf protocol the node speaks now (`DelegateCur`).
    pub delegate_cur: u8,
}

/// Encodes a message as `[type byte][msgpack body]` the way Serf's `encodeMessage` does
/// (a relay as `encodeRelayMessage` does).
pub fn encode(msg: &Message) -> Vec<u8> {
    codec::encode(msg)
}

/// Encodes Serf's push/pull state from borrowed parts, to the same bytes as
/// [`encode`] of the owned [`Message::PushPull`]: `status_ltimes` must come in ascending name
/// order without repeats (as the owned message's `BTreeMap` iterates). A node's state names
/// every member; this spares building a map of N owned names only to write it out.
pub(crate) fn encode_push_pull<'a>(
    ltime: LamportTime,
    status_ltimes: impl ExactSizeIterator<Item = (&'a str, LamportTime)>,
    left_members: &[&str],
    event_ltime: LamportTime,
    events: &[Option<UserEvents>],
    query_ltime: LamportTime,
) -> Vec<u8> {
    codec::encode_push_pull(
        ltime,
        status_ltimes,
        left_members,
        event_ltime,
        events,
        query_ltime,
    )
}

/// Decodes `[type byte][msgpack body]`. Bytes after the body are ignored, as Go's decoder
/// ignores them; for a relay they are the inner message.
pub fn decode(buf: &[u8]) -> Result<Message> {
    codec::decode(buf)
}

/// Serf's `encodeRelayMessage`: `[Relay]` + msgpack `relayHeader{DestAddr, DestName}` +
/// `inner` (an already encoded `[type][body]` message) for a node to forward to `dest`.
pub fn encode_relay(dest: SocketAddr, dest_name: &str, inner: &[u8]) -> Vec<u8> {
    codec::encode_relay(dest, dest_name, inner)
}

/// Encodes one query filter: `[filter type][msgpack]`. An [`Filter::Undecodable`] filter is
/// written back verbatim.
pub fn encode_filter(filter: &Filter) -> Vec<u8> {
    codec::encode_filter(filter)
}

/// Decodes one query filter, refusing unknown filter types and bad bodies. (Inside a
/// [`Query`] such a filter becomes [`Filter::Undecodable`] instead of failing the query.)
pub fn decode_filter(buf: &[u8]) -> Result<Filter> {
    codec::decode_filter(buf)
}

/// The payload of an install/use/remove-key query: `[KeyRequest][keyRequest{Key}]`.
pub fn encode_key_request(key: &[u8]) -> Vec<u8> {
    encode(&Message::KeyRequest(key.to_vec()))
}

/// Reads a key query payload back into the raw key.
pub fn decode_key_request(buf: &[u8]) -> Result<Vec<u8>> {
    match decode(buf)? {
        Message::KeyRequest(k) => Ok(k),
        other => Err(wrong_type(MessageType::KeyRequest, &other)),
    }
}

/// The payload of a key query response: `[KeyResponse][nodeKeyResponse]`.
pub fn encode_key_response(resp: &KeyResponse) -> Vec<u8> {
    encode(&Message::KeyResponse(resp.clone()))
}

/// Reads a key query response payload.
pub fn decode_key_response(buf: &[u8]) -> Result<KeyResponse> {
    match decode(buf)? {
        Message::KeyResponse(k) => Ok(k),
        other => Err(wrong_type(MessageType::KeyResponse, &other)),
    }
}

/// The payload of a `_serf_conflict` response: `[ConflictResponse][Member or nil]`.
pub fn encode_conflict_response(member: Option<&ConflictMember>) -> Vec<u8> {
    encode(&Message::ConflictResponse(member.cloned()))
}

/// Reads a `_serf_conflict` response payload.
pub fn decode_conflict_response(buf: &[u8]) -> Result<Option<ConflictMember>> {
    match decode(buf)? {
        Message::ConflictResponse(m) => Ok(m),
        other => Err(wrong_type(MessageType::ConflictResponse, &other)),
    }
}

fn wrong_type(want: MessageType, got: &Message) -> Error {
    Error::Malformed(format!(
        "expected a {want:?} payload, found a {:?} message",
        got.message_type()
    ))
}

/// Encodes tags as Serf does for protocol >= 3: `0xff` then a msgpack map of strings, keys
/// sorted (Go iterates its map in random order; any order decodes the same).
pub fn encode_tags(tags: &BTreeMap<String, String>) -> Vec<u8> {
    codec::encode_tags(tags)
}

/// Serf's `encodeTags` for a given protocol version: below 3 the metadata is just the
/// `role` tag's bytes (other tags are dropped), from 3 on it is [`encode_tags`].
pub(crate) fn encode_tags_for_protocol(tags: &BTreeMap<String, String>, protocol: u8) -> Vec<u8> {
    if protocol < 3 {
        return tags
            .get("role")
            .map(|r| r.as_bytes().to_vec())
            .unwrap_or_default();
    }
    encode_tags(tags)
}

/// Decodes node metadata into tags. Metadata without the `0xff` magic byte is the legacy
/// form: the whole metadata is the `role` tag. Like Go's `decodeTags`, that includes empty
/// metadata, which gives `{"role": ""}`.
pub fn decode_tags(meta: &[u8]) -> Result<BTreeMap<String, String>> {
    codec::decode_tags(meta)
}
