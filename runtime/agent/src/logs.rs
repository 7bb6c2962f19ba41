//! The log hub behind the RPC `monitor` command: a [`tracing_subscriber::Layer`] that formats
//! every event as one line in Serf's style (`2006/01/02 15:04:05 [INFO] target: message`) and
//! fans it out through a broadcast channel. Each subscriber picks its minimum level, as
//! serf's monitor `LogLevel` does (`TRACE`, `DEBUG`, `INFO`, `WARN`, `ERR`). As Serf's log
//! writer does, the hub keeps the last [`DEFAULT_LOG_CAPACITY`] lines and a new subscriber gets
//! those at its level first, so `monitor` shows what happened before it connected. A slow
//! subscriber loses the oldest lines; logging never waits for it.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Lines buffered per subscriber before the oldest are dropped, and lines kept for replay to
/// a new subscriber (Serf's `LogBufSize`).
pub const DEFAULT_LOG_CAPACITY: usize = 512;

/// Serf's log levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `trace`.
    Trace,
    /// `debug`.
    Debug,
    /// `info`.
    Info,
    /// `warn`.
    Warn,
    /// `err`.
    Err,
}

impl LogLevel {
    /// Parses a level name as serf's monitor does (case-insensitive; `ERROR` and `WARNING`
    /// are accepted too). `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "TRACE" => Self::Trace,
            "DEBUG" => Self::Debug,
            "INFO" => Self::Info,
            "WARN" | "WARNING" => Self::Warn,
            "ERR" | "ERROR" => Self::Err,
            _ => return None,
        })
    }

    /// The name in Serf's log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "TRACE",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Err => "ERR",
        }
    }

    /// The `tracing` level this shows and everything above.
    pub fn tracing_level(self) -> Level {
        match self {
            Self::Trace => Level::TRACE,
            Self::Debug => Level::DEBUG,
            Self::Info => Level::INFO,
            Self::Warn => Level::WARN,
            Self::Err => Level::ERROR,
        }
    }

    fn from_tracing(level: &Level) -> Self {
        match *level {
            Level::TRACE => Self::Trace,
            Level::DEBUG => Self::Debug,
            Level::INFO => Self::Info,
            Level::WARN => Self::Warn,
            _ => Self::Err,
        }
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s).ok_or_else(|| {
            format!("invalid log level {s:?}; valid levels are TRACE, DEBUG, INFO, WARN, ERR")
        })
    }
}

/// One formatted log line and its level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The line's level.
    pub level: LogLevel,
    /// The line as `hearsay monitor` prints it.
    pub text: String,
}

/// The fan-out point: clone it freely; [`LogHub::layer`] goes into the process's subscriber,
/// [`LogHub::subscribe`] is called per monitor.
#[derive(Debug, Clone)]
pub struct LogHub {
    tx: broadcast::Sender<LogLine>,
    recent: Arc<Mutex<Recent>>,
}

/// The last lines, for a new subscriber. Lines are added and sent under its lock, so a
/// subscriber that copies it and subscribes under the same lock misses and repeats nothing.
#[derive(Debug)]
struct Recent {
    lines: VecDeque<LogLine>,
    capacity: usize,
}

impl Recent {
    fn lock(recent: &Mutex<Recent>) -> std::sync::MutexGuard<'_, Recent> {
        recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `line` and sends it to the subscribers.
    fn publish(recent: &Mutex<Recent>, tx: &broadcast::Sender<LogLine>, line: LogLine) {
        let mut r = Self::lock(recent);
        if r.lines.len() == r.capacity {
            r.lines.pop_front();
        }
        r.lines.push_back(line.clone());
        // No subscriber is not an error.
        let _ = tx.send(line);
    }
}

impl Default for LogHub {
    fn default() -> Self {
        Self::new(DEFAULT_LOG_CAPACITY)
    }
}

impl LogHub {
    /// A hub keeping up to `capacity` lines per subscriber.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            tx: broadcast::channel(capacity).0,
            recent: Arc::new(Mutex::new(Recent {
                lines: VecDeque::with_capacity(capacity),
                capacity,
            })),
        }
    }

    /// The layer to install in the tracing subscriber (e.g.
    /// `tracing_subscriber::registry().with(fmt_layer).with(hub.layer())`).
    pub fn layer(&self) -> LogLayer {
        LogLayer {
            tx: self.tx.clone(),
            recent: self.recent.clone(),
        }
    }

    /// Keeps a line and sends it to every subscriber (the layer does this for tracing
    /// events).
    pub fn publish(&self, line: LogLine) {
        Recent::publish(&self.recent, &self.tx, line);
    }

    /// A subscriber receiving the kept lines at `min` or above, then every new one.
    pub fn subscribe(&self, min: LogLevel) -> LogSubscription {
        let r = Recent::lock(&self.recent);
        let backlog = r
            .lines
            .iter()
            .filter(|l| l.level >= min)
            .map(|l| l.text.clone())
            .collect();
        LogSubscription {
            rx: self.tx.subscribe(),
            backlog,
            min,
            dropped: 0,
        }
    }
}

