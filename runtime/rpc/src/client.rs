//! [`RpcClient`]: a client of Serf's RPC protocol, for hearsay's agent or Serf's. Like Serf's
//! Go client it multiplexes requests over one connection by sequence number: a reader task
//! decodes each response header, then the body the request's kind calls for, and hands
//! them to the waiting call or stream.

use crate::codec::{
    self, decode_value, frame, map, s, Fields, RequestHeader, ResponseHeader, Value,
};
use crate::error::{Error, Result};
use crate::errors::{AUTH_REQUIRED, HANDSHAKE_REQUIRED, UNSUPPORTED_COMMAND};
use crate::messages::{KeyOp, KeyResponse, QueryRecord, RpcDeployments, RpcHandler, RpcMember};
use crate::IPC_VERSION;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Records one stream may have waiting for its reader. When they are all waiting, the
/// connection stops reading and TCP holds the agent back, so a large query response costs the
/// client at most this many records (pieces are at most 64 KiB) whatever its size.
pub(crate) const STREAM_RECORDS: usize = 64;

/// Serf's client timeout for connecting and for writing a request (for a request larger
/// than [`WRITE_CHUNK`], for writing each chunk of it).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request is written in pieces of this size, each within [`DEFAULT_TIMEOUT`]: a `deploy`
/// of tens of MiB over a slow link is not cut off as long as it moves, while a stalled agent
/// is still noticed. Serf's requests are far smaller, so for them this is Serf's timeout.
pub(crate) const WRITE_CHUNK: usize = 1024 * 1024;

/// Room for `deploy`'s map header, field names and length prefixes, beyond its two byte
/// fields, when checking a request against [`codec::MAX_DEPLOY_BYTES`].
const DEPLOY_OVERHEAD: usize = 64;

type Reply = (ResponseHeader, Value);

enum Pending {
    /// One response; `body` when a body follows the header.
    Once {
        body: bool,
        tx: oneshot::Sender<Reply>,
    },
    /// A stream: the first header answers the request (no body), later ones carry records.
    Stream {
        started: Option<oneshot::Sender<Reply>>,
        tx: mpsc::Sender<Value>,
    },
}

/// A connection to an agent's RPC address, handshaken (and authenticated when a key was
/// given). Cheap to share by reference; requests may run concurrently.
pub struct RpcClient {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    seq: AtomicU64,
    pending: Arc<Mutex<HashMap<u64, Pending>>>,
    reader: JoinHandle<()>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient").finish_non_exhaustive()
    }
}

impl Drop for RpcClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A stream of records (`stream`, `monitor`, `query`); ends when the agent ends it or the
/// connection closes. Stop it early with [`RpcClient::stop`] and its [`RecordStream::seq`].
#[derive(Debug)]
pub struct RecordStream {
    seq: u64,
    rx: mpsc::Receiver<Value>,
}

impl RecordStream {
    /// The request's sequence number (the handle `stop` takes).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The next raw record.
    pub async fn next(&mut self) -> Option<Value> {
        self.rx.recv().await
    }

    /// The next `monitor` log line.
    pub async fn next_log(&mut self) -> Option<String> {
        let v = self.rx.recv().await?;
        Fields::of(&v, "logRecord").ok()?.str("Log").ok()
    }

    /// The next `query` record; `None` after `done`.
    pub async fn next_query_record(&mut self) -> Option<QueryRecord> {
        let v = self.rx.recv().await?;
        let f = Fields::of(&v, "queryRecord").ok()?;
        let (from, payload) = (f.str("From").ok()?, f.bytes("Payload").ok()?);
        match f.str("Type").ok()?.as_str() {
            "ack" => Some(QueryRecord::Ack(from)),
            "response" if f.bool("Stream").unwrap_or(false) => Some(QueryRecord::Piece {
                from,
                payload,
                last: f.bool("Last").unwrap_or(false),
                error: f.str("Error").ok().filter(|e| !e.is_empty()),
            }),
            "response" => Some(QueryRecord::Response(from, payload)),
            _ => None,
        }
    }
}

