//! Serf's snapshot file: the line format (`alive:`, `not-alive:`, `clock:`, `event-clock:`,
//! `query-clock:`, `coordinate:`, `leave`, `#` comments), its replay at start-up, and a sans-io
//! [`Snapshotter`] that turns events and clock readings into lines to append and, when the file
//! has grown too large, into the full content of a compacted file.
//!
//! The format is Serf's own, so a snapshot written by hearsay restores a Go Serf and vice versa.
//! Nothing here touches a file: the agent reads the file, calls [`replay`], and writes what
//! [`Snapshotter::poll_compact`] and [`Snapshotter::poll_append`] hand it.

use crate::clock::LamportTime;
use crate::error::{Error, Result};
use crate::event::{Event, MemberEvent, MemberEventKind, QueryEvent, UserEvent};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Serf's `snapshotSizeLimit`: the file is never compacted below this size (128 KiB).
pub const MIN_COMPACT_SIZE: u64 = 128 * 1024;

/// Serf's `snapshotBytesPerNode`: the estimated bytes one alive node costs in the file.
pub(crate) const BYTES_PER_NODE: u64 = 128;

/// Serf's `snapshotCompactionThreshold`: compact once the file is this many times the estimate.
pub(crate) const COMPACTION_THRESHOLD: u64 = 2;

/// Serf's `clockUpdateInterval`: how often the cluster clock is checked and written.
pub(crate) const CLOCK_UPDATE_INTERVAL: Duration = Duration::from_millis(500);

/// Serf's `snapshotErrorRecoveryInterval`: after a failed write, compaction (which rewrites the
/// whole file from memory) is retried at most this often.
pub(crate) const ERROR_RECOVERY_INTERVAL: Duration = Duration::from_secs(30);

/// Serf's extension for the temporary file a compaction is written to before the rename.
pub const COMPACT_TMP_EXT: &str = ".compact";

/// One line of a snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// `alive: <name> <addr:port>`: the node joined. The name may contain spaces (the address
    /// is whatever follows the last space), not newlines.
    Alive { name: String, addr: SocketAddr },
    /// `not-alive: <name>`: the node left or failed. The name is the rest of the line.
    NotAlive { name: String },
    /// `clock: <n>`: the last member (intent) Lamport time seen.
    Clock(LamportTime),
    /// `event-clock: <n>`: the last user event Lamport time delivered.
    EventClock(LamportTime),
    /// `query-clock: <n>`: the last query Lamport time delivered.
    QueryClock(LamportTime),
    /// `coordinate: <json>`: written by old Serf versions; current Serf ignores it on replay.
    Coordinate(String),
    /// `leave`: this node left the cluster gracefully.
    Leave,
    /// `#<text>`: a comment.
    Comment(String),
}

const ALIVE: &str = "alive: ";
const NOT_ALIVE: &str = "not-alive: ";
const CLOCK: &str = "clock: ";
const EVENT_CLOCK: &str = "event-clock: ";
const QUERY_CLOCK: &str = "query-clock: ";
const COORDINATE: &str = "coordinate: ";
const LEAVE: &str = "leave";

impl Record {
    /// The record as Serf writes it, newline included. Names must not contain `\n`; the
    /// [`Snapshotter`] never writes such a name.
    pub(crate) fn to_line(&self) -> String {
        match self {
            Self::Alive { name, addr } => format!("{ALIVE}{name} {}\n", serf_addr(*addr)),
            Self::NotAlive { name } => format!("{NOT_ALIVE}{name}\n"),
            Self::Clock(t) => format!("{CLOCK}{t}\n"),
            Self::EventClock(t) => format!("{EVENT_CLOCK}{t}\n"),
            Self::QueryClock(t) => format!("{QUERY_CLOCK}{t}\n"),
            Self::Coordinate(raw) => format!("{COORDINATE}{raw}\n"),
            Self::Leave => format!("{LEAVE}\n"),
            Self::Comment(text) => format!("#{text}\n"),
        }
    }
}

/// The address as Go's `net.TCPAddr.String()` prints it: an IPv4-mapped IPv6 address is
/// printed as plain IPv4, as Go does.
fn serf_addr(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// Parses one line (a single trailing `\n` is allowed). `Ok(None)` is an empty line, which
/// Serf only logs. Errors carry `line: 0`; [`replay`] fills in the real line number.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn parse_line(line: &str) -> Result<Option<Record>> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    parse_record(line).map_err(|reason| Error::Snapshot { line: 0, reason })
}

/// The prefixes are tried in Serf's order; only `\n` ends a line, so a `\r` stays part of it
/// (Serf does the same).
fn parse_record(line: &str) -> Result<Option<Record>, String> {
    if let Some(info) = line.strip_prefix(ALIVE) {
        let Some((name, addr)) = info.rsplit_once(' ') else {
            return Err(format!("alive record without an address: {line:?}"));
        };
        let addr = addr
            .parse()
            .map(serf_addr)
            .map_err(|_| format!("bad address {addr:?} in alive record"))?;
        Ok(Some(Record::Alive {
            name: name.to_owned(),
            addr,
        }))
    } else if let Some(name) = line.strip_prefix(NOT_ALIVE) {
        Ok(Some(Record::NotAlive {
            name: name.to_owned(),
        }))
    } else if let Some(t) = line.strip_prefix(CLOCK) {
        parse_time(t, "clock").map(|t| Some(Record::Clock(t)))
    } else if let Some(t) = line.strip_prefix(EVENT_CLOCK) {
        parse_time(t, "event clock").map(|t| Some(Record::EventClock(t)))
    } else if let Some(t) = line.strip_prefix(QUERY_CLOCK) {
        parse_time(t, "query clock").map(|t| Some(Record::QueryClock(t)))
    } else if let Some(raw) = line.strip_prefix(COORDINATE) {
        Ok(Some(Record::Coordinate(raw.to_owned())))
    } else if line == LEAVE {
        Ok(Some(Record::Leave))
    } else if let Some(text) = line.strip_prefix('#') {
        Ok(Some(Record::Comment(text.to_owned())))
    } else if line.is_empty() {
        Ok(None)
    } else {
        Err(format!("unrecognized line {line:?}"))
    }
}

