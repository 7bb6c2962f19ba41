//! The server's bounds on connections, over real TCP on loopback: the cap on connections open
//! at once ([`ServerOptions::max_connections`]), the time a new connection has to complete
//! the handshake and `auth` ([`ServerOptions::handshake_timeout`]), and the count of open
//! connections ([`RpcServer::connections`]) returning to zero as clients go. Every wait is
//! bounded; nothing asserts how fast the server is.

use async_trait::async_trait;
use hearsay_rpc::codec::{self, map, RequestHeader, ResponseHeader, Value};
use hearsay_rpc::{
    errors, AgentStats, Backend, BackendError, Coordinate, KeyOp, KeyResponse, LogLevel,
    QueryEvent, QueryRequest, QueryTarget, RecordStream, RpcClient, RpcDeployments, RpcHandler,
    RpcMember, RpcServer, ServerOptions, StreamEvent, Subscription,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bound on every wait: generous, since a loaded machine may be slow.
const WAIT: Duration = Duration::from_secs(30);

/// The handshake timeout the tests set: short, so a test waits well past it.
const HANDSHAKE: Duration = Duration::from_millis(300);

/// A backend with one member whose subscriptions stay open and quiet, so `monitor` and
/// `stream` connections live until their client goes.
struct QuietBackend;

/// A subscription that never yields and never ends.
struct Quiet;

#[async_trait]
impl<T: Send> Subscription<T> for Quiet {
    async fn next(&mut self) -> Option<T> {
        std::future::pending().await
    }
}

#[async_trait]
impl Backend for QuietBackend {
    async fn members(&self) -> Result<Vec<RpcMember>, BackendError> {
        Ok(vec![RpcMember {
            name: "only".into(),
            addr: vec![127, 0, 0, 1],
            port: 7946,
            tags: BTreeMap::new(),
            status: "alive".into(),
            vsn: [1, 5, 2, 2, 5, 4],
        }])
    }

    async fn join(&self, _existing: &[String], _replay: bool) -> Result<usize, BackendError> {
        Ok(0)
    }

    async fn leave(&self) -> Result<(), BackendError> {
        Ok(())
    }

    async fn left(&self) {}

    async fn force_leave(&self, _node: &str, _prune: bool) -> Result<(), BackendError> {
        Ok(())
    }

    async fn user_event(
        &self,
        _name: &str,
        _payload: &[u8],
        _coalesce: bool,
    ) -> Result<(), BackendError> {
        Ok(())
    }

    async fn query(
        &self,
        _query: QueryRequest,
    ) -> Result<Box<dyn Subscription<QueryEvent>>, BackendError> {
        Ok(Box::new(Quiet))
    }

    async fn respond(&self, _to: QueryTarget, _payload: &[u8]) -> Result<(), BackendError> {
        Ok(())
    }

    async fn update_tags(
        &self,
        _set: BTreeMap<String, String>,
        _delete: Vec<String>,
    ) -> Result<(), BackendError> {
        Ok(())
    }

    async fn key_op(
        &self,
        _op: KeyOp,
        _key: &str,
    ) -> Result<(KeyResponse, Option<String>), BackendError> {
        Ok((KeyResponse::default(), None))
    }

    async fn stats(&self) -> AgentStats {
        AgentStats::default()
    }

    async fn coordinate(&self, _node: &str) -> Option<Coordinate> {
        None
    }

    fn subscribe_events(&self, _filter: &str) -> Option<Box<dyn Subscription<StreamEvent>>> {
        Some(Box::new(Quiet))
    }

    fn subscribe_logs(&self, _level: LogLevel) -> Box<dyn Subscription<String>> {
        Box::new(Quiet)
    }

    async fn handlers(&self) -> Vec<RpcHandler> {
        Vec::new()
    }

    async fn deploy(&self, _deployment: Vec<u8>, _module: Vec<u8>) -> Result<u64, String> {
        Ok(1)
    }

    async fn deployments(&self) -> Result<RpcDeployments, String> {
        Ok(RpcDeployments::default())
    }
}

async fn serve(options: ServerOptions) -> RpcServer {
    RpcServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), QuietBackend, options)
        .await
        .unwrap()
}

/// Bounds a call so a server bug fails the test instead of hanging it.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

async fn connect(server: &RpcServer, key: Option<&str>) -> RpcClient {
    let addr = server.local_addr().to_string();
    bounded(RpcClient::connect(&addr, key)).await.unwrap()
}

