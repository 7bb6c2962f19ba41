//! [`QuicEndpoint`]: one quinn endpoint per agent (server and client on one UDP socket), the
//! responder's [`ResponseWriter`] and the originator's [`IncomingResponses`] / [`BodyReader`].
//!
//! Connections to a peer are cached by its advert and reused by every response sent to it;
//! with no keep-alive, a connection nobody uses closes after [`QuicConfig::idle_timeout`] and
//! the next response dials again.
//!
//! The same connections carry requests ([`QuicEndpoint::request`], served through
//! [`IncomingRequests`], see `exchange.rs`): the accept side tells a request stream from a
//! response stream by its first byte ([`super::request`]).

use super::exchange::{serve_request, IncomingRequest, IncomingRequests};
use super::header::{ResponseHeader, HEADER_PREFIX_LEN};
use super::request::{RequestHeader, REQUEST_HEADER_LEN, REQUEST_KIND};
use super::tls::{self, PeerFilter};
use super::{Fingerprint, Identity, QuicAdvert, QuicError};
use crate::limit::WarnLimit;
use hearsay_swim::loglimit::Source;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub use bytes::Bytes;

/// Application error codes on streams, so each side can tell the other why it gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum StopCode {
    /// The reader dropped the body without reading it all.
    Dropped = 0,
    /// The originator could not decode the header (or it was too large or too slow).
    HeaderRejected = 1,
    /// The body went over the per-response limit.
    ResponseLimit = 2,
    /// The query's responses went over the per-query limit.
    QueryLimit = 3,
    /// Nobody on the originator is receiving responses.
    NotWanted = 4,
    /// The body did not match its declared length.
    LengthMismatch = 5,
    /// The originator already has this node's response (it came first on another path:
    /// directly or through another relay node).
    Duplicate = 6,
    /// A relay node could not deliver the response to the originator (refused the relay
    /// header, could not reach the originator, or lost the connection to it).
    RelayFailed = 7,
    /// A request stream reached an endpoint that does not serve requests (bound with
    /// [`QuicEndpoint::bind`], or its [`IncomingRequests`] was dropped).
    NoRequests = 8,
    /// A request's body is over the answering endpoint's [`Limits::max_request`].
    RequestLimit = 9,
    /// The responder abandoned the response (writer dropped or aborted).
    Aborted = 10,
    /// A reply's body is over the asking side's `max_reply` ([`QuicEndpoint::request`]).
    ReplyLimit = 11,
    /// The answering side dropped an [`IncomingRequest`] without replying.
    Unanswered = 12,
}

impl StopCode {
    /// What a stream reset or stop with `code` means, for error messages.
    pub fn describe(code: u64) -> String {
        let request = match code {
            8 => Some("the peer does not serve requests"),
            9 => Some("the request body exceeded the peer's request limit"),
            11 => Some("the reply exceeded the requester's limit"),
            12 => Some("the peer dropped the request unanswered"),
            _ => None,
        };
        if let Some(what) = request {
            return format!("request stream stopped: {what} (code {code})");
        }
        let what = match code {
            0 => "the originator dropped the response",
            1 => "the originator rejected the header",
            2 => "the response exceeded the originator's per-response limit",
            3 => "the query's responses exceeded the originator's per-query limit",
            4 => "the originator is not receiving responses",
            5 => "the body did not match its declared length",
            6 => "the originator already has this node's response (a duplicate)",
            7 => "the relay node could not deliver the response to the originator",
            10 => "aborted",
            _ => "unknown reason",
        };
        format!("stream stopped by the originator: {what} (code {code})")
    }

    pub(super) fn varint(self) -> quinn::VarInt {
        quinn::VarInt::from_u32(self as u32)
    }

    /// The code as sent on the wire.
    pub fn code(self) -> u64 {
        self as u64
    }

    /// The code for a wire value, if it is one this version defines.
    pub fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            0 => Self::Dropped,
            1 => Self::HeaderRejected,
            2 => Self::ResponseLimit,
            3 => Self::QueryLimit,
            4 => Self::NotWanted,
            5 => Self::LengthMismatch,
            6 => Self::Duplicate,
            7 => Self::RelayFailed,
            8 => Self::NoRequests,
            9 => Self::RequestLimit,
            10 => Self::Aborted,
            11 => Self::ReplyLimit,
            12 => Self::Unanswered,
            _ => return None,
        })
    }
}

