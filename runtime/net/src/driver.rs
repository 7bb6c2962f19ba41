//! The driver: one tokio task that owns a sans-io core (any [`Protocol`]: the membership core
//! [`hearsay_swim::Swim`], or the Serf layer on top of it) by value and feeds it datagrams,
//! accepted streams, timeouts and commands, draining every output after every input.
//! [`NodeHandle`] is how the outside world talks to it: closures run on the core inside the
//! task, events come out on a broadcast channel.
//!
//! Reads and writes on streams happen in tasks of their own, so a slow or hostile peer can
//! only stall its own connection: the tasks hand the bytes read so far to the driver (moving
//! the buffer, never copying it) and get back what to do next.

use crate::error::{Error, Result};
use crate::limit::WarnLimit;
use crate::transport::{Connector, Transport, MAX_DATAGRAM};
use hearsay_swim::loglimit::Source;
use hearsay_swim::wire::MAX_STREAM_BYTES;
use hearsay_swim::{Protocol, StreamId, StreamOutcome, StreamRequest};
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
/// Commands waiting for the driver; callers wait when it is full.
const COMMAND_QUEUE: usize = 256;
/// Events buffered per subscriber before the slowest one starts missing them.
pub const DEFAULT_EVENT_CAPACITY: usize = 4096;

/// Work for the core, run inside the driver task.
type CoreFn<P> = Box<dyn FnOnce(&mut P, Instant) + Send>;

/// Requests from [`NodeHandle`]s.
enum Command<P> {
    /// Run this on the core, then drain its outputs.
    Call(CoreFn<P>),
    /// Stop the task; answered once the sockets are closed.
    Shutdown { reply: oneshot::Sender<()> },
}

/// A handle to one running node: a driver task that owns the core `P` and its transport.
/// Clones share the same node; the task ends on [`NodeHandle::shutdown`] or when the last
/// handle is dropped.
pub struct NodeHandle<P: Protocol> {
    addr: SocketAddr,
    commands: mpsc::Sender<Command<P>>,
    /// Weak, so the driver task holds the only sender: subscribers see the channel close
    /// when the task ends, even while handles live on.
    events: broadcast::WeakSender<P::Event>,
}

impl<P: Protocol> Clone for NodeHandle<P> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr,
            commands: self.commands.clone(),
            events: self.events.clone(),
        }
    }
}

impl<P: Protocol> std::fmt::Debug for NodeHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("addr", &self.addr)
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl<P: Protocol> NodeHandle<P> {
    /// Starts driving `core` on `transport`, with [`DEFAULT_EVENT_CAPACITY`] and the current
    /// tracing span. See [`NodeHandle::start_with`].
    pub fn start<T: Transport>(core: P, transport: T) -> Self {
        Self::start_with(
            core,
            transport,
            DEFAULT_EVENT_CAPACITY,
            tracing::Span::current(),
        )
    }

    /// Starts driving `core` on `transport` in a task spawned on the current tokio runtime
    /// (like `tokio::spawn`, it panics outside one), logging inside `span`. The core should
    /// advertise the transport's address.
    ///
    /// Events the core raised before this call are dropped (nobody can have subscribed, and
    /// whether a quick subscriber saw them must not depend on when the task first runs):
    /// drain them with `poll_event` first to keep them. Each subscriber buffers
    /// `event_capacity` events (at least one).
    pub fn start_with<T: Transport>(
        mut core: P,
        transport: T,
        event_capacity: usize,
        span: tracing::Span,
    ) -> Self {
        span.in_scope(|| {
            while let Some(ev) = core.poll_event() {
                debug!(?ev, "driver: start-up event");
            }
        });
        let addr = transport.local_addr();
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (events, _) = broadcast::channel(event_capacity.max(1));
        let weak = events.downgrade();
        let driver = Driver {
            core,
            transport,
            commands: command_rx,
            events,
        };
        tokio::spawn(driver.run().instrument(span));
        Self {
            addr,
            commands,
            events: weak,
        }
    }

    /// The address peers reach this node at (the transport's).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A receiver of every event from now on. A subscriber that falls more than the event
    /// capacity behind gets `RecvError::Lagged` and misses the oldest ones; once the driver
    /// task has ended it gets `RecvError::Closed` (at once, when subscribing after that).
    pub fn subscribe(&self) -> broadcast::Receiver<P::Event> {
        match self.events.upgrade() {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// Runs `f` on the core inside the driver task (with the current time), drains the
    /// core's outputs, and returns what `f` returned. Calls run in the order they were made.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut P, Instant) -> R + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Call(Box::new(move |core, now| {
            // The caller may have given up waiting; the work is done either way.
            let _ = tx.send(f(core, now));
        })))
        .await?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Like [`NodeHandle::call`] without waiting for `f` to run: returns once it is queued.
    pub async fn tell(&self, f: impl FnOnce(&mut P, Instant) + Send + 'static) -> Result<()> {
        self.send(Command::Call(Box::new(f))).await
    }

    async fn send(&self, cmd: Command<P>) -> Result<()> {
        self.commands.send(cmd).await.map_err(|_| Error::Stopped)
    }

    /// Stops the node without leaving (peers will see it fail, as after a crash): ends the
    /// driver task, aborts its streams and closes its sockets before returning. Stopping a
    /// stopped node is a no-op.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::Shutdown { reply: tx }).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// True once the driver task has ended.
    pub fn is_stopped(&self) -> bool {
        self.commands.is_closed()
    }
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

