//! The bodies of Serf's messages to and from go-msgpack, on top of `hearsay-swim`'s msgpack
//! [`Writer`] and [`Reader`].
//!
//! Keys are written in bytewise-sorted order because go-msgpack encodes a struct from its
//! name-sorted field list (`typeInfo.sfi`); none of Serf's structs use `omitempty`, so every
//! field is always present. Nil slices (an empty payload, no filters, no keys) are written
//! as nil because that is what Go holds for them; maps and slices Go always allocates (push
//! /pull's `StatusLTimes`, `LeftMembers`, `Events`; tags) are written as empty containers.
//! Decoders list fields in Go declaration order, the order go-msgpack uses for the array form.

use super::{
    ConflictMember, Filter, Join, KeyResponse, Leave, Message, MessageType, PushPull, Query,
    QueryResponse, UserEvent, UserEventEntry, UserEvents, FILTER_NODE_TYPE, FILTER_TAG_TYPE,
    TAG_MAGIC_BYTE,
};
use crate::clock::LamportTime;
use crate::error::{Error, Result};
use hearsay_swim::Error as WireError;

/// Results of the body readers, in the swim reader's error type (what `decode_struct`'s
/// callbacks return); [`decode`] converts them.
type WResult<T> = std::result::Result<T, WireError>;
use hearsay_swim::wire::msgpack::{Reader, Writer};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

const U8: u64 = u8::MAX as u64;
const U16: u64 = u16::MAX as u64;
const U32: u64 = u32::MAX as u64;
const U64: u64 = u64::MAX;

/// The most elements one array or map may announce (memberlist's `maxPushStateNodes`).
/// Go has no limit besides the 20 MiB stream cap, but a one-byte nil slot costs us tens of
/// bytes of memory; this keeps a hostile push/pull's footprint bounded.
pub(crate) const MAX_CONTAINER_ITEMS: usize = 1 << 20;

pub(super) fn encode(msg: &Message) -> Vec<u8> {
    let mut w = Writer::default();
    w.buf.push(msg.message_type() as u8);
    match msg {
        Message::Leave(l) => write_leave(&mut w, l),
        Message::Join(j) => write_join(&mut w, j),
        Message::PushPull(p) => write_push_pull(&mut w, p),
        Message::UserEvent(e) => write_user_event(&mut w, e),
        Message::Query(q) => write_query(&mut w, q),
        Message::QueryResponse(r) => write_query_response(&mut w, r),
        Message::ConflictResponse(None) => w.nil(),
        Message::ConflictResponse(Some(m)) => write_member(&mut w, m),
        Message::Relay {
            dest,
            dest_name,
            inner,
        } => {
            write_relay_header(&mut w, *dest, dest_name);
            w.buf.extend_from_slice(inner);
        }
        Message::KeyRequest(key) => {
            w.map_len(1);
            w.str("Key");
            // Go fills `Key` from base64.DecodeString, which never returns nil: the list
            // query's empty key is an empty raw (0xa0), not nil.
            w.raw(key);
        }
        Message::KeyResponse(k) => write_key_response(&mut w, k),
    }
    w.into_inner()
}

pub(super) fn decode(buf: &[u8]) -> Result<Message> {
    let (&t, body) = buf
        .split_first()
        .ok_or_else(|| Error::Malformed("empty Serf message".into()))?;
    let ty = MessageType::from_u8(t).ok_or(Error::UnknownMessageType(t))?;
    let mut r = Reader::new(body);
    let r = &mut r;
    Ok(match ty {
        MessageType::Leave => Message::Leave(read_leave(r)?),
        MessageType::Join => Message::Join(read_join(r)?),
        MessageType::PushPull => Message::PushPull(read_push_pull(r)?),
        MessageType::UserEvent => Message::UserEvent(read_user_event(r)?),
        MessageType::Query => Message::Query(read_query(r)?),
        MessageType::QueryResponse => Message::QueryResponse(read_query_response(r)?),
        MessageType::ConflictResponse => {
            if take_nil(r)? {
                Message::ConflictResponse(None)
            } else {
                Message::ConflictResponse(Some(read_member(r)?))
            }
        }
        MessageType::Relay => {
            let (dest, dest_name) = read_relay_header(r)?;
            Message::Relay {
                dest,
                dest_name,
                inner: r.rest().to_vec(),
            }
        }
        MessageType::KeyRequest => {
            let mut key = Vec::new();
            r.decode_struct("keyRequest", &["Key"], |_, r| {
                key = r.byte_field("Key")?;
                Ok(())
            })?;
            Message::KeyRequest(key)
        }
        MessageType::KeyResponse => Message::KeyResponse(read_key_response(r)?),
    })
}