/// How this endpoint proves who it is and checks its peers (see the module docs).
#[derive(Clone)]
pub enum Security {
    /// Self-signed certificate pinned by fingerprint.
    Pinned(Identity),
    /// Mutual TLS verified against an operator CA (the advert's fingerprint is still checked).
    Ca {
        /// The CA certificates peers must chain to.
        ca: Vec<CertificateDer<'static>>,
        /// This node's certificate (issued by the CA) and key.
        identity: Identity,
    },
}

impl Security {
    /// Pinned mode with a fresh self-signed certificate.
    pub fn pinned(name: &str) -> Result<Self, QuicError> {
        Ok(Self::Pinned(Identity::generate(name)?))
    }

    /// Pinned mode with the certificate kept at `path` (created on first use).
    pub fn pinned_persisted(path: &Path, name: &str) -> Result<Self, QuicError> {
        Ok(Self::Pinned(Identity::load_or_generate(path, name)?))
    }

    /// CA mode from PEM files: the CA certificate(s), this node's certificate, its key.
    pub fn ca_from_pem_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, QuicError> {
        Ok(Self::Ca {
            ca: super::identity::certs_from_pem(&super::identity::read(ca)?, ca)?,
            identity: Identity::from_pem_files(cert, key)?,
        })
    }

    fn identity(&self) -> &Identity {
        match self {
            Self::Pinned(id) | Self::Ca { identity: id, .. } => id,
        }
    }
}

/// Byte limits the originator enforces on what responders send it, and the answering side on
/// what askers send it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest header accepted, in bytes.
    pub max_header: usize,
    /// The largest body one response may have.
    pub max_response: u64,
    /// The most bytes all responses to one query may bring together.
    pub max_query_total: u64,
    /// The largest request body accepted ([`QuicEndpoint::bind_with_requests`]); a request
    /// declaring more is refused from its header, before its body is read.
    pub max_request: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header: 4096,
            max_response: 64 << 20,
            max_query_total: 256 << 20,
            max_request: 1 << 20,
        }
    }
}

/// Everything [`QuicEndpoint::bind`] needs.
#[derive(Clone)]
pub struct QuicConfig {
    /// The UDP address to bind (port 0 picks one).
    pub bind: SocketAddr,
    /// The address to advertise, when the bound one is not dialable (e.g. 0.0.0.0).
    pub advertise: Option<SocketAddr>,
    /// The security mode and this node's certificate.
    pub security: Security,
    /// Which client certificates the accepting side admits; `None` admits any certificate
    /// whose key the client holds (the fingerprint is still reported with each response).
    pub peer_filter: Option<PeerFilter>,
    /// Limits on incoming responses.
    pub limits: Limits,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// How long connecting to a peer (UDP + TLS handshake) may take.
    pub connect_timeout: Duration,
    /// How long a new stream may take to deliver its header (for a request stream: its header
    /// and whole body).
    pub header_timeout: Duration,
    /// The most unacknowledged bytes one incoming stream may have buffered (flow control).
    pub stream_window: u32,
    /// The largest chunk a [`BodyReader`] hands out.
    pub max_chunk: usize,
    /// How many response streams one peer may have open to us at once.
    pub max_streams_per_peer: u32,
    /// How many received responses may wait for [`IncomingResponses::next`] (and as many
    /// requests for [`IncomingRequests::next`]).
    pub queue: usize,
    /// How long a query's byte total is remembered after its last response started.
    pub query_retention: Duration,
}

impl QuicConfig {
    /// Defaults around a bind address and security mode.
    pub fn new(bind: SocketAddr, security: Security) -> Self {
        Self {
            bind,
            advertise: None,
            security,
            peer_filter: None,
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            stream_window: 1 << 20,
            max_chunk: 64 << 10,
            max_streams_per_peer: 256,
            queue: 256,
            query_retention: Duration::from_secs(600),
        }
    }

