//! The snapshot file on disk: replays it at start (clocks to restore, nodes to rejoin) and keeps
//! appending what `hearsay_serf::snapshot::Snapshotter` says, compacting through a temporary
//! file and a rename. The format and the rules live in `hearsay-serf`; this is only the I/O.

use crate::node::Node;
use hearsay_serf::event::Event;
use hearsay_serf::snapshot::{replay_with, Replay, SnapshotConfig, Snapshotter, COMPACT_TMP_EXT};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

/// Why the snapshot file could not be read, written or compacted.
#[derive(Debug, thiserror::Error)]
#[error("snapshot: {doing} {}: {source}", path.display())]
pub struct SnapshotError {
    /// What was being done: `reading`, `opening`, `appending to`, `compacting`.
    doing: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl SnapshotError {
    fn new<'a>(doing: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| Self {
            doing,
            path: path.to_owned(),
            source,
        }
    }
}

type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// An open snapshot file and the state machine that decides what goes into it.
#[derive(Debug)]
pub(crate) struct SnapshotFile {
    path: PathBuf,
    file: File,
    snap: Snapshotter,
}

impl SnapshotFile {
    /// Opens (or creates) the snapshot at `path` and replays it.
    pub(crate) fn open(path: &Path, rejoin_after_leave: bool) -> Result<(Self, Replay)> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(SnapshotError::new("reading", path)(e)),
        };
        let replay = replay_with(&String::from_utf8_lossy(&bytes), rejoin_after_leave);
        for e in &replay.errors {
            warn!(path = %path.display(), error = %e, "snapshot: skipping a bad line");
        }
        let config = SnapshotConfig {
            rejoin_after_leave,
            ..SnapshotConfig::default()
        };
        let snap = Snapshotter::new(config, &replay, bytes.len() as u64);
        let file = open_append(path)?;
        Ok((
            Self {
                path: path.to_owned(),
                file,
                snap,
            },
            replay,
        ))
    }

    /// Records an event Serf delivered.
    pub(crate) fn handle_event(&mut self, event: &Event) -> Result<()> {
        if matches!(event, Event::LeaveComplete) {
            self.snap.handle_leave();
        } else {
            self.snap.handle_event(event);
        }
        self.flush(Instant::now())
    }

    /// Records the Lamport clocks (Serf writes them at most every 500 ms).
    pub(crate) fn handle_clocks(&mut self, clocks: (u64, u64, u64)) -> Result<()> {
        let now = Instant::now();
        self.snap.handle_clocks(now, clocks.0, clocks.1, clocks.2);
        self.flush(now)
    }

    /// Writes what the snapshotter produced: a compaction first (it already holds any pending
    /// lines), then appended lines.
    fn flush(&mut self, now: Instant) -> Result<()> {
        let result = self.write_pending();
        if let Err(e) = &result {
            warn!(path = %self.path.display(), error = %e, "snapshot: write failed; will compact and retry");
            self.snap.handle_write_failed(now);
        }
        result
    }

    fn write_pending(&mut self) -> Result<()> {
        if let Some(content) = self.snap.poll_compact() {
            let mut tmp = self.path.clone().into_os_string();
            tmp.push(COMPACT_TMP_EXT);
            let tmp = PathBuf::from(tmp);
            let io = |e| SnapshotError::new("compacting", &self.path)(e);
            let mut f = File::create(&tmp).map_err(io)?;
            f.write_all(content.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            std::fs::rename(&tmp, &self.path).map_err(io)?;
            self.file = open_append(&self.path)?;
        }
        while let Some(lines) = self.snap.poll_append() {
            self.file
                .write_all(lines.as_bytes())
                .map_err(SnapshotError::new("appending to", &self.path))?;
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(SnapshotError::new("opening", path))
}

/// Restores what `replay` remembers into a freshly started agent: its clocks (so events it had
/// already delivered are not delivered again), then rejoins the nodes it knew, one at a time
/// until one answers (Serf's `handleRejoin`). Returns how many nodes the rejoin reached.
pub(crate) async fn restore(agent: &Node, replay: &Replay) -> crate::node::Result<usize> {
    let (clock, event, query) = (
        replay.last_clock,
        replay.last_event_clock,
        replay.last_query_clock,
    );
    agent
        .handle()
        .call(move |s, _| s.restore_clocks(clock, event, query))
        .await?;
    let me = agent.name().to_owned();
    let mut previous: Vec<_> = replay.alive.iter().filter(|(n, _)| *n != me).collect();
    // Spread the load of many restarting nodes, like Serf's shuffle.
    previous.sort_by_key(|(n, _)| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in n.bytes().chain(me.bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        h
    });
    for (name, addr) in previous {
        info!(node = %me, peer = %name, %addr, "serf: attempting re-join to previously known node");
        // Like Serf's memberlist-level rejoin: events in the peer's push/pull are considered, and
        // the restored event clock is what keeps already-delivered ones out.
        match agent.join(&[*addr], false).await {
            Ok(n) => return Ok(n),
            Err(e) => warn!(node = %me, peer = %name, error = %e, "serf: re-join failed"),
        }
    }
    Ok(0)
}

/// Keeps the snapshot up to date from the agent's events and clocks until the agent stops.
pub(crate) fn spawn(agent: Node, mut file: SnapshotFile) -> tokio::task::JoinHandle<()> {
    let mut events = agent.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        let _ = file.handle_event(&ev);
                    }
                    Err(RecvError::Lagged(n)) => warn!(missed = n, "snapshot: fell behind the event stream"),
                    Err(RecvError::Closed) => break,
                },
                _ = tick.tick() => match agent.clocks().await {
                    Ok(c) => {
                        let _ = file.handle_clocks(c);
                    }
                    Err(_) => break,
                },
            }
        }
    })
}
