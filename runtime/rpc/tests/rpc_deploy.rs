//! hearsay's `deploy` and `deployments` commands end to end: a real [`RpcServer`] on loopback
//! over a test backend that keeps what it was given, driven by [`RpcClient`] and, for bodies
//! the client would never send, by hand with the codec. Every wait is bounded.

use async_trait::async_trait;
use hearsay_rpc::codec::{self, map, s, Fields, RequestHeader, ResponseHeader, Value};
use hearsay_rpc::{
    errors, AgentStats, Backend, BackendError, Coordinate, Error, KeyOp, KeyResponse, LogLevel,
    QueryEvent, QueryRequest, QueryTarget, RpcClient, RpcDeployNode, RpcDeployment, RpcDeployments,
    RpcHandler, RpcMember, RpcRefusal, RpcServer, ServerOptions, StreamEvent, Subscription,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);
const MIB: usize = 1024 * 1024;

/// What the test backend was given and what it answers.
#[derive(Default)]
struct State {
    /// Every `deploy` call: (deployment record, module).
    deployed: Vec<(Vec<u8>, Vec<u8>)>,
    /// When set, `deploy` refuses with this text.
    refusal: Option<String>,
    /// What `deployments` lists.
    listed: RpcDeployments,
}

/// A backend that serves only `deploy` and `deployments` meaningfully; the rest answer
/// empty.
#[derive(Clone, Default)]
struct DeployBackend(Arc<Mutex<State>>);

impl DeployBackend {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }
}

/// A subscription that has ended.
struct Ended;

#[async_trait]
impl<T: Send> Subscription<T> for Ended {
    async fn next(&mut self) -> Option<T> {
        None
    }
}

#[async_trait]
impl Backend for DeployBackend {
    async fn members(&self) -> Result<Vec<RpcMember>, BackendError> {
        Ok(Vec::new())
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
        Err("queries are not served by this backend".into())
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
        None
    }

    fn subscribe_logs(&self, _level: LogLevel) -> Box<dyn Subscription<String>> {
        Box::new(Ended)
    }

    async fn handlers(&self) -> Vec<RpcHandler> {
        Vec::new()
    }

    async fn deploy(&self, deployment: Vec<u8>, module: Vec<u8>) -> Result<u64, String> {
        let mut state = self.state();
        if let Some(why) = &state.refusal {
            return Err(why.clone());
        }
        state.deployed.push((deployment, module));
        Ok(state.deployed.len() as u64)
    }

    async fn deployments(&self) -> Result<RpcDeployments, String> {
        Ok(self.state().listed.clone())
    }
}

async fn serve(backend: &DeployBackend, options: ServerOptions) -> RpcServer {
    RpcServer::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        backend.clone(),
        options,
    )
    .await
    .unwrap()
}

async fn connect(server: &RpcServer, key: Option<&str>) -> RpcClient {
    let addr = server.local_addr().to_string();
    tokio::time::timeout(WAIT, RpcClient::connect(&addr, key))
        .await
        .expect("connect timed out")
        .unwrap()
}

/// Bounds a call so a protocol bug fails the test instead of hanging it.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