    /// The quinn transport settings a [`QuicEndpoint`] bound with this config uses: idle
    /// timeout, per-stream and per-connection receive windows, at most
    /// `max_streams_per_peer` bidirectional streams and no unidirectional ones. With
    /// [`tls::server_config`] and [`tls::client_config`] it builds a bare quinn endpoint with
    /// this module's TLS and flow control but none of its header, limits or connection cache
    /// (`runtime/bench` measures the transport's ceiling with one). Fails only if
    /// `idle_timeout` is out of quinn's range.
    pub fn transport(&self) -> Result<Arc<quinn::TransportConfig>, QuicError> {
        let mut t = quinn::TransportConfig::default();
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout).map_err(|_| {
            QuicError::Config(format!(
                "idle timeout {:?} is out of range",
                self.idle_timeout
            ))
        })?;
        t.max_idle_timeout(Some(idle))
            .stream_receive_window(quinn::VarInt::from_u32(self.stream_window))
            // The connection window bounds what all streams of one peer may buffer together.
            .receive_window(quinn::VarInt::from_u32(
                self.stream_window.saturating_mul(8).max(self.stream_window),
            ))
            .max_concurrent_bidi_streams(quinn::VarInt::from_u32(self.max_streams_per_peer))
            .max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
        Ok(Arc::new(t))
    }
}

type ConnSlot = Arc<tokio::sync::Mutex<Option<quinn::Connection>>>;

struct Inner {
    endpoint: quinn::Endpoint,
    identity: Identity,
    roots: Option<Arc<RootCertStore>>,
    transport: Arc<quinn::TransportConfig>,
    advert: QuicAdvert,
    connect_timeout: Duration,
    conns: Mutex<HashMap<QuicAdvert, ConnSlot>>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.endpoint
            .close(quinn::VarInt::from_u32(0), b"endpoint closed");
    }
}

/// One agent's QUIC endpoint. Cheap to clone; the endpoint closes when the last clone drops.
#[derive(Clone)]
pub struct QuicEndpoint {
    inner: Arc<Inner>,
}

impl QuicEndpoint {
    /// Binds the endpoint and starts accepting connections. Incoming responses arrive on the
    /// returned [`IncomingResponses`]; if it is dropped, incoming streams are refused.
    /// Must be called inside a tokio runtime.
    pub fn bind(config: QuicConfig) -> Result<(Self, IncomingResponses), QuicError> {
        Self::bind_inner(config, None)
    }

    /// Like [`QuicEndpoint::bind`], and also serves requests ([`QuicEndpoint::request`] on
    /// the asking side): they arrive on the returned [`IncomingRequests`]; if it is dropped,
    /// request streams are refused with [`StopCode::NoRequests`], as they are by an endpoint
    /// from [`QuicEndpoint::bind`].
    pub fn bind_with_requests(
        config: QuicConfig,
    ) -> Result<(Self, IncomingResponses, IncomingRequests), QuicError> {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let (endpoint, responses) = Self::bind_inner(config, Some(tx))?;
        Ok((endpoint, responses, IncomingRequests::new(rx)))
    }

    /// Binds the endpoint; requests go to `requests`, or are refused when it is `None`.
    fn bind_inner(
        config: QuicConfig,
        requests: Option<mpsc::Sender<IncomingRequest>>,
    ) -> Result<(Self, IncomingResponses), QuicError> {
        let transport = config.transport()?;
        if config.security.identity().chain.is_empty() {
            return Err(QuicError::Config("the identity has no certificate".into()));
        }
        let (roots, identity) = match &config.security {
            Security::Pinned(id) => (None, id.clone()),
            Security::Ca { ca, identity } => (Some(tls::root_store(ca)?), identity.clone()),
        };
        let server = tls::server_config(
            config.security.identity(),
            roots.clone(),
            config.peer_filter.clone(),
            transport.clone(),
        )?;
        let endpoint =
            quinn::Endpoint::server(server, config.bind).map_err(|source| QuicError::Bind {
                addr: config.bind,
                source,
            })?;
        let local = endpoint.local_addr().map_err(|source| QuicError::Bind {
            addr: config.bind,
            source,
        })?;
        let advert = QuicAdvert {
            addr: config.advertise.unwrap_or(local),
            fingerprint: identity.fingerprint(),
        };
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let shared = Arc::new(Shared {
            limits: config.limits,
            header_timeout: config.header_timeout,
            max_chunk: config.max_chunk.max(1),
            query_retention: config.query_retention,
            budgets: Mutex::new(HashMap::new()),
            tx,
            requests,
            warnings: WarnLimit::new("QUIC"),
        });
        let accept_task = tokio::spawn(accept_loop(endpoint.clone(), shared));
        let inner = Inner {
            endpoint,
            identity,
            roots,
            transport,
            advert,
            connect_timeout: config.connect_timeout,
            conns: Mutex::new(HashMap::new()),
            accept_task,
        };
        Ok((
            Self {
                inner: Arc::new(inner),
            },
            IncomingResponses { rx },
        ))
    }

