//! Message bodies: each memberlist struct to and from go-msgpack's map encoding, plus the
//! one-message `[type byte][body]` framing.
//!
//! Keys are written in bytewise-sorted order because go-msgpack encodes a struct from its
//! name-sorted field list; `omitempty` fields (`SourceAddr`, `SourcePort`, `SourceNode`) are
//! left out when zero, which also shrinks the map length. Decoders take fields in
//! declaration order (the order go-msgpack uses for the array form).

use super::msgpack::{Reader, Writer};
use super::types::*;
use crate::error::{Error, Result};

/// memberlist's `maxPushStateNodes` (upstream): the most node states one push/pull may announce.
pub const MAX_PUSH_STATE_NODES: usize = 1024 * 1024;

const U16: u64 = u16::MAX as u64;
const U32: u64 = u32::MAX as u64;

/// Encodes one message as `[type byte][msgpack body]`.
pub(crate) fn encode_message(msg: &Message) -> Vec<u8> {
    let mut w = Writer::default();
    match msg {
        Message::Ping(p) => {
            w.buf.push(MessageType::Ping as u8);
            write_ping(&mut w, p);
        }
        Message::IndirectPing(p) => {
            w.buf.push(MessageType::IndirectPing as u8);
            write_indirect_ping(&mut w, p);
        }
        Message::Ack(a) => {
            w.buf.push(MessageType::AckResp as u8);
            write_ack(&mut w, a);
        }
        Message::Nack(n) => {
            w.buf.push(MessageType::NackResp as u8);
            w.map_len(1);
            w.str("SeqNo");
            w.uint(n.seq_no.into());
        }
        Message::Suspect(s) => {
            w.buf.push(MessageType::Suspect as u8);
            write_incarnation_msg(&mut w, &s.from, s.incarnation, &s.node);
        }
        Message::Alive(a) => {
            w.buf.push(MessageType::Alive as u8);
            write_alive(&mut w, a);
        }
        Message::Dead(d) => {
            w.buf.push(MessageType::Dead as u8);
            write_incarnation_msg(&mut w, &d.from, d.incarnation, &d.node);
        }
        Message::User(b) => {
            w.buf.reserve(1 + b.len());
            w.buf.push(MessageType::User as u8);
            w.buf.extend_from_slice(b);
        }
        Message::Err(e) => {
            w.buf.push(MessageType::Err as u8);
            write_err(&mut w, e);
        }
    }
    w.into_inner()
}

/// Decodes one `[type byte][body]` message. Like go-msgpack's `Decode`, bytes after the body
/// are ignored.
pub(crate) fn decode_message(buf: &[u8]) -> Result<Message> {
    let (&ty, body) = buf.split_first().ok_or(Error::Truncated {
        what: "message type byte",
        needed: 1,
    })?;
    let mut r = Reader::new(body);
    let r = &mut r;
    Ok(match MessageType::from_u8(ty) {
        Some(MessageType::Ping) => Message::Ping(read_ping(r)?),
        Some(MessageType::IndirectPing) => Message::IndirectPing(read_indirect_ping(r)?),
        Some(MessageType::AckResp) => Message::Ack(read_ack(r)?),
        Some(MessageType::NackResp) => {
            let mut n = Nack::default();
            r.decode_struct("nackResp", &["SeqNo"], |_, r| {
                n.seq_no = r.uint_field("SeqNo", U32)? as u32;
                Ok(())
            })?;
            Message::Nack(n)
        }
        Some(MessageType::Suspect) => {
            let (incarnation, node, from) = read_incarnation_msg(r, "suspect")?;
            Message::Suspect(Suspect {
                incarnation,
                node,
                from,
            })
        }
        Some(MessageType::Alive) => Message::Alive(read_alive(r)?),
        Some(MessageType::Dead) => {
            let (incarnation, node, from) = read_incarnation_msg(r, "dead")?;
            Message::Dead(Dead {
                incarnation,
                node,
                from,
            })
        }
        Some(MessageType::User) => Message::User(body.to_vec()),
        Some(MessageType::Err) => Message::Err(read_err(r)?),
        _ => return Err(Error::UnknownMessageType(ty)),
    })
}

