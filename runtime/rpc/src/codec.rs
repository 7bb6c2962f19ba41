//! The wire format of Serf's RPC protocol (IPC version 1): a stream of msgpack values with no
//! framing, each request a header map (`Command`, `Seq`) optionally followed by a body map,
//! each response a header map (`Seq`, `Error`) optionally followed by a body. Values are read
//! and written with the go-msgpack codec of `hearsay-swim` as [`Value`] trees; this module adds
//! incremental decoding from a byte buffer and typed access to the fields of a map.

use crate::error::{Error, Result};
pub use hearsay_swim::wire::msgpack::Value;
use hearsay_swim::wire::msgpack::{Reader, Writer};
use std::collections::BTreeMap;

/// The largest single msgpack value accepted from a peer. Serf's requests and records are
/// small (events and queries are capped far below this); the bound keeps a hostile client
/// from making the agent buffer without limit.
pub const MAX_VALUE_BYTES: usize = 4 * 1024 * 1024;

/// The largest `deploy` request body (the hearsay extension, see [`crate::HEARSAY_COMMANDS`])
/// an agent accepts: a WebAssembly module of up to 64 MiB with its signed record, with room
/// to spare. Only the body of `deploy` gets this bound, and only from a client that has
/// completed the handshake (and `auth`, when the agent has a key); every other value keeps
/// [`MAX_VALUE_BYTES`].
pub const MAX_DEPLOY_BYTES: usize = 128 * 1024 * 1024;

/// The largest request body a server accepts for `command` from a client that has completed
/// the handshake and any `auth`: [`MAX_DEPLOY_BYTES`] for `deploy`, [`MAX_VALUE_BYTES`] for
/// every other command.
pub fn max_body_bytes(command: &str) -> usize {
    if command == "deploy" {
        MAX_DEPLOY_BYTES
    } else {
        MAX_VALUE_BYTES
    }
}

/// Decodes one value from the front of `buf`: `Ok(None)` when more bytes are needed, else
/// the value and how many bytes it used. Malformed input, or a value larger than
/// [`MAX_VALUE_BYTES`], is [`Error::Protocol`].
pub fn decode_value(buf: &[u8]) -> Result<Option<(Value, usize)>> {
    decode_value_within(buf, MAX_VALUE_BYTES)
}

/// [`decode_value`] with a bound of `max` bytes on the value instead of [`MAX_VALUE_BYTES`].
/// A value is refused as soon as the lengths it announces show that it cannot fit, so a peer
/// is not buffered up to the bound first.
pub fn decode_value_within(buf: &[u8], max: usize) -> Result<Option<(Value, usize)>> {
    Ok(match decode_partial(buf, max)? {
        Decoded::Value(v, used) => Some((v, used)),
        Decoded::Needs(_) => None,
    })
}

/// The most values (containers and their elements) one request may hold: far above any
/// request Serf's clients send, and a bound on the tree a request decodes to (a body of
/// one-byte integers would otherwise cost some 32 bytes of tree per byte).
pub const MAX_VALUES: usize = 1 << 16;

/// What [`decode_partial`] made of a buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A whole value and the bytes it used.
    Value(Value, usize),
    /// The value is not complete: at least this many more bytes are needed, so decoding
    /// again before they arrived is wasted work.
    Needs(usize),
}

/// Decodes one value of at most `max` bytes and [`MAX_VALUES`] values from the front of
/// `buf`, or says how many more bytes it needs at least.
pub fn decode_partial(buf: &[u8], max: usize) -> Result<Decoded> {
    // Check completeness, size and element count with the allocation-free skip first: a
    // large value arriving in many reads is then scanned, not rebuilt as a tree, on every
    // read.
    let mut scan = Reader::new(buf);
    match scan.skip_at_most(MAX_VALUES) {
        Ok(()) if scan.position() > max => Err(too_large(max)),
        Ok(()) => {
            let mut r = Reader::new(buf);
            let v = r.value().map_err(malformed)?;
            Ok(Decoded::Value(v, r.position()))
        }
        Err(hearsay_swim::Error::Truncated { needed, .. }) => {
            // `needed` is a lower bound on what the value still lacks.
            if buf.len() >= max || needed > max - buf.len() {
                return Err(too_large(max));
            }
            Ok(Decoded::Needs(needed.max(1)))
        }
        Err(e) => Err(malformed(e)),
    }
}