// ---- container helpers the swim reader does not expose ----

/// Peeks the next value: is it nil? If so, consumes it.
fn take_nil(r: &mut Reader<'_>) -> WResult<bool> {
    match r.rest().first() {
        None => Err(truncated("msgpack value", 1)),
        Some(0xc0) => {
            r.advance(1);
            Ok(true)
        }
        Some(_) => Ok(false),
    }
}

fn truncated(what: &'static str, needed: usize) -> WireError {
    WireError::Truncated { what, needed }
}

/// Reads an array (`map == false`) or map header; nil counts as empty, as go-msgpack decodes
/// nil into an empty slice or map. The length is only a loop bound: callers push as they read.
fn container_len(r: &mut Reader<'_>, field: &'static str, map: bool) -> WResult<usize> {
    let rest = r.rest();
    let Some(&b) = rest.first() else {
        return Err(truncated(field, 1));
    };
    let (fix_lo, b16, b32, want) = if map {
        (0x80u8, 0xde, 0xdf, "map")
    } else {
        (0x90u8, 0xdc, 0xdd, "array")
    };
    let (n, used) = match b {
        0xc0 => (0, 1),
        _ if (fix_lo..=fix_lo | 0x0f).contains(&b) => (usize::from(b & 0x0f), 1),
        _ if b == b16 || b == b32 => {
            let width = if b == b16 { 2 } else { 4 };
            let Some(bytes) = rest.get(1..1 + width) else {
                return Err(truncated(field, 1 + width - rest.len()));
            };
            let n = bytes
                .iter()
                .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
            (n, 1 + width)
        }
        _ => {
            return Err(WireError::Msgpack(format!(
                "field {field}: expected {want}, found type byte {b:#04x}"
            )))
        }
    };
    if n > MAX_CONTAINER_ITEMS {
        return Err(WireError::TooLarge {
            what: field,
            len: n,
            limit: MAX_CONTAINER_ITEMS,
        });
    }
    r.advance(used);
    Ok(n)
}

fn write_strings(w: &mut Writer, v: &[impl AsRef<str>]) {
    array_len(w, v.len());
    for s in v {
        w.str(s.as_ref());
    }
}

fn read_strings(r: &mut Reader<'_>, field: &'static str) -> WResult<Vec<String>> {
    let n = container_len(r, field, false)?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(r.string(field)?);
    }
    Ok(out)
}

/// An array header (fixarray, `0xdc`, `0xdd`); the swim writer only has maps.
fn array_len(w: &mut Writer, n: usize) {
    if n < 16 {
        w.buf.push(0x90 | n as u8);
    } else if n < 0x1_0000 {
        w.buf.push(0xdc);
        w.buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        w.buf.push(0xdd);
        w.buf.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn write_string_map(w: &mut Writer, m: &BTreeMap<String, String>) {
    w.map_len(m.len());
    for (k, v) in m {
        w.str(k);
        w.str(v);
    }
}

fn read_string_map(r: &mut Reader<'_>, field: &'static str) -> WResult<BTreeMap<String, String>> {
    let n = container_len(r, field, true)?;
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let k = r.string(field)?;
        let v = r.string(field)?;
        out.insert(k, v);
    }
    Ok(out)
}

/// Go's `time.Duration` is an int64 of nanoseconds.
fn duration_to_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn nanos_to_duration(n: i64) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(0))
}

// ---- messages ----

fn write_join(w: &mut Writer, j: &Join) {
    w.map_len(2);
    w.str("LTime");
    w.uint(j.ltime);
    w.str("Node");
    w.str(&j.node);
}

fn read_join(r: &mut Reader<'_>) -> WResult<Join> {
    let mut j = Join::default();
    r.decode_struct("messageJoin", &["LTime", "Node"], |i, r| {
        match i {
            0 => j.ltime = r.uint_field("LTime", U64)?,
            _ => j.node = r.string("Node")?,
        }
        Ok(())
    })?;
    Ok(j)
}

fn write_leave(w: &mut Writer, l: &Leave) {
    w.map_len(3);
    w.str("LTime");
    w.uint(l.ltime);
    w.str("Node");
    w.str(&l.node);
    w.str("Prune");
    w.bool(l.prune);
}