/// One monitor's view of the log.
#[derive(Debug)]
pub struct LogSubscription {
    rx: broadcast::Receiver<LogLine>,
    /// Lines from before the subscription, delivered first.
    backlog: VecDeque<String>,
    min: LogLevel,
    dropped: u64,
}

impl LogSubscription {
    /// The next line at or above the subscriber's level; `None` when the hub is gone.
    pub async fn next(&mut self) -> Option<String> {
        if let Some(line) = self.backlog.pop_front() {
            return Some(line);
        }
        loop {
            match self.rx.recv().await {
                Ok(line) if line.level >= self.min => return Some(line.text),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => self.dropped += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Lines lost because this subscriber fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// The tracing layer of a [`LogHub`].
#[derive(Debug, Clone)]
pub struct LogLayer {
    tx: broadcast::Sender<LogLine>,
    recent: Arc<Mutex<Recent>>,
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = LogLevel::from_tracing(meta.level());
        let mut fields = LineFields::default();
        event.record(&mut fields);
        // Messages written Serf's way already name their component (`agent.ipc: ...`);
        // the others get their tracing target in that place.
        let mut text = if has_component(&fields.message) {
            format!(
                "{} [{}] {}",
                timestamp(SystemTime::now()),
                level.as_str(),
                fields.message
            )
        } else {
            format!(
                "{} [{}] {}: {}",
                timestamp(SystemTime::now()),
                level.as_str(),
                meta.target(),
                fields.message
            )
        };
        text.push_str(&fields.rest);
        Recent::publish(&self.recent, &self.tx, LogLine { level, text });
    }
}

#[derive(Default)]
struct LineFields {
    message: String,
    rest: String,
}

impl Visit for LineFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}

/// Whether `message` starts with a Serf-style component name (`serf:`, `agent.ipc:`).
fn has_component(message: &str) -> bool {
    message.split_once(": ").is_some_and(|(head, _)| {
        !head.is_empty()
            && head
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
    })
}

/// `YYYY/MM/DD hh:mm:ss` in UTC, Go's `log.LstdFlags` layout.
fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}/{month:02}/{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn timestamps_use_go_layout() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(timestamp(t), "2023/11/14 22:13:20");
        assert_eq!(timestamp(UNIX_EPOCH), "1970/01/01 00:00:00");
    }

    #[test]
    fn levels_parse_as_serf_names_them() {
        assert_eq!(LogLevel::parse("info"), Some(LogLevel::Info));
        assert_eq!(LogLevel::parse("ERR"), Some(LogLevel::Err));
        assert_eq!(LogLevel::parse("loud"), None);
        assert!(LogLevel::Debug < LogLevel::Warn);
    }

    #[tokio::test]
    async fn a_new_subscriber_first_gets_the_kept_lines_at_its_level() {
        let hub = LogHub::new(3);
        let line = |level, text: &str| LogLine {
            level,
            text: text.to_owned(),
        };
        for (i, level) in [
            LogLevel::Info,
            LogLevel::Debug,
            LogLevel::Warn,
            LogLevel::Info,
        ]
        .into_iter()
        .enumerate()
        {
            hub.publish(line(level, &format!("old {i}")));
        }
        // "old 0" fell out of the 3 kept lines; "old 1" is below the level.
        let mut info = hub.subscribe(LogLevel::Info);
        hub.publish(line(LogLevel::Err, "new"));
        for want in ["old 2", "old 3", "new"] {
            assert_eq!(info.next().await.unwrap(), want);
        }
    }

    #[tokio::test]
    async fn subscribers_get_lines_at_their_level() {
        let hub = LogHub::new(16);
        let mut info = hub.subscribe(LogLevel::Info);
        let mut warn = hub.subscribe(LogLevel::Warn);
        let subscriber = tracing_subscriber::registry().with(hub.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("hidden");
            tracing::info!(node = "a", "joined");
            tracing::warn!("agent.ipc: careful");
        });
        let first = info.next().await.unwrap();
        assert!(
            first.contains("[INFO]") && first.ends_with("joined node=a"),
            "{first}"
        );
        assert!(info.next().await.unwrap().contains("[WARN]"));
        let w = warn.next().await.unwrap();
        assert!(w.ends_with("[WARN] agent.ipc: careful"), "{w}");
        assert!(
            first.contains("[INFO] hearsay_agent::logs::tests: joined"),
            "{first}"
        );
    }
}