    /// What peers need to reach this endpoint: put [`QuicAdvert::to_tag_value`] in the
    /// `_hearsay_quic` tag.
    pub fn advert(&self) -> QuicAdvert {
        self.inner.advert
    }

    /// The fingerprint of this endpoint's certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        self.inner.advert.fingerprint
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> Result<SocketAddr, QuicError> {
        self.inner
            .endpoint
            .local_addr()
            .map_err(|source| QuicError::Bind {
                addr: self.inner.advert.addr,
                source,
            })
    }

    /// How many connections (in either direction) are open.
    pub fn open_connections(&self) -> usize {
        self.inner.endpoint.open_connections()
    }

    /// Closes every connection at once (in-flight responses fail on both sides).
    pub fn close(&self) {
        self.inner
            .endpoint
            .close(quinn::VarInt::from_u32(0), b"endpoint closed");
    }

    /// Starts a large response to the originator at `peer`: connects (or reuses the
    /// connection), opens a stream and writes `header`. Write the body with
    /// [`ResponseWriter::write`] and end it with [`ResponseWriter::finish`].
    pub async fn open_response(
        &self,
        peer: &QuicAdvert,
        header: &ResponseHeader,
    ) -> Result<ResponseWriter, QuicError> {
        let encoded = header.encode()?;
        let (mut send, verdict) = self.open_raw_stream(peer).await?;
        let addr = peer.addr;
        send.write_all(&encoded)
            .await
            .map_err(|e| send_error(addr, e))?;
        Ok(ResponseWriter {
            _endpoint: self.inner.clone(),
            send,
            verdict,
            addr,
            declared: header.total_len,
            written: 0,
            finished: false,
        })
    }

    /// A bare response stream to `peer`, with no header written: for tests and diagnostics
    /// (the originator rejects a stream that does not start with a header). The second half
    /// carries the originator's verdict: a clean end when it read the whole response, a
    /// reset with a [`StopCode`] when it refused it.
    pub async fn open_raw_stream(
        &self,
        peer: &QuicAdvert,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), QuicError> {
        let conn = self.connection(peer).await?;
        match conn.open_bi().await {
            Ok(streams) => Ok(streams),
            Err(first) => {
                // The cached connection died since it was checked: dial once more.
                tracing::debug!("QUIC: reconnecting to {}: {first}", peer.addr);
                let conn = self.connection(peer).await?;
                conn.open_bi().await.map_err(|e| connect_error(peer, e))
            }
        }
    }

    async fn connection(&self, peer: &QuicAdvert) -> Result<quinn::Connection, QuicError> {
        let slot = {
            let mut conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
            if conns.len() > 256 {
                // Forget peers whose connection has closed, so the map tracks live peers.
                conns.retain(|_, slot| match slot.try_lock() {
                    Ok(c) => c.as_ref().is_some_and(|c| c.close_reason().is_none()),
                    Err(_) => true,
                });
            }
            conns.entry(*peer).or_default().clone()
        };
        let mut cached = slot.lock().await;
        if let Some(conn) = cached.as_ref() {
            if conn.close_reason().is_none() {
                return Ok(conn.clone());
            }
        }
        let cfg = tls::client_config(
            Some(&self.inner.identity),
            peer.fingerprint,
            self.inner.roots.clone(),
            self.inner.transport.clone(),
        )?;
        let connecting = self
            .inner
            .endpoint
            .connect_with(cfg, peer.addr, tls::SERVER_NAME)
            .map_err(|e| connect_error(peer, e))?;
        let conn = match tokio::time::timeout(self.inner.connect_timeout, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::warn!(
                    "QUIC: connection to {} (expecting {}) refused: {e}",
                    peer.addr,
                    peer.fingerprint
                );
                return Err(connect_error(peer, e));
            }
            Err(_) => {
                return Err(connect_error(
                    peer,
                    format!("timed out after {:?}", self.inner.connect_timeout),
                ))
            }
        };
        *cached = Some(conn.clone());
        Ok(conn)
    }
}