fn read_leave(r: &mut Reader<'_>) -> WResult<Leave> {
    let mut l = Leave::default();
    r.decode_struct("messageLeave", &["LTime", "Node", "Prune"], |i, r| {
        match i {
            0 => l.ltime = r.uint_field("LTime", U64)?,
            1 => l.node = r.string("Node")?,
            _ => l.prune = r.bool_field("Prune")?,
        }
        Ok(())
    })?;
    Ok(l)
}

fn write_user_event(w: &mut Writer, e: &UserEvent) {
    w.map_len(4);
    w.str("CC");
    w.bool(e.cc);
    w.str("LTime");
    w.uint(e.ltime);
    w.str("Name");
    w.str(&e.name);
    w.str("Payload");
    w.bytes(&e.payload);
}

fn read_user_event(r: &mut Reader<'_>) -> WResult<UserEvent> {
    let mut e = UserEvent::default();
    let fields = ["LTime", "Name", "Payload", "CC"];
    r.decode_struct("messageUserEvent", &fields, |i, r| {
        match i {
            0 => e.ltime = r.uint_field("LTime", U64)?,
            1 => e.name = r.string("Name")?,
            2 => e.payload = r.byte_field("Payload")?,
            _ => e.cc = r.bool_field("CC")?,
        }
        Ok(())
    })?;
    Ok(e)
}

fn write_user_events(w: &mut Writer, e: &UserEvents) {
    w.map_len(2);
    w.str("Events");
    array_len(w, e.events.len());
    for ev in &e.events {
        w.map_len(2);
        w.str("Name");
        w.str(&ev.name);
        w.str("Payload");
        w.bytes(&ev.payload);
    }
    w.str("LTime");
    w.uint(e.ltime);
}

fn read_user_events(r: &mut Reader<'_>) -> WResult<UserEvents> {
    let mut e = UserEvents::default();
    r.decode_struct("userEvents", &["LTime", "Events"], |i, r| {
        match i {
            0 => e.ltime = r.uint_field("LTime", U64)?,
            _ => {
                let n = container_len(r, "Events", false)?;
                e.events.clear();
                for _ in 0..n {
                    e.events.push(read_user_event_entry(r)?);
                }
            }
        }
        Ok(())
    })?;
    Ok(e)
}

fn read_user_event_entry(r: &mut Reader<'_>) -> WResult<UserEventEntry> {
    let mut ev = UserEventEntry::default();
    r.decode_struct("userEvent", &["Name", "Payload"], |i, r| {
        match i {
            0 => ev.name = r.string("Name")?,
            _ => ev.payload = r.byte_field("Payload")?,
        }
        Ok(())
    })?;
    Ok(ev)
}

fn write_push_pull(w: &mut Writer, p: &PushPull) {
    write_push_pull_parts(
        w,
        p.ltime,
        p.status_ltimes.iter().map(|(k, v)| (k.as_str(), *v)),
        &p.left_members,
        p.event_ltime,
        &p.events,
        p.query_ltime,
    );
}

/// `[type byte]messagePushPull` from borrowed parts (see [`super::encode_push_pull`]).
pub(super) fn encode_push_pull<'a>(
    ltime: LamportTime,
    status_ltimes: impl ExactSizeIterator<Item = (&'a str, LamportTime)>,
    left_members: &[&str],
    event_ltime: LamportTime,
    events: &[Option<UserEvents>],
    query_ltime: LamportTime,
) -> Vec<u8> {
    let mut w = Writer::default();
    // About a dozen bytes per member with short names, and one per empty event slot.
    w.buf
        .reserve(64 + status_ltimes.len() * 16 + events.len() + left_members.len() * 16);
    w.buf.push(MessageType::PushPull as u8);
    write_push_pull_parts(
        &mut w,
        ltime,
        status_ltimes,
        left_members,
        event_ltime,
        events,
        query_ltime,
    );
    w.into_inner()
}

/// `messagePushPull` from borrowed parts.
fn write_push_pull_parts<'a>(
    w: &mut Writer,
    ltime: LamportTime,
    status_ltimes: impl ExactSizeIterator<Item = (&'a str, LamportTime)>,
    left_members: &[impl AsRef<str>],
    event_ltime: LamportTime,
    events: &[Option<UserEvents>],
    query_ltime: LamportTime,
) {
    w.map_len(6);
    w.str("EventLTime");
    w.uint(event_ltime);
    w.str("Events");
    array_len(w, events.len());
    for slot in events {
        match slot {
            None => w.nil(),
            Some(e) => write_user_events(w, e),
        }
    }
    w.str("LTime");
    w.uint(ltime);
    w.str("LeftMembers");
    write_strings(w, left_members);
    w.str("QueryLTime");
    w.uint(query_ltime);
    w.str("StatusLTimes");
    w.map_len(status_ltimes.len());
    for (k, v) in status_ltimes {
        w.str(k);
        w.uint(v);
    }
}

