//! Interop of `hearsay-serf-node` with the real `serf` agent at the Serf layer, through serf's
//! own CLI: user events delivered exactly once to every node (gossip and anti-entropy keep
//! running), a hearsay event running serf's real shell handler, tags both ways (`serf tags`,
//! and our `-tags-file` re-read on SIGHUP), key rotation over `serf keys` across a mixed
//! encrypted cluster (and failed key commands explained in serf's words), `serf rtt` from the
//! coordinates in our ping acks, and `serf reachability`.
//! Needs `serf` on the PATH (`scripts/setup.sh` installs it); fails loudly without it.
//!
//! Every wait is bounded by a generous deadline; nothing asserts on speed.

mod common;

use common::{require_serf, spawn_node, NodeProcess, Serf, WAIT};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long the cluster keeps running (gossip, push/pull, probes) before we check that
/// nothing was delivered twice or failed.
const SETTLE: Duration = Duration::from_secs(10);

/// A scratch directory for one test, removed however it ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("hearsay-serf-layer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts a hearsay node named `name` joining `serf`, and waits for its join.
fn start_node(name: &str, serf: &Serf, extra: &[String]) -> NodeProcess {
    let mut args = vec![
        format!("-name={name}"),
        "-bind=127.0.0.1:0".to_owned(),
        format!("-join=127.0.0.1:{}", serf.bind),
    ];
    args.extend(extra.iter().cloned());
    let mut node = spawn_node(&args);
    node.expect_line(&format!("READY {name} "));
    let joined = node.expect_line("JOINED ");
    assert_eq!(joined, "JOINED 1", "{name}:\n{}", node.log());
    node
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for a stdout line starting with `prefix` and containing `needle`.
fn expect_line_with(node: &mut NodeProcess, prefix: &str, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    if let Some(line) = node
        .seen()
        .iter()
        .find(|l| l.starts_with(prefix) && l.contains(needle))
    {
        return line.clone();
    }
    loop {
        let line = node.expect_line(prefix);
        if line.contains(needle) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no line {prefix:?} with {needle:?}; saw {:?}",
            node.seen()
        );
    }
}

/// How many lines of an event log record the user event `name` with `payload`.
fn count_user_events(log: &Path, name: &str, payload: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() == 4 && f[0] == "user" && f[2] == name && f[3] == payload
        })
        .count()
}

