//! Interop of the keyring with the real `serf` agent (memberlist v0.2.2): it reads our keys
//! (in the keyring file format), opens our packets and streams, and we open its replies; its
//! rewritten keyring file holds the keys in our base64 form, in the layout
//! `hearsay_agent::keyring_file` writes. Needs `serf` on the PATH (`scripts/setup.sh` installs
//! it from Debian's packages).

use hearsay_swim::keyring::{encode_base64_key, encrypted_length};
use hearsay_swim::Keyring;
use hearsay_testkit::serf::{require_serf, Serf};
use hearsay_testkit::WAIT;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

/// memberlist's `encryptMsg` stream prefix.
const ENCRYPT_MSG: u8 = 10;

/// `serf keys <args>` against `agent`; panics unless it succeeds.
fn keys(agent: &Serf, args: &[&str]) {
    let out = Command::new("serf")
        .arg("keys")
        .args(args)
        .arg(agent.rpc_arg())
        .output()
        .unwrap();
    assert!(out.status.success(), "serf keys {args:?}: {out:?}");
}

/// Serf's keyring file for `keys` (base64, which needs no JSON escaping), as Serf writes it:
/// Go's `json.MarshalIndent(keys, "", "  ")`.
fn key_file(keys: &[String]) -> String {
    let lines: Vec<String> = keys.iter().map(|k| format!("  \"{k}\"")).collect();
    format!("[\n{}\n]", lines.join(",\n"))
}

/// A serf agent reading `keyring` from its keyring file.
fn start_agent(keyring: &Keyring) -> Serf {
    let dir = std::env::temp_dir().join(format!("hearsay-keyring-serf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("keyring.json"),
        key_file(&keyring.to_base64_keys()),
    )
    .unwrap();
    let keyring_file = format!("-keyring-file={}", dir.join("keyring.json").display());
    Serf::launch(dir, "keyring-interop", &[keyring_file], WAIT)
}

/// `[pingMsg]{"SeqNo": seq}` in go-msgpack's encoding; an empty Node is accepted.
fn ping(seq: u8) -> Vec<u8> {
    let mut msg = vec![0, 0x81, 0xA5];
    msg.extend_from_slice(b"SeqNo");
    msg.push(seq);
    msg
}

/// The message types an ack can arrive in: ackResp, compound, compress, hasCrc.
fn is_ack_envelope(plain: &[u8]) -> bool {
    matches!(plain.first(), Some(2 | 7 | 9 | 12))
}

#[test]
fn keyring_interop_with_serf() {
    require_serf();
    let (k1, k2, k3) = (vec![0x11; 32], vec![0x22; 16], vec![0x33; 24]);
    let ours = Keyring::new(k1.clone(), vec![k2.clone()]).unwrap();
    let agent = start_agent(&ours);
    assert!(
        agent.log().contains("Restored keyring with 2 keys"),
        "{}",
        agent.log()
    );
    // We open serf's replies with its primary held as our secondary.
    let reader = Keyring::new(k3.clone(), vec![k1.clone()]).unwrap();
    let secondary_only = Keyring::new(k2.clone(), vec![]).unwrap();
    let mut rng = rand::thread_rng();

    // UDP: both versions, sealed with serf's primary and with its secondary.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for (i, (sender, vsn)) in [(&ours, 1), (&ours, 0), (&secondary_only, 1)]
        .into_iter()
        .enumerate()
    {
        let frame = sender.encrypt(vsn, &ping(i as u8 + 1), &[], &mut rng);
        sock.send_to(&frame, ("127.0.0.1", agent.bind)).unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no ack for ping {i}: {e}\n{}", agent.log()));
        assert_eq!(buf[0], 1, "protocol >= 2 replies with version 1");
        let plain = reader.decrypt(&buf[..n], &[]).unwrap();
        assert!(is_ack_envelope(&plain), "{plain:02x?}");
    }

    // TCP: the 5-byte stream header is the additional data, both ways.
    for vsn in [1, 0] {
        let msg = ping(0x10 + vsn);
        let mut out = vec![ENCRYPT_MSG];
        out.extend_from_slice(&(encrypted_length(vsn, msg.len()) as u32).to_be_bytes());
        let header = out.clone();
        ours.encrypt_into(vsn, &msg, &header, &mut rng, &mut out);
        let mut conn = TcpStream::connect(("127.0.0.1", agent.bind)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(&out).unwrap();
        let mut hdr = [0u8; 5];
        conn.read_exact(&mut hdr).unwrap();
        assert_eq!(hdr[0], ENCRYPT_MSG);
        let mut body = vec![0u8; u32::from_be_bytes([hdr[1], hdr[2], hdr[3], hdr[4]]) as usize];
        conn.read_exact(&mut body).unwrap();
        let plain = reader.decrypt(&body, &hdr).unwrap();
        assert!(is_ack_envelope(&plain), "{plain:02x?}");
        assert!(reader.decrypt(&body, &[]).is_err());
    }

    // Key management through serf rewrites the file in the format we read and write.
    let b64 = encode_base64_key(&k3);
    keys(&agent, &[&format!("-install={b64}")]);
    keys(&agent, &[&format!("-use={b64}")]);
    keys(
        &agent,
        &[&format!("-remove={}", encode_base64_key(&[0x44; 16]))],
    );
    let text = std::fs::read_to_string(agent.dir.join("keyring.json")).unwrap();
    let keys = [k3.clone(), k1.clone(), k2.clone()].map(|k| encode_base64_key(&k));
    assert_eq!(text, key_file(&keys));
    let theirs = Keyring::from_base64_keys(&keys).unwrap();
    assert_eq!(theirs.keys(), [k3.clone(), k1.clone(), k2.clone()]);

    let mut mirror = ours.clone();
    mirror.add_key(&k3).unwrap();
    mirror.use_key(&k3).unwrap();
    mirror.remove_key(&[0x44; 16]).unwrap();
    assert_eq!(mirror, theirs);
}
