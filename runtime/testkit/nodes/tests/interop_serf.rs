//! Interop of `hearsay-serf-node` with the real `serf` agent over loopback, at the Serf layer:
//! our tags in `serf members`, user events and queries in both directions (serf's answers come
//! from its event handler), replay of old events on join with `-replay` only, and a graceful
//! leave serf reports as `left`. Needs `serf` on the PATH (`scripts/setup.sh` installs it).
//!
//! Every wait is bounded by a generous deadline; nothing asserts on speed.

mod common;

use common::{require_serf, spawn_node, Serf, KEY, WAIT};
use std::time::{Duration, Instant};

fn node_args(name: &str, serf: &Serf, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        format!("-name={name}"),
        "-bind=127.0.0.1:0".to_owned(),
        format!("-join=127.0.0.1:{}", serf.bind),
        "--tag".to_owned(),
        "role=web".to_owned(),
        "-profile=lan".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Events and queries both ways between one serf agent and one hearsay node, then our leave.
fn events_and_queries_both_ways(tag: &str, key: Option<&str>) {
    require_serf();
    let enc = key.map(|k| format!("-encrypt={k}"));
    let mut serf_args = vec!["-event-handler=query:ping=echo pong"];
    serf_args.extend(enc.as_deref());
    let serf = Serf::start(tag, &serf_args);
    let log = std::env::temp_dir().join(format!(
        "hearsay-serf-node-{tag}-{}.events",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&log);
    let log_arg = format!("-event-log={}", log.display());
    let mut extra = vec![
        "-respond",
        "uptime=h1 up",
        &log_arg,
        "-fire-event=hello=world",
        "-query=ping",
        "-query-ack",
        "-query-timeout=5",
    ];
    extra.extend(enc.as_deref());
    let mut node = spawn_node(&node_args("h1", &serf, &extra));
    let ready = node.expect_line("READY h1 ");
    let addr = ready.split_whitespace().nth(2).unwrap().to_owned();
    node.expect_line("JOINED 1");
    node.expect_seen("EVENT member-join s1");
    let line = serf.wait_member("h1", &[&addr, "alive", "role=web"]);
    eprintln!("serf lists us: {line}");

    // Our query: serf acks it and its handler answers; we ack our own.
    node.expect_line("DONE ping");
    for line in ["ACK s1", "ACK h1", "RESPONSE s1 pong"] {
        node.expect_seen(line);
    }
    // Our event reached serf's handler dispatch.
    wait_until("serf to receive our event", || {
        serf.log().contains("Received event: user-event: hello")
    });

    // serf's event reaches us.
    serf.cli(&["event", "deploy", "v1"]);
    let ev = node.expect_line("EVENT user ");
    assert!(ev.ends_with(" deploy v1"), "{ev}");
    // serf's query: we ack and answer.
    let out = serf.cli(&["query", "-timeout=5s", "uptime"]);
    assert!(out.contains("Ack from 'h1'"), "{out}");
    assert!(out.contains("Response from 'h1': h1 up"), "{out}");
    node.expect_seen("EVENT query ");

    // The event log has one line per event, like the EVENT lines.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"member-join s1"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("user ") && l.ends_with(" deploy v1")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("query ") && l.contains(" uptime")),
        "{text}"
    );
    let _ = std::fs::remove_file(&log);

    // A graceful leave with Serf's intent: serf says "left", not "failed".
    node.signal("TERM");
    node.expect_line("LEFT");
    assert!(
        node.wait_exit(),
        "node exited with an error:\n{}",
        node.log()
    );
    serf.wait_member("h1", &["left"]);
}

#[test]
fn events_and_queries_with_a_plain_serf() {
    events_and_queries_both_ways("events-plain", None);
}

#[test]
fn events_and_queries_with_an_encrypted_serf() {
    events_and_queries_both_ways("events-encrypted", Some(KEY));
}

/// An event fired before we join is delivered with `-replay`, and not without.
#[test]
fn old_events_are_replayed_only_when_asked() {
    require_serf();
    let serf = Serf::start("replay", &[]);
    serf.cli(&["event", "old", "before"]);
    let mut replaying = spawn_node(&node_args("h1", &serf, &["-replay"]));
    replaying.expect_line("JOINED 1");
    let ev = replaying.expect_line("EVENT user ");
    assert!(ev.ends_with(" old before"), "{ev}");

    let mut fresh = spawn_node(&node_args("h2", &serf, &[]));
    fresh.expect_line("JOINED 1");
    serf.wait_member("h2", &["alive"]);
    serf.cli(&["event", "new", "after"]);
    let ev = fresh.expect_line("EVENT user ");
    assert!(ev.ends_with(" new after"), "h2 got {ev} first");
    assert!(
        !fresh.seen().iter().any(|l| l.contains(" old ")),
        "{:?}",
        fresh.seen()
    );
    // The replaying node saw the second one join.
    replaying.expect_seen("EVENT member-join h2");
    for n in [&replaying, &fresh] {
        n.signal("INT");
    }
    for n in [&mut replaying, &mut fresh] {
        n.expect_line("LEFT");
        assert!(n.wait_exit());
    }
}

/// serf leaves; we report it as member-leave.
#[test]
fn serf_leaving_is_a_member_leave() {
    require_serf();
    let serf = Serf::start("serf-leaves", &[]);
    let mut node = spawn_node(&node_args("h1", &serf, &[]));
    node.expect_line("JOINED 1");
    serf.wait_member("h1", &["alive"]);
    serf.leave();
    node.expect_line("EVENT member-leave s1");
    node.signal("USR1");
    let members = node.expect_line("MEMBERS ");
    assert_eq!(members, "MEMBERS h1=alive,s1=left");
}
