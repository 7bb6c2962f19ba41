//! The record logic of Serf's mDNS discovery, sans-io: the query Serf's poll sends, the answer
//! hashicorp/mdns's server gives to a query ([`Advertised::answer`]), and the peers a response
//! names ([`peers_in`]). The DNS wire format is `simple-dns`'s; [`decode`] puts a bound on what
//! a packet off the LAN may make it allocate before handing it over.

use crate::error::{Error, Result};
use simple_dns::rdata::{RData, A, AAAA, PTR, SRV, TXT};
use simple_dns::{
    Name, Packet, PacketFlag, Question, ResourceRecord, SimpleDnsError, CLASS, OPCODE, QCLASS,
    QTYPE, RCODE, TYPE,
};
use std::net::{IpAddr, SocketAddr};

/// The TTL hashicorp/mdns puts on every record.
const TTL: u32 = 120;
/// The fixed part of a DNS header.
const HEADER_LEN: usize = 12;
/// The least a question takes on the wire (a root name, type, class), and a record (a root
/// name, type, class, TTL, data length).
const MIN_QUESTION: usize = 5;
const MIN_RECORD: usize = 11;

/// A DNS name from text, owned; an error names the text.
fn name(text: &str) -> Result<Name<'static>> {
    Name::new(text)
        .map(Name::into_owned)
        .map_err(|source| Error::DnsName {
            name: text.to_owned(),
            source,
        })
}

/// The service Serf registers and looks up for a cluster: `_serf_<cluster>._tcp.local.`. An
/// error when the cluster name makes it no DNS name (a label over 63 bytes).
pub fn service_name(cluster: &str) -> Result<Name<'static>> {
    name(&format!("_serf_{cluster}._tcp.local."))
}

/// Reads one DNS message off the network. The section counts are checked against the packet's
/// length first, so a small packet cannot make the parser reserve room for 4 × 65535 entries.
pub fn decode(buf: &[u8]) -> Result<Packet<'_>, SimpleDnsError> {
    let header = buf
        .get(..HEADER_LEN)
        .ok_or(SimpleDnsError::InsufficientData)?;
    let count = |i: usize| usize::from(u16::from_be_bytes([header[i], header[i + 1]]));
    let least = count(4) * MIN_QUESTION + (count(6) + count(8) + count(10)) * MIN_RECORD;
    if least > buf.len() - HEADER_LEN {
        return Err(SimpleDnsError::InsufficientData);
    }
    Packet::parse(buf)
}

/// Bytes on the wire, names uncompressed (as Serf's own packets are).
pub fn encode(packet: &Packet<'_>) -> Result<Vec<u8>, SimpleDnsError> {
    packet.build_bytes_vec()
}

/// What this agent advertises: hashicorp/mdns's `MDNSService` as Serf builds it (the node
/// name as the instance, this host's name as the SRV target, the advertise address).
#[derive(Debug, Clone)]
pub struct Advertised {
    /// The service: `_serf_<cluster>._tcp.local.`.
    pub service: Name<'static>,
    /// The instance: `<node>.<service>`.
    pub instance: Name<'static>,
    /// The SRV target: this host's name.
    pub host: Name<'static>,
    /// The address and port the A/AAAA and SRV records give (the agent's advertise address).
    pub addr: SocketAddr,
    /// The TXT record: `Serf '<cluster>' cluster`.
    pub txt: String,
}

impl Advertised {
    /// An error when a name is not a DNS name (a node or host name with a label over 63
    /// bytes, or a name over 255).
    pub fn new(node: &str, cluster: &str, host: &str, addr: SocketAddr) -> Result<Self> {
        let service = service_name(cluster)?;
        let instance = name(&format!("{node}.{service}"))?;
        let txt = format!("Serf '{cluster}' cluster");
        // Checked here so that building a TXT record later cannot fail.
        TXT::new()
            .with_string(&txt)
            .map_err(|source| Error::DnsName {
                name: txt.clone(),
                source,
            })?;
        Ok(Self {
            service,
            instance,
            host: name(host)?,
            addr,
            txt,
        })
    }