/// The task's inputs before it starts.
struct Driver<P: Protocol, T: Transport> {
    core: P,
    transport: T,
    commands: mpsc::Receiver<Command<P>>,
    events: broadcast::Sender<P::Event>,
}

/// The task's state. Fields are separate so `select!` can borrow them independently.
struct Loop<P: Protocol, T: Transport> {
    core: P,
    transport: T,
    connector: T::Connector,
    events: broadcast::Sender<P::Event>,
    stream_tx: mpsc::Sender<StreamMsg>,
    tasks: JoinSet<()>,
    tcp_timeout: Duration,
    span: tracing::Span,
    /// Rate limit of the warnings a connection flood triggers.
    warnings: WarnLimit,
}

impl<P: Protocol, T: Transport> Driver<P, T> {
    /// Runs until a `Shutdown` command or until every handle is dropped, then closes the
    /// transport and aborts the stream tasks.
    async fn run(self) {
        let Driver {
            core,
            transport,
            mut commands,
            events,
        } = self;
        let span = tracing::Span::current();
        let (stream_tx, mut stream_rx) = mpsc::channel(STREAM_QUEUE);
        let tcp_timeout = core.tcp_timeout();
        let connector = transport.connector();
        let mut l = Loop {
            core,
            transport,
            connector,
            events,
            stream_tx,
            tasks: JoinSet::new(),
            tcp_timeout,
            span,
            warnings: WarnLimit::new("driver"),
        };
        l.drain().await;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let shutdown_reply = loop {
            let wake = l
                .core
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                r = l.transport.recv_packet(&mut buf) => match r {
                    Ok((n, from)) => l.core.handle_packet(Instant::now(), from, &buf[..n]),
                    Err(e) => debug!(error = %e, "driver: UDP receive error"),
                },
                r = l.transport.accept() => match r {
                    Ok((stream, from)) => l.spawn_incoming(stream, from),
                    Err(e) => {
                        warn!(error = %e, "driver: accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                () = tokio::time::sleep_until(wake) => {
                    l.core.handle_timeout(Instant::now());
                    l.warnings.sweep();
                }
                cmd = commands.recv() => match cmd {
                    Some(Command::Call(f)) => f(&mut l.core, Instant::now()),
                    Some(Command::Shutdown { reply }) => break Some(reply),
                    None => break None,
                },
                Some(msg) = stream_rx.recv() => l.handle_stream_msg(msg),
                Some(res) = l.tasks.join_next(), if !l.tasks.is_empty() => {
                    if let Err(e) = res {
                        if e.is_panic() {
                            warn!(error = %e, "driver: stream task panicked");
                        }
                    }
                }
            }
            l.drain().await;
        };
        debug!("driver: shutting down");
        // Handles see the node as stopped from here on; queued calls are dropped, so their
        // callers get `Error::Stopped`.
        drop(commands);
        l.tasks.shutdown().await;
        // Closes the sockets.
        drop(l);
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }
}

impl<P: Protocol, T: Transport> Loop<P, T> {
    /// Sends every datagram, starts every stream and publishes every event the core has.
    async fn drain(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            if let Err(e) = self.transport.send_packet(t.dst, &t.payload).await {
                debug!(dst = %t.dst, error = %e, "driver: failed to send packet");
            }
        }
        while let Some(req) = self.core.poll_stream() {
            self.spawn_outgoing(req);
        }
        while let Some(ev) = self.core.poll_event() {
            // No subscriber is not an error.
            let _ = self.events.send(ev);
        }
    }

    fn handle_stream_msg(&mut self, msg: StreamMsg) {
        let now = Instant::now();
        match msg {
            StreamMsg::Incoming { from, buf, verdict } => {
                let outcome = self.core.handle_stream(now, from, &buf);
                let _ = verdict.send((outcome, buf));
            }
            StreamMsg::Reply { id, buf, verdict } => {
                let outcome = self.core.handle_stream_reply(now, id, &buf);
                let _ = verdict.send((outcome, buf));
            }
            StreamMsg::Sent { id } => self.core.handle_stream_sent(id),
            StreamMsg::Failed { id, error } => self.core.handle_stream_failed(now, id, &error),
        }
    }

