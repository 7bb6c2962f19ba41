//! One of our node binaries as a child process: its stdout read as lines (each kept in
//! [`NodeProcess::seen`]), its stderr (the logs) in a file, bounded waits for lines and for its
//! exit, signals, and `kill -9`.

use crate::WAIT;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A node process, killed and its log file removed however the test ends; when the test
/// failed, the last lines it printed and logged go to stderr first, so a failure in CI shows
/// what the node was doing.
pub struct NodeProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    log: PathBuf,
}

/// How many lines of each stream a failed test shows per node.
const TAIL: usize = 60;

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.seen.extend(self.lines.try_iter());
            let tail = |lines: &[&str]| lines[lines.len().saturating_sub(TAIL)..].join("\n");
            let seen: Vec<&str> = self.seen.iter().map(String::as_str).collect();
            let log = self.log();
            eprintln!(
                "--- {} (pid {}): last stdout lines ---\n{}\n--- last log lines ---\n{}",
                self.log.display(),
                self.child.id(),
                tail(&seen),
                tail(&log.lines().collect::<Vec<_>>()),
            );
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

impl NodeProcess {
    /// Runs `bin` (e.g. `env!("CARGO_BIN_EXE_hearsay-serf-node")`) with `args` and
    /// `RUST_LOG=info`.
    pub fn start(bin: &str, args: &[String]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let stem = Path::new(bin)
            .file_stem()
            .map_or_else(|| "node".into(), |s| s.to_string_lossy());
        let log = std::env::temp_dir().join(format!("{stem}-{}-{n}.log", std::process::id()));
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
            log,
        }
    }

    /// Like `expect_line`, but also accepts a matching line that was already read while
    /// waiting for another (for events whose order is not fixed).
    pub fn expect_seen(&mut self, prefix: &str) -> String {
        match self.seen.iter().find(|l| l.starts_with(prefix)) {
            Some(line) => line.clone(),
            None => self.expect_line(prefix),
        }
    }

    /// Every stdout line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// What the node logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`: no leave, no goodbye.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }

    /// Waits for a stdout line starting with `prefix`; `None` when the process ended first.
    pub fn wait_line(&mut self, prefix: &str) -> Option<String> {
        self.wait_line_within(prefix, WAIT)
    }

    /// Like [`NodeProcess::wait_line`], bounded by `bound` instead of the common bound (for a
    /// start that compiles large handler components in a debug build).
    pub fn wait_line_within(&mut self, prefix: &str, bound: Duration) -> Option<String> {
        let deadline = Instant::now() + bound;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return Some(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no line {prefix:?} within {bound:?}; saw {:?}", self.seen)
                }
            }
        }
    }

    /// Reads stdout lines for `period` (they also go to `seen`) and returns them; stops early
    /// if the process ends.
    pub fn read_for(&mut self, period: Duration) -> Vec<String> {
        let deadline = Instant::now() + period;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    got.push(line);
                }
                Err(_) => return got,
            }
        }
    }

    /// Waits for a stdout line starting with `prefix`; panics if the process ends first.
    pub fn expect_line(&mut self, prefix: &str) -> String {
        match self.wait_line(prefix) {
            Some(line) => line,
            None => panic!(
                "node exited before {prefix:?}; saw {:?}\nits log:\n{}",
                self.seen,
                self.log()
            ),
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `USR1`, `HUP`...) with `kill`.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit; returns whether it succeeded.
    pub fn wait_exit(&mut self) -> bool {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "node did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
