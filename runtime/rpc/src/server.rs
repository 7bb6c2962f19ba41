//! [`RpcServer`]: Serf's RPC server over a [`Backend`]. One task accepts clients; each
//! client gets a reader task (decodes requests and runs them in order, as Serf's
//! `handleClient` does) and a writer task fed by a bounded queue. Streams (`stream`,
//! `monitor`, `query`) run as tasks of their own that push records into that queue without
//! waiting: a client that stops reading fills its queue and is dropped, so the agent and the
//! other clients never wait on it. A client that sends bytes that are not msgpack, or a
//! request of the wrong shape, is dropped with a log line; the exception is a `deploy`
//! (hearsay's own) whose body decodes but has the wrong fields: that is answered with an
//! error and the connection goes on.
//!
//! Two bounds Serf does not have keep idle or abusive clients from holding the agent's
//! memory and descriptors ([`ServerOptions`]): at most 256 connections open at once (one over
//! the cap is closed as it is accepted, and refusals are logged at most once per 5 s with
//! their count), and 10 s for a new connection to complete the handshake (and `auth`, with a
//! key). A client past those has no idle timeout. A connection's read buffer is released
//! whenever no request is pending, so an idle one holds none, and a large request's buffer
//! does not outlive it.
//!
//! Each connection acts as an [`Identity`]: `auth` with a tenant's token
//! ([`ServerOptions::tenant`]) makes it that tenant, and every request is checked against it
//! before the backend sees it (a refusal is the header's error, with the body the command's
//! client reads, and the connection goes on); a tenant's `stream` skips other namespaces'
//! events, and its `handlers` lists only its own.
//!
//! How large query responses reach a client is part of the protocol: see [`RpcServer`].

use crate::backend::{Backend, QueryEvent, QueryTarget, StreamEvent};
use crate::codec::{
    self, decode_partial, decode_value, frame, int, map, max_body_bytes, s, Decoded, RequestHeader,
    ResponseHeader, Value, MAX_VALUE_BYTES,
};
use crate::error::{Error, Result};
use crate::errors::*;
use crate::identity::{authenticate, Identity, TenantKey};
use crate::messages::{
    KeyOp, KeyResponse, LogLevel, QueryRequest, Request, RpcDeployments, RpcMember,
};
use crate::{command_has_body, IPC_VERSION};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// Frames queued per client before a client that does not read is dropped.
pub(crate) const CLIENT_QUEUE_FRAMES: usize = 1024;
/// Log lines one `monitor` may have queued for its client.
const MONITOR_LINES_QUEUED: usize = 64;
/// How long a `monitor` client may leave its queue full before it is dropped.
const MONITOR_PATIENCE: Duration = Duration::from_secs(5);
/// Pieces of large responses one `query` stream may have queued for its client (the number
/// [`RpcServer`]'s docs state).
pub(crate) const QUERY_PIECES_QUEUED: usize = 16;

/// How the server treats its clients. Build it from [`ServerOptions::default`] and the
/// setters (the struct may gain fields).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// When set, clients must send `auth` with this key after the handshake.
    pub auth_key: Option<String>,
    /// The most client connections open at once (0: no cap); default
    /// [`ServerOptions::DEFAULT_MAX_CONNECTIONS`]. A connection over it is closed as soon as
    /// it is accepted, before anything is read or written, so a client sees the connection
    /// close (Serf's client reports EOF during its handshake).
    pub max_connections: usize,
    /// How long a new connection has to complete the handshake, and the `auth` when the
    /// server has a key (zero: no bound); default
    /// [`ServerOptions::DEFAULT_HANDSHAKE_TIMEOUT`]. Counted from the accept; a connection
    /// that has not done both by then is closed. Past the handshake and `auth` a connection
    /// has no idle timeout (nor has Serf's): an idle CLI session, a `monitor` or a `stream`
    /// stays open as long as its client keeps it.
    pub handshake_timeout: Duration,
    /// The tenants whose tokens a client may `auth` with, to act as that tenant
    /// ([`Identity::Tenant`]): only the members, events and queries in its namespace, streams
    /// of those, and its own handlers. Without [`ServerOptions::auth_key`], a client that
    /// sends no `auth` is the operator (as in Serf).
    pub tenants: Vec<TenantKey>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            auth_key: None,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            tenants: Vec::new(),
        }
    }
}

impl ServerOptions {
    /// The default cap on concurrent client connections. Serf has none (its IPC listener
    /// accepts every connection and keeps it until the client goes). 256 is far above what an
    /// agent's RPC address is used for — each `serf`/`hearsay` command holds one connection
    /// while it runs, each `monitor` or `stream` one for as long as it runs — yet it bounds
    /// what clients can hold: each connection costs two tasks, a response queue and a read
    /// buffer (up to the 4 MiB request bound, or the `deploy` bound once authenticated), and
    /// a file descriptor, which the agent also needs for gossip, QUIC and handlers under the
    /// usual soft limit of 1024.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

    /// The default time a new connection has to complete the handshake (and `auth`). Serf's
    /// client and hearsay's send both as soon as they connect, and give up on an agent
    /// that takes 10 s to answer; a client still silent after that is holding a connection
    /// it does not use.
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