/// A key from `serf keygen`.
fn keygen() -> String {
    let out = Command::new("serf").arg("keygen").output().unwrap();
    assert!(out.status.success(), "serf keygen: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Waits until every named member is alive in `serf members`.
fn wait_all_alive(serf: &Serf, names: &[&str]) {
    for name in names {
        serf.wait_member(name, &["alive"]);
    }
}

/// How long the exactly-once test lets the cluster run after delivery: longer than the
/// `local` profile's push/pull interval (15 s), so every node has exchanged state (events
/// included) with a peer at least once meanwhile.
const SETTLE_PUSH_PULL: Duration = Duration::from_secs(16);

/// Three events fired with `serf event` reach each of three hearsay nodes exactly once, and
/// stay delivered once while gossip and push/pull (which carries recent events) keep running;
/// a fourth node joining later with `-replay` gets each of them once too.
#[test]
fn serf_events_reach_every_node_exactly_once() {
    require_serf();
    let dir = TempDir::new("once");
    let serf = Serf::start("layer-once", &["-profile=local"]);
    let names = ["h1", "h2", "h3", "h4"];
    let logs: Vec<PathBuf> = names
        .iter()
        .map(|n| dir.path(&format!("{n}.events")))
        .collect();
    let args = |log: &Path| {
        vec![
            "-profile=local".to_owned(),
            format!("-event-log={}", log.display()),
        ]
    };
    let mut nodes: Vec<NodeProcess> = names[..3]
        .iter()
        .zip(&logs)
        .map(|(n, log)| start_node(n, &serf, &args(log)))
        .collect();
    wait_all_alive(&serf, &names[..3]);

    let events = [("e1", "p1"), ("e2", "p2"), ("e3", "p3")];
    for (name, payload) in events {
        serf.cli(&["event", name, payload]);
    }
    let wait_delivered = |node: &str, log: &Path| {
        for (name, payload) in events {
            wait_until(&format!("{node} to log {name}"), || {
                count_user_events(log, name, payload) > 0
            });
        }
    };
    for (node, log) in names[..3].iter().zip(&logs) {
        wait_delivered(node, log);
    }
    let mut late_args = args(&logs[3]);
    late_args.push("-replay".to_owned());
    nodes.push(start_node(names[3], &serf, &late_args));
    wait_delivered(names[3], &logs[3]);

    std::thread::sleep(SETTLE_PUSH_PULL);
    for (node, log) in names.iter().zip(&logs) {
        let text = std::fs::read_to_string(log).unwrap();
        for (name, payload) in events {
            assert_eq!(
                count_user_events(log, name, payload),
                1,
                "{node} logged {name} other than once:\n{text}"
            );
        }
    }
    // All five alive everywhere (the late node may still be spreading by gossip: bounded wait).
    let want = "MEMBERS h1=alive,h2=alive,h3=alive,h4=alive,s1=alive";
    for n in &mut nodes {
        let deadline = Instant::now() + WAIT;
        loop {
            n.signal("USR1");
            let got = n.expect_line("MEMBERS ");
            if got == want {
                break;
            }
            assert!(Instant::now() < deadline, "still {got:?}, want {want:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// An event our node fires runs serf's shell handler, which gets the payload on stdin.
#[test]
fn our_event_runs_a_serf_shell_handler() {
    require_serf();
    let dir = TempDir::new("handler");
    let out = dir.path("deploys");
    let handler = format!("-event-handler=user:deploy=cat >> {}", out.display());
    let serf = Serf::start("layer-handler", &[&handler]);
    let _node = start_node("h1", &serf, &["-fire-event=deploy=v42".to_owned()]);
    wait_until("serf's handler to write the payload", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.contains("v42"))
    });
    // Serf hands the handler the payload with a newline appended.
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "v42\n");
}

/// `serf tags` on the agent shows in our member-update events; our `-tags-file`, rewritten and
/// re-read on SIGHUP, shows in `serf members` and in the other hearsay node's events.
#[test]
fn tags_both_ways() {
    require_serf();
    let dir = TempDir::new("tags");
    let serf = Serf::start("layer-tags", &[]);
    let tags_file = dir.path("tags.json");
    std::fs::write(&tags_file, "{\"role\":\"web\"}").unwrap();
    let mut h1 = start_node(
        "h1",
        &serf,
        &[format!("-tags-file={}", tags_file.display())],
    );
    let mut h2 = start_node("h2", &serf, &[]);
    serf.wait_member("h1", &["alive", "role=web"]);
    serf.wait_member("h2", &["alive"]);

    // serf → us.
    serf.cli(&["tags", "-set", "role=db", "-set", "dc=east"]);
    for node in [&mut h1, &mut h2] {
        let line = expect_line_with(node, "EVENT member-update", "s1 ");
        let tags = line
            .split_whitespace()
            .skip_while(|w| *w != "s1")
            .nth(1)
            .unwrap_or_else(|| panic!("no tags in {line:?}"));
        assert_eq!(tags, "dc=east,role=db", "{line}");
    }
    serf.cli(&["tags", "-delete", "dc"]);
    for node in [&mut h1, &mut h2] {
        expect_line_with(node, "EVENT member-update", "s1 role=db");
    }

    // Us → serf, through the tags file.
    std::fs::write(&tags_file, "{\n  \"dc\": \"west\",\n  \"role\": \"api\"\n}").unwrap();
    h1.signal("HUP");
    assert_eq!(h1.expect_line("TAGS "), "TAGS dc=west,role=api");
    serf.wait_member("h1", &["alive", "dc=west", "role=api"]);
    expect_line_with(&mut h2, "EVENT member-update", "h1 dc=west,role=api");

    // A broken file is reported and changes nothing; an empty object removes our tags.
    std::fs::write(&tags_file, "{\"role\":").unwrap();
    h1.signal("HUP");
    wait_until("h1 to report the broken tags file", || {
        h1.log().contains("reloading -tags-file")
    });
    std::fs::write(&tags_file, "{}").unwrap();
    h1.signal("HUP");
    assert_eq!(h1.expect_line("TAGS"), "TAGS ");
    wait_until("serf to see h1's tags removed", || {
        let line = serf.wait_member("h1", &["alive"]);
        !line.contains("role=") && !line.contains("dc=")
    });
}

/// `serf keys` installs, switches to and removes keys on every node of a mixed encrypted
/// cluster; afterwards the cluster still talks (only with the new key) and nobody fails.
#[test]
fn key_rotation_across_a_mixed_cluster() {
    require_serf();
    let (k1, k2) = (keygen(), keygen());
    assert_ne!(k1, k2);
    let enc = format!("-encrypt={k1}");
    let serf = Serf::start("layer-keys", &[&enc]);
    let names = ["h1", "h2"];
    let mut nodes: Vec<NodeProcess> = names
        .iter()
        .map(|n| start_node(n, &serf, std::slice::from_ref(&enc)))
        .collect();
    wait_all_alive(&serf, &["s1", "h1", "h2"]);
    // Each of our nodes knows the other two (its own join is no event).
    for (me, n) in names.iter().zip(&mut nodes) {
        for other in ["s1", "h1", "h2"].iter().filter(|o| *o != me) {
            expect_line_with(n, "EVENT member-join", other);
        }
    }

    for (args, done) in [
        (["keys", "-install", &k2], "Successfully installed key!"),
        (["keys", "-use", &k2], "Successfully changed primary key!"),
        (["keys", "-remove", &k1], "Successfully removed key!"),
    ] {
        let out = serf.cli(&args);
        assert!(out.contains(done), "serf {args:?}:\n{out}");
        assert!(!out.contains("failed"), "serf {args:?}:\n{out}");
    }
    let out = serf.cli(&["keys", "-list"]);
    let listed: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("==>") && !l.trim().is_empty())
        .collect();
    assert_eq!(listed.len(), 1, "serf keys -list:\n{out}");
    let fields: Vec<&str> = listed[0].split_whitespace().collect();
    assert_eq!(fields, [k2.as_str(), "[3/3]"], "serf keys -list:\n{out}");

    // Probes, gossip and push/pull keep working with the new key only.
    std::thread::sleep(SETTLE);
    let members = serf.members();
    for name in ["s1", "h1", "h2"] {
        let line = members
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("serf lost {name}:\n{members}"));
        assert!(line.contains("alive"), "{name} not alive:\n{members}");
    }
    // Queries too: serf's `_serf_ping` gets an ack from each node.
    let out = serf.cli(&["reachability"]);
    assert!(
        out.contains("Successfully contacted all live nodes"),
        "{out}"
    );
    serf.cli(&["event", "rotated", "k2"]);
    for n in &mut nodes {
        let ev = n.expect_line("EVENT user ");
        assert!(ev.ends_with(" rotated k2"), "{ev}");
        n.signal("USR1");
        let view = n.expect_line("MEMBERS ");
        assert_eq!(view, "MEMBERS h1=alive,h2=alive,s1=alive");
        let bad: Vec<&String> = n
            .seen()
            .iter()
            .filter(|l| l.starts_with("EVENT member-failed") || l.starts_with("EVENT member-leave"))
            .collect();
        assert!(bad.is_empty(), "{bad:?}\n{}", n.log());
    }
}

/// The per-node failures a failed `serf keys` prints (`failed:  node  message`).
fn key_failures(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.trim_start().strip_prefix("failed:"))
        .map(|rest| {
            let rest = rest.trim();
            let (node, msg) = rest.split_once(' ').unwrap_or((rest, ""));
            (node.to_owned(), msg.trim().to_owned())
        })
        .collect()
}

