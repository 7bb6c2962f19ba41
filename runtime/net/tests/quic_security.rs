//! Who may talk to whom over real QUIC on loopback: pinned fingerprints are checked by the
//! connecting side, client certificates by the accepting side (and its member filter), a
//! client without a certificate is refused, and CA mode accepts its own CA's certificates and
//! refuses another CA's.

mod quic_common;

use hearsay_net::quic::{
    tls, Fingerprint, Identity, QuicAdvert, QuicConfig, QuicEndpoint, QuicError, Security,
};
use quic_common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Sends a small response and reports how it went.
async fn try_send(node: &QuicEndpoint, to: &QuicAdvert, name: &str) -> Result<(), QuicError> {
    send_pattern(node, to, header(name, 1, None), 1, 4000, 1000)
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_side_refuses_a_server_with_another_fingerprint() {
    let (origin, mut incoming) = bind("origin");
    let (node, _rx) = bind("r1");
    let wrong = QuicAdvert {
        addr: origin.advert().addr,
        fingerprint: Identity::generate("impostor").unwrap().fingerprint(),
    };
    let e = try_send(&node, &wrong, "r1").await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, QuicError::Connect { .. }), "{msg}");
    assert!(
        msg.contains("does not match the pinned fingerprint"),
        "{msg}"
    );
    assert!(msg.contains(&wrong.fingerprint.to_string()), "{msg}");
    assert!(!arrives_within(&mut incoming, Duration::from_millis(300)).await);
    // With the right fingerprint the same pair works.
    let to = origin.advert();
    let send = tokio::spawn(async move { try_send(&node, &to, "r1").await });
    let mut resp = next(&mut incoming).await;
    assert_eq!(read_pattern(&mut resp, 1).await.unwrap().bytes, 4000);
    send.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_side_refuses_a_client_that_is_not_a_member() {
    let (member, _rx1) = bind("member");
    let (stranger, _rx2) = bind("stranger");
    let known = member.fingerprint();
    let mut cfg = config("origin");
    cfg.peer_filter = Some(Arc::new(move |fp: &Fingerprint| *fp == known));
    let (origin, mut incoming) = QuicEndpoint::bind(cfg).unwrap();
    let to = origin.advert();

    let e = try_send(&stranger, &to, "stranger").await.unwrap_err();
    assert!(
        e.to_string().contains("does not belong to a known member"),
        "{e}"
    );
    assert!(
        matches!(e, QuicError::Connect { .. } | QuicError::Send { .. }),
        "{e}"
    );
    assert!(!arrives_within(&mut incoming, Duration::from_millis(300)).await);

    let send = tokio::spawn(async move { try_send(&member, &to, "member").await });
    let mut resp = next(&mut incoming).await;
    assert_eq!(resp.header.from, "member");
    assert_eq!(resp.peer, known);
    read_pattern(&mut resp, 1).await.unwrap();
    send.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_is_refused() {
    let (origin, mut incoming) = bind("origin");
    let client = quinn::Endpoint::client(loopback()).unwrap();
    let cfg = tls::client_config(
        None,
        origin.fingerprint(),
        None,
        Arc::new(quinn::TransportConfig::default()),
    )
    .unwrap();
    let attempt = async {
        let conn = client
            .connect_with(cfg, origin.advert().addr, tls::SERVER_NAME)?
            .await?;
        let (mut send, mut verdict) = conn.open_bi().await?;
        let h = header("anon", 1, None).encode()?;
        send.write_all(&h).await?;
        send.write_all(b"body").await?;
        send.finish()?;
        verdict.read_to_end(64).await?;
        anyhow::Ok(())
    };
    let outcome = tokio::time::timeout(WAIT, attempt).await.unwrap();
    assert!(
        outcome.is_err(),
        "a client without a certificate got through"
    );
    assert!(!arrives_within(&mut incoming, Duration::from_millis(300)).await);
}

/// A CA and certificates it issues, written as PEM files.
struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// Issues a node certificate and writes `<name>.crt` / `<name>.key` in `dir`.
    fn issue(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.cert.pem()).unwrap();
        p
    }
}

fn ca_node(
    ca_file: &Path,
    (cert, key): (PathBuf, PathBuf),
) -> (QuicEndpoint, hearsay_net::quic::IncomingResponses) {
    let security = Security::ca_from_pem_files(ca_file, &cert, &key).unwrap();
    QuicEndpoint::bind(QuicConfig::new(loopback(), security)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_mode_accepts_its_own_ca_and_refuses_another() {
    let dir = std::env::temp_dir().join(format!("hearsay-quic-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = TestCa::new("hearsay test CA");
    let other = TestCa::new("some other CA");
    let ca_file = ca.write(&dir, "ca.pem");

    let (a, mut a_in) = ca_node(&ca_file, ca.issue(&dir, "a"));
    let (b, mut b_in) = ca_node(&ca_file, ca.issue(&dir, "b"));
    // c trusts our CA but holds a certificate from another one.
    let (c, mut c_in) = ca_node(&ca_file, other.issue(&dir, "c"));

    // b -> a: both certificates chain to the CA.
    let to_a = a.advert();
    let b2 = b.clone();
    let send = tokio::spawn(async move { try_send(&b2, &to_a, "b").await });
    let mut resp = next(&mut a_in).await;
    assert_eq!(resp.peer, b.fingerprint());
    assert_eq!(read_pattern(&mut resp, 1).await.unwrap().bytes, 4000);
    send.await.unwrap().unwrap();

    // c -> a: a refuses c's client certificate.
    let e = try_send(&c, &a.advert(), "c").await.unwrap_err();
    assert!(e.to_string().contains("client certificate"), "{e}");
    assert!(e.to_string().contains("not signed by the CA"), "{e}");
    assert!(
        matches!(e, QuicError::Connect { .. } | QuicError::Send { .. }),
        "{e}"
    );
    assert!(!arrives_within(&mut a_in, Duration::from_millis(300)).await);

    // a -> c: a refuses c's server certificate, even with c's own fingerprint pinned.
    let e = try_send(&a, &c.advert(), "a").await.unwrap_err();
    assert!(e.to_string().contains("not signed by the CA"), "{e}");
    assert!(!arrives_within(&mut c_in, Duration::from_millis(300)).await);

    // A CA-signed certificate still has to be the one the advert names.
    let swapped = QuicAdvert {
        addr: b.advert().addr,
        fingerprint: a.fingerprint(),
    };
    let e = try_send(&a, &swapped, "a").await.unwrap_err();
    assert!(
        e.to_string()
            .contains("does not match the pinned fingerprint"),
        "{e}"
    );
    assert!(!arrives_within(&mut b_in, Duration::from_millis(300)).await);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ca_mode_names_a_missing_or_empty_file() {
    let dir = std::env::temp_dir().join(format!("hearsay-quic-cafile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.pem");
    let e = Security::ca_from_pem_files(&missing, &missing, &missing)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing.pem"), "{e}");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not pem").unwrap();
    let e = Security::ca_from_pem_files(&empty, &empty, &empty)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no CERTIFICATE block"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