fn read_push_pull(r: &mut Reader<'_>) -> WResult<PushPull> {
    let mut p = PushPull::default();
    let fields = [
        "LTime",
        "StatusLTimes",
        "LeftMembers",
        "EventLTime",
        "Events",
        "QueryLTime",
    ];
    r.decode_struct("messagePushPull", &fields, |i, r| {
        match i {
            0 => p.ltime = r.uint_field("LTime", U64)?,
            1 => {
                let n = container_len(r, "StatusLTimes", true)?;
                p.status_ltimes.clear();
                for _ in 0..n {
                    let k = r.string("StatusLTimes")?;
                    let v = r.uint_field("StatusLTimes", U64)?;
                    p.status_ltimes.insert(k, v);
                }
            }
            2 => p.left_members = read_strings(r, "LeftMembers")?,
            3 => p.event_ltime = r.uint_field("EventLTime", U64)?,
            4 => {
                let n = container_len(r, "Events", false)?;
                p.events.clear();
                for _ in 0..n {
                    let slot = if take_nil(r)? {
                        None
                    } else {
                        Some(read_user_events(r)?)
                    };
                    p.events.push(slot);
                }
            }
            _ => p.query_ltime = r.uint_field("QueryLTime", U64)?,
        }
        Ok(())
    })?;
    Ok(p)
}

fn write_query(w: &mut Writer, q: &Query) {
    w.map_len(11);
    w.str("Addr");
    w.bytes(&q.addr);
    w.str("Filters");
    if q.filters.is_empty() {
        // Go builds `Filters` by appending to a nil slice.
        w.nil();
    } else {
        array_len(w, q.filters.len());
        for f in &q.filters {
            w.raw(&encode_filter(f));
        }
    }
    w.str("Flags");
    w.uint(q.flags.into());
    w.str("ID");
    w.uint(q.id.into());
    w.str("LTime");
    w.uint(q.ltime);
    w.str("Name");
    w.str(&q.name);
    w.str("Payload");
    w.bytes(&q.payload);
    w.str("Port");
    w.uint(q.port.into());
    w.str("RelayFactor");
    w.uint(q.relay_factor.into());
    w.str("SourceNode");
    w.str(&q.source_node);
    w.str("Timeout");
    w.int(duration_to_nanos(q.timeout));
}

fn read_query(r: &mut Reader<'_>) -> WResult<Query> {
    let mut q = Query::default();
    let fields = [
        "LTime",
        "ID",
        "Addr",
        "Port",
        "SourceNode",
        "Filters",
        "Flags",
        "RelayFactor",
        "Timeout",
        "Name",
        "Payload",
    ];
    r.decode_struct("messageQuery", &fields, |i, r| {
        match i {
            0 => q.ltime = r.uint_field("LTime", U64)?,
            1 => q.id = r.uint_field("ID", U32)? as u32,
            2 => q.addr = r.byte_field("Addr")?,
            3 => q.port = r.uint_field("Port", U16)? as u16,
            4 => q.source_node = r.string("SourceNode")?,
            5 => {
                let n = container_len(r, "Filters", false)?;
                q.filters.clear();
                for _ in 0..n {
                    let raw = r.byte_field("Filters")?;
                    let f = decode_filter(&raw).unwrap_or(Filter::Undecodable(raw));
                    q.filters.push(f);
                }
            }
            6 => q.flags = r.uint_field("Flags", U32)? as u32,
            7 => q.relay_factor = r.uint_field("RelayFactor", U8)? as u8,
            8 => q.timeout = nanos_to_duration(r.int_field("Timeout")?),
            9 => q.name = r.string("Name")?,
            _ => q.payload = r.byte_field("Payload")?,
        }
        Ok(())
    })?;
    Ok(q)
}

fn write_query_response(w: &mut Writer, q: &QueryResponse) {
    w.map_len(5);
    w.str("Flags");
    w.uint(q.flags.into());
    w.str("From");
    w.str(&q.from);
    w.str("ID");
    w.uint(q.id.into());
    w.str("LTime");
    w.uint(q.ltime);
    w.str("Payload");
    w.bytes(&q.payload);
}