    /// Requires clients to authenticate with `key` (an empty key means no auth, as in Serf).
    pub fn auth_key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.auth_key = (!key.is_empty()).then_some(key);
        self
    }

    /// Adds tenant `name`: a client that sends `auth` with a token whose sha256 is one of
    /// `token_hashes` acts as that tenant.
    pub fn tenant(mut self, name: impl Into<String>, token_hashes: Vec<[u8; 32]>) -> Self {
        self.tenants.push(TenantKey {
            name: name.into(),
            token_hashes,
        });
        self
    }

    /// Caps the client connections open at once (0: no cap, as Serf).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Closes connections that have not completed the handshake (and `auth`, with a key)
    /// within `timeout` of being accepted (zero: no bound, as Serf).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
}

/// What every connection shares.
struct Shared {
    backend: Arc<dyn Backend>,
    options: ServerOptions,
    /// Client connections open now (counted from the accept to the end of their task).
    connections: Arc<AtomicUsize>,
}

/// A running RPC server. Dropping it does not stop it; call [`RpcServer::shutdown`].
///
/// # Large query responses
///
/// Large query responses (streamed over QUIC to a hearsay agent) reach a `query` stream as
/// several `response` records for the same node, each carrying one piece (at most 64 KiB) in
/// order ([`QueryEvent::Piece`]). Those records carry extra fields that Serf's client ignores
/// (go-msgpack skips unknown map keys): `Stream: true`, `Last` (true on the node's final
/// record) and `Error` (non-empty when the response failed midway; that final record has an
/// empty payload). The real `serf query` thus prints one "Response from 'node': ..." line per
/// piece and counts each piece as a response; hearsay's client joins the pieces. Piece records
/// wait for room (at most 16 per query in the client's queue) instead of dropping a slow
/// client, so a slow reader slows the responders down (QUIC flow control) rather than piling
/// up memory.
#[derive(Debug)]
pub struct RpcServer {
    local_addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl RpcServer {
    /// Binds `addr` (port 0 picks a free one) and starts serving `backend` on the current
    /// tokio runtime.
    pub async fn bind(
        addr: SocketAddr,
        backend: impl Backend,
        options: ServerOptions,
    ) -> Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|source| Error::Io {
            context: format!("binding the RPC address {addr}"),
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Io {
            context: "reading the RPC listener's address".into(),
            source,
        })?;
        let (stop, stop_rx) = watch::channel(false);
        let connections = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            backend: Arc::new(backend),
            options,
            connections: connections.clone(),
        });
        let task = tokio::spawn(accept_loop(listener, shared, stop_rx));
        tracing::info!(addr = %local_addr, "agent.ipc: RPC listening");
        Ok(Self {
            local_addr,
            connections,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many client connections are open now: accepted (within
    /// [`ServerOptions::max_connections`]) and not yet closed. A connection counts until its
    /// task has ended, its last responses written (or given up on).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Stops accepting, closes every client connection and waits for the tasks to end.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap().take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut clients = tokio::task::JoinSet::new();
    let max = shared.options.max_connections;
    let mut refusals = Refusals::default();
    loop {
        let report_at = refusals.report_at();
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if max != 0 && shared.connections.load(Ordering::Acquire) >= max {
                        // Closed before anything is read or written: the client sees EOF.
                        drop(stream);
                        if let Some((n, last)) = refusals.refused(peer, Instant::now()) {
                            warn_refused(n, last, max);
                        }
                        continue;
                    }
                    tracing::info!(client = %peer, "agent.ipc: Accepted client");
                    let open = OpenConnection::new(&shared.connections);
                    clients.spawn(serve_client(stream, peer, shared.clone(), open));
                }
                Err(e) => {
                    tracing::error!("agent.ipc: Failed to accept client: {e}");
                    // Out of descriptors and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
            _ = sleep_until(report_at), if report_at.is_some() => {
                if let Some((n, peer)) = refusals.report(Instant::now()) {
                    warn_refused(n, peer, max);
                }
            }
        }
    }
    clients.shutdown().await;
}

/// The one log line for connections refused over the cap (at most one per
/// [`REFUSAL_REPORT_EVERY`]).
fn warn_refused(n: u64, last: SocketAddr, max: usize) {
    tracing::warn!(
        refused = n,
        last_client = %last,
        "agent.ipc: refused {n} RPC connection(s) (the last from {last}): {max} are open, the \
         most allowed (rpc_max_connections)"
    );
}

/// A `sleep_until` for an optional deadline (pending forever without one; the `select!`
/// branch is disabled then anyway).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// How often, at most, refused connections are reported.
const REFUSAL_REPORT_EVERY: Duration = Duration::from_secs(5);

/// Connections refused over the cap and not yet reported: the first of a burst is reported
/// at once, the rest in one line per [`REFUSAL_REPORT_EVERY`] with their count.
#[derive(Debug, Default)]
struct Refusals {
    unreported: u64,
    last_peer: Option<SocketAddr>,
    last_report: Option<Instant>,
}

impl Refusals {
    /// Counts a refusal of `peer` at `now`; returns what to report when a report is due now.
    fn refused(&mut self, peer: SocketAddr, now: Instant) -> Option<(u64, SocketAddr)> {
        self.unreported += 1;
        self.last_peer = Some(peer);
        match self.last_report {
            Some(at) if now < at + REFUSAL_REPORT_EVERY => None,
            _ => self.report(now),
        }
    }

    /// When the refusals not yet reported are due (`None`: there are none).
    fn report_at(&self) -> Option<Instant> {
        if self.unreported == 0 {
            return None;
        }
        Some(
            self.last_report
                .map_or_else(Instant::now, |at| at + REFUSAL_REPORT_EVERY),
        )
    }

    /// Takes the refusals not yet reported (their count and the last peer), as reported at
    /// `now`.
    fn report(&mut self, now: Instant) -> Option<(u64, SocketAddr)> {
        let n = std::mem::take(&mut self.unreported);
        let peer = self.last_peer.take()?;
        self.last_report = Some(now);
        (n > 0).then_some((n, peer))
    }
}

/// One open client connection, counted in [`Shared::connections`] until dropped (when the
/// connection's task ends or is aborted).
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One frame for a client's writer, with the permit (if any) it holds until written.
struct Frame {
    buf: Vec<u8>,
    _permit: Option<OwnedSemaphorePermit>,
}

/// The sending side of one client: a bounded queue to its writer task.
#[derive(Debug, Clone)]
struct Outbox {
    tx: mpsc::Sender<Frame>,
    kill: Arc<Notify>,
    peer: SocketAddr,
}

impl Outbox {
    /// Queues a frame without waiting. A full queue means the client is not reading: it is
    /// dropped. Returns false when the client is gone.
    fn send(&self, header: ResponseHeader, body: Option<&Value>) -> bool {
        let frame = Frame {
            buf: frame(&header.to_value(), body),
            _permit: None,
        };
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.drop_unread();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Drops a client that does not read what it asked for.
    fn drop_unread(&self) {
        tracing::warn!(
            client = %self.peer,
            "agent.ipc: client is not reading its responses; dropping it"
        );
        self.kill.notify_one();
    }

    /// Queues a piece of a large response once `permits` (the query's share of the queue)
    /// has room, waiting rather than dropping the client. Returns false when it is gone.
    async fn send_piece(&self, seq: u64, body: &Value, permits: &Arc<Semaphore>) -> bool {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return false;
        };
        let header = ResponseHeader {
            seq,
            error: String::new(),
        };
        let frame = Frame {
            buf: frame(&header.to_value(), Some(body)),
            _permit: Some(permit),
        };
        self.tx.send(frame).await.is_ok()
    }

    fn reply(&self, seq: u64, error: impl Into<String>, body: Option<&Value>) -> bool {
        self.send(
            ResponseHeader {
                seq,
                error: error.into(),
            },
            body,
        )
    }
}

struct Client {
    shared: Arc<Shared>,
    out: Outbox,
    version: i64,
    authed: bool,
    /// Who the client acts as (set by `auth`).
    identity: Identity,
    streams: HashMap<u64, JoinHandle<()>>,
    monitor: Option<(u64, JoinHandle<()>)>,
    queries: Arc<Mutex<HashMap<u64, QueryTarget>>>,
    next_query_id: Arc<std::sync::atomic::AtomicU64>,
    /// Set after a completed `leave`: the reader stops once the response is written.
    leaving: bool,
}

impl Drop for Client {
    fn drop(&mut self) {
        for (_, t) in self.streams.drain() {
            t.abort();
        }
        if let Some((_, t)) = self.monitor.take() {
            t.abort();
        }
    }
}

/// Why a connection's read loop ended, other than the client closing it or leaving.
enum Ending {
    /// The client stopped reading its responses (already logged).
    Dropped,
    /// The client did not complete what it owes (the handshake, or `auth`) within
    /// [`ServerOptions::handshake_timeout`].
    Silent(&'static str),
    /// The client broke the protocol, or the socket failed.
    Failed(String),
}

impl From<String> for Ending {
    fn from(why: String) -> Self {
        Self::Failed(why)
    }
}

async fn serve_client(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _open: OpenConnection,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Frame>(CLIENT_QUEUE_FRAMES);
    let kill = Arc::new(Notify::new());
    let writer_kill = kill.clone();
    let mut writer = AbortOnDrop(Some(tokio::spawn(async move {
        while let Some(Frame { buf, _permit }) = rx.recv().await {
            if let Err(e) = wr.write_all(&buf).await {
                tracing::debug!(client = %peer, "agent.ipc: write failed: {e}");
                writer_kill.notify_one();
                return;
            }
        }
        let _ = wr.shutdown().await;
    })));
    let timeout = shared.options.handshake_timeout;
    let mut client = Client {
        shared,
        out: Outbox {
            tx,
            kill: kill.clone(),
            peer,
        },
        version: 0,
        authed: false,
        identity: Identity::Operator,
        streams: HashMap::new(),
        monitor: None,
        queries: Arc::new(Mutex::new(HashMap::new())),
        next_query_id: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        leaving: false,
    };
    let deadline = (!timeout.is_zero()).then(|| Instant::now() + timeout);
    let outcome = read_requests(&mut client, &mut rd, &kill, deadline).await;
    let dropped = matches!(outcome, Err(Ending::Dropped));
    match outcome {
        Ok(()) => tracing::debug!(client = %peer, "agent.ipc: client disconnected"),
        Err(Ending::Dropped) => {}
        Err(Ending::Silent(owed)) => tracing::info!(
            client = %peer,
            "agent.ipc: closing client: no {owed} within {timeout:?} of connecting"
        ),
        Err(Ending::Failed(e)) => {
            tracing::error!(client = %peer, "agent.ipc: dropping client: {e}")
        }
    }
    // Ends the stream tasks, so the writer's queue closes once drained.
    drop(client);
    let Some(handle) = writer.0.take() else {
        return;
    };
    if dropped {
        handle.abort();
    } else if tokio::time::timeout(WRITER_DRAIN, handle).await.is_err() {
        tracing::warn!(client = %peer, "agent.ipc: client did not take its last responses");
    }
}

/// Bytes read at a time (the read buffer's size while requests are small).
const READ_CHUNK: usize = 4096;

/// Reads and runs the client's requests until it closes the connection (`Ok`), leaves, or
/// must be dropped. Until the client has completed the handshake and any `auth`, `deadline`
/// bounds the wait; after that, none (a Serf client may stay idle as long as it likes).
async fn read_requests(
    client: &mut Client,
    rd: &mut OwnedReadHalf,
    kill: &Notify,
    deadline: Option<Instant>,
) -> std::result::Result<(), Ending> {
    // Empty (no allocation) while nothing is pending: an idle connection holds no buffer.
    let mut buf: Vec<u8> = Vec::new();
    // The buffer length below which a body still arriving cannot be complete: a large body
    // is scanned again only once the bytes it lacked have come, not on every read.
    let mut complete_at = 0usize;
    loop {
        // Decode every complete request in the buffer.
        while buf.len() >= complete_at {
            let Some((header, used)) = decode_value(&buf).map_err(|e| e.to_string())? else {
                break;
            };
            let header = RequestHeader::from_value(&header)
                .map_err(|e| format!("failed to decode request header: {e}"))?;
            let (body, body_used) = if command_has_body(&header.command) {
                let limit = client.body_limit(&header.command);
                match decode_partial(&buf[used..], limit) {
                    Ok(Decoded::Value(v, n)) => (v, n),
                    Ok(Decoded::Needs(n)) => {
                        complete_at = buf.len() + n;
                        break;
                    }
                    Err(e) => {
                        // hearsay's own command learns why before the connection
                        // closes (its body was not read, so the stream is lost).
                        if header.command == "deploy" {
                            client.refuse_deploy(header.seq, &e);
                        }
                        return Err(Ending::Failed(e.to_string()));
                    }
                }
            } else {
                (Value::Nil, 0)
            };
            buf.drain(..used + body_used);
            complete_at = 0;
            // Boxed: the largest requests' futures (queries, stats) are then allocated only
            // while they run, not kept in every idle connection's task.
            Box::pin(client.handle(header, body)).await?;
            if client.leaving {
                return Ok(());
            }
        }
        // A large request (a `deploy` body above all) may have grown the buffer far past
        // what the next one needs: do not keep that memory for the life of the connection.
        if buf.is_empty() {
            buf = Vec::new();
        } else if buf.capacity() > 2 * MAX_VALUE_BYTES && buf.len() < MAX_VALUE_BYTES {
            buf.shrink_to(READ_CHUNK.max(buf.len()));
        }
        let owed = deadline.and_then(|at| Some((client.owes()?, at)));
        let ready = tokio::select! {
            r = rd.readable() => r,
            _ = kill.notified() => return Err(Ending::Dropped),
            _ = sleep_until(owed.map(|(_, at)| at)), if owed.is_some() => {
                return Err(Ending::Silent(owed.map_or("handshake", |(what, _)| what)));
            }
        };
        if let Err(e) = ready {
            return Err(Ending::Failed(format!("read failed: {e}")));
        }
        buf.reserve(READ_CHUNK);
        match rd.try_read_buf(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Ending::Failed(format!("read failed: {e}"))),
        }
    }
}

/// How long a closing connection may take to write its last queued responses.
const WRITER_DRAIN: Duration = Duration::from_secs(10);

/// Aborts the writer task when the connection's task is dropped (server shutdown), so a
/// write blocked on a client that does not read cannot outlive it.
struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

impl Client {
    /// Runs one request. `Err` drops the client (Serf closes the connection in these cases).
    async fn handle(
        &mut self,
        header: RequestHeader,
        body: Value,
    ) -> std::result::Result<(), String> {
        let seq = header.seq;
        let command = header.command.as_str();
        if command != "handshake" && self.version == 0 {
            self.out.reply(seq, HANDSHAKE_REQUIRED, None);
            return Err(HANDSHAKE_REQUIRED.to_owned());
        }
        let req = match Request::parse(command, body) {
            None => {
                self.out.reply(seq, UNSUPPORTED_COMMAND, None);
                return Err(format!("command '{command}' not recognized"));
            }
            // hearsay's own command: its whole body was read, so the connection is still in
            // step and the client is told what was wrong instead of being dropped. (Serf
            // drops a client whose body does not decode; so do we for Serf's commands.)
            Some(Err(e)) if command == "deploy" => {
                self.refuse_deploy(seq, &e);
                return Ok(());
            }
            Some(Err(e)) => return Err(format!("decode failed: {e}")),
            Some(Ok(r)) => r,
        };
        if self.needs_auth() && !matches!(req, Request::Auth { .. } | Request::Handshake { .. }) {
            tracing::warn!(client = %self.out.peer, "agent.ipc: Client sending commands before auth");
            // No body, even for commands that have one: Serf's client skips the body
            // when the error is exactly this one.
            self.out.reply(seq, AUTH_REQUIRED, None);
            return Ok(());
        }
        if let Err(why) = self.identity.permits(command, &req) {
            tracing::warn!(client = %self.out.peer, "agent.ipc: {why}");
            // With the body the client waits for, so it reads the error and goes on.
            self.out.reply(seq, why, refusal_body(&req).as_ref());
            return Ok(());
        }
        self.run(seq, req).await;
        Ok(())
    }

    /// What the client still owes before it may run commands: the `handshake`, or the `auth`
    /// the server's key calls for; `None` once it has done both.
    fn owes(&self) -> Option<&'static str> {
        if self.version == 0 {
            Some("handshake")
        } else if self.needs_auth() {
            Some("auth")
        } else {
            None
        }
    }

    /// Whether the server has an auth key this client has not yet sent.
    fn needs_auth(&self) -> bool {
        self.shared.options.auth_key.is_some() && !self.authed
    }

    /// Answers a `deploy` whose body could not be taken (`e`: wrong fields, or larger than
    /// [`Client::body_limit`]) as the client's state calls for: the handshake or auth it
    /// still owes, else "invalid deploy request: ..." with the response body it waits for.
    fn refuse_deploy(&self, seq: u64, e: &Error) {
        if self.version == 0 {
            self.out.reply(seq, HANDSHAKE_REQUIRED, None);
        } else if self.needs_auth() {
            self.out.reply(seq, AUTH_REQUIRED, None);
        } else if let Err(why) = self.identity.permits("deploy", &DEPLOY) {
            self.out.reply(seq, why, Some(&deploy_body(0)));
        } else {
            let err = format!("invalid deploy request: {}", protocol_text(e));
            self.out.reply(seq, err, Some(&deploy_body(0)));
        }
    }

    /// The largest body accepted for `command` from this client: `deploy`'s larger bound
    /// ([`codec::MAX_DEPLOY_BYTES`]) only once the handshake and any `auth` are done, so an
    /// unauthenticated client (or a tenant, which may not deploy) cannot make the agent buffer
    /// that much.
    fn body_limit(&self, command: &str) -> usize {
        if self.version == 0 || self.needs_auth() || self.identity != Identity::Operator {
            MAX_VALUE_BYTES
        } else {
            max_body_bytes(command)
        }
    }

    async fn run(&mut self, seq: u64, req: Request) {
        let backend = self.shared.backend.clone();
        let out = self.out.clone();
        match req {
            Request::Handshake { version } => {
                let err = if version != IPC_VERSION {
                    UNSUPPORTED_IPC_VERSION
                } else if self.version != 0 {
                    DUPLICATE_HANDSHAKE
                } else {
                    self.version = version;
                    ""
                };
                out.reply(seq, err, None);
            }
            Request::Auth { key } => {
                let options = &self.shared.options;
                let who = authenticate(options.auth_key.as_deref(), &options.tenants, &key);
                let ok = who.is_some();
                if let Some(who) = who {
                    self.identity = who;
                    self.authed = true;
                }
                out.reply(seq, if ok { "" } else { INVALID_AUTH_TOKEN }, None);
            }
            Request::Event {
                name,
                payload,
                coalesce,
            } => {
                let r = backend.user_event(&name, &payload, coalesce).await;
                out.reply(seq, err_string(r), None);
            }
            Request::ForceLeave { node, prune } => {
                let r = backend.force_leave(&node, prune).await;
                out.reply(seq, err_string(r), None);
            }
            Request::Join { existing, replay } => {
                let (num, err) = match backend.join(&existing, replay).await {
                    Ok(n) => (n, String::new()),
                    Err(e) => (0, e.to_string()),
                };
                out.reply(seq, err, Some(&map(vec![("Num", int(num as i64))])));
            }
            Request::Members => {
                let r = backend.members().await;
                let (members, err) = match r {
                    Ok(m) => (m, String::new()),
                    Err(e) => (Vec::new(), e.to_string()),
                };
                out.reply(seq, err, Some(&members_body(&members)));
            }
            Request::MembersFiltered { tags, status, name } => {
                let (members, err) = match backend.members().await {
                    Ok(m) => match filter_members(m, &tags, &status, &name) {
                        Ok(m) => (m, String::new()),
                        Err(e) => (Vec::new(), e),
                    },
                    Err(e) => (Vec::new(), e.to_string()),
                };
                out.reply(seq, err, Some(&members_body(&members)));
            }
            Request::Tags { tags, delete } => {
                let r = backend.update_tags(tags, delete).await;
                out.reply(seq, err_string(r), None);
            }
            Request::Stream { filter } => self.start_stream(seq, &filter),
            Request::Monitor { level } => self.start_monitor(seq, &level),
            Request::Stop { seq: stop } => {
                if let Some((mseq, t)) = self.monitor.take() {
                    if mseq == stop {
                        t.abort();
                    } else {
                        self.monitor = Some((mseq, t));
                    }
                }
                if let Some(t) = self.streams.remove(&stop) {
                    t.abort();
                }
                out.reply(seq, "", None);
            }
            Request::Leave => {
                tracing::info!("agent.ipc: Graceful leave triggered");
                let r = backend.leave().await;
                if let Err(e) = &r {
                    tracing::error!("agent.ipc: leave failed: {e}");
                }
                out.reply(seq, err_string(r), None);
                backend.left().await;
                self.leaving = true;
            }
            Request::Query(q) => self.start_query(seq, *q).await,
            Request::Respond { id, payload } => {
                let pending = {
                    let mut qs = self.queries.lock().unwrap();
                    qs.retain(|_, q| q.deadline > Instant::now());
                    qs.get(&id).cloned()
                };
                let err = match pending {
                    None => INVALID_QUERY_ID.to_owned(),
                    Some(target) => err_string(backend.respond(target, &payload).await),
                };
                out.reply(seq, err, None);
            }
            Request::Key { op, key } => {
                let (resp, err) = match backend.key_op(op, &key).await {
                    Ok((mut resp, err)) => {
                        // Only `list-keys` reports the keys it saw.
                        if op != KeyOp::List {
                            resp.keys.clear();
                        }
                        (resp, err.unwrap_or_default())
                    }
                    Err(e) => (KeyResponse::default(), e.to_string()),
                };
                out.reply(seq, err, Some(&resp.to_value()));
            }
            Request::Stats => {
                let body = self.stats().await;
                out.reply(seq, "", Some(&body));
            }
            Request::Handlers => {
                let mut listed = backend.handlers().await;
                listed.retain(|h| self.identity.sees_handler(h));
                let body = map(vec![(
                    "Handlers",
                    Value::Array(listed.iter().map(|h| h.to_value()).collect()),
                )]);
                out.reply(seq, "", Some(&body));
            }
            Request::Deploy { deployment, module } => {
                let (version, err) = match backend.deploy(deployment, module).await {
                    Ok(v) => (v, String::new()),
                    Err(e) => (0, e),
                };
                out.reply(seq, err, Some(&deploy_body(version)));
            }
            Request::Deployments => {
                match backend.deployments().await {
                    Ok(listed) => out.reply(seq, "", Some(&listed.to_value())),
                    Err(e) => out.reply(seq, e, Some(&RpcDeployments::default().to_value())),
                };
            }
            Request::Coordinate { node } => {
                let coord = backend.coordinate(&node).await;
                let mut w = hearsay_swim::wire::msgpack::Writer::default();
                let zero = hearsay_serf::coordinate::Coordinate {
                    vec: Vec::new(),
                    error: 0.0,
                    adjustment: 0.0,
                    height: 0.0,
                };
                hearsay_serf::coordinate::encode_coordinate(
                    &mut w,
                    coord.as_ref().unwrap_or(&zero),
                );
                let bytes = w.into_inner();
                let coord_value = decode_value(&bytes)
                    .ok()
                    .flatten()
                    .map_or(Value::Nil, |(v, _)| v);
                let body = map(vec![
                    ("Coord", coord_value),
                    ("Ok", Value::Bool(coord.is_some())),
                ]);
                out.reply(seq, "", Some(&body));
            }
        }
    }

    fn start_stream(&mut self, seq: u64, filter: &str) {
        // Subscribed before the checks Serf makes in the other order (filter, then sequence):
        // a refused stream only drops its subscription, and the answers are the same.
        let Some(mut events) = self.shared.backend.subscribe_events(filter) else {
            self.out.reply(seq, INVALID_FILTER, None);
            return;
        };
        if self.streams.contains_key(&seq) {
            self.out.reply(seq, STREAM_EXISTS, None);
            return;
        }
        self.out.reply(seq, "", None);
        let out = self.out.clone();
        let queries = self.queries.clone();
        let next_id = self.next_query_id.clone();
        let identity = self.identity.clone();
        let task = tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                // A tenant gets member events and its own namespace's events and queries.
                let hidden = match &ev {
                    StreamEvent::User { name, .. } => !identity.sees(name),
                    StreamEvent::Query { target, .. } => !identity.sees(&target.name),
                    StreamEvent::Lagged(_) | StreamEvent::Member { .. } => false,
                };
                if hidden {
                    continue;
                }
                let rec = match ev {
                    StreamEvent::Lagged(n) => {
                        tracing::warn!(client = %out.peer, "agent.ipc: Dropping {n} events to client");
                        continue;
                    }
                    StreamEvent::Member { kind, members } => map(vec![
                        ("Event", s(&kind)),
                        (
                            "Members",
                            Value::Array(members.iter().map(RpcMember::to_value).collect()),
                        ),
                    ]),
                    StreamEvent::User {
                        ltime,
                        name,
                        payload,
                        coalesce,
                    } => map(vec![
                        ("Event", s("user")),
                        ("LTime", Value::Uint(ltime)),
                        ("Name", s(&name)),
                        ("Payload", Value::Raw(payload)),
                        ("Coalesce", Value::Bool(coalesce)),
                    ]),
                    StreamEvent::Query { target, payload } => {
                        let id = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        let rec = map(vec![
                            ("Event", s("query")),
                            ("ID", Value::Uint(id)),
                            ("LTime", Value::Uint(target.ltime)),
                            ("Name", s(&target.name)),
                            ("Payload", Value::Raw(payload)),
                        ]);
                        let now = Instant::now();
                        if target.deadline > now {
                            let mut pending = queries.lock().unwrap();
                            // Queries past their deadline can no longer be answered: a
                            // stream whose client never responds must not pile them up.
                            pending.retain(|_, q| q.deadline > now);
                            pending.insert(id, target);
                        }
                        rec
                    }
                };
                if !out.reply(seq, "", Some(&rec)) {
                    return;
                }
            }
        });
        self.streams.insert(seq, task);
    }

    fn start_monitor(&mut self, seq: u64, level: &str) {
        let upper = level.to_ascii_uppercase();
        let Some(min) = LogLevel::parse(&upper) else {
            self.out
                .reply(seq, format!("Unknown log level: {upper}"), None);
            return;
        };
        if self.monitor.is_some() {
            self.out.reply(seq, MONITOR_EXISTS, None);
            return;
        }
        let mut lines = self.shared.backend.subscribe_logs(min);
        self.out.reply(seq, "", None);
        let out = self.out.clone();
        let task = tokio::spawn(async move {
            // A monitor that reads slowly is waited for (its log subscription drops the
            // oldest lines meanwhile, as Serf drops lines for a slow monitor), so a burst such
            // as the replayed backlog does not cost it the connection; one that does not read
            // at all for MONITOR_PATIENCE is dropped.
            let permits = Arc::new(Semaphore::new(MONITOR_LINES_QUEUED));
            while let Some(line) = lines.next().await {
                let body = map(vec![("Log", s(&line))]);
                let sent = out.send_piece(seq, &body, &permits);
                match tokio::time::timeout(MONITOR_PATIENCE, sent).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(_) => {
                        out.drop_unread();
                        return;
                    }
                }
            }
        });
        self.monitor = Some((seq, task));
    }

    async fn start_query(&mut self, seq: u64, q: QueryRequest) {
        let mut results = match self.shared.backend.query(q).await {
            Ok(r) => r,
            Err(e) => {
                self.out.reply(seq, e.to_string(), None);
                return;
            }
        };
        self.out.reply(seq, "", None);
        let out = self.out.clone();
        let task = tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(QUERY_PIECES_QUEUED));
            // Each node's latest piece, held back until we know whether it is the last.
            let mut held: HashMap<String, Value> = HashMap::new();
            while let Some(r) = results.next().await {
                let rec = match r {
                    QueryEvent::Ack { from } => map(vec![
                        ("Type", s("ack")),
                        ("From", s(&from)),
                        ("Payload", Value::Nil),
                    ]),
                    QueryEvent::Response { from, payload } => map(vec![
                        ("Type", s("response")),
                        ("From", s(&from)),
                        ("Payload", Value::Raw(payload)),
                    ]),
                    QueryEvent::Piece { from, chunk } => {
                        let piece = piece_record(&from, chunk, false, "");
                        match held.insert(from, piece) {
                            Some(prev) if !out.send_piece(seq, &prev, &permits).await => return,
                            _ => continue,
                        }
                    }
                    QueryEvent::End { from, result } => {
                        let last = match (held.remove(&from), &result) {
                            (Some(piece), Ok(_)) => mark_last(piece),
                            (held, Err(why)) => {
                                if let Some(piece) = held {
                                    if !out.send_piece(seq, &piece, &permits).await {
                                        return;
                                    }
                                }
                                piece_record(&from, Vec::new(), true, why)
                            }
                            (None, Ok(_)) => piece_record(&from, Vec::new(), true, ""),
                        };
                        if !out.send_piece(seq, &last, &permits).await {
                            return;
                        }
                        continue;
                    }
                    QueryEvent::Done => map(vec![
                        ("Type", s("done")),
                        ("From", s("")),
                        ("Payload", Value::Nil),
                    ]),
                };
                // Waits for the pieces queued before it, so `done` never overtakes them.
                if !out.send_piece(seq, &rec, &permits).await {
                    return;
                }
            }
        });
        // Kept with the streams so the task ends with the client; a finished one is cheap.
        self.streams.retain(|_, t| !t.is_finished());
        self.streams.entry(seq).or_insert(task);
    }

    async fn stats(&self) -> Value {
        let stats = self.shared.backend.stats().await;
        let mut runtime = BTreeMap::new();
        runtime.insert("os".to_owned(), std::env::consts::OS.to_owned());
        runtime.insert("arch".to_owned(), std::env::consts::ARCH.to_owned());
        runtime.insert("version".to_owned(), stats.version);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        runtime.insert("cpu_count".to_owned(), cpus.to_string());
        runtime.insert("max_procs".to_owned(), cpus.to_string());
        // Go's goroutines have no exact twin: the tasks alive on the runtime serving RPC (the
        // agent's: gossip driver, QUIC, RPC clients, handlers' dispatch) stand in for them,
        // and `threads` counts the process's OS threads.
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        runtime.insert("goroutines".to_owned(), tasks.to_string());
        if let Some(threads) = os_threads() {
            runtime.insert("threads".to_owned(), threads.to_string());
        }
        let mut agent_map = BTreeMap::new();
        agent_map.insert("name".to_owned(), stats.name);
        // Serf's section order, not sorted: the map is written as built.
        Value::Map(vec![
            (s("agent"), codec::string_map(&agent_map)),
            (s("runtime"), codec::string_map(&runtime)),
            (s("serf"), codec::string_map(&stats.serf)),
            (s("tags"), codec::string_map(&stats.tags)),
            (
                s("event_handlers"),
                codec::string_map(&stats.event_handlers),
            ),
        ])
    }
}

