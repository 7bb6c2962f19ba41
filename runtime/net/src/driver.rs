//! The driver: one tokio task that owns the [`Swim`] core by value and feeds it datagrams,
//! accepted streams, timeouts and commands, draining every output after every input.
//!
//! Reads and writes on streams happen in tasks of their own, so a slow or hostile peer can
//! only stall its own connection: the tasks hand the bytes read so far to the driver (moving
//! the buffer, never copying it) and get back what to do next.

use crate::error::Error;
use crate::transport::{Connector, Transport, MAX_DATAGRAM};
use hearsay_swim::core::JoinId;
use hearsay_swim::wire::MAX_STREAM_BYTES;
use hearsay_swim::{Event, Member, StreamId, StreamOutcome, StreamRequest, Swim};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, warn, Instrument};

/// How much one read of a stream asks for.
const READ_CHUNK: usize = 64 * 1024;
/// Incoming connections served at once; more are closed at once (a flood stays bounded).
const MAX_INCOMING_STREAMS: usize = 1024;
/// Messages from stream tasks waiting for the driver.
const STREAM_QUEUE: usize = 256;
/// Pause after an `accept` error (e.g. out of file descriptors) so it cannot spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What the outcome of a join was: how many nodes were contacted, and who failed.
pub(crate) type JoinReply = (usize, Vec<(SocketAddr, String)>);