fn malformed(e: hearsay_swim::Error) -> Error {
    Error::Protocol(format!("malformed msgpack: {e}"))
}

fn too_large(max: usize) -> Error {
    Error::Protocol(format!("message larger than {max} bytes"))
}

/// Appends the encoding of `v` to `out`.
pub fn encode_value(out: &mut Vec<u8>, v: &Value) {
    let mut w = Writer::new(std::mem::take(out));
    w.value(v);
    *out = w.into_inner();
}

/// Builds a struct-like map; go-msgpack writes a struct's fields sorted by name, so do we.
pub fn map(mut fields: Vec<(&str, Value)>) -> Value {
    fields.sort_by(|a, b| a.0.cmp(b.0));
    Value::Map(
        fields
            .into_iter()
            .map(|(k, v)| (Value::Raw(k.as_bytes().to_vec()), v))
            .collect(),
    )
}

/// A string value.
pub fn s(v: &str) -> Value {
    Value::Raw(v.as_bytes().to_vec())
}

/// A `map[string]string` value.
pub fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::Map(m.iter().map(|(k, v)| (s(k), s(v))).collect())
}

/// A `[]string` value.
pub fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().map(|x| s(x)).collect())
}

/// Typed, Go-tolerant access to a struct decoded as a map: a missing field or nil reads as
/// the zero value, as go-msgpack leaves it; a field of the wrong type is an error naming it.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pairs: &'a [(Value, Value)],
}

const EMPTY: &[(Value, Value)] = &[];

impl<'a> Fields<'a> {
    /// The fields of `v`, which must be a map or nil (`what` names the struct in errors).
    pub fn of(v: &'a Value, what: &str) -> Result<Self> {
        match v {
            Value::Map(pairs) => Ok(Self { pairs }),
            Value::Nil => Ok(Self { pairs: EMPTY }),
            other => Err(Error::Protocol(format!(
                "{what}: expected a map, found {}",
                kind(other)
            ))),
        }
    }