fn members_body(members: &[RpcMember]) -> Value {
    map(vec![(
        "Members",
        Value::Array(members.iter().map(RpcMember::to_value).collect()),
    )])
}

/// Serf's `filterMembers`: every filter is a regular expression anchored at both ends.
fn filter_members(
    members: Vec<RpcMember>,
    tags: &BTreeMap<String, String>,
    status: &str,
    name: &str,
) -> std::result::Result<Vec<RpcMember>, String> {
    let compile = |expr: &str| {
        regex::Regex::new(&format!("^{expr}$")).map_err(|e| format!("Failed to compile regex: {e}"))
    };
    let tag_res = tags
        .iter()
        .map(|(t, e)| Ok((t.clone(), compile(e)?)))
        .collect::<std::result::Result<Vec<_>, String>>()?;
    let status_re = compile(status)?;
    let name_re = compile(name)?;
    Ok(members
        .into_iter()
        .filter(|m| {
            tag_res
                .iter()
                .all(|(t, re)| re.is_match(m.tags.get(t).map_or("", String::as_str)))
                && (status.is_empty() || status_re.is_match(&m.status))
                && (name.is_empty() || name_re.is_match(&m.name))
        })
        .collect())
}

/// A `deploy` standing for every deploy request when asking whether a client may deploy.
const DEPLOY: Request = Request::Deploy {
    deployment: Vec::new(),
    module: Vec::new(),
};