fn read_query_response(r: &mut Reader<'_>) -> WResult<QueryResponse> {
    let mut q = QueryResponse::default();
    let fields = ["LTime", "ID", "From", "Flags", "Payload"];
    r.decode_struct("messageQueryResponse", &fields, |i, r| {
        match i {
            0 => q.ltime = r.uint_field("LTime", U64)?,
            1 => q.id = r.uint_field("ID", U32)? as u32,
            2 => q.from = r.string("From")?,
            3 => q.flags = r.uint_field("Flags", U32)? as u32,
            _ => q.payload = r.byte_field("Payload")?,
        }
        Ok(())
    })?;
    Ok(q)
}

fn write_member(w: &mut Writer, m: &ConflictMember) {
    w.map_len(11);
    w.str("Addr");
    w.bytes(&m.addr);
    w.str("DelegateCur");
    w.uint(m.delegate_cur.into());
    w.str("DelegateMax");
    w.uint(m.delegate_max.into());
    w.str("DelegateMin");
    w.uint(m.delegate_min.into());
    w.str("Name");
    w.str(&m.name);
    w.str("Port");
    w.uint(m.port.into());
    w.str("ProtocolCur");
    w.uint(m.protocol_cur.into());
    w.str("ProtocolMax");
    w.uint(m.protocol_max.into());
    w.str("ProtocolMin");
    w.uint(m.protocol_min.into());
    w.str("Status");
    w.int(m.status);
    w.str("Tags");
    write_string_map(w, &m.tags);
}

fn read_member(r: &mut Reader<'_>) -> WResult<ConflictMember> {
    let mut m = ConflictMember::default();
    let fields = [
        "Name",
        "Addr",
        "Port",
        "Tags",
        "Status",
        "ProtocolMin",
        "ProtocolMax",
        "ProtocolCur",
        "DelegateMin",
        "DelegateMax",
        "DelegateCur",
    ];
    r.decode_struct("Member", &fields, |i, r| {
        match i {
            0 => m.name = r.string("Name")?,
            1 => m.addr = r.byte_field("Addr")?,
            2 => m.port = r.uint_field("Port", U16)? as u16,
            3 => m.tags = read_string_map(r, "Tags")?,
            4 => m.status = r.int_field("Status")?,
            5 => m.protocol_min = r.uint_field("ProtocolMin", U8)? as u8,
            6 => m.protocol_max = r.uint_field("ProtocolMax", U8)? as u8,
            7 => m.protocol_cur = r.uint_field("ProtocolCur", U8)? as u8,
            8 => m.delegate_min = r.uint_field("DelegateMin", U8)? as u8,
            9 => m.delegate_max = r.uint_field("DelegateMax", U8)? as u8,
            _ => m.delegate_cur = r.uint_field("DelegateCur", U8)? as u8,
        }
        Ok(())
    })?;
    Ok(m)
}

fn write_key_response(w: &mut Writer, k: &KeyResponse) {
    w.map_len(4);
    w.str("Keys");
    if k.keys.is_empty() {
        // Only list queries fill `Keys`; otherwise Go leaves it a nil slice.
        w.nil();
    } else {
        write_strings(w, &k.keys);
    }
    w.str("Message");
    w.str(&k.message);
    w.str("PrimaryKey");
    w.str(&k.primary_key);
    w.str("Result");
    w.bool(k.result);
}

fn read_key_response(r: &mut Reader<'_>) -> WResult<KeyResponse> {
    let mut k = KeyResponse::default();
    let fields = ["Result", "Message", "Keys", "PrimaryKey"];
    r.decode_struct("nodeKeyResponse", &fields, |i, r| {
        match i {
            0 => k.result = r.bool_field("Result")?,
            1 => k.message = r.string("Message")?,
            2 => k.keys = read_strings(r, "Keys")?,
            _ => k.primary_key = r.string("PrimaryKey")?,
        }
        Ok(())
    })?;
    Ok(k)
}

// ---- relay ----

pub(super) fn encode_relay(dest: SocketAddr, dest_name: &str, inner: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.buf.push(MessageType::Relay as u8);
    write_relay_header(&mut w, dest, dest_name);
    w.buf.extend_from_slice(inner);
    w.into_inner()
}