/// Go's `strconv.ParseUint(s, 10, 64)`: ASCII digits only (no sign, no spaces), fits in u64.
fn parse_time(text: &str, what: &str) -> Result<LamportTime, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} time {text:?}"));
    }
    text.parse()
        .map_err(|_| format!("{what} time {text:?} out of range"))
}

/// What a snapshot file says, replayed with Serf's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    /// Nodes alive at the end, sorted by name. Serf shuffles them before rejoining (to spread
    /// the load); the caller does that with its own randomness.
    pub alive: Vec<(String, SocketAddr)>,
    /// The last `clock:` value (Serf takes the last, not the largest; they agree for files
    /// Serf or the [`Snapshotter`] wrote).
    pub last_clock: LamportTime,
    /// The last `event-clock:` value.
    pub last_event_clock: LamportTime,
    /// The last `query-clock:` value.
    pub last_query_clock: LamportTime,
    /// The last `coordinate:` payload, raw. Serf ignores it and lets Vivaldi re-converge.
    pub coordinate: Option<String>,
    /// A `leave` record was seen and no `alive:` record came after it.
    pub left: bool,
    /// Bytes of the content up to and including its last newline. A torn last line lies beyond.
    pub valid_len: usize,
    /// The content did not end with a newline: its last line was torn by a crash and ignored.
    pub torn_tail: bool,
    /// Lines that did not parse, with their 1-based numbers; replay went on past them.
    pub errors: Vec<Error>,
}

impl Replay {
    /// Serf's `eventMinTime` after a restart: user events older than this are not replayed.
    pub fn event_min_time(&self) -> LamportTime {
        self.last_event_clock.saturating_add(1)
    }

    /// Serf's `queryMinTime` after a restart: queries older than this are ignored.
    pub fn query_min_time(&self) -> LamportTime {
        self.last_query_clock.saturating_add(1)
    }
}

/// Replays a snapshot with Serf's default `rejoin_after_leave = false`: a `leave` record
/// forgets the nodes and clocks before it, so a node that left gracefully does not rejoin.
pub fn replay(content: &str) -> Replay {
    replay_with(content, false)
}

/// Replays a snapshot. With `rejoin_after_leave`, `leave` records are ignored (Serf's
/// `RejoinAfterLeave`), so the nodes known before the leave are rejoined.
///
/// Like Serf, only newline-terminated lines count: an unterminated last line is what a crash
/// mid-write leaves, and even when it parses it may be a truncation (`clock: 12` of
/// `clock: 123`), so it is ignored, not reported.
pub fn replay_with(content: &str, rejoin_after_leave: bool) -> Replay {
    let mut out = Replay::default();
    let mut alive: BTreeMap<String, SocketAddr> = BTreeMap::new();
    for (index, raw) in content.split_inclusive('\n').enumerate() {
        let Some(line) = raw.strip_suffix('\n') else {
            out.torn_tail = true;
            break;
        };
        out.valid_len += raw.len();
        let record = match parse_record(line) {
            Ok(Some(record)) => record,
            Ok(None) => continue,
            Err(reason) => {
                out.errors.push(Error::Snapshot {
                    line: index + 1,
                    reason,
                });
                continue;
            }
        };
        match record {
            Record::Alive { name, addr } => {
                alive.insert(name, addr);
                out.left = false;
            }
            Record::NotAlive { name } => {
                alive.remove(&name);
            }
            Record::Clock(t) => out.last_clock = t,
            Record::EventClock(t) => out.last_event_clock = t,
            Record::QueryClock(t) => out.last_query_clock = t,
            Record::Coordinate(raw) => out.coordinate = Some(raw),
            Record::Leave => {
                out.left = true;
                if !rejoin_after_leave {
                    alive.clear();
                    out.last_clock = 0;
                    out.last_event_clock = 0;
                    out.last_query_clock = 0;
                    out.coordinate = None;
                }
            }
            Record::Comment(_) => {}
        }
    }
    out.alive = alive.into_iter().collect();
    out
}

/// The entry point for a fuzz target (and the never-panics property test): replays arbitrary
/// bytes and checks what must hold for every input. Panics only on a real bug. Only built with
/// the `fuzzing` feature and in unit tests.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_replay(data: &[u8]) {
    let content = String::from_utf8_lossy(data);
    let r = replay(&content);
    assert!(r.valid_len <= content.len());
    let (whole, tail) = content.split_at(r.valid_len);
    assert!(whole.is_empty() || whole.ends_with('\n'));
    assert_eq!(r.torn_tail, !tail.is_empty());
    assert!(!tail.contains('\n'));
    let lines = whole.matches('\n').count();
    for error in &r.errors {
        assert!(matches!(error, Error::Snapshot { line, .. } if (1..=lines).contains(line)));
    }
    // The torn tail changes nothing.
    let again = replay(whole);
    assert_eq!(
        (&again.alive, again.last_clock, again.left),
        (&r.alive, r.last_clock, r.left)
    );
    // Whatever parses re-encodes to a line that parses to the same record.
    for line in whole.lines() {
        if let Ok(Some(record)) = parse_line(line) {
            assert_eq!(parse_line(&record.to_line()), Ok(Some(record)));
        }
    }
    // A compaction of the replayed state replays to the same state.
    let snap = Snapshotter::new(SnapshotConfig::default(), &r, data.len() as u64);
    let compacted = replay(&snap.compacted());
    assert!(compacted.errors.is_empty() && !compacted.torn_tail);
    assert_eq!(compacted.alive, r.alive);
    assert_eq!(
        (
            compacted.last_clock,
            compacted.last_event_clock,
            compacted.last_query_clock
        ),
        (r.last_clock, r.last_event_clock, r.last_query_clock)
    );
}

