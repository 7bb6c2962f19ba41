//! The DNS message format as mDNS uses it (RFC 1035 §4, RFC 6762): a decoder that takes any
//! bytes off the network without panicking (compression pointers followed with a bound, every
//! length checked) and an encoder (no compression) for the few record types Serf's discovery
//! sends: PTR, SRV, TXT, A and AAAA.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
pub const TYPE_ANY: u16 = 255;
pub const CLASS_IN: u16 = 1;
/// The top bit of a question's class: "a unicast response is preferred" (RFC 6762 §5.4).
pub const CLASS_UNICAST_RESPONSE: u16 = 0x8000;

/// Header flag: this message is a response.
pub const FLAG_RESPONSE: u16 = 0x8000;
/// Header flag: authoritative answer (mDNS responses set it, RFC 6762 §18.4).
pub const FLAG_AUTHORITATIVE: u16 = 0x0400;
/// Header flag: truncated.
pub const FLAG_TRUNCATED: u16 = 0x0200;

/// Longest name on the wire (RFC 1035 §2.3.4), and longest label.
const MAX_NAME: usize = 255;
const MAX_LABEL: usize = 63;

/// Why bytes are not a DNS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The message ends inside the header, a name or a record.
    Truncated,
    /// A label of 64 or more bytes, a name of more than 255, or a reserved label type.
    BadName,
    /// A compression pointer that does not point strictly backwards.
    BadPointer,
    /// A record's data is not the length its type needs.
    BadRecord,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "message ends early",
            Self::BadName => "malformed name",
            Self::BadPointer => "compression pointer does not point backwards",
            Self::BadRecord => "record data has the wrong length for its type",
        })
    }
}

impl std::error::Error for DecodeError {}

/// A domain name as its labels (no empty root label). Compared case-insensitively, as DNS
/// names are.
#[derive(Debug, Clone, Default, Eq)]
pub struct Name(pub Vec<Vec<u8>>);

impl Name {
    /// Splits dotted text into labels (`"a.b.local."` and `"a.b.local"` are the same name),
    /// as Go's DNS library does with the names hashicorp/mdns builds.
    pub fn parse(text: &str) -> Self {
        Name(
            text.split('.')
                .filter(|l| !l.is_empty())
                .map(|l| l.as_bytes().to_vec())
                .collect(),
        )
    }

    /// True when `self` is `suffix` with one or more labels before it.
    pub fn is_below(&self, suffix: &Name) -> bool {
        self.0.len() > suffix.0.len()
            && Name(self.0[self.0.len() - suffix.0.len()..].to_vec()) == *suffix
    }

    /// The first label as text (an instance name is its first label).
    pub fn first_label(&self) -> String {
        self.0
            .first()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .unwrap_or_default()
    }

    /// Bytes on the wire (uncompressed); `None` when a label or the name is too long.
    fn encode(&self, out: &mut Vec<u8>) -> Option<()> {
        let mut len = 1;
        for label in &self.0 {
            if label.is_empty() || label.len() > MAX_LABEL {
                return None;
            }
            len += 1 + label.len();
        }
        if len > MAX_NAME {
            return None;
        }
        for label in &self.0 {
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.push(0);
        Some(())
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(".");
        }
        for label in &self.0 {
            write!(f, "{}.", String::from_utf8_lossy(label))?;
        }
        Ok(())
    }
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub name: Name,
    pub qtype: u16,
    /// With the unicast-response bit (see [`CLASS_UNICAST_RESPONSE`]).
    pub qclass: u16,
}

/// What a record says, for the types discovery reads; anything else is kept as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Ptr(Name),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Name,
    },
    Txt(Vec<Vec<u8>>),
    Other {
        rtype: u16,
        data: Vec<u8>,
    },
}

impl RData {
    fn rtype(&self) -> u16 {
        match self {
            Self::A(_) => TYPE_A,
            Self::Aaaa(_) => TYPE_AAAA,
            Self::Ptr(_) => TYPE_PTR,
            Self::Srv { .. } => TYPE_SRV,
            Self::Txt(_) => TYPE_TXT,
            Self::Other { rtype, .. } => *rtype,
        }
    }
}

/// One resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: Name,
    /// With mDNS's cache-flush bit, if the sender set it.
    pub class: u16,
    pub ttl: u32,
    pub data: RData,
}

/// A DNS message. Answer, authority and additional records are kept apart only as far as
/// discovery needs: answers in `answers`, the other two sections together in `additional`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub id: u16,
    pub flags: u16,
    pub questions: Vec<Question>,
    pub answers: Vec<Record>,
    pub additional: Vec<Record>,
}