pub(crate) fn write_ping(w: &mut Writer, p: &Ping) {
    let addr = !p.source_addr.is_empty();
    let port = p.source_port != 0;
    let node = !p.source_node.is_empty();
    w.map_len(2 + usize::from(addr) + usize::from(port) + usize::from(node));
    w.str("Node");
    w.str(&p.node);
    w.str("SeqNo");
    w.uint(p.seq_no.into());
    write_source(w, &p.source_addr, p.source_port, &p.source_node);
}

/// The three `omitempty` source fields shared by `ping` and `indirectPingReq`, in sorted order.
fn write_source(w: &mut Writer, addr: &[u8], port: u16, node: &str) {
    if !addr.is_empty() {
        w.str("SourceAddr");
        w.raw(addr);
    }
    if !node.is_empty() {
        w.str("SourceNode");
        w.str(node);
    }
    if port != 0 {
        w.str("SourcePort");
        w.uint(port.into());
    }
}

pub(crate) fn read_ping(r: &mut Reader<'_>) -> Result<Ping> {
    let mut p = Ping::default();
    let fields = ["SeqNo", "Node", "SourceAddr", "SourcePort", "SourceNode"];
    r.decode_struct("ping", &fields, |i, r| {
        match i {
            0 => p.seq_no = r.uint_field("SeqNo", U32)? as u32,
            1 => p.node = r.string("Node")?,
            2 => p.source_addr = r.byte_field("SourceAddr")?,
            3 => p.source_port = r.uint_field("SourcePort", U16)? as u16,
            _ => p.source_node = r.string("SourceNode")?,
        }
        Ok(())
    })?;
    Ok(p)
}

fn write_indirect_ping(w: &mut Writer, p: &IndirectPing) {
    let addr = !p.source_addr.is_empty();
    let port = p.source_port != 0;
    let node = !p.source_node.is_empty();
    w.map_len(5 + usize::from(addr) + usize::from(port) + usize::from(node));
    w.str("Nack");
    w.bool(p.nack);
    w.str("Node");
    w.str(&p.node);
    w.str("Port");
    w.uint(p.port.into());
    w.str("SeqNo");
    w.uint(p.seq_no.into());
    write_source(w, &p.source_addr, p.source_port, &p.source_node);
    w.str("Target");
    w.bytes(&p.target);
}

fn read_indirect_ping(r: &mut Reader<'_>) -> Result<IndirectPing> {
    let mut p = IndirectPing::default();
    let fields = [
        "SeqNo",
        "Target",
        "Port",
        "Node",
        "Nack",
        "SourceAddr",
        "SourcePort",
        "SourceNode",
    ];
    r.decode_struct("indirectPingReq", &fields, |i, r| {
        match i {
            0 => p.seq_no = r.uint_field("SeqNo", U32)? as u32,
            1 => p.target = r.byte_field("Target")?,
            2 => p.port = r.uint_field("Port", U16)? as u16,
            3 => p.node = r.string("Node")?,
            4 => p.nack = r.bool_field("Nack")?,
            5 => p.source_addr = r.byte_field("SourceAddr")?,
            6 => p.source_port = r.uint_field("SourcePort", U16)? as u16,
            _ => p.source_node = r.string("SourceNode")?,
        }
        Ok(())
    })?;
    Ok(p)
}

pub(crate) fn write_ack(w: &mut Writer, a: &Ack) {
    w.map_len(2);
    w.str("Payload");
    w.bytes(&a.payload);
    w.str("SeqNo");
    w.uint(a.seq_no.into());
}

pub(crate) fn read_ack(r: &mut Reader<'_>) -> Result<Ack> {
    let mut a = Ack::default();
    r.decode_struct("ackResp", &["SeqNo", "Payload"], |i, r| {
        match i {
            0 => a.seq_no = r.uint_field("SeqNo", U32)? as u32,
            _ => a.payload = r.byte_field("Payload")?,
        }
        Ok(())
    })?;
    Ok(a)
}

