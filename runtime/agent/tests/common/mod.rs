//! The harness of the interop tests: a real `serf` agent and a `hearsay-serf-node`, each a
//! child process killed however the test ends, with bounded waits on their output.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(30);
pub const KEY: &str = "kZyFABeAmc64UMTrm9XuKA==";
#[allow(dead_code)]
pub const OTHER_KEY: &str = "5K9OtfP7efFrNKe5WCQvXvnaXJ5cWP0SvXiwe0kkjM4=";

pub fn serf_available() -> bool {
    Command::new("serf")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A port free for both TCP and UDP (memberlist binds both).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP");
}

/// A serf agent, killed however the test ends.
pub struct Serf {
    pub child: Child,
    dir: PathBuf,
    pub bind: u16,
    pub rpc: u16,
}

impl Drop for Serf {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Serf {
    /// Runs a `serf` CLI command against this agent; panics unless it succeeds.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("serf")
            .arg(args[0])
            .arg(format!("-rpc-addr=127.0.0.1:{}", self.rpc))
            .args(&args[1..])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "serf {args:?}: {out:?}\n{}",
            self.log()
        );
        text
    }

    /// Runs a `serf` CLI command against this agent: its stdout on success, else everything
    /// it printed.
    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("serf")
            .arg(args[0])
            .arg(format!("-rpc-addr=127.0.0.1:{}", self.rpc))
            .args(&args[1..])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "{}: {stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    pub fn start(tag: &str, extra: &[&str]) -> Self {
        Self::start_named("s1", tag, extra)
    }

    pub fn start_named(name: &str, tag: &str, extra: &[&str]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("hearsay-agent-serf-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (bind, rpc) = (free_port(), free_port());
        let log = std::fs::File::create(dir.join("serf.log")).unwrap();
        let child = Command::new("serf")
            .arg("agent")
            .arg(format!("-node={name}"))
            .arg(format!("-bind=127.0.0.1:{bind}"))
            .arg(format!("-rpc-addr=127.0.0.1:{rpc}"))
            .arg("-log-level=debug")
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let serf = Self {
            child,
            dir,
            bind,
            rpc,
        };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", rpc)).is_err() {
            assert!(
                Instant::now() < deadline,
                "serf never started:\n{}",
                serf.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        serf
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serf.log")).unwrap_or_default()
    }

    pub fn members(&self) -> String {
        let out = Command::new("serf")
            .arg("members")
            .arg(format!("-rpc-addr=127.0.0.1:{}", self.rpc))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `serf members` has a line for `name` containing every one of `words`.
    pub fn wait_member(&self, name: &str, words: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let members = self.members();
            if let Some(line) = members
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name))
            {
                if words.iter().all(|w| line.contains(w)) {
                    return line.to_owned();
                }
            }
            assert!(
                Instant::now() < deadline,
                "serf never listed {name} with {words:?}; members:\n{members}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn join(&self, addr: &str) {
        let out = Command::new("serf")
            .arg("join")
            .arg(format!("-rpc-addr=127.0.0.1:{}", self.rpc))
            .arg(addr)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "serf join {addr}: {out:?}\n{}",
            self.log()
        );
    }

    pub fn leave(&self) {
        let out = Command::new("serf")
            .arg("leave")
            .arg(format!("-rpc-addr=127.0.0.1:{}", self.rpc))
            .output()
            .unwrap();
        assert!(out.status.success(), "serf leave: {out:?}");
    }
}

/// Our node, its stdout as lines and its stderr (the logs) in a file, killed however the test
/// ends.
pub struct Node {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Node {
    pub fn start(args: &[String]) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log =
            std::env::temp_dir().join(format!("hearsay-serf-node-{}-{n}.log", std::process::id()));
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearsay-serf-node"))
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
        let deadline = Instant::now() + WAIT;
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
                    panic!("no line {prefix:?} within {WAIT:?}; saw {:?}", self.seen)
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

    pub fn expect_line(&mut self, prefix: &str) -> String {
        let seen = self.seen.clone();
        self.wait_line(prefix)
            .unwrap_or_else(|| panic!("node exited before {prefix:?}; saw {seen:?}"))
    }

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
