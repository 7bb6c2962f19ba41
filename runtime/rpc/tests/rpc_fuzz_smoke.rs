//! Runs the `rpc_request` fuzz entry point (`hearsay_rpc::fuzzing::fuzz_requests`, see
//! `runtime/rpc/fuzz`) over a few thousand inputs on every `cargo test`, not only under
//! cargo-fuzz: valid request streams (every command with its body, as Serf's client writes
//! them, and hearsay's own commands) built from a seeded RNG, then mutated (bytes flipped,
//! cut, inserted, spliced), plus uniformly random bytes.

use hearsay_rpc::codec::{self, map, s, RequestHeader, Value};
use hearsay_rpc::fuzzing::fuzz_requests;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

const INPUTS: usize = 4000;

fn word(rng: &mut StdRng) -> String {
    let len = rng.gen_range(0..12);
    (0..len)
        .map(|_| rng.gen_range(b'a'..=b'z') as char)
        .collect()
}

fn body(rng: &mut StdRng, command: &str) -> Option<Value> {
    let mut tags = BTreeMap::new();
    for _ in 0..rng.gen_range(0..3) {
        tags.insert(word(rng), word(rng));
    }
    let names = vec![word(rng), word(rng)];
    Some(match command {
        "handshake" => map(vec![("Version", Value::Uint(rng.gen_range(0..3)))]),
        "auth" => map(vec![("AuthKey", s(&word(rng)))]),
        "event" => map(vec![
            ("Name", s(&word(rng))),
            ("Payload", Value::Raw(word(rng).into_bytes())),
            ("Coalesce", Value::Bool(rng.gen())),
        ]),
        "force-leave" => map(vec![
            ("Node", s(&word(rng))),
            ("Prune", Value::Bool(rng.gen())),
        ]),
        "join" => map(vec![
            ("Existing", codec::strings(&names)),
            ("Replay", Value::Bool(rng.gen())),
        ]),
        "members-filtered" => map(vec![
            ("Tags", codec::string_map(&tags)),
            ("Status", s(&word(rng))),
            ("Name", s(&word(rng))),
        ]),
        "tags" => map(vec![
            ("Tags", codec::string_map(&tags)),
            ("DeleteTags", codec::strings(&names)),
        ]),
        "stream" => map(vec![("Type", s("member-join,user:deploy"))]),
        "monitor" => map(vec![("LogLevel", s("debug"))]),
        "stop" => map(vec![("Stop", Value::Uint(rng.gen()))]),
        "query" => map(vec![
            ("FilterNodes", codec::strings(&names)),
            ("FilterTags", codec::string_map(&tags)),
            ("RequestAck", Value::Bool(rng.gen())),
            ("RelayFactor", Value::Uint(rng.gen_range(0..4))),
            ("Timeout", codec::int(rng.gen_range(-5..5_000_000_000))),
            ("Name", s(&word(rng))),
            ("Payload", Value::Raw(word(rng).into_bytes())),
        ]),
        "respond" => map(vec![
            ("ID", Value::Uint(rng.gen())),
            ("Payload", Value::Raw(word(rng).into_bytes())),
        ]),
        "install-key" | "use-key" | "remove-key" => map(vec![("Key", s(&word(rng)))]),
        "get-coordinate" => map(vec![("Node", s(&word(rng)))]),
        "deploy" => map(vec![
            ("Deployment", Value::Raw(word(rng).into_bytes())),
            ("Module", Value::Raw(word(rng).into_bytes())),
        ]),
        _ => return None,
    })
}

const COMMANDS: [&str; 24] = [
    "handshake",
    "auth",
    "event",
    "force-leave",
    "join",
    "members",
    "members-filtered",
    "tags",
    "stream",
    "monitor",
    "stop",
    "leave",
    "query",
    "respond",
    "install-key",
    "use-key",
    "remove-key",
    "list-keys",
    "stats",
    "get-coordinate",
    "handlers",
    "deploy",
    "deployments",
    "bogus",
];

fn valid_input(rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::new();
    for seq in 0..rng.gen_range(1..4) {
        let command = COMMANDS[rng.gen_range(0..COMMANDS.len())];
        let h = RequestHeader {
            command: command.into(),
            seq,
        };
        out.extend(codec::frame(&h.to_value(), body(rng, command).as_ref()));
    }
    out
}

fn mutate(rng: &mut StdRng, mut b: Vec<u8>, other: &[u8]) -> Vec<u8> {
    for _ in 0..rng.gen_range(1..4) {
        match rng.gen_range(0..5) {
            0 if !b.is_empty() => b.truncate(rng.gen_range(0..b.len())),
            1 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                b[i] ^= 1 << rng.gen_range(0..8);
            }
            2 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
            }
            3 if !other.is_empty() => {
                let at = rng.gen_range(0..=b.len());
                let from = rng.gen_range(0..other.len());
                b.splice(at..at, other[from..].iter().copied());
            }
            _ => b.push(rng.gen()),
        }
    }
    b
}

#[test]
fn valid_inputs_decode() {
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..INPUTS / 4 {
        fuzz_requests(&valid_input(&mut rng));
    }
}

#[test]
fn mutated_inputs_never_panic() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut prev = Vec::new();
    for _ in 0..INPUTS {
        let input = valid_input(&mut rng);
        fuzz_requests(&mutate(&mut rng, input.clone(), &prev));
        prev = input;
    }
}

#[test]
fn random_inputs_never_panic() {
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..INPUTS {
        let len = rng.gen_range(0..64);
        let b: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        fuzz_requests(&b);
    }
}