    /// The raw value of a field, if present.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.pairs
            .iter()
            .find(|(k, _)| matches!(k, Value::Raw(b) if b == name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// A string field (missing or nil: empty).
    pub fn str(&self, name: &str) -> Result<String> {
        self.get(name)
            .map_or(Ok(String::new()), |v| as_string(v, name))
    }

    /// A `[]byte` field, written as raw bytes or as an array of integers up to 255
    /// (missing or nil: empty).
    pub fn bytes(&self, name: &str) -> Result<Vec<u8>> {
        self.get(name).map_or(Ok(Vec::new()), |v| as_bytes(v, name))
    }

    /// A `[][]byte` field: an array whose items are read as [`Fields::bytes`] reads one
    /// (missing or nil: empty).
    pub fn byte_slices(&self, name: &str) -> Result<Vec<Vec<u8>>> {
        match self.get(name) {
            None | Some(Value::Nil) => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(|i| as_bytes(i, name)).collect(),
            Some(other) => Err(bad(name, "array of bytes", other)),
        }
    }

    /// An unsigned integer field (missing or nil: 0).
    pub fn uint(&self, name: &str) -> Result<u64> {
        match self.get(name) {
            None | Some(Value::Nil) => Ok(0),
            Some(Value::Uint(u)) => Ok(*u),
            Some(other) => Err(bad(name, "unsigned integer", other)),
        }
    }

    /// A signed integer field, in either msgpack integer form (missing or nil: 0); an
    /// unsigned value above `i64::MAX` is an error.
    pub fn int(&self, name: &str) -> Result<i64> {
        match self.get(name) {
            None | Some(Value::Nil) => Ok(0),
            Some(Value::Uint(u)) => {
                i64::try_from(*u).map_err(|_| bad(name, "int64", &Value::Uint(*u)))
            }
            Some(Value::Int(i)) => Ok(*i),
            Some(other) => Err(bad(name, "integer", other)),
        }
    }

    /// A float field; integers are converted (missing or nil: 0.0).
    pub fn float(&self, name: &str) -> Result<f64> {
        match self.get(name) {
            None | Some(Value::Nil) => Ok(0.0),
            Some(Value::Float(f)) => Ok(*f),
            Some(Value::Uint(u)) => Ok(*u as f64),
            Some(Value::Int(i)) => Ok(*i as f64),
            Some(other) => Err(bad(name, "float", other)),
        }
    }

    /// A bool field; the integers 0 and 1 are accepted too (missing or nil: false).
    pub fn bool(&self, name: &str) -> Result<bool> {
        match self.get(name) {
            None | Some(Value::Nil) | Some(Value::Uint(0)) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Uint(1)) => Ok(true),
            Some(other) => Err(bad(name, "bool", other)),
        }
    }

    /// A `[]string` field (missing or nil: empty).
    pub fn strings(&self, name: &str) -> Result<Vec<String>> {
        match self.get(name) {
            None | Some(Value::Nil) => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(|i| as_string(i, name)).collect(),
            Some(other) => Err(bad(name, "array of strings", other)),
        }
    }

    /// A `map[string]string` field (missing or nil: empty).
    pub fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>> {
        match self.get(name) {
            None | Some(Value::Nil) => Ok(BTreeMap::new()),
            Some(Value::Map(pairs)) => pairs
                .iter()
                .map(|(k, v)| Ok((as_string(k, name)?, as_string(v, name)?)))
                .collect(),
            Some(other) => Err(bad(name, "map of strings", other)),
        }
    }

    /// A `map[string]int` field (the key counts of `list-keys`).
    pub fn int_map(&self, name: &str) -> Result<BTreeMap<String, i64>> {
        match self.get(name) {
            None | Some(Value::Nil) => Ok(BTreeMap::new()),
            Some(Value::Map(pairs)) => pairs
                .iter()
                .map(|(k, v)| {
                    let n = match v {
                        Value::Uint(u) => *u as i64,
                        Value::Int(i) => *i,
                        other => return Err(bad(name, "integer", other)),
                    };
                    Ok((as_string(k, name)?, n))
                })
                .collect(),
            Some(other) => Err(bad(name, "map of integers", other)),
        }
    }
}

/// A string from a raw value (nil is empty).
pub(crate) fn as_string(v: &Value, field: &str) -> Result<String> {
    match v {
        Value::Nil => Ok(String::new()),
        Value::Raw(b) => String::from_utf8(b.clone())
            .map_err(|_| Error::Protocol(format!("field {field} is not valid UTF-8"))),
        other => Err(bad(field, "string", other)),
    }
}

/// Bytes from a raw value or an array of integers up to 255 (nil is empty).
pub(crate) fn as_bytes(v: &Value, field: &str) -> Result<Vec<u8>> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Raw(b) => Ok(b.clone()),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Uint(u) if *u <= 255 => Ok(*u as u8),
                _ => Err(bad(field, "bytes", i)),
            })
            .collect(),
        other => Err(bad(field, "bytes", other)),
    }
}

/// Takes a `[]byte` field out of a map without copying its bytes (the field is left nil),
/// with the rules of [`Fields::bytes`]; a value that is not a map reads as having no fields.
pub(crate) fn take_bytes(v: &mut Value, name: &str) -> Result<Vec<u8>> {
    let Value::Map(pairs) = v else {
        return Ok(Vec::new());
    };
    let Some((_, field)) = pairs
        .iter_mut()
        .find(|(k, _)| matches!(k, Value::Raw(b) if b == name.as_bytes()))
    else {
        return Ok(Vec::new());
    };
    match std::mem::replace(field, Value::Nil) {
        Value::Raw(b) => Ok(b),
        other => as_bytes(&other, name),
    }
}

