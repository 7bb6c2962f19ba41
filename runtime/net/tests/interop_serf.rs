//! Interop of `hearsay-memberlist-node` with the real `serf` agent over loopback: our node joins
//! a serf agent (plain and encrypted), each lists the other as alive, our metadata shows up as
//! serf tags, each sees the other's departure, and a wrong key is refused. Needs `serf` on the
//! PATH (`scripts/setup.sh` installs it).
//!
//! Every wait is bounded by a generous deadline; nothing asserts on speed.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
const KEY: &str = "kZyFABeAmc64UMTrm9XuKA==";
const OTHER_KEY: &str = "5K9OtfP7efFrNKe5WCQvXvnaXJ5cWP0SvXiwe0kkjM4=";

fn serf_available() -> bool {
    Command::new("serf")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A port free for both TCP and UDP (memberlist binds both).
fn free_port() -> u16 {
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
struct Serf {
    child: Child,
    dir: PathBuf,
    bind: u16,
    rpc: u16,
}

impl Drop for Serf {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Serf {
    fn start(tag: &str, extra: &[&str]) -> Self {
        Self::start_named("s1", tag, extra)
    }

    fn start_named(name: &str, tag: &str, extra: &[&str]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("hearsay-net-serf-{tag}-{}", std::process::id()));
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

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serf.log")).unwrap_or_default()
    }

    fn members(&self) -> String {
        let out = Command::new("serf")
            .arg("members")
            .arg(format!("-rpc-addr=127.0.0.1:{}", self.rpc))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `serf members` has a line for `name` containing every one of `words`.
    fn wait_member(&self, name: &str, words: &[&str]) -> String {
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

    fn join(&self, addr: &str) {
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

    fn leave(&self) {
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
struct Node {
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
    fn start(args: &[String]) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = std::env::temp_dir().join(format!("hearsay-node-{}-{n}.log", std::process::id()));
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearsay-memberlist-node"))
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
    fn expect_seen(&mut self, prefix: &str) -> String {
        match self.seen.iter().find(|l| l.starts_with(prefix)) {
            Some(line) => line.clone(),
            None => self.expect_line(prefix),
        }
    }

    /// What the node logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`: no leave, no goodbye.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }

    /// Waits for a stdout line starting with `prefix`; `None` when the process ended first.
    fn wait_line(&mut self, prefix: &str) -> Option<String> {
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

    fn expect_line(&mut self, prefix: &str) -> String {
        let seen = self.seen.clone();
        self.wait_line(prefix)
            .unwrap_or_else(|| panic!("node exited before {prefix:?}; saw {seen:?}"))
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit; returns whether it succeeded.
    fn wait_exit(&mut self) -> bool {
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

fn node_args(serf: &Serf, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "-name=h1".to_owned(),
        "-bind=127.0.0.1:0".to_owned(),
        format!("-join=127.0.0.1:{}", serf.bind),
        "--tag".to_owned(),
        "role=web".to_owned(),
        "-profile=lan".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Join, see each other, our tags in serf, our graceful exit, and serf's leave.
fn join_see_and_leave(serf: &Serf, mut node: Node) {
    let ready = node.expect_line("READY h1 ");
    let addr = ready.split_whitespace().nth(2).unwrap().to_owned();
    node.expect_line("JOINED 1");
    node.expect_line("EVENT member-join s1 ");
    let line = serf.wait_member("h1", &[&addr, "alive", "role=web"]);
    eprintln!("serf lists us: {line}");

    node.signal("USR1");
    let members = node.expect_line("MEMBERS ");
    assert_eq!(members, "MEMBERS h1=alive,s1=alive");

    // Serf marks a node that left without Serf's leave intent as failed; either shows the
    // departure was noticed.
    node.signal("TERM");
    node.expect_line("LEFT");
    assert!(node.wait_exit(), "node exited with an error");
    let deadline = Instant::now() + WAIT;
    loop {
        let members = serf.members();
        let line = members.lines().find(|l| l.starts_with("h1 ")).unwrap_or("");
        if line.contains("failed") || line.contains("left") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serf never saw h1 go: {members}\n{}",
            serf.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn joins_a_plain_serf_cluster() {
    assert!(
        serf_available(),
        "no `serf` on the PATH: run scripts/setup.sh to install it"
    );
    let serf = Serf::start("plain", &[]);
    join_see_and_leave(&serf, Node::start(&node_args(&serf, &[])));

    // Serf joins a second node (serf opens the push/pull), which then sees serf leave.
    let mut node = Node::start(&["-name=h2".to_owned(), "-bind=127.0.0.1:0".to_owned()]);
    let ready = node.expect_line("READY h2 ");
    let addr = ready.split_whitespace().nth(2).unwrap().to_owned();
    serf.join(&addr);
    node.expect_line("EVENT member-join s1 ");
    serf.wait_member("h2", &[&addr, "alive"]);
    serf.leave();
    node.expect_line("EVENT member-leave s1 ");
    node.signal("INT");
    node.expect_line("LEFT");
    assert!(node.wait_exit());
}

#[test]
fn joins_an_encrypted_serf_cluster() {
    assert!(
        serf_available(),
        "no `serf` on the PATH: run scripts/setup.sh to install it"
    );
    let serf = Serf::start("encrypted", &[&format!("-encrypt={KEY}")]);
    join_see_and_leave(
        &serf,
        Node::start(&node_args(&serf, &[&format!("-encrypt={KEY}")])),
    );

    // The wrong key cannot join: the node reports the failure and exits non-zero.
    let mut wrong = Node::start(&node_args(
        &serf,
        &["-name=h3", &format!("-encrypt={OTHER_KEY}")],
    ));
    wrong.expect_line("READY h3 ");
    assert!(
        wrong.wait_line("JOINED").is_none(),
        "joined with the wrong key"
    );
    assert!(!wrong.wait_exit(), "a failed join must exit non-zero");
    // And no key at all cannot join either.
    let mut plain = Node::start(&node_args(&serf, &["-name=h4"]));
    assert!(
        plain.wait_line("JOINED").is_none(),
        "joined without the key"
    );
    assert!(!plain.wait_exit());
}

/// Two serf agents and two hearsay nodes in one cluster: everyone lists everyone; `kill -9` of
/// a serf agent makes the hearsay nodes mark it failed; `kill -9` of a hearsay node makes serf
/// mark it failed (not left).
fn mixed_cluster_crashes(tag: &str, key: Option<&str>) {
    assert!(
        serf_available(),
        "no `serf` on the PATH: run scripts/setup.sh to install it"
    );
    let enc = key.map(|k| format!("-encrypt={k}"));
    let extra: Vec<&str> = enc.iter().map(String::as_str).collect();
    let s1 = Serf::start_named("s1", &format!("{tag}-1"), &extra);
    let mut s2 = Serf::start_named("s2", &format!("{tag}-2"), &extra);
    s1.join(&format!("127.0.0.1:{}", s2.bind));
    let args = |name: &str| {
        let mut a = vec![
            format!("-name={name}"),
            "-bind=127.0.0.1:0".to_owned(),
            format!("-join=127.0.0.1:{}", s1.bind),
            format!("-tag=kind=hearsay,name={name}"),
        ];
        a.extend(enc.clone());
        a
    };
    let mut h1 = Node::start(&args("h1"));
    let mut h2 = Node::start(&args("h2"));
    h1.expect_line("JOINED 1");
    h2.expect_line("JOINED 1");
    for h in ["h1", "h2"] {
        for serf in [&s1, &s2] {
            serf.wait_member(h, &["alive", "kind=hearsay", &format!("name={h}")]);
        }
    }
    for node in [&mut h1, &mut h2] {
        for peer in ["s1 ", "s2 "] {
            let line = node.expect_seen(&format!("EVENT member-join {peer}"));
            eprintln!("{line}");
        }
    }

    // kill -9 of a serf agent: both hearsay nodes declare it failed.
    s2.child.kill().unwrap();
    let _ = s2.child.wait();
    h1.expect_line("EVENT member-failed s2 ");
    h2.expect_line("EVENT member-failed s2 ");

    // kill -9 of a hearsay node: serf marks it failed, and so does the other hearsay node.
    h2.kill9();
    let line = s1.wait_member("h2", &["failed"]);
    eprintln!("serf after kill -9 of h2: {line}");
    h1.expect_line("EVENT member-failed h2 ");
    s1.wait_member("h1", &["alive"]);
}

#[test]
fn mixed_plain_cluster_detects_crashes_both_ways() {
    mixed_cluster_crashes("mixed-plain", None);
}

#[test]
fn mixed_encrypted_cluster_detects_crashes_both_ways() {
    mixed_cluster_crashes("mixed-encrypted", Some(KEY));
}

/// A hearsay node with the wrong key is kept out, and both sides say why in their logs.
#[test]
fn wrong_key_is_kept_out_and_both_sides_log_why() {
    assert!(
        serf_available(),
        "no `serf` on the PATH: run scripts/setup.sh to install it"
    );
    let serf = Serf::start("wrong-key", &[&format!("-encrypt={KEY}")]);
    let mut node = Node::start(&node_args(
        &serf,
        &["-name=intruder", &format!("-encrypt={OTHER_KEY}")],
    ));
    assert!(
        node.wait_line("JOINED").is_none(),
        "joined with the wrong key"
    );
    assert!(!node.wait_exit(), "a failed join must exit non-zero");
    let ours = node.log();
    assert!(
        ours.contains("could decrypt") && ours.contains(&serf.bind.to_string()),
        "our log does not say the reply could not be decrypted by our key:\n{ours}"
    );
    let theirs = serf.log();
    assert!(
        theirs.contains("No installed keys could decrypt the message"),
        "serf's log does not say why it refused us:\n{theirs}"
    );
    assert!(
        !serf.members().contains("intruder"),
        "serf let the intruder in"
    );
}
