//! What the `hearsay agent` tests share: running the real binary to completion with a bounded
//! wait, a scratch directory per test, free loopback ports, the `hearsay` and real `serf` CLIs,
//! and repeated queries until the expected nodes answer.

#![allow(dead_code, unused_imports)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use hearsay_testkit::process::NodeProcess;
pub use hearsay_testkit::serf::{free_port, require_serf, Serf};

pub const BIN: &str = env!("CARGO_BIN_EXE_hearsay");

/// How a finished run ended.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `hearsay <args>` until it exits (killed after 90 s: a run that hangs fails the test).
pub fn run_to_end(args: &[String]) -> Finished {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    run_bounded(cmd, Duration::from_secs(90))
}

/// Runs `cmd` (stdin closed) until it exits, killed after `bound` (a run that hangs fails the
/// test).
pub fn run_bounded(mut cmd: Command, bound: Duration) -> Finished {
    let dir = scratch("run");
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not exit within {bound:?}; stdout:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let f = Finished {
        success: status.success(),
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    f
}

/// Runs `hearsay agent <args>` expecting it to fail, and returns its one error line.
pub fn agent_error(args: &[&str]) -> String {
    let mut all = vec!["agent".to_owned()];
    all.extend(args.iter().map(|s| s.to_string()));
    let f = run_to_end(&all);
    assert!(!f.success, "{args:?} succeeded; stdout:\n{}", f.stdout);
    let lines: Vec<&str> = f.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: expected one error line, got {:?}; stdout:\n{}",
        f.stderr,
        f.stdout
    );
    assert!(lines[0].starts_with("Error: "), "{}", lines[0]);
    lines[0].to_owned()
}

/// A fresh directory under the system temp dir, unique per test and process.
pub fn scratch(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "hearsay-agent-test-{tag}-{}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `hearsay agent <args>` as a long-running child (stdout lines readable, killed on drop).
pub fn start_agent(args: &[String]) -> NodeProcess {
    let mut all = vec!["agent".to_owned()];
    all.extend(args.iter().cloned());
    NodeProcess::start(BIN, &all)
}

/// Waits (at most 60 s) until a stdout line of `n` from line `from` on satisfies `pred`.
pub fn wait_output(n: &mut NodeProcess, from: usize, what: &str, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if n.seen().iter().skip(from).any(|l| pred(l)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {what}; saw {:?}",
            n.seen()
        );
        n.read_for(Duration::from_millis(200));
    }
}

/// Waits until `n` logs that it saw `peer` join, from its output line `from` on.
pub fn wait_join_seen(n: &mut NodeProcess, peer: &str, from: usize) {
    let needle = format!("peer={peer} ");
    wait_output(n, from, &format!("{peer} joining"), |l| {
        l.contains("EventMemberJoin") && l.contains(&needle)
    });
}

/// `hearsay <args>` to its end; its stdout.
pub fn hearsay(args: &[&str]) -> String {
    let f = run_to_end(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert!(
        f.success,
        "hearsay {args:?} failed: {}{}",
        f.stdout, f.stderr
    );
    f.stdout
}

/// `serf <args>` (the real one) to its end; its stdout.
pub fn serf(args: &[&str]) -> String {
    let out = std::process::Command::new("serf")
        .args(args)
        .output()
        .expect("running serf");
    assert!(
        out.status.success(),
        "serf {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The responders of a `query` output (`Response from 'NODE': TEXT`), with their text.
pub fn responses(out: &str) -> Vec<(String, String)> {
    let mut r: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Response from '"))
        .filter_map(|l| l.split_once("': "))
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect();
    r.sort();
    r
}

/// Waits until `CLI query NAME PAYLOAD` through `rpc` gets a response from each of `nodes`,
/// with `cli` the hearsay or the real serf command: a query sent while the cluster's gossip
/// still settles may miss a node, so the query is repeated, for at most 90 s.
pub fn wait_answers(
    cli: fn(&[&str]) -> String,
    rpc: &str,
    name: &str,
    payload: &str,
    nodes: &[&str],
) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = cli(&[
            "query",
            &format!("-rpc-addr={rpc}"),
            "-timeout=3s",
            name,
            payload,
        ]);
        let got = responses(&out);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        if names == nodes {
            return got;
        }
        assert!(Instant::now() < deadline, "query {name}: {out}");
    }
}