/// A field of the wrong type, as [`Error::Protocol`] naming it.
pub(crate) fn bad(field: &str, want: &str, got: &Value) -> Error {
    Error::Protocol(format!(
        "field {field}: expected {want}, found {}",
        kind(got)
    ))
}

/// The msgpack type of a value, for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Bool(_) => "bool",
        Value::Uint(_) | Value::Int(_) => "integer",
        Value::Float(_) => "float",
        Value::Raw(_) => "string",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
    }
}

/// `requestHeader`: sent before each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// The command (`Command`), one of [`crate::COMMANDS`] or [`crate::HEARSAY_COMMANDS`].
    pub command: String,
    /// The sequence number (`Seq`) the client chose; the response carries it back.
    pub seq: u64,
}

impl RequestHeader {
    /// The header as a msgpack map.
    pub fn to_value(&self) -> Value {
        map(vec![
            ("Command", s(&self.command)),
            ("Seq", Value::Uint(self.seq)),
        ])
    }

    /// Reads a header from a decoded map; a field of the wrong type is [`Error::Protocol`].
    pub fn from_value(v: &Value) -> Result<Self> {
        let f = Fields::of(v, "request header")?;
        Ok(Self {
            command: f.str("Command")?,
            seq: f.uint("Seq")?,
        })
    }
}

/// `responseHeader`: sent before each response and each streamed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHeader {
    /// The sequence number (`Seq`) of the request this answers, or of the stream this
    /// record belongs to.
    pub seq: u64,
    /// Empty on success; else Serf's error string.
    pub error: String,
}

impl ResponseHeader {
    /// The header as a msgpack map.
    pub fn to_value(&self) -> Value {
        map(vec![
            ("Error", s(&self.error)),
            ("Seq", Value::Uint(self.seq)),
        ])
    }

    /// Reads a header from a decoded map; a field of the wrong type is [`Error::Protocol`].
    pub fn from_value(v: &Value) -> Result<Self> {
        let f = Fields::of(v, "response header")?;
        Ok(Self {
            seq: f.uint("Seq")?,
            error: f.str("Error")?,
        })
    }
}

/// Encodes a header and an optional body as one write.
pub fn frame(header: &Value, body: Option<&Value>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(&mut out, header);
    if let Some(b) = body {
        encode_value(&mut out, b);
    }
    out
}