/// Requests from [`crate::Memberlist`] handles.
pub(crate) enum Command {
    Join {
        addrs: Vec<SocketAddr>,
        reply: oneshot::Sender<JoinReply>,
    },
    Leave {
        reply: oneshot::Sender<()>,
    },
    Members {
        reply: oneshot::Sender<Vec<Member>>,
    },
    Local {
        reply: oneshot::Sender<Member>,
    },
    NumAlive {
        reply: oneshot::Sender<usize>,
    },
    SetMeta {
        meta: Vec<u8>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    SendUserPacket {
        dst: SocketAddr,
        msg: Vec<u8>,
    },
    SendUserStream {
        dst: SocketAddr,
        msg: Vec<u8>,
    },
    QueueUserBroadcast {
        msg: Vec<u8>,
        subject: Option<String>,
    },
    SetUserState(Vec<u8>),
    SetAckPayload(Vec<u8>),
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Bytes read so far on a stream, moved to the driver and back with the verdict.
type Verdict = oneshot::Sender<(StreamOutcome, Vec<u8>)>;

/// Reports from stream tasks.
enum StreamMsg {
    /// An incoming connection from `from` has `buf` so far.
    Incoming {
        from: SocketAddr,
        buf: Vec<u8>,
        verdict: Verdict,
    },
    /// The reply on our outgoing stream `id` has `buf` so far.
    Reply {
        id: StreamId,
        buf: Vec<u8>,
        verdict: Verdict,
    },
    /// Our outgoing stream `id` was written (no reply expected).
    Sent { id: StreamId },
    /// Our outgoing stream `id` failed.
    Failed { id: StreamId, error: String },
}

/// The task's state. Fields are separate so `select!` can borrow them independently.
pub(crate) struct Driver<T: Transport> {
    pub(crate) swim: Swim,
    pub(crate) transport: T,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: broadcast::Sender<Event>,
}

struct Loop<T: Transport> {
    swim: Swim,
    transport: T,
    connector: T::Connector,
    events: broadcast::Sender<Event>,
    stream_tx: mpsc::Sender<StreamMsg>,
    tasks: JoinSet<()>,
    joins: HashMap<JoinId, oneshot::Sender<JoinReply>>,
    leave_waiters: Vec<oneshot::Sender<()>>,
    leave_complete: bool,
    tcp_timeout: Duration,
    span: tracing::Span,
}

impl<T: Transport> Driver<T> {
    /// Runs until a `Shutdown` command or until every handle is dropped, then closes the
    /// transport and aborts the stream tasks.
    pub(crate) async fn run(self) {
        let Driver {
            swim,
            transport,
            mut commands,
            events,
        } = self;
        let span = tracing::Span::current();
        let (stream_tx, mut stream_rx) = mpsc::channel(STREAM_QUEUE);
        let tcp_timeout = swim.config().tcp_timeout;
        let connector = transport.connector();
        let mut l = Loop {
            swim,
            transport,
            connector,
            events,
            stream_tx,
            tasks: JoinSet::new(),
            joins: HashMap::new(),
            leave_waiters: Vec::new(),
            leave_complete: false,
            tcp_timeout,
            span,
        };
        l.drain().await;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let shutdown_reply = loop {
            let wake = l
                .swim
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                r = l.transport.recv_packet(&mut buf) => match r {
                    Ok((n, from)) => l.swim.handle_packet(Instant::now(), from, &buf[..n]),
                    Err(e) => debug!(error = %e, "memberlist: UDP receive error"),
                },
                r = l.transport.accept() => match r {
                    Ok((stream, from)) => l.spawn_incoming(stream, from),
                    Err(e) => {
                        warn!(error = %e, "memberlist: accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                () = tokio::time::sleep_until(wake) => l.swim.handle_timeout(Instant::now()),
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => break Some(reply),
                    Some(cmd) => l.handle_command(cmd),
                    None => break None,
                },
                Some(msg) = stream_rx.recv() => l.handle_stream_msg(msg),
                Some(res) = l.tasks.join_next(), if !l.tasks.is_empty() => {
                    if let Err(e) = res {
                        if e.is_panic() {
                            warn!(error = %e, "memberlist: stream task panicked");
                        }
                    }
                }
            }
            l.drain().await;
        };
        debug!("memberlist: shutting down");
        // Handles see the node as stopped from here on.
        drop(commands);
        l.tasks.shutdown().await;
        // Closes the sockets.
        drop(l);
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }
}

impl<T: Transport> Loop<T> {
    /// Sends every datagram, starts every stream and publishes every event the core has.
    async fn drain(&mut self) {
        while let Some(t) = self.swim.poll_transmit() {
            if let Err(e) = self.transport.send_packet(t.dst, &t.payload).await {
                debug!(dst = %t.dst, error = %e, "memberlist: failed to send packet");
            }
        }
        while let Some(req) = self.swim.poll_stream() {
            self.spawn_outgoing(req);
        }
        while let Some(ev) = self.swim.poll_event() {
            self.publish(ev);
        }
    }

    fn publish(&mut self, ev: Event) {
        match &ev {
            Event::JoinFinished { id, joined, errors } => {
                if let Some(tx) = self.joins.remove(id) {
                    let _ = tx.send((*joined, errors.clone()));
                }
            }
            Event::LeaveComplete => {
                self.leave_complete = true;
                for tx in self.leave_waiters.drain(..) {
                    let _ = tx.send(());
                }
            }
            _ => {}
        }
        // No subscriber is not an error.
        let _ = self.events.send(ev);
    }

    fn handle_command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Join { addrs, reply } => {
                let id = self.swim.join(now, &addrs);
                self.joins.insert(id, reply);
            }
            Command::Leave { reply } => {
                if self.leave_complete {
                    let _ = reply.send(());
                } else {
                    self.leave_waiters.push(reply);
                    self.swim.leave(now);
                }
            }
            Command::Members { reply } => {
                let _ = reply.send(self.swim.members().cloned().collect());
            }
            Command::Local { reply } => {
                let _ = reply.send(self.swim.local().clone());
            }
            Command::NumAlive { reply } => {
                let _ = reply.send(self.swim.num_alive());
            }
            Command::SetMeta { meta, reply } => {
                let _ = reply.send(self.swim.set_meta(now, meta).map_err(Error::from));
            }
            Command::SendUserPacket { dst, msg } => self.swim.send_user_packet(dst, &msg),
            Command::SendUserStream { dst, msg } => self.swim.send_user_stream(now, dst, msg),
            Command::QueueUserBroadcast { msg, subject } => {
                self.swim.queue_user_broadcast(msg, subject)
            }
            Command::SetUserState(s) => self.swim.set_user_state(s),
            Command::SetAckPayload(p) => self.swim.set_ack_payload(p),
            Command::Shutdown { .. } => unreachable!("handled by the loop"),
        }
    }

    fn handle_stream_msg(&mut self, msg: StreamMsg) {
        let now = Instant::now();
        match msg {
            StreamMsg::Incoming { from, buf, verdict } => {
                let outcome = self.swim.handle_stream(now, from, &buf);
                let _ = verdict.send((outcome, buf));
            }
            StreamMsg::Reply { id, buf, verdict } => {
                let outcome = self.swim.handle_stream_reply(now, id, &buf);
                let _ = verdict.send((outcome, buf));
            }
            StreamMsg::Sent { id } => self.swim.handle_stream_sent(id),
            StreamMsg::Failed { id, error } => self.swim.handle_stream_failed(now, id, &error),
        }
    }

    fn spawn_incoming(&mut self, stream: T::Stream, from: SocketAddr) {
        if self.tasks.len() >= MAX_INCOMING_STREAMS {
            warn!(%from, "memberlist: too many open streams, closing a new connection");
            return;
        }
        let tx = self.stream_tx.clone();
        let timeout = self.tcp_timeout;
        let task = async move {
            match tokio::time::timeout(timeout, serve_incoming(stream, from, tx)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(%from, error = %e, "memberlist: incoming stream closed"),
                Err(_) => {
                    debug!(%from, ?timeout, "memberlist: incoming stream timed out, closing")
                }
            }
        };
        self.tasks.spawn(task.instrument(self.span.clone()));
    }

    fn spawn_outgoing(&mut self, req: StreamRequest) {
        let tx = self.stream_tx.clone();
        let connector = self.connector.clone();
        let task = async move {
            let id = req.id;
            let dst = req.dst;
            let deadline = tokio::time::Instant::from_std(req.deadline);
            let result = tokio::time::timeout_at(deadline, open_outgoing(connector, req, &tx))
                .await
                .unwrap_or(Err(Error::StreamTimedOut));
            let msg = match result {
                Ok(Finished::Sent) => StreamMsg::Sent { id },
                Ok(Finished::Replied) => return,
                Err(Error::Stopped) => return,
                Err(e) => {
                    debug!(%dst, error = %e, "memberlist: outgoing stream failed");
                    StreamMsg::Failed {
                        id,
                        error: e.to_string(),
                    }
                }
            };
            let _ = tx.send(msg).await;
        };
        self.tasks.spawn(task.instrument(self.span.clone()));
    }
}

enum Finished {
    Sent,
    Replied,
}

/// Reads one more chunk into `buf`; fails on EOF (the message is incomplete) or overflow.
async fn read_more<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Result<(), Error> {
    buf.reserve(READ_CHUNK);
    let n = s.read_buf(buf).await?;
    if n == 0 {
        return Err(Error::StreamTruncated(buf.len()));
    }
    if buf.len() > MAX_STREAM_BYTES {
        return Err(Error::StreamTooLarge {
            limit: MAX_STREAM_BYTES,
        });
    }
    Ok(())
}

/// Hands `buf` to the driver with `make` and waits for its verdict.
async fn ask(
    tx: &mpsc::Sender<StreamMsg>,
    buf: Vec<u8>,
    make: impl FnOnce(Vec<u8>, Verdict) -> StreamMsg,
) -> Result<(StreamOutcome, Vec<u8>), Error> {
    let (vtx, vrx) = oneshot::channel();
    tx.send(make(buf, vtx)).await.map_err(|_| Error::Stopped)?;
    vrx.await.map_err(|_| Error::Stopped)
}

/// Serves one incoming connection: read until the core has a complete message, write its
/// reply, close.
async fn serve_incoming<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    from: SocketAddr,
    tx: mpsc::Sender<StreamMsg>,
) -> Result<(), Error> {
    let mut buf = Vec::new();
    loop {
        if let Err(e) = read_more(&mut stream, &mut buf).await {
            // A peer that connects and closes without a byte (a port check) is not news.
            return match e {
                Error::StreamTruncated(0) => Ok(()),
                e => Err(e),
            };
        }
        let (outcome, back) = ask(&tx, buf, |buf, verdict| StreamMsg::Incoming {
            from,
            buf,
            verdict,
        })
        .await?;
        buf = back;
        match outcome {
            StreamOutcome::NeedMore => continue,
            StreamOutcome::Reply(bytes) => {
                stream.write_all(&bytes).await?;
                stream.flush().await?;
                let _ = stream.shutdown().await;
                return Ok(());
            }
            StreamOutcome::Done => return Ok(()),
        }
    }
}

/// Runs one outgoing stream: connect, write, and (when a reply is expected) feed the reply
/// to the core until it is complete.
async fn open_outgoing<C: Connector>(
    connector: C,
    req: StreamRequest,
    tx: &mpsc::Sender<StreamMsg>,
) -> Result<Finished, Error> {
    let mut stream = connector.connect(req.dst).await?;
    stream.write_all(&req.payload).await?;
    stream.flush().await?;
    if !req.expect_reply {
        let _ = stream.shutdown().await;
        return Ok(Finished::Sent);
    }
    let id = req.id;
    let mut buf = Vec::new();
    loop {
        read_more(&mut stream, &mut buf).await?;
        let (outcome, back) = ask(tx, buf, |buf, verdict| StreamMsg::Reply {
            id,
            buf,
            verdict,
        })
        .await?;
        buf = back;
        if outcome != StreamOutcome::NeedMore {
            return Ok(Finished::Replied);
        }
    }
}