    fn spawn_incoming(&mut self, stream: T::Stream, from: SocketAddr) {
        if self.tasks.len() >= MAX_INCOMING_STREAMS {
            if self.warnings.allow(Source::Addr(from.ip()), "stream-limit") {
                warn!(%from, "driver: too many open streams, closing a new connection");
            }
            return;
        }
        let tx = self.stream_tx.clone();
        let timeout = self.tcp_timeout;
        let task = async move {
            match tokio::time::timeout(timeout, serve_incoming(stream, from, tx)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(%from, error = %e, "driver: incoming stream closed"),
                Err(_) => {
                    debug!(%from, ?timeout, "driver: incoming stream timed out, closing")
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
                    debug!(%dst, error = %e, "driver: outgoing stream failed");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::MemNetwork;
    use hearsay_swim::Transmit;
    use std::collections::VecDeque;

    /// A toy core: answers every datagram with "echo:" + it, reports it as an event, and
    /// sends datagrams on command. Enough to show the driver is not tied to `Swim`.
    #[derive(Default)]
    struct Echo {
        out: VecDeque<Transmit>,
        events: VecDeque<(SocketAddr, Vec<u8>)>,
    }

    impl Protocol for Echo {
        type Event = (SocketAddr, Vec<u8>);

        fn handle_packet(&mut self, _now: Instant, from: SocketAddr, buf: &[u8]) {
            self.events.push_back((from, buf.to_vec()));
            if !buf.starts_with(b"echo:") {
                let payload = [b"echo:", buf].concat();
                self.out.push_back(Transmit { dst: from, payload });
            }
        }
        fn handle_stream(&mut self, _: Instant, _: SocketAddr, _: &[u8]) -> StreamOutcome {
            StreamOutcome::Done
        }
        fn handle_stream_reply(&mut self, _: Instant, _: StreamId, _: &[u8]) -> StreamOutcome {
            StreamOutcome::Done
        }
        fn handle_stream_failed(&mut self, _: Instant, _: StreamId, _: &str) {}
        fn handle_stream_sent(&mut self, _: StreamId) {}
        fn handle_timeout(&mut self, _: Instant) {}
        fn poll_transmit(&mut self) -> Option<Transmit> {
            self.out.pop_front()
        }
        fn poll_stream(&mut self) -> Option<StreamRequest> {
            None
        }
        fn poll_event(&mut self) -> Option<Self::Event> {
            self.events.pop_front()
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn tcp_timeout(&self) -> Duration {
            Duration::from_secs(1)
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[tokio::test]
    async fn drives_any_core_and_drains_after_calls() {
        let net = MemNetwork::new(1);
        let mut start_up = Echo::default();
        start_up
            .events
            .push_back((addr(9), b"before start".to_vec()));
        let a = NodeHandle::start(start_up, net.bind(addr(1)).unwrap());
        let b = NodeHandle::start(Echo::default(), net.bind(addr(2)).unwrap());
        assert_eq!(a.local_addr(), addr(1));
        let mut ea = a.subscribe();
        let mut eb = b.subscribe();
        // A call's outputs go out at once: the datagram queued in it reaches b, whose
        // answer comes back to a.
        let queued = a
            .call(|core, _| {
                core.out.push_back(Transmit {
                    dst: addr(2),
                    payload: b"hi".to_vec(),
                });
                core.out.len()
            })
            .await
            .unwrap();
        assert_eq!(queued, 1);
        let wait = Duration::from_secs(5);
        let got_b = tokio::time::timeout(wait, eb.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got_b, (addr(1), b"hi".to_vec()));
        // The start-up event was dropped, so the first event a sees is the echo.
        let got_a = tokio::time::timeout(wait, ea.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got_a, (addr(2), b"echo:hi".to_vec()));
        a.tell(|core, _| core.events.push_back((addr(3), b"told".to_vec())))
            .await
            .unwrap();
        let told = tokio::time::timeout(wait, ea.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(told.1, b"told");
        a.shutdown().await;
        b.shutdown().await;
        assert!(a.is_stopped());
        assert!(matches!(a.call(|_, _| ()).await, Err(Error::Stopped)));
        // Subscribers see the end although handles still exist.
        assert!(matches!(
            ea.recv().await,
            Err(broadcast::error::RecvError::Closed)
        ));
        assert!(matches!(
            a.subscribe().recv().await,
            Err(broadcast::error::RecvError::Closed)
        ));
        assert!(!net.is_bound(addr(1)), "shutdown closes the endpoint");
        // A second shutdown is a no-op.
        a.shutdown().await;
    }
}