/// quinn's "connection lost" hides why; the cause (e.g. the peer refused our certificate in
/// the handshake) is what an operator needs.
fn connection_lost(e: &quinn::ConnectionError) -> String {
    format!("connection lost: {e}")
}

pub(super) fn read_error(e: &quinn::ReadError) -> String {
    match e {
        quinn::ReadError::ConnectionLost(c) => connection_lost(c),
        other => other.to_string(),
    }
}

fn connect_error(peer: &QuicAdvert, e: impl std::fmt::Display) -> QuicError {
    QuicError::Connect {
        addr: peer.addr,
        fingerprint: peer.fingerprint,
        reason: e.to_string(),
    }
}

fn send_error(addr: SocketAddr, e: quinn::WriteError) -> QuicError {
    let reason = match e {
        quinn::WriteError::Stopped(code) => {
            return QuicError::Stopped {
                addr,
                code: code.into_inner(),
            }
        }
        quinn::WriteError::ConnectionLost(c) => connection_lost(&c),
        other => other.to_string(),
    };
    QuicError::Send { addr, reason }
}

/// The responder's side of one large response. Dropping it without [`finish`](Self::finish)
/// resets the stream, so the originator sees an aborted response, never a short one.
pub struct ResponseWriter {
    send: quinn::SendStream,
    /// The originator's verdict: ends cleanly once it has read the whole body, or is reset
    /// with a [`StopCode`] when it refused the response.
    verdict: quinn::RecvStream,
    /// Keeps the endpoint open while the response is being written.
    _endpoint: Arc<Inner>,
    addr: SocketAddr,
    declared: Option<u64>,
    written: u64,
    finished: bool,
}

impl ResponseWriter {
    /// Writes the next chunk of the body (waits while the originator's window is full).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), QuicError> {
        let written = self.written + chunk.len() as u64;
        if let Some(declared) = self.declared {
            if written > declared {
                return Err(QuicError::DeclaredLength { declared, written });
            }
        }
        self.send
            .write_all(chunk)
            .await
            .map_err(|e| send_error(self.addr, e))?;
        self.written = written;
        Ok(())
    }

    /// How many body bytes have been written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Ends the body and waits until the originator's reader has consumed all of it, or
    /// refused it (the error then says why: header rejected, a limit, nobody receiving).
    pub async fn finish(mut self) -> Result<(), QuicError> {
        if let Some(declared) = self.declared {
            if self.written != declared {
                // Drop resets the stream, so the originator does not take it as complete.
                return Err(QuicError::DeclaredLength {
                    declared,
                    written: self.written,
                });
            }
        }
        self.finished = true;
        let closed = |_| QuicError::Send {
            addr: self.addr,
            reason: "stream already closed".into(),
        };
        self.send.finish().map_err(closed)?;
        let reason = match self.verdict.read_to_end(64).await {
            Ok(_) => return Ok(()),
            Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
                return Err(QuicError::Stopped {
                    addr: self.addr,
                    code: code.into_inner(),
                })
            }
            Err(quinn::ReadToEndError::Read(e)) => read_error(&e),
            Err(e) => e.to_string(),
        };
        Err(QuicError::Send {
            addr: self.addr,
            reason,
        })
    }

    /// Abandons the response: the originator's reader fails with [`QuicError::Reset`].
    pub fn abort(self) {
        self.abort_with(StopCode::Aborted);
    }

    /// Abandons the response with `code` (a relay passes on why its inbound side failed).
    pub fn abort_with(mut self, code: StopCode) {
        self.finished = true;
        let _ = self.send.reset(code.varint());
    }
}

impl Drop for ResponseWriter {
    fn drop(&mut self) {
        if !self.finished {
            // quinn finishes a dropped stream; an unfinished response must look aborted.
            let _ = self.send.reset(StopCode::Aborted.varint());
        }
    }
}