/// How a [`Snapshotter`] sizes and treats its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// The file is never compacted below this many bytes (Serf: 128 KiB).
    pub min_compact_size: u64,
    /// Serf's `RejoinAfterLeave`: keep the known nodes across a leave.
    pub rejoin_after_leave: bool,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            min_compact_size: MIN_COMPACT_SIZE,
            rejoin_after_leave: false,
        }
    }
}

/// The sans-io snapshot writer. Feed it events (the ones Serf delivers), leave and clock
/// readings; then write what it hands out, compaction first:
///
/// ```text
/// if let Some(all) = snap.poll_compact() { write all to path + ".compact", fsync, rename }
/// if let Some(lines) = snap.poll_append() { append lines to path }
/// ```
///
/// If a write fails, call [`Snapshotter::handle_write_failed`]: like Serf, it answers with a
/// compaction (rewriting the file from memory) at most every 30 seconds.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    config: SnapshotConfig,
    alive: BTreeMap<String, SocketAddr>,
    last_clock: LamportTime,
    last_event_clock: LamportTime,
    last_query_clock: LamportTime,
    leaving: bool,
    /// Bytes in the file once everything handed out so far is written.
    offset: u64,
    pending: String,
    compact_pending: bool,
    /// A member event was recorded: Serf writes the clock right after, whatever the interval.
    clock_due: bool,
    next_clock_check: Option<Instant>,
    last_recovery: Option<Instant>,
}

impl Snapshotter {
    /// A snapshotter continuing a file of `file_len` bytes that replayed as `replay` (use
    /// [`replay_with`] with the same `rejoin_after_leave`). A file with a torn last line is
    /// compacted first, so new lines are never glued onto the fragment.
    pub fn new(config: SnapshotConfig, replay: &Replay, file_len: u64) -> Self {
        Self {
            config,
            alive: replay.alive.iter().cloned().collect(),
            last_clock: replay.last_clock,
            last_event_clock: replay.last_event_clock,
            last_query_clock: replay.last_query_clock,
            leaving: false,
            offset: file_len,
            pending: String::new(),
            compact_pending: replay.torn_tail,
            clock_due: false,
            next_clock_check: None,
            last_recovery: None,
        }
    }

    /// Records the nodes of a member event: a join as `alive:`, a leave or failure as
    /// `not-alive:`; updates and reaps are not recorded. The next [`Self::handle_clocks`]
    /// writes the clock regardless of the interval, as Serf does after every member event.
    /// Ignored after [`Self::handle_leave`].
    pub fn handle_member_event(&mut self, event: &MemberEvent) {
        if self.leaving {
            return;
        }
        match event.kind {
            MemberEventKind::Join => {
                for member in &event.members {
                    if member.name.contains('\n') {
                        tracing::warn!(name = ?member.name, "snapshot: not recording a node whose name has a newline");
                        continue;
                    }
                    let addr = serf_addr(member.addr);
                    self.alive.insert(member.name.clone(), addr);
                    self.append(&Record::Alive {
                        name: member.name.clone(),
                        addr,
                    });
                }
            }
            MemberEventKind::Leave | MemberEventKind::Failed => {
                for member in &event.members {
                    if member.name.contains('\n') {
                        continue;
                    }
                    self.alive.remove(&member.name);
                    self.append(&Record::NotAlive {
                        name: member.name.clone(),
                    });
                }
            }
            MemberEventKind::Update | MemberEventKind::Reap => {}
        }
        self.clock_due = true;
    }

    /// Records a delivered user event's Lamport time if it is newer than the last recorded.
    pub fn handle_user_event(&mut self, event: &UserEvent) {
        if !self.leaving && event.ltime > self.last_event_clock {
            self.last_event_clock = event.ltime;
            self.append(&Record::EventClock(event.ltime));
        }
    }

    /// Records a delivered query's Lamport time if it is newer than the last recorded.
    pub fn handle_query(&mut self, query: &QueryEvent) {
        if !self.leaving && query.ltime > self.last_query_clock {
            self.last_query_clock = query.ltime;
            self.append(&Record::QueryClock(query.ltime));
        }
    }

    /// Dispatches an event Serf delivers to the matching `handle_*`.
    pub fn handle_event(&mut self, event: &Event) {
        match event {
            Event::Member(e) => self.handle_member_event(e),
            Event::User(e) => self.handle_user_event(e),
            Event::Query(q) => self.handle_query(q),
            // Results of our own queries, joins and leaves leave no trace in the snapshot.
            _ => {}
        }
    }

    /// Takes the three Lamport clocks' current values (as [`crate::Serf::clocks`] gives them, the
    /// next time to be used) and records each one's last seen time (`value - 1`, as Serf does)
    /// when it moved forward. Readings closer than 500 ms (Serf's `clockUpdateInterval`) to the
    /// previous checked one are ignored unless a member event came in between. After a leave only the member clock is
    /// still recorded (Serf's clock ticker keeps running; events are no longer recorded).
    pub fn handle_clocks(
        &mut self,
        now: Instant,
        clock: LamportTime,
        event_clock: LamportTime,
        query_clock: LamportTime,
    ) {
        let too_soon = self.next_clock_check.is_some_and(|next| now < next);
        if too_soon && !self.clock_due {
            return;
        }
        self.clock_due = false;
        self.next_clock_check = Some(now + CLOCK_UPDATE_INTERVAL);
        let seen = clock.saturating_sub(1);
        if seen > self.last_clock {
            self.last_clock = seen;
            self.append(&Record::Clock(seen));
        }
        if self.leaving {
            return;
        }
        let seen = event_clock.saturating_sub(1);
        if seen > self.last_event_clock {
            self.last_event_clock = seen;
            self.append(&Record::EventClock(seen));
        }
        let seen = query_clock.saturating_sub(1);
        if seen > self.last_query_clock {
            self.last_query_clock = seen;
            self.append(&Record::QueryClock(seen));
        }
    }

