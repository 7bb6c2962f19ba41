//! Wire-level interop with the real `serf` binary (Go memberlist): our sealed packets and
//! streams must be accepted, and its replies must open with our codec.
//!
//! Needs `serf` on PATH (`scripts/setup.sh` installs it); agents bind free loopback ports.
//! Uses std sockets directly: this checks bytes, not the sans-io state machine.

use hearsay_swim::keyring::Keyring;
use hearsay_swim::wire::{
    encode_compressed, encode_message, Codec, Message, Ping, PushPull, StreamMessage, WireConfig,
};
use hearsay_testkit::serf::Serf;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::io::ErrorKind;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

/// A key as `serf keygen` prints it (base64 of 16 bytes).
const KEY_B64: &str = "aGVhcnNheS1pbnRlcm9wIQ==";

/// A serf agent named `ref`, encrypted with [`KEY_B64`] or not; ready within 10 s.
fn start_serf(encrypt: bool) -> Serf {
    let tag = if encrypt { "encrypted" } else { "plain" };
    let dir = std::env::temp_dir().join(format!(
        "hearsay-swim-serf-interop-{tag}-{}",
        std::process::id()
    ));
    let args: Vec<String> = encrypt
        .then(|| format!("-encrypt={KEY_B64}"))
        .into_iter()
        .collect();
    Serf::launch(dir, "ref", &args, Duration::from_secs(10))
}

fn keyring() -> Keyring {
    Keyring::from_base64_keys(&[KEY_B64]).unwrap()
}

fn codec(encrypt: bool, compression: bool) -> Codec {
    Codec::new(
        WireConfig {
            compression,
            ..WireConfig::default()
        },
        encrypt.then(keyring),
    )
}

/// Sends `pkt` and returns every message in the replies until an ack for `seq` arrives. UDP
/// may be lost (or serf slow on a loaded machine): the ping is sent again after 3 s of silence,
/// 5 times at most.
fn ping_until_ack(agent: &Serf, c: &Codec, pkt: &[u8], seq: u32) -> Vec<Message> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    sock.send_to(pkt, ("127.0.0.1", agent.bind)).unwrap();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut sends = 1;
    loop {
        let (n, _) = match sock.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if sends < 5 && matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                sends += 1;
                sock.send_to(pkt, ("127.0.0.1", agent.bind)).unwrap();
                continue;
            }
            Err(e) => panic!("no reply from serf after {sends} pings: {e}"),
        };
        let opened = c.open_packet(&buf[..n]).expect("serf's packet opens");
        assert!(opened.errors.is_empty(), "{:?}", opened.errors);
        let done = opened
            .messages
            .iter()
            .any(|m| matches!(m, Message::Ack(a) if a.seq_no == seq));
        seen.extend(opened.messages);
        if done {
            return seen;
        }
    }
}

fn ping(seq_no: u32) -> Message {
    Message::Ping(Ping {
        seq_no,
        node: "ref".into(),
        ..Default::default()
    })
}

fn udp_cases(agent: &Serf, encrypt: bool) {
    let c = codec(encrypt, true);
    let mut rng = StdRng::seed_from_u64(1);
    // Plain ping, with a CRC header, and forced through LZW (Go must read our compressor).
    let pkt = c.seal_packet(&encode_message(&ping(1)), false, &mut rng);
    ping_until_ack(agent, &c, &pkt, 1);
    let pkt = c.seal_packet(&encode_message(&ping(2)), true, &mut rng);
    ping_until_ack(agent, &c, &pkt, 2);
    let forced = encode_compressed(&encode_message(&ping(3)));
    let pkt = codec(encrypt, false).seal_packet(&forced, true, &mut rng);
    ping_until_ack(agent, &c, &pkt, 3);
}

fn push_pull(agent: &Serf, encrypt: bool, compression: bool) -> PushPull {
    let c = codec(encrypt, compression);
    let mut rng = StdRng::seed_from_u64(2);
    let req = StreamMessage::PushPull(PushPull::default());
    let mut conn = TcpStream::connect(("127.0.0.1", agent.bind)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(&c.seal_stream(&req, &mut rng)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((msg, used)) = c.open_stream_reply(&buf).expect("serf's reply opens") {
            assert_eq!(used, buf.len());
            match msg {
                StreamMessage::PushPull(pp) => return pp,
                other => panic!("expected push/pull, got {other:?}"),
            }
        }
        let n = conn.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "serf closed the stream early after {} bytes",
            buf.len()
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn check_state(pp: &PushPull) {
    let me = pp
        .nodes
        .iter()
        .find(|n| n.name == "ref")
        .expect("serf lists itself");
    assert_eq!(me.addr, vec![127, 0, 0, 1]);
    assert_eq!(me.vsn.len(), 6);
    // Serf's own push/pull state (messagePushPull) rides as user state.
    assert!(!pp.user_state.is_empty());
}

#[test]
fn plaintext_udp_and_tcp() {
    let agent = start_serf(false);
    udp_cases(&agent, false);
    check_state(&push_pull(&agent, false, false));
    check_state(&push_pull(&agent, false, true));
}

#[test]
fn encrypted_udp_and_tcp() {
    let agent = start_serf(true);
    udp_cases(&agent, true);
    check_state(&push_pull(&agent, true, false));
    check_state(&push_pull(&agent, true, true));
}
