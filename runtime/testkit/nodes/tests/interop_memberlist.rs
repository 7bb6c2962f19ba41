//! Interop of `hearsay-memberlist-node` with the real `serf` agent over loopback: our node joins
//! a serf agent (plain and encrypted), each lists the other as alive, our metadata shows up as
//! serf tags, each sees the other's departure, and a wrong key is refused. Needs `serf` on the
//! PATH (`scripts/setup.sh` installs it).
//!
//! Every wait is bounded by a generous deadline; nothing asserts on speed.

use hearsay_testkit::process::NodeProcess;
use hearsay_testkit::serf::{require_serf, Serf};
use hearsay_testkit::WAIT;
use std::time::{Duration, Instant};

const KEY: &str = "kZyFABeAmc64UMTrm9XuKA==";
const OTHER_KEY: &str = "5K9OtfP7efFrNKe5WCQvXvnaXJ5cWP0SvXiwe0kkjM4=";

/// Starts `hearsay-memberlist-node` with `args`.
fn spawn_node(args: &[String]) -> NodeProcess {
    NodeProcess::start(env!("CARGO_BIN_EXE_hearsay-memberlist-node"), args)
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
fn join_see_and_leave(serf: &Serf, mut node: NodeProcess) {
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
    require_serf();
    let serf = Serf::start("plain", &[]);
    join_see_and_leave(&serf, spawn_node(&node_args(&serf, &[])));

    // Serf joins a second node (serf opens the push/pull), which then sees serf leave.
    let mut node = spawn_node(&["-name=h2".to_owned(), "-bind=127.0.0.1:0".to_owned()]);
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
    require_serf();
    let serf = Serf::start("encrypted", &[&format!("-encrypt={KEY}")]);
    join_see_and_leave(
        &serf,
        spawn_node(&node_args(&serf, &[&format!("-encrypt={KEY}")])),
    );

    // The wrong key cannot join: the node reports the failure and exits non-zero.
    let mut wrong = spawn_node(&node_args(
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
    let mut plain = spawn_node(&node_args(&serf, &["-name=h4"]));
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
    require_serf();
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
    let mut h1 = spawn_node(&args("h1"));
    let mut h2 = spawn_node(&args("h2"));
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
    require_serf();
    let serf = Serf::start("wrong-key", &[&format!("-encrypt={KEY}")]);
    let mut node = spawn_node(&node_args(
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
