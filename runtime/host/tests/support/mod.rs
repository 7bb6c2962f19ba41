//! Test support: the guest components (built by `hearsay_testkit::wasm`), an in-memory
//! embedder that records replies and events, and an HTTP server ([`server`]).

#![allow(dead_code)]

pub mod server;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearsay_host::{
    async_trait, Dispatch, Embedder, EmitError, Event, Handler, HandlerSpec, Host, Member,
    MemberStatus, ModuleSource, Outcome, Query, ReplyError, ReplySink, Ticket, TrapKind,
};
pub use hearsay_testkit::wasm::Guests;

/// The guest components, built once per test binary by the workspace's shared builder.
pub fn guests() -> &'static Guests {
    hearsay_testkit::wasm::guests(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// Bound on waiting for one outcome (generous: a loaded 2-core machine, debug build).
pub const WAIT: Duration = Duration::from_secs(120);

/// A handler from a component file, with default limits and no grants.
pub fn spec(name: &str, path: &Path) -> HandlerSpec {
    HandlerSpec::new(name, ModuleSource::Path(path.to_path_buf()))
}

/// A query event from "asker".
pub fn query(name: &str, payload: &[u8]) -> Event {
    Event::Query(Query {
        id: 7,
        name: name.into(),
        payload: payload.into(),
        ltime: 42,
        source_node: "asker".into(),
    })
}

/// Dispatches `event`; its ticket (a dropped event fails the test).
pub fn queue(host: &Host, handler: &Handler, event: Event, embedder: Arc<dyn Embedder>) -> Ticket {
    match host.dispatch(handler, event, embedder) {
        Dispatch::Queued(ticket) => ticket,
        Dispatch::Dropped => panic!("event dropped"),
    }
}

/// Dispatches and waits (bounded) for the outcome.
pub fn run(host: &Host, handler: &Handler, event: Event, embedder: Arc<dyn Embedder>) -> Outcome {
    queue(host, handler, event, embedder)
        .wait(WAIT)
        .expect("outcome within the bound")
}

/// The kind and message of a trap (any other outcome fails the test).
pub fn trap(outcome: &Outcome) -> (TrapKind, &str) {
    match outcome {
        Outcome::Trap { kind, message } => (*kind, message),
        other => panic!("expected a trap, got {other:?}"),
    }
}

/// Runs query `name` with `payload` in `handler` and asserts it answered `Ok` with `reply`.
pub fn assert_reply(host: &Host, handler: &Handler, name: &str, payload: &[u8], reply: &str) {
    let emb = TestEmbedder::new();
    assert_eq!(
        run(host, handler, query(name, payload), emb.clone()),
        Outcome::Ok
    );
    assert_eq!(emb.reply_text(), reply);
}

/// The kind of a trap (any other outcome fails the test).
pub fn trap_kind(outcome: &Outcome) -> TrapKind {
    trap(outcome).0
}

/// Waits (bounded by [`WAIT`]) until `cond` holds.
pub fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh directory under the test target's tmp dir.
pub fn scratch_dir(name: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("host-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One recorded reply.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    pub bytes: Vec<u8>,
    pub chunks: usize,
    pub finished: bool,
}

/// An embedder with a fixed member list that records replies and emitted events.
#[derive(Default)]
pub struct TestEmbedder {
    pub me: Option<Member>,
    pub others: Vec<Member>,
    pub replies: Mutex<Vec<Arc<Mutex<Recorded>>>>,
    pub emitted: Mutex<Vec<(String, Vec<u8>, bool)>>,
    /// Refuses replies longer than this many bytes (as a plain Serf asker takes 1024 at most).
    pub reply_limit: Option<usize>,
    /// A stalled asker: every reply write waits forever.
    pub stall_writes: bool,
    /// Tag changes asked for: (name, value), `None` removing it.
    pub tags: Mutex<Vec<(String, Option<String>)>>,
}

impl TestEmbedder {
    pub fn new() -> Arc<Self> {
        Arc::new(TestEmbedder {
            me: Some(member("self", "127.0.0.1", &[])),
            ..Default::default()
        })
    }

    pub fn with_members(others: Vec<Member>) -> Arc<Self> {
        Arc::new(TestEmbedder {
            me: Some(member("self", "127.0.0.1", &[])),
            others,
            ..Default::default()
        })
    }

    /// The only reply recorded so far.
    pub fn reply(&self) -> Recorded {
        let replies = self.replies.lock().unwrap();
        assert_eq!(replies.len(), 1, "expected exactly one reply");
        let r = replies[0].lock().unwrap().clone();
        r
    }

    pub fn reply_text(&self) -> String {
        let r = self.reply();
        assert!(r.finished, "reply not finished");
        String::from_utf8(r.bytes).unwrap()
    }
}

pub fn member(name: &str, addr: &str, tags: &[(&str, &str)]) -> Member {
    Member {
        name: name.into(),
        addr: addr.parse::<IpAddr>().unwrap(),
        port: 7946,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        status: MemberStatus::Alive,
        rtt: Some(Duration::from_micros(250)),
    }
}

struct Sink(Arc<Mutex<Recorded>>, Option<usize>, bool);

#[async_trait]
impl ReplySink for Sink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), ReplyError> {
        if self.2 {
            std::future::pending::<()>().await;
        }
        let mut r = self.0.lock().unwrap();
        if let Some(limit) = self.1 {
            if r.bytes.len() + chunk.len() > limit {
                return Err(ReplyError::TooLarge(limit as u64));
            }
        }
        r.bytes.extend_from_slice(chunk);
        r.chunks += 1;
        Ok(())
    }
    async fn finish(self: Box<Self>) -> Result<(), ReplyError> {
        self.0.lock().unwrap().finished = true;
        Ok(())
    }
}

#[async_trait]
impl Embedder for TestEmbedder {
    async fn local_member(&self) -> Member {
        self.me.clone().unwrap()
    }
    async fn members(&self) -> Vec<Member> {
        let mut all = vec![self.me.clone().unwrap()];
        all.extend(self.others.iter().cloned());
        all
    }
    fn open_reply(&self, _query: &Query) -> Result<Box<dyn ReplySink>, ReplyError> {
        let rec = Arc::new(Mutex::new(Recorded::default()));
        self.replies.lock().unwrap().push(rec.clone());
        Ok(Box::new(Sink(rec, self.reply_limit, self.stall_writes)))
    }
    async fn emit(&self, name: &str, payload: &[u8], coalesce: bool) -> Result<(), EmitError> {
        self.emitted
            .lock()
            .unwrap()
            .push((name.into(), payload.into(), coalesce));
        Ok(())
    }
    async fn set_tag(&self, name: &str, value: Option<&str>) -> Result<(), String> {
        self.tags
            .lock()
            .unwrap()
            .push((name.into(), value.map(str::to_owned)));
        Ok(())
    }
}

/// Where [`capture`] writes the log.
#[derive(Clone, Default)]
pub struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The test binary's log: one global subscriber writing into a buffer (installed on first use;
/// a test binary that calls it sees every guest log line).
pub fn capture() -> &'static Buffer {
    static BUFFER: std::sync::OnceLock<Buffer> = std::sync::OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .init();
        buffer
    })
}

impl Buffer {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}