/// The parameters of [`RpcClient::query`] (Serf's `QueryParam`).
#[derive(Debug, Clone, Default)]
pub struct QueryParams {
    /// Only these nodes answer (`FilterNodes`); empty means every node.
    pub filter_nodes: Vec<String>,
    /// Only nodes whose tags match these regular expressions answer (`FilterTags`, tag name →
    /// regex; unanchored, as Go's `regexp.MatchString`; a missing tag is the empty string).
    pub filter_tags: BTreeMap<String, String>,
    /// Asks every node that receives the query for an ack (`RequestAck`).
    pub request_ack: bool,
    /// How many extra nodes relay each response back (`RelayFactor`; 0 = direct only).
    pub relay_factor: u8,
    /// How long the query collects responses (`Timeout`); zero = the agent's default (Serf's
    /// `GossipInterval × QueryTimeoutMult × ⌈log10(N+1)⌉` for N alive members).
    pub timeout: Duration,
    /// The query's name (`Name`), which handlers filter on (`query:NAME`).
    pub name: String,
    /// The query's payload (`Payload`).
    pub payload: Vec<u8>,
}

/// A network coordinate as `get-coordinate` returns it.
pub type Coordinate = hearsay_serf::coordinate::Coordinate;

impl RpcClient {
    /// Connects to `addr` (`host:port`), performs the handshake and, with `auth_key`, the
    /// auth exchange. Connecting, and writing each request (each MiB of a larger one, such as
    /// a `deploy`), is bounded by Serf's client timeout (10 seconds).
    pub async fn connect(addr: &str, auth_key: Option<&str>) -> Result<Self> {
        let io = |source| Error::Io {
            context: format!("connecting to {addr}"),
            source,
        };
        let stream = tokio::time::timeout(DEFAULT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io(std::io::ErrorKind::TimedOut.into()))?
            .map_err(io)?;
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let pending: Arc<Mutex<HashMap<u64, Pending>>> = Arc::default();
        let reader = tokio::spawn(read_loop(rd, pending.clone()));
        let client = Self {
            writer: tokio::sync::Mutex::new(wr),
            seq: AtomicU64::new(0),
            pending,
            reader,
        };
        client
            .call(
                "handshake",
                Some(map(vec![("Version", Value::Uint(IPC_VERSION as u64))])),
                false,
            )
            .await?;
        if let Some(key) = auth_key.filter(|k| !k.is_empty()) {
            client
                .call("auth", Some(map(vec![("AuthKey", s(key))])), false)
                .await?;
        }
        Ok(client)
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    async fn write(&self, command: &str, seq: u64, body: Option<Value>) -> Result<()> {
        let header = RequestHeader {
            command: command.to_owned(),
            seq,
        };
        let bytes = frame(&header.to_value(), body.as_ref());
        drop(body);
        let mut w = self.writer.lock().await;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            tokio::time::timeout(DEFAULT_TIMEOUT, w.write_all(chunk))
                .await
                .map_err(|_| Error::Io {
                    context: format!("sending {command}"),
                    source: std::io::ErrorKind::TimedOut.into(),
                })?
                .map_err(|source| Error::Io {
                    context: format!("sending {command}"),
                    source,
                })?;
        }
        Ok(())
    }

    /// Sends a request and waits for its response: `(error text, body)`.
    async fn call_raw(&self, command: &str, body: Option<Value>, resp_body: bool) -> Result<Reply> {
        let seq = self.next_seq();
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(
            seq,
            Pending::Once {
                body: resp_body,
                tx,
            },
        );
        if let Err(e) = self.write(command, seq, body).await {
            self.pending.lock().unwrap().remove(&seq);
            return Err(e);
        }
        rx.await.map_err(|_| Error::Closed)
    }

    /// Like [`Self::call_raw`], but an error text becomes [`Error::Remote`].
    async fn call(&self, command: &str, body: Option<Value>, resp_body: bool) -> Result<Value> {
        let (h, v) = self.call_raw(command, body, resp_body).await?;
        if h.error.is_empty() {
            Ok(v)
        } else {
            Err(Error::Remote(h.error))
        }
    }

