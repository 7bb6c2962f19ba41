//! The `hearsay` client verbs against a REAL `serf agent`: each verb works as `serf`'s does,
//! and where the output is deterministic it is byte-for-byte what `serf` prints (members in
//! text, detailed and json form). Also: `-rpc-auth` and its errors, and one clear error line
//! with a non-zero exit when no agent listens.
//! Needs `serf` on the PATH; every wait is bounded; nothing asserts on speed.

use hearsay_testkit::serf::{free_port, require_serf, Serf};
use hearsay_testkit::WAIT;
use std::io::BufRead;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "kZyFABeAmc64UMTrm9XuKA==";
const OTHER_KEY: &str = "5K9OtfP7efFrNKe5WCQvXvnaXJ5cWP0SvXiwe0kkjM4=";

fn hearsay_cmd(serf: &Serf, args: &[&str]) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg("60")
        .arg(env!("CARGO_BIN_EXE_hearsay"))
        .arg(args[0])
        .arg(serf.rpc_arg())
        .args(&args[1..])
        .env_remove("HEARSAY_RPC_AUTH")
        .env_remove("SERF_RPC_AUTH");
    cmd
}

fn run(serf: &Serf, args: &[&str]) -> Output {
    hearsay_cmd(serf, args).output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a hearsay verb that must succeed; returns its stdout.
fn hearsay(serf: &Serf, args: &[&str]) -> String {
    let o = run(serf, args);
    assert!(
        o.status.success(),
        "hearsay {args:?} failed:\n{}{}",
        out(&o),
        err(&o)
    );
    out(&o)
}

fn sorted_lines(s: &str) -> Vec<String> {
    // columnize trims the whole table, so only the last line loses the "  " that precedes an
    // empty tags column; which member is last depends on the (random) listing order.
    let mut v: Vec<String> = s
        .lines()
        .map(|l| l.trim_end().trim_end_matches(',').to_owned())
        .collect();
    v.sort();
    v
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn hearsay_verbs_drive_a_real_serf_agent() {
    require_serf();
    let handler = "query:ping=echo pong";
    let enc = format!("-encrypt={KEY}");
    let s1 = Serf::start_named(
        "s1",
        "cvs-s1",
        &[&enc, "-tag=role=web", "-event-handler", handler],
    );
    let s2 = Serf::start_named("s2", "cvs-s2", &[&enc, "-event-handler", handler]);

    // join
    let o = hearsay(&s1, &["join", "-replay", &s2.addr().to_string()]);
    assert_eq!(
        o.trim(),
        "Successfully joined cluster by contacting 1 nodes."
    );
    s1.wait_member("s2", &["alive"]);

    // members: byte-for-byte what serf prints
    for args in [
        vec!["members"],
        vec!["members", "-detailed"],
        vec!["members", "-format=json"],
        vec!["members", "--status=alive", "--name=s.", "-tag", "role=web"],
    ] {
        // serf lists members in its map's (random) order: compare the lines as sets.
        assert_eq!(
            sorted_lines(&hearsay(&s1, &args)),
            sorted_lines(&s1.cli(&args)),
            "{args:?}"
        );
    }

    // event
    let o = hearsay(&s1, &["event", "-coalesce=false", "deploy", "v1"]);
    assert_eq!(
        o.trim(),
        "Event 'deploy' dispatched! Coalescing enabled: false"
    );
    wait_until("the event to reach s2", || {
        s2.cli(&["info"]).contains("event_time = 2")
    });

    // query: acks and the handlers' responses
    let o = hearsay(&s1, &["query", "-timeout=3s", "ping"]);
    assert!(o.starts_with("Query 'ping' dispatched"), "{o}");
    for n in ["s1", "s2"] {
        assert!(o.contains(&format!("Ack from '{n}'")), "{o}");
        assert!(o.contains(&format!("Response from '{n}': pong")), "{o}");
    }
    assert!(
        o.contains("Total Acks: 2") && o.contains("Total Responses: 2"),
        "{o}"
    );
    let o = hearsay(
        &s1,
        &[
            "query",
            "--format=json",
            "--node=s2",
            "--no-ack",
            "ping",
            "x",
        ],
    );
    assert!(
        o.contains("\"Acks\": null") && o.contains("\"s2\": \"pong\\n\""),
        "{o}"
    );

    // tags
    let o = hearsay(&s1, &["tags", "-set", "dc=eu", "-delete", "role"]);
    assert_eq!(o.trim(), "Successfully updated agent tags");
    let line = s1.wait_member("s1", &["dc=eu"]);
    assert!(!line.contains("role="), "{line}");

    // keys
    let o = hearsay(&s1, &["keys", "-install", OTHER_KEY]);
    assert!(o.contains("==> Successfully installed key!"), "{o}");
    let o = hearsay(&s1, &["keys", "-list"]);
    for k in [KEY, OTHER_KEY] {
        let line = o.lines().find(|l| l.starts_with(k)).unwrap_or_default();
        assert!(line.ends_with("[2/2]"), "{o}");
    }
    hearsay(&s1, &["keys", "-use", OTHER_KEY]);
    hearsay(&s1, &["keys", "-remove", KEY]);
    let o = run(&s1, &["keys", "-remove", OTHER_KEY]);
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("Removing the primary key is not allowed")
            && e.contains("Error removing key: 2/2 nodes reported failure"),
        "{e}"
    );

    // info
    let o = hearsay(&s1, &["info"]);
    assert!(
        o.starts_with("agent:\n\tname = s1") && o.contains("\tencrypted = true"),
        "{o}"
    );
    let o = hearsay(&s1, &["info", "-format", "json"]);
    assert!(o.contains("\"agent\": {\n    \"name\": \"s1\"\n  }"), "{o}");

    // rtt, once s1 has s2's coordinate
    wait_until("an rtt estimate", || {
        let o = run(&s1, &["rtt", "s2"]);
        o.status.success() && out(&o).starts_with("Estimated s2 <-> s1 rtt: ")
    });
    let o = run(&s1, &["rtt", "nobody"]);
    assert!(err(&o).contains("Could not find a coordinate for node \"nobody\""));

    // reachability
    let o = hearsay(&s1, &["reachability", "-verbose"]);
    assert!(o.contains("Total members: 2, live members: 2"), "{o}");
    assert!(o.contains("Successfully contacted all live nodes"), "{o}");

    // monitor: log lines arrive; then it is killed by pid
    let mut mon = hearsay_cmd(&s1, &["monitor", "-log-level=debug"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("[DEBUG]") || l.contains("[INFO]"))
    {
        assert!(Instant::now() < deadline, "monitor printed {seen:?}");
        s1.cli(&["event", "tick"]);
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            seen.push(l);
        }
    }
    Command::new("kill")
        .arg(mon.id().to_string())
        .status()
        .unwrap();
    let _ = mon.wait();

    // force-leave: s2 dies, is failed, then forced out
    let mut s2 = s2;
    s2.child.kill().unwrap();
    let _ = s2.child.wait();
    s1.wait_member("s2", &["failed"]);
    hearsay(&s1, &["force-leave", "s2"]);
    s1.wait_member("s2", &["left"]);

    // leave: the agent leaves and exits
    let o = hearsay(&s1, &["leave"]);
    assert_eq!(o.trim(), "Graceful leave complete");
    let mut s1 = s1;
    let deadline = Instant::now() + WAIT;
    while s1.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serf did not exit after leave");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rpc_auth_and_connection_errors() {
    require_serf();
    // serf agent takes its RPC token from a config file only.
    let conf = std::env::temp_dir().join(format!("hearsay-cvs-auth-{}.json", std::process::id()));
    std::fs::write(&conf, r#"{"rpc_auth": "tok"}"#).unwrap();
    let s = Serf::start_named(
        "a1",
        "cvs-auth",
        &[&format!("-config-file={}", conf.display())],
    );
    let _ = std::fs::remove_file(&conf);
    assert!(hearsay(&s, &["members", "-rpc-auth=tok"]).contains("a1"));
    let o = hearsay_cmd(&s, &["members"])
        .env("HEARSAY_RPC_AUTH", "tok")
        .output()
        .unwrap();
    assert!(o.status.success() && out(&o).contains("a1"), "{}", err(&o));
    let o = run(&s, &["members"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("Authentication required"), "{}", err(&o));
    let o = run(&s, &["members", "--rpc-auth=nope"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("Invalid authentication token"),
        "{}",
        err(&o)
    );

    // Nobody listens: one clear line, exit 1.
    let port = free_port();
    let o = Command::new(env!("CARGO_BIN_EXE_hearsay"))
        .args(["members", &format!("-rpc-addr=127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.starts_with(&format!("Error connecting to hearsay agent at 127.0.0.1:{port}: connection refused. Is an agent running?")),
        "{e}"
    );
}