/// A module-sized byte pattern that no shifted copy matches.
fn module_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Speaks the protocol by hand, for requests [`RpcClient`] never sends.
struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    async fn connect(server: &RpcServer) -> Self {
        let stream = bounded(TcpStream::connect(server.local_addr()))
            .await
            .unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, command: &str, seq: u64, body: Option<&Value>) {
        let header = RequestHeader {
            command: command.into(),
            seq,
        };
        let bytes = codec::frame(&header.to_value(), body);
        bounded(self.stream.write_all(&bytes)).await.unwrap();
    }

    /// The next value the server sent; `None` once the connection is closed (or reset).
    async fn value(&mut self) -> Option<Value> {
        loop {
            if let Some((v, used)) = codec::decode_value(&self.buf).unwrap() {
                self.buf.drain(..used);
                return Some(v);
            }
            match bounded(self.stream.read_buf(&mut self.buf)).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn header(&mut self) -> ResponseHeader {
        ResponseHeader::from_value(&self.value().await.expect("connection closed")).unwrap()
    }

    async fn handshake(&mut self) {
        let body = map(vec![("Version", Value::Uint(1))]);
        self.send("handshake", 1, Some(&body)).await;
        let h = self.header().await;
        assert_eq!((h.seq, h.error.as_str()), (1, ""));
    }
}

#[tokio::test]
async fn deploy_round_trips_a_20_mib_module() {
    let backend = DeployBackend::default();
    let server = serve(&backend, ServerOptions::default()).await;
    let client = connect(&server, None).await;
    let module = module_bytes(20 * MIB);
    let version = bounded(client.deploy(b"signed record v1", &module))
        .await
        .unwrap();
    assert_eq!(version, 1);
    {
        let state = backend.state();
        assert_eq!(state.deployed.len(), 1);
        assert_eq!(state.deployed[0].0, b"signed record v1");
        assert!(state.deployed[0].1 == module, "the module arrived changed");
    }
    // An undeploy carries no module; the same connection serves it and what follows.
    let version = bounded(client.deploy(b"undeploy record", &[]))
        .await
        .unwrap();
    assert_eq!(version, 2);
    assert!(backend.state().deployed[1].1.is_empty());
    assert!(bounded(client.deployments())
        .await
        .unwrap()
        .deployments
        .is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn deploy_refusal_is_the_clients_error() {
    let backend = DeployBackend::default();
    let refusal = "deployment refused: untrusted signer ed25519:bm90IGEga2V5";
    backend.state().refusal = Some(refusal.to_owned());
    let server = serve(&backend, ServerOptions::default()).await;
    let client = connect(&server, None).await;
    let err = bounded(client.deploy(b"signed record", b"\0asm"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote(text) if text == refusal),
        "{err:?}"
    );
    assert_eq!(err.to_string(), refusal);
    // The connection goes on.
    backend.state().refusal = None;
    assert_eq!(
        bounded(client.deploy(b"signed record", b"\0asm"))
            .await
            .unwrap(),
        1
    );
    server.shutdown().await;
}

fn two_deployments() -> RpcDeployments {
    let node = |name: &str, state: &str, version: u64, reason: &str| RpcDeployNode {
        node: name.into(),
        state: state.into(),
        version,
        reason: reason.into(),
    };
    let deployments = vec![
        RpcDeployment {
            name: "echo".into(),
            version: 3,
            sha256: "ab".repeat(32),
            size: 48_213,
            events: "query:echo".into(),
            signer: "ed25519:c2lnbmVyIG9uZQ==".into(),
            removed: false,
            record: b"echo v3".to_vec(),
            history: vec![b"echo v2".to_vec(), b"echo v1".to_vec()],
            nodes: vec![
                node("a", "running", 3, ""),
                node("b", "pending", 2, "fetching module from a"),
                node("c", "failed", 2, "instantiate: unknown import"),
                node("d", "refused", 0, "untrusted signer"),
                node("e", "not-selected", 0, ""),
                node("f", "unreachable", 2, ""),
            ],
        },
        RpcDeployment {
            name: "audit".into(),
            version: 2,
            sha256: String::new(),
            size: 0,
            events: "user:audit".into(),
            signer: "ed25519:c2lnbmVyIHR3bw==".into(),
            removed: true,
            record: b"audit undeploy".to_vec(),
            history: vec![b"audit v1".to_vec()],
            nodes: vec![node("a", "removed", 2, "")],
        },
    ];
    let refused = vec![RpcRefusal {
        node: "b".into(),
        name: "evil".into(),
        version: 9,
        reason: "signed by ed25519:x, which this agent does not trust".into(),
    }];
    RpcDeployments {
        deployments,
        refused,
    }
}

#[tokio::test]
async fn deployments_round_trip_with_history_and_nodes() {
    let backend = DeployBackend::default();
    backend.state().listed = two_deployments();
    let server = serve(&backend, ServerOptions::default()).await;
    let client = connect(&server, None).await;
    assert_eq!(
        bounded(client.deployments()).await.unwrap(),
        two_deployments()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn deployments_without_any_is_an_empty_list() {
    let backend = DeployBackend::default();
    let server = serve(&backend, ServerOptions::default()).await;
    let client = connect(&server, None).await;
    assert_eq!(
        bounded(client.deployments()).await.unwrap(),
        RpcDeployments::default()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_deploy_is_answered_and_the_connection_goes_on() {
    let backend = DeployBackend::default();
    backend.state().listed = two_deployments();
    let server = serve(&backend, ServerOptions::default()).await;
    let mut wire = Wire::connect(&server).await;
    wire.handshake().await;
    let cases = [
        (
            map(vec![
                ("Deployment", Value::Uint(7)),
                ("Module", Value::Raw(b"\0asm".to_vec())),
            ]),
            "invalid deploy request: field Deployment: expected bytes, found integer",
        ),
        (
            map(vec![("Module", Value::Raw(b"\0asm".to_vec()))]),
            "invalid deploy request: field Deployment is missing or empty",
        ),
        (
            map(vec![
                ("Deployment", Value::Raw(b"signed".to_vec())),
                ("Module", map(vec![])),
            ]),
            "invalid deploy request: field Module: expected bytes, found map",
        ),
        (
            s("not a map"),
            "invalid deploy request: deploy: expected a map, found string",
        ),
    ];
    for (seq, (body, want)) in (2..).zip(cases) {
        wire.send("deploy", seq, Some(&body)).await;
        let h = wire.header().await;
        assert_eq!((h.seq, h.error.as_str()), (seq, want));
        // The body a client waits for still follows.
        let body = wire.value().await.expect("deploy's response body");
        assert_eq!(
            Fields::of(&body, "deploy")
                .unwrap()
                .uint("Version")
                .unwrap(),
            0
        );
    }
    assert!(backend.state().deployed.is_empty());
    // A following command on the same connection is served.
    wire.send("deployments", 10, None).await;
    let h = wire.header().await;
    assert_eq!((h.seq, h.error.as_str()), (10, ""));
    let body = wire.value().await.expect("deployments' response body");
    let listed = RpcDeployments::from_value(&body).unwrap();
    assert_eq!(listed, two_deployments());
    server.shutdown().await;
}

#[tokio::test]
async fn large_deploys_need_the_handshake_and_auth_first() {
    let backend = DeployBackend::default();
    let server = serve(&backend, ServerOptions::default().auth_key("secret")).await;
    // Before auth, `deploy` is refused like every other command...
    let unauthed = connect(&server, None).await;
    let err = bounded(unauthed.deploy(b"signed", b"\0asm"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote(text) if text == errors::AUTH_REQUIRED),
        "{err:?}"
    );
    // ...and its body is bounded as any other value is: a 5 MiB one is refused outright.
    let mut wire = Wire::connect(&server).await;
    wire.handshake().await;
    let body = map(vec![
        ("Deployment", Value::Raw(b"signed".to_vec())),
        ("Module", Value::Raw(module_bytes(5 * MIB))),
    ]);
    let header = RequestHeader {
        command: "deploy".into(),
        seq: 2,
    };
    let bytes = codec::frame(&header.to_value(), Some(&body));
    // The server may close before taking every byte; either way it must not accept them.
    let _ = bounded(wire.stream.write_all(&bytes)).await;
    if let Some(v) = wire.value().await {
        let h = ResponseHeader::from_value(&v).unwrap();
        assert_eq!((h.seq, h.error.as_str()), (2, errors::AUTH_REQUIRED));
    }
    assert!(wire.value().await.is_none(), "the connection should close");
    assert!(backend.state().deployed.is_empty());
    // Once authenticated, the same deploy is accepted.
    let authed = connect(&server, Some("secret")).await;
    let module = module_bytes(5 * MIB);
    assert_eq!(bounded(authed.deploy(b"signed", &module)).await.unwrap(), 1);
    assert!(backend.state().deployed[0].1 == module);
    server.shutdown().await;
}

#[tokio::test]
async fn deploy_over_its_bound_is_refused_at_once() {
    let backend = DeployBackend::default();
    let server = serve(&backend, ServerOptions::default()).await;
    // The client refuses without sending (the zeroed buffer is never touched).
    let client = connect(&server, None).await;
    let huge = vec![0u8; codec::MAX_DEPLOY_BYTES];
    let err = bounded(client.deploy(b"signed", &huge)).await.unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { max, .. } if max == codec::MAX_DEPLOY_BYTES),
        "{err:?}"
    );
    drop(huge);
    // By hand: a body whose `Module` announces more than the bound is answered as soon as
    // its length is read, not after the bytes arrive; then the connection closes.
    let mut wire = Wire::connect(&server).await;
    wire.handshake().await;
    let header = RequestHeader {
        command: "deploy".into(),
        seq: 2,
    };
    let mut bytes = codec::frame(&header.to_value(), None);
    bytes.push(0x82); // a map of two pairs
    bytes.extend_from_slice(b"\xaaDeployment\xa1x\xa6Module\xdb");
    bytes.extend_from_slice(&(codec::MAX_DEPLOY_BYTES as u32 + 1).to_be_bytes());
    wire.stream.write_all(&bytes).await.unwrap();
    let h = wire.header().await;
    assert_eq!(h.seq, 2);
    assert_eq!(
        h.error,
        format!(
            "invalid deploy request: message larger than {} bytes",
            codec::MAX_DEPLOY_BYTES
        )
    );
    let body = wire.value().await.expect("deploy's response body");
    assert_eq!(
        Fields::of(&body, "deploy")
            .unwrap()
            .uint("Version")
            .unwrap(),
        0
    );
    assert!(wire.value().await.is_none(), "the connection should close");
    assert!(backend.state().deployed.is_empty());
    // The client's own connection was not affected.
    assert!(bounded(client.deployments())
        .await
        .unwrap()
        .deployments
        .is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn other_requests_keep_the_4_mib_bound() {
    let backend = DeployBackend::default();
    let server = serve(&backend, ServerOptions::default()).await;
    let client = connect(&server, None).await;
    let payload = vec![b'x'; codec::MAX_VALUE_BYTES + 1];
    let err = bounded(client.user_event("big", &payload, false))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Io { .. } | Error::Closed),
        "an oversized event must cost the client its connection, got {err:?}"
    );
    server.shutdown().await;
}
