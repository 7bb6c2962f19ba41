//! The real `serf` agent as a child process: free loopback ports, its output in a log file, its
//! CLI against its RPC address, and bounded waits on `serf members`.

use crate::WAIT;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether `serf version` runs and succeeds.
pub(crate) fn serf_available() -> bool {
    Command::new("serf")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fails the test, with instructions, when the real `serf` is missing: interop tests never skip.
pub fn require_serf() {
    assert!(
        serf_available(),
        "no `serf` on the PATH: run scripts/setup.sh to install it"
    );
}

/// A port free for both TCP and UDP (memberlist binds both), never one this process was
/// given before: the OS may hand the same free port out twice while nothing holds it, and a
/// test that asks for several ports before starting its agents would then collide.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no port free for both TCP and UDP");
}

/// A serf agent in its own directory (its output in `serf.log` there), killed and its directory
/// removed however the test ends.
pub struct Serf {
    /// The `serf agent` process (a test may kill it early to simulate a crash).
    pub child: Child,
    /// The agent's directory, removed on drop: `serf.log`, and files the agent's flags point
    /// into it (a keyring file, a snapshot).
    pub dir: PathBuf,
    /// The memberlist (gossip) port.
    pub bind: u16,
    /// The RPC port the CLI talks to.
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
    /// An agent named `s1` with debug logs; see [`Serf::start_named`].
    pub fn start(tag: &str, extra: &[&str]) -> Self {
        Self::start_named("s1", tag, extra)
    }

    /// An agent named `name` with debug logs and `extra` flags, in a directory named after
    /// `tag` (unique among the agents of one test binary).
    pub fn start_named(name: &str, tag: &str, extra: &[&str]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("hearsay-testkit-serf-{tag}-{}", std::process::id()));
        let mut args = vec!["-log-level=debug".to_owned()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::launch(dir, name, &args, WAIT)
    }

    /// Runs `serf agent -node=<name> -bind=<free port> -rpc-addr=<free port> <args>` with its
    /// output in `dir/serf.log` (`dir` is created if missing) and waits up to `ready_within`
    /// until it is ready: it printed `Serf agent running!` (serf opens its RPC listener after
    /// memberlist has bound, and prints that line after both) and its RPC port answers.
    ///
    /// A free port can be taken by another process between [`free_port`] and serf's bind (a
    /// test running beside this one binds port 0, a CLI's outgoing connection picks it as its
    /// source port). Serf then exits; it is started again on fresh ports, at most three times.
    /// A port answering is not taken as proof: another process may be listening on it.
    pub fn launch(dir: PathBuf, name: &str, args: &[String], ready_within: Duration) -> Self {
        const ATTEMPTS: usize = 3;
        std::fs::create_dir_all(&dir).unwrap();
        for attempt in 1..=ATTEMPTS {
            let (bind, rpc) = (free_port(), free_port());
            let log = std::fs::File::create(dir.join("serf.log")).unwrap();
            let mut child = Command::new("serf")
                .arg("agent")
                .arg(format!("-node={name}"))
                .arg(format!("-bind=127.0.0.1:{bind}"))
                .arg(format!("-rpc-addr=127.0.0.1:{rpc}"))
                .args(args)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start serf agent");
            let read_log = || std::fs::read_to_string(dir.join("serf.log")).unwrap_or_default();
            let deadline = Instant::now() + ready_within;
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let log = read_log();
                    assert!(
                        attempt < ATTEMPTS,
                        "serf exited ({status}) before it was ready, {ATTEMPTS} times:\n{log}"
                    );
                    eprintln!("serf exited ({status}) before it was ready; starting it again on other ports:\n{log}");
                    break;
                }
                if read_log().contains("Serf agent running!")
                    && TcpStream::connect(("127.0.0.1", rpc)).is_ok()
                {
                    return Self {
                        child,
                        dir,
                        bind,
                        rpc,
                    };
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("serf never started:\n{}", read_log());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        unreachable!("every attempt returns, panics or starts another")
    }

    /// The memberlist address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.bind))
    }

    /// The CLI flag that points a `serf` command at this agent.
    pub fn rpc_arg(&self) -> String {
        format!("-rpc-addr=127.0.0.1:{}", self.rpc)
    }

    /// What the agent logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serf.log")).unwrap_or_default()
    }

    /// `serf <args[0]> -rpc-addr=... <args[1..]>` as a command, for the other helpers.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("serf");
        cmd.arg(args[0]).arg(self.rpc_arg()).args(&args[1..]);
        cmd
    }

    /// Runs a `serf` CLI command against this agent to completion, whatever its outcome.
    pub fn cli_output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run serf cli")
    }

    /// Starts a `serf` CLI command against this agent in the background, its output piped.
    pub fn spawn_cli(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run serf cli")
    }

    /// Runs a `serf` CLI command against this agent; panics unless it succeeds.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_output(args);
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
        let out = self.cli_output(args);
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

    /// The stdout of `serf members`, whatever its outcome.
    pub fn members(&self) -> String {
        String::from_utf8_lossy(&self.cli_output(&["members"]).stdout).into_owned()
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

    /// `serf join <addr>`; panics unless it succeeds.
    pub fn join(&self, addr: &str) {
        let out = self.cli_output(&["join", addr]);
        assert!(
            out.status.success(),
            "serf join {addr}: {out:?}\n{}",
            self.log()
        );
    }

    /// `serf leave`; panics unless it succeeds.
    pub fn leave(&self) {
        let out = self.cli_output(&["leave"]);
        assert!(out.status.success(), "serf leave: {out:?}");
    }
}