/// Runs a `serf keys` command that must fail on every node, and checks that our nodes
/// report it in the same words as serf (the CLI shows each node's message).
fn expect_key_failure(serf: &Serf, args: &[&str], names: &[&str]) {
    let out = match serf.try_cli(args) {
        Ok(out) => panic!("serf {args:?} succeeded:\n{out}"),
        Err(out) => out,
    };
    let failures = key_failures(&out);
    let nodes: Vec<&str> = failures.keys().map(String::as_str).collect();
    assert_eq!(nodes, names, "serf {args:?}:\n{out}");
    let theirs = &failures["s1"];
    assert!(!theirs.is_empty(), "serf {args:?}:\n{out}");
    for (node, msg) in &failures {
        assert_eq!(msg, theirs, "{node}'s message differs from serf's:\n{out}");
    }
}

/// `serf keys` commands that cannot succeed (removing the primary key, using a key nobody
/// has, installing a key of a bad size; any change, or a listing, without encryption) fail on
/// every node, and our nodes explain why in serf's words.
#[test]
fn failed_key_commands_are_reported_like_serf() {
    require_serf();
    let (k1, unknown) = (keygen(), keygen());
    let enc = format!("-encrypt={k1}");
    let serf = Serf::start("layer-keys-fail", &[&enc]);
    let _nodes: Vec<NodeProcess> = ["h1", "h2"]
        .iter()
        .map(|n| start_node(n, &serf, std::slice::from_ref(&enc)))
        .collect();
    wait_all_alive(&serf, &["s1", "h1", "h2"]);
    let all = ["h1", "h2", "s1"];
    expect_key_failure(&serf, &["keys", "-remove", &k1], &all);
    expect_key_failure(&serf, &["keys", "-use", &unknown], &all);
    // 10 bytes: not an AES key size.
    expect_key_failure(&serf, &["keys", "-install", "AAECAwQFBgcICQ=="], &all);
    // Nothing changed.
    let out = serf.cli(&["keys", "-list"]);
    assert!(out.contains(&format!("{k1}  [3/3]")), "{out}");
    drop(serf);

    let serf = Serf::start("layer-keys-plain", &[]);
    let _h1 = start_node("h1", &serf, &[]);
    wait_all_alive(&serf, &["s1", "h1"]);
    expect_key_failure(&serf, &["keys", "-install", &k1], &["h1", "s1"]);
    expect_key_failure(&serf, &["keys", "-list"], &["h1", "s1"]);
}

