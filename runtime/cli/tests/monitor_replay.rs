//! `monitor` replays the recent log first, as Serf's does: the real `serf monitor` pointed at a
//! real serf agent and at a hearsay agent shows each agent's own join line, logged before the
//! monitor connected and never again. And `members -name '('` (a bad regex): serf drops the
//! client, so its CLI fails without saying why; hearsay answers with the regex error, chosen
//! knowingly. Bounded waits; nothing asserts speed.

mod agent_support;

use agent_support::{free_port, require_serf, start_agent, Serf};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The lines `serf monitor -log-level=info` prints within `within` against `rpc_addr`.
fn monitor_lines(rpc_addr: &str, within: Duration) -> Vec<String> {
    let mut mon = Command::new("serf")
        .args([
            "monitor",
            &format!("-rpc-addr={rpc_addr}"),
            "-log-level=info",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serf monitor");
    let stdout = mon.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => break,
        }
    }
    Command::new("kill")
        .arg(mon.id().to_string())
        .status()
        .unwrap();
    let _ = mon.wait();
    seen
}

#[test]
fn monitor_replays_the_recent_log_like_serf() {
    require_serf();
    let serf = Serf::start_named("s1", "monitor-replay", &[]);
    let rpc = format!("127.0.0.1:{}", free_port());
    let mut h = start_agent(&[
        "-node=h1".to_owned(),
        format!("-bind=127.0.0.1:{}", free_port()),
        format!("-rpc-addr={rpc}"),
        "-profile=local".to_owned(),
    ]);
    h.expect_line("==> Log data will now stream in");
    let serf_rpc = serf.rpc_arg().trim_start_matches("-rpc-addr=").to_owned();
    let theirs = monitor_lines(&serf_rpc, Duration::from_secs(3));
    assert!(
        theirs.iter().any(|l| l.contains("EventMemberJoin: s1")),
        "serf's monitor: {theirs:?}"
    );
    let ours = monitor_lines(&rpc, Duration::from_secs(3));
    assert!(
        ours.iter()
            .any(|l| l.contains("EventMemberJoin") && l.contains("h1")),
        "hearsay's monitor: {ours:?}"
    );

    let bad_regex = |addr: &str| {
        let out = Command::new("timeout")
            .args([
                "30",
                "serf",
                "members",
                &format!("-rpc-addr={addr}"),
                "-name=(",
            ])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, theirs) = bad_regex(&serf_rpc);
    assert!(!ok, "serf: {theirs}");
    let (ok, ours) = bad_regex(&rpc);
    assert!(
        !ok && ours.contains("Failed to compile regex"),
        "hearsay: {ours}"
    );
}