/// The body a refused request's client reads after the header (Serf's client decodes one for
/// these commands whatever the error), shaped as the command's response; `None` for commands
/// answered with a header alone.
fn refusal_body(req: &Request) -> Option<Value> {
    match req {
        Request::Join { .. } => Some(map(vec![("Num", int(0))])),
        Request::Members | Request::MembersFiltered { .. } => Some(members_body(&[])),
        Request::Key { .. } => Some(KeyResponse::default().to_value()),
        Request::Stats => Some(map(Vec::new())),
        Request::Handlers => Some(map(vec![("Handlers", Value::Array(Vec::new()))])),
        Request::Deploy { .. } => Some(deploy_body(0)),
        Request::Deployments => Some(RpcDeployments::default().to_value()),
        Request::Coordinate { .. } => {
            Some(map(vec![("Coord", Value::Nil), ("Ok", Value::Bool(false))]))
        }
        _ => None,
    }
}

/// The body of a `deploy` response.
fn deploy_body(version: u64) -> Value {
    map(vec![("Version", Value::Uint(version))])
}

/// A decode error's text without [`Error::Protocol`]'s "RPC protocol error: " prefix, for
/// replies such as "invalid deploy request: field Deployment: expected bytes, found integer".
fn protocol_text(e: &Error) -> String {
    match e {
        Error::Protocol(text) => text.clone(),
        other => other.to_string(),
    }
}