/// Waits (bounded) until the server counts `n` open connections.
async fn until_open(server: &RpcServer, n: usize) {
    let waited = tokio::time::timeout(WAIT, async {
        while server.connections() != n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "the server counts {} open connections, not {n}",
        server.connections()
    );
}

/// A client's request goes through.
async fn serves(client: &RpcClient) {
    let members = bounded(client.members()).await.unwrap();
    assert_eq!(members.len(), 1);
}

/// A raw connection, for clients that do not speak (or stop halfway).
async fn raw(server: &RpcServer) -> TcpStream {
    bounded(TcpStream::connect(server.local_addr()))
        .await
        .unwrap()
}

/// Reads until the server closes `stream` (EOF or a reset), bounded; fails if the server
/// sends anything but `allowed` response headers first.
async fn closed_by_server(stream: &mut TcpStream, allowed: &[&str]) {
    let mut buf = Vec::new();
    loop {
        match bounded(stream.read_buf(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let mut rest = buf.as_slice();
    while let Some((v, used)) = codec::decode_value(rest).unwrap() {
        let h = ResponseHeader::from_value(&v).unwrap();
        assert!(allowed.contains(&h.error.as_str()), "unexpected {h:?}");
        rest = &rest[used..];
    }
}

/// Writes one request by hand.
async fn send(stream: &mut TcpStream, command: &str, seq: u64, body: Option<&Value>) {
    let header = RequestHeader {
        command: command.into(),
        seq,
    };
    let bytes = codec::frame(&header.to_value(), body);
    bounded(stream.write_all(&bytes)).await.unwrap();
}

/// Sends the handshake by hand and reads its answer.
async fn handshake(stream: &mut TcpStream) {
    send(
        stream,
        "handshake",
        1,
        Some(&map(vec![("Version", Value::Uint(1))])),
    )
    .await;
    let mut buf = Vec::new();
    let v = loop {
        if let Some((v, _)) = codec::decode_value(&buf).unwrap() {
            break v;
        }
        assert_ne!(bounded(stream.read_buf(&mut buf)).await.unwrap(), 0);
    };
    let h = ResponseHeader::from_value(&v).unwrap();
    assert_eq!((h.seq, h.error.as_str()), (1, ""));
}

/// A stream that has delivered nothing and not ended, checked for a moment.
async fn still_open(stream: &mut RecordStream) {
    let next = tokio::time::timeout(Duration::from_millis(100), stream.next()).await;
    assert!(next.is_err(), "the stream ended or delivered: {next:?}");
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_and_admitted_again_once_some_close() {
    let server = serve(ServerOptions::default().max_connections(3)).await;
    let first = connect(&server, None).await;
    let second = connect(&server, None).await;
    let mut third = Some(connect(&server, None).await);
    until_open(&server, 3).await;
    // Over the cap: closed before anything is read or written.
    let mut refused = raw(&server).await;
    closed_by_server(&mut refused, &[]).await;
    let addr = server.local_addr().to_string();
    assert!(
        bounded(RpcClient::connect(&addr, None)).await.is_err(),
        "a fourth client must not get a handshake"
    );
    assert_eq!(server.connections(), 3);
    // The three under it are served throughout.
    for client in [&first, &second, third.as_ref().unwrap()] {
        serves(client).await;
    }
    // One goes: there is room for one more, and only one.
    third.take();
    until_open(&server, 2).await;
    let fourth = connect(&server, None).await;
    serves(&fourth).await;
    let mut refused = raw(&server).await;
    closed_by_server(&mut refused, &[]).await;
    for client in [&first, &second, &fourth] {
        serves(client).await;
    }
    server.shutdown().await;
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn no_cap_when_max_connections_is_zero() {
    let server = serve(ServerOptions::default().max_connections(0)).await;
    let mut clients = Vec::new();
    for _ in 0..300 {
        clients.push(connect(&server, None).await);
    }
    until_open(&server, 300).await;
    serves(&clients[299]).await;
    drop(clients);
    until_open(&server, 0).await;
    server.shutdown().await;
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_handshake_timeout_and_handshaken_ones_stay() {
    let server = serve(ServerOptions::default().handshake_timeout(HANDSHAKE)).await;
    // Handshaken and idle, with a `monitor` and a `stream` open on other connections.
    let idle = connect(&server, None).await;
    let watcher = connect(&server, None).await;
    let mut monitor = bounded(watcher.monitor("debug")).await.unwrap();
    let mut events = bounded(watcher.stream("*")).await.unwrap();
    let mut by_hand = raw(&server).await;
    handshake(&mut by_hand).await;
    // Never speaks; stops halfway through a handshake.
    let mut silent = raw(&server).await;
    let mut halfway = raw(&server).await;
    let mut bytes = codec::frame(
        &RequestHeader {
            command: "handshake".into(),
            seq: 1,
        }
        .to_value(),
        None,
    );
    bytes.truncate(bytes.len() / 2);
    bounded(halfway.write_all(&bytes)).await.unwrap();
    until_open(&server, 5).await;
    closed_by_server(&mut silent, &[]).await;
    closed_by_server(&mut halfway, &[]).await;
    until_open(&server, 3).await;
    // Well past the timeout, the handshaken connections are still there and served.
    tokio::time::sleep(3 * HANDSHAKE).await;
    assert_eq!(server.connections(), 3);
    serves(&idle).await;
    serves(&watcher).await;
    still_open(&mut monitor).await;
    still_open(&mut events).await;
    send(&mut by_hand, "members", 2, None).await;
    let mut buf = Vec::new();
    let v = loop {
        if let Some((v, _)) = codec::decode_value(&buf).unwrap() {
            break v;
        }
        assert_ne!(bounded(by_hand.read_buf(&mut buf)).await.unwrap(), 0);
    };
    let h = ResponseHeader::from_value(&v).unwrap();
    assert_eq!((h.seq, h.error.as_str()), (2, ""));
    server.shutdown().await;
}

#[tokio::test]
async fn connections_that_never_authenticate_are_closed_after_the_handshake_timeout() {
    let options = ServerOptions::default()
        .auth_key("s3cret")
        .handshake_timeout(HANDSHAKE);
    let server = serve(options).await;
    let authed = connect(&server, Some("s3cret")).await;
    // Handshaken, then only commands the server refuses for want of `auth`.
    let mut unauthed = raw(&server).await;
    handshake(&mut unauthed).await;
    send(&mut unauthed, "members", 2, None).await;
    closed_by_server(&mut unauthed, &[errors::AUTH_REQUIRED]).await;
    until_open(&server, 1).await;
    tokio::time::sleep(3 * HANDSHAKE).await;
    serves(&authed).await;
    server.shutdown().await;
}

#[tokio::test]
async fn no_handshake_bound_when_the_timeout_is_zero() {
    let server = serve(ServerOptions::default().handshake_timeout(Duration::ZERO)).await;
    let mut silent = raw(&server).await;
    until_open(&server, 1).await;
    tokio::time::sleep(3 * HANDSHAKE).await;
    assert_eq!(server.connections(), 1);
    // It may still handshake, late.
    handshake(&mut silent).await;
    server.shutdown().await;
}

#[tokio::test]
async fn connections_opened_and_closed_leave_the_count_at_zero() {
    // The silent ones must not time out while the others are opened.
    let options = ServerOptions::default()
        .max_connections(64)
        .handshake_timeout(10 * WAIT);
    let server = serve(options).await;
    for round in 0..3 {
        let mut clients = Vec::new();
        let mut streams = Vec::new();
        let mut raws = Vec::new();
        for i in 0..20 {
            let client = connect(&server, None).await;
            serves(&client).await;
            if i % 2 == 0 {
                streams.push(bounded(client.monitor("info")).await.unwrap());
                streams.push(bounded(client.stream("user")).await.unwrap());
            }
            clients.push(client);
        }
        for i in 0..20 {
            let mut stream = raw(&server).await;
            match i % 3 {
                // Connects and says nothing.
                0 => {}
                // Handshakes, then leaves half a request behind.
                1 => {
                    handshake(&mut stream).await;
                    let header = RequestHeader {
                        command: "event".into(),
                        seq: 2,
                    };
                    let body = map(vec![
                        ("Name", Value::Raw(b"e".to_vec())),
                        ("Payload", Value::Raw(vec![7; 64 * 1024])),
                        ("Coalesce", Value::Bool(false)),
                    ]);
                    let mut bytes = codec::frame(&header.to_value(), Some(&body));
                    bytes.truncate(bytes.len() - 1000);
                    bounded(stream.write_all(&bytes)).await.unwrap();
                }
                // Sends what is not msgpack: the server drops it.
                _ => bounded(stream.write_all(&[0xc1; 16])).await.unwrap(),
            }
            raws.push(stream);
        }
        // Those that sent garbage are gone already.
        until_open(&server, 40 - 6).await;
        drop(streams);
        drop(clients);
        drop(raws);
        until_open(&server, 0).await;
        // The server still takes new clients.
        let after = connect(&server, None).await;
        serves(&after).await;
        drop(after);
        until_open(&server, 0).await;
        eprintln!("round {round}: back to zero");
    }
    server.shutdown().await;
}