    async fn open_stream(&self, command: &str, body: Value) -> Result<RecordStream> {
        let seq = self.next_seq();
        let (started_tx, started_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel(STREAM_RECORDS);
        self.pending.lock().unwrap().insert(
            seq,
            Pending::Stream {
                started: Some(started_tx),
                tx,
            },
        );
        if let Err(e) = self.write(command, seq, Some(body)).await {
            self.pending.lock().unwrap().remove(&seq);
            return Err(e);
        }
        let (h, _) = started_rx.await.map_err(|_| Error::Closed)?;
        if !h.error.is_empty() {
            self.pending.lock().unwrap().remove(&seq);
            return Err(Error::Remote(h.error));
        }
        Ok(RecordStream { seq, rx })
    }

    /// Every member the agent knows.
    pub async fn members(&self) -> Result<Vec<RpcMember>> {
        let v = self.call("members", None, true).await?;
        members_of(&v)
    }

    /// Members passing Serf's anchored-regex filters (empty filters match everything).
    pub async fn members_filtered(
        &self,
        tags: &BTreeMap<String, String>,
        status: &str,
        name: &str,
    ) -> Result<Vec<RpcMember>> {
        let body = map(vec![
            ("Tags", codec::string_map(tags)),
            ("Status", s(status)),
            ("Name", s(name)),
        ]);
        let v = self.call("members-filtered", Some(body), true).await?;
        members_of(&v)
    }

    /// Asks the agent to join `addrs`; returns how many it reached.
    pub async fn join(&self, addrs: &[String], replay: bool) -> Result<i64> {
        let body = map(vec![
            ("Existing", codec::strings(addrs)),
            ("Replay", Value::Bool(replay)),
        ]);
        let v = self.call("join", Some(body), true).await?;
        Fields::of(&v, "joinResponse")?.int("Num")
    }

    /// Makes the agent leave gracefully (it then shuts down).
    pub async fn leave(&self) -> Result<()> {
        self.call("leave", None, false).await.map(drop)
    }

    /// Forces a failed node into the left state (with `prune`, removes it at once).
    pub async fn force_leave(&self, node: &str, prune: bool) -> Result<()> {
        let body = map(vec![("Node", s(node)), ("Prune", Value::Bool(prune))]);
        self.call("force-leave", Some(body), false).await.map(drop)
    }

    /// Fires a user event.
    pub async fn user_event(&self, name: &str, payload: &[u8], coalesce: bool) -> Result<()> {
        let body = map(vec![
            ("Name", s(name)),
            ("Payload", Value::Raw(payload.to_vec())),
            ("Coalesce", Value::Bool(coalesce)),
        ]);
        self.call("event", Some(body), false).await.map(drop)
    }

    /// Sets and deletes tags on the agent.
    pub async fn update_tags(
        &self,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<()> {
        let body = map(vec![
            ("Tags", codec::string_map(set)),
            ("DeleteTags", codec::strings(delete)),
        ]);
        self.call("tags", Some(body), false).await.map(drop)
    }

    /// Runs a key command (`install-key`, `use-key`, `remove-key`, `list-keys`): the
    /// aggregated answer, and Serf's error text when some node failed.
    pub async fn key_op(&self, op: KeyOp, key: &str) -> Result<(KeyResponse, Option<String>)> {
        let body = (op != KeyOp::List).then(|| map(vec![("Key", s(key))]));
        let (h, v) = self.call_raw(op.as_str(), body, true).await?;
        if h.error == AUTH_REQUIRED {
            return Err(Error::Remote(h.error));
        }
        let resp = KeyResponse::from_value(&v)?;
        Ok((resp, (!h.error.is_empty()).then_some(h.error)))
    }

    /// The agent's statistics, by section.
    pub async fn stats(&self) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
        let v = self.call("stats", None, true).await?;
        let Value::Map(pairs) = &v else {
            return Err(Error::Protocol(format!(
                "stats: expected a map, found {}",
                codec::kind(&v)
            )));
        };
        pairs
            .iter()
            .map(|(k, inner)| {
                let section = codec::as_string(k, "stats")?;
                let wrapped = Value::Map(vec![(s("x"), inner.clone())]);
                Ok((section, Fields::of(&wrapped, "stats")?.string_map("x")?))
            })
            .collect()
    }

    /// hearsay extension: the agent's WebAssembly handlers with their counters. A Serf agent
    /// answers [`Error::Remote`] with "Unsupported command".
    pub async fn handlers(&self) -> Result<Vec<RpcHandler>> {
        let v = self.call("handlers", None, true).await?;
        match Fields::of(&v, "handlersResponse")?.get("Handlers") {
            None | Some(Value::Nil) => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(RpcHandler::from_value).collect(),
            Some(other) => Err(Error::Protocol(format!(
                "Handlers: expected an array, found {}",
                codec::kind(other)
            ))),
        }
    }

    /// hearsay extension: deploys a signed WebAssembly handler module cluster-wide (or, with
    /// an undeploy record and no module, removes one); returns the version deployed.
    /// `deployment` is the encoded, signed deployment record; `module` the module's bytes,
    /// empty when the agent already holds them. The agent's refusal is [`Error::Remote`] with
    /// its text (e.g. "deployment refused: untrusted signer ed25519:..."); a Serf agent
    /// answers "Unsupported command". A request larger than [`codec::MAX_DEPLOY_BYTES`] is
    /// [`Error::TooLarge`] without being sent.
    pub async fn deploy(&self, deployment: &[u8], module: &[u8]) -> Result<u64> {
        let size = deployment.len() + module.len() + DEPLOY_OVERHEAD;
        if size > codec::MAX_DEPLOY_BYTES {
            return Err(Error::TooLarge {
                command: "deploy".into(),
                size,
                max: codec::MAX_DEPLOY_BYTES,
            });
        }
        let body = map(vec![
            ("Deployment", Value::Raw(deployment.to_vec())),
            ("Module", Value::Raw(module.to_vec())),
        ]);
        let v = self.call("deploy", Some(body), true).await?;
        Fields::of(&v, "deployResponse")?.uint("Version")
    }

    /// hearsay extension: every deployment with each node's convergence. A Serf agent
    /// answers [`Error::Remote`] with "Unsupported command".
    pub async fn deployments(&self) -> Result<RpcDeployments> {
        let v = self.call("deployments", None, true).await?;
        RpcDeployments::from_value(&v)
    }

    /// The coordinate the agent has cached for `node`, if any.
    pub async fn coordinate(&self, node: &str) -> Result<Option<Coordinate>> {
        let v = self
            .call("get-coordinate", Some(map(vec![("Node", s(node))])), true)
            .await?;
        let f = Fields::of(&v, "coordinateResponse")?;
        if !f.bool("Ok")? {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        codec::encode_value(&mut bytes, f.get("Coord").unwrap_or(&Value::Nil));
        let mut r = hearsay_swim::wire::msgpack::Reader::new(&bytes);
        hearsay_serf::coordinate::decode_coordinate(&mut r)
            .map(Some)
            .map_err(|e| Error::Protocol(format!("coordinate: {e}")))
    }

    /// Answers a query delivered on an event stream (`id` from its record).
    pub async fn respond(&self, id: u64, payload: &[u8]) -> Result<()> {
        let body = map(vec![
            ("ID", Value::Uint(id)),
            ("Payload", Value::Raw(payload.to_vec())),
        ]);
        self.call("respond", Some(body), false).await.map(drop)
    }

    /// Starts a query; its acks and responses arrive on the stream, which ends when the
    /// query is done.
    pub async fn query(&self, p: &QueryParams) -> Result<RecordStream> {
        let body = map(vec![
            ("FilterNodes", codec::strings(&p.filter_nodes)),
            ("FilterTags", codec::string_map(&p.filter_tags)),
            ("RequestAck", Value::Bool(p.request_ack)),
            ("RelayFactor", Value::Uint(u64::from(p.relay_factor))),
            (
                "Timeout",
                codec::int(p.timeout.as_nanos().min(i64::MAX as u128) as i64),
            ),
            ("Name", s(&p.name)),
            ("Payload", Value::Raw(p.payload.clone())),
        ]);
        self.open_stream("query", body).await
    }

    /// Streams events passing `filter` (Serf's syntax: `*`, `member-join,user:deploy`).
    pub async fn stream(&self, filter: &str) -> Result<RecordStream> {
        self.open_stream("stream", map(vec![("Type", s(filter))]))
            .await
    }

    /// Streams the agent's log lines at `level` and above.
    pub async fn monitor(&self, level: &str) -> Result<RecordStream> {
        self.open_stream("monitor", map(vec![("LogLevel", s(level))]))
            .await
    }

    /// Ends a stream started by [`Self::stream`] or [`Self::monitor`].
    pub async fn stop(&self, seq: u64) -> Result<()> {
        self.pending.lock().unwrap().remove(&seq);
        self.call("stop", Some(map(vec![("Stop", Value::Uint(seq))])), false)
            .await
            .map(drop)
    }
}

fn members_of(v: &Value) -> Result<Vec<RpcMember>> {
    match Fields::of(v, "membersResponse")?.get("Members") {
        None | Some(Value::Nil) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(RpcMember::from_value).collect(),
        Some(other) => Err(Error::Protocol(format!(
            "Members: expected an array, found {}",
            codec::kind(other)
        ))),
    }
}

async fn read_loop(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    pending: Arc<Mutex<HashMap<u64, Pending>>>,
) {
    let mut buf = Vec::with_capacity(4096);
    // A header whose body has not fully arrived yet.
    let mut held: Option<ResponseHeader> = None;
    loop {
        loop {
            let header = match held.take() {
                Some(h) => h,
                None => match decode_value(&buf) {
                    Ok(Some((v, used))) => {
                        buf.drain(..used);
                        match ResponseHeader::from_value(&v) {
                            Ok(h) => h,
                            Err(e) => {
                                tracing::error!("rpc client: bad response header: {e}");
                                return;
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!("rpc client: {e}");
                        return;
                    }
                },
            };
            let no_body_error = [AUTH_REQUIRED, HANDSHAKE_REQUIRED, UNSUPPORTED_COMMAND]
                .contains(&header.error.as_str());
            let wants_body = match pending.lock().unwrap().get(&header.seq) {
                Some(Pending::Once { body, .. }) => *body && !no_body_error,
                Some(Pending::Stream { started, .. }) => started.is_none(),
                None => false,
            };
            let body = if wants_body {
                match decode_value(&buf) {
                    Ok(Some((v, used))) => {
                        buf.drain(..used);
                        v
                    }
                    Ok(None) => {
                        held = Some(header);
                        break;
                    }
                    Err(e) => {
                        tracing::error!("rpc client: {e}");
                        return;
                    }
                }
            } else {
                Value::Nil
            };
            if let Some((seq, tx, record)) = deliver(&pending, header, body) {
                // Waits while the stream's reader is behind (see STREAM_RECORDS).
                if tx.send(record).await.is_err() {
                    pending.lock().unwrap().remove(&seq);
                }
            }
        }
        match rd.read_buf(&mut buf).await {
            Ok(n) if n > 0 => {}
            // Closing: dropping every pending sender wakes its waiter with "closed".
            _ => {
                pending.lock().unwrap().clear();
                return;
            }
        }
    }
}

/// Hands a response to its waiter; a stream record is returned with its sender, to be sent
/// outside the lock.
fn deliver(
    pending: &Mutex<HashMap<u64, Pending>>,
    header: ResponseHeader,
    body: Value,
) -> Option<(u64, mpsc::Sender<Value>, Value)> {
    let mut map = pending.lock().unwrap();
    let seq = header.seq;
    match map.get_mut(&seq) {
        Some(Pending::Once { .. }) => {
            if let Some(Pending::Once { tx, .. }) = map.remove(&seq) {
                let _ = tx.send((header, body));
            }
        }
        Some(Pending::Stream { started, tx }) => match started.take() {
            Some(s) => {
                let failed = !header.error.is_empty();
                let _ = s.send((header, Value::Nil));
                if failed {
                    map.remove(&seq);
                }
            }
            None => {
                let done = Fields::of(&body, "record")
                    .and_then(|f| f.str("Type"))
                    .is_ok_and(|t| t == "done");
                if done {
                    map.remove(&seq);
                    return None;
                }
                return Some((seq, tx.clone(), body));
            }
        },
        None => {}
    }
    None
}