/// Parses `Estimated a <-> b rtt: 0.123 ms`.
fn parse_rtt_ms(out: &str) -> f64 {
    let ms = out
        .trim()
        .strip_suffix(" ms")
        .and_then(|s| s.rsplit(' ').next())
        .unwrap_or_else(|| panic!("unexpected rtt output {out:?}"));
    ms.parse()
        .unwrap_or_else(|e| panic!("rtt {ms:?} in {out:?}: {e}"))
}

/// Waits until `serf rtt a b` succeeds (serf has both coordinates) and returns its estimate.
fn wait_rtt(serf: &Serf, a: &str, b: &str) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        match serf.try_cli(&["rtt", a, b]) {
            Ok(out) => {
                assert!(
                    out.contains(&format!("Estimated {a} <-> {b} rtt: ")),
                    "{out}"
                );
                return parse_rtt_ms(&out);
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "serf rtt {a} {b} never succeeded: {e}\n{}",
                serf.log()
            ),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// serf learns our coordinates from our ping acks: `serf rtt` works between us and serf and
/// between two of us, with plausible values.
#[test]
fn serf_rtt_to_and_between_hearsay_nodes() {
    require_serf();
    let serf = Serf::start("layer-rtt", &[]);
    let _h1 = start_node("h1", &serf, &[]);
    let _h2 = start_node("h2", &serf, &[]);
    wait_all_alive(&serf, &["h1", "h2"]);
    for (a, b) in [("h1", "s1"), ("h1", "h2")] {
        let rtt = wait_rtt(&serf, a, b);
        eprintln!("serf rtt {a} {b}: {rtt} ms");
        assert!(rtt > 0.0 && rtt < 1000.0, "rtt {a} {b} = {rtt} ms");
    }
}

/// `serf reachability` gets an ack from each of our nodes for its `_serf_ping` query.
#[test]
fn serf_reachability_contacts_hearsay_nodes() {
    require_serf();
    let serf = Serf::start("layer-reach", &[]);
    let mut h1 = start_node("h1", &serf, &[]);
    let mut h2 = start_node("h2", &serf, &[]);
    wait_all_alive(&serf, &["h1", "h2"]);
    h1.expect_seen("EVENT member-join h2");
    expect_line_with(&mut h2, "EVENT member-join", "h1");

    let out = serf.cli(&["reachability", "-verbose"]);
    assert!(out.contains("Total members: 3, live members: 3"), "{out}");
    for name in ["s1", "h1", "h2"] {
        assert_eq!(
            out.matches(&format!("Ack from '{name}'")).count(),
            1,
            "one ack from {name}:\n{out}"
        );
    }
    assert!(
        out.contains("Successfully contacted all live nodes"),
        "{out}"
    );
    assert!(!out.contains("Missing"), "{out}");
    assert!(!out.contains("Duplicate"), "{out}");
}