/// A query's identity: its Lamport time and id.
type QueryKey = (u64, u32);

/// State the accept loop shares with every incoming stream.
pub(super) struct Shared {
    pub(super) limits: Limits,
    pub(super) header_timeout: Duration,
    max_chunk: usize,
    query_retention: Duration,
    budgets: Mutex<HashMap<QueryKey, (Arc<AtomicU64>, Instant)>>,
    tx: mpsc::Sender<IncomingResponse>,
    /// Where requests go; `None` when the endpoint does not serve them.
    pub(super) requests: Option<mpsc::Sender<IncomingRequest>>,
    /// Rate limit of the warnings about refused connections, which anyone can trigger.
    warnings: WarnLimit,
}

impl Shared {
    /// The running byte total of a query's responses (shared by all of them).
    fn budget(&self, ltime: u64, query_id: u32) -> Arc<AtomicU64> {
        let now = Instant::now();
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        let retention = self.query_retention;
        budgets.retain(|_, (_, seen)| now.duration_since(*seen) < retention);
        let entry = budgets
            .entry((ltime, query_id))
            .or_insert_with(|| (Arc::new(AtomicU64::new(0)), now));
        entry.1 = now;
        entry.0.clone()
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(serve_connection(incoming, shared.clone()));
    }
}

async fn serve_connection(incoming: quinn::Incoming, shared: Arc<Shared>) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => {
            if shared.warnings.allow(Source::Addr(remote.ip()), "refused") {
                tracing::warn!("QUIC: refused connection from {remote}: {e}");
            }
            return;
        }
    };
    let Some(peer) = tls::peer_fingerprint(&conn) else {
        // Unreachable with a verifier that requires client certificates; refuse regardless.
        if shared
            .warnings
            .allow(Source::Addr(remote.ip()), "no-certificate")
        {
            tracing::warn!("QUIC: connection from {remote} presented no certificate; closing");
        }
        conn.close(quinn::VarInt::from_u32(1), b"client certificate required");
        return;
    };
    loop {
        match conn.accept_bi().await {
            Ok((verdict, recv)) => {
                let stream = Stream { recv, verdict };
                tokio::spawn(serve_stream(stream, peer, remote, shared.clone()));
            }
            Err(e) => {
                tracing::debug!("QUIC: connection from {remote} ({peer}) ended: {e}");
                return;
            }
        }
    }
}

/// What the first bytes of an incoming stream say it is.
enum Opening {
    Response(ResponseHeader),
    Request(RequestHeader),
}

/// Reads the header of an incoming stream, telling the kinds apart by the first byte. On
/// failure, says which kind of stream it was (as far as known) and why.
async fn read_opening(
    recv: &mut quinn::RecvStream,
    limit: usize,
) -> Result<Opening, (&'static str, String)> {
    let mut prefix = [0u8; HEADER_PREFIX_LEN];
    recv.read_exact(&mut prefix[..1])
        .await
        .map_err(|e| ("response", format!("reading the header: {e}")))?;
    if prefix[0] == REQUEST_KIND {
        let mut head = [0u8; REQUEST_HEADER_LEN];
        head[0] = prefix[0];
        recv.read_exact(&mut head[1..])
            .await
            .map_err(|e| ("request", format!("reading the request header: {e}")))?;
        return RequestHeader::decode(&head)
            .map(Opening::Request)
            .map_err(|e| ("request", e.to_string()));
    }
    read_header(recv, prefix, limit)
        .await
        .map(Opening::Response)
        .map_err(|why| ("response", why))
}

/// Reads the rest of a response header whose first byte is already in `prefix`.
async fn read_header(
    recv: &mut quinn::RecvStream,
    mut prefix: [u8; HEADER_PREFIX_LEN],
    limit: usize,
) -> Result<ResponseHeader, String> {
    recv.read_exact(&mut prefix[1..])
        .await
        .map_err(|e| format!("reading the header: {e}"))?;
    let rest_len = ResponseHeader::decode_prefix(&prefix, limit).map_err(|e| e.to_string())?;
    let mut rest = vec![0u8; rest_len];
    recv.read_exact(&mut rest)
        .await
        .map_err(|e| format!("reading the header: {e}"))?;
    ResponseHeader::decode_rest(prefix[0], &rest).map_err(|e| e.to_string())
}