pub(crate) fn write_err(w: &mut Writer, e: &ErrResp) {
    w.map_len(1);
    w.str("Error");
    w.str(&e.error);
}

pub(crate) fn read_err(r: &mut Reader<'_>) -> Result<ErrResp> {
    let mut e = ErrResp::default();
    r.decode_struct("errResp", &["Error"], |_, r| {
        e.error = r.string("Error")?;
        Ok(())
    })?;
    Ok(e)
}

/// `suspect` and `dead` share one shape: `{From, Incarnation, Node}` sorted.
fn write_incarnation_msg(w: &mut Writer, from: &str, incarnation: u32, node: &str) {
    w.map_len(3);
    w.str("From");
    w.str(from);
    w.str("Incarnation");
    w.uint(incarnation.into());
    w.str("Node");
    w.str(node);
}

fn read_incarnation_msg(r: &mut Reader<'_>, what: &'static str) -> Result<(u32, String, String)> {
    let (mut inc, mut node, mut from) = (0, String::new(), String::new());
    r.decode_struct(what, &["Incarnation", "Node", "From"], |i, r| {
        match i {
            0 => inc = r.uint_field("Incarnation", U32)? as u32,
            1 => node = r.string("Node")?,
            _ => from = r.string("From")?,
        }
        Ok(())
    })?;
    Ok((inc, node, from))
}

fn write_alive(w: &mut Writer, a: &Alive) {
    w.map_len(6);
    w.str("Addr");
    w.bytes(&a.addr);
    w.str("Incarnation");
    w.uint(a.incarnation.into());
    w.str("Meta");
    w.bytes(&a.meta);
    w.str("Node");
    w.str(&a.node);
    w.str("Port");
    w.uint(a.port.into());
    w.str("Vsn");
    w.bytes(&a.vsn);
}

fn read_alive(r: &mut Reader<'_>) -> Result<Alive> {
    let mut a = Alive::default();
    let fields = ["Incarnation", "Node", "Addr", "Port", "Meta", "Vsn"];
    r.decode_struct("alive", &fields, |i, r| {
        match i {
            0 => a.incarnation = r.uint_field("Incarnation", U32)? as u32,
            1 => a.node = r.string("Node")?,
            2 => a.addr = r.byte_field("Addr")?,
            3 => a.port = r.uint_field("Port", U16)? as u16,
            4 => a.meta = r.byte_field("Meta")?,
            _ => a.vsn = r.byte_field("Vsn")?,
        }
        Ok(())
    })?;
    Ok(a)
}

/// `pushNodeState`, written as the standalone value it is on the stream, from borrowed fields
/// (a push/pull names every member: no copy of each).
pub(crate) fn write_push_node_ref(w: &mut Writer, n: &PushNodeRef<'_>) {
    w.map_len(7);
    w.str("Addr");
    w.bytes(n.addr);
    w.str("Incarnation");
    w.uint(n.incarnation.into());
    w.str("Meta");
    w.bytes(n.meta);
    w.str("Name");
    w.str(n.name);
    w.str("Port");
    w.uint(n.port.into());
    w.str("State");
    // NodeStateType is a Go int; non-negative ints are written as unsigned.
    w.uint(n.state as u64);
    w.str("Vsn");
    w.bytes(n.vsn);
}