impl Message {
    /// True for a response (QR set).
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    /// The OPCODE field (0: a standard query, the only kind mDNS uses).
    pub fn opcode(&self) -> u16 {
        (self.flags >> 11) & 0xf
    }

    /// The RCODE field.
    pub fn rcode(&self) -> u16 {
        self.flags & 0xf
    }

    /// Decodes one message; trailing bytes after the counted sections are ignored.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { buf, pos: 0 };
        let id = r.u16()?;
        let flags = r.u16()?;
        let qd = r.u16()?;
        let an = r.u16()?;
        let ns = r.u16()?;
        let ar = r.u16()?;
        let mut m = Message {
            id,
            flags,
            ..Message::default()
        };
        // Each question takes at least 5 bytes and each record 11, so the counts cannot make
        // us allocate more than the packet justifies.
        for _ in 0..qd {
            let name = r.name()?;
            let qtype = r.u16()?;
            let qclass = r.u16()?;
            m.questions.push(Question {
                name,
                qtype,
                qclass,
            });
        }
        for _ in 0..an {
            m.answers.push(r.record()?);
        }
        for _ in 0..(ns as u32 + ar as u32) {
            m.additional.push(r.record()?);
        }
        Ok(m)
    }

    /// Bytes on the wire; `None` when a name is too long for DNS or a section has more than
    /// 65535 entries.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        for n in [
            self.questions.len(),
            self.answers.len(),
            0,
            self.additional.len(),
        ] {
            out.extend_from_slice(&u16::try_from(n).ok()?.to_be_bytes());
        }
        for q in &self.questions {
            q.name.encode(&mut out)?;
            out.extend_from_slice(&q.qtype.to_be_bytes());
            out.extend_from_slice(&q.qclass.to_be_bytes());
        }
        for rec in self.answers.iter().chain(&self.additional) {
            rec.name.encode(&mut out)?;
            out.extend_from_slice(&rec.data.rtype().to_be_bytes());
            out.extend_from_slice(&rec.class.to_be_bytes());
            out.extend_from_slice(&rec.ttl.to_be_bytes());
            let len_at = out.len();
            out.extend_from_slice(&[0, 0]);
            match &rec.data {
                RData::A(ip) => out.extend_from_slice(&ip.octets()),
                RData::Aaaa(ip) => out.extend_from_slice(&ip.octets()),
                RData::Ptr(n) => n.encode(&mut out)?,
                RData::Srv {
                    priority,
                    weight,
                    port,
                    target,
                } => {
                    for v in [priority, weight, port] {
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                    target.encode(&mut out)?;
                }
                RData::Txt(strings) => {
                    for s in strings {
                        out.push(u8::try_from(s.len()).ok()?);
                        out.extend_from_slice(s);
                    }
                }
                RData::Other { data, .. } => out.extend_from_slice(data),
            }
            let len = u16::try_from(out.len() - len_at - 2).ok()?;
            out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
        }
        Some(out)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A name at the current position, following compression pointers. Every pointer must
    /// point before the label that holds it, so the walk ends.
    fn name(&mut self) -> Result<Name, DecodeError> {
        let mut labels = Vec::new();
        let mut wire_len = 1;
        let mut at = self.pos;
        // Where reading goes on once the name is done: just after its first pointer.
        let mut resume = None;
        loop {
            let len = *self.buf.get(at).ok_or(DecodeError::Truncated)? as usize;
            match len & 0xc0 {
                0x00 if len == 0 => {
                    self.pos = resume.unwrap_or(at + 1);
                    return Ok(Name(labels));
                }
                0x00 => {
                    let label = self
                        .buf
                        .get(at + 1..at + 1 + len)
                        .ok_or(DecodeError::Truncated)?;
                    wire_len += 1 + len;
                    if wire_len > MAX_NAME {
                        return Err(DecodeError::BadName);
                    }
                    labels.push(label.to_vec());
                    at += 1 + len;
                }
                0xc0 => {
                    let low = *self.buf.get(at + 1).ok_or(DecodeError::Truncated)? as usize;
                    let target = ((len & 0x3f) << 8) | low;
                    if target >= at {
                        return Err(DecodeError::BadPointer);
                    }
                    resume.get_or_insert(at + 2);
                    at = target;
                }
                _ => return Err(DecodeError::BadName),
            }
        }
    }

    fn record(&mut self) -> Result<Record, DecodeError> {
        let name = self.name()?;
        let rtype = self.u16()?;
        let class = self.u16()?;
        let ttl = self.u32()?;
        let len = self.u16()? as usize;
        let start = self.pos;
        let end = start + len;
        if end > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let data = match rtype {
            TYPE_A => {
                let b: [u8; 4] = self
                    .take(len)?
                    .try_into()
                    .map_err(|_| DecodeError::BadRecord)?;
                RData::A(Ipv4Addr::from(b))
            }
            TYPE_AAAA => {
                let b: [u8; 16] = self
                    .take(len)?
                    .try_into()
                    .map_err(|_| DecodeError::BadRecord)?;
                RData::Aaaa(Ipv6Addr::from(b))
            }
            TYPE_PTR => RData::Ptr(self.name()?),
            TYPE_SRV => RData::Srv {
                priority: self.u16()?,
                weight: self.u16()?,
                port: self.u16()?,
                target: self.name()?,
            },
            TYPE_TXT => {
                let mut strings = Vec::new();
                while self.pos < end {
                    let n = self.u8()? as usize;
                    strings.push(self.take(n)?.to_vec());
                }
                RData::Txt(strings)
            }
            _ => RData::Other {
                rtype,
                data: self.take(len)?.to_vec(),
            },
        };
        // A name inside the data may not run past the length the record gave.
        if self.pos != end {
            return Err(DecodeError::BadRecord);
        }
        Ok(Record {
            name,
            class,
            ttl,
            data,
        })
    }
}

