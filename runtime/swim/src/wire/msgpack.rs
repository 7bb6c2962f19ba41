//! The subset of msgpack that memberlist uses, written the way HashiCorp's go-msgpack writes
//! it and read the way its decoder reads it (but more liberally, and without panics).
//!
//! Writing follows go-msgpack with a default `MsgpackHandle{}` (`WriteExt == false`): strings
//! and byte slices both use the old-spec "raw" family (fixstr, `0xda`, `0xdb`; never `0xd9`
//! or bin), non-negative integers use the smallest unsigned form, and structs are maps whose
//! keys are the Go field names sorted bytewise (go-msgpack's `sfi` list is sorted by name).
//!
//! Reading accepts every integer form for any integer field (range-checked), str8/16/32,
//! fixstr and bin8/16/32 for both string and byte fields, an array of small integers for a
//! byte field (go-msgpack decodes `[]uint8` from an array too), float32, float64 or any
//! integer for a float field (as `decodeFloat` does), nil as the zero value, and
//! structs given either as maps (keys matched exactly, as `indexForEncName` does; unknown keys
//! skipped) or as arrays (fields by declaration order). Every length is checked against the
//! bytes present before anything is allocated.

use crate::error::{Error, Result};

/// How deep [`Reader::skip`] follows nested maps and arrays before giving up.
pub const MAX_SKIP_DEPTH: usize = 32;