    /// The response to `query`, as hashicorp/mdns's server gives it: every record that
    /// matches a question; `None` for a response, a non-standard query, or nothing to say.
    /// The ID is the query's only when a question asked for a unicast reply (RFC 6762 §18.1).
    pub fn answer(&self, query: &Packet<'_>) -> Option<Packet<'static>> {
        if query.has_flags(PacketFlag::RESPONSE)
            || query.opcode() != OPCODE::StandardQuery
            || query.rcode() != RCODE::NoError
            || query.has_flags(PacketFlag::TRUNCATION)
        {
            return None;
        }
        let mut answers = Vec::new();
        let mut unicast = false;
        for q in &query.questions {
            let records = self.records(q);
            if !records.is_empty() && q.unicast_response {
                unicast = true;
            }
            answers.extend(records);
        }
        if answers.is_empty() {
            return None;
        }
        let mut reply = Packet::new_reply(if unicast { query.id() } else { 0 });
        reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
        reply.answers = answers;
        Some(reply)
    }

    fn record(&self, name: &Name<'_>, data: RData<'static>) -> ResourceRecord<'static> {
        ResourceRecord::new(name.clone().into_owned(), CLASS::IN, TTL, data)
    }

    /// The records for one question, in hashicorp/mdns's order.
    fn records(&self, q: &Question<'_>) -> Vec<ResourceRecord<'static>> {
        let any = q.qtype == QTYPE::ANY;
        let is = |t: TYPE| q.qtype == QTYPE::TYPE(t);
        let enumeration = Name::new_unchecked("_services._dns-sd._udp.local.");
        if q.qname == enumeration && (any || is(TYPE::PTR)) {
            return vec![self.record(&q.qname, RData::PTR(PTR(self.service.clone())))];
        }
        if q.qname == self.service && (any || is(TYPE::PTR)) {
            let mut records = vec![self.record(&q.qname, RData::PTR(PTR(self.instance.clone())))];
            records.extend(self.instance_records(QTYPE::ANY));
            return records;
        }
        if q.qname == self.instance {
            return self.instance_records(q.qtype);
        }
        if q.qname == self.host && (is(TYPE::A) || is(TYPE::AAAA)) {
            return self.instance_records(q.qtype);
        }
        Vec::new()
    }

    fn instance_records(&self, qtype: QTYPE) -> Vec<ResourceRecord<'static>> {
        let QTYPE::TYPE(t) = qtype else {
            // ANY: what SRV and TXT give.
            let mut r = self.instance_records(QTYPE::TYPE(TYPE::SRV));
            r.extend(self.instance_records(QTYPE::TYPE(TYPE::TXT)));
            return r;
        };
        match t {
            TYPE::SRV => {
                let srv = RData::SRV(SRV {
                    priority: 10,
                    weight: 1,
                    port: self.addr.port(),
                    target: self.host.clone(),
                });
                let mut r = vec![self.record(&self.instance, srv)];
                r.extend(self.instance_records(QTYPE::TYPE(TYPE::A)));
                r.extend(self.instance_records(QTYPE::TYPE(TYPE::AAAA)));
                r
            }
            TYPE::TXT => match TXT::new().with_string(&self.txt) {
                Ok(txt) => vec![self.record(&self.instance, RData::TXT(txt.into_owned()))],
                // Cannot happen: `new` checked the string.
                Err(_) => Vec::new(),
            },
            TYPE::A => match self.addr.ip() {
                IpAddr::V4(ip) => vec![self.record(&self.host, RData::A(A::from(ip)))],
                IpAddr::V6(_) => Vec::new(),
            },
            TYPE::AAAA => match self.addr.ip() {
                IpAddr::V6(ip) => vec![self.record(&self.host, RData::AAAA(AAAA::from(ip)))],
                IpAddr::V4(_) => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

/// The PTR query Serf's poll sends for `service` (multicast reply wanted, no recursion).
pub fn query(service: &Name<'_>, id: u16) -> Packet<'static> {
    let mut q = Packet::new_query(id);
    q.questions.push(Question::new(
        service.clone().into_owned(),
        QTYPE::TYPE(TYPE::PTR),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    q
}

/// A peer found by a query: its instance (node) name and the address to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The node name (the instance name without the service).
    pub node: String,
    /// The address to join.
    pub addr: SocketAddr,
}

/// The peers of `service` a response names: each SRV record of an instance of the service
/// with a port, and an A (else AAAA) record for its target in the same message.
pub fn peers_in(response: &Packet<'_>, service: &Name<'_>) -> Vec<Peer> {
    if !response.has_flags(PacketFlag::RESPONSE) {
        return Vec::new();
    }
    let records: Vec<&ResourceRecord<'_>> = response
        .answers
        .iter()
        .chain(&response.name_servers)
        .chain(&response.additional_records)
        .collect();
    let address = |host: &Name<'_>| {
        let v4 = records.iter().find_map(|r| match &r.rdata {
            RData::A(a) if r.name == *host => Some(IpAddr::V4(a.address.into())),
            _ => None,
        });
        v4.or_else(|| {
            records.iter().find_map(|r| match &r.rdata {
                RData::AAAA(a) if r.name == *host => Some(IpAddr::V6(a.address.into())),
                _ => None,
            })
        })
    };
    let mut peers: Vec<Peer> = Vec::new();
    for r in &records {
        let RData::SRV(srv) = &r.rdata else {
            continue;
        };
        if srv.port == 0 {
            continue;
        }
        let Some(node) = r.name.without(service) else {
            continue;
        };
        let Some(ip) = address(&srv.target) else {
            continue;
        };
        let node = node
            .get_labels()
            .iter()
            .map(|l| String::from_utf8_lossy(l.as_ref()).into_owned())
            .collect::<Vec<_>>()
            .join(".");
        let peer = Peer {
            node,
            addr: SocketAddr::new(ip, srv.port),
        };
        if !peers.contains(&peer) {
            peers.push(peer);
        }
    }
    peers
}

/// Decodes `data` and re-encodes what decodes, and puts it through the responder and the
/// poller's reader: for the fuzz target (nothing may panic, and what was encoded once must
/// decode and encode to the same bytes). Only built with the `fuzzing` feature and in unit
/// tests.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_message(data: &[u8]) {
    let Ok(packet) = decode(data) else {
        return;
    };
    let service = Name::new_unchecked("_serf_c1._tcp.local.");
    let _ = peers_in(&packet, &service);
    if let Ok(me) = Advertised::new("h1", "c1", "vm.", SocketAddr::from(([127, 0, 0, 3], 7946))) {
        if let Some(reply) = me.answer(&packet) {
            let bytes = encode(&reply).expect("an answer encodes");
            decode(&bytes).expect("an answer decodes");
        }
    }
    if let Ok(once) = encode(&packet) {
        let again = decode(&once).expect("an encoded message decodes");
        assert_eq!(encode(&again).ok(), Some(once), "encoding is stable");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

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

    fn me() -> Advertised {
        Advertised::new("h1", "c1", "vm.", "127.0.0.3:7946".parse().unwrap()).unwrap()
    }

    fn svc(cluster: &str) -> Name<'static> {
        service_name(cluster).unwrap()
    }

    fn kind(r: &ResourceRecord<'_>) -> TYPE {
        r.rdata.type_code()
    }

    #[test]
    fn our_query_is_serfs_and_gets_hashicorp_mdns_answer() {
        let bytes = encode(&query(&svc("c1"), 0x1234)).unwrap();
        // The same bytes serf 0.8.2 sends (but for its random ID).
        assert_eq!(&bytes[2..], &hex(SERF_QUERY)[2..]);
        let reply = me().answer(&decode(&bytes).unwrap()).unwrap();
        assert_eq!(reply.id(), 0, "a multicast answer has ID 0");
        assert!(reply.has_flags(PacketFlag::RESPONSE | PacketFlag::AUTHORITATIVE_ANSWER));
        let kinds: Vec<TYPE> = reply.answers.iter().map(kind).collect();
        assert_eq!(kinds, [TYPE::PTR, TYPE::SRV, TYPE::A, TYPE::TXT]);
        assert_eq!(
            reply.answers[0].rdata,
            RData::PTR(PTR(Name::new_unchecked("h1._serf_c1._tcp.local.")))
        );
        let RData::TXT(txt) = &reply.answers[3].rdata else {
            panic!("not TXT")
        };
        let strings: Vec<&[u8]> = txt.iter_raw().map(|(k, _)| k).collect();
        assert_eq!(strings, [&b"Serf 'c1' cluster"[..]]);
        // What we answer, we read back as the peer it describes.
        let wire = encode(&reply).unwrap();
        let back = decode(&wire).unwrap();
        assert_eq!(
            peers_in(&back, &svc("c1")),
            [Peer {
                node: "h1".into(),
                addr: "127.0.0.3:7946".parse().unwrap()
            }]
        );
        assert!(peers_in(&back, &svc("c2")).is_empty());
    }

    #[test]
    fn reads_serfs_own_answer_and_query() {
        let bytes = hex(SERF_RESPONSE);
        let m = decode(&bytes).unwrap();
        assert_eq!(m.answers.len(), 4);
        assert_eq!(m.answers[1].ttl, 120);
        assert_eq!(
            peers_in(&m, &svc("c1")),
            [Peer {
                node: "s1".into(),
                addr: "127.0.0.2:7946".parse().unwrap()
            }]
        );
        let q = hex(SERF_QUERY);
        let m = decode(&q).unwrap();
        assert_eq!(m.id(), 0xe019);
        assert_eq!(
            encode(&m).unwrap(),
            q,
            "serf's query encodes back to its bytes"
        );
        assert_eq!(me().answer(&m).unwrap().answers.len(), 4);
        let other = Advertised::new("s9", "c2", "vm.", "127.0.0.9:1".parse().unwrap()).unwrap();
        assert!(other.answer(&m).is_none(), "another cluster's query");
    }

    #[test]
    fn answers_only_what_is_asked() {
        let ask = |name: &'static str, t: QTYPE, unicast: bool| {
            let mut p = Packet::new_query(9);
            p.questions.push(Question::new(
                Name::new_unchecked(name),
                t,
                QCLASS::CLASS(CLASS::IN),
                unicast,
            ));
            p
        };
        let t = QTYPE::TYPE;
        let m = me();
        assert!(m
            .answer(&ask("_serf_c2._tcp.local.", t(TYPE::PTR), false))
            .is_none());
        assert!(m
            .answer(&ask("_serf_c1._tcp.local.", t(TYPE::A), false))
            .is_none());
        let srv = m
            .answer(&ask("h1._serf_c1._tcp.local.", t(TYPE::SRV), false))
            .unwrap();
        assert_eq!(srv.answers.len(), 2, "SRV and its A");
        let txt = m
            .answer(&ask("H1._serf_c1._tcp.local.", t(TYPE::TXT), true))
            .unwrap();
        assert_eq!(txt.id(), 9, "a unicast answer keeps the query's ID");
        assert_eq!(txt.answers.len(), 1);
        let a = m.answer(&ask("vm.", t(TYPE::A), false)).unwrap();
        assert_eq!(
            a.answers[0].rdata,
            RData::A(Ipv4Addr::new(127, 0, 0, 3).into())
        );
        let e = m
            .answer(&ask("_services._dns-sd._udp.local", t(TYPE::PTR), false))
            .unwrap();
        assert_eq!(e.answers[0].rdata, RData::PTR(PTR(svc("c1"))));
        let any = m
            .answer(&ask("h1._serf_c1._tcp.local.", QTYPE::ANY, false))
            .unwrap();
        let kinds: Vec<TYPE> = any.answers.iter().map(kind).collect();
        assert_eq!(kinds, [TYPE::SRV, TYPE::A, TYPE::TXT]);
        // Responses and other opcodes get no answer.
        let mut r = ask("_serf_c1._tcp.local.", t(TYPE::PTR), false);
        r.set_flags(PacketFlag::RESPONSE);
        assert!(m.answer(&r).is_none());
        let mut r = ask("_serf_c1._tcp.local.", t(TYPE::PTR), false);
        *r.opcode_mut() = OPCODE::Update;
        assert!(m.answer(&r).is_none());
        // A query is not a response: it names no peers.
        assert!(peers_in(&r, &svc("c1")).is_empty());
    }

    #[test]
    fn ipv6_advertise_answers_aaaa() {
        let m = Advertised::new("n", "c", "h.", "[::1]:7946".parse().unwrap()).unwrap();
        let reply = m.answer(&query(&svc("c"), 1)).unwrap();
        assert!(reply
            .answers
            .iter()
            .any(|r| r.rdata == RData::AAAA(Ipv6Addr::LOCALHOST.into())));
        assert_eq!(
            peers_in(&reply, &svc("c"))[0].addr,
            "[::1]:7946".parse().unwrap()
        );
    }

    #[test]
    fn names_dns_cannot_carry_are_errors() {
        let long = "x".repeat(64);
        let e = service_name(&long).unwrap_err().to_string();
        assert!(e.contains("is not a DNS name"), "{e}");
        let addr = "127.0.0.1:1".parse().unwrap();
        assert!(Advertised::new(&long, "c", "h.", addr).is_err());
        assert!(Advertised::new("n", "c", &long, addr).is_err());
        assert!(Advertised::new("n", "c", "h.", addr).is_ok());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let good = hex(SERF_RESPONSE);
        // Every prefix of a good message is cut short somewhere.
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "prefix of {n} bytes");
        }
        let header = hex("000000000001000000000000");
        let with = |tail: &[u8]| [&header[..], tail].concat();
        // A pointer to itself, and one pointing forwards.
        assert!(decode(&with(&[0xc0, 12, 0, 12, 0, 1])).is_err());
        assert!(decode(&with(&[0xc0, 40, 0, 12, 0, 1])).is_err());
        // A reserved label type (0x40).
        assert!(decode(&with(&[0x41, b'a', 0, 0, 12, 0, 1])).is_err());
        // A name of more than 255 bytes.
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'x'; 63]);
        }
        long.extend_from_slice(&[0, 0, 12, 0, 1]);
        assert!(decode(&with(&long)).is_err());
        // A PTR whose name runs past the record's length.
        let mut m = hex("000084000000000100000000");
        m.extend_from_slice(&[0, 0, 12, 0, 1, 0, 0, 0, 120, 0, 1, 1, b'a', 0]);
        assert!(decode(&m).is_err());
        // Huge counts on a tiny packet are refused before parsing.
        assert_eq!(
            decode(&hex("0000000000ffffffffffffff")).unwrap_err(),
            SimpleDnsError::InsufficientData
        );
        fuzz_message(&good);
        fuzz_message(&hex(SERF_QUERY));
    }

    /// A short stand-in for the fuzz target that runs with the unit tests: serf's answer and
    /// query with random bytes changed or cut off, and random bytes, through the same check.
    #[test]
    fn mutated_and_random_packets_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0x6d646e73);
        let seeds = [hex(SERF_RESPONSE), hex(SERF_QUERY)];
        let mut decoded = 0;
        for i in 0..20_000 {
            let mut p = seeds[i % 2].clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..p.len());
                p[i] = rng.gen();
            }
            if rng.gen_bool(0.2) {
                p.truncate(rng.gen_range(0..p.len()));
            }
            decoded += usize::from(decode(&p).is_ok());
            fuzz_message(&p);
            let random: Vec<u8> = (0..rng.gen_range(0..80)).map(|_| rng.gen()).collect();
            fuzz_message(&random);
        }
        assert!(decoded > 1000, "mutations mostly decode: {decoded}");
    }
}
