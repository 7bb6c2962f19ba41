//! What the agent's tests share beyond `hearsay-testkit`: the keys they encrypt with, captured
//! logs, and waits for QUIC members. (The interop tests that run the `hearsay-serf-node` binary
//! live with it, in `runtime/testkit/nodes`.)
#![allow(dead_code, unused_imports)]

pub use hearsay_testkit::serf::{require_serf, Serf};
pub use hearsay_testkit::WAIT;

pub const KEY: &str = "kZyFABeAmc64UMTrm9XuKA==";
pub const OTHER_KEY: &str = "5K9OtfP7efFrNKe5WCQvXvnaXJ5cWP0SvXiwe0kkjM4=";

/// What this test process logs through `tracing`, captured by a global subscriber installed on
/// the first call (one per process, so the first caller's `filter` — an `EnvFilter` directive
/// such as `"info,hearsay_agent::replies=debug"` — holds for the whole binary).
pub fn capture_logs(filter: &str) {
    LOGS.get_or_init(|| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Capture(writer.clone()))
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    });
}

static LOGS: std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> =
    std::sync::OnceLock::new();

struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything captured so far (empty before [`capture_logs`]).
pub fn log_text() -> String {
    LOGS.get()
        .map(|b| String::from_utf8_lossy(&b.lock().unwrap()).into_owned())
        .unwrap_or_default()
}

/// Waits (up to [`WAIT`]) for a captured log line containing `needle` and returns it.
pub async fn wait_log(needle: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = log_text();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line with {needle:?} in:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits (up to [`WAIT`]) until `agent` sees every one of `names` alive with a QUIC advert.
pub async fn wait_quic_members(agent: &hearsay_agent::Node, names: &[&str]) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let members = agent.members().await.unwrap();
        let ok = names.iter().all(|n| {
            members.iter().any(|m| {
                m.name == *n
                    && m.status == hearsay_serf::event::MemberStatus::Alive
                    && m.tags.contains_key(hearsay_net::quic::QUIC_TAG)
            })
        });
        if ok {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "members never converged: {members:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Logs to the test harness's captured output (`RUST_LOG`, else `info`); the first call in a
/// process installs the subscriber, later ones do nothing.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
}