pub(crate) fn read_push_node_state(r: &mut Reader<'_>) -> Result<PushNodeState> {
    let mut n = PushNodeState {
        name: String::new(),
        addr: Vec::new(),
        port: 0,
        meta: Vec::new(),
        incarnation: 0,
        state: NodeStateKind::Alive,
        vsn: Vec::new(),
    };
    let fields = [
        "Name",
        "Addr",
        "Port",
        "Meta",
        "Incarnation",
        "State",
        "Vsn",
    ];
    r.decode_struct("pushNodeState", &fields, |i, r| {
        match i {
            0 => n.name = r.string("Name")?,
            1 => n.addr = r.byte_field("Addr")?,
            2 => n.port = r.uint_field("Port", U16)? as u16,
            3 => n.meta = r.byte_field("Meta")?,
            4 => n.incarnation = r.uint_field("Incarnation", U32)? as u32,
            5 => {
                let v = r.int_field("State")?;
                // Go would accept any int here; an unknown state has no meaning to us.
                n.state = NodeStateKind::from_i64(v)
                    .ok_or_else(|| Error::Msgpack(format!("field State: unknown state {v}")))?;
            }
            _ => n.vsn = r.byte_field("Vsn")?,
        }
        Ok(())
    })?;
    Ok(n)
}

/// `pushPullHeader{Nodes, UserStateLen, Join}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PushPullHeader {
    pub nodes: usize,
    pub user_state_len: usize,
    pub join: bool,
}

pub(crate) fn write_push_pull_header(w: &mut Writer, h: &PushPullHeader) {
    w.map_len(3);
    w.str("Join");
    w.bool(h.join);
    w.str("Nodes");
    w.uint(h.nodes as u64);
    w.str("UserStateLen");
    w.uint(h.user_state_len as u64);
}

/// Reads the header and applies upstream memberlist's limits before anything is allocated.
pub(crate) fn read_push_pull_header(r: &mut Reader<'_>) -> Result<PushPullHeader> {
    let (mut nodes, mut user, mut join) = (0i64, 0i64, false);
    r.decode_struct(
        "pushPullHeader",
        &["Nodes", "UserStateLen", "Join"],
        |i, r| {
            match i {
                0 => nodes = r.int_field("Nodes")?,
                1 => user = r.int_field("UserStateLen")?,
                _ => join = r.bool_field("Join")?,
            }
            Ok(())
        },
    )?;
    Ok(PushPullHeader {
        nodes: limit("push/pull node count", nodes, MAX_PUSH_STATE_NODES)?,
        user_state_len: limit("push/pull user state", user, super::MAX_STREAM_BYTES)?,
        join,
    })
}

pub(crate) fn write_user_msg_header(w: &mut Writer, len: usize) {
    w.map_len(1);
    w.str("UserMsgLen");
    w.uint(len as u64);
}

pub(crate) fn read_user_msg_header(r: &mut Reader<'_>) -> Result<usize> {
    let mut len = 0i64;
    r.decode_struct("userMsgHeader", &["UserMsgLen"], |_, r| {
        len = r.int_field("UserMsgLen")?;
        Ok(())
    })?;
    limit("stream user message", len, super::MAX_STREAM_BYTES)
}

/// A Go `int` length from the wire: negative is malformed, above `max` is refused.
fn limit(what: &'static str, v: i64, max: usize) -> Result<usize> {
    let n = usize::try_from(v).map_err(|_| Error::Msgpack(format!("{what}: negative ({v})")))?;
    if n > max {
        return Err(Error::TooLarge {
            what,
            len: n,
            limit: max,
        });
    }
    Ok(n)
}

/// `compress{Algo, Buf}`: the LZW envelope's body.
pub(crate) fn write_compress(w: &mut Writer, buf: &[u8]) {
    w.map_len(2);
    w.str("Algo");
    w.uint(0); // lzwAlgo
    w.str("Buf");
    w.bytes(buf);
}