fn err_string<T>(r: std::result::Result<T, crate::BackendError>) -> String {
    r.err().map(|e| e.to_string()).unwrap_or_default()
}

/// A `response` record carrying one piece of a large response (see the module docs).
fn piece_record(from: &str, payload: Vec<u8>, last: bool, error: &str) -> Value {
    map(vec![
        ("Type", s("response")),
        ("From", s(from)),
        ("Payload", Value::Raw(payload)),
        ("Stream", Value::Bool(true)),
        ("Last", Value::Bool(last)),
        ("Error", s(error)),
    ])
}

fn mark_last(piece: Value) -> Value {
    match piece {
        Value::Map(mut fields) => {
            for (k, v) in fields.iter_mut() {
                if matches!(k, Value::Raw(k) if k == b"Last") {
                    *v = Value::Bool(true);
                }
            }
            Value::Map(fields)
        }
        other => other,
    }
}

/// The process's OS threads (`Threads:` in `/proc/self/status`; `None` elsewhere).
fn os_threads() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Fields;

    #[test]
    fn pieces_carry_stream_last_and_error_fields() {
        let f = |v: &Value, k: &str| Fields::of(v, "piece").unwrap().get(k).cloned();
        let p = piece_record("n1", b"abc".to_vec(), false, "");
        assert_eq!(f(&p, "Type"), Some(s("response")));
        assert_eq!(f(&p, "Stream"), Some(Value::Bool(true)));
        assert_eq!(f(&p, "Last"), Some(Value::Bool(false)));
        let last = mark_last(p);
        assert_eq!(f(&last, "Last"), Some(Value::Bool(true)));
        assert_eq!(f(&last, "Payload"), Some(Value::Raw(b"abc".to_vec())));
        let failed = piece_record("n1", Vec::new(), true, "reset");
        assert_eq!(f(&failed, "Error"), Some(s("reset")));
    }

    #[test]
    fn refusals_are_reported_at_most_once_per_period_with_their_count() {
        let peer = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let t0 = Instant::now();
        let mut r = Refusals::default();
        assert_eq!(r.report_at(), None);
        // The first of a burst is reported at once...
        assert_eq!(r.refused(peer(1), t0), Some((1, peer(1))));
        assert_eq!(r.report_at(), None);
        // ...the rest wait for the period's end, counted.
        for port in 2..=40 {
            assert_eq!(
                r.refused(peer(port), t0 + Duration::from_millis(port.into())),
                None
            );
        }
        assert_eq!(r.report_at(), Some(t0 + REFUSAL_REPORT_EVERY));
        let t1 = t0 + REFUSAL_REPORT_EVERY;
        assert_eq!(r.report(t1), Some((39, peer(40))));
        assert_eq!(r.report_at(), None);
        assert_eq!(r.report(t1), None, "nothing left to report");
        // Within the next period: counted again; after a quiet period: reported at once.
        assert_eq!(r.refused(peer(41), t1 + Duration::from_secs(1)), None);
        assert_eq!(r.report(t1 + REFUSAL_REPORT_EVERY), Some((1, peer(41))));
        let later = t1 + 3 * REFUSAL_REPORT_EVERY;
        assert_eq!(r.refused(peer(42), later), Some((1, peer(42))));
    }

    #[test]
    fn member_filters_are_anchored_regexes() {
        let m = |name: &str| RpcMember {
            name: name.into(),
            addr: vec![127, 0, 0, 1],
            port: 1,
            tags: BTreeMap::new(),
            status: "alive".into(),
            vsn: [0; 6],
        };
        let all = vec![m("web1"), m("web12"), m("db1")];
        let got = filter_members(all.clone(), &BTreeMap::new(), "", "web.").unwrap();
        assert_eq!(got.len(), 1);
        let got = filter_members(all.clone(), &BTreeMap::new(), "alive", "").unwrap();
        assert_eq!(got.len(), 3);
        assert!(filter_members(all, &BTreeMap::new(), "(", "").is_err());
    }
}