/// A signed integer value in go-msgpack's form (non-negative ones unsigned).
pub fn int(i: i64) -> Value {
    if i >= 0 {
        Value::Uint(i as u64)
    } else {
        Value::Int(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let h = RequestHeader {
            command: "members-filtered".into(),
            seq: 300,
        };
        let bytes = frame(&h.to_value(), None);
        let (v, used) = decode_value(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(RequestHeader::from_value(&v).unwrap(), h);
        let r = ResponseHeader {
            seq: 7,
            error: "Handshake required".into(),
        };
        let (v, _) = decode_value(&frame(&r.to_value(), None)).unwrap().unwrap();
        assert_eq!(ResponseHeader::from_value(&v).unwrap(), r);
    }

    #[test]
    fn partial_input_asks_for_more_and_garbage_is_an_error() {
        let h = RequestHeader {
            command: "handshake".into(),
            seq: 1,
        };
        let bytes = frame(&h.to_value(), None);
        for cut in 0..bytes.len() {
            assert!(decode_value(&bytes[..cut]).unwrap().is_none(), "cut {cut}");
        }
        assert!(decode_value(&[0xc1]).is_err());
        let v = decode_value(&[0x05]).unwrap().unwrap().0;
        assert!(RequestHeader::from_value(&v).is_err());
    }

    #[test]
    fn fields_read_missing_as_zero_and_reject_wrong_types() {
        let v = map(vec![("Name", s("x")), ("Num", Value::Bool(true))]);
        let f = Fields::of(&v, "t").unwrap();
        assert_eq!(f.str("Name").unwrap(), "x");
        assert_eq!(f.uint("Missing").unwrap(), 0);
        assert!(f.uint("Num").is_err());
        assert!(f.str("Num").is_err());
        assert!(Fields::of(&Value::Uint(1), "t").is_err());
    }

    #[test]
    fn element_counts_are_bounded_before_a_tree_is_built() {
        // An array of 70 000 one-byte integers: refused, whole or still arriving.
        let mut body = vec![0xdd];
        body.extend_from_slice(&70_000u32.to_be_bytes());
        body.extend(std::iter::repeat_n(0u8, 70_000));
        for cut in [body.len(), 66_000] {
            let e = decode_partial(&body[..cut], MAX_DEPLOY_BYTES).unwrap_err();
            assert!(e.to_string().contains("more than 65536 values"), "{e}");
        }
        // A large bin still arriving says exactly how much it lacks.
        let mut bin = vec![0xc6];
        bin.extend_from_slice(&(1u32 << 20).to_be_bytes());
        bin.extend(std::iter::repeat_n(7u8, 1000));
        assert_eq!(
            decode_partial(&bin, MAX_DEPLOY_BYTES).unwrap(),
            Decoded::Needs((1 << 20) - 1000)
        );
    }

    #[test]
    fn bounds_refuse_values_as_soon_as_they_cannot_fit() {
        // A raw32 announcing 5 MiB, of which 3 bytes have arrived.
        let mut head = vec![0xdb];
        head.extend_from_slice(&(5u32 * 1024 * 1024).to_be_bytes());
        head.extend_from_slice(b"abc");
        assert!(matches!(decode_value(&head), Err(Error::Protocol(_))));
        assert!(decode_value_within(&head, MAX_DEPLOY_BYTES)
            .unwrap()
            .is_none());
        // A complete value over the bound is refused too.
        let mut bytes = Vec::new();
        encode_value(&mut bytes, &Value::Raw(vec![7; 100]));
        assert!(decode_value_within(&bytes, 50).is_err());
        let (v, used) = decode_value_within(&bytes, bytes.len()).unwrap().unwrap();
        assert_eq!((v, used), (Value::Raw(vec![7; 100]), bytes.len()));
        assert_eq!(max_body_bytes("deploy"), MAX_DEPLOY_BYTES);
        assert_eq!(max_body_bytes("event"), MAX_VALUE_BYTES);
        assert_eq!(max_body_bytes("deployments"), MAX_VALUE_BYTES);
    }

    #[test]
    fn byte_fields_are_taken_whole_and_listed() {
        let mut v = map(vec![
            ("A", Value::Raw(b"abc".to_vec())),
            ("B", Value::Array(vec![Value::Uint(1), Value::Uint(255)])),
            ("C", Value::Bool(true)),
            (
                "L",
                Value::Array(vec![Value::Raw(b"x".to_vec()), Value::Nil]),
            ),
        ]);
        let f = Fields::of(&v, "t").unwrap();
        assert_eq!(f.byte_slices("L").unwrap(), vec![b"x".to_vec(), Vec::new()]);
        assert_eq!(f.byte_slices("Missing").unwrap(), Vec::<Vec<u8>>::new());
        assert!(f.byte_slices("A").is_err());
        assert_eq!(take_bytes(&mut v, "A").unwrap(), b"abc");
        assert_eq!(take_bytes(&mut v, "B").unwrap(), [1, 255]);
        assert_eq!(take_bytes(&mut v, "Missing").unwrap(), b"");
        assert!(take_bytes(&mut v, "C").is_err());
        // Taken fields are left nil.
        assert_eq!(Fields::of(&v, "t").unwrap().get("A"), Some(&Value::Nil));
    }
}