    /// When the next clock reading will be taken: call [`Self::handle_clocks`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_clock_check
    }

    /// This node leaves gracefully: writes `leave`, forgets the known nodes (unless
    /// `rejoin_after_leave`) and stops recording events. The agent should write (and fsync)
    /// the result before shutting down.
    pub fn handle_leave(&mut self) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        if !self.config.rejoin_after_leave {
            self.alive.clear();
        }
        self.append(&Record::Leave);
    }

    /// A write of the snapshot failed. Serf answers by compacting (rewriting the file from what
    /// it holds in memory), at most once every 30 s (Serf's `snapshotErrorRecoveryInterval`).
    pub fn handle_write_failed(&mut self, now: Instant) {
        let due = self
            .last_recovery
            .is_none_or(|last| now.saturating_duration_since(last) > ERROR_RECOVERY_INTERVAL);
        if due {
            self.last_recovery = Some(now);
            self.compact_pending = true;
            self.pending.clear();
        }
    }

    /// Lines to append to the file, if any. Nothing while a compaction is pending: call
    /// [`Self::poll_compact`] first (its content already includes these lines).
    pub fn poll_append(&mut self) -> Option<String> {
        if self.compact_pending || self.pending.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.pending))
    }

    /// When the file has grown past [`Self::max_size`] (or a write failed): the full content
    /// of the compacted file — the alive nodes (sorted by name), a `leave` if this node has left,
    /// and the three clocks. Write it to a temporary file and rename it over the snapshot.
    pub fn poll_compact(&mut self) -> Option<String> {
        if !self.compact_pending {
            return None;
        }
        self.compact_pending = false;
        self.pending.clear();
        let content = self.compacted();
        self.offset = content.len() as u64;
        Some(content)
    }

    /// The compacted file for the current state. Unlike Serf, the `leave` survives compaction
    /// (before the clocks, so replay keeps them), so the file still says this node left.
    fn compacted(&self) -> String {
        let mut out = String::new();
        for (name, addr) in &self.alive {
            out.push_str(
                &Record::Alive {
                    name: name.clone(),
                    addr: *addr,
                }
                .to_line(),
            );
        }
        if self.leaving {
            out.push_str(&Record::Leave.to_line());
        }
        let _ = write!(
            out,
            "{}{}{}",
            Record::Clock(self.last_clock).to_line(),
            Record::EventClock(self.last_event_clock).to_line(),
            Record::QueryClock(self.last_query_clock).to_line(),
        );
        out
    }

    /// Serf's `snapshotMaxSize`: `max(min_compact_size, alive nodes × 128 B × 2)`. The file is
    /// compacted as soon as it is strictly larger.
    pub fn max_size(&self) -> u64 {
        let estimate = self.alive.len() as u64 * BYTES_PER_NODE * COMPACTION_THRESHOLD;
        estimate.max(self.config.min_compact_size)
    }

    /// The file's size once everything handed out so far has been written.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The nodes currently alive, sorted by name.
    pub fn alive_nodes(&self) -> impl Iterator<Item = (&str, SocketAddr)> + '_ {
        self.alive.iter().map(|(n, a)| (n.as_str(), *a))
    }

    /// The last member clock recorded.
    pub fn last_clock(&self) -> LamportTime {
        self.last_clock
    }

    /// The last user event clock recorded.
    pub fn last_event_clock(&self) -> LamportTime {
        self.last_event_clock
    }

    /// The last query clock recorded.
    pub fn last_query_clock(&self) -> LamportTime {
        self.last_query_clock
    }

    /// Whether [`Self::handle_leave`] was called.
    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    fn append(&mut self, record: &Record) {
        let line = record.to_line();
        self.offset += line.len() as u64;
        if self.compact_pending {
            // The compaction, written from memory, already covers this line.
            return;
        }
        self.pending.push_str(&line);
        if self.offset > self.max_size() {
            self.compact_pending = true;
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Member, MemberStatus};
    use proptest::prelude::*;

    fn member(name: &str, addr: &str) -> Member {
        Member {
            name: name.to_owned(),
            addr: addr.parse().unwrap(),
            tags: BTreeMap::new(),
            status: MemberStatus::Alive,
            vsn: [1, 5, 2, 2, 5, 4],
        }
    }

    fn event(kind: MemberEventKind, members: &[(&str, &str)]) -> MemberEvent {
        MemberEvent {
            kind,
            members: members.iter().map(|(n, a)| member(n, a)).collect(),
        }
    }

    fn user(ltime: LamportTime) -> UserEvent {
        UserEvent {
            ltime,
            name: "deploy".into(),
            payload: vec![],
            coalesce: true,
        }
    }

    fn query(ltime: LamportTime) -> QueryEvent {
        QueryEvent {
            ltime,
            id: 7,
            name: "uptime".into(),
            payload: vec![],
            source_node: "a".into(),
            deadline: Instant::now(),
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The agent's side: a file held in memory.
    #[derive(Default)]
    struct File {
        content: String,
        compactions: usize,
    }

    impl File {
        fn drain(&mut self, snap: &mut Snapshotter) {
            if let Some(all) = snap.poll_compact() {
                self.content = all;
                self.compactions += 1;
            }
            if let Some(lines) = snap.poll_append() {
                self.content.push_str(&lines);
            }
            assert_eq!(snap.offset(), self.content.len() as u64);
        }
    }

    fn fresh() -> Snapshotter {
        Snapshotter::new(SnapshotConfig::default(), &Replay::default(), 0)
    }

    #[test]
    fn every_record_round_trips() {
        let records = [
            Record::Alive {
                name: "web-1".into(),
                addr: addr("10.0.0.1:7946"),
            },
            Record::Alive {
                name: "name with  spaces ".into(),
                addr: addr("[2001:db8::1]:7946"),
            },
            Record::Alive {
                name: String::new(),
                addr: addr("127.0.0.1:1"),
            },
            Record::NotAlive {
                name: "web 2".into(),
            },
            Record::NotAlive {
                name: String::new(),
            },
            Record::Clock(0),
            Record::Clock(u64::MAX),
            Record::EventClock(42),
            Record::QueryClock(50),
            Record::Coordinate(r#"{"Vec":[0.1,0.2],"Error":1.5}"#.into()),
            Record::Leave,
            Record::Comment(" written by hand".into()),
        ];
        for record in records {
            let line = record.to_line();
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
            assert_eq!(parse_line(&line).unwrap(), Some(record.clone()), "{line:?}");
            assert_eq!(
                parse_line(line.trim_end_matches('\n')).unwrap(),
                Some(record)
            );
        }
    }

    #[test]
    fn lines_are_spelled_like_serf() {
        let alive = Record::Alive {
            name: "foo".into(),
            addr: addr("127.0.0.1:5000"),
        };
        assert_eq!(alive.to_line(), "alive: foo 127.0.0.1:5000\n");
        let v6 = Record::Alive {
            name: "foo".into(),
            addr: addr("[::1]:5000"),
        };
        assert_eq!(v6.to_line(), "alive: foo [::1]:5000\n");
        // Go prints an IPv4-mapped address as IPv4.
        let mapped = Record::Alive {
            name: "foo".into(),
            addr: addr("[::ffff:10.1.2.3]:5000"),
        };
        assert_eq!(mapped.to_line(), "alive: foo 10.1.2.3:5000\n");
        assert_eq!(
            parse_line("alive: foo [::ffff:10.1.2.3]:5000").unwrap(),
            Some(Record::Alive {
                name: "foo".into(),
                addr: addr("10.1.2.3:5000")
            })
        );
        assert_eq!(
            Record::NotAlive { name: "foo".into() }.to_line(),
            "not-alive: foo\n"
        );
        assert_eq!(Record::Clock(100).to_line(), "clock: 100\n");
        assert_eq!(Record::EventClock(42).to_line(), "event-clock: 42\n");
        assert_eq!(Record::QueryClock(50).to_line(), "query-clock: 50\n");
        assert_eq!(Record::Leave.to_line(), "leave\n");
    }

    #[test]
    fn malformed_lines_are_refused() {
        for bad in [
            "alive: no-address",
            "alive: foo not-an-address",
            "alive: foo [fe80::1%eth0]:7946",
            "clock: ",
            "clock: +5",
            "clock: -1",
            "clock:  5",
            "clock: 5 ",
            "clock: 18446744073709551616",
            "event-clock: x",
            "query-clock: 1e3",
            "leave ",
            "leave\r",
            "alive:foo 1.2.3.4:5",
            "garbage",
        ] {
            assert!(
                matches!(parse_line(bad), Err(Error::Snapshot { line: 0, .. })),
                "{bad:?}"
            );
        }
        assert_eq!(parse_line("").unwrap(), None);
        assert_eq!(parse_line("\n").unwrap(), None);
    }

    #[test]
    fn replays_a_hand_written_file() {
        let file = "\
# a hand-written snapshot
alive: alpha 10.0.0.1:7946
alive: beta node 10.0.0.2:7946
alive: gamma [2001:db8::3]:7946
clock: 10
event-clock: 4
not-alive: alpha
query-clock: 9
alive: delta 10.0.0.4:7946
clock: 12
coordinate: {\"Vec\":[0,0]}
not-alive: delta
alive: alpha 10.0.0.11:7946
";
        let r = replay(file);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(
            r.alive,
            vec![
                ("alpha".to_owned(), addr("10.0.0.11:7946")),
                ("beta node".to_owned(), addr("10.0.0.2:7946")),
                ("gamma".to_owned(), addr("[2001:db8::3]:7946")),
            ]
        );
        assert_eq!(
            (r.last_clock, r.last_event_clock, r.last_query_clock),
            (12, 4, 9)
        );
        assert_eq!(r.event_min_time(), 5);
        assert_eq!(r.query_min_time(), 10);
        assert_eq!(r.coordinate.as_deref(), Some("{\"Vec\":[0,0]}"));
        assert!(!r.left && !r.torn_tail);
        assert_eq!(r.valid_len, file.len());
    }

    #[test]
    fn a_leave_forgets_nodes_and_clocks_unless_rejoining() {
        let file = "\
alive: a 10.0.0.1:1
alive: b 10.0.0.2:1
clock: 100
event-clock: 42
query-clock: 50
leave
";
        let r = replay(file);
        assert!(r.alive.is_empty());
        assert!(r.left);
        assert_eq!(
            (r.last_clock, r.last_event_clock, r.last_query_clock),
            (0, 0, 0)
        );

        let r = replay_with(file, true);
        assert_eq!(r.alive.len(), 2);
        assert!(r.left);
        assert_eq!(
            (r.last_clock, r.last_event_clock, r.last_query_clock),
            (100, 42, 50)
        );

        // Restarted, then joined explicitly: the file goes on after the leave.
        let later = format!("{file}clock: 120\nalive: c 10.0.0.3:1\n");
        let r = replay(&later);
        assert_eq!(r.alive, vec![("c".to_owned(), addr("10.0.0.3:1"))]);
        assert!(!r.left);
        assert_eq!(r.last_clock, 120);
    }

    #[test]
    fn a_torn_last_line_is_ignored_not_reported() {
        let whole = "alive: a 10.0.0.1:7946\nclock: 5\n";
        for torn in ["alive: b 10.0.0.2:79", "garb", "clock: 12", "not-alive: a"] {
            let content = format!("{whole}{torn}");
            let r = replay(&content);
            assert!(r.errors.is_empty(), "{torn:?}: {:?}", r.errors);
            assert!(r.torn_tail);
            assert_eq!(r.valid_len, whole.len());
            assert_eq!(r.alive, vec![("a".to_owned(), addr("10.0.0.1:7946"))]);
            assert_eq!(r.last_clock, 5);
        }
    }

    #[test]
    fn a_torn_file_is_compacted_before_anything_is_appended() {
        let content = "alive: a 10.0.0.1:7946\nclock: 5\nalive: b 10.0";
        let r = replay(content);
        let mut snap = Snapshotter::new(SnapshotConfig::default(), &r, content.len() as u64);
        snap.handle_member_event(&event(MemberEventKind::Join, &[("c", "10.0.0.3:1")]));
        assert_eq!(snap.poll_append(), None);
        let all = snap.poll_compact().unwrap();
        assert!(!all.contains("10.0\n") && all.ends_with('\n'));
        let again = replay(&all);
        assert!(again.errors.is_empty() && !again.torn_tail);
        assert_eq!(again.alive.len(), 2);
    }

    #[test]
    fn bad_lines_are_reported_with_their_numbers_and_skipped() {
        let file =
            "alive: a 10.0.0.1:1\nwhat is this\nclock: ten\nalive: b 10.0.0.2:1\n\nclock: 3\n";
        let r = replay(file);
        assert_eq!(r.alive.len(), 2);
        assert_eq!(r.last_clock, 3);
        let lines: Vec<usize> = r
            .errors
            .iter()
            .map(|e| match e {
                Error::Snapshot { line, .. } => *line,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(lines, vec![2, 3]);
    }

    #[test]
    fn go_snapshotter_scenario() {
        // Serf's TestSnapshotter: events, then a restart.
        let mut snap = fresh();
        let mut file = File::default();
        let now = Instant::now();
        snap.handle_event(&Event::User(user(42)));
        snap.handle_event(&Event::Query(query(50)));
        let join = event(MemberEventKind::Join, &[("foo", "127.0.0.1:5000")]);
        let fail = event(MemberEventKind::Failed, &[("foo", "127.0.0.1:5000")]);
        for e in [&join, &fail, &join] {
            snap.handle_member_event(e);
            snap.handle_clocks(now, 101, 0, 0);
        }
        file.drain(&mut snap);
        assert_eq!(
            file.content,
            "event-clock: 42\nquery-clock: 50\nalive: foo 127.0.0.1:5000\nclock: 100\n\
             not-alive: foo\nalive: foo 127.0.0.1:5000\n"
        );
        let r = replay(&file.content);
        assert_eq!(
            (r.last_clock, r.last_event_clock, r.last_query_clock),
            (100, 42, 50)
        );
        assert_eq!(r.alive, vec![("foo".to_owned(), addr("127.0.0.1:5000"))]);
    }

    #[test]
    fn old_event_and_query_times_are_not_written() {
        let mut snap = fresh();
        snap.handle_user_event(&user(5));
        snap.handle_user_event(&user(5));
        snap.handle_user_event(&user(3));
        snap.handle_query(&query(2));
        snap.handle_query(&query(1));
        assert_eq!(
            snap.poll_append().unwrap(),
            "event-clock: 5\nquery-clock: 2\n"
        );
        assert_eq!(snap.poll_append(), None);
    }

    #[test]
    fn clocks_are_written_when_changed_at_most_every_interval() {
        let mut snap = fresh();
        let t0 = Instant::now();
        snap.handle_clocks(t0, 1, 1, 1);
        assert_eq!(
            snap.poll_append(),
            None,
            "clock 1 means nothing was seen yet"
        );
        assert_eq!(snap.poll_timeout(), Some(t0 + CLOCK_UPDATE_INTERVAL));

        snap.handle_clocks(t0 + Duration::from_millis(100), 10, 5, 3);
        assert_eq!(snap.poll_append(), None, "too soon");

        snap.handle_clocks(t0 + CLOCK_UPDATE_INTERVAL, 10, 5, 3);
        assert_eq!(
            snap.poll_append().unwrap(),
            "clock: 9\nevent-clock: 4\nquery-clock: 2\n"
        );
        let t1 = t0 + 2 * CLOCK_UPDATE_INTERVAL;
        snap.handle_clocks(t1, 10, 5, 3);
        assert_eq!(snap.poll_append(), None, "unchanged");

        // A member event makes the clock due at once, as in Serf.
        snap.handle_member_event(&event(MemberEventKind::Update, &[("a", "10.0.0.1:1")]));
        snap.handle_clocks(t1 + Duration::from_millis(1), 12, 5, 3);
        assert_eq!(snap.poll_append().unwrap(), "clock: 11\n");
        snap.handle_clocks(t1 + Duration::from_millis(2), 13, 5, 3);
        assert_eq!(snap.poll_append(), None);
    }

    #[test]
    fn updates_and_reaps_are_not_recorded() {
        let mut snap = fresh();
        snap.handle_member_event(&event(MemberEventKind::Update, &[("a", "10.0.0.1:1")]));
        snap.handle_member_event(&event(MemberEventKind::Reap, &[("a", "10.0.0.1:1")]));
        assert_eq!(snap.poll_append(), None);
        snap.handle_member_event(&event(
            MemberEventKind::Join,
            &[("a", "10.0.0.1:1"), ("b", "10.0.0.2:1")],
        ));
        snap.handle_member_event(&event(MemberEventKind::Leave, &[("a", "10.0.0.1:1")]));
        assert_eq!(
            snap.poll_append().unwrap(),
            "alive: a 10.0.0.1:1\nalive: b 10.0.0.2:1\nnot-alive: a\n"
        );
    }

    #[test]
    fn names_with_newlines_are_never_written() {
        let mut snap = fresh();
        snap.handle_member_event(&event(
            MemberEventKind::Join,
            &[("evil\nleave", "10.0.0.1:1")],
        ));
        snap.handle_member_event(&event(
            MemberEventKind::Failed,
            &[("evil\nleave", "10.0.0.1:1")],
        ));
        assert_eq!(snap.poll_append(), None);
        assert_eq!(snap.alive_nodes().count(), 0);
    }

    #[test]
    fn leave_writes_leave_and_stops_recording_events() {
        let mut snap = fresh();
        let mut file = File::default();
        let now = Instant::now();
        snap.handle_user_event(&user(42));
        snap.handle_query(&query(50));
        snap.handle_member_event(&event(MemberEventKind::Join, &[("foo", "127.0.0.1:5000")]));
        snap.handle_clocks(now, 101, 43, 51);
        snap.handle_leave();
        assert!(snap.is_leaving());
        assert_eq!(snap.alive_nodes().count(), 0);
        snap.handle_member_event(&event(MemberEventKind::Join, &[("bar", "127.0.0.2:5000")]));
        snap.handle_user_event(&user(60));
        snap.handle_query(&query(70));
        snap.handle_clocks(now + CLOCK_UPDATE_INTERVAL, 101, 61, 71);
        file.drain(&mut snap);
        assert!(
            file.content.ends_with("clock: 100\nleave\n"),
            "{}",
            file.content
        );

        // Serf's TestSnapshotter_leave: a restart forgets everything.
        let r = replay(&file.content);
        assert!(r.alive.is_empty() && r.left);
        assert_eq!(
            (r.last_clock, r.last_event_clock, r.last_query_clock),
            (0, 0, 0)
        );

        // The member clock is still written after the leave, like Serf's ticker.
        snap.handle_clocks(now + 2 * CLOCK_UPDATE_INTERVAL, 150, 61, 71);
        file.drain(&mut snap);
        assert!(file.content.ends_with("leave\nclock: 149\n"));
    }

    #[test]
    fn rejoin_after_leave_keeps_the_nodes() {
        let config = SnapshotConfig {
            rejoin_after_leave: true,
            ..SnapshotConfig::default()
        };
        let mut snap = Snapshotter::new(config, &Replay::default(), 0);
        let mut file = File::default();
        snap.handle_user_event(&user(42));
        snap.handle_query(&query(50));
        snap.handle_member_event(&event(MemberEventKind::Join, &[("foo", "127.0.0.1:5000")]));
        snap.handle_clocks(Instant::now(), 101, 0, 0);
        snap.handle_leave();
        assert_eq!(snap.alive_nodes().count(), 1);
        file.drain(&mut snap);
        let r = replay_with(&file.content, true);
        assert_eq!(r.alive, vec![("foo".to_owned(), addr("127.0.0.1:5000"))]);
        assert_eq!(
            (r.last_clock, r.last_event_clock, r.last_query_clock),
            (100, 42, 50)
        );
        assert!(replay(&file.content).alive.is_empty());
    }

    #[test]
    fn compaction_threshold_follows_serf() {
        let mut snap = fresh();
        assert_eq!(snap.max_size(), MIN_COMPACT_SIZE);
        // 600 nodes × 128 B × 2 = 153_600 B > 128 KiB.
        for i in 0..600 {
            let name = format!("node-{i:04}");
            let a = format!("10.0.{}.{}:7946", i / 256, i % 256);
            snap.handle_member_event(&event(MemberEventKind::Join, &[(&name, &a)]));
        }
        assert_eq!(snap.max_size(), 600 * 256);
        let small = Snapshotter::new(
            SnapshotConfig {
                min_compact_size: 1,
                rejoin_after_leave: false,
            },
            &Replay::default(),
            0,
        );
        assert_eq!(small.max_size(), 1);
    }

    #[test]
    fn compaction_rewrites_the_file_from_memory() {
        let config = SnapshotConfig {
            min_compact_size: 1024,
            rejoin_after_leave: false,
        };
        let mut snap = Snapshotter::new(config, &Replay::default(), 0);
        let mut file = File::default();
        snap.handle_member_event(&event(MemberEventKind::Join, &[("b", "10.0.0.2:1")]));
        snap.handle_member_event(&event(MemberEventKind::Join, &[("a", "10.0.0.1:1")]));
        file.drain(&mut snap);
        // Serf's TestSnapshotter_forceCompact: many clock lines overflow a small limit.
        let mut ltime = 0;
        while file.compactions == 0 {
            ltime += 1;
            snap.handle_user_event(&user(ltime));
            snap.handle_query(&query(ltime));
            assert!(snap.offset() <= 1024 || snap.poll_append().is_none());
            file.drain(&mut snap);
        }
        assert_eq!(
            file.content,
            format!(
                "alive: a 10.0.0.1:1\nalive: b 10.0.0.2:1\nclock: 0\nevent-clock: {ltime}\n\
                 query-clock: {ltime}\n"
            )
        );
        assert_eq!(snap.offset(), file.content.len() as u64);
        // The file keeps growing after the compaction.
        snap.handle_user_event(&user(ltime + 1));
        file.drain(&mut snap);
        assert!(file
            .content
            .ends_with(&format!("event-clock: {}\n", ltime + 1)));
        let r = replay(&file.content);
        assert_eq!(r.alive.len(), 2);
        assert_eq!(r.last_event_clock, ltime + 1);
    }

    #[test]
    fn compaction_keeps_a_leave() {
        let mut snap = fresh();
        snap.handle_member_event(&event(MemberEventKind::Join, &[("a", "10.0.0.1:1")]));
        snap.handle_clocks(Instant::now(), 8, 0, 0);
        snap.handle_leave();
        snap.handle_write_failed(Instant::now());
        assert_eq!(
            snap.poll_compact().unwrap(),
            "leave\nclock: 7\nevent-clock: 0\nquery-clock: 0\n"
        );
    }

    #[test]
    fn write_failures_compact_at_most_every_thirty_seconds() {
        let mut snap = fresh();
        let t0 = Instant::now();
        snap.handle_write_failed(t0);
        assert!(snap.poll_compact().is_some());
        snap.handle_write_failed(t0 + Duration::from_secs(10));
        assert!(snap.poll_compact().is_none());
        snap.handle_write_failed(t0 + Duration::from_secs(31));
        assert!(snap.poll_compact().is_some());
    }

    #[test]
    fn a_restarted_snapshotter_continues_the_file() {
        let content = "alive: a 10.0.0.1:1\nclock: 5\nevent-clock: 3\n";
        let r = replay(content);
        let mut snap = Snapshotter::new(SnapshotConfig::default(), &r, content.len() as u64);
        assert_eq!(snap.offset(), content.len() as u64);
        snap.handle_user_event(&user(3));
        snap.handle_clocks(Instant::now(), 6, 0, 0);
        assert_eq!(snap.poll_append(), None, "nothing newer than the file");
        snap.handle_user_event(&user(4));
        assert_eq!(snap.poll_append().unwrap(), "event-clock: 4\n");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Join(u8, u16),
        Gone(u8, bool),
        User(u16),
        Query(u16),
        Clocks(u16, u16, u16, u16),
        Update(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..12, 1u16..).prop_map(|(n, p)| Op::Join(n, p)),
            2 => (0u8..12, any::<bool>()).prop_map(|(n, f)| Op::Gone(n, f)),
            1 => any::<u16>().prop_map(Op::User),
            1 => any::<u16>().prop_map(Op::Query),
            2 => (0u16..1000, any::<u16>(), any::<u16>(), any::<u16>())
                .prop_map(|(ms, c, e, q)| Op::Clocks(ms, c, e, q)),
            1 => (0u8..12).prop_map(Op::Update),
        ]
    }

    fn node_name(n: u8) -> String {
        // Spaces in names must survive.
        if n.is_multiple_of(3) {
            format!("node {n}")
        } else {
            format!("node-{n}")
        }
    }

    fn node_addr(n: u8, port: u16) -> String {
        if n.is_multiple_of(2) {
            format!("10.0.0.{n}:{port}")
        } else {
            format!("[2001:db8::{n}]:{port}")
        }
    }

    fn mutated_file() -> impl Strategy<Value = Vec<u8>> {
        let valid = "alive: a b 10.0.0.1:7946\nnot-alive: a b\nclock: 17\nevent-clock: 4\n\
                     query-clock: 9\nalive: c [::1]:1\ncoordinate: {}\n# hi\nleave\n";
        (
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..8),
            0..=valid.len(),
        )
            .prop_map(move |(edits, cut)| {
                let mut bytes = valid.as_bytes()[..cut].to_vec();
                for (at, byte, how) in edits {
                    if bytes.is_empty() {
                        bytes.push(byte);
                        continue;
                    }
                    let i = at.index(bytes.len());
                    match how {
                        0 => bytes[i] = byte,
                        1 => bytes.insert(i, byte),
                        _ => {
                            bytes.remove(i);
                        }
                    }
                }
                bytes
            })
    }

    proptest! {
        #[test]
        fn replay_never_panics_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            fuzz_replay(&data);
        }

        #[test]
        fn replay_never_panics_on_mutated_files(data in mutated_file()) {
            fuzz_replay(&data);
        }

        #[test]
        fn any_record_round_trips(
            name in "[^\n]{0,20}",
            ip in any::<std::net::IpAddr>(),
            port in any::<u16>(),
            t in any::<u64>(),
        ) {
            let addr = serf_addr(SocketAddr::new(ip, port));
            for record in [
                Record::Alive { name: name.clone(), addr },
                Record::NotAlive { name: name.clone() },
                Record::Clock(t),
                Record::EventClock(t),
                Record::QueryClock(t),
            ] {
                prop_assert_eq!(parse_line(&record.to_line()).unwrap(), Some(record));
            }
        }

        #[test]
        fn replay_agrees_with_direct_tracking(
            ops in proptest::collection::vec(op(), 0..200),
            min_compact in prop_oneof![Just(256u64), Just(1024), Just(MIN_COMPACT_SIZE)],
            torn in "[a-z: 0-9]{0,12}",
        ) {
            let config = SnapshotConfig { min_compact_size: min_compact, rejoin_after_leave: false };
            let mut snap = Snapshotter::new(config, &Replay::default(), 0);
            let mut file = File::default();
            let mut alive = BTreeMap::new();
            let (mut clock, mut event_clock, mut query_clock) = (0u64, 0u64, 0u64);
            let mut now = Instant::now();
            // A member event makes the next clock reading count whatever the interval.
            let mut due = false;
            for op in ops {
                due |= matches!(op, Op::Join(..) | Op::Gone(..) | Op::Update(..));
                match op {
                    Op::Join(n, port) => {
                        let (name, a) = (node_name(n), node_addr(n, port));
                        snap.handle_member_event(&event(MemberEventKind::Join, &[(&name, &a)]));
                        alive.insert(name, addr(&a));
                    }
                    Op::Gone(n, failed) => {
                        let kind = if failed { MemberEventKind::Failed } else { MemberEventKind::Leave };
                        let name = node_name(n);
                        snap.handle_member_event(&event(kind, &[(&name, "10.9.9.9:1")]));
                        alive.remove(&name);
                    }
                    Op::Update(n) => {
                        let name = node_name(n);
                        snap.handle_member_event(&event(MemberEventKind::Update, &[(&name, "10.9.9.9:1")]));
                    }
                    Op::User(t) => {
                        snap.handle_user_event(&user(u64::from(t)));
                        event_clock = event_clock.max(u64::from(t));
                    }
                    Op::Query(t) => {
                        snap.handle_query(&query(u64::from(t)));
                        query_clock = query_clock.max(u64::from(t));
                    }
                    Op::Clocks(ms, c, e, q) => {
                        now += Duration::from_millis(u64::from(ms));
                        let before = snap.poll_timeout();
                        snap.handle_clocks(now, u64::from(c), u64::from(e), u64::from(q));
                        if due || before.is_none_or(|t| now >= t) {
                            due = false;
                            clock = clock.max(u64::from(c).saturating_sub(1));
                            event_clock = event_clock.max(u64::from(e).saturating_sub(1));
                            query_clock = query_clock.max(u64::from(q).saturating_sub(1));
                        }
                    }
                }
                file.drain(&mut snap);
                prop_assert!(file.content.len() as u64 <= snap.max_size());
            }
            let expected: Vec<_> = alive.into_iter().collect();
            let r = replay(&file.content);
            prop_assert!(r.errors.is_empty());
            prop_assert_eq!(&r.alive, &expected);
            prop_assert_eq!(r.last_clock, clock);
            prop_assert_eq!(r.last_event_clock, event_clock);
            prop_assert_eq!(r.last_query_clock, query_clock);
            // A crash mid-line changes nothing.
            let r2 = replay(&format!("{}{torn}", file.content));
            prop_assert_eq!(&r2.alive, &expected);
            prop_assert!(r2.errors.is_empty());
        }
    }
}