/// Decodes `data`, and re-encodes what decodes: for the fuzz target (decoding must never
/// panic, and a decoded message must encode and decode to itself).
pub fn fuzz_message(data: &[u8]) {
    let Ok(m) = Message::decode(data) else {
        return;
    };
    if let Some(bytes) = m.encode() {
        let again = Message::decode(&bytes).expect("an encoded message decodes");
        assert_eq!(again, m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// What serf 0.8.2 (`serf agent -node=s1 -bind=127.0.0.2 -discover=c1` on host `vm`)
    /// sent back to a PTR query for `_serf_c1._tcp.local.`, captured off the socket.
    const SERF_RESPONSE: &str = "000084000000000400000000085f736572665f6331045f746370056c6f63\
        616c00000c0001000000780005027331c00cc02b0021000100000078000a000a00011f0a02766d00c04200\
        0100010000007800047f000002c02b001000010000007800121153657266202763312720636c7573746572";

    /// serf 0.8.2's query for the same service (its ID is random).
    const SERF_QUERY: &str =
        "e01900000001000000000000085f736572665f6331045f746370056c6f63616c00000c0001";

    #[test]
    fn decodes_serfs_response() {
        let m = Message::decode(&hex(SERF_RESPONSE)).unwrap();
        assert!(m.is_response());
        assert_eq!(m.flags, FLAG_RESPONSE | FLAG_AUTHORITATIVE);
        assert!(m.questions.is_empty());
        let instance = Name::parse("s1._serf_c1._tcp.local.");
        assert_eq!(m.answers.len(), 4);
        assert_eq!(m.answers[0].name, Name::parse("_serf_c1._tcp.local"));
        assert_eq!(m.answers[0].data, RData::Ptr(instance.clone()));
        assert_eq!(m.answers[0].ttl, 120);
        assert_eq!(m.answers[1].name, instance);
        assert_eq!(
            m.answers[1].data,
            RData::Srv {
                priority: 10,
                weight: 1,
                port: 7946,
                target: Name::parse("vm.")
            }
        );
        assert_eq!(m.answers[2].name, Name::parse("vm."));
        assert_eq!(m.answers[2].data, RData::A(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(
            m.answers[3].data,
            RData::Txt(vec![b"Serf 'c1' cluster".to_vec()])
        );
        assert_eq!(instance.to_string(), "s1._serf_c1._tcp.local.");
        assert_eq!(instance.first_label(), "s1");
    }

    #[test]
    fn decodes_serfs_query_and_encodes_it_back() {
        let bytes = hex(SERF_QUERY);
        let m = Message::decode(&bytes).unwrap();
        assert!(!m.is_response());
        assert_eq!((m.id, m.opcode(), m.rcode()), (0xe019, 0, 0));
        assert_eq!(
            m.questions,
            [Question {
                name: Name::parse("_serf_c1._tcp.local."),
                qtype: TYPE_PTR,
                qclass: CLASS_IN
            }]
        );
        assert_eq!(m.encode().unwrap(), bytes);
    }

    #[test]
    fn round_trips_every_record_type() {
        let r = |name: &str, data| Record {
            name: Name::parse(name),
            class: CLASS_IN,
            ttl: 120,
            data,
        };
        let m = Message {
            id: 7,
            flags: FLAG_RESPONSE,
            questions: vec![],
            answers: vec![
                r("a.local", RData::A(Ipv4Addr::new(10, 0, 0, 1))),
                r("a.local", RData::Aaaa(Ipv6Addr::LOCALHOST)),
                r("s.local", RData::Ptr(Name::parse("x.s.local"))),
                r(
                    "x.s.local",
                    RData::Srv {
                        priority: 1,
                        weight: 2,
                        port: 3,
                        target: Name::parse("a.local"),
                    },
                ),
            ],
            additional: vec![
                r("x.s.local", RData::Txt(vec![b"one".to_vec(), vec![]])),
                r(
                    "x.s.local",
                    RData::Other {
                        rtype: 99,
                        data: vec![1, 2, 3],
                    },
                ),
            ],
        };
        let bytes = m.encode().unwrap();
        assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn names_compare_without_case_and_know_their_parents() {
        let service = Name::parse("_serf_c1._tcp.local.");
        assert_eq!(Name::parse("_SERF_C1._TCP.Local"), service);
        assert!(Name::parse("node._serf_c1._tcp.local").is_below(&service));
        assert!(!service.is_below(&service));
        assert!(!Name::parse("node._serf_c2._tcp.local").is_below(&service));
        assert_eq!(Name::default().to_string(), ".");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let good = hex(SERF_RESPONSE);
        // Every prefix of a good message is cut short somewhere.
        for n in 0..good.len() {
            assert!(Message::decode(&good[..n]).is_err(), "prefix of {n} bytes");
        }
        // A pointer to itself, and one pointing forwards.
        let mut m = hex("000000000001000000000000");
        m.extend_from_slice(&[0xc0, 12, 0, 12, 0, 1]);
        assert_eq!(Message::decode(&m), Err(DecodeError::BadPointer));
        let mut m = hex("000000000001000000000000");
        m.extend_from_slice(&[0xc0, 40, 0, 12, 0, 1]);
        assert_eq!(Message::decode(&m), Err(DecodeError::BadPointer));
        // A reserved label type (0x40).
        let mut m = hex("000000000001000000000000");
        m.extend_from_slice(&[0x41, b'a', 0, 0, 12, 0, 1]);
        assert_eq!(Message::decode(&m), Err(DecodeError::BadName));
        // A name of more than 255 bytes, made of backward pointers into a long run of labels.
        let mut m = hex("000000000001000000000000");
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'x'; 63]);
        }
        m.extend_from_slice(&[0, 0, 12, 0, 1]);
        assert_eq!(Message::decode(&m), Err(DecodeError::BadName));
        // An A record with 3 bytes of data.
        let mut m = hex("000084000000000100000000");
        m.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0, 120, 0, 3, 1, 2, 3]);
        assert_eq!(Message::decode(&m), Err(DecodeError::BadRecord));
        // A PTR whose name runs past the record's length.
        let mut m = hex("000084000000000100000000");
        m.extend_from_slice(&[0, 0, 12, 0, 1, 0, 0, 0, 120, 0, 1, 1, b'a', 0]);
        assert_eq!(Message::decode(&m), Err(DecodeError::BadRecord));
        // Huge counts on a tiny packet.
        assert_eq!(
            Message::decode(&hex("0000000000ffffffffffffff")),
            Err(DecodeError::Truncated)
        );
        fuzz_message(&good);
    }

    /// A short stand-in for the fuzz target that runs with the unit tests: serf's answer
    /// with random bytes changed or cut off, and random bytes, through the same check.
    #[test]
    fn mutated_and_random_packets_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0x6d646e73);
        let good = hex(SERF_RESPONSE);
        let mut decoded = 0;
        for _ in 0..20_000 {
            let mut p = good.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..p.len());
                p[i] = rng.gen();
            }
            if rng.gen_bool(0.2) {
                p.truncate(rng.gen_range(0..p.len()));
            }
            decoded += usize::from(Message::decode(&p).is_ok());
            fuzz_message(&p);
            let random: Vec<u8> = (0..rng.gen_range(0..80)).map(|_| rng.gen()).collect();
            fuzz_message(&random);
        }
        assert!(decoded > 1000, "mutations mostly decode: {decoded}");
    }

    #[test]
    fn encoding_refuses_what_dns_cannot_carry() {
        let long = Name(vec![vec![b'x'; 64]]);
        let m = Message {
            questions: vec![Question {
                name: long,
                qtype: TYPE_PTR,
                qclass: CLASS_IN,
            }],
            ..Message::default()
        };
        assert_eq!(m.encode(), None);
    }
}