/// The bytes Go holds in a `net.IP` for this address. serf copies the query's `Addr`, which
/// is memberlist's advertise address in its 4-byte form for IPv4 (the real serf relays acks
/// to 127.0.0.1 as `IP: a4 7f 00 00 01`).
fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// A `net.IP` back into an address: 4 bytes, or 16 (v4-mapped ones become IPv4, as Go's
/// `IP.String` prints them).
pub(crate) fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?);
    Some(match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    })
}

/// `relayHeader{DestAddr net.UDPAddr{IP, Port, Zone}, DestName}`: go-msgpack encodes the
/// `net.UDPAddr` value by reflection like any struct (it has no `MarshalBinary`), the IP as
/// raw bytes and the port as a Go int.
fn write_relay_header(w: &mut Writer, dest: SocketAddr, dest_name: &str) {
    w.map_len(2);
    w.str("DestAddr");
    w.map_len(3);
    w.str("IP");
    w.bytes(&ip_bytes(dest.ip()));
    w.str("Port");
    w.int(dest.port().into());
    w.str("Zone");
    w.str("");
    w.str("DestName");
    w.str(dest_name);
}

fn read_relay_header(r: &mut Reader<'_>) -> Result<(SocketAddr, String)> {
    let mut ip = Vec::new();
    let mut port = 0i64;
    let mut name = String::new();
    r.decode_struct("relayHeader", &["DestAddr", "DestName"], |i, r| {
        match i {
            0 => r.decode_struct("net.UDPAddr", &["IP", "Port", "Zone"], |i, r| {
                match i {
                    0 => ip = r.byte_field("IP")?,
                    1 => port = r.int_field("Port")?,
                    // Go would append "%zone" to the address; the scope of a link-local
                    // relay target is not something we can name, so it is dropped.
                    _ => r.skip()?,
                }
                Ok(())
            })?,
            _ => name = r.string("DestName")?,
        }
        Ok(())
    })?;
    let ip = ip_from_bytes(&ip)
        .ok_or_else(|| Error::Malformed(format!("relay destination IP of {} bytes", ip.len())))?;
    let port = u16::try_from(port)
        .map_err(|_| Error::Malformed(format!("relay destination port {port}")))?;
    Ok((SocketAddr::new(ip, port), name))
}

// ---- filters and tags ----

pub(super) fn encode_filter(f: &Filter) -> Vec<u8> {
    let mut w = Writer::default();
    match f {
        Filter::Nodes(nodes) => {
            w.buf.push(FILTER_NODE_TYPE);
            write_strings(&mut w, nodes);
        }
        Filter::Tag { tag, expr } => {
            w.buf.push(FILTER_TAG_TYPE);
            w.map_len(2);
            w.str("Expr");
            w.str(expr);
            w.str("Tag");
            w.str(tag);
        }
        Filter::Undecodable(raw) => w.buf.extend_from_slice(raw),
    }
    w.into_inner()
}

pub(super) fn decode_filter(buf: &[u8]) -> Result<Filter> {
    let (&t, body) = buf
        .split_first()
        .ok_or_else(|| Error::Malformed("empty query filter".into()))?;
    let mut r = Reader::new(body);
    match t {
        FILTER_NODE_TYPE => Ok(Filter::Nodes(read_strings(&mut r, "filterNode")?)),
        FILTER_TAG_TYPE => {
            let (mut tag, mut expr) = (String::new(), String::new());
            r.decode_struct("filterTag", &["Tag", "Expr"], |i, r| {
                match i {
                    0 => tag = r.string("Tag")?,
                    _ => expr = r.string("Expr")?,
                }
                Ok(())
            })?;
            Ok(Filter::Tag { tag, expr })
        }
        other => Err(Error::Malformed(format!(
            "unknown query filter type {other}"
        ))),
    }
}

pub(super) fn encode_tags(tags: &BTreeMap<String, String>) -> Vec<u8> {
    let mut w = Writer::default();
    w.buf.push(TAG_MAGIC_BYTE);
    write_string_map(&mut w, tags);
    w.into_inner()
}

pub(super) fn decode_tags(meta: &[u8]) -> Result<BTreeMap<String, String>> {
    match meta.split_first() {
        Some((&TAG_MAGIC_BYTE, body)) => Ok(read_string_map(&mut Reader::new(body), "tags")?),
        _ => {
            // Go converts with string(buf), which keeps invalid UTF-8 bytes; we replace
            // them, since a Rust String cannot hold them.
            let role = String::from_utf8_lossy(meta).into_owned();
            Ok(BTreeMap::from([("role".to_string(), role)]))
        }
    }
}
