//! A hearsay node with a snapshot file, killed with `kill -9` and restarted without `-join`,
//! rejoins the real serf cluster by itself and does not deliver again an event it had already
//! delivered, while an event fired during its downtime still arrives. Needs `serf` on the PATH.

mod common;

use common::{require_serf, spawn_node, NodeProcess, Serf};

fn user_lines<'a>(node: &'a NodeProcess, event: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    node.seen()
        .iter()
        .filter(move |l| l.starts_with("EVENT user ") && l.ends_with(event))
}

#[test]
fn restarted_node_rejoins_from_its_snapshot_without_redelivering() {
    require_serf();
    let serf = Serf::start("snapshot", &[]);
    let dir = std::env::temp_dir().join(format!("hearsay-snapshot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let snap = dir.join("h1.snapshot");
    let _ = std::fs::remove_file(&snap);
    let snap_arg = format!("-snapshot={}", snap.display());

    let mut first = spawn_node(&[
        "-name=h1".to_owned(),
        "-bind=127.0.0.1:0".to_owned(),
        format!("-join=127.0.0.1:{}", serf.bind),
        snap_arg.clone(),
    ]);
    let ready = first.expect_line("READY h1 ");
    let addr = ready.split_whitespace().nth(2).unwrap().to_owned();
    first.expect_line("JOINED 1");
    serf.wait_member("h1", &["alive"]);
    serf.cli(&["event", "deploy", "v1"]);
    first.expect_line("EVENT user ");
    assert_eq!(user_lines(&first, " deploy v1").count(), 1);
    // Give the snapshot's clock writer a moment (it records at most every 500 ms).
    std::thread::sleep(std::time::Duration::from_secs(2));
    first.kill9();
    let text = std::fs::read_to_string(&snap).unwrap();
    assert!(
        text.contains("alive: s1 "),
        "snapshot misses serf's node:\n{text}"
    );
    assert!(
        text.contains("event-clock: "),
        "snapshot misses the event clock:\n{text}"
    );

    // While h1 is down, one more event.
    serf.cli(&["event", "deploy", "v2"]);

    // Same name and address, no -join: the snapshot says whom to rejoin.
    let mut second = spawn_node(&["-name=h1".to_owned(), format!("-bind={addr}"), snap_arg]);
    second.expect_line("READY h1 ");
    second.expect_line("REJOINED 1");
    serf.wait_member("h1", &["alive", &addr]);
    // The event from the downtime arrives (from serf's push/pull)...
    second.expect_line("EVENT user ");
    serf.cli(&["event", "deploy", "v3"]);
    while user_lines(&second, " deploy v3").count() == 0 {
        second.expect_line("EVENT user ");
    }
    assert_eq!(
        user_lines(&second, " deploy v2").count(),
        1,
        "{:?}",
        second.seen()
    );
    assert_eq!(
        user_lines(&second, " deploy v3").count(),
        1,
        "{:?}",
        second.seen()
    );
    // ...but the one it had delivered before the crash does not.
    assert_eq!(
        user_lines(&second, " deploy v1").count(),
        0,
        "redelivered: {:?}",
        second.seen()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