/// Both halves of an incoming response (or request) stream.
pub(super) struct Stream {
    pub(super) recv: quinn::RecvStream,
    /// The other half: the verdict on a response, the reply to a request.
    pub(super) verdict: quinn::SendStream,
}

impl Stream {
    /// Refuses the response: stops the body and resets the verdict with the reason.
    pub(super) fn refuse(&mut self, code: StopCode) {
        let _ = self.recv.stop(code.varint());
        let _ = self.verdict.reset(code.varint());
    }
}

async fn serve_stream(
    mut stream: Stream,
    peer: Fingerprint,
    remote: SocketAddr,
    shared: Arc<Shared>,
) {
    let limit = shared.limits.max_header;
    let deadline = tokio::time::Instant::now() + shared.header_timeout;
    let opening =
        match tokio::time::timeout_at(deadline, read_opening(&mut stream.recv, limit)).await {
            Ok(Ok(opening)) => opening,
            Ok(Err((kind, why))) => {
                tracing::warn!("QUIC: rejected a {kind} stream from {remote} ({peer}): {why}");
                stream.refuse(StopCode::HeaderRejected);
                return;
            }
            Err(_) => {
                tracing::warn!(
                "QUIC: rejected a response stream from {remote} ({peer}): no header within {:?}",
                shared.header_timeout
            );
                stream.refuse(StopCode::HeaderRejected);
                return;
            }
        };
    let header = match opening {
        Opening::Response(header) => header,
        Opening::Request(header) => {
            return serve_request(stream, header, peer, remote, deadline, &shared).await;
        }
    };
    let query_total = shared.budget(header.ltime, header.query_id);
    let body = BodyReader {
        stream,
        from: header.from.clone(),
        ltime: header.ltime,
        query_id: header.query_id,
        declared: header.total_len,
        received: 0,
        limits: shared.limits,
        max_chunk: shared.max_chunk,
        query_total,
        state: BodyState::Open,
        hold: false,
        settled: false,
    };
    let response = IncomingResponse {
        header,
        peer,
        remote,
        body,
    };
    if let Err(mpsc::error::SendError(refused)) = shared.tx.send(response).await {
        refused.body.refuse(StopCode::NotWanted);
    }
}

/// The stream of responses arriving at an endpoint.
pub struct IncomingResponses {
    rx: mpsc::Receiver<IncomingResponse>,
}

impl IncomingResponses {
    /// The next response whose header has arrived; `None` once the endpoint is gone.
    pub async fn next(&mut self) -> Option<IncomingResponse> {
        self.rx.recv().await
    }
}

/// One response as it starts to arrive: its header, who sent it, and its body. Dropping it
/// (or its body) before the end refuses the response: the responder's
/// [`ResponseWriter::finish`] fails with "the originator dropped the response". That is how
/// an embedder refuses a response whose `peer` is not the member the header names.
pub struct IncomingResponse {
    /// The decoded header.
    pub header: ResponseHeader,
    /// The fingerprint of the certificate the responder presented: check it against the
    /// member named in the header before trusting the body.
    pub peer: Fingerprint,
    /// The responder's UDP address.
    pub remote: SocketAddr,
    /// The body, read chunk by chunk. A responder that stalls without closing is not timed
    /// out here (the connection stays alive): bound the read by the query's own deadline.
    pub body: BodyReader,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyState {
    Open,
    Done,
    Failed,
}

/// Reads one response body chunk by chunk (each at most [`QuicConfig::max_chunk`] bytes),
/// enforcing the per-response and per-query limits.
pub struct BodyReader {
    stream: Stream,
    from: String,
    ltime: u64,
    query_id: u32,
    declared: Option<u64>,
    received: u64,
    limits: Limits,
    max_chunk: usize,
    query_total: Arc<AtomicU64>,
    state: BodyState,
    /// Set by [`BodyReader::hold_verdict`]: the end of the body does not answer the
    /// responder; [`BodyReader::accept`] or [`BodyReader::refuse`] does.
    hold: bool,
    /// The verdict has been sent (finished or reset).
    settled: bool,
}

impl BodyReader {
    /// Keeps the responder waiting at the end of the body until [`BodyReader::accept`] or
    /// [`BodyReader::refuse`]: a relay node answers the responder only once the originator
    /// has answered it, so the responder learns whether the response really arrived.
    pub fn hold_verdict(&mut self) {
        self.hold = true;
    }