/// Appends msgpack values to a byte vector.
#[derive(Debug, Default)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// A writer appending to `buf`.
    pub fn new(buf: Vec<u8>) -> Self {
        Self { buf }
    }

    /// The encoded bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    /// `nil` (`0xc0`).
    pub fn nil(&mut self) {
        self.buf.push(0xc0);
    }

    /// `true`/`false`.
    pub fn bool(&mut self, v: bool) {
        self.buf.push(if v { 0xc3 } else { 0xc2 });
    }

    /// An unsigned integer in the smallest form (`encodeUint`).
    pub fn uint(&mut self, v: u64) {
        match v {
            0..=0x7f => self.buf.push(v as u8),
            0x80..=0xff => self.buf.extend_from_slice(&[0xcc, v as u8]),
            0x100..=0xffff => {
                self.buf.push(0xcd);
                self.buf.extend_from_slice(&(v as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.buf.push(0xce);
                self.buf.extend_from_slice(&(v as u32).to_be_bytes());
            }
            _ => {
                self.buf.push(0xcf);
                self.buf.extend_from_slice(&v.to_be_bytes());
            }
        }
    }

    /// A signed integer (`encodeInt`): non-negative values are written as unsigned.
    pub fn int(&mut self, v: i64) {
        if v >= 0 {
            return self.uint(v as u64);
        }
        match v {
            -32..=-1 => self.buf.push(v as u8),
            -128..=-33 => self.buf.extend_from_slice(&[0xd0, v as u8]),
            -32768..=-129 => {
                self.buf.push(0xd1);
                self.buf.extend_from_slice(&(v as i16).to_be_bytes());
            }
            -2_147_483_648..=-32769 => {
                self.buf.push(0xd2);
                self.buf.extend_from_slice(&(v as i32).to_be_bytes());
            }
            _ => {
                self.buf.push(0xd3);
                self.buf.extend_from_slice(&v.to_be_bytes());
            }
        }
    }

    /// A map header for `n` pairs (fixmap, `0xde`, `0xdf`).
    pub fn map_len(&mut self, n: usize) {
        self.container_len(n, 0x80, 16, 0xde, 0xdf);
    }

    /// A raw (string) header: fixstr below 32 bytes, else 16- or 32-bit length. go-msgpack
    /// with `WriteExt == false` never writes str8 (`0xd9`), which old decoders reject.
    fn raw_len(&mut self, n: usize) {
        self.container_len(n, 0xa0, 32, 0xda, 0xdb);
    }

    fn container_len(&mut self, n: usize, fix: u8, fix_cutoff: usize, b16: u8, b32: u8) {
        if n < fix_cutoff {
            self.buf.push(fix | n as u8);
        } else if n < 0x1_0000 {
            self.buf.push(b16);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(b32);
            // Lengths above u32 cannot be sent by memberlist either; callers stay far below.
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }

    /// A Go `string`.
    pub fn str(&mut self, s: &str) {
        self.raw(s.as_bytes());
    }

    /// A Go `[]byte` that is not nil: raw bytes, the same family as strings.
    pub fn raw(&mut self, b: &[u8]) {
        self.raw_len(b.len());
        self.buf.extend_from_slice(b);
    }

    /// A Go `float64` (`encodeFloat64`): always the 8-byte `0xcb` form.
    pub fn float64(&mut self, v: f64) {
        self.buf.push(0xcb);
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
    }

    /// An array header for `n` elements (fixarray, `0xdc`, `0xdd`), as for a Go slice.
    pub fn array_len(&mut self, n: usize) {
        self.container_len(n, 0x90, 16, 0xdc, 0xdd);
    }

    /// A Go `[]byte` field that is not `omitempty`. An empty slice is written as nil because
    /// that is what Go sends for the usual empty value (a nil slice: no ack payload, no
    /// metadata); go-msgpack decodes nil and an empty raw the same way.
    pub fn bytes(&mut self, b: &[u8]) {
        if b.is_empty() {
            self.nil();
        } else {
            self.raw(b);
        }
    }
}

/// The shape of the next value, enough to dispatch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    Nil,
    Bool(bool),
    Uint(u64),
    Int(i64),
    /// A float (32- or 64-bit), widened to `f64` and kept as its bits so `Head` stays `Eq`.
    Float(u64),
    /// A str or bin of this many bytes.
    Raw(usize),
    Array(usize),
    Map(usize),
    /// An extension whose payload (type byte plus data) is this many bytes.
    Ext(usize),
}

/// A cursor over one msgpack buffer. Running out of bytes is always [`Error::Truncated`], so
/// a stream reader can tell "need more" from "malformed".
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread rest of the buffer.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Skips `n` bytes the caller has checked are present (raw data after a header).
    pub fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let avail = self.buf.len() - self.pos;
        if n > avail {
            return Err(Error::Truncated {
                what,
                needed: n - avail,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn byte(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn be(&mut self, n: usize, what: &'static str) -> Result<u64> {
        Ok(self
            .take(n, what)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Reads the type byte and any length or scalar that follows it.
    fn head(&mut self) -> Result<Head> {
        const W: &str = "msgpack value";
        let b = self.byte(W)?;
        Ok(match b {
            0x00..=0x7f => Head::Uint(u64::from(b)),
            0x80..=0x8f => Head::Map(usize::from(b & 0x0f)),
            0x90..=0x9f => Head::Array(usize::from(b & 0x0f)),
            0xa0..=0xbf => Head::Raw(usize::from(b & 0x1f)),
            0xc0 => Head::Nil,
            0xc2 => Head::Bool(false),
            0xc3 => Head::Bool(true),
            0xc4 | 0xd9 => Head::Raw(self.be(1, W)? as usize),
            0xc5 | 0xda => Head::Raw(self.be(2, W)? as usize),
            0xc6 | 0xdb => Head::Raw(self.be(4, W)? as usize),
            0xc7 => Head::Ext(self.be(1, W)? as usize + 1),
            0xc8 => Head::Ext(self.be(2, W)? as usize + 1),
            0xc9 => Head::Ext(self.be(4, W)? as usize + 1),
            0xca => Head::Float(f64::from(f32::from_bits(self.be(4, W)? as u32)).to_bits()),
            0xcb => Head::Float(self.be(8, W)?),
            0xcc => Head::Uint(self.be(1, W)?),
            0xcd => Head::Uint(self.be(2, W)?),
            0xce => Head::Uint(self.be(4, W)?),
            0xcf => Head::Uint(self.be(8, W)?),
            0xd0 => Head::Int(i64::from(self.be(1, W)? as u8 as i8)),
            0xd1 => Head::Int(i64::from(self.be(2, W)? as u16 as i16)),
            0xd2 => Head::Int(i64::from(self.be(4, W)? as u32 as i32)),
            0xd3 => Head::Int(self.be(8, W)? as i64),
            0xd4 => Head::Ext(2),
            0xd5 => Head::Ext(3),
            0xd6 => Head::Ext(5),
            0xd7 => Head::Ext(9),
            0xd8 => Head::Ext(17),
            0xdc => Head::Array(self.be(2, W)? as usize),
            0xdd => Head::Array(self.be(4, W)? as usize),
            0xde => Head::Map(self.be(2, W)? as usize),
            0xdf => Head::Map(self.be(4, W)? as usize),
            0xe0..=0xff => Head::Int(i64::from(b as i8)),
            0xc1 => return Err(Error::Msgpack("reserved type byte 0xc1".into())),
        })
    }

    /// Skips one value of any type, following nested containers up to [`MAX_SKIP_DEPTH`].
    pub fn skip(&mut self) -> Result<()> {
        self.skip_at_most(usize::MAX)
    }

    /// [`Reader::skip`], failing as soon as more than `max_values` values (containers and
    /// their elements, each counted once) have been seen: a bound on the tree that decoding
    /// the value would build, checked before it is built and before the value is complete.
    pub fn skip_at_most(&mut self, max_values: usize) -> Result<()> {
        // Pending value counts per open container; iterative so hostile nesting cannot
        // exhaust the call stack.
        let mut pending: Vec<usize> = vec![1];
        let mut seen = 0usize;
        while let Some(top) = pending.last_mut() {
            if *top == 0 {
                pending.pop();
                continue;
            }
            *top -= 1;
            seen += 1;
            if seen > max_values {
                return Err(Error::Msgpack(format!("more than {max_values} values")));
            }
            match self.head()? {
                Head::Raw(n) | Head::Ext(n) => {
                    self.take(n, "msgpack value")?;
                }
                Head::Array(n) => self.open(&mut pending, n)?,
                Head::Map(n) => self.open(&mut pending, n.saturating_mul(2))?,
                Head::Nil | Head::Bool(_) | Head::Uint(_) | Head::Int(_) | Head::Float(_) => {}
            }
        }
        Ok(())
    }

    fn open(&mut self, pending: &mut Vec<usize>, n: usize) -> Result<()> {
        if pending.len() >= MAX_SKIP_DEPTH {
            return Err(Error::TooDeep(MAX_SKIP_DEPTH));
        }
        pending.push(n);
        Ok(())
    }

    fn raw_body(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        self.take(n, what)
    }

    /// A string field: any str or bin form; nil is "".
    pub fn string(&mut self, field: &'static str) -> Result<String> {
        let bytes = self.byte_field(field)?;
        String::from_utf8(bytes)
            .map_err(|_| Error::Msgpack(format!("field {field} is not valid UTF-8")))
    }

    /// A `[]byte` field: any str or bin form, or an array of integers 0..=255; nil is empty.
    pub fn byte_field(&mut self, field: &'static str) -> Result<Vec<u8>> {
        match self.head()? {
            Head::Nil => Ok(Vec::new()),
            Head::Raw(n) => Ok(self.raw_body(n, field)?.to_vec()),
            Head::Array(n) => {
                // Each element takes at least one byte, so `n` is bounded by the input
                // only as the loop advances; grow as we go instead of trusting it.
                let mut out = Vec::new();
                for _ in 0..n {
                    let v = self.uint_field(field, u64::from(u8::MAX))?;
                    out.push(v as u8);
                }
                Ok(out)
            }
            other => Err(unexpected(field, "bytes", other)),
        }
    }

    /// An unsigned integer field no larger than `max`: any integer form; nil is 0.
    pub fn uint_field(&mut self, field: &'static str, max: u64) -> Result<u64> {
        let v = match self.head()? {
            Head::Nil => 0,
            Head::Uint(v) => v,
            Head::Int(v) if v >= 0 => v as u64,
            Head::Int(v) => {
                return Err(Error::Msgpack(format!(
                    "field {field}: negative value {v} for an unsigned field"
                )))
            }
            other => return Err(unexpected(field, "integer", other)),
        };
        if v > max {
            return Err(Error::Msgpack(format!(
                "field {field}: value {v} overflows the field (max {max})"
            )));
        }
        Ok(v)
    }

    /// A signed integer field (Go `int`, 64-bit): any integer form; nil is 0.
    pub fn int_field(&mut self, field: &'static str) -> Result<i64> {
        match self.head()? {
            Head::Nil => Ok(0),
            Head::Int(v) => Ok(v),
            Head::Uint(v) => i64::try_from(v).map_err(|_| {
                Error::Msgpack(format!("field {field}: value {v} overflows a Go int"))
            }),
            other => Err(unexpected(field, "integer", other)),
        }
    }

    /// A `float64` field (go-msgpack's `decodeFloat`): float32, float64 or any integer
    /// form; nil is 0.
    pub fn float_field(&mut self, field: &'static str) -> Result<f64> {
        match self.head()? {
            Head::Nil => Ok(0.0),
            Head::Float(bits) => Ok(f64::from_bits(bits)),
            Head::Uint(v) => Ok(v as f64),
            Head::Int(v) => Ok(v as f64),
            other => Err(unexpected(field, "float", other)),
        }
    }

    /// The element count of an array field (a Go slice other than `[]byte`); nil is an
    /// empty array. The count is not checked against the bytes present: callers bound it
    /// and read elements one by one.
    pub fn array_len(&mut self, field: &'static str) -> Result<usize> {
        match self.head()? {
            Head::Nil => Ok(0),
            Head::Array(n) => Ok(n),
            other => Err(unexpected(field, "array", other)),
        }
    }

    /// A bool field: `true`/`false`, or the integers 0 and 1 (go-msgpack's `decodeBool`
    /// accepts fixnum 0/1); nil is false.
    pub fn bool_field(&mut self, field: &'static str) -> Result<bool> {
        match self.head()? {
            Head::Nil => Ok(false),
            Head::Bool(b) => Ok(b),
            Head::Uint(0) | Head::Int(0) => Ok(false),
            Head::Uint(1) | Head::Int(1) => Ok(true),
            other => Err(unexpected(field, "bool", other)),
        }
    }

    /// Decodes a struct given as a map (keys are Go field names, matched exactly) or an
    /// array (values in Go declaration order). `fields` is in declaration order; `field`
    /// is called with the index of each known field and must consume exactly its value.
    /// Unknown keys and surplus array elements are skipped; nil is the zero struct.
    pub fn decode_struct(
        &mut self,
        what: &'static str,
        fields: &[&str],
        mut field: impl FnMut(usize, &mut Self) -> Result<()>,
    ) -> Result<()> {
        match self.head()? {
            Head::Nil => Ok(()),
            Head::Map(n) => {
                for _ in 0..n {
                    let key = self.key()?;
                    match fields.iter().position(|f| f.as_bytes() == key) {
                        Some(i) => field(i, self)?,
                        None => self.skip()?,
                    }
                }
                Ok(())
            }
            Head::Array(n) => {
                for i in 0..n {
                    if i < fields.len() {
                        field(i, self)?;
                    } else {
                        self.skip()?;
                    }
                }
                Ok(())
            }
            other => Err(unexpected(what, "map or array", other)),
        }
    }

    /// A map key: str or bin bytes (go-msgpack reads keys with `decodeString`); nil is "".
    fn key(&mut self) -> Result<&'a [u8]> {
        match self.head()? {
            Head::Nil => Ok(&[]),
            Head::Raw(n) => self.raw_body(n, "map key"),
            other => Err(unexpected("map key", "string", other)),
        }
    }
}

/// Any msgpack value, for protocols whose messages are easier to handle as a tree than as
/// fixed structs (Serf's RPC: `map[string]interface{}` stream records, maps of tags). Strings
/// and byte slices are both [`Value::Raw`], as the old spec go-msgpack writes has no split.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `nil`.
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// A non-negative integer.
    Uint(u64),
    /// A negative integer (non-negative ones are always [`Value::Uint`]).
    Int(i64),
    /// A float (a 4-byte float is widened).
    Float(f64),
    /// A string or byte slice (the raw family).
    Raw(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// A map, its pairs in wire order (duplicates kept).
    Map(Vec<(Value, Value)>),
}

impl Writer {
    /// Writes `v` in go-msgpack's forms (raw family for bytes, smallest integers).
    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Nil => self.nil(),
            Value::Bool(b) => self.bool(*b),
            Value::Uint(u) => self.uint(*u),
            Value::Int(i) => self.int(*i),
            Value::Float(f) => self.float64(*f),
            Value::Raw(b) => self.raw(b),
            Value::Array(items) => {
                self.array_len(items.len());
                for item in items {
                    self.value(item);
                }
            }
            Value::Map(pairs) => {
                self.map_len(pairs.len());
                for (k, v) in pairs {
                    self.value(k);
                    self.value(v);
                }
            }
        }
    }
}

impl Reader<'_> {
    /// Reads one value of any type as a tree, nesting at most [`MAX_SKIP_DEPTH`] deep.
    /// Extensions are refused (no Serf message uses them). Container lengths are not
    /// trusted: elements are read one by one, so a huge declared length with no content
    /// is [`Error::Truncated`], not an allocation.
    pub fn value(&mut self) -> Result<Value> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Result<Value> {
        let container = |depth: usize| {
            if depth + 1 >= MAX_SKIP_DEPTH {
                Err(Error::TooDeep(MAX_SKIP_DEPTH))
            } else {
                Ok(depth + 1)
            }
        };
        Ok(match self.head()? {
            Head::Nil => Value::Nil,
            Head::Bool(b) => Value::Bool(b),
            Head::Uint(u) => Value::Uint(u),
            Head::Int(i) if i >= 0 => Value::Uint(i as u64),
            Head::Int(i) => Value::Int(i),
            Head::Float(bits) => Value::Float(f64::from_bits(bits)),
            Head::Raw(n) => Value::Raw(self.raw_body(n, "msgpack raw")?.to_vec()),
            Head::Ext(_) => {
                return Err(Error::Msgpack(
                    "msgpack extension types are not supported".into(),
                ))
            }
            Head::Array(n) => {
                let d = container(depth)?;
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.value_at(d)?);
                }
                Value::Array(items)
            }
            Head::Map(n) => {
                let d = container(depth)?;
                let mut pairs = Vec::new();
                for _ in 0..n {
                    let k = self.value_at(d)?;
                    let v = self.value_at(d)?;
                    pairs.push((k, v));
                }
                Value::Map(pairs)
            }
        })
    }
}

