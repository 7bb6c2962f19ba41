//! Outbound HTTP from a real guest (the `fetch` test guest, through the SDK's `http` client)
//! against servers on 127.0.0.1 that count their connections: granted URLs are answered; URLs off
//! the allow-list (other port, other path, traversal, other scheme or host) and handlers without
//! `http` grants are denied without a connection; bodies over the cap, a certificate no system
//! root signed, and silent servers fail. Every wait is bounded; nothing asserts speed.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use hearsay_host::{Handler, Host, HostConfig, HttpAllow, Outcome, TrapKind};
use support::server::Server;
use support::{guests, query, run, scratch_dir, spec, trap, TestEmbedder};

fn host() -> Host {
    static CACHE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(|| scratch_dir("http-cache").join("cache"));
    Host::new(HostConfig {
        workers: 2,
        cache_dir: Some(cache.clone()),
        ..HostConfig::default()
    })
    .unwrap()
}

/// The fetch guest with `allow` as its http grants.
fn fetch(host: &Host, allow: &[String]) -> Handler {
    let mut s = spec("fetch", &guests().fetch);
    s.grants.http = allow
        .iter()
        .map(|a| a.parse::<HttpAllow>().unwrap())
        .collect();
    host.load(s).unwrap()
}

/// Runs query `name` (get, post, quick) with `url` and returns the guest's answer.
fn ask(host: &Host, handler: &Handler, name: &str, url: &str) -> String {
    let emb = TestEmbedder::new();
    let outcome = run(host, handler, query(name, url.as_bytes()), emb.clone());
    assert_eq!(outcome, Outcome::Ok, "{name} {url}");
    emb.reply_text()
}

#[test]
fn a_granted_url_is_answered() {
    let server = Server::answering("200 OK", b"hello from the server");
    let host = host();
    let handler = fetch(&host, &[server.url("/ci")]);
    assert_eq!(
        ask(&host, &handler, "get", &server.url("/ci/status?verbose=1")),
        "200 hello from the server"
    );
    assert_eq!(
        ask(&host, &handler, "post", &server.url("/ci")),
        "200 hello from the server"
    );
    assert_eq!(server.accepted(), 2);
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen[0]
            .head
            .starts_with("GET /ci/status?verbose=1 HTTP/1.1\r\n"),
        "{seen:?}"
    );
    let host_field = format!("host: 127.0.0.1:{}\r\n", server.port);
    assert!(
        seen[0].head.to_ascii_lowercase().contains(&host_field),
        "{seen:?}"
    );
    assert!(
        seen[1].head.starts_with("POST /ci HTTP/1.1\r\n"),
        "{seen:?}"
    );
    assert!(
        seen[1]
            .head
            .to_ascii_lowercase()
            .contains("content-type: text/plain\r\n"),
        "{seen:?}"
    );
    assert_eq!(seen[1].body, b"ping");
}

#[test]
fn urls_off_the_list_are_denied_and_open_no_connection() {
    let server = Server::answering("200 OK", b"granted");
    let other = Server::answering("200 OK", b"never");
    let host = host();
    let handler = fetch(&host, &[server.url("/ci")]);
    let port = server.port;
    for url in [
        other.url("/ci"),
        server.url("/admin"),
        server.url("/cix"),
        server.url("/"),
        server.url("/ci/../admin"),
        server.url("/ci/%2e%2e/admin"),
        server.url("/ci/%2E%2E/admin"),
        server.url("/ci/..;/admin"),
        server.url("/ci%2fadmin"),
        format!("https://127.0.0.1:{port}/ci"),
        format!("http://localhost:{port}/ci"),
        format!("http://user@127.0.0.1:{port}/ci"),
    ] {
        let answer = ask(&host, &handler, "get", &url);
        assert!(
            answer.starts_with("error denied: denied by the agent's http allow-list"),
            "{url}: {answer}"
        );
    }
    // Denials are decided before any socket: the allowed request after them is the first
    // connection either server ever saw.
    assert_eq!(
        ask(&host, &handler, "get", &server.url("/ci/x")),
        "200 granted"
    );
    assert_eq!((server.accepted(), other.accepted()), (1, 0));
}

#[test]
fn a_handler_without_http_grants_is_denied() {
    let server = Server::answering("200 OK", b"never");
    let host = host();
    let handler = fetch(&host, &[]);
    for url in [server.url("/"), server.url("/anything")] {
        let answer = ask(&host, &handler, "get", &url);
        assert!(answer.starts_with("error denied:"), "{url}: {answer}");
    }
    assert_eq!(server.accepted(), 0);
}

