//! An encrypted `hearsay agent` with a snapshot, killed with `kill -9` and started again with
//! no `-join`, rejoins the cluster by itself from its snapshot; a wrong key keeps a third agent
//! out, with the join error saying why.

mod agent_support;

use agent_support::{agent_error, free_port, scratch, start_agent, wait_join_seen, wait_output};

const KEY: &str = "cg8StVXbQJ0gPvMd9o7yrg==";
const OTHER_KEY: &str = "HvY8ubRZMgafUOWvrOadwOckVa1wN3QWAo46FVKbVN8=";

#[test]
fn encrypted_agent_rejoins_from_its_snapshot() {
    let dir = scratch("snapshot");
    let (pa, pb) = (free_port(), free_port());
    let a_addr = format!("127.0.0.1:{pa}");
    let mut a = start_agent(&[
        "-node=a".into(),
        format!("-bind={a_addr}"),
        "-rpc-addr=127.0.0.1:0".into(),
        "-profile=local".into(),
        format!("-encrypt={KEY}"),
    ]);
    a.expect_line("==> Log data will now stream in");

    let snap = dir.join("b.snapshot");
    let b_args = |join: bool| {
        let mut v = vec![
            "-node=b".to_owned(),
            format!("-bind=127.0.0.1:{pb}"),
            "-rpc-addr=127.0.0.1:0".into(),
            "-profile=local".into(),
            format!("-encrypt={KEY}"),
            format!("-snapshot={}", snap.display()),
        ];
        if join {
            v.push(format!("-join={a_addr}"));
        }
        v
    };
    let mut b = start_agent(&b_args(true));
    let enc = b.expect_line("                      Encrypted:");
    assert!(enc.ends_with("true"), "{enc}");
    let s = b.expect_line("                       Snapshot:");
    assert!(s.ends_with("true"), "{s}");
    b.expect_line("    Join completed. Synced with 1 initial agents");
    wait_join_seen(&mut a, "b", 0);
    // Let the snapshot record a: it is appended as the member event is delivered.
    let snap_text = || std::fs::read_to_string(&snap).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !snap_text().contains("alive: a ") {
        assert!(
            std::time::Instant::now() < deadline,
            "snapshot never recorded a:\n{}",
            snap_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    b.kill9();
    drop(b);
    // Restarted only once a has declared it failed, so that its return is a fresh join.
    wait_output(&mut a, 0, "b failed", |l| {
        l.contains("Received event: member-failed")
    });

    let mark = a.seen().len();
    let mut b = start_agent(&b_args(false));
    b.expect_line("==> Log data will now stream in");
    wait_join_seen(&mut a, "b", mark);
    assert!(
        b.seen()
            .iter()
            .any(|l| l.contains("re-joined previously known nodes")),
        "b did not say it rejoined from its snapshot: {:?}",
        b.seen()
    );

    // A wrong key cannot join.
    let e = agent_error(&[
        "-node=c",
        "-bind=127.0.0.1:0",
        "-rpc-addr=127.0.0.1:0",
        &format!("-encrypt={OTHER_KEY}"),
        &format!("-join={a_addr}"),
    ]);
    assert!(e.contains(&a_addr), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