    /// Tells the responder its whole response was taken (after [`BodyReader::hold_verdict`]
    /// and the end of the body; before the end it refuses the response as dropped).
    pub fn accept(mut self) {
        if self.state == BodyState::Done && !self.settled {
            self.settled = true;
            let _ = self.stream.verdict.finish();
        }
    }

    /// Refuses the response with `code`, whatever was read so far: the responder's writes
    /// (or its `finish`) fail with [`QuicError::Stopped`] carrying that code.
    pub fn refuse(mut self, code: StopCode) {
        if !self.settled {
            self.settled = true;
            self.state = BodyState::Failed;
            self.stream.refuse(code);
        }
    }

    /// The next chunk, `Ok(None)` at the end of a complete body, or why the response failed.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, QuicError> {
        match self.state {
            BodyState::Open => {}
            BodyState::Done => return Ok(None),
            BodyState::Failed => return Err(QuicError::AlreadyFailed),
        }
        let result = self.next_chunk().await;
        match &result {
            Ok(None) => {
                self.state = BodyState::Done;
                if !self.hold {
                    // Tell the responder the whole response was taken.
                    self.settled = true;
                    let _ = self.stream.verdict.finish();
                }
            }
            Err(_) => {
                self.state = BodyState::Failed;
                self.settled = true;
            }
            Ok(Some(_)) => {}
        }
        result
    }

    /// Body bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The body length the header declared, if any.
    pub fn declared_len(&self) -> Option<u64> {
        self.declared
    }

    fn fail(&mut self, code: StopCode, err: QuicError) -> Result<Option<Bytes>, QuicError> {
        self.stream.refuse(code);
        Err(err)
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, QuicError> {
        let limit = self.limits.max_response;
        if let Some(declared) = self.declared.filter(|d| *d > limit) {
            let err = QuicError::ResponseLimit {
                from: self.from.clone(),
                limit,
                received: declared,
                how: "declared",
            };
            return self.fail(StopCode::ResponseLimit, err);
        }
        let chunk = match self.stream.recv.read_chunk(self.max_chunk, true).await {
            Ok(Some(chunk)) => chunk.bytes,
            Ok(None) => {
                if let Some(declared) = self.declared.filter(|d| *d != self.received) {
                    let err = QuicError::Truncated {
                        from: self.from.clone(),
                        declared,
                        received: self.received,
                    };
                    return self.fail(StopCode::LengthMismatch, err);
                }
                return Ok(None);
            }
            Err(quinn::ReadError::Reset(code)) => {
                return Err(QuicError::Reset {
                    from: self.from.clone(),
                    code: code.into_inner(),
                    received: self.received,
                })
            }
            Err(e) => {
                return Err(QuicError::ConnectionLost {
                    from: self.from.clone(),
                    received: self.received,
                    reason: read_error(&e),
                })
            }
        };
        let n = chunk.len() as u64;
        self.received += n;
        if self.received > limit {
            let err = QuicError::ResponseLimit {
                from: self.from.clone(),
                limit,
                received: self.received,
                how: "received at least",
            };
            return self.fail(StopCode::ResponseLimit, err);
        }
        if let Some(declared) = self.declared.filter(|d| self.received > *d) {
            let err = QuicError::Truncated {
                from: self.from.clone(),
                declared,
                received: self.received,
            };
            return self.fail(StopCode::LengthMismatch, err);
        }
        let total = self.query_total.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.limits.max_query_total {
            let err = QuicError::QueryLimit {
                ltime: self.ltime,
                query_id: self.query_id,
                from: self.from.clone(),
                limit: self.limits.max_query_total,
                total,
            };
            return self.fail(StopCode::QueryLimit, err);
        }
        Ok(Some(chunk))
    }
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        if !self.settled {
            self.settled = true;
            // quinn would finish the verdict on drop, which reads as "taken": say otherwise.
            self.stream.refuse(StopCode::Dropped);
        }
    }
}