#[test]
fn a_body_over_the_cap_is_an_error() {
    const CAP: usize = 1 << 20;
    let host = host();

    // Announced by its Content-Length.
    let long = Server::answering("200 OK", &vec![b'x'; CAP + 1]);
    let handler = fetch(&host, &[long.url("/")]);
    let answer = ask(&host, &handler, "get", &long.url("/big"));
    assert!(answer.starts_with("error too-large:"), "{answer}");

    // Streamed in chunks, without a length: the read past the cap fails.
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..(CAP / 0x4000 + 1) {
        chunked.extend_from_slice(b"4000\r\n");
        chunked.extend_from_slice(&[b'y'; 0x4000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let streamed = Server::start(Some(chunked));
    let handler = fetch(&host, &[streamed.url("/")]);
    let answer = ask(&host, &handler, "get", &streamed.url("/big"));
    assert!(answer.starts_with("error too-large:"), "{answer}");

    // Exactly the cap is fine.
    let full = Server::answering("200 OK", &vec![b'z'; CAP]);
    let handler = fetch(&host, &[full.url("/")]);
    let answer = ask(&host, &handler, "get", &full.url("/"));
    assert_eq!(answer.len(), "200 ".len() + CAP);
}

#[test]
fn a_server_that_never_answers_ends_the_event_at_its_deadline() {
    let silent = Server::start(None);
    let host = host();
    let mut s = spec("fetch", &guests().fetch);
    s.grants.http = vec![silent.url("/").parse().unwrap()];
    s.limits.timeout = Duration::from_secs(1);
    let handler = host.load(s).unwrap();
    let emb = TestEmbedder::new();
    let outcome = run(
        &host,
        &handler,
        query("get", silent.url("/").as_bytes()),
        emb.clone(),
    );
    let (kind, message) = trap(&outcome);
    assert_eq!(kind, TrapKind::Deadline, "{message}");
    assert!(
        emb.replies.lock().unwrap().is_empty(),
        "no reply after the deadline"
    );
    assert_eq!(handler.stats().timeouts, 1);
    assert_eq!(silent.accepted(), 1);
}

#[test]
fn the_guests_own_timeout_gives_it_an_error_to_report() {
    let silent = Server::start(None);
    let host = host();
    let handler = fetch(&host, &[silent.url("/")]);
    let answer = ask(&host, &handler, "quick", &silent.url("/"));
    assert!(
        answer.starts_with("error response: response failed: timed out"),
        "{answer}"
    );
}

#[test]
fn https_refuses_a_certificate_no_system_root_signed() {
    let port = tls_server();
    let host = host();
    let url = format!("https://127.0.0.1:{port}/");
    let handler = fetch(&host, std::slice::from_ref(&url));
    let answer = ask(&host, &handler, "get", &url);
    assert!(answer.starts_with("error connection:"), "{answer}");
    // With no system roots at all the request fails before TLS; with them, the certificate does.
    if std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        assert!(answer.contains("TLS certificate not trusted"), "{answer}");
    }
}

/// An HTTPS server on 127.0.0.1 with a fresh self-signed certificate; its port.
fn tls_server() -> u16 {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { return };
            let config = config.clone();
            std::thread::spawn(move || {
                let mut tls = rustls::ServerConnection::new(config).unwrap();
                let mut stream = rustls::Stream::new(&mut tls, &mut socket);
                let mut buf = [0u8; 1024];
                if stream.read(&mut buf).is_ok() {
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret");
                }
            });
        }
    });
    port
}

#[test]
fn only_a_guest_that_sends_http_imports_wasi_http() {
    let engine = wasmtime::Engine::default();
    let imports = |path: &std::path::Path| -> Vec<String> {
        let component = wasmtime::component::Component::from_file(&engine, path).unwrap();
        component
            .component_type()
            .imports(&engine)
            .map(|(name, _)| name.to_string())
            .collect()
    };
    let fetch = imports(&guests().fetch);
    let http: Vec<&String> = fetch
        .iter()
        .filter(|n| n.starts_with("wasi:http/"))
        .collect();
    assert!(
        http.iter()
            .any(|n| n.starts_with("wasi:http/outgoing-handler@0.2"))
            && http.iter().any(|n| n.starts_with("wasi:http/types@0.2"))
            && http.len() == 2,
        "{fetch:?}"
    );
    assert!(
        !fetch.iter().any(|n| n.starts_with("wasi:sockets/")),
        "{fetch:?}"
    );
    let echo = imports(&guests().echo);
    assert!(
        !echo.iter().any(|n| n.starts_with("wasi:http/")),
        "{echo:?}"
    );
}