/// Returns the still-compressed buffer after checking the algorithm is LZW.
pub(crate) fn read_compress(r: &mut Reader<'_>) -> Result<Vec<u8>> {
    let (mut algo, mut buf) = (0i64, Vec::new());
    r.decode_struct("compress", &["Algo", "Buf"], |i, r| {
        match i {
            0 => algo = r.int_field("Algo")?,
            _ => buf = r.byte_field("Buf")?,
        }
        Ok(())
    })?;
    if algo != 0 {
        return Err(Error::UnknownCompression(algo));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds expected bytes from readable pieces: a `&str` is a fixstr, bytes are literal.
    fn fs(s: &str) -> Vec<u8> {
        assert!(s.len() < 32);
        let mut v = vec![0xa0 | s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn golden_ping_minimal() {
        // Go: encode(pingMsg, &ping{SeqNo: 1, Node: "a"}) — the omitempty source fields vanish.
        let msg = Message::Ping(Ping {
            seq_no: 1,
            node: "a".into(),
            ..Default::default()
        });
        let want = cat(&[&[0x00, 0x82], &fs("Node"), &fs("a"), &fs("SeqNo"), &[0x01]]);
        assert_eq!(encode_message(&msg), want);
        assert_eq!(decode_message(&want), Ok(msg));
    }

    #[test]
    fn golden_ping_with_source() {
        let msg = Message::Ping(Ping {
            seq_no: 300,
            node: "b".into(),
            source_addr: vec![10, 0, 0, 1],
            source_port: 7946,
            source_node: "me".into(),
        });
        let want = cat(&[
            &[0x00, 0x85],
            &fs("Node"),
            &fs("b"),
            &fs("SeqNo"),
            &[0xcd, 0x01, 0x2c],
            &fs("SourceAddr"),
            &[0xa4, 10, 0, 0, 1],
            &fs("SourceNode"),
            &fs("me"),
            &fs("SourcePort"),
            &[0xcd, 0x1f, 0x0a],
        ]);
        assert_eq!(encode_message(&msg), want);
        assert_eq!(decode_message(&want), Ok(msg));
    }

    #[test]
    fn golden_indirect_ping() {
        let msg = Message::IndirectPing(IndirectPing {
            seq_no: 7,
            target: vec![127, 0, 0, 1],
            port: 7946,
            node: "t".into(),
            nack: true,
            ..Default::default()
        });
        let want = cat(&[
            &[0x01, 0x85],
            &fs("Nack"),
            &[0xc3],
            &fs("Node"),
            &fs("t"),
            &fs("Port"),
            &[0xcd, 0x1f, 0x0a],
            &fs("SeqNo"),
            &[0x07],
            &fs("Target"),
            &[0xa4, 127, 0, 0, 1],
        ]);
        assert_eq!(encode_message(&msg), want);
        assert_eq!(decode_message(&want), Ok(msg));
    }

    #[test]
    fn golden_ack_nack_err() {
        // A nil Payload (Go's TCP ping reply) is msgpack nil.
        let ack = Message::Ack(Ack {
            seq_no: 9,
            payload: vec![],
        });
        let want = cat(&[
            &[0x02, 0x82],
            &fs("Payload"),
            &[0xc0],
            &fs("SeqNo"),
            &[0x09],
        ]);
        assert_eq!(encode_message(&ack), want);
        assert_eq!(decode_message(&want), Ok(ack));

        let ack = Message::Ack(Ack {
            seq_no: 70_000,
            payload: vec![1, 2],
        });
        let want = cat(&[
            &[0x02, 0x82],
            &fs("Payload"),
            &[0xa2, 1, 2],
            &fs("SeqNo"),
            &[0xce, 0, 1, 0x11, 0x70],
        ]);
        assert_eq!(encode_message(&ack), want);

        let nack = Message::Nack(Nack { seq_no: 128 });
        let want = cat(&[&[0x0b, 0x81], &fs("SeqNo"), &[0xcc, 0x80]]);
        assert_eq!(encode_message(&nack), want);
        assert_eq!(decode_message(&want), Ok(nack));

        let err = Message::Err(ErrResp {
            error: "boom".into(),
        });
        let want = cat(&[&[0x0d, 0x81], &fs("Error"), &fs("boom")]);
        assert_eq!(encode_message(&err), want);
        assert_eq!(decode_message(&want), Ok(err));
    }

    #[test]
    fn golden_suspect_dead() {
        let s = Message::Suspect(Suspect {
            incarnation: 3,
            node: "n".into(),
            from: "f".into(),
        });
        let body = cat(&[
            &[0x83],
            &fs("From"),
            &fs("f"),
            &fs("Incarnation"),
            &[0x03],
            &fs("Node"),
            &fs("n"),
        ]);
        assert_eq!(encode_message(&s), cat(&[&[0x03], &body]));
        assert_eq!(decode_message(&cat(&[&[0x03], &body])), Ok(s));
        let d = Message::Dead(Dead {
            incarnation: 3,
            node: "n".into(),
            from: "f".into(),
        });
        assert_eq!(encode_message(&d), cat(&[&[0x05], &body]));
    }

    #[test]
    fn golden_alive() {
        let a = Message::Alive(Alive {
            incarnation: 1,
            node: "node1".into(),
            addr: vec![192, 168, 0, 1],
            port: 7946,
            meta: vec![],
            vsn: vec![1, 5, 2, 2, 5, 4],
        });
        let want = cat(&[
            &[0x04, 0x86],
            &fs("Addr"),
            &[0xa4, 192, 168, 0, 1],
            &fs("Incarnation"),
            &[0x01],
            &fs("Meta"),
            &[0xc0],
            &fs("Node"),
            &fs("node1"),
            &fs("Port"),
            &[0xcd, 0x1f, 0x0a],
            &fs("Vsn"),
            &[0xa6, 1, 5, 2, 2, 5, 4],
        ]);
        assert_eq!(encode_message(&a), want);
        assert_eq!(decode_message(&want), Ok(a));
    }

    #[test]
    fn golden_user() {
        let u = Message::User(vec![0xde, 0xad]);
        assert_eq!(encode_message(&u), [0x08, 0xde, 0xad]);
        assert_eq!(decode_message(&[0x08, 0xde, 0xad]), Ok(u));
        assert_eq!(decode_message(&[0x08]), Ok(Message::User(vec![])));
    }

    #[test]
    fn golden_push_pull_header_and_node_state() {
        let mut w = Writer::default();
        write_push_pull_header(
            &mut w,
            &PushPullHeader {
                nodes: 2,
                user_state_len: 300,
                join: true,
            },
        );
        let want = cat(&[
            &[0x83],
            &fs("Join"),
            &[0xc3],
            &fs("Nodes"),
            &[0x02],
            &fs("UserStateLen"),
            &[0xcd, 0x01, 0x2c],
        ]);
        assert_eq!(w.buf, want);

        let mut w = Writer::default();
        let n = PushNodeState {
            name: "x".into(),
            addr: vec![1, 2, 3, 4],
            port: 1,
            meta: vec![9],
            incarnation: 2,
            state: NodeStateKind::Dead,
            vsn: vec![1, 5, 5, 2, 5, 5],
        };
        write_push_node_ref(&mut w, &PushNodeRef::from(&n));
        let want = cat(&[
            &[0x87],
            &fs("Addr"),
            &[0xa4, 1, 2, 3, 4],
            &fs("Incarnation"),
            &[0x02],
            &fs("Meta"),
            &[0xa1, 9],
            &fs("Name"),
            &fs("x"),
            &fs("Port"),
            &[0x01],
            &fs("State"),
            &[0x02],
            &fs("Vsn"),
            &[0xa6, 1, 5, 5, 2, 5, 5],
        ]);
        assert_eq!(w.buf, want);
        assert_eq!(read_push_node_state(&mut Reader::new(&want)), Ok(n));
    }

    #[test]
    fn golden_compress_and_user_header() {
        let mut w = Writer::default();
        write_compress(&mut w, &[1, 2, 3]);
        let want = cat(&[&[0x82], &fs("Algo"), &[0x00], &fs("Buf"), &[0xa3, 1, 2, 3]]);
        assert_eq!(w.buf, want);
        let mut w = Writer::default();
        write_user_msg_header(&mut w, 5);
        assert_eq!(w.buf, cat(&[&[0x81], &fs("UserMsgLen"), &[0x05]]));
    }

    #[test]
    fn decodes_alternative_encodings() {
        // str8 keys and values, bin8 addr, int8/uint64 integers, an unknown nested key,
        // and fields in unsorted order.
        let mut v = vec![0x00, 0x84];
        v.extend_from_slice(&[0xd9, 5]);
        v.extend_from_slice(b"SeqNo");
        v.extend_from_slice(&[0xcf, 0, 0, 0, 0, 0, 0, 0, 5]);
        v.extend_from_slice(&fs("Extra"));
        v.extend_from_slice(&[0x91, 0x81, 0xa1, b'k', 0x92, 0xc0, 0xc2]);
        v.extend_from_slice(&fs("SourceAddr"));
        v.extend_from_slice(&[0xc4, 4, 1, 1, 1, 1]);
        v.extend_from_slice(&fs("Node"));
        v.extend_from_slice(&[0xd9, 2, b'n', b'1']);
        let want = Message::Ping(Ping {
            seq_no: 5,
            node: "n1".into(),
            source_addr: vec![1, 1, 1, 1],
            ..Default::default()
        });
        assert_eq!(decode_message(&v), Ok(want));
    }

    #[test]
    fn keys_match_case_sensitively() {
        // go-msgpack's indexForEncName compares exactly; "seqno" is an unknown key.
        let v = cat(&[&[0x0b, 0x81], &fs("seqno"), &[0x05]]);
        assert_eq!(decode_message(&v), Ok(Message::Nack(Nack { seq_no: 0 })));
    }

    #[test]
    fn decodes_struct_as_array() {
        // go-msgpack also decodes a struct from an array, in declaration order.
        let v = [0x03, 0x93, 0x07, 0xa1, b'n', 0xa1, b'f', 0xc0];
        assert_eq!(
            decode_message(&v),
            Ok(Message::Suspect(Suspect {
                incarnation: 7,
                node: "n".into(),
                from: "f".into()
            }))
        );
    }

    #[test]
    fn nil_struct_and_nil_fields_are_zero() {
        assert_eq!(
            decode_message(&[0x02, 0xc0]),
            Ok(Message::Ack(Ack::default()))
        );
        let v = cat(&[
            &[0x02, 0x82],
            &fs("SeqNo"),
            &[0xc0],
            &fs("Payload"),
            &[0xc0],
        ]);
        assert_eq!(decode_message(&v), Ok(Message::Ack(Ack::default())));
    }

    #[test]
    fn rejects_wrong_types_and_overflow() {
        let v = cat(&[&[0x0b, 0x81], &fs("SeqNo"), &[0xcf, 0, 0, 0, 1, 0, 0, 0, 0]]);
        assert!(matches!(decode_message(&v), Err(Error::Msgpack(_))));
        let v = cat(&[&[0x0b, 0x81], &fs("SeqNo"), &fs("x")]);
        assert!(matches!(decode_message(&v), Err(Error::Msgpack(_))));
        assert_eq!(
            decode_message(&[0x06, 0x80]),
            Err(Error::UnknownMessageType(6))
        );
        assert_eq!(
            decode_message(&[0x63]),
            Err(Error::UnknownMessageType(0x63))
        );
        assert!(matches!(decode_message(&[]), Err(Error::Truncated { .. })));
        assert!(matches!(
            decode_message(&[0x00, 0x82, 0xa4, b'N']),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            decode_message(&[0x00, 0x05]),
            Err(Error::Msgpack(_))
        ));
    }

    #[test]
    fn push_pull_header_limits() {
        let mut w = Writer::default();
        w.map_len(1);
        w.str("Nodes");
        w.int(-1);
        assert!(matches!(
            read_push_pull_header(&mut Reader::new(&w.buf)),
            Err(Error::Msgpack(_))
        ));
        let mut w = Writer::default();
        w.map_len(1);
        w.str("UserStateLen");
        w.uint(u32::MAX.into());
        assert!(matches!(
            read_push_pull_header(&mut Reader::new(&w.buf)),
            Err(Error::TooLarge { .. })
        ));
    }
}