fn unexpected(field: &str, want: &str, got: Head) -> Error {
    Error::Msgpack(format!("field {field}: expected {want}, found {got:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::default();
        f(&mut w);
        w.into_inner()
    }

    #[test]
    fn values_round_trip_and_limit_depth() {
        let v = Value::Map(vec![
            (
                Value::Raw(b"a".to_vec()),
                Value::Array(vec![Value::Uint(300), Value::Int(-5)]),
            ),
            (Value::Raw(b"b".to_vec()), Value::Float(1.5)),
            (Value::Raw(b"c".to_vec()), Value::Nil),
            (Value::Raw(b"d".to_vec()), Value::Bool(true)),
        ]);
        let bytes = written(|w| w.value(&v));
        let mut r = Reader::new(&bytes);
        assert_eq!(r.value(), Ok(v));
        assert!(r.rest().is_empty());
        assert_eq!(
            Reader::new(&[0x91; 100]).value(),
            Err(Error::TooDeep(MAX_SKIP_DEPTH))
        );
        assert!(matches!(
            Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]).value(),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn uint_uses_smallest_form() {
        assert_eq!(written(|w| w.uint(0)), [0x00]);
        assert_eq!(written(|w| w.uint(127)), [0x7f]);
        assert_eq!(written(|w| w.uint(128)), [0xcc, 0x80]);
        assert_eq!(written(|w| w.uint(255)), [0xcc, 0xff]);
        assert_eq!(written(|w| w.uint(256)), [0xcd, 0x01, 0x00]);
        assert_eq!(written(|w| w.uint(65535)), [0xcd, 0xff, 0xff]);
        assert_eq!(written(|w| w.uint(65536)), [0xce, 0, 1, 0, 0]);
        assert_eq!(written(|w| w.uint(1 << 32)), [0xcf, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn int_writes_non_negative_as_unsigned() {
        assert_eq!(written(|w| w.int(5)), [0x05]);
        assert_eq!(written(|w| w.int(200)), [0xcc, 200]);
        assert_eq!(written(|w| w.int(-1)), [0xff]);
        assert_eq!(written(|w| w.int(-32)), [0xe0]);
        assert_eq!(written(|w| w.int(-33)), [0xd0, 0xdf]);
        assert_eq!(written(|w| w.int(-129)), [0xd1, 0xff, 0x7f]);
    }

    #[test]
    fn raw_never_uses_str8() {
        assert_eq!(written(|w| w.str("")), [0xa0]);
        assert_eq!(written(|w| w.str("abc")), [0xa3, b'a', b'b', b'c']);
        let s31 = "x".repeat(31);
        assert_eq!(written(|w| w.str(&s31))[0], 0xbf);
        let s32 = "x".repeat(32);
        assert_eq!(written(|w| w.str(&s32))[..3], [0xda, 0x00, 0x20]);
        let b = vec![7u8; 70_000];
        assert_eq!(written(|w| w.raw(&b))[..5], [0xdb, 0x00, 0x01, 0x11, 0x70]);
        assert_eq!(written(|w| w.bytes(&[])), [0xc0]);
    }

    #[test]
    fn map_header_forms() {
        assert_eq!(written(|w| w.map_len(3)), [0x83]);
        assert_eq!(written(|w| w.map_len(16)), [0xde, 0x00, 0x10]);
        assert_eq!(written(|w| w.map_len(70_000))[0], 0xdf);
    }

    #[test]
    fn every_integer_form_reads_into_a_u32() {
        let forms: &[&[u8]] = &[
            &[0x2a],
            &[0xcc, 0x2a],
            &[0xcd, 0x00, 0x2a],
            &[0xce, 0, 0, 0, 0x2a],
            &[0xcf, 0, 0, 0, 0, 0, 0, 0, 0x2a],
            &[0xd0, 0x2a],
            &[0xd1, 0x00, 0x2a],
            &[0xd2, 0, 0, 0, 0x2a],
            &[0xd3, 0, 0, 0, 0, 0, 0, 0, 0x2a],
        ];
        for f in forms {
            assert_eq!(
                Reader::new(f).uint_field("x", u32::MAX.into()),
                Ok(42),
                "{f:x?}"
            );
        }
        assert_eq!(Reader::new(&[0xc0]).uint_field("x", 9), Ok(0));
    }

    #[test]
    fn integers_are_range_checked() {
        assert!(Reader::new(&[0xcd, 0x01, 0x00])
            .uint_field("x", 255)
            .is_err());
        assert!(Reader::new(&[0xff]).uint_field("x", 255).is_err());
        assert!(Reader::new(&[0xd0, 0x80]).uint_field("x", 255).is_err());
        assert!(Reader::new(&[0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0])
            .int_field("x")
            .is_err());
        assert_eq!(Reader::new(&[0xd0, 0x80]).int_field("x"), Ok(-128));
        assert!(Reader::new(&[0xca, 0, 0, 0, 0]).uint_field("x", 9).is_err());
    }

    #[test]
    fn strings_and_bytes_from_every_raw_form() {
        let forms: &[&[u8]] = &[
            &[0xa2, b'h', b'i'],
            &[0xd9, 2, b'h', b'i'],
            &[0xda, 0, 2, b'h', b'i'],
            &[0xdb, 0, 0, 0, 2, b'h', b'i'],
            &[0xc4, 2, b'h', b'i'],
            &[0xc5, 0, 2, b'h', b'i'],
            &[0xc6, 0, 0, 0, 2, b'h', b'i'],
        ];
        for f in forms {
            assert_eq!(Reader::new(f).string("s"), Ok("hi".to_string()), "{f:x?}");
            assert_eq!(Reader::new(f).byte_field("b"), Ok(b"hi".to_vec()));
        }
        assert_eq!(Reader::new(&[0xc0]).string("s"), Ok(String::new()));
        assert_eq!(
            Reader::new(&[0x92, 0x01, 0xcc, 0xff]).byte_field("b"),
            Ok(vec![1, 255])
        );
        assert!(Reader::new(&[0xa2, 0xff, 0xfe]).string("s").is_err());
    }

    #[test]
    fn floats_write_as_double_and_read_from_every_numeric_form() {
        assert_eq!(
            written(|w| w.float64(1.5)),
            [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(written(|w| w.array_len(8)), [0x98]);
        assert_eq!(written(|w| w.array_len(16)), [0xdc, 0x00, 0x10]);
        let forms: &[(&[u8], f64)] = &[
            (&[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0], 1.5),
            (&[0xca, 0x3f, 0xc0, 0, 0], 1.5),
            (&[0x07], 7.0),
            (&[0xd0, 0xf9], -7.0),
            (&[0xc0], 0.0),
        ];
        for (f, want) in forms {
            assert_eq!(Reader::new(f).float_field("x"), Ok(*want), "{f:x?}");
        }
        assert!(Reader::new(&[0xa1, b'x']).float_field("x").is_err());
        assert!(Reader::new(&[0xcb, 0, 0]).float_field("x").is_err());
        assert_eq!(Reader::new(&[0x93]).array_len("v"), Ok(3));
        assert_eq!(Reader::new(&[0xc0]).array_len("v"), Ok(0));
        assert!(Reader::new(&[0x81]).array_len("v").is_err());
    }

    #[test]
    fn bools_accept_zero_and_one() {
        assert_eq!(Reader::new(&[0xc3]).bool_field("b"), Ok(true));
        assert_eq!(Reader::new(&[0x01]).bool_field("b"), Ok(true));
        assert_eq!(Reader::new(&[0x00]).bool_field("b"), Ok(false));
        assert!(Reader::new(&[0x02]).bool_field("b").is_err());
    }

    #[test]
    fn truncation_is_reported_as_truncated() {
        let e = Reader::new(&[0xda, 0x00, 0x05, b'a']).string("s");
        assert!(
            matches!(e, Err(Error::Truncated { needed: 4, .. })),
            "{e:?}"
        );
        let e = Reader::new(&[0xdb, 0xff, 0xff, 0xff, 0xff]).byte_field("b");
        assert!(matches!(e, Err(Error::Truncated { .. })), "{e:?}");
    }

    #[test]
    fn skip_handles_nesting_and_limits_depth() {
        // {"a": [1, {"b": nil}], "c": 1.5} followed by a marker byte.
        let v = [
            0x82, 0xa1, b'a', 0x92, 0x01, 0x81, 0xa1, b'b', 0xc0, 0xa1, b'c', 0xcb, 0, 0, 0, 0, 0,
            0, 0, 0, 0x7f,
        ];
        let mut r = Reader::new(&v);
        r.skip().unwrap();
        assert_eq!(r.rest(), [0x7f]);
        let deep = vec![0x91; 100];
        assert_eq!(
            Reader::new(&deep).skip(),
            Err(Error::TooDeep(MAX_SKIP_DEPTH))
        );
        // A huge declared container with no content is truncated, not allocated.
        let huge = [0xdd, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            Reader::new(&huge).skip(),
            Err(Error::Truncated { .. })
        ));
        assert!(Reader::new(&[0xc1]).skip().is_err());
    }
}
